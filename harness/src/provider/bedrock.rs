//! Amazon Bedrock: `Converse` and, when the endpoint streams,
//! `ConverseStream`, through the AWS SDK's `aws-sdk-bedrockruntime` client
//! (it signs the requests and decodes the event stream). The endpoint's
//! `model` is the model id or a cross-region inference profile id.
//!
//! The prompt is one user message; `inferenceConfig` carries `maxTokens`,
//! `temperature` and `topP` from `sampling`; `bedrock.additional_fields`
//! goes in `additionalModelRequestFields`. Each `contentBlockDelta` with
//! text is a token chunk, stamped with the arrival of the bytes that
//! completed its frame ([`super::aws`]); `messageStop` gives the finish
//! reason (`end_turn`, `max_tokens`, …), and `metadata` the server's usage
//! (`inputTokens`, `outputTokens`), kept apart from the client's counts.
//! A `ThrottlingException` is retried up to `bedrock.max_retries` times,
//! counted in the record, and the latency is that of the last attempt.

use super::aws::{self, Stamps};
use super::WorkItem;
use crate::clock::Clock;
use crate::config::{BedrockSettings, Sampling};
use crate::record::RequestRecord;
use aws_sdk_bedrockruntime::types as bt;
use harness_core::outcome::ErrorClass;

pub struct BedrockClient {
    client: aws_sdk_bedrockruntime::Client,
    model: String,
    stream: bool,
    sampling: Sampling,
    settings: BedrockSettings,
    /// What is shown for the endpoint (region and model; no credential).
    label: String,
}

impl BedrockClient {
    pub fn new(
        base: &aws_config::SdkConfig,
        model: &str,
        stream: bool,
        sampling: &Sampling,
        settings: &BedrockSettings,
    ) -> BedrockClient {
        let conf = aws::sdk_config(
            base,
            &aws::Target {
                region: settings.region.as_deref(),
                endpoint_url: settings.endpoint_url.as_deref(),
            },
        );
        let label = format!(
            "bedrock {} model {model}{}",
            conf.region().map(|r| r.to_string()).unwrap_or_default(),
            settings
                .endpoint_url
                .as_deref()
                .map(|u| format!(" at {}", crate::redact::url(u)))
                .unwrap_or_default()
        );
        BedrockClient {
            client: aws_sdk_bedrockruntime::Client::new(&conf),
            model: model.to_string(),
            stream,
            sampling: sampling.clone(),
            settings: settings.clone(),
            label,
        }
    }

    /// Region and model, for logs and the preflight row.
    pub fn label(&self) -> &str {
        &self.label
    }

    pub async fn send(&self, item: &WorkItem, clock: &Clock, rec: &mut RequestRecord) {
        aws::send(self, item, clock, rec).await
    }

    fn message(&self, prompt: &str) -> bt::Message {
        bt::Message::builder()
            .role(bt::ConversationRole::User)
            .content(bt::ContentBlock::Text(prompt.to_string()))
            .build()
            .expect("role and content are set")
    }

    fn inference(&self, max_tokens: u32) -> bt::InferenceConfiguration {
        bt::InferenceConfiguration::builder()
            .max_tokens(max_tokens.min(i32::MAX as u32) as i32)
            .temperature(self.sampling.temperature as f32)
            .set_top_p(self.sampling.top_p.map(|p| p as f32))
            .build()
    }

    fn additional(&self) -> Option<aws_smithy_types::Document> {
        (!self.settings.additional_fields.is_empty()).then(|| {
            json_to_document(&serde_json::Value::Object(
                self.settings.additional_fields.clone(),
            ))
        })
    }
}

impl aws::Attempt for BedrockClient {
    fn max_retries(&self) -> u32 {
        self.settings.max_retries
    }

    async fn attempt(
        &self,
        item: &WorkItem,
        clock: &Clock,
        rec: &mut RequestRecord,
        stamps: &Stamps,
    ) -> bool {
        rec.sent_ns = clock.now_ns();
        if self.stream {
            let r = self
                .client
                .converse_stream()
                .model_id(&self.model)
                .messages(self.message(&item.prompt))
                .inference_config(self.inference(item.max_tokens))
                .set_additional_model_request_fields(self.additional())
                .send()
                .await;
            let out = match aws::answered(r, rec, clock, stamps) {
                Ok(out) => out,
                Err(throttled) => return throttled,
            };
            read_stream(out.stream, clock, rec, stamps).await;
            false
        } else {
            let r = self
                .client
                .converse()
                .model_id(&self.model)
                .messages(self.message(&item.prompt))
                .inference_config(self.inference(item.max_tokens))
                .set_additional_model_request_fields(self.additional())
                .send()
                .await;
            let out = match aws::answered(r, rec, clock, stamps) {
                Ok(out) => out,
                Err(throttled) => return throttled,
            };
            rec.end_ns = stamps.chunk().unwrap_or_else(|| clock.now_ns());
            let text: String = match &out.output {
                Some(bt::ConverseOutput::Message(m)) => m
                    .content()
                    .iter()
                    .filter_map(|c| match c {
                        bt::ContentBlock::Text(t) => Some(t.as_str()),
                        _ => None,
                    })
                    .collect(),
                _ => String::new(),
            };
            let tool = matches!(&out.output, Some(bt::ConverseOutput::Message(m))
                if m.content().iter().any(|c| matches!(c, bt::ContentBlock::ToolUse(_))));
            rec.finish_reason = Some(out.stop_reason.as_str().to_string());
            if let Some(u) = &out.usage {
                usage(rec, u);
            }
            let content = !text.is_empty() || tool;
            rec.output_text = text;
            super::judge(rec, content, None);
            false
        }
    }
}

fn usage(rec: &mut RequestRecord, u: &bt::TokenUsage) {
    rec.prompt_tokens_usage = Some(u.input_tokens.max(0) as u64);
    rec.output_tokens_usage = Some(u.output_tokens.max(0) as u64);
}

async fn read_stream(
    mut stream: aws_sdk_bedrockruntime::primitives::event_stream::EventReceiver<
        bt::ConverseStreamOutput,
        bt::error::ConverseStreamOutputError,
    >,
    clock: &Clock,
    rec: &mut RequestRecord,
    stamps: &Stamps,
) {
    let mut content = false;
    let mut stopped = false;
    let mut last = rec.first_byte_ns.unwrap_or_else(|| clock.now_ns());
    loop {
        let ev = stream.recv().await;
        // The arrival of the bytes that completed this frame.
        let t = stamps.chunk().unwrap_or_else(|| clock.now_ns());
        match ev {
            Ok(Some(ev)) => {
                last = t;
                rec.events += 1;
                match ev {
                    bt::ConverseStreamOutput::ContentBlockDelta(d) => {
                        let piece = match d.delta() {
                            Some(bt::ContentBlockDelta::Text(s)) => Some(s.as_str()),
                            Some(bt::ContentBlockDelta::ReasoningContent(
                                bt::ReasoningContentBlockDelta::Text(s),
                            )) => Some(s.as_str()),
                            Some(bt::ContentBlockDelta::ToolUse(u)) => Some(u.input()),
                            _ => None,
                        };
                        if let Some(p) = piece.filter(|p| !p.is_empty()) {
                            content = true;
                            rec.first_token_ns.get_or_insert(t);
                            rec.token_chunk_ns.push(t);
                            rec.output_text.push_str(p);
                        }
                    }
                    bt::ConverseStreamOutput::MessageStop(m) => {
                        stopped = true;
                        rec.finish_reason = Some(m.stop_reason().as_str().to_string());
                    }
                    bt::ConverseStreamOutput::Metadata(m) => {
                        if let Some(u) = m.usage() {
                            usage(rec, u);
                        }
                    }
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(e) => {
                rec.end_ns = t;
                aws::stream_error(rec, &e);
                return;
            }
        }
    }
    rec.end_ns = last;
    if !stopped && rec.error_class.is_none() {
        rec.fail(
            ErrorClass::IncompleteStream,
            "the event stream ended without messageStop",
        );
        return;
    }
    super::judge(rec, content, Some(true));
}

/// The Converse request the SDK sends for `prompt`, as JSON (for
/// `validate --show-settings`; the SDK builds the real one from the same
/// settings).
pub fn request_json(
    sampling: &Sampling,
    settings: &BedrockSettings,
    prompt: &str,
    max_tokens: u32,
) -> serde_json::Value {
    let mut inference = serde_json::json!({
        "maxTokens": max_tokens,
        "temperature": sampling.temperature,
    });
    if let Some(p) = sampling.top_p {
        inference["topP"] = serde_json::json!(p);
    }
    let mut v = serde_json::json!({
        "messages": [{"role": "user", "content": [{"text": prompt}]}],
        "inferenceConfig": inference,
    });
    if !settings.additional_fields.is_empty() {
        v["additionalModelRequestFields"] =
            serde_json::Value::Object(settings.additional_fields.clone());
    }
    v
}

/// A JSON value as a Smithy document (`additionalModelRequestFields`).
pub fn json_to_document(v: &serde_json::Value) -> aws_smithy_types::Document {
    use aws_smithy_types::{Document, Number};
    match v {
        serde_json::Value::Null => Document::Null,
        serde_json::Value::Bool(b) => Document::Bool(*b),
        serde_json::Value::Number(n) => Document::Number(match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Number::PosInt(u),
            (None, Some(i)) => Number::NegInt(i),
            _ => Number::Float(n.as_f64().unwrap_or(0.0)),
        }),
        serde_json::Value::String(s) => Document::String(s.clone()),
        serde_json::Value::Array(a) => Document::Array(a.iter().map(json_to_document).collect()),
        serde_json::Value::Object(o) => Document::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), json_to_document(v)))
                .collect(),
        ),
    }
}
