//! Faults from field reports against other LLM benchmark tools, each against
//! a fake server that misbehaves at the HTTP level (`fake.rs`). Each test is
//! named after the fault it guards.

use super::common::*;
use super::fake::{self, Fake};
use harness::bundle::read;
use harness_core::Metric;

/// One endpoint per case, told apart by the model name the fake server sees.
fn endpoints(fake: &Fake, cases: &[(&str, &str, bool)]) -> String {
    let mut s = String::from("endpoints:\n");
    for (model, api, stream) in cases {
        s += &format!(
            "  - {{ name: {model}, provider: openai, base_url: \"{}\", model: {model}, api: {api}, stream: {stream} }}\n",
            fake.base_url()
        );
    }
    s
}

const SMALL: &str = "datasets:\n  - name: d\n    synthetic: { prompt_tokens: 8, output_tokens: 4 }\nload: { concurrency: [1], requests: 3 }\n";

/// Responses a server ended without a normal completion, by model name.
fn unfinished(model: &str) -> Vec<u8> {
    match model {
        "no-choices" => fake::json(200, r#"{"object":"chat.completion","choices":[]}"#),
        "empty-object" => fake::json(200, "{}"),
        "no-content" => fake::json(
            200,
            r#"{"choices":[{"index":0,"message":{"role":"assistant","content":""},"finish_reason":"stop"}]}"#,
        ),
        "null-content" => fake::json(
            200,
            r#"{"choices":[{"index":0,"message":{"role":"assistant","content":null},"finish_reason":"stop"}]}"#,
        ),
        "no-finish" => fake::json(
            200,
            r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"hi there"}}]}"#,
        ),
        "aborted" => fake::json(
            200,
            r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"abort"}]}"#,
        ),
        "completions-empty" => fake::json(
            200,
            r#"{"choices":[{"index":0,"text":"","finish_reason":"stop"}]}"#,
        ),
        "stream-no-content" => fake::sse(&[
            r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
            "[DONE]",
        ]),
        "stream-aborted" => fake::sse(&[
            r#"{"choices":[{"delta":{"content":"hi"}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"abort"}]}"#,
            "[DONE]",
        ]),
        "stream-json-body" => fake::json(200, &fake::chat_ok(4)),
        other => panic!("no case {other}"),
    }
}

#[test]
fn responses_that_did_not_complete_are_not_successes() {
    let fake = Fake::start(|r| unfinished(r.json()["model"].as_str().unwrap_or("")));
    let cases = [
        ("no-choices", "chat", false, "empty_response"),
        ("empty-object", "chat", false, "empty_response"),
        ("no-content", "chat", false, "empty_response"),
        ("null-content", "chat", false, "empty_response"),
        ("no-finish", "chat", false, "incomplete_response"),
        ("aborted", "chat", false, "abnormal_finish"),
        ("completions-empty", "completions", false, "empty_response"),
        ("stream-no-content", "chat", true, "empty_response"),
        ("stream-aborted", "chat", true, "abnormal_finish"),
        ("stream-json-body", "chat", true, "not_streamed"),
    ];
    let eps: Vec<(&str, &str, bool)> = cases.iter().map(|c| (c.0, c.1, c.2)).collect();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "unfinished",
        &format!("name: unfinished\n{}{SMALL}", endpoints(&fake, &eps)),
    );
    let out = dir.path().join("u.duckdb");
    let o = run_cmd(&cfg, &out, &["--no-preflight"]).output().unwrap();
    // Every request failed: each experiment is `failed` and the run says so.
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    for (model, _, _, class) in cases {
        let e = experiments(&out)
            .into_iter()
            .find(|e| e.endpoint == model)
            .unwrap();
        let s = &e.summary;
        assert_eq!(
            (s.requests_ok, s.requests_failed),
            (0, 3),
            "{model}: {:?}",
            s.errors_by_class
        );
        assert_eq!(
            s.errors_by_class.get(class),
            Some(&3),
            "{model}: {:?}",
            s.errors_by_class
        );
        assert_eq!(e.status, "failed", "{model}");
        assert!(
            e.status_reason
                .as_deref()
                .unwrap()
                .contains(&format!("{class}×3")),
            "{model}: {:?}",
            e.status_reason
        );
        // No latency sample and no throughput from a response that did not complete.
        assert_eq!(s.request_throughput, 0.0, "{model}");
        for m in [Metric::E2e, Metric::Ttft, Metric::Tpot, Metric::Itl] {
            assert!(s.dist(m).is_none(), "{model}: {m:?} has samples");
        }
    }
    assert!(stdout(&o).contains("FAILED: experiment"), "{}", stdout(&o));
}

const STREAM_AND_NOT: &str = r#"
name: s
endpoints:
  - { name: streaming, provider: sim, instance_type: g5.xlarge, stream: true, sim: { ttft_ms: 40, itl_ms: 20 } }
  - { name: unstreamed, provider: sim, instance_type: g6e.2xlarge, stream: false, sim: { ttft_ms: 40, itl_ms: 20 } }
datasets:
  - name: d
    synthetic: { prompt_tokens: 16, output_tokens: 8 }
load: { concurrency: [1], requests: 6 }
sampling: { ignore_eos: true }
pricing: { instance_hourly: { g5.xlarge: 1.0, g6e.2xlarge: 0.5 } }
"#;

#[test]
fn unstreamed_responses_have_no_per_token_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "s", STREAM_AND_NOT);
    let bundle = run_into(dir.path(), &cfg, "s", &[]);
    let exps = experiments(&bundle);
    let unstreamed = exps.iter().find(|e| e.endpoint == "unstreamed").unwrap();
    let streaming = exps.iter().find(|e| e.endpoint == "streaming").unwrap();
    assert_eq!(unstreamed.summary.requests_ok, 6);
    for m in Metric::ALL {
        let n = unstreamed.summary.dist(m).map(|d| d.count).unwrap_or(0);
        if m.needs_stream() {
            assert_eq!(n, 0, "{m:?} invented for a response that was not streamed");
        } else if m != Metric::DispatchLag {
            assert_eq!(n, 6, "{m:?}");
        }
        assert!(streaming.summary.dist(m).is_some(), "{m:?}");
    }
    let conn = read::open(&bundle).unwrap();
    let (firsts, chunks): (i64, i64) = conn
        .query_row(
            "SELECT count(first_token_ns), sum(len(token_chunk_ns)) FROM requests r JOIN experiments e USING (experiment_id) WHERE e.endpoint = 'unstreamed'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((firsts, chunks), (0, 0));

    // A TPOT budget: the cheaper unstreamed endpoint is not measured, which
    // fails the criterion with its reason; the streaming one fails at ~20 ms.
    let out = dir.path().join("report");
    run_ok(&[
        "report",
        bundle.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--latency",
        "tpot.p95=10",
        "--rpm",
        "60",
    ]);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let w = &json["analysis"]["workloads"][0];
    assert!(
        w["best"].is_null(),
        "nothing passes a TPOT budget of 10 ms: {w}"
    );
    let failed = w["rejected"].to_string();
    assert!(
        failed.contains("tpot.p95 not measured: the endpoint does not stream"),
        "{failed}"
    );
    assert!(
        failed.contains("tpot.p95 2"),
        "the streaming one measures ~20 ms: {failed}"
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("tpot.p95 not measured: the endpoint does not stream"));

    // plan: the same verdict, and exit 1 (no configuration meets the budget).
    let o = output(&[
        "plan",
        bundle.to_str().unwrap(),
        "--rpm",
        "60",
        "--latency",
        "tpot.p95=10",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("tpot.p95 not measured: the endpoint does not stream"),
        "{text}"
    );
    assert!(!text.contains("BEST CHOICE"), "{text}");

    // Within an e2e budget both are measured and the cheaper one wins.
    let o = run_ok(&[
        "plan",
        bundle.to_str().unwrap(),
        "--rpm",
        "60",
        "--latency",
        "e2e.p95=5000",
    ]);
    assert!(
        stdout(&o).contains("Answer: 1 x g6e.2xlarge"),
        "{}",
        stdout(&o)
    );
}

/// The OpenAI chat fields a gateway that rejects unknown fields accepts.
const OPENAI_CHAT_FIELDS: [&str; 9] = [
    "model",
    "messages",
    "max_tokens",
    "temperature",
    "top_p",
    "stream",
    "stream_options",
    "n",
    "stop",
];

#[test]
fn request_bodies_hold_only_openai_fields_by_default() {
    // A strict gateway: HTTP 400 naming the first field it does not know.
    let strict = Fake::start(|r| {
        if r.method == "GET" {
            return fake::json(200, r#"{"data":[{"id":"m"}]}"#);
        }
        let body = r.json();
        let unknown: Vec<&String> = body
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| !OPENAI_CHAT_FIELDS.contains(&k.as_str()))
            .collect();
        match unknown.first() {
            Some(k) => fake::json(
                400,
                &format!(
                    r#"{{"error":{{"message":"Unrecognized request argument supplied: {k}"}}}}"#
                ),
            ),
            None => fake::chat_stream_ok(4),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "name: body\nendpoints:\n  - {{ name: gw, provider: openai, base_url: \"{}\", model: m }}\n{SMALL}sampling: {{ temperature: 0.0 }}\n",
        strict.base_url()
    );
    let cfg = write_config(dir.path(), "body", &yaml);
    let bundle = run_into(dir.path(), &cfg, "body", &[]);
    let e = &experiments(&bundle)[0];
    assert_eq!((e.status.as_str(), e.summary.requests_ok), ("complete", 3));
    let sent = strict.posts();
    assert!(sent.len() >= 3);
    for r in &sent {
        let b = r.json();
        assert!(b.get("ignore_eos").is_none(), "{b}");
        assert_eq!(b["stream_options"]["include_usage"], true);
    }

    // validate --show-settings prints the exact body that is sent.
    let o = run_ok(&["validate", cfg.to_str().unwrap(), "--show-settings"]);
    let text = stdout(&o);
    let body = text
        .split_once("# Request body")
        .map(|x| x.1)
        .unwrap_or_else(|| panic!("{text}"));
    assert!(body.contains("\"temperature\": 0.0"), "{body}");
    assert!(body.contains("\"include_usage\": true"), "{body}");
    assert!(!body.contains("ignore_eos"), "{body}");

    // ignore_eos and extra_body are sent when asked for; a rejection names the
    // config key that sent the field, in the bundle and in the preflight message.
    let with = yaml.replace(
        "sampling: { temperature: 0.0 }",
        "sampling: { temperature: 0.0, ignore_eos: true }",
    );
    let cfg = write_config(dir.path(), "eos", &with);
    let o = run_cmd(&cfg, &dir.path().join("eos.duckdb"), &[])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("because of `sampling.ignore_eos: true` in the config"),
        "{}",
        stderr(&o)
    );
    let o = run_cmd(&cfg, &dir.path().join("eos2.duckdb"), &["--no-preflight"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    let conn = read::open(&dir.path().join("eos2.duckdb")).unwrap();
    let msg: String = conn
        .query_row("SELECT any_value(error_message) FROM requests", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(
        msg.contains("ignore_eos") && msg.contains("`sampling.ignore_eos: true`"),
        "{msg}"
    );

    let extra = yaml.replace(
        "model: m }",
        "model: m, extra_body: { top_k: 20, repetition_penalty: 1.1 } }",
    );
    let cfg = write_config(dir.path(), "extra", &extra);
    let o = run_cmd(&cfg, &dir.path().join("extra.duckdb"), &["--no-preflight"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    let last = strict.posts().pop().unwrap().json();
    assert_eq!(
        (last["top_k"].clone(), last["repetition_penalty"].clone()),
        (serde_json::json!(20), serde_json::json!(1.1))
    );
    let conn = read::open(&dir.path().join("extra.duckdb")).unwrap();
    let msg: String = conn
        .query_row("SELECT any_value(error_message) FROM requests", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(msg.contains("`endpoints[0].extra_body."), "{msg}");
}

#[test]
fn extra_body_cannot_override_what_the_harness_sets() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "x",
        "endpoints:\n  - name: x\n    provider: openai\n    base_url: http://127.0.0.1:1/v1\n    model: m\n    extra_body: { stream: false, max_tokens: 5 }\n",
    );
    let o = harness().arg("validate").arg(&cfg).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("x.yml:6:")
            && err.contains("endpoints[0].extra_body.stream: `stream` is set by the harness"),
        "{err}"
    );
    assert!(
        err.contains("endpoints[0].extra_body.max_tokens: set `sampling.max_tokens` instead"),
        "{err}"
    );
}

/// A server (uvicorn, as under vLLM) may write the chunked body's terminator
/// after `[DONE]`, in a later read. Dropping the body at `[DONE]` closed the
/// connection, so every request opened a new one and paid its handshake
/// inside TTFT; the client now reads to the terminator and reuses it.
#[test]
fn connection_is_reused_when_the_body_ends_after_done() {
    let fake = Fake::start(|_| fake::chat_stream_chunked_late_end(3));
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "reuse",
        &format!(
            "name: reuse\n{}datasets:\n  - name: d\n    synthetic: {{ prompt_tokens: 8, output_tokens: 3 }}\nload: {{ concurrency: [1], requests: 12, warmup: {{ requests: 0 }} }}\n",
            endpoints(&fake, &[("m", "chat", true)])
        ),
    );
    let out = dir.path().join("r.duckdb");
    let o = run_cmd(&cfg, &out, &["--no-preflight"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let s = &experiments(&out)[0].summary;
    assert_eq!((s.requests_ok, s.requests_failed), (12, 0));
    // Before: 12 connections for 12 requests. After: 1 to 3 in 12 runs;
    // hyper's pool may still start a connection while the idle one is on
    // its way back, hence the margin.
    let seq: Vec<usize> = fake.posts().iter().map(|r| r.connection).collect();
    let distinct: std::collections::BTreeSet<&usize> = seq.iter().collect();
    assert!(distinct.len() <= 6, "a connection per request: {seq:?}");
}
