//! Endpoint clients. A provider sends one request and fills in its record's
//! timestamps, tokens and outcome; it knows nothing of load shapes or
//! statistics.

pub mod openai;
pub mod sse;

use crate::clock::Clock;
use crate::config::{Config, Endpoint};
use crate::record::RequestRecord;
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
}

impl Provider {
    /// The client for `ep` at `base_url` (the deployment's), keeping
    /// `pool_size` connections open.
    pub fn new(
        cfg: &Config,
        ep: &Endpoint,
        base_url: &str,
        api_key: Option<&String>,
        pool_size: usize,
    ) -> anyhow::Result<Provider> {
        let index = cfg
            .endpoints
            .iter()
            .position(|e| e.name == ep.name)
            .unwrap_or(0);
        Ok(Provider::OpenAi(openai::OpenAiClient::new(
            openai::OpenAiOptions {
                base_url,
                shape: request_shape(cfg, ep, index),
                api_key: api_key.cloned(),
                headers: &ep.headers,
                pool_size,
            },
        )?))
    }

    /// Sends `item`, stamping `rec` as bytes arrive. On return `rec.ok` says
    /// whether it succeeded; failures carry an error class.
    pub async fn send(&self, item: &WorkItem, clock: &Clock, rec: &mut RequestRecord) {
        match self {
            Provider::OpenAi(c) => c.send(item, clock, rec).await,
        }
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
