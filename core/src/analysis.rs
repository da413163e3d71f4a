//! The price-performance analysis behind `harness report`, `harness plan` and
//! the viewer: measured experiments and a budget in; per workload (dataset
//! bucket) the recommendation per instance type, the failed-criteria table, the
//! Pareto front, the best option, each instance type's per-instance capacity and
//! the capacity heatmap out. Pure: the same numbers wherever it runs.
//!
//! - **Workload**: experiments are analysed per `dataset/bucket`; costs of
//!   different prompt and output lengths are never compared with each other.
//! - **Recommendation**: [`recommend`](crate::recommend::recommend) per workload.
//! - **Best option** of a workload: among the recommended configurations (one
//!   per instance type), the lowest $/request; ties go to the higher
//!   throughput, then the name. Unpriced configurations count only when none is
//!   priced (then the highest throughput wins).
//! - **Capacity** of an instance type: [`per_instance_capacity`] on the budget
//!   ratio `max(value / limit)` over the latency constraints, with limit 1, so
//!   that every latency constraint holds at the interpolated rate. With no
//!   latency constraint the ratio is 0 and only the error rate limits.
//! - **Searched capacity**: where a capacity search ([`crate::search`]) ran on
//!   an instance type and ended under the budget being analysed, its result
//!   replaces the interpolation: the measured throughput at the highest load
//!   that held the budget, per instance (never the offered rate: a probe too
//!   short for the server's queue to show can hold its latency budget at a
//!   rate it does not sustain, and its throughput shows it), with the
//!   open-loop rate that broke the budget as the interval's top. A search
//!   judged under another budget is not used: its probes count as measured
//!   levels. Several searches on one type (two serving stacks): the highest
//!   capacity.
//! - **Heatmap**: [`heatmap`] over the target rates, with the price of one
//!   instance taken from the measured experiments ($/hour ÷ instance count).

use crate::capacity::{heatmap, per_instance_capacity, Capacity, PlanCell, Point};
use crate::recommend::{recommend, Candidate, Choice, Constraints, Rejection};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// One measured experiment, as the analysis sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// Unique name (the experiment label).
    pub name: String,
    pub experiment_id: String,
    /// The instance type, or the endpoint name when the endpoint has none.
    pub instance_type: String,
    pub instance_count: u32,
    pub dataset: String,
    pub bucket: String,
    /// Offered load: concurrency (closed loop) or requests/s (open loop).
    pub load: f64,
    /// True when `load` is an open-loop rate.
    #[serde(default)]
    pub open_loop: bool,
    /// Successful requests per second, whole endpoint.
    pub throughput: f64,
    pub error_rate: f64,
    /// Latency statistics in ms keyed `metric.stat`, e.g. `ttft.p95`.
    pub latency: BTreeMap<String, f64>,
    /// $/hour of the whole endpoint (all its instances); `None` without a price.
    pub usd_per_hour: Option<f64>,
    pub usd_per_request: Option<f64>,
    /// Whether the endpoint streamed its responses (TTFT, ITL and TPOT are
    /// measured only then).
    pub streamed: bool,
    /// Whether it runs on instances the user counts (an instance type): a
    /// serverless endpoint (Bedrock on demand, priced per token) has none to
    /// plan, so it is left out of the capacity plan and heatmap.
    #[serde(default = "yes")]
    pub on_instances: bool,
    /// Attainment of the budget's SLO and goodput, when the budget has an SLO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attainment: Option<crate::slo::Attainment>,
    /// Set when this experiment was a probe of a capacity search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeOf>,
}

/// A capacity-search probe: which search, and where it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeOf {
    /// Identifies the search (its endpoint, dataset bucket and settings).
    pub search: String,
    /// The search's result, as recorded when it ended; `None` while it had
    /// not (an interrupted run).
    #[serde(default)]
    pub found: Option<crate::search::Found>,
    /// Why the probe stopped before its plan ended, when it did.
    #[serde(default)]
    pub stopped_early: Option<String>,
    /// The budget the search judged its probes by (without a cost limit).
    #[serde(default)]
    pub budget: Option<Constraints>,
}

fn yes() -> bool {
    true
}

impl Measured {
    pub fn workload(&self) -> String {
        format!("{}/{}", self.dataset, self.bucket)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeCapacity {
    pub instance_type: String,
    /// $/hour of one instance, when known.
    pub usd_per_instance_hour: Option<f64>,
    /// `None`: the budget was met at no measured level.
    pub capacity: Option<Capacity>,
    /// Why there is no capacity when a budgeted statistic was never measured
    /// for this type (e.g. `ttft.p95 not measured: the endpoint does not stream`).
    pub not_measured: Vec<String>,
    /// How many load levels were measured.
    pub levels: usize,
    /// Why the capacity search on this type ended, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
}

impl TypeCapacity {
    /// What a reader must know about this capacity, in words: why there is
    /// none, that it may be higher, that there is no price.
    pub fn notes(&self) -> Vec<String> {
        let mut n = vec![];
        if let Some(why) = &self.search {
            n.push(format!("search: {why}"));
        }
        match &self.capacity {
            Some(Capacity {
                searched: Some(s), ..
            }) => n.push(match s.high_rps {
                Some(h) => format!(
                    "searched ({} probes): {} to {} req/s per instance",
                    s.probes,
                    crate::search::round4(s.low_rps),
                    crate::search::round4(h)
                ),
                None => format!(
                    "searched ({} probes): at least {} req/s per instance",
                    s.probes,
                    crate::search::round4(s.low_rps)
                ),
            }),
            None if self.search.is_some() => {}
            None if !self.not_measured.is_empty() => n.extend(self.not_measured.iter().cloned()),
            None => n.push("budget never met at any measured level".into()),
            Some(x) if !x.budget_reached => {
                n.push("budget held at the highest level measured: capacity may be higher".into())
            }
            Some(_) => {}
        }
        if self.usd_per_instance_hour.is_none() {
            n.push("no price".into());
        }
        n
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadAnalysis {
    pub workload: String,
    pub dataset: String,
    pub bucket: String,
    /// The recommended configuration per instance type.
    pub choices: Vec<Choice>,
    /// Every configuration that failed a constraint, with what it failed.
    pub rejected: Vec<Rejection>,
    /// Passing, priced configurations on the cost/throughput Pareto front.
    pub pareto: Vec<String>,
    /// The best option's name (see the module header).
    pub best: Option<String>,
    pub capacity: Vec<TypeCapacity>,
    /// Every (target rate, instance type) cell, grouped by target rate.
    pub heatmap: Vec<PlanCell>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub constraints: Constraints,
    pub target_rpms: Vec<f64>,
    pub workloads: Vec<WorkloadAnalysis>,
}

/// `max(value / limit)` over the latency constraints (infinite when one is
/// not measured) and, with an attainment target `t`, `(1 − attainment) /
/// (1 − t)` (≤ 1 exactly when attainment ≥ t); 0 with none.
pub fn budget_ratio(m: &Measured, k: &Constraints) -> f64 {
    let attainment = k.min_attainment.map(|t| match &m.attainment {
        Some(a) if t < 1.0 => (1.0 - a.fraction) / (1.0 - t),
        Some(a) if a.fraction >= 1.0 => 0.0,
        _ => f64::INFINITY,
    });
    k.latency
        .iter()
        .map(|(key, limit)| match m.latency.get(key) {
            Some(v) if *limit > 0.0 => v / limit,
            _ => f64::INFINITY,
        })
        .chain(attainment)
        .fold(0.0, f64::max)
}

fn candidate(m: &Measured) -> Candidate {
    Candidate {
        name: m.name.clone(),
        instance_type: m.instance_type.clone(),
        bucket: m.workload(),
        throughput: m.throughput,
        error_rate: m.error_rate,
        latency: m.latency.clone(),
        usd_per_request: m.usd_per_request,
        streamed: m.streamed,
        attainment: m.attainment,
        stopped_early: m.probe.as_ref().and_then(|p| p.stopped_early.clone()),
    }
}

/// What `m` fails of `k` (empty: it holds the budget), as the
/// recommendation judges it: a capacity search's verdict on a probe.
pub fn failures(m: &Measured, k: &Constraints) -> Vec<String> {
    crate::recommend::failures(&candidate(m), k)
}

/// The budgeted statistics that no experiment of a type measured, with why.
fn unmeasured(v: &[&Measured], k: &Constraints) -> Vec<String> {
    k.latency
        .iter()
        .filter(|(key, _)| v.iter().all(|m| !m.latency.contains_key(key)))
        .map(|(key, _)| crate::recommend::not_measured(key, v.iter().any(|m| m.streamed)))
        .collect()
}

/// The capacity the searches among `v` found, with why the best one ended;
/// `None` when no search among them ended. The capacity is `None` when a
/// search found no load that held the budget.
fn searched_capacity(v: &[&Measured], k: &Constraints) -> Option<(Option<Capacity>, String)> {
    let mut ended: BTreeMap<&str, &crate::search::Found> = BTreeMap::new();
    let judged = k.without_cost();
    for m in v {
        let Some(p) = m.probe.as_ref() else { continue };
        if let Some(f) = p
            .found
            .as_ref()
            .filter(|_| p.budget.as_ref() == Some(&judged))
        {
            ended.insert(&p.search, f);
        }
    }
    let mut best: Option<(Option<Capacity>, String)> = None;
    for (key, found) in ended {
        let probes: Vec<&&Measured> = v
            .iter()
            .filter(|m| m.probe.as_ref().is_some_and(|p| p.search == key))
            .collect();
        let at = |load: f64| probes.iter().find(|m| m.load == load);
        let cap = found.lo.and_then(at).map(|lo| {
            let n = lo.instance_count.max(1) as f64;
            let low_rps = lo.throughput / n;
            // The open-loop rate that broke the budget (a closed loop's
            // failing probe has no rate of its own to bound it with).
            let high_rps = found
                .hi
                .and_then(at)
                .filter(|hi| hi.open_loop)
                .map(|hi| hi.load / n)
                .filter(|h| *h > low_rps);
            Capacity {
                per_instance_rps: low_rps,
                budget_reached: found.hi.is_some(),
                searched: Some(crate::capacity::Searched {
                    low_rps,
                    high_rps,
                    converged: found.converged,
                    probes: found.probes.len(),
                    why: found.why.clone(),
                }),
            }
        });
        let better = match (&best, &cap) {
            (None, _) => true,
            (Some((None, _)), Some(_)) => true,
            (Some((Some(b), _)), Some(c)) => c.per_instance_rps > b.per_instance_rps,
            _ => false,
        };
        if better {
            best = Some((cap, found.why.clone()));
        }
    }
    best
}

fn best_option<'a>(chosen: &[&'a Measured]) -> Option<&'a Measured> {
    let any_priced = chosen.iter().any(|m| m.usd_per_request.is_some());
    chosen
        .iter()
        .filter(|m| !any_priced || m.usd_per_request.is_some())
        .min_by(|a, b| {
            let cost = match (a.usd_per_request, b.usd_per_request) {
                (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
                _ => Ordering::Equal,
            };
            cost.then(
                b.throughput
                    .partial_cmp(&a.throughput)
                    .unwrap_or(Ordering::Equal),
            )
            .then(a.name.cmp(&b.name))
        })
        .copied()
}

fn capacity_heatmap(capacity: &[TypeCapacity], target_rpms: &[f64]) -> Vec<PlanCell> {
    let types: Vec<(String, Option<Capacity>, Option<f64>)> = capacity
        .iter()
        .map(|c| {
            (
                c.instance_type.clone(),
                c.capacity.clone(),
                c.usd_per_instance_hour,
            )
        })
        .collect();
    heatmap(&types, target_rpms)
}

impl Analysis {
    /// The same analysis with its heatmaps over other target rates (the
    /// heatmap depends only on the capacities and prices already found).
    pub fn with_targets(&self, target_rpms: &[f64]) -> Analysis {
        let mut a = self.clone();
        a.target_rpms = target_rpms.to_vec();
        for w in &mut a.workloads {
            w.heatmap = capacity_heatmap(&w.capacity, target_rpms);
        }
        a
    }
}

pub fn analyse(experiments: &[Measured], k: &Constraints, target_rpms: &[f64]) -> Analysis {
    let mut by_workload: BTreeMap<String, Vec<&Measured>> = BTreeMap::new();
    for m in experiments {
        by_workload.entry(m.workload()).or_default().push(m);
    }
    let workloads = by_workload
        .into_iter()
        .map(|(workload, ms)| {
            let cands: Vec<Candidate> = ms.iter().map(|m| candidate(m)).collect();
            let rec = recommend(&cands, k);
            let find = |name: &str| ms.iter().find(|m| m.name == name).copied();
            let chosen: Vec<&Measured> = rec
                .choices
                .iter()
                .filter_map(|c| c.chosen.as_deref().and_then(find))
                .collect();
            let mut by_type: BTreeMap<&str, Vec<&Measured>> = BTreeMap::new();
            for m in ms.iter().filter(|m| m.on_instances) {
                by_type.entry(&m.instance_type).or_default().push(m);
            }
            let capacity: Vec<TypeCapacity> = by_type
                .iter()
                .map(|(t, v)| {
                    let points: Vec<Point> = v
                        .iter()
                        .map(|m| Point {
                            throughput: m.throughput / m.instance_count.max(1) as f64,
                            metric: budget_ratio(m, k),
                            error_rate: m.error_rate,
                        })
                        .collect();
                    let (capacity, search) = match searched_capacity(v, k) {
                        Some((cap, why)) => (cap, Some(why)),
                        None => (
                            per_instance_capacity(&points, 1.0, k.max_error_rate, 1),
                            None,
                        ),
                    };
                    TypeCapacity {
                        instance_type: t.to_string(),
                        usd_per_instance_hour: v.iter().find_map(|m| {
                            m.usd_per_hour.map(|h| h / m.instance_count.max(1) as f64)
                        }),
                        capacity,
                        not_measured: unmeasured(v, k),
                        levels: v.len(),
                        search,
                    }
                })
                .collect();
            WorkloadAnalysis {
                dataset: ms[0].dataset.clone(),
                bucket: ms[0].bucket.clone(),
                workload,
                best: best_option(&chosen).map(|m| m.name.clone()),
                choices: rec.choices,
                rejected: rec.rejected,
                pareto: rec.pareto,
                heatmap: capacity_heatmap(&capacity, target_rpms),
                capacity,
            }
        })
        .collect();
    Analysis {
        constraints: k.clone(),
        target_rpms: target_rpms.to_vec(),
        workloads,
    }
}

/// A default heatmap range: from half the smallest to ten times the largest
/// per-instance capacity (in req/min) found by the analysis, 8 steps.
pub fn default_rpm_range(a: &Analysis) -> Vec<f64> {
    let caps: Vec<f64> = a
        .workloads
        .iter()
        .flat_map(|w| w.capacity.iter())
        .filter_map(|c| c.capacity.as_ref().map(|c| c.per_instance_rps * 60.0))
        .filter(|x| *x > 0.0)
        .collect();
    if caps.is_empty() {
        return vec![];
    }
    let lo = caps.iter().copied().fold(f64::INFINITY, f64::min) / 2.0;
    let hi = caps.iter().copied().fold(0.0, f64::max) * 10.0;
    crate::capacity::rpm_range(lo, hi, 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::too_many_arguments)]
    fn m(
        name: &str,
        it: &str,
        n: u32,
        load: f64,
        tput: f64,
        ttft95: f64,
        e2e95: f64,
        hourly: Option<f64>,
    ) -> Measured {
        Measured {
            name: name.into(),
            experiment_id: format!("id-{name}"),
            instance_type: it.into(),
            instance_count: n,
            dataset: "chat".into(),
            bucket: "all".into(),
            load,
            throughput: tput,
            error_rate: 0.0,
            latency: BTreeMap::from([
                ("ttft.p95".to_string(), ttft95),
                ("e2e.p95".to_string(), e2e95),
            ]),
            usd_per_hour: hourly.map(|h| h * n as f64),
            usd_per_request: hourly.map(|h| h * n as f64 / 3600.0 / tput),
            streamed: true,
            on_instances: true,
            open_loop: false,
            attainment: None,
            probe: None,
        }
    }

    fn budget() -> Constraints {
        Constraints {
            max_error_rate: 0.01,
            latency: vec![("ttft.p95".into(), 1000.0), ("e2e.p95".into(), 5000.0)],
            ..Default::default()
        }
    }

    #[test]
    fn capacity_holds_every_latency_constraint() {
        // a: level 1 passes (ratio max(200/1000, 2000/5000) = 0.4); level 2 fails on
        // TTFT (1800/1000 = 1.8) though e2e (4000/5000 = 0.8) passes. Interpolating
        // on the ratio: 4 + (1 - 0.4) / (1.8 - 0.4) * (10 - 4) = 6.571… req/s.
        let xs = vec![
            m("a-c4", "a", 1, 4.0, 4.0, 200.0, 2000.0, Some(1.0)),
            m("a-c32", "a", 1, 32.0, 10.0, 1800.0, 4000.0, Some(1.0)),
        ];
        let a = analyse(&xs, &budget(), &[600.0]);
        let w = &a.workloads[0];
        let cap = w.capacity[0].capacity.as_ref().unwrap();
        assert!((cap.per_instance_rps - (4.0 + 0.6 / 1.4 * 6.0)).abs() < 1e-9);
        assert!(cap.budget_reached);
        assert_eq!(w.rejected.len(), 1);
        assert_eq!(w.rejected[0].failed, vec!["ttft.p95 1800.0 ms > 1000.0 ms"]);
        assert_eq!(w.choices[0].chosen.as_deref(), Some("a-c4"));
        // 600 rpm = 10 req/s over 6.571 req/s per instance: 2 instances at $1.
        assert_eq!(w.heatmap[0].instances, Some(2));
        assert_eq!(w.heatmap[0].usd_per_hour, Some(2.0));
    }

    #[test]
    fn instance_count_and_price_per_instance() {
        // b runs 2 instances at $3/h each: 12 req/s measured = 6 req/s per instance.
        let xs = vec![m("b-c8", "b", 2, 8.0, 12.0, 100.0, 1000.0, Some(3.0))];
        let a = analyse(&xs, &budget(), &[720.0]);
        let w = &a.workloads[0];
        assert_eq!(w.capacity[0].usd_per_instance_hour, Some(3.0));
        let cap = w.capacity[0].capacity.as_ref().unwrap();
        assert_eq!(cap.per_instance_rps, 6.0);
        assert!(
            !cap.budget_reached,
            "never extrapolated past the last level"
        );
        // 720 rpm = 12 req/s: 2 instances, $6/h, $6 / 43,200 per request.
        let c = &w.heatmap[0];
        assert_eq!((c.instances, c.usd_per_hour), (Some(2), Some(6.0)));
        assert!((c.usd_per_request.unwrap() - 6.0 / 43_200.0).abs() < 1e-15);
    }

    #[test]
    fn best_option_is_cheapest_recommended_with_ties_by_throughput_then_name() {
        // x: 10 req/s at $3.6/h = $0.0001/req; y: 20 req/s at $7.2/h = $0.0001/req;
        // z: unpriced. Equal cost: y has the higher throughput.
        let xs = vec![
            m("x-c8", "x", 1, 8.0, 10.0, 100.0, 1000.0, Some(3.6)),
            m("y-c8", "y", 1, 8.0, 20.0, 100.0, 1000.0, Some(7.2)),
            m("z-c8", "z", 1, 8.0, 50.0, 100.0, 1000.0, None),
        ];
        let a = analyse(&xs, &budget(), &[]);
        assert_eq!(a.workloads[0].best.as_deref(), Some("y-c8"));
        assert_eq!(a.workloads[0].pareto, vec!["y-c8".to_string()]);
        // Nothing priced: the highest throughput.
        let unpriced: Vec<Measured> = xs
            .into_iter()
            .map(|mut m| {
                m.usd_per_hour = None;
                m.usd_per_request = None;
                m
            })
            .collect();
        let a = analyse(&unpriced, &budget(), &[]);
        assert_eq!(a.workloads[0].best.as_deref(), Some("z-c8"));
    }

    #[test]
    fn workloads_are_analysed_apart_and_budget_never_met_is_none() {
        let mut long = m("a-long", "a", 1, 4.0, 2.0, 3000.0, 9000.0, Some(1.0));
        long.bucket = "long".into();
        let xs = vec![
            m("a-short", "a", 1, 4.0, 4.0, 200.0, 2000.0, Some(1.0)),
            long,
        ];
        let a = analyse(&xs, &budget(), &[60.0]);
        assert_eq!(a.workloads.len(), 2);
        let l = a.workloads.iter().find(|w| w.bucket == "long").unwrap();
        assert_eq!(l.capacity[0].capacity, None);
        assert_eq!(l.best, None);
        assert_eq!(l.heatmap[0].instances, None);
        assert_eq!(l.rejected[0].failed.len(), 2);
    }

    #[test]
    fn no_latency_constraint_means_only_errors_limit() {
        let k = Constraints::default();
        let xs = vec![m("a", "a", 1, 4.0, 4.0, 99_999.0, 99_999.0, Some(1.0))];
        assert_eq!(budget_ratio(&xs[0], &k), 0.0);
        let a = analyse(&xs, &k, &[]);
        assert_eq!(a.workloads[0].best.as_deref(), Some("a"));
    }

    #[test]
    fn a_search_that_ended_gives_the_capacity_and_its_interval() {
        // Probes at 8 (pass), 16 (fail), 12 (pass), 14 (fail) req/s on one
        // instance; the search ended with [12, 14]. Without the search the
        // interpolation would say otherwise; the grid level at 20 is ignored.
        let found = crate::search::Found {
            lo: Some(12.0),
            hi: Some(14.0),
            converged: true,
            why: "capacity in [12, 14]/s: within 20%".into(),
            probes: vec![],
        };
        let probe = |load: f64, tput: f64, e2e: f64| {
            let mut x = m(
                &format!("p{load}"),
                "a",
                1,
                load,
                tput,
                100.0,
                e2e,
                Some(1.0),
            );
            x.open_loop = true;
            x.probe = Some(ProbeOf {
                search: "s1".into(),
                found: Some(found.clone()),
                stopped_early: None,
                budget: Some(budget()),
            });
            x
        };
        let mut xs = vec![
            probe(8.0, 7.9, 1000.0),
            probe(16.0, 13.0, 9000.0),
            probe(12.0, 11.8, 3000.0),
            probe(14.0, 12.5, 6000.0),
        ];
        xs[1].probe.as_mut().unwrap().stopped_early = Some("broken".into());
        xs[2].error_rate = 0.005;
        xs.push(m("grid", "a", 1, 20.0, 19.0, 100.0, 4000.0, Some(1.0)));
        let a = analyse(&xs, &budget(), &[60.0 * 30.0]);
        let c = &a.workloads[0].capacity[0];
        let cap = c.capacity.as_ref().unwrap();
        // What the highest passing load served, never the rate offered.
        assert_eq!(cap.per_instance_rps, 11.8);
        assert!(cap.budget_reached);
        let s = cap.searched.as_ref().unwrap();
        assert_eq!(
            (s.low_rps, s.high_rps, s.converged),
            (11.8, Some(14.0), true)
        );
        let notes = c.notes().join("; ");
        assert!(notes.contains("11.8 to 14 req/s"), "{notes}");
        assert!(!notes.contains("may be higher"), "{notes}");
        // 30 req/s over 11.8 per instance: 3 instances.
        assert_eq!(a.workloads[0].heatmap[0].instances, Some(3));
        // Under another budget the search's verdicts do not hold: its probes
        // are measured levels like any other.
        let mut other = budget();
        other.latency[1].1 = 2000.0;
        let a = analyse(&xs, &other, &[60.0]);
        let c = &a.workloads[0].capacity[0];
        assert_eq!(c.search, None);
        assert!(c.capacity.as_ref().unwrap().searched.is_none());
        // A search that found nothing: no capacity, and why.
        for x in xs.iter_mut().filter(|x| x.probe.is_some()) {
            let p = x.probe.as_mut().unwrap();
            p.found = Some(crate::search::Found {
                lo: None,
                hi: Some(8.0),
                converged: false,
                why: "budget broken even at the lowest load allowed (8/s, min)".into(),
                probes: vec![],
            });
        }
        let a = analyse(&xs[..4], &budget(), &[60.0]);
        let c = &a.workloads[0].capacity[0];
        assert_eq!(c.capacity, None);
        assert_eq!(
            c.notes(),
            vec!["search: budget broken even at the lowest load allowed (8/s, min)"]
        );
    }

    #[test]
    fn attainment_target_enters_the_budget_ratio() {
        let k = Constraints {
            slo: Some(crate::slo::Slo {
                e2e_ms: Some(1000.0),
                ..Default::default()
            }),
            min_attainment: Some(0.9),
            ..Default::default()
        };
        let mut x = m("a", "a", 1, 4.0, 4.0, 100.0, 100.0, Some(1.0));
        assert_eq!(budget_ratio(&x, &k), f64::INFINITY, "not measured");
        x.attainment = Some(crate::slo::Attainment {
            measured: 100,
            attained: 95,
            fraction: 0.95,
            low: 0.9,
            high: 0.98,
            goodput: 3.8,
        });
        assert!((budget_ratio(&x, &k) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn default_range_spans_the_capacities() {
        let xs = vec![
            m("a", "a", 1, 4.0, 1.0, 100.0, 100.0, Some(1.0)),
            m("b", "b", 1, 4.0, 10.0, 100.0, 100.0, Some(1.0)),
        ];
        // capacities 60 and 600 req/min -> 30 .. 6,000.
        let a = analyse(&xs, &budget(), &[]);
        let r = default_rpm_range(&a);
        assert_eq!(r.first(), Some(&30.0));
        assert_eq!(r.last(), Some(&6000.0));
        assert_eq!(r.len(), 8);
        // Re-targeting keeps everything but the heatmap, which equals a fresh analysis's.
        let fresh = analyse(&xs, &budget(), &r);
        assert_eq!(a.with_targets(&r), fresh);
    }
}
