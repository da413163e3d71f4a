//! The address bar: reading the query string and writing it back without a
//! reload (`history.replaceState`), so each view stays a shareable URL.

use crate::state::Params;

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    js_sys::decode_uri_component(&s)
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or(s)
}

fn encode(s: &str) -> String {
    js_sys::encode_uri_component(s).into()
}

/// The current page's parameters.
pub fn read() -> Params {
    let search = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default();
    let pairs: Vec<(String, String)> = search
        .trim_start_matches('?')
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    Params::from_pairs(&pairs)
}

/// `?k=v&...` for `p`.
pub fn query(p: &Params) -> String {
    let q: Vec<String> = p
        .to_pairs()
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    format!("?{}", q.join("&"))
}

/// Writes `p` into the address bar without reloading.
pub fn write(p: &Params) {
    if let Some(h) = web_sys::window().and_then(|w| w.history().ok()) {
        let _ = h.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&query(p)));
    }
}
