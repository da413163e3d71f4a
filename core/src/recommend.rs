//! The recommendation rule, as a pure function with deterministic ties.
//!
//! 1. Filter: error rate ≤ E, every chosen latency statistic ≤ its limit
//!    (default: TTFT p95 and e2e p95), SLO attainment ≥ T when T is given
//!    ([`crate::slo`]), and $/request ≤ C when C is given.
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
    /// Attainment of the budget's SLO, when it has one.
    #[serde(default)]
    pub attainment: Option<crate::slo::Attainment>,
    /// Why its load was cut short (a capacity probe whose budget was
    /// clearly broken): it fails with that reason, its figures being partial.
    #[serde(default)]
    pub stopped_early: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Constraints {
    pub max_error_rate: f64,
    /// (`metric.stat`, limit in ms), e.g. `("e2e.p95", 5000.0)`.
    pub latency: Vec<(String, f64)>,
    pub max_usd_per_request: Option<f64>,
    /// Per-request SLO: attainment and goodput are reported against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<crate::slo::Slo>,
    /// Least SLO attainment (fraction of measured requests), a constraint
    /// when set; needs `slo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_attainment: Option<f64>,
}

impl Default for Constraints {
    fn default() -> Self {
        Constraints {
            max_error_rate: 0.01,
            latency: vec![],
            max_usd_per_request: None,
            slo: None,
            min_attainment: None,
        }
    }
}

/// A budget as a config's `budgets:` section writes it (and a bundle
/// stores it): the one place its keys are turned into [`Constraints`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Budgets {
    /// Limit on TTFT p95, ms (`ttft.p95`).
    #[serde(default)]
    pub ttft_p95_ms: Option<f64>,
    /// Limit on e2e p95, ms (`e2e.p95`).
    #[serde(default)]
    pub e2e_p95_ms: Option<f64>,
    /// Most failed / measured requests (default 0.01).
    #[serde(default)]
    pub error_rate: Option<f64>,
    /// Most $ per request.
    #[serde(default)]
    pub cost_per_request: Option<f64>,
    /// Per-request SLO.
    #[serde(default)]
    pub slo: Option<crate::slo::Slo>,
    /// Least SLO attainment, a fraction (needs `slo`).
    #[serde(default)]
    pub slo_attainment: Option<f64>,
}

impl Budgets {
    pub fn constraints(&self) -> Constraints {
        let mut latency = vec![];
        if let Some(x) = self.ttft_p95_ms {
            latency.push(("ttft.p95".to_string(), x));
        }
        if let Some(x) = self.e2e_p95_ms {
            latency.push(("e2e.p95".to_string(), x));
        }
        Constraints {
            max_error_rate: self
                .error_rate
                .unwrap_or(Constraints::default().max_error_rate),
            latency,
            max_usd_per_request: self.cost_per_request,
            slo: self.slo.filter(|s| !s.is_empty()),
            min_attainment: self.slo_attainment,
        }
    }
}

impl Constraints {
    /// True when a latency limit or an attainment target is set: what a
    /// capacity search needs to find where the budget breaks.
    pub fn limits_latency(&self) -> bool {
        !self.latency.is_empty() || self.min_attainment.is_some()
    }

    /// The same budget without its cost limit: what holds at a load (the
    /// capacity search's verdict), whatever the price.
    pub fn without_cost(&self) -> Constraints {
        Constraints {
            max_usd_per_request: None,
            ..self.clone()
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
    if let Some(why) = &c.stopped_early {
        f.push(why.clone());
    }
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
    if let (Some(target), Some(slo)) = (k.min_attainment, &k.slo) {
        match &c.attainment {
            _ if !c.streamed && slo.needs_stream() => f.push(
                "SLO attainment not measured: the endpoint does not stream (the SLO limits TTFT or TPOT)"
                    .into(),
            ),
            Some(a) if a.fraction < target => f.push(format!(
                "SLO attainment {:.2}% < {:.2}%",
                a.fraction * 100.0,
                target * 100.0
            )),
            Some(_) => {}
            None => f.push("SLO attainment not measured: no measured request".into()),
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
            attainment: None,
            stopped_early: None,
        }
    }

    fn k() -> Constraints {
        Constraints {
            latency: vec![("e2e.p95".into(), 5000.0)],
            ..Default::default()
        }
    }

    #[test]
    fn attainment_below_target_fails_and_unstreamed_ttft_slo_is_not_measured() {
        let slo = crate::slo::Slo {
            ttft_ms: Some(500.0),
            ..Default::default()
        };
        let k = Constraints {
            slo: Some(slo),
            min_attainment: Some(0.99),
            ..Default::default()
        };
        let att = |fraction| crate::slo::Attainment {
            measured: 100,
            attained: (fraction * 100.0) as u64,
            fraction,
            low: 0.0,
            high: 1.0,
            goodput: 1.0,
        };
        let mut c = cand("a", "x", 1.0, 0.0, 100.0, None);
        c.attainment = Some(att(0.97));
        assert_eq!(failures(&c, &k), vec!["SLO attainment 97.00% < 99.00%"]);
        c.attainment = Some(att(0.99));
        assert!(failures(&c, &k).is_empty());
        c.streamed = false;
        assert!(failures(&c, &k)[0].contains("does not stream"));
        c.streamed = true;
        c.attainment = None;
        assert!(failures(&c, &k)[0].contains("not measured"));
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
