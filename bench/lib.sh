# Shared by the bench scripts (source it after setting `name`): builds the
# release harness and sets root, bin (BENCH_BIN: another build, to compare),
# out (bench/out/$name, emptied) and port; start_sim and stop_sim run
# `harness sim` on loopback with the given flags.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/env.sh"
cargo build --release --quiet -p harness --manifest-path "$root/Cargo.toml"
bin="${BENCH_BIN:-$CARGO_TARGET_DIR/release/harness}"
out="$root/bench/out${name:+/$name}"
rm -rf "$out"; mkdir -p "$out"
port=${BENCH_PORT:-18731}

sim_pid=""
start_sim() { # args: sim flags
  stop_sim
  "$bin" sim --listen "127.0.0.1:$port" "$@" 2>"$out/sim.log" &
  sim_pid=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "simulator did not start" >&2; exit 1
}
stop_sim() {
  if [ -n "$sim_pid" ]; then kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; fi
  sim_pid=""
}
trap stop_sim EXIT
