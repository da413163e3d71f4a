#!/usr/bin/env bash
# Browser tests of the viewer (called by scripts/test.sh): builds the release
# site, runs configs/local.yml and a small diff pair with the harness, writes
# the harness's own reports for the same bundles, publishes everything to a
# temporary site served on loopback, and checks every page in headless
# Chromium against those reports (viewer/tests/browser.mjs).
# Installs what it needs: Debian chromium, the pinned npm packages (viewer/js),
# and a Python venv with duckdb (to write the untrusted and the newer-format
# test bundles), all cached outside the clone.
# Screenshots land in $VIEWER_ARTIFACTS (default: a temporary folder, printed).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian's chromium for the browser tests" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq chromium >/dev/null
fi
venv="$HARNESS_CACHE/pyduckdb-1.5.6"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import duckdb' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q duckdb==1.5.6
fi
site="$HARNESS_CACHE/viewer-site"
viewer/build.sh "$site"
cargo build --release --quiet -p harness
h="$CARGO_TARGET_DIR/release/harness"
work="$(mktemp -d)"
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work/site"' EXIT

echo "== bundles and the harness's own reports" >&2
"$h" run -q configs/local.yml --out "$work/local.duckdb" >/dev/null 2>"$work/run.log" || { cat "$work/run.log"; exit 1; }
"$h" report "$work/local.duckdb" --format json --out "$work/r1" >/dev/null
cp "$work/r1/report.json" "$work/report.json"
# The budget the controls test sets on the heatmap page.
echo '{"key":"ttft.p95","ms":150,"err_pct":1,"rpm_lo":100,"rpm_hi":20000,"steps":6}' > "$work/budget.json"
"$h" report "$work/local.duckdb" --format json --latency ttft.p95=150 --max-error-rate 0.01 \
  --rpm-range 100..20000 --rpm-steps 6 --out "$work/r2" >/dev/null
cp "$work/r2/report.json" "$work/report-budget.json"
cat > "$work/d.yml" <<'YML'
name: d
endpoints:
  - name: s
    provider: sim
    instance_type: g5.xlarge
    sim: { ttft_ms: 30, itl_ms: 5 }
datasets:
  - name: d
    synthetic: { prompt_tokens: 16, output_tokens: 8 }
load: { concurrency: [4], requests: 120, warmup: { requests: 4 } }
YML
"$h" run -q "$work/d.yml" --out "$work/a.duckdb" >/dev/null
HARNESS_SIM_SLOWDOWN=1.5 "$h" run -q "$work/d.yml" --out "$work/slow.duckdb" >/dev/null
"$h" diff "$work/a.duckdb" "$work/slow.duckdb" --format json > "$work/diff.json"
# Untrusted strings, a newer storage format, another schema version.
"$venv/bin/python" - "$work" <<'PY'
import shutil, sys, duckdb
w = sys.argv[1]
shutil.copy(f"{w}/local.duckdb", f"{w}/xss.duckdb")
c = duckdb.connect(f"{w}/xss.duckdb")
p = "<script>window.__xss=1</script><img src=x onerror=window.__xss=2><a href=\"javascript:window.__xss=3\">x</a>"
c.execute("UPDATE experiments SET label = label || ? , status_reason = ?", [p, p])
c.execute("UPDATE runs SET config_file = ?, config_yaml = config_yaml || ?", [p, "\n# " + p])
c.execute("UPDATE datasets SET dataset = dataset || ?", [p])
c.execute("UPDATE experiments SET dataset = dataset || ?", [p])
c.execute("UPDATE experiments SET instance_type = instance_type || '<img src=x onerror=window.__xss=4>'")
c.execute("CHECKPOINT"); c.close()
shutil.copy(f"{w}/local.duckdb", f"{w}/schema99.duckdb")
c = duckdb.connect(f"{w}/schema99.duckdb")
c.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'"); c.execute("CHECKPOINT"); c.close()
c = duckdb.connect()
c.execute(f"ATTACH '{w}/local.duckdb' AS src (READ_ONLY)")
c.execute(f"ATTACH '{w}/newer.duckdb' AS n (STORAGE_VERSION 'v1.5.0')")
c.execute("COPY FROM DATABASE src TO n"); c.close()
PY

echo "== publish and serve" >&2
"$h" publish "$work/local.duckdb" "$work/a.duckdb" "$work/slow.duckdb" "$work/xss.duckdb" "$work/newer.duckdb" \
  --to "$work/site" --site "$site" >/dev/null
cp "$work/schema99.duckdb" "$work/site/bundles/"   # publish itself refuses it
python3 scripts/serve-static.py "$work/site" --port 0 > "$work/server.txt" &
server=$!
for _ in $(seq 50); do grep -q "^serving" "$work/server.txt" 2>/dev/null && break; sleep 0.1; done
base="$(sed -n 's/^serving .* at \(http[^ ]*\)$/\1/p' "$work/server.txt")/"
base="${base%//}/"

echo "== browser checks at $base" >&2
artifacts="${VIEWER_ARTIFACTS:-$work}"
node viewer/tests/browser.mjs "$base" "$work"
if [ -n "${VIEWER_ARTIFACTS:-}" ]; then
  mkdir -p "$artifacts" && cp -r "$work/screenshots" "$artifacts/"
fi
