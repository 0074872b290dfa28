//! Settings of the payments function, from environment variables, checked once at start.

use jiff::SignedDuration;
pub use motcua_http::config::ConfigError;
use motcua_http::config::number;
use motcua_http::limits::ProxyTrust;

#[derive(Debug, Clone)]
pub struct PayConfig {
    /// `MOTCUA_PUBLIC_API_URL`: the API as providers and browsers reach it; the callback
    /// and return URLs are under it (`<url>/v1/payments/<provider>/ipn|return`).
    pub public_api_url: String,
    /// `MOTCUA_PORTAL_URL`: the portal, linked from the return page.
    pub portal_url: String,
    /// `MOTCUA_PAYMENT_VALIDITY_MINUTES` (default 15): how long the provider takes the
    /// payment (VNPay's `vnp_ExpireDate`).
    pub validity: SignedDuration,
    /// `MOTCUA_PAYMENT_RECONCILE_AFTER_MINUTES` (default 10): a payment still pending this
    /// long is asked about.
    pub reconcile_after: SignedDuration,
    /// `MOTCUA_PAYMENT_GRACE_MINUTES` (default 15): after its validity, how long a payment
    /// the provider still calls pending stays open before it is expired.
    pub grace: SignedDuration,
    /// `MOTCUA_PAYMENT_BATCH` (default 100): payments one reconciliation round asks about.
    pub batch: u32,
    /// `MOTCUA_TRUSTED_PROXY_HOPS` and `MOTCUA_PROXY_SECRET`: where the payer's address
    /// (sent to VNPay) comes from.
    pub proxies: ProxyTrust,
    /// The national platform's profile, when it is offered (its callbacks' field names and
    /// answer codes).
    pub paygov: Option<motcua_pay::paygov::PaygovProfile>,
}

impl PayConfig {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let bad = |name: &'static str, why: &str| ConfigError::Invalid {
            name,
            why: why.to_owned(),
        };
        let url = |name: &'static str, default: &str| -> Result<String, ConfigError> {
            let v = get(name).unwrap_or_else(|| default.to_owned());
            let v = v.trim().trim_end_matches('/').to_owned();
            if !(v.starts_with("https://") || v.starts_with("http://")) || v.contains(['?', '#']) {
                return Err(bad(name, "an http(s) URL without query"));
            }
            Ok(v)
        };
        let minutes =
            |name: &'static str, default: i64, max: i64| -> Result<SignedDuration, ConfigError> {
                let m: i64 = number(name, get(name), default)?;
                if !(1..=max).contains(&m) {
                    return Err(bad(name, &format!("between 1 and {max}")));
                }
                Ok(SignedDuration::from_mins(m))
            };
        let hops: usize = number(
            "MOTCUA_TRUSTED_PROXY_HOPS",
            get("MOTCUA_TRUSTED_PROXY_HOPS"),
            0,
        )?;
        let proxies = ProxyTrust::new(hops, get("MOTCUA_PROXY_SECRET").as_deref())
            .map_err(|why| bad("MOTCUA_PROXY_SECRET", &why))?;
        let batch: u32 = number("MOTCUA_PAYMENT_BATCH", get("MOTCUA_PAYMENT_BATCH"), 100)?;
        Ok(PayConfig {
            public_api_url: url("MOTCUA_PUBLIC_API_URL", "http://127.0.0.1:3000")?,
            portal_url: url("MOTCUA_PORTAL_URL", "https://dichvucong.example.gov.vn")?,
            validity: minutes("MOTCUA_PAYMENT_VALIDITY_MINUTES", 15, 24 * 60)?,
            reconcile_after: minutes("MOTCUA_PAYMENT_RECONCILE_AFTER_MINUTES", 10, 24 * 60)?,
            grace: minutes("MOTCUA_PAYMENT_GRACE_MINUTES", 15, 24 * 60)?,
            batch: batch.clamp(1, 1000),
            proxies,
            paygov: None,
        })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Where `provider` calls us.
    pub fn ipn_url(&self, provider: &str) -> String {
        match provider {
            "paygov" => format!("{}/v1/payments/paygov/confirm", self.public_api_url),
            p => format!("{}/v1/payments/{p}/ipn", self.public_api_url),
        }
    }

    /// Where `provider` sends the payer's browser back.
    pub fn return_url(&self, provider: &str) -> String {
        format!("{}/v1/payments/{provider}/return", self.public_api_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        let c = PayConfig::from_lookup(|_| None).unwrap();
        assert_eq!(c.validity, SignedDuration::from_mins(15));
        assert_eq!(
            c.ipn_url("vnpay"),
            "http://127.0.0.1:3000/v1/payments/vnpay/ipn"
        );
        assert_eq!(
            c.ipn_url("paygov"),
            "http://127.0.0.1:3000/v1/payments/paygov/confirm"
        );
        let with = |k: &'static str, v: &'static str| {
            PayConfig::from_lookup(move |name| (name == k).then(|| v.to_owned()))
        };
        assert!(with("MOTCUA_PAYMENT_VALIDITY_MINUTES", "0").is_err());
        assert!(with("MOTCUA_PAYMENT_VALIDITY_MINUTES", "x").is_err());
        assert!(with("MOTCUA_PUBLIC_API_URL", "ftp://x").is_err());
        assert!(with("MOTCUA_PUBLIC_API_URL", "https://x/?a=1").is_err());
        assert_eq!(
            with("MOTCUA_PUBLIC_API_URL", "https://api.example/")
                .unwrap()
                .return_url("momo"),
            "https://api.example/v1/payments/momo/return"
        );
        assert!(with("MOTCUA_TRUSTED_PROXY_HOPS", "1").is_err());
    }
}
