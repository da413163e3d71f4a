//! `harness publish`: the site's files, the bundles and their index; bad
//! input named before anything is written. (The real viewer in a browser, and
//! S3 against moto, are tested by scripts/test-viewer.sh.)

use super::common::*;
use std::path::Path;

/// `harness publish BUNDLE --to TO --site SITE`, whatever its exit status.
fn publish(bundle: &Path, to: &Path, site: &Path) -> std::process::Output {
    output(&[
        "publish",
        bundle.to_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
        "--site",
        site.to_str().unwrap(),
    ])
}

const CFG: &str = r#"
name: p
endpoints:
  - name: s
    provider: sim
    instance_type: g5.xlarge
    sim: { ttft_ms: 5, itl_ms: 1 }
datasets:
  - name: d
    synthetic: { prompt_tokens: 8, output_tokens: 4 }
load: { concurrency: [2], requests: 10 }
"#;

/// A stand-in for `viewer/build.sh`'s output: the files publish checks for.
fn fake_site(dir: &Path) {
    for f in [
        "index.html",
        "pkg/viewer_bg.wasm",
        "vendor/duckdb/duckdb-shim.mjs",
        "vendor/duckdb/duckdb-eh.wasm",
    ] {
        let p = dir.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, f).unwrap();
    }
}

#[test]
fn publish_writes_the_site_the_bundles_and_an_index_that_grows() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "p", CFG);
    let a = run_into(dir.path(), &cfg, "a", &[]);
    let b = run_into(dir.path(), &cfg, "b", &[]);
    let site = dir.path().join("viewer-site");
    fake_site(&site);
    // A read-only site, as in the Nix store: the copies must stay writable so
    // that the next publication can replace them.
    use std::os::unix::fs::PermissionsExt;
    let wasm = site.join("pkg/viewer_bg.wasm");
    std::fs::set_permissions(&wasm, std::fs::Permissions::from_mode(0o444)).unwrap();
    let to = dir.path().join("out");
    let (site_s, to_s) = (site.to_str().unwrap(), to.to_str().unwrap());
    run_ok(&[
        "publish",
        a.to_str().unwrap(),
        "--to",
        to_s,
        "--site",
        site_s,
    ]);
    assert_eq!(
        std::fs::read_to_string(to.join("pkg/viewer_bg.wasm")).unwrap(),
        "pkg/viewer_bg.wasm"
    );
    let mode = std::fs::metadata(to.join("pkg/viewer_bg.wasm"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o200, 0o200, "copied read-only: {mode:o}");
    run_ok(&[
        "publish",
        b.to_str().unwrap(),
        "--to",
        to_s,
        "--site",
        site_s,
    ]);
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(to.join("bundles/index.json")).unwrap())
            .unwrap();
    let files: Vec<&str> = index
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["file"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["a.duckdb", "b.duckdb"]);
    assert_eq!(index[0]["path"], "bundles/a.duckdb");
    assert_eq!(index[0]["experiments"], 1);
    assert_eq!(index[0]["simulated"], true);
    assert_eq!(
        std::fs::metadata(to.join("bundles/b.duckdb"))
            .unwrap()
            .len(),
        std::fs::metadata(&b).unwrap().len()
    );
}

#[test]
fn publish_names_bad_input_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "p", CFG);
    let a = run_into(dir.path(), &cfg, "a", &[]);
    let to = dir.path().join("out");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = publish(&a, &to, &empty);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no built viewer") && stderr(&o).contains("viewer/build.sh"));
    let junk = dir.path().join("junk.duckdb");
    std::fs::write(&junk, "not a database").unwrap();
    let site = dir.path().join("site");
    fake_site(&site);
    let o = publish(&junk, &to, &site);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("junk.duckdb"), "{}", stderr(&o));
    let o = output(&["publish", a.to_str().unwrap(), "--to", "s3:///x"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("s3://BUCKET/PREFIX"), "{}", stderr(&o));
    assert!(!to.exists(), "nothing is written on bad input");
    // Never the current directory by accident, nor over someone's own site.
    let o = output(&["publish", a.to_str().unwrap(), "--to", ""]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--to is empty"), "{}", stderr(&o));
    let mine = dir.path().join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("index.html"), "<p>mine</p>").unwrap();
    let o = publish(&a, &mine, &site);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("did not write"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(mine.join("index.html")).unwrap(),
        "<p>mine</p>"
    );
    // S3 without a region or credentials: said in a line, before any request.
    let o = harness()
        .args([
            "publish",
            a.to_str().unwrap(),
            "--to",
            "s3://some-bucket/x",
            "--site",
            site.to_str().unwrap(),
        ])
        .env("HOME", dir.path())
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no AWS region for s3://some-bucket: set AWS_REGION"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_site_holding_a_bundle_that_does_not_read_is_named_before_anything_is_copied() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "p", CFG);
    let a = run_into(dir.path(), &cfg, "a", &[]);
    let site = dir.path().join("viewer-site");
    fake_site(&site);
    let to = dir.path().join("out");
    std::fs::create_dir_all(to.join("bundles")).unwrap();
    std::fs::write(to.join("bundles/index.json"), "[]").unwrap();
    std::fs::write(to.join("bundles/garbage.duckdb"), "junk").unwrap();
    let o = publish(&a, &to, &site);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("garbage.duckdb") && stderr(&o).contains("remove that file"),
        "{}",
        stderr(&o)
    );
    assert!(!to.join("bundles/a.duckdb").exists(), "nothing copied");
}
