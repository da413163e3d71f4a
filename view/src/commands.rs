//! Command experiments in the bundle contract and the view model: the
//! queries and rows of `command_cells`, `command_runs` and `command_metrics`,
//! the per-cell summary both `harness report`/`show` and the viewer print
//! ([`build`]), and its charts ([`charts`]): bars per metric across cells
//! with the spread over runs, per-token time over the output, and the host
//! (CPU, the process tree's RSS, GPU memory) over a run.

use crate::charts::{slug, Chart};
use crate::contract::Query;
use crate::svg::{self, esc, short, Series, XyChart, PALETTE};
use harness_core::command::{summarise, MetricSummary, MetricValue};
use harness_core::host::HostSampleRow;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Every cell, in plan order; a cell left `running` reads as `incomplete`.
pub const COMMAND_CELLS: Query = Query(
    "SELECT cell_id, run_id, ordinal, label, endpoint, scenario, args, instance_type, instance_count,
            warmup_runs, runs, usd_per_hour, price_source,
            CASE status WHEN 'running' THEN 'incomplete' ELSE status END AS status,
            CASE status WHEN 'running' THEN 'its process ended while it ran' ELSE status_reason END AS status_reason
     FROM {db}command_cells ORDER BY ordinal",
);

/// Every run of every cell.
pub const COMMAND_RUNS: Query = Query(
    "SELECT cell_id, run, warmup, started_ns, ended_ns, exit_code, status, error,
            peak_rss_bytes, gpu_mem_peak_bytes, usd, tokens, usd_per_1m_tokens
     FROM {db}command_runs ORDER BY cell_id, run",
);

/// Every metric value of every run.
pub const COMMAND_METRICS: Query = Query(
    "SELECT cell_id, run, metric, unit, idx, value FROM {db}command_metrics
     ORDER BY cell_id, run, metric, idx",
);

/// A `command_cells` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellRecord {
    pub cell_id: String,
    pub run_id: String,
    pub ordinal: i64,
    pub label: String,
    pub endpoint: String,
    pub scenario: String,
    /// JSON object of the cell's arguments.
    pub args: String,
    pub instance_type: Option<String>,
    pub instance_count: i64,
    pub warmup_runs: i64,
    pub runs: i64,
    pub usd_per_hour: Option<f64>,
    pub price_source: Option<String>,
    pub status: String,
    pub status_reason: Option<String>,
}

/// A `command_runs` row (times in ns on the cell's clock).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub cell_id: String,
    pub run: i64,
    pub warmup: bool,
    pub started_ns: i64,
    pub ended_ns: i64,
    pub exit_code: Option<i64>,
    pub status: String,
    pub error: Option<String>,
    pub peak_rss_bytes: Option<i64>,
    pub gpu_mem_peak_bytes: Option<f64>,
    pub usd: Option<f64>,
    pub tokens: Option<f64>,
    pub usd_per_1m_tokens: Option<f64>,
}

/// A `command_metrics` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRecord {
    pub cell_id: String,
    pub run: i64,
    pub metric: String,
    pub unit: String,
    pub idx: i64,
    pub value: f64,
}

/// One bundle's command rows, decoded.
#[derive(Debug, Clone, Default)]
pub struct CommandRows {
    pub cells: Vec<CellRecord>,
    pub runs: Vec<RunRecord>,
    pub metrics: Vec<MetricRecord>,
    /// The bundle's `host_samples` (those of cells are used).
    pub host: Vec<HostSampleRow>,
}

/// The command experiments of a report, by endpoint.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CommandReport {
    pub endpoints: Vec<EndpointView>,
}

impl CommandReport {
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// `label (status)` of each cell that is not complete.
    pub fn incomplete(&self) -> Vec<String> {
        self.endpoints
            .iter()
            .flat_map(|e| e.cells.iter().map(move |c| (e, c)))
            .filter(|(_, c)| c.status != "complete")
            .map(|(e, c)| format!("{} · {} ({})", e.name, c.label, c.status))
            .collect()
    }

    /// Whether any cell is complete: something to analyse.
    pub fn any_complete(&self) -> bool {
        self.endpoints
            .iter()
            .any(|e| e.cells.iter().any(|c| c.status == "complete"))
    }
}

/// One command endpoint: its metrics and its cells.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointView {
    pub name: String,
    /// (metric, unit) in name order, over all its cells.
    pub metrics: Vec<(String, String)>,
    pub cells: Vec<CellView>,
}

/// One cell, summarised over its measured runs.
#[derive(Debug, Clone, Serialize)]
pub struct CellView {
    pub cell_id: String,
    /// Its bundle's file name.
    pub file: String,
    /// `scenario` or `scenario · k=v, ...` (without the endpoint).
    pub label: String,
    pub scenario: String,
    /// The cell's arguments as a JSON object (name → value), as given to
    /// the command; `null` if the bundle's text is not JSON.
    pub args: serde_json::Value,
    pub status: String,
    pub status_reason: Option<String>,
    pub instance_type: Option<String>,
    pub instance_count: i64,
    pub runs: usize,
    pub runs_ok: usize,
    /// `run N: status: error` of each failed measured run.
    pub failures: Vec<String>,
    /// Over measured successful runs ([`harness_core::command::summarise`]).
    pub metrics: Vec<MetricSummary>,
    /// Mean wall time of a measured successful run, seconds.
    pub wall_s: Option<f64>,
    /// Largest resident memory of the process tree over measured runs.
    pub peak_rss_bytes: Option<i64>,
    /// Largest calibrated GPU memory (mean over devices) over measured runs.
    pub gpu_mem_peak_bytes: Option<f64>,
    pub usd_per_hour: Option<f64>,
    /// Mean over measured successful runs.
    pub usd_per_run: Option<f64>,
    pub usd_per_1m_tokens: Option<f64>,
    /// Every run, warm-up included, with its host figures.
    pub run_details: Vec<RunView>,
    /// List metric → mean over runs at each element, for the per-token chart.
    #[serde(skip)]
    pub lists: BTreeMap<String, Vec<f64>>,
    /// (s into the run, CPU %, process RSS MiB, GPU memory used GiB, mean
    /// over GPUs) of the first measured successful run.
    #[serde(skip)]
    pub host: Vec<HostPoint>,
}

/// One run of a cell and what the host did while it lasted: p50 / p95 /
/// max of the CPU and GPU utilisation samples, the process tree's peak
/// RSS and the calibrated GPU memory.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    /// From 0, warm-up runs first: the command's `{run}`.
    pub run: i64,
    pub warmup: bool,
    pub status: String,
    pub error: Option<String>,
    pub wall_s: f64,
    pub samples: usize,
    pub cpu_util_pct: Option<harness_core::host::Spread>,
    pub gpu_util_pct: Option<harness_core::host::Spread>,
    pub peak_rss_bytes: Option<i64>,
    pub gpu_mem_peak_bytes: Option<f64>,
    pub usd: Option<f64>,
}

/// (s into the run, CPU %, process RSS MiB, GPU memory used GiB).
pub type HostPoint = (f64, Option<f64>, Option<f64>, Option<f64>);

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

/// Builds the view of the command cells of `bundles` (file name, rows),
/// leaving out none: a failed or incomplete cell shows with its reason.
pub fn build(bundles: &[(String, CommandRows)]) -> CommandReport {
    let mut endpoints: Vec<EndpointView> = vec![];
    for (file, b) in bundles {
        for c in &b.cells {
            let runs: Vec<&RunRecord> = b
                .runs
                .iter()
                .filter(|r| r.cell_id == c.cell_id && !r.warmup)
                .collect();
            let ok: Vec<&RunRecord> = runs.iter().copied().filter(|r| r.status == "ok").collect();
            let ok_runs: Vec<i64> = ok.iter().map(|r| r.run).collect();
            let values: Vec<MetricValue> = b
                .metrics
                .iter()
                .filter(|m| m.cell_id == c.cell_id && ok_runs.contains(&m.run))
                .map(|m| MetricValue {
                    run: m.run,
                    metric: m.metric.clone(),
                    unit: m.unit.clone(),
                    idx: m.idx,
                    value: m.value,
                })
                .collect();
            // A list metric: one that some run reported more than one element of.
            let is_list = |metric: &str| values.iter().any(|v| v.metric == metric && v.idx > 0);
            let mut lists: BTreeMap<String, BTreeMap<i64, Vec<f64>>> = BTreeMap::new();
            for v in values.iter().filter(|v| is_list(&v.metric)) {
                lists
                    .entry(v.metric.clone())
                    .or_default()
                    .entry(v.idx)
                    .or_default()
                    .push(v.value);
            }
            let host = ok
                .first()
                .map(|r| {
                    let mut by_t: BTreeMap<i64, Vec<&HostSampleRow>> = BTreeMap::new();
                    for h in b.host.iter().filter(|h| {
                        h.experiment_id == c.cell_id
                            && h.t_ns >= r.started_ns
                            && h.t_ns <= r.ended_ns
                    }) {
                        by_t.entry(h.t_ns).or_default().push(h);
                    }
                    by_t.into_iter()
                        .map(|(t, hs)| {
                            (
                                (t - r.started_ns) as f64 / 1e9,
                                hs[0].cpu_util_pct,
                                hs[0].proc_rss_bytes.map(|b| b as f64 / (1u64 << 20) as f64),
                                mean(
                                    hs.iter()
                                        .filter_map(|h| h.gpu_mem_used_bytes.map(|b| b as f64)),
                                )
                                .map(|b| b / (1u64 << 30) as f64),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let run_details = b
                .runs
                .iter()
                .filter(|r| r.cell_id == c.cell_id)
                .map(|r| {
                    let hs: Vec<&HostSampleRow> = b
                        .host
                        .iter()
                        .filter(|h| {
                            h.experiment_id == c.cell_id
                                && h.t_ns >= r.started_ns
                                && h.t_ns <= r.ended_ns
                        })
                        .collect();
                    let mut times: Vec<i64> = hs.iter().map(|h| h.t_ns).collect();
                    times.dedup();
                    RunView {
                        run: r.run,
                        warmup: r.warmup,
                        status: r.status.clone(),
                        error: r.error.clone(),
                        wall_s: (r.ended_ns - r.started_ns) as f64 / 1e9,
                        samples: times.len(),
                        cpu_util_pct: harness_core::host::Spread::of(
                            hs.iter()
                                .filter(|h| h.gpu_index.unwrap_or(0) == 0)
                                .filter_map(|h| h.cpu_util_pct)
                                .collect(),
                        ),
                        gpu_util_pct: harness_core::host::Spread::of(
                            hs.iter().filter_map(|h| h.gpu_util_pct).collect(),
                        ),
                        peak_rss_bytes: r.peak_rss_bytes,
                        gpu_mem_peak_bytes: r.gpu_mem_peak_bytes,
                        usd: r.usd,
                    }
                })
                .collect();
            let view = CellView {
                run_details,
                cell_id: c.cell_id.clone(),
                file: file.clone(),
                scenario: c.scenario.clone(),
                args: serde_json::from_str(&c.args).unwrap_or(serde_json::Value::Null),
                label: c
                    .label
                    .strip_prefix(&format!("{} · ", c.endpoint))
                    .unwrap_or(&c.label)
                    .to_string(),
                status: c.status.clone(),
                status_reason: c.status_reason.clone(),
                instance_type: c.instance_type.clone(),
                instance_count: c.instance_count,
                runs: runs.len(),
                runs_ok: ok.len(),
                failures: runs
                    .iter()
                    .filter(|r| r.status != "ok")
                    .map(|r| {
                        format!(
                            "run {}: {}: {}",
                            r.run,
                            r.status,
                            r.error.as_deref().unwrap_or("-")
                        )
                    })
                    .collect(),
                metrics: summarise(&values),
                wall_s: mean(ok.iter().map(|r| (r.ended_ns - r.started_ns) as f64 / 1e9)),
                peak_rss_bytes: runs.iter().filter_map(|r| r.peak_rss_bytes).max(),
                gpu_mem_peak_bytes: runs
                    .iter()
                    .filter_map(|r| r.gpu_mem_peak_bytes)
                    .max_by(f64::total_cmp),
                usd_per_hour: c.usd_per_hour,
                usd_per_run: mean(ok.iter().filter_map(|r| r.usd)),
                usd_per_1m_tokens: mean(ok.iter().filter_map(|r| r.usd_per_1m_tokens)),
                lists: lists
                    .into_iter()
                    .map(|(k, by_idx)| {
                        let means = by_idx
                            .into_values()
                            .map(|vs| vs.iter().sum::<f64>() / vs.len() as f64)
                            .collect();
                        (k, means)
                    })
                    .collect(),
                host,
            };
            let ep = match endpoints.iter_mut().find(|e| e.name == c.endpoint) {
                Some(e) => e,
                None => {
                    endpoints.push(EndpointView {
                        name: c.endpoint.clone(),
                        metrics: vec![],
                        cells: vec![],
                    });
                    endpoints.last_mut().expect("pushed")
                }
            };
            for m in &view.metrics {
                if !ep.metrics.iter().any(|(n, _)| *n == m.metric) {
                    ep.metrics.push((m.metric.clone(), m.unit.clone()));
                }
            }
            ep.metrics.sort();
            ep.cells.push(view);
        }
    }
    // Two cells with one label (an input file or a setting changed between
    // runs into one bundle): each says which it is.
    for ep in &mut endpoints {
        let labels: Vec<String> = ep.cells.iter().map(|c| c.label.clone()).collect();
        for c in &mut ep.cells {
            if labels.iter().filter(|l| **l == c.label).count() > 1 {
                c.label = format!("{} [{}]", c.label, &c.cell_id[..8.min(c.cell_id.len())]);
            }
        }
    }
    CommandReport { endpoints }
}

impl CommandReport {
    /// Keeps only the cells `keep` says yes to (and the endpoints that
    /// still have one).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        for ep in &mut self.endpoints {
            ep.cells.retain(|c| keep(&c.cell_id));
        }
        self.endpoints.retain(|e| !e.cells.is_empty());
    }
}

/// `mean ± sd` of a summary, in its unit's own scale.
pub fn mean_sd(m: &MetricSummary) -> String {
    if m.count > 1 {
        format!("{} ± {}", short(m.mean), short(m.sd))
    } else {
        short(m.mean)
    }
}

fn bytes_text(b: Option<f64>) -> String {
    match b {
        None => "-".into(),
        Some(b) if b >= (1u64 << 30) as f64 => format!("{:.2} GiB", b / (1u64 << 30) as f64),
        Some(b) => format!("{:.0} MiB", b / (1u64 << 20) as f64),
    }
}

fn usd_text(x: Option<f64>) -> String {
    match x {
        None => "-".into(),
        Some(x) if x >= 0.01 => format!("${x:.2}"),
        Some(x) => format!("${x:.5}"),
    }
}

/// One table per command endpoint: header and rows of text cells. The
/// columns: cell, measured runs ok/all, each metric as mean ± sd over runs,
/// wall time, peak process-tree RSS, calibrated GPU memory, $ per run and
/// per 1M tokens, status.
pub fn tables(r: &CommandReport) -> Vec<(String, Vec<String>, Vec<Vec<String>>)> {
    r.endpoints
        .iter()
        .map(|ep| {
            let mut header = vec!["cell".to_string(), "runs ok".to_string()];
            header.extend(ep.metrics.iter().map(|(n, u)| format!("{n} ({u})")));
            header.extend(
                [
                    "wall s", "peak RSS", "GPU mem", "$/run", "$/1M tok", "status",
                ]
                .map(String::from),
            );
            let rows = ep
                .cells
                .iter()
                .map(|c| {
                    let mut row = vec![c.label.clone(), format!("{}/{}", c.runs_ok, c.runs)];
                    row.extend(ep.metrics.iter().map(|(n, _)| {
                        c.metrics
                            .iter()
                            .find(|m| &m.metric == n)
                            .map(mean_sd)
                            .unwrap_or_else(|| "-".into())
                    }));
                    row.push(c.wall_s.map(short).unwrap_or_else(|| "-".into()));
                    row.push(bytes_text(c.peak_rss_bytes.map(|b| b as f64)));
                    row.push(bytes_text(c.gpu_mem_peak_bytes));
                    row.push(usd_text(c.usd_per_run));
                    row.push(usd_text(c.usd_per_1m_tokens));
                    row.push(match &c.status_reason {
                        Some(why) => format!("{}: {why}", c.status),
                        None => c.status.clone(),
                    });
                    row
                })
                .collect();
            (ep.name.clone(), header, rows)
        })
        .collect()
}

/// Bars of one value per category, each with a whisker (low, high): the
/// chart of a metric across a command's cells.
pub struct Bars {
    pub title: String,
    pub subtitle: String,
    pub y_label: String,
    /// (category, value, low, high).
    pub bars: Vec<(String, f64, f64, f64)>,
}

impl Bars {
    /// A deterministic SVG: bars from zero, whiskers, category labels
    /// turned 30° under the axis.
    pub fn render(&self) -> String {
        let (w, h, left, right, top, bottom) = (760.0, 420.0, 72.0, 190.0, 52.0, 150.0);
        let hi = self
            .bars
            .iter()
            .map(|b| b.3.max(b.1))
            .fold(0.0f64, f64::max)
            .max(f64::MIN_POSITIVE);
        let ticks = svg::ticks(0.0, hi, 5);
        let top_v = ticks.last().copied().unwrap_or(hi).max(hi);
        let y = |v: f64| top + (h - top - bottom) * (1.0 - v / top_v);
        let n = self.bars.len().max(1) as f64;
        let slot = (w - left - right) / n;
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = write!(
            s,
            r##"<rect width="{w}" height="{h}" fill="white"/><text x="{left}" y="20" font-size="15" font-weight="bold">{}</text><text x="{left}" y="38" fill="#555">{}</text>"##,
            esc(&self.title),
            esc(&self.subtitle)
        );
        for t in &ticks {
            let ty = y(*t);
            let _ = write!(
                s,
                r##"<line x1="{left}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                w - right,
                left - 6.0,
                ty + 4.0,
                short(*t)
            );
        }
        let _ = write!(
            s,
            r#"<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            (top + h - bottom) / 2.0,
            esc(&self.y_label)
        );
        for (i, (name, v, lo, hi)) in self.bars.iter().enumerate() {
            let x0 = left + slot * i as f64 + slot * 0.15;
            let bw = slot * 0.7;
            let cx = x0 + bw / 2.0;
            let _ = write!(
                s,
                r#"<rect x="{x0:.1}" y="{:.1}" width="{bw:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                y(*v),
                (y(0.0) - y(*v)).max(0.0),
                PALETTE[i % PALETTE.len()],
                esc(name),
                short(*v)
            );
            let _ = write!(
                s,
                r#"<line x1="{cx:.1}" y1="{:.1}" x2="{cx:.1}" y2="{:.1}" stroke="black"/><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/>"#,
                y(*lo),
                y(*hi),
                cx - 6.0,
                y(*lo),
                cx + 6.0,
                y(*lo),
                cx - 6.0,
                y(*hi),
                cx + 6.0,
                y(*hi)
            );
            let ly = h - bottom + 14.0;
            // Long labels keep their start and their end (where the varied
            // arguments are), so that bars stay told apart.
            let n = name.chars().count();
            let shown: String = if n > 44 {
                name.chars()
                    .take(18)
                    .chain(['…'])
                    .chain(name.chars().skip(n - 25))
                    .collect()
            } else {
                name.clone()
            };
            let _ = write!(
                s,
                r#"<text transform="translate({cx:.1} {ly:.1}) rotate(25)" text-anchor="start" font-size="11"><title>{}</title>{}</text>"#,
                esc(name),
                esc(&shown)
            );
        }
        let _ = write!(
            s,
            r#"<line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/></svg>"#,
            y(0.0),
            w - right,
            y(0.0)
        );
        s.push('\n');
        s
    }
}

/// A unit for a chart's axis: seconds under one second read as ms. Gives
/// the factor the values are multiplied by and the unit shown.
fn axis_unit(unit: &str, max: f64) -> (f64, String) {
    if unit == "s" && max < 1.0 {
        (1e3, "ms".into())
    } else {
        (1.0, unit.to_string())
    }
}

/// The charts of the command experiments: per endpoint, bars of each
/// metric's mean across cells with min–max whiskers over the runs; each list
/// metric over its elements (e.g. per-token time over the output); and CPU,
/// process-tree RSS and GPU memory over the first measured run of each cell.
pub fn charts(r: &CommandReport) -> Vec<Chart> {
    let mut out = vec![];
    for ep in &r.endpoints {
        let base = format!("command-{}", slug(&ep.name));
        for (metric, unit) in &ep.metrics {
            let bars: Vec<(String, f64, f64, f64)> = ep
                .cells
                .iter()
                .filter_map(|c| {
                    let m = c.metrics.iter().find(|m| &m.metric == metric)?;
                    Some((c.label.clone(), m.mean, m.min, m.max))
                })
                .collect();
            if bars.is_empty() {
                continue;
            }
            let max = bars.iter().map(|b| b.3).fold(0.0, f64::max);
            let (k, shown) = axis_unit(unit, max);
            let b = Bars {
                title: format!("{metric} — {}", ep.name),
                subtitle:
                    "mean over measured runs (list metrics: over every element); whiskers: min–max"
                        .into(),
                y_label: format!("{metric} ({shown})"),
                bars: bars
                    .into_iter()
                    .map(|(n, v, lo, hi)| (n, v * k, lo * k, hi * k))
                    .collect(),
            };
            out.push(Chart {
                file: format!("charts/{base}-{}.svg", slug(metric)),
                title: b.title.clone(),
                svg: b.render(),
            });
        }
        let lists: Vec<&String> = ep
            .cells
            .iter()
            .flat_map(|c| c.lists.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for metric in lists {
            let unit = ep
                .metrics
                .iter()
                .find(|(n, _)| n == metric)
                .map(|(_, u)| u.as_str())
                .unwrap_or("");
            let max = ep
                .cells
                .iter()
                .filter_map(|c| c.lists.get(metric))
                .flatten()
                .fold(0.0f64, |a, b| a.max(*b));
            let (scale, shown) = axis_unit(unit, max);
            let series: Vec<Series> = ep
                .cells
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    let vs = c.lists.get(metric)?;
                    Some(Series {
                        name: c.label.clone(),
                        points: vs
                            .iter()
                            .enumerate()
                            .map(|(k, v)| ((k + 1) as f64, *v * scale))
                            .collect(),
                        colour: i % PALETTE.len(),
                        ..Default::default()
                    })
                })
                .collect();
            let c = XyChart {
                title: format!("{metric} over the output — {}", ep.name),
                subtitle: Some("element by element, mean over measured runs".into()),
                x_label: "element (e.g. token) index".into(),
                y_label: format!("{metric} ({shown})"),
                series,
                ..Default::default()
            };
            out.push(Chart {
                file: format!("charts/{base}-{}-series.svg", slug(metric)),
                title: c.title.clone(),
                svg: c.render(),
            });
        }
        type Pick = fn(&HostPoint) -> Option<f64>;
        let host: [(&str, &str, &str, Pick); 3] = [
            ("cpu", "CPU utilisation", "CPU (% of all cores)", |p| p.1),
            ("rss", "Process-tree resident memory", "RSS (MiB)", |p| p.2),
            (
                "gpu-mem",
                "GPU memory used",
                "GPU memory (GiB, mean over GPUs)",
                |p| p.3,
            ),
        ];
        for (key, what, y_label, pick) in host {
            let series: Vec<Series> = ep
                .cells
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    let points: Vec<(f64, f64)> = c
                        .host
                        .iter()
                        .filter_map(|p| Some((p.0, pick(p)?)))
                        .collect();
                    (!points.is_empty()).then(|| Series {
                        name: c.label.clone(),
                        points,
                        colour: i % PALETTE.len(),
                        ..Default::default()
                    })
                })
                .collect();
            if series.is_empty() {
                continue;
            }
            let c = XyChart {
                title: format!("{what} over a run — {}", ep.name),
                subtitle: Some("the first measured run of each cell, as sampled".into()),
                x_label: "seconds into the run".into(),
                y_label: y_label.into(),
                series,
                ..Default::default()
            };
            out.push(Chart {
                file: format!("charts/{base}-{key}.svg"),
                title: c.title.clone(),
                svg: c.render(),
            });
        }
    }
    out
}

/// The command experiments as a Markdown section (empty without any).
pub fn markdown(r: &CommandReport, charts: &[Chart]) -> String {
    if r.endpoints.is_empty() {
        return String::new();
    }
    let mut out = String::from("## Command experiments\n\n");
    out.push_str("Each cell's metrics are over its measured runs that succeeded: mean ± sample standard deviation (list metrics such as per-token times pool every element). Peak RSS is the program's process tree, sampled; GPU memory is the peak per device less what other processes held before the run, averaged over devices. Cost: instance price × count × the run's wall time; per 1M tokens over the metrics in unit `tokens`.\n\n");
    for (name, header, rows) in tables(r) {
        let _ = writeln!(out, "### {name}\n");
        let _ = writeln!(out, "| {} |", header.join(" | "));
        let _ = writeln!(
            out,
            "|{}|",
            header.iter().map(|_| "---").collect::<Vec<_>>().join("|")
        );
        for row in rows {
            let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out.push('\n');
        let ep = r
            .endpoints
            .iter()
            .find(|e| e.name == name)
            .expect("same order");
        for c in ep.cells.iter().filter(|c| !c.failures.is_empty()) {
            let _ = writeln!(out, "- {}: {}", c.label, c.failures.join("; "));
        }
        if ep.cells.iter().any(|c| !c.failures.is_empty()) {
            out.push('\n');
        }
        let base = format!("charts/command-{}-", slug(&name));
        for c in charts.iter().filter(|c| c.file.starts_with(&base)) {
            let _ = writeln!(out, "![{}]({})\n", c.title, c.file);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(id: &str, label: &str) -> CellRecord {
        CellRecord {
            cell_id: id.into(),
            run_id: "r".into(),
            ordinal: 0,
            label: format!("ep · {label}"),
            endpoint: "ep".into(),
            scenario: "s".into(),
            args: "{}".into(),
            instance_type: Some("c7i.2xlarge".into()),
            instance_count: 1,
            warmup_runs: 1,
            runs: 2,
            usd_per_hour: Some(0.36),
            price_source: None,
            status: "complete".into(),
            status_reason: None,
        }
    }

    fn run(id: &str, run: i64, warmup: bool, status: &str, rss: i64) -> RunRecord {
        RunRecord {
            cell_id: id.into(),
            run,
            warmup,
            started_ns: run * 10_000_000_000,
            ended_ns: run * 10_000_000_000 + 2_000_000_000,
            exit_code: Some(0),
            status: status.into(),
            error: (status != "ok").then(|| "exited with status 1".into()),
            peak_rss_bytes: Some(rss),
            gpu_mem_peak_bytes: None,
            usd: Some(0.0002),
            tokens: Some(32.0),
            usd_per_1m_tokens: Some(6.25),
        }
    }

    fn metric(id: &str, run: i64, metric: &str, idx: i64, value: f64) -> MetricRecord {
        MetricRecord {
            cell_id: id.into(),
            run,
            metric: metric.into(),
            unit: "s".into(),
            idx,
            value,
        }
    }

    #[test]
    fn a_cell_is_summarised_over_its_measured_successful_runs_only() {
        let rows = CommandRows {
            cells: vec![cell("a", "threads=1")],
            runs: vec![
                run("a", 0, true, "ok", 100 << 20),
                run("a", 1, false, "ok", 200 << 20),
                run("a", 2, false, "ok", 300 << 20),
                run("a", 3, false, "failed", 50 << 20),
            ],
            metrics: vec![
                metric("a", 0, "ttft_s", 0, 9.0), // warm-up: left out
                metric("a", 1, "ttft_s", 0, 0.2),
                metric("a", 2, "ttft_s", 0, 0.4),
                metric("a", 1, "tpot_s", 0, 0.01),
                metric("a", 1, "tpot_s", 1, 0.03),
                metric("a", 2, "tpot_s", 0, 0.03),
                metric("a", 2, "tpot_s", 1, 0.05),
            ],
            host: vec![],
        };
        let r = build(&[("b.duckdb".into(), rows)]);
        let c = &r.endpoints[0].cells[0];
        assert_eq!((c.label.as_str(), c.runs, c.runs_ok), ("threads=1", 3, 2));
        assert_eq!(c.failures, ["run 3: failed: exited with status 1"]);
        let ttft = c.metrics.iter().find(|m| m.metric == "ttft_s").unwrap();
        assert_eq!((ttft.count, ttft.mean), (2, 0.30000000000000004));
        assert_eq!(c.lists["tpot_s"], [0.02, 0.04]);
        assert_eq!(c.peak_rss_bytes, Some(300 << 20));
        assert_eq!(c.wall_s, Some(2.0));
        let t = tables(&r);
        assert_eq!(
            t[0].1,
            [
                "cell",
                "runs ok",
                "tpot_s (s)",
                "ttft_s (s)",
                "wall s",
                "peak RSS",
                "GPU mem",
                "$/run",
                "$/1M tok",
                "status"
            ]
        );
        assert_eq!(
            t[0].2[0][0..4],
            ["threads=1", "2/3", "0.03 ± 0.02", "0.3 ± 0.14"]
        );
        let charts = charts(&r);
        let files: Vec<&str> = charts.iter().map(|c| c.file.as_str()).collect();
        assert_eq!(
            files,
            [
                "charts/command-ep-tpot-s.svg",
                "charts/command-ep-ttft-s.svg",
                "charts/command-ep-tpot-s-series.svg"
            ]
        );
        // Seconds under one second are drawn in ms.
        assert!(
            charts[1].svg.contains("<title>threads=1: 300</title>")
                && charts[1].svg.contains("ttft_s (ms)")
        );
    }
}
