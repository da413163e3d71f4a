//! OpenAI-compatible client: `/v1/chat/completions` and `/v1/completions`,
//! streaming (SSE, with `stream_options.include_usage`) or not.
//!
//! Each body chunk is stamped the moment the HTTP stack hands over bytes read
//! from the socket, before any parsing; every SSE event completed by that read
//! carries its stamp.

use super::sse::{SseEvent, SseParser};
use super::{judge, WorkItem};
use crate::clock::Clock;
use crate::config::{ApiKind, Sampling};
use crate::record::RequestRecord;
use futures_util::StreamExt;
use harness_core::outcome::ErrorClass;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::borrow::Cow;

/// Everything that shapes a request body but the prompt and `max_tokens`.
///
/// The body holds only OpenAI fields (`model`, `messages` or `prompt`,
/// `max_tokens`, `temperature`, `top_p`, `stream`, `stream_options`), plus
/// `ignore_eos` only when `sampling.ignore_eos` is true, plus the endpoint's
/// `extra_body`. Each field knows the config key that sent it, so that a
/// server's rejection of a field points at the key to change.
#[derive(Debug, Clone)]
pub struct RequestShape {
    pub api: ApiKind,
    pub stream: bool,
    pub model: String,
    pub sampling: Sampling,
    pub extra_body: Map<String, Value>,
    /// The endpoint's place in the config, e.g. `endpoints[2]`.
    pub config_path: String,
}

impl RequestShape {
    /// The request path under the base URL.
    pub fn path(&self) -> &'static str {
        match self.api {
            ApiKind::Chat => "chat/completions",
            ApiKind::Completions => "completions",
        }
    }

    /// The JSON body of one request.
    pub fn body(&self, prompt: &str, max_tokens: u32) -> Value {
        let mut b = match self.api {
            ApiKind::Chat => {
                json!({"model": self.model, "messages": [{"role": "user", "content": prompt}]})
            }
            ApiKind::Completions => json!({"model": self.model, "prompt": prompt}),
        };
        b["max_tokens"] = json!(max_tokens);
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
        for (k, v) in &self.extra_body {
            b[k.as_str()] = v.clone();
        }
        b
    }

    /// The config key that made the harness send `field`, for the fields a
    /// server may reject (`model`, `messages`, `prompt` and `stream` are not
    /// listed: every OpenAI server takes them).
    pub fn config_key(&self, field: &str) -> Option<String> {
        if self.extra_body.contains_key(field) {
            return Some(format!("{}.extra_body.{field}", self.config_path));
        }
        match field {
            "ignore_eos" if self.sampling.ignore_eos => Some("sampling.ignore_eos: true".into()),
            "top_p" if self.sampling.top_p.is_some() => Some("sampling.top_p".into()),
            "temperature" => Some("sampling.temperature".into()),
            "max_tokens" => Some("sampling.max_tokens (or the dataset's output_tokens)".into()),
            "stream_options" if self.stream => Some(format!(
                "{}.stream: true (streams ask for usage with stream_options.include_usage)",
                self.config_path
            )),
            _ => None,
        }
    }

    /// For an error message that names a field this body sent: which config
    /// key sent it.
    fn blame(&self, message: &str) -> Option<String> {
        let mut fields: Vec<String> = self.extra_body.keys().cloned().collect();
        fields.extend(
            [
                "ignore_eos",
                "stream_options",
                "top_p",
                "max_tokens",
                "temperature",
            ]
            .map(String::from),
        );
        fields.into_iter().find_map(|f| {
            let named = message
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|w| w == f);
            let key = self.config_key(&f).filter(|_| named)?;
            Some(format!(
                "the harness sent `{f}` because of `{key}` in the config; change or remove it if this server does not take it"
            ))
        })
    }
}

pub struct OpenAiClient {
    http: reqwest::Client,
    base_url: String,
    url: String,
    /// `url` parsed once, so that no request parses it (IDNA and all) after
    /// its send is stamped; `None` when it does not parse, and each request
    /// then fails with reqwest's error.
    target: Option<Box<reqwest::Url>>,
    shape: RequestShape,
}

pub struct OpenAiOptions<'a> {
    pub base_url: &'a str,
    pub shape: RequestShape,
    pub api_key: Option<String>,
    pub headers: &'a std::collections::BTreeMap<String, String>,
    /// Connections kept open: the concurrency of the load.
    pub pool_size: usize,
}

impl OpenAiClient {
    /// Errors name the header at fault, never its value (the config's
    /// validation catches these first, with file and line).
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
        let url = join_url(o.base_url, o.shape.path());
        Ok(OpenAiClient {
            target: reqwest::Url::parse(&url).ok().map(Box::new),
            url,
            base_url: o.base_url.to_string(),
            http,
            shape: o.shape,
        })
    }

    pub fn shape(&self) -> &RequestShape {
        &self.shape
    }

    /// The request URL (with credentials: mask before showing it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The model ids the server lists at `GET {base_url}/models`.
    pub async fn list_models(&self) -> anyhow::Result<Vec<String>> {
        let r = self
            .http
            .get(join_url(&self.base_url, "models"))
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await?;
        if !r.status().is_success() {
            anyhow::bail!("HTTP {}", r.status().as_u16());
        }
        let v: Value = serde_json::from_slice(&r.bytes().await?)?;
        Ok(v["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    pub async fn send(&self, item: &WorkItem, clock: &Clock, rec: &mut RequestRecord) {
        rec.prompt_tokens_client = Some(item.prompt_tokens_client);
        let body =
            serde_json::to_vec(&self.shape.body(&item.prompt, item.max_tokens)).expect("json");
        // The request is built first: its send is stamped as it starts.
        let post = match &self.target {
            Some(u) => self.http.post(reqwest::Url::clone(u)),
            None => self.http.post(&self.url),
        }
        .body(body);
        rec.sent_ns = clock.now_ns();
        let resp = match post.send().await {
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
            let message = error_message(&text);
            let hint = matches!(status, 400 | 422)
                .then(|| self.shape.blame(&message))
                .flatten()
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            rec.fail(
                ErrorClass::for_status(status),
                format!("HTTP {status}: {message}{hint}"),
            );
            return;
        }
        // A stream is read as one when the server says it is one (or says
        // nothing, or `text/plain`, as some proxies do); a JSON or HTML body
        // to a streaming request is read whole, to be classed.
        let ct = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let stream_body =
            ct.is_empty() || ct.contains("event-stream") || ct.starts_with("text/plain");
        if self.shape.stream && stream_body {
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
                    rec.fail(
                        ErrorClass::Transport,
                        format!("stream broke: {}", error_chain(&e)),
                    );
                    break;
                }
            }
            if st.done {
                drain(&mut body).await;
                settle().await;
                break;
            }
        }
        parser.finish(|ev| st.on_event(ev, last, rec));
        if rec.error_class.is_none() {
            rec.end_ns = last;
        }
        rec.output_text = std::mem::take(&mut st.text);
        judge(rec, rec.first_token_ns.is_some(), Some(st.done));
    }

    /// A response read in one piece: e2e, tokens and outcome only. It has no
    /// first token or chunk gaps to time, so `first_token_ns` stays `None`
    /// and TTFT, ITL and TPOT get no sample from it.
    async fn read_full(&self, resp: reqwest::Response, clock: &Clock, rec: &mut RequestRecord) {
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                rec.end_ns = clock.now_ns();
                rec.fail(ErrorClass::Transport, error_chain(&e));
                return;
            }
        };
        rec.end_ns = clock.now_ns();
        let v: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                let body = String::from_utf8_lossy(&bytes);
                let message = if !self.shape.stream && body.trim_start().starts_with("data:") {
                    "the body is an event stream, though `stream: false` was asked for: the server streams regardless; set `stream: true` for this endpoint".to_string()
                } else {
                    format!("the body is not JSON ({e}): {}", truncate(&body, 120))
                };
                rec.fail(ErrorClass::MalformedResponse, message);
                return;
            }
        };
        if v.get("error").is_some_and(|e| !e.is_null()) {
            rec.fail(ErrorClass::ResponseError, error_message(&v.to_string()));
            return;
        }
        if self.shape.stream {
            rec.fail(
                ErrorClass::NotStreamed,
                "`stream: true` was asked for, but the server answered with one JSON body: set `stream: false` for this endpoint if it cannot stream",
            );
            return;
        }
        let Some(choice) = v["choices"].as_array().and_then(|c| c.first()) else {
            rec.fail(
                ErrorClass::EmptyResponse,
                format!(
                    "the response has no choices: {}",
                    truncate(&v.to_string(), 200)
                ),
            );
            return;
        };
        let message = &choice["message"];
        let text = [
            &message["content"],
            &message["reasoning_content"],
            &message["reasoning"],
            &choice["text"],
        ]
        .into_iter()
        .filter_map(|x| x.as_str())
        .find(|s| !s.is_empty());
        let tool_args: String = message["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["function"]["arguments"].as_str())
            .collect();
        let tool_call = message["tool_calls"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        rec.output_text = text.map(str::to_string).unwrap_or(tool_args);
        rec.finish_reason = choice["finish_reason"].as_str().map(str::to_string);
        rec.prompt_tokens_usage = v["usage"]["prompt_tokens"].as_u64();
        rec.output_tokens_usage = v["usage"]["completion_tokens"].as_u64();
        judge(rec, text.is_some() || tool_call, None);
    }
}

/// `base` + `/path`, keeping a query string where it belongs:
/// `https://h/openai/v1?api-version=1` + `chat/completions` →
/// `https://h/openai/v1/chat/completions?api-version=1`.
pub fn join_url(base: &str, path: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (base, None),
    };
    let mut u = format!("{}/{path}", head.trim_end_matches('/'));
    if let Some(q) = query {
        u.push('?');
        u.push_str(q);
    }
    u
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
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolCallDelta<'a>>>,
}

/// A piece of a streamed tool call: generated content too.
#[derive(Deserialize)]
struct ToolCallDelta<'a> {
    #[serde(borrow, default)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct FunctionDelta<'a> {
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
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
                    ErrorClass::MalformedStream,
                    format!("event is not a JSON chunk ({e}): {}", truncate(data, 200)),
                );
                return;
            }
        };
        if let Some(err) = chunk.error.filter(|e| !e.is_null()) {
            rec.end_ns = t;
            rec.fail(
                ErrorClass::StreamError,
                error_message(&json!({ "error": err }).to_string()),
            );
            return;
        }
        if ev.event.as_deref() == Some("error") {
            rec.end_ns = t;
            rec.fail(ErrorClass::StreamError, truncate(data, 500));
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
            for call in c.delta.iter().flat_map(|d| d.tool_calls.iter().flatten()) {
                content = true;
                if let Some(a) = call.function.as_ref().and_then(|f| f.arguments.as_ref()) {
                    self.text.push_str(a);
                }
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

fn transport_class(e: &reqwest::Error) -> ErrorClass {
    if e.is_connect() {
        ErrorClass::Connect
    } else if e.is_timeout() {
        ErrorClass::Timeout
    } else {
        ErrorClass::Transport
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

/// Reads what follows `[DONE]`, the chunked body's terminator, so that the
/// connection goes back to the pool, as the OpenAI SDK does. Dropped
/// mid-body, hyper closes the connection, and the next request pays a new
/// TCP (and TLS) handshake inside its TTFT. Servers under uvicorn (vLLM)
/// write the terminator after `[DONE]`, in its own send. The terminator is
/// read without a timer when it has already arrived; otherwise it is waited
/// for at most [`DRAIN_AFTER_DONE`]. The record is already stamped, so the
/// wait moves no timing; it delays only a closed loop's next request, as it
/// would the SDK's. Bytes after `[DONE]` are discarded: the event stream has
/// ended. Test: `faults::connection_is_reused_when_the_body_ends_after_done`.
async fn drain<S>(body: &mut S)
where
    S: futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin,
{
    use futures_util::FutureExt;
    loop {
        match body.next().now_or_never() {
            Some(Some(Ok(_))) => continue,
            Some(None | Some(Err(_))) => return,
            None => break,
        }
    }
    let _ = tokio::time::timeout(DRAIN_AFTER_DONE, async {
        while let Some(Ok(_)) = body.next().await {}
    })
    .await;
}

/// Lets the connection's tasks put it back in the pool before this request
/// completes and the next one checks a connection out: otherwise hyper's
/// pool starts a new connection while it waits for the idle one, and the
/// new one often wins. Measured with the kernel's count of TCP opens, at
/// concurrency 1 against `harness sim` (300 requests, zero model time):
/// 30-111 connections without the drain and this, 2 with them (3 runs each).
/// Four yields cost no measurable CPU per request (bench/run.sh section 1).
async fn settle() {
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
}

/// How long a server may hold a stream open after `[DONE]` before the
/// request lets its connection go (closed, not reused).
const DRAIN_AFTER_DONE: std::time::Duration = std::time::Duration::from_secs(1);

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

    fn judged(events: &[&str]) -> RequestRecord {
        let (mut rec, st) = run(events);
        let content = rec.first_token_ns.is_some();
        judge(&mut rec, content, Some(st.done));
        rec
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
        assert_eq!(rec.error_class, Some(ErrorClass::StreamError));
        assert_eq!(rec.error_message.as_deref(), Some("overloaded"));
    }

    #[test]
    fn a_stream_needs_a_finish_reason() {
        // Cut short: content, then [DONE] with no finish_reason.
        let rec = judged(&[r#"{"choices":[{"delta":{"content":"a"}}]}"#, "[DONE]"]);
        assert!(!rec.ok);
        assert_eq!(rec.error_class, Some(ErrorClass::IncompleteStream));
        // finish_reason without [DONE]: complete.
        let rec = judged(&[r#"{"choices":[{"delta":{"content":"a"},"finish_reason":"stop"}]}"#]);
        assert!(rec.ok);
        // Neither.
        let rec = judged(&[r#"{"choices":[{"delta":{"content":"a"}}]}"#]);
        assert!(!rec.ok);
    }

    #[test]
    fn stream_without_content_is_not_a_success() {
        let rec = judged(&[
            r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
            "[DONE]",
        ]);
        assert_eq!(rec.error_class, Some(ErrorClass::EmptyResponse));
    }

    #[test]
    fn aborted_stream_is_not_a_success() {
        let rec = judged(&[
            r#"{"choices":[{"delta":{"content":"a"}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"abort"}]}"#,
            "[DONE]",
        ]);
        assert_eq!(rec.error_class, Some(ErrorClass::AbnormalFinish));
        assert!(rec.error_message.unwrap().contains("`abort`"));
    }

    #[test]
    fn streamed_tool_calls_are_content() {
        let rec = judged(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"x\":1}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
            "[DONE]",
        ]);
        assert!(rec.ok, "{:?}", rec.error_message);
        assert_eq!(rec.token_chunk_ns.len(), 2);
    }

    #[test]
    fn paths_go_before_the_query() {
        assert_eq!(
            join_url("https://h/v1?api-version=1", "chat/completions"),
            "https://h/v1/chat/completions?api-version=1"
        );
        assert_eq!(join_url("http://h/v1/", "models"), "http://h/v1/models");
    }

    #[test]
    fn malformed_json_is_classified() {
        let (rec, _) = run(&["{not json"]);
        assert_eq!(rec.error_class, Some(ErrorClass::MalformedStream));
    }

    #[test]
    fn completions_text_and_reasoning_count_as_content() {
        let (rec, _) = run(&[
            r#"{"choices":[{"text":"x","finish_reason":null}]}"#,
            r#"{"choices":[{"delta":{"reasoning_content":"think"}}]}"#,
        ]);
        assert_eq!(rec.token_chunk_ns.len(), 2);
    }

    fn shape() -> RequestShape {
        RequestShape {
            api: ApiKind::Chat,
            stream: true,
            model: "m".into(),
            sampling: Sampling {
                max_tokens: None,
                temperature: 0.0,
                top_p: None,
                ignore_eos: false,
            },
            extra_body: Map::new(),
            config_path: "endpoints[0]".into(),
        }
    }

    #[test]
    fn default_body_has_only_openai_fields() {
        let b = shape().body("hi", 8);
        let keys: Vec<&str> = b.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "max_tokens",
                "messages",
                "model",
                "stream",
                "stream_options",
                "temperature"
            ]
        );
        let mut s = shape();
        s.sampling.ignore_eos = true;
        s.extra_body.insert("top_k".into(), json!(20));
        let b = s.body("hi", 8);
        assert_eq!(
            (b["ignore_eos"].clone(), b["top_k"].clone()),
            (json!(true), json!(20))
        );
    }

    #[test]
    fn rejected_field_points_to_config_key() {
        let mut s = shape();
        s.sampling.ignore_eos = true;
        s.extra_body.insert("top_k".into(), json!(20));
        let h = s
            .blame("Unrecognized request argument supplied: ignore_eos")
            .unwrap();
        assert!(h.contains("`sampling.ignore_eos: true`"), "{h}");
        let h = s.blame("extra fields not permitted: top_k").unwrap();
        assert!(h.contains("`endpoints[0].extra_body.top_k`"), "{h}");
        assert_eq!(s.blame("model `m` not found"), None);
    }
}
