//! `harness merge`: bundles combine without loss, each run keeps its
//! provenance, and results of the same experiment from different runs are
//! never silently dropped.

use super::common::*;

fn cfg(endpoint: &str, ttft: u32) -> String {
    format!(
        r#"
name: m-{endpoint}
endpoints:
  - name: {endpoint}
    provider: sim
    instance_type: g5.xlarge
    sim: {{ ttft_ms: {ttft}, itl_ms: 2 }}
datasets:
  - name: d
    synthetic: {{ prompt_tokens: 16, output_tokens: 4 }}
load: {{ concurrency: [1, 2], requests: 6 }}
"#
    )
}

fn count(bundle: &std::path::Path, sql: &str) -> i64 {
    let c = harness::bundle::read::open(bundle).unwrap();
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn merge_keeps_every_run_and_refuses_silent_loss() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = run_into(d, &write_config(d, "a", &cfg("a", 10)), "a", &[]);
    let b = run_into(d, &write_config(d, "b", &cfg("b", 20)), "b", &[]);
    let merged = d.join("ab.duckdb");
    run_ok(&[
        "merge",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "-o",
        merged.to_str().unwrap(),
    ]);

    let (ea, eb, em) = (experiments(&a), experiments(&b), experiments(&merged));
    assert_eq!(em.len(), ea.len() + eb.len());
    for e in ea.iter().chain(&eb) {
        let m = em
            .iter()
            .find(|m| m.experiment_id == e.experiment_id)
            .unwrap();
        assert_eq!(m.run_id, e.run_id, "provenance per run");
        assert_eq!(m.summary.distributions, e.summary.distributions);
        assert_eq!(m.costed, e.costed);
    }
    // A run writes each experiment's ECDF groups; the merge copies them.
    let measured = "SELECT count(*) FROM requests WHERE NOT warmup AND status = 'ok'";
    let grouped = "SELECT sum(c)::BIGINT FROM ecdf WHERE metric = 'e2e'";
    assert!(count(&a, measured) > 0);
    assert_eq!(count(&a, grouped), count(&a, measured));
    for t in ["requests", "distributions", "ecdf", "dataset_rows"] {
        let sql = format!("SELECT count(*) FROM {t}");
        assert_eq!(
            count(&merged, &sql),
            count(&a, &sql) + count(&b, &sql),
            "{t}"
        );
    }
    assert_eq!(count(&merged, "SELECT count(*) FROM runs"), 2);
    // Arrays of chunk times survive the copy.
    let chunks = "SELECT sum(len(token_chunk_ns)) FROM requests";
    assert_eq!(
        count(&merged, chunks),
        count(&a, chunks) + count(&b, chunks)
    );
    let meta: String = harness::bundle::read::open(&merged)
        .unwrap()
        .query_row(
            "SELECT value FROM meta WHERE key = 'merged_from'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        meta.contains("\"a.duckdb\"") && meta.contains("\"b.duckdb\""),
        "{meta}"
    );

    // A run that recorded nothing (a shard refused at its barrier leaves one)
    // is left out with a note, not shown as a failed run of the merge.
    let refused = d.join("refused.duckdb");
    std::fs::copy(&b, &refused).unwrap();
    duckdb::Connection::open(&refused)
        .unwrap()
        .execute_batch(
            "INSERT INTO runs SELECT * REPLACE ('r-refused' AS run_id, 'failed' AS status, 'stopped on an error: --barrier' AS status_reason) FROM runs LIMIT 1",
        )
        .unwrap();
    let merged2 = d.join("ab2.duckdb");
    let o = run_ok(&[
        "merge",
        a.to_str().unwrap(),
        refused.to_str().unwrap(),
        "-o",
        merged2.to_str().unwrap(),
    ]);
    assert!(
        stderr(&o).contains("note: run r-refused of")
            && stderr(&o).contains("(failed: stopped on an error: --barrier); left out"),
        "{}",
        stderr(&o)
    );
    assert_eq!(count(&merged2, "SELECT count(*) FROM runs"), 2);
    assert_eq!(experiments(&merged2).len(), em.len());
    assert_eq!(
        count(
            &merged2,
            "SELECT count(*) FROM meta WHERE key = 'merged_from' AND value LIKE '%\"runs_left_out\":[\"r-refused\"]%'"
        ),
        1
    );

    // Merging a bundle with itself duplicates nothing.
    let twice = d.join("aa.duckdb");
    run_ok(&[
        "merge",
        a.to_str().unwrap(),
        a.to_str().unwrap(),
        "-o",
        twice.to_str().unwrap(),
    ]);
    assert_eq!(experiments(&twice).len(), ea.len());

    // The same experiments measured again in another run: refused by default...
    let a2 = run_into(d, &write_config(d, "a", &cfg("a", 10)), "a2", &[]);
    let c = d.join("conflict.duckdb");
    let o = harness()
        .args([
            "merge",
            a.to_str().unwrap(),
            a2.to_str().unwrap(),
            "-o",
            c.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("measured in different runs"),
        "{}",
        stderr(&o)
    );
    assert!(!c.exists() || experiments(&c).is_empty());
    // ...or one copy is kept on request, and the other is named.
    let _ = std::fs::remove_file(&c);
    let o = run_ok(&[
        "merge",
        a.to_str().unwrap(),
        a2.to_str().unwrap(),
        "-o",
        c.to_str().unwrap(),
        "--on-conflict",
        "newest",
    ]);
    assert!(stderr(&o).contains("dropped (--on-conflict newest)"));
    let kept = experiments(&c);
    let newer = experiments(&a2);
    assert_eq!(kept.len(), newer.len());
    assert!(kept
        .iter()
        .all(|k| newer.iter().any(|n| n.run_id == k.run_id)));
    assert_eq!(
        count(&c, "SELECT count(*) FROM runs"),
        2,
        "both runs' provenance kept"
    );

    // An existing output is never overwritten.
    let o = harness()
        .args([
            "merge",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "-o",
            merged.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(stderr(&o).contains("already exists"));
}
