//! Per-experiment summary: distributions of every metric plus throughput and
//! error figures over the measurement window.
//!
//! The measurement window runs from the earliest *scheduled* send of a measured
//! (non-warm-up) request to the latest end of one. Starting at the schedule
//! rather than the actual send means a client that falls behind its plan
//! lengthens the window and lowers the reported throughput instead of hiding.

use crate::metrics::Metric;
use crate::sample::RequestSample;
use crate::stats::{Distribution, Recorder};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExperimentSummary {
    /// Requests in the measurement (warm-up excluded).
    pub requests: u64,
    pub requests_ok: u64,
    pub requests_failed: u64,
    /// Warm-up requests sent before the measurement (recorded, not summarised).
    pub warmup_requests: u64,
    /// Length of the measurement window in seconds.
    pub window_s: f64,
    /// Successful requests per second over the window.
    pub request_throughput: f64,
    /// Output tokens of successful requests per second over the window.
    pub output_token_throughput: f64,
    /// Prompt tokens of successful requests per second over the window.
    pub prompt_token_throughput: f64,
    /// Rate at which requests were actually sent: (n - 1) / (last send - first send).
    pub send_rate: Option<f64>,
    /// Failed / measured requests.
    pub error_rate: f64,
    /// Failed requests per error class.
    pub errors_by_class: BTreeMap<String, u64>,
    /// Relative difference between server-reported and client-counted prompt
    /// tokens, summed over requests that have both: (usage - client) / usage.
    pub prompt_token_discrepancy: Option<f64>,
    /// Same for output tokens.
    pub output_token_discrepancy: Option<f64>,
    /// Distribution of every metric, keyed by metric id.
    pub distributions: BTreeMap<String, Distribution>,
    /// Prompt and output tokens of the successful measured requests (server
    /// usage, else the client's count): the numerators of the token throughputs.
    pub prompt_tokens_total: u64,
    pub output_tokens_total: u64,
    /// Prompt and output tokens of every request sent, warm-up and failures
    /// included, where counted: what a token-priced endpoint bills for the run.
    pub prompt_tokens_all: u64,
    pub output_tokens_all: u64,
}

/// Prompt-token discrepancy (|usage − client| / usage) above which an
/// experiment is flagged: a tokenizer mismatch, or a chat template the client
/// did not account for.
pub const TOKEN_DISCREPANCY_LIMIT: f64 = 0.02;

impl ExperimentSummary {
    /// True when server and client prompt-token counts disagree by more than
    /// [`TOKEN_DISCREPANCY_LIMIT`].
    pub fn token_mismatch(&self) -> bool {
        self.prompt_token_discrepancy
            .is_some_and(|d| d.abs() > TOKEN_DISCREPANCY_LIMIT)
    }

    /// The summary of `samples` (one experiment's requests, warm-up
    /// included and flagged), in any order: [`SummaryBuilder`] over each.
    pub fn compute(samples: &[RequestSample]) -> Self {
        let mut b = SummaryBuilder::new();
        for r in samples {
            b.observe(r);
        }
        b.finish()
    }

    pub fn dist(&self, m: Metric) -> Option<&Distribution> {
        self.distributions.get(m.id()).filter(|d| d.count > 0)
    }
}

/// An [`ExperimentSummary`] built one request at a time, so that a running
/// experiment keeps only its histograms and counters, never its requests
/// (the requests stream to the bundle as they finish).
///
/// Every figure is a fold that does not depend on the order requests are
/// observed in: counts and token sums are integers, the window and send
/// span are min/max, and each distribution is an HDR histogram with an exact
/// integer sum ([`Recorder`]). So [`SummaryBuilder::finish`] equals
/// [`ExperimentSummary::compute`] over the same requests to the last digit,
/// whatever the order (tested below and in `tests/it/stream.rs`).
///
/// Memory: one HDR histogram per metric (about 180 KiB each), whatever the
/// number of requests.
pub struct SummaryBuilder {
    s: ExperimentSummary,
    recorders: Vec<(Metric, Recorder)>,
    window: Option<(i64, i64)>,
    sent: (i64, i64),
    tokens: (u64, u64),
    discrepancy: (u64, u64, u64, u64),
}

impl Default for SummaryBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl SummaryBuilder {
    pub fn new() -> Self {
        SummaryBuilder {
            s: ExperimentSummary::default(),
            recorders: Metric::ALL.iter().map(|m| (*m, Recorder::new())).collect(),
            window: None,
            sent: (i64::MAX, i64::MIN),
            tokens: (0, 0),
            discrepancy: (0, 0, 0, 0),
        }
    }

    /// Adds one request (warm-up requests count only as warm-up, and in the
    /// billed token totals).
    pub fn observe(&mut self, r: &RequestSample) {
        let s = &mut self.s;
        s.prompt_tokens_all += r.prompt_tokens().unwrap_or(0);
        s.output_tokens_all += r.output_tokens().unwrap_or(0);
        if r.warmup {
            s.warmup_requests += 1;
            return;
        }
        self.window = Some(match self.window {
            None => (r.scheduled_ns, r.end_ns),
            Some((a, b)) => (a.min(r.scheduled_ns), b.max(r.end_ns)),
        });
        s.requests += 1;
        self.sent = (self.sent.0.min(r.sent_ns), self.sent.1.max(r.sent_ns));
        if r.ok {
            s.requests_ok += 1;
            self.tokens.0 += r.prompt_tokens().unwrap_or(0);
            self.tokens.1 += r.output_tokens().unwrap_or(0);
            let d = &mut self.discrepancy;
            if let (Some(u), Some(c)) = (r.prompt_tokens_usage, r.prompt_tokens_client) {
                d.0 += u;
                d.1 += c;
            }
            if let (Some(u), Some(c)) = (r.output_tokens_usage, r.output_tokens_client) {
                d.2 += u;
                d.3 += c;
            }
        } else {
            s.requests_failed += 1;
            let class = r.error_class.clone().unwrap_or_else(|| "unknown".into());
            *s.errors_by_class.entry(class).or_default() += 1;
        }
        for (m, rec) in self.recorders.iter_mut() {
            m.samples(r, |v| rec.record(v));
        }
    }

    /// Requests observed so far, warm-up included.
    pub fn observed(&self) -> u64 {
        self.s.requests + self.s.warmup_requests
    }

    /// Warm-up requests observed so far (in [`Self::observed`], in no metric).
    pub fn warmup(&self) -> u64 {
        self.s.warmup_requests
    }

    /// Measured requests that failed so far (the table's `err`; warm-up
    /// failures are not counted).
    pub fn failed(&self) -> u64 {
        self.s.requests_failed
    }

    /// The value at quantile `q` of metric `m` over the measured requests
    /// observed so far, in the metric's raw unit (ns for latencies); `None`
    /// before any. Live progress reads its TTFT p50 here.
    pub fn quantile(&self, m: Metric, q: f64) -> Option<u64> {
        let (_, rec) = self.recorders.iter().find(|(x, _)| *x == m)?;
        rec.quantile(q)
    }

    /// The measurement window of the requests observed so far
    /// ([`measurement_window`]).
    pub fn window(&self) -> Option<(i64, i64)> {
        self.window
    }

    /// The summary of every request observed.
    pub fn finish(self) -> ExperimentSummary {
        let mut s = self.s;
        let (prompt_tokens, out_tokens) = self.tokens;
        let (first_sent, last_sent) = self.sent;
        if let Some((window_start, window_end)) = self.window {
            s.window_s = ((window_end - window_start).max(0)) as f64 / 1e9;
            if s.window_s > 0.0 {
                s.request_throughput = s.requests_ok as f64 / s.window_s;
                s.output_token_throughput = out_tokens as f64 / s.window_s;
                s.prompt_token_throughput = prompt_tokens as f64 / s.window_s;
            }
            s.error_rate = s.requests_failed as f64 / s.requests as f64;
            if s.requests > 1 && last_sent > first_sent {
                s.send_rate =
                    Some((s.requests - 1) as f64 / ((last_sent - first_sent) as f64 / 1e9));
            }
        }
        s.prompt_tokens_total = prompt_tokens;
        s.output_tokens_total = out_tokens;
        let disc = |u: u64, c: u64| (u > 0).then(|| (u as f64 - c as f64) / u as f64);
        let (pu, pc, ou, oc) = self.discrepancy;
        s.prompt_token_discrepancy = disc(pu, pc);
        s.output_token_discrepancy = disc(ou, oc);
        for (m, rec) in &self.recorders {
            s.distributions
                .insert(m.id().to_string(), rec.summarize(m.scale()));
        }
        s
    }
}

/// The measurement window, (start, end) in ns since the experiment's start:
/// the earliest scheduled send of a measured (non-warm-up) request to the
/// latest end of one. `None` without measured requests. Throughput is
/// counted over it, and host samples are assigned to it
/// (`host::window_of`).
pub fn measurement_window(samples: &[RequestSample]) -> Option<(i64, i64)> {
    samples
        .iter()
        .filter(|r| !r.warmup)
        .fold(None, |w, r| match w {
            None => Some((r.scheduled_ns, r.end_ns)),
            Some((a, b)) => Some((a.min(r.scheduled_ns), b.max(r.end_ns))),
        })
}

/// Every per-request value of `m` over the measured (non-warm-up) requests of
/// `samples`, exactly, in the metric's summary unit (ms or tokens). The
/// selection is `m`'s own ([`Metric::samples`]), the same as its distribution's.
pub fn metric_values(samples: &[RequestSample], m: Metric) -> Vec<f64> {
    let mut out = vec![];
    for r in samples.iter().filter(|r| !r.warmup) {
        m.samples(r, |v| out.push(v as f64 / m.scale()));
    }
    out
}

/// [`metric_values`], each as the distribution's HDR histogram holds it (its
/// bucket's highest equivalent value, within 0.1%), so that the nearest-rank
/// percentile of these values equals the stored distribution's percentile
/// exactly: `harness diff` compares these.
pub fn metric_values_as_recorded(samples: &[RequestSample], m: Metric) -> Vec<f64> {
    let q = crate::stats::Quantizer::new();
    let mut out = vec![];
    for r in samples.iter().filter(|r| !r.warmup) {
        m.samples(r, |v| out.push(q.quantize(v) as f64 / m.scale()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(sched: i64, sent: i64, first: i64, end: i64, tokens: u64) -> RequestSample {
        RequestSample {
            scheduled_ns: sched,
            sent_ns: sent,
            first_token_ns: Some(first),
            end_ns: end,
            token_chunk_ns: vec![first, end],
            ok: true,
            output_tokens_usage: Some(tokens),
            prompt_tokens_usage: Some(100),
            prompt_tokens_client: Some(98),
            ..Default::default()
        }
    }

    #[test]
    fn window_throughput_and_errors() {
        let ms = 1_000_000;
        let mut samples = vec![
            // warm-up: excluded everywhere
            RequestSample {
                warmup: true,
                ..ok(0, 0, 10 * ms, 500 * ms, 99)
            },
            ok(1000 * ms, 1001 * ms, 1050 * ms, 1500 * ms, 10),
            ok(1500 * ms, 1500 * ms, 1550 * ms, 2000 * ms, 30),
            RequestSample {
                scheduled_ns: 1900 * ms,
                sent_ns: 1905 * ms,
                end_ns: 1950 * ms,
                ok: false,
                error_class: Some("http_5xx".into()),
                ..Default::default()
            },
        ];
        samples.push(ok(2000 * ms, 2000 * ms, 2100 * ms, 3000 * ms, 20));
        let s = ExperimentSummary::compute(&samples);
        assert_eq!(s.warmup_requests, 1);
        assert_eq!((s.requests, s.requests_ok, s.requests_failed), (4, 3, 1));
        // window: scheduled 1000 ms .. end 3000 ms
        assert!((s.window_s - 2.0).abs() < 1e-12);
        assert!((s.request_throughput - 1.5).abs() < 1e-12);
        assert!((s.output_token_throughput - 30.0).abs() < 1e-12);
        assert!((s.error_rate - 0.25).abs() < 1e-12);
        assert_eq!(s.errors_by_class["http_5xx"], 1);
        // send rate: 3 intervals between sends at 1001 and 2000 ms
        assert!((s.send_rate.unwrap() - 3.0 / 0.999).abs() < 1e-9);
        assert!((s.prompt_token_discrepancy.unwrap() - 0.02).abs() < 1e-12);
        assert!(!s.token_mismatch(), "exactly 2% is within the limit");
        let lag = s.dist(Metric::DispatchLag).unwrap();
        assert_eq!(lag.count, 4);
        assert!((lag.max - 5.0).abs() < 0.01);
        let ttft = s.dist(Metric::Ttft).unwrap();
        assert_eq!(ttft.count, 3);
        assert!((ttft.max - 100.0).abs() < 0.1);
    }

    #[test]
    fn streamed_in_any_order_equals_the_batch_summary_to_the_last_digit() {
        // Requests in plan order, with warm-up, failures, and latencies large
        // enough that a floating-point running sum would depend on the order.
        let ms = 1_000_000i64;
        let mut samples = vec![];
        for i in 0..5000i64 {
            let sched = i * 3 * ms + (i * 7919 % 1000);
            let mut r = ok(
                sched,
                sched + i % 13,
                sched + 40 * ms + i * 12_345,
                sched + (900 + i % 997) * ms * 1000,
                (i % 50 + 2) as u64,
            );
            r.warmup = i < 100;
            if i % 37 == 0 {
                r.ok = false;
                r.error_class = Some(if i % 2 == 0 { "timeout" } else { "http_5xx" }.into());
            }
            samples.push(r);
        }
        let batch = ExperimentSummary::compute(&samples);
        // The order requests finish in: a deterministic shuffle.
        let mut shuffled = samples.clone();
        let mut state = 0x9e3779b97f4a7c15u64;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut b = SummaryBuilder::new();
        for r in &shuffled {
            b.observe(r);
        }
        assert_eq!(b.observed(), 5000);
        assert_eq!(b.window(), measurement_window(&samples));
        let streamed = b.finish();
        assert_eq!(streamed, batch);
        // Bit for bit, not merely within PartialEq's f64 equality.
        assert_eq!(
            serde_json::to_string(&streamed).unwrap(),
            serde_json::to_string(&batch).unwrap()
        );
        let e2e = batch.dist(Metric::E2e).unwrap();
        let exact: i64 = samples
            .iter()
            .filter(|r| r.ok && !r.warmup)
            .map(|r| r.end_ns - r.sent_ns)
            .sum();
        assert_eq!(
            e2e.mean,
            exact as f64 / e2e.count as f64 / 1e6,
            "the mean's sum is exact"
        );
    }

    #[test]
    fn empty_experiment() {
        let s = ExperimentSummary::compute(&[]);
        assert_eq!(s.requests, 0);
        assert_eq!(s.request_throughput, 0.0);
        assert!(s.dist(Metric::Ttft).is_none());
    }
}
