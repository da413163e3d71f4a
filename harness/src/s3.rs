//! Uploading a published site to S3 with the AWS SDK (`aws-sdk-s3`), through
//! the shared SDK configuration ([`crate::aws`]).
//!
//! Each object gets its content type (`application/wasm` for `.wasm`, which
//! S3 does not infer). S3 does not compress, so `.wasm`, `.js` and `.mjs`
//! files are stored gzip-compressed with `Content-Encoding: gzip` (DuckDB-WASM
//! is 34 MB raw, 7.6 MB compressed); bundles (`.duckdb`) are never compressed,
//! so that the viewer can read them with HTTP range requests.

use anyhow::{Context, Result};
use aws_sdk_s3::primitives::ByteStream;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `s3://bucket/prefix` split into bucket and key prefix (no leading or
/// trailing `/`).
///
/// Errors: no bucket name.
pub fn parse_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("`{url}` is not an s3:// URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("`{url}`: expected s3://BUCKET/PREFIX"));
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

/// The content type and whether the object is stored gzip-compressed.
pub fn content_type(path: &Path) -> (&'static str, bool) {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => ("text/html; charset=utf-8", false),
        "js" | "mjs" => ("text/javascript; charset=utf-8", true),
        "css" => ("text/css; charset=utf-8", false),
        "wasm" => ("application/wasm", true),
        "json" => ("application/json", false),
        "txt" | "md" => ("text/plain; charset=utf-8", false),
        "svg" => ("image/svg+xml", false),
        "png" => ("image/png", false),
        _ if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("LICENSE")) =>
        {
            ("text/plain; charset=utf-8", false)
        }
        // .duckdb among them: never compressed (range reads).
        _ => ("application/octet-stream", false),
    }
}

fn files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let p = e?.path();
        if p.is_dir() {
            out.extend(files(&p)?);
        } else {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// Uploads every file under `dir` to `s3://bucket/prefix/<relative path>`.
/// Returns the number of objects written.
///
/// Errors: no credentials or region, a bucket that does not exist or refuses
/// the write (the SDK's message, with the object's key).
pub async fn upload_dir(dir: &Path, bucket: &str, prefix: &str) -> Result<usize> {
    let client = crate::aws::load(None, &format!("s3://{bucket}"))
        .await?
        .s3();
    let mut n = 0;
    for path in files(dir)? {
        let rel = path
            .strip_prefix(dir)
            .expect("under dir")
            .to_string_lossy()
            .replace('\\', "/");
        let key = if prefix.is_empty() {
            rel
        } else {
            format!("{prefix}/{rel}")
        };
        let (ctype, gzip) = content_type(&path);
        let raw =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let body = if gzip {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            enc.write_all(&raw)?;
            enc.finish()?
        } else {
            raw
        };
        let mut put = client
            .put_object()
            .bucket(bucket)
            .key(&key)
            .content_type(ctype)
            .body(ByteStream::from(body));
        if gzip {
            put = put.content_encoding("gzip");
        }
        put.send().await.map_err(|e| {
            anyhow::anyhow!("uploading s3://{bucket}/{key}: {}", crate::aws::why(&e))
        })?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_content_types() {
        assert_eq!(
            parse_url("s3://b/reports/v1/").unwrap(),
            ("b".into(), "reports/v1".into())
        );
        assert_eq!(parse_url("s3://b").unwrap(), ("b".into(), "".into()));
        assert!(parse_url("s3:///x").is_err());
        assert_eq!(
            content_type(Path::new("pkg/viewer_bg.wasm")),
            ("application/wasm", true)
        );
        assert_eq!(
            content_type(Path::new("bundles/a.duckdb")),
            ("application/octet-stream", false)
        );
        assert_eq!(
            content_type(Path::new("vendor/duckdb/LICENSE")).0,
            "text/plain; charset=utf-8"
        );
    }
}
