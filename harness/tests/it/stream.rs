//! Requests stream to the bundle while an experiment runs: the summary folded
//! on the way equals the summary of the rows written, to the last digit, and
//! a process killed mid-experiment leaves that experiment incomplete, never
//! complete, with every finished one intact.

use super::common::*;
use harness_core::ExperimentSummary;

#[test]
fn summary_equals_the_summary_of_the_rows_written() {
    let dir = tempfile::tempdir().unwrap();
    // More requests than one batch (1,024), failures (a 3% error rate), a
    // warm-up, and an open loop whose requests finish out of order.
    let cfg = write_config(
        dir.path(),
        "stream",
        r#"
name: stream
endpoints:
  - name: sim
    provider: sim
    sim: { ttft_ms: 2, itl_ms: 1, error_rate: 0.03 }
datasets:
  - name: d
    synthetic: { prompt_tokens: 16, output_tokens: { uniform: [4, 12] } }
load:
  rates: [900]
  arrival: poisson
  requests: 2500
  warmup: { requests: 40 }
"#,
    );
    let out = run_into(dir.path(), &cfg, "s", &[]);
    let conn = harness::bundle::read::open(&out).unwrap();
    let exps = experiments(&out);
    assert_eq!(exps.len(), 1);
    let e = &exps[0];
    assert_eq!(e.status, "complete");
    let rows = harness::bundle::read::request_samples(&conn, &e.experiment_id).unwrap();
    assert_eq!(rows.len(), 2540, "every request was written once");
    let from_rows = ExperimentSummary::compute(&rows);
    assert!(from_rows.requests_failed > 0 && from_rows.warmup_requests == 40);
    assert_eq!(e.summary, from_rows);
    assert_eq!(
        serde_json::to_string(&e.summary).unwrap(),
        serde_json::to_string(&from_rows).unwrap(),
        "to the last digit"
    );
}

#[test]
fn killed_mid_experiment_leaves_it_incomplete_and_a_rerun_measures_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "killed",
        r#"
name: killed
endpoints:
  - name: sim
    provider: sim
    sim: { ttft_ms: 5, itl_ms: 5 }
datasets:
  - name: d
    synthetic: { prompt_tokens: 16, output_tokens: 4 }
load:
  concurrency: [2, 4]
  duration: 3s
"#,
    );
    let out = dir.path().join("k.duckdb");
    let mut child = run_until(&cfg, &out, "done: [1/2]");
    // Well into the second experiment: rows are flushed at least every second.
    std::thread::sleep(std::time::Duration::from_millis(2200));
    child.kill().unwrap();
    child.wait().unwrap();

    let conn = harness::bundle::read::open(&out).unwrap();
    let raw: Vec<(String, String, i64, i64)> = {
        let mut st = conn
            .prepare(
                "SELECT e.label, e.status,
                        (SELECT count(*) FROM requests r WHERE r.experiment_id = e.experiment_id),
                        (SELECT count(*) FROM summaries s WHERE s.experiment_id = e.experiment_id)
                 FROM experiments e ORDER BY e.ordinal, e.concurrency",
            )
            .unwrap();
        let v = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        v
    };
    drop(conn);
    assert_eq!(raw.len(), 2, "{raw:?}");
    assert_eq!(raw[0].1, "complete");
    assert_eq!((raw[1].1.as_str(), raw[1].3), ("running", 0), "{raw:?}");
    assert!(
        raw[1].2 > 0,
        "the interrupted experiment's rows were streamed: {raw:?}"
    );
    // Readers see it as incomplete, with why, and analyse only the first.
    let exps = experiments(&out);
    assert_eq!(exps[1].status, "incomplete");
    assert!(exps[1]
        .status_reason
        .as_deref()
        .unwrap()
        .contains("ended while this experiment ran"));
    let report_dir = dir.path().join("report");
    run_ok(&[
        "report",
        out.to_str().unwrap(),
        "--out",
        report_dir.to_str().unwrap(),
    ]);
    let report = std::fs::read_to_string(report_dir.join("report.md")).unwrap();
    assert!(report.contains("incomplete"), "{report}");

    // Readers show the dead run as killed, not running.
    let conn = harness::bundle::read::open(&out).unwrap();
    let runs = harness::bundle::read::runs(&conn).unwrap();
    drop(conn);
    assert_eq!(runs[0].status, "killed");

    // The next open marks it, counting its rows.
    drop(harness::bundle::Bundle::open(&out).unwrap());
    let conn = harness::bundle::read::open(&out).unwrap();
    let (status, reason): (String, String) = conn
        .query_row(
            "SELECT status, status_reason FROM experiments WHERE concurrency = 4",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    drop(conn);
    assert_eq!(status, "incomplete");
    assert!(
        reason.contains(&format!("its {} request rows written so far", raw[1].2)),
        "{reason}"
    );

    // A rerun measures it again, replacing its rows.
    let again = stdout(&run_ok(&[
        "run",
        "-q",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(again.contains("1 already complete"), "{again}");
    let conn = harness::bundle::read::open(&out).unwrap();
    for e in experiments(&out) {
        assert_eq!(e.status, "complete");
        let rows = harness::bundle::read::request_samples(&conn, &e.experiment_id).unwrap();
        assert_eq!(ExperimentSummary::compute(&rows), e.summary, "{}", e.label);
    }
}
