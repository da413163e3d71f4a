//! The command experiments' tables (`command_cells`, `command_runs`,
//! `command_metrics`, `command_gpu_memory`; docs/bundle.md), written cell by
//! cell and run by run so that a crash loses no finished run.

use super::Bundle;
use anyhow::Result;
use duckdb::params;
use harness_core::command::MetricValue;
use harness_core::host::HostSampleRow;
use std::collections::HashSet;

/// A `command_cells` row as it starts.
pub struct CellRow<'a> {
    pub cell_id: &'a str,
    pub run_id: &'a str,
    pub ordinal: usize,
    pub label: &'a str,
    pub endpoint: &'a str,
    pub scenario: &'a str,
    /// JSON object.
    pub args: &'a str,
    /// JSON list, `{run_dir}` and `{run}` unfilled.
    pub argv: &'a str,
    pub hash_inputs: &'a str,
    pub instance_type: Option<&'a str>,
    pub instance_count: u32,
    pub warmup_runs: u32,
    pub runs: u32,
    pub usd_per_hour: Option<f64>,
    pub price_source: Option<&'a str>,
    pub started_at: chrono::DateTime<chrono::Utc>,
}

/// A `command_runs` row. Times are ns on the cell's clock.
#[derive(Debug, Clone)]
pub struct CommandRunRow {
    pub run: u32,
    pub warmup: bool,
    pub started_ns: i64,
    pub ended_ns: i64,
    pub exit_code: Option<i32>,
    /// `ok`, `failed` (non-zero exit or killed by a signal), `timeout`,
    /// `no_metrics` (a declared metric missing or malformed), `not_started`
    /// (it could not be spawned), `interrupted` (Ctrl-C).
    pub status: &'static str,
    pub error: Option<String>,
    pub stdout_tail: String,
    pub stderr_tail: String,
    pub peak_rss_bytes: Option<i64>,
    pub gpu_mem_peak_bytes: Option<f64>,
    pub usd: Option<f64>,
    pub tokens: Option<f64>,
    pub usd_per_1m_tokens: Option<f64>,
}

/// Ids of the cells complete in the bundle behind `conn` (opened for
/// writing or for reading: the dry run reads it).
pub fn completed_cells(conn: &duckdb::Connection) -> Result<HashSet<String>> {
    let mut st = conn.prepare("SELECT cell_id FROM command_cells WHERE status = 'complete'")?;
    let ids = st
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<HashSet<_>, _>>()?;
    Ok(ids)
}

impl Bundle {
    /// Ids of cells complete in this bundle.
    pub fn completed_cells(&self) -> Result<HashSet<String>> {
        completed_cells(&self.conn)
    }

    /// Starts `c` (status `running`), removing what an earlier attempt at
    /// the same cell left.
    pub fn begin_cell(&mut self, c: &CellRow) -> Result<()> {
        let tx = self.conn.transaction()?;
        for t in [
            "command_cells",
            "command_runs",
            "command_metrics",
            "command_gpu_memory",
        ] {
            tx.execute(
                &format!("DELETE FROM {t} WHERE cell_id = ?"),
                params![c.cell_id],
            )?;
        }
        tx.execute(
            "DELETE FROM host_samples WHERE experiment_id = ?",
            params![c.cell_id],
        )?;
        tx.execute(
            "INSERT INTO command_cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, NULL, NULL)",
            params![
                c.cell_id,
                c.run_id,
                c.ordinal as i64,
                c.label,
                c.endpoint,
                c.scenario,
                c.args,
                c.argv,
                c.hash_inputs,
                c.instance_type,
                c.instance_count,
                c.warmup_runs,
                c.runs,
                c.usd_per_hour,
                c.price_source,
                super::ts(c.started_at),
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Writes one finished run of `cell_id` with its metrics, host samples
    /// and GPU memory (index, baseline, calibrated peak), in one transaction.
    pub fn write_cell_run(
        &mut self,
        cell_id: &str,
        r: &CommandRunRow,
        metrics: &[MetricValue],
        samples: &[HostSampleRow],
        gpu: &[(i64, i64, i64)],
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO command_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params![
                cell_id,
                r.run,
                r.warmup,
                r.started_ns,
                r.ended_ns,
                r.exit_code,
                r.status,
                r.error,
                r.stdout_tail,
                r.stderr_tail,
                r.peak_rss_bytes,
                r.gpu_mem_peak_bytes,
                r.usd,
                r.tokens,
                r.usd_per_1m_tokens,
            ],
        )?;
        {
            let mut app = tx.appender("command_metrics")?;
            for m in metrics {
                app.append_row(params![cell_id, m.run, m.metric, m.unit, m.idx, m.value])?;
            }
            app.flush()?;
        }
        for (i, baseline, peak) in gpu {
            tx.execute(
                "INSERT INTO command_gpu_memory VALUES (?, ?, ?, ?, ?)",
                params![cell_id, r.run, i, baseline, peak],
            )?;
        }
        super::append_host_samples(&tx, samples)?;
        tx.commit()?;
        Ok(())
    }

    /// Ends a cell: `complete` (at least one measured run succeeded),
    /// `failed` or `incomplete`, with why.
    pub fn finish_cell(&mut self, cell_id: &str, status: &str, reason: Option<&str>) -> Result<()> {
        self.conn.execute(
            "UPDATE command_cells SET status = ?, status_reason = ?, ended_at = ? WHERE cell_id = ?",
            params![status, reason, super::ts(chrono::Utc::now()), cell_id],
        )?;
        self.checkpoint()?;
        Ok(())
    }
}

/// Copies the command cells `kept` (a SQL subquery of cell ids) of the
/// attached bundle `src` into `c` (for `harness merge`, which chose each
/// cell's copy), with their runs, metrics, GPU memory and host samples.
pub(crate) fn copy_attached_cells(c: &duckdb::Connection, kept: &str) -> Result<()> {
    c.execute_batch(&format!(
        "BEGIN;
         INSERT INTO command_cells SELECT * FROM src.command_cells WHERE cell_id IN {kept};
         INSERT INTO command_runs SELECT * FROM src.command_runs WHERE cell_id IN {kept};
         INSERT INTO command_metrics SELECT * FROM src.command_metrics WHERE cell_id IN {kept};
         INSERT INTO command_gpu_memory SELECT * FROM src.command_gpu_memory WHERE cell_id IN {kept};
         INSERT INTO host_samples SELECT * FROM src.host_samples WHERE experiment_id IN {kept};
         COMMIT;"
    ))?;
    Ok(())
}
