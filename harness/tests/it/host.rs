//! Host metrics: a run samples its host every second into `host_samples`,
//! each sample in its experiment's load window, and `harness show` gives the
//! measurement window's percentiles. Without NVML the GPU columns are null
//! and the run says why; with it (a GPU machine) every sample has each GPU.

use super::common::*;

const CFG: &str = r#"
name: host
endpoints:
  - name: sim
    provider: sim
    instance_type: g5.xlarge
    sim: { ttft_ms: 20, itl_ms: 5 }
datasets:
  - name: d
    synthetic: { prompt_tokens: 32, output_tokens: 16 }
load:
  concurrency: [2]
  duration: 3s
  warmup: { requests: 2 }
"#;

#[test]
fn a_run_samples_its_host_in_each_load_window() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = write_config(d, "host", CFG);
    let out = d.join("host.duckdb");
    let run = harness()
        .args(["run", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("host metrics: CPU and memory every second; "),
        "{stderr}"
    );

    let conn = harness::bundle::read::open(&out).unwrap();
    let runs = harness::bundle::read::runs(&conn).unwrap();
    let gpus = runs[0]
        .host_gpus
        .clone()
        .expect("the run says what it sampled");
    assert!(stderr.contains(&gpus), "{stderr}");
    let rows = harness::bundle::read::host_samples(&conn).unwrap();
    let exps = harness::bundle::read::experiments(&conn).unwrap();
    assert_eq!(exps.len(), 1);
    let id = &exps[0].experiment_id;

    // About one sample a second over a 3 s window (plus warm-up and drain).
    let times: std::collections::BTreeSet<i64> = rows.iter().map(|r| r.t_ns).collect();
    assert!(
        (3..=8).contains(&times.len()),
        "{} samples: {times:?}",
        times.len()
    );
    let requests = harness::bundle::read::request_samples(&conn, id).unwrap();
    let window = harness_core::summary::measurement_window(&requests).unwrap();
    for r in &rows {
        assert_eq!(&r.experiment_id, id);
        assert_eq!(
            r.load_window,
            harness_core::host::window_of(r.t_ns, Some(window))
        );
        let cpu = r.cpu_util_pct.expect("CPU is always sampled");
        assert!((0.0..=100.0).contains(&cpu), "{cpu}");
        let (used, total) = (r.mem_used_bytes.unwrap(), r.mem_total_bytes.unwrap());
        assert!(0 < used && used <= total, "{used} of {total}");
    }
    assert!(rows.iter().any(|r| r.load_window == "measured"));
    // Samples are spaced by the interval (1 s), not bunched.
    let t: Vec<i64> = times.into_iter().collect();
    for w in t.windows(2) {
        let gap = (w[1] - w[0]) as f64 / 1e9;
        assert!((0.5..2.0).contains(&gap), "{gap} s between samples: {t:?}");
    }

    if gpus.starts_with("no GPU metrics") {
        // No NVML: GPU columns null, never zero.
        assert!(rows.iter().all(|r| r.gpu_index.is_none()
            && r.gpu_util_pct.is_none()
            && r.gpu_mem_used_bytes.is_none()
            && r.gpu_power_w.is_none()));
    } else {
        // A GPU machine: every sample has every GPU with its figures.
        let per_sample = rows.len() / t.len();
        assert!(per_sample >= 1 && rows.len() == per_sample * t.len());
        for r in &rows {
            let g = r.gpu_index.expect("a GPU row");
            assert!((0..per_sample as i64).contains(&g));
            let util = r.gpu_util_pct.expect("utilisation");
            assert!((0.0..=100.0).contains(&util));
            let (used, total) = (
                r.gpu_mem_used_bytes.unwrap(),
                r.gpu_mem_total_bytes.unwrap(),
            );
            assert!(0 < total && used <= total, "{used} of {total}");
            if let Some(w) = r.gpu_power_w {
                assert!(w > 0.0 && w < 5000.0, "{w} W");
            }
        }
    }

    // `harness show` gives the measured window's percentiles; --json all windows.
    let show = run_ok(&["show", out.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.contains("host metrics, measurement window (p50 / p95 / max of 1 s samples):"),
        "{text}"
    );
    assert!(text.contains(&gpus), "{text}");
    let host_part = text
        .split("host metrics, measurement window")
        .nth(1)
        .unwrap();
    let line = host_part
        .lines()
        .find(|l| l.trim_start().starts_with(&exps[0].label))
        .unwrap_or_else(|| panic!("no host row for {}: {text}", exps[0].label));
    // cpu % and mem GiB as p50 / p95 / max.
    assert_eq!(line.matches(" / ").count() % 2, 0, "{line}");
    assert!(line.matches(" / ").count() >= 4, "{line}");
    let json = run_ok(&["show", out.to_str().unwrap(), "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let windows = doc["host"].as_array().unwrap();
    assert!(windows.iter().any(|w| w["load_window"] == "measured"));
    assert_eq!(
        windows
            .iter()
            .map(|w| w["samples"].as_u64().unwrap())
            .sum::<u64>() as usize,
        rows.len()
    );
}
