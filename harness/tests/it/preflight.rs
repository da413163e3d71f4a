//! Preflight: one request per endpoint before its experiments. A server that
//! is down, a wrong model, a missing key, a body that is not JSON or a server
//! that does not stream is reported once with the fix, its experiments are
//! skipped and recorded as such, the other endpoints run, and the exit code
//! is 3. Each case against a fake server that misbehaves at the HTTP level.

use super::common::*;
use super::fake::{self, Captured, Fake};
use harness::bundle::read;

/// A server that serves model `served` (streamed or not) to key `right`.
fn server(r: &Captured) -> Vec<u8> {
    if r.method == "GET" && r.path.ends_with("/models") {
        return fake::json(200, r#"{"data":[{"id":"served"},{"id":"other"}]}"#);
    }
    if r.header("authorization") != Some("Bearer right") {
        return fake::json(401, r#"{"error":{"message":"Invalid API key"}}"#);
    }
    let b = r.json();
    if b["model"] != "served" {
        return fake::json(
            404,
            &format!(
                r#"{{"error":{{"message":"The model `{}` does not exist."}}}}"#,
                b["model"].as_str().unwrap_or("")
            ),
        );
    }
    if b["stream"] == true {
        fake::chat_stream_ok(4)
    } else {
        fake::json(200, &fake::chat_ok(4))
    }
}

struct Case {
    name: &'static str,
    /// The endpoint's YAML after `name` and `provider`; `URL` is replaced.
    endpoint: &'static str,
    /// Env var → value for the run.
    env: &'static [(&'static str, &'static str)],
    message: &'static str,
    http_status: Option<i16>,
    error_class: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "refused",
        endpoint: "base_url: \"http://127.0.0.1:1/v1\", model: served",
        env: &[],
        message: "connection refused at 127.0.0.1:1: is the server running?",
        http_status: None,
        error_class: "connect",
    },
    Case {
        name: "wrong-model",
        endpoint: "base_url: \"URL\", model: llama-3, api_key_env: KEY_OK",
        env: &[("KEY_OK", "right")],
        message: "HTTP 404 for model `llama-3`: the server lists `served`, `other` at /v1/models",
        http_status: Some(404),
        error_class: "http_4xx",
    },
    Case {
        name: "no-key",
        endpoint: "base_url: \"URL\", model: served",
        env: &[],
        message: "HTTP 401 from URL/chat/completions: the server wants an API key: set OPENAI_API_KEY and add `api_key_env: OPENAI_API_KEY` to endpoint `no-key`",
        http_status: Some(401),
        error_class: "http_4xx",
    },
    Case {
        name: "bad-key",
        endpoint: "base_url: \"URL\", model: served, api_key_env: KEY_BAD",
        env: &[("KEY_BAD", "wrong")],
        message: "the server refused the key in $KEY_BAD (api_key_env): check it",
        http_status: Some(401),
        error_class: "http_4xx",
    },
    Case {
        name: "not-json",
        endpoint: "base_url: \"HTML\", model: served, stream: false",
        env: &[],
        message: "but the body is not JSON (expected value at line 1 column 1): <html><body>Welcome to nginx!</body></html>: is base_url the server's OpenAI API root",
        http_status: Some(200),
        error_class: "malformed_response",
    },
    Case {
        name: "not-json-streamed",
        endpoint: "base_url: \"HTML\", model: served, stream: true",
        env: &[],
        message: "but the body is not JSON (expected value at line 1 column 1): <html><body>Welcome to nginx!</body></html>: is base_url the server's OpenAI API root",
        http_status: Some(200),
        error_class: "malformed_response",
    },
    Case {
        name: "does-not-stream",
        endpoint: "base_url: \"UNSTREAMED\", model: served, stream: true",
        env: &[],
        message: "answered with one JSON body, not a stream: set `stream: false` for endpoint `does-not-stream`",
        http_status: Some(200),
        error_class: "not_streamed",
    },
];

fn config(c: &Case, urls: &[(&str, String)], with_good: Option<&str>) -> String {
    let mut ep = c.endpoint.to_string();
    for (k, v) in urls {
        ep = ep.replace(k, v);
    }
    let mut s = format!(
        "name: pf\nendpoints:\n  - {{ name: {}, provider: openai, {ep} }}\n",
        c.name
    );
    if let Some(url) = with_good {
        s += &format!("  - {{ name: good, provider: openai, base_url: \"{url}\", model: served, api_key_env: KEY_OK }}\n");
    }
    s + "datasets:\n  - name: d\n    synthetic: { prompt_tokens: 8, output_tokens: 4 }\nload: { concurrency: [1, 2], requests: 4 }\n"
}

#[test]
fn a_failed_preflight_names_the_fix_skips_the_endpoint_and_exits_3() {
    let good = Fake::start(server);
    let html = Fake::start(|_| {
        fake::response(
            200,
            "text/html",
            "<html><body>Welcome to nginx!</body></html>",
        )
    });
    let unstreamed = Fake::start(|_| fake::json(200, &fake::chat_ok(4)));
    let urls = [
        ("URL", good.base_url()),
        ("HTML", html.base_url()),
        ("UNSTREAMED", unstreamed.base_url()),
    ];
    let dir = tempfile::tempdir().unwrap();
    for c in CASES {
        let cfg = write_config(dir.path(), c.name, &config(c, &urls, None));
        let out = dir.path().join(format!("{}.duckdb", c.name));
        let mut cmd = run_cmd(&cfg, &out, &[]);
        for (k, v) in c.env {
            cmd.env(k, v);
        }
        let o = cmd.output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{}: {err}", c.name);
        let message = c.message.replace("URL", &good.base_url());
        assert!(
            err.contains(&format!("error: endpoint `{}` (", c.name)) && err.contains(&message),
            "{}: wanted `{message}` in:\n{err}",
            c.name
        );
        // The skip, with its reason, for every experiment of the endpoint.
        let exps = experiments(&out);
        assert_eq!(exps.len(), 2, "{}", c.name);
        for e in &exps {
            assert_eq!(e.status, "skipped", "{}", c.name);
            let reason = e.status_reason.as_deref().unwrap();
            assert!(
                reason.starts_with("skipped: preflight failed: ") && reason.contains(&message),
                "{}: {reason}",
                c.name
            );
        }
        // The preflight row.
        let conn = read::open(&out).unwrap();
        let (ok, status, class, msg, url): (bool, Option<i16>, String, String, String) = conn
            .query_row(
                "SELECT ok, http_status, error_class, message, url FROM preflights",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert!(!ok, "{}", c.name);
        assert_eq!(status, c.http_status, "{}", c.name);
        assert_eq!(class, c.error_class, "{}", c.name);
        assert!(msg.contains(&message), "{}: {msg}", c.name);
        assert!(url.ends_with("/chat/completions"), "{url}");
        let (run_status, run_reason): (String, String) = conn
            .query_row("SELECT status, status_reason FROM runs", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(run_status, "failed");
        assert!(run_reason.contains(&format!("endpoint `{}` failed preflight", c.name)));
        // No request of the experiments was sent: only the preflight's.
        let requests: i64 = conn
            .query_row("SELECT count(*) FROM requests", [], |r| r.get(0))
            .unwrap();
        assert_eq!(requests, 0);
    }
}

#[test]
fn a_good_endpoint_runs_fully_beside_a_bad_one() {
    let good = Fake::start(server);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "mixed",
        &config(&CASES[0], &[], Some(&good.base_url())),
    );
    let out = dir.path().join("mixed.duckdb");
    let o = run_cmd(&cfg, &out, &[])
        .env("KEY_OK", "right")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let exps = experiments(&out);
    let good_exps: Vec<_> = exps.iter().filter(|e| e.endpoint == "good").collect();
    assert_eq!(good_exps.len(), 2);
    for e in good_exps {
        assert_eq!(e.status, "complete");
        assert_eq!((e.summary.requests_ok, e.summary.requests_failed), (4, 0));
    }
    let conn = read::open(&out).unwrap();
    let (ok, latency): (bool, Option<f64>) = conn
        .query_row(
            "SELECT ok, latency_ms FROM preflights WHERE endpoint = 'good'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(ok && latency.is_some_and(|l| l > 0.0));
    drop(conn);
    let s = stdout(&o);
    assert!(s.contains("not run, preflight failed"), "{s}");
    assert!(
        s.contains("FAILED: endpoint `refused` failed preflight"),
        "{s}"
    );
    // A rerun does not redo the complete ones, and checks the bad one again.
    let o = run_cmd(&cfg, &out, &[])
        .env("KEY_OK", "right")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stdout(&o).contains(
            "0 experiment(s) run, 2 already complete in the bundle, 2 not run (a failed preflight)"
        ),
        "{}\n{}",
        stdout(&o),
        stderr(&o)
    );
}

#[test]
fn without_preflight_every_request_fails_and_the_experiment_is_failed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "np", &config(&CASES[0], &[], None));
    let out = dir.path().join("np.duckdb");
    let o = run_cmd(&cfg, &out, &["--no-preflight"]).output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    for e in experiments(&out) {
        assert_eq!(e.status, "failed");
        assert_eq!(
            e.status_reason.as_deref(),
            Some("every measured request failed (connect×4)")
        );
    }
    assert!(stdout(&o).contains("failed [connect×4]"), "{}", stdout(&o));
    // Failed experiments are not complete: a rerun runs them again.
    let o = run_cmd(&cfg, &out, &["--no-preflight"]).output().unwrap();
    assert!(stdout(&o).contains("2 experiment(s) run"), "{}", stdout(&o));
}

#[test]
fn an_error_rate_over_budget_is_flagged_not_failed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "errs",
        "name: errs\nseed: 5\nendpoints:\n  - { name: flaky, provider: sim, sim: { ttft_ms: 2, itl_ms: 1, error_rate: 0.3 } }\ndatasets:\n  - name: d\n    synthetic: { prompt_tokens: 8, output_tokens: 4 }\nload: { concurrency: [2], requests: 40 }\nbudgets: { error_rate: 0.01 }\n",
    );
    let o = run_cmd(&cfg, &dir.path().join("errs.duckdb"), &[])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let s = stdout(&o);
    let line = s.lines().find(|l| l.starts_with("flaky")).unwrap();
    assert!(
        line.contains("complete [http_5xx×") && line.contains("% > budget 1.0%"),
        "{line}"
    );
    // `show` flags it the same way, from the bundle's budget.
    let o = run_ok(&["show", dir.path().join("errs.duckdb").to_str().unwrap()]);
    assert!(stdout(&o).contains("% > budget 1.0%"), "{}", stdout(&o));
}
