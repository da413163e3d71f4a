// The viewer's one door to DuckDB-WASM (wasm-bindgen copies this file into
// pkg/snippets/). It loads the esbuild bundle of shim.js from the site's own
// vendor/duckdb/ folder, relative to the page, so the site works offline and
// under any sub-path. Results cross into Rust as JSON text.
let shim = null;
async function load() {
  if (!shim) shim = await import(new URL('vendor/duckdb/duckdb-shim.mjs', document.baseURI).href);
  return shim;
}
export async function ddb_init(on_progress) {
  const s = await load();
  await s.init(new URL('vendor/duckdb', document.baseURI).href, on_progress);
  return await s.version();
}
export async function ddb_attach_url(alias, url) {
  const s = await load();
  await s.attachUrl(alias, new URL(url, document.baseURI).href);
}
export async function ddb_attach_buffer(alias, bytes) {
  const s = await load();
  await s.attachBuffer(alias, bytes);
}
export async function ddb_query_json(sql) {
  const s = await load();
  return await s.queryJson(sql);
}
export async function fetch_text(url) {
  const r = await fetch(new URL(url, document.baseURI).href);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return await r.text();
}
export function error_text(e) {
  return (e && e.message) ? e.message : String(e);
}
