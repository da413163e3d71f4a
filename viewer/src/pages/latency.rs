//! Latency and throughput against load; distributions; errors by class.

use super::*;

/// The aliases and ids of the experiments whose distributions are drawn.
pub(super) fn wanted(
    loaded: &[Loaded],
    r: &Report,
) -> Vec<(String, String, String, String, String)> {
    r.ttft_wanted()
        .into_iter()
        .filter_map(|(w, t, i)| {
            let e = &r.experiments[i];
            let alias = loaded.get(e.bundle)?.alias.clone();
            Some((
                w,
                t,
                e.measured.name.clone(),
                alias,
                e.measured.experiment_id.clone(),
            ))
        })
        .collect()
}

pub(super) fn latency(ctx: Ctx, loaded: &[Loaded], mut r: Report) -> impl IntoView {
    let extra = ctx.extra.get();
    let mut e2e = vec![];
    for (w, t, name, alias, id) in wanted(loaded, &r) {
        for (m, into) in [("ttft", &mut r.ttft), ("e2e", &mut e2e)] {
            if let Some(v) = extra.cdfs.get(&(alias.clone(), id.clone(), m.to_string())) {
                into.push(TtftSamples {
                    workload: w.clone(),
                    instance_type: t.clone(),
                    name: name.clone(),
                    cdf: v.clone(),
                });
            }
        }
    }
    let workloads = r
        .analysis
        .workloads
        .iter()
        .map(|w| {
            let mut figs: Vec<XyChart> = [
                ("ttft", "TTFT"),
                ("itl", "ITL"),
                ("tpot", "TPOT"),
                ("e2e", "End-to-end latency"),
                ("dispatch_lag", "Client dispatch lag"),
            ]
            .iter()
            .map(|(m, n)| with_p99(&r, w, m, charts::latency_vs_load(&r, w, m, n)))
            .collect();
            figs.push(charts::distribution(&r, w, "TTFT", &r.ttft));
            figs.push(charts::distribution(&r, w, "End-to-end latency", &e2e));
            let mut errors = errors_by_class(&r, loaded, w);
            errors.x_label = figs[0].x_label.clone();
            figs.push(errors);
            let figs = figs
                .into_iter()
                .map(|c| view! { <figure class="chart" inner_html=c.render()></figure> })
                .collect::<Vec<_>>();
            view! { <h3>{w.workload.clone()}</h3> <div class="charts">{figs}</div> }
        })
        .collect::<Vec<_>>();
    view! {
        <p>"Percentiles are over all measured requests of each load level. Dispatch lag is how late the client itself sent each request; latency \"from schedule\" includes it."</p>
        {workloads}
    }
}

/// Adds each instance type's p99 as a dashed line to a latency chart.
fn with_p99(
    r: &Report,
    w: &harness_core::analysis::WorkloadAnalysis,
    metric: &str,
    mut c: XyChart,
) -> XyChart {
    let types: Vec<String> = c.series.iter().map(|s| s.name.clone()).collect();
    for (i, t) in types.iter().enumerate() {
        let mut pts: Vec<(f64, f64)> = r
            .experiments
            .iter()
            .filter(|e| e.measured.workload() == w.workload && &e.measured.instance_type == t)
            .filter_map(|e| {
                Some((
                    e.measured.load,
                    *e.measured.latency.get(&format!("{metric}.p99"))?,
                ))
            })
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if !pts.is_empty() {
            c.series.push(Series {
                name: format!("{t} p99"),
                points: pts,
                dashed: true,
                colour: i,
                ..Default::default()
            });
        }
    }
    c.subtitle =
        Some("line: p50; band: p50 to p95; dashed: p99 — over all measured requests".into());
    c
}

fn errors_by_class(
    r: &Report,
    loaded: &[Loaded],
    w: &harness_core::analysis::WorkloadAnalysis,
) -> XyChart {
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for row in r
        .experiments
        .iter()
        .filter(|e| e.measured.workload() == w.workload)
    {
        let Some(e) = loaded.get(row.bundle).and_then(|l| {
            l.rows
                .experiments
                .iter()
                .find(|e| e.experiment_id == row.measured.experiment_id)
        }) else {
            continue;
        };
        let n = e.summary.requests.max(1) as f64;
        for (class, count) in &e.summary.errors_by_class {
            series
                .entry(format!("{} {class}", row.measured.instance_type))
                .or_default()
                .push((row.measured.load, 100.0 * *count as f64 / n));
        }
        series
            .entry(format!("{} all classes", row.measured.instance_type))
            .or_default()
            .push((row.measured.load, 100.0 * row.measured.error_rate));
    }
    XyChart {
        title: format!("Errors by class vs load — {}", w.workload),
        subtitle: Some(format!(
            "budget: error rate <= {}%",
            svg::short(r.budget.constraints.max_error_rate * 100.0)
        )),
        x_label: "offered load".into(),
        y_label: "failed requests (%)".into(),
        series: series
            .into_iter()
            .enumerate()
            .map(|(i, (name, mut points))| {
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                Series {
                    name,
                    points,
                    colour: i % svg::PALETTE.len(),
                    ..Default::default()
                }
            })
            .collect(),
        ..Default::default()
    }
}
