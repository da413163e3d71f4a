//! Reading bundles in the browser: DuckDB-WASM through `js/duckdb_facade.js`,
//! the shared queries and decoding of `harness_view::contract`. Aggregation
//! happens in SQL; only summary-sized results cross into Rust, as JSON text.

use harness_core::Metric;
use harness_view::commands;
use harness_view::contract::{self, Query, StoredRun};
use harness_view::model::BundleRows;
use std::collections::BTreeMap;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/js/duckdb_facade.js")]
extern "C" {
    #[wasm_bindgen(catch)]
    async fn ddb_init(on_progress: &js_sys::Function) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch)]
    async fn ddb_attach_url(alias: &str, url: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch)]
    async fn ddb_attach_buffer(alias: &str, bytes: js_sys::Uint8Array) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch)]
    async fn ddb_query_json(sql: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch)]
    async fn fetch_text(url: &str) -> Result<JsValue, JsValue>;
    fn error_text(e: &JsValue) -> String;
}

/// Starts DuckDB-WASM; `progress` receives short status lines. Returns the
/// DuckDB version.
pub async fn init(progress: impl Fn(String) + 'static) -> Result<String, String> {
    let cb = Closure::<dyn Fn(JsValue)>::new(move |v: JsValue| {
        progress(v.as_string().unwrap_or_default())
    });
    let v = ddb_init(cb.as_ref().unchecked_ref())
        .await
        .map_err(|e| format!("DuckDB-WASM did not start: {}", error_text(&e)))?;
    cb.forget(); // DuckDB may report later; the callback lives as long as the page.
    Ok(v.as_string().unwrap_or_default())
}

/// Where a bundle comes from.
pub enum Source {
    Url(String),
    Bytes(Vec<u8>),
}

/// Runs `sql` and returns its rows as JSON objects.
pub async fn query(sql: &str) -> Result<Vec<serde_json::Value>, String> {
    let text = ddb_query_json(sql).await.map_err(|e| error_text(&e))?;
    serde_json::from_str(&text.as_string().unwrap_or_default()).map_err(|e| e.to_string())
}

async fn rows<T: serde::de::DeserializeOwned>(
    q: Query,
    alias: &str,
    what: &str,
) -> Result<Vec<T>, String> {
    contract::decode(what, query(&q.sql(Some(alias))).await?)
}

/// Attaches `src` as `alias` and reads it with the shared contract.
///
/// Errors, in words for the page: the file cannot be fetched, is not a DuckDB
/// file, was written in a newer storage format, is not a bundle, or has
/// another schema version.
pub async fn load(alias: &str, name: &str, src: Source) -> Result<BundleRows, String> {
    let attached = match src {
        Source::Url(u) => ddb_attach_url(alias, &u).await,
        Source::Bytes(b) => ddb_attach_buffer(alias, js_sys::Uint8Array::from(&b[..])).await,
    };
    attached.map_err(|e| attach_error(name, &error_text(&e)))?;
    let version: Vec<serde_json::Value> = query(&contract::SCHEMA.sql(Some(alias)))
        .await
        .unwrap_or_default();
    let found = version
        .first()
        .and_then(|v| v.get("value"))
        .and_then(|v| v.as_str());
    contract::check_schema(name, found)?;
    let runs: Vec<contract::RunRecord> = rows(contract::RUNS, alias, "runs").await?;
    Ok(BundleRows {
        file: name.to_string(),
        runs: runs.into_iter().map(StoredRun::from).collect(),
        datasets: rows(contract::DATASETS, alias, "datasets").await?,
        experiments: contract::experiments(
            rows(contract::EXPERIMENTS, alias, "experiments").await?,
            rows(contract::DISTRIBUTIONS, alias, "distributions").await?,
        ),
        commands: harness_view::commands::CommandRows {
            cells: rows(commands::COMMAND_CELLS, alias, "command_cells").await?,
            runs: rows(commands::COMMAND_RUNS, alias, "command_runs").await?,
            metrics: rows(commands::COMMAND_METRICS, alias, "command_metrics").await?,
            host: rows(contract::HOST_SAMPLES, alias, "host_samples").await?,
        },
    })
}

/// Every request of one experiment ([`contract::request_samples_sql`]),
/// for SLO attainment, which is counted per request. Errors: the query or
/// its decoding failed, in words.
pub async fn request_samples(
    alias: &str,
    experiment_id: &str,
) -> Result<Vec<harness_core::RequestSample>, String> {
    let rows = query(&contract::request_samples_sql(Some(alias), experiment_id)).await?;
    contract::decode("requests", rows)
}

/// A failed ATTACH in words: not found, unreachable, a newer storage
/// format, not a DuckDB file; DuckDB's own message follows in brackets.
fn attach_error(name: &str, e: &str) -> String {
    let lead = if e.contains("version number") || e.contains("storage version") {
        format!(
            "{name} was written by a newer DuckDB than this viewer reads (DuckDB-WASM 1.32, storage up to v1.4.0); open it with the harness release that wrote it"
        )
    } else if e.contains("not a valid DuckDB database file") || e.contains("magic") {
        format!("{name} is not a DuckDB file, so not a result bundle")
    } else if e.contains("database does not exist") || e.contains("HTTP 404") {
        format!("{name} was not found (HTTP 404): check the address")
    } else if e.contains("NetworkError") || e.contains("Failed to fetch") {
        format!("{name} could not be fetched: the server is down, or does not allow this page to read it (CORS)")
    } else if e.contains("past the end") || e.contains("Corrupt") || e.contains("corrupt") {
        format!("{name} is damaged (cut short or corrupt): fetch or copy it again")
    } else {
        format!("{name} could not be opened")
    };
    format!("{lead} [{e}]")
}

/// The published site's index of bundles (`bundles/index.json`), if any.
pub async fn index() -> Option<Vec<IndexEntry>> {
    let t = fetch_text("bundles/index.json").await.ok()?;
    serde_json::from_str(&t.as_string()?).ok()
}

/// One entry of `bundles/index.json`, as `harness publish` writes it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct IndexEntry {
    /// Relative to the site root, e.g. `bundles/local.duckdb`.
    pub path: String,
    pub file: String,
    pub bytes: u64,
    pub runs: Vec<String>,
    pub experiments: u64,
    pub simulated: bool,
}

/// The empirical CDF of each of `metrics` for each of `experiment_ids`, from
/// the bundle's stored ECDF groups (`contract::ecdf_sql`, a few hundred rows
/// per experiment and metric, whatever the number of requests); see there
/// for the shape. A failed query gives an empty map (the charts then have
/// nothing to draw).
pub async fn distributions(
    alias: &str,
    experiment_ids: &[String],
    metrics: &[Metric],
) -> BTreeMap<(String, String), Vec<(f64, f64)>> {
    let Some(sql) = contract::ecdf_sql(Some(alias), experiment_ids, metrics) else {
        return BTreeMap::new();
    };
    contract::ecdf_decode(&query(&sql).await.unwrap_or_default(), metrics)
}

/// Every measured value of `metric` for one experiment, in ms, as the
/// bundle's distribution recorded it (HDR bucket), for the diff's bootstrap.
pub async fn values_as_recorded(alias: &str, experiment_id: &str, metric: Metric) -> Vec<f64> {
    let Some(expr) = metric.sql_sample() else {
        return vec![];
    };
    let sql = format!(
        "SELECT v FROM (SELECT seq, {expr} AS v FROM \"{alias}\".requests WHERE experiment_id = {} AND NOT warmup) WHERE v IS NOT NULL ORDER BY seq",
        contract::sql_string(experiment_id)
    );
    let q = harness_core::stats::Quantizer::new();
    query(&sql)
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r.get("v")?.as_i64())
        .map(|v| q.quantize(v) as f64 / metric.scale())
        .collect()
}
