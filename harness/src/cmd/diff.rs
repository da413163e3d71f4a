//! `harness diff OLD NEW`: matches experiments by id and, per metric, tests
//! whether the median and p95 changed (bootstrap, `harness_core::diff`).
//!
//! Each side's values are the metric's own selection of the stored requests
//! (`Metric::samples` via `summary::metric_values_as_recorded`), so the
//! p50 and p95 it prints are the bundle's `distributions` rows exactly.
//!
//! An experiment complete in the old bundle that is `failed`, `skipped` or
//! `interrupted` in the new one is a regression too, and a diff that compared
//! nothing fails `--fail-on-regression`: a gate must not pass a release whose
//! server never answered.

use crate::bad_input;
use crate::bundle::read::{self, StoredExperiment};
use crate::cli::DiffArgs;
use anyhow::Result;
use harness_core::diff::{compare, Comparison, Stat};
use harness_core::metrics::Unit;
use harness_core::summary::metric_values_as_recorded;
use harness_core::Metric;
use serde::Serialize;
use std::collections::BTreeMap;
use std::process::ExitCode;

#[derive(Serialize)]
struct Row {
    experiment_id: String,
    label: String,
    metric: String,
    stat: &'static str,
    #[serde(flatten)]
    cmp: Comparison,
}

/// An experiment complete in the old bundle and failed, skipped or
/// interrupted in the new one.
#[derive(Serialize)]
struct Broken {
    label: String,
    status: String,
    reason: Option<String>,
}

#[derive(Serialize)]
struct Report {
    old: String,
    new: String,
    threshold: f64,
    method: &'static str,
    comparisons: Vec<Row>,
    only_old: Vec<String>,
    only_new: Vec<String>,
    /// Complete in old, not complete in new: each counts as a regression.
    not_complete_in_new: Vec<Broken>,
    /// Command cells complete in both bundles: the median of each metric
    /// over their measured runs (`harness_core::command::higher_is_better`
    /// says which way is worse).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    command_comparisons: Vec<Row>,
    /// Experiments and command cells complete in both bundles (compared).
    compared: usize,
    /// Significant latency regressions plus experiments not complete in new.
    regressions: usize,
}

pub fn run(a: DiffArgs) -> Result<ExitCode> {
    let threshold = {
        let t = a.threshold.trim();
        let (num, pct) = match t.strip_suffix('%') {
            Some(n) => (n, true),
            None => (t, false),
        };
        let v: f64 = num.parse().map_err(|_| {
            crate::exit::bad_input(format!(
                "--threshold `{t}`: expected a percentage like `5%` or a fraction like `0.05`"
            ))
        })?;
        if pct {
            v / 100.0
        } else {
            v
        }
    };
    let mut metrics = vec![];
    for m in a.metric.split(',').map(str::trim) {
        match Metric::from_id(m).filter(|m| m.unit() == Unit::Ms) {
            Some(x) => metrics.push(x),
            None => bad_input!(
                "--metric `{m}`: expected latency metrics, comma-separated, from {}",
                crate::report::model::latency_metrics()
                    .map(|m| m.id())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    let (co, cn) = (read::open(&a.old)?, read::open(&a.new)?);
    let old: BTreeMap<String, String> = read::experiments(&co)?
        .into_iter()
        .filter(|e| e.status == "complete")
        .map(|e| (e.experiment_id, e.label))
        .collect();
    let new_all: BTreeMap<String, StoredExperiment> = read::experiments(&cn)?
        .into_iter()
        .map(|e| (e.experiment_id.clone(), e))
        .collect();
    let new: BTreeMap<String, String> = new_all
        .values()
        .filter(|e| e.status == "complete")
        .map(|e| (e.experiment_id.clone(), e.label.clone()))
        .collect();
    // Complete in the old bundle, present but not complete in the new one:
    // the new build broke it, which no latency comparison can show.
    let mut broken: Vec<Broken> = old
        .keys()
        .filter(|id| !new.contains_key(*id))
        .filter_map(|id| new_all.get(id))
        .map(|e| Broken {
            label: e.label.clone(),
            status: e.status.clone(),
            reason: e.status_reason.clone(),
        })
        .collect();
    broken.sort_by(|x, y| x.label.cmp(&y.label));
    let compared = old.keys().filter(|id| new.contains_key(*id)).count();
    let mut rows = vec![];
    for (id, label) in &old {
        if !new.contains_key(id) {
            continue;
        }
        let (ro, rn) = (
            read::request_samples(&co, id)?,
            read::request_samples(&cn, id)?,
        );
        for m in metrics.iter().copied() {
            let (so, sn) = (
                metric_values_as_recorded(&ro, m),
                metric_values_as_recorded(&rn, m),
            );
            for stat in [Stat::P50, Stat::P95] {
                // Seeded per comparison: the verdict is reproducible.
                let seed = harness_core::diff::seed(id, m.id(), stat);
                let it = harness_core::diff::ITERATIONS;
                if let Some(cmp) = compare(&so, &sn, stat, threshold, it, seed) {
                    rows.push(Row {
                        experiment_id: id.clone(),
                        label: label.clone(),
                        metric: m.id().to_string(),
                        stat: stat.name(),
                        cmp,
                    });
                }
            }
        }
    }
    let cells = compare_cells(&co, &cn, threshold)?;
    broken.extend(cells.broken);
    let only_old_cells = cells.only_old;
    let only_new_cells = cells.only_new;
    let compared = compared + cells.compared;
    let report = Report {
        old: a.old.display().to_string(),
        new: a.new.display().to_string(),
        threshold,
        regressions: rows.iter().filter(|r| r.cmp.regression).count()
            + cells.rows.iter().filter(|r| r.cmp.regression).count()
            + broken.len(),
        method: "percentile bootstrap (2000 resamples) of new - old; significant when the 95% interval excludes 0 (docs/cost.md#diff)",
        comparisons: rows,
        only_old: sorted(
            old.iter()
                .filter(|(k, _)| !new_all.contains_key(*k))
                .map(|(_, l)| l.clone())
                .chain(only_old_cells),
        ),
        only_new: sorted(
            new.iter()
                .filter(|(k, _)| !old.contains_key(*k))
                .map(|(_, l)| l.clone())
                .chain(only_new_cells),
        ),
        command_comparisons: cells.rows,
        not_complete_in_new: broken,
        compared,
    };
    let text = match a.format.as_str() {
        "json" => serde_json::to_string_pretty(&report)? + "\n",
        "md" | "text" => render(&report, a.format == "md"),
        other => bad_input!("--format `{other}`: expected text, md or json"),
    };
    match &a.out {
        Some(p) => std::fs::write(p, &text)?,
        None => print!("{text}"),
    }
    // A gate that compared nothing must not pass.
    Ok(
        if a.fail_on_regression && (report.regressions > 0 || report.compared == 0) {
            ExitCode::from(crate::exit::FINDING)
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// The command cells' side of a diff.
struct Cells {
    rows: Vec<Row>,
    broken: Vec<Broken>,
    only_old: Vec<String>,
    only_new: Vec<String>,
    compared: usize,
}

/// Matches command cells by id; for each metric of a cell complete in both,
/// compares the median over the measured successful runs' values (list
/// metrics: every element) with the same bootstrap as latencies. The change
/// is a regression when significant, above `threshold` and in the metric's
/// bad direction (a rate falling, a time, size or loss rising).
fn compare_cells(
    co: &duckdb::Connection,
    cn: &duckdb::Connection,
    threshold: f64,
) -> Result<Cells> {
    let (ro, rn) = (read::command_rows(co)?, read::command_rows(cn)?);
    let values = |rows: &harness_view::commands::CommandRows, id: &str| {
        let ok: Vec<i64> = rows
            .runs
            .iter()
            .filter(|r| r.cell_id == id && !r.warmup && r.status == "ok")
            .map(|r| r.run)
            .collect();
        let mut by: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
        for m in rows
            .metrics
            .iter()
            .filter(|m| m.cell_id == id && ok.contains(&m.run))
        {
            by.entry((m.metric.clone(), m.unit.clone()))
                .or_default()
                .push(m.value);
        }
        by
    };
    let complete = |rows: &harness_view::commands::CommandRows| -> BTreeMap<String, String> {
        rows.cells
            .iter()
            .filter(|c| c.status == "complete")
            .map(|c| (c.cell_id.clone(), c.label.clone()))
            .collect()
    };
    let (old, new) = (complete(&ro), complete(&rn));
    let mut out = Cells {
        rows: vec![],
        broken: vec![],
        only_old: vec![],
        only_new: vec![],
        compared: 0,
    };
    // Pairs (old id, new id, label): the same cell, or, for a cell whose
    // inputs changed (an edited script under `inputs`, another timeout), the
    // one complete cell of the same label on each side: a before/after.
    let mut pairs: Vec<(String, String, String)> = old
        .iter()
        .filter(|(id, _)| new.contains_key(*id))
        .map(|(id, l)| (id.clone(), id.clone(), l.clone()))
        .collect();
    let unmatched = |side: &BTreeMap<String, String>,
                     other: &harness_view::commands::CommandRows| {
        side.iter()
            .filter(|(id, _)| !other.cells.iter().any(|c| &c.cell_id == *id))
            .map(|(id, l)| (l.clone(), id.clone()))
            .collect::<Vec<_>>()
    };
    let (uo, un) = (unmatched(&old, &rn), unmatched(&new, &ro));
    for (label, oid) in &uo {
        let olds = uo.iter().filter(|(l, _)| l == label).count();
        let news: Vec<&String> = un
            .iter()
            .filter(|(l, _)| l == label)
            .map(|(_, id)| id)
            .collect();
        if olds == 1 && news.len() == 1 {
            pairs.push((
                oid.clone(),
                news[0].clone(),
                format!(
                    "{label} (inputs changed: {} → {})",
                    &oid[..8],
                    &news[0][..8]
                ),
            ));
        }
    }
    let paired = |id: &str| pairs.iter().any(|(o, n, _)| o == id || n == id);
    for c in &ro.cells {
        if !rn.cells.iter().any(|n| n.cell_id == c.cell_id) && !paired(&c.cell_id) {
            out.only_old.push(c.label.clone());
        }
    }
    for c in &rn.cells {
        if !ro.cells.iter().any(|o| o.cell_id == c.cell_id) {
            if !paired(&c.cell_id) {
                out.only_new.push(c.label.clone());
            }
        } else if old.contains_key(&c.cell_id) && c.status != "complete" {
            out.broken.push(Broken {
                label: c.label.clone(),
                status: c.status.clone(),
                reason: c.status_reason.clone(),
            });
        }
    }
    for (oid, nid, label) in &pairs {
        let id = oid;
        out.compared += 1;
        let (vo, vn) = (values(&ro, oid), values(&rn, nid));
        for ((metric, unit), so) in &vo {
            let Some(sn) = vn.get(&(metric.clone(), unit.clone())) else {
                continue;
            };
            let stat = Stat::P50;
            let seed = harness_core::diff::seed(id, metric, stat);
            let it = harness_core::diff::ITERATIONS;
            if let Some(mut cmp) = compare(so, sn, stat, threshold, it, seed) {
                cmp.regression = cmp.significant
                    && match harness_core::command::higher_is_better(unit) {
                        Some(true) => cmp.change < -threshold,
                        Some(false) => cmp.change > threshold,
                        None => false,
                    };
                out.rows.push(Row {
                    experiment_id: id.clone(),
                    label: label.clone(),
                    metric: format!("{metric} ({unit})"),
                    stat: stat.name(),
                    cmp,
                });
            }
        }
    }
    Ok(out)
}

fn sorted(v: impl Iterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = v.collect();
    v.sort();
    v
}

fn render(r: &Report, md: bool) -> String {
    let mut s = String::new();
    if md {
        s += &format!(
            "# Diff\n\n`{}` → `{}`; threshold {:.1}%; {}\n\n",
            r.old,
            r.new,
            r.threshold * 100.0,
            r.method
        );
        s += "| experiment | metric | old ms | new ms | change | 95% CI of difference (ms) | verdict |\n|---|---|---|---|---|---|---|\n";
    } else {
        s += &format!(
            "{} -> {} (threshold {:.1}%)\n",
            r.old,
            r.new,
            r.threshold * 100.0
        );
    }
    for x in &r.comparisons {
        let c = &x.cmp;
        let cells = [
            x.label.clone(),
            format!("{} {}", x.metric, x.stat),
            format!("{:.2}", c.old),
            format!("{:.2}", c.new),
            format!("{:+.1}%", c.change * 100.0),
            format!("[{:+.2}, {:+.2}]", c.ci_low, c.ci_high),
            c.verdict(r.threshold).to_string(),
        ];
        if md {
            s += &format!("| {} |\n", cells.join(" | "));
        } else {
            s += &format!(
                "{:<44} {:<9} {:>10} -> {:>10} ms {:>8}  CI {}  {}\n",
                cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6]
            );
        }
    }
    if !r.command_comparisons.is_empty() {
        if md {
            s += "\n| command cell | metric | old | new | change | 95% CI of difference | verdict |\n|---|---|---|---|---|---|---|\n";
        } else {
            s += "command cells (median over measured runs; a rate regresses when it falls):\n";
        }
    }
    for x in &r.command_comparisons {
        let c = &x.cmp;
        let verdict = if c.regression {
            "REGRESSION"
        } else if c.significant {
            "significant"
        } else {
            "no significant change"
        };
        let cells = [
            x.label.clone(),
            x.metric.clone(),
            svg_short(c.old),
            svg_short(c.new),
            format!("{:+.1}%", c.change * 100.0),
            format!("[{}, {}]", svg_short(c.ci_low), svg_short(c.ci_high)),
            verdict.to_string(),
        ];
        if md {
            s += &format!("| {} |\n", cells.join(" | "));
        } else {
            s += &format!(
                "{:<44} {:<24} {:>10} -> {:>10} {:>8}  CI {}  {}\n",
                cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6]
            );
        }
    }
    for b in &r.not_complete_in_new {
        s += &format!(
            "REGRESSION: {} is {} in new{}\n",
            b.label,
            b.status,
            b.reason
                .as_deref()
                .map(|x| format!(" ({x})"))
                .unwrap_or_default()
        );
    }
    for l in &r.only_old {
        s += &format!("only in old: {l}\n");
    }
    for l in &r.only_new {
        s += &format!("only in new: {l}\n");
    }
    if r.compared == 0 {
        s += "nothing compared: no experiment or command cell is complete in both bundles\n";
    }
    s += &format!(
        "{} experiment(s) compared; {} regression(s): significant slowdowns above {:.1}%, or experiments no longer complete\n",
        r.compared,
        r.regressions,
        r.threshold * 100.0
    );
    s
}

fn svg_short(v: f64) -> String {
    harness_view::svg::short(v)
}
