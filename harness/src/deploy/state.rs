//! The local run-state file: every cloud resource a run creates, recorded
//! *before* the create request is sent (with the idempotency client token the
//! request carries), then with its id once AWS answers, then when it is gone.
//! A crash between request and answer is still recoverable: `harness gc`
//! finds the resource by its client token or its tags.
//!
//! One JSON file per run, `<state dir>/<run id>.json`, rewritten whole through
//! a temporary file and a rename (so a reader never sees half a file). The
//! state dir is `$HARNESS_STATE_DIR`, else `$XDG_STATE_HOME/llm-harness/runs`,
//! else `~/.local/state/llm-harness/runs`. No secret is ever written here.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The folder holding the run-state files.
pub fn dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HARNESS_STATE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("llm-harness/runs")
}

/// What a resource is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Instance,
    SecurityGroup,
    /// An S3 object holding a secret, deleted after use.
    SecretObject,
    /// An SSM Run Command that runs the agent on a bring-your-own instance
    /// (`target`); ended by cancelling it and removing the serving
    /// container, never by terminating the instance.
    Command,
}

impl Kind {
    /// As in the state file: `instance`, `security_group`, `secret_object`,
    /// `command`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Instance => "instance",
            Kind::SecurityGroup => "security_group",
            Kind::SecretObject => "secret_object",
            Kind::Command => "command",
        }
    }
}

/// Where a resource is in its life.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The create request is about to be sent, or was sent with no answer.
    Requested,
    Created,
    Deleted,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Requested => "requested",
            Phase::Created => "created",
            Phase::Deleted => "deleted",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resource {
    pub kind: Kind,
    /// The endpoint it serves (empty for run-wide resources).
    pub endpoint: String,
    /// The idempotency token the create carried (RunInstances), or the key.
    pub client_token: String,
    /// The AWS id (instance or group id, or the object key) once known.
    pub id: Option<String>,
    pub phase: Phase,
    pub instance_type: Option<String>,
    /// $/hour, for `harness status`'s cost so far.
    pub usd_per_hour: Option<f64>,
    pub requested_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// For a `command`: the (bring-your-own) instance it runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl Resource {
    /// A resource about to be created, with what every kind records: its
    /// kind, endpoint (empty for run-wide ones) and client token or key.
    pub fn requested(kind: Kind, endpoint: &str, client_token: &str) -> Resource {
        Resource {
            kind,
            endpoint: endpoint.to_string(),
            client_token: client_token.to_string(),
            id: None,
            phase: Phase::Requested,
            instance_type: None,
            usd_per_hour: None,
            requested_at: Utc::now(),
            deleted_at: None,
            target: None,
        }
    }
}

/// One run's state file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    pub run_id: String,
    pub region: String,
    pub config_file: String,
    pub started_at: DateTime<Utc>,
    /// When every instance of the run has shut itself down at the latest.
    pub expires_at: DateTime<Utc>,
    /// `running`, `tearing_down` or `done`.
    pub status: String,
    /// `s3://bucket/prefix` of the run's objects (`gc` deletes the agent
    /// binary and jobs a killed run left there).
    #[serde(default)]
    pub objects: Option<String>,
    /// The harness process running it, and the machine (for `harness gc`,
    /// which leaves a run that is still in flight alone).
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(default)]
    pub host: Option<String>,
    pub resources: Vec<Resource>,
    #[serde(skip)]
    pub path: PathBuf,
}

impl RunState {
    /// Creates the run's state file (and the state folder).
    ///
    /// Errors: the folder cannot be created or written.
    pub fn create(
        run_id: &str,
        region: &str,
        config_file: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<RunState> {
        let d = dir();
        std::fs::create_dir_all(&d)
            .with_context(|| format!("cannot create the run-state folder {}", d.display()))?;
        let s = RunState {
            run_id: run_id.into(),
            region: region.into(),
            config_file: config_file.into(),
            started_at: Utc::now(),
            expires_at,
            status: "running".into(),
            objects: None,
            pid: Some(std::process::id()),
            host: crate::host::facts().name,
            resources: vec![],
            path: d.join(format!("{run_id}.json")),
        };
        s.save()?;
        Ok(s)
    }

    /// True while the harness process that runs it is alive on this machine:
    /// not `done`, its pid alive here and still a harness (a pid reused by
    /// another program, or a zombie, does not count).
    pub fn in_flight(&self) -> bool {
        if self.status == "done" || self.host != crate::host::facts().name {
            return false;
        }
        let Some(pid) = self.pid else {
            return false;
        };
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains("harness"))
            .unwrap_or(false)
    }

    /// Reads every run-state file in [`dir`], oldest first; unreadable files
    /// are reported on stderr and skipped.
    pub fn all() -> Vec<RunState> {
        let mut v = vec![];
        let Ok(entries) = std::fs::read_dir(dir()) else {
            return v;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "json") {
                continue;
            }
            match std::fs::read(&p)
                .map_err(anyhow::Error::from)
                .and_then(|b| Ok(serde_json::from_slice::<RunState>(&b)?))
            {
                Ok(mut s) => {
                    s.path = p;
                    v.push(s);
                }
                Err(e) => eprintln!("warning: skipping run-state file {}: {e}", p.display()),
            }
        }
        v.sort_by_key(|s| s.started_at);
        v
    }

    /// Writes the file whole: a temporary file, fsync, rename.
    pub fn save(&self) -> Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(self)?;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            f.write_all(&body)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        Ok(())
    }

    /// Records a create about to be sent; saved before returning.
    pub fn requested(&mut self, r: Resource) -> Result<()> {
        self.resources.push(r);
        self.save()
    }

    /// Records the id AWS gave the resource created with `client_token`.
    pub fn created(&mut self, client_token: &str, id: &str) -> Result<()> {
        if let Some(r) = self
            .resources
            .iter_mut()
            .find(|r| r.client_token == client_token)
        {
            r.id = Some(id.into());
            r.phase = Phase::Created;
        }
        self.save()
    }

    /// Records that the resource with this id (or client token) is gone.
    pub fn deleted(&mut self, id_or_token: &str) -> Result<()> {
        for r in self
            .resources
            .iter_mut()
            .filter(|r| r.id.as_deref() == Some(id_or_token) || r.client_token == id_or_token)
        {
            r.phase = Phase::Deleted;
            r.deleted_at = Some(Utc::now());
        }
        self.save()
    }

    /// Resources not known to be gone.
    pub fn live(&self) -> impl Iterator<Item = &Resource> {
        self.resources.iter().filter(|r| r.phase != Phase::Deleted)
    }

    /// What the run's instances have cost until `now` (or until each was
    /// deleted), from the recorded $/hour; `None` where a price is unknown.
    pub fn cost_so_far(&self, now: DateTime<Utc>) -> Option<f64> {
        self.resources
            .iter()
            .filter(|r| r.kind == Kind::Instance && r.id.is_some())
            .map(|r| {
                let end = r.deleted_at.unwrap_or(now);
                let hours = (end - r.requested_at).num_milliseconds().max(0) as f64 / 3.6e6;
                r.usd_per_hour.map(|p| p * hours)
            })
            .sum::<Option<f64>>()
            // An empty sum is -0.0.
            .map(|c| c + 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_before_and_after_and_survives_a_reread() {
        let d = tempfile::tempdir().unwrap();
        std::env::set_var("HARNESS_STATE_DIR", d.path());
        let mut s = RunState::create("r1", "us-east-1", "c.yml", Utc::now()).unwrap();
        s.requested(Resource {
            kind: Kind::Instance,
            endpoint: "e".into(),
            client_token: "tok".into(),
            id: None,
            phase: Phase::Requested,
            instance_type: Some("g5.2xlarge".into()),
            usd_per_hour: Some(1.0),
            requested_at: Utc::now() - chrono::Duration::hours(2),
            deleted_at: None,
            target: None,
        })
        .unwrap();
        let again = RunState::all();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].resources[0].phase, Phase::Requested);
        s.created("tok", "i-1").unwrap();
        let c = s.cost_so_far(Utc::now()).unwrap();
        assert!((c - 2.0).abs() < 0.01, "{c}");
        s.deleted("i-1").unwrap();
        assert_eq!(RunState::all()[0].live().count(), 0);
    }
}
