// Browser tests of the published viewer, in headless Chromium (playwright-core).
// Run by scripts/test-viewer.sh, which builds the site, writes the bundles and
// the harness's own reports into WORK, publishes and serves them:
//   node viewer/tests/browser.mjs BASE_URL WORK
// WORK holds report.json, report-budget.json (and budget.json: the budget it
// used), report-slo.json (a per-request SLO budget), diff.json, and receives
// screenshots/ (look at them).
import { createRequire } from 'node:module';
import { readFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';

// playwright-core comes from viewer/js/node_modules (the pinned lock file).
const { chromium } = createRequire(new URL('../js/package.json', import.meta.url))('playwright-core');

const [base, work] = process.argv.slice(2);
const shots = path.join(work, 'screenshots');
mkdirSync(shots, { recursive: true });
const json = (f) => JSON.parse(readFileSync(path.join(work, f), 'utf8'));
let failures = 0;
function check(cond, what) {
  if (cond) {
    console.log(`ok   ${what}`);
  } else {
    console.log(`FAIL ${what}`);
    failures++;
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(e.message));
let dialogs = 0;
page.on('dialog', (d) => { dialogs++; d.dismiss(); });

/** Opens a viewer URL and waits until nothing is loading. Returns ms to interactive. */
async function open(query) {
  const t0 = Date.now();
  await page.goto(`${base}${query}`);
  await page.waitForSelector('footer:has-text("DuckDB-WASM")', { timeout: 60000 });
  await page.waitForFunction(() => !document.querySelector('#status'), null, { timeout: 60000 });
  return Date.now() - t0;
}
async function shot(name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

/** The heatmap cells shown, keyed by workload|type|rpm. */
async function cells() {
  return page.$$eval('table.heatmap', (tables) => tables.flatMap((t) =>
    [...t.querySelectorAll('td.cell')].map((c) => ({
      workload: t.dataset.workload, type: c.dataset.type, rpm: Number(c.dataset.rpm),
      instances: c.dataset.instances, usd: c.dataset.usdPerHour, marks: c.dataset.marks,
      best: c.classList.contains('best'),
    }))));
}
function expectedCells(report) {
  const out = [];
  for (const w of report.analysis.workloads) {
    for (const c of w.heatmap) {
      out.push({
        workload: w.workload, type: c.instance_type, rpm: c.target_rpm,
        instances: c.instances == null ? '' : String(c.instances),
        usd: c.usd_per_hour == null ? '' : c.usd_per_hour.toFixed(2),
        marks: (c.best_choice ? '★' : '') + (c.least_cost ? '$' : '') + (c.fewest_instances ? '#' : ''),
        best: c.best_choice,
      });
    }
  }
  return out;
}
function sameCells(got, want, what) {
  const key = (c) => `${c.workload}|${c.type}|${c.rpm}`;
  const g = new Map(got.map((c) => [key(c), c]));
  let bad = [];
  for (const w of want) {
    const c = g.get(key(w));
    if (!c || c.instances !== w.instances || c.usd !== w.usd || c.marks !== w.marks || c.best !== w.best) {
      bad.push(`${key(w)}: shown ${JSON.stringify(c)} vs report ${JSON.stringify(w)}`);
    }
  }
  check(want.length > 0 && got.length === want.length && bad.length === 0,
    `${what}: ${got.length} cells shown, ${want.length} in the report${bad.length ? '\n  ' + bad.slice(0, 5).join('\n  ') : ''}`);
}

// 1. The site's own index, and opening a bundle from it.
await open('');
const listed = await page.$$eval('#index a.bundle-link', (as) => as.map((a) => a.textContent));
check(listed.includes('local.duckdb'), `index lists the published bundles (${listed.join(', ')})`);
await shot('index');
await page.click('#index a.bundle-link:text("local.duckdb")');
await page.waitForSelector('#page[data-page="overview"] table.experiments', { timeout: 60000 });
check(true, 'a bundle opens from the index');

// 2. Numbers: heatmap and recommendations against `harness report --format json`.
const report = json('report.json');
const tti = await open('?page=heatmap&bundle=bundles/local.duckdb');
console.log(`time to interactive (heatmap, local.duckdb): ${tti} ms`);
sameCells(await cells(), expectedCells(report), 'heatmap numbers equal the report');
await shot('heatmap');
await open('?page=recommendations&bundle=bundles/local.duckdb');
const recs = await page.$$eval('table.recommendations tbody tr', (rows) => rows.map((r) => ({
  workload: r.closest('table').dataset.workload, type: r.dataset.type,
  chosen: r.querySelector('.chosen').textContent.replace(' ★', ''),
  throughput: r.querySelector('[data-field=throughput]').textContent,
  usd10k: r.querySelector('[data-field=usd_per_10k_requests]').textContent,
  usdh: r.querySelector('[data-field=usd_per_hour]').textContent,
})));
let recBad = [];
for (const w of report.analysis.workloads) {
  for (const c of w.choices) {
    const r = recs.find((x) => x.workload === w.workload && x.type === c.instance_type);
    const e = report.experiments.find((x) => x.name === c.chosen);
    const want = c.chosen ? {
      chosen: c.chosen, throughput: e.throughput.toFixed(3),
      usd10k: e.usd_per_10k_requests == null ? '' : e.usd_per_10k_requests.toFixed(4),
      usdh: e.usd_per_hour == null ? '' : e.usd_per_hour.toFixed(4),
    } : { chosen: 'none within budget', throughput: '', usd10k: '', usdh: '' };
    if (!r || r.chosen !== want.chosen || r.throughput !== want.throughput || r.usd10k !== want.usd10k || r.usdh !== want.usdh) {
      recBad.push(`${w.workload} ${c.instance_type}: shown ${JSON.stringify(r)} vs report ${JSON.stringify(want)}`);
    }
  }
}
check(recs.length > 0 && recBad.length === 0, `recommendations equal the report (${recs.length} rows)${recBad.length ? '\n  ' + recBad.join('\n  ') : ''}`);
const rejectedShown = await page.$$eval('table.rejected tbody tr', (r) => r.length);
const rejectedWant = report.analysis.workloads.reduce((n, w) => n + w.rejected.length, 0);
check(rejectedShown === rejectedWant, `failed-criteria rows: ${rejectedShown} shown, ${rejectedWant} in the report`);
check(await page.$$eval('figure.chart svg', (s) => s.length) > 0, 'the Pareto chart is drawn');
await shot('recommendations');

// 2b. SLO attainment and goodput, counted in the browser from each experiment's
// requests, and the recommendation under an attainment target, against the report.
const sloReport = json('report-slo.json');
await open('?page=recommendations&bundle=bundles/slo.duckdb');
const att = await page.$$eval('table.attainment tbody tr', (rows) => rows.map((r) => ({
  name: r.dataset.experiment,
  ...Object.fromEntries([...r.querySelectorAll('[data-field]')].map((c) => [c.dataset.field, c.textContent])),
})));
const pct2 = (x) => (x * 100).toFixed(2);
const attBad = [];
for (const e of sloReport.experiments) {
  const a = e.attainment;
  const r = att.find((x) => x.name === e.name);
  const want = a ? {
    measured: String(a.measured), attained: String(a.attained), attainment: pct2(a.fraction),
    interval: `${pct2(a.low)} – ${pct2(a.high)}`, goodput: a.goodput.toFixed(3),
  } : null;
  if (!want || !r || Object.entries(want).some(([k, v]) => r[k] !== v)) {
    attBad.push(`${e.name}: shown ${JSON.stringify(r)} vs report ${JSON.stringify(want)}`);
  }
}
const fractions = sloReport.experiments.map((e) => e.attainment && e.attainment.fraction);
check(att.length === sloReport.experiments.length && attBad.length === 0,
  `SLO attainment and goodput equal the report (${att.length} rows)${attBad.length ? '\n  ' + attBad.join('\n  ') : ''}`);
check(fractions.some((f) => f >= 0.9) && fractions.some((f) => f < 0.9), `the SLO bundle has experiments on both sides of the target (${fractions.join(', ')})`);
const sloChosen = await page.$$eval('table.recommendations tbody tr .chosen', (c) => c.map((x) => x.textContent.replace(' ★', '')));
const sloWant = sloReport.analysis.workloads.flatMap((w) => w.choices.map((c) => c.chosen || 'none within budget'));
check(JSON.stringify(sloChosen) === JSON.stringify(sloWant), `the choice under an attainment target equals the report's (${sloChosen.join(', ')})`);
await shot('attainment');

// 3. Controls: a new budget and range give `harness report --latency ...`'s cells.
const budget = json('budget.json');
await open('?page=heatmap&bundle=bundles/local.duckdb');
await page.selectOption('#budget-metric', budget.key);
await page.fill('#budget-ms', String(budget.ms));
await page.fill('#budget-err', String(budget.err_pct));
await page.fill('#rpm-lo', String(budget.rpm_lo));
await page.fill('#rpm-hi', String(budget.rpm_hi));
await page.fill('#rpm-steps', String(budget.steps));
await page.click('#apply');
await page.waitForFunction((k) => document.querySelector('#budget-text').textContent.includes(k), budget.key + ' <= ' + budget.ms);
sameCells(await cells(), expectedCells(json('report-budget.json')), 'heatmap under the changed budget equals report --latency');
check((await page.textContent('#budget-text')).includes('e2e.p95 <= 5000 ms'), "the bundles' other limits are kept");
// Values that cannot be applied are refused with a message; the heatmap stays.
await page.fill('#budget-ms', '0');
await page.click('#apply');
await page.waitForSelector('#form-error');
check((await page.textContent('#form-error')).includes('latency budget must be'), 'a latency budget of 0 ms is refused with a message');
sameCells(await cells(), expectedCells(json('report-budget.json')), 'a refused change leaves the heatmap as it was');
await page.fill('#budget-ms', String(budget.ms));
await page.fill('#rpm-lo', '5000');
await page.fill('#rpm-hi', '100');
await page.click('#apply');
check((await page.textContent('#form-error')).includes('target range'), 'a range from high to low is refused with a message');
await page.fill('#rpm-lo', String(budget.rpm_lo));
await page.fill('#rpm-hi', String(budget.rpm_hi));
check(page.url().includes(`budget=${encodeURIComponent(budget.key)}`) && page.url().includes(`ms=${budget.ms}`), `the budget is in the URL (${page.url()})`);
const shared = page.url();
await open(shared.slice(base.length));
sameCells(await cells(), expectedCells(json('report-budget.json')), 'the shared URL reopens the same heatmap');
await shot('heatmap-budget');

// 4. Latency page, overview.
await open('?page=latency&bundle=bundles/local.duckdb');
await page.waitForFunction(() => [...document.querySelectorAll('figure.chart')].some((f) => f.textContent.includes('TTFT distribution') && f.querySelector('polyline')), null, { timeout: 60000 });
const titles = await page.$$eval('figure.chart svg', (s) => s.map((x) => x.querySelector('text').textContent));
for (const t of ['TTFT vs load', 'ITL vs load', 'TPOT vs load', 'End-to-end latency vs load', 'Client dispatch lag vs load', 'TTFT distribution', 'End-to-end latency distribution', 'Errors by class vs load']) {
  check(titles.some((x) => x.startsWith(t)), `latency page draws "${t}"`);
}
await shot('latency');
await open('?page=overview&bundle=bundles/local.duckdb');
const ov = await page.textContent('#page');
check(ov.includes('simulated') && ov.includes('configs/local.yml') && ov.includes('complete'), 'overview shows provenance, the simulated badge and statuses');
await shot('overview');
await page.setViewportSize({ width: 420, height: 900 });
await shot('overview-narrow');
await page.setViewportSize({ width: 1280, height: 900 });

// 5. Diff: an injected slowdown is shown as a regression, as `harness diff` finds.
const diff = json('diff.json');
await open('?page=diff&bundle=bundles/a.duckdb&bundle=bundles/slow.duckdb');
await page.waitForSelector('#diff-summary', { timeout: 60000 });
const summary = await page.textContent('#diff-summary');
check(summary.includes(`${diff.regressions} regression(s)`) && diff.regressions > 0, `diff page: "${summary.slice(0, 140)}…" (harness diff: ${diff.regressions} regressions)`);
const shownRows = await page.$$eval('table.diff tbody tr', (rows) => rows.map((r) => ({
  metric: r.dataset.metric, stat: r.dataset.stat, old: r.children[3].textContent, new: r.children[4].textContent,
  regression: r.classList.contains('regression'),
})));
let diffBad = diff.comparisons.filter((c) => !shownRows.some((r) => r.metric === c.metric && r.stat === c.stat
  && r.old === c.old.toFixed(1) && r.new === c.new.toFixed(1) && r.regression === c.regression));
check(shownRows.length === diff.comparisons.length && diffBad.length === 0, `diff rows equal harness diff's (${shownRows.length})`);
await shot('diff');

// 6. Compatibility: the wrong format or schema is a clear message, never a blank page.
await open('?bundle=bundles/newer.duckdb');
let err = await page.textContent('body');
check(err.includes('newer DuckDB than this viewer reads'), 'a newer storage format is named as such');
await shot('newer-format');
await open('?bundle=bundles/schema99.duckdb');
err = await page.textContent('body');
check(err.includes('uses bundle schema 99'), 'another schema version is named as such');
await open('?bundle=bundles/corrupt.duckdb');
err = await page.textContent('.error:not(:empty)').catch(() => '');
check(err.includes('corrupt.duckdb') && (err.includes('not a DuckDB file') || err.includes('could not be opened')), `a corrupt file is an error that names it (${err.slice(0, 120)})`);
await shot('corrupt');
await open('?bundle=bundles/missing.duckdb');
err = await page.textContent('.error:not(:empty)').catch(() => '');
check(err.includes('missing.duckdb was not found'), `a missing bundle is named as not found (${err.slice(0, 100)})`);
await open('?page=heatmap&bundle=bundles/missing.duckdb&ms=abc&colour=red');
err = await page.textContent('.error:not(:empty)').catch(() => '');
check(err.includes('Ignored in the address: ms=abc (not a number of ms above 0); colour=red (unknown key'), `a hand-edited address is said to be ignored where it does not parse (${err.slice(0, 120)})`);

// 7. Untrusted input: payloads in a bundle's strings render as text.
for (const p of ['overview', 'recommendations', 'latency', 'heatmap']) {
  await open(`?page=${p}&bundle=bundles/xss.duckdb`);
  await page.waitForTimeout(300);
}
await open('?page=overview&bundle=bundles/xss.duckdb');
const executed = await page.evaluate(() => window.__xss);
const text = await page.textContent('#page');
const injected = await page.$$eval('#page script, #page img[onerror], #page a[href^="javascript:"]', (x) => x.length);
check(executed === undefined && dialogs === 0 && injected === 0, `no payload executed (window.__xss=${executed}, dialogs=${dialogs}, injected elements=${injected})`);
check(text.includes('<script>') && text.includes('<img src=x onerror'), 'payloads are shown as text');
await shot('untrusted');

// 8. A file chosen from disk.
await open('');
await page.setInputFiles('#file', path.join(work, 'local.duckdb'));
await page.waitForSelector('#page table.experiments', { timeout: 60000 });
check((await page.textContent('#page')).includes('local.duckdb'), 'a bundle chosen from disk opens');

// 8b. A file dropped on the page: a real DragEvent whose DataTransfer holds
// the bundle's bytes as a File.
await open('');
const dropped = readFileSync(path.join(work, 'local.duckdb')).toString('base64');
await page.evaluate((b64) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const dt = new DataTransfer();
  dt.items.add(new File([bytes], 'dropped.duckdb', { type: 'application/octet-stream' }));
  const target = document.querySelector('#open');
  target.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
  target.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
}, dropped);
await page.waitForSelector('#page table.experiments', { timeout: 60000 });
check((await page.textContent('#page')).includes('dropped.duckdb'), 'a bundle dropped on the page opens');

// 8b. Command experiments: the table's rows and means against the report's JSON.
{
  const want = json('report-finetune.json').commands.endpoints[0];
  await open('?page=commands&bundle=bundles/finetune.duckdb');
  const rows = await page.$$eval('table.commands tbody tr', (trs) => trs.map((tr) =>
    [...tr.querySelectorAll('td')].map((td) => td.textContent)));
  const head = await page.$$eval('table.commands thead th', (ths) => ths.map((th) => th.textContent));
  const col = head.indexOf('train_runtime (s)');
  const shortNum = (v) => {
    // harness_view::svg::short for the values these runs give (0.01..100).
    const s = v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v >= 0.01 ? v.toFixed(2) : v.toExponential(1);
    return s.includes('.') && !s.includes('e') ? s.replace(/0+$/, '').replace(/\.$/, '') : s;
  };
  const bad = want.cells.filter((c, i) => {
    const m = c.metrics.find((x) => x.metric === 'train_runtime');
    return !rows[i] || rows[i][0] !== c.label || rows[i][1] !== `${c.runs_ok}/${c.runs}` || !rows[i][col].startsWith(shortNum(m.mean));
  });
  check(rows.length === want.cells.length && col > 1 && bad.length === 0,
    `command cells: ${rows.length} rows shown, ${want.cells.length} in the report; labels, runs and train_runtime means agree${bad.length ? ' except ' + bad.map((c) => c.label).join(', ') : ''}`);
  const figures = await page.$$eval('article.command figure.chart svg', (f) => f.length);
  check(figures >= 4, `command charts drawn (${figures})`);
  await shot('commands');
}

// 9. The same site served from S3 (moto): compressed wasm, the bundle by range reads.
if (process.env.S3_BASE) {
  const t0 = Date.now();
  // The REST endpoint has no index document: name index.html.
  await page.goto(`${process.env.S3_BASE}index.html?page=heatmap&bundle=bundles/local.duckdb`);
  await page.waitForSelector('footer:has-text("DuckDB-WASM")', { timeout: 60000 });
  await page.waitForFunction(() => !document.querySelector('#status'), null, { timeout: 60000 });
  console.log(`time to interactive from S3 (moto): ${Date.now() - t0} ms`);
  sameCells(await cells(), expectedCells(report), 'the site published to S3 shows the report\'s heatmap');
  await shot('s3-heatmap');
}

check(pageErrors.length === 0, `no uncaught page errors (${pageErrors.join('; ')})`);
await browser.close();
console.log(`screenshots in ${shots}`);
if (failures > 0) {
  console.log(`${failures} browser check(s) failed`);
  process.exit(1);
}
console.log('all browser checks passed');
