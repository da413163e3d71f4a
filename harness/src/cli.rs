//! Command-line interface (clap). Every argument has help text.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "harness",
    version,
    about = "Benchmark LLM endpoints and answer: what does a request cost on serving setup S under latency budget L?",
    help_expected = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run every experiment of a config and write a result bundle.
    Run(RunArgs),
    /// Check a config and report every error; with --show-settings print the resolved config and experiments.
    Validate(ValidateArgs),
    /// Print the summary stored in a result bundle.
    Show(ShowArgs),
    /// Dataset tools: `datasets inspect CONFIG` prints each dataset's card without running anything.
    #[command(subcommand)]
    Datasets(DatasetsCommand),
    /// Capacity plan: how many instances of which type serve R req/min within a latency budget, and the cost.
    Plan(PlanArgs),
    /// Compare two bundles experiment by experiment; with --fail-on-regression, exit 1 on a significant regression.
    Diff(DiffArgs),
    /// Write a price-performance report (Markdown, JSON, SVG charts) from one or more bundles.
    Report(ReportArgs),
    /// Combine bundles into one, keeping every run's provenance; the shards of an experiment (`run --shard K/N`) become one experiment.
    Merge(MergeArgs),
    /// Write a static site (the viewer, DuckDB-WASM and the bundles with an index) that opens the bundles in any browser.
    Publish(PublishArgs),
    /// Run the embedded simulated LLM server on its own.
    Sim(SimArgs),
    /// Find and terminate what EC2 runs left behind (instances, security groups), by their tags.
    Gc(GcArgs),
    /// Show the EC2 runs this machine has in flight: resources and cost so far.
    Status(StatusArgs),
    /// The harness on a launched instance (started by its boot script): serve, benchmark over loopback, upload.
    Agent(AgentArgs),
    /// Benchmarks and tests: recompute a bundle's derived `ecdf` table after its requests were edited with SQL.
    #[command(hide = true)]
    Reindex(ReindexArgs),
}

#[derive(Args, Debug)]
pub struct ReindexArgs {
    /// The bundle to rewrite in place.
    pub bundle: PathBuf,
}

#[derive(Args, Debug)]
pub struct GcArgs {
    /// The region to sweep (default: the SDK's, from AWS_REGION or the profile).
    #[arg(long)]
    pub region: Option<String>,
    /// Only what was launched longer ago than this, e.g. 2h (default: everything found).
    #[arg(long, value_name = "DURATION")]
    pub older_than: Option<String>,
    /// Only list what would be terminated and deleted.
    #[arg(long)]
    pub dry_run: bool,
    /// Also sweep runs this machine has no state file for before their expiry
    /// tag (they may still be in flight on another machine). Runs in flight on
    /// this machine are always left to their own teardown.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Also list finished runs (their state files are kept).
    #[arg(long)]
    pub all: bool,
}

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// Presigned URL of the agent's job (JSON), written by `harness run`.
    #[arg(long)]
    pub job: String,
    /// The file the agent's output goes to (its boot script redirects there): read and uploaded with its results.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Working folder (default: a folder under the system's temporary one).
    #[arg(long)]
    pub workdir: Option<PathBuf>,
    /// Testing: benchmark a stand-in instead of starting the container: `sim` (the embedded simulator) or a base URL.
    #[arg(long, hide = true)]
    pub stand_in: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ConfigArgs {
    /// The experiment config (YAML), e.g. configs/local.yml.
    pub config: PathBuf,
    /// Override a config field: --set load.concurrency=[1,8] (repeatable; the value is YAML).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Bundle file (.duckdb) or directory to write to (default: <output.dir>/<config name>.duckdb).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Rerun experiments whose complete results already exist in the bundle.
    #[arg(long)]
    pub force: bool,
    /// No live progress bars.
    #[arg(long, short)]
    pub quiet: bool,
    /// Do not send each endpoint one test request before its experiments.
    #[arg(long)]
    pub no_preflight: bool,
    /// Print what would be launched and run (instances, AMI, user data with
    /// secrets masked, experiments, cost bound) and exit; creates and sends nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The AWS profile for SageMaker, Bedrock and EC2 (default: the SDK's
    /// chain: environment, `AWS_PROFILE`, SSO, instance role).
    #[arg(long)]
    pub profile: Option<String>,
    /// The AWS region for SageMaker and Bedrock endpoints without their own
    /// `region` (default: the SDK's, from `AWS_REGION` or the profile).
    #[arg(long)]
    pub region: Option<String>,
    #[command(flatten)]
    pub shard: ShardArgs,
}

/// A duration such as `90s`, `10m` or `1h30m` (humantime), or why not.
fn parse_wait(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}; give a duration such as 90s, 10m or 1h30m"))
}

/// One experiment across several load generators (`docs/sharding.md`).
#[derive(Args, Debug, Default, Clone)]
pub struct ShardArgs {
    /// Run shard K of N of every experiment (K counts from 0, as a Kubernetes
    /// Indexed Job's JOB_COMPLETION_INDEX): open-loop arrivals split by index
    /// with the same seed, closed-loop concurrency and requests split as evenly
    /// as they divide. `harness merge` joins the shards' bundles.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<crate::shard::Shard>,
    /// With --shard: a directory every shard reads and writes (a shared
    /// volume, fresh for each job). Before each experiment the shards meet
    /// there, measure their clocks against the volume's and start together.
    #[arg(
        long,
        value_name = "DIR",
        requires = "shard",
        conflicts_with = "start_at"
    )]
    pub barrier: Option<PathBuf>,
    /// With --barrier: how long a shard waits there for the others.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_wait, requires = "barrier")]
    pub barrier_timeout: std::time::Duration,
    /// With --shard, for a config of one experiment: start it at TIME (RFC
    /// 3339, e.g. 2026-12-02T15:00:00Z) on each agent's own system clock,
    /// which NTP keeps in step; the offsets are not measured.
    #[arg(long, value_name = "TIME", requires = "shard")]
    pub start_at: Option<String>,
}

impl ShardArgs {
    /// How the shards agree on each experiment's start; `None` without one.
    ///
    /// Errors (bad input): a --start-at that is not an RFC 3339 time.
    pub fn rule(&self) -> anyhow::Result<Option<crate::shard::StartRule>> {
        use crate::shard::StartRule;
        if let Some(dir) = &self.barrier {
            return Ok(Some(StartRule::Barrier {
                dir: dir.clone(),
                timeout: self.barrier_timeout,
            }));
        }
        let Some(t) = &self.start_at else {
            return Ok(None);
        };
        let at = chrono::DateTime::parse_from_rfc3339(t).map_err(|e| {
            crate::exit::bad_input(format!(
                "--start-at `{t}` is not an RFC 3339 time ({e}): write e.g. 2026-12-02T15:00:00Z"
            ))
        })?;
        let ns = at
            .timestamp_nanos_opt()
            .ok_or_else(|| crate::exit::bad_input(format!("--start-at `{t}` is out of range")))?;
        Ok(Some(StartRule::At(ns)))
    }
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Print the resolved config (secrets masked) and the experiments with their ids.
    #[arg(long)]
    pub show_settings: bool,
    /// Check the config as `harness run` with these options would: what
    /// cannot be split over N shards, a missing or past start; and print
    /// each experiment's part.
    #[command(flatten)]
    pub shard: ShardArgs,
}

#[derive(Subcommand, Debug)]
pub enum DatasetsCommand {
    /// Print the dataset card (source, hash, template, buckets, rows per bucket, rows dropped) per tokenizer.
    Inspect(InspectArgs),
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Also print the first N prompts of each bucket, with their token counts.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub samples: u64,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// A result bundle (.duckdb).
    pub bundle: PathBuf,
    /// Print runs and experiment summaries as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SimArgs {
    /// Address to listen on; only loopback addresses are accepted.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub listen: String,
    /// Performance profile `<instance type>:<model size>` (see --list-profiles).
    #[arg(long, default_value = "g5.xlarge:8b")]
    pub profile: String,
    /// Fixed time to first token in ms (replaces the profile's prefill model).
    #[arg(long)]
    pub ttft_ms: Option<f64>,
    /// Fixed gap between tokens in ms (replaces the profile's decode model).
    #[arg(long)]
    pub itl_ms: Option<f64>,
    /// Most sequences decoded at once per replica; more requests queue.
    #[arg(long)]
    pub max_concurrency: Option<u32>,
    /// Fraction of requests that fail (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// How injected errors fail: http_500, http_429 or mid_stream.
    #[arg(long, default_value = "http_500")]
    pub error_kind: String,
    /// Seed for output lengths, text and injected errors.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Turn off automatic prefix caching (on by default, as in vLLM).
    #[arg(long)]
    pub no_prefix_cache: bool,
    /// Write the ground truth to FILE (JSON lines): per request, when its body
    /// was complete and when each content chunk was handed to the connection
    /// (ns since the simulator started). Benchmarks compare clients with it.
    #[arg(long, value_name = "FILE")]
    pub truth_log: Option<PathBuf>,
    /// List the known profiles and exit.
    #[arg(long)]
    pub list_profiles: bool,
}

#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct PlanArgs {
    /// One or more result bundles (.duckdb), e.g. one per instance type.
    #[arg(required = true)]
    pub bundles: Vec<PathBuf>,
    /// Target workload in requests per minute.
    #[arg(long)]
    pub rpm: f64,
    /// Shorthand for `--latency METRIC.p95=MS` with METRIC from --metric.
    #[arg(long = "latency-p95", value_name = "MS")]
    pub latency_p95: Option<f64>,
    /// The metric --latency-p95 applies to: e2e or ttft.
    #[arg(long, default_value = "e2e")]
    pub metric: String,
    #[command(flatten)]
    pub budget: BudgetArgs,
    /// Prompt tokens of the workload: picks the closest measured dataset bucket.
    #[arg(long)]
    pub prompt: Option<f64>,
    /// Output tokens of the workload: picks the closest measured dataset bucket.
    #[arg(long)]
    pub output: Option<f64>,
    #[command(flatten)]
    pub reprice: RepriceArgs,
}

/// The budget, as `plan` and `report` take it. Given in part or whole, it
/// replaces the bundles' `budgets:`.
#[derive(Args, Debug, Default)]
pub struct BudgetArgs {
    /// A latency budget METRIC.STAT=MS, e.g. ttft.p95=1000 (repeatable).
    #[arg(long = "latency", value_name = "METRIC.STAT=MS")]
    pub latency: Vec<String>,
    /// Most acceptable error rate (fraction); default: the bundles' budget, else 0.01.
    #[arg(long)]
    pub max_error_rate: Option<f64>,
    /// Most acceptable $/request.
    #[arg(long)]
    pub max_usd_per_request: Option<f64>,
    /// A per-request SLO, METRIC=MS pairs with METRIC one of ttft, tpot,
    /// e2e, e.g. ttft=500,tpot=50: attainment and goodput are reported.
    #[arg(long, value_name = "METRIC=MS,...")]
    pub slo: Option<String>,
    /// Least SLO attainment (fraction of measured requests, e.g. 0.99), a
    /// constraint; needs --slo.
    #[arg(long, requires = "slo")]
    pub slo_attainment: Option<f64>,
}

/// Pricing again with another price book instead of the prices recorded in
/// the bundles at run time.
#[derive(Args, Debug, Default)]
pub struct RepriceArgs {
    /// Reprice every experiment from this pricing file (e.g. configs/pricing.yml); the output says so.
    #[arg(long, value_name = "FILE")]
    pub reprice: Option<PathBuf>,
    /// Region whose prices apply when repricing.
    #[arg(long, default_value = "us-east-1", requires = "reprice")]
    pub region: String,
    /// Instance pricing when repricing: on_demand or spot.
    #[arg(long, default_value = "on_demand", requires = "reprice")]
    pub price_mode: String,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The baseline bundle.
    pub old: PathBuf,
    /// The bundle to compare with it.
    pub new: PathBuf,
    /// Latency metrics to compare (comma-separated): ttft, ttft_from_schedule, itl, tpot, e2e, e2e_from_schedule, dispatch_lag.
    #[arg(long, default_value = "ttft,e2e")]
    pub metric: String,
    /// Smallest relative slowdown that counts as a regression, e.g. 5%.
    #[arg(long, default_value = "5%")]
    pub threshold: String,
    /// Exit with status 1 when any significant regression exceeds the threshold (2: bad input, 3: a failure).
    #[arg(long)]
    pub fail_on_regression: bool,
    /// Output format: text, md or json.
    #[arg(long, default_value = "text")]
    pub format: String,
    /// Write the output to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct ReportArgs {
    /// One or more result bundles (.duckdb), e.g. one per instance type.
    #[arg(required = true)]
    pub bundles: Vec<PathBuf>,
    /// Output formats, comma-separated: md, json. SVG charts are always written under DIR/charts.
    #[arg(long, default_value = "md,json")]
    pub format: String,
    /// Directory to write the report into (created if missing).
    #[arg(long, default_value = "report")]
    pub out: PathBuf,
    #[command(flatten)]
    pub budget: BudgetArgs,
    #[command(flatten)]
    pub reprice: RepriceArgs,
    /// Target workload (req/min) for the summary's capacity answer.
    #[arg(long)]
    pub rpm: Option<f64>,
    /// Heatmap range of target rates, LO..HI req/min (default: from the measured capacities).
    #[arg(long, value_name = "LO..HI")]
    pub rpm_range: Option<String>,
    /// Number of target rates in the heatmap (log-spaced).
    #[arg(long, default_value_t = 8)]
    pub rpm_steps: usize,
}

#[derive(Args, Debug)]
pub struct PublishArgs {
    /// The bundles to publish.
    #[arg(required = true)]
    pub bundles: Vec<PathBuf>,
    /// Where the site goes: a directory (created; bundles already there stay in its index), or s3://BUCKET/PREFIX (uploaded with the AWS SDK's credentials; AWS_ENDPOINT_URL for an S3-compatible store).
    #[arg(long)]
    pub to: String,
    /// The built viewer (viewer/build.sh); default: $HARNESS_VIEWER_SITE, else $HARNESS_CACHE/viewer-site.
    #[arg(long)]
    pub site: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The bundles to combine. One is enough where its shards are all there
    /// (a 1-shard run), or with --allow-missing-shards to keep a partial one.
    #[arg(required = true, num_args = 1..)]
    pub bundles: Vec<PathBuf>,
    /// The new bundle to write (must not exist).
    #[arg(short, long)]
    pub out: PathBuf,
    /// When the same experiment id holds results from different runs: fail (default), or keep the newest or the first given.
    #[arg(long, default_value = "fail", value_parser = ["fail", "newest", "first"])]
    pub on_conflict: String,
    /// Join the shards of an experiment (`run --shard`) even when some are
    /// missing or did not complete; the merged experiment is then
    /// `incomplete` (its load was not the plan's), kept for inspection.
    #[arg(long)]
    pub allow_missing_shards: bool,
}
