#!/usr/bin/env bash
# Time to interactive of the viewer in headless Chromium, for bundles of 10k,
# 100k and 1M request rows: median, min and max of RUNS (default 3) page loads.
# - heatmap page: ready when its tables are drawn (summary tables only).
# - latency page: "interactive" when its latency-against-load charts are drawn
#   (summary tables only); "complete" when the TTFT and e2e distribution charts
#   are drawn too (from the bundle's ecdf table, which the harness writes with
#   each experiment).
# The bundles are configs/local.yml's, with its requests table repeated to the
# size wanted (new experiment-local sequence numbers, same timings) and the
# ecdf table rewritten from it (`harness reindex`).
#   bench/viewer-tti.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
runs="${1:-3}"
venv="$HARNESS_CACHE/pyduckdb-1.5.6"
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv"; "$venv/bin/pip" install -q duckdb==1.5.6; }
site="$HARNESS_CACHE/viewer-site"
viewer/build.sh "$site" >/dev/null 2>&1
cargo build --release --quiet -p harness
h="$CARGO_TARGET_DIR/release/harness"
work="$(mktemp -d)"
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
"$h" run -q configs/local.yml --out "$work/base.duckdb" >/dev/null 2>&1
"$venv/bin/python" - "$work" <<'PY'
import shutil, sys, duckdb
w = sys.argv[1]
for n in (10_000, 100_000, 1_000_000):
    f = f"{w}/requests-{n}.duckdb"
    shutil.copy(f"{w}/base.duckdb", f)
    c = duckdb.connect(f)
    have = c.execute("SELECT count(*) FROM requests").fetchone()[0]
    reps = -(-n // have)
    c.execute(f"""INSERT INTO requests BY NAME
                  SELECT r.* EXCLUDE (seq), r.seq + t.k * 1000000 AS seq
                  FROM requests r CROSS JOIN (SELECT range AS k FROM range(1, {reps})) t
                  LIMIT {n - have}""")
    c.execute("CHECKPOINT")
    print(n, c.execute("SELECT count(*) FROM requests").fetchone()[0], file=sys.stderr)
    c.close()
PY
for f in "$work"/requests-*.duckdb; do "$h" reindex "$f" 2>/dev/null; done
"$h" publish "$work"/requests-*.duckdb --to "$work/site" --site "$site" >/dev/null
python3 scripts/serve-static.py "$work/site" --port 0 > "$work/server.txt" &
server=$!
for _ in $(seq 50); do grep -q "^serving" "$work/server.txt" 2>/dev/null && break; sleep 0.1; done
base="$(sed -n 's/^serving .* at \(http[^ ]*\)$/\1/p' "$work/server.txt")"
node - "$base" "$runs" <<'JS'
const { createRequire } = require('node:module');
const { chromium } = createRequire(process.cwd() + '/viewer/js/package.json')('playwright-core');
(async () => {
  const [base, runs] = [process.argv[2], Number(process.argv[3])];
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--no-first-run', '--disable-quic'] });
  console.log('requests  page                  median_ms  min_ms  max_ms  (runs: ' + runs + ')');
  const row = (n, what, t) => {
    t.sort((a, b) => a - b);
    console.log(`${String(n).padEnd(9)} ${what.padEnd(21)} ${String(t[Math.floor(t.length / 2)]).padStart(9)}  ${String(t[0]).padStart(6)}  ${String(t[t.length - 1]).padStart(6)}`);
  };
  for (const n of [10000, 100000, 1000000]) {
    for (const p of ['heatmap', 'latency']) {
      const [ready, complete] = [[], []];
      for (let i = 0; i < runs; i++) {
        const page = await browser.newPage();
        const t0 = Date.now();
        await page.goto(`${base}?page=${p}&bundle=bundles/requests-${n}.duckdb`);
        if (p === 'heatmap') {
          await page.waitForFunction(() => !document.querySelector('#status') && document.querySelector('#page table'), null, { timeout: 120000 });
          ready.push(Date.now() - t0);
        } else {
          await page.waitForFunction(() => document.querySelector('#page figure.chart polyline'), null, { timeout: 120000 });
          ready.push(Date.now() - t0);
          await page.waitForFunction(() => [...document.querySelectorAll('figure.chart')].some((f) => f.textContent.includes('TTFT distribution') && f.querySelector('polyline')) && !document.querySelector('#status'), null, { timeout: 120000 });
          complete.push(Date.now() - t0);
        }
        await page.close();
      }
      row(n, p === 'heatmap' ? 'heatmap' : 'latency (interactive)', ready);
      if (complete.length) row(n, 'latency (complete)', complete);
    }
  }
  await browser.close();
})();
JS
