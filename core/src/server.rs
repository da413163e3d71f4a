//! The serving engine's own metrics, scraped from its Prometheus `/metrics`
//! while an experiment runs (the `server_metrics` table), and the few series
//! that explain latency, summarised per experiment.
//!
//! Each engine names them its own way; [`SERIES`] maps the names of vLLM
//! (`vllm:`), SGLang (`sglang:`), TGI (`tgi_`) and llama.cpp (`llamacpp:`)
//! onto five:
//!
//! | series | meaning | from |
//! |---|---|---|
//! | `running` | requests being decoded | gauge |
//! | `waiting` | requests queued for admission | gauge |
//! | `kv_cache_usage` | fraction of the KV cache in use, 0–1 | gauge |
//! | `prefix_cache_hit_rate` | prompt tokens found in the prefix cache / looked up | counters (hits / queries) or a gauge |
//! | `generation_tokens_per_s` | output tokens generated per second | a counter's rate or a gauge |
//!
//! Only samples inside the experiment's measurement window count
//! ([`crate::host::window_of`]). A gauge's figure is its mean and maximum over
//! the scrapes, summed over its label sets per scrape (two models served: the
//! running requests of both), except ratios (KV cache usage, a hit-rate
//! gauge), which are averaged over label sets. A counter's rate is
//! `(last − first) / (t_last − t_first)` of its sum over label sets, between
//! the first and last scrape in the window; `None` with fewer than two.
//! Every other sample is kept raw in the table.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One scraped sample (a row of `server_metrics`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerSample {
    /// When the scrape's response arrived, ns on the experiment's clock.
    pub t_ns: i64,
    /// The metric's name, e.g. `vllm:num_requests_running`.
    pub name: String,
    /// Its labels as `k="v"` pairs joined by `,`, sorted by key.
    pub labels: String,
    pub value: f64,
}

/// How an engine's metric feeds one of the five series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A gauge summed over label sets.
    Gauge,
    /// A gauge that is a ratio, averaged over label sets.
    Ratio,
    /// A counter, as its rate per second.
    Rate,
    /// The numerator / denominator counters of a ratio (their deltas).
    Hits,
    Queries,
}

/// (series, engine metric name, how). The first name a scrape has wins.
pub const SERIES: &[(&str, &str, Source)] = &[
    ("running", "vllm:num_requests_running", Source::Gauge),
    ("running", "sglang:num_running_reqs", Source::Gauge),
    ("running", "tgi_batch_current_size", Source::Gauge),
    ("running", "llamacpp:requests_processing", Source::Gauge),
    ("waiting", "vllm:num_requests_waiting", Source::Gauge),
    ("waiting", "sglang:num_queue_reqs", Source::Gauge),
    ("waiting", "tgi_queue_size", Source::Gauge),
    ("waiting", "llamacpp:requests_deferred", Source::Gauge),
    ("kv_cache_usage", "vllm:kv_cache_usage_perc", Source::Ratio),
    ("kv_cache_usage", "vllm:gpu_cache_usage_perc", Source::Ratio),
    ("kv_cache_usage", "sglang:token_usage", Source::Ratio),
    (
        "kv_cache_usage",
        "llamacpp:kv_cache_usage_ratio",
        Source::Ratio,
    ),
    (
        "prefix_cache_hit_rate",
        "vllm:prefix_cache_hits_total",
        Source::Hits,
    ),
    (
        "prefix_cache_hit_rate",
        "vllm:prefix_cache_queries_total",
        Source::Queries,
    ),
    (
        "prefix_cache_hit_rate",
        "vllm:gpu_prefix_cache_hit_rate",
        Source::Ratio,
    ),
    (
        "prefix_cache_hit_rate",
        "sglang:cache_hit_rate",
        Source::Ratio,
    ),
    (
        "generation_tokens_per_s",
        "vllm:generation_tokens_total",
        Source::Rate,
    ),
    (
        "generation_tokens_per_s",
        "sglang:gen_throughput",
        Source::Gauge,
    ),
    (
        "generation_tokens_per_s",
        "tgi_request_generated_tokens_sum",
        Source::Rate,
    ),
    (
        "generation_tokens_per_s",
        "llamacpp:tokens_predicted_total",
        Source::Rate,
    ),
];

/// A gauge's mean and maximum over the window's scrapes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanMax {
    pub mean: f64,
    pub max: f64,
}

/// The series that explain latency, over one experiment's measurement window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerSummary {
    /// Scrapes inside the window.
    pub scrapes: usize,
    pub running: Option<MeanMax>,
    pub waiting: Option<MeanMax>,
    pub kv_cache_usage: Option<MeanMax>,
    /// Over the window: hits / queries, or the gauge's mean.
    pub prefix_cache_hit_rate: Option<f64>,
    pub generation_tokens_per_s: Option<f64>,
    /// The engine metric each series came from, e.g. `running:
    /// vllm:num_requests_running`.
    pub sources: BTreeMap<String, String>,
}

/// Summarises the samples of one experiment inside `window` (ns, inclusive;
/// `None`: every sample).
pub fn summarise(samples: &[ServerSample], window: Option<(i64, i64)>) -> ServerSummary {
    let inside: Vec<&ServerSample> = samples
        .iter()
        .filter(|s| window.is_none_or(|(a, b)| s.t_ns >= a && s.t_ns <= b))
        .collect();
    // name → scrape time → (sum over label sets, label sets).
    let mut by_name: BTreeMap<&str, BTreeMap<i64, (f64, usize)>> = BTreeMap::new();
    for s in &inside {
        let e = by_name
            .entry(s.name.as_str())
            .or_default()
            .entry(s.t_ns)
            .or_default();
        e.0 += s.value;
        e.1 += 1;
    }
    let mut out = ServerSummary {
        scrapes: inside
            .iter()
            .map(|s| s.t_ns)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        ..Default::default()
    };
    let points = |name: &str, ratio: bool| -> Vec<(i64, f64)> {
        by_name
            .get(name)
            .map(|m| {
                m.iter()
                    .map(|(t, (sum, n))| (*t, if ratio { sum / *n as f64 } else { *sum }))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mean_max = |p: &[(i64, f64)]| {
        (!p.is_empty()).then(|| MeanMax {
            mean: p.iter().map(|x| x.1).sum::<f64>() / p.len() as f64,
            max: p.iter().map(|x| x.1).fold(f64::NEG_INFINITY, f64::max),
        })
    };
    let delta = |p: &[(i64, f64)]| -> Option<(f64, f64)> {
        let (first, last) = (p.first()?, p.last()?);
        (last.0 > first.0).then(|| (last.1 - first.1, (last.0 - first.0) as f64 / 1e9))
    };
    for series in [
        "running",
        "waiting",
        "kv_cache_usage",
        "prefix_cache_hit_rate",
        "generation_tokens_per_s",
    ] {
        let Some(&(_, name, how)) = SERIES
            .iter()
            .find(|(s, n, how)| *s == series && *how != Source::Queries && by_name.contains_key(n))
        else {
            continue;
        };
        let value = match how {
            Source::Gauge | Source::Ratio => {
                let mm = mean_max(&points(name, how == Source::Ratio));
                match series {
                    "running" => out.running = mm,
                    "waiting" => out.waiting = mm,
                    "kv_cache_usage" => out.kv_cache_usage = mm,
                    "prefix_cache_hit_rate" => out.prefix_cache_hit_rate = mm.map(|m| m.mean),
                    _ => out.generation_tokens_per_s = mm.map(|m| m.mean),
                }
                mm.is_some()
            }
            Source::Rate => {
                out.generation_tokens_per_s = delta(&points(name, false)).map(|(d, secs)| d / secs);
                out.generation_tokens_per_s.is_some()
            }
            Source::Hits => {
                let queries = SERIES
                    .iter()
                    .find(|(s, _, h)| *s == series && *h == Source::Queries)
                    .map(|x| x.1)
                    .unwrap_or_default();
                let (h, q) = (delta(&points(name, false)), delta(&points(queries, false)));
                out.prefix_cache_hit_rate = match (h, q) {
                    (Some((h, _)), Some((q, _))) if q > 0.0 => Some(h / q),
                    _ => None,
                };
                out.prefix_cache_hit_rate.is_some()
            }
            Source::Queries => false,
        };
        if value {
            out.sources.insert(series.to_string(), name.to_string());
        }
    }
    out
}

/// Parses Prometheus's text exposition format (version 0.0.4) into samples
/// stamped `t_ns`: `name{label="value",...} value [timestamp]` per line,
/// `#` lines skipped, label values unescaped (`\\`, `\"`, `\n`), values as
/// Go writes floats (`NaN`, `+Inf`, `-Inf`). Histogram and summary lines are
/// samples like any other (`_bucket{le=…}`, `_sum`, `_count`).
///
/// Our own and not the `prometheus-parse` crate's: its name pattern (`\w+`)
/// rejects the `:` in `vllm:num_requests_running`, and it splits label
/// values at commas.
///
/// Errors: a line that is not a sample, with its number and why.
pub fn parse_exposition(text: &str, t_ns: i64) -> Result<Vec<ServerSample>, String> {
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| format!("line {}: {why}: `{line}`", i + 1);
        let name_end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(line.len());
        let name = &line[..name_end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(bad("no metric name"));
        }
        let mut rest = &line[name_end..];
        let mut labels: Vec<(String, String)> = vec![];
        if let Some(r) = rest.strip_prefix('{') {
            rest = r;
            loop {
                rest = rest.trim_start_matches([' ', ',']);
                if let Some(r) = rest.strip_prefix('}') {
                    rest = r;
                    break;
                }
                let eq = rest.find('=').ok_or_else(|| bad("a label without `=`"))?;
                let key = rest[..eq].trim().to_string();
                let mut chars = rest[eq + 1..].trim_start().char_indices();
                if chars.next().map(|c| c.1) != Some('"') {
                    return Err(bad("a label value without quotes"));
                }
                let mut value = String::new();
                let mut end = None;
                let mut escaped = false;
                for (j, c) in chars {
                    match (escaped, c) {
                        (true, c) => {
                            value.push(if c == 'n' { '\n' } else { c });
                            escaped = false;
                        }
                        (false, '\\') => escaped = true,
                        (false, '"') => {
                            end = Some(j);
                            break;
                        }
                        (false, c) => value.push(c),
                    }
                }
                let start = rest[eq + 1..].len() - rest[eq + 1..].trim_start().len() + eq + 1;
                let end = end.ok_or_else(|| bad("an unterminated label value"))?;
                labels.push((key, value));
                rest = &rest[start + end + 1..];
            }
        }
        let value = rest
            .split_whitespace()
            .next()
            .ok_or_else(|| bad("no value"))?;
        let value = match value {
            "NaN" => f64::NAN,
            "+Inf" | "Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| bad("the value is not a number"))?,
        };
        labels.sort();
        out.push(ServerSample {
            t_ns,
            name: name.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect::<Vec<_>>()
                .join(","),
            value,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one<'a>(xs: &'a [ServerSample], name: &str) -> &'a ServerSample {
        xs.iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} not parsed"))
    }

    #[test]
    fn parses_vllm_tgi_and_llama_cpp_exposition() {
        // Written from each engine's documented metric names and the text
        // format (tests/fixtures/metrics/*.txt).
        let v = parse_exposition(include_str!("../tests/fixtures/metrics/vllm.txt"), 7).unwrap();
        let r = one(&v, "vllm:num_requests_running");
        assert_eq!((r.value, r.t_ns), (3.0, 7));
        assert_eq!(r.labels, r#"model_name="meta-llama/Llama-3.1-8B-Instruct""#);
        assert_eq!(one(&v, "vllm:kv_cache_usage_perc").value, 0.42);
        assert!(v
            .iter()
            .any(|s| s.name == "vllm:time_to_first_token_seconds_bucket"
                && s.labels.contains(r#"le="+Inf""#)));
        let w = summarise(&v, None);
        assert_eq!(w.running.unwrap().mean, 3.0);
        assert_eq!(w.waiting.unwrap().mean, 1.0);
        let t = parse_exposition(include_str!("../tests/fixtures/metrics/tgi.txt"), 0).unwrap();
        assert_eq!(one(&t, "tgi_queue_size").value, 2.0);
        assert_eq!(one(&t, "tgi_batch_current_size").value, 4.0);
        let l =
            parse_exposition(include_str!("../tests/fixtures/metrics/llamacpp.txt"), 0).unwrap();
        assert_eq!(one(&l, "llamacpp:requests_processing").value, 1.0);
        assert_eq!(one(&l, "llamacpp:kv_cache_usage_ratio").value, 0.125);
        let s = summarise(&l, None);
        assert_eq!(s.kv_cache_usage.unwrap().max, 0.125);
    }

    #[test]
    fn labels_with_escapes_commas_and_special_values() {
        let xs = parse_exposition(
            "# HELP x a doc\nm{b=\"1,2\",a=\"q\\\"uote\\\\ \\n\"} NaN 1700000000000\nn +Inf\nbad_value{} abc\n",
            1,
        );
        let e = xs.unwrap_err();
        assert!(e.starts_with("line 4: the value is not a number"), "{e}");
        let xs = parse_exposition(
            "m{b=\"1,2\",a=\"q\\\"uote\\\\ \\n\"} NaN 1700000000000\nn +Inf\n",
            1,
        )
        .unwrap();
        assert_eq!(xs[0].labels, r#"a="q\"uote\\ \n",b="1,2""#);
        assert!(xs[0].value.is_nan());
        assert_eq!(xs[1].value, f64::INFINITY);
        assert!(parse_exposition("{a=\"b\"} 1", 0).is_err());
        assert!(parse_exposition("m{a=b} 1", 0).is_err());
    }

    fn s(t: i64, name: &str, labels: &str, value: f64) -> ServerSample {
        ServerSample {
            t_ns: t * 1_000_000_000,
            name: name.into(),
            labels: labels.into(),
            value,
        }
    }

    #[test]
    fn gauges_counters_and_ratios_over_the_window() {
        let m = r#"model_name="a""#;
        let n = r#"model_name="b""#;
        let xs = vec![
            // Outside the window (before 1 s): ignored.
            s(0, "vllm:num_requests_running", m, 100.0),
            s(1, "vllm:num_requests_running", m, 2.0),
            s(1, "vllm:num_requests_running", n, 1.0),
            s(2, "vllm:num_requests_running", m, 4.0),
            s(2, "vllm:num_requests_running", n, 1.0),
            s(1, "vllm:kv_cache_usage_perc", m, 0.2),
            s(1, "vllm:kv_cache_usage_perc", n, 0.4),
            s(2, "vllm:kv_cache_usage_perc", m, 0.5),
            s(2, "vllm:kv_cache_usage_perc", n, 0.5),
            s(1, "vllm:generation_tokens_total", m, 1000.0),
            s(3, "vllm:generation_tokens_total", m, 1600.0),
            s(1, "vllm:prefix_cache_hits_total", m, 10.0),
            s(3, "vllm:prefix_cache_hits_total", m, 70.0),
            s(1, "vllm:prefix_cache_queries_total", m, 100.0),
            s(3, "vllm:prefix_cache_queries_total", m, 200.0),
        ];
        let w = summarise(&xs, Some((1_000_000_000, 3_000_000_000)));
        assert_eq!(w.scrapes, 3);
        // Running summed over models: 3 then 5.
        assert_eq!(
            w.running,
            Some(MeanMax {
                mean: 4.0,
                max: 5.0
            })
        );
        // KV usage averaged over models: 0.3 then 0.5.
        let kv = w.kv_cache_usage.unwrap();
        assert!((kv.mean - 0.4).abs() < 1e-12 && kv.max == 0.5);
        // 600 tokens in 2 s.
        assert_eq!(w.generation_tokens_per_s, Some(300.0));
        // 60 hits of 100 lookups.
        assert_eq!(w.prefix_cache_hit_rate, Some(0.6));
        assert_eq!(w.waiting, None);
        assert_eq!(w.sources["running"], "vllm:num_requests_running");
    }

    #[test]
    fn other_engines_map_onto_the_same_series() {
        let xs = vec![
            s(1, "tgi_queue_size", "", 3.0),
            s(1, "tgi_batch_current_size", "", 8.0),
            s(1, "sglang:cache_hit_rate", "", 0.25),
            s(1, "llamacpp:tokens_predicted_total", "", 10.0),
            s(2, "llamacpp:tokens_predicted_total", "", 60.0),
        ];
        let w = summarise(&xs, None);
        assert_eq!(w.waiting.unwrap().mean, 3.0);
        assert_eq!(w.running.unwrap().max, 8.0);
        assert_eq!(w.prefix_cache_hit_rate, Some(0.25));
        assert_eq!(w.generation_tokens_per_s, Some(50.0));
        assert_eq!(summarise(&[], None), ServerSummary::default());
    }
}
