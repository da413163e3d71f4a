//! The simulator's ground truth (`harness sim --truth-log FILE`): per
//! OpenAI-route request, when the simulator had its whole body and when it
//! handed each content-bearing chunk to the connection. Benchmarks compare
//! a client's TTFT and chunk gaps with these (`bench/peers.sh`).
//!
//! The file is JSON lines. The first line is a header:
//! `{"clock": "ns since the simulator started (monotonic)", "started_unix_ns": N}`.
//! Each request is one line, written when its response ends (or the client
//! goes away): `{"received_ns": R, "chunk_ns": [C1, C2, ...], "end_ns": E}`.
//! The truth TTFT is `C1 - R`, the truth chunk gaps are `C(k+1) - Ck`; a
//! response that was not streamed has no chunks. Each line is written with
//! one `write` call, so a simulator killed mid-run leaves whole lines.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug)]
pub struct TruthLog {
    file: Mutex<std::fs::File>,
    t0: Instant,
}

impl TruthLog {
    /// Creates (truncates) `path` and writes the header.
    ///
    /// Errors: the file cannot be created or written.
    pub fn create(path: &std::path::Path) -> std::io::Result<Arc<TruthLog>> {
        let mut file = std::fs::File::create(path)?;
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        writeln!(
            file,
            r#"{{"clock": "ns since the simulator started (monotonic)", "started_unix_ns": {started}}}"#
        )?;
        Ok(Arc::new(TruthLog {
            file: Mutex::new(file),
            t0: Instant::now(),
        }))
    }

    /// Now, in the log's clock (ns since the simulator started).
    pub fn now_ns(&self) -> i64 {
        self.t0.elapsed().as_nanos() as i64
    }

    /// Starts the record of a request whose body was complete at
    /// `received_ns`; the line is written when the record is dropped.
    pub fn record(self: &Arc<Self>, received_ns: i64) -> TruthRecord {
        TruthRecord {
            log: self.clone(),
            received_ns,
            chunk_ns: Vec::new(),
        }
    }
}

/// One request's truth, written as a line when dropped.
pub struct TruthRecord {
    log: Arc<TruthLog>,
    received_ns: i64,
    chunk_ns: Vec<i64>,
}

impl TruthRecord {
    /// A content-bearing chunk is being handed to the connection now.
    pub fn chunk(&mut self) {
        self.chunk_ns.push(self.log.now_ns());
    }
}

impl Drop for TruthRecord {
    fn drop(&mut self) {
        let mut line = format!(r#"{{"received_ns": {}, "chunk_ns": ["#, self.received_ns);
        for (i, c) in self.chunk_ns.iter().enumerate() {
            if i > 0 {
                line.push_str(", ");
            }
            line.push_str(&c.to_string());
        }
        line.push_str(&format!(r#"], "end_ns": {}}}"#, self.log.now_ns()));
        line.push('\n');
        if let Ok(mut f) = self.log.file.lock() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}
