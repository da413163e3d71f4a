#!/usr/bin/env bash
# Builds the viewer's release site into OUT (default: $HARNESS_CACHE/viewer-site):
#   OUT/index.html, start.js, viewer.css   the page
#   OUT/pkg/                                the Leptos app (wasm-bindgen output)
#   OUT/vendor/duckdb/                      DuckDB-WASM, self-hosted (viewer/js/build-assets.sh)
# `harness publish` copies this site next to the bundles.
#
# The wasm32 target comes from rustup where it is installed; otherwise from
# Debian's rustc-web toolchain with -Zbuild-std (rustup cannot download targets
# on machines without internet). wasm-bindgen-cli is installed at exactly the
# version Cargo.lock pins for the wasm-bindgen crate, into the cache.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
out="${1:-$HARNESS_CACHE/viewer-site}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
target_dir="$HARNESS_CACHE/target-wasm"

# Small, fast wasm: these apply to this build only.
export CARGO_PROFILE_RELEASE_OPT_LEVEL=z CARGO_PROFILE_RELEASE_LTO=true \
  CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 CARGO_PROFILE_RELEASE_DEBUG=false \
  CARGO_PROFILE_RELEASE_PANIC=abort

echo "== viewer: wasm32 build" >&2
scripts/wasm-cargo.sh -p viewer --locked --target-dir "$target_dir"

# wasm-bindgen-cli must equal the wasm-bindgen crate exactly.
wb_version="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
[ -n "$wb_version" ] || { echo "build.sh: no wasm-bindgen in Cargo.lock" >&2; exit 1; }
wb_root="$HARNESS_CACHE/tools/wasm-bindgen-$wb_version"
# One on PATH of exactly that version (the flake's devShell has it) will do.
if [ ! -x "$wb_root/bin/wasm-bindgen" ] && command -v wasm-bindgen >/dev/null &&
  [ "$(wasm-bindgen --version | awk '{print $2}')" = "$wb_version" ]; then
  mkdir -p "$wb_root/bin"
  ln -sf "$(command -v wasm-bindgen)" "$wb_root/bin/wasm-bindgen"
fi
if [ ! -x "$wb_root/bin/wasm-bindgen" ]; then
  echo "== installing wasm-bindgen-cli $wb_version into $wb_root" >&2
  cargo install wasm-bindgen-cli --version "$wb_version" --root "$wb_root" --quiet
fi
got="$("$wb_root/bin/wasm-bindgen" --version | awk '{print $2}')"
[ "$got" = "$wb_version" ] || { echo "build.sh: wasm-bindgen $got does not match the crate's $wb_version" >&2; exit 1; }

echo "== viewer: wasm-bindgen $wb_version" >&2
rm -rf "$out/pkg"
"$wb_root/bin/wasm-bindgen" --target web --no-typescript --out-dir "$out/pkg" \
  "$target_dir/wasm32-unknown-unknown/release/viewer.wasm"
cp viewer/index.html viewer/start.js viewer/viewer.css "$out/"

echo "== viewer: DuckDB-WASM assets" >&2
viewer/js/build-assets.sh "$out"
echo "viewer site in $out" >&2
