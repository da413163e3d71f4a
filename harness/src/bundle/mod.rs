//! The result bundle: one DuckDB file holding every input and output of a run.
//! `schema.sql` is the schema; `docs/bundle.md` documents it.
//!
//! Each experiment is written in one transaction followed by a CHECKPOINT, so
//! a crash or Ctrl-C at any moment leaves every completed experiment intact in
//! the main file. Files are created with storage version v1.4.0 so that
//! DuckDB-WASM 1.32 (DuckDB 1.4.3) can open them in the viewer.

mod command;
pub(crate) use command::{completed_cells, copy_attached_cells};
pub use command::{CellRow, CommandRunRow};
pub mod read;
mod stream;

pub use stream::RequestStream;

use crate::record::RequestRecord;
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use duckdb::{params, Config, Connection};
use harness_core::cost::Rate;
use harness_core::{ExperimentSummary, Metric};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub use harness_view::contract::{SCHEMA_VERSION, STORAGE_VERSION};
const SCHEMA: &str = include_str!("schema.sql");
/// DuckDB's memory limit for a bundle opened for writing (bench/run.sh,
/// section 5: peak RSS against requests per experiment).
const BUFFER_POOL: &str = "64MB";

/// Timestamps go in as RFC 3339 text; DuckDB casts them to TIMESTAMPTZ.
fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339()
}

pub struct Bundle {
    pub path: PathBuf,
    conn: Connection,
    /// Experiments a dead process had left `running`, marked `incomplete`
    /// when this bundle was opened.
    pub recovered: usize,
}

/// A run's provenance row.
pub struct RunRow {
    pub run_id: String,
    pub started_at: DateTime<Utc>,
    pub config_file: String,
    pub config_name: String,
    pub config_yaml: String,
    pub overrides: Vec<String>,
    pub command_line: String,
    /// The GPUs the host sampler sees, or why it sees none
    /// (`host::Sampler::gpus`).
    pub host_gpus: Option<String>,
}

/// An experiment's row (everything but its results). Built from the
/// experiment with [`ExperimentRow::new`].
#[derive(Clone)]
pub struct ExperimentRow<'a> {
    pub experiment_id: &'a str,
    pub run_id: &'a str,
    pub ordinal: i32,
    pub label: &'a str,
    pub endpoint: &'a str,
    pub provider: &'a str,
    pub model: &'a str,
    pub api: &'a str,
    pub stream: bool,
    pub instance_type: Option<&'a str>,
    pub instance_count: i32,
    pub serving_stack: Option<&'a str>,
    pub dataset: &'a str,
    pub bucket: &'a str,
    pub tokenizer_id: &'a str,
    pub tokenizer_sha256: &'a str,
    pub load_mode: &'a str,
    pub concurrency: Option<i32>,
    pub rate: Option<f64>,
    pub arrival: Option<&'static str>,
    pub hash_inputs: String,
    pub simulated: bool,
    pub sim_profile: Option<&'a str>,
    pub status: &'a str,
    /// Why an experiment is `failed`, `skipped` or `interrupted`.
    pub status_reason: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    /// A capacity search's probe: the search's id (`searches`).
    pub search_id: Option<&'a str>,
    /// Why the probe stopped before its plan ended, when it did.
    pub stopped_early: Option<String>,
    /// Set when this process ran one shard of the experiment (`shards`).
    pub shard: Option<ShardRow>,
}

/// One shard of an experiment (`harness run --shard K/N`): who ran it, how
/// it was split, and when it started on the shared clock. `docs/bundle.md`
/// (`shards`) defines each field.
#[derive(Debug, Clone)]
pub struct ShardRow {
    pub shard: u32,
    pub shards: u32,
    pub host_name: Option<String>,
    /// How the plan was split, e.g. `seq mod 3 = 1` or `concurrency 3 of 8,
    /// requests 34 of 100, warm-up 2 of 5`.
    pub split: String,
    pub start_unix_ns: i64,
    pub start_late_ns: i64,
    pub clock_source: &'static str,
    pub clock_offset_ns: Option<i64>,
    pub clock_offset_error_ns: Option<i64>,
}

impl<'a> ExperimentRow<'a> {
    /// The row of `exp` in run `run_id`, with its outcome.
    pub fn new(
        exp: &'a crate::plan::Experiment,
        run_id: &'a str,
        status: &'a str,
        status_reason: Option<String>,
        started_at: DateTime<Utc>,
        ended_at: DateTime<Utc>,
    ) -> Self {
        use crate::config::{ApiKind, LoadLevel, ProviderKind};
        let ep = &exp.endpoint;
        let (load_mode, concurrency, rate, arrival) = match exp.plan.level {
            LoadLevel::Closed { concurrency } => ("closed", Some(concurrency as i32), None, None),
            LoadLevel::Open { rate, arrival } => (
                "open",
                None,
                Some(rate),
                Some(match arrival {
                    crate::config::Arrival::Constant => "constant",
                    crate::config::Arrival::Poisson => "poisson",
                }),
            ),
            // A replay is open loop at its trace's mean offered rate.
            LoadLevel::Replay { .. } => ("open", None, exp.plan.offered_rate(), Some("trace")),
        };
        ExperimentRow {
            experiment_id: &exp.id,
            run_id,
            ordinal: exp.ordinal as i32,
            label: &exp.label,
            endpoint: &ep.name,
            provider: ep.provider.as_str(),
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
            load_mode,
            concurrency,
            rate,
            arrival,
            hash_inputs: exp.hash_inputs_json(),
            simulated: ep.provider == ProviderKind::Sim,
            sim_profile: ep.sim.as_ref().map(|s| s.profile.as_str()),
            status,
            status_reason,
            started_at,
            ended_at,
            search_id: exp.probe_of.as_ref().map(|s| s.id.as_str()),
            stopped_early: None,
            shard: None,
        }
    }
}

/// A capacity search's row: written when it starts (`found` NULL) and
/// again when it ends.
pub struct SearchRow<'a> {
    pub search_id: &'a str,
    pub run_id: &'a str,
    pub label: &'a str,
    pub endpoint: &'a str,
    pub dataset: &'a str,
    pub bucket: &'a str,
    pub settings: &'a crate::config::SearchSettings,
    pub budget: &'a harness_core::recommend::Constraints,
    pub found: Option<&'a harness_core::search::Found>,
}

/// The outcome of one endpoint's preflight request.
pub struct PreflightRow<'a> {
    pub run_id: &'a str,
    pub endpoint: &'a str,
    /// Masked (`redact::url`).
    pub url: Option<String>,
    pub checked_at: DateTime<Utc>,
    pub ok: bool,
    pub http_status: Option<u16>,
    pub error_class: Option<&'a str>,
    pub message: String,
    pub latency_ms: Option<f64>,
}

/// One launched instance: where, what, each phase's time and how it ended.
/// `docs/bundle.md` (`deployments`) defines each field.
#[derive(Debug, Clone, Default)]
pub struct DeploymentRow {
    pub run_id: String,
    pub endpoint: String,
    pub kind: String,
    pub region: Option<String>,
    pub instance_id: Option<String>,
    pub instance_type: Option<String>,
    pub market: Option<String>,
    pub ami: Option<String>,
    pub image: Option<String>,
    pub image_digest: Option<String>,
    pub agent_run_id: Option<String>,
    pub launched_at: Option<DateTime<Utc>>,
    pub ready_at: Option<DateTime<Utc>>,
    pub benchmarked_at: Option<DateTime<Utc>>,
    pub collected_at: Option<DateTime<Utc>>,
    pub terminated_at: Option<DateTime<Utc>>,
    pub usd_per_hour: Option<f64>,
    pub experiments_completed: i32,
    pub experiments_missing: i32,
    pub status: String,
    pub status_reason: Option<String>,
    pub agent_log: Option<String>,
    pub serving_log: Option<String>,
}

impl DeploymentRow {
    /// `usd_per_hour` × (terminated − launched) in hours.
    pub fn cost_usd(&self) -> Option<f64> {
        let (l, t) = (self.launched_at?, self.terminated_at?);
        Some(self.usd_per_hour? * (t - l).num_milliseconds().max(0) as f64 / 3.6e6)
    }
}

/// Appends `host_samples` rows.
fn append_host_samples(c: &Connection, host: &[harness_core::host::HostSampleRow]) -> Result<()> {
    let mut app = c.appender("host_samples")?;
    for h in host {
        app.append_row(params![
            h.experiment_id,
            h.load_window,
            h.t_ns,
            h.cpu_util_pct,
            h.mem_used_bytes,
            h.mem_total_bytes,
            h.gpu_index,
            h.gpu_util_pct,
            h.gpu_mem_used_bytes,
            h.gpu_mem_total_bytes,
            h.gpu_power_w,
            h.proc_rss_bytes,
        ])?;
    }
    app.flush()?;
    Ok(())
}

/// Copies rows from the attached bundle `src` into the open one: its runs
/// that `runs` (a SQL condition on `run_id`) selects and their preflights,
/// when not already present, the experiments (with summaries,
/// distributions, ECDF groups, host samples and requests) whose ids `kept` (a SQL subquery) selects,
/// and the dataset cards and rows `datasets` (a SQL condition) selects.
/// One definition for `harness merge` and for collecting an instance's bundle.
pub(crate) fn copy_attached(c: &Connection, runs: &str, kept: &str, datasets: &str) -> Result<()> {
    c.execute_batch(&format!(
        "BEGIN;
         INSERT INTO runs SELECT * FROM src.runs WHERE run_id NOT IN (SELECT run_id FROM runs) AND {runs};
         INSERT INTO preflights SELECT * FROM src.preflights WHERE (run_id, endpoint) NOT IN (SELECT (run_id, endpoint) FROM preflights) AND {runs};
         INSERT INTO deployments SELECT * FROM src.deployments WHERE (run_id, endpoint) NOT IN (SELECT (run_id, endpoint) FROM deployments);
         INSERT INTO experiments SELECT * FROM src.experiments WHERE experiment_id IN {kept};
         INSERT INTO searches SELECT * FROM src.searches WHERE search_id NOT IN (SELECT search_id FROM searches);
         INSERT INTO summaries SELECT * FROM src.summaries WHERE experiment_id IN {kept};
         INSERT INTO distributions SELECT * FROM src.distributions WHERE experiment_id IN {kept};
         INSERT INTO ecdf SELECT * FROM src.ecdf WHERE experiment_id IN {kept};
         INSERT INTO host_samples SELECT * FROM src.host_samples WHERE experiment_id IN {kept};
         INSERT INTO server_metrics SELECT * FROM src.server_metrics WHERE experiment_id IN {kept};
         INSERT INTO server_scrapes SELECT * FROM src.server_scrapes WHERE experiment_id IN {kept};
         INSERT INTO requests SELECT * FROM src.requests WHERE experiment_id IN {kept};
         INSERT INTO shards SELECT * FROM src.shards WHERE experiment_id IN {kept};
         INSERT INTO datasets SELECT * FROM src.datasets WHERE {datasets};
         INSERT INTO dataset_rows SELECT * FROM src.dataset_rows WHERE {datasets};
         COMMIT;"
    ))?;
    Ok(())
}

impl Bundle {
    /// Adds `host_samples` rows to experiments already written (the serving
    /// host's samples, which arrive after a `client: local` benchmark).
    pub fn write_host_samples(&self, rows: &[harness_core::host::HostSampleRow]) -> Result<()> {
        append_host_samples(&self.conn, rows)?;
        self.conn.execute_batch("CHECKPOINT")?;
        Ok(())
    }

    /// Records a launched instance (replacing an earlier row for the same
    /// run and endpoint); logs and the reason are masked.
    pub fn write_deployment(&self, d: &DeploymentRow) -> Result<()> {
        let mask = |s: &Option<String>| s.as_deref().map(crate::redact::text);
        self.conn.execute(
            "INSERT OR REPLACE INTO deployments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params![
                d.run_id, d.endpoint, d.kind, d.region, d.instance_id, d.instance_type, d.market,
                d.ami, d.image, d.image_digest, d.agent_run_id,
                d.launched_at.map(ts), d.ready_at.map(ts), d.benchmarked_at.map(ts),
                d.collected_at.map(ts), d.terminated_at.map(ts),
                d.usd_per_hour, d.cost_usd(), d.experiments_completed, d.experiments_missing,
                d.status, mask(&d.status_reason), mask(&d.agent_log), mask(&d.serving_log),
            ],
        )?;
        self.checkpoint()
    }

    /// Takes in the experiments `ids` of the bundle file `src` (an instance's,
    /// collected), replacing earlier rows for those ids, with the runs,
    /// preflights and dataset cards they need. A run of `src` still marked
    /// `running` (its agent stopped mid-run) becomes `lost`.
    ///
    /// Errors: `src` is not a bundle of this schema version.
    pub fn absorb(&mut self, src: &Path, ids: &[String]) -> Result<()> {
        read::open(src)?; // a bundle, and of this schema version
        {
            let tx = self.conn.transaction()?;
            for id in ids {
                delete_experiment(&tx, id)?;
            }
            tx.commit()?;
        }
        let c = &self.conn;
        c.execute_batch(&format!(
            "ATTACH {} AS src (READ_ONLY)",
            harness_view::contract::sql_string(&src.to_string_lossy())
        ))
        .with_context(|| format!("cannot attach {}", src.display()))?;
        let kept = if ids.is_empty() {
            "(SELECT NULL WHERE FALSE)".to_string()
        } else {
            format!(
                "({})",
                ids.iter()
                    .map(|i| harness_view::contract::sql_string(i))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let running: Vec<String> = {
            let mut st = c.prepare("SELECT run_id FROM src.runs WHERE status = 'running'")?;
            let v = st
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<_, _>>()?;
            v
        };
        let copied = copy_attached(
            c,
            "TRUE",
            &kept,
            "(dataset, tokenizer_sha256) NOT IN (SELECT (dataset, tokenizer_sha256) FROM datasets)",
        );
        c.execute_batch("DETACH src")?;
        copied.with_context(|| format!("copying results from {}", src.display()))?;
        mark_incomplete(c)?;
        for run_id in running {
            c.execute(
                "UPDATE runs SET status = 'lost', ended_at = coalesce(ended_at, now()), status_reason = ? WHERE run_id = ?",
                params!["the agent stopped before finishing its run (crashed, killed, or its instance ended); every experiment it uploaded is complete", run_id],
            )?;
        }
        self.checkpoint()
    }

    /// Rewrites the `ecdf` rows of every experiment from the requests table,
    /// for a bundle whose requests were edited outside the harness (the
    /// viewer's speed benchmark inflates them with SQL). Returns how many
    /// experiments it rewrote.
    pub fn rewrite_ecdf(&mut self) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let ids: Vec<String> = {
            let mut st = tx.prepare("SELECT experiment_id FROM experiments ORDER BY ordinal")?;
            let ids = st.query_map([], |r| r.get(0))?;
            ids.collect::<duckdb::Result<_>>()?
        };
        for id in &ids {
            write_ecdf(&tx, id)?;
        }
        tx.commit()?;
        self.checkpoint()?;
        Ok(ids.len())
    }

    /// Opens a bundle, creating it (and its directory) when missing.
    pub fn open(path: &Path) -> Result<Bundle> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create directory {}", dir.display()))?;
        }
        let existed = path.exists();
        // DuckDB's buffer pool would otherwise keep the pages of every row
        // written (up to 80% of RAM), so that the client's memory grew with
        // the number of requests; past this limit it evicts them, and spills
        // large sorts to a temporary directory beside the file.
        let cfg = Config::default()
            .with("storage_compatibility_version", STORAGE_VERSION)?
            .with("memory_limit", BUFFER_POOL)?;
        let conn = Connection::open_with_flags(path, cfg).map_err(|e| open_error(path, e))?;
        if existed {
            let version: Option<String> = conn
                .query_row(
                    "SELECT value FROM meta WHERE key = 'schema_version'",
                    [],
                    |r| r.get(0),
                )
                .ok();
            match version.as_deref() {
                Some(SCHEMA_VERSION) => {}
                Some(v) => crate::bad_input!(
                    "{} was written with bundle schema {v}; this harness writes schema {SCHEMA_VERSION}. Write to a new file with --out",
                    path.display()
                ),
                None => crate::bad_input!("{} exists but is not a result bundle (no meta table); choose another --out", path.display()),
            }
        }
        conn.execute_batch(SCHEMA)?;
        // Only one process writes a bundle at a time (DuckDB's file lock), so
        // a run still marked `running` belongs to a process that ended without
        // finishing it: SIGKILL, a crash, a machine that stopped.
        conn.execute(
            "UPDATE runs SET status = 'killed', status_reason = ? WHERE status = 'running'",
            params![harness_view::contract::KILLED_RUN_REASON],
        )?;
        conn.execute(
            "INSERT INTO meta VALUES ('schema_version', ?), ('created_by', ?) ON CONFLICT DO NOTHING",
            params![SCHEMA_VERSION, format!("harness {}", env!("CARGO_PKG_VERSION"))],
        )?;
        let recovered = mark_incomplete(&conn)?;
        Ok(Bundle {
            path: path.to_path_buf(),
            conn,
            recovered,
        })
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Ids of experiments whose results are complete in this bundle.
    pub fn completed_ids(&self) -> Result<HashSet<String>> {
        let mut st = self
            .conn
            .prepare("SELECT experiment_id FROM experiments WHERE status = 'complete'")?;
        let ids = st
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<HashSet<_>, _>>()?;
        Ok(ids)
    }

    pub fn begin_run(&self, r: &RunRow) -> Result<()> {
        let host = crate::host::facts();
        let duckdb_version: String =
            self.conn
                .query_row("SELECT library_version FROM pragma_version()", [], |x| {
                    x.get(0)
                })?;
        self.conn.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, NULL, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)",
            params![
                r.run_id,
                env!("CARGO_PKG_VERSION"),
                env!("HARNESS_GIT_REVISION"),
                ts(r.started_at),
                r.config_file,
                r.config_name,
                r.config_yaml,
                serde_json::to_string(&r.overrides)?,
                r.command_line,
                host.name,
                host.os,
                host.arch,
                host.cpus,
                host.memory_bytes,
                duckdb_version,
                r.host_gpus,
            ],
        )?;
        self.checkpoint()
    }

    /// Ends a run with its status (`complete`, `failed`, `interrupted`) and,
    /// unless complete, the reason (secrets masked).
    pub fn finish_run(&self, run_id: &str, status: &str, reason: Option<&str>) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET status = ?, ended_at = ?, status_reason = ? WHERE run_id = ?",
            params![
                status,
                ts(Utc::now()),
                reason.map(crate::redact::text),
                run_id
            ],
        )?;
        self.checkpoint()
    }

    /// Records an endpoint's preflight check.
    pub fn write_preflight(&self, p: &PreflightRow<'_>) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO preflights VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params![
                p.run_id,
                p.endpoint,
                p.url,
                ts(p.checked_at),
                p.ok,
                p.http_status.map(|s| s as i16),
                p.error_class,
                crate::redact::text(&p.message),
                p.latency_ms,
            ],
        )?;
        self.checkpoint()
    }

    /// Writes (or replaces) a capacity search's row.
    pub fn write_search(&self, s: &SearchRow<'_>) -> Result<()> {
        let json = |v: serde_json::Value| harness_core::hash::canonical_json(&v);
        self.conn.execute(
            "INSERT OR REPLACE INTO searches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params![
                s.search_id,
                s.run_id,
                s.label,
                s.endpoint,
                s.dataset,
                s.bucket,
                json(serde_json::json!(s.settings)),
                json(serde_json::json!(s.budget)),
                s.found.map(|f| json(serde_json::json!(f))),
                ts(Utc::now()),
            ],
        )?;
        self.checkpoint()
    }

    /// Marks the completed experiment `id` as a probe of search `search_id`
    /// (a rerun's search reusing it).
    pub fn claim_probe(&self, id: &str, search_id: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE experiments SET search_id = ? WHERE experiment_id = ?",
            params![search_id, id],
        )?;
        Ok(())
    }

    /// Records an experiment that was not run (e.g. `skipped`: its endpoint
    /// failed preflight), unless the bundle already holds complete results
    /// for it, which are kept.
    pub fn write_skipped(&mut self, e: &ExperimentRow<'_>) -> Result<()> {
        let tx = self.conn.transaction()?;
        let complete: i64 = tx.query_row(
            "SELECT count(*) FROM experiments WHERE experiment_id = ? AND status = 'complete'",
            params![e.experiment_id],
            |r| r.get(0),
        )?;
        if complete == 0 {
            delete_experiment(&tx, e.experiment_id)?;
            insert_experiment(&tx, e)?;
        }
        tx.commit()?;
        self.checkpoint()
    }

    /// Starts writing experiment `e` (status `running`): removes any earlier
    /// results for its id (a `--force` rerun, or rows an interrupted process
    /// left) and inserts its row, so that the request rows streamed while it
    /// runs ([`RequestStream`]) belong to an experiment that is not complete.
    /// Until [`Bundle::finish_experiment`] it is never mistaken for complete:
    /// a process that dies first leaves it `running`, which the next open
    /// marks `incomplete`.
    pub fn begin_experiment(&mut self, e: &ExperimentRow<'_>) -> Result<()> {
        let tx = self.conn.transaction()?;
        delete_experiment(&tx, e.experiment_id)?;
        insert_experiment(
            &tx,
            &ExperimentRow {
                status: "running",
                ..e.clone()
            },
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Ends experiment `e` begun by [`Bundle::begin_experiment`], whose
    /// requests are already streamed: in one transaction, followed by a
    /// CHECKPOINT, it sets its final status and writes its summary
    /// (`summaries`, `distributions`), cost, `ecdf` (SQL over its stored
    /// requests), host samples and server metrics.
    pub fn finish_experiment(
        &mut self,
        e: &ExperimentRow<'_>,
        s: &ExperimentSummary,
        costed: &harness_core::cost::Costed,
        host: &[harness_core::host::HostSampleRow],
        server: Option<&crate::scrape::Scraped>,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM experiments WHERE experiment_id = ?",
            params![e.experiment_id],
        )?;
        insert_experiment(&tx, e)?;
        write_ecdf(&tx, e.experiment_id)?;
        append_host_samples(&tx, host)?;
        if let Some(m) = server {
            let mut app = tx.appender("server_metrics")?;
            for x in &m.samples {
                app.append_row(params![e.experiment_id, x.t_ns, x.name, x.labels, x.value])?;
            }
            app.flush()?;
            tx.execute(
                "INSERT INTO server_scrapes VALUES (?, ?, ?, ?, ?, ?)",
                params![
                    e.experiment_id,
                    m.url,
                    m.interval.as_secs_f64(),
                    m.attempts as i64,
                    m.failures as i64,
                    m.last_error
                ],
            )?;
        }
        insert_summary(&tx, e.experiment_id, e.simulated, s, costed)?;
        tx.commit()?;
        self.checkpoint()
    }

    /// Writes the results of experiment `id` whose row and requests are
    /// already in the bundle (the shards `harness merge` joined): its summary
    /// with cost, and its `ecdf` from the stored requests, replacing any.
    pub fn write_results(
        &mut self,
        id: &str,
        simulated: bool,
        s: &ExperimentSummary,
        costed: &harness_core::cost::Costed,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        for t in ["summaries", "distributions"] {
            tx.execute(
                &format!("DELETE FROM {t} WHERE experiment_id = ?"),
                params![id],
            )?;
        }
        insert_summary(&tx, id, simulated, s, costed)?;
        write_ecdf(&tx, id)?;
        tx.commit()?;
        self.checkpoint()
    }

    /// Records a dataset's card and its rows (JSONL datasets) as prepared for
    /// one tokenizer, replacing an earlier copy.
    pub fn write_dataset(&mut self, p: &crate::dataset::Prepared) -> Result<()> {
        let c = &p.card;
        let tx = self.conn.transaction()?;
        for t in ["datasets", "dataset_rows"] {
            tx.execute(
                &format!("DELETE FROM {t} WHERE dataset = ? AND tokenizer_sha256 = ?"),
                params![c.dataset, c.tokenizer_sha256],
            )?;
        }
        tx.execute(
            "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params![
                c.dataset,
                c.tokenizer_sha256,
                c.tokenizer_id,
                c.kind,
                c.path,
                c.content_sha256,
                c.template,
                c.bucket_edges
                    .as_ref()
                    .map(|e| serde_json::to_string(e).expect("json")),
                c.rows_total as i64,
                c.rows_dropped as i64,
                serde_json::to_string(&c.rows_per_bucket)?,
                c.spec.to_string(),
            ],
        )?;
        {
            let mut app = tx.appender("dataset_rows")?;
            for b in &p.buckets {
                if let crate::dataset::Source::Rows(rows) = &b.source {
                    for r in rows.iter() {
                        app.append_row(params![
                            c.dataset,
                            c.tokenizer_sha256,
                            b.name,
                            r.line as i64,
                            &*r.prompt,
                            r.prompt_tokens as i64,
                            r.answers.as_ref().map(|a| a.to_string()),
                        ])?;
                    }
                }
            }
        }
        tx.commit()?;
        self.checkpoint()
    }

    pub(crate) fn checkpoint(&self) -> Result<()> {
        self.conn.execute_batch("CHECKPOINT")?;
        Ok(())
    }
}

/// An error opening a bundle: bad input (exit 2) when the file is not a
/// DuckDB database at all, a runtime failure otherwise (e.g. another process
/// holds its lock).
pub(crate) fn open_error(path: &Path, e: duckdb::Error) -> anyhow::Error {
    let text = e.to_string();
    if text.contains("not a valid DuckDB database") {
        crate::exit::bad_input(format!(
            "{} is not a result bundle (not a DuckDB file)",
            path.display()
        ))
    } else if text.contains("version number") {
        crate::exit::bad_input(format!(
            "{} was written by a DuckDB version this harness cannot read ({}); bundles are written with storage version {STORAGE_VERSION}",
            path.display(),
            text.lines().next().unwrap_or("")
        ))
    } else {
        anyhow::anyhow!("cannot open bundle {}: {e}", path.display())
    }
}

/// Appends request rows of one experiment (one transaction per call).
/// DuckDB's appender cannot append LIST values yet: the chunk times are
/// staged as text in the connection's temporary `requests_stage` and cast in
/// one INSERT ... SELECT.
pub(crate) fn append_requests(
    c: &mut Connection,
    experiment_id: &str,
    simulated: bool,
    shard: Option<u32>,
    records: &[RequestRecord],
) -> Result<()> {
    let tx = c.transaction()?;
    {
        let mut app = tx.appender_to_catalog_and_db("requests_stage", "temp", "main")?;
        let mut chunks = String::new();
        for r in records {
            chunks.clear();
            chunks.push('[');
            for (i, t) in r.token_chunk_ns.iter().enumerate() {
                if i > 0 {
                    chunks.push(',');
                }
                chunks.push_str(&t.to_string());
            }
            chunks.push(']');
            app.append_row(params![
                experiment_id,
                r.seq as i64,
                r.warmup,
                r.scheduled_ns,
                r.sent_ns,
                r.first_byte_ns,
                r.first_token_ns,
                r.end_ns,
                r.events as i32,
                r.http_status.map(|s| s as i16),
                if r.ok { "ok" } else { "error" },
                r.error_class.map(|c| c.as_str()),
                r.error_message,
                r.prompt_tokens_client.map(|v| v as i64),
                r.output_tokens_client.map(|v| v as i64),
                r.prompt_tokens_usage.map(|v| v as i64),
                r.output_tokens_usage.map(|v| v as i64),
                match (r.prompt_tokens_usage, r.prompt_tokens_client) {
                    (Some(u), Some(c)) => Some(u as i64 - c as i64),
                    _ => None,
                },
                r.finish_reason,
                simulated,
                r.retries as i32,
                shard,
                chunks.as_str(),
            ])?;
        }
        app.flush()?;
    }
    tx.execute_batch(
        "INSERT INTO requests SELECT experiment_id, seq, warmup, scheduled_ns, sent_ns, first_byte_ns, first_token_ns, end_ns, \
         token_chunk_ns::BIGINT[], events, http_status, status, error_class, error_message, prompt_tokens_client, \
         output_tokens_client, prompt_tokens_usage, output_tokens_usage, prompt_token_discrepancy, finish_reason, simulated, retries, shard FROM requests_stage; \
         DELETE FROM requests_stage;",
    )?;
    tx.commit()?;
    Ok(())
}

/// The connection-local table request rows are staged in ([`append_requests`]).
pub(crate) const REQUESTS_STAGE: &str = "CREATE TEMP TABLE IF NOT EXISTS requests_stage AS SELECT * EXCLUDE (token_chunk_ns), ''::VARCHAR AS token_chunk_ns FROM requests LIMIT 0;";

/// Marks experiments still `running` as `incomplete`: their process ended
/// (killed, crashed, or the machine stopped) while they ran. Their request
/// rows written so far are kept for inspection, but they have no summary and
/// no analysis, `completed_ids` or report counts them; a rerun measures them
/// again (replacing the rows).
fn mark_incomplete(c: &Connection) -> Result<usize> {
    // A shard's part of an experiment its process died in.
    c.execute(
        "UPDATE shards SET status = 'incomplete' WHERE status = 'running'",
        [],
    )?;
    let cells = c.execute(
        "UPDATE command_cells SET status = 'incomplete', status_reason = 'its process ended while it ran; the runs it finished are kept' WHERE status = 'running'",
        [],
    )?;
    // The contract's reason, with the number of rows kept.
    Ok(cells + c.execute(
        "UPDATE experiments SET status = 'incomplete', status_reason = replace(?, 'its request rows', \
           'its ' || (SELECT count(*) FROM requests r WHERE r.experiment_id = experiments.experiment_id) || ' request rows') \
         WHERE status = 'running'",
        params![harness_view::contract::INCOMPLETE_REASON],
    )?)
}

/// Writes the `ecdf` rows of one experiment from its stored requests
/// (`contract::ecdf_groups_sql`), replacing any it had.
fn write_ecdf(c: &Connection, experiment_id: &str) -> Result<()> {
    c.execute(
        "DELETE FROM ecdf WHERE experiment_id = ?",
        params![experiment_id],
    )?;
    c.execute_batch(&format!(
        "INSERT INTO ecdf {}",
        harness_view::contract::ecdf_groups_sql(experiment_id)
    ))?;
    Ok(())
}

/// Inserts an experiment's `summaries` row (with its cost) and its
/// `distributions` rows.
fn insert_summary(
    tx: &duckdb::Transaction<'_>,
    experiment_id: &str,
    simulated: bool,
    s: &ExperimentSummary,
    costed: &harness_core::cost::Costed,
) -> Result<()> {
    let cost = &costed.figures;
    let price = costed.price.as_ref();
    let (hourly, tokens) = match price.map(|p| p.rate) {
        Some(Rate::InstanceHour(h)) => (Some(h), None),
        Some(Rate::Tokens(t)) => (None, Some(t)),
        None => (None, None),
    };
    tx.execute(
        "INSERT INTO summaries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        params![
            experiment_id,
            s.requests as i64,
            s.requests_ok as i64,
            s.requests_failed as i64,
            s.warmup_requests as i64,
            s.window_s,
            s.request_throughput,
            s.output_token_throughput,
            s.prompt_token_throughput,
            s.send_rate,
            s.error_rate,
            serde_json::to_string(&s.errors_by_class)?,
            s.prompt_token_discrepancy,
            s.output_token_discrepancy,
            s.token_mismatch(),
            cost.usd_per_hour,
            cost.usd_per_request,
            cost.usd_per_10k_requests,
            cost.usd_per_1m_output_tokens,
            cost.usd_run,
            simulated,
            costed.inputs.prompt_tokens as i64,
            costed.inputs.output_tokens as i64,
            costed.inputs.prompt_tokens_all as i64,
            costed.inputs.output_tokens_all as i64,
            costed.inputs.run_s,
            price.map(|p| p.mode.as_str()),
            hourly,
            tokens.map(|t| t.input_per_1m),
            tokens.map(|t| t.output_per_1m),
            price.map(|p| p.source.as_str()),
            price.map(|p| p.region.as_str()),
            price.map(|p| p.as_of.as_str()),
        ],
    )?;
    {
        let mut app = tx.appender("distributions")?;
        for m in Metric::ALL {
            let d = s.distributions.get(m.id()).cloned().unwrap_or_default();
            let v = |x: f64| (d.count > 0).then_some(x);
            app.append_row(params![
                experiment_id,
                m.id(),
                m.unit().as_str(),
                d.count as i64,
                v(d.mean),
                v(d.min),
                v(d.p50),
                v(d.p90),
                v(d.p95),
                v(d.p99),
                v(d.max),
            ])?;
        }
    }
    Ok(())
}

/// Removes every row of an experiment (before it is written again).
fn delete_experiment(tx: &duckdb::Transaction<'_>, id: &str) -> Result<()> {
    for table in [
        "distributions",
        "ecdf",
        "host_samples",
        "server_metrics",
        "server_scrapes",
        "summaries",
        "requests",
        "shards",
        "experiments",
    ] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE experiment_id = ?"),
            params![id],
        )?;
    }
    Ok(())
}

fn insert_experiment(tx: &duckdb::Transaction<'_>, e: &ExperimentRow<'_>) -> Result<()> {
    tx.execute(
        "INSERT INTO experiments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        params![
            e.experiment_id, e.run_id, e.ordinal, e.label, e.endpoint, e.provider, e.model, e.api, e.stream,
            e.instance_type, e.instance_count, e.serving_stack, e.dataset, e.bucket, e.tokenizer_id, e.tokenizer_sha256, e.load_mode, e.concurrency, e.rate,
            e.arrival, e.hash_inputs, e.simulated, e.sim_profile, e.status, ts(e.started_at), ts(e.ended_at),
            e.status_reason.as_deref().map(crate::redact::text), e.search_id, e.stopped_early,
        ],
    )?;
    if let Some(s) = &e.shard {
        tx.execute(
            "INSERT OR REPLACE INTO shards VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params![
                e.experiment_id,
                s.shard,
                s.shards,
                e.run_id,
                s.host_name,
                e.status,
                s.split,
                s.start_unix_ns,
                s.start_late_ns,
                s.clock_source,
                s.clock_offset_ns,
                s.clock_offset_error_ns,
            ],
        )?;
    }
    Ok(())
}
