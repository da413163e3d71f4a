//! Per-request service-level objectives (SLOs), SLO attainment and goodput.
//!
//! - A request **attains** the SLO when it succeeded and met every limit the
//!   SLO sets: TTFT ≤ `ttft_ms`, TPOT ≤ `tpot_ms`, e2e ≤ `e2e_ms`, each as
//!   [`Metric::samples`] defines it (measured from the actual send). A request
//!   with a TTFT limit but no first token (a response that was not streamed)
//!   does not attain it; one with a single output token has no TPOT and meets
//!   a TPOT limit (there is no gap between tokens to be late).
//! - **Attainment** of an experiment is attained / measured requests (warm-up
//!   excluded, failures included in the denominator), with its 95% Wilson
//!   score interval (Wilson 1927, "Probable inference, the law of succession,
//!   and statistical inference", JASA 22:209–212).
//! - **Goodput** is attaining requests per second over the measurement window
//!   ([`crate::summary::measurement_window`]), the window throughput is
//!   counted over (DistServe, Zhong et al. 2024, §2).

use crate::metrics::Metric;
use crate::sample::RequestSample;
use serde::{Deserialize, Serialize};

/// The 0.975 quantile of the standard normal: a two-sided 95% interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// Per-request limits in ms; `None`: no limit on that metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ttft_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tpot_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub e2e_ms: Option<f64>,
}

impl Slo {
    /// The limits set, as (metric, ms), in the order TTFT, TPOT, e2e.
    pub fn limits(&self) -> Vec<(Metric, f64)> {
        [
            (Metric::Ttft, self.ttft_ms),
            (Metric::Tpot, self.tpot_ms),
            (Metric::E2e, self.e2e_ms),
        ]
        .into_iter()
        .filter_map(|(m, l)| l.map(|l| (m, l)))
        .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.limits().is_empty()
    }

    /// True when a limit is on a metric only a streamed response has.
    pub fn needs_stream(&self) -> bool {
        self.ttft_ms.is_some() || self.tpot_ms.is_some()
    }

    /// Whether `r` attains the SLO (see the module header).
    pub fn attains(&self, r: &RequestSample) -> bool {
        r.ok && self.limits().iter().all(|(m, limit)| {
            let mut v = None;
            m.samples(r, |x| v = Some(x));
            let limit_ns = limit * m.scale();
            match (m, v) {
                (_, Some(x)) => x as f64 <= limit_ns,
                // No gap between tokens to be late.
                (Metric::Tpot, None) => r.first_token_ns.is_some(),
                (_, None) => false,
            }
        })
    }
}

/// SLO attainment of one experiment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Attainment {
    /// Measured requests (warm-up excluded, failures included).
    pub measured: u64,
    /// Of those, the requests that attained the SLO.
    pub attained: u64,
    /// attained / measured.
    pub fraction: f64,
    /// The 95% Wilson score interval of `fraction`.
    pub low: f64,
    pub high: f64,
    /// Attaining requests per second over the measurement window; 0 when
    /// the window is empty.
    pub goodput: f64,
}

/// The attainment of `slo` over an experiment's requests; `None` without a
/// measured request.
pub fn attainment(samples: &[RequestSample], slo: &Slo) -> Option<Attainment> {
    let measured = samples.iter().filter(|r| !r.warmup).count() as u64;
    if measured == 0 {
        return None;
    }
    let attained = samples
        .iter()
        .filter(|r| !r.warmup && slo.attains(r))
        .count() as u64;
    let window_s = crate::summary::measurement_window(samples)
        .map(|(a, b)| (b - a).max(0) as f64 / 1e9)
        .unwrap_or(0.0);
    let (low, high) = wilson(attained, measured, Z95);
    Some(Attainment {
        measured,
        attained,
        fraction: attained as f64 / measured as f64,
        low,
        high,
        goodput: if window_s > 0.0 {
            attained as f64 / window_s
        } else {
            0.0
        },
    })
}

/// The Wilson score interval of `k` successes in `n` trials at normal
/// quantile `z`: (centre ∓ half) with centre = (p + z²/2n) / (1 + z²/n) and
/// half = z / (1 + z²/n) · √(p(1−p)/n + z²/4n²), p = k/n. `(0, 1)` when n = 0.
pub fn wilson(k: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = z * z;
    let d = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / d;
    let half = z / d * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(ok: bool, ttft_ms: Option<i64>, e2e_ms: i64, tokens: u64) -> RequestSample {
        let ms = 1_000_000;
        RequestSample {
            ok,
            sent_ns: 0,
            scheduled_ns: 0,
            first_token_ns: ttft_ms.map(|t| t * ms),
            end_ns: e2e_ms * ms,
            output_tokens_usage: Some(tokens),
            ..Default::default()
        }
    }

    #[test]
    fn a_request_attains_when_it_succeeded_and_met_every_limit() {
        let slo = Slo {
            ttft_ms: Some(500.0),
            tpot_ms: Some(50.0),
            e2e_ms: Some(8000.0),
        };
        // TPOT = (e2e − ttft) / (tokens − 1) = (2500 − 500) / 40 = 50 ms: on the limit.
        assert!(slo.attains(&req(true, Some(500), 2500, 41)));
        assert!(!slo.attains(&req(true, Some(501), 2501, 41)), "TTFT");
        assert!(!slo.attains(&req(true, Some(100), 2200, 41)), "TPOT 52.5");
        assert!(!slo.attains(&req(false, Some(100), 200, 3)), "failed");
        assert!(
            slo.attains(&req(true, Some(100), 100, 1)),
            "one token: no TPOT"
        );
        assert!(
            !slo.attains(&req(true, None, 100, 5)),
            "not streamed: no TTFT"
        );
        let e2e_only = Slo {
            e2e_ms: Some(8000.0),
            ..Default::default()
        };
        assert!(e2e_only.attains(&req(true, None, 8000, 5)));
        assert!(!e2e_only.attains(&req(true, None, 8001, 5)));
    }

    #[test]
    fn attainment_and_goodput_by_hand() {
        // Ten measured requests scheduled at 0..=9 s, each 1 s long: window 0–10 s.
        // Seven attain (e2e ≤ 1500 ms), two are too slow, one failed; one
        // warm-up request is left out.
        let slo = Slo {
            e2e_ms: Some(1500.0),
            ..Default::default()
        };
        let s = 1_000_000_000;
        let mut xs = vec![];
        for i in 0..10i64 {
            let dur = if i == 3 || i == 6 { 2 * s } else { s };
            xs.push(RequestSample {
                ok: i != 8,
                scheduled_ns: i * s,
                sent_ns: i * s,
                end_ns: i * s + dur,
                ..Default::default()
            });
        }
        // Request 9 ends at 10 s; request 6 (2 s) at 8 s.
        xs.push(RequestSample {
            warmup: true,
            ok: true,
            end_ns: s,
            ..Default::default()
        });
        let a = attainment(&xs, &slo).unwrap();
        assert_eq!((a.measured, a.attained), (10, 7));
        assert_eq!(a.fraction, 0.7);
        assert!((a.goodput - 0.7).abs() < 1e-12, "7 over a 10 s window");
        // Wilson 95% for 7/10: 0.3968 .. 0.8922.
        assert!((a.low - 0.3968).abs() < 1e-4, "{}", a.low);
        assert!((a.high - 0.8922).abs() < 1e-4, "{}", a.high);
        assert_eq!(attainment(&xs[10..], &slo), None, "warm-up only");
    }

    #[test]
    fn wilson_edges() {
        assert_eq!(wilson(0, 0, Z95), (0.0, 1.0));
        let (lo, hi) = wilson(0, 20, Z95);
        assert_eq!(lo, 0.0);
        assert!((hi - 0.1611).abs() < 1e-4, "{hi}");
        let (lo, hi) = wilson(20, 20, Z95);
        assert!((lo - 0.8389).abs() < 1e-4, "{lo}");
        assert_eq!(hi, 1.0);
    }
}
