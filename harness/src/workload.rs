//! What each request sends, drawn from the experiment's dataset bucket.
//!
//! JSONL rows are sent in file order, cycling when the plan asks for more
//! requests than the bucket has rows. Synthetic prompts are generated per
//! request number. A trace's request `i` has row `i`'s traced lengths
//! (cycling likewise), its prompt generated or taken from the nearest JSONL
//! row; `sampling.max_tokens` overrides the traced output length. Items for the requests the plan is expected to send are
//! built before the experiment starts, so generation and token counting stay
//! off the send path; later ones are built on demand.

use crate::config::{ApiKind, DatasetSource};
use crate::dataset::Source;
use crate::plan::Experiment;
use crate::provider::WorkItem;
use crate::tokenizer::Tokenizer;
use std::sync::Arc;

pub struct Workload {
    exp: Experiment,
    tok: Arc<Tokenizer>,
    chat: bool,
    max_tokens: Option<u32>,
    items: Vec<WorkItem>,
}

const PREGENERATE_MAX: u64 = 50_000;

impl Workload {
    pub fn new(exp: &Experiment, max_tokens: Option<u32>, expected_requests: u64) -> Workload {
        let mut w = Workload {
            exp: exp.clone(),
            tok: exp.tokenizer.clone(),
            chat: exp.endpoint.api == ApiKind::Chat,
            max_tokens,
            items: vec![],
        };
        w.items = (0..expected_requests.min(PREGENERATE_MAX))
            .map(|i| w.generate(i))
            .collect();
        w
    }

    fn generate(&self, i: u64) -> WorkItem {
        let (prompt, raw_tokens, out): (Arc<str>, u64, u32) =
            match &self.exp.prepared.buckets[self.exp.bucket].source {
                Source::Rows(rows) => {
                    let r = &rows[(i % rows.len() as u64) as usize];
                    let out = match self.exp.dataset.source {
                        DatasetSource::Jsonl { output_tokens, .. } => output_tokens,
                        DatasetSource::Synthetic { .. } | DatasetSource::Trace { .. } => 128,
                    };
                    (r.prompt.clone(), r.prompt_tokens, out)
                }
                Source::Synthetic(g) => {
                    let (p, n, out) = g.item(i);
                    (Arc::from(p), n as u64, out)
                }
                Source::Trace(t) => t.item(i),
            };
        // Chat servers count the templated conversation: do the same when the
        // template is known (docs/metrics.md, "Token counts").
        let prompt_tokens_client = if self.chat && self.tok.info.chat_template {
            self.tok.prompt_tokens(&prompt, true)
        } else {
            raw_tokens
        };
        WorkItem {
            prompt,
            prompt_tokens_client,
            max_tokens: self.max_tokens.unwrap_or(out),
        }
    }

    /// The item for request `seq`.
    pub fn item(&self, seq: u64) -> WorkItem {
        match self.items.get(seq as usize) {
            Some(it) => it.clone(),
            None => self.generate(seq),
        }
    }
}
