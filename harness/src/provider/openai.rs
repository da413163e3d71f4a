//! OpenAI-compatible client: `/v1/chat/completions` and `/v1/completions`,
//! streaming (SSE, with `stream_options.include_usage`) or not.
//!
//! Each body chunk is stamped the moment the HTTP stack hands over bytes read
//! from the socket, before any parsing; every SSE event completed by that read
//! carries its stamp.

use super::sse::{SseEvent, SseParser};
use super::WorkItem;
use crate::clock::Clock;
use crate::config::{ApiKind, Sampling};
use crate::record::{http_error_class, RequestRecord};
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;
use serde_json::{json, Value};
use std::borrow::Cow;

pub struct OpenAiClient {
    http: reqwest::Client,
    url: String,
    api: ApiKind,
    stream: bool,
    model: String,
    sampling: Sampling,
}

pub struct OpenAiOptions<'a> {
    pub base_url: &'a str,
    pub model: &'a str,
    pub api: ApiKind,
    pub stream: bool,
    pub api_key: Option<String>,
    pub headers: &'a std::collections::BTreeMap<String, String>,
    pub sampling: Sampling,
    /// Connections kept open: the concurrency of the load.
    pub pool_size: usize,
}

impl OpenAiClient {
    pub fn new(o: OpenAiOptions<'_>) -> anyhow::Result<Self> {
        crate::tls::install_provider();
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = o.api_key {
            let mut v = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                anyhow::anyhow!("the API key contains characters not allowed in an HTTP header")
            })?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        for (k, v) in o.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| anyhow::anyhow!("header name `{k}` is not valid in HTTP"))?;
            let mut value = HeaderValue::from_str(v)
                .map_err(|_| anyhow::anyhow!("the value of header `{k}` is not valid in HTTP"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .pool_max_idle_per_host(o.pool_size.max(1))
            .tcp_nodelay(true)
            .no_proxy()
            .build()?;
        let base = o.base_url.trim_end_matches('/');
        let path = match o.api {
            ApiKind::Chat => "chat/completions",
            ApiKind::Completions => "completions",
        };
        Ok(OpenAiClient {
            http,
            url: format!("{base}/{path}"),
            api: o.api,
            stream: o.stream,
            model: o.model.to_string(),
            sampling: o.sampling,
        })
    }

    fn body(&self, item: &WorkItem) -> Vec<u8> {
        let mut b = match self.api {
            ApiKind::Chat => {
                json!({"model": self.model, "messages": [{"role": "user", "content": &*item.prompt}]})
            }
            ApiKind::Completions => json!({"model": self.model, "prompt": &*item.prompt}),
        };
        b["max_tokens"] = json!(item.max_tokens);
        b["temperature"] = json!(self.sampling.temperature);
        if let Some(p) = self.sampling.top_p {
            b["top_p"] = json!(p);
        }
        if self.sampling.ignore_eos {
            b["ignore_eos"] = json!(true);
        }
        if self.stream {
            b["stream"] = json!(true);
            b["stream_options"] = json!({"include_usage": true});
        }
        serde_json::to_vec(&b).expect("json")
    }

    pub async fn send(&self, item: &WorkItem, clock: &Clock, rec: &mut RequestRecord) {
        rec.prompt_tokens_client = Some(item.prompt_tokens_client);
        let body = self.body(item);
        rec.sent_ns = clock.now_ns();
        let resp = match self.http.post(&self.url).body(body).send().await {
            Ok(r) => r,
            Err(e) => {
                rec.end_ns = clock.now_ns();
                rec.fail(transport_class(&e), error_chain(&e));
                return;
            }
        };
        rec.first_byte_ns = Some(clock.now_ns());
        let status = resp.status().as_u16();
        rec.http_status = Some(status);
        if !resp.status().is_success() {
            let text = resp.text().await.unwrap_or_default();
            rec.end_ns = clock.now_ns();
            rec.fail(
                http_error_class(status),
                format!("HTTP {status}: {}", error_message(&text)),
            );
            return;
        }
        if self.stream {
            self.read_stream(resp, clock, rec).await;
        } else {
            self.read_full(resp, clock, rec).await;
        }
    }

    async fn read_stream(&self, resp: reqwest::Response, clock: &Clock, rec: &mut RequestRecord) {
        let mut parser = SseParser::new();
        let mut st = StreamState::default();
        let mut body = resp.bytes_stream();
        let mut last = clock.now_ns();
        while let Some(chunk) = body.next().await {
            // Stamp first, then parse.
            let t = clock.now_ns();
            match chunk {
                Ok(bytes) => {
                    last = t;
                    parser.push(&bytes, |ev| st.on_event(ev, t, rec));
                }
                Err(e) => {
                    rec.end_ns = t;
                    rec.fail("transport", format!("stream broke: {}", error_chain(&e)));
                    break;
                }
            }
            if st.done {
                break;
            }
        }
        parser.finish(|ev| st.on_event(ev, last, rec));
        if rec.error_class.is_none() {
            rec.end_ns = last;
        }
        rec.output_text = std::mem::take(&mut st.text);
        finish_stream(rec, st.done);
    }

    async fn read_full(&self, resp: reqwest::Response, clock: &Clock, rec: &mut RequestRecord) {
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                rec.end_ns = clock.now_ns();
                rec.fail("transport", error_chain(&e));
                return;
            }
        };
        let t = clock.now_ns();
        rec.end_ns = t;
        let v: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                rec.fail("malformed_response", format!("response is not JSON: {e}"));
                return;
            }
        };
        if v.get("error").is_some_and(|e| !e.is_null()) {
            rec.fail("response_error", error_message(&v.to_string()));
            return;
        }
        let choice = &v["choices"][0];
        let text = choice["message"]["content"]
            .as_str()
            .or(choice["text"].as_str())
            .unwrap_or("");
        rec.first_token_ns = Some(t);
        rec.token_chunk_ns.push(t);
        rec.output_text = text.to_string();
        rec.finish_reason = choice["finish_reason"].as_str().map(str::to_string);
        rec.prompt_tokens_usage = v["usage"]["prompt_tokens"].as_u64();
        rec.output_tokens_usage = v["usage"]["completion_tokens"].as_u64();
        rec.ok = true;
    }
}

/// Decides whether a stream that ended without an error is complete: it must
/// carry a finish_reason; `[DONE]` alone means the server cut it short
/// (llama-cpp-python does this when a new request interrupts a running one).
/// A missing `[DONE]` after a finish_reason is fine.
fn finish_stream(rec: &mut RequestRecord, done: bool) {
    if rec.error_class.is_some() {
        return;
    }
    match (rec.finish_reason.is_some(), done) {
        (true, _) => rec.ok = true,
        (false, true) => rec.fail(
            "incomplete_stream",
            "the stream ended with [DONE] but no finish_reason: the server cut it short",
        ),
        (false, false) => rec.fail(
            "incomplete_stream",
            "the stream ended without a finish_reason or [DONE]",
        ),
    }
}

#[derive(Default)]
struct StreamState {
    text: String,
    done: bool,
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    choices: Vec<Choice<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

impl StreamState {
    fn on_event(&mut self, ev: SseEvent, t: i64, rec: &mut RequestRecord) {
        if self.done || rec.error_class.is_some() {
            return;
        }
        rec.events += 1;
        let data = ev.data.trim();
        if data == "[DONE]" {
            self.done = true;
            return;
        }
        if data.is_empty() {
            return;
        }
        let chunk: Chunk = match serde_json::from_str(data) {
            Ok(c) => c,
            Err(e) => {
                rec.end_ns = t;
                rec.fail(
                    "malformed_stream",
                    format!("event is not a JSON chunk ({e}): {}", truncate(data, 200)),
                );
                return;
            }
        };
        if let Some(err) = chunk.error.filter(|e| !e.is_null()) {
            rec.end_ns = t;
            rec.fail(
                "stream_error",
                error_message(&json!({ "error": err }).to_string()),
            );
            return;
        }
        if ev.event.as_deref() == Some("error") {
            rec.end_ns = t;
            rec.fail("stream_error", truncate(data, 500));
            return;
        }
        let mut content = false;
        for c in &chunk.choices {
            let piece = c
                .delta
                .as_ref()
                .and_then(|d| {
                    [&d.content, &d.reasoning_content, &d.reasoning]
                        .into_iter()
                        .flatten()
                        .find(|s| !s.is_empty())
                })
                .or(c.text.as_ref().filter(|s| !s.is_empty()));
            if let Some(p) = piece {
                self.text.push_str(p);
                content = true;
            }
            if let Some(f) = &c.finish_reason {
                rec.finish_reason = Some(f.clone());
            }
        }
        if content {
            rec.first_token_ns.get_or_insert(t);
            rec.token_chunk_ns.push(t);
        }
        if let Some(u) = chunk.usage {
            rec.prompt_tokens_usage = u.prompt_tokens.or(rec.prompt_tokens_usage);
            rec.output_tokens_usage = u.completion_tokens.or(rec.output_tokens_usage);
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// The `error.message` of an OpenAI-style error body, else the body itself.
fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v["error"]["message"]
                .as_str()
                .or(v["error"].as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| truncate(body, 300))
}

fn transport_class(e: &reqwest::Error) -> &'static str {
    if e.is_connect() {
        "connect"
    } else if e.is_timeout() {
        "timeout"
    } else {
        "transport"
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(events: &[&str]) -> (RequestRecord, StreamState) {
        let mut rec = RequestRecord::default();
        let mut st = StreamState::default();
        for (i, d) in events.iter().enumerate() {
            st.on_event(
                SseEvent {
                    event: None,
                    data: d.to_string(),
                },
                i as i64 * 10,
                &mut rec,
            );
        }
        (rec, st)
    }

    #[test]
    fn role_chunk_is_not_the_first_token() {
        let (rec, st) = run(&[
            r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"delta":{"content":"Hi"}}]}"#,
            r#"{"choices":[{"delta":{"content":" there"},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#,
            "[DONE]",
        ]);
        assert_eq!(rec.first_token_ns, Some(10));
        assert_eq!(rec.token_chunk_ns, vec![10, 20]);
        assert_eq!(
            (rec.prompt_tokens_usage, rec.output_tokens_usage),
            (Some(5), Some(2))
        );
        assert_eq!(rec.finish_reason.as_deref(), Some("stop"));
        assert!(st.done);
        assert_eq!(st.text, "Hi there");
    }

    #[test]
    fn error_object_in_stream() {
        let (rec, _) = run(&[
            r#"{"choices":[{"delta":{"content":"a"}}]}"#,
            r#"{"error":{"message":"overloaded","type":"server_error"}}"#,
            "[DONE]",
        ]);
        assert_eq!(rec.error_class.as_deref(), Some("stream_error"));
        assert_eq!(rec.error_message.as_deref(), Some("overloaded"));
    }

    #[test]
    fn a_stream_needs_a_finish_reason() {
        // Cut short: content, then [DONE] with no finish_reason.
        let (mut rec, st) = run(&[r#"{"choices":[{"delta":{"content":"a"}}]}"#, "[DONE]"]);
        finish_stream(&mut rec, st.done);
        assert!(!rec.ok);
        assert_eq!(rec.error_class.as_deref(), Some("incomplete_stream"));
        // finish_reason without [DONE]: complete.
        let (mut rec, st) =
            run(&[r#"{"choices":[{"delta":{"content":"a"},"finish_reason":"stop"}]}"#]);
        finish_stream(&mut rec, st.done);
        assert!(rec.ok);
        // Neither.
        let (mut rec, st) = run(&[r#"{"choices":[{"delta":{"content":"a"}}]}"#]);
        finish_stream(&mut rec, st.done);
        assert!(!rec.ok);
    }

    #[test]
    fn malformed_json_is_classified() {
        let (rec, _) = run(&["{not json"]);
        assert_eq!(rec.error_class.as_deref(), Some("malformed_stream"));
    }

    #[test]
    fn completions_text_and_reasoning_count_as_content() {
        let (rec, _) = run(&[
            r#"{"choices":[{"text":"x","finish_reason":null}]}"#,
            r#"{"choices":[{"delta":{"reasoning_content":"think"}}]}"#,
        ]);
        assert_eq!(rec.token_chunk_ns.len(), 2);
    }
}
