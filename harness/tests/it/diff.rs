//! `harness diff`: a known injected slowdown is flagged; a rerun of identical
//! settings is not.
//!
//! The simulated latencies are LLM-sized (100 ms TTFT, 10 ms ITL) so that the
//! scheduler jitter of two shared cores (a few ms at p95) stays well inside
//! the 5% threshold: at 30 ms TTFT one clean-clone CI run measured an
//! identical rerun's TTFT p95 at +5.9% (30.98 -> 32.82 ms) and failed.

use super::common::*;

const CFG: &str = r#"
name: d
endpoints:
  - name: s
    provider: sim
    sim: { ttft_ms: 100, itl_ms: 10 }
datasets:
  - name: d
    synthetic: { prompt_tokens: 16, output_tokens: 8 }
load: { concurrency: [4], requests: 120, warmup: { requests: 4 } }
"#;

fn bundle(dir: &std::path::Path, name: &str, slowdown: Option<&str>, extra: &[&str]) -> String {
    let cfg = write_config(dir, "d", CFG);
    let out = dir.join(format!("{name}.duckdb"));
    let mut c = harness();
    c.args([
        "run",
        "-q",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
    .args(extra);
    if let Some(k) = slowdown {
        c.env("HARNESS_SIM_SLOWDOWN", k);
    }
    assert!(c.output().unwrap().status.success());
    out.to_str().unwrap().to_string()
}

#[test]
fn injected_slowdown_is_a_regression_and_a_rerun_is_not() {
    let _quiet = quiet_cores();
    let dir = tempfile::tempdir().unwrap();
    let a = bundle(dir.path(), "a", None, &[]);
    let b = bundle(dir.path(), "b", None, &[]);
    let slow = bundle(dir.path(), "slow", Some("1.3"), &[]);

    let same = output(&["diff", &a, &b, "--fail-on-regression"]);
    assert!(same.status.success(), "{}", stdout(&same));
    assert!(
        stdout(&same).contains("1 experiment(s) compared; 0 regression(s)"),
        "{}",
        stdout(&same)
    );

    let worse = output(&["diff", &a, &slow, "--fail-on-regression"]);
    assert_eq!(worse.status.code(), Some(1), "{}", stdout(&worse));
    assert!(stdout(&worse).contains("REGRESSION"));

    // Without --fail-on-regression it reports but exits 0; JSON carries the numbers.
    let j = run_ok(&["diff", &a, &slow, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    assert_eq!(
        v["regressions"].as_u64(),
        Some(4),
        "ttft and e2e, p50 and p95"
    );
    let c = &v["comparisons"][0];
    assert!(c["change"].as_f64().unwrap() > 0.2 && c["ci_low"].as_f64().unwrap() > 0.0);
}

#[test]
fn experiments_on_one_side_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let a = bundle(dir.path(), "a", None, &[]);
    let b = bundle(dir.path(), "b", None, &["--set", "load.concurrency=[2]"]);
    let s = stdout(&run_ok(&["diff", &a, &b, "--format", "md"]));
    assert!(
        s.contains("only in old: s · d · c=4") && s.contains("only in new: s · d · c=2"),
        "{s}"
    );
    let e = output(&["diff", &a, &b, "--threshold", "lots"]);
    assert!(!e.status.success() && stderr(&e).contains("--threshold `lots`"));
}

#[test]
fn diff_reads_the_requests_each_metric_is_defined_over() {
    // Variable output lengths (no ignore_eos), 1-token responses (no TPOT
    // sample), failures (only dispatch lag) and warm-up: each metric selects
    // different requests, and diff must select the same ones as the bundle's
    // own distributions.
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "sel",
        r#"
name: sel
endpoints:
  - name: s
    provider: sim
    sim: { ttft_ms: 10, itl_ms: 3, error_rate: 0.2 }
datasets:
  - name: d
    synthetic: { prompt_tokens: 16, output_tokens: { uniform: [1, 6] } }
load: { concurrency: [3], requests: 60, warmup: { requests: 3 } }
"#,
    );
    let b = run_into(dir.path(), &cfg, "sel", &[]);
    let b = b.to_str().unwrap();
    let metrics: Vec<&str> = harness::report::model::latency_metrics()
        .map(|m| m.id())
        .collect();
    assert_eq!(metrics.len(), 7);
    let o = run_ok(&[
        "diff",
        b,
        b,
        "--metric",
        &metrics.join(","),
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let e = &experiments(std::path::Path::new(b))[0];
    for m in harness_core::Metric::ALL
        .into_iter()
        .filter(|m| metrics.contains(&m.id()))
    {
        let d = e.summary.dist(m).unwrap();
        for (stat, want) in [("p50", d.p50), ("p95", d.p95)] {
            let c = v["comparisons"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["metric"] == m.id() && c["stat"] == stat)
                .unwrap_or_else(|| panic!("no {} {stat}", m.id()));
            assert_eq!(c["old"].as_f64(), Some(want), "{} {stat}", m.id());
            assert_eq!(c["new"].as_f64(), Some(want), "{} {stat}", m.id());
        }
    }
    let tpot = e.summary.dist(harness_core::Metric::Tpot).unwrap().count;
    let e2e = e.summary.dist(harness_core::Metric::E2e).unwrap().count;
    assert!(
        tpot < e2e,
        "1-token responses have no TPOT ({tpot} vs {e2e})"
    );
    let bad = output(&["diff", b, b, "--metric", "output_tokens"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn an_experiment_that_broke_is_a_regression_and_comparing_nothing_fails_the_gate() {
    use super::fake::{self, Fake};
    let good = Fake::start(|r| {
        if r.method == "GET" {
            return fake::json(200, r#"{"data":[{"id":"m"}]}"#);
        }
        fake::chat_stream_ok(4)
    });
    let down = Fake::start(|_| fake::json(401, r#"{"error":{"message":"bad key"}}"#));
    let dir = tempfile::tempdir().unwrap();
    // The base URL is not hashed: the same experiment against a broken server.
    let cfg = |url: String| {
        format!("name: g\nendpoints:\n  - {{ name: gw, provider: openai, base_url: \"{url}\", model: m }}\ndatasets:\n  - name: d\n    synthetic: {{ prompt_tokens: 8, output_tokens: 4 }}\nload: {{ concurrency: [1], requests: 4 }}\n")
    };
    let old = run_into(
        dir.path(),
        &write_config(dir.path(), "old", &cfg(good.base_url())),
        "old",
        &[],
    );
    let (old, o) = (old.to_str().unwrap(), dir.path().join("new.duckdb"));
    for extra in [vec![], vec!["--no-preflight"]] {
        let _ = std::fs::remove_file(&o);
        let new_cfg = write_config(dir.path(), "new", &cfg(down.base_url()));
        let r = run_cmd(&new_cfg, &o, &extra).output().unwrap();
        assert_eq!(r.status.code(), Some(3));
        let d = output(&["diff", old, o.to_str().unwrap(), "--fail-on-regression"]);
        let text = stdout(&d);
        assert_eq!(d.status.code(), Some(1), "{extra:?}: {text}");
        let status = if extra.is_empty() {
            "skipped"
        } else {
            "failed"
        };
        assert!(
            text.contains(&format!("REGRESSION: gw · d · c=1 is {status} in new")),
            "{text}"
        );
        assert!(!text.contains("only in old"), "{text}");
    }
    // Two bundles with nothing in common: the gate does not pass.
    let other = run_into(
        dir.path(),
        &write_config(
            dir.path(),
            "o",
            &cfg(good.base_url()).replace("requests: 4", "requests: 5"),
        ),
        "other",
        &[],
    );
    let d = output(&["diff", old, other.to_str().unwrap(), "--fail-on-regression"]);
    assert_eq!(d.status.code(), Some(1));
    assert!(stdout(&d).contains("nothing compared"), "{}", stdout(&d));
}
