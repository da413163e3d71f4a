//! `harness plan`: the minimum number of instances of the most cost-effective
//! type that serve R req/min within a latency budget, and the cost per request.
//!
//! It is the report's capacity answer for one target rate, printed for the
//! terminal: the same view model (`report::model::build`), the same budget
//! flags and defaults, the same prices (as recorded in the bundles, or
//! `--reprice FILE`), so `plan` and `report --rpm R` cannot disagree. All
//! formulas are `harness_core::capacity` (docs/cost.md).
//!
//! Exit status 1 when no measured configuration serves the rate within the
//! budget (a failed budget is a finding a CI job can gate on).

use crate::bad_input;
use crate::cli::PlanArgs;
use crate::exit;
use crate::report::model::Report;
use anyhow::Result;
use harness_core::analysis::WorkloadAnalysis;
use std::process::ExitCode;

pub fn run(a: PlanArgs) -> Result<ExitCode> {
    if !(a.rpm.is_finite() && a.rpm > 0.0) {
        bad_input!("--rpm {} must be > 0 requests per minute", a.rpm);
    }
    let shorthand = match (a.latency_p95, a.metric.as_str()) {
        (None, _) => None,
        (Some(ms), m @ ("e2e" | "ttft")) => Some((format!("{m}.p95"), ms)),
        (Some(_), other) => bad_input!("--metric `{other}`: expected `e2e` or `ttft`"),
    };
    let opts = crate::report::Options {
        constraints: super::budget(&a.budget, shorthand)?,
        target_rpm: Some(a.rpm),
        heatmap_rpms: Some(vec![]),
        repricing: super::repricing(&a.reprice)?,
        chart_samples: false,
    };
    let r = crate::report::build(&a.bundles, opts)?;
    let target = r.target.as_ref().expect("a target rate was given");
    let chosen: Vec<&WorkloadAnalysis> = if a.prompt.is_some() || a.output.is_some() {
        let distance = |w: &&WorkloadAnalysis| {
            let (p, o) = r.mean_tokens(&w.workload);
            let d = |want: Option<f64>, got: Option<f64>| match (want, got) {
                (Some(w), Some(g)) if w > 0.0 => (g - w).abs() / w,
                (Some(_), None) => f64::INFINITY,
                _ => 0.0,
            };
            d(a.prompt, p) + d(a.output, o)
        };
        target
            .workloads
            .iter()
            .min_by(|x, y| distance(x).total_cmp(&distance(y)))
            .into_iter()
            .collect()
    } else {
        target.workloads.iter().collect()
    };

    let mut answered = true;
    for w in chosen {
        answered &= print_workload(&r, w, a.rpm);
    }
    println!("Prices: {}.", r.pricing.label);
    if r.simulated {
        println!("SIMULATED: these bundles come from the embedded simulator; the figures are modelled, not measured on real hardware.");
    }
    Ok(ExitCode::from(if answered {
        exit::SUCCESS
    } else {
        exit::FINDING
    }))
}

/// Prints one workload's plan; false when nothing serves the rate.
fn print_workload(r: &Report, w: &WorkloadAnalysis, rpm: f64) -> bool {
    let (p, o) = r.mean_tokens(&w.workload);
    println!(
        "Workload: {rpm} req/min ({:.2} req/s), {}; measured on dataset {} [{}] (prompt ~{:.0}, output ~{:.0} tokens)",
        rpm / 60.0,
        crate::report::charts::budget_text(r),
        w.dataset,
        w.bucket,
        p.unwrap_or(0.0),
        o.unwrap_or(0.0),
    );
    println!(
        "{:<16} {:>14} {:>10} {:>10} {:>12} {:>10}  notes",
        "instance type", "req/s/instance", "instances", "$/hour", "$/request", "$/1k req"
    );
    let fmt =
        |x: Option<f64>, p: usize| x.map(|v| format!("{v:.p$}")).unwrap_or_else(|| "-".into());
    for (c, cap) in w.heatmap.iter().zip(&w.capacity) {
        let mut n = cap.notes();
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
            fmt(cap.capacity.as_ref().map(|c| c.per_instance_rps), 2),
            c.instances
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
            fmt(c.usd_per_hour, 2),
            fmt(c.usd_per_request, 6),
            fmt(c.usd_per_request.map(|r| r * 1000.0), 3),
            n.join("; ")
        );
    }
    match w.heatmap.iter().find(|c| c.best_choice) {
        Some(b) => {
            println!(
                "Answer: {} x {} at ${:.2}/hour = ${:.6} per request (${:.3} per 1,000) for {rpm} req/min within {}.\n",
                b.instances.unwrap_or(0),
                b.instance_type,
                b.usd_per_hour.unwrap_or(0.0),
                b.usd_per_request.unwrap_or(0.0),
                b.usd_per_request.unwrap_or(0.0) * 1000.0,
                crate::report::charts::budget_text(r),
            );
            true
        }
        None => {
            println!("Answer: no measured instance type with a known price serves {rpm} req/min within the budget.\n");
            false
        }
    }
}
