//! The price book: `configs/pricing.yml` (or the user's file) plus overrides.
//! [`PriceBook::price`] is the one lookup: it returns the unit price an
//! experiment is costed with, with its source, region, mode and date, which the
//! bundle records. A missing price is reported, and costs are then null, never
//! zero.

use crate::config::yaml::{self, Origin, Path};
use anyhow::Result;
use harness_core::cost::{PriceMode, Rate, TokenPrice, UnitPrice};
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
    /// Loads and checks a pricing file. Every error is bad input (exit 2) and
    /// names the file, line and field.
    pub fn load(path: &std::path::Path) -> Result<PriceBook> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            crate::exit::bad_input(format!("{file}: cannot read the pricing file: {e}"))
        })?;
        let (value, pos) = yaml::parse(&text).map_err(|e| {
            crate::exit::bad_input(format!(
                "{file}:{}:{}: invalid YAML: {}",
                e.line, e.col, e.message
            ))
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
                crate::bad_input!("{at}: {path}: {}", e.into_inner());
            }
        };
        for (i, e) in book.instances.iter().enumerate() {
            if !(e.on_demand.is_finite() && e.on_demand >= 0.0) {
                crate::bad_input!(
                    "{file}: instances[{i}].on_demand: {} is not a price in $/hour",
                    e.on_demand
                );
            }
        }
        Ok(book)
    }

    /// The unit price of an endpoint: with an instance type, $/hour of one
    /// instance in `q.mode` (on demand or spot); without one, $ per 1M tokens
    /// of its model. `q`'s overrides win over the book. `None` when neither
    /// knows a price.
    pub fn price(&self, instance_type: Option<&str>, model: &str, q: &Query) -> Option<UnitPrice> {
        let unit = |rate, mode, source: String, as_of: &str| UnitPrice {
            rate,
            mode,
            source,
            region: q.region.clone(),
            as_of: as_of.to_string(),
        };
        match instance_type {
            Some(t) => {
                if let Some(p) = q.instance_hourly.get(t) {
                    let source = format!("{} pricing.instance_hourly.{t}", q.override_source);
                    return Some(unit(
                        Rate::InstanceHour(*p),
                        q.mode,
                        source,
                        &q.override_as_of,
                    ));
                }
                let e = self
                    .instances
                    .iter()
                    .find(|e| e.instance_type == t && e.region == q.region)?;
                let p = match q.mode {
                    PriceMode::Spot => e.spot?,
                    _ => e.on_demand,
                };
                Some(unit(
                    Rate::InstanceHour(p),
                    q.mode,
                    e.source.clone(),
                    &e.as_of,
                ))
            }
            None => {
                if let Some(p) = q.token_prices.get(model) {
                    let source = format!("{} pricing.token_prices.{model}", q.override_source);
                    return Some(unit(
                        Rate::Tokens(*p),
                        PriceMode::Token,
                        source,
                        &q.override_as_of,
                    ));
                }
                // A cross-region inference profile (`us.…`, `eu.…`, …) is
                // priced as its model.
                let base = bedrock_model_of_profile(model);
                let e = self
                    .tokens
                    .iter()
                    .find(|e| e.model == model && e.region == q.region)
                    .or_else(|| {
                        self.tokens
                            .iter()
                            .find(|e| e.model == base && e.region == q.region)
                    })?;
                let rate = Rate::Tokens(TokenPrice {
                    input_per_1m: e.input_per_1m,
                    output_per_1m: e.output_per_1m,
                });
                Some(unit(rate, PriceMode::Token, e.source.clone(), &e.as_of))
            }
        }
    }
}

/// The model id of a Bedrock cross-region inference profile id
/// (`us.meta.llama3-1-8b-instruct-v1:0` → `meta.llama3-1-8b-instruct-v1:0`);
/// any other id as it is.
pub fn bedrock_model_of_profile(id: &str) -> &str {
    const GEOS: [&str; 8] = [
        "us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca.",
    ];
    GEOS.iter()
        .find_map(|g| id.strip_prefix(g))
        .filter(|rest| rest.contains('.'))
        .unwrap_or(id)
}

/// What to look up: region, mode, and the overrides that win over the book.
#[derive(Debug, Clone)]
pub struct Query {
    pub region: String,
    /// `OnDemand` or `Spot` for instances (token prices have their own mode).
    pub mode: PriceMode,
    pub instance_hourly: BTreeMap<String, f64>,
    pub token_prices: BTreeMap<String, TokenPrice>,
    /// Names where overrides come from, e.g. `config (configs/local.yml)`.
    pub override_source: String,
    /// The date recorded for an overridden price (the run's date).
    pub override_as_of: String,
}

impl Query {
    /// A query without overrides.
    pub fn plain(region: &str, mode: PriceMode) -> Query {
        Query {
            region: region.to_string(),
            mode,
            instance_hourly: BTreeMap::new(),
            token_prices: BTreeMap::new(),
            override_source: String::new(),
            override_as_of: String::new(),
        }
    }
}

/// A price book with the query one command prices with: the run (the
/// config's file, region, mode and overrides) or `--reprice` (another book).
/// Warns once per missing price.
#[derive(Debug, Clone)]
pub struct Pricer {
    pub book: PriceBook,
    pub query: Query,
    /// Where the book came from: its file, or `no pricing file configured`.
    pub from: String,
    warned: std::collections::BTreeSet<String>,
}

impl Pricer {
    pub fn new(book: PriceBook, query: Query, from: String) -> Pricer {
        Pricer {
            book,
            query,
            from,
            warned: Default::default(),
        }
    }

    /// The run's pricer: the config's price book (an empty one when none is
    /// set; bad input when it cannot be read) with the config's overrides,
    /// recorded as from `config_file` on `today`.
    pub fn for_run(p: &crate::config::Pricing, config_file: &str, today: &str) -> Result<Pricer> {
        let book = match &p.file {
            Some(f) => PriceBook::load(std::path::Path::new(f))?,
            None => PriceBook::default(),
        };
        let query = Query {
            region: p.region.clone().unwrap_or_else(|| "us-east-1".into()),
            mode: p.mode,
            instance_hourly: p.instance_hourly.clone(),
            token_prices: p.token_prices.clone(),
            override_source: format!("config {config_file}:"),
            override_as_of: today.to_string(),
        };
        let from = p
            .file
            .clone()
            .unwrap_or_else(|| "no pricing file configured".into());
        Ok(Pricer::new(book, query, from))
    }

    /// The unit price of an endpoint ([`PriceBook::price`]), or `None`. A
    /// missing price is warned about (once per instance type or model) when
    /// one was `expected`: an endpoint with neither an instance type nor a
    /// token price (a local server, the default simulator) simply has no cost.
    pub fn price(
        &mut self,
        instance_type: Option<&str>,
        model: &str,
        expected: bool,
    ) -> Option<UnitPrice> {
        let found = self.book.price(instance_type, model, &self.query);
        if found.is_none() && expected {
            let what = match instance_type {
                Some(t) => format!("{t} ({})", self.query.mode.as_str()),
                None => format!("model {model} (per token)"),
            };
            if self.warned.insert(what.clone()) {
                eprintln!(
                    "warning: no price for {what} in {} ({}): its cost columns are empty",
                    self.query.region, self.from
                );
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inference_profile_is_priced_as_its_model() {
        assert_eq!(
            bedrock_model_of_profile("us.meta.llama3-1-8b-instruct-v1:0"),
            "meta.llama3-1-8b-instruct-v1:0"
        );
        assert_eq!(
            bedrock_model_of_profile("meta.llama3-1-8b-instruct-v1:0"),
            "meta.llama3-1-8b-instruct-v1:0"
        );
        assert_eq!(bedrock_model_of_profile("us.x"), "us.x");
    }

    fn hourly(b: &PriceBook, t: &str, q: &Query) -> Option<f64> {
        match b.price(Some(t), "m", q)?.rate {
            Rate::InstanceHour(p) => Some(p),
            Rate::Tokens(_) => None,
        }
    }

    #[test]
    fn shipped_price_book_loads_and_looks_up() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/pricing.yml");
        let b = PriceBook::load(&p).unwrap();
        let q = Query::plain("us-east-1", PriceMode::OnDemand);
        assert_eq!(hourly(&b, "g5.xlarge", &q), Some(1.006));
        let found = b.price(Some("g5.xlarge"), "m", &q).unwrap();
        assert_eq!(
            (found.mode, found.region.as_str()),
            (PriceMode::OnDemand, "us-east-1")
        );
        assert!(!found.source.is_empty() && !found.as_of.is_empty());
        assert_eq!(
            hourly(
                &b,
                "g5.xlarge",
                &Query::plain("eu-west-1", PriceMode::OnDemand)
            ),
            None
        );
        let mut o = q.clone();
        o.instance_hourly.insert("g5.xlarge".into(), 0.5);
        o.override_source = "config".into();
        o.override_as_of = "2026-11-30".into();
        let over = b.price(Some("g5.xlarge"), "m", &o).unwrap();
        assert_eq!(over.rate, Rate::InstanceHour(0.5));
        assert_eq!(
            (over.source.as_str(), over.as_of.as_str()),
            ("config pricing.instance_hourly.g5.xlarge", "2026-11-30")
        );
        let tok = b.price(None, "amazon.nova-micro-v1:0", &q).unwrap();
        assert_eq!(tok.mode, PriceMode::Token);
        let spot = Query::plain("us-east-1", PriceMode::Spot);
        let on_demand = hourly(&b, "g5.xlarge", &q).unwrap();
        if let Some(s) = hourly(&b, "g5.xlarge", &spot) {
            assert!(s < on_demand, "spot is cheaper");
        }
        for t in [
            "g5.xlarge",
            "g5.2xlarge",
            "g6e.2xlarge",
            "p4d.24xlarge",
            "p5.48xlarge",
            "inf2.xlarge",
            "g6.xlarge",
        ] {
            assert!(b.price(Some(t), "m", &q).is_some(), "{t}");
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
