//! Reading a command's declared metrics from what it wrote: JSON lines on
//! stdout, a JSON file, or a regular expression's captures over stdout.

use crate::config::{CommandMetric, MetricSource};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The declared metrics of one run, by name: one value, or each element of
/// a list metric. `problems` says, per metric, why it is missing or
/// malformed (then the run fails, naming them).
#[derive(Debug, Default, PartialEq)]
pub struct Extracted {
    pub values: BTreeMap<String, Vec<f64>>,
    pub problems: Vec<String>,
}

/// Reads every metric of `declared` from `stdout` and the files under
/// `builtins` (`run_dir`, `run`) the declarations name.
pub fn extract(
    declared: &BTreeMap<String, CommandMetric>,
    stdout: &str,
    builtins: &BTreeMap<String, String>,
) -> Extracted {
    let mut out = Extracted::default();
    // JSON objects on stdout, in order (lines that are not one are output).
    let lines: Vec<Value> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(Value::is_object)
        .collect();
    let mut files: BTreeMap<String, Result<Vec<Value>, String>> = BTreeMap::new();
    for (name, m) in declared {
        let got: Result<Vec<f64>, String> = match &m.source {
            MetricSource::Stdout { key } => match lines.iter().rev().find_map(|o| lookup(o, key)) {
                Some(v) => numbers(v, m.list),
                None => Err(format!(
                    "not reported: no JSON line on stdout has `{key}`{}",
                    if lines.is_empty() {
                        " (stdout had no JSON line)"
                    } else {
                        ""
                    }
                )),
            },
            MetricSource::File { path, key } => {
                let path = harness_core::command::render(
                    std::slice::from_ref(path),
                    &BTreeMap::new(),
                    builtins,
                )
                .map(|mut v| v.remove(0))
                .unwrap_or_else(|_| path.clone());
                let objects = files
                    .entry(path.clone())
                    .or_insert_with(|| read_json(Path::new(&path)));
                match objects {
                    Err(e) => Err(e.clone()),
                    Ok(objects) => match objects.iter().rev().find_map(|o| lookup(o, key)) {
                        Some(v) => numbers(v, m.list),
                        None => Err(format!("not reported: {path} has no `{key}`")),
                    },
                }
            }
            MetricSource::Regex { pattern } => {
                let re = regex::Regex::new(pattern).expect("validated");
                let caps: Vec<&str> = re
                    .captures_iter(stdout)
                    .filter_map(|c| c.get(1).map(|m| m.as_str()))
                    .collect();
                if caps.is_empty() {
                    Err(format!(
                        "not reported: `{pattern}` matched nothing on stdout"
                    ))
                } else {
                    let picked: Vec<&str> = if m.list {
                        caps
                    } else {
                        vec![caps[caps.len() - 1]]
                    };
                    picked
                        .iter()
                        .map(|s| {
                            s.trim()
                                .parse::<f64>()
                                .ok()
                                .filter(|x| x.is_finite())
                                .ok_or_else(|| {
                                    format!("`{s}` (captured by `{pattern}`) is not a number")
                                })
                        })
                        .collect()
                }
            }
        };
        match got {
            Ok(v) => {
                out.values.insert(name.clone(), v);
            }
            Err(e) => out.problems.push(format!("`{name}`: {e}")),
        }
    }
    out
}

/// `key`'s value in `o`; dots go into nested objects (`train.runtime`). A
/// key that is itself dotted is found first.
fn lookup<'a>(o: &'a Value, key: &str) -> Option<&'a Value> {
    if let Some(v) = o.get(key) {
        return Some(v);
    }
    key.split('.').try_fold(o, |v, k| v.get(k))
}

/// A JSON value as the metric's numbers: a number (or a numeric string), or
/// with `list` an array of them.
fn numbers(v: &Value, list: bool) -> Result<Vec<f64>, String> {
    let one = |v: &Value| -> Result<f64, String> {
        match v {
            Value::Number(n) => n.as_f64().filter(|x| x.is_finite()),
            Value::String(s) => s.trim().parse::<f64>().ok().filter(|x| x.is_finite()),
            _ => None,
        }
        .ok_or_else(|| format!("{v} is not a number"))
    };
    match (v, list) {
        (Value::Array(a), true) => a.iter().map(one).collect(),
        (Value::Array(_), false) => {
            Err("is a list; declare the metric with `list: true` to keep every element".to_string())
        }
        (v, _) => one(v).map(|x| vec![x]),
    }
}

/// A metrics file: one JSON object, or JSON lines (each an object).
fn read_json(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("the metrics file {} was not written ({e})", path.display()))?;
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        return if v.is_object() {
            Ok(vec![v])
        } else {
            Err(format!(
                "{} holds JSON that is not an object",
                path.display()
            ))
        };
    }
    let objects: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str::<Value>)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{} is not JSON ({e})", path.display()))?;
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(source: MetricSource, list: bool) -> CommandMetric {
        CommandMetric {
            unit: "s".into(),
            source,
            list,
        }
    }

    fn stdout_key(k: &str) -> MetricSource {
        MetricSource::Stdout { key: k.into() }
    }

    #[test]
    fn json_lines_on_stdout_last_wins_nested_keys_and_lists() {
        let declared = BTreeMap::from([
            ("ttft_s".to_string(), m(stdout_key("ttft_s"), false)),
            ("tpot".to_string(), m(stdout_key("per_token_s"), true)),
            ("runtime".to_string(), m(stdout_key("train.runtime"), false)),
        ]);
        let out = "loading model...\n{\"ttft_s\": 0.5}\nnoise {not json\n{\"ttft_s\": 0.25, \"per_token_s\": [0.01, 0.02]}\n{\"train\": {\"runtime\": \"12.5\"}}\n";
        let e = extract(&declared, out, &BTreeMap::new());
        assert_eq!(e.problems, Vec::<String>::new());
        assert_eq!(e.values["ttft_s"], [0.25]);
        assert_eq!(e.values["tpot"], [0.01, 0.02]);
        assert_eq!(e.values["runtime"], [12.5]);
    }

    #[test]
    fn missing_and_malformed_metrics_are_named() {
        let declared = BTreeMap::from([
            ("a".to_string(), m(stdout_key("a"), false)),
            ("b".to_string(), m(stdout_key("b"), false)),
            ("c".to_string(), m(stdout_key("c"), false)),
            ("d".to_string(), m(stdout_key("d"), true)),
        ]);
        let e = extract(
            &declared,
            "{\"b\": \"fast\", \"c\": [1, 2], \"d\": [1, null]}",
            &BTreeMap::new(),
        );
        assert!(e.values.is_empty(), "{:?}", e.values);
        assert_eq!(
            e.problems,
            [
                "`a`: not reported: no JSON line on stdout has `a`",
                "`b`: \"fast\" is not a number",
                "`c`: is a list; declare the metric with `list: true` to keep every element",
                "`d`: null is not a number",
            ]
        );
        let none = extract(&declared, "plain text", &BTreeMap::new());
        assert!(none.problems[0].ends_with("(stdout had no JSON line)"));
    }

    #[test]
    fn a_json_file_in_the_run_dir_and_regex_captures() {
        let dir = tempfile::tempdir().unwrap();
        let builtins = BTreeMap::from([("run_dir".to_string(), dir.path().display().to_string())]);
        let declared = BTreeMap::from([
            (
                "train_runtime".to_string(),
                m(
                    MetricSource::File {
                        path: "{run_dir}/out.json".into(),
                        key: "train_runtime".into(),
                    },
                    false,
                ),
            ),
            (
                "tps".to_string(),
                m(
                    MetricSource::Regex {
                        pattern: r"tokens/s: ([0-9.]+)".into(),
                    },
                    false,
                ),
            ),
            (
                "steps".to_string(),
                m(
                    MetricSource::Regex {
                        pattern: r"step \d+ took ([0-9.]+)s".into(),
                    },
                    true,
                ),
            ),
        ]);
        let out = "step 1 took 0.5s\nstep 2 took 0.25s\ntokens/s: 10\ntokens/s: 12.5\n";
        let missing = extract(&declared, out, &builtins);
        assert_eq!(missing.problems.len(), 1);
        assert!(
            missing.problems[0].starts_with("`train_runtime`: the metrics file ")
                && missing.problems[0].contains("out.json was not written"),
            "{:?}",
            missing.problems
        );
        std::fs::write(dir.path().join("out.json"), r#"{"train_runtime": 31.5}"#).unwrap();
        let e = extract(&declared, out, &builtins);
        assert_eq!(e.problems, Vec::<String>::new());
        assert_eq!(e.values["train_runtime"], [31.5]);
        assert_eq!(e.values["tps"], [12.5]);
        assert_eq!(e.values["steps"], [0.5, 0.25]);
        std::fs::write(dir.path().join("out.json"), "[1, 2]").unwrap();
        let e = extract(&declared, out, &builtins);
        assert!(
            e.problems[0].contains("holds JSON that is not an object"),
            "{:?}",
            e.problems
        );
        std::fs::write(dir.path().join("out.json"), "{oops").unwrap();
        let e = extract(&declared, out, &builtins);
        assert!(e.problems[0].contains("is not JSON"), "{:?}", e.problems);
    }
}
