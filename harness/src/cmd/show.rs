use crate::bundle::read;
use crate::cli::ShowArgs;
use crate::report::table;
use std::process::ExitCode;

pub fn run(a: ShowArgs) -> anyhow::Result<ExitCode> {
    let conn = read::open(&a.bundle)?;
    if a.json {
        let doc = serde_json::json!({
            "bundle": a.bundle.display().to_string(),
            "runs": read::runs(&conn)?,
            "experiments": read::experiments(&conn)?,
            "host": harness_core::host::windows(&read::host_samples(&conn)?),
            "server": read::server(&conn)?,
            "commands": read::command_report(&conn, &a.bundle.display().to_string())?,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    let runs = read::runs(&conn)?;
    for r in &runs {
        println!(
            "run {} · {} · harness {} ({}) · {} · {}{}",
            r.run_id,
            r.started_at,
            r.harness_version,
            r.git_revision,
            r.config_file,
            r.status,
            r.status_reason
                .as_deref()
                .map(|x| format!(": {x}"))
                .unwrap_or_default()
        );
    }
    let exps = read::experiments(&conn)?;
    let max_error_rate = crate::report::model::budgeted_error_rate(&runs);
    let commands = read::command_report(&conn, &a.bundle.display().to_string())?;
    println!();
    let merged = merged_shards(&conn)?;
    if exps.is_empty() && commands.endpoints.is_empty() {
        println!("no experiment or command cell recorded");
    } else if !exps.is_empty() {
        print!(
            "{}",
            table::render(
                &exps,
                &|id| {
                    // Failures show their error classes; a skip its kind,
                    // with its whole reason below the table.
                    let skipped = exps
                        .iter()
                        .find(|e| e.experiment_id == id)
                        .filter(|e| e.status == "skipped")
                        .and_then(|e| e.status_reason.as_deref())
                        .map(|r| super::run::NotRun::of(r).short().to_string());
                    let merged = merged
                        .get(id)
                        .map(|(k, n)| format!("merged from {k} of {n} shards"));
                    match (merged, skipped) {
                        (Some(m), Some(s)) => Some(format!("{m}, {s}")),
                        (m, s) => m.or(s),
                    }
                },
                max_error_rate
            )
        );
    }
    let skipped: Vec<String> = exps
        .iter()
        .filter(|e| e.status == "skipped")
        .filter_map(|e| {
            let why = e.status_reason.as_deref()?;
            Some(format!(
                "  {}: {}",
                e.label,
                why.strip_prefix("skipped: ").unwrap_or(why)
            ))
        })
        .collect();
    if !skipped.is_empty() {
        println!("not run:\n{}", skipped.join("\n"));
    }
    print!("{}", table::commands(&commands));
    let samples: Vec<_> = read::host_samples(&conn)?
        .into_iter()
        .filter(|h| exps.iter().any(|e| e.experiment_id == h.experiment_id))
        .collect();
    print!("{}", host_table(&runs, &exps, &samples));
    print!("{}", server_table(&exps, &read::server(&conn)?));
    println!("bundle: {}", a.bundle.display());
    Ok(ExitCode::SUCCESS)
}

/// Experiment id → (shards joined, N) for each experiment `harness merge`
/// joined from shards (`shards` table); empty in a bundle not merged (a
/// shard's own bundle says `shard K/N` in its labels).
fn merged_shards(
    conn: &duckdb::Connection,
) -> anyhow::Result<std::collections::HashMap<String, (i64, i64)>> {
    let mut st = conn.prepare(
        "SELECT experiment_id, count(*), max(shards) FROM shards
         WHERE EXISTS (SELECT 1 FROM meta WHERE key = 'merged_from') GROUP BY 1",
    )?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The engine's own figures in each experiment's measurement window, from
/// its Prometheus metrics, and how many scrapes failed. Empty when none was
/// scraped.
fn server_table(exps: &[read::StoredExperiment], rows: &[read::ServerRow]) -> String {
    use std::fmt::Write;
    if rows.is_empty() {
        return String::new();
    }
    let mut out =
        String::from("\nserver metrics, measurement window (mean / max of the scrapes; prefix hit rate: prompt tokens found in the cache / looked up):\n");
    let _ = writeln!(
        out,
        "{:<44} {:>11} {:>11} {:>13} {:>15} {:>12}  scrapes",
        "experiment", "running", "waiting", "KV cache", "prefix hit rate", "gen tok/s"
    );
    let mm = |m: Option<harness_core::server::MeanMax>, pct: bool| match m {
        Some(m) if pct => format!("{:.0}% / {:.0}%", m.mean * 100.0, m.max * 100.0),
        Some(m) => format!("{:.1} / {:.0}", m.mean, m.max),
        None => "-".into(),
    };
    for r in rows {
        let label = exps
            .iter()
            .find(|e| e.experiment_id == r.experiment_id)
            .map(|e| e.label.as_str())
            .unwrap_or(&r.experiment_id);
        let s = &r.summary;
        let _ = writeln!(
            out,
            "{:<44} {:>11} {:>11} {:>13} {:>15} {:>12}  {} of {} failed{}",
            label,
            mm(s.running, false),
            mm(s.waiting, false),
            mm(s.kv_cache_usage, true),
            s.prefix_cache_hit_rate
                .map(|x| format!("{:.1}%", x * 100.0))
                .unwrap_or_else(|| "-".into()),
            s.generation_tokens_per_s
                .map(|x| format!("{x:.0}"))
                .unwrap_or_else(|| "-".into()),
            r.failures,
            r.attempts,
            r.last_error
                .as_deref()
                .map(|e| format!(" (last: {e})"))
                .unwrap_or_default()
        );
    }
    out
}

/// The host's figures in each experiment's measurement window (p50 / p95 /
/// max of the 1-second samples), per GPU where there are GPUs; what each
/// run's sampler saw first. Empty when no run sampled its host, or no
/// experiment of the bundle was run.
fn host_table(
    runs: &[harness_view::contract::StoredRun],
    exps: &[crate::bundle::read::StoredExperiment],
    samples: &[harness_core::host::HostSampleRow],
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let seen: Vec<String> = runs
        .iter()
        .filter_map(|r| Some(format!("run {}: {}", r.run_id, r.host_gpus.as_deref()?)))
        .collect();
    let measured = exps.iter().any(|e| e.status != "skipped");
    if !measured || (seen.is_empty() && samples.is_empty()) {
        return out;
    }
    let _ = writeln!(
        out,
        "\nhost metrics, measurement window (p50 / p95 / max of 1 s samples):"
    );
    for s in seen {
        let _ = writeln!(out, "  {s}");
    }
    let spread = |s: Option<harness_core::host::Spread>, digits: usize| {
        s.map(|s| {
            format!(
                "{:.digits$} / {:.digits$} / {:.digits$}",
                s.p50, s.p95, s.max
            )
        })
        .unwrap_or_else(|| "-".into())
    };
    let windows = harness_core::host::windows(samples);
    let mut rows = vec![[
        "experiment".to_string(),
        "gpu".into(),
        "samples".into(),
        "cpu %".into(),
        "mem GiB".into(),
        "gpu %".into(),
        "gpu mem GiB".into(),
        "gpu W".into(),
    ]];
    for e in exps {
        for w in windows
            .iter()
            .filter(|w| w.experiment_id == e.experiment_id && w.load_window == "measured")
        {
            rows.push([
                e.label.clone(),
                w.gpu_index
                    .map(|g| g.to_string())
                    .unwrap_or_else(|| "-".into()),
                w.samples.to_string(),
                spread(w.cpu_util_pct, 0),
                spread(w.mem_used_gib, 1),
                spread(w.gpu_util_pct, 0),
                match (spread(w.gpu_mem_used_gib, 1), w.gpu_mem_total_gib) {
                    (s, Some(t)) => format!("{s} of {t:.0}"),
                    (s, None) => s,
                },
                spread(w.gpu_power_w, 0),
            ]);
        }
    }
    if rows.len() == 1 {
        let _ = writeln!(
            out,
            "  no sample fell in a measurement window (experiments under 1 s)"
        );
        return out;
    }
    let widths: Vec<usize> = (0..8)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "  {}", cells.join("  ").trim_end());
    }
    out
}
