#!/usr/bin/env bash
# Proves the shared pure crate (harness-core) compiles for wasm32-unknown-unknown,
# so the viewer can run the same metric and cost code as the harness.
# Uses the rustup wasm32 target when it is installed; otherwise Debian's
# rustc-web toolchain with -Zbuild-std (rustup cannot download targets here).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
target_dir="$HARNESS_CACHE/target-wasm"
if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  cargo build -p harness-core --target wasm32-unknown-unknown --release --target-dir "$target_dir"
else
  if [ ! -x /usr/bin/cargo ] || [ ! -d /usr/lib/rustlib/src/rust/library ] || [ ! -x /usr/lib/llvm-19/bin/wasm-ld ]; then
    echo "installing Debian's rustc-web toolchain for the wasm32 check" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq rustc-web cargo-web rust-web-src lld-19 >/dev/null
  fi
  # Debian's cargo, not rustup's proxy; its own rustc via RUSTC.
  env -u RUSTUP_TOOLCHAIN RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/lib/llvm-19/bin/wasm-ld \
    /usr/bin/cargo build -p harness-core --target wasm32-unknown-unknown --release \
      -Zbuild-std=std,panic_abort --target-dir "$target_dir"
fi
echo "harness-core builds for wasm32-unknown-unknown"
