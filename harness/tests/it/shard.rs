//! One experiment across several load generators: 3 `harness run --shard
//! K/3` processes against one simulator, met at a barrier directory, then
//! `harness merge`, against a single-process run of the same plan.

use crate::common::*;
use harness::bundle::read;
use harness_core::{sample::RequestSample, Metric};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

/// The Kubernetes manifest's documents.
fn manifest() -> Vec<yaml_rust2::Yaml> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/k8s/harness-shards.yaml"
    ))
    .unwrap();
    yaml_rust2::YamlLoader::load_from_str(&text).unwrap()
}

/// The script each pod of the manifest's Job runs.
fn manifest_script() -> String {
    let docs = manifest();
    let cm = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("ConfigMap"))
        .unwrap();
    cm["data"]["shard.sh"].as_str().unwrap().to_string()
}

/// The manifest is a ready Indexed Job: N pods, each told its K by the Job
/// and N by SHARDS, running the ConfigMap's script on its config, which is
/// valid; a bundle per shard on the shared volume.
#[test]
fn the_kubernetes_manifest_is_an_indexed_job_of_n_shards() {
    let docs = manifest();
    let kind = |k: &str| docs.iter().find(|d| d["kind"].as_str() == Some(k)).unwrap();
    let (cm, job) = (kind("ConfigMap"), kind("Job"));
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    let n = spec["completions"].as_i64().unwrap();
    assert_eq!(
        spec["parallelism"].as_i64(),
        Some(n),
        "every shard runs at once"
    );
    assert_eq!(spec["backoffLimit"].as_i64(), Some(0));
    let pod = &spec["template"]["spec"];
    let c = &pod["containers"][0];
    let env = |name: &str| {
        c["env"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|e| e["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("env {name}"))
            .clone()
    };
    assert_eq!(
        env("SHARDS")["value"].as_str(),
        Some(n.to_string().as_str())
    );
    assert_eq!(
        env("SHARD_INDEX")["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("metadata.annotations['batch.kubernetes.io/job-completion-index']")
    );
    assert!(
        env("RUN_DIR")["value"]
            .as_str()
            .unwrap()
            .contains("$(JOB_UID)"),
        "a fresh barrier per Job"
    );
    // The command runs the ConfigMap's script, on the ConfigMap's config.
    let mount = c["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|m| m["name"].as_str() == Some("config"))
        .unwrap()["mountPath"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        c["command"][1].as_str(),
        Some(format!("{mount}/shard.sh").as_str())
    );
    assert_eq!(
        env("CONFIG")["value"].as_str(),
        Some(format!("{mount}/experiment.yml").as_str())
    );
    let dir = tempfile::tempdir().unwrap();
    let exp = write_config(
        dir.path(),
        "experiment",
        cm["data"]["experiment.yml"].as_str().unwrap(),
    );
    run_ok(&["validate", exp.to_str().unwrap()]);
    let script = manifest_script();
    assert!(
        script.contains("--shard \"$SHARD_INDEX/$SHARDS\"") && script.contains("harness merge")
    );
}

fn config(dir: &Path, port: u16) -> PathBuf {
    write_config(
        dir,
        "split",
        &format!(
            r#"
name: split
endpoints:
  - name: sim
    provider: openai
    base_url: http://127.0.0.1:{port}/v1
    model: m
    server_metrics: false
datasets:
  - name: d
    synthetic: {{ prompt_tokens: {{ uniform: [16, 600] }}, output_tokens: 8 }}
load:
  rates: [40]
  arrival: poisson
  concurrency: [6]
  requests: 240
  warmup: {{ requests: 12 }}
sampling: {{ ignore_eos: true }}
seed: 7
"#
        ),
    )
}

/// Two-sample Kolmogorov–Smirnov statistic: the largest gap between the
/// empirical CDFs of `a` and `b`.
fn ks(mut a: Vec<f64>, mut b: Vec<f64>) -> f64 {
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (mut i, mut j, mut d) = (0, 0, 0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}

fn values(s: &[RequestSample], m: Metric) -> Vec<f64> {
    harness_core::summary::metric_values(s, m)
}

/// (seq, scheduled_ns, warm-up, shard) of every request, by seq.
fn arrivals(bundle: &Path, id: &str) -> Vec<(i64, i64, bool, Option<i32>)> {
    let c = read::open(bundle).unwrap();
    let mut st = c
        .prepare("SELECT seq, scheduled_ns, warmup, shard FROM requests WHERE experiment_id = ? ORDER BY seq")
        .unwrap();
    let rows = st
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

#[test]
fn three_shards_merge_into_the_experiment_one_process_measures() {
    let _quiet = quiet_cores();
    let dir = tempfile::tempdir().unwrap();
    let (mut sim, port) = start_sim(&[]);
    let cfg = config(dir.path(), port);
    let single = run_into(dir.path(), &cfg, "single", &["--no-preflight"]);

    // The 3 agents as the Kubernetes manifest runs them: its script, with
    // the environment its Indexed Job gives each pod.
    let script = dir.path().join("shard.sh");
    std::fs::write(&script, manifest_script()).unwrap();
    let run_dir = dir.path().join("run");
    let bin = Path::new(env!("CARGO_BIN_EXE_harness")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let runs: Vec<Child> = (0..3)
        .map(|k| {
            std::process::Command::new("sh")
                .arg(&script)
                .env("SHARD_INDEX", k.to_string())
                .env("SHARDS", "3")
                .env("RUN_DIR", &run_dir)
                .env("CONFIG", &cfg)
                .env("PATH", &path)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut merge_said = String::new();
    for (k, r) in runs.into_iter().enumerate() {
        let out = r.wait_with_output().unwrap();
        assert!(out.status.success(), "shard {k}: {}", stderr(&out));
        if k == 0 {
            merge_said = stdout(&out);
        }
    }
    sim.kill().unwrap();
    sim.wait().unwrap();
    // A shard's bundle is part of each experiment: it points at merge.
    assert!(
        merge_said.contains("next: harness merge <all 3 shard bundles>"),
        "{merge_said}"
    );
    assert_eq!(
        merge_said.matches("joined 3 of 3 shards").count(),
        2,
        "{merge_said}"
    );
    let shards: Vec<PathBuf> = (0..3)
        .map(|k| run_dir.join(format!("shard-{k}.duckdb")))
        .collect();

    // A shard's bundle says what it is.
    let part = experiments(&shards[1]);
    assert!(part[0].label.ends_with(" · shard 1/3"), "{}", part[0].label);

    let merged = run_dir.join("merged.duckdb");
    let s: Vec<&str> = shards.iter().map(|p| p.to_str().unwrap()).collect();
    let (one, all) = (experiments(&single), experiments(&merged));
    assert_eq!(all.len(), 2);
    for (a, b) in one.iter().zip(&all) {
        assert_eq!(
            a.experiment_id, b.experiment_id,
            "the shards carry the whole's id"
        );
        assert_eq!(a.label, b.label);
        assert_eq!(b.status, "complete");
        assert_eq!(a.summary.requests, b.summary.requests);
        assert_eq!(a.summary.warmup_requests, b.summary.warmup_requests);
        let (x, y) = (
            arrivals(&single, &a.experiment_id),
            arrivals(&merged, &b.experiment_id),
        );
        assert!(
            y.iter().all(|r| r.3 == Some((r.0 % 3) as i32)),
            "each row keeps its shard"
        );
        assert!(x.iter().all(|r| r.3.is_none()));
        let seqs: std::collections::BTreeSet<i64> = y.iter().map(|r| r.0).collect();
        assert_eq!(seqs.len(), y.len(), "no request twice");
        if a.load_mode == "open" {
            // The same seeded arrivals, to the nanosecond, at the same seqs.
            let strip = |v: &[(i64, i64, bool, Option<i32>)]| -> Vec<(i64, i64, bool)> {
                v.iter().map(|r| (r.0, r.1, r.2)).collect()
            };
            assert_eq!(strip(&x), strip(&y), "byte-identical arrivals");
            let (ra, rb) = (a.summary.send_rate.unwrap(), b.summary.send_rate.unwrap());
            assert!((rb / ra - 1.0).abs() < 0.05, "send rate {ra} vs {rb}");
            // The latencies come from one distribution: two-sample KS at
            // α = 0.001 (critical value 1.95·√((n+m)/(n·m))).
            let c1 = read::open(&single).unwrap();
            let c2 = read::open(&merged).unwrap();
            let sa = read::request_samples(&c1, &a.experiment_id).unwrap();
            let sb = read::request_samples(&c2, &b.experiment_id).unwrap();
            for m in [Metric::Ttft, Metric::E2e] {
                let (va, vb) = (values(&sa, m), values(&sb, m));
                let (n, k) = (va.len() as f64, vb.len() as f64);
                let crit = 1.95 * ((n + k) / (n * k)).sqrt();
                let d = ks(va, vb);
                assert!(d < crit, "{m:?}: KS D = {d:.3} ≥ {crit:.3}");
            }
        }
    }
    // Every shard's row: its split and its clock against the barrier volume.
    let c = read::open(&merged).unwrap();
    let (n, measured, starts): (i64, i64, i64) = c
        .query_row(
            "SELECT count(*), count(clock_offset_error_ns), count(DISTINCT (experiment_id, start_unix_ns)) FROM shards WHERE clock_source = 'barrier'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((n, measured, starts), (6, 6, 2));
    // The open loop's 240 arrivals and 12 warm-up split 84 to each shard.
    let open: i64 = c
        .query_row(
            "SELECT count(*) FROM shards WHERE split LIKE 'seq mod 3 = _: 84 of 252 requests (warm-up included)'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(open, 3);
    // `show` says which experiments were joined, and from how many shards.
    let shown = stdout(&run_ok(&["show", merged.to_str().unwrap()]));
    assert_eq!(
        shown.matches("complete, merged from 3 of 3 shards").count(),
        2,
        "{shown}"
    );
    let meta: String = c
        .query_row(
            "SELECT value FROM meta WHERE key = 'merged_from'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
    assert!(
        meta["shards"][0]["clocks"]["alignment_bound_ms"]
            .as_f64()
            .is_some(),
        "{meta}"
    );

    // A merged bundle merged again keeps every shard's run: each shard
    // other than the first is in it only through its `shards` row.
    let again = dir.path().join("again.duckdb");
    run_ok(&[
        "merge",
        merged.to_str().unwrap(),
        "-o",
        again.to_str().unwrap(),
    ]);
    let runs = |b: &Path, sql: &str| -> i64 {
        read::open(b)
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    };
    let all_runs = "SELECT count(*) FROM runs";
    assert_eq!(runs(&again, all_runs), runs(&merged, all_runs));
    assert_eq!(
        runs(
            &again,
            "SELECT count(*) FROM shards WHERE run_id NOT IN (SELECT run_id FROM runs)"
        ),
        0
    );

    // Refusals: a shard missing, unless allowed (then incomplete); a shard
    // joined with a whole run of the same experiment.
    let o = output(&[
        "merge",
        s[0],
        s[1],
        "-o",
        dir.path().join("m2.duckdb").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no result of shard 2/3"),
        "{}",
        stderr(&o)
    );
    let partial = dir.path().join("m3.duckdb");
    run_ok(&[
        "merge",
        s[0],
        s[1],
        "-o",
        partial.to_str().unwrap(),
        "--allow-missing-shards",
    ]);
    let p = experiments(&partial);
    assert!(p.iter().all(|e| e.status == "incomplete"
        && e.status_reason
            .as_deref()
            .unwrap()
            .contains("2 of 3 shards")));
    // One shard's bundle alone is a partial merge too.
    let alone = dir.path().join("alone.duckdb");
    run_ok(&[
        "merge",
        s[0],
        "-o",
        alone.to_str().unwrap(),
        "--allow-missing-shards",
    ]);
    assert!(experiments(&alone).iter().all(|e| e.status == "incomplete"
        && e.status_reason
            .as_deref()
            .unwrap()
            .contains("1 of 3 shards")));
    // `show` gives the partial merge's counts beside its percentiles.
    let shown = stdout(&run_ok(&["show", partial.to_str().unwrap()]));
    let row = shown
        .lines()
        .find(|l| l.contains("incomplete"))
        .unwrap_or_else(|| panic!("{shown}"));
    let ok: u64 = row
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no ok count in {row}"));
    assert!(ok > 0, "{row}");
    // A shard that did not complete (here marked interrupted) is refused too.
    let cut = dir.path().join("cut.duckdb");
    std::fs::copy(&shards[2], &cut).unwrap();
    duckdb::Connection::open(&cut)
        .unwrap()
        .execute_batch("UPDATE shards SET status = 'interrupted'; CHECKPOINT;")
        .unwrap();
    let o = output(&[
        "merge",
        s[0],
        s[1],
        cut.to_str().unwrap(),
        "-o",
        dir.path().join("m5.duckdb").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is interrupted"), "{}", stderr(&o));
    // A copy of a shard's bundle beside it: one is used, and it says so.
    let twin = dir.path().join("twin.duckdb");
    std::fs::copy(&shards[2], &twin).unwrap();
    let o = run_ok(&[
        "merge",
        s[0],
        s[1],
        s[2],
        twin.to_str().unwrap(),
        "-o",
        dir.path().join("m6.duckdb").to_str().unwrap(),
    ]);
    assert!(
        stderr(&o).contains("and again in") && stderr(&o).contains("twin.duckdb: using the first"),
        "{}",
        stderr(&o)
    );
    let o = output(&[
        "merge",
        single.to_str().unwrap(),
        s[2],
        "-o",
        dir.path().join("m4.duckdb").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is whole in"), "{}", stderr(&o));
}

/// What cannot be sharded, or sharded without a start, is refused before
/// anything runs, with what to do instead.
#[test]
fn shard_mistakes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 9);
    let embedded = write_config(
        dir.path(),
        "embedded",
        "name: e\nendpoints: [{name: s, provider: sim}]\ndatasets: [{name: d, synthetic: {prompt_tokens: 8, output_tokens: 4}}]\nload: {concurrency: [1]}\n",
    );
    let b = dir.path().join("b");
    let b = b.to_str().unwrap();
    for (args, want) in [
        (vec!["--shard", "3/3", "--barrier", b], "K must be 0 to N-1"),
        (vec!["--shard", "0/2"], "give --barrier DIR"),
        (
            vec!["--shard", "0/2", "--start-at", "2020-01-01T00:00:00Z"],
            "--start-at aligns one experiment",
        ),
        (
            vec!["--shard", "0/2", "--barrier", b, "--barrier-timeout", "0s"],
            "--barrier-timeout 0s",
        ),
        (
            vec!["--shard", "0/2", "--start-at", "soon"],
            "not an RFC 3339 time",
        ),
        (
            vec!["--shard", "0/8", "--barrier", b],
            "concurrency 6 cannot be split over 8 shards",
        ),
        (
            vec!["--shard", "0/4", "--barrier", b, "--set", "load.requests=3"],
            "3 request(s) cannot be split over 4 shards",
        ),
    ] {
        let o = run_cmd(&cfg, &dir.path().join("x.duckdb"), &args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    let o = run_cmd(
        &embedded,
        &dir.path().join("y.duckdb"),
        &["--shard", "0/2", "--barrier", b],
    )
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("embedded simulator"), "{}", stderr(&o));
    // `validate` checks what the shard's run would, and prints its part.
    let c = cfg.to_str().unwrap();
    let o = output(&["validate", c, "--shard", "0/8", "--barrier", b]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("concurrency 6 cannot be split over 8 shards"));
    let o = output(&["validate", c, "--shard", "1/3", "--barrier", b]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("shard 1/3: seq mod 3 = 1: 84 of 252 requests")
            && stdout(&o).contains("shard 1/3: concurrency 2 of 6"),
        "{}",
        stdout(&o)
    );
    // ... and refuses command endpoints, as the run does.
    let cmd = write_config(
        dir.path(),
        "cmd",
        "name: cmd\nendpoints:\n  - name: prog\n    provider: command\n    command:\n      run: echo {n}\n      scenarios: [{name: s, arguments: {n: [1]}}]\n      metrics: {t: {unit: s}}\n",
    );
    let o = output(&[
        "validate",
        cmd.to_str().unwrap(),
        "--shard",
        "0/2",
        "--barrier",
        b,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("command endpoints run whole"),
        "{}",
        stderr(&o)
    );
    // --out DIR: each shard's own bundle name in it.
    let outdir = dir.path().join("outdir");
    let o = output(&[
        "run",
        c,
        "--shard",
        "1/3",
        "--barrier",
        b,
        "--out",
        outdir.to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("split-shard-1-of-3.duckdb"),
        "{}",
        stdout(&o)
    );
    // A start already past is refused before anything runs, the dry run
    // included.
    let one = write_config(
        dir.path(),
        "one",
        "name: one\nendpoints: [{name: s, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}]\ndatasets: [{name: d, synthetic: {prompt_tokens: 8, output_tokens: 4}}]\nload: {concurrency: [2], requests: 4}\n",
    );
    for dry in [true, false] {
        let mut args = vec!["--shard", "0/2", "--start-at", "2020-01-01T00:00:00Z"];
        if dry {
            args.push("--dry-run");
        }
        let o = run_cmd(&one, &dir.path().join("z.duckdb"), &args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("--start-at is"), "{}", stderr(&o));
    }
}

/// Shards whose endpoint failed its preflight check recorded the experiment
/// `skipped`, each in its own run: a skip holds no result, so the merge keeps
/// one without asking which (`--on-conflict`), and `show` gives the skip's
/// kind in the table and its whole reason below.
#[test]
fn shards_that_all_skipped_merge_without_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "dead",
        "name: dead\nendpoints: [{name: s, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}]\ndatasets: [{name: d, synthetic: {prompt_tokens: 8, output_tokens: 4}}]\nload: {concurrency: [2], requests: 4}\n",
    );
    let b = dir.path().join("b");
    let mut bundles = vec![];
    for k in ["0/2", "1/2"] {
        let out = dir.path().join(format!("s{}.duckdb", &k[..1]));
        let o = run_cmd(
            &cfg,
            &out,
            &["--shard", k, "--barrier", b.to_str().unwrap()],
        )
        .output()
        .unwrap();
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        bundles.push(out);
    }
    let merged = dir.path().join("m.duckdb");
    let o = output(&[
        "merge",
        bundles[0].to_str().unwrap(),
        bundles[1].to_str().unwrap(),
        "-o",
        merged.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let shown = stdout(&run_ok(&["show", merged.to_str().unwrap()]));
    assert!(shown.contains("not run, preflight failed\n"), "{shown}");
    // The kept row stands for the whole experiment, not one shard's part.
    assert!(
        shown.contains("\ns · d · c=2 ") && !shown.contains("· shard"),
        "{shown}"
    );
    assert!(
        shown.contains("not run:\n  ") && shown.contains("connection refused"),
        "{shown}"
    );
}

/// A shard killed in the middle of an experiment and run again with the same
/// bundle after that experiment started: the rows its first run wrote stay,
/// `incomplete`, it goes on to the next experiment with the others, and the
/// merge joins the incomplete part only when told to.
#[test]
fn a_shard_killed_mid_experiment_keeps_its_rows_when_run_again() {
    let _cores = quiet_cores();
    let dir = tempfile::tempdir().unwrap();
    let (mut sim, port) = start_sim(&["--ttft-ms", "200", "--itl-ms", "1"]);
    let cfg = write_config(
        dir.path(),
        "kill",
        &format!(
            "name: kill\nendpoints: [{{name: s, provider: openai, base_url: 'http://127.0.0.1:{port}/v1', model: m, server_metrics: false}}]\ndatasets: [{{name: d, synthetic: {{prompt_tokens: 8, output_tokens: 4}}}}]\nload: {{concurrency: [2, 4], requests: 40}}\nsampling: {{ignore_eos: true}}\n"
        ),
    );
    let b = dir.path().join("b");
    let bundle = |k: u32| dir.path().join(format!("s{k}.duckdb"));
    let shard = |k: u32| {
        let mut c = harness();
        c.args([
            "run",
            "-q",
            cfg.to_str().unwrap(),
            "--shard",
            &format!("{k}/2"),
        ])
        .args(["--barrier", b.to_str().unwrap(), "--out"])
        .arg(bundle(k))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        c
    };
    let mut zero = shard(0).stderr(Stdio::null()).spawn().unwrap();
    let mut one = shard(1).stderr(Stdio::null()).spawn().unwrap();
    // The first experiment starts 2 s after the last `.ready`, and each
    // shard's 20 requests at concurrency 1 take about 4 s: kill shard 1
    // about 2.5 s into it.
    let ready = |k: u32| {
        std::fs::read_dir(&b)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.path().join(format!("{k}.ready")))
            .filter(|p| p.exists())
    };
    while ready(0).is_none() || ready(1).is_none() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(4500));
    one.kill().unwrap();
    one.wait().unwrap();
    let rows = |k: u32| -> (String, i64) {
        read::open(&bundle(k))
            .unwrap()
            .query_row(
                "SELECT e.status, (SELECT count(*) FROM requests r WHERE r.experiment_id = e.experiment_id) FROM experiments e ORDER BY ordinal LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    let (status, before) = rows(1);
    assert_eq!(status, "running", "killed in the first experiment");
    // Run again after the first experiment started: it keeps those rows
    // and joins shard 0 at the second.
    let again = shard(1).output().unwrap();
    assert_eq!(again.status.code(), Some(3), "{}", stderr(&again));
    assert!(
        stderr(&again).contains(&format!(
            "the earlier attempt's {before} request row(s) stay in the bundle, marked incomplete"
        )),
        "{}",
        stderr(&again)
    );
    assert_eq!(rows(1), ("incomplete".to_string(), before));
    assert!(zero.wait().unwrap().success());
    sim.kill().unwrap();
    let merged = dir.path().join("m.duckdb");
    let (s0, s1) = (bundle(0), bundle(1));
    let (s0, s1, m) = (
        s0.to_str().unwrap(),
        s1.to_str().unwrap(),
        merged.to_str().unwrap(),
    );
    let refused = output(&["merge", s0, s1, "-o", m]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let o = run_ok(&["merge", s0, s1, "-o", m, "--allow-missing-shards"]);
    let said = stdout(&o);
    assert!(
        said.contains("joined 2 of 2 shards") && said.contains(": incomplete; not judged"),
        "{said}"
    );
    assert!(said.contains(": complete; shards aligned"), "{said}");
}
