//! The payments function in the runner: the providers the environment names, or else the
//! simulator of all three started here (so a developer can pay a fee end to end with curl
//! or a browser), and the reconciliation job on a timer.
//!
//! Environment (besides the function's own, `docs/functions/payments.md`): a provider is
//! real when its merchant code is set (`MOTCUA_VNPAY_TMN_CODE`, `MOTCUA_MOMO_PARTNER_CODE`,
//! `MOTCUA_PAYGOV_MERCHANT`); with none set, the simulator plays all three, with secrets
//! kept in the data directory. `MOTCUA_PAYMENT_SIM_PORT` picks its port.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use motcua_pay::paygov::PaygovProfile;
use motcua_pay::simulator::{PaymentSimulator, SimOptions};
use motcua_payments::{PayConfig, PayState, providers};
use motcua_ports::payments::PaymentStore;
use motcua_submission::AppState;

use crate::secret_file;

/// The function's state in the runner at `addr`, and the simulator if one was started.
pub async fn state(
    data_dir: &Path,
    submission: &AppState,
    payments: Arc<dyn PaymentStore>,
    addr: std::net::SocketAddr,
) -> anyhow::Result<(PayState, Option<PaymentSimulator>)> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let public = env("MOTCUA_PUBLIC_API_URL").unwrap_or_else(|| format!("http://{addr}"));
    let portal = env("MOTCUA_PORTAL_URL").unwrap_or_else(|| format!("http://{addr}/dev/portal"));
    let real = [
        "MOTCUA_VNPAY_TMN_CODE",
        "MOTCUA_MOMO_PARTNER_CODE",
        "MOTCUA_PAYGOV_MERCHANT",
    ]
    .iter()
    .any(|k| env(k).is_some());
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("MOTCUA_PUBLIC_API_URL".into(), public.clone());
    vars.insert("MOTCUA_PORTAL_URL".into(), portal);
    let sim = if real {
        None
    } else {
        let secret = secret_file(data_dir, "payment-sim.key", "MOTCUA_PAYMENT_SIM_SECRET")?;
        let profile = PaygovProfile::example();
        let port: u16 = env("MOTCUA_PAYMENT_SIM_PORT")
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let o = SimOptions {
            vnpay_tmn_code: "MOTCUA01".into(),
            vnpay_secret: format!("vnpay-{secret}").into_bytes(),
            vnpay_ipn_url: format!("{public}/v1/payments/vnpay/ipn"),
            momo_partner_code: "MOMOMOTCUA".into(),
            momo_access_key: "motcua-access".into(),
            momo_secret: format!("momo-{secret}").into_bytes(),
            paygov_merchant: "MOTCUA".into(),
            paygov_secret: format!("paygov-{secret}").into_bytes(),
            paygov_profile: profile.clone(),
        };
        let sim = match PaymentSimulator::start(port, o.clone()).await {
            Ok(s) => s,
            Err(_) => PaymentSimulator::start(0, o.clone()).await?,
        };
        for (k, v) in [
            ("MOTCUA_VNPAY_TMN_CODE", o.vnpay_tmn_code.clone()),
            ("MOTCUA_VNPAY_HASH_SECRET", format!("vnpay-{secret}")),
            ("MOTCUA_VNPAY_PAY_URL", sim.vnpay_pay_url()),
            ("MOTCUA_VNPAY_API_URL", sim.vnpay_api_url()),
            ("MOTCUA_MOMO_PARTNER_CODE", o.momo_partner_code.clone()),
            ("MOTCUA_MOMO_ACCESS_KEY", o.momo_access_key.clone()),
            ("MOTCUA_MOMO_SECRET_KEY", format!("momo-{secret}")),
            ("MOTCUA_MOMO_API_URL", sim.momo_api_url()),
            ("MOTCUA_PAYGOV_MERCHANT", o.paygov_merchant.clone()),
            ("MOTCUA_PAYGOV_SECRET", format!("paygov-{secret}")),
            ("MOTCUA_PAYGOV_PAY_URL", sim.paygov_pay_url()),
            ("MOTCUA_PAYGOV_QUERY_URL", sim.paygov_query_url()),
            ("MOTCUA_PAYGOV_PROFILE", serde_json::to_string(&profile)?),
        ] {
            vars.insert(k.into(), v);
        }
        Some(sim)
    };
    let get = |k: &str| vars.get(k).cloned().or_else(|| env(k));
    let mut config = PayConfig::from_lookup(get).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (offered, profile) = providers::from_lookup(get).map_err(anyhow::Error::msg)?;
    config.paygov = profile;
    Ok((
        PayState {
            dossiers: submission.ports.dossiers.clone(),
            idempotency: submission.ports.idempotency.clone(),
            ports: motcua_ports::payments::PaymentPorts {
                payments,
                providers: offered,
            },
            auth: submission.auth.clone(),
            clock: submission.clock.clone(),
            config: Arc::new(config),
        },
        sim,
    ))
}

/// Runs the reconciliation every `every`, and yesterday's report once a day.
pub fn reconcile_continuously(state: &PayState, every: Duration) {
    let s = state.clone();
    tokio::spawn(async move {
        let mut reported: Option<jiff::civil::Date> = None;
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = motcua_payments::reconcile::reconcile(&s).await {
                tracing::warn!(error = %e, "reconciliation round failed");
            }
            let today = motcua_domain::calendar::local_date(s.clock.now());
            if reported != Some(today)
                && let Ok(yesterday) = today.yesterday()
            {
                match motcua_payments::reconcile::daily_report(&s, yesterday).await {
                    Ok(_) => reported = Some(today),
                    Err(e) => tracing::warn!(error = %e, "reconciliation report failed"),
                }
            }
        }
    });
}
