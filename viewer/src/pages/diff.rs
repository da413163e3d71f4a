//! Two bundles compared as `harness diff` compares them.

use super::*;

#[derive(Clone)]
struct DiffRow {
    label: String,
    metric: &'static str,
    stat: Stat,
    cmp: Comparison,
}

#[derive(Clone)]
pub(super) struct DiffView {
    old: String,
    new: String,
    rows: Vec<DiffRow>,
    not_complete_in_new: Vec<String>,
    /// Complete experiments found in one bundle only, by label.
    only_old: Vec<String>,
    only_new: Vec<String>,
    compared: usize,
}

/// Threshold of a regression, as `harness diff`'s default `--threshold 5%`.
const THRESHOLD: f64 = 0.05;

/// The first two bundles compared as `harness diff OLD NEW` compares them:
/// matched by experiment id, per metric (TTFT, e2e) and statistic (p50, p95),
/// the same bootstrap with the same seeds.
pub(super) async fn diff(loaded: &[Loaded]) -> Result<DiffView, String> {
    let [old, new, ..] = loaded else {
        return Err(
            "The diff compares two bundles: open a second one (another ?bundle=URL, or a file)."
                .into(),
        );
    };
    let complete = |l: &Loaded| -> BTreeMap<String, String> {
        l.rows
            .experiments
            .iter()
            .filter(|e| e.status == "complete")
            .map(|e| (e.experiment_id.clone(), e.label.clone()))
            .collect()
    };
    let (co, cn) = (complete(old), complete(new));
    let not_complete_in_new = co
        .keys()
        .filter(|id| !cn.contains_key(*id))
        .filter_map(|id| new.rows.experiments.iter().find(|e| &e.experiment_id == id))
        .map(|e| format!("{} ({})", e.label, e.status))
        .collect();
    let ids = |l: &Loaded| -> Vec<String> {
        l.rows
            .experiments
            .iter()
            .map(|e| e.experiment_id.clone())
            .collect()
    };
    let (all_old, all_new) = (ids(old), ids(new));
    let only_old = co
        .iter()
        .filter(|(id, _)| !all_new.contains(id))
        .map(|(_, l)| l.clone())
        .collect();
    let only_new = cn
        .iter()
        .filter(|(id, _)| !all_old.contains(id))
        .map(|(_, l)| l.clone())
        .collect();
    let mut rows = vec![];
    let mut compared = 0;
    for (id, label) in &co {
        if !cn.contains_key(id) {
            continue;
        }
        compared += 1;
        for m in [Metric::Ttft, Metric::E2e] {
            let so = db::values_as_recorded(&old.alias, id, m).await;
            let sn = db::values_as_recorded(&new.alias, id, m).await;
            for stat in [Stat::P50, Stat::P95] {
                let seed = harness_core::diff::seed(id, m.id(), stat);
                if let Some(cmp) = compare(
                    &so,
                    &sn,
                    stat,
                    THRESHOLD,
                    harness_core::diff::ITERATIONS,
                    seed,
                ) {
                    rows.push(DiffRow {
                        label: label.clone(),
                        metric: m.id(),
                        stat,
                        cmp,
                    });
                }
            }
        }
    }
    Ok(DiffView {
        old: old.rows.file.clone(),
        new: new.rows.file.clone(),
        rows,
        not_complete_in_new,
        only_old,
        only_new,
        compared,
    })
}

pub(super) fn diff_page(ctx: Ctx, loaded: &[Loaded]) -> AnyView {
    if loaded.len() < 2 {
        return view! { <p class="note">"The diff compares two bundles: open a second one (another " <code>"?bundle=URL"</code> ", or a file below)."</p> }.into_any();
    }
    let Some(d) = ctx.extra.with(|x| x.diff.clone()) else {
        return view! { <p>"Comparing…"</p> }.into_any();
    };
    let d = match d {
        Ok(d) => d,
        Err(e) => return view! { <p class="error">{e}</p> }.into_any(),
    };
    let regressions =
        d.rows.iter().filter(|r| r.cmp.regression).count() + d.not_complete_in_new.len();
    let rows = d
        .rows
        .iter()
        .map(|r| {
            let c = &r.cmp;
            let verdict = c.verdict(THRESHOLD);
            view! {
                <tr class:regression=c.regression data-metric=r.metric data-stat=r.stat.name()>
                    <td>{r.label.clone()}</td><td>{r.metric}</td><td>{r.stat.name()}</td>
                    <td class="num">{format!("{:.1}", c.old)}</td><td class="num">{format!("{:.1}", c.new)}</td>
                    <td class="num">{format!("{:+.1}%", c.change * 100.0)}</td>
                    <td class="num">{format!("[{:+.1}, {:+.1}]", c.ci_low, c.ci_high)}</td>
                    <td class="verdict">{verdict}</td>
                </tr>
            }
        })
        .collect::<Vec<_>>();
    let broken = d
        .not_complete_in_new
        .iter()
        .map(|b| view! { <li class="regression">{format!("{b}: complete in the old bundle, not in the new one")}</li> })
        .collect::<Vec<_>>();
    let only = |title: &'static str, v: &[String]| {
        (!v.is_empty()).then(|| {
            view! { <p class="note">{format!("{title} ({}): {}", v.len(), v.join(", "))}</p> }
        })
    };
    let only_old = only("Only in the old bundle, not compared", &d.only_old);
    let only_new = only("Only in the new bundle, not compared", &d.only_new);
    view! {
        <p id="diff-summary">{format!("{} (old) against {} (new): {} experiment(s) compared, {regressions} regression(s); threshold {}%, percentile bootstrap ({} resamples) of new − old, significant when the 95% interval excludes 0.",
            d.old, d.new, d.compared, THRESHOLD * 100.0, harness_core::diff::ITERATIONS)}</p>
        <ul>{broken}</ul>
        {only_old}
        {only_new}
        <table class="diff"><thead><tr><th>"experiment"</th><th>"metric"</th><th>"stat"</th><th>"old (ms)"</th><th>"new (ms)"</th><th>"change"</th><th>"95% CI of new − old (ms)"</th><th>"verdict"</th></tr></thead>
        <tbody>{rows}</tbody></table>
    }
    .into_any()
}
