//! Secrets never enter a bundle, a log or a report: every kind of secret
//! (credentials inside URLs, secret query parameters, API keys from the
//! environment, header values, `--set` values, a key a server echoes back) is
//! searched for in every output of every command.

use super::common::*;
use super::fake::{self, Fake};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const SECRETS: [&str; 7] = [
    "hunter2pw",          // password in base_url
    "QUERYSECRET",        // ?api-key= in base_url
    "sk-ENVSECRET-12345", // API key from the environment
    "HEADERSECRET",       // header value
    "REFUSEDSECRET",      // password in the URL of a server that is down
    "SETSECRET",          // password given with --set
    "SIGSECRET",          // &sig= of a signed URL
];

fn scan(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} leaks `{s}`:\n{text}");
    }
}

fn scan_output(what: &str, o: &std::process::Output) {
    scan(&format!("{what} (stdout)"), &stdout(o));
    scan(&format!("{what} (stderr)"), &stderr(o));
}

/// The first column of every row of `sql`, as text.
fn strings(conn: &duckdb::Connection, sql: &str) -> Vec<String> {
    let mut st = conn.prepare(sql).unwrap();
    let v = st
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    v
}

/// Every table of the bundle, row by row as text, and its raw bytes.
fn scan_bundle(path: &Path) {
    let conn = duckdb::Connection::open_with_flags(
        path,
        duckdb::Config::default()
            .access_mode(duckdb::AccessMode::ReadOnly)
            .unwrap(),
    )
    .unwrap();
    let tables = strings(
        &conn,
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()",
    );
    assert!(tables.len() >= 9, "{tables:?}");
    for t in tables {
        let rows = strings(&conn, &format!("SELECT CAST(t AS VARCHAR) FROM {t} AS t"));
        scan(&format!("bundle table {t}"), &rows.join("\n"));
    }
    drop(conn);
    scan(
        "bundle file bytes",
        &String::from_utf8_lossy(&std::fs::read(path).unwrap()),
    );
}

fn scan_dir(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            scan_dir(&p);
        } else {
            scan(
                &p.display().to_string(),
                &String::from_utf8_lossy(&std::fs::read(&p).unwrap()),
            );
        }
    }
}

#[test]
fn secrets_never_leak_into_any_output() {
    // A server that works, but answers every third request with an error
    // that echoes the credential it was sent (as some gateways do): here the
    // URL's user-info, which the client sends as Basic auth.
    let n = Arc::new(AtomicUsize::new(0));
    let server = {
        let n = n.clone();
        Fake::start(move |r| {
            if r.method == "GET" {
                return fake::json(200, r#"{"data":[{"id":"m"}]}"#);
            }
            if n.fetch_add(1, Ordering::SeqCst) % 3 == 2 {
                let key = r.header("authorization").unwrap_or("");
                return fake::json(
                    401,
                    &format!(r#"{{"error":{{"message":"Incorrect API key provided: {key}"}}}}"#),
                );
            }
            fake::chat_stream_ok(4)
        })
    };
    let port = server.addr.port();
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"name: secrets
endpoints:
  - name: gateway
    provider: openai
    base_url: "http://admin:hunter2pw@127.0.0.1:{port}/v1?api-key=QUERYSECRET&sig=SIGSECRET"
    model: m
    instance_type: g5.xlarge
    api_key_env: SECRET_TEST_KEY
    headers: {{ X-Api-Token: HEADERSECRET }}
  - name: down
    provider: openai
    base_url: "http://admin:REFUSEDSECRET@127.0.0.1:1/v1"
    model: m
datasets:
  - name: d
    synthetic: {{ prompt_tokens: 8, output_tokens: 4 }}
load: {{ concurrency: [1, 2], requests: 6 }}
pricing: {{ file: "{}/../configs/pricing.yml" }}
budgets: {{ e2e_p95_ms: 5000 }}
"#,
        env!("CARGO_MANIFEST_DIR")
    );
    let cfg = write_config(dir.path(), "secrets", &yaml);
    let bundle = dir.path().join("secrets.duckdb");
    let h = |args: &[&str]| {
        harness()
            .env("SECRET_TEST_KEY", "sk-ENVSECRET-12345")
            .args(args)
            .output()
            .unwrap()
    };
    let (c, b) = (cfg.to_str().unwrap(), bundle.to_str().unwrap());

    let o = h(&["validate", c, "--show-settings"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("http://****@127.0.0.1"),
        "{}",
        stdout(&o)
    );
    scan_output("validate --show-settings", &o);

    // With preflight (the server that is down is skipped, its URL in the message),
    // with progress output, and a --set carrying a credential.
    let set = "endpoints[1].base_url=http://root:SETSECRET@127.0.0.1:1/v1";
    let o = h(&["run", c, "--out", b, "--set", set]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("http://****@127.0.0.1:1/v1"),
        "{}",
        stderr(&o)
    );
    scan_output("run", &o);
    // Without preflight: every request to the server that is down fails with
    // a transport error that names its URL; the gateway echoes the key.
    let o = h(&["run", "-q", c, "--out", b, "--no-preflight", "--force"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    scan_output("run --no-preflight", &o);
    let conn = harness::bundle::read::open(&bundle).unwrap();
    let echoed: i64 = conn
        .query_row(
            "SELECT count(*) FROM requests WHERE error_message LIKE '%Incorrect API key provided: Basic ****%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let all = strings(
        &conn,
        "SELECT DISTINCT coalesce(error_message, '') FROM requests",
    );
    assert!(
        echoed > 0,
        "the gateway's echo is recorded, masked: {all:?}"
    );
    let refused: String = conn
        .query_row(
            "SELECT any_value(error_message) FROM requests r JOIN experiments e USING (experiment_id) WHERE e.endpoint = 'down'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(refused.contains("127.0.0.1:1"), "{refused}");
    drop(conn);
    scan_bundle(&bundle);

    for args in [
        vec!["show", b],
        vec!["show", b, "--json"],
        vec!["plan", b, "--rpm", "60"],
        vec!["diff", b, b],
        vec!["diff", b, b, "--format", "json"],
    ] {
        let o = h(&args);
        scan_output(&args.join(" "), &o);
    }
    let report = dir.path().join("report");
    let o = h(&["report", b, "--out", report.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    scan_output("report", &o);
    scan_dir(&report);
    let merged = dir.path().join("merged.duckdb");
    let o = h(&["merge", b, b, "-o", merged.to_str().unwrap()]);
    scan_output("merge", &o);
    if merged.exists() {
        scan_bundle(&merged);
    }
}
