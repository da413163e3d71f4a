//! Synthetic prompt generation speed: 100k prompts of 8k tokens.
//! `cargo bench -p harness --bench synthetic` (prints figures, asserts nothing).
//! Uses the words tokenizer, and the SmolLM2 GGUF tokenizer when
//! models/SmolLM2-135M-Instruct.Q4_1.gguf exists (scripts/llama-server.sh links it).

use harness::dataset::synthetic::{Generator, Length};
use harness::tokenizer::Tokenizer;
use std::time::Instant;

fn run(name: &str, tok: &Tokenizer) {
    let g = Generator::new(
        tok,
        42,
        Length::Fixed(8192),
        Length::Fixed(128),
        Default::default(),
        false,
    )
    .expect("generator");
    let n = 100_000u64;
    let t = Instant::now();
    let mut bytes = 0usize;
    for i in 0..n {
        bytes += g.item(i).0.len();
    }
    let secs = t.elapsed().as_secs_f64();
    // Spot-check exactness on a few prompts (re-encoding is not part of generation).
    let exact = (0..5).all(|i| tok.count(&g.item(i).0) == 8192);
    println!(
        "{name:>14}: {n} prompts x 8192 tokens in {secs:.2} s ({:.1} µs/prompt, {:.0} MB of text), exact: {exact}",
        secs * 1e6 / n as f64,
        bytes as f64 / 1e6
    );
}

fn main() {
    run("words", &Tokenizer::words());
    let gguf = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if gguf.exists() {
        run(
            "smollm2 (gguf)",
            &Tokenizer::from_gguf(&gguf).expect("gguf tokenizer"),
        );
    } else {
        println!(
            "smollm2 (gguf): skipped, {} not found (run scripts/llama-server.sh once)",
            gguf.display()
        );
    }
}
