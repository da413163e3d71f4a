//! When a request counts as a success, and the one set of error classes a
//! failed request is recorded with. `docs/metrics.md` ("Success and error
//! classes") is the prose version; a test checks that it lists every class.
//!
//! A request succeeds only when the server completed it normally: it answered
//! with a success status, the body parsed, it carried generated content (text,
//! reasoning or a tool call), and it ended with a normal finish reason
//! ([`NORMAL_FINISH_REASONS`]). Anything else is a failure with its class: it
//! gives no latency sample and does not count in throughput.

use serde::{Deserialize, Serialize};

/// Finish reasons of a normal completion:
/// - `stop`, `length`: OpenAI, vLLM, SGLang, TGI, llama.cpp, Ollama;
/// - `tool_calls`, `function_call`: a completion that calls a tool;
/// - `eos_token`, `stop_sequence`: TGI's names for `stop`;
/// - `end_turn`, `max_tokens`, `tool_use`: Bedrock's (`stopReason`) for
///   `stop`, `length` and a tool call (`stop_sequence` is shared).
///
/// Every other reason (`abort` from vLLM and SGLang when they drop a request,
/// `error`, `cancelled`, `content_filter`, …) ends the request without a normal
/// completion and is the error class [`ErrorClass::AbnormalFinish`].
pub const NORMAL_FINISH_REASONS: [&str; 9] = [
    "stop",
    "length",
    "tool_calls",
    "function_call",
    "eos_token",
    "stop_sequence",
    "end_turn",
    "max_tokens",
    "tool_use",
];

/// True when `reason` ends a request normally.
pub fn is_normal_finish(reason: &str) -> bool {
    NORMAL_FINISH_REASONS.contains(&reason)
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    Connect,
    Timeout,
    #[serde(rename = "http_429")]
    Http429,
    #[serde(rename = "http_4xx")]
    Http4xx,
    #[serde(rename = "http_5xx")]
    Http5xx,
    Transport,
    MalformedResponse,
    ResponseError,
    EmptyResponse,
    IncompleteResponse,
    AbnormalFinish,
    NotStreamed,
    StreamError,
    MalformedStream,
    IncompleteStream,
    ClientSaturated,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 16] = [
        ErrorClass::Connect,
        ErrorClass::Timeout,
        ErrorClass::Http429,
        ErrorClass::Http4xx,
        ErrorClass::Http5xx,
        ErrorClass::Transport,
        ErrorClass::MalformedResponse,
        ErrorClass::ResponseError,
        ErrorClass::EmptyResponse,
        ErrorClass::IncompleteResponse,
        ErrorClass::AbnormalFinish,
        ErrorClass::NotStreamed,
        ErrorClass::StreamError,
        ErrorClass::MalformedStream,
        ErrorClass::IncompleteStream,
        ErrorClass::ClientSaturated,
    ];

    /// The identifier stored in bundles (`requests.error_class`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Connect => "connect",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Http429 => "http_429",
            ErrorClass::Http4xx => "http_4xx",
            ErrorClass::Http5xx => "http_5xx",
            ErrorClass::Transport => "transport",
            ErrorClass::MalformedResponse => "malformed_response",
            ErrorClass::ResponseError => "response_error",
            ErrorClass::EmptyResponse => "empty_response",
            ErrorClass::IncompleteResponse => "incomplete_response",
            ErrorClass::AbnormalFinish => "abnormal_finish",
            ErrorClass::NotStreamed => "not_streamed",
            ErrorClass::StreamError => "stream_error",
            ErrorClass::MalformedStream => "malformed_stream",
            ErrorClass::IncompleteStream => "incomplete_stream",
            ErrorClass::ClientSaturated => "client_saturated",
        }
    }

    pub fn from_id(id: &str) -> Option<ErrorClass> {
        ErrorClass::ALL.into_iter().find(|c| c.as_str() == id)
    }

    /// The class of an HTTP error status.
    pub fn for_status(status: u16) -> ErrorClass {
        match status {
            429 => ErrorClass::Http429,
            400..=499 => ErrorClass::Http4xx,
            _ => ErrorClass::Http5xx,
        }
    }

    /// What the class means (quoted in docs/metrics.md).
    pub fn description(self) -> &'static str {
        match self {
            ErrorClass::Connect => "no connection could be made (refused, unreachable, DNS)",
            ErrorClass::Timeout => "no complete response within `load.timeout`",
            ErrorClass::Http429 => "HTTP 429: throttled",
            ErrorClass::Http4xx => "another HTTP 4xx: bad request, unknown model, context length, authentication",
            ErrorClass::Http5xx => "HTTP 5xx: a server error",
            ErrorClass::Transport => "the connection broke while the response was read",
            ErrorClass::MalformedResponse => "HTTP 200, but the body is not JSON",
            ErrorClass::ResponseError => "HTTP 200 with an `error` object in the body",
            ErrorClass::EmptyResponse => "the server ended the response without generated content: no choices (`{}`, `\"choices\": []`), or choices with no text, reasoning or tool call",
            ErrorClass::IncompleteResponse => "a response that was not streamed and has no `finish_reason`",
            ErrorClass::AbnormalFinish => "a `finish_reason` other than a normal one (`abort`, `error`, `cancelled`, `content_filter`, …): the engine dropped or refused the request",
            ErrorClass::NotStreamed => "`stream: true` was asked for, but the server answered with one JSON body (`content-type: application/json`): TTFT would equal e2e, so it is not a success",
            ErrorClass::StreamError => "an error object (or `event: error`) inside an SSE stream",
            ErrorClass::MalformedStream => "an SSE event that is not a JSON chunk",
            ErrorClass::IncompleteStream => "the stream ended without a `finish_reason`: either no `[DONE]` either, or `[DONE]` alone, which means the server cut the stream short (llama-cpp-python does so when a new request interrupts a running one). A missing `[DONE]` after a `finish_reason` is fine",
            ErrorClass::ClientSaturated => "open loop: `load.max_in_flight` requests were already in flight at the scheduled time, so it was not sent. Recorded, never silently dropped",
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_serde_agrees() {
        for c in ErrorClass::ALL {
            assert_eq!(ErrorClass::from_id(c.as_str()), Some(c));
            assert_eq!(
                serde_json::to_value(c).unwrap(),
                serde_json::Value::String(c.as_str().into())
            );
        }
    }

    #[test]
    fn normal_and_abnormal_finish_reasons() {
        for r in ["stop", "length", "tool_calls", "eos_token"] {
            assert!(is_normal_finish(r), "{r}");
        }
        for r in ["abort", "error", "cancelled", "content_filter", ""] {
            assert!(!is_normal_finish(r), "{r}");
        }
    }

    #[test]
    fn docs_list_every_class_and_every_normal_finish_reason() {
        let doc = include_str!("../../docs/metrics.md");
        for c in ErrorClass::ALL {
            assert!(doc.contains(&format!("| `{}` |", c.as_str())), "{c}");
        }
        for r in NORMAL_FINISH_REASONS {
            assert!(doc.contains(&format!("`{r}`")), "{r}");
        }
    }

    #[test]
    fn status_classes() {
        assert_eq!(ErrorClass::for_status(429), ErrorClass::Http429);
        assert_eq!(ErrorClass::for_status(404), ErrorClass::Http4xx);
        assert_eq!(ErrorClass::for_status(503), ErrorClass::Http5xx);
    }
}
