#!/usr/bin/env bash
# Builds the agents' image, llm-harness:latest: this checkout's release
# harness and the libduckdb it links, on Debian 12 (the glibc it is built
# with). Push it where the cluster pulls from, and set `image:` in
# harness-shards.yaml.   Usage: deploy/k8s/image.sh [TAG]
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
cargo build --release -p harness
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp "$CARGO_TARGET_DIR/release/harness" "$DUCKDB_LIB_DIR/libduckdb.so" "$ctx/"
cat > "$ctx/Dockerfile" <<'DOCKERFILE'
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY libduckdb.so /usr/local/lib/
COPY harness /usr/local/bin/
RUN ldconfig && harness --version
ENTRYPOINT ["harness"]
DOCKERFILE
docker build -t "${1:-llm-harness:latest}" "$ctx"
