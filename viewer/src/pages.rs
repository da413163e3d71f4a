//! The pages. Each renders from the loaded bundles' rows and the address
//! bar's parameters; numbers come from `harness_view::model::build`, the
//! function behind `harness report`.

use crate::db::{self, IndexEntry, Source};
use crate::state::{Page, Params};
use crate::url;
use harness_core::capacity::PlanCell;
use harness_core::diff::{compare, Comparison, Stat};
use harness_core::Metric;
use harness_view::charts;
use harness_view::model::{self, BundleRows, Report, TtftSamples, STATS};
use harness_view::svg::{self, Series, XyChart};
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::collections::BTreeMap;
use wasm_bindgen::JsCast;

/// A bundle open in DuckDB-WASM under `alias`.
#[derive(Clone)]
pub struct Loaded {
    pub alias: String,
    pub rows: BundleRows,
}

/// Per-request aggregates fetched from DuckDB after the summary rows: the
/// distribution charts' quantiles and the diff.
#[derive(Clone, Default)]
struct Extra {
    /// (bundle alias, experiment id, metric id) → sorted ms quantiles.
    quantiles: BTreeMap<(String, String, String), Vec<f64>>,
    diff: Option<Result<DiffView, String>>,
}

#[derive(Clone, Copy)]
struct Ctx {
    params: RwSignal<Params>,
    loaded: RwSignal<Vec<Loaded>>,
    /// What is loading now; `None` when idle.
    status: RwSignal<Option<String>>,
    errors: RwSignal<Vec<String>>,
    index: RwSignal<Option<Vec<IndexEntry>>>,
    extra: RwSignal<Extra>,
    duckdb: RwSignal<Option<String>>,
}

fn set_status(ctx: Ctx, s: Option<String>) {
    ctx.status.set(s);
}

#[component]
pub fn App() -> impl IntoView {
    let ctx = Ctx {
        params: RwSignal::new(url::read()),
        loaded: RwSignal::new(vec![]),
        status: RwSignal::new(Some("starting DuckDB-WASM".into())),
        errors: RwSignal::new(vec![]),
        index: RwSignal::new(None),
        extra: RwSignal::new(Extra::default()),
        duckdb: RwSignal::new(None),
    };
    provide_context(ctx);
    spawn_local(async move {
        let progress = move |s: String| ctx.status.set(Some(s));
        match db::init(progress).await {
            Ok(v) => ctx.duckdb.set(Some(v)),
            Err(e) => {
                ctx.errors.update(|v| v.push(e));
                set_status(ctx, None);
                return;
            }
        }
        let urls = ctx.params.get_untracked().bundles;
        if urls.is_empty() {
            ctx.index.set(db::index().await);
        }
        for u in urls {
            open(ctx, file_name(&u), Source::Url(u)).await;
        }
        set_status(ctx, None);
    });
    // Per-request aggregates follow the loaded bundles and the page.
    Effect::new(move |_| {
        let page = ctx.params.with(|p| p.page);
        let n = ctx.loaded.with(Vec::len);
        if n > 0 && matches!(page, Page::Latency | Page::Diff) {
            spawn_local(fetch_extra(ctx, page));
        }
    });
    view! {
        <header>
            <h1>"LLM cost benchmark — results"</h1>
            <Nav/>
        </header>
        <Status/>
        <main>{move || page_view(ctx)}</main>
        <footer>
            {move || ctx.duckdb.get().map(|v| format!("DuckDB-WASM {v}; bundles are read in this browser, nothing is uploaded."))}
        </footer>
    }
}

/// The last path segment of a URL, for display.
fn file_name(u: &str) -> String {
    u.split(['?', '#'])
        .next()
        .unwrap_or(u)
        .rsplit('/')
        .next()
        .unwrap_or(u)
        .to_string()
}

/// Attaches and reads one bundle; an error is shown, never a blank page.
async fn open(ctx: Ctx, name: String, src: Source) {
    let alias = format!(
        "b{}",
        ctx.loaded.with_untracked(Vec::len) + ctx.errors.with_untracked(Vec::len)
    );
    set_status(ctx, Some(format!("loading {name}")));
    match db::load(&alias, &name, src).await {
        Ok(rows) => ctx.loaded.update(|v| v.push(Loaded { alias, rows })),
        Err(e) => ctx.errors.update(|v| v.push(e)),
    }
    ctx.extra.set(Extra::default());
}

#[component]
fn Nav() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    let links = Page::ALL
        .into_iter()
        .map(|p| {
            let href = move || {
                let mut q = ctx.params.get();
                q.page = p;
                url::query(&q)
            };
            let current = move || ctx.params.with(|q| q.page == p);
            view! {
                <a href=href class:current=current data-page=p.id()
                   on:click=move |ev| {
                       ev.prevent_default();
                       ctx.params.update(|q| q.page = p);
                       url::write(&ctx.params.get_untracked());
                   }>{p.title()}</a>
            }
        })
        .collect::<Vec<_>>();
    view! { <nav>{links}</nav> }
}

#[component]
fn Status() -> impl IntoView {
    let ctx = expect_context::<Ctx>();
    view! {
        <div id="fatal" class="error" role="alert"></div>
        {move || ctx.status.get().map(|s| view! {
            <p class="status" id="status" aria-busy="true"><span class="spinner"></span>{s}</p>
        })}
        {move || ctx.errors.get().into_iter().map(|e| view! { <p class="error" role="alert">{e}</p> }).collect::<Vec<_>>()}
    }
}

fn page_view(ctx: Ctx) -> AnyView {
    let loaded = ctx.loaded.get();
    let params = ctx.params.get();
    let busy = ctx.status.with(Option::is_some);
    if loaded.is_empty() {
        return if busy {
            view! { <p></p> }.into_any()
        } else {
            open_view(ctx).into_any()
        };
    }
    let report = build(&loaded, &params);
    let body = match (params.page, report) {
        (Page::Overview, r) => overview(&loaded, r.as_ref().ok()).into_any(),
        (_, Err(e)) => view! { <p class="error">{e}</p> }.into_any(),
        (Page::Heatmap, Ok(r)) => heatmap_page(ctx, &r).into_any(),
        (Page::Recommendations, Ok(r)) => recommendations(&r).into_any(),
        (Page::Latency, Ok(r)) => latency(ctx, &loaded, r).into_any(),
        (Page::Diff, Ok(_)) => diff_page(ctx, &loaded).into_any(),
    };
    view! {
        <section id="page" data-page=params.page.id()>
            <h2>{params.page.title()}</h2>
            {body}
        </section>
        {open_view(ctx)}
    }
    .into_any()
}

/// The view model for the loaded bundles under the page's budget and range.
fn build(loaded: &[Loaded], p: &Params) -> Result<Report, String> {
    model::build(
        loaded.iter().map(|l| l.rows.clone()).collect(),
        model::Options {
            constraints: p.constraints(),
            heatmap_rpms: p.heatmap_rpms(),
            ..Default::default()
        },
    )
}

/// The index of the published site, and opening a file from disk.
fn open_view(ctx: Ctx) -> impl IntoView {
    let index = ctx.index.get().map(|entries| {
        let rows = entries
            .into_iter()
            .map(|e| {
                let mut p = ctx.params.get_untracked();
                p.bundles = vec![e.path.clone()];
                let href = url::query(&p);
                view! {
                    <tr>
                        <td><a href=href class="bundle-link">{e.file.clone()}</a></td>
                        <td class="num">{e.experiments}</td>
                        <td>{e.runs.join(", ")}</td>
                        <td class="num">{format!("{:.1} MB", e.bytes as f64 / 1e6)}</td>
                        <td>{if e.simulated { "simulated" } else { "" }}</td>
                    </tr>
                }
            })
            .collect::<Vec<_>>();
        view! {
            <section id="index">
                <h2>"Published bundles"</h2>
                <table><thead><tr><th>"bundle"</th><th>"experiments"</th><th>"runs"</th><th>"size"</th><th></th></tr></thead>
                <tbody>{rows}</tbody></table>
            </section>
        }
    });
    let on_pick = move |ev: leptos::ev::Event| {
        let Some(input) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        else {
            return;
        };
        if let Some(files) = input.files() {
            open_files(ctx, files);
        }
    };
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        if let Some(files) = ev.data_transfer().and_then(|d| d.files()) {
            open_files(ctx, files);
        }
    };
    view! {
        {index}
        <section id="open" on:dragover=|ev: leptos::ev::DragEvent| ev.prevent_default() on:drop=on_drop>
            <h2>"Open a bundle"</h2>
            <p>"Choose a " <code>".duckdb"</code> " result bundle, drop one here, or add "
               <code>"?bundle=URL"</code> " to the address (repeatable). The file stays in this browser."</p>
            <input type="file" id="file" accept=".duckdb" multiple=true on:change=on_pick/>
        </section>
    }
}

fn open_files(ctx: Ctx, files: web_sys::FileList) {
    let files: Vec<web_sys::File> = (0..files.length()).filter_map(|i| files.get(i)).collect();
    spawn_local(async move {
        for f in files {
            let name = f.name();
            set_status(ctx, Some(format!("reading {name}")));
            match wasm_bindgen_futures::JsFuture::from(f.array_buffer()).await {
                Ok(buf) => {
                    let bytes = js_sys::Uint8Array::new(&buf).to_vec();
                    open(ctx, name, Source::Bytes(bytes)).await;
                }
                Err(_) => ctx
                    .errors
                    .update(|v| v.push(format!("{name} could not be read from disk"))),
            }
        }
        set_status(ctx, None);
    });
}

// ---------------------------------------------------------------- overview

fn overview(loaded: &[Loaded], r: Option<&Report>) -> impl IntoView {
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
                    view! {
                        <tr>
                            <td>{d.dataset.clone()}</td>
                            <td>{d.kind.clone()}</td>
                            <td>{d.tokenizer_id.clone()}</td>
                            <td class="num">{d.rows_total}</td>
                            <td class="num">{d.rows_dropped}</td>
                            <td>{d.rows_per_bucket.clone()}</td>
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

// ---------------------------------------------------------------- heatmap

fn heatmap_page(ctx: Ctx, r: &Report) -> impl IntoView {
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
                .or_else(|| {
                    doc.as_ref()
                        .and_then(|d| d.get_element_by_id(id))
                        .and_then(|e| e.get_attribute("data-value"))
                })
                .unwrap_or_default()
        };
        let metric = doc
            .as_ref()
            .and_then(|d| d.get_element_by_id("budget-metric"))
            .and_then(|e| e.dyn_into::<web_sys::HtmlSelectElement>().ok())
            .map(|s| s.value())
            .unwrap_or_default();
        let mut q = ctx.params.get_untracked();
        let pairs = vec![
            ("page".to_string(), "heatmap".to_string()),
            ("budget".into(), metric),
            ("ms".into(), val("budget-ms")),
            ("err".into(), val("budget-err")),
            (
                "rpm".into(),
                format!("{}..{}", val("rpm-lo"), val("rpm-hi")),
            ),
            ("steps".into(), val("rpm-steps")),
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
        <form id="controls" on:submit=apply>
            <label>"latency budget " <select id="budget-metric">{options}</select></label>
            <label>" ≤ " <input id="budget-ms" type="number" min="0" step="any" value=current_ms.map(|x| x.to_string()).unwrap_or_default()/> " ms"</label>
            <label>" error rate ≤ " <input id="budget-err" type="number" min="0" max="100" step="any" value=err.to_string()/> " %"</label>
            <label>" target req/min " <input id="rpm-lo" type="number" min="0" step="any" value=lo.to_string()/>
                " to " <input id="rpm-hi" type="number" min="0" step="any" value=hi.to_string()/></label>
            <label>" in " <input id="rpm-steps" type="number" min="1" max="50" value=steps.to_string()/> " steps"</label>
            <button type="submit" id="apply">"Apply"</button>
        </form>
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

// ---------------------------------------------------------- recommendations

fn recommendations(r: &Report) -> impl IntoView {
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

// ------------------------------------------------------------------ latency

/// The aliases and ids of the experiments whose distributions are drawn.
fn wanted(loaded: &[Loaded], r: &Report) -> Vec<(String, String, String, String, String)> {
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

async fn fetch_extra(ctx: Ctx, page: Page) {
    let loaded = ctx.loaded.get_untracked();
    let params = ctx.params.get_untracked();
    match page {
        Page::Latency => {
            let Ok(r) = build(&loaded, &params) else {
                return;
            };
            let mut q = ctx.extra.get_untracked().quantiles;
            let mut changed = false;
            for (_, _, _, alias, id) in wanted(&loaded, &r) {
                for m in [Metric::Ttft, Metric::E2e] {
                    let key = (alias.clone(), id.clone(), m.id().to_string());
                    if let std::collections::btree_map::Entry::Vacant(slot) = q.entry(key) {
                        set_status(ctx, Some(format!("aggregating {} distributions", m.id())));
                        slot.insert(db::quantiles(&alias, &id, m).await);
                        changed = true;
                    }
                }
            }
            if changed {
                ctx.extra.update(|x| x.quantiles = q);
            }
            set_status(ctx, None);
        }
        Page::Diff => {
            if ctx.extra.with_untracked(|x| x.diff.is_some()) {
                return;
            }
            set_status(ctx, Some("comparing the bundles".into()));
            let d = diff(&loaded).await;
            ctx.extra.update(|x| x.diff = Some(d));
            set_status(ctx, None);
        }
        _ => {}
    }
}

fn latency(ctx: Ctx, loaded: &[Loaded], mut r: Report) -> impl IntoView {
    let extra = ctx.extra.get();
    let mut e2e = vec![];
    for (w, t, name, alias, id) in wanted(loaded, &r) {
        for (m, into) in [("ttft", &mut r.ttft), ("e2e", &mut e2e)] {
            if let Some(v) = extra
                .quantiles
                .get(&(alias.clone(), id.clone(), m.to_string()))
            {
                into.push(TtftSamples {
                    workload: w.clone(),
                    instance_type: t.clone(),
                    name: name.clone(),
                    samples: v.clone(),
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
            figs.push(errors_by_class(&r, loaded, w));
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

// --------------------------------------------------------------------- diff

#[derive(Clone)]
struct DiffRow {
    label: String,
    metric: &'static str,
    stat: Stat,
    cmp: Comparison,
}

#[derive(Clone)]
struct DiffView {
    old: String,
    new: String,
    rows: Vec<DiffRow>,
    not_complete_in_new: Vec<String>,
    compared: usize,
}

/// Threshold of a regression, as `harness diff`'s default `--threshold 5%`.
const THRESHOLD: f64 = 0.05;

/// The first two bundles compared as `harness diff OLD NEW` compares them:
/// matched by experiment id, per metric (TTFT, e2e) and statistic (p50, p95),
/// the same bootstrap with the same seeds.
async fn diff(loaded: &[Loaded]) -> Result<DiffView, String> {
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
        compared,
    })
}

fn diff_page(ctx: Ctx, loaded: &[Loaded]) -> AnyView {
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
    view! {
        <p id="diff-summary">{format!("{} (old) against {} (new): {} experiment(s) compared, {regressions} regression(s); threshold {}%, percentile bootstrap ({} resamples) of new − old, significant when the 95% interval excludes 0.",
            d.old, d.new, d.compared, THRESHOLD * 100.0, harness_core::diff::ITERATIONS)}</p>
        <ul>{broken}</ul>
        <table class="diff"><thead><tr><th>"experiment"</th><th>"metric"</th><th>"stat"</th><th>"old (ms)"</th><th>"new (ms)"</th><th>"change"</th><th>"95% CI of new − old (ms)"</th><th>"verdict"</th></tr></thead>
        <tbody>{rows}</tbody></table>
    }
    .into_any()
}
