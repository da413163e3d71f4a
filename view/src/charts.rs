//! The report's charts, per workload: latency vs load (p50 line, p50–p95
//! band) for TTFT and e2e, the TTFT distribution, error rate vs load, cost per
//! 10k requests vs throughput with the Pareto front, and the capacity heatmap.

use crate::model::{ExperimentRow, Report, TtftSamples};
use crate::svg::{self, Cell, Series, XyChart};
use harness_core::analysis::WorkloadAnalysis;
use std::collections::BTreeMap;

#[derive(Clone)]
pub struct Chart {
    /// Relative path, e.g. `charts/chat-all-latency-ttft.svg`.
    pub file: String,
    pub title: String,
    pub svg: String,
}

pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '.' {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

fn rows_by_type<'a>(
    r: &'a Report,
    w: &WorkloadAnalysis,
) -> BTreeMap<String, Vec<&'a ExperimentRow>> {
    let mut m: BTreeMap<String, Vec<&ExperimentRow>> = BTreeMap::new();
    for e in r
        .experiments
        .iter()
        .filter(|e| e.measured.workload() == w.workload)
    {
        m.entry(e.measured.instance_type.clone())
            .or_default()
            .push(e);
    }
    for v in m.values_mut() {
        v.sort_by(|a, b| a.measured.load.total_cmp(&b.measured.load));
    }
    m
}

fn load_label(rows: &BTreeMap<String, Vec<&ExperimentRow>>) -> &'static str {
    let modes: Vec<&str> = rows
        .values()
        .flatten()
        .map(|e| e.load_mode.as_str())
        .collect();
    if modes.iter().all(|m| *m == "closed") {
        "concurrency (closed-loop workers)"
    } else if modes.iter().all(|m| *m == "open") {
        "offered rate (requests/s)"
    } else {
        "offered load"
    }
}

/// One series per instance type, colour by position, points from `f`.
fn per_type(
    rows: &BTreeMap<String, Vec<&ExperimentRow>>,
    markers_only: bool,
    f: impl Fn(&ExperimentRow) -> Option<(f64, f64)>,
) -> Vec<Series> {
    rows.iter()
        .enumerate()
        .map(|(i, (t, v))| Series {
            name: t.clone(),
            points: v.iter().filter_map(|e| f(e)).collect(),
            markers_only,
            colour: i,
            ..Default::default()
        })
        .collect()
}

/// A dashed horizontal line at `y` across the measured loads: the budget.
fn budget_line(rows: &BTreeMap<String, Vec<&ExperimentRow>>, name: String, y: f64) -> Series {
    let loads = rows.values().flatten().map(|e| e.measured.load);
    let (lo, hi) = loads.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    Series {
        name,
        points: vec![(lo, y), (hi, y)],
        dashed: true,
        colour: 7,
        ..Default::default()
    }
}

/// `metric` (an id such as `ttft`) against load for each instance type of
/// workload `w`: p50 line, p50–p95 band, and the p95 budget when set.
pub fn latency_vs_load(r: &Report, w: &WorkloadAnalysis, metric: &str, name: &str) -> XyChart {
    latency_chart(r, w, &rows_by_type(r, w), metric, name)
}

fn latency_chart(
    r: &Report,
    w: &WorkloadAnalysis,
    rows: &BTreeMap<String, Vec<&ExperimentRow>>,
    metric: &str,
    name: &str,
) -> XyChart {
    let mut series: Vec<Series> = rows
        .iter()
        .enumerate()
        .map(|(i, (t, v))| {
            let get = |e: &ExperimentRow, s: &str| {
                e.measured.latency.get(&format!("{metric}.{s}")).copied()
            };
            Series {
                name: t.clone(),
                points: v
                    .iter()
                    .filter_map(|e| Some((e.measured.load, get(e, "p50")?)))
                    .collect(),
                band: v
                    .iter()
                    .filter_map(|e| Some((e.measured.load, get(e, "p50")?, get(e, "p95")?)))
                    .collect(),
                colour: i,
                ..Default::default()
            }
        })
        .collect();
    // A capacity search's probes: each one's p95, against the budget line.
    for (i, (t, v)) in rows.iter().enumerate() {
        let probes: Vec<(f64, f64)> = v
            .iter()
            .filter(|e| e.measured.probe.is_some())
            .filter_map(|e| {
                let p95 = e.measured.latency.get(&format!("{metric}.p95"))?;
                Some((e.measured.load, *p95))
            })
            .collect();
        if !probes.is_empty() {
            series.push(Series {
                name: format!("{t} probes, p95"),
                points: probes,
                markers_only: true,
                colour: i,
                ..Default::default()
            });
        }
    }
    let key = format!("{metric}.p95");
    if let Some((_, limit)) = r.budget.constraints.latency.iter().find(|(k, _)| *k == key) {
        series.push(budget_line(
            rows,
            format!("budget: p95 <= {}", svg::short(*limit)),
            *limit,
        ));
    }
    // A per-request SLO's limit on this metric.
    if let Some((_, limit)) = r
        .budget
        .constraints
        .slo
        .iter()
        .flat_map(|s| s.limits())
        .find(|(m, _)| m.id() == metric)
    {
        series.push(budget_line(
            rows,
            format!("SLO: each request <= {}", svg::short(limit)),
            limit,
        ));
    }
    XyChart {
        title: format!("{name} vs load — {}", w.workload),
        subtitle: Some("line: p50; shaded band: p50 to p95, over all measured requests".into()),
        x_label: load_label(rows).into(),
        y_label: format!("{name} (ms)"),
        x_log: false,
        y_log: false,
        series,
    }
}

pub fn charts(r: &Report) -> Vec<Chart> {
    let mut out = vec![];
    for w in &r.analysis.workloads {
        let rows = rows_by_type(r, w);
        let base = slug(&w.workload);
        let mut push = |kind: &str, title: String, svg: String| {
            out.push(Chart {
                file: format!("charts/{base}-{kind}.svg"),
                title,
                svg,
            })
        };
        for (metric, name) in [("ttft", "TTFT"), ("e2e", "End-to-end latency")] {
            let c = latency_chart(r, w, &rows, metric, name);
            push(&format!("latency-{metric}"), c.title.clone(), c.render());
        }
        // TTFT distribution of each type's recommended configuration.
        let dist = distribution(r, w, "TTFT", &r.ttft);
        push("ttft-distribution", dist.title.clone(), dist.render());
        let errors = XyChart {
            title: format!("Error rate vs load — {}", w.workload),
            subtitle: Some(format!(
                "budget: error rate <= {}%",
                svg::short(r.budget.constraints.max_error_rate * 100.0)
            )),
            x_label: load_label(&rows).into(),
            y_label: "failed requests (%)".into(),
            x_log: false,
            y_log: false,
            series: per_type(&rows, false, |e| {
                Some((e.measured.load, e.measured.error_rate * 100.0))
            })
            .into_iter()
            .chain([budget_line(
                &rows,
                "budget".into(),
                r.budget.constraints.max_error_rate * 100.0,
            )])
            .collect(),
        };
        push("errors", errors.title.clone(), errors.render());
        let mut cost_series = per_type(&rows, true, |e| {
            Some((e.measured.throughput, e.usd_per_10k_requests?))
        });
        let front: Vec<(f64, f64)> = w
            .pareto
            .iter()
            .filter_map(|n| {
                let e = r.experiments.iter().find(|e| &e.measured.name == n)?;
                Some((e.measured.throughput, e.usd_per_10k_requests?))
            })
            .collect();
        if !front.is_empty() {
            cost_series.push(Series {
                name: "Pareto front".into(),
                points: front,
                dashed: true,
                colour: 7,
                ..Default::default()
            });
        }
        let cost = XyChart {
            title: format!("Cost per 10k requests vs throughput — {}", w.workload),
            subtitle: Some(
                "every measured level; dashed: Pareto front of the configurations within budget"
                    .into(),
            ),
            x_label: "throughput (successful requests/s, whole endpoint)".into(),
            y_label: "$ per 10k requests (log scale)".into(),
            x_log: false,
            y_log: true,
            series: cost_series,
        };
        push("cost-throughput", cost.title.clone(), cost.render());
        if !w.heatmap.is_empty() {
            push(
                "heatmap",
                format!("Capacity heatmap — {}", w.workload),
                heatmap(r, w),
            );
        }
    }
    out
}

/// The cumulative distribution of a metric (`label`, e.g. `TTFT`) over the
/// requests of each experiment in `samples` (sorted ms values) of workload
/// `w`: at most 200 nearest-rank steps per series, log x axis.
pub fn distribution(
    r: &Report,
    w: &WorkloadAnalysis,
    label: &str,
    samples: &[TtftSamples],
) -> XyChart {
    let types: Vec<String> = rows_by_type(r, w).into_keys().collect();
    XyChart {
        title: format!("{label} distribution — {}", w.workload),
        subtitle: Some("each instance type's recommended configuration (its lowest load level when none met the budget)".into()),
        x_label: format!("{label} (ms, log scale)"),
        y_label: "requests at or below (%)".into(),
        x_log: true,
        y_log: false,
        series: samples
            .iter()
            .filter(|t| t.workload == w.workload && !t.cdf.is_empty())
            .map(|t| {
                let points = t.cdf.clone();
                let load = r
                    .experiments
                    .iter()
                    .find(|e| e.measured.name == t.name)
                    .map(ExperimentRow::load_label)
                    .unwrap_or_default();
                Series {
                    name: format!("{} {load}", t.instance_type),
                    points,
                    colour: types.iter().position(|x| *x == t.instance_type).unwrap_or(0),
                    ..Default::default()
                }
            })
            .collect(),
    }
}

/// Where a $/hour figure sits among workload `w`'s heatmap cells, 0 (the
/// cheapest) to 1 (the dearest) on a log scale; `None` without a price.
pub fn cost_shade(w: &WorkloadAnalysis) -> impl Fn(Option<f64>) -> Option<f64> {
    let costs: Vec<f64> = w
        .heatmap
        .iter()
        .filter_map(|c| c.usd_per_hour)
        .filter(|c| *c > 0.0)
        .collect();
    let (lo, hi) = (
        costs.iter().copied().fold(f64::INFINITY, f64::min).ln(),
        costs.iter().copied().fold(0.0, f64::max).ln(),
    );
    move |usd: Option<f64>| {
        usd.filter(|h| *h > 0.0).map(|h| {
            if hi > lo {
                (h.ln() - lo) / (hi - lo)
            } else {
                0.0
            }
        })
    }
}

/// The capacity heatmap of workload `w` as SVG: instances and $/hour per
/// instance type (columns) and target rate (rows), with the markers.
pub fn heatmap(r: &Report, w: &WorkloadAnalysis) -> String {
    let cols: Vec<String> = w.capacity.iter().map(|c| c.instance_type.clone()).collect();
    let rpms = &r.analysis.target_rpms;
    let shade = cost_shade(w);
    let cells: Vec<Vec<Cell>> = rpms
        .iter()
        .map(|rpm| {
            cols.iter()
                .map(|t| {
                    let Some(c) = w
                        .heatmap
                        .iter()
                        .find(|c| &c.instance_type == t && c.target_rpm == *rpm)
                    else {
                        return Cell::default();
                    };
                    let marks = marks(c, "");
                    Cell {
                        line1: c
                            .instances
                            .map(|n| format!("{n} ×"))
                            .unwrap_or_else(|| "–".into()),
                        line2: c
                            .usd_per_hour
                            .map(|h| format!("${h:.2}/h"))
                            .unwrap_or_else(|| "–".into()),
                        shade: shade(c.usd_per_hour),
                        best: c.best_choice,
                        marks,
                    }
                })
                .collect()
        })
        .collect();
    svg::heatmap(
        &format!("Instances and $/hour to serve each rate — {}", w.workload),
        &budget_text(r),
        &rpms.iter().map(|x| svg::short(*x)).collect::<Vec<_>>(),
        &cols,
        &cells,
    )
}

/// A heatmap cell's markers: ★ best choice, $ least cost, # fewest instances.
pub fn marks(c: &harness_core::capacity::PlanCell, sep: &str) -> String {
    [
        (c.best_choice, "★"),
        (c.least_cost, "$"),
        (c.fewest_instances, "#"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, m)| format!("{sep}{m}"))
    .collect()
}

/// The budget in words, e.g. `ttft.p95 <= 1000 ms, e2e.p95 <= 5000 ms, error rate <= 1%`.
/// An SLO in the budget line's words, e.g. `ttft <= 500 ms, e2e <= 8000 ms`.
/// An SLO's limits in words: `ttft <= 500 ms, tpot <= 50 ms`.
pub fn slo_text(slo: &harness_core::slo::Slo) -> String {
    slo.limits()
        .iter()
        .map(|(m, l)| format!("{} <= {} ms", m.id(), svg::short(*l)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn budget_text(r: &Report) -> String {
    let k = &r.budget.constraints;
    let mut parts: Vec<String> = k
        .latency
        .iter()
        .map(|(m, l)| format!("{m} <= {} ms", svg::short(*l)))
        .collect();
    match (&k.slo, k.min_attainment) {
        (Some(slo), Some(t)) => parts.push(format!(
            "SLO attainment >= {}% ({})",
            svg::short(t * 100.0),
            slo_text(slo)
        )),
        (Some(slo), None) => parts.push(format!("SLO {} (attainment reported)", slo_text(slo))),
        _ => {}
    }
    parts.push(format!(
        "error rate <= {}%",
        svg::short(k.max_error_rate * 100.0)
    ));
    if let Some(c) = k.max_usd_per_request {
        parts.push(format!("$/request <= {c}"));
    }
    parts.join(", ")
}
