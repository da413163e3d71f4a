//! Capacity search against the simulator, whose capacity is known in closed
//! form; early stop; SLO attainment and goodput in the report.

use super::common::*;
use harness::bundle::read;

/// Fixed timing: TTFT 10 ms, then 8 gaps of 5 ms (9 tokens, EOS ignored), so
/// every request takes S = 50 ms; 4 sequences at a time. With constant
/// arrivals (D/D/4) nothing queues below 4 / S = 80 req/s and the queue grows
/// without bound above it: e2e ≤ 75 ms (1.5 S) at p95 holds up to 80 req/s.
const TRUTH_RPS: f64 = 80.0;

fn config(search: &str, budgets: &str, requests: u32) -> String {
    format!(
        r#"
name: search
endpoints:
  - name: sim
    provider: sim
    instance_type: g5.xlarge
    sim: {{ ttft_ms: 10, itl_ms: 5, max_concurrency: 4 }}
datasets:
  - name: d
    synthetic: {{ prompt_tokens: 16, output_tokens: 9 }}
sampling: {{ ignore_eos: true }}
pricing: {{ instance_hourly: {{ g5.xlarge: 1.0 }} }}
load:
  search: {search}
  requests: {requests}
budgets: {budgets}
"#
    )
}

struct Probe {
    rate: f64,
    requests: u64,
    stopped_early: Option<String>,
}

fn probes(bundle: &std::path::Path) -> Vec<Probe> {
    let conn = read::open(bundle).unwrap();
    let mut st = conn
        .prepare(
            "SELECT e.rate, (SELECT count(*) FROM requests r WHERE r.experiment_id = e.experiment_id), \
             e.stopped_early FROM experiments e WHERE e.search_id IS NOT NULL ORDER BY e.started_at",
        )
        .unwrap();
    st.query_map([], |r| {
        Ok(Probe {
            rate: r.get(0)?,
            requests: r.get::<_, i64>(1)? as u64,
            stopped_early: r.get(2)?,
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn found(bundle: &std::path::Path) -> harness_core::search::Found {
    let conn = read::open(bundle).unwrap();
    let f: String = conn
        .query_row("SELECT found FROM searches", [], |r| r.get(0))
        .unwrap();
    serde_json::from_str(&f).unwrap()
}

#[test]
fn the_search_lands_within_its_precision_of_the_known_capacity_for_fewer_requests_than_a_grid() {
    let dir = tempfile::tempdir().unwrap();
    let precision = 0.1;
    let cfg = write_config(
        dir.path(),
        "search",
        &config(
            &format!("{{ rate: 20, precision: {precision} }}"),
            "{ e2e_p95_ms: 75 }",
            80,
        ),
    );
    let out = run_ok(&[
        "run",
        "-q",
        cfg.to_str().unwrap(),
        "--out",
        dir.path().join("s.duckdb").to_str().unwrap(),
    ]);
    let bundle = dir.path().join("s.duckdb");
    let text = stdout(&out);
    assert!(
        text.contains("SEARCH: sim · d · rate search: capacity in ["),
        "{text}"
    );
    let f = found(&bundle);
    let (lo, hi) = (f.lo.unwrap(), f.hi.unwrap());
    assert!(f.converged, "{f:?}");
    assert!((hi - lo) / lo <= precision + 1e-9, "{f:?}");
    assert!(
        (lo - TRUTH_RPS).abs() / TRUTH_RPS <= precision,
        "searched capacity {lo} req/s is not within {precision} of {TRUTH_RPS}: {f:?}"
    );
    assert!(
        hi >= TRUTH_RPS * (1.0 - precision),
        "the budget broke at {hi} req/s, below the capacity {TRUTH_RPS}: {f:?}"
    );
    // Its cost against a grid that gives the same precision: levels a factor
    // (1 + precision) apart from the start to the capacity, each a full run.
    let ps = probes(&bundle);
    assert_eq!(ps.len(), f.probes.len());
    let spent: u64 = ps.iter().map(|p| p.requests).sum();
    let levels = ((hi / 20.0).ln() / (1.0 + precision).ln()).ceil() as u64 + 1;
    let grid = levels * 80;
    eprintln!(
        "search: {} probes, {spent} requests, capacity in [{lo}, {hi}] req/s; a grid of the same precision: {levels} levels, {grid} requests",
        ps.len()
    );
    assert!(spent < grid, "search spent {spent} requests, a grid {grid}");
    assert!(
        ps.iter()
            .any(|p| p.stopped_early.is_some() && p.requests < 80),
        "a probe far over capacity stops early"
    );
    // Every probe is an experiment with its own summary; the plan uses the
    // searched capacity and shows its interval.
    let exps = experiments(&bundle);
    assert!(exps
        .iter()
        .all(|e| e.status == "complete" && e.probe.is_some()));
    assert!(exps.iter().all(|e| e.label.ends_with("(search)")));
    let plan = stdout(&run_ok(&[
        "plan",
        bundle.to_str().unwrap(),
        "--rpm",
        "6000",
    ]));
    assert!(plan.contains("searched ("), "{plan}");
    assert!(!plan.contains("may be higher"), "{plan}");
    // Under another budget the search's verdicts do not apply.
    let other = stdout(&output(&[
        "plan",
        bundle.to_str().unwrap(),
        "--rpm",
        "6000",
        "--latency-p95",
        "60",
    ]));
    assert!(!other.contains("searched ("), "{other}");
    // A rerun replays the search through the completed probes.
    let again = stdout(&run_ok(&[
        "run",
        "-q",
        cfg.to_str().unwrap(),
        "--out",
        bundle.to_str().unwrap(),
    ]));
    assert!(again.contains("0 experiment(s) run"), "{again}");
    assert_eq!(found(&bundle).lo, Some(lo));
    assert_eq!(experiments(&bundle).len(), ps.len());
}

#[test]
fn a_budget_that_cannot_hold_stops_each_probe_early_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // Every request takes 50 ms: e2e p95 ≤ 10 ms never holds. With 50
    // requests planned, p95 allows 2 over; the third proves it broken.
    let cfg = write_config(
        dir.path(),
        "never",
        &config("{ rate: 4, min: 1 }", "{ e2e_p95_ms: 10 }", 50),
    );
    let bundle = dir.path().join("n.duckdb");
    let out = run_ok(&[
        "run",
        "-q",
        cfg.to_str().unwrap(),
        "--out",
        bundle.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert!(
        text.contains("budget broken even at the lowest load allowed"),
        "{text}"
    );
    let ps = probes(&bundle);
    assert_eq!(
        ps.iter().map(|p| p.rate).collect::<Vec<_>>(),
        [4.0, 2.0, 1.0]
    );
    for p in &ps {
        let why = p.stopped_early.as_deref().expect("stopped early");
        assert!(
            why.starts_with("stopped early after 3 of 50 measured requests"),
            "{why}"
        );
        assert!(why.contains("e2e.p95"), "{why}");
        assert!(
            p.requests < 10,
            "{} requests sent after the stop",
            p.requests
        );
    }
    let f = found(&bundle);
    assert_eq!((f.lo, f.converged), (None, false));
    let plan = output(&["plan", bundle.to_str().unwrap(), "--rpm", "60"]);
    assert_eq!(plan.status.code(), Some(1), "nothing serves the rate");
    assert!(
        stdout(&plan).contains("search: budget broken even at the lowest load allowed (1/s, min)"),
        "{}",
        stdout(&plan)
    );
}

#[test]
fn a_search_without_a_latency_budget_is_refused_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "bad",
        &config("{ rate: 4 }", "{ error_rate: 0.01 }", 10),
    );
    let out = output(&["validate", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("load.search"), "{err}");
    assert!(err.contains("needs a latency budget"), "{err}");
    let cfg = write_config(dir.path(), "bad2", &config("{ }", "{ e2e_p95_ms: 10 }", 10));
    let err = stderr(&output(&["validate", cfg.to_str().unwrap()]));
    assert!(err.contains("`rate: 1`"), "{err}");
    let cfg = write_config(
        dir.path(),
        "bad3",
        &config("{ rate: 4 }", "{ slo_attainment: 0.99 }", 10),
    );
    let err = stderr(&output(&["validate", cfg.to_str().unwrap()]));
    assert!(err.contains("budgets.slo_attainment"), "{err}");
    assert!(err.contains("needs `budgets.slo`"), "{err}");
}

#[test]
fn attainment_and_goodput_are_counted_from_the_requests() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "grid",
        &config("{ rate: 4 }", "{ e2e_p95_ms: 75 }", 10)
            .replace("  search: { rate: 4 }\n", "  concurrency: [2, 8]\n"),
    );
    let bundle = run_into(dir.path(), &cfg, "g", &[]);
    // By hand, from the rows: measured requests that succeeded within 60 ms,
    // over the window from the first scheduled send to the last end.
    let conn = read::open(&bundle).unwrap();
    let mut st = conn
        .prepare(
            "SELECT e.label, count(*), count(*) FILTER (WHERE r.status = 'ok' AND r.end_ns - r.sent_ns <= 60e6), \
             (max(r.end_ns) - min(r.scheduled_ns)) / 1e9 FROM requests r JOIN experiments e USING (experiment_id) \
             WHERE NOT r.warmup GROUP BY e.label ORDER BY e.label",
        )
        .unwrap();
    let by_hand: Vec<(String, i64, i64, f64)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let report = dir.path().join("report");
    run_ok(&[
        "report",
        bundle.to_str().unwrap(),
        "--slo",
        "e2e=60",
        "--slo-attainment",
        "0.5",
        "--format",
        "json",
        "--out",
        report.to_str().unwrap(),
    ]);
    let json = std::fs::read_to_string(report.join("report.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    for (label, n, attained, window) in by_hand {
        let e = v["experiments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == label)
            .unwrap();
        let a = &e["attainment"];
        assert_eq!(a["measured"], n, "{label}");
        assert_eq!(a["attained"], attained, "{label}");
        let goodput = a["goodput"].as_f64().unwrap();
        assert!(
            (goodput - attained as f64 / window).abs() < 1e-9,
            "{label}: {goodput} vs {attained}/{window}"
        );
        let (lo, hi) = (a["low"].as_f64().unwrap(), a["high"].as_f64().unwrap());
        let (wl, wh) = harness_core::slo::wilson(attained as u64, n as u64, harness_core::slo::Z95);
        assert_eq!((lo, hi), (wl, wh));
    }
    assert!(
        v["budget"]["constraints"]["min_attainment"] == 0.5,
        "{}",
        v["budget"]
    );
}
