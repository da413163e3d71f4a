//! `harness merge`, part two: joins the shards of an experiment (bundles of
//! `harness run --shard K/N`, one `shards` row each) into one experiment.
//!
//! - **Refusals.** Shards that disagree on N, on their shared start (they did
//!   not run together) or that hold the same K from different runs; a missing
//!   shard unless `--allow-missing-shards` (the result is then `incomplete`);
//!   an experiment found both whole and in shards.
//! - **Rows.** Every request keeps its `shard`. The shards share one time
//!   axis (ns since the shared start), so rows are copied as they are. The
//!   merged row is shard K's lowest with the shard suffix taken off its label,
//!   starting with the first shard and ending with the last; the client
//!   host's samples and the server's metrics are that lowest shard's (each
//!   shard's bundle keeps its own).
//! - **Results.** The summary is computed from the union of the rows
//!   (`ExperimentSummary::compute`: exact percentiles over every request), and
//!   costed with the lowest shard's price over the merged run time.
//! - **Clocks.** Each request's latencies are measured on one agent's clock,
//!   so clock offsets never enter them; they shift the shards' loads against
//!   each other. The merge bounds that shift from the measured offsets and
//!   judges it against the window and the e2e p50 ([`judge`]).

use crate::bad_input;
use crate::bundle::{read, Bundle};
use anyhow::Result;
use duckdb::{params, Connection};
use harness_core::cost::{CostInputs, Costed, UnitPrice};
use harness_core::{ExperimentSummary, Metric};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One shard's `shards` row.
#[derive(Debug, Clone)]
struct ShardInfo {
    shard: u32,
    shards: u32,
    run_id: String,
    status: String,
    start_unix_ns: i64,
    start_late_ns: i64,
    clock_source: String,
    offset_ns: Option<i64>,
    offset_error_ns: Option<i64>,
}

/// The copy of a sharded experiment one input holds.
struct PartCopy {
    src: usize,
    shards: Vec<ShardInfo>,
    label: String,
    /// Microseconds since the epoch.
    started_us: i64,
    ended_us: i64,
    price: Option<UnitPrice>,
    instance_count: u32,
    simulated: bool,
}

/// The sharded experiments of every input: id → the copies.
#[derive(Default)]
pub(super) struct Parts {
    by_id: BTreeMap<String, Vec<PartCopy>>,
}

/// One experiment to join: which input gives each shard.
pub(super) struct Join {
    shards: u32,
    chosen: BTreeMap<u32, (usize, ShardInfo)>,
    lead: usize,
    label: String,
    missing: Vec<u32>,
    started_us: i64,
    ended_us: i64,
    price: Option<UnitPrice>,
    instance_count: u32,
    simulated: bool,
}

impl Join {
    /// Whether input `src` gives one of the shards joined.
    pub(super) fn takes_from(&self, src: usize) -> bool {
        self.chosen.values().any(|(i, _)| *i == src)
    }
}

impl Parts {
    /// Reads input `src`'s shards: an experiment with fewer `shards` rows than
    /// its N is a part to join (all N: it was merged already, and is whole).
    pub(super) fn read(&mut self, src: usize, conn: &Connection) -> Result<()> {
        let mut st = conn.prepare(
            "SELECT s.experiment_id, shard, shards, s.run_id, CASE WHEN s.status = 'running' THEN 'incomplete' ELSE s.status END, start_unix_ns, start_late_ns, clock_source,
                    clock_offset_ns, clock_offset_error_ns, epoch_us(e.started_at), epoch_us(e.ended_at)
             FROM shards s JOIN experiments e USING (experiment_id) ORDER BY s.experiment_id, shard",
        )?;
        let mut rows: BTreeMap<String, (Vec<ShardInfo>, i64, i64)> = BTreeMap::new();
        let found = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                ShardInfo {
                    shard: r.get(1)?,
                    shards: r.get(2)?,
                    run_id: r.get(3)?,
                    status: r.get(4)?,
                    start_unix_ns: r.get(5)?,
                    start_late_ns: r.get(6)?,
                    clock_source: r.get(7)?,
                    offset_ns: r.get(8)?,
                    offset_error_ns: r.get(9)?,
                },
                r.get::<_, i64>(10)?,
                r.get::<_, i64>(11)?,
            ))
        })?;
        for f in found {
            let (id, info, started, ended) = f?;
            let e = rows.entry(id).or_insert((vec![], started, ended));
            e.0.push(info);
        }
        let stored = read::experiments(conn)?;
        for (id, (shards, started_us, ended_us)) in rows {
            if shards.len() as u32 >= shards[0].shards {
                continue;
            }
            let Some(e) = stored.iter().find(|e| e.experiment_id == id) else {
                continue;
            };
            self.by_id.entry(id).or_default().push(PartCopy {
                src,
                shards,
                label: crate::shard::whole_label(&e.label).to_string(),
                started_us,
                ended_us,
                price: e.costed.price.clone(),
                instance_count: e.instance_count.max(1) as u32,
                simulated: e.simulated,
            });
        }
        Ok(())
    }

    /// Checks the parts of each sharded experiment and chooses the input of
    /// each shard. `copies`: every experiment id → the inputs holding it.
    ///
    /// Errors (bad input): shards that disagree on N or on their start, the
    /// same shard from two runs, a missing shard (unless `allow_missing`),
    /// an experiment both whole and sharded.
    pub(super) fn plan(
        &self,
        bundles: &[PathBuf],
        copies: &BTreeMap<String, Vec<usize>>,
        allow_missing: bool,
    ) -> Result<BTreeMap<String, Join>> {
        let name = |i: usize| bundles[i].display().to_string();
        let mut errors = vec![];
        let mut joins = BTreeMap::new();
        for (id, parts) in &self.by_id {
            let short = &id[..12.min(id.len())];
            let whole: Vec<String> = copies[id]
                .iter()
                .filter(|i| !parts.iter().any(|p| p.src == **i))
                .map(|i| name(*i))
                .collect();
            if !whole.is_empty() {
                errors.push(format!(
                    "experiment {short} ({}) is whole in {} and in shards elsewhere: merge the shards on their own",
                    parts[0].label,
                    whole.join(", ")
                ));
                continue;
            }
            let all: Vec<(usize, &ShardInfo)> = parts
                .iter()
                .flat_map(|p| p.shards.iter().map(move |s| (p.src, s)))
                .collect();
            let n = all[0].1.shards;
            if let Some((i, s)) = all.iter().find(|(_, s)| s.shards != n) {
                errors.push(format!(
                    "experiment {short}: its shards disagree on how many there are ({n} in {}, {} in {}): they are not one plan",
                    name(all[0].0),
                    s.shards,
                    name(*i)
                ));
                continue;
            }
            // One K from two runs (two jobs' bundles given together) is named
            // as such, before the starts that then differ too.
            let twice: Vec<String> = all
                .iter()
                .enumerate()
                .filter_map(|(x, (i, s))| {
                    let (j, c) = all[..x]
                        .iter()
                        .find(|(_, c)| c.shard == s.shard && c.run_id != s.run_id)?;
                    Some(format!(
                        "shard {}/{n} is in {} (run {}) and in {} (run {})",
                        s.shard,
                        name(*j),
                        c.run_id,
                        name(*i),
                        s.run_id
                    ))
                })
                .collect();
            if !twice.is_empty() {
                errors.push(format!(
                    "experiment {short} ({}): {}: bundles of two jobs; give each K once, from one job",
                    parts[0].label,
                    twice.join("; ")
                ));
                continue;
            }
            let t0 = all[0].1.start_unix_ns;
            if let Some((i, s)) = all.iter().find(|(_, s)| s.start_unix_ns != t0) {
                errors.push(format!(
                    "experiment {short}: shard {} in {} started at {}, shard {} in {} at {}: the shards did not run together (rerun them all, with one --barrier or --start-at)",
                    all[0].1.shard,
                    name(all[0].0),
                    unix_text(t0),
                    s.shard,
                    name(*i),
                    unix_text(s.start_unix_ns)
                ));
                continue;
            }
            let mut chosen: BTreeMap<u32, (usize, ShardInfo)> = BTreeMap::new();
            for (i, s) in &all {
                match chosen.get(&s.shard) {
                    // The same run's shard twice (a copy, or one file
                    // given twice): one is kept, and the user is told.
                    Some((j, _)) if j != i => eprintln!(
                        "note: experiment {short}: shard {}/{n} of run {} is in {} and again in {}: using the first",
                        s.shard,
                        s.run_id,
                        name(*j),
                        name(*i)
                    ),
                    Some(_) => {}
                    None => {
                        chosen.insert(s.shard, (*i, (*s).clone()));
                    }
                }
            }
            let unfinished: Vec<String> = chosen
                .iter()
                .filter(|(_, (_, s))| s.status != "complete")
                .map(|(k, (i, s))| format!("shard {k} in {} is {}", name(*i), s.status))
                .collect();
            if !unfinished.is_empty() && !allow_missing {
                errors.push(format!(
                    "experiment {short} ({}): {}; run the job again (every shard, a fresh barrier directory), or --allow-missing-shards to keep an incomplete experiment",
                    parts[0].label,
                    unfinished.join(", ")
                ));
                continue;
            }
            let missing: Vec<u32> = (0..n).filter(|k| !chosen.contains_key(k)).collect();
            if !missing.is_empty() && !allow_missing {
                errors.push(format!(
                    "experiment {short} ({}): no result of {} (K counts from 0 to {}); give every shard's bundle (a shard skipped in its bundle has none: `harness show` says why), or --allow-missing-shards to keep an incomplete experiment",
                    parts[0].label,
                    crate::shard::shard_list(&missing, n),
                    n - 1
                ));
                continue;
            }
            let lead = chosen.values().next().expect("one shard at least").0;
            let lead_part = parts.iter().find(|p| p.src == lead).expect("lead");
            joins.insert(
                id.clone(),
                Join {
                    shards: n,
                    lead,
                    label: lead_part.label.clone(),
                    missing,
                    started_us: parts.iter().map(|p| p.started_us).min().unwrap_or(0),
                    ended_us: parts.iter().map(|p| p.ended_us).max().unwrap_or(0),
                    price: lead_part.price.clone(),
                    instance_count: lead_part.instance_count,
                    simulated: lead_part.simulated,
                    chosen,
                },
            );
        }
        if !errors.is_empty() {
            bad_input!("cannot join shards:\n  {}", errors.join("\n  "));
        }
        Ok(joins)
    }
}

fn unix_text(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Copies, from the attached input `src` (number `i`), the shards of each
/// join it gives: their requests and `shards` rows, and from the lead input
/// the experiment's row, host samples and server metrics.
pub(super) fn copy_attached(
    c: &Connection,
    i: usize,
    joins: &BTreeMap<String, Join>,
) -> Result<()> {
    for (id, j) in joins {
        let mine: Vec<String> = j
            .chosen
            .iter()
            .filter(|(_, (src, _))| *src == i)
            .map(|(k, _)| k.to_string())
            .collect();
        if mine.is_empty() {
            continue;
        }
        let ks = mine.join(", ");
        for t in ["requests", "shards"] {
            c.execute(
                &format!("INSERT INTO {t} SELECT * FROM src.{t} WHERE experiment_id = ? AND shard IN ({ks})"),
                params![id],
            )?;
        }
        if j.lead == i {
            for t in [
                "experiments",
                "host_samples",
                "server_metrics",
                "server_scrapes",
            ] {
                c.execute(
                    &format!("INSERT INTO {t} SELECT * FROM src.{t} WHERE experiment_id = ?"),
                    params![id],
                )?;
            }
        }
    }
    Ok(())
}

/// Writes each joined experiment's row and results, and returns what the
/// merge says of each (for `meta.merged_from` and the output).
pub(super) fn finish(out: &mut Bundle, joins: &BTreeMap<String, Join>) -> Result<Vec<Value>> {
    let mut said = vec![];
    for (id, j) in joins {
        let samples = read::request_samples(out.connection(), id)?;
        let summary = ExperimentSummary::compute(&samples);
        let not_complete: Vec<String> = j
            .chosen
            .iter()
            .filter(|(_, (_, s))| s.status != "complete")
            .map(|(k, (_, s))| format!("shard {k} is {}", s.status))
            .collect();
        let (status, reason) = if !j.missing.is_empty() {
            let m: Vec<String> = j.missing.iter().map(u32::to_string).collect();
            (
                "incomplete",
                Some(format!(
                    "merged from {} of {} shards (missing: {}); its load was not the plan's",
                    j.chosen.len(),
                    j.shards,
                    m.join(", ")
                )),
            )
        } else if !not_complete.is_empty() {
            (
                "incomplete",
                Some(format!(
                    "{}: run the job again to measure it whole",
                    not_complete.join(", ")
                )),
            )
        } else if summary.requests > 0 && summary.requests_ok == 0 {
            ("failed", Some("every measured request failed".to_string()))
        } else {
            ("complete", None)
        };
        out.connection().execute(
            "UPDATE experiments SET label = ?, status = ?, status_reason = ?,
                started_at = to_timestamp(?::DOUBLE / 1e6), ended_at = to_timestamp(?::DOUBLE / 1e6)
             WHERE experiment_id = ?",
            params![j.label, status, reason, j.started_us, j.ended_us, id],
        )?;
        let run_s = (j.ended_us - j.started_us).max(0) as f64 / 1e6;
        let costed = Costed::new(
            j.price.clone(),
            CostInputs::from_summary(&summary, j.instance_count, run_s),
        );
        out.write_results(id, j.simulated, &summary, &costed)?;
        let (mut clocks, verdict) = judge(j, &summary);
        // An incomplete merge's load was not the plan's: nothing to judge,
        // in the stored clocks as in the line.
        let verdict = if status == "incomplete" {
            clocks["trustworthy"] = Value::Null;
            "not judged: the merged load is not the plan's".to_string()
        } else {
            verdict
        };
        let line = format!(
            "joined {} of {} shards of {} ({}, {} requests): {status}; {verdict}",
            j.chosen.len(),
            j.shards,
            &id[..12.min(id.len())],
            j.label,
            summary.requests
        );
        said.push(json!({
            "experiment_id": id,
            "shards": j.shards,
            "joined": j.chosen.keys().collect::<Vec<_>>(),
            "missing": j.missing,
            "status": status,
            "clocks": clocks,
            "line": line,
        }));
    }
    Ok(said)
}

/// How far apart the shards' starts may have been, and whether that matters.
///
/// Each shard started when its clock, corrected by its measured offset to
/// the reference clock, read the shared start, and began `start_late_ns`
/// after that. With each offset known to ±eᵢ, two shards' starts differ by at
/// most `2·max eᵢ + max lateᵢ` (the alignment bound). Latencies are each
/// measured on one agent's clock and are exact whatever the bound; the bound
/// shifts the shards' loads against each other, so the merge is called
/// trustworthy for the latencies compared when the bound is at most 1% of the
/// measurement window and at most 10% of the e2e p50 (a shift much shorter
/// than a request leaves the concurrency the server saw as planned).
/// Without measured offsets (`--start-at`) the verdict is unknown.
pub fn judge_bound(
    errors_ns: &[Option<i64>],
    late_ns: &[i64],
    window_s: f64,
    e2e_p50_ms: Option<f64>,
) -> (Option<f64>, Option<bool>) {
    let Some(errs) = errors_ns.iter().copied().collect::<Option<Vec<i64>>>() else {
        return (None, None);
    };
    let bound_ms = (2 * errs.iter().copied().max().unwrap_or(0)
        + late_ns.iter().copied().max().unwrap_or(0)) as f64
        / 1e6;
    let ok = bound_ms <= 0.01 * window_s * 1e3 && e2e_p50_ms.is_none_or(|p| bound_ms <= 0.1 * p);
    (Some(bound_ms), Some(ok))
}

fn judge(j: &Join, s: &ExperimentSummary) -> (Value, String) {
    let shards: Vec<&ShardInfo> = j.chosen.values().map(|(_, s)| s).collect();
    let measured: Vec<Option<i64>> = shards
        .iter()
        .map(|s| s.offset_error_ns.filter(|_| s.clock_source == "barrier"))
        .collect();
    let late: Vec<i64> = shards.iter().map(|s| s.start_late_ns).collect();
    let e2e = s.dist(Metric::E2e).filter(|d| d.count > 0).map(|d| d.p50);
    let (bound, ok) = judge_bound(&measured, &late, s.window_s, e2e);
    let offsets: Vec<f64> = shards
        .iter()
        .filter_map(|s| s.offset_ns)
        .map(|o| o as f64 / 1e6)
        .collect();
    let clocks = json!({
        "sources": shards.iter().map(|s| s.clock_source.as_str()).collect::<Vec<_>>(),
        "offsets_ms": offsets,
        "offset_errors_ms": measured.iter().map(|e| e.map(|e| e as f64 / 1e6)).collect::<Vec<_>>(),
        "start_late_ms": late.iter().map(|l| *l as f64 / 1e6).collect::<Vec<_>>(),
        "alignment_bound_ms": bound,
        "window_s": s.window_s,
        "e2e_p50_ms": e2e,
        "trustworthy": ok,
    });
    let verdict = match (bound, ok) {
        (Some(b), Some(true)) => format!(
            "shards aligned within {b:.3} ms (≤ 1% of the {:.1} s window and ≤ 10% of the e2e p50): trustworthy for the latencies compared",
            s.window_s
        ),
        (Some(b), _) => format!(
            "shards aligned only within {b:.3} ms (more than 1% of the {:.1} s window or 10% of the e2e p50): each latency is exact, but the shards' loads may not have lined up as planned; not trustworthy for comparing latencies under load",
            s.window_s
        ),
        _ => "clock offsets not measured (--start-at on each agent's system clock): each latency is exact, but how well the shards' loads lined up is unknown".to_string(),
    };
    (clocks, verdict)
}

#[cfg(test)]
mod tests {
    use super::judge_bound;

    #[test]
    fn the_alignment_bound_is_judged_against_the_window_and_the_e2e_p50() {
        // ±0.1 ms offsets, 0.05 ms late: 0.25 ms against a 30 s window, 200 ms e2e.
        let (b, ok) = judge_bound(
            &[Some(100_000), Some(50_000)],
            &[50_000, 0],
            30.0,
            Some(200.0),
        );
        assert!((b.unwrap() - 0.25).abs() < 1e-9);
        assert_eq!(ok, Some(true));
        // The same against a 2 ms e2e p50: not trustworthy.
        assert_eq!(
            judge_bound(&[Some(100_000)], &[50_000], 30.0, Some(2.0)).1,
            Some(false)
        );
        // 5 ms against a 0.4 s window: more than 1%.
        assert_eq!(
            judge_bound(&[Some(2_500_000)], &[0], 0.4, None).1,
            Some(false)
        );
        // An offset not measured: unknown.
        assert_eq!(
            judge_bound(&[Some(1), None], &[0, 0], 30.0, None),
            (None, None)
        );
    }
}
