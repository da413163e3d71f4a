//! Synthetic prompts of exact token length under the endpoint's tokenizer.
//!
//! A prompt is a sequence of *word pieces*: vocabulary entries that are one
//! token on their own and that the pre-tokenizer keeps apart (for byte-level
//! BPE, a space followed by lower-case letters, like `Ġcost`). Concatenating N
//! such pieces gives exactly N tokens by construction, so no prompt needs
//! re-encoding and 100k prompts of 8k tokens take seconds. Pieces are drawn
//! from a seeded generator: every prompt is unique unless a shared prefix is
//! asked for, and the same seed gives the same prompts in any process.

use crate::tokenizer::Tokenizer;
use anyhow::{bail, Result};
use harness_core::rng::Rng;
use serde::Serialize;

/// A length: fixed, uniform in [min, max], or normal clamped to [min, max].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Length {
    Fixed(u32),
    Uniform {
        min: u32,
        max: u32,
    },
    Normal {
        mean: f64,
        std: f64,
        min: u32,
        max: u32,
    },
}

impl Length {
    pub fn sample(&self, rng: &mut Rng) -> u32 {
        match *self {
            Length::Fixed(n) => n,
            Length::Uniform { min, max } => rng.range_inclusive(min as u64, max as u64) as u32,
            Length::Normal {
                mean,
                std,
                min,
                max,
            } => {
                ((mean + std * rng.normal())
                    .round()
                    .max(min as f64)
                    .min(max as f64)) as u32
            }
        }
    }
    /// The smallest length this can give.
    pub fn min(&self) -> u32 {
        match *self {
            Length::Fixed(n) => n,
            Length::Uniform { min, .. } | Length::Normal { min, .. } => min,
        }
    }
    pub fn max(&self) -> u32 {
        match *self {
            Length::Fixed(n) => n,
            Length::Uniform { max, .. } | Length::Normal { max, .. } => max,
        }
    }
}

/// Prompts that begin with one of `prefixes` shared prefixes of `tokens`
/// tokens. Request `i` takes prefix `i mod prefixes` (interleaved, as
/// concurrent users of different system prompts are); with
/// `requests_per_prefix` M, each set of prefixes serves M requests each and
/// the next `prefixes × M` requests use a fresh set. `tokens` 0: none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SharedPrefix {
    pub tokens: u32,
    pub prefixes: u32,
    pub requests_per_prefix: Option<u32>,
}

impl Default for SharedPrefix {
    fn default() -> Self {
        SharedPrefix {
            tokens: 0,
            prefixes: 1,
            requests_per_prefix: None,
        }
    }
}

impl SharedPrefix {
    /// The prefix (group) number of request `i`.
    pub fn group(&self, i: u64) -> u64 {
        let n = self.prefixes.max(1) as u64;
        match self.requests_per_prefix {
            None => i % n,
            Some(m) => (i / (n * m.max(1) as u64)) * n + i % n,
        }
    }
}

/// Leading prefix tokens a cold-baseline prompt draws for itself: enough
/// that two requests' prefixes coincide with probability about 4096⁻⁴.
pub const COLD_NONCE_TOKENS: u32 = 4;

pub struct Generator {
    seed: u64,
    prompt: Length,
    output: Length,
    shared_prefix: SharedPrefix,
    /// Each request's prefix starts with its own tokens: same lengths and
    /// text after them, no prefix-cache hit possible.
    cold: bool,
    pieces: Vec<String>,
    /// Whether the first piece keeps its leading space (byte-level BPE pieces
    /// carry it; the words tokenizer joins with spaces).
    joiner: &'static str,
}

const STREAM_PROMPT_LEN: u64 = 1;
const STREAM_OUTPUT_LEN: u64 = 2;
const STREAM_TEXT: u64 = 3;
const STREAM_NONCE: u64 = 4;

impl Generator {
    pub fn new(
        tok: &Tokenizer,
        seed: u64,
        prompt: Length,
        output: Length,
        shared_prefix: SharedPrefix,
        cold: bool,
    ) -> Result<Generator> {
        let (pieces, joiner) = match tok.vocab() {
            None => (
                crate::tokens::WORDS.iter().map(|w| w.to_string()).collect(),
                " ",
            ),
            Some(vocab) => {
                let mut cands: Vec<(u32, String)> = vocab
                    .into_iter()
                    .filter(|(t, _)| {
                        t.strip_prefix('Ġ').is_some_and(|w| {
                            (3..=10).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_lowercase())
                        })
                    })
                    .map(|(t, id)| (id, t))
                    .collect();
                cands.sort();
                let mut pieces = vec![];
                for (id, _) in cands {
                    let Some(text) = tok.decode(&[id]) else {
                        continue;
                    };
                    // A piece must be one token on its own, and two in a row two tokens.
                    if tok.encode(&text).is_some_and(|e| e == [id])
                        && tok.count(&format!("{text}{text}")) == 2
                    {
                        pieces.push(text);
                    }
                    if pieces.len() >= 4096 {
                        break;
                    }
                }
                (pieces, "")
            }
        };
        if pieces.len() < 64 {
            bail!(
                "tokenizer `{}` has too few plain word tokens ({}) to build synthetic prompts; use a JSONL dataset",
                tok.info.id,
                pieces.len()
            );
        }
        if shared_prefix.tokens > 0 && shared_prefix.tokens >= prompt.min() {
            bail!(
                "the shared prefix ({} tokens) must be smaller than the smallest prompt ({} tokens)",
                shared_prefix.tokens,
                prompt.min()
            );
        }
        Ok(Generator {
            seed,
            prompt,
            output,
            shared_prefix,
            cold,
            pieces,
            joiner,
        })
    }

    /// Prompt length, output length and prompt text of request `i`.
    pub fn item(&self, i: u64) -> (String, u32, u32) {
        let n = self.prompt.sample(&mut Rng::derive(
            self.seed,
            i.wrapping_mul(8) + STREAM_PROMPT_LEN,
        ));
        let max_tokens = self
            .output
            .sample(&mut Rng::derive(
                self.seed,
                i.wrapping_mul(8) + STREAM_OUTPUT_LEN,
            ))
            .max(1);
        let (s, n) = self.text(i, n);
        (s, n, max_tokens)
    }

    /// The prompt text of request `i` with `n` tokens (at least one more
    /// than the shared prefix), and its length.
    pub fn text(&self, i: u64, n: u32) -> (String, u32) {
        let shared = self.shared_prefix.tokens;
        let n = n.max(shared + 1);
        let mut s = String::with_capacity(n as usize * 8);
        let mut prefix = Rng::derive(self.seed, u64::MAX - self.shared_prefix.group(i));
        let mut nonce = Rng::derive(self.seed, i.wrapping_mul(8) + STREAM_NONCE);
        let mut own = Rng::derive(self.seed, i.wrapping_mul(8) + STREAM_TEXT);
        let top = self.pieces.len() as u64 - 1;
        for k in 0..n {
            let piece = if k < shared {
                let p = prefix.range_inclusive(0, top);
                if self.cold && k < COLD_NONCE_TOKENS {
                    nonce.range_inclusive(0, top)
                } else {
                    p
                }
            } else {
                own.range_inclusive(0, top)
            };
            if k > 0 {
                s.push_str(self.joiner);
            }
            s.push_str(&self.pieces[piece as usize]);
        }
        (s, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_tokenizer_exact_and_reproducible() {
        let tok = Tokenizer::words();
        let g = Generator::new(
            &tok,
            7,
            Length::Uniform { min: 10, max: 900 },
            Length::Fixed(16),
            SharedPrefix::default(),
            false,
        )
        .unwrap();
        for i in 0..50 {
            let (p, n, out) = g.item(i);
            assert_eq!(tok.count(&p), n as u64);
            assert!((10..=900).contains(&n));
            assert_eq!(out, 16);
        }
        assert_eq!(
            g.item(3).0,
            Generator::new(
                &tok,
                7,
                Length::Uniform { min: 10, max: 900 },
                Length::Fixed(16),
                SharedPrefix::default(),
                false
            )
            .unwrap()
            .item(3)
            .0
        );
        assert_ne!(g.item(3).0, g.item(4).0);
        // Not one repeated token (prefix caching would flatter TTFT).
        let fixed = Generator::new(
            &tok,
            7,
            Length::Fixed(300),
            Length::Fixed(16),
            SharedPrefix::default(),
            false,
        )
        .unwrap();
        let p = fixed.item(5).0;
        let distinct: std::collections::BTreeSet<&str> = p.split(' ').collect();
        assert!(distinct.len() > 20, "{distinct:?}");
    }

    #[test]
    fn shared_prefix() {
        let tok = Tokenizer::words();
        let one = |tokens| SharedPrefix {
            tokens,
            ..Default::default()
        };
        let g = Generator::new(
            &tok,
            1,
            Length::Fixed(100),
            Length::Fixed(8),
            one(40),
            false,
        )
        .unwrap();
        let (a, b) = (g.item(0).0, g.item(1).0);
        let wa: Vec<&str> = a.split(' ').collect();
        let wb: Vec<&str> = b.split(' ').collect();
        assert_eq!(wa[..40], wb[..40]);
        assert_ne!(wa[40..], wb[40..]);
    }

    #[test]
    fn prefixes_are_interleaved_and_renewed_and_the_cold_baseline_differs_only_in_its_nonce() {
        let tok = Tokenizer::words();
        let sp = SharedPrefix {
            tokens: 20,
            prefixes: 3,
            requests_per_prefix: Some(2),
        };
        // 3 prefixes × 2 requests, then a fresh set of 3.
        let groups: Vec<u64> = (0..12).map(|i| sp.group(i)).collect();
        assert_eq!(groups, [0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5]);
        let warm = Generator::new(&tok, 5, Length::Fixed(50), Length::Fixed(8), sp, false).unwrap();
        let cold = Generator::new(&tok, 5, Length::Fixed(50), Length::Fixed(8), sp, true).unwrap();
        let words = |g: &Generator, i| -> Vec<String> {
            g.item(i).0.split(' ').map(String::from).collect()
        };
        assert_eq!(words(&warm, 0)[..20], words(&warm, 3)[..20], "same prefix");
        assert_ne!(
            words(&warm, 0)[..20],
            words(&warm, 1)[..20],
            "another prefix"
        );
        assert_ne!(words(&warm, 0)[..20], words(&warm, 6)[..20], "a fresh set");
        for i in 0..6 {
            let (w, c) = (words(&warm, i), words(&cold, i));
            assert_eq!(w.len(), c.len());
            assert_ne!(w[..4], c[..4], "request {i}: its own first tokens");
            assert_eq!(w[4..], c[4..], "request {i}: the rest as warm");
        }
        assert_ne!(words(&cold, 0)[..4], words(&cold, 3)[..4]);
    }

    #[test]
    fn normal_is_clamped() {
        let mut rng = Rng::new(3);
        let d = Length::Normal {
            mean: 100.0,
            std: 500.0,
            min: 50,
            max: 150,
        };
        for _ in 0..1000 {
            assert!((50..=150).contains(&d.sample(&mut rng)));
        }
    }
}
