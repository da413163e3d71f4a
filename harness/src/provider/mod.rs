//! Endpoint clients. A provider sends one request and fills in its record's
//! timestamps, tokens and outcome; it knows nothing of load shapes or
//! statistics.

pub mod openai;
pub mod sse;

use crate::clock::Clock;
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
    /// Sends `item`, stamping `rec` as bytes arrive. On return `rec.ok` says
    /// whether it succeeded; failures carry an error class.
    pub async fn send(&self, item: &WorkItem, clock: &Clock, rec: &mut RequestRecord) {
        match self {
            Provider::OpenAi(c) => c.send(item, clock, rec).await,
        }
    }
}
