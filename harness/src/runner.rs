//! Runs one experiment: the scheduler decides when, the provider sends, a
//! collector folds each finished request into the summary and the live
//! progress line, and passes it on in batches to be written (the bundle's
//! `RequestStream`). No request outlives its batch: the memory of a run does
//! not grow with its number of requests.

use crate::clock::Clock;
use crate::plan::Experiment;
use crate::provider::Provider;
use crate::record::RequestRecord;
use crate::workload::Workload;
use crate::{progress::Progress, schedule};
use chrono::{DateTime, Utc};
use harness_core::outcome::ErrorClass;
use harness_core::summary::SummaryBuilder;
use harness_core::ExperimentSummary;
use harness_core::Metric;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Finished requests per batch passed to the writer.
pub const BATCH: usize = 1024;

/// Finished requests that may wait for the collector. When the writer falls
/// behind (its thread yields to the senders on a busy client), the collector
/// waits on it, this queue fills, and each request's task waits to hand its
/// record over: a closed loop slows to the rate the client can record, and an
/// open loop's waiting tasks count as in flight (`max_in_flight`), instead of
/// records piling up without bound. Without it, a 1,000,000-request closed
/// loop at concurrency 256 on 2 cores peaked at 227-367 MiB RSS.
const FINISHED_QUEUED: usize = 2 * BATCH;

pub struct Outcome {
    /// The summary of every request (warm-up flagged), folded as they
    /// finished: equal to `ExperimentSummary::compute` over the rows written.
    pub summary: ExperimentSummary,
    /// The measurement window (`harness_core::summary::measurement_window`).
    pub measured: Option<(i64, i64)>,
    /// The host's samples over the experiment, on the records' clock (empty
    /// without a sampler).
    pub host: Vec<crate::host::Sample>,
    pub interrupted: bool,
    /// Why the early-stop rule ended the experiment, when it did.
    pub stopped_early: Option<String>,
    /// The engine's metrics over the experiment, when they were scraped.
    pub server: Option<crate::scrape::Scraped>,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    /// How late the experiment began after the start it was given (ns; 0
    /// without one).
    pub start_late_ns: i64,
}

/// Where a running experiment's requests go as they finish.
pub struct Outputs {
    /// The live progress line.
    pub progress: Progress,
    /// Batches of finished requests, to be written (the bundle's
    /// `RequestStream::sender`); a bounded channel, so a writer that falls
    /// behind holds the collector back instead of letting memory grow.
    pub rows: mpsc::Sender<Vec<RequestRecord>>,
}

/// What watches an experiment besides its requests.
#[derive(Default, Clone, Copy)]
pub struct Watch<'a> {
    /// Samples this host (`host_samples`).
    pub host: Option<&'a crate::host::Sampler>,
    /// Scrapes the engine's metrics (`server_metrics`).
    pub server: Option<&'a crate::scrape::Scraper>,
}

/// Passes `batch` to the writer. When the writer has stopped on an error
/// (its `finish` reports it), nothing more can be recorded: the experiment
/// stops issuing through `stop_issuing`, and later batches are dropped.
async fn flush(
    sink: &mut Option<mpsc::Sender<Vec<RequestRecord>>>,
    batch: &mut Vec<RequestRecord>,
    stop_issuing: &AtomicBool,
) {
    let full = std::mem::replace(batch, Vec::with_capacity(BATCH));
    if let Some(s) = sink.as_ref() {
        if s.send(full).await.is_err() {
            *sink = None;
            stop_issuing.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// When an experiment starts and stops.
pub struct Control {
    /// Each request's limit (it fails as `timeout`).
    pub timeout: Duration,
    /// Set to stop issuing (Ctrl-C).
    pub stop: Arc<AtomicBool>,
    /// The instant to start at (a start shared with other shards); `None`:
    /// now.
    pub start: Option<Instant>,
}

pub async fn run_experiment(
    exp: &Experiment,
    provider: Arc<Provider>,
    workload: Arc<Workload>,
    control: Control,
    out: Outputs,
    watch: Watch<'_>,
) -> Outcome {
    let Outputs {
        progress,
        rows: sink,
    } = out;
    let Control {
        timeout,
        stop,
        start,
    } = control;
    // A shard waits for the start it shares with the others; every time of
    // the experiment is measured from that instant, the plan's `t0`.
    let (t0, start_late_ns) = match start {
        Some(at) => {
            // Ctrl-C ends the wait; the plan then issues nothing.
            let stopped = || stop.load(std::sync::atomic::Ordering::Relaxed);
            while !stopped()
                && at.saturating_duration_since(Instant::now()) > Duration::from_millis(60)
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if !stopped() {
                let _ = tokio::task::spawn_blocking(move || crate::timer::sleep_until_precise(at))
                    .await;
            }
            (
                at,
                Instant::now().saturating_duration_since(at).as_nanos() as i64,
            )
        }
        None => (Instant::now(), 0),
    };
    let started_at = Utc::now();
    let clock = Clock { start: t0 };
    let sampling = watch.host.map(|s| s.start(clock));
    let scraping = watch.server.map(|s| s.start(clock));
    let tokenizer = exp.tokenizer.clone();
    let (tx, mut rx) = mpsc::channel::<RequestRecord>(FINISHED_QUEUED);
    let early = Arc::new(AtomicBool::new(false));
    let early_flag = early.clone();
    let mut early_stop = exp.early_stop();

    let collector = tokio::spawn(async move {
        let mut stopped_early = None;
        let mut summary = SummaryBuilder::new();
        let mut batch = Vec::with_capacity(BATCH);
        let mut sink = Some(sink);
        // Failed requests, warm-up included (the summary counts the
        // measured ones).
        let mut errors = 0u64;
        let start = Instant::now();
        let mut last_flush = start;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Some(rec) => {
                        if !rec.ok { errors += 1; }
                        let sample = rec.sample();
                        summary.observe(&sample);
                        if let Some(rule) = early_stop.as_mut().filter(|_| stopped_early.is_none()) {
                            if let Some(why) = rule.observe(&sample) {
                                early_flag.store(true, std::sync::atomic::Ordering::SeqCst);
                                stopped_early = Some(why);
                            }
                        }
                        batch.push(rec);
                        if batch.len() == BATCH {
                            flush(&mut sink, &mut batch, &early_flag).await;
                            last_flush = Instant::now();
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    // A slow experiment's rows reach the bundle at least every
                    // second, so a crash loses at most the last second's.
                    if !batch.is_empty() && last_flush.elapsed() >= Duration::from_secs(1) {
                        flush(&mut sink, &mut batch, &early_flag).await;
                        last_flush = Instant::now();
                    }
                    let done = summary.observed();
                    let rate = done as f64 / start.elapsed().as_secs_f64().max(1e-9);
                    let ttft_p50 = summary.quantile(Metric::Ttft, 0.5).map(|v| v as f64 / 1e6);
                    progress.update(done, rate, ttft_p50, errors);
                }
            }
        }
        if !batch.is_empty() {
            flush(&mut sink, &mut batch, &early_flag).await;
        }
        progress.finish(
            summary.observed(),
            summary.warmup(),
            errors,
            summary.failed(),
        );
        (summary, stopped_early)
    });

    let send = {
        let tx = tx.clone();
        move |d: schedule::Dispatch| {
            let (provider, workload, tx, tok) = (
                provider.clone(),
                workload.clone(),
                tx.clone(),
                tokenizer.clone(),
            );
            async move {
                let mut rec = RequestRecord {
                    seq: d.seq,
                    warmup: d.warmup,
                    scheduled_ns: clock.ns(d.scheduled),
                    ..Default::default()
                };
                if d.saturated {
                    rec.sent_ns = clock.now_ns();
                    rec.end_ns = rec.sent_ns;
                    rec.fail(ErrorClass::ClientSaturated, "max_in_flight requests were already in flight at the scheduled time; not sent");
                } else {
                    let item = workload.item(d.seq);
                    if tokio::time::timeout(timeout, provider.send(&item, &clock, &mut rec))
                        .await
                        .is_err()
                    {
                        rec.end_ns = clock.now_ns();
                        if rec.sent_ns == 0 {
                            rec.sent_ns = rec.end_ns;
                        }
                        rec.fail(
                            ErrorClass::Timeout,
                            format!(
                                "no complete response within {}",
                                humantime::format_duration(timeout)
                            ),
                        );
                    }
                }
                // Count output tokens with the endpoint's tokenizer, after the
                // response is complete (never while timing it).
                if rec.ok || !rec.output_text.is_empty() {
                    rec.output_tokens_client = Some(tok.count(&rec.output_text));
                }
                rec.output_text = String::new();
                let _ = tx.send(rec).await;
            }
        }
    };
    let cut_short = schedule::drive(&exp.plan, t0, stop, early, send).await;
    drop(tx);
    let (summary, stopped_early) = collector.await.expect("collector task");
    let measured = summary.window();
    let host = match sampling {
        Some(s) => s.finish().await,
        None => vec![],
    };
    let server = match scraping {
        Some(s) => Some(s.finish().await),
        None => None,
    };
    Outcome {
        summary: summary.finish(),
        measured,
        host,
        interrupted: cut_short,
        stopped_early,
        server,
        started_at,
        ended_at: Utc::now(),
        start_late_ns,
    }
}
