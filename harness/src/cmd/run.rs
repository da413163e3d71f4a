//! `harness run`: load config → expand → skip what the bundle already holds →
//! run each experiment → write it → print the summary.

use crate::bundle::{read, Bundle, ExperimentRow, RunRow};
use crate::cli::RunArgs;
use crate::config::{self, ApiKind, Config, Endpoint, LoadLevel, ProviderKind};
use crate::plan::Experiment;
use crate::progress::Progress;
use crate::provider::openai::{OpenAiClient, OpenAiOptions};
use crate::provider::Provider;
use crate::report::table;
use crate::runner;
use crate::sim::{Engine, EngineOptions, SimServer};
use crate::workload::Workload;
use anyhow::{Context, Result};
use chrono::Utc;
use harness_core::hash::sha256_hex;
use harness_core::ExperimentSummary;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Where the bundle goes: `--out` as a file (.duckdb) or directory, else
/// `<output.dir>/<config name>.duckdb`.
pub fn bundle_path(cfg: &Config, out: Option<&Path>) -> PathBuf {
    let file = format!("{}.duckdb", cfg.name);
    match out {
        Some(p) if p.extension().is_some_and(|e| e == "duckdb") => p.to_path_buf(),
        Some(dir) => dir.join(file),
        None => Path::new(&cfg.output_dir).join(file),
    }
}

/// API keys, read once before any experiment starts. Never stored or printed.
fn credentials(cfg: &Config) -> Result<BTreeMap<String, String>> {
    let mut keys = BTreeMap::new();
    let mut missing = vec![];
    for ep in &cfg.endpoints {
        if let Some(var) = &ep.api_key_env {
            match std::env::var(var) {
                Ok(v) if !v.is_empty() => {
                    keys.insert(ep.name.clone(), v);
                }
                _ => missing.push(format!(
                    "endpoint `{}` reads its API key from ${var}, which is not set",
                    ep.name
                )),
            }
        }
    }
    if !missing.is_empty() {
        anyhow::bail!(
            "{}\nset the variable(s), or remove `api_key_env` for servers without authentication",
            missing.join("\n")
        );
    }
    Ok(keys)
}

fn pool_size(level: &LoadLevel) -> usize {
    match level {
        LoadLevel::Closed { concurrency } => *concurrency as usize,
        LoadLevel::Open { .. } => 1024,
    }
}

/// The provider for an experiment, and the simulator behind it if any.
async fn provider_for(
    cfg: &Config,
    exp: &Experiment,
    key: Option<&String>,
) -> Result<(Provider, Option<SimServer>)> {
    let ep: &Endpoint = &exp.endpoint;
    let (base_url, sim) = match ep.provider {
        ProviderKind::Openai => (ep.base_url.clone().expect("validated"), None),
        ProviderKind::Sim => {
            let s = ep.sim.as_ref().expect("validated");
            let profile = crate::cmd::sim::profile_for(&s.profile, s.ttft_ms, s.itl_ms)
                .map_err(anyhow::Error::msg)?;
            let engine = Engine::new(
                profile,
                EngineOptions {
                    seed: cfg.seed,
                    max_concurrency: s.max_concurrency,
                    error_rate: s.error_rate,
                    error_kind: s.error_kind,
                },
            );
            let server = SimServer::start("127.0.0.1:0".parse().expect("addr"), engine).await?;
            (server.base_url(), Some(server))
        }
    };
    let client = OpenAiClient::new(OpenAiOptions {
        base_url: &base_url,
        model: &ep.model,
        api: ep.api,
        stream: ep.stream,
        api_key: key.cloned(),
        headers: &ep.headers,
        sampling: cfg.sampling.clone(),
        pool_size: pool_size(&exp.plan.level),
    })?;
    Ok((Provider::OpenAi(client), sim))
}

fn expected_requests(exp: &Experiment) -> u64 {
    let p = &exp.plan;
    let by_duration = p.duration.map(|d| match p.level {
        LoadLevel::Open { rate, .. } => (rate * d.as_secs_f64() * 1.2) as u64 + 16,
        LoadLevel::Closed { .. } => 256,
    });
    p.warmup_requests + p.requests.or(by_duration).unwrap_or(256)
}

pub async fn run(a: RunArgs) -> Result<ExitCode> {
    // Parse, validate, expand.
    let (loaded, experiments) = match super::load(&a.config).await {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let cfg = &loaded.config;
    let keys = credentials(cfg)?;
    // No pricing file: an empty book, so only the config's overrides apply.
    let prices = match &cfg.pricing.file {
        Some(f) => match crate::pricing::PriceBook::load(std::path::Path::new(f)) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: {e:#}");
                return Ok(ExitCode::from(crate::EXIT_BAD_INPUT));
            }
        },
        None => crate::pricing::PriceBook::default(),
    };
    let region = cfg
        .pricing
        .region
        .clone()
        .unwrap_or_else(|| "us-east-1".into());
    let mut price_warned = HashSet::new();
    let path = bundle_path(cfg, a.out.as_deref());
    let mut bundle = Bundle::open(&path)?;
    let completed = bundle.completed_ids()?;

    let started_at = Utc::now();
    let run_id = sha256_hex(
        format!(
            "{}/{}/{}",
            started_at.to_rfc3339(),
            std::process::id(),
            path.display()
        )
        .as_bytes(),
    )[..16]
        .to_string();
    bundle.begin_run(&RunRow {
        run_id: run_id.clone(),
        started_at,
        config_file: loaded.file.clone(),
        config_name: cfg.name.clone(),
        config_yaml: loaded.effective_yaml.clone(),
        overrides: loaded.overrides.clone(),
        command_line: command_line(),
    })?;

    // Ctrl-C: stop issuing requests, let in-flight ones finish, write what is
    // done. A second Ctrl-C exits at once; completed experiments are already
    // checkpointed in the bundle.
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::SeqCst);
                eprintln!("\ninterrupted: finishing in-flight requests (Ctrl-C again to quit now)");
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(crate::EXIT_INTERRUPTED as i32);
                }
            }
        });
    }

    // Inputs first: every dataset card (and JSONL rows) as prepared.
    let mut written = HashSet::new();
    for exp in &experiments {
        let c = exp.card();
        if written.insert((c.dataset.clone(), c.tokenizer_sha256.clone())) {
            bundle.write_dataset(&exp.prepared)?;
        }
    }

    let mut skipped = HashSet::new();
    let mut ran = 0usize;
    let total = experiments.len();
    for exp in &experiments {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        if completed.contains(&exp.id) && !a.force {
            skipped.insert(exp.id.clone());
            continue;
        }
        let (provider, sim) = provider_for(cfg, exp, keys.get(&exp.endpoint.name)).await?;
        let workload = Arc::new(Workload::new(
            exp,
            cfg.sampling.max_tokens,
            expected_requests(exp),
        ));
        let total_reqs = exp
            .plan
            .requests
            .filter(|_| exp.plan.duration.is_none())
            .map(|r| r + exp.plan.warmup_requests);
        let progress = Progress::new(
            &format!("[{}/{total}] {}", exp.ordinal + 1, exp.label),
            total_reqs,
            a.quiet,
        );
        let outcome = runner::run_experiment(
            exp,
            Arc::new(provider),
            workload,
            exp.tokenizer.clone(),
            cfg.load.timeout,
            stop.clone(),
            progress,
        )
        .await;
        drop(sim);
        let samples: Vec<_> = outcome.records.iter().map(|r| r.sample()).collect();
        let summary = ExperimentSummary::compute(&samples);
        // Cost from the price book (config overrides win); null when unknown.
        let hourly = exp.endpoint.instance_type.as_deref().and_then(|t| {
            let p = prices.hourly(t, &region, &cfg.pricing.instance_hourly);
            if p.is_none() && price_warned.insert(t.to_string()) {
                let from = cfg
                    .pricing
                    .file
                    .as_deref()
                    .unwrap_or("no pricing file configured");
                eprintln!(
                    "warning: no price for {t} in {region} ({from}): its cost columns are null"
                );
            }
            p
        });
        // An endpoint without an instance type is priced per token when the
        // book (or the config) has a price for its model: cost from the
        // server's usage counts over the measured successful requests (the
        // client's count where a response carried no usage).
        let token_price = if exp.endpoint.instance_type.is_none() {
            prices.tokens(&exp.endpoint.model, &region, &cfg.pricing.token_prices)
        } else {
            None
        };
        let cost = match token_price {
            Some(tp) => {
                let tokens = |measured_only: bool| {
                    samples
                        .iter()
                        .filter(|s| !measured_only || (s.ok && !s.warmup))
                        .fold((0, 0), |(p, o), s| {
                            (
                                p + s.prompt_tokens().unwrap_or(0),
                                o + s.output_tokens().unwrap_or(0),
                            )
                        })
                };
                let (p, o) = tokens(true);
                let mut c = harness_core::cost::token_costs(Some(tp), p, o, summary.requests_ok);
                // The run's cost: every request's tokens, warm-up and failures too.
                let (pa, oa) = tokens(false);
                c.usd_run = harness_core::cost::token_costs(Some(tp), pa, oa, 1).usd_run;
                c
            }
            None => harness_core::cost::instance_costs(&harness_core::cost::CostInputs {
                hourly_usd: hourly,
                instance_count: exp.endpoint.instance_count,
                window_s: summary.window_s,
                requests_ok: summary.requests_ok,
                output_tokens: (summary.output_token_throughput * summary.window_s).round() as u64,
                run_s: (outcome.ended_at - outcome.started_at).num_milliseconds() as f64 / 1e3,
            }),
        };
        let status = if outcome.interrupted {
            "interrupted"
        } else {
            "complete"
        };
        let hash_inputs = harness_core::hash::canonical_json(&exp.hash_inputs);
        let ep = &exp.endpoint;
        let (mode, concurrency, rate, arrival) = match exp.plan.level {
            LoadLevel::Closed { concurrency } => ("closed", Some(concurrency as i32), None, None),
            LoadLevel::Open { rate, arrival } => (
                "open",
                None,
                Some(rate),
                Some(format!("{arrival:?}").to_lowercase()),
            ),
        };
        bundle
            .write_experiment(
                &ExperimentRow {
                    experiment_id: &exp.id,
                    run_id: &run_id,
                    ordinal: exp.ordinal as i32,
                    label: &exp.label,
                    endpoint: &ep.name,
                    provider: match ep.provider {
                        ProviderKind::Sim => "sim",
                        ProviderKind::Openai => "openai",
                    },
                    model: &ep.model,
                    api: match ep.api {
                        ApiKind::Chat => "chat",
                        ApiKind::Completions => "completions",
                    },
                    stream: ep.stream,
                    instance_type: ep.instance_type.as_deref(),
                    instance_count: ep.instance_count as i32,
                    serving_stack: ep.serving_stack.as_deref(),
                    dataset: &exp.dataset.name,
                    bucket: exp.bucket_name(),
                    tokenizer_id: &exp.tokenizer.info.id,
                    tokenizer_sha256: &exp.tokenizer.info.content_sha256,
                    load_mode: mode,
                    concurrency,
                    rate,
                    arrival: arrival.as_deref(),
                    hash_inputs: &hash_inputs,
                    simulated: ep.provider == ProviderKind::Sim,
                    sim_profile: ep.sim.as_ref().map(|s| s.profile.as_str()),
                    status,
                    started_at: outcome.started_at,
                    ended_at: outcome.ended_at,
                },
                &outcome.records,
                &summary,
                &cost,
            )
            .with_context(|| format!("writing experiment `{}` to {}", exp.label, path.display()))?;
        ran += 1;
    }
    let interrupted = stop.load(Ordering::SeqCst);
    bundle.finish_run(
        &run_id,
        if interrupted {
            "interrupted"
        } else {
            "complete"
        },
    )?;
    drop(bundle);

    // Export: the summary of this config's experiments, read back from the bundle.
    let conn = read::open(&path)?;
    let ids: HashSet<&str> = experiments.iter().map(|e| e.id.as_str()).collect();
    let rows: Vec<_> = read::experiments(&conn)?
        .into_iter()
        .filter(|e| ids.contains(e.experiment_id.as_str()))
        .collect();
    println!();
    print!(
        "{}",
        table::render(&rows, &|id| skipped
            .contains(id)
            .then(|| "skipped: already in bundle (--force reruns)".to_string()))
    );
    println!(
        "{ran} experiment(s) run, {} skipped (complete in the bundle){}",
        skipped.len(),
        if interrupted { ", interrupted" } else { "" }
    );
    println!("bundle: {}", path.display());
    println!(
        "next: harness report {0} --out report   |   harness plan {0} --rpm R --latency-p95 MS",
        path.display()
    );
    Ok(if interrupted {
        ExitCode::from(crate::EXIT_INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    })
}

fn command_line() -> String {
    // Arguments only name files and config paths; `--set` values are config
    // values, masked like the config when they look secret.
    std::env::args()
        .map(|a| match a.split_once('=') {
            Some((k, _)) if config::validate::is_secret_key(k.rsplit('.').next().unwrap_or(k)) => {
                format!("{k}=****")
            }
            _ => a,
        })
        .collect::<Vec<_>>()
        .join(" ")
}
