//! `tokenizer.json` from the Hugging Face Hub, through the standard HF cache
//! layout (`$HF_HOME/hub/models--org--name/{refs,snapshots}`), so a tokenizer
//! fetched once (by this harness or by `huggingface-cli`) is reused offline.
//! `HF_HUB_OFFLINE=1` forbids downloading; `HF_ENDPOINT` changes the hub's
//! address; `HF_TOKEN` authenticates (never logged or stored).

use anyhow::{bail, Context, Result};
use std::path::PathBuf;

fn hub_cache() -> PathBuf {
    if let Ok(p) = std::env::var("HF_HUB_CACHE") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HF_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| ".".into()))
                .join(".cache/huggingface")
        });
    home.join("hub")
}

fn repo_dir(model: &str) -> PathBuf {
    hub_cache().join(format!("models--{}", model.replace('/', "--")))
}

/// The cached tokenizer.json for `model` at `revision` (a branch, tag or commit),
/// and the commit it resolved to.
fn cached(model: &str, revision: &str) -> Option<(PathBuf, String)> {
    let dir = repo_dir(model);
    let commit = std::fs::read_to_string(dir.join("refs").join(revision))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| revision.to_string());
    let p = dir.join("snapshots").join(&commit).join("tokenizer.json");
    p.is_file().then_some((p, commit))
}

/// Returns the path of `tokenizer.json` and the commit, downloading it into the
/// cache when it is missing and downloads are allowed.
pub async fn tokenizer_json(model: &str, revision: &str) -> Result<(PathBuf, String)> {
    if let Some(hit) = cached(model, revision) {
        return Ok(hit);
    }
    let where_ = hub_cache().display().to_string();
    let offline =
        std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    let hint = "run once with network access, point HF_HOME at a cache that holds it, or use `tokenizer: {file: path/to/tokenizer.json}`";
    if offline {
        bail!("tokenizer `{model}@{revision}` is not in the Hugging Face cache ({where_}) and HF_HUB_OFFLINE is set; {hint}");
    }
    let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into());
    let url = format!(
        "{}/{model}/resolve/{revision}/tokenizer.json",
        endpoint.trim_end_matches('/')
    );
    crate::tls::install_provider();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()?;
    let mut req = client.get(&url);
    if let Ok(token) = std::env::var("HF_TOKEN") {
        req = req.bearer_auth(token);
    }
    let fail = |e: String| {
        anyhow::anyhow!("tokenizer `{model}@{revision}` is not in the Hugging Face cache ({where_}) and downloading it failed: {e}; {hint}")
    };
    let resp = req.send().await.map_err(|e| fail(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(fail(format!("HTTP {} from {url}", resp.status())));
    }
    let commit = resp
        .headers()
        .get("x-repo-commit")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| revision.to_string());
    let bytes = resp.bytes().await.map_err(|e| fail(e.to_string()))?;
    let dir = repo_dir(model);
    let snap = dir.join("snapshots").join(&commit);
    std::fs::create_dir_all(&snap).with_context(|| format!("cannot create {}", snap.display()))?;
    std::fs::create_dir_all(dir.join("refs"))?;
    let path = snap.join("tokenizer.json");
    std::fs::write(&path, &bytes)?;
    if commit != revision {
        std::fs::write(dir.join("refs").join(revision), &commit)?;
    }
    Ok((path, commit))
}
