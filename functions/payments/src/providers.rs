//! The providers the environment names. A provider is offered when its merchant code is
//! set; then every one of its settings is required (secrets may come from Secrets Manager
//! as `NAME_SECRET`).

use std::sync::Arc;

use motcua_pay::momo::{Momo, MomoConfig};
use motcua_pay::paygov::{Paygov, PaygovConfig, PaygovProfile};
use motcua_pay::vnpay::{Vnpay, VnpayConfig};
use motcua_ports::payments::Providers;

/// The secrets among the settings.
pub const SECRETS: [&str; 3] = [
    "MOTCUA_VNPAY_HASH_SECRET",
    "MOTCUA_MOMO_SECRET_KEY",
    "MOTCUA_PAYGOV_SECRET",
];

fn required(get: &impl Fn(&str) -> Option<String>, name: &str) -> Result<String, String> {
    get(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{name} is required"))
}

/// A provider's URL: https, or http on loopback only (the simulator) (review finding: any
/// http URL was taken, so an answer could be changed on the way).
fn url(get: &impl Fn(&str) -> Option<String>, name: &str) -> Result<String, String> {
    let v = required(get, name)?;
    let loopback = [
        "http://127.0.0.1:",
        "http://127.0.0.1/",
        "http://localhost:",
        "http://[::1]:",
    ];
    if v.starts_with("https://") || loopback.iter().any(|p| v.starts_with(p)) {
        Ok(v)
    } else {
        Err(format!("{name} must be an https URL"))
    }
}

fn secret(get: &impl Fn(&str) -> Option<String>, name: &str) -> Result<Vec<u8>, String> {
    let v = required(get, name)?;
    if v.len() < 8 {
        return Err(format!("{name} is too short"));
    }
    Ok(v.into_bytes())
}

/// The offered providers, and the national platform's profile when it is one of them.
pub fn from_lookup(
    get: impl Fn(&str) -> Option<String>,
) -> Result<(Providers, Option<PaygovProfile>), String> {
    let mut providers = Providers::default();
    let server_ip = get("MOTCUA_PAYMENT_SERVER_IP").unwrap_or_else(|| "127.0.0.1".into());
    if let Some(tmn_code) = get("MOTCUA_VNPAY_TMN_CODE").filter(|v| !v.trim().is_empty()) {
        providers = providers.with(Arc::new(Vnpay::new(VnpayConfig {
            tmn_code: tmn_code.trim().to_owned(),
            hash_secret: secret(&get, "MOTCUA_VNPAY_HASH_SECRET")?,
            pay_url: url(&get, "MOTCUA_VNPAY_PAY_URL")?,
            api_url: url(&get, "MOTCUA_VNPAY_API_URL")?,
            server_ip: server_ip.clone(),
        })));
    }
    if let Some(partner) = get("MOTCUA_MOMO_PARTNER_CODE").filter(|v| !v.trim().is_empty()) {
        providers = providers.with(Arc::new(Momo::new(MomoConfig {
            partner_code: partner.trim().to_owned(),
            access_key: required(&get, "MOTCUA_MOMO_ACCESS_KEY")?,
            secret_key: secret(&get, "MOTCUA_MOMO_SECRET_KEY")?,
            api_url: url(&get, "MOTCUA_MOMO_API_URL")?,
            request_type: get("MOTCUA_MOMO_REQUEST_TYPE").unwrap_or_else(|| "payWithMethod".into()),
        })));
    }
    let mut profile = None;
    if let Some(merchant) = get("MOTCUA_PAYGOV_MERCHANT").filter(|v| !v.trim().is_empty()) {
        let p = PaygovProfile::from_json(&required(&get, "MOTCUA_PAYGOV_PROFILE")?)
            .map_err(|e| format!("MOTCUA_PAYGOV_PROFILE is invalid: {e}"))?;
        providers = providers.with(Arc::new(Paygov::new(PaygovConfig {
            merchant: merchant.trim().to_owned(),
            secret: secret(&get, "MOTCUA_PAYGOV_SECRET")?,
            pay_url: url(&get, "MOTCUA_PAYGOV_PAY_URL")?,
            query_url: url(&get, "MOTCUA_PAYGOV_QUERY_URL")?,
            profile: p.clone(),
        })));
        profile = Some(p);
    }
    Ok((providers, profile))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_is_offered_with_all_its_settings_or_not_at_all() {
        let none = from_lookup(|_| None).unwrap();
        assert_eq!(none.0.names().count(), 0);
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let e = from_lookup(vars(&[("MOTCUA_VNPAY_TMN_CODE", "X")]))
            .err()
            .unwrap();
        assert!(e.contains("MOTCUA_VNPAY_HASH_SECRET"), "{e}");
        let ok = from_lookup(vars(&[
            ("MOTCUA_VNPAY_TMN_CODE", "X"),
            ("MOTCUA_VNPAY_HASH_SECRET", "0123456789"),
            ("MOTCUA_VNPAY_PAY_URL", "http://127.0.0.1:1/pay"),
            ("MOTCUA_VNPAY_API_URL", "http://127.0.0.1:1/api"),
        ]))
        .unwrap();
        assert_eq!(ok.0.names().collect::<Vec<_>>(), vec!["vnpay"]);
        let e = from_lookup(vars(&[
            ("MOTCUA_VNPAY_TMN_CODE", "X"),
            ("MOTCUA_VNPAY_HASH_SECRET", "0123456789"),
            ("MOTCUA_VNPAY_PAY_URL", "http://vnpay.invalid/pay"),
            ("MOTCUA_VNPAY_API_URL", "https://vnpay.invalid/api"),
        ]))
        .err()
        .unwrap();
        assert!(
            e.contains("MOTCUA_VNPAY_PAY_URL must be an https URL"),
            "{e}"
        );
        let e = from_lookup(vars(&[("MOTCUA_PAYGOV_MERCHANT", "M")]))
            .err()
            .unwrap();
        assert!(e.contains("MOTCUA_PAYGOV_PROFILE"), "{e}");
    }
}
