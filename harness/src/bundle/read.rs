//! Reading a bundle back with native DuckDB. The queries, the rows and their
//! decoding are the shared contract (`harness_view::contract`), which the
//! viewer runs through DuckDB-WASM; this file only turns native rows into the
//! JSON objects that contract decodes.

use anyhow::Result;
use duckdb::types::{TimeUnit, Value};
use duckdb::{AccessMode, Config, Connection};
use harness_core::RequestSample;
use harness_view::contract::{self, Query};
pub use harness_view::contract::{StoredDataset, StoredExperiment, StoredRun};
use std::path::Path;

/// Opens a bundle read-only and checks its schema version.
///
/// Errors (bad input): no file, not a DuckDB file or a newer storage format,
/// no `meta` table, another schema version.
pub fn open(path: &Path) -> Result<Connection> {
    if !path.exists() {
        crate::bad_input!("no bundle at {}", path.display());
    }
    let cfg = Config::default().access_mode(AccessMode::ReadOnly)?;
    let conn = Connection::open_with_flags(path, cfg).map_err(|e| super::open_error(path, e))?;
    let v: Option<String> = conn
        .query_row(&contract::SCHEMA.sql(None), [], |r| r.get(0))
        .ok();
    contract::check_schema(&path.display().to_string(), v.as_deref())
        .map_err(crate::exit::bad_input)?;
    Ok(conn)
}

/// The rows of `q` as JSON objects keyed by column name.
pub fn rows(conn: &Connection, q: Query) -> Result<Vec<serde_json::Value>> {
    rows_of(conn, &q.sql(None))
}

/// The rows of `sql` as JSON objects keyed by column name, as the viewer
/// gets them from DuckDB-WASM (for the contract's SQL built at run time).
pub fn rows_of(conn: &Connection, sql: &str) -> Result<Vec<serde_json::Value>> {
    let mut st = conn.prepare(sql)?;
    let mut rows = st.query([])?;
    let names: Vec<String> = rows.as_ref().map(|s| s.column_names()).unwrap_or_default();
    let mut out = vec![];
    while let Some(r) = rows.next()? {
        let mut obj = serde_json::Map::new();
        for (i, name) in names.iter().enumerate() {
            obj.insert(name.clone(), json(r.get::<_, Value>(i)?));
        }
        out.push(serde_json::Value::Object(obj));
    }
    Ok(out)
}

/// A DuckDB value as the viewer's DuckDB-WASM facade gives it in JSON.
fn json(v: Value) -> serde_json::Value {
    use serde_json::json;
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Boolean(b) => json!(b),
        Value::TinyInt(x) => json!(x),
        Value::SmallInt(x) => json!(x),
        Value::Int(x) => json!(x),
        Value::BigInt(x) => json!(x),
        Value::HugeInt(x) => json!(x as f64),
        Value::UTinyInt(x) => json!(x),
        Value::USmallInt(x) => json!(x),
        Value::UInt(x) => json!(x),
        Value::UBigInt(x) => json!(x),
        Value::Float(x) => {
            serde_json::Number::from_f64(f64::from(x)).map_or(serde_json::Value::Null, Into::into)
        }
        Value::Double(x) => {
            serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, Into::into)
        }
        Value::Text(s) => json!(s),
        Value::Timestamp(unit, x) => {
            let s = match unit {
                TimeUnit::Second => x as f64,
                TimeUnit::Millisecond => x as f64 / 1e3,
                TimeUnit::Microsecond => x as f64 / 1e6,
                TimeUnit::Nanosecond => x as f64 / 1e9,
            };
            json!(contract::utc_text(s))
        }
        Value::List(v) | Value::Array(v) => {
            serde_json::Value::Array(v.into_iter().map(json).collect())
        }
        other => json!(format!("{other:?}")),
    }
}

fn decode<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    q: Query,
    what: &str,
) -> Result<Vec<T>> {
    contract::decode(what, rows(conn, q)?).map_err(anyhow::Error::msg)
}

pub fn runs(conn: &Connection) -> Result<Vec<StoredRun>> {
    let r: Vec<contract::RunRecord> = decode(conn, contract::RUNS, "runs")?;
    Ok(r.into_iter().map(StoredRun::from).collect())
}

/// Every `host_samples` row, by experiment, GPU and time.
pub fn host_samples(conn: &Connection) -> Result<Vec<harness_core::host::HostSampleRow>> {
    decode(conn, contract::HOST_SAMPLES, "host_samples")
}

/// One experiment's scraping of the engine's metrics, and the summary of
/// its measurement window (`harness_core::server::summarise`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServerRow {
    pub experiment_id: String,
    pub url: String,
    pub interval_s: f64,
    pub attempts: i64,
    pub failures: i64,
    pub last_error: Option<String>,
    pub summary: harness_core::server::ServerSummary,
}

/// Every experiment's `server_scrapes` row with the summary of its
/// `server_metrics` over its measurement window, in experiment order.
pub fn server(conn: &Connection) -> Result<Vec<ServerRow>> {
    use harness_core::server::{summarise, ServerSample, SERIES};
    let mut st = conn.prepare(
        "SELECT s.experiment_id, s.url, s.interval_s, s.attempts, s.failures, s.last_error
         FROM server_scrapes s JOIN experiments e USING (experiment_id) ORDER BY e.ordinal, e.label",
    )?;
    let rows: Vec<(String, String, f64, i64, i64, Option<String>)> = st
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let names: Vec<String> = SERIES.iter().map(|s| format!("'{}'", s.1)).collect();
    let mut samples = conn.prepare(&format!(
        "SELECT t_ns, name, labels, value FROM server_metrics
         WHERE experiment_id = ? AND name IN ({}) ORDER BY t_ns",
        names.join(", ")
    ))?;
    let mut out = vec![];
    for (experiment_id, url, interval_s, attempts, failures, last_error) in rows {
        let xs: Vec<ServerSample> = samples
            .query_map([&experiment_id], |r| {
                Ok(ServerSample {
                    t_ns: r.get(0)?,
                    name: r.get(1)?,
                    labels: r.get(2)?,
                    value: r.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let window =
            harness_core::summary::measurement_window(&request_samples(conn, &experiment_id)?);
        out.push(ServerRow {
            summary: summarise(&xs, window),
            experiment_id,
            url,
            interval_s,
            attempts,
            failures,
            last_error,
        });
    }
    Ok(out)
}

pub fn datasets(conn: &Connection) -> Result<Vec<StoredDataset>> {
    decode(conn, contract::DATASETS, "datasets")
}

pub fn experiments(conn: &Connection) -> Result<Vec<StoredExperiment>> {
    Ok(contract::experiments(
        decode(conn, contract::EXPERIMENTS, "experiments")?,
        decode(conn, contract::DISTRIBUTIONS, "distributions")?,
    ))
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

/// The command experiments' rows (`harness_view::commands`), with the
/// bundle's host samples.
pub fn command_rows(conn: &Connection) -> Result<harness_view::commands::CommandRows> {
    use harness_view::commands as c;
    Ok(c::CommandRows {
        cells: decode(conn, c::COMMAND_CELLS, "command_cells")?,
        runs: decode(conn, c::COMMAND_RUNS, "command_runs")?,
        metrics: decode(conn, c::COMMAND_METRICS, "command_metrics")?,
        host: host_samples(conn)?,
    })
}

/// The command experiments of one bundle, summarised.
pub fn command_report(
    conn: &Connection,
    file: &str,
) -> Result<harness_view::commands::CommandReport> {
    Ok(harness_view::commands::build(&[(
        file.to_string(),
        command_rows(conn)?,
    )]))
}
