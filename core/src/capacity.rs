//! Capacity planning: how many instances of a type serve R requests per
//! minute within a latency budget, and what that costs.
//!
//! **Per-instance capacity.** From an instance type's measured load levels
//! (each: request throughput, the budget metric, error rate), the highest rate
//! one instance sustains within budget:
//! - the highest throughput among levels that meet the budget;
//! - if a higher level failed it, linear interpolation on the budget metric
//!   between the last passing and the first failing level (never past the
//!   failing one);
//! - never extrapolated past the highest level measured: when even that level
//!   meets the budget, capacity is its throughput and `budget_reached` is false
//!   (the true capacity may be higher);
//! - `None` when no level meets the budget.
//!
//! Measured throughput is divided by the endpoint's instance count.
//!
//! **Plan for R req/min:** N = ceil(R / 60 / per-instance rate); $/hour = N ·
//! price; $/request = $/hour / (R · 60).
//!
//! **Heatmap markers** per target rate: *least cost* is the lowest $/hour,
//! *fewest instances* the lowest N, and the *best choice* is the least-cost
//! option, ties broken by fewer instances, then more headroom (higher
//! per-instance capacity), then the instance type's name.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// One measured load level of one instance type.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Successful requests per second, whole endpoint.
    pub throughput: f64,
    /// The budget metric (e.g. e2e p95, ms).
    pub metric: f64,
    pub error_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    /// Requests per second one instance sustains within budget.
    pub per_instance_rps: f64,
    /// False when the budget held at the highest level measured.
    pub budget_reached: bool,
    /// Set when a capacity search found it ([`crate::search`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub searched: Option<Searched>,
}

/// A searched capacity's interval, per instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Searched {
    /// Requests per second at the highest load that held the budget.
    pub low_rps: f64,
    /// At the lowest load that broke it: the offered rate (open loop) or the
    /// measured throughput (closed loop); `None` when no load broke it.
    pub high_rps: Option<f64>,
    /// True when the interval is as narrow as the search's precision.
    pub converged: bool,
    pub probes: usize,
    /// Why the search ended, in words.
    pub why: String,
}

pub fn per_instance_capacity(
    points: &[Point],
    limit: f64,
    max_error_rate: f64,
    instance_count: u32,
) -> Option<Capacity> {
    let mut pts: Vec<Point> = points.to_vec();
    pts.sort_by(|a, b| {
        a.throughput
            .partial_cmp(&b.throughput)
            .unwrap_or(Ordering::Equal)
    });
    let ok = |p: &Point| p.metric <= limit && p.error_rate <= max_error_rate;
    let best = pts
        .iter()
        .enumerate()
        .filter(|(_, p)| ok(p))
        .max_by(|a, b| {
            a.1.throughput
                .partial_cmp(&b.1.throughput)
                .unwrap_or(Ordering::Equal)
        })?;
    let (i, pass) = (best.0, *best.1);
    let n = instance_count.max(1) as f64;
    let Some(fail) = pts[i + 1..].iter().find(|p| !ok(p)).copied() else {
        return Some(Capacity {
            per_instance_rps: pass.throughput / n,
            budget_reached: false,
            searched: None,
        });
    };
    // Interpolate on the metric when the failing level failed on latency and
    // the metric rises between the two; otherwise stay at the passing level.
    let rate = if fail.error_rate <= max_error_rate
        && fail.metric > pass.metric
        && fail.throughput > pass.throughput
    {
        let f = (limit - pass.metric) / (fail.metric - pass.metric);
        pass.throughput + f.clamp(0.0, 1.0) * (fail.throughput - pass.throughput)
    } else {
        pass.throughput
    };
    Some(Capacity {
        per_instance_rps: rate / n,
        budget_reached: true,
        searched: None,
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanCell {
    pub instance_type: String,
    pub target_rpm: f64,
    /// None when the budget was never met (or no capacity).
    pub instances: Option<u64>,
    pub usd_per_hour: Option<f64>,
    pub usd_per_request: Option<f64>,
    pub least_cost: bool,
    pub fewest_instances: bool,
    pub best_choice: bool,
}

/// N, $/hour and $/request for `target_rpm` on one instance type.
pub fn plan_one(
    cap: Option<&Capacity>,
    hourly_usd: Option<f64>,
    target_rpm: f64,
) -> (Option<u64>, Option<f64>, Option<f64>) {
    let Some(c) = cap.filter(|c| c.per_instance_rps > 0.0) else {
        return (None, None, None);
    };
    let n = ((target_rpm / 60.0) / c.per_instance_rps - 1e-9)
        .ceil()
        .max(1.0) as u64;
    let per_hour = hourly_usd.map(|p| p * n as f64);
    let per_request = per_hour
        .filter(|_| target_rpm > 0.0)
        .map(|h| h / (target_rpm * 60.0));
    (Some(n), per_hour, per_request)
}

/// The heatmap: every (instance type, target rate) cell, with markers.
/// `types` holds (instance type, capacity, $/hour per instance).
pub fn heatmap(
    types: &[(String, Option<Capacity>, Option<f64>)],
    target_rpms: &[f64],
) -> Vec<PlanCell> {
    let mut out = vec![];
    for &rpm in target_rpms {
        let mut row: Vec<PlanCell> = types
            .iter()
            .map(|(t, cap, price)| {
                let (n, h, r) = plan_one(cap.as_ref(), *price, rpm);
                PlanCell {
                    instance_type: t.clone(),
                    target_rpm: rpm,
                    instances: n,
                    usd_per_hour: h,
                    usd_per_request: r,
                    least_cost: false,
                    fewest_instances: false,
                    best_choice: false,
                }
            })
            .collect();
        let min_cost = row
            .iter()
            .filter_map(|c| c.usd_per_hour)
            .fold(f64::INFINITY, f64::min);
        let min_n = row.iter().filter_map(|c| c.instances).min();
        for c in row.iter_mut() {
            c.least_cost = c
                .usd_per_hour
                .is_some_and(|h| (h - min_cost).abs() <= 1e-9 * min_cost.max(1.0));
            c.fewest_instances = c.instances.is_some() && c.instances == min_n;
        }
        let headroom = |t: &str| {
            types
                .iter()
                .find(|x| x.0 == t)
                .and_then(|x| x.1.as_ref())
                .map(|c| c.per_instance_rps)
                .unwrap_or(0.0)
        };
        if let Some(best) = row
            .iter()
            .enumerate()
            .filter(|(_, c)| c.usd_per_hour.is_some())
            .min_by(|(_, a), (_, b)| {
                a.usd_per_hour
                    .partial_cmp(&b.usd_per_hour)
                    .unwrap_or(Ordering::Equal)
                    .then(a.instances.cmp(&b.instances))
                    .then(
                        headroom(&b.instance_type)
                            .partial_cmp(&headroom(&a.instance_type))
                            .unwrap_or(Ordering::Equal),
                    )
                    .then(a.instance_type.cmp(&b.instance_type))
            })
            .map(|(i, _)| i)
        {
            row[best].best_choice = true;
        }
        out.extend(row);
    }
    out
}

/// `steps` target rates from `lo` to `hi` req/min, evenly spaced on a log scale
/// and rounded to two significant figures (duplicates dropped), for the heatmap.
pub fn rpm_range(lo: f64, hi: f64, steps: usize) -> Vec<f64> {
    if !(lo > 0.0 && hi >= lo && lo.is_finite() && hi.is_finite()) || steps == 0 {
        return vec![];
    }
    let round2 = |x: f64| {
        let mag = 10f64.powf(x.log10().floor() - 1.0);
        (x / mag).round() * mag
    };
    let mut out: Vec<f64> = (0..steps)
        .map(|i| {
            let f = if steps == 1 {
                0.0
            } else {
                i as f64 / (steps - 1) as f64
            };
            round2(lo * (hi / lo).powf(f))
        })
        .collect();
    out.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(t: f64, m: f64) -> Point {
        Point {
            throughput: t,
            metric: m,
            error_rate: 0.0,
        }
    }

    #[test]
    fn interpolates_between_passing_and_failing_levels() {
        // 4 req/s at 2,000 ms passes, 10 req/s at 6,000 ms fails a 5,000 ms budget:
        // 4 + (5000-2000)/(6000-2000) * 6 = 8.5 req/s.
        let c = per_instance_capacity(&[p(4.0, 2000.0), p(10.0, 6000.0)], 5000.0, 0.01, 1).unwrap();
        assert!((c.per_instance_rps - 8.5).abs() < 1e-12);
        assert!(c.budget_reached);
    }

    #[test]
    fn never_extrapolates_and_says_so() {
        let c = per_instance_capacity(&[p(4.0, 2000.0), p(10.0, 3000.0)], 5000.0, 0.01, 1).unwrap();
        assert_eq!(c.per_instance_rps, 10.0);
        assert!(!c.budget_reached);
    }

    #[test]
    fn budget_never_met() {
        assert_eq!(
            per_instance_capacity(&[p(4.0, 7000.0), p(10.0, 9000.0)], 5000.0, 0.01, 1),
            None
        );
    }

    #[test]
    fn instance_count_divides_capacity_and_errors_fail() {
        let c = per_instance_capacity(&[p(20.0, 1000.0)], 5000.0, 0.01, 4).unwrap();
        assert_eq!(c.per_instance_rps, 5.0);
        let bad = Point {
            error_rate: 0.2,
            ..p(30.0, 1000.0)
        };
        let c = per_instance_capacity(&[p(20.0, 1000.0), bad], 5000.0, 0.01, 1).unwrap();
        assert_eq!(
            c.per_instance_rps, 20.0,
            "no interpolation towards a level that failed on errors"
        );
    }

    #[test]
    fn plan_and_heatmap_markers() {
        // 600 rpm = 10 req/s. g5: 4 req/s per instance at $1 -> 3 instances, $3/h.
        // g6e: 9 req/s at $2.24 -> 2 instances, $4.48/h. p4d: 40 req/s at $32.77 -> 1, $32.77/h.
        let types = vec![
            (
                "g5.xlarge".to_string(),
                Some(Capacity {
                    per_instance_rps: 4.0,
                    budget_reached: true,
                    searched: None,
                }),
                Some(1.0),
            ),
            (
                "g6e.2xlarge".to_string(),
                Some(Capacity {
                    per_instance_rps: 9.0,
                    budget_reached: true,
                    searched: None,
                }),
                Some(2.24),
            ),
            (
                "p4d.24xlarge".to_string(),
                Some(Capacity {
                    per_instance_rps: 40.0,
                    budget_reached: true,
                    searched: None,
                }),
                Some(32.77),
            ),
            ("nope".to_string(), None, Some(0.5)),
        ];
        let cells = heatmap(&types, &[600.0]);
        let g5 = &cells[0];
        assert_eq!(g5.instances, Some(3));
        assert!((g5.usd_per_hour.unwrap() - 3.0).abs() < 1e-12);
        assert!((g5.usd_per_request.unwrap() - 3.0 / 36000.0).abs() < 1e-15);
        assert!(g5.least_cost && g5.best_choice && !g5.fewest_instances);
        assert!(cells[2].fewest_instances && !cells[2].best_choice);
        assert_eq!(cells[3].instances, None);
        // Exactly at capacity needs no extra instance: 240 rpm = 4 req/s on g5.
        assert_eq!(plan_one(types[0].1.as_ref(), Some(1.0), 240.0).0, Some(1));
        // A missing price: N is known, cost is not.
        assert_eq!(
            plan_one(types[0].1.as_ref(), None, 600.0),
            (Some(3), None, None)
        );
    }

    #[test]
    fn best_choice_ties_break_on_instances_then_headroom_then_name() {
        let types = vec![
            (
                "b".to_string(),
                Some(Capacity {
                    per_instance_rps: 5.0,
                    budget_reached: true,
                    searched: None,
                }),
                Some(1.0),
            ),
            (
                "a".to_string(),
                Some(Capacity {
                    per_instance_rps: 10.0,
                    budget_reached: true,
                    searched: None,
                }),
                Some(2.0),
            ),
        ];
        // 600 rpm: b needs 2 ($2/h), a needs 1 ($2/h): equal cost, fewer instances wins.
        let cells = heatmap(&types, &[600.0]);
        assert!(cells[1].best_choice && cells[0].least_cost && cells[1].least_cost);
    }

    #[test]
    fn rpm_range_is_geometric_and_rounded() {
        assert_eq!(rpm_range(60.0, 6000.0, 3), vec![60.0, 600.0, 6000.0]);
        assert_eq!(
            rpm_range(100.0, 1000.0, 4),
            vec![100.0, 220.0, 460.0, 1000.0]
        );
        assert_eq!(rpm_range(100.0, 100.0, 5), vec![100.0]);
        assert!(rpm_range(0.0, 10.0, 3).is_empty());
    }
}
