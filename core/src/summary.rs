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

    pub fn compute(samples: &[RequestSample]) -> Self {
        let window = measurement_window(samples);
        let mut recorders: Vec<(Metric, Recorder)> =
            Metric::ALL.iter().map(|m| (*m, Recorder::new())).collect();
        let mut s = ExperimentSummary::default();
        let (mut first_sent, mut last_sent) = (i64::MAX, i64::MIN);
        let (mut out_tokens, mut prompt_tokens) = (0u64, 0u64);
        let (mut pu, mut pc, mut ou, mut oc) = (0u64, 0u64, 0u64, 0u64);
        for r in samples {
            s.prompt_tokens_all += r.prompt_tokens().unwrap_or(0);
            s.output_tokens_all += r.output_tokens().unwrap_or(0);
            if r.warmup {
                s.warmup_requests += 1;
                continue;
            }
            s.requests += 1;
            first_sent = first_sent.min(r.sent_ns);
            last_sent = last_sent.max(r.sent_ns);
            if r.ok {
                s.requests_ok += 1;
                out_tokens += r.output_tokens().unwrap_or(0);
                prompt_tokens += r.prompt_tokens().unwrap_or(0);
                if let (Some(u), Some(c)) = (r.prompt_tokens_usage, r.prompt_tokens_client) {
                    pu += u;
                    pc += c;
                }
                if let (Some(u), Some(c)) = (r.output_tokens_usage, r.output_tokens_client) {
                    ou += u;
                    oc += c;
                }
            } else {
                s.requests_failed += 1;
                let class = r.error_class.clone().unwrap_or_else(|| "unknown".into());
                *s.errors_by_class.entry(class).or_default() += 1;
            }
            for (m, rec) in recorders.iter_mut() {
                m.samples(r, |v| rec.record(v));
            }
        }
        if let Some((window_start, window_end)) = window {
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
        s.prompt_token_discrepancy = disc(pu, pc);
        s.output_token_discrepancy = disc(ou, oc);
        for (m, rec) in &recorders {
            s.distributions
                .insert(m.id().to_string(), rec.summarize(m.scale()));
        }
        s
    }

    pub fn dist(&self, m: Metric) -> Option<&Distribution> {
        self.distributions.get(m.id()).filter(|d| d.count > 0)
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
    fn empty_experiment() {
        let s = ExperimentSummary::compute(&[]);
        assert_eq!(s.requests, 0);
        assert_eq!(s.request_throughput, 0.0);
        assert!(s.dist(Metric::Ttft).is_none());
    }
}
