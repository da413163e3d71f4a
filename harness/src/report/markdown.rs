//! The Markdown report (`report.md`), in the spirit of FMBench's report:
//! summary, best option, recommendation per instance type, failed criteria,
//! cost, capacity plan, charts and provenance. Deterministic for a given
//! bundle: no clock, no absolute paths.

use super::charts::{budget_text, Chart};
use super::model::{ExperimentRow, Report};
use harness_core::capacity::PlanCell;
use harness_core::cost::Rate;
use std::fmt::Write;

fn opt(x: Option<f64>, f: impl Fn(f64) -> String) -> String {
    x.map(f).unwrap_or_else(|| "–".into())
}

pub fn ms(x: Option<f64>) -> String {
    opt(x, |v| {
        if v >= 100.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        }
    })
}

fn usd(x: Option<f64>, digits: usize) -> String {
    opt(x, |v| format!("${v:.digits$}"))
}

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

fn load(e: &ExperimentRow) -> String {
    e.load_label()
}

fn lat(e: &ExperimentRow, key: &str) -> String {
    ms(e.measured.latency.get(key).copied())
}

fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(
        out,
        "|{}|",
        header.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    for r in rows {
        let cells: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out.push('\n');
}

fn find<'a>(r: &'a Report, name: &str) -> Option<&'a ExperimentRow> {
    r.experiments.iter().find(|e| e.measured.name == name)
}

fn plan_sentence(c: &PlanCell) -> String {
    format!(
        "{} × {} at {}/hour, {} per request ({} per 10k)",
        c.instances.unwrap_or(0),
        c.instance_type,
        usd(c.usd_per_hour, 2),
        usd(c.usd_per_request, 6),
        usd(c.usd_per_request.map(|x| x * 1e4), 2)
    )
}

fn summary(out: &mut String, r: &Report) {
    out.push_str("## Summary\n\n");
    for w in &r.analysis.workloads {
        let (p, g) = r.mean_tokens(&w.workload);
        let what = format!(
            "**{}** (prompt ~{} tokens, output ~{} tokens)",
            w.workload,
            opt(p, |v| format!("{v:.0}")),
            opt(g, |v| format!("{v:.0}"))
        );
        match w.best.as_deref().and_then(|b| find(r, b)) {
            Some(e) => {
                let cost = match (e.measured.usd_per_hour, e.usd_per_10k_requests) {
                    (Some(_), Some(_)) => format!(
                        " at {}/hour, **{} per 10k requests**",
                        usd(e.measured.usd_per_hour, 2),
                        usd(e.usd_per_10k_requests, 2)
                    ),
                    _ => " (no price known, so no cost)".to_string(),
                };
                let _ = write!(
                    out,
                    "- For {what}, the best option within budget is **{}** ({} instance{}, {}): {:.2} req/s{cost}, TTFT p95 {} ms, e2e p95 {} ms.",
                    e.measured.instance_type,
                    e.measured.instance_count,
                    if e.measured.instance_count == 1 { "" } else { "s" },
                    load(e),
                    e.measured.throughput,
                    lat(e, "ttft.p95"),
                    lat(e, "e2e.p95"),
                );
            }
            None => {
                let _ = write!(
                    out,
                    "- For {what}, **no configuration met the budget**; see the failed criteria below."
                );
            }
        }
        if let Some(t) = &r.target {
            let cell = t
                .workloads
                .iter()
                .find(|x| x.workload == w.workload)
                .and_then(|x| x.heatmap.iter().find(|c| c.best_choice));
            let rpm = r.target_rpm.unwrap_or_default();
            match cell {
                Some(c) => {
                    let _ = write!(
                        out,
                        " To serve **{rpm} req/min**: **{}**.",
                        plan_sentence(c)
                    );
                }
                None => {
                    let _ = write!(
                        out,
                        " No measured instance type with a known price serves {rpm} req/min within budget."
                    );
                }
            }
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "\nBudget: {} (from {}).\n",
        budget_text(r),
        r.budget.source
    );
    if r.simulated {
        out.push_str("> **SIMULATED**: these results come from the embedded simulator; the figures are modelled, not measured on real hardware.\n\n");
    }
    if !r.excluded.is_empty() {
        let _ = writeln!(out, "Left out (not complete): {}.\n", r.excluded.join(", "));
    }
}

fn best_and_recommendations(out: &mut String, r: &Report) {
    out.push_str("## Best option\n\nPer workload, the recommended configuration with the lowest $/request (ties: higher throughput, then name).\n\n");
    let mut rows = vec![];
    for w in &r.analysis.workloads {
        let Some(e) = w.best.as_deref().and_then(|b| find(r, b)) else {
            rows.push(vec![w.workload.clone(), "none within budget".into()]);
            continue;
        };
        rows.push(vec![
            w.workload.clone(),
            e.measured.instance_type.clone(),
            e.measured.instance_count.to_string(),
            load(e),
            format!("{:.2}", e.measured.throughput),
            lat(e, "ttft.p95"),
            lat(e, "e2e.p95"),
            pct(e.measured.error_rate),
            usd(e.measured.usd_per_hour, 2),
            usd(e.usd_per_10k_requests, 2),
        ]);
    }
    for row in &mut rows {
        row.resize(10, String::new());
    }
    table(
        out,
        &[
            "workload",
            "instance type",
            "instances",
            "load",
            "req/s",
            "TTFT p95 (ms)",
            "e2e p95 (ms)",
            "error rate",
            "$/hour",
            "$/10k requests",
        ],
        &rows,
    );
    out.push_str("## Recommendation per instance type\n\nThe highest sustained throughput within budget, per instance type and workload (ties: lower $/request, then lower first latency statistic, then name). ◆ marks the Pareto front of cost against throughput.\n\n");
    let mut rows = vec![];
    for w in &r.analysis.workloads {
        for c in &w.choices {
            match c.chosen.as_deref().and_then(|n| find(r, n)) {
                Some(e) => rows.push(vec![
                    w.workload.clone(),
                    c.instance_type.clone(),
                    format!(
                        "{}{}",
                        e.measured.name,
                        if w.pareto.contains(&e.measured.name) {
                            " ◆"
                        } else {
                            ""
                        }
                    ),
                    load(e),
                    format!("{:.2}", e.measured.throughput),
                    format!("{:.0}", e.output_token_throughput),
                    lat(e, "ttft.p95"),
                    lat(e, "e2e.p95"),
                    usd(e.usd_per_10k_requests, 2),
                ]),
                None => rows.push(vec![
                    w.workload.clone(),
                    c.instance_type.clone(),
                    "none within budget".into(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ]),
            }
        }
    }
    table(
        out,
        &[
            "workload",
            "instance type",
            "chosen",
            "load",
            "req/s",
            "output tok/s",
            "TTFT p95 (ms)",
            "e2e p95 (ms)",
            "$/10k requests",
        ],
        &rows,
    );
    out.push_str("## Failed criteria\n\n");
    let rejected: Vec<Vec<String>> = r
        .analysis
        .workloads
        .iter()
        .flat_map(|w| {
            w.rejected.iter().map(|x| {
                let e = find(r, &x.name);
                vec![
                    x.name.clone(),
                    e.map(|e| e.measured.instance_type.clone())
                        .unwrap_or_default(),
                    w.workload.clone(),
                    e.map(load).unwrap_or_default(),
                    x.failed.join("; "),
                ]
            })
        })
        .collect();
    if rejected.is_empty() {
        out.push_str("Every configuration met the budget.\n\n");
    } else {
        table(
            out,
            &["experiment", "instance type", "workload", "load", "failed"],
            &rejected,
        );
    }
}

fn cost(out: &mut String, r: &Report) {
    let _ = write!(
        out,
        "## Cost\n\nFrom each experiment's measured window, for all of the endpoint's instances (docs/cost.md). – : no price known. Prices: {}.\n\n",
        r.pricing.label
    );
    let mut prices: Vec<Vec<String>> = vec![];
    for e in &r.experiments {
        let Some(p) = &e.price else { continue };
        let unit = match p.rate {
            Rate::InstanceHour(h) => format!("${h}/hour per instance"),
            Rate::Tokens(t) => format!(
                "${} / ${} per 1M input / output tokens",
                t.input_per_1m, t.output_per_1m
            ),
        };
        let row = vec![
            e.measured.instance_type.clone(),
            unit,
            p.mode.as_str().to_string(),
            p.region.clone(),
            p.source.clone(),
            p.as_of.clone(),
        ];
        if !prices.contains(&row) {
            prices.push(row);
        }
    }
    if !prices.is_empty() {
        table(
            out,
            &["priced", "unit price", "mode", "region", "source", "as of"],
            &prices,
        );
    }
    let rows: Vec<Vec<String>> = r
        .experiments
        .iter()
        .map(|e| {
            vec![
                e.measured.name.clone(),
                e.measured.instance_count.to_string(),
                format!("{:.2}", e.measured.throughput),
                pct(e.measured.error_rate),
                usd(e.measured.usd_per_hour, 2),
                usd(e.measured.usd_per_request, 6),
                usd(e.usd_per_10k_requests, 2),
                usd(e.usd_per_1m_output_tokens, 2),
                usd(e.usd_run, 4),
            ]
        })
        .collect();
    table(
        out,
        &[
            "experiment",
            "instances",
            "req/s",
            "error rate",
            "$/hour",
            "$/request",
            "$/10k requests",
            "$/1M output tokens",
            "run cost",
        ],
        &rows,
    );
}

fn capacity(out: &mut String, r: &Report, charts: &[Chart]) {
    out.push_str("## Capacity plan\n\nPer-instance capacity: the highest request rate one instance sustains within budget, interpolated between measured load levels and never extrapolated past the highest one, or, where a capacity search ran under this budget, the throughput measured at the highest load it found within budget, with the interval up to the rate that broke it (docs/cost.md).\n\n");
    let mut rows = vec![];
    for w in &r.analysis.workloads {
        for c in &w.capacity {
            let note = c.notes().join("; ");
            rows.push(vec![
                w.workload.clone(),
                c.instance_type.clone(),
                c.levels.to_string(),
                opt(c.capacity.as_ref().map(|x| x.per_instance_rps), |v| {
                    format!("{v:.2}")
                }),
                opt(
                    c.capacity.as_ref().map(|x| x.per_instance_rps * 60.0),
                    |v| format!("{v:.0}"),
                ),
                usd(c.usd_per_instance_hour, 3),
                note,
            ]);
        }
    }
    table(
        out,
        &[
            "workload",
            "instance type",
            "levels",
            "req/s per instance",
            "req/min per instance",
            "$/hour per instance",
            "note",
        ],
        &rows,
    );
    for w in &r.analysis.workloads {
        if w.heatmap.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "### Instances and $/hour per target rate — {}\n\nEach cell: instances needed, $/hour. ★ best choice (least cost; ties: fewer instances, more headroom, name), $ least cost, # fewest instances, – budget never met or no price.\n",
            w.workload
        );
        let types: Vec<&str> = w
            .capacity
            .iter()
            .map(|c| c.instance_type.as_str())
            .collect();
        let mut header = vec!["req/min"];
        header.extend(types.iter().copied());
        let rows: Vec<Vec<String>> = r
            .analysis
            .target_rpms
            .iter()
            .map(|rpm| {
                let mut row = vec![super::svg::short(*rpm)];
                for t in &types {
                    let cell = w
                        .heatmap
                        .iter()
                        .find(|c| c.instance_type == *t && c.target_rpm == *rpm);
                    row.push(match cell {
                        Some(c) if c.instances.is_some() => {
                            let m = super::charts::marks(c, " ");
                            format!(
                                "{} × {}{m}",
                                c.instances.unwrap_or(0),
                                usd(c.usd_per_hour, 2)
                            )
                        }
                        _ => "–".into(),
                    });
                }
                row
            })
            .collect();
        table(out, &header, &rows);
        for c in charts
            .iter()
            .filter(|c| c.file.ends_with("-heatmap.svg") && c.title.ends_with(&w.workload))
        {
            let _ = writeln!(out, "![{}]({})\n", c.title, c.file);
        }
    }
}

fn provenance(out: &mut String, r: &Report) {
    out.push_str("## Provenance\n\n");
    let _ = writeln!(
        out,
        "Report written by harness {} (report format {}).\n",
        r.harness_version, r.report_version
    );
    let mut rows = vec![];
    for b in &r.bundles {
        for run in &b.runs {
            rows.push(vec![
                b.file.clone(),
                run.run_id.clone(),
                run.harness_version.clone(),
                run.git_revision.clone(),
                run.started_at.clone(),
                run.config_file.clone(),
                run.status.clone(),
            ]);
        }
    }
    table(
        out,
        &[
            "bundle",
            "run",
            "harness",
            "git revision",
            "started",
            "config",
            "status",
        ],
        &rows,
    );
    out.push_str("### Experiments\n\n");
    let rows: Vec<Vec<String>> = r
        .experiments
        .iter()
        .map(|e| {
            vec![
                e.measured.name.clone(),
                format!("`{}`", e.measured.experiment_id),
                e.endpoint.clone(),
                r.bundles[e.bundle].file.clone(),
                e.run_id.clone(),
            ]
        })
        .collect();
    table(
        out,
        &[
            "experiment",
            "id (SHA-256 of its inputs)",
            "endpoint",
            "bundle",
            "run",
        ],
        &rows,
    );
    out.push_str("### Dataset cards\n\n");
    let rows: Vec<Vec<String>> = r
        .bundles
        .iter()
        .flat_map(|b| {
            b.datasets.iter().map(|d| {
                vec![
                    d.dataset.clone(),
                    d.kind.clone(),
                    d.path.clone().unwrap_or_else(|| "–".into()),
                    format!("`{}`", d.content_sha256),
                    d.tokenizer_id.clone(),
                    d.bucket_edges.clone().unwrap_or_else(|| "–".into()),
                    d.rows_total.to_string(),
                    d.rows_dropped.to_string(),
                    d.rows_per_bucket.clone(),
                ]
            })
        })
        .collect();
    table(
        out,
        &[
            "dataset",
            "kind",
            "path",
            "content SHA-256",
            "tokenizer",
            "bucket edges",
            "rows",
            "dropped",
            "rows per bucket",
        ],
        &rows,
    );
    for b in &r.bundles {
        for run in &b.runs {
            let _ = writeln!(
                out,
                "<details><summary>Effective config of run {} ({})</summary>\n\n```yaml\n{}\n```\n\n</details>\n",
                run.run_id,
                run.config_file,
                run.config_yaml.trim_end()
            );
        }
    }
}

/// Attainment of the budget's SLO and goodput per experiment, when the
/// budget has an SLO (docs/metrics.md, "SLO attainment and goodput").
fn slo(out: &mut String, r: &Report) {
    let Some(slo) = &r.budget.constraints.slo else {
        return;
    };
    let limits: Vec<String> = slo
        .limits()
        .iter()
        .map(|(m, l)| format!("{} ≤ {l} ms", m.id()))
        .collect();
    let _ = writeln!(
        out,
        "## SLO attainment and goodput

A request attains the SLO ({}) when it succeeded and met every limit. Attainment: attaining / measured requests, with its 95% Wilson interval; goodput: attaining requests per second over the measurement window.
",
        limits.join(", ")
    );
    let rows: Vec<Vec<String>> = r
        .experiments
        .iter()
        .map(|e| {
            let a = e.measured.attainment;
            vec![
                e.measured.name.clone(),
                opt(a.map(|a| a.measured as f64), |x| format!("{x}")),
                opt(a.map(|a| a.attained as f64), |x| format!("{x}")),
                opt(a.map(|a| a.fraction), pct),
                a.map(|a| format!("{} – {}", pct(a.low), pct(a.high)))
                    .unwrap_or_else(|| "–".into()),
                opt(a.map(|a| a.goodput), |x| format!("{x:.2}")),
                format!("{:.2}", e.measured.throughput),
            ]
        })
        .collect();
    table(
        out,
        &[
            "experiment",
            "measured",
            "attained",
            "attainment",
            "95% interval",
            "goodput (req/s)",
            "throughput (req/s)",
        ],
        &rows,
    );
}

/// The engine's figures beside each scraped experiment's latency: what
/// explains it (queueing, KV-cache pressure, prefix-cache hits).
fn server_metrics(out: &mut String, r: &Report) {
    if r.server.is_empty() {
        return;
    }
    out.push_str("## Server metrics\n\nFrom the engine's Prometheus `/metrics`, scraped while each experiment ran, over its measurement window (docs/metrics.md, \"Server metrics\"): running and waiting requests and KV-cache usage as mean / max of the scrapes; prefix-cache hit rate as prompt tokens found in the cache / prompt tokens looked up (– when the engine looked none up: prefix caching off, or no such counter); generation tok/s from the counter's rise (– with fewer than two scrapes in the window).\n\n");
    let mm = |m: Option<harness_core::server::MeanMax>, percent: bool| match m {
        Some(m) if percent => format!("{} / {}", pct(m.mean), pct(m.max)),
        Some(m) => format!("{:.1} / {:.0}", m.mean, m.max),
        None => "–".into(),
    };
    let rows: Vec<Vec<String>> = r
        .server
        .iter()
        .map(|s| {
            let e = &r.experiments[s.experiment];
            let m = &s.summary;
            vec![
                e.measured.name.clone(),
                lat(e, "ttft.p50"),
                lat(e, "ttft.p95"),
                opt(m.prefix_cache_hit_rate, pct),
                mm(m.running, false),
                mm(m.waiting, false),
                mm(m.kv_cache_usage, true),
                opt(m.generation_tokens_per_s, |x| format!("{x:.0}")),
                format!("{} of {}", s.failures, s.attempts),
            ]
        })
        .collect();
    table(
        out,
        &[
            "experiment",
            "TTFT p50 (ms)",
            "TTFT p95 (ms)",
            "prefix-cache hit rate",
            "running",
            "waiting",
            "KV cache",
            "generation tok/s",
            "scrapes failed",
        ],
        &rows,
    );
}

pub fn render(r: &Report, charts: &[Chart]) -> String {
    let mut out = String::from("# Price-performance report\n\n");
    let (endpoint_charts, command_charts): (Vec<Chart>, Vec<Chart>) = charts
        .iter()
        .cloned()
        .partition(|c| !c.file.starts_with("charts/command-"));
    if r.experiments.is_empty() {
        out.push_str(&harness_view::commands::markdown(
            &r.commands,
            &command_charts,
        ));
        provenance(&mut out, r);
        return out;
    }
    let charts = &endpoint_charts[..];
    summary(&mut out, r);
    best_and_recommendations(&mut out, r);
    slo(&mut out, r);
    server_metrics(&mut out, r);
    cost(&mut out, r);
    capacity(&mut out, r, charts);
    out.push_str("## Charts\n\n");
    for c in charts.iter().filter(|c| !c.file.ends_with("-heatmap.svg")) {
        let _ = writeln!(out, "![{}]({})\n", c.title, c.file);
    }
    out.push_str(&harness_view::commands::markdown(
        &r.commands,
        &command_charts,
    ));
    provenance(&mut out, r);
    out
}
