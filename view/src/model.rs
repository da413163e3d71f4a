//! The report's view model: what every format (Markdown, JSON, SVG charts)
//! and every page of the viewer renders. Built from the decoded rows of one or
//! more bundles ([`crate::contract`]); every derived number comes from
//! `harness_core::analysis`, so the harness and the viewer compute the same.

use crate::contract::{StoredDataset, StoredExperiment, StoredRun};
use harness_core::analysis::{analyse, default_rpm_range, Analysis, Measured};
use harness_core::cost::{Costed, UnitPrice};
use harness_core::recommend::Constraints;
use harness_core::Metric;
use serde::Serialize;
use std::collections::BTreeMap;

/// Latency metrics whose statistics a budget may name (`metric.stat`):
/// every metric measured in ms.
pub fn latency_metrics() -> impl Iterator<Item = Metric> {
    Metric::ALL
        .into_iter()
        .filter(|m| m.unit() == harness_core::metrics::Unit::Ms)
}
pub const STATS: [&str; 7] = ["mean", "p50", "p90", "p95", "p99", "min", "max"];

/// Checks a `metric.stat` key, e.g. `ttft.p95`.
pub fn check_latency_key(key: &str) -> Result<(), String> {
    let (m, s) = key.split_once('.').unwrap_or((key, ""));
    let known_metric = latency_metrics().any(|x| x.id() == m);
    if !known_metric || !STATS.contains(&s) {
        return Err(format!(
            "`{key}` is not a latency statistic; expected METRIC.STAT with METRIC one of {} and STAT one of {}",
            latency_metrics().map(|m| m.id()).collect::<Vec<_>>().join(", "),
            STATS.join(", ")
        ));
    }
    Ok(())
}

/// The analysis view of a stored experiment, costed as `costed` (the
/// bundle's own, or a repricing of it).
pub fn measured(e: &StoredExperiment, costed: &Costed) -> Measured {
    let mut latency = BTreeMap::new();
    for m in latency_metrics() {
        if let Some(d) = e.summary.dist(m) {
            for s in STATS {
                if let Some(v) = d.stat(s) {
                    latency.insert(format!("{}.{s}", m.id()), v);
                }
            }
        }
    }
    Measured {
        name: e.label.clone(),
        experiment_id: e.experiment_id.clone(),
        instance_type: e
            .instance_type
            .clone()
            .unwrap_or_else(|| e.endpoint.clone()),
        instance_count: e.instance_count.max(1) as u32,
        dataset: e.dataset.clone(),
        bucket: e.bucket.clone(),
        load: e.concurrency.map(f64::from).or(e.rate).unwrap_or_default(),
        throughput: e.summary.request_throughput,
        error_rate: e.summary.error_rate,
        latency,
        usd_per_hour: costed.figures.usd_per_hour,
        usd_per_request: costed.figures.usd_per_request,
        streamed: e.stream,
        on_instances: e.instance_type.is_some(),
        open_loop: e.load_mode == "open",
        // Needs the requests: filled in by the reader when the budget has an SLO.
        attainment: None,
        probe: e.probe.clone(),
    }
}

/// Where the report's prices come from.
#[derive(Debug, Clone, Serialize)]
pub struct PricingBasis {
    /// `recorded` (the price each experiment was costed with at run time) or
    /// `repriced`.
    pub basis: &'static str,
    /// In words, for the reader.
    pub label: String,
}

/// Where the budget came from.
#[derive(Debug, Clone, Serialize)]
pub struct Budget {
    pub constraints: Constraints,
    pub source: String,
}

/// Budgets stored in a bundle's run config (`budgets:`), if any.
pub fn budget_from_runs(runs: &[StoredRun]) -> Option<Budget> {
    for r in runs {
        let Some(b) = budgets_of(r) else {
            continue;
        };
        let k = b.constraints();
        if k != Constraints::default() {
            return Some(Budget {
                constraints: k,
                source: format!("budgets of run {} ({})", r.run_id, r.config_file),
            });
        }
    }
    None
}

/// The error-rate budget (`budgets.error_rate`) of the first run that set one.
pub fn budgeted_error_rate(runs: &[StoredRun]) -> Option<f64> {
    runs.iter().find_map(|r| budgets_of(r)?.error_rate)
}

/// The `budgets:` section of a run's stored config (numbers and nested
/// maps; anything else is left out).
fn budgets_of(r: &StoredRun) -> Option<harness_core::recommend::Budgets> {
    use yaml_rust2::{Yaml, YamlLoader};
    fn json(y: &Yaml) -> Option<serde_json::Value> {
        match y {
            Yaml::Real(_) | Yaml::Integer(_) => Some(serde_json::json!(y
                .as_f64()
                .or(y.as_i64().map(|i| i as f64))?)),
            Yaml::Hash(h) => Some(serde_json::Value::Object(
                h.iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_string(), json(v)?)))
                    .collect(),
            )),
            _ => None,
        }
    }
    let docs = YamlLoader::load_from_str(&r.config_yaml).ok()?;
    let b @ Yaml::Hash(_) = &docs.first()?["budgets"] else {
        return None;
    };
    serde_json::from_value(json(b)?).ok()
}

/// One bundle's provenance.
#[derive(Debug, Clone, Serialize)]
pub struct BundleInfo {
    /// The file name (the directory is left out so reports are reproducible).
    pub file: String,
    pub runs: Vec<StoredRun>,
    pub datasets: Vec<StoredDataset>,
}

/// One experiment's row in the report: the analysis view plus figures the
/// analysis does not need.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentRow {
    #[serde(flatten)]
    pub measured: Measured,
    pub bundle: usize,
    pub run_id: String,
    pub endpoint: String,
    pub load_mode: String,
    pub simulated: bool,
    pub requests: u64,
    pub requests_failed: u64,
    pub output_token_throughput: f64,
    /// Mean prompt and output tokens per successful request.
    pub prompt_tokens_mean: Option<f64>,
    pub output_tokens_mean: Option<f64>,
    pub usd_per_10k_requests: Option<f64>,
    pub usd_per_1m_output_tokens: Option<f64>,
    pub usd_run: Option<f64>,
    /// The unit price the costs come from, with its source, region, mode and date.
    pub price: Option<UnitPrice>,
    pub token_mismatch: bool,
}

impl Report {
    /// Mean prompt and output tokens per request over a workload's
    /// experiments (`dataset/bucket`).
    pub fn mean_tokens(&self, workload: &str) -> (Option<f64>, Option<f64>) {
        let avg = |f: &dyn Fn(&ExperimentRow) -> Option<f64>| {
            let v: Vec<f64> = self
                .experiments
                .iter()
                .filter(|e| e.measured.workload() == workload)
                .filter_map(f)
                .collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        (
            avg(&|e| e.prompt_tokens_mean),
            avg(&|e| e.output_tokens_mean),
        )
    }
}

impl Report {
    /// The experiments whose per-request TTFT the distribution chart shows, as
    /// (workload, instance type, row index into `experiments`): each instance
    /// type's recommended configuration, or, when none passed, its lowest
    /// load level. The reader fills [`Report::ttft`] with their samples.
    pub fn ttft_wanted(&self) -> Vec<(String, String, usize)> {
        let mut out = vec![];
        for w in &self.analysis.workloads {
            for c in &w.choices {
                let name = c.chosen.clone().or_else(|| {
                    self.experiments
                        .iter()
                        .filter(|r| {
                            r.measured.workload() == w.workload
                                && r.measured.instance_type == c.instance_type
                        })
                        .min_by(|a, b| a.measured.load.total_cmp(&b.measured.load))
                        .map(|r| r.measured.name.clone())
                });
                let Some(name) = name else { continue };
                if let Some(i) = self
                    .experiments
                    .iter()
                    .position(|r| r.measured.name == name)
                {
                    out.push((w.workload.clone(), c.instance_type.clone(), i));
                }
            }
        }
        out
    }
}

impl ExperimentRow {
    /// The load level in words: `c=32` (closed loop) or `2.5 req/s` (open loop).
    pub fn load_label(&self) -> String {
        if self.load_mode == "closed" {
            format!("c={}", self.measured.load)
        } else {
            format!("{} req/s", rate_text(self.measured.load))
        }
    }
}

/// An offered rate as a label: whole rates as they are (`4`), others to 4
/// significant digits without trailing zeros (a trace's mean rate
/// 2.8335169… as `2.834`).
pub fn rate_text(v: f64) -> String {
    if v == v.trunc() || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (3 - v.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.digits$}");
    if digits == 0 {
        return s;
    }
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The best option of a workload for a target rate (the heatmap's best choice).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub report_version: u32,
    pub harness_version: String,
    pub bundles: Vec<BundleInfo>,
    pub budget: Budget,
    pub pricing: PricingBasis,
    /// The target workload of the summary, req/min, when given.
    pub target_rpm: Option<f64>,
    pub simulated: bool,
    pub experiments: Vec<ExperimentRow>,
    /// Experiments left out (not complete), by label.
    pub excluded: Vec<String>,
    pub analysis: Analysis,
    /// Per workload, the capacity plan for `target_rpm` (a one-column heatmap).
    pub target: Option<Analysis>,
    /// TTFT samples of each plotted experiment, for the distribution chart;
    /// not in the JSON.
    #[serde(skip)]
    pub ttft: Vec<TtftSamples>,
    /// The engine's own metrics per scraped experiment, in experiment
    /// order; empty when no experiment was scraped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub server: Vec<ServerMetricsRow>,
    /// The command experiments (`harness_view::commands`), by endpoint.
    #[serde(skip_serializing_if = "crate::commands::CommandReport::is_empty")]
    pub commands: crate::commands::CommandReport,
}

/// One experiment's engine metrics over its measurement window, from its
/// Prometheus `/metrics` scrapes (`harness_core::server`).
#[derive(Debug, Clone, Serialize)]
pub struct ServerMetricsRow {
    /// Index into [`Report::experiments`].
    pub experiment: usize,
    /// Scrapes tried and failed over the whole experiment.
    pub attempts: i64,
    pub failures: i64,
    pub summary: harness_core::server::ServerSummary,
}

/// One experiment's empirical distribution of a latency metric, for the
/// distribution charts.
#[derive(Debug, Clone)]
pub struct TtftSamples {
    pub workload: String,
    pub instance_type: String,
    pub name: String,
    /// Points of the empirical CDF: (value in ms, % of the measured requests
    /// at or below it), ascending in both. Every point lies exactly on the
    /// ECDF; see [`cdf_nearest_rank`] and [`cdf_from_groups`].
    pub cdf: Vec<(f64, f64)>,
}

/// At most 200 ECDF points from every value (sorted ascending): the
/// nearest-rank values at ranks ceil(i·n/200), i = 1..=200 (every value when
/// there are fewer), each with 100·rank/n.
pub fn cdf_nearest_rank(sorted: &[f64]) -> Vec<(f64, f64)> {
    let n = sorted.len();
    let steps = n.min(200);
    (1..=steps)
        .map(|i| {
            let idx = (i * n).div_ceil(steps) - 1;
            (sorted[idx], 100.0 * (idx + 1) as f64 / n as f64)
        })
        .collect()
}

/// ECDF points from values grouped into buckets: each `(max, count)` is a
/// bucket's largest value and how many values it holds, so that point
/// (max, 100·(count of this bucket and all below)/n) lies exactly on the
/// ECDF. Buckets may come in any order; they must not overlap. This is how
/// a distribution is drawn from the bundle's `ecdf` table (one `GROUP BY`
/// when the experiment is written, [`crate::contract::ecdf_groups_sql`])
/// instead of from every value.
///
/// Of those points, one is kept when it is 0.5 percentage points above the
/// last one kept or 1/64 of a natural-log unit (about 1.6%) to its right,
/// and the first and last always: at most about 200 + 64 per factor of e,
/// each still exactly on the ECDF, and steep or flat stretches both drawn.
pub fn cdf_from_groups(mut groups: Vec<(f64, u64)>) -> Vec<(f64, f64)> {
    groups.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n: u64 = groups.iter().map(|g| g.1).sum();
    let mut below = 0;
    let all: Vec<(f64, f64)> = groups
        .into_iter()
        .map(|(max, count)| {
            below += count;
            (max, 100.0 * below as f64 / n as f64)
        })
        .collect();
    let mut kept: Vec<(f64, f64)> = vec![];
    for (i, &(x, y)) in all.iter().enumerate() {
        let keep = match kept.last() {
            None => true,
            Some(&(kx, ky)) => {
                i + 1 == all.len()
                    || y - ky >= 0.5
                    || (x > 0.0 && kx > 0.0 && (x / kx).ln() >= 1.0 / 64.0)
                    || (x > 0.0 && kx <= 0.0)
            }
        };
        if keep {
            kept.push((x, y));
        }
    }
    kept
}

/// How `build` reprices: a label for the reader and the price function.
pub struct Repricing<'a> {
    /// In words, e.g. `repriced from prices.yml (region us-east-1, on-demand)`.
    pub label: String,
    /// The costing of an experiment with the new prices. Costs are recomputed
    /// by `harness_core::cost` from the inputs each experiment stored, so
    /// repricing with the book the run used gives the run's own figures.
    pub price: Box<dyn FnMut(&StoredExperiment) -> Costed + 'a>,
}

/// What the view model is built for.
#[derive(Default)]
pub struct Options<'a> {
    /// Replaces the bundles' budgets when given.
    pub constraints: Option<Constraints>,
    pub target_rpm: Option<f64>,
    pub heatmap_rpms: Option<Vec<f64>>,
    /// `None`: the prices recorded in the bundles.
    pub repricing: Option<Repricing<'a>>,
    /// The attainment of an SLO by an experiment of bundle `i`, from its
    /// requests (`harness_core::slo::attainment`). Called for every
    /// experiment when the budget has an SLO; `None`: attainment unknown.
    pub attainment: Option<AttainmentOf<'a>>,
}

/// See [`Options::attainment`].
pub type AttainmentOf<'a> = Box<
    dyn FnMut(
            usize,
            &StoredExperiment,
            &harness_core::slo::Slo,
        ) -> Option<harness_core::slo::Attainment>
        + 'a,
>;

/// One bundle's decoded rows ([`crate::contract`]).
#[derive(Clone)]
pub struct BundleRows {
    /// The file name (the directory is left out so reports are reproducible).
    pub file: String,
    pub runs: Vec<StoredRun>,
    pub datasets: Vec<StoredDataset>,
    pub experiments: Vec<StoredExperiment>,
    /// Its command experiments' rows (none in a bundle of endpoints only).
    pub commands: crate::commands::CommandRows,
}

pub const REPORT_VERSION: u32 = 2;

/// Builds the view model of `bundles`: the complete experiments, costed as
/// recorded or repriced, analysed under the budget (the command line's, else
/// the first run's `budgets:`, else the default) for the heatmap's target
/// rates. The TTFT samples for the distribution chart are left empty; see
/// [`Report::ttft_wanted`].
///
/// Errors: no complete experiment and no complete command cell in any bundle
/// (the message says why).
pub fn build(bundles: Vec<BundleRows>, o: Options) -> Result<Report, String> {
    let mut infos = vec![];
    let mut rows = vec![];
    let mut excluded = vec![];
    let n_bundles = bundles.len();
    let commands = crate::commands::build(
        &bundles
            .iter()
            .map(|b| (b.file.clone(), b.commands.clone()))
            .collect::<Vec<_>>(),
    );
    for (i, b) in bundles.into_iter().enumerate() {
        for e in b.experiments {
            if e.status != "complete" {
                excluded.push(format!("{} ({})", e.label, e.status));
                continue;
            }
            rows.push((i, e));
        }
        infos.push(BundleInfo {
            file: b.file,
            runs: b.runs,
            datasets: b.datasets,
        });
    }
    if rows.is_empty() && !commands.any_complete() {
        excluded.extend(commands.incomplete());
        let why = if excluded.is_empty() {
            "they hold no experiment".to_string()
        } else {
            format!(
                "left out, not complete: {}; `harness show` says why",
                excluded.join(", ")
            )
        };
        return Err(format!(
            "no complete experiment in {n_bundles} bundle(s), nothing to analyse ({why})"
        ));
    }
    let budget = match &o.constraints {
        Some(k) => Budget {
            constraints: k.clone(),
            source: "command line".into(),
        },
        None => infos
            .iter()
            .find_map(|b| budget_from_runs(&b.runs))
            .unwrap_or(Budget {
                constraints: Constraints::default(),
                source: "default (no latency budget in the bundles or on the command line)".into(),
            }),
    };
    let pricing = match &o.repricing {
        Some(p) => PricingBasis {
            basis: "repriced",
            label: p.label.clone(),
        },
        None => PricingBasis {
            basis: "recorded",
            label: "as recorded in the bundles at run time (each experiment's unit price, source, region, mode and date)".into(),
        },
    };
    let mut repricing = o.repricing;
    let mut attainment_of = o.attainment;
    let experiments: Vec<ExperimentRow> = rows
        .iter()
        .map(|(i, e)| {
            let costed = match &mut repricing {
                Some(p) => (p.price)(e),
                None => e.costed.clone(),
            };
            (i, e, costed)
        })
        .map(|(i, e, costed)| ExperimentRow {
            measured: Measured {
                attainment: match (&mut attainment_of, &budget.constraints.slo) {
                    (Some(f), Some(slo)) => f(*i, e, slo),
                    _ => None,
                },
                ..measured(e, &costed)
            },
            bundle: *i,
            run_id: e.run_id.clone(),
            endpoint: e.endpoint.clone(),
            load_mode: e.load_mode.clone(),
            simulated: e.simulated,
            requests: e.summary.requests,
            requests_failed: e.summary.requests_failed,
            output_token_throughput: e.summary.output_token_throughput,
            prompt_tokens_mean: e.summary.dist(Metric::PromptTokens).map(|d| d.mean),
            output_tokens_mean: e.summary.dist(Metric::OutputTokens).map(|d| d.mean),
            usd_per_10k_requests: costed.figures.usd_per_10k_requests,
            usd_per_1m_output_tokens: costed.figures.usd_per_1m_output_tokens,
            usd_run: costed.figures.usd_run,
            price: costed.price.clone(),
            token_mismatch: e.summary.token_mismatch(),
        })
        .collect();
    let ms: Vec<Measured> = experiments.iter().map(|r| r.measured.clone()).collect();
    let k = &budget.constraints;
    // Analysed once; the heatmaps over the chosen rates come from its capacities.
    let base = analyse(&ms, k, &[]);
    let rpms = o
        .heatmap_rpms
        .clone()
        .unwrap_or_else(|| default_rpm_range(&base));
    let analysis = base.with_targets(&rpms);
    let target = o.target_rpm.map(|r| base.with_targets(&[r]));
    Ok(Report {
        report_version: REPORT_VERSION,
        harness_version: env!("CARGO_PKG_VERSION").to_string(),
        simulated: experiments.iter().any(|r| r.simulated),
        bundles: infos,
        budget,
        pricing,
        target_rpm: o.target_rpm,
        experiments,
        excluded,
        analysis,
        target,
        ttft: vec![],
        server: vec![],
        commands,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_labelled_to_four_significant_digits() {
        for (v, want) in [
            (4.0, "4"),
            (2.8335169607349133, "2.834"),
            (11.334067842939653, "11.33"),
            (22.668135685879307, "22.67"),
            (82.5, "82.5"),
            (0.5, "0.5"),
            (1234.56, "1235"),
            (1230.4, "1230"),
            (100.04, "100"),
        ] {
            assert_eq!(rate_text(v), want);
        }
    }

    #[test]
    fn nearest_rank_points_are_the_ecdf_at_200_ranks() {
        let v: Vec<f64> = (1..=3).map(f64::from).collect();
        assert_eq!(
            cdf_nearest_rank(&v),
            vec![(1.0, 100.0 / 3.0), (2.0, 200.0 / 3.0), (3.0, 100.0)]
        );
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        let p = cdf_nearest_rank(&v);
        assert_eq!(p.len(), 200);
        assert_eq!(p[0], (5.0, 0.5));
        assert_eq!(p[199], (1000.0, 100.0));
        assert!(cdf_nearest_rank(&[]).is_empty());
    }

    #[test]
    fn grouped_points_accumulate_in_value_order() {
        let p = cdf_from_groups(vec![(9.0, 1), (2.0, 2), (5.0, 1)]);
        assert_eq!(p, vec![(2.0, 50.0), (5.0, 75.0), (9.0, 100.0)]);
        assert!(cdf_from_groups(vec![]).is_empty());
        // 10,000 buckets of one value each, 0.01% apart: thinned to points
        // about 0.5 percentage points apart (x moves less than 1.6% meanwhile).
        let g: Vec<(f64, u64)> = (0..10_000)
            .map(|i| (100.0 * (1.0 + 1e-4 * i as f64), 1))
            .collect();
        let p = cdf_from_groups(g);
        assert!((190..=201).contains(&p.len()), "{}", p.len());
        assert_eq!(p[0], (100.0, 0.01));
        assert_eq!(*p.last().unwrap(), (100.0 * (1.0 + 1e-4 * 9999.0), 100.0));
        for w in p.windows(2) {
            assert!(w[1].1 - w[0].1 <= 0.51 + 1e-9, "{w:?}");
        }
    }
}
