//! The validated config: every value present, in range and consistent.

pub use super::wire::{ApiKind, ProviderKind};
pub use crate::dataset::synthetic::Length;
pub use crate::tokenizer::TokenizerSpec;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub name: String,
    pub seed: u64,
    pub endpoints: Vec<Endpoint>,
    /// Endpoints with provider `command`: programs run over a scenario
    /// matrix (`harness/src/command/`), apart from the request endpoints.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<CommandEndpoint>,
    pub datasets: Vec<Dataset>,
    pub load: Load,
    pub sampling: Sampling,
    pub pricing: Pricing,
    pub budgets: Budgets,
    pub output_dir: String,
    /// Settings for endpoints the harness launches (`ec2:`); defaults when
    /// the config has no `deploy:`.
    pub deploy: Deploy,
}

/// `deploy:`, validated.
#[derive(Debug, Clone, Serialize)]
pub struct Deploy {
    pub region: Option<String>,
    pub max_cost_usd: Option<f64>,
    #[serde(serialize_with = "secs::one")]
    pub max_duration: Duration,
    pub parallel: u32,
    pub client: ClientSite,
    pub allowed_cidr: Option<String>,
    /// `s3://bucket/prefix` for the run's objects (required to launch).
    pub bucket: Option<String>,
    #[serde(serialize_with = "secs::one")]
    pub startup_timeout: Duration,
    pub agent_binary: Option<String>,
    /// The instances' IAM instance profile (by name): they reach the run's
    /// objects with its role after start-up, instead of presigned URLs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_profile: Option<String>,
}

impl Default for Deploy {
    fn default() -> Self {
        Deploy {
            region: None,
            max_cost_usd: None,
            max_duration: Duration::from_secs(2 * 3600),
            parallel: 2,
            client: ClientSite::Instance,
            allowed_cidr: None,
            bucket: None,
            startup_timeout: Duration::from_secs(30 * 60),
            agent_binary: None,
            instance_profile: None,
        }
    }
}

/// Where the benchmark client runs for a launched endpoint.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClientSite {
    /// On the instance, over loopback (no network hop in the figures).
    Instance,
    /// On the machine running the harness, through the instance's port.
    Local,
}

/// An endpoint's `ec2:` section, validated.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Ec2Settings {
    /// An AMI id; `None`: resolved at launch from the public SSM parameter
    /// (shown as `auto`).
    #[serde(serialize_with = "ami_or_auto")]
    pub ami: Option<String>,
    pub image: Option<String>,
    pub command: Option<String>,
    pub tensor_parallel: u32,
    pub max_model_len: Option<u32>,
    pub extra_args: Vec<String>,
    pub hf_token_env: Option<String>,
    /// Spot rather than on-demand (shown as `market`).
    #[serde(rename = "market", serialize_with = "market")]
    pub spot: bool,
    /// The capacity reservation (`cr-…`) the instance launches into.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_reservation: Option<String>,
    pub port: u16,
    pub volume_gib: u32,
    /// Bring your own instance: neither launched nor terminated; the agent
    /// is started on it through SSM Run Command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub name: String,
    pub provider: ProviderKind,
    pub model: String,
    pub instance_type: Option<String>,
    pub instance_count: u32,
    pub serving_stack: Option<String>,
    pub api: ApiKind,
    pub stream: bool,
    pub base_url: Option<String>,
    pub api_key_env: Option<String>,
    pub headers: BTreeMap<String, String>,
    /// Fields merged into every request body (validated not to collide with
    /// the fields the harness sets).
    pub extra_body: serde_json::Map<String, serde_json::Value>,
    pub sim: Option<SimSettings>,
    pub tokenizer: TokenizerSpec,
    /// Launched on EC2 by the harness (then `base_url` is `None`).
    pub ec2: Option<Ec2Settings>,
    /// Provider `sagemaker`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sagemaker: Option<SageMakerSettings>,
    /// Provider `bedrock`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bedrock: Option<BedrockSettings>,
    /// Scraping of the engine's Prometheus metrics; `None`: off.
    pub server_metrics: Option<ServerMetrics>,
}

/// An endpoint with provider `command`, validated.
#[derive(Debug, Clone, Serialize)]
pub struct CommandEndpoint {
    pub name: String,
    /// For the cost of each run (with its price).
    pub instance_type: Option<String>,
    pub instance_count: u32,
    /// The command line as written.
    pub run: String,
    /// `run` split into words.
    #[serde(skip)]
    pub template: Vec<String>,
    pub inputs: Vec<String>,
    pub defaults: harness_core::command::Args,
    pub scenarios: Vec<harness_core::command::Scenario>,
    pub matrix: BTreeMap<String, Vec<serde_json::Value>>,
    pub warmup_runs: u32,
    pub runs: u32,
    #[serde(serialize_with = "secs::one")]
    pub timeout: Duration,
    pub env: BTreeMap<String, String>,
    pub secret_env: Vec<String>,
    #[serde(serialize_with = "secs::one")]
    pub sample_interval: Duration,
    pub metrics: BTreeMap<String, CommandMetric>,
    /// Where the endpoint is in the config (`endpoints[i]`), for errors
    /// found after validation.
    #[serde(skip)]
    pub config_path: super::yaml::Path,
}

/// One declared metric of a command, validated.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CommandMetric {
    pub unit: String,
    pub source: MetricSource,
    pub list: bool,
}

/// Where a command metric is read from.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum MetricSource {
    /// JSON lines on stdout; `key` is a dotted path (the config's
    /// `field:`, and stored as `field`: a field called `key` would be
    /// masked as a secret in the stored config).
    Stdout {
        #[serde(rename = "field")]
        key: String,
    },
    /// A JSON file the command writes (`{run_dir}` allowed in its path).
    File {
        path: String,
        #[serde(rename = "field")]
        key: String,
    },
    /// A regular expression over stdout; capture group 1.
    Regex { pattern: String },
}

/// `server_metrics:`, validated.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServerMetrics {
    /// `None`: the server's origin with path `/metrics`.
    pub url: Option<String>,
    #[serde(serialize_with = "secs::one")]
    pub interval: Duration,
}

/// How requests to a SageMaker endpoint are shaped and read.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum SageMakerFormat {
    /// `{"inputs", "parameters"}` → `generated_text`; streamed as TGI's
    /// `data:{"token":{"text"}}` lines.
    Tgi,
    /// OpenAI chat completions (messages in, choices out; SSE chunks).
    Openai,
    /// The user's request template and JSON pointers.
    Custom {
        request_template: String,
        response_text: String,
        stream_text: Option<String>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct SageMakerSettings {
    pub endpoint_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference_component: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_variant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_attributes: Option<String>,
    pub format: SageMakerFormat,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    pub max_retries: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct BedrockSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    pub max_retries: u32,
    pub additional_fields: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SimSettings {
    pub profile: String,
    pub ttft_ms: Option<f64>,
    pub itl_ms: Option<f64>,
    pub max_concurrency: Option<u32>,
    pub error_rate: f64,
    pub error_kind: SimErrorKind,
    /// Automatic prefix caching (default on, as in vLLM). Serialized only
    /// when off, so that ids of endpoints that leave it alone stay.
    #[serde(skip_serializing_if = "is_true")]
    pub prefix_cache: bool,
}

fn is_true(b: &bool) -> bool {
    *b
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SimErrorKind {
    Http500,
    Http429,
    MidStream,
}

impl SimErrorKind {
    pub const NAMES: [&'static str; 3] = ["http_500", "http_429", "mid_stream"];
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "http_500" => Some(Self::Http500),
            "http_429" => Some(Self::Http429),
            "mid_stream" => Some(Self::MidStream),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Dataset {
    pub name: String,
    pub source: DatasetSource,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetSource {
    Synthetic {
        prompt_tokens: Length,
        output_tokens: Length,
        shared_prefix: crate::dataset::synthetic::SharedPrefix,
        /// Adds a `cold` bucket: the same prompts with each prefix made
        /// unique to its request, so no prefix cache can hit.
        cold_baseline: bool,
    },
    Jsonl {
        path: String,
        template: String,
        answers_key: String,
        buckets: Option<Vec<u64>>,
        output_tokens: u32,
    },
    /// A request trace: each request's prompt and output length, and under a
    /// `replay` load level its arrival time (`dataset::trace`).
    Trace {
        path: String,
        /// `None`: detected from the header.
        format: Option<crate::dataset::trace::Format>,
        /// Seconds of the trace skipped before the first request replayed.
        start_s: f64,
        /// BurstGPT: keep only this model's rows.
        model: Option<String>,
        prompts: TracePrompts,
    },
}

impl DatasetSource {
    /// Whether two prompts may begin alike, so that a prefix cache can hit:
    /// false only for prompts generated unique from their first token.
    pub fn prompts_may_share_prefixes(&self) -> bool {
        match self {
            DatasetSource::Synthetic { shared_prefix, .. } => shared_prefix.tokens > 0,
            DatasetSource::Trace {
                prompts: TracePrompts::Synthetic,
                ..
            } => false,
            _ => true,
        }
    }
}

/// Where a trace's prompts of the traced lengths come from.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum TracePrompts {
    /// Generated with exactly the traced number of tokens.
    Synthetic,
    /// The JSONL row whose prompt is nearest the traced length.
    Jsonl { path: String, template: String },
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    Constant,
    Poisson,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum LoadLevel {
    /// N workers, each sending its next request when the last one ends.
    Closed { concurrency: u32 },
    /// Scheduled arrivals at `rate` requests per second.
    Open { rate: f64, arrival: Arrival },
    /// Arrivals at a trace's own times, `speed` times faster (2: every gap
    /// halved). Needs trace datasets.
    Replay { speed: f64 },
}

impl LoadLevel {
    pub fn label(&self) -> String {
        match self {
            LoadLevel::Closed { concurrency } => format!("c={concurrency}"),
            LoadLevel::Open {
                rate,
                arrival: Arrival::Constant,
            } => format!("{rate}/s"),
            LoadLevel::Open {
                rate,
                arrival: Arrival::Poisson,
            } => format!("{rate}/s poisson"),
            LoadLevel::Replay { speed } => format!("replay x{speed}"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Load {
    pub levels: Vec<LoadLevel>,
    pub requests: Option<u64>,
    #[serde(with = "secs")]
    pub duration: Option<Duration>,
    pub warmup_requests: u64,
    #[serde(with = "secs")]
    pub warmup_duration: Option<Duration>,
    #[serde(serialize_with = "secs::one")]
    pub timeout: Duration,
    pub max_in_flight: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchSettings>,
}

/// `load.search`, validated.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct SearchSettings {
    #[serde(flatten)]
    pub spec: harness_core::search::SearchSpec,
    /// Open loop: the arrival process of every probe.
    pub arrival: Arrival,
    pub early_stop: bool,
}

impl SearchSettings {
    /// The load level probed at `load` (a rate or a concurrency).
    pub fn level(&self, load: f64) -> LoadLevel {
        match self.spec.axis {
            harness_core::search::Axis::Rate => LoadLevel::Open {
                rate: load,
                arrival: self.arrival,
            },
            harness_core::search::Axis::Concurrency => LoadLevel::Closed {
                concurrency: load as u32,
            },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Sampling {
    pub max_tokens: Option<u32>,
    pub temperature: f64,
    pub top_p: Option<f64>,
    /// Sent (as `"ignore_eos": true`) only when true.
    pub ignore_eos: bool,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Pricing {
    pub file: Option<String>,
    pub region: Option<String>,
    pub mode: harness_core::cost::PriceMode,
    pub instance_hourly: BTreeMap<String, f64>,
    pub token_prices: BTreeMap<String, harness_core::cost::TokenPrice>,
}

pub use harness_core::recommend::Budgets;

fn ami_or_auto<S: serde::Serializer>(a: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(a.as_deref().unwrap_or("auto"))
}

fn market<S: serde::Serializer>(spot: &bool, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if *spot { "spot" } else { "on-demand" })
}

/// Durations serialise as seconds (f64) in hashes and bundles.
mod secs {
    use serde::Serializer;
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
    pub fn one<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}
