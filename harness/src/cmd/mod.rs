//! One module per subcommand.

pub mod agent;
pub mod datasets;
pub mod diff;
pub mod gc;
pub mod merge;
pub mod plan;
pub mod publish;
pub mod report;
pub mod run;
pub mod show;
pub mod sim;
pub mod validate;

use crate::bad_input;
use crate::cli::{BudgetArgs, ConfigArgs, RepriceArgs};
use crate::config::{self, Loaded};
use crate::plan::Experiment;
use std::process::ExitCode;

/// Parse → validate → expand, shared by every command that takes a config.
/// Bad input (config errors, unreadable datasets or tokenizers) is printed
/// here and becomes exit status 2.
pub async fn load(a: &ConfigArgs) -> Result<(Loaded, Vec<Experiment>), ExitCode> {
    let loaded = config::load_file(&a.config, &a.set).map_err(|errors| {
        eprint!("{errors}");
        ExitCode::from(crate::exit::BAD_INPUT)
    })?;
    let exps = crate::plan::expand(&loaded.config).await.map_err(|e| {
        eprintln!("error: {e:#}");
        ExitCode::from(crate::exit::BAD_INPUT)
    })?;
    Ok((loaded, exps))
}

/// The budget given on the command line, if any part of it was (`plan` and
/// `report` take the same flags; `extra` adds `plan --latency-p95`).
pub fn budget(
    a: &BudgetArgs,
    extra: Option<(String, f64)>,
) -> anyhow::Result<Option<harness_core::recommend::Constraints>> {
    use harness_core::recommend::Constraints;
    if a.latency.is_empty()
        && a.max_error_rate.is_none()
        && a.max_usd_per_request.is_none()
        && a.slo.is_none()
        && extra.is_none()
    {
        return Ok(None);
    }
    let mut slo = None;
    if let Some(text) = &a.slo {
        let mut s = harness_core::slo::Slo::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((m, v)) = part.split_once('=') else {
                bad_input!("--slo `{part}`: expected METRIC=MS, e.g. ttft=500,tpot=50,e2e=8000");
            };
            let ms: f64 = match v.trim().trim_end_matches("ms").parse() {
                Ok(x) if x > 0.0 && f64::is_finite(x) => x,
                _ => bad_input!("--slo `{part}`: `{v}` is not a positive number of ms"),
            };
            match m.trim() {
                "ttft" => s.ttft_ms = Some(ms),
                "tpot" => s.tpot_ms = Some(ms),
                "e2e" => s.e2e_ms = Some(ms),
                other => bad_input!(
                    "--slo `{part}`: `{other}` is not an SLO metric; expected ttft, tpot or e2e"
                ),
            }
        }
        if s.is_empty() {
            bad_input!("--slo `{text}`: sets no limit; expected e.g. ttft=500,tpot=50");
        }
        slo = Some(s);
    }
    if let Some(t) = a.slo_attainment {
        if !(t > 0.0 && t <= 1.0) {
            bad_input!("--slo-attainment {t}: expected a fraction within (0, 1], e.g. 0.99");
        }
    }
    let mut latency = vec![];
    for l in &a.latency {
        let Some((key, v)) = l.split_once('=') else {
            bad_input!("--latency `{l}`: expected METRIC.STAT=MS, e.g. ttft.p95=1000");
        };
        crate::report::model::check_latency_key(key.trim())
            .map_err(|e| crate::exit::bad_input(format!("--latency: {e}")))?;
        let ms: f64 = match v.trim().trim_end_matches("ms").parse() {
            Ok(x) if x > 0.0 && f64::is_finite(x) => x,
            _ => bad_input!("--latency `{l}`: `{v}` is not a positive number of ms"),
        };
        latency.push((key.trim().to_string(), ms));
    }
    if let Some((key, ms)) = extra {
        if !(ms > 0.0 && ms.is_finite()) {
            bad_input!("--latency-p95 {ms}: expected a positive number of ms");
        }
        latency.push((key, ms));
    }
    if let Some(e) = a.max_error_rate {
        if !(0.0..=1.0).contains(&e) {
            bad_input!("--max-error-rate {e}: expected a fraction within 0..=1");
        }
    }
    if let Some(c) = a.max_usd_per_request {
        if !(c > 0.0 && c.is_finite()) {
            bad_input!("--max-usd-per-request {c}: expected a positive number of dollars");
        }
    }
    Ok(Some(Constraints {
        max_error_rate: a
            .max_error_rate
            .unwrap_or(Constraints::default().max_error_rate),
        latency,
        max_usd_per_request: a.max_usd_per_request,
        slo,
        min_attainment: a.slo_attainment,
    }))
}

/// `--reprice FILE --region R --price-mode M`, loaded; `None` without `--reprice`.
pub fn repricing(a: &RepriceArgs) -> anyhow::Result<Option<crate::pricing::Pricer>> {
    let Some(file) = &a.reprice else {
        return Ok(None);
    };
    let mode = match harness_core::cost::PriceMode::parse(&a.price_mode) {
        Some(
            m @ (harness_core::cost::PriceMode::OnDemand | harness_core::cost::PriceMode::Spot),
        ) => m,
        _ => bad_input!(
            "--price-mode `{}`: expected on_demand or spot",
            a.price_mode
        ),
    };
    let book = crate::pricing::PriceBook::load(file)?;
    let regions: std::collections::BTreeSet<&str> = book
        .instances
        .iter()
        .map(|e| e.region.as_str())
        .chain(book.tokens.iter().map(|e| e.region.as_str()))
        .collect();
    if !regions.contains(a.region.as_str()) {
        bad_input!(
            "--region {}: {} has no price in that region; it has {}",
            a.region,
            file.display(),
            regions.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(Some(crate::pricing::Pricer::new(
        book,
        crate::pricing::Query::plain(&a.region, mode),
        file.display().to_string(),
    )))
}
