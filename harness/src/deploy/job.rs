//! What the harness and its agent on a launched instance say to each other,
//! all through S3 objects under the run's prefix, read and written with
//! presigned URLs (the instance holds no AWS credentials):
//!
//! - the **job** (harness → agent): the config and the files it names, the
//!   endpoint to serve and benchmark, the serving container, and where to put
//!   each output;
//! - the **heartbeat** (agent → harness, every [`Job::heartbeat_ms`]): the
//!   agent's phase, so the harness can tell a slow start from a dead agent;
//! - the **bundle**, uploaded whole after every experiment;
//! - the **manifest** (agent → harness, last): the exit status and which
//!   experiments completed. A run is done when its manifest says so, never
//!   because some result object exists.
//!
//! With `deploy.client: local` the agent only serves: once the health check
//! passes, its heartbeat says `serving` with the URL to benchmark, the
//! harness benchmarks from its own machine, then writes the **release**
//! object; the agent uploads its logs and manifest and ends.
//!
//! No secret is in any of them: the Hugging Face token and the per-run API
//! key travel in their own objects, read once by the agent and deleted by
//! the harness.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The agent's instructions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub run_id: String,
    /// The endpoint (of the config) this instance serves.
    pub endpoint: String,
    /// The config file's name and text, and the `--set` overrides, exactly as
    /// the harness loaded them: the agent computes the same experiment ids.
    pub config_file: String,
    pub config_yaml: String,
    pub overrides: Vec<String>,
    /// Files the config names by relative path (pricing, JSONL datasets):
    /// path → contents, written under the agent's working folder.
    pub files: BTreeMap<String, String>,
    /// The serving container.
    pub serve: Serve,
    /// Presigned GET of the Hugging Face token object, if the endpoint has one.
    pub secret_url: Option<String>,
    /// Only serve (`deploy.client: local`): the harness benchmarks from its
    /// own machine through the URL the heartbeat reports.
    #[serde(default)]
    pub serve_only: bool,
    /// With `serve_only`: presigned GET of the per-run API key object; the
    /// serving stack requires the key as a bearer token.
    #[serde(default)]
    pub api_key_url: Option<String>,
    /// With `serve_only`: presigned GET of the release object, which the
    /// harness writes when it is done benchmarking.
    #[serde(default)]
    pub release_url: Option<String>,
    /// Presigned PUTs.
    pub put: Puts,
    pub startup_timeout_s: u64,
    /// How often the agent writes its heartbeat, in ms.
    pub heartbeat_ms: u64,
    /// The run's region: where the `s3://` addresses below are, when the
    /// instance reaches them with its instance profile's role.
    #[serde(default)]
    pub region: String,
}

/// `docker run` of the serving stack.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Serve {
    pub image: String,
    /// `docker run` flags before the image (devices, ports, env names).
    pub docker_flags: Vec<String>,
    /// Arguments after the image.
    pub args: Vec<String>,
    /// The port the OpenAI API answers on.
    pub port: u16,
    /// With a per-run API key: the variables the container reads it from
    /// (their `-e NAME` flags are in `docker_flags`; the agent sets the
    /// values in its own environment, never on a command line it logs).
    #[serde(default)]
    pub api_key_env: Vec<String>,
    /// With a per-run API key, for stacks that take it only as a flag
    /// (SGLang's `--api-key`): the agent appends the flag and the key.
    #[serde(default)]
    pub api_key_flag: Option<String>,
}

impl Serve {
    /// The whole `docker run` command line, for the plan and the logs.
    pub fn command_line(&self) -> String {
        let mut v = vec!["docker".to_string(), "run".into()];
        v.extend(self.docker_flags.iter().cloned());
        v.push(self.image.clone());
        v.extend(self.args.iter().cloned());
        let mut line = v.iter().map(|a| sh_quote(a)).collect::<Vec<_>>().join(" ");
        if let Some(f) = &self.api_key_flag {
            line.push_str(&format!(" {f} <per-run API key>"));
        }
        line
    }
}

/// Where the agent writes: presigned URLs, or with `deploy.instance_profile`
/// `s3://bucket/key` addresses it writes with the instance's role.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Puts {
    pub heartbeat: String,
    pub bundle: String,
    pub manifest: String,
    pub agent_log: String,
    pub serving_log: String,
    /// With `serve_only`: the host samples taken while serving
    /// ([`HostReport`]).
    #[serde(default)]
    pub host: Option<String>,
}

/// `serve_only`: the serving host's samples, taken every second from when
/// it served until it was released, on a clock that started at
/// `started_at` (wall time); the harness moves them onto each experiment's
/// clock ([`crate::host::shifted`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostReport {
    pub started_at: DateTime<Utc>,
    /// The GPUs the sampler sees, or why it sees none.
    pub gpus: String,
    pub samples: Vec<crate::host::Sample>,
}

/// The agent's phases, in order.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Fetching its job and the token, starting the container.
    Starting,
    /// Waiting for the serving stack's health check.
    WaitingForServer,
    /// The server answered; experiments are running.
    Benchmarking,
    /// The server answered and is being benchmarked from the harness's
    /// machine (`serve_only`); the heartbeat carries the URL.
    Serving,
    /// Finished; the manifest is (being) uploaded.
    Done,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Heartbeat {
    pub phase: Phase,
    pub at: DateTime<Utc>,
    pub experiments_done: u32,
    pub message: Option<String>,
    /// In the `serving` phase: the OpenAI base URL (`http://IP:PORT/v1`)
    /// the harness benchmarks.
    #[serde(default)]
    pub url: Option<String>,
}

/// The agent's last word.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// `complete`, `failed` or `interrupted`.
    pub status: String,
    pub exit_code: i32,
    /// The agent's own run id in its bundle.
    pub agent_run_id: Option<String>,
    /// Experiment ids whose results are complete in the uploaded bundle.
    pub completed: Vec<String>,
    /// Experiment id → why it failed or was not run.
    pub not_completed: BTreeMap<String, String>,
    /// The serving image's digest (`repo@sha256:…`), when Docker gave one.
    pub image_digest: Option<String>,
    pub ready_at: Option<DateTime<Utc>>,
    pub ended_at: DateTime<Utc>,
    pub reason: Option<String>,
}

/// Quotes `s` for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
