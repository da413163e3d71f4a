//! Comparing two runs of the same experiment: is a change in a latency
//! statistic real, or noise?
//!
//! Method (percentile bootstrap of the difference): resample the old and the
//! new per-request samples independently, with replacement, `iterations` times
//! (seeded, so the verdict is reproducible); compute the statistic (median or
//! p95, nearest-rank) of each resample and their difference `new − old`. The
//! 95% confidence interval of the difference is the 2.5th and 97.5th
//! percentiles of those differences. The change is *significant* when the
//! interval excludes zero, and a *regression* when it is significant, in the
//! bad direction (higher latency), and larger than the threshold relative to
//! the old value.

use crate::rng::Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stat {
    P50,
    P95,
}

impl Stat {
    pub fn q(self) -> f64 {
        match self {
            Stat::P50 => 0.50,
            Stat::P95 => 0.95,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Stat::P50 => "p50",
            Stat::P95 => "p95",
        }
    }
}

impl Comparison {
    /// The verdict in words: `REGRESSION`, `improved` (significant and faster
    /// by more than `threshold`), `significant, within threshold`, or `no
    /// significant change`.
    pub fn verdict(&self, threshold: f64) -> &'static str {
        if self.regression {
            "REGRESSION"
        } else if self.significant && self.change < -threshold {
            "improved"
        } else if self.significant {
            "significant, within threshold"
        } else {
            "no significant change"
        }
    }
}

/// Resamples per comparison in `harness diff` and the viewer's diff page.
pub const ITERATIONS: usize = 2000;

/// The bootstrap seed of one comparison, from its experiment id, metric id and
/// statistic (the first 8 bytes of their SHA-256), so each verdict is
/// reproducible and the harness and the viewer agree.
pub fn seed(experiment_id: &str, metric: &str, stat: Stat) -> u64 {
    let h = crate::hash::sha256_hex(format!("{experiment_id}/{metric}/{}", stat.name()).as_bytes());
    u64::from_str_radix(&h[..16], 16).expect("sha256_hex is hex")
}

/// Nearest-rank quantile of sorted values.
pub fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub old: f64,
    pub new: f64,
    /// (new − old) / old.
    pub change: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub significant: bool,
    /// Significant, higher, and above the threshold.
    pub regression: bool,
}

pub fn compare(
    old: &[f64],
    new: &[f64],
    stat: Stat,
    threshold: f64,
    iterations: usize,
    seed: u64,
) -> Option<Comparison> {
    if old.is_empty() || new.is_empty() {
        return None;
    }
    let sorted = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
        s
    };
    let (so, sn) = (sorted(old), sorted(new));
    let (o, n) = (
        quantile_sorted(&so, stat.q()),
        quantile_sorted(&sn, stat.q()),
    );
    let mut rng = Rng::new(seed);
    let mut buf_o = vec![0.0; old.len()];
    let mut buf_n = vec![0.0; new.len()];
    let mut diffs = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        for x in buf_o.iter_mut() {
            *x = so[rng.range_inclusive(0, so.len() as u64 - 1) as usize];
        }
        for x in buf_n.iter_mut() {
            *x = sn[rng.range_inclusive(0, sn.len() as u64 - 1) as usize];
        }
        buf_o.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
        buf_n.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
        diffs.push(quantile_sorted(&buf_n, stat.q()) - quantile_sorted(&buf_o, stat.q()));
    }
    diffs.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    let (lo, hi) = (
        quantile_sorted(&diffs, 0.025),
        quantile_sorted(&diffs, 0.975),
    );
    let change = if o != 0.0 { (n - o) / o } else { 0.0 };
    let significant = lo > 0.0 || hi < 0.0;
    Some(Comparison {
        old: o,
        new: n,
        change,
        ci_low: lo,
        ci_high: hi,
        significant,
        regression: significant && lo > 0.0 && change > threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noisy(seed: u64, n: usize, base: f64) -> Vec<f64> {
        let mut r = Rng::new(seed);
        (0..n).map(|_| base + 10.0 * r.normal()).collect()
    }

    #[test]
    fn a_real_slowdown_is_a_significant_regression() {
        let c = compare(
            &noisy(1, 300, 100.0),
            &noisy(2, 300, 130.0),
            Stat::P50,
            0.05,
            1000,
            7,
        )
        .unwrap();
        assert!(c.significant && c.regression, "{c:?}");
        assert!(c.ci_low > 20.0 && c.ci_high < 40.0, "{c:?}");
    }

    #[test]
    fn same_distribution_is_not_significant_beyond_the_false_positive_rate() {
        // 40 pairs drawn from one distribution: a 95% interval should exclude 0
        // about 5% of the time; allow up to 5 of 40.
        let flagged = (0..40)
            .filter(|i| {
                compare(
                    &noisy(100 + i, 200, 100.0),
                    &noisy(200 + i, 200, 100.0),
                    Stat::P50,
                    0.05,
                    500,
                    *i,
                )
                .unwrap()
                .significant
            })
            .count();
        assert!(flagged <= 5, "{flagged} of 40 flagged");
    }

    #[test]
    fn improvements_are_not_regressions_and_small_changes_stay_under_threshold() {
        let c = compare(
            &noisy(1, 300, 130.0),
            &noisy(2, 300, 100.0),
            Stat::P95,
            0.05,
            500,
            1,
        )
        .unwrap();
        assert!(c.significant && !c.regression);
        let c = compare(
            &noisy(1, 3000, 100.0),
            &noisy(2, 3000, 102.0),
            Stat::P50,
            0.05,
            300,
            1,
        )
        .unwrap();
        assert!(!c.regression, "2% is below a 5% threshold: {c:?}");
    }

    #[test]
    fn nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&v, 0.5), 2.0);
        assert_eq!(quantile_sorted(&v, 0.95), 4.0);
        assert!(compare(&[], &v, Stat::P50, 0.05, 10, 1).is_none());
    }
}
