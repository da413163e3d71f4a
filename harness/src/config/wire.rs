//! The config file as written: every field optional, unknown keys rejected.
//!
//! These types only describe the file's shape. `validate.rs` turns them into the
//! strict types in `model.rs`, checking presence, ranges and cross-field rules
//! and collecting every problem instead of stopping at the first.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireConfig {
    /// Name of the config; the default bundle is `results/<name>.duckdb`.
    pub name: Option<String>,
    /// Seed for arrivals, prompts and the simulator.
    pub seed: Option<u64>,
    pub endpoints: Option<Vec<WireEndpoint>>,
    pub datasets: Option<Vec<WireDataset>>,
    pub load: Option<WireLoad>,
    pub sampling: Option<WireSampling>,
    pub pricing: Option<WirePricing>,
    pub budgets: Option<WireBudgets>,
    pub output: Option<WireOutput>,
    /// How the harness brings up the endpoints that have an `ec2:` section.
    pub deploy: Option<WireDeploy>,
}

/// `deploy:`, for endpoints the harness launches itself.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireDeploy {
    /// AWS region (default: the SDK's, from `AWS_REGION` or the profile).
    pub region: Option<String>,
    /// The run refuses to start when its cost bound is over this.
    pub max_cost_usd: Option<f64>,
    /// Longest an instance may live (e.g. `2h`): it shuts itself down then,
    /// and the cost bound is priced on it.
    pub max_duration: Option<String>,
    /// Instances brought up at once (default 2).
    pub parallel: Option<u32>,
    /// Where the benchmark client runs: `instance` (default) or `local`.
    pub client: Option<String>,
    /// With `client: local`: the only CIDR allowed to reach the serving port.
    pub allowed_cidr: Option<String>,
    /// `s3://bucket/prefix` the run's objects go under (the agent, its job,
    /// heartbeats, bundles and logs), in `<prefix>/runs/<run id>/`.
    pub bucket: Option<String>,
    /// Longest wait for a launched instance's serving stack to answer (e.g.
    /// `30m`, the default).
    pub startup_timeout: Option<String>,
    /// The harness binary delivered to the instances (default: this one); a
    /// portable Linux build for AMIs whose glibc is older than this machine's.
    pub agent_binary: Option<String>,
    /// An IAM instance profile for the launched instances, whose role can
    /// read and write the run's objects: then the instances use it for
    /// heartbeats and results instead of presigned URLs, so the run may
    /// outlive the credentials that start it.
    pub instance_profile: Option<String>,
}

/// An endpoint's `ec2:` section: the harness launches the instance(s) and
/// the serving stack, and tears them down.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireEc2 {
    /// An AMI id, or `auto` (default): the AWS Deep Learning AMI (GPU), or
    /// the Neuron one for inf/trn instances, from its public SSM parameter.
    pub ami: Option<String>,
    /// The serving container image; default: the pinned image of `serving_stack`.
    pub image: Option<String>,
    /// For `serving_stack: custom`: the command that serves on the port.
    pub command: Option<String>,
    pub tensor_parallel: Option<u32>,
    pub max_model_len: Option<u32>,
    pub extra_args: Option<Vec<String>>,
    /// Name of the environment variable holding a Hugging Face token (never the token).
    pub hf_token_env: Option<String>,
    /// `on-demand` (default) or `spot`.
    pub market: Option<String>,
    /// An EC2 capacity reservation (`cr-…`) to launch into: on-demand
    /// capacity held for this account, billed whether used or not. Its
    /// instance type and availability zone must match.
    pub capacity_reservation: Option<String>,
    /// Serving port on the instance (default 8000).
    pub port: Option<u16>,
    /// Root volume size in GiB (default 200).
    pub volume_gib: Option<u32>,
    /// Bring your own instance (`i-…`): a running instance of yours that
    /// the harness neither launches nor terminates; the agent is started on
    /// it through SSM Run Command (it needs the SSM agent and an instance
    /// profile that lets it register).
    pub instance_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// The embedded simulator, started in-process on loopback.
    Sim,
    /// Any OpenAI-compatible server (vLLM, TGI, SGLang, llama.cpp, Ollama).
    Openai,
    /// A SageMaker real-time endpoint (`InvokeEndpoint`,
    /// `InvokeEndpointWithResponseStream`).
    Sagemaker,
    /// An Amazon Bedrock model or inference profile (`Converse`,
    /// `ConverseStream`).
    Bedrock,
    /// Not an endpoint: a program run over a scenario matrix (`command:`),
    /// its metrics read from what it writes.
    Command,
}

impl ProviderKind {
    /// As in the config and the bundle: `sim`, `openai`, `sagemaker`,
    /// `bedrock`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Sim => "sim",
            ProviderKind::Openai => "openai",
            ProviderKind::Sagemaker => "sagemaker",
            ProviderKind::Bedrock => "bedrock",
            ProviderKind::Command => "command",
        }
    }

    /// Reached through the AWS SDK with the run's AWS credentials.
    pub fn is_aws(self) -> bool {
        matches!(self, ProviderKind::Sagemaker | ProviderKind::Bedrock)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiKind {
    /// `/v1/chat/completions`
    Chat,
    /// `/v1/completions`
    Completions,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireEndpoint {
    pub name: Option<String>,
    pub provider: Option<ProviderKind>,
    pub model: Option<String>,
    pub instance_type: Option<String>,
    pub instance_count: Option<u32>,
    pub serving_stack: Option<String>,
    pub api: Option<ApiKind>,
    pub stream: Option<bool>,
    pub base_url: Option<String>,
    /// Name of the environment variable holding the API key (never the key).
    pub api_key_env: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    /// Engine-specific request fields merged into every request body, e.g.
    /// `{top_k: 20}` for vLLM; the default body holds only OpenAI fields.
    pub extra_body: Option<serde_json::Map<String, serde_json::Value>>,
    pub sim: Option<WireSim>,
    /// How the client counts tokens: one of `file`, `gguf`, `hf` (default: words).
    pub tokenizer: Option<WireTokenizer>,
    /// Launch this endpoint on EC2 (provider `openai`, no `base_url`).
    pub ec2: Option<WireEc2>,
    /// Provider `sagemaker`: the endpoint and its payload format.
    pub sagemaker: Option<WireSageMaker>,
    /// Provider `bedrock`: region, retries, extra model fields.
    pub bedrock: Option<WireBedrock>,
    /// Scrape the engine's Prometheus metrics while experiments run:
    /// `false`, or `{ url, interval }` (default: on for `openai` and `sim`,
    /// at the server's `/metrics`, every 1 s).
    pub server_metrics: Option<WireServerMetrics>,
    /// Provider `command`: the program, its scenario matrix and its metrics.
    pub command: Option<WireCommand>,
}

/// `command:` of an endpoint with provider `command`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireCommand {
    /// The command line, split into words as a shell would (no shell runs
    /// it): `{name}` takes an argument, `{run_dir}` the run's own empty
    /// directory, and the word `{args}` every other argument as
    /// `--name value`.
    pub run: Option<String>,
    /// Files whose content is part of each cell's identity (the script the
    /// command runs, its data): changing one reruns the cells.
    pub inputs: Option<Vec<String>>,
    /// Arguments merged under every scenario's.
    pub defaults: Option<BTreeMap<String, serde_json::Value>>,
    /// Named argument maps; a list value is enumerated (one cell per value).
    pub scenarios: Option<Vec<WireScenario>>,
    /// Axes crossed with every scenario, e.g. `num_gpus: [1, 2]`.
    pub matrix: Option<BTreeMap<String, Vec<serde_json::Value>>>,
    /// Unmeasured runs per cell before the measured ones (default 0).
    pub warmup_runs: Option<u32>,
    /// Measured runs per cell (default 3).
    pub runs: Option<u32>,
    /// Longest a run may take (default `30m`); it is then killed, with its
    /// process group, and recorded as a timeout.
    pub timeout: Option<String>,
    /// Environment variables set for the command, by value (not secret).
    pub env: Option<BTreeMap<String, String>>,
    /// Environment variables passed through by name only (tokens, keys):
    /// their values are never stored, hashed or shown.
    pub secret_env: Option<Vec<String>>,
    /// How often the host and the command's process tree are sampled
    /// (default `500ms`).
    pub sample_interval: Option<String>,
    /// The metrics the command reports, by name.
    pub metrics: Option<BTreeMap<String, WireCommandMetric>>,
}

/// One scenario of `command.scenarios`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireScenario {
    pub name: Option<String>,
    pub arguments: Option<BTreeMap<String, serde_json::Value>>,
}

/// One metric of `command.metrics`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireCommandMetric {
    /// Its unit, stored with each value (e.g. `s`, `tokens/s`, `tokens`).
    pub unit: Option<String>,
    /// `stdout` (default: JSON lines on stdout, the last that has the key
    /// wins) or a JSON file the command writes, e.g. `{run_dir}/metrics.json`.
    pub json: Option<String>,
    /// The field of the JSON object (default: the metric's name); dots go
    /// into nested objects. (Not `key`: a `key` is masked as a secret.)
    pub field: Option<String>,
    /// Instead of JSON: a regular expression over stdout whose first
    /// capture group is the value.
    pub regex: Option<String>,
    /// A list of values (e.g. per-token times): a JSON array, or every
    /// match of `regex`; otherwise one number (the last match).
    pub list: Option<bool>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum WireServerMetrics {
    On(bool),
    Settings(WireServerMetricsSettings),
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireServerMetricsSettings {
    pub url: Option<String>,
    pub interval: Option<String>,
}

/// `sagemaker:` of an endpoint with provider `sagemaker`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireSageMaker {
    /// The SageMaker endpoint's name.
    pub endpoint_name: Option<String>,
    /// An inference component on the endpoint.
    pub inference_component: Option<String>,
    /// A production variant to send to.
    pub target_variant: Option<String>,
    /// `X-Amzn-SageMaker-Custom-Attributes`, passed to the container.
    pub custom_attributes: Option<String>,
    /// Payload format: `tgi` (default: `{inputs, parameters}` →
    /// `generated_text`, as TGI and LMI containers take), `openai` (chat
    /// messages, as LMI and vLLM containers take) or `custom`.
    pub format: Option<String>,
    /// `format: custom`: the request body, JSON, with `{{prompt}}` (a JSON
    /// string) and `{{max_tokens}}` (a number) in place.
    pub request_template: Option<String>,
    /// `format: custom`: JSON pointer to the text in a whole response.
    pub response_text: Option<String>,
    /// `format: custom`, streamed: JSON pointer to the text in each
    /// streamed line.
    pub stream_text: Option<String>,
    /// AWS region (default: `--region`, then the SDK's).
    pub region: Option<String>,
    /// Another endpoint URL for the SageMaker runtime API (a proxy, a VPC
    /// endpoint, the simulator).
    pub endpoint_url: Option<String>,
    /// Retries of a throttled request (HTTP 429): bounded, counted, and
    /// excluded from latency (default 2).
    pub max_retries: Option<u32>,
}

/// `bedrock:` of an endpoint with provider `bedrock` (its `model` is the
/// model id or inference profile id).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireBedrock {
    /// AWS region (default: `--region`, then the SDK's).
    pub region: Option<String>,
    /// Another endpoint URL for the Bedrock runtime API.
    pub endpoint_url: Option<String>,
    /// Retries of a throttled request (`ThrottlingException`): bounded,
    /// counted, and excluded from latency (default 2).
    pub max_retries: Option<u32>,
    /// Model-specific request fields (`additionalModelRequestFields`), e.g.
    /// `{top_k: 50}`.
    pub additional_fields: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireTokenizer {
    /// A Hugging Face `tokenizer.json`.
    pub file: Option<String>,
    /// A GGUF model file; its tokenizer is rebuilt from the metadata.
    pub gguf: Option<String>,
    /// A Hugging Face Hub model id (`org/name`).
    pub hf: Option<String>,
    /// Hub revision (branch, tag or commit; default `main`).
    pub revision: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireSim {
    /// `<instance type>:<model size>`, e.g. `g5.xlarge:8b`; `harness sim --list-profiles`.
    pub profile: Option<String>,
    /// Fixed time to first token, replacing the profile's prefill model.
    pub ttft_ms: Option<f64>,
    /// Fixed inter-token gap, replacing the profile's decode model.
    pub itl_ms: Option<f64>,
    /// Most sequences decoded at once; more requests queue.
    pub max_concurrency: Option<u32>,
    /// Fraction of requests that fail (0..1).
    pub error_rate: Option<f64>,
    /// How injected errors fail: `http_500`, `http_429` or `mid_stream`.
    pub error_kind: Option<String>,
    /// Automatic prefix caching, as vLLM's (default true).
    pub prefix_cache: Option<bool>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireDataset {
    pub name: Option<String>,
    pub synthetic: Option<WireSynthetic>,
    pub jsonl: Option<WireJsonl>,
    /// A request trace (Azure LLM inference trace or BurstGPT CSV).
    pub trace: Option<WireTrace>,
    /// Prompt-token bucket edges for JSONL rows, e.g. `[1, 500, 1000, 2000]`.
    pub buckets: Option<Vec<u64>>,
    /// JSONL: max output tokens per request (default 128).
    pub output_tokens: Option<u32>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireSynthetic {
    pub prompt_tokens: Option<WireLength>,
    pub output_tokens: Option<WireLength>,
    /// Leading tokens shared by every prompt (0: every prompt unique).
    pub shared_prefix_tokens: Option<u32>,
    /// N prefixes, each shared by M requests (instead of `shared_prefix_tokens`).
    pub shared_prefix: Option<WireSharedPrefix>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireSharedPrefix {
    /// Tokens in each prefix.
    pub tokens: Option<u32>,
    /// How many distinct prefixes (default 1).
    pub prefixes: Option<u32>,
    /// Requests sharing each prefix before a fresh set of prefixes is used
    /// (default: unlimited).
    pub requests_per_prefix: Option<u32>,
    /// Also run the same prompts with each prefix made unique (a `cold`
    /// bucket beside `shared`): the baseline without prefix-cache hits.
    pub cold_baseline: Option<bool>,
}

/// `512`, `{uniform: [256, 1024]}` or `{normal: {mean, std, min, max}}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum WireLength {
    Fixed(u32),
    Dist(WireDist),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireDist {
    pub uniform: Option<[u32; 2]>,
    pub normal: Option<WireNormal>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireNormal {
    pub mean: f64,
    pub std: f64,
    pub min: u32,
    pub max: u32,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireJsonl {
    /// Path of the JSONL file (relative to the current directory).
    pub path: Option<String>,
    /// Prompt template with `{key}` placeholders; `{{` and `}}` are literal braces.
    pub template: Option<String>,
    /// Key holding the ground-truth answers (default `answers`).
    pub answers_key: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireTrace {
    /// The CSV file (relative to the current directory).
    pub path: Option<String>,
    /// `azure` or `burstgpt`; detected from the header when not given.
    pub format: Option<String>,
    /// Skip the trace's first part (`10m`): replay starts at this offset.
    pub start: Option<String>,
    /// BurstGPT: replay only this model's rows (`ChatGPT`, `GPT-4`).
    pub model: Option<String>,
    /// `synthetic` (default), or `{jsonl: {path, template}}`.
    pub prompts: Option<WirePrompts>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum WirePrompts {
    Named(String),
    Jsonl { jsonl: WireJsonl },
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireLoad {
    /// Closed-loop levels: number of concurrent workers.
    pub concurrency: Option<Vec<u32>>,
    /// Open-loop levels: request rates in requests per second.
    pub rates: Option<Vec<f64>>,
    /// Arrival process for open-loop levels: `constant` or `poisson`.
    pub arrival: Option<String>,
    /// Trace replay levels: speed-ups of the traces' own arrival times
    /// (`[1, 2]`: as traced, then twice as fast).
    pub replay: Option<Vec<f64>>,
    /// Measured requests per level.
    pub requests: Option<u64>,
    /// Measured duration per level (`30s`, `2m`).
    pub duration: Option<String>,
    pub warmup: Option<WireWarmup>,
    /// Per-request timeout (`60s`).
    pub timeout: Option<String>,
    /// Open loop: most requests in flight; arrivals beyond it are recorded as
    /// failed with class `client_saturated`, never silently dropped.
    pub max_in_flight: Option<u32>,
    /// A capacity search per endpoint and dataset bucket.
    pub search: Option<WireSearch>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireWarmup {
    pub requests: Option<u64>,
    pub duration: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireSampling {
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    /// Ask the server to ignore end-of-sequence so that every response has
    /// `max_tokens` tokens. Not an OpenAI field (vLLM, SGLang and the simulator
    /// take it): sent only when true. Default false.
    pub ignore_eos: Option<bool>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WirePricing {
    /// A pricing file (`configs/pricing.yml`).
    pub file: Option<String>,
    /// Region whose prices apply.
    pub region: Option<String>,
    /// Instance pricing: `on_demand` (default) or `spot`.
    pub mode: Option<String>,
    /// $/hour per instance type, overriding the file.
    pub instance_hourly: Option<BTreeMap<String, f64>>,
    /// $ per 1M input and output tokens per model, overriding the file; used for
    /// endpoints without an instance type (token-priced APIs such as Bedrock).
    pub token_prices: Option<BTreeMap<String, WireTokenPrice>>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireTokenPrice {
    pub input_per_1m: f64,
    pub output_per_1m: f64,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireBudgets {
    pub ttft_p95_ms: Option<f64>,
    pub e2e_p95_ms: Option<f64>,
    pub error_rate: Option<f64>,
    pub cost_per_request: Option<f64>,
    /// Per-request limits: a request attains the SLO when it succeeded and
    /// met every one.
    pub slo: Option<WireSlo>,
    /// Least fraction of measured requests attaining `slo` (`0.99`).
    pub slo_attainment: Option<f64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireSlo {
    pub ttft_ms: Option<f64>,
    pub tpot_ms: Option<f64>,
    pub e2e_ms: Option<f64>,
}

/// `load.search`: find the highest load that holds the budget.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireSearch {
    /// Search open-loop rates (req/s), starting here.
    pub rate: Option<f64>,
    /// Search closed-loop concurrency, starting here.
    pub concurrency: Option<u32>,
    /// Relative width of the final interval (`0.05` = 5%).
    pub precision: Option<f64>,
    pub max_probes: Option<u32>,
    /// Lowest load to probe when halving.
    pub min: Option<f64>,
    /// Highest load to probe when doubling.
    pub max: Option<f64>,
    /// Stop a probe once its budget is clearly broken (default true).
    pub early_stop: Option<bool>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WireOutput {
    /// Directory for bundles (default `results`).
    pub dir: Option<String>,
}
