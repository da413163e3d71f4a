//! Recommendations per instance type, failed criteria, the Pareto front.

use super::*;

pub(super) fn recommendations(r: &Report) -> impl IntoView {
    let find = |name: &str| r.experiments.iter().find(|e| e.measured.name == name);
    let budget_key = r.budget.constraints.latency.first().map(|(k, _)| k.clone());
    let workloads = r
        .analysis
        .workloads
        .iter()
        .map(|w| {
            let best = w.best.clone();
            let choices = w
                .choices
                .iter()
                .map(|c| {
                    let e = c.chosen.as_deref().and_then(find);
                    let lat = match (&budget_key, e) {
                        (Some(k), Some(e)) => e.measured.latency.get(k).map(|v| format!("{v:.1}")),
                        // Without a latency limit, the SLO's attainment is what the budget judged.
                        (None, Some(e)) => e.measured.attainment.map(|a| format!("{:.2}", a.fraction * 100.0)),
                        _ => None,
                    };
                    let is_best = best.is_some() && c.chosen == best;
                    view! {
                        <tr class:best=is_best data-type=c.instance_type.clone()>
                            <td>{c.instance_type.clone()}</td>
                            <td class="chosen">{c.chosen.clone().unwrap_or_else(|| "none within budget".into())}{is_best.then_some(" ★")}</td>
                            <td>{e.map(|e| e.load_label()).unwrap_or_default()}</td>
                            <td class="num" data-field="throughput">{e.map(|e| format!("{:.3}", e.measured.throughput)).unwrap_or_default()}</td>
                            <td class="num" data-field="error_rate">{e.map(|e| format!("{:.2}", e.measured.error_rate * 100.0)).unwrap_or_default()}</td>
                            <td class="num" data-field="latency">{lat.unwrap_or_default()}</td>
                            <td class="num" data-field="usd_per_hour">{e.and_then(|e| e.measured.usd_per_hour).map(|x| format!("{x:.4}")).unwrap_or_default()}</td>
                            <td class="num" data-field="usd_per_10k_requests">{e.and_then(|e| e.usd_per_10k_requests).map(|x| format!("{x:.4}")).unwrap_or_default()}</td>
                        </tr>
                    }
                })
                .collect::<Vec<_>>();
            let rejected = w
                .rejected
                .iter()
                .map(|x| view! { <tr><td>{x.name.clone()}</td><td>{x.failed.join("; ")}</td></tr> })
                .collect::<Vec<_>>();
            let pareto = charts::charts(r)
                .into_iter()
                .find(|c| c.file == format!("charts/{}-cost-throughput.svg", charts::slug(&w.workload)))
                .map(|c| view! { <figure class="chart" inner_html=c.svg></figure> });
            view! {
                <h3>{w.workload.clone()}</h3>
                <table class="recommendations" data-workload=w.workload.clone()>
                    <thead><tr><th>"instance type"</th><th>"chosen configuration"</th><th>"load"</th><th>"throughput (req/s)"</th>
                        <th>"errors (%)"</th><th>{match (&budget_key, &r.budget.constraints.slo) {
                            (Some(k), _) => format!("{k} (ms)"),
                            (None, Some(_)) => "SLO attainment (%)".to_string(),
                            (None, None) => "latency (ms)".to_string(),
                        }}</th>
                        <th>"$/hour"</th><th>"$/10k requests"</th></tr></thead>
                    <tbody>{choices}</tbody>
                </table>
                <h4>"Failed criteria"</h4>
                {if rejected.is_empty() {
                    view! { <p>"Every configuration met the budget."</p> }.into_any()
                } else {
                    view! { <table class="rejected"><thead><tr><th>"configuration"</th><th>"failed"</th></tr></thead><tbody>{rejected}</tbody></table> }.into_any()
                }}
                <h4>"Pareto front: cost against throughput"</h4>
                {pareto}
            }
        })
        .collect::<Vec<_>>();
    view! {
        <p class="budget">{format!("Budget: {} ({}). Prices: {}.", charts::budget_text(r), r.budget.source, r.pricing.label)}</p>
        {workloads}
        {attainment(r)}
    }
}

/// Every experiment's SLO attainment (with its 95% Wilson interval) and
/// goodput, as `harness report`'s "SLO attainment and goodput" section,
/// when the budget has a per-request SLO.
fn attainment(r: &Report) -> Option<impl IntoView> {
    let slo = r.budget.constraints.slo.as_ref()?;
    let pct = |x: f64| format!("{:.2}", x * 100.0);
    let rows = r
        .experiments
        .iter()
        .map(|e| {
            let a = e.measured.attainment;
            let cell = |f: &dyn Fn(&harness_core::slo::Attainment) -> String| {
                a.as_ref().map(f).unwrap_or_else(|| "unknown".into())
            };
            view! {
                <tr data-experiment=e.measured.name.clone()>
                    <td>{e.measured.name.clone()}</td>
                    <td class="num" data-field="measured">{cell(&|a| a.measured.to_string())}</td>
                    <td class="num" data-field="attained">{cell(&|a| a.attained.to_string())}</td>
                    <td class="num" data-field="attainment">{cell(&|a| pct(a.fraction))}</td>
                    <td class="num" data-field="interval">{cell(&|a| format!("{} – {}", pct(a.low), pct(a.high)))}</td>
                    <td class="num" data-field="goodput">{cell(&|a| format!("{:.3}", a.goodput))}</td>
                    <td class="num" data-field="throughput">{format!("{:.3}", e.measured.throughput)}</td>
                </tr>
            }
        })
        .collect::<Vec<_>>();
    let limits = charts::slo_text(slo);
    Some(view! {
        <h3>"SLO attainment and goodput"</h3>
        <p>{format!("A request attains the SLO ({limits}) when it succeeded and met every limit. Attainment: attaining / measured requests, with its 95% Wilson interval; goodput: attaining requests per second over the measurement window. Counted in this browser from each experiment's requests.")}</p>
        <table class="attainment">
            <thead><tr><th>"experiment"</th><th>"measured"</th><th>"attained"</th><th>"attainment (%)"</th>
                <th>"95% interval (%)"</th><th>"goodput (req/s)"</th><th>"throughput (req/s)"</th></tr></thead>
            <tbody>{rows}</tbody>
        </table>
    })
}
