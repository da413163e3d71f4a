//! Endpoint clients. A provider sends one request and fills in its record's
//! timestamps, tokens and outcome; it knows nothing of load shapes or
//! statistics. Each kind of endpoint is one variant of [`Provider`], built
//! from its own config section ([`Provider::new`]) and answering one
//! [`Provider::send`] that stamps the record as bytes arrive and classes a
//! failure with one of the documented error classes
//! (`harness_core::outcome::ErrorClass`). The scheduler, runner, bundle and
//! analysis see only `send` and the record.
//!
//! - `openai`: any OpenAI-compatible server, over HTTP with SSE;
//! - `sagemaker`: a SageMaker endpoint, through the AWS SDK;
//! - `bedrock`: a Bedrock model, through the AWS SDK.

pub mod aws;
pub mod bedrock;
pub mod openai;
pub mod sagemaker;
pub mod sse;

use crate::clock::Clock;
use crate::config::{Config, Endpoint, ProviderKind};
use crate::record::RequestRecord;
use harness_core::outcome::{is_normal_finish, ErrorClass};
use std::sync::Arc;

/// What to send: the prompt and how many tokens to ask for.
#[derive(Debug, Clone)]
pub struct WorkItem {
    pub prompt: Arc<str>,
    pub prompt_tokens_client: u64,
    pub max_tokens: u32,
}

pub enum Provider {
    OpenAi(openai::OpenAiClient),
    SageMaker(Box<sagemaker::SageMakerClient>),
    Bedrock(Box<bedrock::BedrockClient>),
}

/// What building a provider needs besides its endpoint.
pub struct Reach<'a> {
    /// The deployment's base URL (OpenAI-compatible endpoints).
    pub base_url: &'a str,
    pub api_key: Option<&'a String>,
    /// The run's AWS configuration (credentials, default region), loaded
    /// once when the config has AWS endpoints.
    pub aws: Option<&'a aws_config::SdkConfig>,
    /// Connections kept open: the load's concurrency.
    pub pool_size: usize,
}

impl Provider {
    /// The client for `ep`.
    ///
    /// Errors: a header or key not valid in HTTP; an AWS endpoint without
    /// the run's AWS configuration (a bug: the run loads it first).
    pub fn new(cfg: &Config, ep: &Endpoint, r: Reach<'_>) -> anyhow::Result<Provider> {
        let index = cfg
            .endpoints
            .iter()
            .position(|e| e.name == ep.name)
            .unwrap_or(0);
        let aws = || {
            r.aws.ok_or_else(|| {
                anyhow::anyhow!("endpoint `{}` needs the AWS configuration", ep.name)
            })
        };
        Ok(match ep.provider {
            ProviderKind::Command => unreachable!("command endpoints are in `commands`"),
            ProviderKind::Sim | ProviderKind::Openai => {
                Provider::OpenAi(openai::OpenAiClient::new(openai::OpenAiOptions {
                    base_url: r.base_url,
                    shape: request_shape(cfg, ep, index),
                    api_key: r.api_key.cloned(),
                    headers: &ep.headers,
                    pool_size: r.pool_size,
                })?)
            }
            ProviderKind::Sagemaker => {
                Provider::SageMaker(Box::new(sagemaker::SageMakerClient::new(
                    aws()?,
                    ep.sagemaker.as_ref().expect("validated"),
                    ep.stream,
                    &cfg.sampling,
                    request_shape(cfg, ep, index),
                )))
            }
            ProviderKind::Bedrock => Provider::Bedrock(Box::new(bedrock::BedrockClient::new(
                aws()?,
                &ep.model,
                ep.stream,
                &cfg.sampling,
                ep.bedrock.as_ref().expect("validated"),
            ))),
        })
    }

    /// Sends `item`, stamping `rec` as bytes arrive. On return `rec.ok` says
    /// whether it succeeded; failures carry an error class.
    ///
    /// Every request in flight is a task holding this future, whose size is
    /// its largest arm's: the AWS SDKs' futures are boxed, so that an
    /// OpenAI-compatible request does not carry their size (bench/run.sh
    /// section 3: about 15 KiB less per request in flight).
    pub async fn send(&self, item: &WorkItem, clock: &Clock, rec: &mut RequestRecord) {
        match self {
            Provider::OpenAi(c) => c.send(item, clock, rec).await,
            Provider::SageMaker(c) => Box::pin(c.send(item, clock, rec)).await,
            Provider::Bedrock(c) => Box::pin(c.send(item, clock, rec)).await,
        }
    }

    /// Where requests go, for logs and the preflight row: the request URL
    /// (credentials masked), or the AWS service, region and name.
    pub fn describe(&self) -> String {
        match self {
            Provider::OpenAi(c) => crate::redact::url(c.url()),
            Provider::SageMaker(c) => c.label().to_string(),
            Provider::Bedrock(c) => c.label().to_string(),
        }
    }
}

/// Decides whether a response that ended without an error is a success
/// (docs/metrics.md, "Success and error classes"): a normal finish reason
/// (`harness_core::outcome`), generated content, and a finish reason at all.
/// `stream_done` is `None` for a response read in one piece, else whether
/// the stream sent `[DONE]`: `[DONE]` with no finish reason means the server
/// cut the stream short (llama-cpp-python does this when a new request
/// interrupts a running one); a missing `[DONE]` after a finish reason is fine.
pub(crate) fn judge(rec: &mut RequestRecord, content: bool, stream_done: Option<bool>) {
    if rec.error_class.is_some() {
        return;
    }
    if let Some(f) = rec.finish_reason.clone().filter(|f| !is_normal_finish(f)) {
        rec.fail(
            ErrorClass::AbnormalFinish,
            format!(
                "finish_reason `{f}`: the server ended the request without a normal completion"
            ),
        );
        return;
    }
    if !content {
        rec.fail(
            ErrorClass::EmptyResponse,
            "the response carried no generated content (no text, reasoning or tool call)",
        );
        return;
    }
    match (rec.finish_reason.is_some(), stream_done) {
        (true, _) => rec.ok = true,
        (false, None) => rec.fail(
            ErrorClass::IncompleteResponse,
            "the response has no finish_reason",
        ),
        (false, Some(true)) => rec.fail(
            ErrorClass::IncompleteStream,
            "the stream ended with [DONE] but no finish_reason: the server cut it short",
        ),
        (false, Some(false)) => rec.fail(
            ErrorClass::IncompleteStream,
            "the stream ended without a finish_reason or [DONE]",
        ),
    }
}

/// The request shape of the endpoint at `cfg.endpoints[index]`.
pub fn request_shape(cfg: &Config, ep: &Endpoint, index: usize) -> openai::RequestShape {
    openai::RequestShape {
        api: ep.api,
        stream: ep.stream,
        model: ep.model.clone(),
        sampling: cfg.sampling.clone(),
        extra_body: ep.extra_body.clone(),
        config_path: format!("endpoints[{index}]"),
    }
}
