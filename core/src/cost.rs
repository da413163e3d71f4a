//! Cost formulas, and the one price record an experiment is costed with.
//! Every figure honours the number of instances behind an endpoint, and a
//! missing price gives `None` (never zero, never a placeholder).
//!
//! For an endpoint of `n` instances at `p` $/hour each, measured over a window
//! of `w` seconds in which `k` requests succeeded and produced `t` output tokens:
//! - $/hour                = n · p
//! - window cost           = n · p · w / 3600
//! - $/request             = window cost / k      (= n · p / (3600 · throughput))
//! - $/10k requests        = 10,000 · $/request
//! - $/1M output tokens    = 1,000,000 · window cost / t
//! - cost of the run       = n · p · (wall time of the experiment) / 3600
//!
//! Token-priced endpoints (Bedrock): with `P` prompt and `T` output tokens of
//! the `k` successful measured requests (server usage, else the client's
//! count) at `i` and `o` $ per 1M tokens:
//! - $/request             = (P · i + T · o) / 1M / k
//! - $/1M output tokens    = (P · i + T · o) / T
//! - cost of the run       = the same sum over every request sent (warm-up and
//!   failures included)
//!
//! [`costs`] is the one entry point: the run prices each experiment with it,
//! and `plan` and `report` call it again, with the inputs stored in the
//! bundle, when asked to reprice with another price book.

use serde::{Deserialize, Serialize};

/// What an experiment's cost depends on, besides the price. Stored per
/// experiment in the bundle so that it can be priced again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CostInputs {
    /// Instances behind the endpoint (≥ 1).
    pub instance_count: u32,
    /// Measurement window, seconds.
    pub window_s: f64,
    /// Successful measured requests.
    pub requests_ok: u64,
    /// Prompt and output tokens of the successful measured requests.
    pub prompt_tokens: u64,
    pub output_tokens: u64,
    /// Prompt and output tokens of every request sent (warm-up and failures too).
    pub prompt_tokens_all: u64,
    pub output_tokens_all: u64,
    /// Wall time of the whole experiment (warm-up and drain included), seconds.
    pub run_s: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CostFigures {
    pub usd_per_hour: Option<f64>,
    pub usd_per_request: Option<f64>,
    pub usd_per_10k_requests: Option<f64>,
    pub usd_per_1m_output_tokens: Option<f64>,
    pub usd_run: Option<f64>,
}

/// Token-priced endpoints: $/1M input and output tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TokenPrice {
    pub input_per_1m: f64,
    pub output_per_1m: f64,
}

/// How a price is charged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceMode {
    /// On-demand instance hours.
    #[default]
    OnDemand,
    /// Spot instance hours.
    Spot,
    /// Per token (no instance).
    Token,
}

impl PriceMode {
    pub const NAMES: [&'static str; 3] = ["on_demand", "spot", "token"];
    pub fn as_str(self) -> &'static str {
        match self {
            PriceMode::OnDemand => "on_demand",
            PriceMode::Spot => "spot",
            PriceMode::Token => "token",
        }
    }
    pub fn parse(s: &str) -> Option<PriceMode> {
        match s {
            "on_demand" => Some(PriceMode::OnDemand),
            "spot" => Some(PriceMode::Spot),
            "token" => Some(PriceMode::Token),
            _ => None,
        }
    }
}

/// A unit price: $ per instance-hour, or $ per 1M tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rate {
    /// $/hour of one instance.
    InstanceHour(f64),
    Tokens(TokenPrice),
}

/// The price an experiment was costed with, and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitPrice {
    pub rate: Rate,
    pub mode: PriceMode,
    /// Where the number comes from: the price book's source, or the config key
    /// that overrode it.
    pub source: String,
    pub region: String,
    /// The date the price was true (the book's `as_of`, or the run's date for
    /// a config override).
    pub as_of: String,
}

impl CostInputs {
    /// The inputs of an experiment summarised as `s`, on `instance_count`
    /// instances, that took `run_s` seconds of wall time.
    pub fn from_summary(s: &crate::ExperimentSummary, instance_count: u32, run_s: f64) -> Self {
        CostInputs {
            instance_count,
            window_s: s.window_s,
            requests_ok: s.requests_ok,
            prompt_tokens: s.prompt_tokens_total,
            output_tokens: s.output_tokens_total,
            prompt_tokens_all: s.prompt_tokens_all,
            output_tokens_all: s.output_tokens_all,
            run_s,
        }
    }
}

/// An experiment's cost: the price it was costed with (`None` when no price
/// was known), what the cost depends on, and the figures. The bundle stores
/// all three; repricing keeps the inputs and changes the price.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Costed {
    pub price: Option<UnitPrice>,
    pub inputs: CostInputs,
    pub figures: CostFigures,
}

impl Costed {
    pub fn new(price: Option<UnitPrice>, inputs: CostInputs) -> Costed {
        let figures = costs(price.as_ref().map(|p| &p.rate), &inputs);
        Costed {
            price,
            inputs,
            figures,
        }
    }
}

/// Costs an experiment: instance-hour or token pricing by `rate`; all `None`
/// without a rate.
pub fn costs(rate: Option<&Rate>, c: &CostInputs) -> CostFigures {
    match rate {
        None => CostFigures::default(),
        Some(Rate::InstanceHour(p)) => instance_costs(*p, c),
        Some(Rate::Tokens(t)) => token_costs(*t, c),
    }
}

/// Instance-hour pricing at `hourly_usd` per instance (module header).
pub fn instance_costs(hourly_usd: f64, c: &CostInputs) -> CostFigures {
    let per_hour = hourly_usd * c.instance_count as f64;
    let window = per_hour * c.window_s / 3600.0;
    let per_request =
        (c.requests_ok > 0 && c.window_s > 0.0).then(|| window / c.requests_ok as f64);
    CostFigures {
        usd_per_hour: Some(per_hour),
        usd_per_request: per_request,
        usd_per_10k_requests: per_request.map(|r| r * 1e4),
        usd_per_1m_output_tokens: (c.output_tokens > 0 && c.window_s > 0.0)
            .then(|| window / c.output_tokens as f64 * 1e6),
        usd_run: Some(per_hour * c.run_s / 3600.0),
    }
}

/// Token pricing (module header).
pub fn token_costs(p: TokenPrice, c: &CostInputs) -> CostFigures {
    let usd = |prompt: u64, output: u64| {
        (prompt as f64 * p.input_per_1m + output as f64 * p.output_per_1m) / 1e6
    };
    let total = usd(c.prompt_tokens, c.output_tokens);
    let per_request = (c.requests_ok > 0).then(|| total / c.requests_ok as f64);
    CostFigures {
        usd_per_hour: None,
        usd_per_request: per_request,
        usd_per_10k_requests: per_request.map(|r| r * 1e4),
        usd_per_1m_output_tokens: (c.output_tokens > 0)
            .then(|| total / c.output_tokens as f64 * 1e6),
        usd_run: Some(usd(c.prompt_tokens_all, c.output_tokens_all)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12 * b.abs().max(1.0))
    }

    fn inputs(n: u32, window_s: f64, ok: u64, out: u64, run_s: f64) -> CostInputs {
        CostInputs {
            instance_count: n,
            window_s,
            requests_ok: ok,
            output_tokens: out,
            run_s,
            ..Default::default()
        }
    }

    #[test]
    fn hand_computed_single_instance() {
        // $1.006/h, 100 requests in 60 s, 6,400 output tokens, 75 s of wall time.
        let c = instance_costs(1.006, &inputs(1, 60.0, 100, 6400, 75.0));
        // window cost = 1.006 * 60 / 3600 = 0.016766..., per request = 0.00016766...
        assert!(close(c.usd_per_hour, 1.006));
        assert!(close(c.usd_per_request, 1.006 * 60.0 / 3600.0 / 100.0));
        assert!(close(
            c.usd_per_10k_requests,
            1.006 * 60.0 / 3600.0 / 100.0 * 1e4
        ));
        assert!(close(
            c.usd_per_1m_output_tokens,
            1.006 * 60.0 / 3600.0 / 6400.0 * 1e6
        ));
        assert!(close(c.usd_run, 1.006 * 75.0 / 3600.0));
    }

    #[test]
    fn instance_count_multiplies_cost() {
        let one = inputs(1, 3600.0, 1000, 1, 3600.0);
        let three = CostInputs {
            instance_count: 3,
            ..one.clone()
        };
        let (a, b) = (instance_costs(2.0, &one), instance_costs(2.0, &three));
        assert!(close(b.usd_per_hour, 6.0));
        assert!(close(b.usd_per_request, 3.0 * a.usd_per_request.unwrap()));
        assert!(close(a.usd_per_request, 0.002));
    }

    #[test]
    fn missing_price_is_none_not_zero() {
        assert_eq!(
            costs(None, &inputs(1, 10.0, 5, 5, 10.0)),
            CostFigures::default()
        );
    }

    #[test]
    fn no_successful_requests_has_no_per_request_cost() {
        let c = instance_costs(1.0, &inputs(1, 10.0, 0, 0, 10.0));
        assert_eq!(c.usd_per_request, None);
        assert!(c.usd_run.is_some());
    }

    #[test]
    fn token_priced() {
        // 2M prompt tokens at $0.22/1M and 1M output tokens at $0.22/1M over
        // 1,000 requests; the run also sent 1M more prompt tokens (warm-up).
        let p = TokenPrice {
            input_per_1m: 0.22,
            output_per_1m: 0.22,
        };
        let c = costs(
            Some(&Rate::Tokens(p)),
            &CostInputs {
                requests_ok: 1000,
                prompt_tokens: 2_000_000,
                output_tokens: 1_000_000,
                prompt_tokens_all: 3_000_000,
                output_tokens_all: 1_000_000,
                ..Default::default()
            },
        );
        assert!(close(c.usd_per_request, 0.00066));
        assert!(close(c.usd_per_1m_output_tokens, 0.66));
        assert!(close(c.usd_run, 0.88));
        assert_eq!(c.usd_per_hour, None);
    }

    #[test]
    fn price_modes_round_trip() {
        for n in PriceMode::NAMES {
            assert_eq!(PriceMode::parse(n).unwrap().as_str(), n);
        }
    }
}
