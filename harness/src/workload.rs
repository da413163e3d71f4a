//! What each request sends: prompts generated from the dataset spec.

use crate::config::DatasetSource;
use crate::plan::Experiment;
use crate::provider::WorkItem;
use crate::tokens::{count_tokens, synthetic_prompt};
use harness_core::hash::sha256_hex;
use std::sync::Arc;

/// Prompts for one experiment, generated up front for the requests the plan
/// will send (so generation is not on the send path) and lazily beyond that.
pub struct Workload {
    seed: u64,
    source: DatasetSource,
    max_tokens: u32,
    items: Vec<WorkItem>,
}

const PREGENERATE_MAX: u64 = 50_000;

impl Workload {
    pub fn new(exp: &Experiment, seed: u64, expected_requests: u64) -> Workload {
        // Prompts differ between datasets, and are the same for every load
        // level and endpoint (so endpoints see identical work).
        let ds_seed = u64::from_str_radix(
            &sha256_hex(format!("{seed}/{}", exp.dataset.name).as_bytes())[..16],
            16,
        )
        .expect("hex");
        let mut w = Workload {
            seed: ds_seed,
            source: exp.dataset.source.clone(),
            max_tokens: exp.max_tokens,
            items: vec![],
        };
        w.items = (0..expected_requests.min(PREGENERATE_MAX))
            .map(|i| w.generate(i))
            .collect();
        w
    }

    fn generate(&self, i: u64) -> WorkItem {
        match self.source {
            DatasetSource::Synthetic { prompt_tokens, .. } => {
                let prompt = synthetic_prompt(self.seed, i, prompt_tokens);
                WorkItem {
                    prompt_tokens_client: count_tokens(&prompt),
                    prompt: Arc::from(prompt),
                    max_tokens: self.max_tokens,
                }
            }
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
