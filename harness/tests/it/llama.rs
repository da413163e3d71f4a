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

/// Checks the bundle of `harness run configs/llama-cpp.yml` (LLAMA_BUNDLE).
#[test]
#[ignore = "needs a llama.cpp server: scripts/e2e-llama.sh"]
fn llama_cpp_bundle_is_consistent() {
    let path = std::path::PathBuf::from(env("LLAMA_BUNDLE"));
    let conn = harness::bundle::read::open(&path).unwrap();
    let q = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    // Every request succeeded, warm-up included.
    assert!(q("SELECT count(*) FROM requests") > 0);
    assert_eq!(
        q("SELECT count(*) FROM requests WHERE status <> 'ok'"),
        0,
        "failed requests"
    );
    // Completions: the GGUF tokenizer's count equals the server's usage.
    let join = "FROM requests r JOIN experiments e USING (experiment_id)";
    assert!(q(&format!("SELECT count(*) {join} WHERE e.api = 'completions' AND r.prompt_tokens_usage IS NOT NULL")) > 0);
    assert_eq!(
        q(&format!("SELECT count(*) {join} WHERE e.api = 'completions' AND r.prompt_tokens_usage <> r.prompt_tokens_client")),
        0,
        "completions prompt tokens differ from usage"
    );
    // Chat: equal after applying the chat template (non-streaming; llama.cpp's
    // stream carries no usage).
    assert!(q(&format!("SELECT count(*) {join} WHERE e.api = 'chat' AND NOT e.stream AND r.prompt_tokens_usage IS NOT NULL")) > 0);
    assert_eq!(
        q(&format!("SELECT count(*) {join} WHERE e.api = 'chat' AND r.prompt_tokens_usage IS NOT NULL AND r.prompt_tokens_usage <> r.prompt_tokens_client")),
        0,
        "chat prompt tokens differ from usage after template accounting"
    );
    assert_eq!(
        q(&format!(
            "SELECT count(*) {join} WHERE e.stream AND r.prompt_tokens_usage IS NOT NULL"
        )),
        0,
        "llama.cpp streams send no usage"
    );
    // Output tokens: at most max_tokens (16), and exactly that when the server
    // stopped for length (llama-cpp-python ignores `ignore_eos`).
    assert_eq!(
        q("SELECT count(*) FROM requests WHERE output_tokens_usage > 16 OR (finish_reason = 'length' AND output_tokens_usage <> 16)"),
        0
    );
    // TTFT < e2e for every streamed row; chunk count consistent with output tokens.
    assert_eq!(q(&format!("SELECT count(*) {join} WHERE e.stream AND NOT (first_token_ns - sent_ns < end_ns - sent_ns)")), 0);
    assert_eq!(
        q(&format!("SELECT count(*) {join} WHERE e.stream AND (len(token_chunk_ns) < 1 OR len(token_chunk_ns) > 16 OR abs(len(token_chunk_ns) - output_tokens_client) > 3)")),
        0,
        "chunk counts inconsistent with output tokens"
    );
    // Preflight: each endpoint passed one real request, with its latency.
    assert_eq!(
        q("SELECT count(*) FROM preflights WHERE ok AND latency_ms > 0 AND http_status = 200"),
        3
    );
    assert_eq!(
        q("SELECT count(*) FROM experiments WHERE status <> 'complete'"),
        0
    );
    // Not streamed: e2e and tokens only; no TTFT, ITL or TPOT from those.
    assert_eq!(
        q(&format!("SELECT count(*) {join} WHERE NOT e.stream AND (r.first_token_ns IS NOT NULL OR len(r.token_chunk_ns) > 0)")),
        0
    );
    assert_eq!(
        q("SELECT count(*) FROM distributions d JOIN experiments e USING (experiment_id) WHERE NOT e.stream AND d.metric IN ('ttft', 'itl', 'tpot') AND d.count > 0"),
        0
    );
    // Summaries per bucket: every experiment has throughput and latency, no mismatch flag.
    assert_eq!(q("SELECT count(DISTINCT bucket) FROM experiments"), 2);
    assert_eq!(q("SELECT count(*) FROM experiments e JOIN summaries s USING (experiment_id) WHERE s.request_throughput > 0 AND NOT s.token_mismatch"), q("SELECT count(*) FROM experiments"));
    assert_eq!(
        q("SELECT count(*) FROM distributions WHERE metric = 'e2e' AND count > 0"),
        q("SELECT count(*) FROM experiments")
    );
    assert_eq!(
        q("SELECT count(*) FROM datasets WHERE rows_dropped > 0"),
        1,
        "the dataset card records dropped rows"
    );
}

#[test]
#[ignore = "needs the SmolLM2 GGUF: scripts/e2e-llama.sh"]
fn synthetic_prompts_are_exact_under_the_gguf_tokenizer() {
    use harness::dataset::synthetic::{Generator, Length, SharedPrefix};
    let tk = Tokenizer::from_gguf(std::path::Path::new(&env("LLAMA_GGUF"))).unwrap();
    let g = Generator::new(
        &tk,
        11,
        Length::Uniform { min: 1, max: 3000 },
        Length::Fixed(8),
        SharedPrefix::default(),
        false,
    )
    .unwrap();
    for i in 0..200 {
        let (p, n, _) = g.item(i);
        assert_eq!(tk.count(&p), n as u64, "prompt {i}");
    }
    let g2 = Generator::new(
        &tk,
        11,
        Length::Uniform { min: 1, max: 3000 },
        Length::Fixed(8),
        SharedPrefix::default(),
        false,
    )
    .unwrap();
    assert_eq!(g.item(7).0, g2.item(7).0);
}
