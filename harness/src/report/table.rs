//! The terminal summary table printed by `harness run` and `harness show`.

use crate::bundle::read::StoredExperiment;
use harness_core::Metric;

fn ms(e: &StoredExperiment, m: Metric, stat: &str) -> String {
    match e.summary.dist(m).and_then(|d| d.stat(stat)) {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
        None => "-".into(),
    }
}

/// A summary's failures by class: `connect×6 http_5xx×1`.
pub fn error_classes(s: &harness_core::ExperimentSummary) -> String {
    s.errors_by_class
        .iter()
        .map(|(k, v)| format!("{k}×{v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Renders one row per experiment. `notes` adds a note per experiment id
/// (e.g. "skipped: complete in bundle"); an experiment whose error rate is
/// over `max_error_rate` (the config's budget) is flagged.
pub fn render(
    exps: &[StoredExperiment],
    notes: &dyn Fn(&str) -> Option<String>,
    max_error_rate: Option<f64>,
) -> String {
    let header = [
        "experiment",
        "ok",
        "err",
        "req/s",
        "out tok/s",
        "TTFT p50",
        "TTFT p99",
        "ITL p50",
        "ITL p99",
        "e2e p50",
        "e2e p95",
        "lag p99",
        "$/10k req",
        "status",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for e in exps {
        let s = &e.summary;
        // A `skipped` row was never run (its endpoint failed preflight, its
        // shard came late, its instance failed): the run's last line counts
        // it as "not run", apart from the experiments skipped as complete.
        let mut status = match e.status.as_str() {
            "skipped" => "not run".to_string(),
            s => s.to_string(),
        };
        if let Some(n) = notes(&e.experiment_id) {
            status = format!("{status}, {n}");
        }
        if s.token_mismatch() {
            let d = s.prompt_token_discrepancy.unwrap_or(0.0) * 100.0;
            status = format!("{status}, TOKEN MISMATCH: server counts {d:+.1}% prompt tokens");
        }
        if s.requests_failed > 0 {
            status = format!("{status} [{}]", error_classes(s));
        }
        if let Some(max) = max_error_rate.filter(|m| e.status == "complete" && s.error_rate > *m) {
            status = format!(
                "{status} ERROR RATE {:.1}% > budget {:.1}%",
                s.error_rate * 100.0,
                max * 100.0
            );
        }
        // Skipped and running experiments, and those a dead process left
        // incomplete, have no summary: no counts, rather than zeros that read
        // as measured. An incomplete merge of shards has one (its percentiles
        // show too), and shows its counts.
        let summarised = match e.status.as_str() {
            "skipped" | "running" => false,
            "incomplete" => s.requests > 0,
            _ => true,
        };
        let count = |v: String| if summarised { v } else { "-".into() };
        rows.push(vec![
            e.label.clone(),
            count(s.requests_ok.to_string()),
            count(s.requests_failed.to_string()),
            count(format!("{:.2}", s.request_throughput)),
            count(format!("{:.0}", s.output_token_throughput)),
            ms(e, Metric::Ttft, "p50"),
            ms(e, Metric::Ttft, "p99"),
            ms(e, Metric::Itl, "p50"),
            ms(e, Metric::Itl, "p99"),
            ms(e, Metric::E2e, "p50"),
            ms(e, Metric::E2e, "p95"),
            ms(e, Metric::DispatchLag, "p99"),
            e.costed
                .figures
                .usd_per_10k_requests
                .map(|c| format!("{c:.3}"))
                .unwrap_or_else(|| "-".into()),
            status,
        ]);
    }
    let mut out = align(&rows);
    out.push_str("Latencies in ms over all measured requests (HDR histograms). TTFT and e2e from the actual send; lag = actual - scheduled send.\n");
    out.push_str("$/10k req: instance price x instance count over the measured window, per 10,000 successful requests (docs/cost.md); - when no price is known.\n");
    if exps.iter().any(|e| e.summary.token_mismatch()) {
        out.push_str("TOKEN MISMATCH: server and client prompt-token counts differ by more than 2%: a different tokenizer, or a chat template the client did not apply. Set the endpoint's `tokenizer`.\n");
    }
    if exps.iter().any(|e| e.simulated) {
        out.push_str("SIMULATED: rows from the embedded simulator are modelled, not measured on real hardware.\n");
    }
    out
}

/// The command experiments' tables (`harness_view::commands::tables`), one
/// per command endpoint, aligned for the terminal; empty without any.
pub fn commands(r: &harness_view::commands::CommandReport) -> String {
    let mut out = String::new();
    for (name, header, body) in harness_view::commands::tables(r) {
        out.push_str(&format!("\ncommand endpoint {name}:\n"));
        let rows: Vec<Vec<String>> = std::iter::once(header).chain(body).collect();
        out.push_str(&align(&rows));
        if let Some(ep) = r.endpoints.iter().find(|e| e.name == name) {
            for c in ep.cells.iter().filter(|c| !c.failures.is_empty()) {
                out.push_str(&format!("  {}: {}\n", c.label, c.failures.join("; ")));
            }
        }
    }
    if !out.is_empty() {
        out.push_str("Metrics: mean ± sd over the measured runs that succeeded. Peak RSS: the command's process tree, sampled. GPU mem: peak less what other processes held before the run, mean over GPUs. $/run: instance price x count x wall time.\n");
    }
    out
}

/// `rows` (the first is the header) in aligned columns under a rule: the
/// first and last columns (text) left-aligned, the others (numbers) right.
fn align(rows: &[Vec<String>]) -> String {
    let n = rows.first().map(Vec::len).unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            let pad = " ".repeat(widths[c] - cell.chars().count());
            if c == 0 || c == n - 1 {
                line.push_str(cell);
                line.push_str(&pad);
            } else {
                line.push_str(&pad);
                line.push_str(cell);
            }
            line.push_str("  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (n.max(1) - 1)));
            out.push('\n');
        }
    }
    out
}
