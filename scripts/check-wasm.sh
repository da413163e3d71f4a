#!/usr/bin/env bash
# Proves the shared pure crates (harness-core, harness-view) compile for wasm32-unknown-unknown,
# so the viewer can run the same metric and cost code as the harness.
# The route (rustup's target or Debian's) is scripts/wasm-cargo.sh's.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
target_dir="$HARNESS_CACHE/target-wasm"
scripts/wasm-cargo.sh -p harness-core -p harness-view --target-dir "$target_dir"
echo "harness-core and harness-view build for wasm32-unknown-unknown"
