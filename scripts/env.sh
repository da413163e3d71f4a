# Source this file: sets up the build environment shared by development, the README
# commands, .ci/run and bench/. Caches live outside the clone so that a fresh clone
# (as in CI) reuses them.
export HARNESS_CACHE="${HARNESS_CACHE:-$HOME/.cache/llm-harness}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HARNESS_CACHE/target}"
_repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${DUCKDB_LIB_DIR:-}" ]; then
  DUCKDB_LIB_DIR="$("$_repo_root/scripts/duckdb-lib.sh")"
  export DUCKDB_LIB_DIR
fi
export LD_LIBRARY_PATH="$DUCKDB_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
unset _repo_root
