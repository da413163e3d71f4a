//! A SageMaker real-time endpoint: `InvokeEndpoint` and, when the endpoint
//! streams, `InvokeEndpointWithResponseStream`, through the AWS SDK's
//! `aws-sdk-sagemakerruntime` client (it signs the requests and decodes the
//! event stream), with the optional inference component, target variant
//! and custom attributes.
//!
//! The payload format is the endpoint's `sagemaker.format`:
//! - `tgi` (TGI and LMI containers): `{"inputs", "parameters":
//!   {"max_new_tokens", "return_full_text": false, "details": true, …}}` →
//!   `generated_text` (a leading copy of the prompt is cut, so the prompt
//!   is never counted as output), `details.finish_reason` and
//!   `details.generated_tokens` (server usage); streamed as
//!   `data:{"token":{"text"}}` lines;
//! - `openai` (LMI and vLLM containers): the OpenAI chat body and chunks;
//! - `custom`: the user's request template and JSON pointers to the text.
//!
//! A stream's `PayloadPart`s carry SSE lines or JSON lines, and one line may
//! be split across parts: the parts are joined and cut at newlines, and each
//! line takes the stamp of the part that completed it (the arrival of its
//! bytes, [`super::aws`]). A format that reports no finish reason (`custom`,
//! or `tgi` without `details`) succeeds on generated text alone.

use super::aws::{self, Stamps};
use super::openai::RequestShape;
use super::WorkItem;
use crate::clock::Clock;
use crate::config::{SageMakerFormat, SageMakerSettings, Sampling};
use crate::record::RequestRecord;
use aws_sdk_sagemakerruntime::primitives::Blob;
use aws_sdk_sagemakerruntime::types as st;
use harness_core::outcome::ErrorClass;
use serde_json::{json, Value};

pub struct SageMakerClient {
    client: aws_sdk_sagemakerruntime::Client,
    settings: SageMakerSettings,
    stream: bool,
    sampling: Sampling,
    /// For `format: openai`: the OpenAI body.
    openai: RequestShape,
    label: String,
}

impl SageMakerClient {
    pub fn new(
        base: &aws_config::SdkConfig,
        settings: &SageMakerSettings,
        stream: bool,
        sampling: &Sampling,
        openai: RequestShape,
    ) -> SageMakerClient {
        let conf = aws::sdk_config(
            base,
            &aws::Target {
                region: settings.region.as_deref(),
                endpoint_url: settings.endpoint_url.as_deref(),
            },
        );
        let label = format!(
            "sagemaker {} endpoint {}{}",
            conf.region().map(|r| r.to_string()).unwrap_or_default(),
            settings.endpoint_name,
            settings
                .endpoint_url
                .as_deref()
                .map(|u| format!(" at {}", crate::redact::url(u)))
                .unwrap_or_default()
        );
        SageMakerClient {
            client: aws_sdk_sagemakerruntime::Client::new(&conf),
            settings: settings.clone(),
            stream,
            sampling: sampling.clone(),
            openai,
            label,
        }
    }

    /// Region and endpoint name, for logs and the preflight row.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The request body for `prompt`.
    pub fn body(&self, prompt: &str, max_tokens: u32) -> Vec<u8> {
        request_body(
            &self.settings.format,
            self.stream,
            &self.sampling,
            &self.openai,
            prompt,
            max_tokens,
        )
    }

    pub async fn send(&self, item: &WorkItem, clock: &Clock, rec: &mut RequestRecord) {
        aws::send(self, item, clock, rec).await
    }

    fn read_whole(&self, bytes: &[u8], prompt: &str, rec: &mut RequestRecord) {
        let v: Value = match serde_json::from_slice(bytes) {
            Ok(v) => v,
            Err(e) => {
                rec.fail(
                    ErrorClass::MalformedResponse,
                    format!(
                        "the body is not JSON ({e}): {}",
                        String::from_utf8_lossy(&bytes[..bytes.len().min(120)])
                    ),
                );
                return;
            }
        };
        let (text, lenient) = match &self.settings.format {
            SageMakerFormat::Tgi => {
                // `[{...}]` from TGI and LMI, `{...}` from some containers.
                let o = v.get(0).unwrap_or(&v);
                let details = &o["details"];
                rec.finish_reason = details["finish_reason"].as_str().map(String::from);
                rec.output_tokens_usage = details["generated_tokens"].as_u64();
                let text = o["generated_text"].as_str().unwrap_or("");
                // A container that returns the full text returns the prompt
                // first: it is not output.
                let text = text.strip_prefix(prompt).unwrap_or(text);
                (text.to_string(), details.is_null())
            }
            SageMakerFormat::Openai => {
                let c = &v["choices"][0];
                rec.finish_reason = c["finish_reason"].as_str().map(String::from);
                rec.prompt_tokens_usage = v["usage"]["prompt_tokens"].as_u64();
                rec.output_tokens_usage = v["usage"]["completion_tokens"].as_u64();
                (
                    c["message"]["content"]
                        .as_str()
                        .or(c["text"].as_str())
                        .unwrap_or("")
                        .to_string(),
                    false,
                )
            }
            SageMakerFormat::Custom { response_text, .. } => (
                v.pointer(response_text)
                    .and_then(|t| t.as_str())
                    .unwrap_or("")
                    .to_string(),
                true,
            ),
        };
        if v.get("error").is_some_and(|e| !e.is_null()) {
            rec.fail(ErrorClass::ResponseError, v["error"].to_string());
            return;
        }
        if let SageMakerFormat::Custom { response_text, .. } = &self.settings.format {
            if text.is_empty() {
                rec.fail(
                    ErrorClass::EmptyResponse,
                    format!(
                        "no text at `sagemaker.response_text` (`{response_text}`) in the response: {}",
                        v.to_string().chars().take(200).collect::<String>()
                    ),
                );
                return;
            }
        }
        let content = !text.is_empty();
        rec.output_text = text;
        judge(rec, content, None, lenient);
    }

    async fn read_stream(
        &self,
        mut stream: aws_sdk_sagemakerruntime::primitives::event_stream::EventReceiver<
            st::ResponseStream,
            st::error::ResponseStreamError,
        >,
        clock: &Clock,
        rec: &mut RequestRecord,
        stamps: &Stamps,
    ) {
        let mut lines = Lines::default();
        let mut st = LineState::default();
        let mut last = rec.first_byte_ns.unwrap_or_else(|| clock.now_ns());
        loop {
            let ev = stream.recv().await;
            // The arrival of the bytes that completed this part's frame.
            let t = stamps.chunk().unwrap_or_else(|| clock.now_ns());
            match ev {
                Ok(Some(st::ResponseStream::PayloadPart(p))) => {
                    last = t;
                    rec.events += 1;
                    let bytes = p.bytes.map(|b| b.into_inner()).unwrap_or_default();
                    for line in lines.push(&bytes) {
                        self.on_line(&line, t, rec, &mut st);
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    rec.end_ns = t;
                    aws::stream_error(rec, &e);
                    return;
                }
            }
            if rec.error_class.is_some() {
                rec.end_ns = t;
                return;
            }
        }
        if let Some(line) = lines.finish() {
            self.on_line(&line, last, rec, &mut st);
        }
        rec.end_ns = last;
        if let SageMakerFormat::Custom { stream_text, .. } = &self.settings.format {
            if !st.content && rec.error_class.is_none() {
                rec.fail(
                    ErrorClass::EmptyResponse,
                    format!(
                        "no streamed line had text at `sagemaker.stream_text` (`{}`)",
                        stream_text.as_deref().unwrap_or("")
                    ),
                );
                return;
            }
        }
        let lenient = !matches!(self.settings.format, SageMakerFormat::Openai);
        judge(rec, st.content, Some(st.done), lenient);
    }

    /// One streamed line (SSE `data:` or a JSON line), arrived at `t`.
    fn on_line(&self, line: &str, t: i64, rec: &mut RequestRecord, st: &mut LineState) {
        if rec.error_class.is_some() || st.done {
            return;
        }
        let data = line.strip_prefix("data:").unwrap_or(line).trim();
        if data.is_empty() || data.starts_with(':') || line.starts_with("event:") {
            return;
        }
        if data == "[DONE]" {
            st.done = true;
            return;
        }
        let v: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(e) => {
                rec.fail(
                    ErrorClass::MalformedStream,
                    format!(
                        "a streamed line is not JSON ({e}): {}",
                        data.chars().take(200).collect::<String>()
                    ),
                );
                return;
            }
        };
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            rec.fail(ErrorClass::StreamError, err.to_string());
            return;
        }
        // A whole response where stream lines belong: the container does
        // not stream, and TTFT would silently equal e2e.
        let whole = v.get(0).unwrap_or(&v);
        if (whole["generated_text"].is_string() && whole.get("token").is_none())
            || v["choices"][0].get("message").is_some()
        {
            rec.fail(
                ErrorClass::NotStreamed,
                "the endpoint answered the response-stream API with one whole response: its container does not stream; set `stream: false` for this endpoint (TTFT, ITL and TPOT are then not measured)",
            );
            return;
        }
        let piece: Option<String> = match &self.settings.format {
            SageMakerFormat::Tgi => {
                if let Some(f) = v["details"]["finish_reason"].as_str() {
                    rec.finish_reason = Some(f.to_string());
                }
                if let Some(n) = v["details"]["generated_tokens"].as_u64() {
                    rec.output_tokens_usage = Some(n);
                }
                (!v["token"]["special"].as_bool().unwrap_or(false))
                    .then(|| v["token"]["text"].as_str().map(String::from))
                    .flatten()
            }
            SageMakerFormat::Openai => {
                if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
                    rec.prompt_tokens_usage = u["prompt_tokens"].as_u64();
                    rec.output_tokens_usage = u["completion_tokens"].as_u64();
                }
                let c = &v["choices"][0];
                if let Some(f) = c["finish_reason"].as_str() {
                    rec.finish_reason = Some(f.to_string());
                }
                c["delta"]["content"]
                    .as_str()
                    .or(c["text"].as_str())
                    .map(String::from)
            }
            SageMakerFormat::Custom { stream_text, .. } => stream_text
                .as_deref()
                .and_then(|p| v.pointer(p))
                .and_then(|t| t.as_str())
                .map(String::from),
        };
        if let Some(p) = piece.filter(|p| !p.is_empty()) {
            st.content = true;
            rec.first_token_ns.get_or_insert(t);
            rec.token_chunk_ns.push(t);
            rec.output_text.push_str(&p);
        }
    }
}

impl aws::Attempt for SageMakerClient {
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
        let s = &self.settings;
        let body = Blob::new(self.body(&item.prompt, item.max_tokens));
        rec.sent_ns = clock.now_ns();
        if self.stream {
            let r = self
                .client
                .invoke_endpoint_with_response_stream()
                .endpoint_name(&s.endpoint_name)
                .content_type("application/json")
                .accept("application/json")
                .set_inference_component_name(s.inference_component.clone())
                .set_target_variant(s.target_variant.clone())
                .set_custom_attributes(s.custom_attributes.clone())
                .body(body)
                .send()
                .await;
            let out = match aws::answered(r, rec, clock, stamps) {
                Ok(out) => out,
                Err(throttled) => return throttled,
            };
            self.read_stream(out.body, clock, rec, stamps).await;
            false
        } else {
            let r = self
                .client
                .invoke_endpoint()
                .endpoint_name(&s.endpoint_name)
                .content_type("application/json")
                .accept("application/json")
                .set_inference_component_name(s.inference_component.clone())
                .set_target_variant(s.target_variant.clone())
                .set_custom_attributes(s.custom_attributes.clone())
                .body(body)
                .send()
                .await;
            let out = match aws::answered(r, rec, clock, stamps) {
                Ok(out) => out,
                Err(throttled) => return throttled,
            };
            rec.end_ns = stamps.chunk().unwrap_or_else(|| clock.now_ns());
            let bytes = out.body.map(|b| b.into_inner()).unwrap_or_default();
            self.read_whole(&bytes, &item.prompt, rec);
            false
        }
    }
}

/// The body of a request for `prompt` in payload format `format`
/// (`openai`: the OpenAI chat body `shape` makes).
pub fn request_body(
    format: &SageMakerFormat,
    stream: bool,
    sampling: &Sampling,
    shape: &RequestShape,
    prompt: &str,
    max_tokens: u32,
) -> Vec<u8> {
    match format {
        SageMakerFormat::Tgi => {
            let mut p = json!({
                "max_new_tokens": max_tokens,
                "return_full_text": false,
                "details": true,
            });
            // TGI refuses a temperature of 0: greedy is `do_sample: false`.
            if sampling.temperature > 0.0 {
                p["do_sample"] = json!(true);
                p["temperature"] = json!(sampling.temperature);
                if let Some(t) = sampling.top_p {
                    p["top_p"] = json!(t);
                }
            } else {
                p["do_sample"] = json!(false);
            }
            let mut b = json!({"inputs": prompt, "parameters": p});
            if stream {
                b["stream"] = json!(true);
            }
            serde_json::to_vec(&b).expect("json")
        }
        SageMakerFormat::Openai => {
            serde_json::to_vec(&shape.body(prompt, max_tokens)).expect("json")
        }
        SageMakerFormat::Custom {
            request_template, ..
        } => request_template
            .replace("{{prompt}}", &serde_json::to_string(prompt).expect("json"))
            .replace("{{max_tokens}}", &max_tokens.to_string())
            .into_bytes(),
    }
}

#[derive(Default)]
struct LineState {
    content: bool,
    done: bool,
}

/// Bytes of successive payload parts, cut into lines at `\n` (a `\r`
/// before it dropped); a line split across parts is whole once its end
/// arrives.
#[derive(Default)]
pub struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    /// Adds `bytes`; returns the lines they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(bytes);
        let mut out = vec![];
        while let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            let line = &line[..line.len() - 1];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            out.push(String::from_utf8_lossy(line).into_owned());
        }
        out
    }

    /// What is left after the last part: a final line with no newline.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buf);
        let s = String::from_utf8_lossy(&rest).trim().to_string();
        (!s.is_empty()).then_some(s)
    }
}

/// [`super::judge`], except that a `lenient` format (one that reports no
/// finish reason) succeeds on generated content alone.
fn judge(rec: &mut RequestRecord, content: bool, done: Option<bool>, lenient: bool) {
    if lenient && rec.finish_reason.is_none() && rec.error_class.is_none() && content {
        rec.ok = true;
        return;
    }
    super::judge(rec, content, done);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(format: SageMakerFormat) -> SageMakerClient {
        let conf = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let settings = SageMakerSettings {
            endpoint_name: "e".into(),
            inference_component: None,
            target_variant: None,
            custom_attributes: None,
            format,
            region: Some("us-east-1".into()),
            endpoint_url: None,
            max_retries: 0,
        };
        let sampling = crate::config::Sampling {
            max_tokens: None,
            temperature: 0.0,
            top_p: None,
            ignore_eos: false,
        };
        let shape = RequestShape {
            api: crate::config::ApiKind::Chat,
            stream: false,
            model: "m".into(),
            sampling: sampling.clone(),
            extra_body: Default::default(),
            config_path: "endpoints[0]".into(),
        };
        SageMakerClient::new(&conf, &settings, false, &sampling, shape)
    }

    #[test]
    fn a_container_that_echoes_the_prompt_does_not_have_it_counted_as_output() {
        let c = client(SageMakerFormat::Tgi);
        let mut rec = RequestRecord::default();
        c.read_whole(
            br#"[{"generated_text": "Tell me a story. Once upon a time", "details": {"finish_reason": "length", "generated_tokens": 4}}]"#,
            "Tell me a story.",
            &mut rec,
        );
        assert!(rec.ok, "{:?}", rec.error_message);
        assert_eq!(rec.output_text, " Once upon a time");
        assert_eq!(rec.output_tokens_usage, Some(4));
        // LMI without details: no finish reason, text is enough.
        let mut rec = RequestRecord::default();
        c.read_whole(br#"{"generated_text": "yes"}"#, "q", &mut rec);
        assert!(rec.ok && rec.finish_reason.is_none());
        // A custom format, by JSON pointer.
        let c = client(SageMakerFormat::Custom {
            request_template: "{\"p\": {{prompt}}}".into(),
            response_text: "/outputs/0".into(),
            stream_text: None,
        });
        assert_eq!(
            String::from_utf8(c.body("say \"hi\"", 8)).unwrap(),
            r#"{"p": "say \"hi\""}"#
        );
        let mut rec = RequestRecord::default();
        c.read_whole(br#"{"outputs": ["hello"]}"#, "q", &mut rec);
        assert!(rec.ok && rec.output_text == "hello");
        let mut rec = RequestRecord::default();
        c.read_whole(br#"{"outputs": []}"#, "q", &mut rec);
        assert_eq!(rec.error_class, Some(ErrorClass::EmptyResponse));
    }

    #[test]
    fn a_whole_response_on_the_stream_api_is_not_a_stream() {
        for (format, line) in [
            (SageMakerFormat::Tgi, r#"[{"generated_text": "a b c"}]"#),
            (
                SageMakerFormat::Openai,
                r#"{"choices": [{"message": {"content": "a b c"}, "finish_reason": "stop"}]}"#,
            ),
        ] {
            let c = client(format);
            let mut rec = RequestRecord::default();
            let mut st = LineState::default();
            c.on_line(line, 5, &mut rec, &mut st);
            assert_eq!(rec.error_class, Some(ErrorClass::NotStreamed), "{line}");
        }
        // TGI's last token event carries the whole text too: it streams.
        let c = client(SageMakerFormat::Tgi);
        let mut rec = RequestRecord::default();
        let mut st = LineState::default();
        c.on_line(
            r#"data:{"token": {"text": " c", "special": false}, "generated_text": "a b c", "details": {"finish_reason": "length"}}"#,
            5,
            &mut rec,
            &mut st,
        );
        assert!(rec.error_class.is_none() && st.content);
        assert_eq!(rec.token_chunk_ns, [5]);
    }

    #[test]
    fn a_line_split_across_parts_is_whole_once_its_end_arrives() {
        let mut l = Lines::default();
        assert!(l.push(b"data: {\"tok").is_empty());
        assert_eq!(
            l.push(b"en\": 1}\r\n\ndata: x\n{\"a\""),
            ["data: {\"token\": 1}", "", "data: x"]
        );
        assert_eq!(l.finish().as_deref(), Some("{\"a\""));
    }
}
