//! Reruns skip completed experiments; a killed run leaves a readable bundle.

use super::common::*;

const FAST: &str = r#"
name: rerun
endpoints:
  - name: fast
    provider: sim
    sim: { ttft_ms: 5, itl_ms: 2 }
datasets:
  - name: d
    synthetic: { prompt_tokens: 16, output_tokens: 8 }
load:
  concurrency: [1, 2]
  requests: 10
"#;

#[test]
fn rerun_skips_completed_and_force_reruns() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "rerun", FAST);
    let out = dir.path().join("b.duckdb");
    let (c, o) = (cfg.to_str().unwrap(), out.to_str().unwrap());
    let first = stdout(&run_ok(&["run", "-q", c, "--out", o]));
    assert!(
        first.contains("2 experiment(s) run, 0 already complete in the bundle"),
        "{first}"
    );
    let second = stdout(&run_ok(&["run", "-q", c, "--out", o]));
    assert!(
        second.contains("0 experiment(s) run, 2 already complete in the bundle"),
        "{second}"
    );
    assert!(
        second.contains("complete, already in the bundle (--force reruns)"),
        "{second}"
    );
    // A changed level is a new experiment; the unchanged one is still skipped.
    let third = stdout(&run_ok(&[
        "run",
        "-q",
        c,
        "--out",
        o,
        "--set",
        "load.concurrency=[1, 3]",
    ]));
    assert!(
        third.contains("1 experiment(s) run, 1 already complete in the bundle"),
        "{third}"
    );
    let forced = stdout(&run_ok(&["run", "-q", c, "--out", o, "--force"]));
    assert!(
        forced.contains("2 experiment(s) run, 0 already complete in the bundle"),
        "{forced}"
    );
    // Each id once: the forced rerun replaced the earlier rows.
    let exps = experiments(&out);
    assert_eq!(exps.len(), 3);
    let conn = harness::bundle::read::open(&out).unwrap();
    let runs: i64 = conn
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(runs, 4);
    let reqs: i64 = conn
        .query_row("SELECT count(*) FROM requests", [], |r| r.get(0))
        .unwrap();
    assert_eq!(reqs, 30);
    // Storage version readable by DuckDB-WASM 1.32 (DuckDB 1.4).
    let sv: String = conn
        .query_row("SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = current_database()", [], |r| r.get(0))
        .unwrap();
    assert!(sv.starts_with("v1.4.0"), "{sv}");
}

#[test]
fn killed_run_leaves_completed_experiments_intact() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = r#"
name: killed
endpoints:
  - name: slow
    provider: sim
    sim: { ttft_ms: 20, itl_ms: 20 }
datasets:
  - name: d
    synthetic: { prompt_tokens: 16, output_tokens: 10 }
load:
  concurrency: [2, 3, 4, 5]
  duration: 700ms
"#;
    let cfg = write_config(dir.path(), "killed", yaml);
    let out = dir.path().join("k.duckdb");
    // When the third experiment has finished sending, the first two are
    // written and checkpointed. Kill without warning (SIGKILL).
    let mut child = run_until(&cfg, &out, "done: [3/4]");
    child.kill().unwrap();
    child.wait().unwrap();

    let exps = experiments(&out);
    let complete: Vec<_> = exps.iter().filter(|e| e.status == "complete").collect();
    assert!(
        complete.len() >= 2,
        "expected at least 2 complete experiments, got {}",
        complete.len()
    );
    let conn = harness::bundle::read::open(&out).unwrap();
    for e in &complete {
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM requests WHERE experiment_id = ? AND NOT warmup",
                [&e.experiment_id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            n as u64, e.summary.requests,
            "rows and summary agree for {}",
            e.label
        );
        assert!(e.summary.requests > 0);
    }
    let status: String = conn
        .query_row("SELECT status FROM runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(status, "running", "a killed run never got to finish");
    drop(conn);
    // The rerun picks up where it stopped.
    let again = stdout(&run_ok(&[
        "run",
        "-q",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(
        again.contains("2 already complete") || again.contains("3 already complete"),
        "{again}"
    );
    // The killed run is marked, with why, when the bundle is next opened.
    let conn = harness::bundle::read::open(&out).unwrap();
    let (status, reason): (String, String) = conn
        .query_row(
            "SELECT status, status_reason FROM runs ORDER BY started_at LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(status, "killed");
    assert!(
        reason.contains("ended without finishing the run"),
        "{reason}"
    );
    drop(conn);
    assert_eq!(
        experiments(&out)
            .iter()
            .filter(|e| e.status == "complete")
            .count(),
        4
    );
}
