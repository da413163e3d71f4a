//! `harness publish BUNDLE... --to DIR|s3://BUCKET/PREFIX`: a self-contained
//! static site that opens the bundles in any browser, with no server of ours
//! behind it.
//!
//! The site holds the viewer (built by `viewer/build.sh`), its self-hosted
//! DuckDB-WASM assets, the bundles under `bundles/` and `bundles/index.json`
//! listing every bundle there. Every path in the site is relative, so it works
//! under a sub-path (`https://owner.github.io/repo/`). Publishing into a
//! directory that already holds bundles adds to it. For `s3://` the site is
//! assembled in a temporary directory and uploaded ([`crate::s3`]).

use crate::bad_input;
use crate::bundle::read;
use crate::cli::PublishArgs;
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// One entry of `bundles/index.json` (the viewer's `db::IndexEntry`).
#[derive(Serialize)]
struct IndexEntry {
    /// Relative to the site root.
    path: String,
    file: String,
    bytes: u64,
    runs: Vec<String>,
    experiments: usize,
    simulated: bool,
}

/// The files a built viewer site must hold.
const SITE_FILES: [&str; 4] = [
    "index.html",
    "pkg/viewer_bg.wasm",
    "vendor/duckdb/duckdb-shim.mjs",
    "vendor/duckdb/duckdb-eh.wasm",
];

/// The built viewer: `--site`, else `$HARNESS_VIEWER_SITE`, else
/// `$HARNESS_CACHE/viewer-site` (where `viewer/build.sh` writes it).
fn site_dir(a: &PublishArgs) -> Result<PathBuf> {
    let dir = a
        .site
        .clone()
        .or_else(|| std::env::var_os("HARNESS_VIEWER_SITE").map(PathBuf::from))
        .or_else(|| {
            let cache = std::env::var_os("HARNESS_CACHE")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/llm-harness"))
                })?;
            Some(cache.join("viewer-site"))
        })
        .unwrap_or_else(|| PathBuf::from("viewer-site"));
    if let Some(missing) = SITE_FILES.iter().find(|f| !dir.join(f).is_file()) {
        bad_input!(
            "no built viewer at {} (it lacks {missing}); build it with `viewer/build.sh` from the repository, or pass --site DIR",
            dir.display()
        );
    }
    Ok(dir)
}

/// Copies `src` to `dst`, leaving `dst` writable by its owner even when
/// `src` is not (a site in the Nix store is read-only), so that publishing
/// again into the same folder can replace it.
fn copy_writable(src: &Path, dst: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::symlink_metadata(dst) {
        if m.permissions().readonly() {
            std::fs::remove_file(dst)
                .with_context(|| format!("cannot replace {}", dst.display()))?;
        }
    }
    std::fs::copy(src, dst)
        .with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
    let mut perm = std::fs::metadata(dst)?.permissions();
    perm.set_mode(perm.mode() | 0o200);
    std::fs::set_permissions(dst, perm)
        .with_context(|| format!("cannot make {} writable", dst.display()))
}

fn copy_tree(from: &Path, to: &Path) -> Result<u64> {
    let mut n = 0;
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            n += copy_tree(&src, &dst)?;
        } else {
            copy_writable(&src, &dst)?;
            n += 1;
        }
    }
    Ok(n)
}

pub fn run(a: PublishArgs) -> Result<ExitCode> {
    let s3 = match a.to.starts_with("s3://") {
        true => Some(
            crate::s3::parse_url(&a.to).map_err(|e| crate::exit::bad_input(format!("--to {e}")))?,
        ),
        false => None,
    };
    let staging = match s3 {
        Some(_) => Some(tempfile_dir()?),
        None => None,
    };
    let to = match &staging {
        Some(d) => d.clone(),
        None => PathBuf::from(&a.to),
    };
    if staging.is_none() {
        check_target(&to)?;
    }
    // Every bundle is checked before anything is written.
    let mut names = std::collections::BTreeSet::new();
    for b in &a.bundles {
        drop(read::open(b)?);
        let name = b
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !names.insert(name.clone()) {
            bad_input!("two bundles are named {name}; rename one, the site keeps them side by side under bundles/");
        }
    }
    let site = site_dir(&a)?;
    // Bundles already in the site must still read, or the index could not be
    // rewritten after copying: check them before writing anything.
    let dir = to.join("bundles");
    for p in duckdb_files(&dir)? {
        if let Err(e) = read::open(&p) {
            bad_input!(
                "{:#}; the site's index lists every bundle in {}: remove that file or publish to another directory",
                e,
                dir.display()
            );
        }
    }
    let files = copy_tree(&site, &to)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for b in &a.bundles {
        let dst = dir.join(b.file_name().expect("checked above"));
        copy_writable(b, &dst)?;
    }
    // The index lists every bundle in the site, earlier publications included.
    let mut index = vec![];
    for p in duckdb_files(&dir)? {
        let conn = read::open(&p)?;
        let exps = read::experiments(&conn)?;
        let file = p.file_name().unwrap().to_string_lossy().into_owned();
        index.push(IndexEntry {
            path: format!("bundles/{file}"),
            bytes: std::fs::metadata(&p)?.len(),
            runs: read::runs(&conn)?.into_iter().map(|r| r.run_id).collect(),
            experiments: exps.len(),
            simulated: exps.iter().any(|e| e.simulated),
            file,
        });
    }
    let index_path = dir.join("index.json");
    std::fs::write(&index_path, serde_json::to_string_pretty(&index)? + "\n")
        .with_context(|| format!("cannot write {}", index_path.display()))?;
    if let (Some((bucket, prefix)), Some(dir)) = (&s3, &staging) {
        let uploaded = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(crate::s3::upload_dir(dir, bucket, prefix));
        let _ = std::fs::remove_dir_all(dir);
        let n = uploaded?;
        println!(
            "published {} bundle(s) to {} ({n} objects; .wasm and .js stored gzip-compressed, bundles uncompressed for range reads)",
            a.bundles.len(),
            a.to
        );
        println!(
            "open {}/index.html through the bucket's website or CDN address",
            a.to.trim_end_matches('/')
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "published {} bundle(s) to {} ({} viewer files, {} bundle(s) in its index)",
        a.bundles.len(),
        to.display(),
        files,
        index.len()
    );
    println!(
        "serve it with any static file server, e.g. `python3 scripts/serve-static.py {}`, and open the address it prints",
        to.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The `.duckdb` files in `dir` (none when it does not exist), sorted.
fn duckdb_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(vec![]);
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "duckdb"))
        .collect();
    v.sort();
    Ok(v)
}

/// `--to DIR` must name a directory that is new, empty, or a site `harness
/// publish` wrote (it has `bundles/index.json`): never the current directory
/// by accident, a file, or someone's own site, whose `index.html` would be
/// overwritten.
fn check_target(to: &Path) -> Result<()> {
    if to.as_os_str().is_empty() {
        bad_input!("--to is empty: name the directory to write the site into, e.g. --to site");
    }
    if to.exists() && !to.is_dir() {
        bad_input!("--to {}: is a file; name a directory", to.display());
    }
    let has = |p: &str| to.join(p).exists();
    if to.is_dir() && has("index.html") && !has("bundles/index.json") {
        bad_input!(
            "--to {}: holds an index.html that `harness publish` did not write; publishing would overwrite it. Choose a new or empty directory",
            to.display()
        );
    }
    Ok(())
}

/// A new empty directory for assembling a site before upload.
fn tempfile_dir() -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!(
        "harness-publish-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    Ok(d)
}
