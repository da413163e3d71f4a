//! The price book: `configs/pricing.yml` (or the user's file) plus overrides.
//! A missing price is reported, and costs are then null, never zero.

use crate::config::yaml::{self, Origin, Path};
use anyhow::{bail, Result};
use harness_core::cost::TokenPrice;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceEntry {
    #[serde(rename = "type")]
    pub instance_type: String,
    pub region: String,
    /// $/hour, on demand.
    pub on_demand: f64,
    pub spot: Option<f64>,
    pub savings_plan_1y: Option<f64>,
    pub savings_plan_3y: Option<f64>,
    pub source: String,
    pub as_of: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub model: String,
    pub region: String,
    pub input_per_1m: f64,
    pub output_per_1m: f64,
    pub source: String,
    pub as_of: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PriceBook {
    #[serde(default)]
    pub instances: Vec<InstanceEntry>,
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
}

impl PriceBook {
    pub fn load(path: &std::path::Path) -> Result<PriceBook> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{file}: cannot read the pricing file: {e}"))?;
        let (value, pos) = yaml::parse(&text).map_err(|e| {
            anyhow::anyhow!("{file}:{}:{}: invalid YAML: {}", e.line, e.col, e.message)
        })?;
        let book: PriceBook = match serde_path_to_error::deserialize(&value) {
            Ok(b) => b,
            Err(e) => {
                let path = Path(
                    e.path()
                        .iter()
                        .filter_map(|s| match s {
                            serde_path_to_error::Segment::Seq { index } => {
                                Some(yaml::Seg::Index(*index))
                            }
                            serde_path_to_error::Segment::Map { key } => {
                                Some(yaml::Seg::Key(key.clone()))
                            }
                            _ => None,
                        })
                        .collect(),
                );
                let at = match pos.value_or_ancestor(&path) {
                    Some((Origin::File { line, col }, _)) => format!("{file}:{line}:{col}"),
                    _ => file,
                };
                bail!("{at}: {path}: {}", e.into_inner());
            }
        };
        for (i, e) in book.instances.iter().enumerate() {
            if !(e.on_demand.is_finite() && e.on_demand >= 0.0) {
                bail!(
                    "{file}: instances[{i}].on_demand: {} is not a price in $/hour",
                    e.on_demand
                );
            }
        }
        Ok(book)
    }

    /// On-demand $/hour for `instance_type` in `region`; `overrides` win.
    pub fn hourly(
        &self,
        instance_type: &str,
        region: &str,
        overrides: &BTreeMap<String, f64>,
    ) -> Option<f64> {
        overrides.get(instance_type).copied().or_else(|| {
            self.instances
                .iter()
                .find(|e| e.instance_type == instance_type && e.region == region)
                .map(|e| e.on_demand)
        })
    }

    /// $ per 1M input and output tokens for `model` in `region`; `overrides` win.
    pub fn tokens(
        &self,
        model: &str,
        region: &str,
        overrides: &BTreeMap<String, TokenPrice>,
    ) -> Option<TokenPrice> {
        overrides.get(model).copied().or_else(|| {
            self.tokens
                .iter()
                .find(|e| e.model == model && e.region == region)
                .map(|e| TokenPrice {
                    input_per_1m: e.input_per_1m,
                    output_per_1m: e.output_per_1m,
                })
        })
    }

    pub fn source_of(&self, instance_type: &str, region: &str) -> Option<String> {
        self.instances
            .iter()
            .find(|e| e.instance_type == instance_type && e.region == region)
            .map(|e| format!("{} ({})", e.source, e.as_of))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_price_book_loads_and_looks_up() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/pricing.yml");
        let b = PriceBook::load(&p).unwrap();
        assert_eq!(
            b.hourly("g5.xlarge", "us-east-1", &BTreeMap::new()),
            Some(1.006)
        );
        assert_eq!(b.hourly("g5.xlarge", "eu-west-1", &BTreeMap::new()), None);
        let o = BTreeMap::from([("g5.xlarge".to_string(), 0.5)]);
        assert_eq!(b.hourly("g5.xlarge", "us-east-1", &o), Some(0.5));
        assert!(b
            .tokens("amazon.nova-micro-v1:0", "us-east-1", &BTreeMap::new())
            .is_some());
        for t in [
            "g5.xlarge",
            "g5.2xlarge",
            "g6e.2xlarge",
            "p4d.24xlarge",
            "p5.48xlarge",
            "inf2.xlarge",
            "g6.xlarge",
        ] {
            assert!(b.source_of(t, "us-east-1").is_some(), "{t}");
        }
    }

    #[test]
    fn bad_entry_names_file_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.yml");
        std::fs::write(&p, "instances:\n  - type: g5.xlarge\n    region: us-east-1\n    on_demand: cheap\n    source: x\n    as_of: y\n").unwrap();
        let e = PriceBook::load(&p).unwrap_err().to_string();
        assert!(e.contains("p.yml:4:16: instances[0].on_demand:"), "{e}");
    }
}
