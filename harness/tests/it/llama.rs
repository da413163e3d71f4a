//! Against a real llama.cpp server (llama-cpp-python + SmolLM2-135M GGUF).
//! These tests need the server: `scripts/e2e-llama.sh` starts it and runs them
//! with LLAMA_SERVER_URL and LLAMA_GGUF set (they are #[ignore]d otherwise, and
//! fail when run without those variables).

use harness::tokenizer::Tokenizer;
use serde_json::{json, Value};

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} must be set (scripts/e2e-llama.sh sets it)"))
}

fn post(path: &str, body: Value) -> Value {
    let url = format!("{}{path}", env("LLAMA_SERVER_URL"));
    let out = std::process::Command::new("curl")
        .args([
            "-sf",
            "-XPOST",
            &url,
            "-H",
            "content-type: application/json",
            "-d",
            &body.to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "POST {url} failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

const STRINGS: &[&str] = &[
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "héllo wörld — naïve café, 日本語のテキスト, Ελληνικά",
    "a  b\t\tc\n\nd   \n  e",
    "12345 3.14159 1,000,000 2026-11-25",
    "emoji 😀👍🏽 🇫🇷 done",
    "code: fn main() { println!(\"{x:?}\"); } // ok",
    "   leading and trailing spaces   ",
    "",
];

#[test]
#[ignore = "needs a llama.cpp server: scripts/e2e-llama.sh"]
fn gguf_tokenizer_matches_the_server() {
    let tk = Tokenizer::from_gguf(std::path::Path::new(&env("LLAMA_GGUF"))).unwrap();
    for s in STRINGS {
        let server: Vec<u32> = post("/extras/tokenize", json!({"input": s}))["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(tk.encode(s).unwrap(), server, "token ids differ for {s:?}");
        // Completions: usage counts exactly the prompt's tokens.
        if !s.is_empty() {
            let r = post("/v1/completions", json!({"prompt": s, "max_tokens": 1}));
            assert_eq!(
                r["usage"]["prompt_tokens"].as_u64().unwrap(),
                tk.count(s),
                "completions usage for {s:?}"
            );
        }
    }
}

#[test]
#[ignore = "needs a llama.cpp server: scripts/e2e-llama.sh"]
fn chat_template_accounting_matches_usage() {
    let tk = Tokenizer::from_gguf(std::path::Path::new(&env("LLAMA_GGUF"))).unwrap();
    for s in STRINGS.iter().filter(|s| !s.is_empty()) {
        let r = post(
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": s}], "max_tokens": 1}),
        );
        let usage = r["usage"]["prompt_tokens"].as_u64().unwrap();
        assert_eq!(
            tk.prompt_tokens(s, true),
            usage,
            "chat prompt tokens for {s:?}; template:\n{:?}",
            tk.apply_chat_template(s)
        );
        assert!(usage > tk.count(s), "the template adds tokens");
    }
}
