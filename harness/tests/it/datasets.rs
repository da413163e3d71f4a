//! JSONL datasets: bad input names the file and line, and nothing is written.

use super::common::*;

fn config(jsonl: &std::path::Path) -> String {
    format!(
        r#"
name: ds
endpoints:
  - name: s
    provider: sim
    sim: {{ ttft_ms: 1, itl_ms: 1 }}
datasets:
  - name: qa
    jsonl: {{ path: "{}", template: "{{context}} Q: {{input}}" }}
    buckets: [1, 10, 100]
    output_tokens: 4
load: {{ concurrency: [1], requests: 3 }}
"#,
        jsonl.display()
    )
}

fn run_with(jsonl_text: &str) -> (bool, i32, String, bool) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.jsonl");
    std::fs::write(&data, jsonl_text).unwrap();
    let cfg = write_config(dir.path(), "ds", &config(&data));
    let out = dir.path().join("out.duckdb");
    let o = harness()
        .args([
            "run",
            "-q",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    (
        o.status.success(),
        o.status.code().unwrap_or(-1),
        stderr(&o),
        out.exists(),
    )
}

#[test]
fn malformed_line_names_file_and_line() {
    let (ok, code, err, written) =
        run_with("{\"input\": \"a\", \"context\": \"b\"}\n{\"input\": oops}\n");
    assert!(!ok && code == 2, "{err}");
    assert!(err.contains("data.jsonl:2: not valid JSON"), "{err}");
    assert!(!written, "nothing is written");
}

#[test]
fn missing_key_names_file_line_and_key() {
    let (ok, _, err, written) =
        run_with("{\"input\": \"a\", \"context\": \"b\"}\n\n{\"input\": \"c\"}\n");
    assert!(!ok);
    assert!(
        err.contains("data.jsonl:3: missing key `context` (the row has: input)"),
        "{err}"
    );
    assert!(!written);
}

#[test]
fn empty_file_is_an_error() {
    let (ok, _, err, written) = run_with("");
    assert!(!ok);
    assert!(err.contains("data.jsonl: the dataset has no rows"), "{err}");
    assert!(!written);
}

#[test]
fn rows_are_bucketed_and_carded() {
    let rows = [
        r#"{"input": "q1", "context": "one two", "answers": ["x"]}"#, // 4 words with template: bucket 1-10
        r#"{"input": "q2", "context": "a b c d e f g h i j k l"}"#,   // 15: bucket 10-100
        r#"{"input": "q3", "context": ""}"#,                          // 2 words: bucket 1-10
    ];
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.jsonl");
    std::fs::write(&data, rows.join("\n")).unwrap();
    let cfg = write_config(dir.path(), "ds", &config(&data));
    let card = stdout(&run_ok(&["datasets", "inspect", cfg.to_str().unwrap()]));
    assert!(
        card.contains("1-10  2 rows") && card.contains("10-100  1 rows"),
        "{card}"
    );
    assert!(card.contains("3 total, 0 dropped"), "{card}");
    let out = run_into(dir.path(), &cfg, "out", &[]);
    let exps = experiments(&out);
    assert_eq!(exps.len(), 2, "one experiment per non-empty bucket");
    let conn = harness::bundle::read::open(&out).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM dataset_rows WHERE answers IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1, "ground-truth answers are kept");
    // The words tokenizer is the simulator's: counts agree, no mismatch.
    assert!(exps
        .iter()
        .all(|e| !e.summary.token_mismatch() && e.summary.prompt_token_discrepancy == Some(0.0)));
}
