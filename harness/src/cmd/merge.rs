//! `harness merge A.duckdb B.duckdb ... -o C.duckdb`: one bundle holding every
//! run, experiment, request, summary and dataset of its inputs.
//!
//! - Runs keep their own provenance rows (config, harness version, host); a run
//!   found in several inputs is copied once. A run that recorded nothing (no
//!   experiment, command cell, search or instance: a shard refused at its
//!   barrier) is left out with a note, and listed in `meta.merged_from`.
//! - An experiment id found in several inputs is copied once when every copy
//!   comes from the same run. When copies come from different runs (the same
//!   inputs measured twice), the merge stops and lists them, unless
//!   `--on-conflict newest|first` says which to keep; the other copies are then
//!   named in the output and in `meta.merged_from`.
//! - A dataset card present in several inputs must have the same content hash.
//! - `meta.merged_from` records each input's file name, runs and experiment count.
//! - Preflight checks go with their runs.
//! - The shards of an experiment (`harness run --shard K/N`, one `shards`
//!   row each) are joined into one experiment (`merge_shards.rs`).

use crate::bad_input;
use crate::bundle::{read, Bundle};
use crate::cli::MergeArgs;
use anyhow::{Context, Result};
use duckdb::params;
use harness_view::contract::sql_string as sql_str;
use std::collections::BTreeMap;
use std::process::ExitCode;

#[path = "merge_shards.rs"]
mod shards;

/// Experiment id → the inputs holding a result of it: a `skipped` row
/// (a shard that arrived after the start, an endpoint that failed its
/// preflight) holds none, so it is no whole copy beside the shards.
fn copies_by_src(copies: &BTreeMap<String, Vec<Copy>>) -> BTreeMap<String, Vec<usize>> {
    copies
        .iter()
        .map(|(id, cs)| {
            let held = cs.iter().filter(|c| !c.skipped).map(|c| c.src);
            (id.clone(), held.collect())
        })
        .collect()
}

/// A run of the attached `src` that recorded something (SQL condition): an
/// experiment (a skipped one included), a shard of one (in a merged bundle,
/// every shard's run but the first holds only its `shards` row), a command
/// cell, a search or an instance. A run that stopped before any, such as a shard refused at its
/// barrier, is left out of a merge: it would show as a failed run of a
/// merged result it took no part in.
const RECORDED: &str = "(run_id IN (SELECT run_id FROM src.experiments UNION ALL SELECT run_id FROM src.shards UNION ALL SELECT run_id FROM src.command_cells UNION ALL SELECT run_id FROM src.searches UNION ALL SELECT run_id FROM src.deployments))";

struct Copy {
    src: usize,
    run_id: String,
    ended_at: String,
    skipped: bool,
}

fn three_strings(c: &duckdb::Connection, sql: &str) -> Result<Vec<(String, String, String)>> {
    let mut st = c.prepare(sql)?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn run(a: MergeArgs) -> Result<ExitCode> {
    if a.out.exists() {
        bad_input!(
            "{} already exists; merge writes a new bundle, choose another -o",
            a.out.display()
        );
    }
    let mut copies: BTreeMap<String, Vec<Copy>> = BTreeMap::new();
    let mut datasets: BTreeMap<(String, String), (usize, String)> = BTreeMap::new();
    let mut parts = shards::Parts::default();
    let mut cell_copies: BTreeMap<String, Vec<(Copy, bool)>> = BTreeMap::new();
    for (i, b) in a.bundles.iter().enumerate() {
        let conn = read::open(b)?; // exists, is a bundle, same schema version
        parts.read(i, &conn)?;
        let mut st = conn.prepare(
            "SELECT experiment_id, run_id, strftime(ended_at, '%Y-%m-%dT%H:%M:%S.%f'), status = 'skipped' FROM experiments",
        )?;
        let exps = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        for e in exps {
            let (id, run_id, ended_at, skipped): (String, String, String, bool) = e?;
            copies.entry(id).or_default().push(Copy {
                src: i,
                run_id,
                ended_at,
                skipped,
            });
        }
        // Command cells: only complete copies compete; an incomplete or
        // failed one is kept only when no bundle has the cell complete.
        for (id, run_id, ended_at, complete) in three_strings(
            &conn,
            "SELECT cell_id, run_id, coalesce(strftime(ended_at, '%Y-%m-%dT%H:%M:%S.%f'), '') || '|' || (status = 'complete')::VARCHAR FROM command_cells",
        )?
        .into_iter()
        .map(|(id, run, tail)| {
            let (ended, complete) = tail.rsplit_once('|').unwrap_or((&tail, "false"));
            (id, run, ended.to_string(), complete == "true")
        }) {
            cell_copies.entry(id).or_default().push((
                Copy {
                    src: i,
                    run_id,
                    ended_at,
                    skipped: false,
                },
                complete,
            ));
        }
        let cards = three_strings(
            &conn,
            "SELECT dataset, tokenizer_sha256, content_sha256 FROM datasets",
        )?;
        for (d, t, content) in cards {
            match datasets.get(&(d.clone(), t.clone())) {
                Some((j, c)) if *c != content => bad_input!(
                    "dataset `{d}` has different contents in {} (SHA-256 {c}) and {} (SHA-256 {content}); bundles with different data under one name cannot be merged",
                    a.bundles[*j].display(),
                    b.display()
                ),
                Some(_) => {}
                None => {
                    datasets.insert((d, t), (i, content));
                }
            }
        }
    }

    // The shards of an experiment are joined, not chosen among.
    let joins = parts.plan(&a.bundles, &copies_by_src(&copies), a.allow_missing_shards)?;
    // Which copy of each experiment to keep.
    let mut keep: Vec<(String, usize)> = vec![];
    let mut conflicts = vec![];
    let mut dropped: Vec<String> = vec![];
    // One rule for experiments and command cells: copies from one run are
    // one result; copies from several runs are chosen by --on-conflict.
    let mut choose = |what: &str, id: &str, cs: &[&Copy]| -> Option<usize> {
        if cs.iter().all(|c| c.run_id == cs[0].run_id) {
            return Some(cs[0].src);
        }
        let chosen = match a.on_conflict.as_str() {
            "newest" => *cs
                .iter()
                .enumerate()
                .max_by(|x, y| x.1.ended_at.cmp(&y.1.ended_at).then(y.0.cmp(&x.0)))
                .map(|x| x.1)
                .expect("non-empty"),
            "first" => cs[0],
            _ => {
                conflicts.push(format!(
                    "  {what}{id}: {}",
                    cs.iter()
                        .map(|c| format!("run {} in {}", c.run_id, a.bundles[c.src].display()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                return None;
            }
        };
        for c in cs.iter().filter(|c| c.run_id != chosen.run_id) {
            dropped.push(format!(
                "{what}{id} (run {} in {})",
                c.run_id,
                a.bundles[c.src].display()
            ));
        }
        Some(chosen.src)
    };
    // Only copies that hold a result compete: a `skipped` row (a shard that
    // arrived after the start, a failed preflight) is kept only when no
    // bundle measured the experiment, and then drops nothing.
    for (id, cs) in copies.iter().filter(|(id, _)| !joins.contains_key(*id)) {
        let held: Vec<&Copy> = cs.iter().filter(|c| !c.skipped).collect();
        let src = if held.is_empty() {
            if cs.len() > 1 {
                eprintln!(
                    "note: experiment {} was skipped in each of the {} bundles that hold it ({}): one skipped row is kept; `harness show` gives its reason",
                    &id[..12.min(id.len())],
                    cs.len(),
                    cs.iter()
                        .map(|c| a.bundles[c.src].display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            Some(cs[0].src)
        } else {
            choose("", id, &held)
        };
        if let Some(src) = src {
            keep.push((id.clone(), src));
        }
    }
    // A command cell: only complete copies compete; an incomplete or failed
    // one is kept only when no bundle has the cell complete.
    let mut keep_cells: Vec<(String, usize)> = vec![];
    for (id, cs) in &cell_copies {
        let complete: Vec<&Copy> = cs.iter().filter(|(_, ok)| *ok).map(|(c, _)| c).collect();
        let src = if complete.is_empty() {
            Some(cs[0].0.src)
        } else {
            choose("command cell ", id, &complete)
        };
        if let Some(src) = src {
            keep_cells.push((id.clone(), src));
        }
    }
    if !conflicts.is_empty() {
        bad_input!(
            "{} experiment(s) or command cell(s) were measured in different runs, so merging would have to drop results:\n{}\nPass --on-conflict newest or --on-conflict first to keep one copy of each",
            conflicts.len(),
            conflicts.join("\n")
        );
    }

    if keep.is_empty() && joins.is_empty() && keep_cells.is_empty() {
        bad_input!(
            "nothing to merge: {} {} no experiment or command cell (each run stopped before measuring; `harness show` says why); no bundle written",
            a.bundles
                .iter()
                .map(|b| b.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            if a.bundles.len() == 1 { "holds" } else { "hold" }
        );
    }
    let out = Bundle::open(&a.out)?;
    let c = out.connection();
    c.execute_batch(
        "CREATE TEMP TABLE keep (experiment_id VARCHAR, src INTEGER);
         CREATE TEMP TABLE keep_cells (cell_id VARCHAR, src INTEGER)",
    )?;
    {
        let mut app = c.appender("keep")?;
        for (id, src) in &keep {
            app.append_row(params![id, *src as i32])?;
        }
        let mut app = c.appender("keep_cells")?;
        for (id, src) in &keep_cells {
            app.append_row(params![id, *src as i32])?;
        }
    }
    let mut merged_from = vec![];
    let mut cells_total = 0;
    for (i, b) in a.bundles.iter().enumerate() {
        c.execute_batch(&format!(
            "ATTACH {} AS src (READ_ONLY)",
            sql_str(&b.to_string_lossy())
        ))
        .with_context(|| format!("cannot attach {}", b.display()))?;
        let kept = format!("(SELECT experiment_id FROM keep WHERE src = {i})");
        let mine: Vec<String> = datasets
            .iter()
            .filter(|(_, (j, _))| *j == i)
            .map(|((d, t), _)| format!("({}, {})", sql_str(d), sql_str(t)))
            .collect();
        let ds_filter = if mine.is_empty() {
            "FALSE".to_string()
        } else {
            format!("(dataset, tokenizer_sha256) IN ({})", mine.join(", "))
        };
        let (runs, left_out) = {
            let mut st = c.prepare(&format!(
                "SELECT run_id, {RECORDED}, status || coalesce(': ' || status_reason, '') FROM src.runs ORDER BY started_at"
            ))?;
            let v = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, bool>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let (kept, left): (Vec<_>, Vec<_>) = v.into_iter().partition(|r| r.1);
            (
                kept.into_iter().map(|r| r.0).collect::<Vec<_>>(),
                left.into_iter().map(|r| (r.0, r.2)).collect::<Vec<_>>(),
            )
        };
        for (run, why) in &left_out {
            eprintln!(
                "note: run {run} of {} recorded no experiment, command cell, search or instance ({why}); left out",
                b.display()
            );
        }
        let n: i64 = c.query_row(
            &format!("SELECT count(*) FROM keep WHERE src = {i}"),
            [],
            |r| r.get(0),
        )?;
        let earlier: Option<String> = c
            .query_row(
                "SELECT value FROM src.meta WHERE key = 'merged_from'",
                [],
                |r| r.get(0),
            )
            .ok();
        crate::bundle::copy_attached(c, RECORDED, &kept, &ds_filter)
            .and_then(|()| shards::copy_attached(c, i, &joins))
            .with_context(|| format!("copying {}", b.display()))?;
        let cells = keep_cells.iter().filter(|(_, s)| *s == i).count();
        crate::bundle::copy_attached_cells(
            c,
            &format!("(SELECT cell_id FROM keep_cells WHERE src = {i})"),
        )
        .and_then(|()| Ok(c.execute_batch("DETACH src")?))
        .with_context(|| format!("copying the command cells of {}", b.display()))?;
        cells_total += cells;
        let mut entry = serde_json::json!({
            "file": b.file_name().map(|f| f.to_string_lossy().into_owned()),
            "runs": runs,
            "runs_left_out": left_out.iter().map(|r| &r.0).collect::<Vec<_>>(),
            "experiments": n,
            "shard_parts": joins.values().filter(|j| j.takes_from(i)).count(),
            "command_cells": cells,
        });
        if let Some(e) = earlier.and_then(|e| serde_json::from_str::<serde_json::Value>(&e).ok()) {
            entry["merged_from"] = e;
        }
        merged_from.push(entry);
    }
    // An experiment no shard ran keeps one shard's skipped row: it stands
    // for the whole experiment, so its label loses the ` · shard K/N`.
    c.execute_batch(
        "UPDATE experiments SET label = regexp_replace(label, ' · shard [0-9]+/[0-9]+$', '') WHERE status = 'skipped'",
    )?;
    let mut out = out;
    let joined = shards::finish(&mut out, &joins)?;
    let c = out.connection();
    let meta = serde_json::json!({ "inputs": merged_from, "dropped": dropped, "shards": joined });
    c.execute(
        "INSERT INTO meta VALUES ('merged_from', ?) ON CONFLICT DO UPDATE SET value = excluded.value",
        params![meta.to_string()],
    )?;
    c.execute_batch("CHECKPOINT")?;
    for d in &dropped {
        eprintln!("dropped (--on-conflict {}): {d}", a.on_conflict);
    }
    let runs: i64 = c.query_row("SELECT count(*) FROM runs", [], |r| r.get(0))?;
    println!(
        "merged {} bundle(s) into {}: {} run(s), {} experiment(s){}",
        a.bundles.len(),
        a.out.display(),
        runs,
        keep.len() + joins.len(),
        if cells_total > 0 {
            format!(", {cells_total} command cell(s)")
        } else {
            String::new()
        }
    );
    for j in &joined {
        println!("{}", j["line"].as_str().unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}

/// `harness reindex BUNDLE` (hidden): rewrites the bundle's derived `ecdf`
/// table from its requests, for benchmarks and tests that edit requests with
/// SQL. Errors: a missing file (exit 2), or one `Bundle::open` refuses.
pub fn reindex(a: crate::cli::ReindexArgs) -> Result<ExitCode> {
    if !a.bundle.is_file() {
        bad_input!("{} does not exist", a.bundle.display());
    }
    let n = Bundle::open(&a.bundle)?.rewrite_ecdf()?;
    eprintln!("{}: ecdf rewritten for {n} experiments", a.bundle.display());
    Ok(ExitCode::SUCCESS)
}
