//! Reading a bundle back: the rows `harness show` and reports need.

use anyhow::Result;
use duckdb::{AccessMode, Config, Connection};
use harness_core::cost::{CostInputs, PriceMode, Rate, TokenPrice, UnitPrice};
use harness_core::{Distribution, ExperimentSummary, RequestSample};
use std::collections::BTreeMap;
use std::path::Path;

/// One experiment with its summary, as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredExperiment {
    pub experiment_id: String,
    pub run_id: String,
    pub label: String,
    pub endpoint: String,
    pub model: String,
    /// Whether the endpoint streamed (TTFT, ITL and TPOT need it).
    pub stream: bool,
    pub instance_type: Option<String>,
    pub instance_count: i32,
    pub dataset: String,
    pub bucket: String,
    pub load_mode: String,
    pub concurrency: Option<i32>,
    pub rate: Option<f64>,
    pub simulated: bool,
    pub status: String,
    /// Why the experiment is `failed`, `skipped` or `interrupted`.
    pub status_reason: Option<String>,
    pub summary: ExperimentSummary,
    /// The price, inputs and figures it was costed with at run time.
    pub costed: harness_core::cost::Costed,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredRun {
    pub run_id: String,
    pub harness_version: String,
    pub git_revision: String,
    pub started_at: String,
    pub status: String,
    /// Why a run is `failed` or `interrupted`.
    pub status_reason: Option<String>,
    pub config_file: String,
    /// The effective config (secrets masked), YAML.
    pub config_yaml: String,
}

/// Opens a bundle read-only.
pub fn open(path: &Path) -> Result<Connection> {
    if !path.exists() {
        crate::bad_input!("no bundle at {}", path.display());
    }
    let cfg = Config::default().access_mode(AccessMode::ReadOnly)?;
    let conn = Connection::open_with_flags(path, cfg).map_err(|e| super::open_error(path, e))?;
    let v: String = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .map_err(|_| {
            crate::exit::bad_input(format!(
                "{} is not a result bundle (a DuckDB file without the bundle's `meta` table)",
                path.display()
            ))
        })?;
    if v != super::SCHEMA_VERSION {
        crate::bad_input!(
            "{} uses bundle schema {v}; this harness reads schema {}",
            path.display(),
            super::SCHEMA_VERSION
        );
    }
    Ok(conn)
}

pub fn runs(conn: &Connection) -> Result<Vec<StoredRun>> {
    let mut st = conn.prepare(
        "SELECT run_id, harness_version, git_revision, strftime(started_at, '%Y-%m-%d %H:%M:%S UTC'), status, status_reason, config_file, config_yaml FROM runs ORDER BY started_at",
    )?;
    let rows = st.query_map([], |r| {
        Ok(StoredRun {
            run_id: r.get(0)?,
            harness_version: r.get(1)?,
            git_revision: r.get(2)?,
            started_at: r.get(3)?,
            status: r.get(4)?,
            status_reason: r.get(5)?,
            config_file: r.get(6)?,
            config_yaml: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A dataset's card as stored (one per dataset and tokenizer).
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredDataset {
    pub dataset: String,
    pub tokenizer_id: String,
    pub kind: String,
    pub path: Option<String>,
    pub content_sha256: String,
    pub template: Option<String>,
    pub bucket_edges: Option<String>,
    pub rows_total: i64,
    pub rows_dropped: i64,
    pub rows_per_bucket: String,
}

pub fn datasets(conn: &Connection) -> Result<Vec<StoredDataset>> {
    let mut st = conn.prepare(
        "SELECT dataset, tokenizer_id, kind, path, content_sha256, template, bucket_edges, rows_total, rows_dropped, rows_per_bucket
         FROM datasets ORDER BY dataset, tokenizer_id",
    )?;
    let rows = st.query_map([], |r| {
        Ok(StoredDataset {
            dataset: r.get(0)?,
            tokenizer_id: r.get(1)?,
            kind: r.get(2)?,
            path: r.get(3)?,
            content_sha256: r.get(4)?,
            template: r.get(5)?,
            bucket_edges: r.get(6)?,
            rows_total: r.get(7)?,
            rows_dropped: r.get(8)?,
            rows_per_bucket: r.get(9)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn experiments(conn: &Connection) -> Result<Vec<StoredExperiment>> {
    let mut dists: BTreeMap<String, BTreeMap<String, Distribution>> = BTreeMap::new();
    {
        let mut st = conn.prepare("SELECT experiment_id, metric, count, mean, min, p50, p90, p95, p99, max FROM distributions")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let f = |i: usize| -> duckdb::Result<f64> {
                Ok(r.get::<_, Option<f64>>(i)?.unwrap_or(0.0))
            };
            let d = Distribution {
                count: r.get::<_, i64>(2)? as u64,
                mean: f(3)?,
                min: f(4)?,
                p50: f(5)?,
                p90: f(6)?,
                p95: f(7)?,
                p99: f(8)?,
                max: f(9)?,
            };
            dists.entry(r.get(0)?).or_default().insert(r.get(1)?, d);
        }
    }
    let mut st = conn.prepare(
        "SELECT e.experiment_id, e.run_id, e.label, e.endpoint, e.instance_type, e.instance_count, e.dataset, e.bucket, e.load_mode,
                e.concurrency, e.rate, e.simulated, e.status,
                s.requests, s.requests_ok, s.requests_failed, s.warmup_requests, s.window_s, s.request_throughput,
                s.output_token_throughput, s.prompt_token_throughput, s.send_rate, s.error_rate, s.errors_by_class,
                s.prompt_token_discrepancy, s.output_token_discrepancy,
                s.usd_per_hour, s.usd_per_request, s.usd_per_10k_requests, s.usd_per_1m_output_tokens, s.usd_run,
                e.model, e.stream, e.status_reason,
                s.prompt_tokens_total, s.output_tokens_total, s.prompt_tokens_all, s.output_tokens_all, s.run_s,
                s.price_mode, s.price_usd_per_instance_hour, s.price_input_per_1m, s.price_output_per_1m,
                s.price_source, s.price_region, s.price_as_of
         FROM experiments e LEFT JOIN summaries s USING (experiment_id) ORDER BY e.ordinal, e.label",
    )?;
    let mut out = vec![];
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        let errors: Option<String> = r.get(23)?;
        let count = |i: usize| -> duckdb::Result<u64> {
            Ok(r.get::<_, Option<i64>>(i)?.unwrap_or(0) as u64)
        };
        let summary = ExperimentSummary {
            requests: count(13)?,
            requests_ok: count(14)?,
            requests_failed: count(15)?,
            warmup_requests: count(16)?,
            window_s: r.get::<_, Option<f64>>(17)?.unwrap_or(0.0),
            request_throughput: r.get::<_, Option<f64>>(18)?.unwrap_or(0.0),
            output_token_throughput: r.get::<_, Option<f64>>(19)?.unwrap_or(0.0),
            prompt_token_throughput: r.get::<_, Option<f64>>(20)?.unwrap_or(0.0),
            send_rate: r.get(21)?,
            error_rate: r.get::<_, Option<f64>>(22)?.unwrap_or(0.0),
            errors_by_class: errors
                .and_then(|e| serde_json::from_str(&e).ok())
                .unwrap_or_default(),
            prompt_token_discrepancy: r.get(24)?,
            output_token_discrepancy: r.get(25)?,
            distributions: dists.remove(&id).unwrap_or_default(),
            prompt_tokens_total: count(34)?,
            output_tokens_total: count(35)?,
            prompt_tokens_all: count(36)?,
            output_tokens_all: count(37)?,
        };
        let instance_count: i32 = r.get(5)?;
        let mode: Option<String> = r.get(39)?;
        let hourly: Option<f64> = r.get(40)?;
        let (input, output): (Option<f64>, Option<f64>) = (r.get(41)?, r.get(42)?);
        let rate = match (hourly, input, output) {
            (Some(h), _, _) => Some(Rate::InstanceHour(h)),
            (None, Some(i), Some(o)) => Some(Rate::Tokens(TokenPrice {
                input_per_1m: i,
                output_per_1m: o,
            })),
            _ => None,
        };
        let price = match (rate, mode.as_deref().and_then(PriceMode::parse)) {
            (Some(rate), Some(mode)) => Some(UnitPrice {
                rate,
                mode,
                source: r.get::<_, Option<String>>(43)?.unwrap_or_default(),
                region: r.get::<_, Option<String>>(44)?.unwrap_or_default(),
                as_of: r.get::<_, Option<String>>(45)?.unwrap_or_default(),
            }),
            _ => None,
        };
        let costed = harness_core::cost::Costed {
            price,
            inputs: CostInputs::from_summary(
                &summary,
                instance_count.max(1) as u32,
                r.get::<_, Option<f64>>(38)?.unwrap_or(0.0),
            ),
            figures: harness_core::cost::CostFigures {
                usd_per_hour: r.get(26)?,
                usd_per_request: r.get(27)?,
                usd_per_10k_requests: r.get(28)?,
                usd_per_1m_output_tokens: r.get(29)?,
                usd_run: r.get(30)?,
            },
        };
        out.push(StoredExperiment {
            experiment_id: id,
            run_id: r.get(1)?,
            label: r.get(2)?,
            endpoint: r.get(3)?,
            model: r.get(31)?,
            stream: r.get(32)?,
            instance_type: r.get(4)?,
            instance_count,
            dataset: r.get(6)?,
            bucket: r.get(7)?,
            load_mode: r.get(8)?,
            concurrency: r.get(9)?,
            rate: r.get(10)?,
            simulated: r.get(11)?,
            status: r.get(12)?,
            status_reason: r.get(33)?,
            summary,
            costed,
        });
    }
    Ok(out)
}

/// Every request of an experiment as the statistics see it (warm-up ones
/// flagged), in send order. Metric selections are applied by the caller with
/// `harness_core` (`Metric::samples`, `summary::metric_values`), never in SQL.
pub fn request_samples(c: &Connection, id: &str) -> Result<Vec<RequestSample>> {
    let mut st = c.prepare(
        "SELECT warmup, scheduled_ns, sent_ns, first_token_ns, end_ns, token_chunk_ns::VARCHAR, status = 'ok', error_class,
                prompt_tokens_usage, output_tokens_usage, prompt_tokens_client, output_tokens_client
         FROM requests WHERE experiment_id = ? ORDER BY seq",
    )?;
    let rows = st.query_map([id], |r| {
        let chunks: String = r.get(5)?;
        let u = |i: usize| -> duckdb::Result<Option<u64>> {
            Ok(r.get::<_, Option<i64>>(i)?.map(|v| v as u64))
        };
        Ok(RequestSample {
            warmup: r.get(0)?,
            scheduled_ns: r.get(1)?,
            sent_ns: r.get(2)?,
            first_token_ns: r.get(3)?,
            end_ns: r.get(4)?,
            token_chunk_ns: chunks
                .trim_matches(['[', ']'])
                .split(',')
                .filter_map(|x| x.trim().parse().ok())
                .collect(),
            ok: r.get(6)?,
            error_class: r.get(7)?,
            prompt_tokens_usage: u(8)?,
            output_tokens_usage: u(9)?,
            prompt_tokens_client: u(10)?,
            output_tokens_client: u(11)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
