//! The definition of every per-request metric, in one place.
//!
//! `docs/metrics.md` is the prose version of this file; each `description` below
//! is quoted there. All latencies are measured on the client's monotonic clock.
//! "From schedule" variants start at the time the load plan said the request
//! should be sent, so that a client that falls behind its plan cannot hide the
//! delay (coordinated omission); the plain variants start at the actual send.

use crate::sample::RequestSample;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Ttft,
    TtftFromSchedule,
    Itl,
    Tpot,
    E2e,
    E2eFromSchedule,
    DispatchLag,
    OutputTokens,
    PromptTokens,
}

/// Unit of a metric's values in summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Ms,
    Tokens,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Ms => "ms",
            Unit::Tokens => "tokens",
        }
    }
}

impl Metric {
    pub const ALL: [Metric; 9] = [
        Metric::Ttft,
        Metric::TtftFromSchedule,
        Metric::Itl,
        Metric::Tpot,
        Metric::E2e,
        Metric::E2eFromSchedule,
        Metric::DispatchLag,
        Metric::OutputTokens,
        Metric::PromptTokens,
    ];

    /// Stable identifier used in bundles, reports and on the command line.
    pub fn id(self) -> &'static str {
        match self {
            Metric::Ttft => "ttft",
            Metric::TtftFromSchedule => "ttft_from_schedule",
            Metric::Itl => "itl",
            Metric::Tpot => "tpot",
            Metric::E2e => "e2e",
            Metric::E2eFromSchedule => "e2e_from_schedule",
            Metric::DispatchLag => "dispatch_lag",
            Metric::OutputTokens => "output_tokens",
            Metric::PromptTokens => "prompt_tokens",
        }
    }

    pub fn from_id(id: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.id() == id)
    }

    /// True for the metrics that need a streamed response: a response that
    /// arrives in one piece has no first token or gaps to time, so TTFT, ITL
    /// and TPOT get no sample from it (never one invented from e2e).
    pub fn needs_stream(self) -> bool {
        matches!(
            self,
            Metric::Ttft | Metric::TtftFromSchedule | Metric::Itl | Metric::Tpot
        )
    }

    pub fn unit(self) -> Unit {
        match self {
            Metric::OutputTokens | Metric::PromptTokens => Unit::Tokens,
            _ => Unit::Ms,
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Metric::Ttft => "Time to first token: arrival of the first content-bearing chunk minus the actual send time. Successful streamed requests only.",
            Metric::TtftFromSchedule => "TTFT measured from the scheduled send time instead of the actual one; includes the client's dispatch lag. Successful streamed requests only.",
            Metric::Itl => "Inter-token latency: every gap between consecutive content-bearing chunks, pooled over all successful streamed requests (one sample per gap, not one per request).",
            Metric::Tpot => "Time per output token: (e2e - ttft) / (output tokens - 1), one sample per successful streamed request with at least 2 output tokens.",
            Metric::E2e => "End-to-end latency: response complete minus actual send time. Successful requests only.",
            Metric::E2eFromSchedule => "End-to-end latency from the scheduled send time; includes the client's dispatch lag.",
            Metric::DispatchLag => "Actual send time minus scheduled send time: how late the client itself was. All requests, failed ones included.",
            Metric::OutputTokens => "Output tokens per successful request (server usage when reported, else the client's count).",
            Metric::PromptTokens => "Prompt tokens per successful request (server usage when reported, else the client's count).",
        }
    }

    /// Feeds this metric's samples for one request into `sink` (in the
    /// metric's base unit: nanoseconds for times, tokens for counts).
    /// ITL yields one value per chunk gap; the others at most one value.
    pub fn samples(self, r: &RequestSample, mut sink: impl FnMut(i64)) {
        let ok = r.ok;
        match self {
            Metric::Ttft => {
                if let (true, Some(ft)) = (ok, r.first_token_ns) {
                    sink(ft - r.sent_ns)
                }
            }
            Metric::TtftFromSchedule => {
                if let (true, Some(ft)) = (ok, r.first_token_ns) {
                    sink(ft - r.scheduled_ns)
                }
            }
            Metric::Itl => {
                if ok {
                    for w in r.token_chunk_ns.windows(2) {
                        sink(w[1] - w[0]);
                    }
                }
            }
            Metric::Tpot => {
                if let (true, Some(ft), Some(n)) = (ok, r.first_token_ns, r.output_tokens()) {
                    if n >= 2 {
                        sink((r.end_ns - ft) / (n as i64 - 1));
                    }
                }
            }
            Metric::E2e => {
                if ok {
                    sink(r.end_ns - r.sent_ns)
                }
            }
            Metric::E2eFromSchedule => {
                if ok {
                    sink(r.end_ns - r.scheduled_ns)
                }
            }
            Metric::DispatchLag => sink(r.sent_ns - r.scheduled_ns),
            Metric::OutputTokens => {
                if let (true, Some(n)) = (ok, r.output_tokens()) {
                    sink(n as i64)
                }
            }
            Metric::PromptTokens => {
                if let (true, Some(n)) = (ok, r.prompt_tokens()) {
                    sink(n as i64)
                }
            }
        }
    }

    /// Divisor turning base units into summary units (ns → ms).
    /// The metric's per-request sample as a DuckDB SQL expression over one row
    /// of the bundle's `requests` table, in the raw unit of [`Metric::samples`]
    /// (ns for latencies, tokens for counts; divide by [`Metric::scale`]), NULL
    /// where the request gives no sample. `None` for ITL, which gives one sample
    /// per gap between chunks, not one per request. Warm-up requests are left
    /// out by the caller (`NOT warmup`), as [`crate::summary::metric_values`]
    /// does. The viewer aggregates with these; a harness test checks that they
    /// select exactly what [`Metric::samples`] does.
    pub fn sql_sample(self) -> Option<&'static str> {
        Some(match self {
            Metric::Ttft => "CASE WHEN status = 'ok' THEN first_token_ns - sent_ns END",
            Metric::TtftFromSchedule => {
                "CASE WHEN status = 'ok' THEN first_token_ns - scheduled_ns END"
            }
            Metric::Itl => return None,
            Metric::Tpot => {
                "CASE WHEN status = 'ok' AND first_token_ns IS NOT NULL AND coalesce(output_tokens_usage, output_tokens_client) >= 2 \
                 THEN (end_ns - first_token_ns) // (coalesce(output_tokens_usage, output_tokens_client) - 1) END"
            }
            Metric::E2e => "CASE WHEN status = 'ok' THEN end_ns - sent_ns END",
            Metric::E2eFromSchedule => "CASE WHEN status = 'ok' THEN end_ns - scheduled_ns END",
            Metric::DispatchLag => "sent_ns - scheduled_ns",
            Metric::OutputTokens => {
                "CASE WHEN status = 'ok' THEN coalesce(output_tokens_usage, output_tokens_client) END"
            }
            Metric::PromptTokens => {
                "CASE WHEN status = 'ok' THEN coalesce(prompt_tokens_usage, prompt_tokens_client) END"
            }
        })
    }

    pub fn scale(self) -> f64 {
        match self.unit() {
            Unit::Ms => 1e6,
            Unit::Tokens => 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> RequestSample {
        RequestSample {
            scheduled_ns: 0,
            sent_ns: 2_000_000,
            first_token_ns: Some(52_000_000),
            end_ns: 92_000_000,
            token_chunk_ns: vec![52_000_000, 62_000_000, 72_000_000, 82_000_000, 92_000_000],
            ok: true,
            output_tokens_usage: Some(5),
            output_tokens_client: Some(4),
            ..Default::default()
        }
    }

    fn collect(m: Metric, r: &RequestSample) -> Vec<i64> {
        let mut v = vec![];
        m.samples(r, |x| v.push(x));
        v
    }

    #[test]
    fn hand_computed_values() {
        let r = req();
        assert_eq!(collect(Metric::Ttft, &r), vec![50_000_000]);
        assert_eq!(collect(Metric::TtftFromSchedule, &r), vec![52_000_000]);
        assert_eq!(collect(Metric::Itl, &r), vec![10_000_000; 4]);
        // (92 - 52) ms / (5 - 1) tokens: usage wins over the client count.
        assert_eq!(collect(Metric::Tpot, &r), vec![10_000_000]);
        assert_eq!(collect(Metric::E2e, &r), vec![90_000_000]);
        assert_eq!(collect(Metric::E2eFromSchedule, &r), vec![92_000_000]);
        assert_eq!(collect(Metric::DispatchLag, &r), vec![2_000_000]);
        assert_eq!(collect(Metric::OutputTokens, &r), vec![5]);
    }

    #[test]
    fn failed_requests_only_count_for_dispatch_lag() {
        let mut r = req();
        r.ok = false;
        for m in Metric::ALL {
            let n = collect(m, &r).len();
            assert_eq!(n, usize::from(m == Metric::DispatchLag), "{m:?}");
        }
    }

    #[test]
    fn unstreamed_response_has_no_per_token_metrics() {
        // A response read in one piece has no first-token stamp and no chunks.
        let mut r = req();
        r.prompt_tokens_usage = Some(3);
        r.first_token_ns = None;
        r.token_chunk_ns.clear();
        for m in Metric::ALL {
            let n = collect(m, &r).len();
            assert_eq!(n == 0, m.needs_stream(), "{m:?}");
        }
    }

    #[test]
    fn tpot_needs_two_tokens() {
        let mut r = req();
        r.output_tokens_usage = Some(1);
        assert!(collect(Metric::Tpot, &r).is_empty());
    }

    #[test]
    fn ids_round_trip() {
        for m in Metric::ALL {
            assert_eq!(Metric::from_id(m.id()), Some(m));
        }
    }
}
