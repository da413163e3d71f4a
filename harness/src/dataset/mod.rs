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
pub mod trace;

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
    Trace(Arc<TraceSource>),
}

/// A trace and the prompts its requests send.
pub struct TraceSource {
    pub trace: trace::Trace,
    pub prompts: TracePrompts,
}

pub enum TracePrompts {
    Synthetic(synthetic::Generator),
    /// Sorted by prompt tokens; each request takes the row nearest its
    /// traced length.
    Rows(Vec<Row>),
}

impl TraceSource {
    /// Request `i`'s prompt, its tokens as counted, and its output tokens:
    /// the trace's row `i` (cycling when more are asked for than the trace
    /// holds).
    pub fn item(&self, i: u64) -> (Arc<str>, u64, u32) {
        let r = &self.trace.rows[(i % self.trace.rows.len() as u64) as usize];
        match &self.prompts {
            TracePrompts::Synthetic(g) => {
                let (p, n) = g.text(i, r.prompt_tokens);
                (Arc::from(p), n as u64, r.output_tokens)
            }
            TracePrompts::Rows(rows) => {
                let row = nearest(rows, r.prompt_tokens as u64);
                (row.prompt.clone(), row.prompt_tokens, r.output_tokens)
            }
        }
    }
}

/// The row whose prompt is nearest `n` tokens (the shorter on a tie), in
/// rows sorted by prompt tokens.
fn nearest(rows: &[Row], n: u64) -> &Row {
    let i = rows.partition_point(|r| r.prompt_tokens < n);
    match (i.checked_sub(1).map(|j| &rows[j]), rows.get(i)) {
        (Some(lo), Some(hi)) if n - lo.prompt_tokens <= hi.prompt_tokens - n => lo,
        (_, Some(hi)) => hi,
        (Some(lo), None) => lo,
        (None, None) => unreachable!("a JSONL dataset has rows"),
    }
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
            shared_prefix,
            cold_baseline,
        } => {
            let generator = |cold| {
                synthetic::Generator::new(
                    tok,
                    dataset_seed(seed, &ds.name),
                    *prompt_tokens,
                    *output_tokens,
                    *shared_prefix,
                    cold,
                )
                .map(|g| Source::Synthetic(Arc::new(g)))
            };
            // Shared prefixes with a cold baseline are two buckets: the same
            // prompts, with and without prefixes another request shares.
            let buckets = if *cold_baseline {
                vec![
                    Bucket {
                        name: "shared".into(),
                        source: generator(false)?,
                    },
                    Bucket {
                        name: "cold".into(),
                        source: generator(true)?,
                    },
                ]
            } else {
                vec![Bucket {
                    name: "all".into(),
                    source: generator(false)?,
                }]
            };
            let mut spec = json!({"prompt_tokens": prompt_tokens, "output_tokens": output_tokens, "shared_prefix_tokens": shared_prefix.tokens});
            // Only when set beyond one prefix for all, so that other ids stay.
            if *shared_prefix
                != (synthetic::SharedPrefix {
                    tokens: shared_prefix.tokens,
                    ..Default::default()
                })
                || *cold_baseline
            {
                spec["shared_prefix"] = json!({
                    "prefixes": shared_prefix.prefixes,
                    "requests_per_prefix": shared_prefix.requests_per_prefix,
                    "cold_baseline": cold_baseline,
                    "cold_nonce_tokens": synthetic::COLD_NONCE_TOKENS,
                });
            }
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
                buckets,
            })
        }
        DatasetSource::Trace {
            path,
            format,
            start_s,
            model,
            prompts,
        } => {
            let (t, bytes) = trace::read(
                std::path::Path::new(path),
                *format,
                *start_s,
                model.as_deref(),
            )?;
            let max_prompt = t.rows.iter().map(|r| r.prompt_tokens).max().unwrap_or(1);
            let (prompts, prompts_sha256) = match prompts {
                crate::config::TracePrompts::Synthetic => {
                    let g = synthetic::Generator::new(
                        tok,
                        dataset_seed(seed, &ds.name),
                        synthetic::Length::Fixed(max_prompt),
                        synthetic::Length::Fixed(1),
                        Default::default(),
                        false,
                    )?;
                    (TracePrompts::Synthetic(g), None)
                }
                crate::config::TracePrompts::Jsonl { path, template } => {
                    let (mut rows, bytes) = jsonl_rows(path, template, "answers", tok)?;
                    rows.sort_by_key(|r| (r.prompt_tokens, r.line));
                    (TracePrompts::Rows(rows), Some(sha256_hex(&bytes)))
                }
            };
            let spec = json!({
                "format": t.format,
                "start_s": start_s,
                "model": model,
                "prompts": prompts_spec(&ds.source),
                "prompts_sha256": prompts_sha256,
                "generator_version": SYNTHETIC_GENERATOR_VERSION,
                "span_s": t.span_s(),
                "mean_rate": t.mean_rate(),
            });
            let rows = t.rows.len() as u64;
            Ok(Prepared {
                card: Card {
                    dataset: ds.name.clone(),
                    kind: "trace",
                    path: Some(path.clone()),
                    content_sha256: sha256_hex(&bytes),
                    template: None,
                    bucket_edges: None,
                    rows_total: t.rows_total,
                    rows_dropped: t.rows_dropped + t.rows_skipped,
                    rows_per_bucket: vec![("all".into(), rows)],
                    tokenizer_id,
                    tokenizer_sha256,
                    spec,
                },
                buckets: vec![Bucket {
                    name: "all".into(),
                    source: Source::Trace(Arc::new(TraceSource { trace: t, prompts })),
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
            let (rows, bytes) = jsonl_rows(path, template, answers_key, tok)?;
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

/// The seed of dataset `name`'s generated prompts under the config's seed.
fn dataset_seed(seed: u64, name: &str) -> u64 {
    u64::from_str_radix(&sha256_hex(format!("{seed}/{name}").as_bytes())[..16], 16).expect("hex")
}

/// A JSONL file's rows rendered through `template`, with their prompt
/// tokens under `tok`, and the file's bytes.
fn jsonl_rows(
    path: &str,
    template: &str,
    answers_key: &str,
    tok: &Tokenizer,
) -> Result<(Vec<Row>, Vec<u8>)> {
    let tpl = template::Template::parse(template).map_err(anyhow::Error::msg)?;
    let (raw, bytes) = jsonl::read(std::path::Path::new(path), &tpl, answers_key)?;
    let rows = raw
        .into_iter()
        .map(|r| Row {
            line: r.line,
            prompt_tokens: tok.count(&r.prompt),
            prompt: Arc::from(r.prompt),
            answers: r.answers,
        })
        .collect();
    Ok((rows, bytes))
}

/// A trace's prompt source as hashed: `synthetic`, or the JSONL template
/// (its file is hashed by content, not path).
fn prompts_spec(source: &DatasetSource) -> Value {
    match source {
        DatasetSource::Trace {
            prompts: crate::config::TracePrompts::Jsonl { template, .. },
            ..
        } => json!({"jsonl": {"template": template}}),
        _ => json!("synthetic"),
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
        if self.kind == "trace" {
            let sp = &self.spec;
            s += &format!(
                "  format:      {} (prompts: {})\n",
                sp["format"].as_str().unwrap_or("?"),
                sp["prompts"]
            );
            let rate = sp["mean_rate"]
                .as_f64()
                .map_or("-".into(), |r| format!("{r:.3} req/s"));
            s += &format!(
                "  replayed:    {} requests over {:.1} s from offset {} s (mean {rate} at speed 1)\n",
                self.rows_per_bucket.first().map_or(0, |b| b.1),
                sp["span_s"].as_f64().unwrap_or(0.0),
                sp["start_s"],
            );
            s += &format!(
                "  rows:        {} total, {} left out (failed in the traced service, another model, or before the offset)\n",
                self.rows_total, self.rows_dropped
            );
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
