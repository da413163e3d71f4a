#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this script):
# formatting, clippy, every Rust test, the end-to-end run against a real
# llama.cpp server, the wasm32 build of the shared crate, the viewer's release
# site and its browser tests, the flake parse check,
# and every command of the README on a fresh copy of the repository. One release profile is used for building and
# testing so CI compiles dependencies once; caches live outside the clone.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --release --quiet -- -D warnings
echo "== cargo test (the EC2 tests run against moto on loopback)"
scripts/moto.sh >/dev/null
# The harness alone first, so its dependencies are built with the features
# `cargo build -p harness` (scripts/harness, the end-to-end and browser tests)
# uses too: the large EC2 client compiles once. Then the rest.
# One test at a time: several tests assert timing against the simulator's truth,
# and on 2 shared cores a neighbouring test's processes would move it.
cargo test --release -p harness -- --test-threads=1
cargo test --release --workspace --exclude harness
echo "== end to end against llama.cpp (SmolLM2-135M)"
scripts/e2e-llama.sh
echo "== wasm32 build of harness-core"
scripts/check-wasm.sh
echo "== viewer: release site and browser tests (headless Chromium)"
scripts/test-viewer.sh
echo "== flake.nix"
scripts/check-flake.sh
echo "== the README's commands, in order, on a fresh copy"
python3 scripts/check-readme.py
