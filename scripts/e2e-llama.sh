#!/usr/bin/env bash
# End-to-end against a real LLM server: llama.cpp (llama-cpp-python) with
# SmolLM2-135M on loopback. Installs both into a cached virtualenv (first run
# compiles llama.cpp, ~15 min), starts the server, runs configs/llama-cpp.yml,
# checks the bundle and the GGUF tokenizer against the server, and stops the
# server whatever happens.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
source "$root/scripts/env.sh"
cd "$root"
port=${LLAMA_PORT:-18089}
"$root/scripts/llama-server-env.sh" >/dev/null
log=$(mktemp)
out=$(mktemp -d)
scripts/llama-server.sh "$port" >"$log" 2>&1 &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$out" "$log"; }
trap cleanup EXIT INT TERM
for _ in $(seq 1 240); do
  curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$log"; echo "llama.cpp server died" >&2; exit 1; }
  sleep 0.5
done
curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null || { cat "$log"; echo "llama.cpp server did not start" >&2; exit 1; }
url="http://127.0.0.1:$port/v1"
cargo build --release --quiet -p harness
"$CARGO_TARGET_DIR/release/harness" run -q configs/llama-cpp.yml --out "$out/llama-cpp.duckdb" \
  --set "endpoints[0].base_url=$url" --set "endpoints[1].base_url=$url" --set "endpoints[2].base_url=$url"
LLAMA_SERVER_URL="http://127.0.0.1:$port" LLAMA_GGUF="$root/models/SmolLM2-135M-Instruct.Q4_1.gguf" \
LLAMA_BUNDLE="$out/llama-cpp.duckdb" \
  cargo test --release -p harness --test it llama -- --ignored
