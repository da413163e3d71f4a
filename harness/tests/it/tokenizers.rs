//! Tokenizer sources: tokenizer.json files and the Hugging Face Hub cache
//! (downloaded from a fake hub on loopback), and the offline error.

use super::common::*;
use harness::tokenizer::{Tokenizer, TokenizerSpec};
use std::io::{Read, Write};

const TOKENIZER_JSON: &str = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,
"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,
"model":{"type":"WordLevel","vocab":{"hello":0,"world":1,"[UNK]":2},"unk_token":"[UNK]"}}"#;

/// Serves one tokenizer.json over HTTP on loopback; returns the address and
/// a counter of requests served.
fn fake_hub() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", l.local_addr().unwrap());
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let mut s = s.unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let ok = req.starts_with("GET /acme/tiny/resolve/main/tokenizer.json");
            let (status, body) = if ok {
                ("200 OK", TOKENIZER_JSON)
            } else {
                ("404 Not Found", "no")
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nx-repo-commit: 0123abcd\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, hits)
}

fn hub_spec() -> TokenizerSpec {
    TokenizerSpec::Hf {
        model: "acme/tiny".into(),
        revision: "main".into(),
    }
}

// One test owns the process environment (HF_* variables) for the hub cases.
#[tokio::test]
async fn hub_download_cache_and_offline() {
    let home = tempfile::tempdir().unwrap();
    std::env::set_var("HF_HOME", home.path());
    std::env::remove_var("HF_HUB_CACHE");

    // Offline and not cached: a clear error, naming the cache and the way out.
    std::env::set_var("HF_HUB_OFFLINE", "1");
    let e = Tokenizer::load(&hub_spec())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("tokenizer `acme/tiny@main` is not in the Hugging Face cache"),
        "{e}"
    );
    assert!(
        e.contains("HF_HUB_OFFLINE") && e.contains("tokenizer: {file:"),
        "{e}"
    );

    // Online: downloaded once into the HF cache layout, revision recorded.
    std::env::remove_var("HF_HUB_OFFLINE");
    let (addr, hits) = fake_hub();
    std::env::set_var("HF_ENDPOINT", &addr);
    let t = Tokenizer::load(&hub_spec()).await.unwrap();
    assert_eq!(t.info.id, "acme/tiny@0123abcd");
    assert_eq!(t.count("hello world hello"), 3);
    assert!(home
        .path()
        .join("hub/models--acme--tiny/snapshots/0123abcd/tokenizer.json")
        .is_file());
    assert_eq!(
        std::fs::read_to_string(home.path().join("hub/models--acme--tiny/refs/main")).unwrap(),
        "0123abcd"
    );

    // Offline again: served from the cache, no request made.
    std::env::set_var("HF_HUB_OFFLINE", "1");
    let before = hits.load(std::sync::atomic::Ordering::SeqCst);
    let t2 = Tokenizer::load(&hub_spec()).await.unwrap();
    assert_eq!(t2.info.content_sha256, t.info.content_sha256);
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), before);

    // A missing model online: the error says what failed.
    std::env::remove_var("HF_HUB_OFFLINE");
    let e = Tokenizer::load(&TokenizerSpec::Hf {
        model: "acme/none".into(),
        revision: "main".into(),
    })
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("downloading it failed: HTTP 404"), "{e}");
    std::env::remove_var("HF_ENDPOINT");
    std::env::remove_var("HF_HOME");
}

#[tokio::test]
async fn tokenizer_json_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tokenizer.json");
    std::fs::write(&p, TOKENIZER_JSON).unwrap();
    let t = Tokenizer::load(&TokenizerSpec::File { path: p.clone() })
        .await
        .unwrap();
    assert_eq!(t.count("hello world"), 2);
    assert_eq!(t.info.source, "file");
    std::fs::write(&p, "{}").unwrap();
    let e = Tokenizer::load(&TokenizerSpec::File { path: p })
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("is not a tokenizer.json"), "{e}");
}

#[test]
fn synthetic_prompts_identical_in_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "synth",
        "datasets:\n  - name: s\n    synthetic: { prompt_tokens: {uniform: [5, 40]}, output_tokens: 8, shared_prefix_tokens: 3 }\n",
    );
    let a = stdout(&run_ok(&[
        "datasets",
        "inspect",
        cfg.to_str().unwrap(),
        "--samples",
        "5",
    ]));
    let b = stdout(&run_ok(&[
        "datasets",
        "inspect",
        cfg.to_str().unwrap(),
        "--samples",
        "5",
    ]));
    assert_eq!(a, b);
    assert_eq!(a.matches("prompt tokens").count(), 5, "{a}");
    let c = stdout(&run_ok(&[
        "datasets",
        "inspect",
        cfg.to_str().unwrap(),
        "--samples",
        "5",
        "--set",
        "seed=1",
    ]));
    assert_ne!(a, c, "another seed, other prompts");
}
