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
//! No secret is in any of them: the Hugging Face token travels in its own
//! object, read once by the agent and deleted by the harness.

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
    /// Presigned PUTs.
    pub put: Puts,
    pub startup_timeout_s: u64,
    /// How often the agent writes its heartbeat, in ms.
    pub heartbeat_ms: u64,
}

/// `docker run` of the serving stack.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Serve {
    pub image: String,
    /// `docker run` flags before the image (devices, ports, env names).
    pub docker_flags: Vec<String>,
    /// Arguments after the image.
    pub args: Vec<String>,
    /// The loopback port the OpenAI API answers on.
    pub port: u16,
}

impl Serve {
    /// The whole `docker run` command line, for the plan and the logs.
    pub fn command_line(&self) -> String {
        let mut v = vec!["docker".to_string(), "run".into()];
        v.extend(self.docker_flags.iter().cloned());
        v.push(self.image.clone());
        v.extend(self.args.iter().cloned());
        v.iter().map(|a| sh_quote(a)).collect::<Vec<_>>().join(" ")
    }
}

/// Where the agent writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Puts {
    pub heartbeat: String,
    pub bundle: String,
    pub manifest: String,
    pub agent_log: String,
    pub serving_log: String,
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
    /// Finished; the manifest is (being) uploaded.
    Done,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Heartbeat {
    pub phase: Phase,
    pub at: DateTime<Utc>,
    pub experiments_done: u32,
    pub message: Option<String>,
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
