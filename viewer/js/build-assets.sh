#!/usr/bin/env bash
# Build the self-hosted DuckDB-WASM assets of the viewer into OUT/vendor/duckdb/.
#
#   viewer/js/build-assets.sh OUT
#
# Produces OUT/vendor/duckdb/{duckdb-shim.mjs, duckdb-eh.wasm, duckdb-mvp.wasm,
# duckdb-browser-eh.worker.js, duckdb-browser-mvp.worker.js, LICENSE, LICENSE.*}.
# The page loads them relative to document.baseURI, so the site works under a
# sub-path and with no network beyond its own host.
#
# Needs node + npm. Packages come from the committed package-lock.json
# (npm ci checks every tarball against its integrity hash); the npm cache lives
# outside the repo in ${HARNESS_CACHE:-$HOME/.cache/llm-harness}/npm, and
# node_modules stays in viewer/js (git-ignored). npm ci is skipped when
# node_modules was installed from the same package.json + package-lock.json.
set -euo pipefail

PINNED_VERSION="1.32.0"
PINNED_INTEGRITY="sha512-IewXTNYEjsZCPE9weUWgtjGxUlMRo7qhX0GF6tq/KjK8bnY+RAl4cyUdYUfcdzbyb4b9ZxPC+FOsCcxgaKFWMg=="
ESBUILD_VERSION="0.28.2"

die() { echo "build-assets.sh: $*" >&2; exit 1; }

[[ $# -eq 1 && -n "$1" ]] || die "usage: $0 OUT_DIR"
command -v node >/dev/null || die "node not found on PATH"
command -v npm >/dev/null || die "npm not found on PATH"

JS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$1"
OUT="$(cd "$1" && pwd)"
DEST="$OUT/vendor/duckdb"
PKG="$JS_DIR/node_modules/@duckdb/duckdb-wasm"

cd "$JS_DIR"

# --- 1. the lock must pin the expected tarball --------------------------------
lock_integrity="$(node -e '
  const l = require("./package-lock.json");
  const p = (l.packages || {})["node_modules/@duckdb/duckdb-wasm"];
  process.stdout.write(p ? `${p.version} ${p.integrity}` : "missing");
')"
[[ "$lock_integrity" == "$PINNED_VERSION $PINNED_INTEGRITY" ]] ||
  die "package-lock.json pins @duckdb/duckdb-wasm as '$lock_integrity', expected '$PINNED_VERSION $PINNED_INTEGRITY'"

# --- 2. install (skipped when node_modules matches the lock) ------------------
# With NODE_MODULES set (the flake: nixpkgs importNpmLock built it from the same
# lock), that directory is used as node_modules and npm is not run.
if [[ -n "${NODE_MODULES:-}" ]]; then
  [[ -d "$NODE_MODULES/@duckdb/duckdb-wasm" ]] || die "NODE_MODULES=$NODE_MODULES holds no @duckdb/duckdb-wasm"
  rm -rf node_modules
  ln -s "$NODE_MODULES" node_modules
else
  stamp="$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)"
  if [[ -f node_modules/.lock-sha256 && "$(cat node_modules/.lock-sha256)" == "$stamp" ]]; then
    echo "build-assets.sh: node_modules matches package-lock.json, skipping npm ci"
  else
    export npm_config_cache="${HARNESS_CACHE:-$HOME/.cache/llm-harness}/npm"
    npm ci --ignore-scripts --no-audit --no-fund
    echo "$stamp" > node_modules/.lock-sha256
  fi
fi

# --- 3. what got installed must be what we pinned ------------------------------
installed="$(node -p 'require("./node_modules/@duckdb/duckdb-wasm/package.json").version' 2>/dev/null || echo missing)"
[[ "$installed" == "$PINNED_VERSION" ]] ||
  die "node_modules has @duckdb/duckdb-wasm $installed, expected $PINNED_VERSION (delete viewer/js/node_modules and rerun)"
# esbuild through node (no shebang lookup, so it also runs in the Nix sandbox).
esbuild=(node node_modules/esbuild/bin/esbuild)
esbuild_installed="$("${esbuild[@]}" --version 2>/dev/null || echo missing)"
[[ "$esbuild_installed" == "$ESBUILD_VERSION" ]] ||
  die "node_modules has esbuild $esbuild_installed, expected $ESBUILD_VERSION (delete viewer/js/node_modules and rerun)"

# --- 4. bundle the shim and copy the engine -----------------------------------
rm -rf "$DEST"
mkdir -p "$DEST"
"${esbuild[@]}" shim.js --bundle --format=esm --minify --log-level=warning \
  --outfile="$DEST/duckdb-shim.mjs"

for f in duckdb-eh.wasm duckdb-mvp.wasm duckdb-browser-eh.worker.js duckdb-browser-mvp.worker.js; do
  [[ -f "$PKG/dist/$f" ]] || die "missing $PKG/dist/$f"
  cp "$PKG/dist/$f" "$DEST/$f"
done

# Licences. The duckdb-wasm npm tarball ships no LICENSE file (package.json says
# MIT), so fall back to the upstream text committed as LICENSE.duckdb-wasm. The
# shim also inlines apache-arrow and flatbuffers (Apache-2.0) and tslib (0BSD).
if [[ -f "$PKG/LICENSE" ]]; then
  cp "$PKG/LICENSE" "$DEST/LICENSE"
else
  cp "$JS_DIR/LICENSE.duckdb-wasm" "$DEST/LICENSE"
fi
cp node_modules/apache-arrow/LICENSE.txt "$DEST/LICENSE.apache-arrow.txt"
cp node_modules/apache-arrow/NOTICE.txt "$DEST/NOTICE.apache-arrow.txt"
cp node_modules/flatbuffers/LICENSE "$DEST/LICENSE.flatbuffers.txt"
cp node_modules/tslib/LICENSE.txt "$DEST/LICENSE.tslib.txt"

echo "build-assets.sh: wrote $DEST"
(cd "$DEST" && ls -l | awk 'NR > 1 { printf "  %10d  %s\n", $5, $9 }')
