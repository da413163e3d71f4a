//! `harness run`: load config → open bundle → for each experiment: deploy,
//! preflight its endpoint once, run, price, write → print the summary.
//!
//! Exit status (crate::exit): 0 when every experiment completed; 3 when an
//! endpoint failed its preflight or an experiment had no successful request
//! (the others still run); 2 for bad input; 130 when interrupted.

use crate::bundle::{read, Bundle, ExperimentRow, PreflightRow, RequestStream, RunRow};
use crate::cli::RunArgs;
use crate::config::{Config, LoadLevel, Loaded};
use crate::deploy;
use crate::exit;
use crate::plan::Experiment;
use crate::preflight::{self, Verdict};
use crate::pricing::Pricer;
use crate::progress::Progress;
use crate::provider::Provider;
use crate::redact;
use crate::report::table;
use crate::runner;
use crate::workload::Workload;
use anyhow::Result;
use chrono::Utc;
use futures_util::FutureExt;
use harness_core::cost::{CostInputs, Costed};
use harness_core::hash::sha256_hex;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};
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

pub async fn run(a: RunArgs) -> Result<ExitCode> {
    let (mut loaded, mut experiments) = match super::load(&a.config).await {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    if let Some(r) = a
        .region
        .as_deref()
        .filter(|r| !crate::config::validate::region_ok(r))
    {
        crate::bad_input!("--region `{r}` is not an AWS region; write e.g. `us-east-1`");
    }
    // SageMaker and Bedrock: credentials before anything is written, and
    // the region each endpoint is reached in, hashed into its experiments'
    // ids wherever it comes from (the config, --region, the SDK's default).
    let aws = if a.dry_run {
        None
    } else {
        crate::provider::aws::load_for(&loaded.config, a.profile.as_deref(), a.region.as_deref())
            .await?
    };
    if let Some(region) = aws.as_ref().and_then(|c| c.region()) {
        if crate::provider::aws::fill_regions(&mut loaded.config, region.as_ref()) {
            experiments = crate::plan::expand(&loaded.config)
                .await
                .map_err(|e| crate::exit::bad_input(format!("{e:#}")))?;
        }
    }
    let cells = crate::command::plan(&loaded.config)
        .map_err(|e| crate::exit::bad_input(format!("{}: {e:#}", loaded.file)))?;
    if let Some(shard) = a.shard.shard {
        crate::shard::check(
            &experiments,
            !cells.is_empty(),
            shard,
            a.shard.rule()?.as_ref(),
        )
        .map_err(crate::exit::bad_input)?;
        for e in &mut experiments {
            e.plan.shard = Some(shard);
            e.label.push_str(&shard.suffix());
        }
    }
    let keys = match loaded.credentials() {
        Ok(k) => k,
        Err(errors) => {
            eprint!("{errors}");
            return Ok(ExitCode::from(exit::BAD_INPUT));
        }
    };
    if let Err(errors) = loaded.command_secrets() {
        eprint!("{errors}");
        return Ok(ExitCode::from(exit::BAD_INPUT));
    }
    let started_at = Utc::now();
    let mut pricing = Pricer::for_run(
        &loaded.config.pricing,
        &loaded.file,
        &started_at.format("%Y-%m-%d").to_string(),
    )?;
    let mut path = bundle_path(&loaded.config, a.out.as_deref());
    let out_file = a
        .out
        .as_deref()
        .is_some_and(|p| p.extension().is_some_and(|e| e == "duckdb"));
    if let Some(s) = a.shard.shard.filter(|_| !out_file) {
        // Shards on one machine must not share a bundle (one writer each):
        // without --out, or with --out naming a directory, each its own.
        path.set_file_name(format!(
            "{}-shard-{}-of-{}.duckdb",
            loaded.config.name, s.index, s.count
        ));
    }
    let run_id = new_run_id(started_at, &path);
    let plan = match deployment_gate(
        &a,
        &loaded,
        &experiments,
        &cells,
        &mut pricing,
        &run_id,
        &path,
    )
    .await
    {
        Ok(plan) => plan,
        Err(code) => return Ok(code),
    };
    // Credentials and region before anything is written or created.
    let fleet = if plan.instances.is_empty() {
        None
    } else {
        let aws = crate::aws::load_profile(
            a.profile.as_deref(),
            plan.region.as_deref(),
            "launching on EC2",
        )
        .await?;
        Some((plan, aws))
    };
    let stages = Stages {
        loaded: &loaded,
        args: &a,
        keys,
        pricing,
        run_id: &run_id,
        path: &path,
        fleet,
        served_at: None,
        aws,
        cells: &cells,
    };
    let done = stages.execute(&experiments, None).await?;
    print_summary(
        &loaded.config,
        &path,
        &experiments,
        &cells,
        &done.tally,
        done.signal,
        done.error.is_some(),
    )?;
    // A shard that will not come to some experiments' barriers tells the
    // peers waiting there, which would otherwise wait out their timeout:
    // those of an endpoint that failed its preflight, and those not begun
    // when it was interrupted.
    if let (Some(s), Some(dir)) = (a.shard.shard, &a.shard.barrier) {
        let failed: Vec<&str> = done
            .tally
            .skipped
            .iter()
            .filter(|(_, why)| matches!(NotRun::of(why), NotRun::Preflight))
            .map(|(id, _)| id.as_str())
            .collect();
        crate::shard::leave_notices(
            dir,
            &failed,
            s,
            &run_id,
            "failed its preflight check and will not run this experiment (its run says why)",
        );
        if let Some(sig) = done.signal {
            let begun: HashSet<String> = {
                let conn = read::open(&path)?;
                let mut st =
                    conn.prepare("SELECT experiment_id FROM experiments WHERE run_id = ?")?;
                let ids = st.query_map([&run_id], |r| r.get(0))?;
                ids.collect::<Result<_, _>>()?
            };
            let left: Vec<&str> = experiments
                .iter()
                .map(|e| e.id.as_str())
                .filter(|id| !begun.contains(*id))
                .collect();
            crate::shard::leave_notices(
                dir,
                &left,
                s,
                &run_id,
                &format!("was interrupted ({sig}) before this experiment"),
            );
        }
    }
    // An error that stopped the run comes last, under what it finished.
    if let Some(e) = done.error {
        return Err(e);
    }
    Ok(ExitCode::from(done.code))
}

/// The agent's run on an instance (`harness agent`): the experiments of
/// `endpoint` only, served at `base_url`, with `after_each` called with the
/// bundle's path after each experiment is written, and `started` with the
/// run's id. No summary is printed.
pub async fn agent_run(
    a: &RunArgs,
    endpoint: &str,
    base_url: &str,
    after_each: AfterEach<'_>,
    started: impl FnOnce(&str),
) -> Result<AgentFinished> {
    let (loaded, experiments) = super::load(&a.config)
        .await
        .map_err(|_| crate::exit::bad_input("the job's config does not load (see above)"))?;
    let experiments: Vec<Experiment> = experiments
        .into_iter()
        .filter(|e| e.endpoint.name == endpoint)
        .collect();
    if experiments.is_empty() {
        crate::bad_input!("the job's config has no experiment for endpoint `{endpoint}`");
    }
    let keys = loaded
        .credentials()
        .map_err(|e| crate::exit::bad_input(e.to_string()))?;
    let started_at = Utc::now();
    let pricing = Pricer::for_run(
        &loaded.config.pricing,
        &loaded.file,
        &started_at.format("%Y-%m-%d").to_string(),
    )?;
    let path = bundle_path(&loaded.config, a.out.as_deref());
    let run_id = new_run_id(started_at, &path);
    started(&run_id);
    let stages = Stages {
        loaded: &loaded,
        args: a,
        keys,
        pricing,
        run_id: &run_id,
        path: &path,
        fleet: None,
        served_at: Some((endpoint.to_string(), base_url.to_string())),
        aws: None,
        cells: &[],
    };
    let mut done = stages.execute(&experiments, Some(after_each)).await?;
    if let Some(e) = done.error.take() {
        return Err(e);
    }
    let mut not_completed = BTreeMap::new();
    let completed: Vec<String> = {
        let conn = read::open(&path)?;
        let rows = read::experiments(&conn)?;
        for r in &rows {
            if r.status != "complete" {
                not_completed.insert(
                    r.experiment_id.clone(),
                    r.status_reason.clone().unwrap_or_else(|| r.status.clone()),
                );
            }
        }
        rows.into_iter()
            .filter(|r| r.status == "complete")
            .map(|r| r.experiment_id)
            .collect()
    };
    for e in &experiments {
        if !completed.contains(&e.id) && !not_completed.contains_key(&e.id) {
            not_completed.insert(e.id.clone(), "not run".into());
        }
    }
    Ok(AgentFinished {
        run_id,
        status: done.status.to_string(),
        reason: done.reason,
        code: done.code,
        completed,
        not_completed,
    })
}

/// Called with the bundle's path after each experiment is written (and
/// checkpointed): the agent uploads a copy.
pub type AfterEach<'a> = Box<dyn FnMut(&Path) + Send + 'a>;

/// How the agent's run ended.
pub struct AgentFinished {
    pub run_id: String,
    pub status: String,
    pub reason: Option<String>,
    pub code: u8,
    pub completed: Vec<String>,
    pub not_completed: BTreeMap<String, String>,
}

/// One run's inputs, through its stages: open the bundle → run the local
/// experiments (deploy, preflight, run, price, write each) → launch the
/// fleet for the `ec2:` ones and collect → finish the run.
struct Stages<'a> {
    loaded: &'a Loaded,
    args: &'a RunArgs,
    keys: BTreeMap<String, String>,
    pricing: Pricer,
    run_id: &'a str,
    path: &'a Path,
    /// The EC2 launch plan and the AWS configuration to launch it with,
    /// when the config has `ec2:` endpoints.
    fleet: Option<(deploy::ec2::Plan, crate::aws::Aws)>,
    /// In the agent: the `ec2:` endpoint it serves and its loopback URL.
    served_at: Option<(String, String)>,
    /// The AWS configuration for SageMaker and Bedrock endpoints.
    aws: Option<aws_config::SdkConfig>,
    /// The command endpoints' cells, run after the endpoint experiments.
    cells: &'a [crate::command::CommandCell],
}

/// How a run ended.
struct Done {
    /// The error that stopped the run early, returned after the summary of
    /// what it finished.
    error: Option<anyhow::Error>,
    tally: Tally,
    signal: Option<&'static str>,
    status: &'static str,
    reason: Option<String>,
    code: u8,
}

impl Stages<'_> {
    async fn execute(
        self,
        experiments: &[Experiment],
        after_each: Option<AfterEach<'_>>,
    ) -> Result<Done> {
        let mut bundle = Bundle::open(self.path)?;
        if bundle.recovered > 0 {
            eprintln!(
                "note: {} experiment(s) in {} were running when their process died; marked incomplete (their rows kept), they run again unless skipped",
                bundle.recovered,
                bundle.path.display()
            );
        }
        // The host is sampled while experiments run here; an EC2 endpoint's
        // agent samples its instance; a managed service's host is AWS's.
        let local = experiments.iter().any(|e| {
            matches!(
                deploy::Kind::of(&e.endpoint),
                deploy::Kind::Simulator | deploy::Kind::External
            ) || self.served_at.is_some()
        });
        let sampler = local.then(|| crate::host::Sampler::new(crate::host::Sampler::INTERVAL));
        if let Some(s) = &sampler {
            if !self.args.quiet {
                eprintln!("host metrics: CPU and memory every second; {}", s.gpus());
            }
        }
        begin_run(
            &bundle,
            self.loaded,
            self.run_id,
            Utc::now(),
            sampler.as_ref().map(|s| s.gpus().to_string()),
        )?;
        let stop = Stop::install(&bundle, self.run_id, self.fleet.is_some())?;
        let mut session = Session {
            cfg: &self.loaded.config,
            loaded: self.loaded,
            args: self.args,
            keys: self.keys,
            pricing: self.pricing,
            run_id: self.run_id,
            stop: stop.clone(),
            tally: Tally::default(),
            served_at: self.served_at,
            after_each,
            fleet: self.fleet,
            sampler,
            timeline: HashMap::new(),
            aws: self.aws,
            cells: self.cells,
        };
        let result = std::panic::AssertUnwindSafe(session.run_all(&mut bundle, experiments))
            .catch_unwind()
            .await;
        let tally = session.tally;
        let (status, reason) = match &result {
            _ if stop.signal().is_some() => {
                let by = stop.signal().unwrap_or("a signal");
                let not_run = experiments
                    .len()
                    .saturating_sub(tally.ran + tally.already_complete.len() + tally.skipped.len());
                (
                    "interrupted",
                    Some(if not_run == 0 {
                        format!("stopped by {by} during the last experiment")
                    } else {
                        format!(
                            "stopped by {by}; {not_run} of {} experiment(s) not run",
                            experiments.len()
                        )
                    }),
                )
            }
            Ok(Ok(())) if tally.failures.is_empty() => ("complete", None),
            Ok(Ok(())) => ("failed", Some(tally.failures.join("; "))),
            Ok(Err(e)) => ("failed", Some(format!("stopped on an error: {e:#}"))),
            Err(panic) => (
                "failed",
                Some(format!("stopped on a panic: {}", panic_message(panic))),
            ),
        };
        bundle.finish_run(self.run_id, status, reason.as_deref())?;
        drop(bundle);
        let error = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            // A bug, reported as a runtime failure (exit 3) after the bundle
            // recorded it; the panic message was printed when it happened.
            Err(panic) => anyhow::bail!("the run stopped on a panic: {}", panic_message(&panic)),
        };
        let code = if stop.signal().is_some() {
            exit::INTERRUPTED
        } else if tally.failures.is_empty() {
            exit::SUCCESS
        } else {
            exit::RUNTIME_FAILURE
        };
        Ok(Done {
            error,
            signal: stop.signal(),
            tally,
            status,
            reason,
            code,
        })
    }
}

/// What happened to the experiments of this run.
#[derive(Default)]
struct Tally {
    ran: usize,
    /// Complete in the bundle already; not rerun.
    already_complete: HashSet<String>,
    /// Experiment id → why it was skipped in this run.
    skipped: HashMap<String, String>,
    /// One line per failed endpoint or experiment, for the run's reason.
    failures: Vec<String>,
    /// Every capacity-search probe of this run, run or reused.
    probes: HashSet<String>,
    /// One line per capacity search: where it ended.
    searches: Vec<String>,
    /// Command cells run, and found complete already.
    cells: (usize, usize),
}

/// One run's state while it goes through the experiments.
struct Session<'a> {
    cfg: &'a Config,
    loaded: &'a Loaded,
    args: &'a RunArgs,
    keys: BTreeMap<String, String>,
    pricing: Pricer,
    run_id: &'a str,
    stop: Stop,
    tally: Tally,
    served_at: Option<(String, String)>,
    after_each: Option<AfterEach<'a>>,
    fleet: Option<(deploy::ec2::Plan, crate::aws::Aws)>,
    /// Samples the host while an experiment runs here (`host_samples`).
    sampler: Option<crate::host::Sampler>,
    /// Experiment id → when it ran (wall time) and its measurement window:
    /// where the serving host's samples of a `client: local` run belong.
    timeline: HashMap<String, Ran>,
    /// The AWS configuration for SageMaker and Bedrock endpoints.
    aws: Option<aws_config::SdkConfig>,
    cells: &'a [crate::command::CommandCell],
}

/// When an experiment ran, and its measurement window (ns on its clock).
#[derive(Clone, Copy)]
struct Ran {
    started_at: chrono::DateTime<Utc>,
    ended_at: chrono::DateTime<Utc>,
    measured: Option<(i64, i64)>,
}

impl Session<'_> {
    async fn run_all(&mut self, bundle: &mut Bundle, experiments: &[Experiment]) -> Result<()> {
        write_datasets(bundle, experiments)?;
        let completed = bundle.completed_ids()?;
        // Endpoint name → its preflight verdict, checked before its first
        // experiment that has to run.
        let mut checked: HashMap<String, Verdict> = HashMap::new();
        let mut launched: Vec<&Experiment> = vec![];
        for (i, exp) in experiments.iter().enumerate() {
            if self.stop.signal().is_some() {
                break;
            }
            if let Some(search) = &exp.search {
                let position = (i + 1, experiments.len());
                self.search(bundle, exp, search, &completed, &mut checked, position)
                    .await?;
                continue;
            }
            if completed.contains(&exp.id) && !self.args.force {
                self.tally.already_complete.insert(exp.id.clone());
                continue;
            }
            let ep = &exp.endpoint;
            let served_at = self
                .served_at
                .as_ref()
                .filter(|(name, _)| *name == ep.name)
                .map(|(_, url)| url.as_str());
            if deploy::Kind::of(ep) == deploy::Kind::Ec2 && served_at.is_none() {
                launched.push(exp);
                continue;
            }
            let served_at = served_at.map(String::from);
            self.run_here(
                bundle,
                exp,
                served_at.as_deref(),
                &mut checked,
                (i + 1, experiments.len()),
            )
            .await?;
        }
        if !launched.is_empty() && self.stop.signal().is_none() {
            self.launch(bundle, &launched).await?;
        }
        if !self.cells.is_empty() && self.stop.signal().is_none() {
            let mut cx = crate::command::run::Context {
                run_id: self.run_id,
                force: self.args.force,
                stop: self.stop.flag(),
                quiet: self.args.quiet,
                pricing: &mut self.pricing,
            };
            let t = crate::command::run::run_cells(bundle, self.cells, &mut cx).await?;
            self.tally.cells = (t.ran, t.already_complete);
            self.tally.failures.extend(t.failures);
        }
        Ok(())
    }

    /// Brings up (or reaches, at `served_at`) `exp`'s endpoint, checks it
    /// once (`checked`: endpoint → verdict), runs `exp` and writes it; the
    /// experiments of an endpoint that failed its check are skipped, and it
    /// is not brought up again.
    async fn run_here(
        &mut self,
        bundle: &mut Bundle,
        exp: &Experiment,
        served_at: Option<&str>,
        checked: &mut HashMap<String, Verdict>,
        position: (usize, usize),
    ) -> Result<()> {
        let ep = &exp.endpoint;
        if let Some(v) = checked.get(&ep.name).filter(|v| !v.ok) {
            return self.skip(bundle, exp, preflight_skip(v));
        }
        let deployed = deploy::start(ep, self.cfg.seed, served_at).await?;
        let provider = Provider::new(
            self.cfg,
            ep,
            crate::provider::Reach {
                base_url: &deployed.base_url,
                api_key: self.keys.get(&ep.name),
                aws: self.aws.as_ref(),
                pool_size: pool_size(&exp.plan.level),
            },
        )?;
        if !checked.contains_key(&ep.name) {
            let v = self.preflight(bundle, exp, &deployed, &provider).await?;
            checked.insert(ep.name.clone(), v);
        }
        if !checked[&ep.name].ok {
            return self.skip(bundle, exp, preflight_skip(&checked[&ep.name]));
        }
        let scraper = ep.server_metrics.as_ref().and_then(|m| {
            let url = m
                .url
                .clone()
                .or_else(|| crate::scrape::default_url(&deployed.base_url))?;
            Some(crate::scrape::Scraper::new(url, m.interval))
        });
        self.run_one(bundle, exp, provider, scraper.as_ref(), position)
            .await?;
        if let Some(f) = self.after_each.as_mut() {
            f(&bundle.path);
        }
        drop(deployed);
        Ok(())
    }

    /// Runs the capacity search `plan` from its first probe `first`. Each
    /// probe is an experiment, reused when the bundle holds it complete, and
    /// judged against the search's budget; the `searches` row records where
    /// the search ended. A probe that does not complete (its endpoint failed
    /// its check, or the run was interrupted) ends the search unfinished.
    async fn search(
        &mut self,
        bundle: &mut Bundle,
        first: &Experiment,
        plan: &Arc<crate::plan::SearchPlan>,
        completed: &HashSet<String>,
        checked: &mut HashMap<String, Verdict>,
        position: (usize, usize),
    ) -> Result<()> {
        use harness_core::search::{Next, Search};
        let run_id = self.run_id;
        let row = |found| crate::bundle::SearchRow {
            search_id: &plan.id,
            run_id,
            label: &plan.label,
            endpoint: &first.endpoint.name,
            dataset: &first.dataset.name,
            bucket: first.bucket_name(),
            settings: &plan.settings,
            budget: &plan.budget,
            found,
        };
        bundle.write_search(&row(None))?;
        let mut search = Search::new(plan.settings.spec);
        loop {
            if self.stop.signal().is_some() {
                return Ok(());
            }
            let load = match search.next() {
                Next::Probe(x) => x,
                Next::Done(found) => {
                    bundle.write_search(&row(Some(&found)))?;
                    self.tally
                        .searches
                        .push(format!("{}: {}", plan.label, found.why));
                    return Ok(());
                }
            };
            let probe = crate::plan::probe(first, plan, load);
            self.tally.probes.insert(probe.id.clone());
            if completed.contains(&probe.id) && !self.args.force {
                bundle.claim_probe(&probe.id, &plan.id)?;
                self.tally.already_complete.insert(probe.id.clone());
            } else {
                self.run_here(bundle, &probe, None, checked, position)
                    .await?;
            }
            let Some(failed) = probe_verdict(bundle, &probe.id, &plan.budget)? else {
                self.tally.searches.push(format!(
                    "{}: unfinished, probe `{}` did not complete",
                    plan.label, probe.label
                ));
                return Ok(());
            };
            if !self.args.quiet {
                if failed.is_empty() {
                    eprintln!("  search: {} holds the budget", probe.plan.level.label());
                } else {
                    eprintln!(
                        "  search: {} breaks it: {}",
                        probe.plan.level.label(),
                        failed.join("; ")
                    );
                }
            }
            search.record(load, failed.is_empty());
        }
    }

    /// `deploy.client: local`: benchmarks the endpoint the fleet reports
    /// serving, from this machine, with the per-run API key.
    async fn bench_served(
        &mut self,
        bundle: &mut Bundle,
        exps: &[&Experiment],
        req: &deploy::fleet::BenchRequest,
    ) -> Result<deploy::fleet::BenchReply> {
        crate::redact::register(&req.api_key);
        self.keys.insert(req.endpoint.clone(), req.api_key.clone());
        let mine: Vec<&Experiment> = exps
            .iter()
            .copied()
            .filter(|e| e.endpoint.name == req.endpoint)
            .collect();
        let mut checked = HashMap::new();
        let mut reply = deploy::fleet::BenchReply::default();
        for (i, exp) in mine.iter().enumerate() {
            if self.stop.signal().is_some() {
                break;
            }
            self.run_here(
                bundle,
                exp,
                Some(&req.url),
                &mut checked,
                (i + 1, mine.len()),
            )
            .await?;
            reply.written.push(exp.id.clone());
        }
        let complete = bundle.completed_ids()?;
        reply.completed = reply
            .written
            .iter()
            .filter(|id| complete.contains(*id))
            .cloned()
            .collect();
        Ok(reply)
    }

    /// The `ec2:` experiments: the fleet launches their instances, whose
    /// agents run them (or, with `deploy.client: local`, serve them to this
    /// machine, which runs them as they come up, one endpoint at a time);
    /// their results are merged in, and what is missing is recorded with its
    /// reason.
    async fn launch(&mut self, bundle: &mut Bundle, exps: &[&Experiment]) -> Result<()> {
        let (plan, aws) = self.fleet.take().expect("the gate planned the launch");
        let local = self.cfg.deploy.client == crate::config::ClientSite::Local;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<deploy::fleet::BenchRequest>(1);
        let cx = deploy::fleet::Ctx {
            loaded: self.loaded,
            run_id: self.run_id,
            stop: self.stop.flag(),
            hurry: self.stop.hurry.clone(),
            bench: local.then_some(tx),
        };
        // The fleet and this machine's benchmarks run side by side; the
        // channel closes (ending the second) when the fleet is done.
        let fleet = async move {
            let r = deploy::fleet::run(&cx, &aws, &plan, exps).await;
            drop(cx);
            r
        };
        let mut failed: Option<anyhow::Error> = None;
        let serve = async {
            while let Some(req) = rx.recv().await {
                let reply = match self.bench_served(bundle, exps, &req).await {
                    Ok(r) => r,
                    Err(e) => {
                        // Stops the other endpoints too; reported after
                        // the teardown.
                        self.stop.flag().store(true, Ordering::SeqCst);
                        failed.get_or_insert(e);
                        Default::default()
                    }
                };
                let _ = req.done.send(reply);
            }
        };
        let (collected, ()) = tokio::join!(fleet, serve);
        if let Some(e) = failed {
            return Err(e);
        }
        let collected = collected?;
        for c in collected {
            if let Some(b) = &c.bundle {
                bundle.absorb(b, &c.completed)?;
                let _ = std::fs::remove_file(b);
            }
            if c.written_here.is_empty() {
                self.tally.ran += c.completed.len();
            }
            // The serving host's samples, onto each experiment run from here.
            if let Some(h) = &c.host {
                let mut rows = vec![];
                for id in &c.written_here {
                    let Some(ran) = self.timeline.get(id) else {
                        continue;
                    };
                    let samples = crate::host::shifted(
                        &h.samples,
                        h.started_at,
                        ran.started_at,
                        ran.ended_at,
                    );
                    rows.extend(crate::host::rows(id, &samples, ran.measured));
                }
                bundle.write_host_samples(&rows)?;
            }
            for exp in exps.iter().filter(|e| e.endpoint.name == c.endpoint) {
                if c.completed.contains(&exp.id) || c.written_here.contains(&exp.id) {
                    continue;
                }
                let reason = format!(
                    "not collected from {}: {}",
                    c.row
                        .instance_id
                        .as_deref()
                        .unwrap_or("its instance (not launched)"),
                    c.missing_reason
                );
                self.skip(bundle, exp, reason)?;
            }
            if c.row.status != "complete" {
                self.tally.failures.push(format!(
                    "endpoint `{}` on EC2: {}",
                    c.endpoint,
                    c.row.status_reason.as_deref().unwrap_or(&c.row.status)
                ));
            }
            bundle.write_deployment(&c.row)?;
        }
        Ok(())
    }

    /// Records `exp` as skipped, with why: its endpoint failed its
    /// preflight, or its instance gave no result.
    fn skip(&mut self, bundle: &mut Bundle, exp: &Experiment, reason: String) -> Result<()> {
        let now = Utc::now();
        bundle.write_skipped(&ExperimentRow::new(
            exp,
            self.run_id,
            "skipped",
            Some(reason.clone()),
            now,
            now,
        ))?;
        self.tally.skipped.insert(exp.id.clone(), reason);
        Ok(())
    }

    /// Checks `exp`'s endpoint and records the verdict; a failure is printed
    /// once with the endpoint, its URL (masked) and the fix.
    async fn preflight(
        &mut self,
        bundle: &Bundle,
        exp: &Experiment,
        deployed: &deploy::Deployed,
        provider: &Provider,
    ) -> Result<Verdict> {
        let ep = &exp.endpoint;
        let checked_at = Utc::now();
        let verdict = if self.args.no_preflight {
            Verdict {
                message: "not checked (--no-preflight)".into(),
                ..Verdict::embedded()
            }
        } else if deployed.is_embedded() {
            Verdict::embedded()
        } else {
            preflight::check(provider, ep, self.cfg.load.timeout.min(PREFLIGHT_TIMEOUT)).await
        };
        bundle.write_preflight(&PreflightRow {
            run_id: self.run_id,
            endpoint: &ep.name,
            url: Some(provider.describe()),
            checked_at,
            ok: verdict.ok,
            http_status: verdict.http_status,
            error_class: verdict.error_class.map(|c| c.as_str()),
            message: verdict.message.clone(),
            latency_ms: verdict.latency_ms,
        })?;
        if !verdict.ok {
            eprintln!(
                "error: endpoint `{}` ({}) failed its preflight check: {}\n       its experiments are skipped; the other endpoints go on (--no-preflight turns the check off)",
                ep.name,
                provider.describe(),
                verdict.message
            );
            self.tally.failures.push(format!(
                "endpoint `{}` failed preflight: {}",
                ep.name, verdict.message
            ));
        }
        Ok(verdict)
    }

    /// Runs one experiment, prices it and writes it to the bundle: its row
    /// first (`running`), its requests as they finish, its summary and final
    /// status last.
    async fn run_one(
        &mut self,
        bundle: &mut Bundle,
        exp: &Experiment,
        provider: Provider,
        scraper: Option<&crate::scrape::Scraper>,
        (position, total): (usize, usize),
    ) -> Result<()> {
        let workload = Arc::new(Workload::new(
            exp,
            self.cfg.sampling.max_tokens,
            expected_requests(exp),
        ));
        let total_reqs = exp
            .plan
            .requests
            .filter(|_| exp.plan.duration.is_none())
            .map(|r| r + exp.plan.warmup_requests);
        let progress = Progress::new(
            &format!("[{position}/{total}] {}", exp.label),
            total_reqs,
            self.args.quiet,
        );
        let path = bundle.path.clone();
        let writing = |e: anyhow::Error| {
            e.context(format!(
                "writing experiment `{}` to {}",
                exp.label,
                path.display()
            ))
        };
        // A shard meets the others first: its start, and its clock's offset.
        let mut shard = match exp.plan.shard {
            Some(s) => match self.align(exp, s).await {
                Ok(a) => Some(a),
                // A rerun shard after its experiment started: it goes on to
                // the next experiment, where the other shards wait for it.
                // Only a shard whose bundle holds an earlier attempt at the
                // experiment, or the run that announced it at the barrier
                // (killed while waiting there), is a rerun; without either,
                // the barrier directory is an earlier job's, and the run
                // stops as before.
                Err(e) => match e.downcast_ref::<crate::shard::AlreadyStarted>() {
                    // (A run that announced it and completed it is no death:
                    // a --force rerun on a used barrier directory.)
                    Some(late)
                        if !tried_before(bundle, &exp.id)?
                            && (!holds_run(bundle, late.run_id.as_deref())?
                                || bundle.completed_ids()?.contains(&exp.id)) =>
                    {
                        anyhow::bail!(
                            "--barrier {}: every shard, {s} included, had arrived, and the experiment started {:.1} s ago; this shard's bundle holds no attempt at it that died (in it, or at its barrier), so this is not the rerun of a dead shard. Either the directory is from an earlier job, or from this one before a --force rerun (give each job a fresh barrier directory), or this shard's bundle is not the one it died with (its part is missing: harness merge --allow-missing-shards keeps the rest)",
                            late.dir.display(),
                            late.ago_s
                        )
                    }
                    Some(_) => {
                        eprintln!("not run: experiment `{}`: {e}", exp.label);
                        self.tally.failures.push(format!(
                            "experiment `{}`: shard {s} arrived after it started",
                            exp.label
                        ));
                        // The rows of an attempt that died in the experiment
                        // stay, incomplete: `merge --allow-missing-shards`
                        // joins them as this shard's incomplete part.
                        if let Some(rows) = unfinished_rows(bundle, &exp.id)? {
                            eprintln!(
                                "note: experiment `{}`: the earlier attempt's {rows} request row(s) stay in the bundle, marked incomplete",
                                exp.label
                            );
                            self.tally
                                .skipped
                                .insert(exp.id.clone(), format!("skipped: {e}"));
                            return Ok(());
                        }
                        return self.skip(bundle, exp, format!("skipped: {e}"));
                    }
                    // Ctrl-C while waiting: an interrupted run (exit 130)
                    // whose experiment was not begun, not a failure.
                    None if self.stop.signal().is_some() => return Ok(()),
                    None => return Err(e),
                },
            },
            None => None,
        };
        let start = shard.as_ref().map(|(_, at)| *at);
        let row = ExperimentRow {
            shard: shard.as_ref().map(|(r, _)| r.clone()),
            ..ExperimentRow::new(exp, self.run_id, "running", None, Utc::now(), Utc::now())
        };
        bundle.begin_experiment(&row).map_err(writing)?;
        let stream = RequestStream::start(
            bundle,
            &exp.id,
            row.simulated,
            exp.plan.shard.map(|s| s.index),
        )
        .map_err(writing)?;
        let outcome = runner::run_experiment(
            exp,
            Arc::new(provider),
            workload,
            runner::Control {
                timeout: self.cfg.load.timeout,
                stop: self.stop.flag(),
                start,
            },
            runner::Outputs {
                progress,
                rows: stream.sender(),
            },
            runner::Watch {
                host: self.sampler.as_ref(),
                server: scraper,
            },
        )
        .await;
        if let Some((r, _)) = shard.as_mut() {
            r.start_late_ns = outcome.start_late_ns;
        }
        stream.finish().await.map_err(writing)?;
        let summary = outcome.summary;
        let measured = outcome.measured;
        let host = crate::host::rows(&exp.id, &outcome.host, measured);
        self.timeline.insert(
            exp.id.clone(),
            Ran {
                started_at: outcome.started_at,
                ended_at: outcome.ended_at,
                measured,
            },
        );
        let run_s = (outcome.ended_at - outcome.started_at).num_milliseconds() as f64 / 1e3;
        let costed = Costed::new(
            self.pricing.price(
                exp.endpoint.instance_type.as_deref(),
                &exp.endpoint.model,
                // A Bedrock model is priced per token.
                exp.endpoint.instance_type.is_some()
                    || exp.endpoint.provider == crate::config::ProviderKind::Bedrock,
            ),
            CostInputs::from_summary(&summary, exp.endpoint.instance_count, run_s),
        );
        let (status, reason) = if outcome.interrupted {
            (
                "interrupted",
                Some("interrupted before the plan ended".to_string()),
            )
        } else if summary.requests > 0 && summary.requests_ok == 0 {
            let reason = format!(
                "every measured request failed ({})",
                table::error_classes(&summary)
            );
            self.tally
                .failures
                .push(format!("experiment `{}`: {reason}", exp.label));
            ("failed", Some(reason))
        } else {
            ("complete", None)
        };
        bundle
            .finish_experiment(
                &ExperimentRow {
                    stopped_early: outcome.stopped_early.clone(),
                    shard: shard.map(|(r, _)| r),
                    ..ExperimentRow::new(
                        exp,
                        self.run_id,
                        status,
                        reason,
                        outcome.started_at,
                        outcome.ended_at,
                    )
                },
                &summary,
                &costed,
                &host,
                outcome.server.as_ref(),
            )
            .map_err(writing)?;
        self.tally.ran += 1;
        Ok(())
    }

    /// Shard `s` of `exp` meets the other shards (`--barrier` or
    /// `--start-at`): its `shards` row and the local instant to start at.
    ///
    /// Errors: those of `StartRule::align`, as a runtime failure.
    async fn align(
        &self,
        exp: &Experiment,
        s: crate::shard::Shard,
    ) -> Result<(crate::bundle::ShardRow, std::time::Instant)> {
        let rule = self
            .args
            .shard
            .rule()?
            .ok_or_else(|| anyhow::anyhow!("a shard without a start rule"))?;
        let (id, stop, run_id) = (exp.id.clone(), self.stop.flag(), self.run_id.to_string());
        if !self.args.quiet {
            eprintln!(
                "shard {s}: waiting for the other shards to start `{}`",
                exp.label
            );
        }
        let at = tokio::task::spawn_blocking(move || rule.align(&id, s, &run_id, &stop)).await??;
        let row = crate::bundle::ShardRow {
            shard: s.index,
            shards: s.count,
            host_name: crate::host::facts().name,
            split: s.split(&exp.plan),
            start_unix_ns: at.start_unix_ns,
            start_late_ns: 0,
            clock_source: at.clock_source,
            clock_offset_ns: at.clock_offset_ns,
            clock_offset_error_ns: at.clock_offset_error_ns,
        };
        Ok((row, at.start))
    }
}

/// What the probe `id` fails of `budget`, read back from the bundle (the
/// same for a probe just run and one a rerun reuses): empty when it holds;
/// `None` when it is not there complete. Attainment is computed from its
/// requests when the budget has an SLO.
fn probe_verdict(
    bundle: &Bundle,
    id: &str,
    budget: &harness_core::recommend::Constraints,
) -> Result<Option<Vec<String>>> {
    let conn = bundle.connection();
    let Some(e) = read::experiments(conn)?
        .into_iter()
        .find(|e| e.experiment_id == id)
    else {
        return Ok(None);
    };
    match e.status.as_str() {
        "complete" => {}
        "failed" => {
            return Ok(Some(vec![e
                .status_reason
                .unwrap_or_else(|| "failed".into())]))
        }
        _ => return Ok(None),
    }
    let mut m = harness_view::model::measured(&e, &e.costed);
    if let Some(slo) = &budget.slo {
        m.attainment = harness_core::slo::attainment(&read::request_samples(conn, id)?, slo);
    }
    Ok(Some(harness_core::analysis::failures(&m, budget)))
}

/// Why an experiment of an endpoint that failed its preflight is skipped.
fn preflight_skip(v: &Verdict) -> String {
    format!("skipped: preflight failed: {}", v.message)
}

/// Longest a preflight request may take (the config's timeout when shorter).
const PREFLIGHT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Inputs first: every dataset card (and JSONL rows) as prepared.
fn write_datasets(bundle: &mut Bundle, experiments: &[Experiment]) -> Result<()> {
    let mut written = HashSet::new();
    for exp in experiments {
        let c = exp.card();
        if written.insert((c.dataset.clone(), c.tokenizer_sha256.clone())) {
            bundle.write_dataset(&exp.prepared)?;
        }
    }
    Ok(())
}

/// A run's id: 16 hex digits of SHA-256 over its start time, process and
/// bundle path.
fn new_run_id(started_at: chrono::DateTime<Utc>, path: &Path) -> String {
    sha256_hex(
        format!(
            "{}/{}/{}",
            started_at.to_rfc3339(),
            std::process::id(),
            path.display()
        )
        .as_bytes(),
    )[..16]
        .to_string()
}

/// The deployment stage's checks before anything is created: `--dry-run`
/// prints the plan and stops (exit 0, or 2 when the real run would be
/// refused); a launch plan over `deploy.max_cost_usd`, or one whose files
/// cannot be delivered, stops the run (exit 2).
/// `Ok(plan)`: go on.
async fn deployment_gate(
    a: &RunArgs,
    loaded: &Loaded,
    experiments: &[Experiment],
    cells: &[crate::command::CommandCell],
    pricing: &mut Pricer,
    run_id: &str,
    path: &Path,
) -> Result<deploy::ec2::Plan, ExitCode> {
    let cfg = &loaded.config;
    let plan = deploy::ec2::plan(cfg, experiments, pricing, run_id);
    let refusal = plan.refusal(&cfg.deploy).or_else(|| {
        if plan.instances.is_empty() {
            None
        } else if let Err(e) = deploy::fleet::referenced_files(loaded) {
            Some(format!("{e:#}"))
        } else {
            None
        }
    });
    if a.dry_run {
        println!(
            "dry run of {} (run {run_id}): nothing is created and no request is sent",
            loaded.file
        );
        println!("bundle: {} (not written)", path.display());
        for ep in &cfg.endpoints {
            let how = match deploy::Kind::of(ep) {
                deploy::Kind::Simulator => {
                    "the embedded simulator, started on loopback".to_string()
                }
                deploy::Kind::External => format!(
                    "your server at {} (not contacted by a dry run)",
                    redact::url(ep.base_url.as_deref().unwrap_or_default())
                ),
                deploy::Kind::Ec2 => match ep.ec2.as_ref().and_then(|s| s.instance_id.as_ref()) {
                    Some(id) => format!("on your EC2 instance {id} (below)"),
                    None => "launched on EC2 (below)".to_string(),
                },
                deploy::Kind::Service => match (&ep.sagemaker, &ep.bedrock) {
                    (Some(s), _) => format!(
                        "SageMaker endpoint `{}` ({}), through the AWS SDK",
                        s.endpoint_name,
                        s.region.as_deref().unwrap_or("the run's region")
                    ),
                    _ => format!(
                        "Bedrock model `{}` ({}), through the AWS SDK",
                        ep.model,
                        ep.bedrock
                            .as_ref()
                            .and_then(|b| b.region.as_deref())
                            .unwrap_or("the run's region")
                    ),
                },
            };
            let n = experiments
                .iter()
                .filter(|e| e.endpoint.name == ep.name)
                .count();
            println!("endpoint {}: {how}; {n} experiment(s)", ep.name);
        }
        if let Some(s) = a.shard.shard {
            let start = match (&a.shard.barrier, &a.shard.start_at) {
                (Some(dir), _) => format!(
                    "each starts with the other shards at the barrier {} (waits up to {})",
                    dir.display(),
                    humantime::format_duration(a.shard.barrier_timeout)
                ),
                (None, Some(t)) => format!("starts at {t} on this machine's clock"),
                (None, None) => "no start rule".to_string(),
            };
            println!("shard {s}: this process sends its part of each experiment; {start}");
            for e in experiments.iter().filter(|e| e.plan.shard.is_some()) {
                println!("  {}: {}", e.label, s.split(&e.plan));
            }
        }
        // Cells already complete in the bundle are skipped by the real run
        // (unless --force); read without writing.
        let complete: HashSet<String> = if cfg.commands.is_empty() || a.force || !path.exists() {
            HashSet::new()
        } else {
            read::open(path)
                .and_then(|c| crate::bundle::completed_cells(&c))
                .unwrap_or_default()
        };
        for ep in &cfg.commands {
            let mine: Vec<&crate::command::CommandCell> = cells
                .iter()
                .filter(|c| c.endpoint.name == ep.name)
                .collect();
            let to_run = mine.iter().filter(|c| !complete.contains(&c.id)).count();
            println!(
                "endpoint {}: a command run here; {} cell(s){} × ({} warm-up + {} measured) run(s), timeout {} each",
                ep.name,
                mine.len(),
                if to_run < mine.len() {
                    format!(" ({} complete in the bundle, skipped; --force reruns)", mine.len() - to_run)
                } else {
                    String::new()
                },
                ep.warmup_runs,
                ep.runs,
                humantime::format_duration(ep.timeout)
            );
            for c in mine {
                println!(
                    "  {} [{}]{}: {}",
                    c.label,
                    &c.id[..12],
                    if complete.contains(&c.id) {
                        " (skipped: complete)"
                    } else {
                        ""
                    },
                    redact::text(
                        &shlex::try_join(c.argv.iter().map(String::as_str))
                            .unwrap_or_else(|_| c.argv.join(" "))
                    )
                );
            }
            // The worst case: every run of every cell to run takes its
            // whole timeout, on every instance.
            let runs = to_run as u64 * u64::from(ep.warmup_runs + ep.runs);
            let worst_s = runs as f64 * ep.timeout.as_secs_f64();
            let price = ep.instance_type.as_deref().map(|t| {
                (
                    t,
                    crate::command::run::hourly_price(pricing, t).map(|(usd, _)| usd),
                )
            });
            match price {
                Some((t, Some(usd_h))) => println!(
                    "  cost bound: at most ${:.2} ({runs} run(s) × timeout {} × {} × ${usd_h}/h for {t})",
                    harness_core::command::run_cost(usd_h, ep.instance_count, worst_s, None).0,
                    humantime::format_duration(ep.timeout),
                    ep.instance_count
                ),
                Some((t, None)) => println!("  cost bound: unknown, {t} has no price (add it under pricing.instance_hourly)"),
                None => println!("  cost: none recorded (no instance_type)"),
            }
        }
        if !plan.instances.is_empty() {
            print!("{}", deploy::ec2::render(&plan, &cfg.deploy));
            let (words, refused) =
                credentials_words(&plan, &cfg.deploy, a.profile.as_deref()).await;
            println!("credentials: {words}");
            if refused {
                return Err(ExitCode::from(exit::BAD_INPUT));
            }
            // The budget's refusal is in the rendered plan already.
            if let Some(why) = refusal
                .as_ref()
                .filter(|_| plan.refusal(&cfg.deploy).is_none())
            {
                println!("REFUSED for a real run: {why}");
            }
        }
        // Exit as the real run would, so a script can check it.
        return Err(ExitCode::from(if refusal.is_some() {
            exit::BAD_INPUT
        } else {
            exit::SUCCESS
        }));
    }
    if let Some(why) = refusal {
        eprintln!("error: {}: {why}", loaded.file);
        return Err(ExitCode::from(exit::BAD_INPUT));
    }
    Ok(plan)
}

/// The dry run's word on the AWS credentials found here (reading them
/// creates nothing): whether they last long enough for the run's presigned
/// URLs, or why not and the fix; `true` when a real run with them would be
/// refused. None found is only said: a plan can be made anywhere.
async fn credentials_words(
    plan: &deploy::ec2::Plan,
    d: &crate::config::Deploy,
    profile: Option<&str>,
) -> (String, bool) {
    let load = crate::aws::load_profile(profile, plan.region.as_deref(), "the real run");
    let aws = match tokio::time::timeout(std::time::Duration::from_secs(20), load).await {
        Err(_) => return ("not checked: reading them took over 20 s".into(), false),
        Ok(Err(e)) => return (format!("{e:#}"), false),
        Ok(Ok(aws)) => aws,
    };
    let left = aws.credentials_expire.map(|exp| {
        exp.duration_since(std::time::SystemTime::now())
            .unwrap_or_default()
    });
    let byo = plan.instances.iter().any(|i| i.instance_id.is_some());
    match deploy::ec2::credentials_check(d, left, aws.temporary, byo) {
        Ok(ok) => (ok, false),
        Err(why) => (format!("REFUSED for a real run: {why}"), true),
    }
}

fn begin_run(
    bundle: &Bundle,
    loaded: &Loaded,
    run_id: &str,
    started_at: chrono::DateTime<Utc>,
    host_gpus: Option<String>,
) -> Result<()> {
    bundle.begin_run(&RunRow {
        host_gpus,
        run_id: run_id.to_string(),
        started_at,
        config_file: loaded.file.clone(),
        config_name: loaded.config.name.clone(),
        config_yaml: loaded.effective_yaml.clone(),
        overrides: loaded.overrides.iter().map(|o| redact::arg(o)).collect(),
        command_line: std::env::args()
            .map(|a| redact::arg(&a))
            .collect::<Vec<_>>()
            .join(" "),
    })?;
    Ok(())
}

fn print_summary(
    cfg: &Config,
    path: &Path,
    experiments: &[Experiment],
    cells: &[crate::command::CommandCell],
    tally: &Tally,
    signal: Option<&str>,
    stopped_on_error: bool,
) -> Result<()> {
    let conn = read::open(path)?;
    let ids: HashSet<&str> = experiments
        .iter()
        .map(|e| e.id.as_str())
        .chain(tally.probes.iter().map(|p| p.as_str()))
        .collect();
    let rows: Vec<_> = read::experiments(&conn)?
        .into_iter()
        .filter(|e| ids.contains(e.experiment_id.as_str()))
        .collect();
    let mut commands = read::command_report(&conn, &path.display().to_string())?;
    commands.retain(|id| cells.iter().any(|c| c.id == id));
    if rows.is_empty() && !commands.endpoints.is_empty() {
        print!("{}", crate::report::table::commands(&commands));
        println!(
            "{} command cell(s) run, {} already complete in the bundle (--force reruns)",
            tally.cells.0, tally.cells.1
        );
        println!("bundle: {}", path.display());
        if commands.any_complete() {
            println!("next: harness report {} --out report", path.display());
        } else {
            println!(
                "next: no cell completed, so there is nothing to report; `harness show {}` says why each failed",
                path.display()
            );
        }
        return Ok(());
    }
    println!();
    let notes = |id: &str| {
        if tally.already_complete.contains(id) {
            Some("already in the bundle (--force reruns)".to_string())
        } else {
            tally.skipped.get(id).map(|why| match NotRun::of(why) {
                NotRun::Instance => "not run on its instance (see FAILED below)".to_string(),
                kind => kind.short().to_string(),
            })
        }
    };
    if rows.is_empty() {
        println!("no experiment of this run was measured");
    } else {
        print!("{}", table::render(&rows, &notes, cfg.budgets.error_rate));
    }
    println!(
        "{} experiment(s) run, {} already complete in the bundle{}{}",
        tally.ran,
        tally.already_complete.len(),
        if tally.skipped.is_empty() {
            String::new()
        } else {
            format!(
                ", {} not run ({})",
                tally.skipped.len(),
                not_run_why(&tally.skipped)
            )
        },
        match signal {
            Some(s) => format!(", interrupted ({s})"),
            None => String::new(),
        }
    );
    // Throttled requests that were retried: not failures, and not in their
    // latency, but the endpoint's quota is part of the answer.
    let mut st = conn.prepare(
        "SELECT e.label, count(*) FILTER (WHERE r.retries > 0), coalesce(sum(r.retries), 0), \
         e.experiment_id FROM requests r JOIN experiments e USING (experiment_id) \
         GROUP BY e.label, e.experiment_id, e.ordinal HAVING sum(r.retries) > 0 ORDER BY e.ordinal",
    )?;
    let retried: Vec<(String, i64, i64, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    for (label, n, total, _) in retried.iter().filter(|r| ids.contains(r.3.as_str())) {
        println!("THROTTLED: experiment `{label}`: {n} request(s) retried ({total} retries after HTTP 429); the waits are not in their latency, they show as lag");
    }
    for s in &tally.searches {
        println!("SEARCH: {s}");
    }
    for f in &tally.failures {
        println!("FAILED: {f}");
    }
    if !commands.endpoints.is_empty() {
        print!("{}", crate::report::table::commands(&commands));
        println!(
            "{} command cell(s) run, {} already complete in the bundle",
            tally.cells.0, tally.cells.1
        );
    }
    println!("bundle: {}", path.display());
    match experiments.iter().find_map(|e| e.plan.shard) {
        // A shard that measured nothing has nothing to merge.
        Some(_) if tally.ran + tally.already_complete.len() == 0 => {}
        // One shard's bundle holds part of each experiment: merge first.
        Some(s) if s.count == 1 => println!(
            "next: harness merge {} -o merged.duckdb, then report the merged bundle",
            path.display()
        ),
        // This shard's part of some experiment is missing (it arrived after
        // the start): the plain merge refuses those experiments.
        Some(s)
            if signal.is_some()
                || stopped_on_error
                || tally
                    .skipped
                    .values()
                    .any(|why| matches!(NotRun::of(why), NotRun::LateShard)) =>
        {
            println!(
                "next: harness merge <all {} shard bundles> --allow-missing-shards -o merged.duckdb: shard {s}'s part of some experiments is missing or incomplete (it arrived late, was interrupted, or stopped before them), so those merge as incomplete; the others merge whole",
                s.count
            )
        }
        Some(s) => println!(
            "next: harness merge <all {} shard bundles> -o merged.duckdb, then report the merged bundle (shard {s} holds only its part of each experiment's load)",
            s.count
        ),
        None => println!(
            "next: harness report {0} --out report   |   harness plan {0} --rpm R --latency-p95 MS",
            path.display()
        ),
    }
    Ok(())
}

/// Whether `bundle` holds an attempt at experiment `id` that did not
/// complete (a process that died in it, or an earlier skip at its barrier).
fn tried_before(bundle: &Bundle, id: &str) -> Result<bool> {
    let n: i64 = bundle.connection().query_row(
        "SELECT count(*) FROM experiments WHERE experiment_id = ? AND status IN ('incomplete', 'running', 'interrupted', 'skipped')",
        [id],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

/// The request rows an unfinished earlier attempt at experiment `id` left
/// in the bundle (status `incomplete` or `interrupted`), if there is one.
fn unfinished_rows(bundle: &Bundle, id: &str) -> Result<Option<i64>> {
    use duckdb::OptionalExt;
    let n: Option<i64> = bundle
        .connection()
        .query_row(
            "SELECT (SELECT count(*) FROM requests WHERE experiment_id = ?) FROM experiments WHERE experiment_id = ? AND status IN ('incomplete', 'interrupted')",
            [id, id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(n)
}

/// Whether the bundle holds run `run_id` (an earlier run of this shard, when
/// it is the one that announced the shard at a barrier).
fn holds_run(bundle: &Bundle, run_id: Option<&str>) -> Result<bool> {
    let Some(run_id) = run_id else {
        return Ok(false);
    };
    let n: i64 = bundle.connection().query_row(
        "SELECT count(*) FROM runs WHERE run_id = ?",
        [run_id],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

/// Why an experiment was not run, read from the reason `Session::skip`
/// recorded for it.
pub(crate) enum NotRun {
    Preflight,
    LateShard,
    Instance,
}

impl NotRun {
    /// The kind of a `skipped` experiment's recorded reason.
    pub(crate) fn of(reason: &str) -> NotRun {
        if reason.starts_with("skipped: preflight failed") {
            NotRun::Preflight
        } else if reason.starts_with("skipped: --barrier") {
            NotRun::LateShard
        } else {
            NotRun::Instance
        }
    }

    /// A few words for a table's status column (`harness show`), whose
    /// whole reason is printed below it.
    pub(crate) fn short(&self) -> &'static str {
        match self {
            NotRun::Preflight => "preflight failed",
            NotRun::LateShard => "shard arrived after the start",
            NotRun::Instance => "not collected from its instance",
        }
    }
}

/// Why experiments were not run, from the reasons `Session::skip` recorded:
/// e.g. `a failed preflight or a shard that arrived after the start`.
fn not_run_why(skipped: &HashMap<String, String>) -> String {
    let mut why: Vec<&str> = skipped
        .values()
        .map(|r| match NotRun::of(r) {
            NotRun::Preflight => "a failed preflight",
            NotRun::LateShard => "a shard that arrived after the start",
            NotRun::Instance => "a failed instance",
        })
        .collect();
    why.sort();
    why.dedup();
    why.join(" or ")
}

fn pool_size(level: &LoadLevel) -> usize {
    match level {
        LoadLevel::Closed { concurrency } => *concurrency as usize,
        LoadLevel::Open { .. } | LoadLevel::Replay { .. } => 1024,
    }
}

fn expected_requests(exp: &Experiment) -> u64 {
    let p = &exp.plan;
    if let Some(a) = &p.arrivals {
        return a.len() as u64;
    }
    let by_duration = p.duration.map(|d| match p.level {
        LoadLevel::Open { rate, .. } => (rate * d.as_secs_f64() * 1.2) as u64 + 16,
        LoadLevel::Closed { .. } | LoadLevel::Replay { .. } => 256,
    });
    p.warmup_requests + p.requests.or(by_duration).unwrap_or(256)
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Ctrl-C and SIGTERM: stop issuing requests, let in-flight ones finish,
/// write what is done and mark the run `interrupted`. A second signal exits at
/// once, after marking the run (completed experiments are already
/// checkpointed in the bundle).
///
/// With cloud resources (`owns_resources`), a second signal only hurries:
/// it skips the graceful wait and the collection, never the teardown.
#[derive(Clone)]
struct Stop {
    flag: Arc<std::sync::atomic::AtomicBool>,
    /// Set by a second signal when the run owns cloud resources.
    hurry: Arc<std::sync::atomic::AtomicBool>,
    /// 0: none, 1: SIGINT, 2: SIGTERM.
    which: Arc<AtomicU8>,
}

impl Stop {
    fn install(bundle: &Bundle, run_id: &str, owns_resources: bool) -> Result<Stop> {
        let stop = Stop {
            flag: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            hurry: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            which: Arc::new(AtomicU8::new(0)),
        };
        let conn = bundle.connection().try_clone()?;
        let (s, run_id) = (stop.clone(), run_id.to_string());
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            for round in 0.. {
                let which = tokio::select! {
                    _ = int.recv() => 1,
                    _ = term.recv() => 2,
                };
                if round == 0 {
                    s.which.store(which, Ordering::SeqCst);
                    s.flag.store(true, Ordering::SeqCst);
                    if owns_resources {
                        eprintln!("\ninterrupted: collecting what the instances uploaded, then terminating them (Ctrl-C again to skip the collection; the teardown always runs)");
                    } else {
                        eprintln!(
                            "\ninterrupted: finishing in-flight requests, stopping a running command (Ctrl-C again to quit now)"
                        );
                    }
                } else if owns_resources {
                    s.hurry.store(true, Ordering::SeqCst);
                    eprintln!("\ninterrupted again: terminating the instances now (the teardown is never skipped)");
                } else {
                    let _ = conn.execute_batch(&format!(
                        "UPDATE runs SET status = 'interrupted', ended_at = now(), status_reason = 'interrupted twice: stopped at once; the experiment in progress was not written' WHERE run_id = '{run_id}'; CHECKPOINT;"
                    ));
                    std::process::exit(exit::INTERRUPTED as i32);
                }
            }
        });
        Ok(stop)
    }

    fn flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.flag.clone()
    }

    /// The signal that stopped the run, if any.
    fn signal(&self) -> Option<&'static str> {
        match self.which.load(Ordering::SeqCst) {
            1 => Some("Ctrl-C (SIGINT)"),
            2 => Some("SIGTERM"),
            _ => None,
        }
    }
}
