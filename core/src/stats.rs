//! Distributions over all requests of an experiment.
//!
//! Every percentile is read from one HDR histogram fed with every sample of the
//! experiment (3 significant digits: a reported value is within 0.1% of the true
//! order statistic). Percentiles are never averaged across waves, workers or
//! experiments; to combine experiments, merge their histograms.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest trackable value: one hour in nanoseconds.
const MAX_NS: u64 = 3_600_000_000_000;

/// The histogram every recorder uses: 1 ns to one hour, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_NS, 3).expect("valid HDR bounds")
}

/// A recorder of non-negative nanosecond durations (or plain counts).
pub struct Recorder {
    hist: Histogram<u64>,
    /// Exact sum of the recorded values, so the mean does not depend on the
    /// order they were recorded in.
    sum: u128,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Recorder {
            hist: histogram(),
            sum: 0,
        }
    }

    /// Records one value; negatives are clamped to zero and values above the
    /// trackable maximum are saturated to it.
    pub fn record(&mut self, value: i64) {
        let v = value.clamp(0, MAX_NS as i64) as u64;
        self.hist.saturating_record(v);
        self.sum += v as u128;
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Merges another recorder's samples into this one.
    pub fn merge(&mut self, other: &Recorder) {
        self.hist.add(&other.hist).expect("same bounds");
        self.sum += other.sum;
    }

    /// The value at quantile `q` in [0, 1] (None when empty).
    pub fn quantile(&self, q: f64) -> Option<u64> {
        (!self.hist.is_empty()).then(|| self.hist.value_at_quantile(q))
    }

    /// Summarises in the recorder's unit divided by `scale` (1e6 turns ns into ms).
    pub fn summarize(&self, scale: f64) -> Distribution {
        if self.hist.is_empty() {
            return Distribution::default();
        }
        let q = |p: f64| self.hist.value_at_quantile(p) as f64 / scale;
        Distribution {
            count: self.hist.len(),
            mean: self.sum as f64 / self.hist.len() as f64 / scale,
            min: self.hist.min() as f64 / scale,
            p50: q(0.50),
            p90: q(0.90),
            p95: q(0.95),
            p99: q(0.99),
            max: self.hist.max() as f64 / scale,
        }
    }
}

/// Rounds values the way a [`Recorder`] stores them, so that exact order
/// statistics of rounded values equal the recorder's percentiles.
pub struct Quantizer {
    hist: Histogram<u64>,
}

impl Default for Quantizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Quantizer {
    pub fn new() -> Self {
        Quantizer { hist: histogram() }
    }

    /// The value a recorder reports for `value` (clamped like [`Recorder::record`]):
    /// the highest value of its histogram bucket.
    pub fn quantize(&self, value: i64) -> u64 {
        self.hist
            .highest_equivalent(value.clamp(0, MAX_NS as i64) as u64)
    }
}

/// Summary statistics of one metric over all requests of an experiment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    pub count: u64,
    pub mean: f64,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Distribution {
    /// The named percentile (`p50`, `p90`, `p95`, `p99`, `mean`, `min`, `max`).
    pub fn stat(&self, name: &str) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        Some(match name {
            "mean" => self.mean,
            "min" => self.min,
            "p50" => self.p50,
            "p90" => self.p90,
            "p95" => self.p95,
            "p99" => self.p99,
            "max" => self.max,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_over_all_samples_not_averages() {
        // Two "waves": one fast (1..=90 ms) and one slow (910..=1000 ms).
        // The average of per-wave p99s would be ~545 ms; the p99 over all
        // 180 samples must be in the slow tail.
        let mut r = Recorder::new();
        for i in 1..=90 {
            r.record(i * 1_000_000);
        }
        for i in 910..=1000 {
            r.record(i * 1_000_000);
        }
        let d = r.summarize(1e6);
        assert_eq!(d.count, 181);
        assert!((d.p99 - 999.0).abs() <= 1.0, "p99 {}", d.p99);
        assert!((d.p50 - 910.0).abs() <= 1.0, "p50 {}", d.p50);
        assert!((d.min - 1.0).abs() < 0.01);
    }

    #[test]
    fn precision_is_three_significant_digits() {
        let mut r = Recorder::new();
        r.record(123_456_789);
        let d = r.summarize(1e6);
        assert!((d.p50 - 123.456789).abs() / 123.456789 < 1e-3);
        assert!((d.mean - 123.456789).abs() < 1e-9, "mean is exact");
    }

    #[test]
    fn merge_equals_recording_everything() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        let mut all = Recorder::new();
        for i in 0..1000 {
            let v = (i * 7919 % 1000 + 1) * 1000;
            if i % 2 == 0 {
                a.record(v)
            } else {
                b.record(v)
            }
            all.record(v);
        }
        a.merge(&b);
        assert_eq!(a.summarize(1.0), all.summarize(1.0));
    }

    #[test]
    fn nearest_rank_of_quantized_values_equals_the_recorders_percentiles() {
        let q = Quantizer::new();
        let mut r = Recorder::new();
        let mut v = vec![];
        for i in 0..997i64 {
            let x = (i * 7919 % 5003) * 12_345 + 1;
            r.record(x);
            v.push(q.quantize(x) as f64 / 1e6);
        }
        v.sort_by(f64::total_cmp);
        let d = r.summarize(1e6);
        for (p, want) in [(0.5, d.p50), (0.9, d.p90), (0.95, d.p95), (0.99, d.p99)] {
            let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
            assert_eq!(v[rank - 1], want, "p{p}");
        }
    }

    #[test]
    fn empty_has_no_stats() {
        let d = Recorder::new().summarize(1e6);
        assert_eq!(d.count, 0);
        assert_eq!(d.stat("p99"), None);
    }
}
