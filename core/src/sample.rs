//! One request as the statistics see it. Times are nanoseconds relative to the
//! experiment's start instant (a monotonic clock), so they never jump with the
//! wall clock and subtract exactly.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestSample {
    /// Flagged warm-up requests are recorded but excluded from summaries.
    pub warmup: bool,
    /// When the load plan said this request should be sent.
    pub scheduled_ns: i64,
    /// When the client actually began sending it.
    pub sent_ns: i64,
    /// Arrival of the first chunk that carried generated content. `None` for
    /// a response that was not streamed (it arrives in one piece: there is no
    /// first token to time) and for failed requests that got no content.
    pub first_token_ns: Option<i64>,
    /// When the response was complete (or the request failed).
    pub end_ns: i64,
    /// Arrival time of every content-bearing chunk, in order. Each is stamped
    /// when its bytes were read from the socket, before parsing. Empty for a
    /// response that was not streamed.
    pub token_chunk_ns: Vec<i64>,
    /// True when the request succeeded.
    pub ok: bool,
    /// Error class for failed requests (`http_5xx`, `timeout`, ...).
    pub error_class: Option<String>,
    /// Prompt tokens reported by the server's `usage`.
    pub prompt_tokens_usage: Option<u64>,
    /// Output tokens reported by the server's `usage`.
    pub output_tokens_usage: Option<u64>,
    /// Prompt tokens counted by the client's tokenizer.
    pub prompt_tokens_client: Option<u64>,
    /// Output tokens counted by the client's tokenizer over the received text.
    pub output_tokens_client: Option<u64>,
}

impl RequestSample {
    /// Output tokens used by per-token metrics: the server's usage when it
    /// reported one, else the client's count. (Both are stored; see
    /// `docs/metrics.md`, "Token counts".)
    pub fn output_tokens(&self) -> Option<u64> {
        self.output_tokens_usage.or(self.output_tokens_client)
    }

    /// Prompt tokens: the server's usage when reported, else the client's count.
    pub fn prompt_tokens(&self) -> Option<u64> {
        self.prompt_tokens_usage.or(self.prompt_tokens_client)
    }
}
