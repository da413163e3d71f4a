//! What the AWS providers (`sagemaker`, `bedrock`) share: the SDK
//! configuration of an endpoint, stamping bytes as they come off the
//! socket underneath the SDK, bounded retries of throttled requests, and one
//! mapping of SDK errors onto the documented error classes.
//!
//! **Stamps.** The SDK's clients are used as they are (they sign the
//! requests and decode the event streams: they are the judge of protocol
//! fidelity), with an HTTP client of ours wrapped around the SDK's own
//! ([`StampingClient`]). Around every request a provider sends, it sets a
//! task-local [`Stamps`]; the wrapper records in it when the request is
//! dispatched, when the response head arrives, and, for every body chunk,
//! when the SDK pulls it from the connection, before anything decodes it.
//! The SDK's event-stream receiver reads the body only when no complete
//! frame is buffered, so when it hands over an event, the latest chunk
//! stamp is that of the bytes that completed the event's frame.

use crate::clock::Clock;
use crate::record::RequestRecord;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use harness_core::outcome::ErrorClass;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

tokio::task_local! {
    static STAMPS: Arc<Stamps>;
}

/// When a request's bytes moved, in ns on the experiment's clock (-1: not
/// yet).
#[derive(Debug)]
pub struct Stamps {
    clock: Clock,
    sent: AtomicI64,
    head: AtomicI64,
    chunk: AtomicI64,
}

impl Stamps {
    pub fn new(clock: Clock) -> Arc<Stamps> {
        Arc::new(Stamps {
            clock,
            sent: AtomicI64::new(-1),
            head: AtomicI64::new(-1),
            chunk: AtomicI64::new(-1),
        })
    }

    fn get(a: &AtomicI64) -> Option<i64> {
        Some(a.load(Ordering::SeqCst)).filter(|t| *t >= 0)
    }

    fn set(&self, a: &AtomicI64) {
        a.store(self.clock.now_ns(), Ordering::SeqCst);
    }

    /// When the request was handed to the connection (after signing).
    pub fn sent(&self) -> Option<i64> {
        Stamps::get(&self.sent)
    }

    /// When the response's status and headers arrived.
    pub fn head(&self) -> Option<i64> {
        Stamps::get(&self.head)
    }

    /// When the latest body chunk came off the connection.
    pub fn chunk(&self) -> Option<i64> {
        Stamps::get(&self.chunk)
    }

    /// Runs `f` (one request and the reading of its response) with these
    /// stamps in effect.
    pub async fn scope<F: std::future::Future>(self: &Arc<Self>, f: F) -> F::Output {
        STAMPS.scope(self.clone(), f).await
    }
}

/// The SDK's HTTP client with stamps around it.
#[derive(Debug)]
struct StampingClient {
    inner: SharedHttpClient,
}

impl HttpClient for StampingClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(StampingConnector {
            inner: self.inner.http_connector(settings, components),
        })
    }
}

#[derive(Debug)]
struct StampingConnector {
    inner: SharedHttpConnector,
}

impl HttpConnector for StampingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let stamps = STAMPS.try_with(|s| s.clone()).ok();
        if let Some(s) = &stamps {
            s.set(&s.sent);
        }
        let fut = self.inner.call(request);
        HttpConnectorFuture::new(async move {
            let resp = fut.await?;
            let Some(s) = stamps else { return Ok(resp) };
            s.set(&s.head);
            Ok(resp.map(move |body| {
                SdkBody::from_body_1_x(StampedBody {
                    inner: body,
                    stamps: s.clone(),
                })
            }))
        })
    }
}

/// A response body that stamps each data chunk as it is pulled.
struct StampedBody {
    inner: SdkBody,
    stamps: Arc<Stamps>,
}

impl hyper::body::Body for StampedBody {
    type Data = bytes::Bytes;
    type Error = aws_smithy_types::body::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &r {
            if f.is_data() {
                self.stamps.set(&self.stamps.chunk);
            }
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::Body::size_hint(&self.inner)
    }
}

/// The AWS configuration the config's SageMaker and Bedrock endpoints use,
/// loaded (and its credentials resolved) before any experiment starts:
/// `profile` (`--profile`) over the SDK's chain, and `region` (`--region`;
/// else the first such endpoint's own region, else the SDK's). `None` when
/// the config has no such endpoint.
///
/// Errors (exit 2): no credentials, or no region anywhere; one message says
/// how to give them.
pub async fn load_for(
    cfg: &crate::config::Config,
    profile: Option<&str>,
    region: Option<&str>,
) -> anyhow::Result<Option<aws_config::SdkConfig>> {
    use crate::config::ProviderKind;
    let regions: Vec<Option<&str>> = cfg
        .endpoints
        .iter()
        .filter_map(|e| match e.provider {
            ProviderKind::Sagemaker => Some(e.sagemaker.as_ref().and_then(|s| s.region.as_deref())),
            ProviderKind::Bedrock => Some(e.bedrock.as_ref().and_then(|b| b.region.as_deref())),
            _ => None,
        })
        .collect();
    if regions.is_empty() {
        return Ok(None);
    }
    let region = region.or(regions.iter().flatten().next().copied());
    let aws =
        crate::aws::load_profile(profile, region, "the SageMaker and Bedrock endpoints").await?;
    Ok(Some(aws.config))
}

/// Sets `region` on every SageMaker and Bedrock endpoint of `cfg` that
/// names none (the region the run reaches it in); `true` when one changed.
pub fn fill_regions(cfg: &mut crate::config::Config, region: &str) -> bool {
    let mut changed = false;
    for e in &mut cfg.endpoints {
        let slot = match (&mut e.sagemaker, &mut e.bedrock) {
            (Some(s), _) => &mut s.region,
            (_, Some(b)) => &mut b.region,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(region.to_string());
            changed = true;
        }
    }
    changed
}

/// Where and how an AWS provider's endpoint is reached.
pub struct Target<'a> {
    pub region: Option<&'a str>,
    pub endpoint_url: Option<&'a str>,
}

/// The SDK configuration for one endpoint: the run's credentials
/// (`base`), the endpoint's region and endpoint URL over the run's, our
/// stamping HTTP client, and no SDK retries or timeouts (the provider
/// retries throttling itself, counted; the runner times requests out).
pub fn sdk_config(base: &aws_config::SdkConfig, t: &Target<'_>) -> aws_config::SdkConfig {
    let mut b = base
        .to_builder()
        .http_client(SharedHttpClient::new(StampingClient {
            inner: crate::aws::http_client(),
        }))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(aws_config::timeout::TimeoutConfig::disabled());
    if let Some(r) = t.region {
        b = b.region(aws_config::Region::new(r.to_string()));
    }
    if let Some(u) = t.endpoint_url {
        b = b.endpoint_url(u);
    }
    b.build()
}

/// An SDK error as (class, HTTP status, message, throttled): connection
/// failures are `connect`, timeouts `timeout`, a response the SDK could not
/// parse `malformed_response`, and a service's error by its HTTP status
/// (`http_429`, `http_4xx`, `http_5xx`), its message starting with the
/// service's error code (`ThrottlingException: …`).
pub fn classify<E, R>(e: &SdkError<E, R>) -> (ErrorClass, Option<u16>, String, bool)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HasStatus + 'static,
{
    match e {
        SdkError::ServiceError(se) => {
            let status = se.raw().status_code();
            let code = se.err().code().unwrap_or("UnknownError");
            let message = se.err().message().unwrap_or("");
            let throttled = status == 429 || code.contains("Throttl");
            let class = if throttled {
                ErrorClass::Http429
            } else {
                ErrorClass::for_status(status)
            };
            (
                class,
                Some(status),
                format!("HTTP {status}: {code}: {message}"),
                throttled,
            )
        }
        SdkError::TimeoutError(_) => (ErrorClass::Timeout, None, why(e), false),
        SdkError::DispatchFailure(d) => {
            let class = if d.is_timeout() {
                ErrorClass::Timeout
            } else if d.is_io() {
                ErrorClass::Connect
            } else {
                ErrorClass::Transport
            };
            (class, None, why(e), false)
        }
        SdkError::ResponseError(r) => (
            ErrorClass::MalformedResponse,
            Some(r.raw().status_code()),
            why(e),
            false,
        ),
        _ => (ErrorClass::Transport, None, why(e), false),
    }
}

/// The HTTP status of a raw response, for [`classify`].
pub trait HasStatus {
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_smithy_runtime_api::http::Response {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// An SDK error in one line, with its causes (not the SDK's debug dump of
/// them), credentials masked.
fn why<E, R>(e: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    crate::aws::error_chain(e)
}

/// One AWS provider's request, attempt by attempt.
pub trait Attempt {
    /// How many times a throttled request may be retried.
    fn max_retries(&self) -> u32;

    /// One attempt at `item`, with `stamps` in effect: fills `rec`, and
    /// returns `true` when the service throttled it.
    fn attempt(
        &self,
        item: &super::WorkItem,
        clock: &Clock,
        rec: &mut RequestRecord,
        stamps: &Stamps,
    ) -> impl std::future::Future<Output = bool> + Send;
}

/// Sends `item` through `p`: every attempt with stamps of its own; a
/// throttled one is retried after [`backoff`] up to `p.max_retries()` times,
/// counted in `rec.retries`, and the record keeps the last attempt's
/// timestamps (so the retries are not in its latency).
pub async fn send<P: Attempt>(
    p: &P,
    item: &super::WorkItem,
    clock: &Clock,
    rec: &mut RequestRecord,
) {
    rec.prompt_tokens_client = Some(item.prompt_tokens_client);
    loop {
        let stamps = Stamps::new(*clock);
        let throttled = stamps.scope(p.attempt(item, clock, rec, &stamps)).await;
        if !throttled || rec.retries >= p.max_retries() {
            return;
        }
        rec.retries += 1;
        tokio::time::sleep(backoff(rec.retries)).await;
        reset_for_retry(rec);
    }
}

/// How long to wait before retry `n` (1, 2, …) of a throttled request:
/// 100 ms doubling, at most 3.2 s.
pub fn backoff(n: u32) -> std::time::Duration {
    std::time::Duration::from_millis(100u64 << n.saturating_sub(1).min(5))
}

/// Clears what a throttled attempt left in `rec` before the next one
/// (latency is measured from the last attempt's send).
pub fn reset_for_retry(rec: &mut RequestRecord) {
    let retries = rec.retries;
    let keep = RequestRecord {
        seq: rec.seq,
        warmup: rec.warmup,
        scheduled_ns: rec.scheduled_ns,
        prompt_tokens_client: rec.prompt_tokens_client,
        ..Default::default()
    };
    *rec = keep;
    rec.retries = retries;
}

/// What a call's `send` gave, in `rec`: the actual dispatch time (the
/// stamp), then on success the response head's arrival and status 200 and
/// the output to read; on failure the error, with `Err(throttled)`.
pub fn answered<T, E, R>(
    r: Result<T, SdkError<E, R>>,
    rec: &mut RequestRecord,
    clock: &Clock,
    stamps: &Stamps,
) -> Result<T, bool>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HasStatus + 'static,
{
    rec.sent_ns = stamps.sent().unwrap_or(rec.sent_ns);
    match r {
        Err(e) => Err(fail_call(rec, clock, &e)),
        Ok(out) => {
            rec.first_byte_ns = stamps.head();
            rec.http_status = Some(200);
            Ok(out)
        }
    }
}

/// Records a failed call in `rec`; `true` when it was throttled.
fn fail_call<E, R>(rec: &mut RequestRecord, clock: &Clock, e: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + HasStatus + 'static,
{
    rec.end_ns = clock.now_ns();
    let (class, status, message, throttled) = classify(e);
    rec.http_status = status;
    rec.fail(class, message);
    throttled
}

/// A failure inside an event stream: an exception event the service sent
/// (`stream_error`, with its code), a stream that ended in the middle of a
/// frame (`incomplete_stream`), a frame the SDK could not decode
/// (`malformed_stream`), or a connection that broke (`transport`).
pub fn stream_error<E, R>(rec: &mut RequestRecord, e: &SdkError<E, R>)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    // The error and its causes, in words (not the raw frame bytes).
    let text = why(e);
    match e {
        SdkError::ResponseError(_) if text.contains("unexpected end of stream") => rec.fail(
            ErrorClass::IncompleteStream,
            "the event stream ended in the middle of a frame: the connection was cut",
        ),
        SdkError::ServiceError(se) => rec.fail(
            ErrorClass::StreamError,
            format!(
                "{}: {}",
                se.err().code().unwrap_or("StreamError"),
                se.err().message().unwrap_or("")
            ),
        ),
        SdkError::ResponseError(_) => rec.fail(
            ErrorClass::MalformedStream,
            format!("an event-stream frame did not decode: {text}"),
        ),
        _ => rec.fail(ErrorClass::Transport, format!("stream broke: {text}")),
    }
}
