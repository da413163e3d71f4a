//! Request traces: when each request arrived and how long its prompt and
//! output were, read from a CSV file in one of two public formats.
//!
//! - **Azure LLM inference trace** (`azure`, Azure/AzurePublicDataset,
//!   2023 and 2024): header `TIMESTAMP,ContextTokens,GeneratedTokens`;
//!   `TIMESTAMP` is a wall-clock time such as `2023-11-16 18:15:46.6805900`
//!   (the 2024 files add a UTC offset, `+00:00`).
//! - **BurstGPT** (`burstgpt`, HPMLL/BurstGPT): header
//!   `Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type`;
//!   `Timestamp` is seconds from the trace's start. Rows whose `Response
//!   tokens` is 0 are requests that failed in the traced service: they are
//!   dropped and counted.
//!
//! Rows are sorted by time (stable, so ties keep file order) and offsets are
//! seconds from the first row kept. `start` skips the trace's first seconds;
//! `model` keeps only BurstGPT rows of that model.

use anyhow::{anyhow, bail, Result};
use chrono::{DateTime, NaiveDateTime};
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Azure,
    #[serde(rename = "burstgpt")]
    BurstGpt,
}

impl Format {
    pub const NAMES: &'static str = "`azure` or `burstgpt`";

    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "azure" => Some(Format::Azure),
            "burstgpt" => Some(Format::BurstGpt),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Format::Azure => "azure",
            Format::BurstGpt => "burstgpt",
        }
    }

    /// The columns this format needs: (time, prompt tokens, output tokens).
    fn columns(&self) -> [&'static str; 3] {
        match self {
            Format::Azure => ["TIMESTAMP", "ContextTokens", "GeneratedTokens"],
            Format::BurstGpt => ["Timestamp", "Request tokens", "Response tokens"],
        }
    }

    /// The format whose columns the header holds.
    fn detect(header: &csv::StringRecord) -> Option<Format> {
        [Format::Azure, Format::BurstGpt]
            .into_iter()
            .find(|f| f.columns().iter().all(|c| header.iter().any(|h| h == *c)))
    }
}

/// One traced request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    /// 1-based line in the file (the header is line 1).
    pub line: u64,
    /// Seconds from the first row kept.
    pub at_s: f64,
    pub prompt_tokens: u32,
    pub output_tokens: u32,
}

#[derive(Debug, Clone)]
pub struct Trace {
    pub format: Format,
    pub rows: Vec<Row>,
    /// Rows read, before `start` and `model` are applied.
    pub rows_total: u64,
    /// Rows left out: failed in the traced service (no output), or of
    /// another model.
    pub rows_dropped: u64,
    /// Rows before `start`.
    pub rows_skipped: u64,
}

impl Trace {
    /// Seconds from the first row to the last.
    pub fn span_s(&self) -> f64 {
        self.rows.last().map_or(0.0, |r| r.at_s)
    }

    /// Requests per second over the trace at speed 1: rows / span
    /// (`None` with fewer than two rows or a zero span).
    pub fn mean_rate(&self) -> Option<f64> {
        let span = self.span_s();
        (self.rows.len() >= 2 && span > 0.0).then(|| (self.rows.len() - 1) as f64 / span)
    }
}

/// Reads the trace at `path` (`format` `None`: detected from the header).
/// Errors name the file, line and column, and what would be valid.
pub fn read(
    path: &Path,
    format: Option<Format>,
    start_s: f64,
    model: Option<&str>,
) -> Result<(Trace, Vec<u8>)> {
    let bytes = std::fs::read(path)
        .map_err(|e| anyhow!("{}: cannot read the trace: {e}", path.display()))?;
    let trace =
        parse(&bytes, format, start_s, model).map_err(|e| anyhow!("{}{e}", path.display()))?;
    Ok((trace, bytes))
}

/// Parses trace text; errors start with `:LINE: ` (or `: `) for the caller
/// to prefix with the file's name.
fn parse(bytes: &[u8], format: Option<Format>, start_s: f64, model: Option<&str>) -> Result<Trace> {
    let mut rd = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let header = rd
        .headers()
        .map_err(|e| anyhow!(": cannot read the CSV header: {e}"))?
        .clone();
    let format = match format {
        Some(f) => f,
        None => Format::detect(&header).ok_or_else(|| {
            anyhow!(
                ":1: the header `{}` is neither an Azure LLM inference trace (`TIMESTAMP,ContextTokens,GeneratedTokens`) nor BurstGPT (`Timestamp,Model,Request tokens,Response tokens,...`); set `format:` if the columns are there under these names",
                header.iter().collect::<Vec<_>>().join(",")
            )
        })?,
    };
    let col = |name: &str| -> Result<usize> {
        header.iter().position(|h| h == name).ok_or_else(|| {
            anyhow!(
                ":1: a {} trace needs the column `{name}`; the header has `{}`",
                format.as_str(),
                header.iter().collect::<Vec<_>>().join(",")
            )
        })
    };
    let [t, p, o] = format.columns().map(col);
    let (t, p, o) = (t?, p?, o?);
    let model_col = match model {
        Some(_) if format != Format::BurstGpt => {
            bail!(": `model` filters BurstGPT traces, whose rows name their model; this is an {} trace", format.as_str())
        }
        Some(_) => Some(col("Model")?),
        None => None,
    };
    // Times in nanoseconds on the trace's clock: an epoch time in f64
    // seconds would keep only about half a microsecond.
    let mut raw: Vec<(i64, Row)> = vec![];
    let mut total = 0u64;
    let mut dropped = 0u64;
    for (i, rec) in rd.records().enumerate() {
        let line = rec
            .as_ref()
            .ok()
            .and_then(|r| r.position())
            .map_or(i as u64 + 2, |p| p.line());
        let rec = rec.map_err(|e| anyhow!(":{line}: not a CSV row: {e}"))?;
        total += 1;
        let field = |c: usize| rec.get(c).unwrap_or("");
        let tokens = |c: usize| -> Result<u32> {
            let s = field(c);
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0 && v.fract() == 0.0 && *v <= u32::MAX as f64)
                .map(|v| v as u32)
                .ok_or_else(|| {
                    anyhow!(
                        ":{line}: {} `{s}` is not a token count (a whole number >= 0)",
                        header.get(c).unwrap_or("?")
                    )
                })
        };
        let at = time(format, field(t)).map_err(|e| {
            anyhow!(
                ":{line}: {} `{}` {e}",
                header.get(t).unwrap_or("?"),
                field(t)
            )
        })?;
        let (prompt_tokens, output_tokens) = (tokens(p)?, tokens(o)?);
        if model_col.is_some_and(|c| Some(field(c)) != model) {
            dropped += 1;
            continue;
        }
        if output_tokens == 0 {
            dropped += 1;
            continue;
        }
        raw.push((
            at,
            Row {
                line,
                at_s: 0.0,
                prompt_tokens: prompt_tokens.max(1),
                output_tokens,
            },
        ));
    }
    raw.sort_by_key(|r| r.0);
    // `start` counts from the trace's first row; offsets from the first row kept.
    let t0 = raw.first().map_or(0, |r| r.0);
    let start_ns = (start_s * 1e9).round() as i64;
    let before = raw.len();
    raw.retain(|(at, _)| at - t0 >= start_ns);
    let skipped = (before - raw.len()) as u64;
    let first = raw.first().map_or(0, |r| r.0);
    let rows: Vec<Row> = raw
        .into_iter()
        .map(|(at, r)| Row {
            at_s: (at - first) as f64 / 1e9,
            ..r
        })
        .collect();
    if rows.is_empty() {
        bail!(
            ": no request is left to replay ({total} rows read, {dropped} dropped{}{})",
            if skipped > 0 {
                format!(", {skipped} before `start`")
            } else {
                String::new()
            },
            model.map_or(String::new(), |m| format!("; `model: {m}` kept none"))
        );
    }
    Ok(Trace {
        format,
        rows,
        rows_total: total,
        rows_dropped: dropped,
        rows_skipped: skipped,
    })
}

/// Nanoseconds on the trace's own clock.
fn time(format: Format, s: &str) -> std::result::Result<i64, String> {
    match format {
        Format::BurstGpt => s
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && (0.0..1e9).contains(v))
            .map(|v| (v * 1e9).round() as i64)
            .ok_or_else(|| "is not seconds from the trace's start (e.g. `5` or `12.25`)".into()),
        Format::Azure => {
            let bad = || {
                "is not a time like `2023-11-16 18:15:46.6805900` or `2024-05-10 00:00:00.009930+00:00`".to_string()
            };
            let t = DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z")
                .map(|d| d.naive_utc())
                .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
                .map_err(|_| bad())?;
            t.and_utc().timestamp_nanos_opt().ok_or_else(bad)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Trace> {
        parse(text.as_bytes(), None, 0.0, None)
    }

    #[test]
    fn azure_rows_give_offsets_from_the_first_and_their_lengths() {
        let t = p("TIMESTAMP,ContextTokens,GeneratedTokens\n\
                   2023-11-16 18:15:46.6805900,374,44\n\
                   2023-11-16 18:15:50.5556640,396,109\n\
                   2023-11-16 18:15:47.1805900,879,20\n")
        .unwrap();
        assert_eq!(t.format, Format::Azure);
        let got: Vec<(u64, f64, u32, u32)> = t
            .rows
            .iter()
            .map(|r| {
                (
                    r.line,
                    (r.at_s * 1e6).round() / 1e6,
                    r.prompt_tokens,
                    r.output_tokens,
                )
            })
            .collect();
        // Sorted by time; offsets from the first row.
        assert_eq!(
            got,
            vec![
                (2, 0.0, 374, 44),
                (4, 0.5, 879, 20),
                (3, 3.875074, 396, 109)
            ]
        );
        assert!((t.mean_rate().unwrap() - 2.0 / 3.875074).abs() < 1e-6);
    }

    #[test]
    fn azure_2024_timestamps_carry_an_offset() {
        let t = p("TIMESTAMP,ContextTokens,GeneratedTokens\n\
                   2024-05-10 00:00:00.009930+00:00,2000,10\n\
                   2024-05-10 02:00:01.509930+02:00,100,5\n")
        .unwrap();
        assert!((t.rows[1].at_s - 1.5).abs() < 1e-9, "{:?}", t.rows);
    }

    #[test]
    fn burstgpt_drops_failures_and_filters_by_model() {
        let text = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n\
                    5,ChatGPT,472,18,490,Conversation log\n\
                    45,ChatGPT,1087,0,1087,Conversation log\n\
                    118,GPT-4,417,276,693,Conversation log\n\
                    135,ChatGPT,2160,171,2331,API log\n";
        let t = p(text).unwrap();
        assert_eq!(t.format, Format::BurstGpt);
        assert_eq!((t.rows_total, t.rows_dropped), (4, 1));
        assert_eq!(
            t.rows.iter().map(|r| r.at_s).collect::<Vec<_>>(),
            vec![0.0, 113.0, 130.0]
        );
        let g = parse(text.as_bytes(), None, 0.0, Some("ChatGPT")).unwrap();
        assert_eq!(
            g.rows
                .iter()
                .map(|r| (r.at_s, r.prompt_tokens))
                .collect::<Vec<_>>(),
            vec![(0.0, 472), (130.0, 2160)]
        );
        assert_eq!(g.rows_dropped, 2);
    }

    #[test]
    fn start_skips_the_first_seconds() {
        let text = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n\
                    0,m,1,1,2,x\n10,m,2,2,4,x\n25,m,3,3,6,x\n";
        let t = parse(text.as_bytes(), None, 10.0, None).unwrap();
        assert_eq!(
            t.rows
                .iter()
                .map(|r| (r.at_s, r.prompt_tokens))
                .collect::<Vec<_>>(),
            vec![(0.0, 2), (15.0, 3)]
        );
        assert_eq!(t.rows_skipped, 1);
    }

    #[test]
    fn bad_input_names_the_line_and_column() {
        let e = p(
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,10,5\nyesterday,10,5\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with(":3: TIMESTAMP `yesterday` is not a time like"),
            "{e}"
        );
        let e = p("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,ten,5\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(":2: ContextTokens `ten` is not a token count"),
            "{e}"
        );
        let e = p("time,in,out\n1,2,3\n").unwrap_err().to_string();
        assert!(e.contains("neither an Azure LLM inference trace"), "{e}");
        let e = parse(b"time,in,out\n1,2,3\n", Some(Format::Azure), 0.0, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs the column `TIMESTAMP`"), "{e}");
        let e = p("Timestamp,Model,Request tokens,Response tokens\n1,m,2,0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no request is left to replay"), "{e}");
    }
}
