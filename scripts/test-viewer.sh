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
moto="$(dirname "$(dirname "$(scripts/moto.sh)")")"
site="$HARNESS_CACHE/viewer-site"
viewer/build.sh "$site"
cargo build --release --quiet -p harness
h="$CARGO_TARGET_DIR/release/harness"
work="$(mktemp -d)"
server=""
s3server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; [ -n "$s3server" ] && kill "$s3server" 2>/dev/null; rm -rf "$work"' EXIT

echo "== bundles and the harness's own reports" >&2
"$h" run -q configs/local.yml --out "$work/local.duckdb" >/dev/null 2>"$work/run.log" || { cat "$work/run.log"; exit 1; }
"$h" report "$work/local.duckdb" --format json --out "$work/r1" >/dev/null
cp "$work/r1/report.json" "$work/report.json"
# The budget the controls test sets on the heatmap page.
echo '{"key":"ttft.p95","ms":150,"err_pct":1,"rpm_lo":100,"rpm_hi":20000,"steps":6}' > "$work/budget.json"
# The page changes one limit and keeps the bundles' others (configs/local.yml: e2e.p95 <= 5000 ms).
"$h" report "$work/local.duckdb" --format json --latency ttft.p95=150 --latency e2e.p95=5000 --max-error-rate 0.01 \
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
# A per-request SLO: attainment is counted in the browser from the requests.
# Four slots: at concurrency 8 half the requests queue behind a whole
# response, so attainment falls below the target there and not at 2.
cat > "$work/slo.yml" <<'YML'
name: slo
endpoints:
  - name: s
    provider: sim
    instance_type: g5.xlarge
    sim: { ttft_ms: 30, itl_ms: 5, max_concurrency: 4 }
datasets:
  - name: d
    synthetic: { prompt_tokens: 16, output_tokens: 8 }
load: { concurrency: [2, 8], requests: 80, warmup: { requests: 4 } }
budgets: { slo: { ttft_ms: 50 }, slo_attainment: 0.9 }
YML
"$h" run -q "$work/slo.yml" --out "$work/slo.duckdb" >/dev/null
"$h" run -q configs/finetune.yml --out "$work/finetune.duckdb" >/dev/null
"$h" report "$work/finetune.duckdb" --format json --out "$work/r4" >/dev/null
cp "$work/r4/report.json" "$work/report-finetune.json"
"$h" report "$work/slo.duckdb" --format json --out "$work/r3" >/dev/null
cp "$work/r3/report.json" "$work/report-slo.json"
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
"$h" publish "$work/local.duckdb" "$work/a.duckdb" "$work/slow.duckdb" "$work/slo.duckdb" "$work/xss.duckdb" "$work/newer.duckdb" "$work/finetune.duckdb" \
  --to "$work/site" --site "$site" >/dev/null
cp "$work/schema99.duckdb" "$work/site/bundles/"   # publish itself refuses these two
head -c 100000 /dev/urandom > "$work/site/bundles/corrupt.duckdb"
python3 scripts/serve-static.py "$work/site" --port 0 > "$work/server.txt" &
server=$!
for _ in $(seq 50); do grep -q "^serving" "$work/server.txt" 2>/dev/null && break; sleep 0.1; done
base="$(sed -n 's/^serving .* at \(http[^ ]*\)$/\1/p' "$work/server.txt")/"
base="${base%//}/"

echo "== publish to S3 (moto on loopback)" >&2
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$moto/bin/moto_server" -H 127.0.0.1 -p "$port" > "$work/moto.log" 2>&1 &
s3server=$!
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 \
  AWS_ENDPOINT_URL="http://127.0.0.1:$port"
python3 - "$AWS_ENDPOINT_URL" <<'PY'
import sys, time, urllib.request
for _ in range(200):
    try:
        urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=1); break
    except Exception:
        time.sleep(0.1)
PY
# A public site: anyone may read its objects (as a bucket behind a website or CDN).
"$moto/bin/python" - <<'PY'
import boto3, json
s3 = boto3.client("s3")
s3.create_bucket(Bucket="viewer-site")
s3.put_bucket_policy(Bucket="viewer-site", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::viewer-site/*"}]}))
PY
"$h" publish "$work/local.duckdb" --to s3://viewer-site/reports/v1 --site "$site"
"$moto/bin/python" - <<'PY'
import boto3
s3 = boto3.client("s3")
objs = s3.list_objects_v2(Bucket="viewer-site", Prefix="reports/v1/")["Contents"]
got = {}
for o in objs:
    h = s3.head_object(Bucket="viewer-site", Key=o["Key"])
    got[o["Key"]] = (h["ContentType"], h.get("ContentEncoding", ""))
    print(f'{o["Key"]:55} {o["Size"]:>10}  {h["ContentType"]:32} {h.get("ContentEncoding", "")}')
want = {
    "reports/v1/index.html": ("text/html; charset=utf-8", ""),
    "reports/v1/pkg/viewer_bg.wasm": ("application/wasm", "gzip"),
    "reports/v1/pkg/viewer.js": ("text/javascript; charset=utf-8", "gzip"),
    "reports/v1/vendor/duckdb/duckdb-eh.wasm": ("application/wasm", "gzip"),
    "reports/v1/vendor/duckdb/duckdb-shim.mjs": ("text/javascript; charset=utf-8", "gzip"),
    "reports/v1/viewer.css": ("text/css; charset=utf-8", ""),
    "reports/v1/bundles/local.duckdb": ("application/octet-stream", ""),
    "reports/v1/bundles/index.json": ("application/json", ""),
}
bad = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
assert not bad, f"content types (got, want): {bad}"
print(f"ok   S3: {len(objs)} objects, content types and encodings as expected")
PY
export S3_BASE="$AWS_ENDPOINT_URL/viewer-site/reports/v1/"

echo "== browser checks at $base" >&2
artifacts="${VIEWER_ARTIFACTS:-$work}"
node viewer/tests/browser.mjs "$base" "$work"
if [ -n "${VIEWER_ARTIFACTS:-}" ]; then
  mkdir -p "$artifacts" && cp -r "$work/screenshots" "$artifacts/"
else
  echo "(the work directory is removed on exit; VIEWER_ARTIFACTS=DIR keeps the screenshots)" >&2
fi
