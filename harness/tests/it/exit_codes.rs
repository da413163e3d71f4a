//! One exit-code scheme for every command (README, "Exit codes"): 0 success,
//! 1 a finding (regression, failed budget), 2 bad input, 3 a runtime failure,
//! 130 interrupted. Codes 1 and 3 of `run`, `plan` and `diff` are also
//! checked where those behaviours are tested (diff.rs, faults.rs, preflight.rs).

use super::common::*;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

fn code(args: &[&str]) -> (Option<i32>, String) {
    let o = output(args);
    (o.status.code(), stderr(&o))
}

const OK: &str = r#"
name: ok
endpoints:
  - { name: s, provider: sim, instance_type: g5.xlarge, sim: { ttft_ms: 2, itl_ms: 1 } }
datasets:
  - name: d
    synthetic: { prompt_tokens: 8, output_tokens: 4 }
load: { concurrency: [1], requests: 4 }
pricing: { instance_hourly: { g5.xlarge: 1.0 } }
"#;

#[test]
fn every_command_follows_one_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "ok", OK);
    let c = cfg.to_str().unwrap();
    let b = dir.path().join("ok.duckdb");
    let b = b.to_str().unwrap();
    let bad_cfg = write_config(dir.path(), "bad", "load: { concurrency: [0] }\n");
    let not_a_bundle = dir.path().join("not.duckdb");
    std::fs::write(&not_a_bundle, "hello").unwrap();
    let nb = not_a_bundle.to_str().unwrap();
    let a_file = dir.path().join("a-file");
    std::fs::write(&a_file, "x").unwrap();

    // 0: success.
    assert_eq!(code(&["validate", c]).0, Some(0));
    assert_eq!(code(&["run", "-q", c, "--out", b]).0, Some(0));
    for args in [
        vec!["show", b],
        vec!["plan", b, "--rpm", "60"],
        vec!["diff", b, b, "--fail-on-regression"],
    ] {
        assert_eq!(code(&args).0, Some(0), "{args:?}");
    }
    let report = dir.path().join("report");
    assert_eq!(
        code(&["report", b, "--out", report.to_str().unwrap()]).0,
        Some(0)
    );

    // 1: a finding. (diff --fail-on-regression: diff.rs.)
    let (c1, _) = code(&["plan", b, "--rpm", "60", "--latency", "e2e.p95=0.001"]);
    assert_eq!(c1, Some(1), "plan: no configuration holds the budget");

    // 2: bad input, whatever the command.
    let merged = dir.path().join("m.duckdb");
    std::fs::write(&merged, "taken").unwrap();
    let bad_pricing = dir.path().join("p.yml");
    std::fs::write(&bad_pricing, "instances: [{ type: x }]\n").unwrap();
    for (args, says) in [
        (vec!["validate", bad_cfg.to_str().unwrap()], "in config"),
        (vec!["run", bad_cfg.to_str().unwrap()], "in config"),
        (
            vec!["validate", "no-such.yml"],
            "cannot read the config file",
        ),
        (
            vec!["show", "no-such.duckdb"],
            "no bundle at no-such.duckdb",
        ),
        (vec!["show", nb], "is not a result bundle"),
        (vec!["report", nb], "is not a result bundle"),
        (vec!["plan", b, "--rpm=-1"], "--rpm -1"),
        (
            vec![
                "plan",
                b,
                "--rpm",
                "60",
                "--reprice",
                bad_pricing.to_str().unwrap(),
            ],
            "p.yml",
        ),
        (vec!["report", b, "--latency", "ttft=1"], "--latency"),
        (vec!["diff", b, nb], "is not a result bundle"),
        (vec!["diff", b, b, "--metric", "speed"], "--metric `speed`"),
        (
            vec!["merge", b, b, "-o", merged.to_str().unwrap()],
            "already exists",
        ),
        (vec!["sim", "--listen", "0.0.0.0:1"], "loopback"),
        (vec!["run", c, "--no-such-flag"], "unexpected argument"),
    ] {
        let (got, err) = code(&args);
        assert_eq!(got, Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }

    // 3: a runtime failure (preflight and failed experiments: preflight.rs).
    let (got, err) = code(&["report", b, "--out", a_file.join("r").to_str().unwrap()]);
    assert_eq!(got, Some(3), "{err}");
    assert!(err.contains("cannot create"), "{err}");
}

const SLOW: &str = r#"
name: slow
endpoints:
  - { name: s, provider: sim, sim: { ttft_ms: 20, itl_ms: 20 } }
datasets:
  - name: d
    synthetic: { prompt_tokens: 8, output_tokens: 10 }
load: { concurrency: [2, 3, 4], duration: 800ms }
"#;

/// Starts a run, waits for its first experiment, sends `signal`.
fn interrupt(dir: &std::path::Path, signal: i32) -> (Option<i32>, std::path::PathBuf) {
    let cfg = write_config(dir, "slow", SLOW);
    let out = dir.join(format!("s{signal}.duckdb"));
    let mut child = harness()
        .args(["run", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines();
    for line in lines.by_ref() {
        if line.unwrap().starts_with("done: [1/3]") {
            break;
        }
    }
    assert_eq!(send_signal(child.id() as i32, signal), 0);
    for _ in lines {}
    (child.wait().unwrap().code(), out)
}

/// `kill -SIGNAL PID`; its exit status.
fn send_signal(pid: i32, signal: i32) -> i32 {
    std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .unwrap()
        .code()
        .unwrap_or(-1)
}

#[test]
fn an_interrupted_run_exits_130_and_is_marked_with_why() {
    let dir = tempfile::tempdir().unwrap();
    for (signal, name) in [(2, "Ctrl-C (SIGINT)"), (15, "SIGTERM")] {
        let (got, out) = interrupt(dir.path(), signal);
        assert_eq!(got, Some(130), "signal {signal}");
        let conn = harness::bundle::read::open(&out).unwrap();
        let (status, reason): (String, String) = conn
            .query_row("SELECT status, status_reason FROM runs", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(status, "interrupted");
        assert_eq!(
            reason,
            format!("stopped by {name}; 2 of 3 experiment(s) not run")
        );
        drop(conn);
        // The finished experiment is kept; what the signal cut short is marked.
        let exps = experiments(&out);
        assert_eq!(exps[0].status, "complete");
        assert!(exps.iter().skip(1).all(|e| e.status == "interrupted"));
    }
}
