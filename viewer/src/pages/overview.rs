//! Overview: each bundle's runs and their provenance, dataset cards and
//! experiments with their status.

use super::*;

pub(super) fn overview(loaded: &[Loaded], r: Option<&Report>) -> impl IntoView {
    let bundles = loaded
        .iter()
        .map(|l| {
            let b = &l.rows;
            let simulated = b.experiments.iter().any(|e| e.simulated);
            let runs = b
                .runs
                .iter()
                .map(|r| {
                    view! {
                        <tr>
                            <td><code>{r.run_id.clone()}</code></td>
                            <td>{r.harness_version.clone()}</td>
                            <td><code>{r.git_revision.clone()}</code></td>
                            <td>{r.started_at.clone()}</td>
                            <td>{r.status.clone()}{r.status_reason.clone().map(|s| format!(": {s}"))}</td>
                            <td>{r.config_file.clone()}</td>
                        </tr>
                        <tr class="config"><td colspan="6">
                            <details><summary>"effective config (secrets masked)"</summary><pre>{r.config_yaml.clone()}</pre></details>
                        </td></tr>
                    }
                })
                .collect::<Vec<_>>();
            let datasets = b
                .datasets
                .iter()
                                .map(|d| {
                    // A synthetic dataset has no rows: prompts are generated per request.
                    let generated = d.kind == "synthetic";
                    let (rows, dropped, per_bucket) = if generated {
                        ("generated".to_string(), "—".to_string(), "—".to_string())
                    } else {
                        (d.rows_total.to_string(), d.rows_dropped.to_string(), d.rows_per_bucket.clone())
                    };
                    view! {
                        <tr>
                            <td>{d.dataset.clone()}</td>
                            <td>{d.kind.clone()}</td>
                            <td>{d.tokenizer_id.clone()}</td>
                            <td class="num">{rows}</td>
                            <td class="num">{dropped}</td>
                            <td>{per_bucket}</td>
                            <td><code title=d.content_sha256.clone()>{d.content_sha256.chars().take(12).collect::<String>()}</code></td>
                        </tr>
                    }
                })
                .collect::<Vec<_>>();
            let exps = b
                .experiments
                .iter()
                .map(|e| {
                    let load = match (e.concurrency, e.rate) {
                        (Some(c), _) => format!("c={c}"),
                        (None, Some(r)) => format!("{} req/s", svg::short(r)),
                        _ => "–".into(),
                    };
                    view! {
                        <tr class=format!("status-{}", e.status)>
                            <td>{e.label.clone()}</td>
                            <td><code title=e.experiment_id.clone()>{e.experiment_id.chars().take(12).collect::<String>()}</code></td>
                            <td>{e.endpoint.clone()}</td>
                            <td>{format!("{} × {}", e.instance_type.clone().unwrap_or_else(|| "–".into()), e.instance_count)}</td>
                            <td>{format!("{}/{}", e.dataset, e.bucket)}</td>
                            <td>{load}</td>
                            <td>{e.status.clone()}</td>
                            <td>{e.status_reason.clone().unwrap_or_default()}</td>
                        </tr>
                    }
                })
                .collect::<Vec<_>>();
            view! {
                <article class="bundle">
                    <h3>{b.file.clone()} {simulated.then(|| view! { <span class="badge" title="numbers come from the embedded simulator, not a real server">"simulated"</span> })}</h3>
                    <h4>"Runs"</h4>
                    <table><thead><tr><th>"run"</th><th>"harness"</th><th>"git"</th><th>"started"</th><th>"status"</th><th>"config"</th></tr></thead><tbody>{runs}</tbody></table>
                    <h4>"Datasets"</h4>
                    <table><thead><tr><th>"dataset"</th><th>"kind"</th><th>"tokenizer"</th><th>"rows"</th><th>"dropped"</th><th>"per bucket"</th><th>"sha256"</th></tr></thead><tbody>{datasets}</tbody></table>
                    <h4>"Experiments"</h4>
                    <table class="experiments"><thead><tr><th>"label"</th><th>"id"</th><th>"endpoint"</th><th>"instances"</th><th>"workload"</th><th>"load"</th><th>"status"</th><th>"why"</th></tr></thead><tbody>{exps}</tbody></table>
                </article>
            }
        })
        .collect::<Vec<_>>();
    let summary = r.map(|r| {
        view! { <p>{format!("{} complete experiment(s); budget: {} ({})", r.experiments.len(), charts::budget_text(r), r.budget.source)}</p> }
    });
    view! { {summary} {bundles} }
}
