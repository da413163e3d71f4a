//! The price-performance heatmap, with the budget and target-range controls.

use super::*;

pub(super) fn heatmap_page(ctx: Ctx, r: &Report) -> impl IntoView {
    let p = ctx.params.get_untracked();
    let current_key = p
        .budget
        .clone()
        .or_else(|| r.budget.constraints.latency.first().map(|(k, _)| k.clone()))
        .unwrap_or_else(|| "e2e.p95".into());
    let current_ms = p.ms.or_else(|| {
        r.budget
            .constraints
            .latency
            .iter()
            .find(|(k, _)| *k == current_key)
            .map(|(_, v)| *v)
    });
    let err = p
        .err_pct
        .unwrap_or(r.budget.constraints.max_error_rate * 100.0);
    let rpms = &r.analysis.target_rpms;
    let (lo, hi) = p.rpm.unwrap_or((
        rpms.first().copied().unwrap_or(60.0),
        rpms.last().copied().unwrap_or(6000.0),
    ));
    let steps = p.steps.unwrap_or(rpms.len().max(1));
    let keys: Vec<String> = model::latency_metrics()
        .flat_map(|m| STATS.iter().map(move |s| format!("{}.{s}", m.id())))
        .collect();
    let options = keys
        .into_iter()
        .map(|k| {
            let sel = k == current_key;
            let v = k.clone();
            view! { <option value=v selected=sel>{k}</option> }
        })
        .collect::<Vec<_>>();
    let apply = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let doc = web_sys::window().and_then(|w| w.document());
        let val = |id: &str| {
            doc.as_ref()
                .and_then(|d| d.get_element_by_id(id))
                .and_then(|e| e.dyn_into::<web_sys::HtmlInputElement>().ok())
                .map(|i| i.value())
                .unwrap_or_default()
        };
        let metric = doc
            .as_ref()
            .and_then(|d| d.get_element_by_id("budget-metric"))
            .and_then(|e| e.dyn_into::<web_sys::HtmlSelectElement>().ok())
            .map(|s| s.value())
            .unwrap_or_default();
        let (ms, err, lo, hi, steps) = (
            val("budget-ms"),
            val("budget-err"),
            val("rpm-lo"),
            val("rpm-hi"),
            val("rpm-steps"),
        );
        if let Some(e) = Params::check_controls(&ms, &err, &lo, &hi, &steps) {
            ctx.form_error.set(Some(format!("Not applied: {e}.")));
            return;
        }
        ctx.form_error.set(None);
        let mut q = ctx.params.get_untracked();
        let pairs = vec![
            ("page".to_string(), "heatmap".to_string()),
            ("budget".into(), metric),
            ("ms".into(), ms),
            ("err".into(), err),
            ("rpm".into(), format!("{lo}..{hi}")),
            ("steps".into(), steps),
        ];
        let parsed = Params::from_pairs(&pairs);
        q.budget = parsed.budget;
        q.ms = parsed.ms;
        q.err_pct = parsed.err_pct;
        q.rpm = parsed.rpm;
        q.steps = parsed.steps;
        url::write(&q);
        ctx.params.set(q);
    };
    let workloads = r
        .analysis
        .workloads
        .iter()
        .map(|w| heatmap_table(r, w))
        .collect::<Vec<_>>();
    view! {
        <form id="controls" novalidate=true on:submit=apply>
            <label>"latency budget " <select id="budget-metric">{options}</select></label>
            <label>" ≤ " <input id="budget-ms" type="number" min="0" step="any" value=current_ms.map(|x| x.to_string()).unwrap_or_default()/> " ms"</label>
            <label>" error rate ≤ " <input id="budget-err" type="number" min="0" max="100" step="any" value=err.to_string()/> " %"</label>
            <label>" target req/min " <input id="rpm-lo" type="number" min="0" step="any" value=lo.to_string()/>
                " to " <input id="rpm-hi" type="number" min="0" step="any" value=hi.to_string()/></label>
            <label>" in " <input id="rpm-steps" type="number" min="1" max="50" value=steps.to_string()/> " steps"</label>
            <button type="submit" id="apply">"Apply"</button>
        </form>
        {move || ctx.form_error.get().map(|e| view! { <p class="error" id="form-error" role="alert">{e}</p> })}
        <p class="budget" id="budget-text">{format!("Budget: {} ({})", charts::budget_text(r), r.budget.source)}</p>
        <p class="legend">"Each cell: instances needed and $/hour to serve the target rate within the budget. ★ best choice (outlined), $ least cost, # fewest instances, – budget never met or no price."</p>
        {workloads}
    }
}

fn heatmap_table(r: &Report, w: &harness_core::analysis::WorkloadAnalysis) -> impl IntoView {
    let types: Vec<String> = w.capacity.iter().map(|c| c.instance_type.clone()).collect();
    let shade = charts::cost_shade(w);
    let head = types
        .iter()
        .map(|t| {
            let cap = w
                .capacity
                .iter()
                .find(|c| &c.instance_type == t)
                .and_then(|c| c.capacity.as_ref())
                .map(|c| {
                    format!(
                        "{} req/min per instance",
                        svg::short(c.per_instance_rps * 60.0)
                    )
                })
                .unwrap_or_else(|| "budget never met".into());
            view! { <th title=cap>{t.clone()}</th> }
        })
        .collect::<Vec<_>>();
    let rows = r
        .analysis
        .target_rpms
        .iter()
        .map(|rpm| {
            let cells = types
                .iter()
                .map(|t| {
                    let c = w
                        .heatmap
                        .iter()
                        .find(|c| &c.instance_type == t && c.target_rpm == *rpm);
                    cell(c, &shade)
                })
                .collect::<Vec<_>>();
            view! { <tr><th class="num">{svg::short(*rpm)}</th>{cells}</tr> }
        })
        .collect::<Vec<_>>();
    view! {
        <h3>{format!("Instances and $/hour to serve each rate — {}", w.workload)}</h3>
        <table class="heatmap" data-workload=w.workload.clone()>
            <thead><tr><th>"req/min"</th>{head}</tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

fn cell(c: Option<&PlanCell>, shade: &dyn Fn(Option<f64>) -> Option<f64>) -> AnyView {
    let Some(c) = c else {
        return view! { <td class="cell empty">"–"</td> }.into_any();
    };
    let marks = charts::marks(c, "");
    let style = format!("background:{}", svg::shade_fill(shade(c.usd_per_hour)));
    let instances = c.instances.map(|n| n.to_string()).unwrap_or_default();
    let usd = c
        .usd_per_hour
        .map(|h| format!("{h:.2}"))
        .unwrap_or_default();
    let title = format!(
        "{} at {} req/min: {}; {}",
        c.instance_type,
        svg::short(c.target_rpm),
        c.instances
            .map(|n| format!("{n} instance(s)"))
            .unwrap_or_else(|| "budget never met".into()),
        c.usd_per_hour
            .map(|h| format!("${h:.2}/hour"))
            .unwrap_or_else(|| "no price".into())
    );
    view! {
        <td class="cell" class:best=c.best_choice style=style title=title
            data-type=c.instance_type.clone() data-rpm=c.target_rpm.to_string()
            data-instances=instances data-usd-per-hour=usd data-marks=marks.clone()>
            <span class="n">{c.instances.map(|n| format!("{n} ×")).unwrap_or_else(|| "–".into())}{(!marks.is_empty()).then(|| format!(" {marks}"))}</span>
            <span class="usd">{c.usd_per_hour.map(|h| format!("${h:.2}/h")).unwrap_or_else(|| "–".into())}</span>
        </td>
    }
    .into_any()
}
