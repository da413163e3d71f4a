//! Capacity search: the highest load (open-loop rate or closed-loop
//! concurrency) at which an endpoint holds the budget, and the rule that ends
//! a probe early once its budget is clearly broken.
//!
//! **Search** ([`Search`]), as GuideLLM's goodput profile and MLPerf's server
//! scenario do: probe `start`; while probes pass, double (never past `max`);
//! while they fail and nothing passed yet, halve (never under `min`). Once one
//! load passed (`lo`) and a higher one failed (`hi`), bisect: probe the
//! midpoint, which becomes the new `lo` or `hi`. The search has converged when
//! `(hi − lo) / lo ≤ precision` (for concurrency, also when `hi − lo ≤ 1`):
//! the capacity lies in `[lo, hi]` and `lo` is within `precision` of it. It
//! stops unconverged when `max_probes` probes ran. Loads are rounded to 4
//! significant digits (concurrency to whole workers), so that a rerun asks for
//! the same loads and finds its completed probes.
//!
//! **Early stop** ([`EarlyStop`]): fed each measured request as it completes,
//! it says when the probe's verdict can no longer be a pass:
//! - *certain*, when the plan's number of measured requests `N` is known: more
//!   than `N − ⌈q·N⌉` requests over a `pQ` limit (then fewer than `⌈q·n⌉` of
//!   the `n ≤ N` samples can lie at or under it, so the nearest-rank quantile
//!   exceeds it), one over a `max` limit, more than `⌊e·N⌋` failures with an
//!   error-rate limit `e`, more than `N − ⌈t·N⌉` requests missing the SLO
//!   with an attainment target `t`;
//! - *clear*, after at least [`EarlyStop::MIN_EVIDENCE`] requests, when the
//!   99.9% Wilson interval of the fraction over a limit, of failures, or of
//!   SLO attainment lies wholly on the wrong side of the limit. Requests
//!   complete fastest-first under overload, so early evidence understates
//!   latency: the rule errs towards running on.

use crate::metrics::Metric;
use crate::recommend::Constraints;
use crate::sample::RequestSample;
use crate::slo::{wilson, Slo};
use serde::{Deserialize, Serialize};

/// What is searched: `rate` (open loop, requests/s) or `concurrency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Axis {
    Rate,
    Concurrency,
}

/// A search's settings (`load.search`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SearchSpec {
    pub axis: Axis,
    /// The first load probed.
    pub start: f64,
    /// Relative width `(hi − lo) / lo` at which the search ends.
    pub precision: f64,
    /// Most probes.
    pub max_probes: u32,
    /// The lowest load probed when halving.
    pub min: f64,
    /// The highest load probed when doubling; `None`: unbounded.
    pub max: Option<f64>,
}

/// One probe: a load and whether the budget held there.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub load: f64,
    pub passed: bool,
}

/// Where a search ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Found {
    /// The highest load that held the budget; `None`: none did.
    pub lo: Option<f64>,
    /// The lowest load that broke it; `None`: none did.
    pub hi: Option<f64>,
    /// True when `[lo, hi]` is as narrow as the precision asks.
    pub converged: bool,
    /// Why it ended, in words.
    pub why: String,
    pub probes: Vec<Probe>,
}

/// The search's next step.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Probe(f64),
    Done(Found),
}

/// The search state: the probes so far. [`Search::next`] is a pure function
/// of them, so replaying recorded verdicts reproduces the same loads.
#[derive(Debug, Clone)]
pub struct Search {
    pub spec: SearchSpec,
    pub probes: Vec<Probe>,
}

/// `x` rounded to 4 significant digits.
pub fn round4(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let mag = 10f64.powi(3 - x.abs().log10().floor() as i32);
    (x * mag).round() / mag
}

impl Search {
    pub fn new(spec: SearchSpec) -> Search {
        Search {
            spec,
            probes: vec![],
        }
    }

    fn round(&self, x: f64) -> f64 {
        match self.spec.axis {
            Axis::Rate => round4(x),
            Axis::Concurrency => x.round().max(1.0),
        }
    }

    /// The highest passing and lowest failing loads so far.
    pub fn bounds(&self) -> (Option<f64>, Option<f64>) {
        let lo = self
            .probes
            .iter()
            .filter(|p| p.passed)
            .map(|p| p.load)
            .fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.max(x))));
        let hi = self
            .probes
            .iter()
            .filter(|p| !p.passed && lo.is_none_or(|l| p.load > l))
            .map(|p| p.load)
            .fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.min(x))));
        (lo, hi)
    }

    pub fn record(&mut self, load: f64, passed: bool) {
        self.probes.push(Probe { load, passed });
    }

    fn done(&self, converged: bool, why: String) -> Next {
        let (lo, hi) = self.bounds();
        Next::Done(Found {
            lo,
            hi,
            converged,
            why,
            probes: self.probes.clone(),
        })
    }

    pub fn next(&self) -> Next {
        let s = &self.spec;
        let (lo, hi) = self.bounds();
        let unit = match s.axis {
            Axis::Rate => "/s",
            Axis::Concurrency => " concurrent",
        };
        let narrow = |lo: f64, hi: f64| {
            (hi - lo) / lo <= s.precision + 1e-12 || (s.axis == Axis::Concurrency && hi - lo <= 1.0)
        };
        if let (Some(l), Some(h)) = (lo, hi) {
            if narrow(l, h) {
                let within = if (h - l) / l <= s.precision + 1e-12 {
                    format!("within {}%", s.precision * 100.0)
                } else {
                    "within one worker".to_string()
                };
                return self.done(true, format!("capacity in [{l}, {h}]{unit}: {within}"));
            }
        }
        if self.probes.len() as u32 >= s.max_probes {
            return self.done(
                false,
                format!("stopped after {} probes (max_probes)", s.max_probes),
            );
        }
        let x = match (lo, hi) {
            (None, None) => s.start,
            (Some(l), None) => {
                let cap = s.max.unwrap_or(f64::INFINITY);
                if l >= cap {
                    return self.done(
                        false,
                        format!("budget held at the highest load allowed ({l}{unit}, max)"),
                    );
                }
                (l * 2.0).min(cap)
            }
            (None, Some(h)) => {
                if h <= s.min {
                    return self.done(
                        false,
                        format!("budget broken even at the lowest load allowed ({h}{unit}, min)"),
                    );
                }
                (h / 2.0).max(s.min)
            }
            (Some(l), Some(h)) => (l + h) / 2.0,
        };
        let x = self.round(x);
        // Rounding may land on a load already probed (a narrow concurrency
        // interval): then the interval cannot narrow further.
        if self.probes.iter().any(|p| p.load == x) {
            return self.done(
                lo.is_some() && hi.is_some(),
                "the loads left to probe round to ones already probed".into(),
            );
        }
        Next::Probe(x)
    }
}

/// One latency limit early stop watches: a per-request metric and the
/// quantile its statistic names (1.0 for `max`).
#[derive(Debug, Clone)]
struct Watch {
    key: String,
    metric: Metric,
    q: f64,
    limit_ns: f64,
    over: u64,
    samples: u64,
}

/// The early-stop rule of one probe (see the module header).
#[derive(Debug, Clone)]
pub struct EarlyStop {
    planned: Option<u64>,
    watches: Vec<Watch>,
    max_error_rate: f64,
    slo: Option<(Slo, f64)>,
    seen: u64,
    failed: u64,
    attained: u64,
}

/// The normal quantile of a two-sided 99.9% interval: "clearly" broken.
const Z999: f64 = 3.290_526_731_491_926;

impl EarlyStop {
    /// Requests seen before the statistical rule may stop a probe.
    pub const MIN_EVIDENCE: u64 = 30;

    /// `planned`: the measured requests the plan will send, when it says
    /// (a request count rather than a duration).
    pub fn new(k: &Constraints, planned: Option<u64>) -> EarlyStop {
        let watches = k
            .latency
            .iter()
            .filter_map(|(key, limit)| {
                let (m, stat) = key.split_once('.')?;
                let metric = Metric::from_id(m).filter(|m| *m != Metric::Itl)?;
                let q = match stat {
                    "max" => 1.0,
                    s => s.strip_prefix('p')?.parse::<f64>().ok()? / 100.0,
                };
                Some(Watch {
                    key: key.clone(),
                    metric,
                    q,
                    limit_ns: limit * metric.scale(),
                    over: 0,
                    samples: 0,
                })
            })
            .collect();
        EarlyStop {
            planned,
            watches,
            max_error_rate: k.max_error_rate,
            slo: k.slo.zip(k.min_attainment),
            seen: 0,
            failed: 0,
            attained: 0,
        }
    }

    /// Feeds one completed request (warm-up requests are ignored); returns
    /// why the probe can stop, once it can.
    pub fn observe(&mut self, r: &RequestSample) -> Option<String> {
        if r.warmup {
            return None;
        }
        self.seen += 1;
        if !r.ok {
            self.failed += 1;
        }
        if let Some((slo, _)) = &self.slo {
            if slo.attains(r) {
                self.attained += 1;
            }
        }
        for w in &mut self.watches {
            let mut v = None;
            w.metric.samples(r, |x| v = Some(x));
            if let Some(x) = v {
                w.samples += 1;
                if x as f64 > w.limit_ns {
                    w.over += 1;
                }
            }
        }
        self.verdict()
    }

    fn verdict(&self) -> Option<String> {
        let n = self.seen;
        let after = |what: String| {
            let of = self.planned.map(|p| format!(" of {p}")).unwrap_or_default();
            format!("stopped early after {n}{of} measured requests: {what}")
        };
        let clear = n >= Self::MIN_EVIDENCE;
        for w in &self.watches {
            let limit_ms = w.limit_ns / w.metric.scale();
            if w.q >= 1.0 && w.over > 0 {
                return Some(after(format!(
                    "a request's {} was over {limit_ms} ms, so {} > {limit_ms} ms",
                    w.metric.id(),
                    w.key
                )));
            }
            if let Some(p) = self.planned {
                let allowed = p - (w.q * p as f64 - 1e-9).ceil() as u64;
                if w.over > allowed {
                    return Some(after(format!(
                        "{} had {} > {limit_ms} ms, more than the {allowed} that {} ≤ {limit_ms} ms allows",
                        w.over,
                        w.metric.id(),
                        w.key
                    )));
                }
            }
            if clear && w.samples >= Self::MIN_EVIDENCE {
                let (low, _) = wilson(w.over, w.samples, Z999);
                if low > 1.0 - w.q {
                    return Some(after(format!(
                        "{} of {} had {} > {limit_ms} ms; the 99.9% interval of that share is above {:.1}%, so {} > {limit_ms} ms",
                        w.over,
                        w.samples,
                        w.metric.id(),
                        (1.0 - w.q) * 100.0,
                        w.key
                    )));
                }
            }
        }
        let e = self.max_error_rate;
        if let Some(p) = self.planned {
            // error rate ≤ e holds with at most ⌊e·N⌋ failures.
            if self.failed > (e * p as f64 + 1e-9).floor() as u64 {
                return Some(after(format!(
                    "{} failed, so the error rate exceeds {:.2}%",
                    self.failed,
                    e * 100.0
                )));
            }
        }
        if clear && wilson(self.failed, n, Z999).0 > e {
            return Some(after(format!(
                "{} failed; the 99.9% interval of the error rate is above {:.2}%",
                self.failed,
                e * 100.0
            )));
        }
        if let Some((_, target)) = self.slo {
            let missed = n - self.attained;
            if let Some(p) = self.planned {
                // attainment ≥ t holds with at most N − ⌈t·N⌉ misses.
                if missed > p - (target * p as f64 - 1e-9).ceil() as u64 {
                    return Some(after(format!(
                        "{missed} missed the SLO, so attainment is below {:.2}%",
                        target * 100.0
                    )));
                }
            }
            if clear && wilson(self.attained, n, Z999).1 < target {
                return Some(after(format!(
                    "{} of {n} attained the SLO; the 99.9% interval of attainment is below {:.2}%",
                    self.attained,
                    target * 100.0
                )));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(axis: Axis, start: f64) -> SearchSpec {
        SearchSpec {
            axis,
            start,
            precision: 0.05,
            max_probes: 20,
            min: if axis == Axis::Rate { 0.01 } else { 1.0 },
            max: None,
        }
    }

    /// Runs a search against a true capacity; returns what it found.
    fn run(s: SearchSpec, capacity: f64) -> Found {
        let mut x = Search::new(s);
        loop {
            match x.next() {
                Next::Probe(l) => x.record(l, l <= capacity),
                Next::Done(f) => return f,
            }
        }
    }

    #[test]
    fn doubles_then_bisects_to_the_precision() {
        let f = run(spec(Axis::Rate, 1.0), 37.3);
        assert!(f.converged, "{f:?}");
        let (lo, hi) = (f.lo.unwrap(), f.hi.unwrap());
        assert!(lo <= 37.3 && 37.3 < hi);
        assert!((hi - lo) / lo <= 0.05 + 1e-12);
        let loads: Vec<f64> = f.probes.iter().map(|p| p.load).collect();
        assert_eq!(&loads[..7], &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]);
        assert_eq!(loads[7], 48.0, "then the midpoint");
        assert!(f.probes.len() <= 12, "{loads:?}");
    }

    #[test]
    fn halves_when_the_start_fails_and_gives_up_at_min() {
        let f = run(spec(Axis::Rate, 16.0), 3.0);
        assert!(f.converged);
        assert!(f.lo.unwrap() <= 3.0 && f.hi.unwrap() > 3.0);
        assert_eq!(f.probes[1].load, 8.0);
        let never = run(spec(Axis::Rate, 1.0), 0.001);
        assert_eq!((never.lo, never.converged), (None, false));
        assert!(never.why.contains("lowest load"), "{}", never.why);
    }

    #[test]
    fn concurrency_is_whole_and_max_caps_the_doubling() {
        let f = run(spec(Axis::Concurrency, 1.0), 13.0);
        assert!(f.converged);
        assert_eq!((f.lo, f.hi), (Some(13.0), Some(14.0)));
        assert!(f.probes.iter().all(|p| p.load.fract() == 0.0));
        let mut s = spec(Axis::Rate, 1.0);
        s.max = Some(10.0);
        let f = run(s, 1000.0);
        assert_eq!((f.lo, f.hi, f.converged), (Some(10.0), None, false));
        assert!(f.why.contains("highest load allowed"));
        s.max_probes = 3;
        let f = run(s, 1000.0);
        assert!(f.why.contains("3 probes"), "{}", f.why);
    }

    #[test]
    fn rounding_keeps_four_digits() {
        assert_eq!(round4(37.34567), 37.35);
        assert_eq!(round4(0.0123456), 0.01235);
        assert_eq!(round4(123456.0), 123500.0);
    }

    fn sample(e2e_ms: i64, ok: bool) -> RequestSample {
        RequestSample {
            ok,
            end_ns: e2e_ms * 1_000_000,
            ..Default::default()
        }
    }

    fn e2e_p95(limit: f64) -> Constraints {
        Constraints {
            latency: vec![("e2e.p95".into(), limit)],
            ..Default::default()
        }
    }

    #[test]
    fn a_p95_that_cannot_hold_stops_at_the_first_request_that_proves_it() {
        // 100 planned: p95 ≤ 1000 allows 100 − 95 = 5 requests over.
        let mut es = EarlyStop::new(&e2e_p95(1000.0), Some(100));
        for _ in 0..5 {
            assert_eq!(es.observe(&sample(2000, true)), None);
        }
        let why = es
            .observe(&sample(2000, true))
            .expect("the sixth proves it");
        assert!(why.contains("after 6 of 100"), "{why}");
        assert!(why.contains("e2e.p95"), "{why}");
    }

    #[test]
    fn without_a_count_it_stops_when_the_interval_is_clear_and_not_before() {
        let mut es = EarlyStop::new(&e2e_p95(1000.0), None);
        // 10% over a p95 limit: not clear after 30 (Wilson 99.9% low ≈ 2%).
        for i in 0..60 {
            let over = i % 10 == 0;
            assert_eq!(
                es.observe(&sample(if over { 2000 } else { 10 }, true)),
                None
            );
        }
        // Every request over: clear from the 30th on.
        let mut es = EarlyStop::new(&e2e_p95(1000.0), None);
        let stopped = (1..=40).find(|_| es.observe(&sample(2000, true)).is_some());
        assert_eq!(stopped, Some(30));
        // Warm-up requests count for nothing.
        let mut es = EarlyStop::new(&e2e_p95(1000.0), Some(10));
        let mut w = sample(9999, true);
        w.warmup = true;
        assert_eq!(es.observe(&w), None);
        assert_eq!(es.seen, 0);
    }

    #[test]
    fn errors_attainment_and_max() {
        let k = Constraints {
            max_error_rate: 0.02,
            ..Default::default()
        };
        let mut es = EarlyStop::new(&k, Some(100));
        assert_eq!(es.observe(&sample(10, false)), None);
        assert_eq!(es.observe(&sample(10, false)), None);
        assert!(es
            .observe(&sample(10, false))
            .unwrap()
            .contains("error rate"));
        let k = Constraints {
            slo: Some(Slo {
                e2e_ms: Some(100.0),
                ..Default::default()
            }),
            min_attainment: Some(0.9),
            ..Default::default()
        };
        let mut es = EarlyStop::new(&k, Some(50));
        let stopped = (1..=50).find(|_| es.observe(&sample(200, true)).is_some());
        assert_eq!(stopped, Some(6), "5 misses of 50 are allowed at 90%");
        let k = Constraints {
            latency: vec![("ttft.max".into(), 100.0)],
            ..Default::default()
        };
        let mut es = EarlyStop::new(&k, None);
        let mut r = sample(500, true);
        r.first_token_ns = Some(200_000_000);
        assert!(es.observe(&r).unwrap().contains("ttft.max"));
    }
}
