//! JSONL datasets: one JSON object per line (LongBench's shape by default:
//! `{"input", "context", "answers"}`), rendered through a prompt template.

use super::template::Template;
use anyhow::{bail, Result};
use serde_json::Value;
use std::path::Path;

/// One rendered row.
#[derive(Debug, Clone)]
pub struct RawRow {
    /// 1-based line in the file.
    pub line: usize,
    pub prompt: String,
    /// Ground-truth answers, kept for accuracy scoring.
    pub answers: Option<Value>,
}

/// Reads every row. Any bad line fails the whole file, naming the line.
pub fn read(path: &Path, template: &Template, answers_key: &str) -> Result<(Vec<RawRow>, Vec<u8>)> {
    let bytes = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read the dataset: {e}", path.display()))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not UTF-8 text: {e}", path.display()))?;
    let mut rows = vec![];
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| {
            anyhow::anyhow!(
                "{}:{n}: not valid JSON ({e}); each line must be one JSON object",
                path.display()
            )
        })?;
        let Value::Object(obj) = v else {
            bail!(
                "{}:{n}: each line must be a JSON object like {{\"input\": \"...\"}}",
                path.display()
            );
        };
        let prompt = template
            .render(&obj)
            .map_err(|e| anyhow::anyhow!("{}:{n}: {e}", path.display()))?;
        rows.push(RawRow {
            line: n,
            prompt,
            answers: obj.get(answers_key).cloned(),
        });
    }
    if rows.is_empty() {
        bail!(
            "{}: the dataset has no rows (the file is empty)",
            path.display()
        );
    }
    Ok((rows, bytes))
}
