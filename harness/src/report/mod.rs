//! Rendering results for people. `table` is the terminal summary of `run` and
//! `show`; `harness report` builds one view model ([`model::Report`], shared
//! with the viewer through `harness-view`) and hands it to an [`Exporter`] per
//! format, with the SVG [`charts`] beside them.

pub mod markdown;
pub mod table;

pub use harness_view::{charts, model, svg};

use crate::bundle::read;
use crate::pricing::Pricer;
use anyhow::Result;
use charts::Chart;
use harness_core::cost::{Costed, PriceMode};
use harness_core::recommend::Constraints;
use harness_core::Metric;
use model::{BundleRows, Report, Repricing, TtftSamples};
use std::path::PathBuf;

/// One output format of `harness report`.
pub trait Exporter {
    /// The file it writes in the output directory.
    fn file_name(&self) -> &'static str;
    fn render(&self, r: &Report, charts: &[Chart]) -> Result<String>;
}

pub struct MarkdownExporter;
pub struct JsonExporter;

impl Exporter for MarkdownExporter {
    fn file_name(&self) -> &'static str {
        "report.md"
    }
    fn render(&self, r: &Report, charts: &[Chart]) -> Result<String> {
        Ok(markdown::render(r, charts))
    }
}

impl Exporter for JsonExporter {
    fn file_name(&self) -> &'static str {
        "report.json"
    }
    fn render(&self, r: &Report, _charts: &[Chart]) -> Result<String> {
        Ok(serde_json::to_string_pretty(r)? + "\n")
    }
}

pub const FORMATS: [&str; 2] = ["md", "json"];

pub fn exporter(format: &str) -> Option<Box<dyn Exporter>> {
    match format {
        "md" | "markdown" => Some(Box::new(MarkdownExporter)),
        "json" => Some(Box::new(JsonExporter)),
        _ => None,
    }
}

/// What `report` and `plan` build the view model for.
pub struct Options {
    /// Replaces the bundles' budgets when given.
    pub constraints: Option<Constraints>,
    pub target_rpm: Option<f64>,
    pub heatmap_rpms: Option<Vec<f64>>,
    /// Pricing again with another price book (`--reprice FILE`): an
    /// explicit, labelled option of `plan` and `report`. `None`: the prices
    /// recorded in the bundles.
    pub repricing: Option<Pricer>,
    /// Read per-request TTFT samples for the distribution chart (`report`
    /// does, `plan` needs no charts).
    pub chart_samples: bool,
}

/// Reads `bundles` with native DuckDB and builds the shared view model.
///
/// Errors: a bundle that cannot be read, or none holding a complete
/// experiment (bad input, exit 2).
pub fn build(bundles: &[PathBuf], o: Options) -> Result<Report> {
    let mut rows = vec![];
    let mut conns = vec![];
    for path in bundles {
        let conn = read::open(path)?;
        rows.push(BundleRows {
            file: path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            runs: read::runs(&conn)?,
            datasets: read::datasets(&conn)?,
            experiments: read::experiments(&conn)?,
            commands: read::command_rows(&conn)?,
        });
        conns.push(conn);
    }
    let repricing = o.repricing.map(|mut p| Repricing {
        label: format!(
            "repriced from {} (region {}, {})",
            p.from,
            p.query.region,
            p.query.mode.as_str()
        ),
        price: Box::new(move |e| {
            // Expected: a type, or a model the run priced per token.
            let per_token = e
                .costed
                .price
                .as_ref()
                .is_some_and(|x| x.mode == PriceMode::Token);
            let price = p.price(
                e.instance_type.as_deref(),
                &e.model,
                e.instance_type.is_some() || per_token,
            );
            Costed::new(price, e.costed.inputs.clone())
        }),
    });
    let attainment: model::AttainmentOf = Box::new(|i, e, slo| {
        let requests = read::request_samples(&conns[i], &e.experiment_id).ok()?;
        harness_core::slo::attainment(&requests, slo)
    });
    let opts = model::Options {
        constraints: o.constraints,
        target_rpm: o.target_rpm,
        heatmap_rpms: o.heatmap_rpms,
        repricing,
        attainment: Some(attainment),
    };
    let mut r = model::build(rows, opts).map_err(crate::exit::bad_input)?;
    for (i, conn) in conns.iter().enumerate() {
        for s in read::server(conn)? {
            if let Some(experiment) = r
                .experiments
                .iter()
                .position(|e| e.bundle == i && e.measured.experiment_id == s.experiment_id)
            {
                r.server.push(model::ServerMetricsRow {
                    experiment,
                    attempts: s.attempts,
                    failures: s.failures,
                    summary: s.summary,
                });
            }
        }
    }
    r.server.sort_by_key(|s| s.experiment);
    if o.chart_samples {
        for (workload, instance_type, i) in r.ttft_wanted() {
            let e = &r.experiments[i];
            let requests = read::request_samples(&conns[e.bundle], &e.measured.experiment_id)?;
            let mut samples = harness_core::summary::metric_values(&requests, Metric::Ttft);
            samples.sort_by(f64::total_cmp);
            let name = e.measured.name.clone();
            r.ttft.push(TtftSamples {
                workload,
                instance_type,
                name,
                cdf: model::cdf_nearest_rank(&samples),
            });
        }
    }
    Ok(r)
}
