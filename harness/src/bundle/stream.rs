//! Streams one experiment's request rows into the bundle while it runs, so
//! that the client never holds a whole experiment's requests in memory.
//!
//! The runner's collector sends batches of finished requests over a bounded
//! channel; a dedicated OS thread (never a runtime worker, whose stalls would
//! delay dispatch) appends each batch with its own connection to the bundle's
//! database, one transaction per batch. When the writer falls behind, the
//! channel's bound holds the collector back instead of letting memory grow.
//! The writer runs at a lower priority than the threads that send.

use super::{append_requests, Bundle, REQUESTS_STAGE};
use crate::record::RequestRecord;
use anyhow::{Context, Result};
use tokio::sync::mpsc;

/// Batches that may wait for the writer before the collector waits too.
const QUEUED: usize = 4;

/// The writer of one experiment's request rows ([`Bundle::begin_experiment`]
/// comes first, [`Bundle::finish_experiment`] after [`RequestStream::finish`]).
pub struct RequestStream {
    tx: mpsc::Sender<Vec<RequestRecord>>,
    writer: std::thread::JoinHandle<Result<u64>>,
}

impl RequestStream {
    /// Starts the writer thread for experiment `experiment_id` (rows marked
    /// with `shard` when this process runs one).
    ///
    /// Errors: the bundle's connection cannot be cloned or the staging table
    /// cannot be created.
    pub fn start(
        bundle: &Bundle,
        experiment_id: &str,
        simulated: bool,
        shard: Option<u32>,
    ) -> Result<RequestStream> {
        let mut conn = bundle.conn.try_clone()?;
        conn.execute_batch(REQUESTS_STAGE)?;
        let (tx, mut rx) = mpsc::channel::<Vec<RequestRecord>>(QUEUED);
        let id = experiment_id.to_string();
        let writer = std::thread::Builder::new()
            .name("bundle-writer".into())
            .spawn(move || {
                lower_priority();
                let mut rows = 0u64;
                while let Some(batch) = rx.blocking_recv() {
                    append_requests(&mut conn, &id, simulated, shard, &batch)
                        .with_context(|| format!("after {rows} request rows"))?;
                    rows += batch.len() as u64;
                }
                Ok(rows)
            })?;
        Ok(RequestStream { tx, writer })
    }

    /// Where the collector sends its batches. A send fails only when the
    /// writer has stopped on an error, which [`RequestStream::finish`] returns.
    pub fn sender(&self) -> mpsc::Sender<Vec<RequestRecord>> {
        self.tx.clone()
    }

    /// Waits for every batch sent to be written (after every sender is
    /// dropped) and returns the number of rows.
    ///
    /// Errors: the first write that failed (disk full, a bundle closed under
    /// it); the rows written before it stay, and the experiment is not
    /// complete.
    pub async fn finish(self) -> Result<u64> {
        drop(self.tx);
        let writer = self.writer;
        tokio::task::spawn_blocking(move || writer.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the bundle writer thread panicked"))?
    }
}

/// Lowers this thread's scheduling priority (nice 10, Linux), so that on a
/// busy client the writer yields to the pacer and the requests in flight: a
/// write can wait, a send cannot.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // On Linux, PRIO_PROCESS with a thread id sets that thread's nice
        // value; a failure only leaves it unchanged.
        let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 10);
    }
}
