//! Expands a config into experiments (endpoint × dataset bucket × load level)
//! and computes each experiment's id.
//!
//! Preparing a dataset needs the endpoint's tokenizer (buckets are in tokens),
//! so expansion loads each distinct tokenizer once and prepares each dataset
//! once per tokenizer.
//!
//! The id is SHA-256 over the canonical JSON of exactly what defines the
//! workload (see `docs/experiment-id.md`): endpoint identity (name, provider,
//! model, API, streaming, instance type and count, serving stack, simulator
//! settings, tokenizer content hash, `extra_body` when not empty), the dataset (name, kind, bucket, spec and
//! content hash), the load (level, stop rule, warm-up, timeout, in-flight cap),
//! the sampling parameters and the seed. Not hashed: the endpoint's base URL and
//! credentials, headers, file paths, pricing and budgets, the output location,
//! the harness version, host and time.

use crate::config::{
    Config, Dataset, Endpoint, LoadLevel, ProviderKind, SearchSettings, TokenizerSpec,
};
use crate::dataset::{self, Card, Prepared};
use crate::schedule::LoadPlan;
use crate::tokenizer::Tokenizer;
use anyhow::{Context, Result};
use harness_core::hash::{experiment_id, HASH_SCHEMA_VERSION};
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Clone)]
pub struct Experiment {
    pub id: String,
    pub ordinal: usize,
    pub label: String,
    pub endpoint: Endpoint,
    pub dataset: Dataset,
    pub tokenizer: Arc<Tokenizer>,
    pub prepared: Arc<Prepared>,
    /// Index into `prepared.buckets`.
    pub bucket: usize,
    pub plan: LoadPlan,
    pub hash_inputs: Value,
    /// Set on a capacity search's first probe, which stands for the whole
    /// search in the plan: the run probes from it ([`probe`]).
    pub search: Option<Arc<SearchPlan>>,
    /// Set on a probe: the search that runs it.
    pub probe_of: Option<Arc<SearchPlan>>,
}

/// One capacity search (`load.search`) over an endpoint and dataset bucket.
#[derive(Debug)]
pub struct SearchPlan {
    /// SHA-256 over the probes' shared inputs and the search settings.
    pub id: String,
    /// e.g. `vllm · chat · rate search`.
    pub label: String,
    pub settings: SearchSettings,
    /// The budget the probes are judged against (and stopped early by).
    pub budget: harness_core::recommend::Constraints,
}

impl Experiment {
    pub fn bucket_name(&self) -> &str {
        &self.prepared.buckets[self.bucket].name
    }
    pub fn card(&self) -> &Card {
        &self.prepared.card
    }
    /// A capacity probe's early-stop rule, when its search stops probes
    /// early: it stops once its budget is clearly broken.
    pub fn early_stop(&self) -> Option<harness_core::search::EarlyStop> {
        let s = self.probe_of.as_ref().filter(|s| s.settings.early_stop)?;
        let planned = self.plan.requests.filter(|_| self.plan.duration.is_none());
        Some(harness_core::search::EarlyStop::new(&s.budget, planned))
    }

    /// The hash inputs as canonical JSON, as stored in the bundle.
    pub fn hash_inputs_json(&self) -> String {
        harness_core::hash::canonical_json(&self.hash_inputs)
    }
}

/// Loads tokenizers, prepares datasets and expands the config.
pub async fn expand(cfg: &Config) -> Result<Vec<Experiment>> {
    let mut tokenizers: Vec<(TokenizerSpec, Arc<Tokenizer>)> = vec![];
    let mut prepared: Vec<((usize, usize), Arc<Prepared>)> = vec![];
    let mut out = vec![];
    for ep in &cfg.endpoints {
        let t_idx = match tokenizers.iter().position(|(s, _)| *s == ep.tokenizer) {
            Some(i) => i,
            None => {
                let t = Tokenizer::load(&ep.tokenizer)
                    .await
                    .with_context(|| format!("endpoint `{}`: loading its tokenizer", ep.name))?;
                tokenizers.push((ep.tokenizer.clone(), Arc::new(t)));
                tokenizers.len() - 1
            }
        };
        let tok = tokenizers[t_idx].1.clone();
        for (d_idx, ds) in cfg.datasets.iter().enumerate() {
            let p = match prepared.iter().find(|(k, _)| *k == (t_idx, d_idx)) {
                Some((_, p)) => p.clone(),
                None => {
                    let p = Arc::new(
                        dataset::prepare(ds, &tok, cfg.seed)
                            .with_context(|| format!("dataset `{}`", ds.name))?,
                    );
                    prepared.push(((t_idx, d_idx), p.clone()));
                    p
                }
            };
            for b in 0..p.buckets.len() {
                let search = cfg.load.search.map(|s| (s.level(s.spec.start), s));
                for (level, search) in cfg
                    .load
                    .levels
                    .iter()
                    .map(|l| (*l, None))
                    .chain(search.map(|(l, s)| (l, Some(s))))
                {
                    let level = &level;
                    // A replay runs to its trace's end unless capped; any
                    // other level sends 100 requests when nothing caps it.
                    let requests = match level {
                        LoadLevel::Replay { .. } => cfg.load.requests,
                        _ if cfg.load.duration.is_none() => cfg.load.requests.or(Some(100)),
                        _ => cfg.load.requests,
                    };
                    let arrivals = match (level, &p.buckets[b].source) {
                        (LoadLevel::Replay { speed }, dataset::Source::Trace(t)) => {
                            Some(LoadPlan::replay_arrivals(
                                t.trace.rows.iter().map(|r| r.at_s),
                                *speed,
                                cfg.load.warmup_requests,
                                requests,
                                cfg.load.duration,
                            ))
                        }
                        (LoadLevel::Replay { .. }, _) => anyhow::bail!(
                            "dataset `{}` is not a trace: replay levels need trace datasets",
                            ds.name
                        ),
                        _ => None,
                    };
                    let plan = LoadPlan {
                        level: *level,
                        requests,
                        duration: cfg.load.duration,
                        warmup_requests: cfg.load.warmup_requests,
                        warmup_duration: cfg.load.warmup_duration,
                        max_in_flight: cfg.load.max_in_flight,
                        seed: cfg.seed,
                        arrivals,
                        shard: None,
                    };
                    let bucket = &p.buckets[b].name;
                    let hash_inputs = hash_inputs(cfg, ep, &tok, ds, &p.card, bucket, &plan);
                    let cell = if bucket == "all" {
                        format!("{} · {}", ep.name, ds.name)
                    } else {
                        format!("{} · {}[{bucket}]", ep.name, ds.name)
                    };
                    let mut exp = Experiment {
                        id: experiment_id(&hash_inputs),
                        ordinal: out.len(),
                        label: format!("{cell} · {}", level.label()),
                        endpoint: ep.clone(),
                        dataset: ds.clone(),
                        tokenizer: tok.clone(),
                        prepared: p.clone(),
                        bucket: b,
                        plan,
                        hash_inputs,
                        search: None,
                        probe_of: None,
                    };
                    if let Some(settings) = search {
                        let budget = cfg.budgets.constraints().without_cost();
                        let mut key = exp.hash_inputs.clone();
                        key["load"]["level"] = json!({"search": settings});
                        key["load"]["budget"] = json!(budget);
                        let axis = match settings.spec.axis {
                            harness_core::search::Axis::Rate => "rate",
                            harness_core::search::Axis::Concurrency => "concurrency",
                        };
                        let plan = Arc::new(SearchPlan {
                            id: experiment_id(&key),
                            label: format!("{cell} · {axis} search"),
                            settings,
                            budget,
                        });
                        exp = probe(&exp, &plan, settings.spec.start);
                        exp.search = Some(plan);
                    }
                    out.push(exp);
                }
            }
        }
    }
    Ok(out)
}

/// The probe of `search` at `load`, from any experiment of its endpoint
/// and dataset bucket (`of`). Its id hashes what any experiment's does, with
/// the level at `load`, plus `load.search_probe`: the budget it is judged
/// against when it may stop early (an early-stopped probe measures less than
/// a full one), else null. So a probe is never mistaken for a grid level's
/// experiment, and a rerun of the same search finds its completed probes.
pub fn probe(of: &Experiment, search: &Arc<SearchPlan>, load: f64) -> Experiment {
    let level = search.settings.level(load);
    let mut hash_inputs = of.hash_inputs.clone();
    hash_inputs["load"]["level"] = json!(level);
    hash_inputs["load"]["search_probe"] = json!({
        "early_stop": search.settings.early_stop.then(|| json!(search.budget)),
    });
    let cell = search
        .label
        .rsplit_once(" · ")
        .map(|(cell, _)| cell)
        .unwrap_or(&search.label);
    Experiment {
        id: experiment_id(&hash_inputs),
        label: format!("{cell} · {} (search)", level.label()),
        plan: LoadPlan {
            level,
            ..of.plan.clone()
        },
        hash_inputs,
        search: None,
        probe_of: Some(search.clone()),
        ..of.clone()
    }
}

fn hash_inputs(
    cfg: &Config,
    ep: &Endpoint,
    tok: &Tokenizer,
    ds: &Dataset,
    card: &Card,
    bucket: &str,
    plan: &LoadPlan,
) -> Value {
    let secs = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64());
    let mut v = json!({
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
            "tokenizer": {"source": tok.info.source, "sha256": tok.info.content_sha256},
        },
        "dataset": {
            "name": ds.name,
            "kind": card.kind,
            "bucket": bucket,
            "spec": card.spec,
            "content_sha256": card.content_sha256,
        },
        "load": {
            "level": plan.level,
            "requests": plan.requests,
            "duration_s": secs(cfg.load.duration),
            "warmup_requests": cfg.load.warmup_requests,
            "warmup_duration_s": secs(cfg.load.warmup_duration),
            "timeout_s": cfg.load.timeout.as_secs_f64(),
            "max_in_flight": cfg.load.max_in_flight,
        },
        "sampling": {
            "max_tokens": cfg.sampling.max_tokens,
            "temperature": cfg.sampling.temperature,
            "top_p": cfg.sampling.top_p,
            "ignore_eos": cfg.sampling.ignore_eos,
        },
        "seed": cfg.seed,
    });
    // A managed service's identity: what it is and where, and how it is
    // asked (not the endpoint URL, as with `base_url`).
    if let Some(sm) = &ep.sagemaker {
        v["endpoint"]["sagemaker"] = json!({
            "endpoint_name": sm.endpoint_name,
            "inference_component": sm.inference_component,
            "target_variant": sm.target_variant,
            "custom_attributes": sm.custom_attributes,
            "format": sm.format,
            "region": sm.region,
            "max_retries": sm.max_retries,
        });
    }
    if let Some(b) = &ep.bedrock {
        v["endpoint"]["bedrock"] = json!({
            "region": b.region,
            "max_retries": b.max_retries,
            "additional_fields": b.additional_fields,
        });
    }
    // The simulator's prefix cache changes its timing only where prompts can
    // share a prefix; only there is it named, so that other ids stay.
    if ep.provider == ProviderKind::Sim && ds.source.prompts_may_share_prefixes() {
        if let Some(s) = &ep.sim {
            v["endpoint"]["sim"]["prefix_cache"] = json!(s.prefix_cache);
        }
    }
    // Present only when set, so that ids of endpoints without it are unchanged.
    if !ep.extra_body.is_empty() {
        v["endpoint"]["extra_body"] = Value::Object(ep.extra_body.clone());
    }
    // What the harness launches shapes the figures: the AMI (`auto` until
    // resolved), the image (the stack's pinned default when not set), the
    // server's arguments (port included) and where the client runs. Not
    // hashed: market, volume, the token variable's name.
    if let Some(s) = &ep.ec2 {
        let acc = crate::deploy::ec2::Accelerator::of(ep.instance_type.as_deref().unwrap_or(""));
        v["endpoint"]["ec2"] = json!({
            "ami": s.ami.as_deref().unwrap_or("auto"),
            "image": crate::deploy::ec2::image(ep, s),
            "server_args": crate::deploy::ec2::server_args(ep, s, acc),
        });
        // Benchmarked from the harness's machine, the figures include the
        // network: a different experiment (absent for the default, so that
        // ids of `client: instance` runs are unchanged).
        if cfg.deploy.client == crate::config::ClientSite::Local {
            v["endpoint"]["ec2"]["client"] = json!("local");
        }
        // An instance of yours runs whatever AMI and drivers it has.
        if s.instance_id.is_some() {
            v["endpoint"]["ec2"]["ami"] = json!("existing instance");
        }
    }
    v
}
