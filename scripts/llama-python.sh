#!/usr/bin/env bash
# Runs Python from the llama-cpp-python virtualenv (made once, outside the
# clone, by scripts/llama-server-env.sh): the interpreter of configs/offline.yml.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$("$root/scripts/llama-server-env.sh")"
exec "$venv/bin/python" "$@"
