//! The bundle contract: the schema version, the queries that read a bundle
//! back, the rows they return and how those rows decode into the stored
//! experiment, run and dataset types.
//!
//! Both readers run the same SQL text and hand its rows, as JSON objects keyed
//! by column name, to the same decoding: the harness reads them with native
//! DuckDB (`harness/src/bundle/read.rs`), the viewer with DuckDB-WASM
//! (`viewer/src/db.rs`). `docs/bundle.md` documents every column.
//!
//! A query's table names carry a `{db}` prefix: empty for a file opened on its
//! own, `"b0".` for a bundle attached under the alias `b0`.

use harness_core::cost::{CostFigures, CostInputs, Costed, PriceMode, Rate, TokenPrice, UnitPrice};
use harness_core::{Distribution, ExperimentSummary, Metric};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The bundle schema this build writes and reads (`meta.schema_version`).
pub const SCHEMA_VERSION: &str = "10";
/// The DuckDB storage version bundles are created with, so that DuckDB-WASM
/// 1.32 (DuckDB 1.4.3) opens them.
pub const STORAGE_VERSION: &str = "v1.4.0";

/// A query over one bundle, with `{db}` where the catalog prefix goes.
#[derive(Debug, Clone, Copy)]
pub struct Query(pub &'static str);

impl Query {
    /// The SQL for the bundle attached as `alias` (`None`: the open database).
    /// `alias` must be a plain identifier (`[a-z0-9_]+`); it is quoted.
    pub fn sql(self, alias: Option<&str>) -> String {
        let prefix = alias.map(|a| format!("\"{a}\".")).unwrap_or_default();
        self.0.replace("{db}", &prefix)
    }
}

/// `meta.schema_version`: one row, column `value`.
pub const SCHEMA: Query = Query("SELECT value FROM {db}meta WHERE key = 'schema_version'");

/// Why a run left `running` is `killed` (the queries below, and the harness
/// when it marks one): a macro so that the queries' literals embed it.
macro_rules! killed_run_reason {
    () => {
        "the process ended without finishing the run (killed, crashed, or the machine stopped); the experiments it finished, if any, are complete, and one it was running is incomplete"
    };
}
/// Why an experiment left `running` is `incomplete` (as [`killed_run_reason`]).
macro_rules! incomplete_reason {
    () => {
        "the process ended while this experiment ran (killed, crashed, or the machine stopped); its request rows written so far are kept but not summarised; rerun to measure it"
    };
}
/// [`RUNS`]' reason for a run a dead process left `running`.
pub const KILLED_RUN_REASON: &str = killed_run_reason!();
/// [`EXPERIMENTS`]' reason for an experiment a dead process left `running`.
pub const INCOMPLETE_REASON: &str = incomplete_reason!();

/// One [`RunRecord`] per run, oldest first. A run left `running` reads as
/// `killed` (as the harness marks it on its next open for writing): a reader
/// gets the file only when no process writes it.
pub const RUNS: Query =
    Query(concat!(
    "SELECT run_id, harness_version, git_revision, epoch_us(started_at) / 1e6 AS started_epoch_s,
            CASE status WHEN 'running' THEN 'killed' ELSE status END AS status,
            CASE status WHEN 'running' THEN '", killed_run_reason!(), "'
                 ELSE status_reason END AS status_reason,
            config_file, config_yaml, host_gpus
     FROM {db}runs ORDER BY started_at",
));

/// One [`StoredDataset`] per dataset and tokenizer.
pub const DATASETS: Query = Query(
    "SELECT dataset, tokenizer_id, kind, path, content_sha256, template, bucket_edges, rows_total, rows_dropped,
            rows_per_bucket
     FROM {db}datasets ORDER BY dataset, tokenizer_id",
);

/// Every `host_samples` row (`harness_core::host::HostSampleRow`), by
/// experiment, GPU and time.
pub const HOST_SAMPLES: Query = Query(
    "SELECT experiment_id, load_window, t_ns, cpu_util_pct, mem_used_bytes, mem_total_bytes, gpu_index, gpu_util_pct,
            gpu_mem_used_bytes, gpu_mem_total_bytes, gpu_power_w, proc_rss_bytes
     FROM {db}host_samples ORDER BY experiment_id, gpu_index, t_ns",
);

/// One [`DistributionRecord`] per experiment and metric.
pub const DISTRIBUTIONS: Query = Query(
    "SELECT experiment_id, metric, count, mean, min, p50, p90, p95, p99, max FROM {db}distributions",
);

/// One [`ExperimentRecord`] per experiment (with its summary when it has one),
/// in plan order (a capacity search's probes, which share its place, by load).
/// An experiment left `running` reads as `incomplete`: a reader gets the
/// file only when no writer holds it, so its process died while it ran,
/// whether or not the harness has reopened the bundle since and marked it.
pub const EXPERIMENTS: Query = Query(concat!(
    "SELECT e.experiment_id, e.run_id, e.label, e.endpoint, e.model, e.stream, e.instance_type, e.instance_count,
            e.dataset, e.bucket, e.load_mode, e.concurrency, e.rate, e.simulated,
            CASE e.status WHEN 'running' THEN 'incomplete' ELSE e.status END AS status,
            CASE e.status WHEN 'running' THEN '", incomplete_reason!(), "'
                 ELSE e.status_reason END AS status_reason,
            e.search_id, e.stopped_early, x.found AS search_found, x.budget AS search_budget,
            s.requests, s.requests_ok, s.requests_failed, s.warmup_requests, s.window_s, s.request_throughput,
            s.output_token_throughput, s.prompt_token_throughput, s.send_rate, s.error_rate, s.errors_by_class,
            s.prompt_token_discrepancy, s.output_token_discrepancy,
            s.usd_per_hour, s.usd_per_request, s.usd_per_10k_requests, s.usd_per_1m_output_tokens, s.usd_run,
            s.prompt_tokens_total, s.output_tokens_total, s.prompt_tokens_all, s.output_tokens_all, s.run_s,
            s.price_mode, s.price_usd_per_instance_hour, s.price_input_per_1m, s.price_output_per_1m,
            s.price_source, s.price_region, s.price_as_of
     FROM {db}experiments e LEFT JOIN {db}summaries s USING (experiment_id)
          LEFT JOIN {db}searches x ON x.search_id = e.search_id
     ORDER BY e.ordinal, coalesce(e.rate, e.concurrency), e.label",
));

/// Checks a bundle's `meta.schema_version` against [`SCHEMA_VERSION`].
///
/// Errors: a message naming `file`, the version found and the one expected.
pub fn check_schema(file: &str, found: Option<&str>) -> Result<(), String> {
    match found {
        None => Err(format!(
            "{file} is not a result bundle (a DuckDB file without the bundle's `meta` table)"
        )),
        Some(v) if v != SCHEMA_VERSION => Err(format!(
            "{file} uses bundle schema {v}; this build reads schema {SCHEMA_VERSION} (open it with the harness release that wrote it)"
        )),
        Some(_) => Ok(()),
    }
}

/// One run as stored, with its start time in words.
#[derive(Debug, Clone, Serialize)]
pub struct StoredRun {
    pub run_id: String,
    pub harness_version: String,
    pub git_revision: String,
    /// `YYYY-MM-DD HH:MM:SS UTC`.
    pub started_at: String,
    pub status: String,
    /// Why a run is `failed` or `interrupted`.
    pub status_reason: Option<String>,
    pub config_file: String,
    /// The effective config (secrets masked), YAML.
    pub config_yaml: String,
    /// The GPUs the host sampler saw, or why it saw none (`None`: nothing
    /// ran on this host, e.g. a run whose experiments ran on EC2 agents).
    pub host_gpus: Option<String>,
}

/// A row of [`RUNS`].
#[derive(Debug, Clone, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub harness_version: String,
    pub git_revision: String,
    /// Seconds since the Unix epoch (time-zone free, so both readers agree;
    /// `epoch_us`, because DuckDB-WASM 1.32 crashes on `epoch` of a TIMESTAMPTZ).
    pub started_epoch_s: f64,
    pub status: String,
    pub status_reason: Option<String>,
    pub config_file: String,
    pub config_yaml: String,
    pub host_gpus: Option<String>,
}

impl From<RunRecord> for StoredRun {
    fn from(r: RunRecord) -> Self {
        StoredRun {
            run_id: r.run_id,
            harness_version: r.harness_version,
            git_revision: r.git_revision,
            started_at: utc_text(r.started_epoch_s),
            status: r.status,
            status_reason: r.status_reason,
            config_file: r.config_file,
            config_yaml: r.config_yaml,
            host_gpus: r.host_gpus,
        }
    }
}

/// Seconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC` (proleptic
/// Gregorian; days-from-civil inverse after H. Hinnant, "chrono-Compatible
/// Low-Level Date Algorithms").
pub fn utc_text(epoch_s: f64) -> String {
    let s = epoch_s.floor() as i64;
    let (days, rem) = (s.div_euclid(86_400), s.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A dataset's card as stored (one per dataset and tokenizer): a row of [`DATASETS`].
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// A row of [`DISTRIBUTIONS`]. Statistics are NULL when the metric had no
/// sample (`count` 0).
#[derive(Debug, Clone, Deserialize)]
pub struct DistributionRecord {
    pub experiment_id: String,
    pub metric: String,
    pub count: u64,
    pub mean: Option<f64>,
    pub min: Option<f64>,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

/// A row of [`EXPERIMENTS`]; summary columns are NULL for an experiment that
/// has no summary (failed, skipped).
#[derive(Debug, Clone, Deserialize)]
pub struct ExperimentRecord {
    pub experiment_id: String,
    pub run_id: String,
    pub label: String,
    pub endpoint: String,
    pub model: String,
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
    pub status_reason: Option<String>,
    pub search_id: Option<String>,
    pub stopped_early: Option<String>,
    /// The search's `found` (JSON), when it ended.
    pub search_found: Option<String>,
    /// The budget its probes were judged by (JSON).
    pub search_budget: Option<String>,
    pub requests: Option<u64>,
    pub requests_ok: Option<u64>,
    pub requests_failed: Option<u64>,
    pub warmup_requests: Option<u64>,
    pub window_s: Option<f64>,
    pub request_throughput: Option<f64>,
    pub output_token_throughput: Option<f64>,
    pub prompt_token_throughput: Option<f64>,
    pub send_rate: Option<f64>,
    pub error_rate: Option<f64>,
    pub errors_by_class: Option<String>,
    pub prompt_token_discrepancy: Option<f64>,
    pub output_token_discrepancy: Option<f64>,
    pub usd_per_hour: Option<f64>,
    pub usd_per_request: Option<f64>,
    pub usd_per_10k_requests: Option<f64>,
    pub usd_per_1m_output_tokens: Option<f64>,
    pub usd_run: Option<f64>,
    pub prompt_tokens_total: Option<u64>,
    pub output_tokens_total: Option<u64>,
    pub prompt_tokens_all: Option<u64>,
    pub output_tokens_all: Option<u64>,
    pub run_s: Option<f64>,
    pub price_mode: Option<String>,
    pub price_usd_per_instance_hour: Option<f64>,
    pub price_input_per_1m: Option<f64>,
    pub price_output_per_1m: Option<f64>,
    pub price_source: Option<String>,
    pub price_region: Option<String>,
    pub price_as_of: Option<String>,
}

/// One experiment with its summary, as stored.
#[derive(Debug, Clone, Serialize)]
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
    pub costed: Costed,
    /// Set on a capacity search's probe.
    pub probe: Option<harness_core::analysis::ProbeOf>,
}

/// Decodes the rows of [`EXPERIMENTS`] and [`DISTRIBUTIONS`] into experiments,
/// in the order of `experiments`.
pub fn experiments(
    experiments: Vec<ExperimentRecord>,
    distributions: Vec<DistributionRecord>,
) -> Vec<StoredExperiment> {
    let mut dists: BTreeMap<String, BTreeMap<String, Distribution>> = BTreeMap::new();
    for d in distributions {
        let f = |x: Option<f64>| x.unwrap_or(0.0);
        dists.entry(d.experiment_id).or_default().insert(
            d.metric,
            Distribution {
                count: d.count,
                mean: f(d.mean),
                min: f(d.min),
                p50: f(d.p50),
                p90: f(d.p90),
                p95: f(d.p95),
                p99: f(d.p99),
                max: f(d.max),
            },
        );
    }
    experiments
        .into_iter()
        .map(|r| {
            let n = |x: Option<u64>| x.unwrap_or(0);
            let x = |v: Option<f64>| v.unwrap_or(0.0);
            let summary = ExperimentSummary {
                requests: n(r.requests),
                requests_ok: n(r.requests_ok),
                requests_failed: n(r.requests_failed),
                warmup_requests: n(r.warmup_requests),
                window_s: x(r.window_s),
                request_throughput: x(r.request_throughput),
                output_token_throughput: x(r.output_token_throughput),
                prompt_token_throughput: x(r.prompt_token_throughput),
                send_rate: r.send_rate,
                error_rate: x(r.error_rate),
                errors_by_class: r
                    .errors_by_class
                    .as_deref()
                    .and_then(|e| serde_json::from_str(e).ok())
                    .unwrap_or_default(),
                prompt_token_discrepancy: r.prompt_token_discrepancy,
                output_token_discrepancy: r.output_token_discrepancy,
                distributions: dists.remove(&r.experiment_id).unwrap_or_default(),
                prompt_tokens_total: n(r.prompt_tokens_total),
                output_tokens_total: n(r.output_tokens_total),
                prompt_tokens_all: n(r.prompt_tokens_all),
                output_tokens_all: n(r.output_tokens_all),
            };
            let rate = match (
                r.price_usd_per_instance_hour,
                r.price_input_per_1m,
                r.price_output_per_1m,
            ) {
                (Some(h), _, _) => Some(Rate::InstanceHour(h)),
                (None, Some(i), Some(o)) => Some(Rate::Tokens(TokenPrice {
                    input_per_1m: i,
                    output_per_1m: o,
                })),
                _ => None,
            };
            let price = match (rate, r.price_mode.as_deref().and_then(PriceMode::parse)) {
                (Some(rate), Some(mode)) => Some(UnitPrice {
                    rate,
                    mode,
                    source: r.price_source.unwrap_or_default(),
                    region: r.price_region.unwrap_or_default(),
                    as_of: r.price_as_of.unwrap_or_default(),
                }),
                _ => None,
            };
            let costed = Costed {
                price,
                inputs: CostInputs::from_summary(
                    &summary,
                    r.instance_count.max(1) as u32,
                    x(r.run_s),
                ),
                figures: CostFigures {
                    usd_per_hour: r.usd_per_hour,
                    usd_per_request: r.usd_per_request,
                    usd_per_10k_requests: r.usd_per_10k_requests,
                    usd_per_1m_output_tokens: r.usd_per_1m_output_tokens,
                    usd_run: r.usd_run,
                },
            };
            StoredExperiment {
                experiment_id: r.experiment_id,
                run_id: r.run_id,
                label: r.label,
                endpoint: r.endpoint,
                model: r.model,
                stream: r.stream,
                instance_type: r.instance_type,
                instance_count: r.instance_count,
                dataset: r.dataset,
                bucket: r.bucket,
                load_mode: r.load_mode,
                concurrency: r.concurrency,
                rate: r.rate,
                simulated: r.simulated,
                status: r.status,
                status_reason: r.status_reason,
                summary,
                costed,
                probe: r.search_id.map(|search| harness_core::analysis::ProbeOf {
                    search,
                    found: r
                        .search_found
                        .as_deref()
                        .and_then(|f| serde_json::from_str(f).ok()),
                    stopped_early: r.stopped_early,
                    budget: r
                        .search_budget
                        .as_deref()
                        .and_then(|b| serde_json::from_str(b).ok()),
                }),
            }
        })
        .collect()
}

/// One experiment's measured requests (warm-up left out) in send order, as
/// [`harness_core::RequestSample`]s with every field SLO attainment reads
/// (`harness_core::slo::attainment`: status, send, first-token and end
/// times, token counts, the measurement window), for where only the bundle
/// is at hand (the viewer). The chunk times are left empty: no SLO limit
/// reads them, and they are most of a request's size. Decode the rows with
/// [`decode`].
pub fn request_samples_sql(alias: Option<&str>, experiment_id: &str) -> String {
    REQUEST_SAMPLES
        .sql(alias)
        .replace("{id}", &sql_string(experiment_id))
}

const REQUEST_SAMPLES: Query = Query(
    "SELECT warmup, scheduled_ns, sent_ns, first_token_ns, end_ns, []::BIGINT[] AS token_chunk_ns, status = 'ok' AS ok,
            error_class, prompt_tokens_usage, output_tokens_usage, prompt_tokens_client, output_tokens_client
     FROM {db}requests WHERE experiment_id = {id} AND NOT warmup ORDER BY seq",
);

/// Decodes rows (JSON objects keyed by column name) into `T`.
///
/// Errors: the first row that does not fit, with the query's purpose.
pub fn decode<T: serde::de::DeserializeOwned>(
    what: &str,
    rows: Vec<serde_json::Value>,
) -> Result<Vec<T>, String> {
    rows.into_iter()
        .enumerate()
        .map(|(i, r)| serde_json::from_value(r).map_err(|e| format!("{what}, row {}: {e}", i + 1)))
        .collect()
}

/// `s` as an SQL string literal: single-quoted, inner quotes doubled.
pub fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The bucket of a value `v` in [`ecdf_groups_sql`]: 256 buckets per
/// factor of e (each about 0.4% wide, under a pixel on a log axis); zero and
/// negative values share one bucket.
pub const CDF_BUCKET_SQL: &str = "CASE WHEN v > 0 THEN floor(ln(v) * 256) ELSE -1e9 END";

/// The SQL that groups every metric with an SQL selection
/// (`Metric::sql_sample`; all but ITL) over the measured requests of the
/// experiment `experiment_id` into [`CDF_BUCKET_SQL`] buckets, in one scan of
/// the open bundle's requests table. Rows, as the `ecdf` table stores them:
/// `experiment_id`, `metric` (its id), `v` (the bucket's largest value, in
/// the metric's stored unit: ns or tokens) and `c` (its count).
///
/// The harness runs it when it writes an experiment, so that a reader draws
/// a distribution from a few hundred stored rows ([`ECDF`]) and never scans
/// the requests: at 1M requests that scan alone took DuckDB-WASM over a
/// second.
pub fn ecdf_groups_sql(experiment_id: &str) -> String {
    let exprs: Vec<(&str, &str)> = Metric::ALL
        .iter()
        .filter_map(|m| Some((m.id(), m.sql_sample()?)))
        .collect();
    let selects: Vec<String> = exprs
        .iter()
        .enumerate()
        .map(|(i, (_, expr))| format!("{expr} AS m{i}"))
        .collect();
    let pick: Vec<String> = (0..exprs.len())
        .map(|i| format!("WHEN {i} THEN m{i}"))
        .collect();
    let names: Vec<String> = exprs
        .iter()
        .enumerate()
        .map(|(i, (id, _))| format!("WHEN {i} THEN {}", sql_string(id)))
        .collect();
    format!(
        "SELECT experiment_id, CASE k {} END AS metric, max(v)::DOUBLE AS v, count(*) AS c FROM (\
           SELECT experiment_id, k, CASE k {} END AS v FROM (\
             SELECT experiment_id, {} FROM requests WHERE experiment_id = {} AND NOT warmup\
           ) CROSS JOIN range({}) AS t(k)\
         ) WHERE v IS NOT NULL GROUP BY experiment_id, k, {CDF_BUCKET_SQL}",
        names.join(" "),
        pick.join(" "),
        selects.join(", "),
        sql_string(experiment_id),
        exprs.len(),
    )
}

/// The stored ECDF groups ([`ecdf_groups_sql`]) of `metrics` for each of
/// `experiment_ids`, from the bundle attached as `alias` (`None`: the open
/// database). Rows: `experiment_id`, `metric`, `v`, `c`. `None` when there is
/// nothing to ask (no ids or no metrics).
pub fn ecdf_sql(
    alias: Option<&str>,
    experiment_ids: &[String],
    metrics: &[Metric],
) -> Option<String> {
    if experiment_ids.is_empty() || metrics.is_empty() {
        return None;
    }
    let ids: Vec<String> = experiment_ids.iter().map(|id| sql_string(id)).collect();
    let ms: Vec<String> = metrics.iter().map(|m| sql_string(m.id())).collect();
    Some(
        ECDF.sql(alias)
            .replace("{ids}", &ids.join(", "))
            .replace("{metrics}", &ms.join(", ")),
    )
}

/// The `ecdf` rows of some experiments and metrics; see [`ecdf_sql`].
const ECDF: Query = Query(
    "SELECT experiment_id, metric, v, c FROM {db}ecdf WHERE experiment_id IN ({ids}) AND metric IN ({metrics})",
);

/// Decodes [`ecdf_sql`]'s rows (as JSON objects) into
/// (experiment id, metric id) → ECDF points (value in ms or tokens, % at or
/// below), through `model::cdf_from_groups`. Rows that do not decode, or
/// name a metric not in `metrics`, are skipped; an experiment or metric
/// without values is absent.
pub fn ecdf_decode(
    rows: &[serde_json::Value],
    metrics: &[Metric],
) -> BTreeMap<(String, String), Vec<(f64, f64)>> {
    let mut groups: BTreeMap<(String, String), Vec<(f64, u64)>> = BTreeMap::new();
    for row in rows {
        let (Some(id), Some(name), Some(v), Some(c)) = (
            row.get("experiment_id").and_then(|v| v.as_str()),
            row.get("metric").and_then(|v| v.as_str()),
            row.get("v").and_then(|v| v.as_f64()),
            row.get("c").and_then(|v| v.as_u64()),
        ) else {
            continue;
        };
        let Some(m) = metrics.iter().find(|m| m.id() == name) else {
            continue;
        };
        groups
            .entry((id.to_string(), name.to_string()))
            .or_default()
            .push((v / m.scale(), c));
    }
    groups
        .into_iter()
        .map(|(key, g)| (key, crate::model::cdf_from_groups(g)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_text_matches_known_instants() {
        assert_eq!(utc_text(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_text(951_782_400.0), "2000-02-29 00:00:00 UTC");
        // 2026-11-30 14:22:24 UTC
        assert_eq!(utc_text(1_796_048_544.5), "2026-11-30 14:22:24 UTC");
    }

    #[test]
    fn queries_take_the_alias_as_a_prefix() {
        assert_eq!(
            SCHEMA.sql(Some("b0")),
            "SELECT value FROM \"b0\".meta WHERE key = 'schema_version'"
        );
        assert!(!EXPERIMENTS.sql(None).contains("{db}"));
    }

    #[test]
    fn schema_check_names_file_and_versions() {
        assert!(check_schema("a.duckdb", Some(SCHEMA_VERSION)).is_ok());
        let e = check_schema("a.duckdb", Some("3")).unwrap_err();
        assert!(
            e.contains("a.duckdb")
                && e.contains("schema 3")
                && e.contains(&format!("schema {SCHEMA_VERSION}"))
        );
        assert!(check_schema("a.duckdb", None)
            .unwrap_err()
            .contains("not a result bundle"));
    }
}
