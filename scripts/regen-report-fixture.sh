#!/usr/bin/env bash
# Regenerates the fixed simulator bundle behind the golden report test and the
# golden report itself. Run after a bundle schema change or an intended change
# of the report; review the diff of harness/tests/fixtures/report/ before committing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build --release -p harness
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$CARGO_TARGET_DIR/release/harness" run -q harness/tests/fixtures/report/report-golden.yml --out "$tmp/report-golden.duckdb"
REPORT_FIXTURE_FROM="$tmp/report-golden.duckdb" UPDATE_GOLDEN=1 \
  cargo test --release -p harness --test it -- report::golden_markdown_and_json_report
echo "fixture and golden report regenerated under harness/tests/fixtures/report/"
