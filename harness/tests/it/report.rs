//! `harness report`: a golden-file test on a fixed simulator bundle, and the
//! report of a fresh run agreeing with the bundle it reads.
//!
//! The fixed bundle is kept as CSV (one file per table, sorted) under
//! `tests/fixtures/report/bundle/`, made by `scripts/regen-report-fixture.sh`
//! from `tests/fixtures/report/report-golden.yml`. Its timings are frozen, so
//! the report is byte-for-byte reproducible. To accept an intended change of
//! the report: `UPDATE_GOLDEN=1 cargo test -p harness --test it report::`.

use super::common::*;
use harness::bundle::Bundle;
use std::path::{Path, PathBuf};

const TABLES: [(&str, &str); 10] = [
    ("meta", "key"),
    ("runs", "run_id"),
    ("experiments", "ordinal, experiment_id"),
    ("summaries", "experiment_id"),
    ("distributions", "experiment_id, metric"),
    ("ecdf", "experiment_id, metric, v"),
    ("requests", "experiment_id, seq"),
    ("datasets", "dataset, tokenizer_sha256"),
    ("dataset_rows", "dataset, tokenizer_sha256, bucket, line"),
    ("preflights", "run_id, endpoint"),
];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report")
}

fn q(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "''"))
}

/// Writes every table of `bundle` to `dir/<table>.csv`, sorted.
fn export(bundle: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let conn = duckdb::Connection::open(bundle).unwrap();
    for (t, order) in TABLES {
        conn.execute_batch(&format!(
            "COPY (SELECT * FROM {t} ORDER BY {order}) TO {} (HEADER, DELIMITER ',')",
            q(&dir.join(format!("{t}.csv")))
        ))
        .unwrap();
    }
}

/// A bundle at `path` holding the fixture's rows.
fn import(dir: &Path, path: &Path) {
    let b = Bundle::open(path).unwrap();
    let c = b.connection();
    c.execute_batch("DELETE FROM meta").unwrap();
    for (t, _) in TABLES {
        c.execute_batch(&format!(
            "COPY {t} FROM {} (HEADER, DELIMITER ',')",
            q(&dir.join(format!("{t}.csv")))
        ))
        .unwrap_or_else(|e| panic!("importing {t}: {e}"));
    }
    c.execute_batch("CHECKPOINT").unwrap();
}

fn compare_or_update(got: &str, golden: &Path) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(golden, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(golden)
        .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_GOLDEN=1", golden.display()));
    if got != want {
        let line = got
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        panic!(
            "{} differs from the report at line {}:\n  golden: {:?}\n  now:    {:?}\nIf the change is intended, rerun with UPDATE_GOLDEN=1 and review the diff.",
            golden.display(),
            line + 1,
            want.lines().nth(line),
            got.lines().nth(line)
        );
    }
}

#[test]
fn golden_markdown_and_json_report() {
    let dir = tempfile::tempdir().unwrap();
    if let Some(src) = std::env::var_os("REPORT_FIXTURE_FROM") {
        // scripts/regen-report-fixture.sh: refresh the CSV fixture first.
        let _ = std::fs::remove_dir_all(fixture().join("bundle"));
        export(Path::new(&src), &fixture().join("bundle"));
    }
    let bundle = dir.path().join("report-golden.duckdb");
    import(&fixture().join("bundle"), &bundle);
    let out = dir.path().join("report");
    run_ok(&[
        "report",
        bundle.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--rpm",
        "600",
        "--rpm-range",
        "60..6000",
        "--rpm-steps",
        "5",
    ]);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let json = std::fs::read_to_string(out.join("report.json")).unwrap();
    compare_or_update(&md, &fixture().join("report.md"));
    compare_or_update(&json, &fixture().join("report.json"));
    // Every chart the Markdown links to exists and is an SVG.
    let links: Vec<&str> = md
        .lines()
        .filter_map(|l| l.strip_prefix("![")?.split_once("](")?.1.strip_suffix(')'))
        .collect();
    assert_eq!(
        links.len(),
        12,
        "6 charts for each of 2 workloads: {links:?}"
    );
    for l in links {
        let svg = std::fs::read_to_string(out.join(l)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{l}"
        );
    }
}

const CFG: &str = r#"
name: r
endpoints:
  - name: a
    provider: sim
    instance_type: g5.xlarge
    instance_count: 2
    sim: { ttft_ms: 20, itl_ms: 4 }
  - name: b
    provider: sim
    instance_type: g6e.2xlarge
    sim: { ttft_ms: 80, itl_ms: 4 }
datasets:
  - name: d
    synthetic: { prompt_tokens: 16, output_tokens: 8 }
load: { concurrency: [1, 4], requests: 16 }
pricing: { instance_hourly: { g5.xlarge: 1.0, g6e.2xlarge: 2.0 } }
budgets: { ttft_p95_ms: 60 }
"#;

#[test]
fn report_numbers_are_the_bundles_and_the_budget_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "r", CFG);
    let bundle = run_into(dir.path(), &cfg, "r", &[]);
    let out = dir.path().join("rep");
    run_ok(&[
        "report",
        bundle.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(
        !out.join("report.md").exists(),
        "only the formats asked for"
    );
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let stored = experiments(&bundle);
    let rows = j["experiments"].as_array().unwrap();
    assert_eq!(rows.len(), stored.len());
    for e in &stored {
        let r = rows
            .iter()
            .find(|r| r["experiment_id"] == e.experiment_id.as_str())
            .unwrap();
        assert_eq!(
            r["throughput"].as_f64().unwrap(),
            e.summary.request_throughput
        );
        assert_eq!(
            r["usd_per_request"].as_f64(),
            e.costed.figures.usd_per_request
        );
        assert_eq!(
            r["latency"]["ttft.p95"].as_f64().unwrap(),
            e.summary.dist(harness_core::Metric::Ttft).unwrap().p95
        );
    }
    // The bundle's budget (TTFT p95 <= 60 ms) rejects b (80 ms) and keeps a.
    assert_eq!(j["budget"]["constraints"]["latency"][0][0], "ttft.p95");
    let w = &j["analysis"]["workloads"][0];
    let rejected: Vec<&str> = w["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(rejected.iter().all(|n| n.starts_with("b ")), "{rejected:?}");
    assert_eq!(rejected.len(), 2);
    assert!(w["best"].as_str().unwrap().starts_with("a "));
    // a runs 2 instances: its per-instance capacity is half its throughput.
    let cap = w["capacity"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["instance_type"] == "g5.xlarge")
        .unwrap();
    let best_a = stored
        .iter()
        .filter(|e| e.endpoint == "a")
        .map(|e| e.summary.request_throughput)
        .fold(0.0, f64::max);
    assert!((cap["capacity"]["per_instance_rps"].as_f64().unwrap() - best_a / 2.0).abs() < 1e-9);
    assert_eq!(cap["usd_per_instance_hour"].as_f64(), Some(1.0));

    // A command-line budget replaces the bundle's: now b passes too.
    run_ok(&[
        "report",
        bundle.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--latency",
        "ttft.p95=500",
    ]);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("Every configuration met the budget."), "{md}");
    assert!(md.contains("from command line"));
}

#[test]
fn bad_report_arguments_are_named() {
    let bad = [
        (vec!["--latency", "ttft.p42=5"], "not a latency statistic"),
        (vec!["--latency", "ttft.p95"], "expected METRIC.STAT=MS"),
        (vec!["--format", "pdf"], "--format `pdf`"),
        (vec!["--rpm-range", "10..1"], "--rpm-range `10..1`"),
    ];
    for (args, want) in bad {
        let mut a = vec!["report", "nowhere.duckdb"];
        a.extend(args.iter());
        let o = harness().args(&a).output().unwrap();
        assert!(!o.status.success());
        assert!(stderr(&o).contains(want), "{a:?}: {}", stderr(&o));
    }
    let o = output(&["report", "nowhere.duckdb"]);
    assert!(stderr(&o).contains("no bundle at nowhere.duckdb"));
}

const TOKEN_PRICED: &str = r#"
name: t
endpoints:
  - name: api
    provider: sim
    model: hosted-8b
    sim: { ttft_ms: 5, itl_ms: 1 }
datasets:
  - name: d
    synthetic: { prompt_tokens: 40, output_tokens: 12 }
load: { concurrency: [2], requests: 10, warmup: { requests: 2 } }
sampling: { ignore_eos: true }
pricing: { token_prices: { hosted-8b: { input_per_1m: 2.0, output_per_1m: 10.0 } } }
"#;

#[test]
fn token_priced_endpoint_costs_come_from_usage_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "t", TOKEN_PRICED);
    let bundle = run_into(dir.path(), &cfg, "t", &[]);
    let c = harness::bundle::read::open(&bundle).unwrap();
    let tokens = |filter: &str| -> (i64, i64, i64) {
        c.query_row(
            &format!("SELECT sum(coalesce(prompt_tokens_usage, prompt_tokens_client)), sum(coalesce(output_tokens_usage, output_tokens_client)), count(*) FROM requests WHERE {filter}"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    };
    let (p, o, n) = tokens("status = 'ok' AND NOT warmup");
    let (pa, oa, _) = tokens("TRUE");
    assert_eq!((p, o, n), (400, 120, 10), "the simulator reports usage");
    let e = &experiments(&bundle)[0];
    let want = (p as f64 * 2.0 + o as f64 * 10.0) / 1e6 / n as f64;
    let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() <= 1e-12 * b);
    assert!(
        close(e.costed.figures.usd_per_request, want),
        "{:?} vs {want}",
        e.costed
    );
    assert!(close(e.costed.figures.usd_per_10k_requests, want * 1e4));
    assert!(close(
        e.costed.figures.usd_run,
        (pa as f64 * 2.0 + oa as f64 * 10.0) / 1e6
    ));
    assert_eq!(
        e.costed.figures.usd_per_hour, None,
        "token-priced: no hourly price"
    );
}

#[test]
fn a_negative_token_price_is_named_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = TOKEN_PRICED.replace("input_per_1m: 2.0", "input_per_1m: -2.0");
    let cfg = write_config(dir.path(), "t", &bad);
    let o = output(&["validate", cfg.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("t.yml:13:")
            && stderr(&o)
                .contains("pricing.token_prices.hosted-8b.input_per_1m: -2 is not a price"),
        "{}",
        stderr(&o)
    );
}

/// The SQL form of each metric's selection (`Metric::sql_sample`, which the
/// viewer aggregates with) picks exactly the values `Metric::samples` does, on
/// the fixture's requests (successes, failures, warm-up, streamed).
#[test]
fn sql_metric_selection_is_the_rust_definition() {
    use harness_core::Metric;
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("golden.duckdb");
    import(&fixture().join("bundle"), &bundle);
    let conn = harness::bundle::read::open(&bundle).unwrap();
    let mut checked = 0;
    for e in harness::bundle::read::experiments(&conn).unwrap() {
        let requests = harness::bundle::read::request_samples(&conn, &e.experiment_id).unwrap();
        for m in Metric::ALL {
            let Some(expr) = m.sql_sample() else { continue };
            let mut st = conn
                .prepare(&format!(
                    "SELECT v FROM (SELECT seq, {expr} AS v FROM requests WHERE experiment_id = ? AND NOT warmup) WHERE v IS NOT NULL ORDER BY seq"
                ))
                .unwrap();
            let sql: Vec<f64> = st
                .query_map([&e.experiment_id], |r| r.get::<_, i64>(0))
                .unwrap()
                .map(|v| v.unwrap() as f64 / m.scale())
                .collect();
            let rust = harness_core::summary::metric_values(&requests, m);
            assert_eq!(sql, rust, "{} {}", e.label, m.id());
            checked += rust.len();
        }
    }
    assert!(checked > 100, "only {checked} values compared");
}

/// The viewer's distribution charts (the bundle's `ecdf` rows, grouped in
/// DuckDB by `contract::ecdf_groups_sql` when the experiment was written,
/// then `model::cdf_from_groups`) put every point exactly on the empirical
/// CDF of the values `Metric::samples` picks, end at 100%, and thin 1k+
/// values to a few hundred points at most. Rewriting the table from the
/// requests (`harness reindex`) gives the same rows.
#[test]
fn viewer_distribution_points_lie_on_the_ecdf() {
    use harness_core::Metric;
    use harness_view::contract;
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("golden.duckdb");
    import(&fixture().join("bundle"), &bundle);
    let conn = harness::bundle::read::open(&bundle).unwrap();
    let experiments = harness::bundle::read::experiments(&conn).unwrap();
    let ids: Vec<String> = experiments
        .iter()
        .map(|e| e.experiment_id.clone())
        .collect();
    let metrics = [
        Metric::Ttft,
        Metric::E2e,
        Metric::DispatchLag,
        Metric::OutputTokens,
    ];
    let sql = contract::ecdf_sql(None, &ids, &metrics).unwrap();
    let rows = harness::bundle::read::rows_of(&conn, &sql).unwrap();
    let cdfs = contract::ecdf_decode(&rows, &metrics);
    let mut checked = 0;
    for e in &experiments {
        let requests = harness::bundle::read::request_samples(&conn, &e.experiment_id).unwrap();
        for m in metrics {
            let values = harness_core::summary::metric_values(&requests, m);
            let key = (e.experiment_id.clone(), m.id().to_string());
            let Some(points) = cdfs.get(&key) else {
                assert!(
                    values.is_empty(),
                    "{} {}: no points for {} values",
                    e.label,
                    m.id(),
                    values.len()
                );
                continue;
            };
            assert!(
                points.len() <= values.len().min(600),
                "{} {}: {} points",
                e.label,
                m.id(),
                points.len()
            );
            for (v, pct) in points {
                let at_or_below = values.iter().filter(|x| *x <= v).count();
                let want = 100.0 * at_or_below as f64 / values.len() as f64;
                assert!(
                    (pct - want).abs() < 1e-9,
                    "{} {}: ({v}, {pct}) but {want}% are at or below",
                    e.label,
                    m.id()
                );
                assert!(
                    values.contains(v),
                    "{} {}: {v} is not a measured value",
                    e.label,
                    m.id()
                );
            }
            assert_eq!(points.last().unwrap().1, 100.0);
            assert!(points
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1));
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} distributions compared");
    // No ids or no metrics: nothing to ask; ITL has no rows.
    assert!(contract::ecdf_sql(None, &[], &metrics).is_none());
    assert!(contract::ecdf_sql(None, &ids, &[]).is_none());
    let itl = contract::ecdf_sql(None, &ids, &[Metric::Itl]).unwrap();
    assert!(harness::bundle::read::rows_of(&conn, &itl)
        .unwrap()
        .is_empty());
    // The stored rows are what the write-time SQL gives now.
    let all = "SELECT * FROM ecdf ORDER BY experiment_id, metric, v";
    let stored = harness::bundle::read::rows_of(&conn, all).unwrap();
    drop(conn);
    let out = harness()
        .args(["reindex", bundle.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conn = harness::bundle::read::open(&bundle).unwrap();
    assert_eq!(harness::bundle::read::rows_of(&conn, all).unwrap(), stored);
}

/// The viewer reads an experiment's measured requests through the
/// contract's SQL (`contract::request_samples_sql`, rows as DuckDB-WASM
/// gives them): the harness's own samples without the warm-up and the chunk
/// times, and the same SLO attainment and goodput from them, failures
/// included.
#[test]
fn viewer_request_samples_give_the_harnesss_attainment() {
    use harness_core::slo::{attainment, Slo};
    use harness_view::contract;
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("golden.duckdb");
    import(&fixture().join("bundle"), &bundle);
    let conn = harness::bundle::read::open(&bundle).unwrap();
    let (mut requests, mut failed, mut some_attain, mut some_miss) = (0, 0, false, false);
    for e in harness::bundle::read::experiments(&conn).unwrap() {
        let native = harness::bundle::read::request_samples(&conn, &e.experiment_id).unwrap();
        let sql = contract::request_samples_sql(None, &e.experiment_id);
        let rows = harness::bundle::read::rows_of(&conn, &sql).unwrap();
        let viewer: Vec<harness_core::RequestSample> = contract::decode("requests", rows).unwrap();
        let measured: Vec<_> = native
            .iter()
            .filter(|r| !r.warmup)
            .map(|r| harness_core::RequestSample {
                token_chunk_ns: vec![],
                ..r.clone()
            })
            .collect();
        assert!(measured.len() < native.len(), "{}: no warm-up", e.label);
        assert_eq!(viewer, measured, "{}", e.label);
        // Limits at each metric's median, so that some requests attain.
        let median = |m| {
            let mut v = harness_core::summary::metric_values(&native, m);
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied()
        };
        let slo = Slo {
            ttft_ms: median(harness_core::Metric::Ttft),
            tpot_ms: median(harness_core::Metric::Tpot).map(|x| x * 2.0),
            e2e_ms: median(harness_core::Metric::E2e).map(|x| x * 2.0),
        };
        let a = attainment(&viewer, &slo).unwrap();
        assert_eq!(Some(a), attainment(&native, &slo), "{}", e.label);
        requests += viewer.len();
        failed += viewer.iter().filter(|r| !r.ok).count();
        some_attain |= a.attained > 0;
        some_miss |= a.attained < a.measured;
    }
    assert!(
        requests > 100 && failed > 0 && some_attain && some_miss,
        "{requests} {failed} {some_attain} {some_miss}"
    );
    // Quotes in an id are SQL-escaped, not injected.
    let sql = contract::request_samples_sql(None, "x' OR '1'='1");
    assert!(harness::bundle::read::rows_of(&conn, &sql)
        .unwrap()
        .is_empty());
}
