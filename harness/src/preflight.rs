//! Preflight: one short request to an endpoint before its first experiment,
//! so that a server that is down, a wrong model name, a missing key, a wrong
//! path or a server that does not stream is reported once, with the fix,
//! instead of as N failed requests in a run that exits 0.
//!
//! The request is the endpoint's own (same body shape, sampling, headers and
//! key) with a short prompt and `max_tokens: 8`, streamed when the endpoint
//! streams. It passes when the response is a success by the rules of
//! `harness_core::outcome` (status, body, stream, content, finish reason).
//! The embedded simulator passes by construction and is not sent a request
//! (its seeded request sequence stays that of the experiments).

use crate::clock::Clock;
use crate::config::Endpoint;
use crate::provider::{Provider, WorkItem};
use crate::record::RequestRecord;
use harness_core::outcome::ErrorClass;
use std::time::Duration;

/// What the preflight found.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub ok: bool,
    pub http_status: Option<u16>,
    pub error_class: Option<ErrorClass>,
    /// On failure: what is wrong and how to fix it, naming the endpoint's URL
    /// (credentials masked).
    pub message: String,
    /// Send to end of the response, ms.
    pub latency_ms: Option<f64>,
}

impl Verdict {
    /// The simulator's verdict.
    pub fn embedded() -> Verdict {
        Verdict {
            ok: true,
            http_status: None,
            error_class: None,
            message: "embedded simulator: passes by construction".into(),
            latency_ms: None,
        }
    }
}

/// Sends the preflight request to `ep` through `provider`.
pub async fn check(provider: &Provider, ep: &Endpoint, timeout: Duration) -> Verdict {
    let url = provider.describe();
    let item = WorkItem {
        prompt: "Say hello.".into(),
        prompt_tokens_client: 0,
        max_tokens: 8,
    };
    let clock = Clock::new();
    let mut rec = RequestRecord::default();
    if tokio::time::timeout(timeout, provider.send(&item, &clock, &mut rec))
        .await
        .is_err()
    {
        rec.end_ns = clock.now_ns();
        rec.fail(
            ErrorClass::Timeout,
            format!(
                "no complete answer within {}",
                humantime::format_duration(timeout)
            ),
        );
    }
    let latency_ms = Some((rec.end_ns - rec.sent_ns) as f64 / 1e6);
    if rec.ok {
        return Verdict {
            ok: true,
            http_status: rec.http_status,
            error_class: None,
            message: format!(
                "ok: HTTP {}, {}, finish_reason `{}`",
                rec.http_status.unwrap_or(200),
                if ep.stream {
                    "streamed"
                } else {
                    "one JSON body"
                },
                rec.finish_reason.as_deref().unwrap_or("")
            ),
            latency_ms,
        };
    }
    let class = rec.error_class.unwrap_or(ErrorClass::Transport);
    let status = rec.http_status;
    let detail = rec.error_message.clone().unwrap_or_default();
    let detail = match status {
        Some(s) => detail
            .strip_prefix(&format!("HTTP {s}: "))
            .unwrap_or(&detail)
            .to_string(),
        None => detail,
    };
    let aws = ep.provider.is_aws();
    let message = match (class, status) {
        _ if aws => aws_hint(ep, &url, class, status, &detail),
        (ErrorClass::Connect, _) => {
            let host = host_port(&url);
            if detail.contains("dns error") || detail.contains("failed to lookup") {
                format!("cannot resolve the host of {url}: check base_url")
            } else if detail.to_ascii_lowercase().contains("refused") {
                format!("connection refused at {host}: is the server running?")
            } else {
                format!("cannot connect to {host} ({detail}): is the server running and reachable?")
            }
        }
        (ErrorClass::Timeout, _) => format!(
            "no complete answer from {url} within {}: is the server overloaded, or still loading the model?",
            humantime::format_duration(timeout)
        ),
        (_, Some(s @ (401 | 403))) => match &ep.api_key_env {
            Some(var) => format!("HTTP {s} from {url}: the server refused the key in ${var} (api_key_env): check it"),
            None => format!("HTTP {s} from {url}: the server wants an API key: set OPENAI_API_KEY and add `api_key_env: OPENAI_API_KEY` to endpoint `{}`", ep.name),
        },
        (_, Some(s)) if s == 404 || (s == 400 && detail.to_ascii_lowercase().contains("model")) => {
            let models = match provider {
                Provider::OpenAi(client) => client.list_models().await,
                _ => Err(anyhow::anyhow!("no model list")),
            };
            match models {
                Ok(models) if !models.is_empty() && !models.contains(&ep.model) => format!(
                    "HTTP {s} for model `{}`: the server lists {} at /v1/models; set the endpoint's `model` to one of them",
                    ep.model,
                    models.iter().take(8).map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
                ),
                Ok(models) if models.contains(&ep.model) => format!(
                    "HTTP {s} at {url}, though the server lists model `{}`: check base_url (it should end in /v1) and `api` (chat or completions) ({detail})",
                    ep.model
                ),
                _ => format!("HTTP {s} at {url}: check base_url (it should end in /v1) and the model name `{}` ({detail})", ep.model),
            }
        }
        (ErrorClass::MalformedResponse, _) if detail.contains("event stream") => {
            format!("HTTP 200 from {url}, but {detail}")
        }
        (ErrorClass::MalformedResponse, _) => format!(
            "HTTP 200 from {url}, but {detail}: is base_url the server's OpenAI API root (e.g. http://host:8000/v1)?"
        ),
        (ErrorClass::NotStreamed, _) => format!(
            "the endpoint has `stream: true`, but {url} answered with one JSON body, not a stream: set `stream: false` for endpoint `{}` (TTFT, ITL and TPOT are then not measured)",
            ep.name
        ),
        (_, Some(s)) => format!("HTTP {s} from {url}: {detail}"),
        _ => format!("{class} from {url}: {detail}"),
    };
    Verdict {
        ok: false,
        http_status: status,
        error_class: Some(class),
        message: crate::redact::text(&message),
        latency_ms,
    }
}

/// What a failed preflight of a SageMaker or Bedrock endpoint means, and
/// the fix.
fn aws_hint(
    ep: &Endpoint,
    at: &str,
    class: ErrorClass,
    status: Option<u16>,
    detail: &str,
) -> String {
    let bedrock = ep.provider == crate::config::ProviderKind::Bedrock;
    let code = detail.split(':').next().unwrap_or("");
    match (class, status) {
        (ErrorClass::Connect | ErrorClass::Timeout, _) => format!(
            "cannot reach {at} ({detail}): check the region{} and the network",
            if bedrock { "" } else { ", the endpoint's `endpoint_url`" }
        ),
        (_, Some(401 | 403)) => format!(
            "{at} refused these AWS credentials ({detail}): {}",
            if bedrock {
                "they need bedrock:InvokeModel and bedrock:InvokeModelWithResponseStream on the model, and the account needs access to the model (Bedrock console, Model access)"
            } else {
                "they need sagemaker:InvokeEndpoint and sagemaker:InvokeEndpointWithResponseStream on the endpoint"
            }
        ),
        (_, Some(404)) | (_, Some(400)) if code.contains("NotFound") || detail.contains("not found") || detail.contains("Could not find") => format!(
            "{at}: {detail}: check {}",
            if bedrock {
                "the model id (or inference profile id) in `model`, and the region: not every model is in every region"
            } else {
                "`sagemaker.endpoint_name` and the region"
            }
        ),
        (ErrorClass::Http429, _) => format!("{at} throttled the request ({detail}): its quota is too low for this load, or it is busy"),
        _ => format!("{class} from {at}: {detail}"),
    }
}

/// `host:port` of a URL (`http://a:b@127.0.0.1:1/v1` → `127.0.0.1:1`).
fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map(|x| x.1).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority
        .rsplit_once('@')
        .map(|x| x.1)
        .unwrap_or(authority)
        .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_port_drops_credentials_and_path() {
        assert_eq!(
            super::host_port("http://u:p@127.0.0.1:1/v1/chat"),
            "127.0.0.1:1"
        );
        assert_eq!(super::host_port("https://api.x.com/v1"), "api.x.com");
    }
}
