//! Trace replay: requests go out at the trace's own times (divided by the
//! speed-up) with its prompt and output lengths; Azure and BurstGPT files;
//! bad traces and replay without a trace are refused with their place.

use super::common::*;
use harness::bundle::read;

/// Offsets 0.05·k + 0.02·(k mod 2) s (uneven gaps, increasing), prompt
/// 10 + 7k tokens, output 1 + (k mod 5) tokens.
fn row(k: u32) -> (f64, u32, u32) {
    (
        0.05 * k as f64 + 0.02 * (k % 2) as f64,
        10 + 7 * k,
        1 + k % 5,
    )
}

const ROWS: u32 = 40;

/// The rows above in the Azure format (seven fractional digits, as the
/// 2023 files write them), shuffled in pairs: the reader sorts by time.
fn azure_csv() -> String {
    let mut s = String::from("TIMESTAMP,ContextTokens,GeneratedTokens\n");
    let mut order: Vec<u32> = (0..ROWS).collect();
    for pair in order.chunks_mut(2) {
        pair.reverse();
    }
    for k in order {
        let (t, p, o) = row(k);
        let us = (t * 1e6).round() as u64;
        s += &format!(
            "2023-11-16 18:15:{:02}.{:06}0,{p},{o}\n",
            10 + us / 1_000_000,
            us % 1_000_000
        );
    }
    s
}

fn config(trace: &str, replay: &str, extra: &str) -> String {
    format!(
        r#"
name: trace
endpoints:
  - name: sim
    provider: sim
    sim: {{ ttft_ms: 5, itl_ms: 1 }}
datasets:
  - name: t
    trace: {trace}
sampling: {{ ignore_eos: true }}
load:
  replay: {replay}
  warmup: {{ requests: 2 }}
{extra}
"#
    )
}

struct Sent {
    seq: i64,
    warmup: bool,
    scheduled_ns: i64,
    prompt_client: i64,
    prompt_usage: i64,
    output_usage: i64,
}

fn sent(bundle: &std::path::Path) -> Vec<Sent> {
    let conn = read::open(bundle).unwrap();
    let mut st = conn
        .prepare(
            "SELECT seq, warmup, scheduled_ns, prompt_tokens_client, prompt_tokens_usage, \
             output_tokens_usage FROM requests ORDER BY seq",
        )
        .unwrap();
    st.query_map([], |r| {
        Ok(Sent {
            seq: r.get(0)?,
            warmup: r.get(1)?,
            scheduled_ns: r.get(2)?,
            prompt_client: r.get(3)?,
            prompt_usage: r.get(4)?,
            output_usage: r.get(5)?,
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

#[test]
fn arrivals_and_lengths_follow_the_azure_trace_at_the_speed_up() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("azure.csv");
    std::fs::write(&trace, azure_csv()).unwrap();
    let cfg = write_config(
        dir.path(),
        "trace",
        &config(&format!("{{ path: {} }}", trace.display()), "[2]", ""),
    );
    let bundle = run_into(dir.path(), &cfg, "t", &[]);
    let rows = sent(&bundle);
    assert_eq!(rows.len(), ROWS as usize, "the whole trace, once");
    let t0 = rows[0].scheduled_ns;
    for r in &rows {
        let (t, p, o) = row(r.seq as u32);
        let at = (r.scheduled_ns - t0) as f64 * 1e-9;
        assert!(
            (at - t / 2.0).abs() < 1e-6,
            "request {} scheduled at {at} s, traced at {t} s / 2",
            r.seq
        );
        assert_eq!(r.prompt_client, p as i64, "request {}", r.seq);
        assert_eq!(r.prompt_usage, p as i64, "the server counts the same");
        assert_eq!(r.output_usage, o as i64, "request {}", r.seq);
        assert_eq!(r.warmup, r.seq < 2);
    }
    // The level is stored as open loop at the mean offered rate of the
    // measured arrivals: (n − 1) / (last − first).
    let e = &experiments(&bundle)[0];
    assert_eq!(e.label, "sim · t · replay x2");
    let conn = read::open(&bundle).unwrap();
    let (mode, rate, arrival): (String, f64, String) = conn
        .query_row(
            "SELECT load_mode, rate, arrival FROM experiments",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let span = (row(ROWS - 1).0 - row(2).0) / 2.0;
    assert_eq!((mode.as_str(), arrival.as_str()), ("open", "trace"));
    assert!(
        (rate - (ROWS - 3) as f64 / span).abs() < 1e-6,
        "{rate} req/s"
    );
    drop(conn);
    // A rerun finds it complete; another speed is another experiment.
    let again = stdout(&run_ok(&[
        "run",
        cfg.to_str().unwrap(),
        "--out",
        bundle.to_str().unwrap(),
    ]));
    assert!(
        again.contains("0 experiment(s) run, 1 already complete in the bundle"),
        "{again}"
    );
}

#[test]
fn requests_cap_the_replay_and_prompts_can_come_from_the_nearest_jsonl_row() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("azure.csv");
    std::fs::write(&trace, azure_csv()).unwrap();
    // Prompts of 3, 40 and 200 words (the simulator's tokenizer counts words).
    let jsonl = dir.path().join("p.jsonl");
    let words = |n: usize| vec!["word"; n].join(" ");
    std::fs::write(
        &jsonl,
        [3, 40, 200]
            .iter()
            .map(|n| format!("{{\"input\": \"{}\"}}\n", words(*n)))
            .collect::<String>(),
    )
    .unwrap();
    let cfg = write_config(
        dir.path(),
        "trace",
        &config(
            &format!(
                "{{ path: {}, prompts: {{ jsonl: {{ path: {} }} }} }}",
                trace.display(),
                jsonl.display()
            ),
            "[4]",
            "  requests: 20",
        ),
    );
    let bundle = run_into(dir.path(), &cfg, "t", &[]);
    let rows = sent(&bundle);
    assert_eq!(rows.len(), 22, "2 warm-up and 20 measured requests");
    for r in &rows {
        let (_, p, o) = row(r.seq as u32);
        // Nearest of 3, 40 and 200 (the shorter on a tie).
        let want = [3, 40, 200]
            .into_iter()
            .min_by_key(|n: &i64| ((*n - p as i64).abs(), *n))
            .unwrap();
        assert_eq!(r.prompt_client, want, "traced {p} tokens");
        assert_eq!(r.output_usage, o as i64);
    }
}

#[test]
fn the_burstgpt_sample_is_read_with_its_failures_and_models() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let sample = repo.join("datasets/burstgpt-sample.csv");
    let text = std::fs::read_to_string(&sample).unwrap();
    let lines: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let failed = lines.iter().filter(|l| l[3] == "0").count();
    let gpt4 = lines
        .iter()
        .filter(|l| l[1] == "GPT-4" && l[3] != "0")
        .count();
    assert!(failed > 0, "the sample has failed requests to drop");
    let dir = tempfile::tempdir().unwrap();
    let inspect = |trace: &str| {
        let cfg = write_config(dir.path(), "b", &config(trace, "[1]", ""));
        stdout(&run_ok(&["datasets", "inspect", cfg.to_str().unwrap()]))
    };
    let all = inspect(&format!("{{ path: {} }}", sample.display()));
    assert!(all.contains("format:      burstgpt"), "{all}");
    assert!(
        all.contains(&format!("replayed:    {} requests", lines.len() - failed)),
        "{all}"
    );
    let only = inspect(&format!(
        "{{ path: {}, model: GPT-4, format: burstgpt }}",
        sample.display()
    ));
    assert!(
        only.contains(&format!("replayed:    {gpt4} requests")),
        "{only}"
    );
}

#[test]
fn bad_traces_and_replay_without_a_trace_are_refused_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("bad.csv");
    std::fs::write(
        &trace,
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.1,10,5\n2023-11-16 18:15:47.1,many,5\n",
    )
    .unwrap();
    let cfg = write_config(
        dir.path(),
        "bad",
        &config(&format!("{{ path: {} }}", trace.display()), "[1]", ""),
    );
    let o = output(&[
        "run",
        "-q",
        cfg.to_str().unwrap(),
        "--out",
        dir.path().join("x.duckdb").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "{}:3: ContextTokens `many` is not a token count",
            trace.display()
        )),
        "{err}"
    );
    // Replay needs trace datasets; a bad speed and format are refused.
    let cfg = write_config(
        dir.path(),
        "notrace",
        r#"
datasets:
  - name: syn
    synthetic: { prompt_tokens: 8, output_tokens: 4 }
  - name: t
    trace: { path: x.csv, format: csv }
load:
  replay: [0]
"#,
    );
    let o = output(&["validate", cfg.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    for want in [
        "datasets[1].trace.format",
        "`csv` is not a trace format; expected `azure` or `burstgpt`",
        "load.replay[0]",
        "0 is not a speed-up",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    let cfg = write_config(
        dir.path(),
        "notrace2",
        r#"
datasets:
  - name: syn
    synthetic: { prompt_tokens: 8, output_tokens: 4 }
load:
  replay: [1]
"#,
    );
    let err = stderr(&output(&["validate", cfg.to_str().unwrap()]));
    assert!(
        err.contains("load.replay") && err.contains("dataset `syn` (datasets[0]) is not a trace"),
        "{err}"
    );
}
