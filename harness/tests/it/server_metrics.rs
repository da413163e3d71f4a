//! The engine's Prometheus metrics, scraped while experiments run: the
//! simulator's (vLLM's names, from its own state) against what is known of
//! it; a scrape that fails is counted, never fatal.

use super::common::*;

/// Every request takes 50 ms (TTFT 10 ms, 8 gaps of 5 ms, EOS ignored); 4
/// run at a time, 8 closed-loop workers: about 4 running and 4 waiting at
/// every moment of the measurement window.
fn config(metrics: &str) -> String {
    format!(
        r#"
name: scrape
endpoints:
  - name: sim
    provider: sim
    sim: {{ ttft_ms: 10, itl_ms: 5, max_concurrency: 4 }}
    server_metrics: {metrics}
datasets:
  - name: d
    synthetic: {{ prompt_tokens: 16, output_tokens: 9 }}
sampling: {{ ignore_eos: true }}
load:
  concurrency: [8]
  requests: 240
  warmup: {{ requests: 8 }}
"#
    )
}

#[test]
fn the_simulators_metrics_are_scraped_and_summarised_against_known_values() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "scrape", &config("{ interval: 200ms }"));
    let bundle = run_into(dir.path(), &cfg, "s", &[]);
    let json = stdout(&run_ok(&["show", "--json", bundle.to_str().unwrap()]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let server = &v["server"][0];
    assert_eq!(server["failures"], 0, "{server}");
    assert!(server["url"].as_str().unwrap().ends_with("/metrics"));
    let attempts = server["attempts"].as_i64().unwrap();
    // About 3 s at 0.2 s: one scrape at the start, then every interval.
    assert!((8..=40).contains(&attempts), "{attempts} scrapes");
    let s = &server["summary"];
    let mean = |k: &str| s[k]["mean"].as_f64().unwrap_or_else(|| panic!("{k}: {s}"));
    assert!((3.0..=4.0).contains(&mean("running")), "{s}");
    assert_eq!(s["running"]["max"], 4.0, "never more than the 4 slots");
    assert!((2.5..=4.5).contains(&mean("waiting")), "{s}");
    assert_eq!(s["sources"]["running"], "vllm:num_requests_running");
    // Generation tokens per second from the counter against the client's
    // own count of output tokens over the window.
    let gen = s["generation_tokens_per_s"].as_f64().unwrap();
    let client = v["experiments"][0]["summary"]["output_token_throughput"]
        .as_f64()
        .unwrap();
    assert!(
        (gen - client).abs() / client < 0.2,
        "server {gen} tok/s, client {client} tok/s"
    );
    // Unique prompts share no block with another: 0 hits of every prompt token.
    assert_eq!(s["prefix_cache_hit_rate"], 0.0);
    // Raw samples are kept, on the requests' clock.
    let conn = harness::bundle::read::open(&bundle).unwrap();
    let (n, names, max_t): (i64, i64, i64) = conn
        .query_row(
            "SELECT count(*), count(DISTINCT name), max(t_ns) FROM server_metrics",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let end: i64 = conn
        .query_row("SELECT max(end_ns) FROM requests", [], |r| r.get(0))
        .unwrap();
    assert_eq!(names, 7);
    assert!(n >= 7 * (attempts - 1), "{n} rows for {attempts} scrapes");
    assert!(
        max_t <= end + 400_000_000,
        "samples on the experiment's clock"
    );
    let text = stdout(&run_ok(&["show", bundle.to_str().unwrap()]));
    assert!(
        text.contains("server metrics, measurement window"),
        "{text}"
    );
    assert!(text.contains(&format!("0 of {attempts} failed")), "{text}");
}

#[test]
fn a_scrape_that_fails_is_counted_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "noscrape",
        &config("{ url: \"http://127.0.0.1:1/metrics\", interval: 200ms }"),
    );
    let bundle = run_into(dir.path(), &cfg, "n", &[]);
    let exps = experiments(&bundle);
    assert_eq!(exps[0].status, "complete");
    let text = stdout(&run_ok(&["show", bundle.to_str().unwrap()]));
    let line = text
        .lines()
        .find(|l| l.contains("failed (last:"))
        .unwrap_or_else(|| panic!("{text}"));
    let (failed, of) = {
        let head = line.split(" failed").next().unwrap();
        let mut w = head.rsplit(' ');
        let of: i64 = w.next().unwrap().parse().unwrap();
        w.next();
        (w.next().unwrap().parse::<i64>().unwrap(), of)
    };
    assert_eq!(failed, of, "{line}");
    assert!(
        line.contains("refused") || line.contains("connect"),
        "{line}"
    );
    // Off: nothing scraped, nothing shown.
    let cfg = write_config(dir.path(), "off", &config("false"));
    let bundle = run_into(dir.path(), &cfg, "o", &[]);
    let text = stdout(&run_ok(&["show", bundle.to_str().unwrap()]));
    assert!(!text.contains("server metrics"), "{text}");
    // Bad settings are named with their place.
    let cfg = write_config(
        dir.path(),
        "bad",
        &config("{ url: \"ftp://x\", interval: 10ms }"),
    );
    let err = stderr(&output(&["validate", cfg.to_str().unwrap()]));
    assert!(err.contains("endpoints[0].server_metrics.url"), "{err}");
    assert!(
        err.contains("endpoints[0].server_metrics.interval"),
        "{err}"
    );
}

/// Two prefixes of 384 tokens, each shared by every other request, against
/// the same prompts with every prefix made unique, on a profile whose
/// prefill grows with the tokens it computes: the simulator's prefix cache
/// hits about 384 of 512 prompt tokens of the shared bucket and none of the
/// cold one, and TTFT follows.
#[test]
fn a_shared_prefix_hits_the_prefix_cache_and_the_cold_baseline_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "prefix",
        r#"
name: prefix
endpoints:
  - name: sim
    provider: sim
    instance_type: g6e.2xlarge
    server_metrics: { interval: 100ms }
datasets:
  - name: d
    synthetic:
      prompt_tokens: 512
      output_tokens: 4
      shared_prefix: { tokens: 384, prefixes: 2, cold_baseline: true }
sampling: { ignore_eos: true }
load:
  concurrency: [2]
  requests: 60
  warmup: { requests: 2 }
"#,
    );
    let bundle = run_into(dir.path(), &cfg, "p", &[]);
    let exps = experiments(&bundle);
    let buckets: Vec<&str> = exps.iter().map(|e| e.bucket.as_str()).collect();
    assert_eq!(buckets, ["shared", "cold"]);
    let json = stdout(&run_ok(&["show", "--json", bundle.to_str().unwrap()]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let hit_rate = |bucket: &str| {
        let id = &exps
            .iter()
            .find(|e| e.bucket == bucket)
            .unwrap()
            .experiment_id;
        let row = v["server"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["experiment_id"] == id.as_str())
            .unwrap_or_else(|| panic!("{bucket}: {}", v["server"]));
        row["summary"]["prefix_cache_hit_rate"].as_f64().unwrap()
    };
    // 24 full blocks of 16 tokens of each prompt's 512, once its prefix is
    // cached (the warm-up requests cache both).
    let (shared, cold) = (hit_rate("shared"), hit_rate("cold"));
    assert!((0.70..=0.76).contains(&shared), "shared: {shared}");
    assert!(cold < 0.01, "cold: {cold}");
    let ttft = |bucket: &str| {
        exps.iter()
            .find(|e| e.bucket == bucket)
            .unwrap()
            .summary
            .dist(harness_core::Metric::Ttft)
            .unwrap()
            .p50
    };
    // Prefill of 128 rather than 512 tokens (docs/simulator.md).
    assert!(
        ttft("shared") < 0.7 * ttft("cold"),
        "{} vs {} ms",
        ttft("shared"),
        ttft("cold")
    );
    // The report puts the hit rate beside TTFT.
    let out = dir.path().join("report");
    run_ok(&[
        "report",
        bundle.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let section = md
        .split("## Server metrics")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .unwrap_or_else(|| panic!("{md}"));
    assert!(section.contains("| prefix-cache hit rate |"), "{section}");
    let row = section
        .lines()
        .find(|l| l.contains("d[shared]"))
        .unwrap_or_else(|| panic!("{section}"));
    assert!(row.contains(&format!("{:.2}%", shared * 100.0)), "{row}");
}
