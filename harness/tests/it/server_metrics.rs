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
    // No prefix cache in the simulator: 0 hits of every prompt token.
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
