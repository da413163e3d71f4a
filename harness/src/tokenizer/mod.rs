//! Tokenizers: how the client counts tokens and builds prompts of exact length.
//!
//! Sources (config `tokenizer:` on an endpoint):
//! - `words` — a token is a run of non-whitespace characters; the simulator's
//!   own tokenizer, and the default for `sim` endpoints;
//! - `file: path/tokenizer.json` — a Hugging Face `tokenizers` file;
//! - `hf: org/model` (+ `revision`) — `tokenizer.json` from the Hugging Face Hub,
//!   read from the local HF cache, downloaded into it once when online;
//! - `gguf: path/model.gguf` — rebuilt from the GGUF metadata (vocabulary,
//!   merges, token types, pre-tokenizer), so a llama.cpp model is counted with
//!   its own tokenizer without the Hub.
//!
//! Every tokenizer has a content hash, which is part of the experiment id.

pub mod gguf;
pub mod hub;

use anyhow::{bail, Context, Result};
use harness_core::hash::{canonical_json, sha256_hex};
use serde::Serialize;
use std::path::{Path, PathBuf};
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::AddedToken;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum TokenizerSpec {
    Words,
    File { path: PathBuf },
    Hf { model: String, revision: String },
    Gguf { path: PathBuf },
}

/// What identifies a loaded tokenizer (stored in bundles).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenizerInfo {
    pub source: &'static str,
    /// A path, `org/model@commit`, or `words`.
    pub id: String,
    pub content_sha256: String,
    /// Whether chat prompts are counted with the model's chat template applied.
    pub chat_template: bool,
}

enum Kind {
    Words,
    Hf(Box<tokenizers::Tokenizer>),
}

pub struct Tokenizer {
    kind: Kind,
    pub info: TokenizerInfo,
    chat_template: Option<String>,
    bos_token: Option<String>,
    eos_token: Option<String>,
}

impl Tokenizer {
    pub fn words() -> Tokenizer {
        Tokenizer {
            kind: Kind::Words,
            info: TokenizerInfo {
                source: "words",
                id: "words".into(),
                content_sha256: sha256_hex(b"words:v1"),
                chat_template: false,
            },
            chat_template: None,
            bos_token: None,
            eos_token: None,
        }
    }

    pub async fn load(spec: &TokenizerSpec) -> Result<Tokenizer> {
        match spec {
            TokenizerSpec::Words => Ok(Tokenizer::words()),
            TokenizerSpec::File { path } => {
                Self::from_file(path, "file", path.display().to_string())
            }
            TokenizerSpec::Hf { model, revision } => {
                let (path, commit) = hub::tokenizer_json(model, revision).await?;
                Self::from_file(&path, "hf-hub", format!("{model}@{commit}"))
            }
            TokenizerSpec::Gguf { path } => Self::from_gguf(path),
        }
    }

    fn from_file(path: &Path, source: &'static str, id: String) -> Result<Tokenizer> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read tokenizer {}", path.display()))?;
        let tk = tokenizers::Tokenizer::from_bytes(&bytes)
            .map_err(|e| anyhow::anyhow!("{} is not a tokenizer.json: {e}", path.display()))?;
        Ok(Tokenizer {
            kind: Kind::Hf(Box::new(tk)),
            info: TokenizerInfo {
                source,
                id,
                content_sha256: sha256_hex(&bytes),
                chat_template: false,
            },
            chat_template: None,
            bos_token: None,
            eos_token: None,
        })
    }

    /// Rebuilds a byte-level BPE tokenizer (llama.cpp model type `gpt2`) from
    /// GGUF metadata.
    pub fn from_gguf(path: &Path) -> Result<Tokenizer> {
        let md = gguf::read_metadata(path)?;
        let get = |k: &str| md.get(k);
        let model = get("tokenizer.ggml.model")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        if model != "gpt2" {
            bail!(
                "{}: tokenizer model `{model}` is not supported from GGUF yet (byte-level BPE `gpt2` is); give `tokenizer: {{file: tokenizer.json}}` instead",
                path.display()
            );
        }
        let tokens: Vec<String> = get("tokenizer.ggml.tokens")
            .and_then(|v| v.as_array())
            .context("GGUF has no tokenizer.ggml.tokens")?
            .iter()
            .map(|t| t.as_str().unwrap_or_default().to_string())
            .collect();
        let types: Vec<i64> = get("tokenizer.ggml.token_type")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().map(|t| t.as_i64().unwrap_or(1)).collect())
            .unwrap_or_else(|| vec![1; tokens.len()]);
        let merges: Vec<(String, String)> = get("tokenizer.ggml.merges")
            .and_then(|v| v.as_array())
            .context("GGUF has no tokenizer.ggml.merges")?
            .iter()
            .filter_map(|m| {
                m.as_str()?
                    .split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
            })
            .collect();
        let pre = get("tokenizer.ggml.pre")
            .and_then(|v| v.as_str())
            .unwrap_or("default")
            .to_string();
        let vocab: tokenizers::models::bpe::Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges.clone())
            .build()
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}: cannot build BPE from GGUF vocabulary: {e}",
                    path.display()
                )
            })?;
        let mut tk = tokenizers::Tokenizer::new(bpe);
        let byte_level = ByteLevel::new(false, true, true);
        let pre_tok: PreTokenizerWrapper = match pre.as_str() {
            "default" | "gpt-2" | "gpt2" => byte_level.into(),
            // llama.cpp's SmolLM pre-tokenizer: digits one by one, then GPT-2's regex.
            "smollm" | "starcoder" | "refact" => {
                Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()
            }
            other => bail!(
                "{}: GGUF pre-tokenizer `{other}` is not supported yet (default, gpt-2, smollm, starcoder are); give `tokenizer: {{file: tokenizer.json}}` instead",
                path.display()
            ),
        };
        tk.with_pre_tokenizer(Some(pre_tok));
        tk.with_decoder(Some(tokenizers::decoders::byte_level::ByteLevel::default()));
        // Control (3) and user-defined (4) tokens are matched whole.
        let special: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, t)| **t == 3 || **t == 4)
            .map(|(s, _)| AddedToken::from(s.clone(), true))
            .collect();
        tk.add_special_tokens(&special);
        let token_at = |k: &str| {
            get(k)
                .and_then(|v| v.as_i64())
                .and_then(|i| tokens.get(i as usize).cloned())
        };
        let chat_template = get("tokenizer.chat_template")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let hashed = serde_json::json!({
            "model": model, "pre": pre, "tokens": tokens, "types": types,
            "merges": merges.iter().map(|(a, b)| format!("{a} {b}")).collect::<Vec<_>>(),
        });
        Ok(Tokenizer {
            kind: Kind::Hf(Box::new(tk)),
            info: TokenizerInfo {
                source: "gguf",
                id: path.display().to_string(),
                content_sha256: sha256_hex(canonical_json(&hashed).as_bytes()),
                chat_template: chat_template.is_some(),
            },
            bos_token: token_at("tokenizer.ggml.bos_token_id"),
            eos_token: token_at("tokenizer.ggml.eos_token_id"),
            chat_template,
        })
    }

    /// Tokens in `text`, without special tokens added (BOS/EOS).
    pub fn count(&self, text: &str) -> u64 {
        match &self.kind {
            Kind::Words => crate::tokens::count_tokens(text),
            Kind::Hf(tk) => tk
                .encode_fast(text, false)
                .map(|e| e.len() as u64)
                .unwrap_or(0),
        }
    }

    /// Token ids of `text` (the words tokenizer has none).
    pub fn encode(&self, text: &str) -> Option<Vec<u32>> {
        match &self.kind {
            Kind::Words => None,
            Kind::Hf(tk) => tk
                .encode_fast(text, false)
                .ok()
                .map(|e| e.get_ids().to_vec()),
        }
    }

    pub fn decode(&self, ids: &[u32]) -> Option<String> {
        match &self.kind {
            Kind::Words => None,
            Kind::Hf(tk) => tk.decode(ids, false).ok(),
        }
    }

    pub fn vocab(&self) -> Option<std::collections::HashMap<String, u32>> {
        match &self.kind {
            Kind::Words => None,
            Kind::Hf(tk) => Some(tk.get_vocab(false)),
        }
    }

    /// The text a chat server feeds its model for one user message, when the
    /// model's chat template is known (GGUF); `None` otherwise.
    pub fn apply_chat_template(&self, user: &str) -> Option<String> {
        let tpl = self.chat_template.as_ref()?;
        let mut env = minijinja::Environment::new();
        env.add_template("chat", tpl).ok()?;
        let ctx = minijinja::context! {
            messages => vec![minijinja::context!{ role => "user", content => user }],
            add_generation_prompt => true,
            bos_token => self.bos_token.clone().unwrap_or_default(),
            eos_token => self.eos_token.clone().unwrap_or_default(),
        };
        env.get_template("chat").ok()?.render(ctx).ok()
    }

    /// Prompt tokens as the server will count them for this API: for chat, the
    /// templated conversation when the template is known, else the raw prompt.
    pub fn prompt_tokens(&self, prompt: &str, chat: bool) -> u64 {
        if chat {
            if let Some(t) = self.apply_chat_template(prompt) {
                return self.count(&t);
            }
        }
        self.count(prompt)
    }
}

#[cfg(test)]
mod tests {
    use super::gguf::tests::write_gguf;
    use super::gguf::Value;
    use super::*;

    fn tiny_gguf(dir: &Path) -> PathBuf {
        // A byte-level BPE over "ab" with one merge, plus a control token.
        let tokens = ["a", "b", "Ġ", "ab", "Ġa", "<|im_end|>"];
        let p = dir.join("tiny.gguf");
        write_gguf(
            &p,
            &[
                ("tokenizer.ggml.model", Value::Str("gpt2".into())),
                ("tokenizer.ggml.pre", Value::Str("smollm".into())),
                (
                    "tokenizer.ggml.tokens",
                    Value::Array(tokens.iter().map(|t| Value::Str(t.to_string())).collect()),
                ),
                (
                    "tokenizer.ggml.token_type",
                    Value::Array(
                        vec![Value::Int(1); 5]
                            .into_iter()
                            .chain([Value::Int(3)])
                            .collect(),
                    ),
                ),
                (
                    "tokenizer.ggml.merges",
                    Value::Array(vec![Value::Str("a b".into()), Value::Str("Ġ a".into())]),
                ),
                ("tokenizer.ggml.eos_token_id", Value::UInt(5)),
                (
                    "tokenizer.chat_template",
                    Value::Str(
                        "{% for m in messages %}<|im_start|>{{ m.content }}<|im_end|>{% endfor %}"
                            .into(),
                    ),
                ),
            ],
        );
        p
    }

    #[test]
    fn gguf_bpe_tokenizer_encodes_with_merges_and_specials() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tokenizer::from_gguf(&tiny_gguf(dir.path())).unwrap();
        assert_eq!(t.encode("ab").unwrap(), vec![3]);
        assert_eq!(t.encode("ab a").unwrap(), vec![3, 4]);
        assert_eq!(t.encode("ab<|im_end|>").unwrap(), vec![3, 5]);
        assert_eq!(t.info.source, "gguf");
        assert!(t.info.chat_template);
        assert_eq!(
            t.apply_chat_template("ab").unwrap(),
            "<|im_start|>ab<|im_end|>"
        );
    }

    #[test]
    fn unsupported_gguf_model_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("spm.gguf");
        write_gguf(&p, &[("tokenizer.ggml.model", Value::Str("llama".into()))]);
        let e = Tokenizer::from_gguf(&p).err().unwrap().to_string();
        assert!(
            e.contains("`llama` is not supported from GGUF yet") && e.contains("tokenizer.json"),
            "{e}"
        );
    }

    #[test]
    fn words_tokenizer_counts_whitespace_runs() {
        let t = Tokenizer::words();
        assert_eq!(t.count("a  b\nc"), 3);
        assert_eq!(t.prompt_tokens("a b", true), 2);
    }
}
