//! Secrets read from Secrets Manager at cold start, instead of environment variables.
//!
//! A setting `NAME` may be given as `NAME_SECRET`, the id or ARN of a Secrets Manager
//! secret holding its value: the function reads it once when it starts and keeps it in
//! memory (a new value takes effect at the next cold start). Without `NAME_SECRET` the
//! plain variable `NAME` is used, as on a laptop.

use std::collections::HashMap;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;

/// The values of `names` whose `NAME_SECRET` is set in `env`, read from Secrets Manager.
/// An unreadable secret is an error (a function must not start without its keys); an
/// empty `NAME_SECRET` counts as unset.
pub async fn resolve(
    client: &Client,
    names: &[&str],
    env: impl Fn(&str) -> Option<String>,
) -> Result<HashMap<String, String>, String> {
    // Read concurrently: each is a round trip, and they all stand before the first request.
    let mut reads = tokio::task::JoinSet::new();
    for name in names {
        let var = format!("{name}_SECRET");
        let Some(id) = env(&var).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        let (client, name) = (client.clone(), (*name).to_owned());
        reads.spawn(async move {
            let value = read(&client, &var, id.trim()).await?;
            Ok::<_, String>((name, value))
        });
    }
    let mut out = HashMap::new();
    while let Some(done) = reads.join_next().await {
        let (name, value) = done.map_err(|e| format!("reading a secret: {e}"))??;
        out.insert(name, value);
    }
    Ok(out)
}

/// The string value of the secret `id`, named `var` in errors.
pub async fn read(client: &Client, var: &str, id: &str) -> Result<String, String> {
    client
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| format!("reading {var}: {}", e.code().unwrap_or("unreachable")))?
        .secret_string
        .ok_or_else(|| format!("{var}: the secret has no string value"))
}

/// A lookup of settings: a secret read by [`resolve`] first, else the variable itself.
pub fn lookup(
    secrets: HashMap<String, String>,
    env: impl Fn(&str) -> Option<String>,
) -> impl Fn(&str) -> Option<String> {
    move |k| secrets.get(k).cloned().or_else(|| env(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settings_come_from_secrets_manager_when_named() {
        crate::localstack::ensure_running().expect("LocalStack");
        let conf = crate::localstack::config().await;
        let client = Client::new(&conf);
        let name = format!("motcua-test-{}", uuid::Uuid::now_v7().simple());
        let arn = client
            .create_secret()
            .name(&name)
            .secret_string("a-key-from-the-vault")
            .send()
            .await
            .unwrap()
            .arn
            .unwrap();
        let env = |k: &str| match k {
            "MOTCUA_ID_HASH_KEY_SECRET" => Some(arn.clone()),
            "MOTCUA_ID_HASH_KEY" => Some("from-the-environment".into()),
            "MOTCUA_REGISTRY_API_KEY" => Some("plain".into()),
            "MOTCUA_JWT_SECRETS_SECRET" => Some(" ".into()),
            _ => None,
        };
        let secrets = resolve(
            &client,
            &[
                "MOTCUA_ID_HASH_KEY",
                "MOTCUA_REGISTRY_API_KEY",
                "MOTCUA_JWT_SECRETS",
            ],
            env,
        )
        .await
        .unwrap();
        assert_eq!(
            secrets.len(),
            1,
            "only the named secret is read: {secrets:?}"
        );
        let get = lookup(secrets, env);
        assert_eq!(
            get("MOTCUA_ID_HASH_KEY").as_deref(),
            Some("a-key-from-the-vault")
        );
        assert_eq!(get("MOTCUA_REGISTRY_API_KEY").as_deref(), Some("plain"));
        assert_eq!(get("MOTCUA_JWT_SECRETS"), None);
        // A secret that cannot be read stops the start.
        let missing = |k: &str| {
            (k == "MOTCUA_ID_HASH_KEY_SECRET").then(|| "motcua-no-such-secret".to_string())
        };
        let err = resolve(&client, &["MOTCUA_ID_HASH_KEY"], missing)
            .await
            .unwrap_err();
        assert!(err.contains("MOTCUA_ID_HASH_KEY_SECRET"), "{err}");
    }
}
