#!/usr/bin/env python3
"""Signature vectors computed independently of the Rust code, with Python's own hmac,
hashlib and urllib.parse.quote_plus. Run it to regenerate vectors.json:

    python3 shared/pay/tests/vectors/make_vectors.py > shared/pay/tests/vectors/vectors.json

The secrets are made up; the field orders are those of ../shared/DOMAIN.md."""

import hashlib
import hmac
import json
from urllib.parse import quote_plus

VNP_SECRET = "VNPAYTESTSECRETKEY0123456789ABCD"
MOMO_SECRET = "K951B6PE1waDMi640xX08PD3vg6EkVlz"
MOMO_ACCESS = "F8BBA842ECF85"
PAYGOV_SECRET = "paygov-test-secret"


def enc_python(s):
    return quote_plus(s, safe="")  # keeps A-Z a-z 0-9 _ . - ~


def enc_php(s):  # PHP urlencode: `~` encoded too
    return enc_python(s).replace("~", "%7E")


def enc_java(s):  # Java URLEncoder: `*` kept, `~` encoded
    return enc_php(s).replace("%2A", "*")


def vnp_data(params, enc):
    kept = sorted((k, v) for k, v in params.items()
                  if v != "" and k.startswith("vnp_") and not k.startswith("vnp_SecureHash"))
    return "&".join(f"{enc(k)}={enc(v)}" for k, v in kept)


def hmac512(key, msg):
    return hmac.new(key.encode(), msg.encode(), hashlib.sha512).hexdigest()


def hmac256(key, msg):
    return hmac.new(key.encode(), msg.encode(), hashlib.sha256).hexdigest()


base = {
    "vnp_Version": "2.1.0",
    "vnp_Command": "pay",
    "vnp_TmnCode": "MOTCUA01",
    "vnp_Amount": "20000000",
    "vnp_CreateDate": "20261201103000",
    "vnp_ExpireDate": "20261201104500",
    "vnp_CurrCode": "VND",
    "vnp_IpAddr": "203.0.113.7",
    "vnp_Locale": "vn",
    "vnp_OrderType": "other",
    "vnp_ReturnUrl": "https://dichvucong.example.gov.vn/v1/payments/vnpay/return?x=1&y=a b",
    "vnp_TxnRef": "0190d5f1c2a87b3e9c1d2e3f4a5b6c7d",
    "vnp_BankCode": "",
}
order_infos = {
    "plain": "Le phi ho so 000.00.04.H42-261201-0001",
    "vietnamese": "Lệ phí hồ sơ 000.00.04.H42-261201-0001 (cấp Phiếu lý lịch tư pháp)",
    "corners": "a b+c~d*e%f/g?h=i&j'k!l(m)n",
}
vnpay = []
for name, info in order_infos.items():
    p = dict(base, vnp_OrderInfo=info)
    entry = {"name": name, "params": p}
    for enc_name, enc in [("php", enc_php), ("java", enc_java), ("python", enc_python)]:
        d = vnp_data(p, enc)
        entry[enc_name] = {"data": d, "hash": hmac512(VNP_SECRET, d)}
    vnpay.append(entry)

ipn = {
    "vnp_Amount": "20000000", "vnp_BankCode": "NCB", "vnp_BankTranNo": "VNP14226112",
    "vnp_CardType": "ATM", "vnp_OrderInfo": "Le phi ho so 000.00.04.H42-261201-0001",
    "vnp_PayDate": "20261201103512", "vnp_ResponseCode": "00", "vnp_TmnCode": "MOTCUA01",
    "vnp_TransactionNo": "14226112", "vnp_TransactionStatus": "00",
    "vnp_TxnRef": "0190d5f1c2a87b3e9c1d2e3f4a5b6c7d",
}
ipn_data = vnp_data(ipn, enc_php)
ipn_hash = hmac512(VNP_SECRET, ipn_data)
ipn_query = "&".join(f"{enc_php(k)}={enc_php(v)}" for k, v in ipn.items()) + \
    f"&vnp_SecureHashType=HmacSHA512&vnp_SecureHash={ipn_hash}"

pipe = {
    "querydr": ["20261201110000aa", "2.1.0", "querydr", "MOTCUA01",
                "0190d5f1c2a87b3e9c1d2e3f4a5b6c7d", "20261201103000", "20261201110000",
                "10.0.0.1", "Le phi ho so 000.00.04.H42-261201-0001"],
    "refund": ["20261201120000bb", "2.1.0", "refund", "MOTCUA01", "03",
               "0190d5f1c2a87b3e9c1d2e3f4a5b6c7d", "5000000", "14226112", "20261201103000",
               "officer-1", "20261201120000", "10.0.0.1", "Le phi ho so 000.00.04.H42-261201-0001"],
    "querydr_answer": ["resp-1", "querydr", "00", "QueryDR Success", "MOTCUA01",
                       "0190d5f1c2a87b3e9c1d2e3f4a5b6c7d", "20000000", "NCB", "20261201103512",
                       "14226112", "01", "00", "Lệ phí hồ sơ", "", ""],
}
pipes = {k: {"values": v, "hash": hmac512(VNP_SECRET, "|".join(v))} for k, v in pipe.items()}

momo_ipn = {
    "partnerCode": "MOMO", "orderId": "0190d5f1c2a87b3e9c1d2e3f4a5b6c7d",
    "requestId": "0190d5f1c2a87b3e9c1d2e3f4a5b6c7d", "amount": 200000,
    "orderInfo": "Lệ phí hồ sơ 000.00.04.H42-261201-0001", "orderType": "momo_wallet",
    "transId": 4088878653, "resultCode": 0, "message": "Thành công.", "payType": "qr",
    "responseTime": 1764559512000, "extraData": "",
}
ipn_order = ["amount", "extraData", "message", "orderId", "orderInfo", "orderType",
             "partnerCode", "payType", "requestId", "responseTime", "resultCode", "transId"]
raw = f"accessKey={MOMO_ACCESS}&" + "&".join(f"{k}={momo_ipn[k]}" for k in ipn_order)
momo_ipn["signature"] = hmac256(MOMO_SECRET, raw)
momo = {
    "ipn": {"body": momo_ipn, "raw": raw},
    "create": {}, "query": {}, "refund": {},
}
create = {"amount": 200000, "extraData": "", "ipnUrl": "https://api.example.gov.vn/v1/payments/momo/ipn",
          "orderId": "0190d5f1c2a87b3e9c1d2e3f4a5b6c7d", "orderInfo": "Le phi ho so 000.00.04.H42-261201-0001",
          "partnerCode": "MOMO", "redirectUrl": "https://dichvucong.example.gov.vn/thanh-toan",
          "requestId": "0190d5f1c2a87b3e9c1d2e3f4a5b6c7d", "requestType": "payWithMethod"}
raw = f"accessKey={MOMO_ACCESS}&" + "&".join(f"{k}={create[k]}" for k in sorted(create))
momo["create"] = {"body": create, "raw": raw, "signature": hmac256(MOMO_SECRET, raw)}
query = {"orderId": "0190d5f1c2a87b3e9c1d2e3f4a5b6c7d", "partnerCode": "MOMO", "requestId": "q-1"}
raw = f"accessKey={MOMO_ACCESS}&" + "&".join(f"{k}={query[k]}" for k in sorted(query))
momo["query"] = {"body": query, "raw": raw, "signature": hmac256(MOMO_SECRET, raw)}
refund = {"amount": 50000, "description": "Hoan phi 000.00.04.H42-261201-0001",
          "orderId": "r-1", "partnerCode": "MOMO", "requestId": "r-1", "transId": 4088878653}
raw = f"accessKey={MOMO_ACCESS}&" + "&".join(f"{k}={refund[k]}" for k in sorted(refund))
momo["refund"] = {"body": refund, "raw": raw, "signature": hmac256(MOMO_SECRET, raw)}

pg = {"MaDoiTac": "TINH-H42", "MaThamChieu": "0190d5f1c2a87b3e9c1d2e3f4a5b6c7d",
      "SoTien": "200000", "MaLoi": "00", "MaGiaoDich": "PG123456", "ThoiGian": "20261201103512"}
order = ["MaDoiTac", "MaThamChieu", "SoTien", "MaLoi", "MaGiaoDich", "ThoiGian"]
data = "|".join(pg[k] for k in order) + "|" + PAYGOV_SECRET
pg["MaXacThuc"] = hashlib.sha256(data.encode()).hexdigest()
paygov = {"callback": pg, "data": data}

print(json.dumps({
    "secrets": {"vnpay": VNP_SECRET, "momo": MOMO_SECRET, "momo_access": MOMO_ACCESS,
                "paygov": PAYGOV_SECRET},
    "vnpay_urls": vnpay,
    "vnpay_ipn": {"fields": ipn, "data": ipn_data, "hash": ipn_hash, "query": ipn_query},
    "vnpay_pipe": pipes,
    "momo": momo,
    "paygov": paygov,
}, ensure_ascii=False, indent=1))
