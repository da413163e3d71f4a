//! Token counting and synthetic text.
//!
//! Until real tokenizers arrive (datasets issue), both the client and the
//! simulator count tokens the same documented way: a token is a run of
//! non-whitespace characters. Synthetic prompts are built from a fixed word list
//! with a seeded generator, so every prompt is unique (no accidental prefix
//! caching) and its token count is exact.

use harness_core::rng::Rng;

/// Whitespace-separated words: the simulator's tokenizer.
pub fn count_tokens(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

pub const WORDS: &[&str] = &[
    "the",
    "cost",
    "of",
    "serving",
    "a",
    "model",
    "depends",
    "on",
    "batch",
    "size",
    "memory",
    "bandwidth",
    "and",
    "prompt",
    "length",
    "while",
    "latency",
    "budgets",
    "decide",
    "how",
    "many",
    "instances",
    "we",
    "need",
    "for",
    "each",
    "workload",
    "token",
    "throughput",
    "grows",
    "until",
    "queues",
    "form",
    "at",
    "capacity",
    "limits",
    "request",
    "rate",
    "per",
    "minute",
    "tells",
    "planners",
    "which",
    "type",
    "wins",
    "under",
    "load",
    "cache",
    "prefill",
    "decode",
    "steps",
    "run",
    "in",
    "parallel",
    "across",
    "accelerators",
    "with",
    "careful",
    "scheduling",
    "keeps",
    "tail",
    "low",
    "price",
    "matters",
];

/// A prompt of exactly `tokens` words, unique for (`seed`, `index`).
pub fn synthetic_prompt(seed: u64, index: u64, tokens: u32) -> String {
    let mut rng = Rng::derive(seed, index);
    let mut s = String::with_capacity(tokens as usize * 8);
    for i in 0..tokens {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(WORDS[rng.range_inclusive(0, WORDS.len() as u64 - 1) as usize]);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_exact_unique_and_reproducible() {
        let a = synthetic_prompt(1, 0, 300);
        assert_eq!(count_tokens(&a), 300);
        assert_eq!(a, synthetic_prompt(1, 0, 300));
        assert_ne!(a, synthetic_prompt(1, 1, 300));
        assert_ne!(a, synthetic_prompt(2, 0, 300));
        // Not one repeated token.
        let distinct: std::collections::BTreeSet<&str> = a.split(' ').collect();
        assert!(distinct.len() > 20);
    }
}
