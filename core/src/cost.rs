//! Cost formulas. Every figure honours the number of instances behind an
//! endpoint, and a missing price gives `None` (never zero, never a
//! placeholder).
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
//! Token-priced endpoints (Bedrock): $/request = (prompt tokens · in + output
//! tokens · out) / 1M / k, from the server's usage counts.

use serde::{Deserialize, Serialize};

/// What an experiment's cost depends on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CostInputs {
    /// $/hour for one instance; `None` when no price is known.
    pub hourly_usd: Option<f64>,
    pub instance_count: u32,
    pub window_s: f64,
    pub requests_ok: u64,
    pub output_tokens: u64,
    /// Wall time of the whole experiment (warm-up and drain included).
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

pub fn instance_costs(c: &CostInputs) -> CostFigures {
    let Some(p) = c.hourly_usd else {
        return CostFigures::default();
    };
    let per_hour = p * c.instance_count as f64;
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

/// Token-priced endpoints: $/1M input and output tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TokenPrice {
    pub input_per_1m: f64,
    pub output_per_1m: f64,
}

pub fn token_costs(
    price: Option<TokenPrice>,
    prompt_tokens: u64,
    output_tokens: u64,
    requests_ok: u64,
) -> CostFigures {
    let Some(p) = price else {
        return CostFigures::default();
    };
    let total =
        (prompt_tokens as f64 * p.input_per_1m + output_tokens as f64 * p.output_per_1m) / 1e6;
    let per_request = (requests_ok > 0).then(|| total / requests_ok as f64);
    CostFigures {
        usd_per_hour: None,
        usd_per_request: per_request,
        usd_per_10k_requests: per_request.map(|r| r * 1e4),
        usd_per_1m_output_tokens: (output_tokens > 0).then(|| total / output_tokens as f64 * 1e6),
        usd_run: Some(total),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12 * b.abs().max(1.0))
    }

    #[test]
    fn hand_computed_single_instance() {
        // $1.006/h, 100 requests in 60 s, 6,400 output tokens, 75 s of wall time.
        let c = instance_costs(&CostInputs {
            hourly_usd: Some(1.006),
            instance_count: 1,
            window_s: 60.0,
            requests_ok: 100,
            output_tokens: 6400,
            run_s: 75.0,
        });
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
        let one = CostInputs {
            hourly_usd: Some(2.0),
            instance_count: 1,
            window_s: 3600.0,
            requests_ok: 1000,
            output_tokens: 1,
            run_s: 3600.0,
        };
        let three = CostInputs {
            instance_count: 3,
            ..one.clone()
        };
        let (a, b) = (instance_costs(&one), instance_costs(&three));
        assert!(close(b.usd_per_hour, 6.0));
        assert!(close(b.usd_per_request, 3.0 * a.usd_per_request.unwrap()));
        assert!(close(a.usd_per_request, 0.002));
    }

    #[test]
    fn missing_price_is_none_not_zero() {
        let c = instance_costs(&CostInputs {
            hourly_usd: None,
            instance_count: 1,
            window_s: 10.0,
            requests_ok: 5,
            output_tokens: 5,
            run_s: 10.0,
        });
        assert_eq!(c, CostFigures::default());
        assert_eq!(token_costs(None, 10, 10, 1), CostFigures::default());
    }

    #[test]
    fn no_successful_requests_has_no_per_request_cost() {
        let c = instance_costs(&CostInputs {
            hourly_usd: Some(1.0),
            instance_count: 1,
            window_s: 10.0,
            requests_ok: 0,
            output_tokens: 0,
            run_s: 10.0,
        });
        assert_eq!(c.usd_per_request, None);
        assert!(c.usd_run.is_some());
    }

    #[test]
    fn token_priced() {
        // 2M prompt tokens at $0.22/1M and 1M output tokens at $0.22/1M over 1,000 requests.
        let c = token_costs(
            Some(TokenPrice {
                input_per_1m: 0.22,
                output_per_1m: 0.22,
            }),
            2_000_000,
            1_000_000,
            1000,
        );
        assert!(close(c.usd_run, 0.66));
        assert!(close(c.usd_per_request, 0.00066));
        assert!(close(c.usd_per_1m_output_tokens, 0.66));
    }
}
