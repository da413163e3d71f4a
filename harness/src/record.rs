//! One request as the harness records it: every timestamp, token count and
//! outcome. Times are nanoseconds since the experiment's start instant.

use harness_core::outcome::ErrorClass;
use harness_core::RequestSample;

#[derive(Debug, Clone, Default)]
pub struct RequestRecord {
    pub seq: u64,
    pub warmup: bool,
    pub scheduled_ns: i64,
    pub sent_ns: i64,
    /// Response headers received.
    pub first_byte_ns: Option<i64>,
    /// First chunk carrying generated content; `None` when the response was
    /// not streamed (docs/metrics.md).
    pub first_token_ns: Option<i64>,
    pub end_ns: i64,
    /// Arrival of each content-bearing chunk, stamped at the socket read;
    /// empty when the response was not streamed.
    pub token_chunk_ns: Vec<i64>,
    /// SSE events received (content-bearing or not).
    pub events: u32,
    pub http_status: Option<u16>,
    pub ok: bool,
    pub error_class: Option<ErrorClass>,
    pub error_message: Option<String>,
    pub prompt_tokens_client: Option<u64>,
    pub output_tokens_client: Option<u64>,
    pub prompt_tokens_usage: Option<u64>,
    pub output_tokens_usage: Option<u64>,
    pub finish_reason: Option<String>,
    /// The generated text, kept only until the client has counted its tokens.
    pub output_text: String,
    /// Attempts before this one that were throttled and retried (AWS
    /// providers, bounded by their `max_retries`); the timestamps are the
    /// last attempt's, so retries are not in its latency (the wait shows as
    /// the client's lag: actual send − scheduled send).
    pub retries: u32,
}

impl RequestRecord {
    /// Marks the request failed with `class` (the first failure wins). The
    /// message is stored with secrets masked (`redact::text`) and cut to 500
    /// bytes.
    pub fn fail(&mut self, class: ErrorClass, message: impl Into<String>) {
        self.ok = false;
        if self.error_class.is_none() {
            self.error_class = Some(class);
            let mut m: String = crate::redact::text(&message.into());
            if m.len() > 500 {
                let mut cut = 500;
                while !m.is_char_boundary(cut) {
                    cut -= 1;
                }
                m.truncate(cut);
            }
            self.error_message = Some(m);
        }
    }

    pub fn sample(&self) -> RequestSample {
        RequestSample {
            warmup: self.warmup,
            scheduled_ns: self.scheduled_ns,
            sent_ns: self.sent_ns,
            first_token_ns: self.first_token_ns,
            end_ns: self.end_ns,
            token_chunk_ns: self.token_chunk_ns.clone(),
            ok: self.ok,
            error_class: self.error_class.map(|c| c.as_str().to_string()),
            prompt_tokens_usage: self.prompt_tokens_usage,
            output_tokens_usage: self.output_tokens_usage,
            prompt_tokens_client: self.prompt_tokens_client,
            output_tokens_client: self.output_tokens_client,
        }
    }
}
