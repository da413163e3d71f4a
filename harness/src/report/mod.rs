//! Rendering results for people. `table` is the terminal summary of `run` and
//! `show`; `harness report` builds one view model ([`model::Report`]) and hands
//! it to an [`Exporter`] per format, with the SVG [`charts`] beside them.

pub mod charts;
pub mod markdown;
pub mod model;
pub mod svg;
pub mod table;

use anyhow::Result;
use charts::Chart;
use model::Report;

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
