//! The object store on S3: presigned PUTs signed here with SigV4 over exactly the headers
//! an upload must carry (`Content-Type`, `Content-Length`, `x-amz-checksum-sha256`,
//! `If-None-Match: *`), presigned GETs that name the download, and the reads, moves,
//! deletes and listings of the verifier and the sweeper. Path-style URLs when an endpoint
//! is set (LocalStack), virtual-hosted ones on AWS.
//!
//! The SDK's own presigner is not used for the PUT: it leaves `x-amz-checksum-sha256` out
//! of the signature (aws-sdk-rust issue 1103), and an unsigned checksum would let a client
//! send any file.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sigv4::http_request::{
    PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use jiff::Timestamp;
use motcua_ports::uploads::{ObjectBody, ObjectStore, PresignedRequest, PutConditions};
use motcua_ports::{StoreError, StoreResult};

pub use aws_sdk_s3;

/// Files in one S3 bucket.
#[derive(Clone)]
pub struct S3Objects {
    client: aws_sdk_s3::Client,
    bucket: String,
    region: String,
    credentials: SharedCredentialsProvider,
    /// `https://<bucket>.s3.<region>.amazonaws.com`, or `<endpoint>/<bucket>` (path style).
    base: String,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("s3: {e}"))
}

fn classify<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            unavailable(&err)
        }
        _ => match err.code() {
            Some("SlowDown" | "ServiceUnavailable" | "InternalError" | "RequestTimeout") => {
                unavailable(err.code().unwrap_or_default())
            }
            code => StoreError::Backend(format!(
                "s3 {}: {}",
                code.unwrap_or("error"),
                err.message().unwrap_or("no message")
            )),
        },
    }
}

impl S3Objects {
    /// The bucket `bucket` with the SDK configuration `conf`: path-style addressing when
    /// the configuration names an endpoint (`AWS_ENDPOINT_URL`, LocalStack).
    pub fn new(conf: &aws_config::SdkConfig, bucket: impl Into<String>) -> StoreResult<S3Objects> {
        let bucket = bucket.into();
        let region = conf
            .region()
            .map(|r| r.to_string())
            .ok_or_else(|| StoreError::Backend("no AWS region configured".into()))?;
        let credentials = conf
            .credentials_provider()
            .ok_or_else(|| StoreError::Backend("no AWS credentials configured".into()))?;
        let endpoint = conf
            .endpoint_url()
            .map(|e| e.trim_end_matches('/').to_owned());
        let s3_conf = aws_sdk_s3::config::Builder::from(conf)
            .force_path_style(endpoint.is_some())
            .build();
        let base = match &endpoint {
            Some(e) => format!("{e}/{bucket}"),
            None => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        };
        Ok(S3Objects {
            client: aws_sdk_s3::Client::from_conf(s3_conf),
            bucket,
            region,
            credentials,
            base,
        })
    }

    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Creates the bucket unless it exists (the runner against LocalStack; the template
    /// declares it on AWS).
    pub async fn ensure_bucket(&self) -> StoreResult<()> {
        if self
            .client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        match self
            .client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.code(), Some("BucketAlreadyOwnedByYou")) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }
}

/// Our keys only (nothing to encode in a URL or a path).
use motcua_domain::upload::is_object_key as valid_key;

fn key_checked(key: &str) -> StoreResult<&str> {
    if valid_key(key) {
        Ok(key)
    } else {
        Err(StoreError::Backend(format!("not an object key: {key:?}")))
    }
}

#[async_trait]
impl ObjectStore for S3Objects {
    async fn presign_put(&self, key: &str, c: &PutConditions) -> StoreResult<PresignedRequest> {
        let url = format!("{}/{}", self.base, key_checked(key)?);
        let creds = self
            .credentials
            .provide_credentials()
            .await
            .map_err(unavailable)?;
        let identity = creds.into();
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(c.expires_in);
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let now = SystemTime::now();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(now)
            .settings(settings)
            .build()
            .map_err(|e| StoreError::Backend(format!("signing: {e}")))?
            .into();
        let length = c.size.to_string();
        let headers = [
            ("content-type", c.content_type.as_str()),
            ("content-length", length.as_str()),
            ("x-amz-checksum-sha256", c.sha256.as_str()),
            ("if-none-match", "*"),
        ];
        let signable = SignableRequest::new(
            "PUT",
            &url,
            headers.iter().copied(),
            SignableBody::UnsignedPayload,
        )
        .map_err(|e| StoreError::Backend(format!("signing: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| StoreError::Backend(format!("signing: {e}")))?
            .into_parts();
        let mut query = String::new();
        for (name, value) in instructions.params() {
            query.push(if query.is_empty() { '?' } else { '&' });
            query.push_str(name);
            query.push('=');
            query.extend(form_urlencoded::byte_serialize(value.as_bytes()));
        }
        let expires_at = Timestamp::try_from(now)
            .map_err(|e| StoreError::Backend(e.to_string()))?
            + c.expires_in;
        Ok(PresignedRequest {
            method: "PUT",
            url: format!("{url}{query}"),
            headers: c.headers(),
            expires_at,
        })
    }

    async fn presign_get(
        &self,
        key: &str,
        file_name: &str,
        content_type: &str,
        expires_in: Duration,
    ) -> StoreResult<PresignedRequest> {
        let config = PresigningConfig::expires_in(expires_in)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let p = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key_checked(key)?)
            .response_content_disposition(motcua_domain::upload::content_disposition(file_name))
            .response_content_type(content_type)
            .presigned(config)
            .await
            .map_err(classify)?;
        Ok(PresignedRequest {
            method: "GET",
            url: p.uri().to_owned(),
            headers: vec![],
            expires_at: Timestamp::now() + expires_in,
        })
    }

    async fn read(&self, key: &str, limit: u64) -> StoreResult<Option<ObjectBody>> {
        if limit == 0 {
            return Ok(Some(ObjectBody {
                bytes: vec![],
                size: 0,
            }));
        }
        let got = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key_checked(key)?)
            .range(format!("bytes=0-{}", limit - 1))
            .send()
            .await;
        let out = match got {
            Ok(o) => o,
            Err(e) if matches!(e.code(), Some("NoSuchKey")) => return Ok(None),
            // A zero-byte object has no byte 0.
            Err(e) if matches!(e.code(), Some("InvalidRange")) => {
                return Ok(Some(ObjectBody {
                    bytes: vec![],
                    size: 0,
                }));
            }
            Err(e) => return Err(classify(e)),
        };
        // `bytes 0-N/TOTAL` when ranged; the length otherwise.
        let size = out
            .content_range()
            .and_then(|r| r.rsplit_once('/'))
            .and_then(|(_, total)| total.parse::<u64>().ok())
            .or_else(|| out.content_length().and_then(|n| u64::try_from(n).ok()))
            .unwrap_or(0);
        let bytes = out
            .body
            .collect()
            .await
            .map_err(unavailable)?
            .into_bytes()
            .to_vec();
        Ok(Some(ObjectBody { bytes, size }))
    }

    async fn rename(&self, from: &str, to: &str, content_type: &str) -> StoreResult<()> {
        // REPLACE: the uploader's own standard headers (Content-Encoding, Cache-Control,
        // Content-Disposition, ...), which the PUT's signature does not cover, stay behind.
        let copied = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .copy_source(format!("{}/{}", self.bucket, key_checked(from)?))
            .key(key_checked(to)?)
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .content_type(content_type)
            .send()
            .await;
        match copied {
            Ok(_) => {}
            Err(e) if matches!(e.code(), Some("NoSuchKey")) => {
                // Moved already by an earlier attempt?
                let there = self
                    .client
                    .head_object()
                    .bucket(&self.bucket)
                    .key(to)
                    .send()
                    .await
                    .is_ok();
                return if there { Ok(()) } else { Err(classify(e)) };
            }
            Err(e) => return Err(classify(e)),
        }
        self.delete(from).await
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key_checked(key)?)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn older_than(
        &self,
        prefix: &str,
        before: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<String>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(classify)?;
            for o in page.contents() {
                let old = o
                    .last_modified()
                    .is_some_and(|t| t.secs() < before.as_second());
                if let (true, Some(k)) = (old, o.key())
                    && valid_key(k)
                {
                    out.push(k.to_owned());
                    if out.len() >= limit as usize {
                        return Ok(out);
                    }
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => return Ok(out),
            }
        }
    }
}
