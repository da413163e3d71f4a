//! The viewer: a static site that opens result bundles in the browser.
//!
//! `main` starts DuckDB-WASM, opens the bundles the address bar names
//! (`?bundle=URL`, repeatable), or lists the site's own index, or takes a file
//! picked or dropped; then each page renders the view model that
//! `harness report` renders, built by the same Rust code (`harness-view`).
//! Everything from a bundle is rendered as text, never as HTML; the only HTML
//! inserted is SVG drawn by `harness_view::svg`, which escapes every label.

mod db;
mod pages;
mod state;
mod url;

fn main() {
    console_panic();
    leptos::mount::mount_to_body(pages::App);
}

/// A Rust panic shows on the page instead of leaving it blank.
fn console_panic() {
    std::panic::set_hook(Box::new(|info| {
        let msg = format!("The viewer failed: {info}");
        if let Some(el) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.get_element_by_id("fatal"))
        {
            el.set_text_content(Some(&msg));
        }
        web_sys::console::error_1(&msg.into());
    }));
}
