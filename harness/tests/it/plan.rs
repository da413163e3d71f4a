//! `harness plan` over a simulator bundle.

use super::common::*;

const TWO_TYPES: &str = r#"
name: plan
endpoints:
  - name: small
    provider: sim
    instance_type: g5.xlarge
    sim: { ttft_ms: 20, itl_ms: 5 }
  - name: pair
    provider: sim
    instance_type: g6e.2xlarge
    instance_count: 2
    sim: { ttft_ms: 20, itl_ms: 5 }
datasets:
  - name: d
    synthetic: { prompt_tokens: 16, output_tokens: 8 }
load:
  concurrency: [1, 4]
  requests: 12
"#;

#[test]
fn plan_answers_with_instances_and_cost() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "plan", TWO_TYPES);
    let out = run_into(dir.path(), &cfg, "p", &[]);
    let pricing = format!("{}/../configs/pricing.yml", env!("CARGO_MANIFEST_DIR"));
    let o = run_ok(&[
        "plan",
        out.to_str().unwrap(),
        "--rpm",
        "6000",
        "--latency-p95",
        "1000",
        "--pricing",
        &pricing,
    ]);
    let s = stdout(&o);
    // Fixed timing: every level meets a 1 s budget; both types are planned.
    assert!(s.contains("g5.xlarge") && s.contains("g6e.2xlarge"), "{s}");
    assert!(
        s.contains("budget held at the highest level measured"),
        "{s}"
    );
    assert!(
        s.contains("Answer: ") && s.contains("req/min within e2e p95 <= 1000 ms"),
        "{s}"
    );
    assert!(s.contains("SIMULATED"), "{s}");
    // g6e ran two instances: its per-instance rate is half the measured throughput.
    let conn = harness::bundle::read::open(&out).unwrap();
    let (tp, count): (f64, i32) = conn
        .query_row(
            "SELECT max(s.request_throughput), max(e.instance_count) FROM summaries s JOIN experiments e USING (experiment_id) WHERE e.instance_type = 'g6e.2xlarge'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(count, 2);
    let line = s.lines().find(|l| l.starts_with("g6e.2xlarge")).unwrap();
    let per_instance: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!((per_instance - tp / 2.0).abs() < 0.01, "{line} vs {tp}");

    // A budget no level meets, and a region without prices.
    let s = stdout(&run_ok(&[
        "plan",
        out.to_str().unwrap(),
        "--rpm",
        "60",
        "--latency-p95",
        "1",
        "--pricing",
        &pricing,
    ]));
    assert!(
        s.contains("budget never met") && s.contains("no measured instance type meets the budget"),
        "{s}"
    );
    let s = stdout(&run_ok(&[
        "plan",
        out.to_str().unwrap(),
        "--rpm",
        "60",
        "--latency-p95",
        "1000",
        "--pricing",
        &pricing,
        "--region",
        "mars-1",
    ]));
    assert!(s.contains("no price for g5.xlarge in mars-1"), "{s}");
}

#[test]
fn cost_columns_honour_instance_count_and_missing_prices() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "plan", TWO_TYPES);
    let out = dir.path().join("c.duckdb");
    let o = run_ok(&[
        "run",
        "-q",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--set",
        "pricing.instance_hourly={g6e.2xlarge: 2.0}",
        "--set",
        "load.concurrency=[2]",
    ]);
    assert!(
        stderr(&o)
            .contains("warning: no price for g5.xlarge in us-east-1 (no pricing file configured)"),
        "{}",
        stderr(&o)
    );
    let conn = harness::bundle::read::open(&out).unwrap();
    let (hour, req, win, ok): (f64, f64, f64, i64) = conn
        .query_row(
            "SELECT s.usd_per_hour, s.usd_per_request, s.window_s, s.requests_ok FROM summaries s JOIN experiments e USING (experiment_id) WHERE e.instance_type = 'g6e.2xlarge'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(hour, 4.0, "2 instances x $2/h");
    assert!((req - 4.0 * win / 3600.0 / ok as f64).abs() < 1e-12);
    let nulls: i64 = conn
        .query_row(
            "SELECT count(*) FROM summaries s JOIN experiments e USING (experiment_id) WHERE e.instance_type = 'g5.xlarge' AND s.usd_per_request IS NULL AND s.usd_per_hour IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(nulls, 1, "unknown price: null, never zero");
}
