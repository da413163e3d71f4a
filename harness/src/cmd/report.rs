//! `harness report BUNDLE... --format md,json --out DIR`: parse the arguments,
//! build the view model, render each format and the charts, write them.

use crate::cli::ReportArgs;
use crate::report::{self, charts, model};
use anyhow::{bail, Context, Result};
use harness_core::capacity::rpm_range;
use harness_core::recommend::Constraints;
use std::process::ExitCode;

fn parse_range(s: &str) -> Result<(f64, f64)> {
    let parsed = s
        .split_once("..")
        .and_then(|(a, b)| Some((a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?)));
    match parsed {
        Some((lo, hi)) if lo > 0.0 && hi >= lo && hi.is_finite() => Ok((lo, hi)),
        _ => bail!("--rpm-range `{s}`: expected LO..HI with 0 < LO <= HI, e.g. 60..6000"),
    }
}

/// The budget given on the command line, if any part of it was.
fn constraints(a: &ReportArgs) -> Result<Option<Constraints>> {
    if a.latency.is_empty() && a.max_error_rate.is_none() && a.max_usd_per_request.is_none() {
        return Ok(None);
    }
    let mut latency = vec![];
    for l in &a.latency {
        let Some((key, v)) = l.split_once('=') else {
            bail!("--latency `{l}`: expected METRIC.STAT=MS, e.g. ttft.p95=1000");
        };
        model::check_latency_key(key.trim()).map_err(|e| anyhow::anyhow!("--latency: {e}"))?;
        let ms: f64 = v
            .trim()
            .trim_end_matches("ms")
            .parse()
            .ok()
            .filter(|x: &f64| *x > 0.0 && x.is_finite())
            .with_context(|| format!("--latency `{l}`: `{v}` is not a positive number of ms"))?;
        latency.push((key.trim().to_string(), ms));
    }
    if let Some(e) = a.max_error_rate {
        if !(0.0..=1.0).contains(&e) {
            bail!("--max-error-rate {e}: expected a fraction within 0..=1");
        }
    }
    Ok(Some(Constraints {
        max_error_rate: a
            .max_error_rate
            .unwrap_or(Constraints::default().max_error_rate),
        latency,
        max_usd_per_request: a.max_usd_per_request,
    }))
}

pub fn run(a: ReportArgs) -> Result<ExitCode> {
    let mut exporters = vec![];
    for f in a.format.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        match report::exporter(f) {
            Some(e) => exporters.push(e),
            None => bail!(
                "--format `{f}`: expected a comma-separated list of {}",
                report::FORMATS.join(", ")
            ),
        }
    }
    if let Some(r) = a.rpm {
        if !(r > 0.0 && r.is_finite()) {
            bail!("--rpm {r}: expected a number of requests per minute > 0");
        }
    }
    if a.rpm_steps == 0 || a.rpm_steps > 50 {
        bail!("--rpm-steps {}: expected 1 to 50", a.rpm_steps);
    }
    let heatmap_rpms = match &a.rpm_range {
        Some(s) => {
            let (lo, hi) = parse_range(s)?;
            Some(rpm_range(lo, hi, a.rpm_steps))
        }
        None => None,
    };
    let opts = model::Options {
        constraints: constraints(&a)?,
        target_rpm: a.rpm,
        heatmap_rpms,
    };
    let r = model::build(&a.bundles, &opts)?;
    let charts = charts::charts(&r);
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
