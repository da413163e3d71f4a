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
                        <th>"errors (%)"</th><th>{format!("{} (ms)", budget_key.clone().unwrap_or_else(|| "latency".into()))}</th>
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
    }
}
