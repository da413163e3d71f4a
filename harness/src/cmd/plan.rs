//! `harness plan`: the minimum number of instances of the most cost-effective
//! type that serve R req/min within a latency budget, and the cost per request.
//! All formulas are `harness_core::capacity` (docs/cost.md).

use crate::bundle::read::{self, StoredExperiment};
use crate::cli::PlanArgs;
use crate::pricing::PriceBook;
use crate::report::model;
use anyhow::{bail, Result};
use harness_core::analysis::{analyse, Measured};
use harness_core::capacity::Capacity;
use harness_core::recommend::Constraints;
use harness_core::Metric;
use std::collections::BTreeMap;
use std::process::ExitCode;

fn mean(e: &StoredExperiment, m: Metric) -> Option<f64> {
    e.summary.dist(m).map(|d| d.mean)
}

pub fn run(a: PlanArgs) -> Result<ExitCode> {
    let metric = match a.metric.as_str() {
        "e2e" => Metric::E2e,
        "ttft" => Metric::Ttft,
        other => bail!("--metric `{other}`: expected `e2e` or `ttft`"),
    };
    if !(a.rpm.is_finite() && a.rpm > 0.0) {
        bail!("--rpm {} must be > 0 requests per minute", a.rpm);
    }
    let book = if a.pricing.exists() {
        PriceBook::load(&a.pricing)?
    } else {
        eprintln!(
            "warning: no pricing file at {}; cost columns are empty",
            a.pricing.display()
        );
        PriceBook::default()
    };
    let mut exps = vec![];
    for b in &a.bundles {
        let conn = read::open(b)?;
        exps.extend(
            read::experiments(&conn)?
                .into_iter()
                .filter(|e| e.status == "complete" && e.instance_type.is_some()),
        );
    }
    if exps.is_empty() {
        bail!(
            "no complete experiment with an instance type in {} bundle(s)",
            a.bundles.len()
        );
    }
    // Group by dataset bucket; pick the closest to --prompt/--output if given.
    let mut groups: BTreeMap<(String, String), Vec<StoredExperiment>> = BTreeMap::new();
    for e in exps {
        groups
            .entry((e.dataset.clone(), e.bucket.clone()))
            .or_default()
            .push(e);
    }
    let avg = |v: &[StoredExperiment], m: Metric| {
        let xs: Vec<f64> = v.iter().filter_map(|e| mean(e, m)).collect();
        (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
    };
    let chosen: Vec<(&(String, String), &Vec<StoredExperiment>)> = if a.prompt.is_some()
        || a.output.is_some()
    {
        let dist = |v: &[StoredExperiment]| {
            let d = |want: Option<f64>, got: Option<f64>| match (want, got) {
                (Some(w), Some(g)) if w > 0.0 => (g - w).abs() / w,
                (Some(_), None) => f64::INFINITY,
                _ => 0.0,
            };
            d(a.prompt, avg(v, Metric::PromptTokens)) + d(a.output, avg(v, Metric::OutputTokens))
        };
        let best = groups
            .iter()
            .min_by(|x, y| {
                dist(x.1)
                    .partial_cmp(&dist(y.1))
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .expect("non-empty");
        vec![best]
    } else {
        groups.iter().collect()
    };

    let simulated = chosen.iter().any(|(_, v)| v.iter().any(|e| e.simulated));
    let k = Constraints {
        max_error_rate: a.max_error_rate,
        latency: vec![(format!("{}.p95", metric.id()), a.latency_p95)],
        max_usd_per_request: None,
    };
    for ((dataset, bucket), v) in chosen {
        println!(
            "Workload: {} req/min ({:.2} req/s), {} p95 <= {} ms, error rate <= {}%; measured on dataset {dataset} [{bucket}] (prompt ~{:.0}, output ~{:.0} tokens)",
            a.rpm,
            a.rpm / 60.0,
            metric.id(),
            a.latency_p95,
            a.max_error_rate * 100.0,
            avg(v, Metric::PromptTokens).unwrap_or(0.0),
            avg(v, Metric::OutputTokens).unwrap_or(0.0),
        );
        // Prices come from the price book given here, so a plan can be redone
        // with other prices without rerunning the benchmark.
        let measured: Vec<Measured> = v
            .iter()
            .map(|e| {
                let mut m = model::measured(e);
                m.usd_per_hour = book
                    .hourly(&m.instance_type, &a.region, &BTreeMap::new())
                    .map(|p| p * m.instance_count as f64);
                m.usd_per_request = m
                    .usd_per_hour
                    .filter(|_| m.throughput > 0.0)
                    .map(|h| h / 3600.0 / m.throughput);
                m
            })
            .collect();
        let analysis = analyse(&measured, &k, &[a.rpm]);
        let w = &analysis.workloads[0];
        let mut notes: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for c in &w.capacity {
            let n = notes.entry(c.instance_type.clone()).or_default();
            match &c.capacity {
                None => n.push("budget never met at any measured level".into()),
                Some(x) if !x.budget_reached => n.push(
                    "budget held at the highest level measured: capacity may be higher".into(),
                ),
                _ => {}
            }
            if c.usd_per_instance_hour.is_none() {
                n.push(format!("no price for {} in {}", c.instance_type, a.region));
            }
        }
        let types: Vec<Option<&Capacity>> =
            w.capacity.iter().map(|c| c.capacity.as_ref()).collect();
        let cells = &w.heatmap;
        println!(
            "{:<16} {:>14} {:>10} {:>10} {:>12} {:>10}  notes",
            "instance type", "req/s/instance", "instances", "$/hour", "$/request", "$/1k req"
        );
        let fmt =
            |x: Option<f64>, p: usize| x.map(|v| format!("{v:.p$}")).unwrap_or_else(|| "-".into());
        for (c, cap) in cells.iter().zip(&types) {
            let mut n = notes.remove(&c.instance_type).unwrap_or_default();
            if c.best_choice {
                n.insert(0, "BEST CHOICE".into());
            }
            if c.least_cost {
                n.push("least cost".into());
            }
            if c.fewest_instances {
                n.push("fewest instances".into());
            }
            println!(
                "{:<16} {:>14} {:>10} {:>10} {:>12} {:>10}  {}",
                c.instance_type,
                fmt(cap.map(|c| c.per_instance_rps), 2),
                c.instances
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "-".into()),
                fmt(c.usd_per_hour, 2),
                fmt(c.usd_per_request, 6),
                fmt(c.usd_per_request.map(|r| r * 1000.0), 3),
                n.join("; ")
            );
        }
        match cells.iter().find(|c| c.best_choice) {
            Some(b) => println!(
                "Answer: {} x {} at ${:.2}/hour = ${:.6} per request (${:.3} per 1,000) for {} req/min within {} p95 <= {} ms.\n",
                b.instances.unwrap_or(0),
                b.instance_type,
                b.usd_per_hour.unwrap_or(0.0),
                b.usd_per_request.unwrap_or(0.0),
                b.usd_per_request.unwrap_or(0.0) * 1000.0,
                a.rpm,
                metric.id(),
                a.latency_p95
            ),
            None => println!("Answer: no measured instance type meets the budget with a known price.\n"),
        }
    }
    if simulated {
        println!("SIMULATED: these bundles come from the embedded simulator; the figures are modelled, not measured on real hardware.");
    }
    Ok(ExitCode::SUCCESS)
}
