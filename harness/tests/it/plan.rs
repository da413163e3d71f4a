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
        "--reprice",
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
        s.contains("Answer: ") && s.contains("req/min within e2e.p95 <= 1000 ms"),
        "{s}"
    );
    assert!(
        s.contains(&format!(
            "Prices: repriced from {pricing} (region us-east-1, on_demand)"
        )),
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

    // A budget no level meets: a finding, exit 1.
    let o = output(&[
        "plan",
        out.to_str().unwrap(),
        "--rpm",
        "60",
        "--latency-p95",
        "1",
        "--reprice",
        &pricing,
    ]);
    assert_eq!(o.status.code(), Some(1));
    let s = stdout(&o);
    assert!(
        s.contains("budget never met")
            && s.contains("no measured instance type with a known price serves 60 req/min"),
        "{s}"
    );
    // A region the book does not have: bad input.
    let o = output(&[
        "plan",
        out.to_str().unwrap(),
        "--rpm",
        "60",
        "--reprice",
        &pricing,
        "--region",
        "mars-1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--region mars-1:") && stderr(&o).contains("us-east-1"),
        "{}",
        stderr(&o)
    );
    // A mode the book has no price for: each type warned about, no answer.
    let o = output(&[
        "plan",
        out.to_str().unwrap(),
        "--rpm",
        "60",
        "--latency-p95",
        "1000",
        "--reprice",
        &pricing,
        "--price-mode",
        "spot",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("warning: no price for g5.xlarge (spot) in us-east-1"),
        "{}",
        stderr(&o)
    );
    // The bundle recorded no price (its config has no pricing): plan says so
    // instead of pricing silently from a default book.
    let o = output(&[
        "plan",
        out.to_str().unwrap(),
        "--rpm",
        "60",
        "--latency-p95",
        "1000",
    ]);
    assert!(
        stdout(&o).contains("Prices: as recorded in the bundles"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("no price"), "{}", stdout(&o));
}

/// The capacity answer `plan` prints: (instances, type, $/hour, $/request).
fn plan_answer(args: &[&str]) -> (u32, String, String, String) {
    let s = stdout(&run_ok(args));
    let line = s
        .lines()
        .find(|l| l.starts_with("Answer: "))
        .unwrap_or_else(|| panic!("{s}"));
    // Answer: N x TYPE at $H/hour = $R per request ...
    let w: Vec<&str> = line.split_whitespace().collect();
    (
        w[1].parse().unwrap(),
        w[3].to_string(),
        w[5].trim_end_matches("/hour").to_string(),
        w[7].to_string(),
    )
}

/// The same answer from `report.json`'s target analysis.
fn report_answer(dir: &std::path::Path, args: &[&str]) -> (u32, String, String, String) {
    let out = dir.join("r");
    let mut a = vec!["report", "--out", out.to_str().unwrap()];
    a.extend_from_slice(args);
    run_ok(&a);
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let cell = j["target"]["workloads"][0]["heatmap"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["best_choice"] == true)
        .unwrap()
        .clone();
    (
        cell["instances"].as_u64().unwrap() as u32,
        cell["instance_type"].as_str().unwrap().to_string(),
        format!("${:.2}", cell["usd_per_hour"].as_f64().unwrap()),
        format!("${:.6}", cell["usd_per_request"].as_f64().unwrap()),
    )
}

const PRICED: &str = r#"
name: priced
endpoints:
  - { name: g5, provider: sim, instance_type: g5.xlarge, sim: { ttft_ms: 20, itl_ms: 5 } }
  - { name: g6e, provider: sim, instance_type: g6e.2xlarge, instance_count: 2, sim: { ttft_ms: 20, itl_ms: 5 } }
datasets:
  - name: d
    synthetic: { prompt_tokens: 16, output_tokens: 8 }
load: { concurrency: [1, 4], requests: 12 }
pricing: { instance_hourly: { g5.xlarge: 0.5, g6e.2xlarge: 3.0 } }
budgets: { e2e_p95_ms: 1000 }
"#;

#[test]
fn plan_and_report_agree_with_and_without_repricing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "priced", PRICED);
    let b = run_into(dir.path(), &cfg, "priced", &[]);
    let b = b.to_str().unwrap();
    // The bundle records each experiment's unit price, source, region, mode and date.
    let e = experiments(std::path::Path::new(b));
    let p = e[0].costed.price.as_ref().unwrap();
    assert_eq!(p.rate, harness_core::cost::Rate::InstanceHour(0.5));
    assert_eq!(p.mode, harness_core::cost::PriceMode::OnDemand);
    assert!(
        p.source.contains("pricing.instance_hourly.g5.xlarge"),
        "{}",
        p.source
    );
    assert_eq!(p.region, "us-east-1");
    assert_eq!(p.as_of.len(), 10, "a date: {}", p.as_of);

    // Recorded prices (the config's overrides), the bundle's budget.
    let recorded = plan_answer(&["plan", b, "--rpm", "600"]);
    assert_eq!(recorded, report_answer(dir.path(), &[b, "--rpm", "600"]));
    // Repriced from the shipped book: both change, and still agree.
    let book = format!("{}/../configs/pricing.yml", env!("CARGO_MANIFEST_DIR"));
    let repriced = plan_answer(&["plan", b, "--rpm", "600", "--reprice", &book]);
    assert_eq!(
        repriced,
        report_answer(dir.path(), &[b, "--rpm", "600", "--reprice", &book])
    );
    assert_ne!(recorded.2, repriced.2, "repricing changes $/hour");
    // The same budget given on the command line in both spellings.
    assert_eq!(
        plan_answer(&["plan", b, "--rpm", "600", "--latency-p95", "1000"]),
        report_answer(
            dir.path(),
            &[b, "--rpm", "600", "--latency", "e2e.p95=1000"]
        )
    );

    // Repricing with the prices the run used reproduces the run's costs.
    let same = dir.path().join("same.yml");
    std::fs::write(
        &same,
        "instances:\n  - { type: g5.xlarge, region: us-east-1, on_demand: 0.5, source: s, as_of: d }\n  - { type: g6e.2xlarge, region: us-east-1, on_demand: 3.0, source: s, as_of: d }\n",
    )
    .unwrap();
    assert_eq!(
        plan_answer(&[
            "plan",
            b,
            "--rpm",
            "600",
            "--reprice",
            same.to_str().unwrap()
        ]),
        recorded
    );
    let out = dir.path().join("same-report");
    run_ok(&[
        "report",
        b,
        "--out",
        out.to_str().unwrap(),
        "--reprice",
        same.to_str().unwrap(),
    ]);
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(j["pricing"]["basis"], "repriced");
    for (row, stored) in j["experiments"].as_array().unwrap().iter().zip(&e) {
        assert_eq!(
            row["usd_per_request"].as_f64(),
            stored.costed.figures.usd_per_request
        );
        assert_eq!(row["usd_run"].as_f64(), stored.costed.figures.usd_run);
    }
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
        stderr(&o).contains(
            "warning: no price for g5.xlarge (on_demand) in us-east-1 (no pricing file configured)"
        ),
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
