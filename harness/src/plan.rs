//! Expands a config into experiments (endpoint × dataset × load level) and
//! computes each experiment's id.
//!
//! The id is SHA-256 over the canonical JSON of exactly what defines the
//! workload (see `docs/experiment-id.md`): endpoint identity (name, provider,
//! model, API, streaming, instance type and count, serving stack, simulator
//! settings), the dataset (name, spec and content hash), the load (level, stop
//! rule, warm-up, timeout, in-flight cap), the sampling parameters and the seed.
//! Not hashed: the endpoint's base URL and credentials, headers, pricing and
//! budgets, the output location, the harness version, host and time.

use crate::config::{Config, Dataset, DatasetSource, Endpoint, LoadLevel, ProviderKind};
use crate::schedule::LoadPlan;
use harness_core::hash::{canonical_json, experiment_id, sha256_hex, HASH_SCHEMA_VERSION};
use serde_json::{json, Value};

/// Version of the synthetic prompt generator; part of the dataset hash.
pub const SYNTHETIC_GENERATOR_VERSION: u32 = 1;

#[derive(Debug, Clone)]
pub struct Experiment {
    pub id: String,
    pub ordinal: usize,
    pub label: String,
    pub endpoint: Endpoint,
    pub dataset: Dataset,
    pub plan: LoadPlan,
    pub max_tokens: u32,
    pub hash_inputs: Value,
}

/// The content hash of a dataset: what its prompts are generated from.
pub fn dataset_hash(d: &Dataset) -> String {
    let v = match &d.source {
        DatasetSource::Synthetic { .. } => json!({
            "generator": "synthetic-words",
            "generator_version": SYNTHETIC_GENERATOR_VERSION,
            "source": d.source,
        }),
    };
    sha256_hex(canonical_json(&v).as_bytes())
}

pub fn expand(cfg: &Config) -> Vec<Experiment> {
    let mut out = vec![];
    for ep in &cfg.endpoints {
        for ds in &cfg.datasets {
            for level in &cfg.load.levels {
                let max_tokens = cfg.sampling.max_tokens.unwrap_or(match ds.source {
                    DatasetSource::Synthetic { output_tokens, .. } => output_tokens,
                });
                let plan = LoadPlan {
                    level: *level,
                    requests: cfg.load.requests,
                    duration: cfg.load.duration,
                    warmup_requests: cfg.load.warmup_requests,
                    warmup_duration: cfg.load.warmup_duration,
                    max_in_flight: cfg.load.max_in_flight,
                    seed: cfg.seed,
                };
                let hash_inputs = hash_inputs(cfg, ep, ds, level, max_tokens);
                out.push(Experiment {
                    id: experiment_id(&hash_inputs),
                    ordinal: out.len(),
                    label: format!("{} · {} · {}", ep.name, ds.name, level.label()),
                    endpoint: ep.clone(),
                    dataset: ds.clone(),
                    plan,
                    max_tokens,
                    hash_inputs,
                });
            }
        }
    }
    out
}

fn hash_inputs(
    cfg: &Config,
    ep: &Endpoint,
    ds: &Dataset,
    level: &LoadLevel,
    max_tokens: u32,
) -> Value {
    let secs = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64());
    json!({
        "schema": HASH_SCHEMA_VERSION,
        "endpoint": {
            "name": ep.name,
            "provider": ep.provider,
            "model": ep.model,
            "api": ep.api,
            "stream": ep.stream,
            "instance_type": ep.instance_type,
            "instance_count": ep.instance_count,
            "serving_stack": ep.serving_stack,
            "sim": if ep.provider == ProviderKind::Sim { serde_json::to_value(&ep.sim).expect("json") } else { Value::Null },
        },
        "dataset": {
            "name": ds.name,
            "source": ds.source,
            "content_sha256": dataset_hash(ds),
        },
        "load": {
            "level": level,
            "requests": cfg.load.requests,
            "duration_s": secs(cfg.load.duration),
            "warmup_requests": cfg.load.warmup_requests,
            "warmup_duration_s": secs(cfg.load.warmup_duration),
            "timeout_s": cfg.load.timeout.as_secs_f64(),
            "max_in_flight": cfg.load.max_in_flight,
        },
        "sampling": {
            "max_tokens": max_tokens,
            "temperature": cfg.sampling.temperature,
            "top_p": cfg.sampling.top_p,
            "ignore_eos": cfg.sampling.ignore_eos,
        },
        "seed": cfg.seed,
    })
}
