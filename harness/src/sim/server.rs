//! The simulator's OpenAI-compatible HTTP face: `/v1/chat/completions`,
//! `/v1/completions` (streaming and not, with `stream_options.include_usage`),
//! `/v1/models`, `/health` and `/metrics` (Prometheus, under vLLM's names).
//! Responses are marked with the header
//! `x-simulated: true`.

use super::engine::{Engine, Plan, Rejection};
use crate::config::SimErrorKind;
use crate::tokens::count_tokens;
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

type Body = BoxBody<Bytes, Infallible>;

/// A running simulator; stops when dropped.
pub struct SimServer {
    pub addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl SimServer {
    /// Binds `addr` (use port 0 for any free port) and serves until dropped.
    pub async fn start(addr: SocketAddr, engine: Arc<Engine>) -> std::io::Result<SimServer> {
        SimServer::start_with_key(addr, engine, None).await
    }

    /// As [`start`](SimServer::start); with `api_key`, every `/v1` route but
    /// `/v1/health` answers 401 unless the request carries
    /// `Authorization: Bearer <api_key>`, as vLLM does with `--api-key`.
    pub async fn start_with_key(
        addr: SocketAddr,
        engine: Arc<Engine>,
        api_key: Option<String>,
    ) -> std::io::Result<SimServer> {
        let key: Arc<Option<String>> = Arc::new(api_key);
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (engine, key) = (engine.clone(), key.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let (engine, key) = (engine.clone(), key.clone());
                        async move {
                            match key.as_deref() {
                                Some(k) if !authorized(&req, k) => Ok(error(
                                    StatusCode::UNAUTHORIZED,
                                    "authentication_error",
                                    "missing or wrong API key (Authorization: Bearer …)",
                                )),
                                _ => handle(engine, req).await,
                            }
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(SimServer { addr, accept })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

/// Whether `req` may pass a simulator that requires `key`: `/health`,
/// `/v1/health` and the AWS faces (signed by the SDK instead) always may,
/// anything else needs `Authorization: Bearer key`.
fn authorized(req: &Request<Incoming>, key: &str) -> bool {
    matches!(req.uri().path(), "/health" | "/v1/health" | "/metrics")
        || super::aws::Route::of(req.uri().path()).is_some()
        || req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|v| v == key)
}

fn full(status: StatusCode, content_type: &str, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-simulated", "true")
        .body(Full::new(Bytes::from(body)).boxed())
        .expect("valid response")
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response<Body> {
    let body = json!({"error": {"message": message, "type": kind, "code": status.as_u16()}});
    full(status, "application/json", body.to_string())
}

#[derive(Clone, Copy, PartialEq)]
enum Api {
    Chat,
    Completions,
}

async fn handle(engine: Arc<Engine>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    // SageMaker's and Bedrock's runtime APIs (`super::aws`).
    if req.method() == Method::POST {
        if let Some(route) = super::aws::Route::of(req.uri().path()) {
            let body = req.into_body().collect().await.map(|b| b.to_bytes());
            return Ok(super::aws::handle(engine, route, &body.unwrap_or_default()).await);
        }
    }
    let api = match (req.method(), req.uri().path()) {
        (&Method::GET, "/health") | (&Method::GET, "/v1/health") => {
            return Ok(full(
                StatusCode::OK,
                "application/json",
                r#"{"status":"ok"}"#.into(),
            ))
        }
        (&Method::GET, "/metrics") => {
            return Ok(full(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                engine.metrics_text(),
            ))
        }
        (&Method::GET, "/v1/models") => {
            let body = json!({"object": "list", "data": [{"id": engine.profile.name, "object": "model", "owned_by": "harness-sim"}]});
            return Ok(full(StatusCode::OK, "application/json", body.to_string()));
        }
        (&Method::POST, "/v1/chat/completions") => Api::Chat,
        (&Method::POST, "/v1/completions") => Api::Completions,
        (_, path) => {
            return Ok(error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("no route {path}"),
            ))
        }
    };
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &e.to_string(),
            ))
        }
    };
    let truth = engine.truth().map(|t| t.record(t.now_ns()));
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("body is not JSON: {e}"),
            ))
        }
    };
    let prompt_tokens = match api {
        Api::Chat => match v["messages"].as_array() {
            Some(msgs) => msgs.iter().map(|m| content_tokens(&m["content"])).sum(),
            None => {
                return Ok(error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "`messages` is required",
                ))
            }
        },
        Api::Completions => match &v["prompt"] {
            Value::String(s) => count_tokens(s),
            Value::Array(a) => a
                .first()
                .and_then(|p| p.as_str())
                .map(count_tokens)
                .unwrap_or(0),
            _ => {
                return Ok(error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "`prompt` is required",
                ))
            }
        },
    };
    let max_tokens = v["max_tokens"]
        .as_u64()
        .or(v["max_completion_tokens"].as_u64())
        .unwrap_or(256);
    let stream = v["stream"].as_bool().unwrap_or(false);
    let include_usage = v["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let ignore_eos = v["ignore_eos"].as_bool().unwrap_or(false);
    let model = v["model"].as_str().unwrap_or("sim").to_string();

    let mut plan = engine.plan(prompt_tokens, max_tokens, ignore_eos);
    if engine.caches_prefixes() {
        plan.prefix_blocks = prefix_blocks(api, &v);
    }
    match plan.fail {
        Some(SimErrorKind::Http500) => {
            return Ok(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "simulated server error",
            ))
        }
        Some(SimErrorKind::Http429) => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "simulated throttling",
            );
            r.headers_mut()
                .insert("retry-after", "1".parse().expect("header"));
            return Ok(r);
        }
        _ => {}
    }
    // `length` when the request ran to max_tokens, `stop` when the model
    // "ended" earlier (without ignore_eos, lengths are drawn below the cap).
    let finish = if plan.output_tokens >= max_tokens {
        "length"
    } else {
        "stop"
    };
    let g = Gen {
        api,
        model,
        plan,
        include_usage,
        finish,
    };
    if stream {
        let (tx, rx) = mpsc::channel::<(Bytes, bool)>(64);
        tokio::spawn(generate_stream(engine, g, tx));
        // Each chunk is stamped for the truth log as it is handed to the
        // connection; the log's line is written when the stream ends.
        let body = StreamBody::new(futures_util::stream::unfold(
            (rx, truth),
            |(mut rx, mut truth)| async move {
                let (b, content) = rx.recv().await?;
                if let (true, Some(t)) = (content, truth.as_mut()) {
                    t.chunk();
                }
                Some((Ok::<_, Infallible>(Frame::data(b)), (rx, truth)))
            },
        ));
        Ok(Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "text/event-stream")
            .header("cache-control", "no-cache")
            .header("x-simulated", "true")
            .body(BodyExt::boxed(body))
            .expect("valid response"))
    } else {
        let response = generate_full(engine, g).await;
        drop(truth);
        Ok(response)
    }
}

/// The prompt's prefix-cache blocks: over the words of every message's
/// content in order (chat), or of the prompt (completions).
fn prefix_blocks(api: Api, v: &Value) -> Vec<u64> {
    let texts: Vec<&str> = match api {
        Api::Chat => v["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|m| match &m["content"] {
                Value::String(s) => vec![s.as_str()],
                Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
                _ => vec![],
            })
            .collect(),
        Api::Completions => match &v["prompt"] {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.first().and_then(|p| p.as_str()).into_iter().collect(),
            _ => vec![],
        },
    };
    super::engine::prefix_blocks(texts.into_iter().flat_map(str::split_whitespace))
}

fn content_tokens(c: &Value) -> u64 {
    match c {
        Value::String(s) => count_tokens(s),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .map(count_tokens)
            .sum(),
        _ => 0,
    }
}

struct Gen {
    api: Api,
    model: String,
    plan: Plan,
    include_usage: bool,
    finish: &'static str,
}

impl Gen {
    fn chunk(&self, text: Option<&str>, finish: Option<&str>, role: bool) -> Bytes {
        let finish = finish
            .map(|f| format!("\"{f}\""))
            .unwrap_or_else(|| "null".into());
        let model = serde_json::to_string(&self.model).expect("string");
        let s = match self.api {
            Api::Chat => {
                let delta = match (role, text) {
                    (true, _) => r#"{"role":"assistant","content":""}"#.to_string(),
                    (false, Some(t)) => format!(
                        r#"{{"content":{}}}"#,
                        serde_json::to_string(t).expect("string")
                    ),
                    (false, None) => "{}".to_string(),
                };
                format!(
                    r#"data: {{"id":"chatcmpl-sim","object":"chat.completion.chunk","model":{model},"choices":[{{"index":0,"delta":{delta},"finish_reason":{finish}}}]}}"#
                )
            }
            Api::Completions => {
                let t = serde_json::to_string(text.unwrap_or("")).expect("string");
                format!(
                    r#"data: {{"id":"cmpl-sim","object":"text_completion","model":{model},"choices":[{{"index":0,"text":{t},"finish_reason":{finish}}}]}}"#
                )
            }
        };
        Bytes::from(s + "\n\n")
    }

    fn usage(&self) -> Value {
        let p = &self.plan;
        json!({"prompt_tokens": p.prompt_tokens, "completion_tokens": p.output_tokens, "total_tokens": p.prompt_tokens + p.output_tokens})
    }
}

/// Streams `g` through `tx`: each SSE event, flagged when it carries
/// generated content (what the truth log stamps).
async fn generate_stream(engine: Arc<Engine>, g: Gen, tx: mpsc::Sender<(Bytes, bool)>) {
    let mut seq = match engine.admit(&g.plan).await {
        Ok(s) => s,
        Err(Rejection::TooLong { needed, capacity }) => {
            let e = json!({"error": {"message": format!("prompt + max_tokens = {needed} exceeds the KV cache ({capacity} tokens)"), "type": "context_length_exceeded"}});
            let _ = tx
                .send((Bytes::from(format!("data: {e}\n\n")), false))
                .await;
            return;
        }
    };
    if g.api == Api::Chat && tx.send((g.chunk(None, None, true), false)).await.is_err() {
        return;
    }
    let n = g.plan.output_tokens;
    let fail_at = (g.plan.fail == Some(SimErrorKind::MidStream)).then_some(n / 2);
    for i in 0..n {
        if fail_at == Some(i) {
            let e = json!({"error": {"message": "simulated failure mid-stream", "type": "server_error"}});
            let _ = tx
                .send((Bytes::from(format!("data: {e}\n\n")), false))
                .await;
            return;
        }
        let word = if i == 0 {
            seq.prefill().await
        } else {
            seq.decode().await
        };
        let text = if i == 0 {
            word.to_string()
        } else {
            format!(" {word}")
        };
        if tx
            .send((g.chunk(Some(&text), None, false), true))
            .await
            .is_err()
        {
            return; // client went away: free the sequence
        }
    }
    drop(seq);
    let mut tail = g.chunk(None, Some(g.finish), false).to_vec();
    if g.include_usage {
        let obj = if g.api == Api::Chat {
            "chat.completion.chunk"
        } else {
            "text_completion"
        };
        let u = json!({"id": "sim", "object": obj, "model": g.model, "choices": [], "usage": g.usage()});
        tail.extend_from_slice(format!("data: {u}\n\n").as_bytes());
    }
    tail.extend_from_slice(b"data: [DONE]\n\n");
    let _ = tx.send((Bytes::from(tail), false)).await;
}

async fn generate_full(engine: Arc<Engine>, g: Gen) -> Response<Body> {
    let mut seq = match engine.admit(&g.plan).await {
        Ok(s) => s,
        Err(Rejection::TooLong { needed, capacity }) => {
            return error(
                StatusCode::BAD_REQUEST,
                "context_length_exceeded",
                &format!("prompt + max_tokens = {needed} exceeds the KV cache ({capacity} tokens)"),
            )
        }
    };
    let text = seq.text(g.plan.output_tokens).await;
    drop(seq);
    if g.plan.fail == Some(SimErrorKind::MidStream) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "simulated server error",
        );
    }
    let body = match g.api {
        Api::Chat => json!({"id": "chatcmpl-sim", "object": "chat.completion", "model": g.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": g.finish}],
            "usage": g.usage()}),
        Api::Completions => json!({"id": "cmpl-sim", "object": "text_completion", "model": g.model,
            "choices": [{"index": 0, "text": text, "finish_reason": g.finish}], "usage": g.usage()}),
    };
    full(StatusCode::OK, "application/json", body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_simulator_with_a_key_refuses_requests_without_it() {
        let engine = Engine::new(
            crate::cmd::sim::profile_for("g5.xlarge:8b", Some(1.0), Some(1.0)).unwrap(),
            Default::default(),
        );
        let s =
            SimServer::start_with_key("127.0.0.1:0".parse().unwrap(), engine, Some("k3y".into()))
                .await
                .unwrap();
        crate::tls::install_provider();
        let http = reqwest::Client::new();
        let models = format!("{}/models", s.base_url());
        let status = |r: reqwest::Response| r.status().as_u16();
        assert_eq!(status(http.get(&models).send().await.unwrap()), 401);
        assert_eq!(
            status(http.get(&models).bearer_auth("wrong").send().await.unwrap()),
            401
        );
        assert_eq!(
            status(http.get(&models).bearer_auth("k3y").send().await.unwrap()),
            200
        );
        let health = format!("http://{}/health", s.addr);
        assert_eq!(status(http.get(&health).send().await.unwrap()), 200);
    }
}
