//! `harness report BUNDLE... --format md,json --out DIR`: parse the arguments,
//! build the view model, render each format and the charts, write them.

use crate::bad_input;
use crate::cli::ReportArgs;
use crate::report::{self, charts};
use anyhow::{Context, Result};
use harness_core::capacity::rpm_range;
use std::process::ExitCode;

fn parse_range(s: &str) -> Result<(f64, f64)> {
    let parsed = s
        .split_once("..")
        .and_then(|(a, b)| Some((a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?)));
    match parsed {
        Some((lo, hi)) if lo > 0.0 && hi >= lo && hi.is_finite() => Ok((lo, hi)),
        _ => bad_input!("--rpm-range `{s}`: expected LO..HI with 0 < LO <= HI, e.g. 60..6000"),
    }
}

pub fn run(a: ReportArgs) -> Result<ExitCode> {
    let mut exporters = vec![];
    for f in a.format.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        match report::exporter(f) {
            Some(e) => exporters.push(e),
            None => bad_input!(
                "--format `{f}`: expected a comma-separated list of {}",
                report::FORMATS.join(", ")
            ),
        }
    }
    if let Some(r) = a.rpm {
        if !(r > 0.0 && r.is_finite()) {
            bad_input!("--rpm {r}: expected a number of requests per minute > 0");
        }
    }
    if a.rpm_steps == 0 || a.rpm_steps > 50 {
        bad_input!("--rpm-steps {}: expected 1 to 50", a.rpm_steps);
    }
    let heatmap_rpms = match &a.rpm_range {
        Some(s) => {
            let (lo, hi) = parse_range(s)?;
            Some(rpm_range(lo, hi, a.rpm_steps))
        }
        None => None,
    };
    let opts = crate::report::Options {
        constraints: super::budget(&a.budget, None)?,
        target_rpm: a.rpm,
        heatmap_rpms,
        repricing: super::repricing(&a.reprice)?,
        chart_samples: true,
    };
    let r = crate::report::build(&a.bundles, opts)?;
    let mut charts = charts::charts(&r);
    charts.extend(harness_view::commands::charts(&r.commands));
    std::fs::create_dir_all(a.out.join("charts"))
        .with_context(|| format!("cannot create {}", a.out.join("charts").display()))?;
    for c in &charts {
        let p = a.out.join(&c.file);
        std::fs::write(&p, &c.svg).with_context(|| format!("cannot write {}", p.display()))?;
    }
    for e in &exporters {
        let p = a.out.join(e.file_name());
        std::fs::write(&p, e.render(&r, &charts)?)
            .with_context(|| format!("cannot write {}", p.display()))?;
        println!("wrote {}", p.display());
    }
    println!(
        "wrote {} charts under {}",
        charts.len(),
        a.out.join("charts").display()
    );
    Ok(ExitCode::SUCCESS)
}
