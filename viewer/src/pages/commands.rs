//! Command experiments: per command endpoint, the table `harness show`
//! prints (each metric's mean ± sd over measured runs, peak RSS, GPU memory,
//! cost, status) and the report's charts (`harness_view::commands`).

use super::*;
use harness_view::commands;

pub(super) fn commands_page(r: &Report) -> impl IntoView {
    if r.commands.is_empty() {
        return view! { <p>"These bundles hold no command experiment (an endpoint with `provider: command`)."</p> }
            .into_any();
    }
    let charts = commands::charts(&r.commands);
    let sections = commands::tables(&r.commands)
        .into_iter()
        .map(|(name, header, rows)| {
            let head = header
                .iter()
                .map(|h| view! { <th>{h.clone()}</th> })
                .collect::<Vec<_>>();
            let body = rows
                .into_iter()
                .map(|row| {
                    let cells = row
                        .into_iter()
                        .enumerate()
                        .map(|(i, c)| {
                            let class = if i == 0 { "" } else { "num" };
                            view! { <td class=class>{c}</td> }
                        })
                        .collect::<Vec<_>>();
                    view! { <tr>{cells}</tr> }
                })
                .collect::<Vec<_>>();
            let base = format!("charts/command-{}-", charts::slug(&name));
            let figures = charts
                .iter()
                .filter(|c| c.file.starts_with(&base))
                .map(|c| view! { <figure class="chart" inner_html=c.svg.clone()></figure> })
                .collect::<Vec<_>>();
            view! {
                <article class="command" data-endpoint=name.clone()>
                    <h3>{name.clone()}</h3>
                    <table class="commands"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
                    {figures}
                </article>
            }
        })
        .collect::<Vec<_>>();
    view! {
        <p>"Each metric: mean ± sd over the measured runs that succeeded. Peak RSS: the program's process tree. GPU mem: peak less what other processes held before the run, mean over GPUs."</p>
        {sections}
    }
    .into_any()
}
