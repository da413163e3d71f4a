//! The recommendation rule, as a pure function with deterministic ties.
//!
//! 1. Filter: error rate ≤ E, every chosen latency statistic ≤ its limit
//!    (default: TTFT p95 and e2e p95), and $/request ≤ C when C is given.
//!    Each rejected configuration lists every constraint it failed.
//! 2. Among those that pass, per (instance type, dataset bucket), choose the
//!    highest sustained throughput (successful requests per second).
//! 3. Ties (equal throughput) go to the lower $/request (a known cost beats an
//!    unknown one), then the lower value of the first latency constraint, then
//!    the name.
//!
//! The Pareto front of cost against throughput holds the passing
//! configurations with a known cost that no other passing configuration beats
//! on both (higher or equal throughput at lower or equal $/request, one strictly).

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Unique name, e.g. the experiment label.
    pub name: String,
    pub instance_type: String,
    pub bucket: String,
    /// Successful requests per second.
    pub throughput: f64,
    pub error_rate: f64,
    /// Latency statistics in ms, keyed like `ttft.p95`, `e2e.p95`.
    pub latency: BTreeMap<String, f64>,
    pub usd_per_request: Option<f64>,
    /// False when the endpoint's responses were not streamed: then TTFT, ITL
    /// and TPOT were not measured, and a limit on them fails with that reason.
    pub streamed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Constraints {
    pub max_error_rate: f64,
    /// (`metric.stat`, limit in ms), e.g. `("e2e.p95", 5000.0)`.
    pub latency: Vec<(String, f64)>,
    pub max_usd_per_request: Option<f64>,
}

impl Default for Constraints {
    fn default() -> Self {
        Constraints {
            max_error_rate: 0.01,
            latency: vec![],
            max_usd_per_request: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    pub name: String,
    /// Every constraint it failed, e.g. `e2e.p95 6120.0 ms > 5000.0 ms`.
    pub failed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub instance_type: String,
    pub bucket: String,
    /// The chosen candidate's name; `None` when nothing passed.
    pub chosen: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub choices: Vec<Choice>,
    pub rejected: Vec<Rejection>,
    /// Names on the Pareto front, by increasing throughput.
    pub pareto: Vec<String>,
}

/// The constraints a candidate fails (empty when it passes).
pub fn failures(c: &Candidate, k: &Constraints) -> Vec<String> {
    let mut f = vec![];
    if c.error_rate > k.max_error_rate {
        f.push(format!(
            "error rate {:.2}% > {:.2}%",
            c.error_rate * 100.0,
            k.max_error_rate * 100.0
        ));
    }
    for (metric, limit) in &k.latency {
        match c.latency.get(metric) {
            Some(v) if v > limit => f.push(format!("{metric} {v:.1} ms > {limit:.1} ms")),
            Some(_) => {}
            None => f.push(not_measured(metric, c.streamed)),
        }
    }
    if let Some(max) = k.max_usd_per_request {
        match c.usd_per_request {
            Some(v) if v > max => f.push(format!("${v:.6}/request > ${max:.6}")),
            Some(_) => {}
            None => f.push("no price, so $/request is unknown".into()),
        }
    }
    f
}

/// The failed criterion for a limit on a statistic that has no samples: never
/// a pass. `key` is `metric.stat`.
pub fn not_measured(key: &str, streamed: bool) -> String {
    let metric = key.split('.').next().and_then(crate::Metric::from_id);
    if !streamed && metric.is_some_and(|m| m.needs_stream()) {
        format!("{key} not measured: the endpoint does not stream")
    } else {
        format!("{key} not measured: no request gave a sample")
    }
}

fn better(a: &Candidate, b: &Candidate, k: &Constraints) -> Ordering {
    // Ordering::Less = `a` is preferred.
    b.throughput
        .partial_cmp(&a.throughput)
        .unwrap_or(Ordering::Equal)
        .then_with(|| match (a.usd_per_request, b.usd_per_request) {
            (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
        .then_with(|| {
            let key = k
                .latency
                .first()
                .map(|(m, _)| m.as_str())
                .unwrap_or("e2e.p95");
            let (x, y) = (a.latency.get(key).copied(), b.latency.get(key).copied());
            x.unwrap_or(f64::INFINITY)
                .partial_cmp(&y.unwrap_or(f64::INFINITY))
                .unwrap_or(Ordering::Equal)
        })
        .then_with(|| a.name.cmp(&b.name))
}

pub fn recommend(cands: &[Candidate], k: &Constraints) -> Recommendation {
    let mut groups: BTreeMap<(String, String), Vec<&Candidate>> = BTreeMap::new();
    let mut rejected = vec![];
    let mut passing = vec![];
    for c in cands {
        groups
            .entry((c.instance_type.clone(), c.bucket.clone()))
            .or_default();
        let f = failures(c, k);
        if f.is_empty() {
            groups
                .get_mut(&(c.instance_type.clone(), c.bucket.clone()))
                .expect("inserted")
                .push(c);
            passing.push(c);
        } else {
            rejected.push(Rejection {
                name: c.name.clone(),
                failed: f,
            });
        }
    }
    let choices = groups
        .into_iter()
        .map(|((instance_type, bucket), mut v)| {
            v.sort_by(|a, b| better(a, b, k));
            Choice {
                instance_type,
                bucket,
                chosen: v.first().map(|c| c.name.clone()),
            }
        })
        .collect();
    let priced: Vec<&Candidate> = passing
        .into_iter()
        .filter(|c| c.usd_per_request.is_some())
        .collect();
    let mut pareto: Vec<&Candidate> = priced
        .iter()
        .filter(|a| {
            let (ta, ca) = (a.throughput, a.usd_per_request.expect("priced"));
            !priced.iter().any(|b| {
                let (tb, cb) = (b.throughput, b.usd_per_request.expect("priced"));
                tb >= ta && cb <= ca && (tb > ta || cb < ca)
            })
        })
        .copied()
        .collect();
    pareto.sort_by(|a, b| {
        a.throughput
            .partial_cmp(&b.throughput)
            .unwrap_or(Ordering::Equal)
            .then(a.name.cmp(&b.name))
    });
    Recommendation {
        choices,
        rejected,
        pareto: pareto.into_iter().map(|c| c.name.clone()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(
        name: &str,
        it: &str,
        tput: f64,
        err: f64,
        e2e_p95: f64,
        cost: Option<f64>,
    ) -> Candidate {
        Candidate {
            name: name.into(),
            instance_type: it.into(),
            bucket: "all".into(),
            throughput: tput,
            error_rate: err,
            latency: BTreeMap::from([
                ("e2e.p95".to_string(), e2e_p95),
                ("ttft.p95".to_string(), e2e_p95 / 10.0),
            ]),
            usd_per_request: cost,
            streamed: true,
        }
    }

    fn k() -> Constraints {
        Constraints {
            max_error_rate: 0.01,
            latency: vec![("e2e.p95".into(), 5000.0)],
            max_usd_per_request: None,
        }
    }

    #[test]
    fn filter_then_maximise_throughput() {
        let c = [
            cand("g5 c=4", "g5.xlarge", 1.6, 0.0, 2500.0, Some(0.0002)),
            cand("g5 c=32", "g5.xlarge", 9.4, 0.0, 3200.0, Some(0.00003)),
            cand("g5 c=64", "g5.xlarge", 12.0, 0.0, 6100.0, Some(0.00002)),
            cand("g5 c=128", "g5.xlarge", 13.0, 0.05, 9000.0, Some(0.00002)),
        ];
        let r = recommend(&c, &k());
        assert_eq!(r.choices.len(), 1);
        assert_eq!(r.choices[0].chosen.as_deref(), Some("g5 c=32"));
        assert_eq!(r.rejected.len(), 2);
        assert_eq!(r.rejected[0].failed, vec!["e2e.p95 6100.0 ms > 5000.0 ms"]);
        assert_eq!(
            r.rejected[1].failed,
            vec!["error rate 5.00% > 1.00%", "e2e.p95 9000.0 ms > 5000.0 ms"]
        );
    }

    #[test]
    fn ties_break_by_cost_then_latency_then_name() {
        let a = cand("a", "x", 10.0, 0.0, 3000.0, Some(0.002));
        let b = cand("b", "x", 10.0, 0.0, 2000.0, Some(0.001));
        assert_eq!(
            recommend(&[a.clone(), b.clone()], &k()).choices[0]
                .chosen
                .as_deref(),
            Some("b"),
            "cheaper wins"
        );
        let b2 = Candidate {
            usd_per_request: Some(0.002),
            ..b.clone()
        };
        assert_eq!(
            recommend(&[a.clone(), b2.clone()], &k()).choices[0]
                .chosen
                .as_deref(),
            Some("b"),
            "then lower p95"
        );
        let a3 = Candidate {
            latency: b2.latency.clone(),
            ..a.clone()
        };
        assert_eq!(
            recommend(&[b2.clone(), a3], &k()).choices[0]
                .chosen
                .as_deref(),
            Some("a"),
            "then name"
        );
        let unpriced = Candidate {
            usd_per_request: None,
            name: "0".into(),
            ..b.clone()
        };
        assert_eq!(
            recommend(&[unpriced, b2], &k()).choices[0]
                .chosen
                .as_deref(),
            Some("b"),
            "known cost beats unknown"
        );
    }

    #[test]
    fn cost_budget_and_unknown_price() {
        let mut kk = k();
        kk.max_usd_per_request = Some(0.001);
        let r = recommend(
            &[
                cand("cheap", "x", 1.0, 0.0, 100.0, Some(0.0005)),
                cand("dear", "x", 2.0, 0.0, 100.0, Some(0.002)),
                cand("unknown", "x", 3.0, 0.0, 100.0, None),
            ],
            &kk,
        );
        assert_eq!(r.choices[0].chosen.as_deref(), Some("cheap"));
        assert_eq!(
            r.rejected[1].failed,
            vec!["no price, so $/request is unknown"]
        );
    }

    #[test]
    fn nothing_passes_is_reported_per_group() {
        let r = recommend(
            &[cand("slow", "g5.xlarge", 1.0, 0.0, 9999.0, Some(1.0))],
            &k(),
        );
        assert_eq!(r.choices[0].chosen, None);
        assert!(r.pareto.is_empty());
    }

    #[test]
    fn budget_on_unmeasured_metric_fails_with_reason() {
        // A non-streaming endpoint has no TPOT: a TPOT limit fails, never passes.
        let mut k = k();
        k.latency = vec![("tpot.p95".into(), 10.0)];
        let mut fast = cand("unstreamed", "x", 50.0, 0.0, 300.0, Some(0.0001));
        fast.streamed = false;
        let mut streamed = cand("streamed", "y", 10.0, 0.0, 400.0, Some(0.001));
        streamed.latency.insert("tpot.p95".into(), 20.0);
        let r = recommend(&[fast.clone(), streamed], &k);
        assert!(r.choices.iter().all(|c| c.chosen.is_none()));
        assert_eq!(
            r.rejected[0].failed,
            vec!["tpot.p95 not measured: the endpoint does not stream"]
        );
        assert_eq!(r.rejected[1].failed, vec!["tpot.p95 20.0 ms > 10.0 ms"]);
        fast.streamed = true;
        assert_eq!(
            failures(&fast, &k),
            vec!["tpot.p95 not measured: no request gave a sample"]
        );
    }

    #[test]
    fn pareto_front() {
        let c = [
            cand("a", "x", 1.0, 0.0, 100.0, Some(1.0)),
            cand("b", "y", 2.0, 0.0, 100.0, Some(2.0)),
            cand("c", "z", 2.0, 0.0, 100.0, Some(3.0)), // dominated by b
            cand("d", "w", 0.5, 0.0, 100.0, Some(1.5)), // dominated by a
            cand("e", "v", 4.0, 0.0, 100.0, Some(5.0)),
        ];
        assert_eq!(recommend(&c, &k()).pareto, vec!["a", "b", "e"]);
    }
}
