//! Datasets: where prompts come from, bucketed by prompt length in tokens
//! under the endpoint's tokenizer.
//!
//! Buckets: edges `[e0, e1, ..., en]` make buckets `[e0, e1)`, `[e1, e2)`, ...,
//! and the last one `[e(n-1), en]` — lower edges inclusive, upper edges
//! exclusive except the last. Rows outside every bucket are dropped and counted
//! in the dataset card. Bucketing counts the raw prompt (before any chat
//! template). A dataset without `buckets` is one bucket named `all`.

pub mod jsonl;
pub mod synthetic;
pub mod template;

use crate::config::{Dataset, DatasetSource};
use crate::tokenizer::Tokenizer;
use anyhow::Result;
use harness_core::hash::{canonical_json, sha256_hex};
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Version of the synthetic prompt generator; part of the dataset hash.
pub const SYNTHETIC_GENERATOR_VERSION: u32 = 2;

#[derive(Debug, Clone)]
pub struct Row {
    pub line: usize,
    pub prompt: Arc<str>,
    pub prompt_tokens: u64,
    pub answers: Option<Value>,
}

pub enum Source {
    Rows(Arc<Vec<Row>>),
    Synthetic(Arc<synthetic::Generator>),
}

pub struct Bucket {
    /// `all`, or `lo-hi` in tokens.
    pub name: String,
    pub source: Source,
}

/// What the bundle records about a dataset as prepared for one tokenizer.
#[derive(Debug, Clone, Serialize)]
pub struct Card {
    pub dataset: String,
    pub kind: &'static str,
    pub path: Option<String>,
    pub content_sha256: String,
    pub template: Option<String>,
    pub bucket_edges: Option<Vec<u64>>,
    pub rows_total: u64,
    pub rows_dropped: u64,
    pub rows_per_bucket: Vec<(String, u64)>,
    pub tokenizer_id: String,
    pub tokenizer_sha256: String,
    pub spec: Value,
}

pub struct Prepared {
    pub card: Card,
    pub buckets: Vec<Bucket>,
}

/// The bucket index of `n` tokens for `edges`, as documented above.
pub fn bucket_of(edges: &[u64], n: u64) -> Option<usize> {
    let last = edges.len().checked_sub(2)?;
    (0..=last).find(|&i| n >= edges[i] && (n < edges[i + 1] || (i == last && n == edges[i + 1])))
}

pub fn bucket_name(edges: &[u64], i: usize) -> String {
    format!("{}-{}", edges[i], edges[i + 1])
}

pub fn prepare(ds: &Dataset, tok: &Tokenizer, seed: u64) -> Result<Prepared> {
    let tokenizer_id = tok.info.id.clone();
    let tokenizer_sha256 = tok.info.content_sha256.clone();
    match &ds.source {
        DatasetSource::Synthetic {
            prompt_tokens,
            output_tokens,
            shared_prefix_tokens,
        } => {
            let ds_seed = u64::from_str_radix(
                &sha256_hex(format!("{seed}/{}", ds.name).as_bytes())[..16],
                16,
            )
            .expect("hex");
            let g = synthetic::Generator::new(
                tok,
                ds_seed,
                *prompt_tokens,
                *output_tokens,
                *shared_prefix_tokens,
            )?;
            let spec = json!({"prompt_tokens": prompt_tokens, "output_tokens": output_tokens, "shared_prefix_tokens": shared_prefix_tokens});
            let hashed = json!({"generator": "synthetic-pieces", "version": SYNTHETIC_GENERATOR_VERSION, "spec": spec});
            Ok(Prepared {
                card: Card {
                    dataset: ds.name.clone(),
                    kind: "synthetic",
                    path: None,
                    content_sha256: sha256_hex(canonical_json(&hashed).as_bytes()),
                    template: None,
                    bucket_edges: None,
                    rows_total: 0,
                    rows_dropped: 0,
                    rows_per_bucket: vec![],
                    tokenizer_id,
                    tokenizer_sha256,
                    spec,
                },
                buckets: vec![Bucket {
                    name: "all".into(),
                    source: Source::Synthetic(Arc::new(g)),
                }],
            })
        }
        DatasetSource::Jsonl {
            path,
            template,
            answers_key,
            buckets,
            output_tokens,
        } => {
            let tpl = template::Template::parse(template).map_err(anyhow::Error::msg)?;
            let (raw, bytes) = jsonl::read(std::path::Path::new(path), &tpl, answers_key)?;
            let rows: Vec<Row> = raw
                .into_iter()
                .map(|r| Row {
                    line: r.line,
                    prompt_tokens: tok.count(&r.prompt),
                    prompt: Arc::from(r.prompt),
                    answers: r.answers,
                })
                .collect();
            let total = rows.len() as u64;
            let mut out: Vec<(String, Vec<Row>)> = match buckets {
                Some(edges) => (0..edges.len() - 1)
                    .map(|i| (bucket_name(edges, i), vec![]))
                    .collect(),
                None => vec![("all".into(), vec![])],
            };
            let mut dropped = 0;
            for r in rows {
                match buckets {
                    Some(edges) => match bucket_of(edges.as_slice(), r.prompt_tokens) {
                        Some(i) => out[i].1.push(r),
                        None => dropped += 1,
                    },
                    None => out[0].1.push(r),
                }
            }
            let spec = json!({"template": template, "answers_key": answers_key, "buckets": buckets, "output_tokens": output_tokens});
            Ok(Prepared {
                card: Card {
                    dataset: ds.name.clone(),
                    kind: "jsonl",
                    path: Some(path.clone()),
                    content_sha256: sha256_hex(&bytes),
                    template: Some(template.clone()),
                    bucket_edges: buckets.clone(),
                    rows_total: total,
                    rows_dropped: dropped,
                    rows_per_bucket: out
                        .iter()
                        .map(|(n, r)| (n.clone(), r.len() as u64))
                        .collect(),
                    tokenizer_id,
                    tokenizer_sha256,
                    spec,
                },
                // Empty buckets have nothing to send: no experiment.
                buckets: out
                    .into_iter()
                    .filter(|(_, r)| !r.is_empty())
                    .map(|(name, r)| Bucket {
                        name,
                        source: Source::Rows(Arc::new(r)),
                    })
                    .collect(),
            })
        }
    }
}

impl Card {
    /// The card as text (`harness datasets inspect`).
    pub fn render(&self) -> String {
        let mut s = format!("dataset {} ({})\n", self.dataset, self.kind);
        if let Some(p) = &self.path {
            s += &format!("  source:      {p}\n");
        }
        s += &format!("  sha256:      {}\n", self.content_sha256);
        s += &format!(
            "  tokenizer:   {} (sha256 {})\n",
            self.tokenizer_id,
            &self.tokenizer_sha256[..16]
        );
        if let Some(t) = &self.template {
            s += &format!(
                "  template:    {}\n",
                serde_json::to_string(t).expect("string")
            );
        }
        if self.kind == "synthetic" {
            s += &format!("  spec:        {}\n", self.spec);
            return s;
        }
        match &self.bucket_edges {
            Some(e) => s += &format!("  buckets:     edges {e:?} (lower inclusive, upper exclusive; the last bucket includes its upper edge)\n"),
            None => s += "  buckets:     one bucket, `all`\n",
        }
        for (b, n) in &self.rows_per_bucket {
            s += &format!("    {b:>12}  {n} rows\n");
        }
        s += &format!(
            "  rows:        {} total, {} dropped (outside every bucket)\n",
            self.rows_total, self.rows_dropped
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_edges_are_lower_inclusive_upper_exclusive_last_inclusive() {
        let e = [1, 500, 1000, 2000];
        assert_eq!(bucket_of(&e, 0), None);
        assert_eq!(bucket_of(&e, 1), Some(0));
        assert_eq!(bucket_of(&e, 499), Some(0));
        assert_eq!(bucket_of(&e, 500), Some(1));
        assert_eq!(bucket_of(&e, 999), Some(1));
        assert_eq!(bucket_of(&e, 1000), Some(2));
        assert_eq!(
            bucket_of(&e, 2000),
            Some(2),
            "the last upper edge is inclusive"
        );
        assert_eq!(bucket_of(&e, 2001), None);
        assert_eq!(bucket_name(&e, 1), "500-1000");
    }
}
