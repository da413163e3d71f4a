//! Command experiments: a program over a scenario matrix, its metrics from
//! each source, failures that leave the matrix going, reruns, and the
//! readers (show, report, diff).

use super::common::*;
use std::path::Path;

/// A program that reports its metrics as a benchmark script would, or fails
/// in the way its `--mode` says.
const PROGRAM: &str = r#"
import argparse, json, os, sys, time
p = argparse.ArgumentParser()
p.add_argument("--mode")
p.add_argument("--n", type=int, default=1)
p.add_argument("--out")
a, _ = p.parse_known_args()
print("token in stderr:", os.environ.get("PROG_TOKEN"), file=sys.stderr)
if a.mode == "fail":
    print("boom: out of memory", file=sys.stderr)
    sys.exit(3)
if a.mode == "hang":
    time.sleep(60)
if a.mode == "nometric":
    print(json.dumps({"other": 1}))
    sys.exit(0)
held = bytearray(b"\x01") * (64 << 20)
time.sleep(0.4)
print("loading model...")
print(json.dumps({"ttft_s": 0.1 * a.n, "per_token_s": [0.01 * a.n] * 3, "out_tokens": 10 * a.n, "token": os.environ.get("PROG_TOKEN")}))
with open(os.path.join(a.out, "m.json"), "w") as f:
    json.dump({"train": {"runtime": 2.5 * a.n}}, f)
print(f"throughput: {a.n * 100} tok/s")
"#;

fn config(dir: &Path, extra_scenarios: &str) -> std::path::PathBuf {
    let prog = dir.join("prog.py");
    std::fs::write(&prog, PROGRAM).unwrap();
    write_config(
        dir,
        "cmd",
        &format!(
            r#"
name: cmd
endpoints:
  - name: prog
    provider: command
    instance_type: c7i.2xlarge
    command:
      run: python3 {prog} --out {{run_dir}} {{args}}
      inputs: [{prog}]
      # Passed verbatim, braces included (through `{{args}}`).
      defaults: {{ note: "a{{b}}c", cfg: {{ k: 1 }} }}
      scenarios:
        - name: ok
          arguments: {{ mode: ok, n: [1, 2] }}
{extra_scenarios}
      warmup_runs: 1
      runs: 2
      timeout: 2s
      sample_interval: 100ms
      secret_env: [PROG_TOKEN]
      metrics:
        ttft_s: {{ unit: s }}
        per_token_s: {{ unit: s, list: true }}
        out_tokens: {{ unit: tokens }}
        runtime: {{ unit: s, json: "{{run_dir}}/m.json", field: train.runtime }}
        tps: {{ unit: tokens/s, regex: 'throughput: ([0-9.]+) tok/s' }}
pricing:
  instance_hourly: {{ c7i.2xlarge: 3.6 }}
"#,
            prog = prog.display()
        ),
    )
}

const FAILING: &str = "        - name: fail\n          arguments: { mode: fail }\n        - name: hang\n          arguments: { mode: hang }\n        - name: nometric\n          arguments: { mode: nometric }\n";

fn query<T: duckdb::types::FromSql>(bundle: &Path, sql: &str) -> Vec<Vec<T>> {
    let c = duckdb::Connection::open(bundle).unwrap();
    let mut st = c.prepare(sql).unwrap();
    let n = st.query([]).unwrap().as_ref().unwrap().column_count();
    let mut st = c.prepare(sql).unwrap();
    st.query_map([], |r| (0..n).map(|i| r.get::<_, T>(i)).collect())
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn a_matrix_runs_reads_every_metric_source_and_goes_on_past_failures() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), FAILING);
    let out = dir.path().join("b.duckdb");
    let o = run_cmd(&cfg, &out, &[])
        .env("PROG_TOKEN", "sekrit-token-1234")
        .output()
        .unwrap();
    // Three cells failed: the run says so (exit 3) after running them all.
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stdout(&o), stderr(&o));
    let cells: Vec<Vec<String>> = query(
        &out,
        "SELECT label, status, coalesce(status_reason, '') FROM command_cells ORDER BY ordinal",
    );
    let st: Vec<(&str, &str)> = cells
        .iter()
        .map(|c| (c[0].as_str(), c[1].as_str()))
        .collect();
    assert_eq!(
        st,
        [
            ("prog · ok · n=1", "complete"),
            ("prog · ok · n=2", "complete"),
            ("prog · fail", "failed"),
            ("prog · hang", "failed"),
            ("prog · nometric", "failed"),
        ]
    );
    // Each failure is recorded with its class and message, run by run.
    let runs: Vec<Vec<String>> = query(
        &out,
        "SELECT c.label, r.run::VARCHAR, r.warmup::VARCHAR, r.status, coalesce(r.error, ''), ((r.ended_ns - r.started_ns) / 1e9)::VARCHAR \
         FROM command_runs r JOIN command_cells c USING (cell_id) ORDER BY c.ordinal, r.run",
    );
    assert_eq!(runs.len(), 15, "{runs:?}");
    for r in &runs {
        match r[0].as_str() {
            "prog · ok · n=1" | "prog · ok · n=2" => assert_eq!(r[3], "ok", "{r:?}"),
            "prog · fail" => {
                assert_eq!(r[3], "failed");
                assert_eq!(
                    r[4],
                    "exited with status 3; stderr ends: boom: out of memory"
                );
            }
            "prog · hang" => {
                assert_eq!(r[3], "timeout");
                assert!(r[4].contains("killed after its timeout of 2s"), "{r:?}");
                let s: f64 = r[5].parse().unwrap();
                assert!(s < 10.0, "killed at its timeout, not after 60 s: {s}");
            }
            _ => {
                assert_eq!(r[3], "no_metrics");
                assert!(
                    r[4].contains("`ttft_s`: not reported: no JSON line on stdout has `ttft_s`"),
                    "{r:?}"
                );
                assert!(r[4].contains("`runtime`: the metrics file"), "{r:?}");
            }
        }
    }
    // Every source: JSON lines (with a list), the JSON file's nested key, the
    // regex; values of the measured runs of n=2 (runs 1 and 2).
    let m: Vec<Vec<String>> = query(
        &out,
        "SELECT metric, unit, idx::VARCHAR, value::VARCHAR FROM command_metrics m JOIN command_cells c USING (cell_id) \
         WHERE c.label = 'prog · ok · n=2' AND run = 1 ORDER BY metric, idx",
    );
    let m: Vec<String> = m.iter().map(|r| r.join(" ")).collect();
    assert_eq!(
        m,
        [
            "out_tokens tokens 0 20.0",
            "per_token_s s 0 0.02",
            "per_token_s s 1 0.02",
            "per_token_s s 2 0.02",
            "runtime s 0 5.0",
            "tps tokens/s 0 200.0",
            "ttft_s s 0 0.2",
        ]
    );
    // The warm-up run's metrics are stored too, and kept out of summaries.
    let warm: Vec<Vec<bool>> = query(
        &out,
        "SELECT warmup FROM command_runs r JOIN command_cells c USING (cell_id) WHERE c.label = 'prog · ok · n=1' ORDER BY run",
    );
    assert_eq!(warm, [[true], [false], [false]]);
    // The process tree's memory was sampled (64 MiB held), and the cost is
    // the price × wall time; per 1M tokens over the `tokens` metric.
    let ok: Vec<Vec<f64>> = query(
        &out,
        "SELECT peak_rss_bytes / 1048576.0, usd, usd / ((ended_ns - started_ns) / 1e9) * 3600, usd_per_1m_tokens * tokens / 1e6 / usd \
         FROM command_runs WHERE status = 'ok'",
    );
    assert_eq!(ok.len(), 6);
    for r in &ok {
        assert!((64.0..200.0).contains(&r[0]), "peak RSS {} MiB", r[0]);
        assert!((r[2] - 3.6).abs() < 1e-9, "{r:?}");
        assert!((r[3] - 1.0).abs() < 1e-9, "{r:?}");
    }
    let samples: Vec<Vec<i64>> = query(
        &out,
        "SELECT count(*), count(proc_rss_bytes) FROM host_samples h JOIN command_cells c ON h.experiment_id = c.cell_id WHERE c.label = 'prog · ok · n=1'",
    );
    assert!(
        samples[0][0] >= 6 && samples[0][0] == samples[0][1],
        "{samples:?}"
    );
    // The secret the program echoed is masked in what was kept.
    let bytes = std::fs::read(&out).unwrap();
    assert!(!bytes.windows(17).any(|w| w == b"sekrit-token-1234"));
    assert!(!stdout(&o).contains("sekrit") && !stderr(&o).contains("sekrit"));
    let tails: Vec<Vec<String>> = query(
        &out,
        "SELECT stderr_tail FROM command_runs WHERE status = 'ok' LIMIT 1",
    );
    assert!(tails[0][0].contains("token in stderr: "), "{tails:?}");

    // The run's summary table, and show's, with mean ± sd over measured runs.
    for text in [
        stdout(&o),
        stdout(&run_ok(&["show", out.to_str().unwrap()])),
    ] {
        assert!(text.contains("command endpoint prog:"), "{text}");
        let row = text
            .lines()
            .find(|l| l.starts_with("ok · n=2 "))
            .expect(&text);
        assert!(
            row.contains("2/2") && row.contains(" 0.2 ") && row.contains("complete"),
            "{row}"
        );
        assert!(
            text.contains("fail: run 1: failed: exited with status 3"),
            "{text}"
        );
    }
    let j: serde_json::Value =
        serde_json::from_slice(&run_ok(&["show", out.to_str().unwrap(), "--json"]).stdout).unwrap();
    // The metrics' fields are stored by name, not masked as if secrets.
    let o = harness()
        .args(["validate", cfg.to_str().unwrap(), "--show-settings"])
        .env("PROG_TOKEN", "t")
        .output()
        .unwrap();
    let settings = stdout(&o);
    assert!(
        settings.contains("field: \"ttft_s\"") && settings.contains("field: \"train.runtime\""),
        "{settings}"
    );
    let cells = &j["commands"]["endpoints"][0]["cells"];
    assert_eq!(cells[1]["label"], "ok · n=2");
    // Structured: the scenario and each argument with its type.
    assert_eq!(cells[1]["scenario"], "ok");
    assert_eq!(
        (&cells[1]["args"]["n"], &cells[1]["args"]["mode"]),
        (&serde_json::json!(2), &serde_json::json!("ok"))
    );
    let tps = cells[1]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "tps")
        .unwrap();
    assert_eq!(
        (tps["mean"].as_f64(), tps["runs"].as_u64()),
        (Some(200.0), Some(2))
    );
}

#[test]
fn a_rerun_skips_complete_cells_and_a_changed_argument_reruns_only_its_cells() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let out = dir.path().join("b.duckdb");
    let run = |extra: &[&str]| {
        let o = run_cmd(&cfg, &out, extra)
            .env("PROG_TOKEN", "t")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        o
    };
    // The dry run: every cell, and the worst case's cost (2 cells × 3 runs
    // × 2 s at $3.6/h); after the run, both cells skipped and nothing to pay.
    let d = stdout(&run(&["--dry-run"]));
    assert!(
        d.contains(
            "cost bound: at most $0.01 (6 run(s) × timeout 2s × 1 × $3.6/h for c7i.2xlarge)"
        ),
        "{d}"
    );
    run(&[]);
    let d = stdout(&run(&["--dry-run"]));
    assert!(
        d.contains("2 cell(s) (2 complete in the bundle, skipped; --force reruns)")
            && d.matches("(skipped: complete)").count() == 2
            && d.contains("cost bound: at most $0.00 (0 run(s)"),
        "{d}"
    );
    let before: Vec<Vec<String>> = query(
        &out,
        "SELECT cell_id, started_at::VARCHAR FROM command_cells ORDER BY ordinal",
    );
    let o = run(&[]);
    assert!(
        stdout(&o).contains("0 command cell(s) run, 2 already complete in the bundle"),
        "{}",
        stdout(&o)
    );
    let after: Vec<Vec<String>> = query(
        &out,
        "SELECT cell_id, started_at::VARCHAR FROM command_cells ORDER BY ordinal",
    );
    assert_eq!(before, after, "nothing was run again or overwritten");
    // n: [1, 3]: the n=1 cell is kept, n=3 runs; n=2 stays in the bundle.
    let o = run(&[
        "--set",
        "endpoints[0].command.scenarios[0].arguments.n=[1, 3]",
    ]);
    assert!(
        stdout(&o).contains("1 command cell(s) run, 1 already complete in the bundle"),
        "{}",
        stdout(&o)
    );
    let labels: Vec<Vec<String>> = query(&out, "SELECT label FROM command_cells ORDER BY label");
    assert_eq!(
        labels,
        [
            ["prog · ok · n=1"],
            ["prog · ok · n=2"],
            ["prog · ok · n=3"]
        ]
    );

    // The report: a section with a table and the charts.
    let rep = dir.path().join("report");
    run_ok(&[
        "report",
        out.to_str().unwrap(),
        "--out",
        rep.to_str().unwrap(),
    ]);
    let md = std::fs::read_to_string(rep.join("report.md")).unwrap();
    assert!(
        md.contains("## Command experiments") && md.contains("### prog"),
        "{md}"
    );
    assert!(md.contains("| ok · n=3 | 2/2 |"), "{md}");
    for chart in [
        "command-prog-ttft-s.svg",
        "command-prog-per-token-s-series.svg",
        "command-prog-rss.svg",
    ] {
        let svg = std::fs::read_to_string(rep.join("charts").join(chart)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("ok · n=1"),
            "{chart}"
        );
        assert!(md.contains(&format!("(charts/{chart})")), "{chart}");
    }
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rep.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        j["commands"]["endpoints"][0]["cells"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // diff: the same bundle against itself compares every cell, no change;
    // a slower program (n=1's ttft doubled) is a regression, a faster rate not.
    let same = output(&[
        "diff",
        out.to_str().unwrap(),
        out.to_str().unwrap(),
        "--fail-on-regression",
    ]);
    assert!(same.status.success(), "{}", stdout(&same));
    assert!(
        stdout(&same).contains("3 experiment(s) compared; 0 regression(s)"),
        "{}",
        stdout(&same)
    );
    let slow = dir.path().join("slow.duckdb");
    std::fs::copy(&out, &slow).unwrap();
    {
        let c = duckdb::Connection::open(&slow).unwrap();
        c.execute_batch(
            "UPDATE command_metrics SET value = value * 2 WHERE metric IN ('ttft_s', 'tps') \
             AND cell_id = (SELECT cell_id FROM command_cells WHERE label = 'prog · ok · n=1')",
        )
        .unwrap();
    }
    let d = output(&[
        "diff",
        out.to_str().unwrap(),
        slow.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&d.stdout).unwrap();
    let verdicts: Vec<(String, bool)> = v["command_comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["label"] == "prog · ok · n=1" && c["change"].as_f64().unwrap() != 0.0)
        .map(|c| {
            (
                c["metric"].as_str().unwrap().to_string(),
                c["regression"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("tps (tokens/s)".to_string(), false),
            ("ttft_s (s)".to_string(), true)
        ],
        "{v}"
    );

    // merge keeps the cells: each once (the first bundle's copy), with its rows.
    let merged = dir.path().join("merged.duckdb");
    let m = run_ok(&[
        "merge",
        out.to_str().unwrap(),
        slow.to_str().unwrap(),
        "-o",
        merged.to_str().unwrap(),
    ]);
    assert!(stdout(&m).contains(", 3 command cell(s)"), "{}", stdout(&m));
    let count = |b: &Path| -> Vec<Vec<i64>> {
        query(
            b,
            "SELECT (SELECT count(*) FROM command_cells), (SELECT count(*) FROM command_runs), \
             (SELECT sum(value) FROM command_metrics)::BIGINT, (SELECT count(*) FROM host_samples)",
        )
    };
    assert_eq!(count(&merged), count(&out));
    // The same cell measured in two runs: merge refuses to drop one unless
    // told which to keep.
    let other = dir.path().join("other.duckdb");
    let o = run_cmd(&cfg, &other, &[])
        .env("PROG_TOKEN", "t")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let both = dir.path().join("both.duckdb");
    let (o1, o2, b) = (
        out.to_str().unwrap(),
        other.to_str().unwrap(),
        both.to_str().unwrap(),
    );
    let refused = output(&["merge", o1, o2, "-o", b]);
    assert_eq!(refused.status.code(), Some(2), "{}", stdout(&refused));
    assert!(
        stderr(&refused).contains("  command cell "),
        "{}",
        stderr(&refused)
    );
    let m = run_ok(&["merge", o1, o2, "-o", b, "--on-conflict", "newest"]);
    assert!(stdout(&m).contains(", 3 command cell(s)"), "{}", stdout(&m));
    let runs: Vec<Vec<String>> = query(
        &both,
        "SELECT DISTINCT c.run_id FROM command_cells c WHERE label IN ('prog · ok · n=1', 'prog · ok · n=2')",
    );
    let newest: Vec<Vec<String>> = query(&other, "SELECT DISTINCT run_id FROM command_cells");
    assert_eq!(runs, newest, "the newest copies kept");
    // An edited program (an input) gives new ids; diff pairs the cells by
    // label as a before/after.
    std::fs::write(dir.path().join("prog.py"), format!("{PROGRAM}\n# edited\n")).unwrap();
    let edited = dir.path().join("edited.duckdb");
    let o = run_cmd(&cfg, &edited, &[])
        .env("PROG_TOKEN", "t")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let d = output(&["diff", o2, edited.to_str().unwrap()]);
    let text = stdout(&d);
    assert!(
        text.contains("prog · ok · n=1 (inputs changed: ")
            && text.contains("2 experiment(s) compared"),
        "{text}"
    );
    assert!(!text.contains("only in"), "{text}");
}

#[test]
fn command_config_mistakes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "bad",
        r#"
name: bad
endpoints:
  - name: prog
    provider: command
    model: m
    command:
      run: python3 x.py --b {batch} {
      scenarios:
        - name: s
          arguments: { batch: [] }
      matrix: { gpus: [] }
      env: { HF_TOKEN: abc }
      inputs: [no-such-input.py]
      metrics:
        a: { json: stdout }
        b: { unit: s, regex: 'no group' }
        c: { unit: s, regex: '(', }
        d: { unit: s, json: "{out}/m.json" }
"#,
    );
    let o = output(&["validate", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    for want in [
        "endpoints[0].model",
        "does not apply to provider `command`",
        "endpoints[0].command.run",
        "has a `{` without its `}`",
        "endpoints[0].command.scenarios[0].arguments.batch",
        "is an empty list",
        "endpoints[0].command.matrix.gpus",
        "endpoints[0].command.env.HF_TOKEN",
        "list `HF_TOKEN` under `secret_env`",
        "endpoints[0].command.metrics.a.unit",
        "has no capture group",
        "is not a regular expression",
        "takes `{run_dir}` and `{run}` only",
        "endpoints[0].command.inputs[0]",
        "`no-such-input.py` cannot be read",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
    // A placeholder some cell lacks, and a secret that is not set.
    let cfg = write_config(
        dir.path(),
        "bad2",
        r#"
name: bad2
endpoints:
  - name: prog
    provider: command
    command:
      run: python3 x.py --b {batch}
      scenarios:
        - { name: a, arguments: { batch: 1 } }
        - { name: b }
      secret_env: [HARNESS_TEST_UNSET_TOKEN]
      metrics: { x: { unit: s } }
"#,
    );
    let o = output(&["validate", cfg.to_str().unwrap()]);
    assert!(
        stderr(&o).contains("`{batch}` is not an argument of scenario `b`"),
        "{}",
        stderr(&o)
    );
    let fixed = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("- { name: b }", "- { name: b, arguments: { batch: 2 } }");
    std::fs::write(&cfg, fixed).unwrap();
    // validate and the dry run say it as the run does.
    for args in [&["validate"][..], &["run", "--dry-run"][..]] {
        let o = harness()
            .args(args)
            .arg(&cfg)
            .env_remove("HARNESS_TEST_UNSET_TOKEN")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&o).contains("bad2.yml:11:") && stderr(&o).contains("is not set"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    let o = harness()
        .args(["run", cfg.to_str().unwrap(), "--out"])
        .arg(dir.path().join("x.duckdb"))
        .env_remove("HARNESS_TEST_UNSET_TOKEN")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("$HARNESS_TEST_UNSET_TOKEN is not set")
            && e.contains("bad2.yml:11:")
            && e.contains("endpoints[0].command.secret_env[0]"),
        "{e}"
    );
    assert!(!dir.path().join("x.duckdb").exists());
}

/// A bundle whose every cell failed has nothing to analyse: `run` exits 3
/// and `report` exits 2, naming the cells and why they were left out.
#[test]
fn a_bundle_of_failed_cells_is_not_reported_as_a_success() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let out = dir.path().join("b.duckdb");
    let o = run_cmd(
        &cfg,
        &out,
        &[
            "--set",
            "endpoints[0].command.scenarios[0].arguments.mode=fail",
        ],
    )
    .env("PROG_TOKEN", "t")
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("next: no cell completed, so there is nothing to report"),
        "{}",
        stdout(&o)
    );
    let o = output(&[
        "report",
        out.to_str().unwrap(),
        "--out",
        dir.path().join("report").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("no complete experiment")
            && e.contains("prog · ok · n=1 (failed)")
            && e.contains("prog · ok · n=2 (failed)"),
        "{e}"
    );
}
