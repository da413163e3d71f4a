//! The simulator's AWS faces, so that the harness's real SDK clients
//! (`aws-sdk-sagemakerruntime`, `aws-sdk-bedrockruntime`) can be tested on
//! loopback with an endpoint-URL override; the SDK decodes what is sent
//! here, so it judges the fidelity of these wire formats.
//!
//! - SageMaker runtime: `POST /endpoints/{name}/invocations` and
//!   `/invocations-response-stream`. A body with `inputs` is TGI's format
//!   (`generated_text` with `details`; streamed as `data:{"token":…}`
//!   lines), one with `messages` is OpenAI's. A stream is an
//!   `application/vnd.amazon.eventstream` of `PayloadPart` events, and every
//!   line is split across two parts, as SageMaker may do.
//! - Bedrock runtime: `POST /model/{id}/converse` and `/converse-stream`
//!   (`messageStart`, one `contentBlockDelta` per token, `contentBlockStop`,
//!   `messageStop`, `metadata` with usage). `additionalModelRequestFields.
//!   ignore_eos: true` makes the output run to `maxTokens`.
//!
//! Injected failures (`sim.error_kind`): `http_429` answers 429 with the
//! service's `ThrottlingException`; `http_500` a 500; `mid_stream` cuts the
//! stream half-way through a frame and closes it. Event-stream frames are
//! encoded with `aws-smithy-eventstream`, never by hand.

use super::engine::{Engine, Plan, Rejection};
use crate::config::SimErrorKind;
use crate::tokens::count_tokens;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::mpsc;

type Body = BoxBody<Bytes, Infallible>;

/// Which AWS operation a path is, if any.
pub enum Route {
    SageMaker { stream: bool },
    Bedrock { stream: bool },
}

impl Route {
    pub fn of(path: &str) -> Option<Route> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match parts.as_slice() {
            ["endpoints", _, "invocations"] => Some(Route::SageMaker { stream: false }),
            ["endpoints", _, "invocations-response-stream"] => {
                Some(Route::SageMaker { stream: true })
            }
            ["model", _, "converse"] => Some(Route::Bedrock { stream: false }),
            ["model", _, "converse-stream"] => Some(Route::Bedrock { stream: true }),
            _ => None,
        }
    }
}

/// An AWS JSON error: the status, `x-amzn-errortype` and `{"message"}`.
fn aws_error(status: StatusCode, kind: &str, message: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-amzn-errortype", kind)
        .header("x-simulated", "true")
        .body(Full::new(Bytes::from(json!({"message": message}).to_string())).boxed())
        .expect("valid response")
}

fn json_response(v: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("x-simulated", "true")
        .body(Full::new(Bytes::from(v.to_string())).boxed())
        .expect("valid response")
}

/// One event-stream frame.
fn frame(
    message_type: &str,
    kind_header: &str,
    kind: &str,
    content_type: &str,
    payload: Vec<u8>,
) -> Bytes {
    let m = Message::new(payload)
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String(message_type.to_string().into()),
        ))
        .add_header(Header::new(
            kind_header.to_string(),
            HeaderValue::String(kind.to_string().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String(content_type.to_string().into()),
        ));
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&m, &mut out).expect("frame encodes");
    Bytes::from(out)
}

fn event(kind: &str, content_type: &str, payload: Vec<u8>) -> Bytes {
    frame("event", ":event-type", kind, content_type, payload)
}

/// Serves one AWS operation.
pub async fn handle(engine: Arc<Engine>, route: Route, body: &[u8]) -> Response<Body> {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return aws_error(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                &format!("body is not JSON: {e}"),
            )
        }
    };
    let req = match (&route, parse(&route, &v)) {
        (_, Ok(r)) => r,
        (Route::SageMaker { .. }, Err(m)) => {
            return aws_error(StatusCode::BAD_REQUEST, "ValidationError", &m)
        }
        (Route::Bedrock { .. }, Err(m)) => {
            return aws_error(StatusCode::BAD_REQUEST, "ValidationException", &m)
        }
    };
    let plan = engine.plan(req.prompt_tokens, req.max_tokens, req.ignore_eos);
    match plan.fail {
        Some(SimErrorKind::Http429) => {
            return aws_error(
                StatusCode::TOO_MANY_REQUESTS,
                "ThrottlingException",
                "Too many requests, please wait before trying again. (simulated)",
            )
        }
        Some(SimErrorKind::Http500) => {
            return aws_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                match route {
                    Route::SageMaker { .. } => "InternalFailure",
                    Route::Bedrock { .. } => "InternalServerException",
                },
                "simulated server error",
            )
        }
        _ => {}
    }
    let stream = matches!(
        route,
        Route::SageMaker { stream: true } | Route::Bedrock { stream: true }
    );
    if stream {
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        let bedrock = matches!(route, Route::Bedrock { .. });
        tokio::spawn(generate(engine, plan, req, bedrock, tx));
        let body = StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
        }));
        return Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/vnd.amazon.eventstream")
            .header("x-amzn-invoked-production-variant", "AllTraffic")
            .header("x-simulated", "true")
            .body(BodyExt::boxed(body))
            .expect("valid response");
    }
    let mut seq = match engine.admit(&plan).await {
        Ok(s) => s,
        Err(Rejection::TooLong { needed, capacity }) => {
            return aws_error(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                &format!("prompt + max tokens = {needed} exceeds the KV cache ({capacity})"),
            )
        }
    };
    let started = std::time::Instant::now();
    let text = seq.text(plan.output_tokens).await;
    drop(seq);
    if plan.fail == Some(SimErrorKind::MidStream) {
        return aws_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerException",
            "simulated server error",
        );
    }
    let ran_to_max = plan.output_tokens >= req.max_tokens;
    json_response(&match (&route, req.format) {
        (Route::Bedrock { .. }, _) => json!({
            "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": if ran_to_max { "max_tokens" } else { "end_turn" },
            "usage": {"inputTokens": plan.prompt_tokens, "outputTokens": plan.output_tokens,
                      "totalTokens": plan.prompt_tokens + plan.output_tokens},
            "metrics": {"latencyMs": started.elapsed().as_millis() as u64},
        }),
        (_, Format::Tgi) => json!([{
            "generated_text": text,
            "details": {"finish_reason": if ran_to_max { "length" } else { "eos_token" },
                        "generated_tokens": plan.output_tokens},
        }]),
        (_, Format::Openai) => json!({
            "id": "chatcmpl-sim", "object": "chat.completion", "model": req.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": if ran_to_max { "length" } else { "stop" }}],
            "usage": {"prompt_tokens": plan.prompt_tokens, "completion_tokens": plan.output_tokens,
                      "total_tokens": plan.prompt_tokens + plan.output_tokens},
        }),
    })
}

#[derive(Clone, Copy)]
enum Format {
    Tgi,
    Openai,
}

struct Request {
    format: Format,
    model: String,
    prompt_tokens: u64,
    max_tokens: u64,
    ignore_eos: bool,
    include_usage: bool,
}

fn parse(route: &Route, v: &Value) -> Result<Request, String> {
    let text_tokens = |c: &Value| -> u64 {
        match c {
            Value::String(s) => count_tokens(s),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .map(count_tokens)
                .sum(),
            _ => 0,
        }
    };
    match route {
        Route::Bedrock { .. } => {
            let msgs = v["messages"].as_array().ok_or("`messages` is required")?;
            Ok(Request {
                format: Format::Openai,
                model: String::new(),
                prompt_tokens: msgs.iter().map(|m| text_tokens(&m["content"])).sum(),
                max_tokens: v["inferenceConfig"]["maxTokens"].as_u64().unwrap_or(512),
                ignore_eos: v["additionalModelRequestFields"]["ignore_eos"]
                    .as_bool()
                    .unwrap_or(false),
                include_usage: true,
            })
        }
        Route::SageMaker { .. } => {
            if let Some(inputs) = v["inputs"].as_str() {
                Ok(Request {
                    format: Format::Tgi,
                    model: String::new(),
                    prompt_tokens: count_tokens(inputs),
                    max_tokens: v["parameters"]["max_new_tokens"].as_u64().unwrap_or(20),
                    ignore_eos: v["parameters"]["ignore_eos"].as_bool().unwrap_or(false),
                    include_usage: false,
                })
            } else if let Some(msgs) = v["messages"].as_array() {
                Ok(Request {
                    format: Format::Openai,
                    model: v["model"].as_str().unwrap_or("sim").to_string(),
                    prompt_tokens: msgs.iter().map(|m| text_tokens(&m["content"])).sum(),
                    max_tokens: v["max_tokens"].as_u64().unwrap_or(256),
                    ignore_eos: v["ignore_eos"].as_bool().unwrap_or(false),
                    include_usage: v["stream_options"]["include_usage"]
                        .as_bool()
                        .unwrap_or(false),
                })
            } else {
                Err("the body has neither `inputs` (TGI) nor `messages` (OpenAI)".into())
            }
        }
    }
}

/// Streams one response as event-stream frames.
async fn generate(
    engine: Arc<Engine>,
    plan: Plan,
    req: Request,
    bedrock: bool,
    tx: mpsc::Sender<Bytes>,
) {
    let started = std::time::Instant::now();
    let mut seq = match engine.admit(&plan).await {
        Ok(s) => s,
        Err(Rejection::TooLong { needed, capacity }) => {
            let m = json!({"message": format!("prompt + max tokens = {needed} exceeds the KV cache ({capacity})")});
            let _ = tx
                .send(frame(
                    "exception",
                    ":exception-type",
                    if bedrock {
                        "validationException"
                    } else {
                        "ModelStreamError"
                    },
                    "application/json",
                    m.to_string().into_bytes(),
                ))
                .await;
            return;
        }
    };
    let n = plan.output_tokens;
    let ran_to_max = n >= req.max_tokens;
    let cut_at = (plan.fail == Some(SimErrorKind::MidStream)).then_some(n / 2);
    if bedrock {
        let start = event(
            "messageStart",
            "application/json",
            json!({"role": "assistant"}).to_string().into_bytes(),
        );
        if tx.send(start).await.is_err() {
            return;
        }
    }
    for i in 0..n {
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
        let frames: Vec<Bytes> = if bedrock {
            vec![event(
                "contentBlockDelta",
                "application/json",
                json!({"contentBlockIndex": 0, "delta": {"text": text}})
                    .to_string()
                    .into_bytes(),
            )]
        } else {
            let last = i + 1 == n;
            let line = match req.format {
                Format::Tgi => {
                    let mut ev = json!({"token": {"id": i, "text": text, "logprob": 0.0, "special": false},
                                        "generated_text": null, "details": null});
                    if last {
                        ev["details"] = json!({"finish_reason": if ran_to_max { "length" } else { "eos_token" },
                                               "generated_tokens": n});
                    }
                    format!("data:{ev}\n\n")
                }
                Format::Openai => {
                    let c = json!({"id": "chatcmpl-sim", "object": "chat.completion.chunk", "model": req.model,
                                   "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]});
                    format!("data: {c}\n\n")
                }
            };
            split_parts(line.as_bytes())
        };
        if cut_at == Some(i) {
            // Half a frame, then the connection closes.
            let f = &frames[0];
            let _ = tx.send(f.slice(..f.len() / 2)).await;
            return;
        }
        for f in frames {
            if tx.send(f).await.is_err() {
                return; // the client went away: free the sequence
            }
        }
    }
    drop(seq);
    let tail: Vec<Bytes> = if bedrock {
        vec![
            event(
                "contentBlockStop",
                "application/json",
                json!({"contentBlockIndex": 0}).to_string().into_bytes(),
            ),
            event(
                "messageStop",
                "application/json",
                json!({"stopReason": if ran_to_max { "max_tokens" } else { "end_turn" }})
                    .to_string()
                    .into_bytes(),
            ),
            event(
                "metadata",
                "application/json",
                json!({"usage": {"inputTokens": plan.prompt_tokens, "outputTokens": n,
                                 "totalTokens": plan.prompt_tokens + n},
                       "metrics": {"latencyMs": started.elapsed().as_millis() as u64}})
                .to_string()
                .into_bytes(),
            ),
        ]
    } else {
        match req.format {
            Format::Tgi => vec![],
            Format::Openai => {
                let fin = json!({"id": "chatcmpl-sim", "object": "chat.completion.chunk", "model": req.model,
                                 "choices": [{"index": 0, "delta": {}, "finish_reason": if ran_to_max { "length" } else { "stop" }}]});
                let mut s = format!("data: {fin}\n\n");
                if req.include_usage {
                    let u = json!({"id": "chatcmpl-sim", "object": "chat.completion.chunk", "model": req.model, "choices": [],
                                   "usage": {"prompt_tokens": plan.prompt_tokens, "completion_tokens": n,
                                             "total_tokens": plan.prompt_tokens + n}});
                    s.push_str(&format!("data: {u}\n\n"));
                }
                s.push_str("data: [DONE]\n\n");
                split_parts(s.as_bytes())
            }
        }
    };
    for f in tail {
        if tx.send(f).await.is_err() {
            return;
        }
    }
}

/// `bytes` as two `PayloadPart` frames, cut in the middle: a line split
/// across parts, as SageMaker may send it.
fn split_parts(bytes: &[u8]) -> Vec<Bytes> {
    let mid = bytes.len() / 2;
    [&bytes[..mid], &bytes[mid..]]
        .iter()
        .map(|b| event("PayloadPart", "application/octet-stream", b.to_vec()))
        .collect()
}
