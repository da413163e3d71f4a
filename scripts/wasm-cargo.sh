#!/usr/bin/env bash
# `cargo build --target wasm32-unknown-unknown --release ARGS...` by whichever
# route this machine has: rustup's wasm32 target when it is installed, else
# Debian's rustc-web toolchain with -Zbuild-std (installed on first use;
# rustup cannot download targets without internet). Used by
# scripts/check-wasm.sh and viewer/build.sh.
set -euo pipefail
# The wasm32 standard library in the active toolchain: rustup's target, or a
# toolchain that ships it (the flake's devShell).
if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown ||
  [ -d "$(rustc --print sysroot 2>/dev/null)/lib/rustlib/wasm32-unknown-unknown" ]; then
  exec cargo build --target wasm32-unknown-unknown --release "$@"
fi
if [ ! -x /usr/bin/cargo ] || [ ! -d /usr/lib/rustlib/src/rust/library ] || [ ! -x /usr/lib/llvm-19/bin/wasm-ld ]; then
  echo "installing Debian's rustc-web toolchain (the wasm32 route without rustup's target)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq rustc-web cargo-web rust-web-src lld-19 >/dev/null
fi
# Debian's cargo, not rustup's proxy; its own rustc via RUSTC.
exec env -u RUSTUP_TOOLCHAIN RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/lib/llvm-19/bin/wasm-ld \
  /usr/bin/cargo build --target wasm32-unknown-unknown --release -Zbuild-std=std,panic_abort "$@"
