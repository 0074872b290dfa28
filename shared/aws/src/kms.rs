//! The account master key in AWS KMS: data keys for envelope encryption.

use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use motcua_ports::identity::{DataKey, KeyVault};
use motcua_ports::{StoreError, StoreResult};

/// Generates AES-256 data keys under a KMS key and unwraps them; the master key never
/// leaves KMS.
#[derive(Clone)]
pub struct KmsKeyVault {
    client: Client,
    key_id: String,
}

fn kms_error<E: ProvideErrorMetadata>(e: &E) -> StoreError {
    match e.code() {
        Some("ThrottlingException")
        | Some("KMSInternalException")
        | Some("DependencyTimeoutException") => {
            StoreError::Unavailable(format!("kms: {}", e.code().unwrap_or_default()))
        }
        code => StoreError::Backend(format!("kms: {}", code.unwrap_or("error"))),
    }
}

impl KmsKeyVault {
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        KmsKeyVault {
            client,
            key_id: key_id.into(),
        }
    }
}

#[async_trait]
impl KeyVault for KmsKeyVault {
    async fn new_data_key(&self) -> StoreResult<DataKey> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .send()
            .await
            .map_err(|e| kms_error(&e))?;
        match (out.plaintext(), out.ciphertext_blob()) {
            (Some(p), Some(c)) => Ok(DataKey {
                plain: p.as_ref().to_vec(),
                wrapped: c.as_ref().to_vec(),
            }),
            _ => Err(StoreError::Backend("kms: data key without parts".into())),
        }
    }

    async fn unwrap_data_key(&self, wrapped: &[u8]) -> StoreResult<Vec<u8>> {
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(wrapped.to_vec()))
            .send()
            .await
            .map_err(|e| kms_error(&e))?;
        out.plaintext()
            .map(|p| p.as_ref().to_vec())
            .ok_or_else(|| StoreError::Backend("kms: no plaintext".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn data_keys_round_trip_and_tampering_fails() {
        crate::localstack::ensure_running().expect("LocalStack");
        let conf = crate::localstack::config().await;
        let client = Client::new(&conf);
        let key = client
            .create_key()
            .description("motcua test account key")
            .send()
            .await
            .unwrap();
        let key_id = key.key_metadata().unwrap().key_id().to_owned();
        let vault = KmsKeyVault::new(client, key_id);
        let dk = vault.new_data_key().await.unwrap();
        assert_eq!(dk.plain.len(), 32);
        assert_ne!(dk.wrapped, dk.plain);
        assert_eq!(vault.unwrap_data_key(&dk.wrapped).await.unwrap(), dk.plain);
        let other = vault.new_data_key().await.unwrap();
        assert_ne!(other.plain, dk.plain);
        let mut bad = dk.wrapped.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert!(vault.unwrap_data_key(&bad).await.is_err());
    }
}
