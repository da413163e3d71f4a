//! Command experiments: a program benchmarked over a scenario matrix.
//!
//! A command endpoint names a command template, scenarios (argument maps),
//! defaults merged under every scenario and matrix axes crossed with them.
//! [`expand`] turns that into cells, one per combination; each cell is run
//! `warmup_runs` times unmeasured and `runs` times measured. [`render`] gives a
//! cell's argument vector. [`summarise`] reduces the measured runs' metrics.
//!
//! The shape follows the fine-tuning benchmark this replaces (a
//! `scenarios.yaml` of named argument maps whose list values are enumerated
//! and crossed with a GPU-count list) and the offline-inference one (warm-up
//! runs, then N timed runs per framework × model × length × batch cell).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Argument name → value. In a scenario a list value means "each of these";
/// in a [`Cell`] every value is a scalar (or an object, passed as JSON).
pub type Args = BTreeMap<String, Value>;

/// A named scenario: its arguments before defaults are merged under them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    pub name: String,
    pub args: Args,
}

/// One combination of a scenario's arguments and the matrix axes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub scenario: String,
    /// Every argument, defaults included, each a single value.
    pub args: Args,
    /// The arguments that vary within the scenario (list values and matrix
    /// axes), in expansion order: they name the cell.
    pub varied: Vec<String>,
}

impl Cell {
    /// `scenario` or `scenario · k=v, k=v` over the varied arguments.
    pub fn label(&self) -> String {
        if self.varied.is_empty() {
            return self.scenario.clone();
        }
        let parts: Vec<String> = self
            .varied
            .iter()
            .map(|k| format!("{k}={}", text(&self.args[k])))
            .collect();
        format!("{} · {}", self.scenario, parts.join(", "))
    }
}

/// Expands scenarios into cells, in scenario order. For each scenario:
/// `defaults` are merged under its arguments (the scenario's value wins),
/// every list value is enumerated, and the product is crossed with each
/// `matrix` axis. Earlier keys (alphabetical), then the matrix axes, vary
/// slowest. An empty list yields no cell (validation refuses it first).
///
/// Errors: a matrix axis that a scenario or the defaults also set (which
/// value would win is not obvious), named with the scenario.
pub fn expand(
    defaults: &Args,
    scenarios: &[Scenario],
    matrix: &BTreeMap<String, Vec<Value>>,
) -> Result<Vec<Cell>, String> {
    let mut out = vec![];
    for s in scenarios {
        let mut merged = defaults.clone();
        merged.extend(s.args.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(k) = matrix.keys().find(|k| merged.contains_key(*k)) {
            return Err(format!(
                "scenario `{}` sets `{k}`, which is also a matrix axis; set it in one place",
                s.name
            ));
        }
        let mut axes: Vec<(String, Vec<Value>)> = vec![];
        let mut fixed = Args::new();
        for (k, v) in merged {
            match v {
                Value::Array(vs) => axes.push((k, vs)),
                v => {
                    fixed.insert(k, v);
                }
            }
        }
        axes.extend(matrix.iter().map(|(k, vs)| (k.clone(), vs.clone())));
        let varied: Vec<String> = axes.iter().map(|(k, _)| k.clone()).collect();
        let mut combos: Vec<Args> = vec![fixed];
        for (k, vs) in &axes {
            combos = combos
                .iter()
                .flat_map(|c| {
                    vs.iter().map(move |v| {
                        let mut c = c.clone();
                        c.insert(k.clone(), v.clone());
                        c
                    })
                })
                .collect();
        }
        out.extend(combos.into_iter().map(|args| Cell {
            scenario: s.name.clone(),
            args,
            varied: varied.clone(),
        }));
    }
    Ok(out)
}

/// A value as it is put on a command line: a string as is, a number or a
/// boolean as written in JSON, an object or list as JSON, null as empty.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

/// The placeholders in a template word: `{name}` (`{{` and `}}` are literal
/// braces). Errors: an unclosed `{` or an empty name.
pub fn placeholders(word: &str) -> Result<Vec<String>, String> {
    let mut out = vec![];
    let mut rest = word;
    while let Some(i) = rest.find(['{', '}']) {
        let (c, after) = (rest.as_bytes()[i], &rest[i + 1..]);
        if after.starts_with(c as char) {
            rest = &after[1..];
            continue;
        }
        if c == b'}' {
            return Err(format!(
                "`{word}` has a `}}` without its `{{` (write `}}}}` for a literal one)"
            ));
        }
        let Some(end) = after.find('}') else {
            return Err(format!(
                "`{word}` has a `{{` without its `}}` (write `{{{{` for a literal one)"
            ));
        };
        let name = &after[..end];
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        {
            return Err(format!(
                "`{word}` has the placeholder `{{{name}}}`: a placeholder is an argument's name"
            ));
        }
        out.push(name.to_string());
        rest = &after[end + 1..];
    }
    Ok(out)
}

/// The word that stands for every argument no other placeholder uses, as
/// `--name value` pairs (the usual form of trainers' command lines).
pub const ALL_ARGS: &str = "{args}";

/// Values the harness supplies per run, beside the cell's arguments:
/// `run_dir` (an empty directory for the run's files) and `run` (the run's
/// number, warm-up runs first, from 0).
pub const BUILTINS: [&str; 2] = ["run_dir", "run"];

/// The argument vector of `cell` from `template` (already split into words,
/// as a shell would, without a shell running it). Each `{name}` takes the
/// argument's [`text`] or a builtin from `builtins`; the word [`ALL_ARGS`]
/// becomes `--name value` for every argument no placeholder names (a `true`
/// flag as `--name`, a `false` one left out).
///
/// Errors: a placeholder that names neither an argument nor a builtin.
pub fn render(
    template: &[String],
    args: &Args,
    builtins: &BTreeMap<String, String>,
) -> Result<Vec<String>, String> {
    let mut used = BTreeSet::new();
    for w in template {
        for p in placeholders(w)? {
            used.insert(p);
        }
    }
    let mut out = vec![];
    for w in template {
        if w == ALL_ARGS {
            for (k, v) in args.iter().filter(|(k, _)| !used.contains(*k)) {
                match v {
                    Value::Bool(true) => out.push(format!("--{k}")),
                    Value::Bool(false) => {}
                    v => {
                        out.push(format!("--{k}"));
                        out.push(text(v));
                    }
                }
            }
            continue;
        }
        let mut s = String::new();
        let mut rest = w.as_str();
        while let Some(i) = rest.find(['{', '}']) {
            s.push_str(&rest[..i]);
            let (c, after) = (rest.as_bytes()[i] as char, &rest[i + 1..]);
            if after.starts_with(c) {
                s.push(c);
                rest = &after[1..];
                continue;
            }
            let end = after.find('}').expect("checked by placeholders");
            let name = &after[..end];
            match (args.get(name), builtins.get(name)) {
                (Some(v), _) => s.push_str(&text(v)),
                (None, Some(b)) => s.push_str(b),
                (None, None) => {
                    return Err(format!(
                        "the command's `{{{name}}}` names no argument of this cell (it has {})",
                        if args.is_empty() {
                            "none".to_string()
                        } else {
                            args.keys()
                                .map(|k| format!("`{k}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    ))
                }
            }
            rest = &after[end + 1..];
        }
        s.push_str(rest);
        out.push(s);
    }
    Ok(out)
}

/// One metric over a cell's measured runs that reported it: a scalar metric
/// gives one value per run; a list metric (e.g. per-token times) pools every
/// element of every run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    pub metric: String,
    pub unit: String,
    /// Values summarised (runs, or pooled list elements).
    pub count: usize,
    /// Runs that reported it.
    pub runs: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1); 0 for one value.
    pub sd: f64,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub max: f64,
}

/// One stored metric value: `run` of the cell, element `idx` of a list
/// metric (0 for a scalar).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricValue {
    pub run: i64,
    pub metric: String,
    pub unit: String,
    pub idx: i64,
    pub value: f64,
}

/// Summaries of `values` (measured runs only), by metric name. Percentiles
/// are nearest-rank on the sorted values (`p` of n values: the
/// ⌈p·n⌉-th smallest), exact because the values are few.
pub fn summarise(values: &[MetricValue]) -> Vec<MetricSummary> {
    let mut by: BTreeMap<&str, (&str, Vec<f64>, BTreeSet<i64>)> = BTreeMap::new();
    for v in values {
        let e = by
            .entry(v.metric.as_str())
            .or_insert((v.unit.as_str(), vec![], BTreeSet::new()));
        e.1.push(v.value);
        e.2.insert(v.run);
    }
    by.into_iter()
        .map(|(metric, (unit, mut xs, runs))| {
            xs.sort_by(f64::total_cmp);
            let n = xs.len();
            let mean = xs.iter().sum::<f64>() / n as f64;
            // Equal values have no spread; the float mean of, say, three
            // 0.1s is 0.10000000000000002, which would give an sd of 1e-17.
            let sd = if n > 1 && xs[0] != xs[n - 1] {
                (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
            } else {
                0.0
            };
            let rank = |p: f64| xs[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
            MetricSummary {
                metric: metric.to_string(),
                unit: unit.to_string(),
                count: n,
                runs: runs.len(),
                mean,
                sd,
                min: xs[0],
                p50: rank(0.5),
                p90: rank(0.9),
                max: xs[n - 1],
            }
        })
        .collect()
}

/// Which way a metric in `unit` gets worse, for `harness diff`: a rate
/// (`tokens/s`, `samples/s`: any unit ending in `/s`) regresses when it
/// falls; a count of [`TOKENS_UNIT`] has no direction (`None`: reported,
/// never a regression); any other (seconds, bytes, a loss) regresses when it
/// rises. Returns whether higher is better.
pub fn higher_is_better(unit: &str) -> Option<bool> {
    let u = unit.trim();
    if u == TOKENS_UNIT {
        None
    } else {
        Some(u.ends_with("/s"))
    }
}

/// The unit that marks a metric as a token count: a run's tokens are the sum
/// of its metrics in this unit, and its cost per 1M tokens is taken over them.
pub const TOKENS_UNIT: &str = "tokens";

/// Cost of one run: `usd_per_hour` × `instances` for `seconds` of wall time,
/// and per 1M tokens when the run reported tokens (`harness_core::cost`'s
/// instance-hour formula, applied to a run instead of a load window).
pub fn run_cost(
    usd_per_hour: f64,
    instances: u32,
    seconds: f64,
    tokens: Option<f64>,
) -> (f64, Option<f64>) {
    let usd = usd_per_hour * instances as f64 * seconds / 3600.0;
    let per_1m = tokens.filter(|t| *t > 0.0).map(|t| usd / t * 1e6);
    (usd, per_1m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> Args {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn lists_are_enumerated_and_crossed_with_the_matrix() {
        let defaults = args(json!({"lr": 1e-5, "epochs": 1}));
        let scenarios = vec![
            Scenario {
                name: "full".into(),
                args: args(json!({"model": ["a", "b"], "epochs": 2})),
            },
            Scenario {
                name: "lora".into(),
                args: args(json!({"model": "a", "r": 8})),
            },
        ];
        let matrix = BTreeMap::from([("num_gpus".to_string(), vec![json!(1), json!(2)])]);
        let cells = expand(&defaults, &scenarios, &matrix).unwrap();
        let labels: Vec<String> = cells.iter().map(Cell::label).collect();
        assert_eq!(
            labels,
            [
                "full · model=a, num_gpus=1",
                "full · model=a, num_gpus=2",
                "full · model=b, num_gpus=1",
                "full · model=b, num_gpus=2",
                "lora · num_gpus=1",
                "lora · num_gpus=2",
            ]
        );
        // Defaults under the scenario, the scenario's value winning.
        assert_eq!(cells[0].args["epochs"], json!(2));
        assert_eq!(cells[0].args["lr"], json!(1e-5));
        assert_eq!(cells[4].args["epochs"], json!(1));
        assert_eq!(cells[4].args["r"], json!(8));
        let clash = expand(
            &defaults,
            &[Scenario {
                name: "x".into(),
                args: args(json!({"num_gpus": 4})),
            }],
            &matrix,
        );
        assert!(clash.unwrap_err().contains("scenario `x` sets `num_gpus`"));
    }

    #[test]
    fn render_fills_placeholders_args_and_builtins() {
        let t: Vec<String> = [
            "python3",
            "train.py",
            "--out={run_dir}/m.json",
            "{args}",
            "-n",
            "{num_gpus}",
        ]
        .map(String::from)
        .to_vec();
        let a = args(
            json!({"num_gpus": 2, "model": "org/m", "bf16": true, "fp16": false, "cfg": {"k": 1}}),
        );
        let b = BTreeMap::from([("run_dir".to_string(), "/tmp/r".to_string())]);
        assert_eq!(
            render(&t, &a, &b).unwrap(),
            [
                "python3",
                "train.py",
                "--out=/tmp/r/m.json",
                "--bf16",
                "--cfg",
                "{\"k\":1}",
                "--model",
                "org/m",
                "-n",
                "2"
            ]
        );
        let e = render(&["{nope}".to_string()], &a, &b).unwrap_err();
        assert!(
            e.contains("`{nope}` names no argument") && e.contains("`model`"),
            "{e}"
        );
        assert_eq!(render(&["{{x}}".to_string()], &a, &b).unwrap(), ["{x}"]);
        assert!(placeholders("{a").unwrap_err().contains("without its `}`"));
        assert!(placeholders("a}").unwrap_err().contains("without its `{`"));
        assert!(placeholders("{}").is_err());
    }

    #[test]
    fn summaries_pool_lists_and_count_runs() {
        let v = |run, metric: &str, idx, value| MetricValue {
            run,
            metric: metric.into(),
            unit: "s".into(),
            idx,
            value,
        };
        let s = summarise(&[
            v(1, "ttft_s", 0, 0.2),
            v(2, "ttft_s", 0, 0.4),
            v(1, "tpot_s", 0, 0.01),
            v(1, "tpot_s", 1, 0.03),
            v(2, "tpot_s", 0, 0.02),
        ]);
        let tpot = &s[0];
        assert_eq!(
            (tpot.metric.as_str(), tpot.count, tpot.runs),
            ("tpot_s", 3, 2)
        );
        assert!((tpot.mean - 0.02).abs() < 1e-12 && tpot.p50 == 0.02 && tpot.max == 0.03);
        let ttft = &s[1];
        assert!((ttft.sd - 0.1414213562373095).abs() < 1e-12, "{}", ttft.sd);
        assert_eq!((ttft.p50, ttft.p90), (0.2, 0.4));
        // Equal values: an sd of exactly 0, not the float mean's 1e-17.
        let same = summarise(&[v(1, "x", 0, 0.1), v(2, "x", 0, 0.1), v(3, "x", 0, 0.1)]);
        assert_ne!(same[0].mean, 0.1, "the float mean of three 0.1s is not 0.1");
        assert_eq!(same[0].sd, 0.0);
        let (usd, per_1m) = run_cost(3.6, 2, 10.0, Some(1000.0));
        assert!((usd - 0.02).abs() < 1e-12);
        assert!((per_1m.unwrap() - 20.0).abs() < 1e-9);
        assert_eq!(run_cost(3.6, 1, 10.0, Some(0.0)).1, None);
        assert_eq!(higher_is_better("tokens/s"), Some(true));
        assert_eq!(higher_is_better("s"), Some(false));
        assert_eq!(higher_is_better("tokens"), None);
    }
}
