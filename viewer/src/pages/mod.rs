//! The pages. Each renders from the loaded bundles' rows and the address
//! bar's parameters; numbers come from `harness_view::model::build`, the
//! function behind `harness report`.

use crate::db::{self, IndexEntry, Source};
use crate::state::{Page, Params};
use crate::url;
use harness_core::capacity::PlanCell;
use harness_core::diff::{compare, Comparison, Stat};
use harness_core::Metric;
use harness_core::RequestSample;
use harness_view::charts;
use harness_view::model::{self, BundleRows, Report, TtftSamples, STATS};
use harness_view::svg::{self, Series, XyChart};
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasm_bindgen::JsCast;

mod commands;
mod diff;
mod heatmap;
mod latency;
mod overview;
mod recommendations;

/// A bundle open in DuckDB-WASM under `alias`.
#[derive(Clone)]
pub struct Loaded {
    pub alias: String,
    pub rows: BundleRows,
    /// Each experiment's requests (by experiment id), read once the budget
    /// has a per-request SLO, whose attainment is counted from them; `None`:
    /// not read.
    pub samples: Option<Arc<BTreeMap<String, Vec<RequestSample>>>>,
}

/// Per-request aggregates fetched from DuckDB after the summary rows: the
/// distribution charts' ECDF points and the diff.
#[derive(Clone, Default)]
struct Extra {
    /// (bundle alias, experiment id, metric id) → ECDF points (ms, %).
    cdfs: BTreeMap<(String, String, String), Vec<(f64, f64)>>,
    diff: Option<Result<diff::DiffView, String>>,
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
    /// Why the heatmap's controls were not applied.
    form_error: RwSignal<Option<String>>,
}

fn set_status(ctx: Ctx, s: Option<String>) {
    ctx.status.set(s);
}

#[component]
pub fn App() -> impl IntoView {
    let params = url::read();
    let errors = if params.ignored.is_empty() {
        vec![]
    } else {
        vec![format!(
            "Ignored in the address: {}",
            params.ignored.join("; ")
        )]
    };
    let ctx = Ctx {
        params: RwSignal::new(params),
        loaded: RwSignal::new(vec![]),
        status: RwSignal::new(Some("starting DuckDB-WASM".into())),
        errors: RwSignal::new(errors),
        index: RwSignal::new(None),
        extra: RwSignal::new(Extra::default()),
        duckdb: RwSignal::new(None),
        form_error: RwSignal::new(None),
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
        Ok(rows) => {
            ctx.loaded.update(|v| {
                v.push(Loaded {
                    alias,
                    rows,
                    samples: None,
                })
            });
            read_samples(ctx).await;
        }
        Err(e) => ctx.errors.update(|v| v.push(e)),
    }
    ctx.extra.set(Extra::default());
}

/// Reads every experiment's requests of each loaded bundle not read yet,
/// when the bundles' budget has a per-request SLO: attainment and goodput
/// are counted from them by `harness_core::slo::attainment`, as `harness
/// report` counts them. An experiment whose requests cannot be read is said
/// so, and its attainment is unknown.
async fn read_samples(ctx: Ctx) {
    let loaded = ctx.loaded.get_untracked();
    let runs: Vec<_> = loaded.iter().flat_map(|l| l.rows.runs.clone()).collect();
    if model::budget_from_runs(&runs).is_none_or(|b| b.constraints.slo.is_none()) {
        return;
    }
    for l in loaded.iter().filter(|l| l.samples.is_none()) {
        set_status(
            ctx,
            Some(format!(
                "reading the requests of {} for SLO attainment",
                l.rows.file
            )),
        );
        let mut got = BTreeMap::new();
        for e in &l.rows.experiments {
            match db::request_samples(&l.alias, &e.experiment_id).await {
                Ok(s) => {
                    got.insert(e.experiment_id.clone(), s);
                }
                Err(err) => ctx.errors.update(|v| {
                    v.push(format!(
                        "{}: the requests of {} could not be read, so its SLO attainment is unknown ({err})",
                        l.rows.file, e.label
                    ))
                }),
            }
        }
        let got = Arc::new(got);
        ctx.loaded.update(|v| {
            if let Some(x) = v.iter_mut().find(|x| x.alias == l.alias) {
                x.samples = Some(got.clone());
            }
        });
    }
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
        (Page::Overview, r) => overview::overview(&loaded, r.as_ref().ok()).into_any(),
        (_, Err(e)) => view! { <p class="error">{e}</p> }.into_any(),
        (Page::Heatmap, Ok(r)) => heatmap::heatmap_page(ctx, &r).into_any(),
        (Page::Recommendations, Ok(r)) => recommendations::recommendations(&r).into_any(),
        (Page::Latency, Ok(r)) => latency::latency(ctx, &loaded, r).into_any(),
        (Page::Diff, Ok(_)) => diff::diff_page(ctx, &loaded).into_any(),
        (Page::Commands, Ok(r)) => commands::commands_page(&r).into_any(),
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

/// The view model for the loaded bundles under the page's budget and range:
/// the bundles' own budget with the limits the controls changed.
fn build(loaded: &[Loaded], p: &Params) -> Result<Report, String> {
    let runs: Vec<_> = loaded.iter().flat_map(|l| l.rows.runs.clone()).collect();
    let base = model::budget_from_runs(&runs)
        .map(|b| b.constraints)
        .unwrap_or_default();
    let constraints = p.constraints(&base);
    let set_here = constraints.is_some();
    let mut r = model::build(
        loaded.iter().map(|l| l.rows.clone()).collect(),
        model::Options {
            constraints,
            heatmap_rpms: p.heatmap_rpms(),
            attainment: Some(Box::new(|i, e, slo| {
                let requests = loaded.get(i)?.samples.as_ref()?.get(&e.experiment_id)?;
                harness_core::slo::attainment(requests, slo)
            })),
            ..Default::default()
        },
    )?;
    if set_here {
        r.budget.source = "set on this page; the bundles' other limits kept".into();
    }
    Ok(r)
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

async fn fetch_extra(ctx: Ctx, page: Page) {
    let loaded = ctx.loaded.get_untracked();
    let params = ctx.params.get_untracked();
    match page {
        Page::Latency => {
            let Ok(r) = build(&loaded, &params) else {
                return;
            };
            let mut q = ctx.extra.get_untracked().cdfs;
            let metrics = [Metric::Ttft, Metric::E2e];
            // What is missing, grouped by bundle: one query per bundle.
            let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (_, _, _, alias, id) in latency::wanted(&loaded, &r) {
                let have = metrics
                    .iter()
                    .all(|m| q.contains_key(&(alias.clone(), id.clone(), m.id().to_string())));
                if !have {
                    missing.entry(alias).or_default().push(id);
                }
            }
            let changed = !missing.is_empty();
            for (alias, ids) in missing {
                set_status(
                    ctx,
                    Some("aggregating the TTFT and e2e distributions".into()),
                );
                let got = db::distributions(&alias, &ids, &metrics).await;
                for id in ids {
                    for m in metrics {
                        let key = (id.clone(), m.id().to_string());
                        let v = got.get(&key).cloned().unwrap_or_default();
                        q.insert((alias.clone(), id.clone(), key.1), v);
                    }
                }
            }
            if changed {
                ctx.extra.update(|x| x.cdfs = q);
            }
            set_status(ctx, None);
        }
        Page::Diff => {
            if ctx.extra.with_untracked(|x| x.diff.is_some()) {
                return;
            }
            set_status(ctx, Some("comparing the bundles".into()));
            let d = diff::diff(&loaded).await;
            ctx.extra.update(|x| x.diff = Some(d));
            set_status(ctx, None);
        }
        _ => {}
    }
}
