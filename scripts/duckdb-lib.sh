#!/usr/bin/env bash
# Prints the directory holding the prebuilt libduckdb.so (DuckDB 1.5.6, the version
# pinned by the `duckdb` crate =1.10506.1), fetching it once into a cache outside
# the clone. The library is DuckDB's own C API build, shipped by DuckDB in the npm
# package @duckdb/node-bindings-linux-x64. Linking it takes ~2 minutes instead of
# the ~30 minutes the `bundled-duckdb` feature spends compiling DuckDB's C++.
set -euo pipefail
version="1.5.6-r.1"
cache="${HARNESS_CACHE:-$HOME/.cache/llm-harness}/duckdb-$version"
if [ ! -f "$cache/libduckdb.so" ]; then
  mkdir -p "$cache"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "@duckdb/node-bindings-linux-x64@$version" >/dev/null)
  tar -xzf "$tmp"/duckdb-node-bindings-linux-x64-*.tgz -C "$tmp"
  cp "$tmp"/package/libduckdb.so "$cache/"
  rm -rf "$tmp"
fi
echo "$cache"
