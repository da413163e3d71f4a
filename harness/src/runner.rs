//! Runs one experiment: the scheduler decides when, the provider sends, a
//! collector gathers records and feeds the live progress line.

use crate::clock::Clock;
use crate::plan::Experiment;
use crate::provider::Provider;
use crate::record::RequestRecord;
use crate::workload::Workload;
use crate::{progress::Progress, schedule};
use chrono::{DateTime, Utc};
use harness_core::outcome::ErrorClass;
use harness_core::stats::Recorder;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub struct Outcome {
    pub records: Vec<RequestRecord>,
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
}

/// What watches an experiment besides its requests.
#[derive(Default, Clone, Copy)]
pub struct Watch<'a> {
    /// Samples this host (`host_samples`).
    pub host: Option<&'a crate::host::Sampler>,
    /// Scrapes the engine's metrics (`server_metrics`).
    pub server: Option<&'a crate::scrape::Scraper>,
}

pub async fn run_experiment(
    exp: &Experiment,
    provider: Arc<Provider>,
    workload: Arc<Workload>,
    timeout: Duration,
    stop: Arc<AtomicBool>,
    progress: Progress,
    watch: Watch<'_>,
) -> Outcome {
    let started_at = Utc::now();
    let clock = Clock::new();
    let sampling = watch.host.map(|s| s.start(clock));
    let scraping = watch.server.map(|s| s.start(clock));
    let tokenizer = exp.tokenizer.clone();
    let (tx, mut rx) = mpsc::unbounded_channel::<RequestRecord>();
    let early = Arc::new(AtomicBool::new(false));
    let early_flag = early.clone();
    let mut early_stop = exp.early_stop();

    let collector = tokio::spawn(async move {
        let mut stopped_early = None;
        let mut records = Vec::new();
        let mut ttft = Recorder::new();
        let (mut done, mut errors) = (0u64, 0u64);
        let start = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Some(rec) => {
                        done += 1;
                        if !rec.ok { errors += 1; }
                        if rec.ok && !rec.warmup {
                            if let Some(ft) = rec.first_token_ns { ttft.record(ft - rec.sent_ns); }
                        }
                        if let Some(rule) = early_stop.as_mut().filter(|_| stopped_early.is_none()) {
                            if let Some(why) = rule.observe(&rec.sample()) {
                                early_flag.store(true, std::sync::atomic::Ordering::SeqCst);
                                stopped_early = Some(why);
                            }
                        }
                        records.push(rec);
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    let rate = done as f64 / start.elapsed().as_secs_f64().max(1e-9);
                    progress.update(done, rate, ttft.quantile(0.5).map(|v| v as f64 / 1e6), errors);
                }
            }
        }
        progress.finish(done, errors);
        (records, stopped_early)
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
                let _ = tx.send(rec);
            }
        }
    };
    let cut_short = schedule::drive(&exp.plan, stop, early, send).await;
    drop(tx);
    let (mut records, stopped_early) = collector.await.expect("collector task");
    records.sort_by_key(|r| r.seq);
    let host = match sampling {
        Some(s) => s.finish().await,
        None => vec![],
    };
    let server = match scraping {
        Some(s) => Some(s.finish().await),
        None => None,
    };
    Outcome {
        records,
        host,
        interrupted: cut_short,
        stopped_early,
        server,
        started_at,
        ended_at: Utc::now(),
    }
}
