//! The AWS SDK's shared configuration, one definition for every client the
//! harness makes (S3 for `publish` and the EC2 run's objects, EC2, SSM).
//!
//! Credentials, region and endpoint come from the SDK's standard chain
//! (environment, profile, instance role; `AWS_ENDPOINT_URL` for a stand-in
//! such as moto or MinIO, which then gets path-style S3 addresses). HTTPS
//! uses rustls with the ring provider, as the rest of the harness does.

use anyhow::Result;
use aws_credential_types::provider::ProvideCredentials;

/// The loaded SDK configuration and what it found.
pub struct Aws {
    pub config: aws_config::SdkConfig,
    /// When the credentials expire (`None`: long-lived keys, or temporary
    /// ones that do not say: see `temporary`).
    pub credentials_expire: Option<std::time::SystemTime>,
    /// Temporary credentials (with a session token): they expire, even when
    /// the provider does not say when.
    pub temporary: bool,
}

/// Loads the SDK configuration, with `region` over the SDK's own when given.
/// `what` names what the credentials are for, in errors.
///
/// Errors (exit 2, bad input): no region, or no credentials; each says how to
/// give them.
pub async fn load(region: Option<&str>, what: &str) -> Result<Aws> {
    load_profile(None, region, what).await
}

/// [`load`], with a named profile over the SDK's chain when given
/// (`--profile`).
pub async fn load_profile(profile: Option<&str>, region: Option<&str>, what: &str) -> Result<Aws> {
    let mut loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http_client());
    if let Some(p) = profile {
        // A named profile wins over keys in the environment (the SDK's
        // default chain would take those first).
        loader = loader.profile_name(p).credentials_provider(
            aws_config::profile::ProfileFileCredentialsProvider::builder()
                .profile_name(p)
                .build(),
        );
    }
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r.to_string()));
    }
    let config = loader.load().await;
    // Say what is missing before the first request, not in an SDK dump.
    if config.region().is_none() {
        crate::bad_input!(
            "no AWS region for {what}: set AWS_REGION (or a profile's region with AWS_PROFILE), or give `harness run --region`"
        );
    }
    let creds = match config.credentials_provider() {
        Some(p) => p.provide_credentials().await.map_err(|e| error_chain(&e)),
        None => Err("no credentials provider".to_string()),
    };
    match creds {
        Ok(c) => Ok(Aws {
            credentials_expire: c.expiry(),
            temporary: c.session_token().is_some(),
            config,
        }),
        Err(e) => match profile {
            Some(p) => crate::bad_input!(
                "no AWS credentials for {what} from profile `{p}` (--profile): {}; check it in ~/.aws/config and ~/.aws/credentials (or AWS_CONFIG_FILE), and for an SSO profile run `aws sso login --profile {p}`",
                e
            ),
            None => crate::bad_input!(
                "no AWS credentials for {what} ({}): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (or `harness run --profile`), or run where an instance role applies",
                e
            ),
        },
    }
}

/// An error and its causes, in one line, secrets masked.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(&format!(": {s}"));
        }
        cause = c.source();
    }
    crate::redact::text(&text)
}

/// The SDK's HTTP client: rustls with the ring provider.
pub fn http_client() -> aws_sdk_s3::config::SharedHttpClient {
    crate::tls::install_provider();
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

impl Aws {
    pub fn region(&self) -> String {
        self.config
            .region()
            .map(|r| r.to_string())
            .unwrap_or_default()
    }

    /// An S3 client; path-style addresses when an endpoint URL is set.
    pub fn s3(&self) -> aws_sdk_s3::Client {
        let mut conf = aws_sdk_s3::config::Builder::from(&self.config);
        if std::env::var_os("AWS_ENDPOINT_URL").is_some()
            || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
        {
            conf = conf.force_path_style(true);
        }
        aws_sdk_s3::Client::from_conf(conf.build())
    }

    pub fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.config)
    }

    pub fn ssm(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&self.config)
    }

    /// The account id the credentials belong to (STS GetCallerIdentity).
    pub async fn account(&self) -> Result<String> {
        let r = aws_sdk_sts::Client::new(&self.config)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("who are these credentials? {}", why(&e)))?;
        r.account()
            .map(String::from)
            .ok_or_else(|| anyhow::anyhow!("STS returned no account id"))
    }
}

/// An SDK error in one line: `Code: message` when AWS sent them, else the
/// SDK's own account of it (a connection refused, a timeout).
pub fn why<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_s3::error::ProvideErrorMetadata;
    match (e.code(), e.message()) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        (Some(code), None) => code.to_string(),
        _ => crate::redact::text(&aws_sdk_s3::error::DisplayErrorContext(e).to_string()),
    }
}
