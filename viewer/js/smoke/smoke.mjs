// Browser smoke test for the self-hosted DuckDB-WASM assets (shim + wasm + workers).
//
// Run from the repository root (needs node, npm, /usr/bin/chromium, and a Python
// with duckdb 1.4.3 for making the test files):
//
//   python3 -m venv /tmp/pyduck143 && /tmp/pyduck143/bin/pip install duckdb==1.4.3
//   viewer/js/build-assets.sh /tmp/unused   # once, installs viewer/js/node_modules
//   node viewer/js/smoke/smoke.mjs
//
// Environment: PYDUCK (python with duckdb, default /tmp/pyduck143/bin/python),
// CHROMIUM (default /usr/bin/chromium), KEEP_TMP=1 keeps the temp dir.
//
// What it does: builds the assets into a temp dir with build-assets.sh, lays out a
// site under a sub-path (/repo/), writes small.duckdb and a ~45 MB big.duckdb
// (STORAGE_VERSION 'v1.4.0'), serves it with scripts/serve-static.py and opens
// index.html in headless Chromium. It asserts:
//   1. small.duckdb attached by URL: SELECT count(*) FROM b.main.t == 1234;
//   2. shim API: version, JSON conversion of types, attachBuffer, detach,
//      alias validation, error messages;
//   3. lazy read: a query on the tiny table of big.duckdb fetches far fewer bytes
//      than the file size (server --count-bytes);
//   4. fallback: with serve-static.py --no-range the same query still works.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, copyFileSync, readFileSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
const JS_DIR = resolve(HERE, '..');
const REPO = resolve(JS_DIR, '..', '..');
const PYDUCK = process.env.PYDUCK || '/tmp/pyduck143/bin/python';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROME_ARGS = [
  '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--no-first-run', '--disable-quic',
];
const SMALL_ROWS = 1234;
const TINY_ROWS = 3;

const tmp = mkdtempSync(join(tmpdir(), 'viewer-smoke-'));
const root = join(tmp, 'root');
const site = join(root, 'repo'); // served at /repo/: a GitHub-Pages-like sub-path
const children = [];
let context = null;

function log(...a) { console.log('[smoke]', ...a); }

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', ...opts });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  }
  return r.stdout;
}

function makeDatabases() {
  if (!existsSync(PYDUCK)) {
    throw new Error(`${PYDUCK} not found; create it with: python3 -m venv /tmp/pyduck143 && /tmp/pyduck143/bin/pip install duckdb==1.4.3`);
  }
  const py = `
import sys, duckdb
small, big = sys.argv[1], sys.argv[2]
con = duckdb.connect()
def tag(alias):
    return con.execute("SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = ?", [alias]).fetchone()[0]
con.execute(f"ATTACH '{small}' AS s (STORAGE_VERSION 'v1.4.0')")
con.execute("CREATE TABLE s.main.t AS SELECT range AS i FROM range(${SMALL_ROWS})")
print(duckdb.__version__, tag('s'))
con.execute("DETACH s")
con.execute(f"ATTACH '{big}' AS g (STORAGE_VERSION 'v1.4.0')")
con.execute("CREATE TABLE g.main.big AS SELECT i, (hash(i) >> 1)::BIGINT AS h FROM range(5000000) r(i)")
con.execute("CREATE TABLE g.main.tiny AS SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (3, 'c')) v(id, name)")
con.execute("DETACH g")
`;
  const out = run(PYDUCK, ['-c', py, join(site, 'small.duckdb'), join(site, 'big.duckdb')]).trim();
  assert.match(out, /^1\.4\.3 v1\.4\.0\+$/, `unexpected writer/storage version: ${out}`);
  log(`made test files with duckdb ${out}`);
}

async function serve(dir, countFile, extra = []) {
  const p = spawn('python3', [join(REPO, 'scripts/serve-static.py'), dir, '--port', '0', '--count-bytes', countFile, ...extra],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(p);
  const rl = createInterface({ input: p.stdout });
  const line = await new Promise((ok, bad) => {
    const t = setTimeout(() => bad(new Error('serve-static.py did not report its URL within 10 s')), 10000);
    rl.once('line', (l) => { clearTimeout(t); ok(l); });
    p.once('exit', (c) => bad(new Error(`serve-static.py exited early (${c})`)));
  });
  const m = /^serving (.+) at (http:\/\/127\.0\.0\.1:\d+\/)$/.exec(line);
  assert.ok(m, `unexpected server banner: ${line}`);
  return m[2];
}

function bytesFor(countFile, path) {
  let total = 0;
  let requests = 0;
  const statuses = new Set();
  if (!existsSync(countFile)) return { total, requests, statuses };
  for (const l of readFileSync(countFile, 'utf8').split('\n')) {
    const [p, status, n] = l.split(' ');
    if (p === path) { total += Number(n); requests += 1; statuses.add(status); }
  }
  return { total, requests, statuses };
}

async function openPage(url) {
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') log(`console.${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => log(`pageerror: ${e.message}`));
  const t0 = Date.now();
  await page.goto(url);
  await page.waitForSelector('body[data-state="done"], body[data-state="error"]', { timeout: 120000 });
  const state = await page.getAttribute('body', 'data-state');
  const out = await page.textContent('#out');
  assert.equal(state, 'done', `page ${url} failed: ${out}`);
  return { page, rows: JSON.parse(out), ms: Date.now() - t0 };
}

async function apiChecks(page, base) {
  const r = await page.evaluate(async (base) => {
    const s = window.shim;
    const err = async (f) => { try { await f(); return 'no error'; } catch (e) { return e.message; } };
    const res = {};
    res.version = await s.version();
    res.again = (await s.init('ignored')) === (await s.init('ignored too'));
    res.types = JSON.parse(await s.queryJson(`SELECT 42::BIGINT a, 9007199254740993::BIGINT big, -1.25::DECIMAL(10,2) dc,
        12345678901234567890.12::DECIMAL(38,2) bigdec, 123456789012345678901234567890::HUGEINT h,
        DATE '2024-01-02' dt, TIMESTAMP '2024-01-02 03:04:05.123' ts, TIME '03:04:05.5' tm,
        [1,2,3]::BIGINT[] l, [[1],[2,NULL]] ll, {'x': 1, 'y': 'z'} st, MAP {'k': 1} mp,
        NULL::INT n, 'str' s, true b, 'nan'::DOUBLE nan, 2.5::FLOAT f,
        -12345678901234567890.12::DECIMAL(38,2) negdec, -0.05::DECIMAL(4,2) negsmall, -9007199254740993::BIGINT negbig,
        DATE '1969-12-31' olddt, TIMESTAMPTZ '2024-01-02 03:04:05+00' tstz, [DATE '2024-01-01', NULL] ld`));
    res.rows = JSON.parse(await s.queryJson('SELECT range AS i FROM range(3)'));
    res.empty = await s.queryJson('SELECT 1 AS x WHERE false');
    const bytes = new Uint8Array(await (await fetch(new URL('small.duckdb', base))).arrayBuffer());
    await s.attachBuffer('buf', bytes);
    res.buf = JSON.parse(await s.queryJson('SELECT count(*) AS n FROM buf.main.t'));
    res.dup = await err(() => s.attachUrl('b', new URL('small.duckdb', base).href));
    await s.detach('buf');
    res.afterDetach = await err(() => s.queryJson('SELECT count(*) FROM buf.main.t'));
    await s.detach('buf'); // no-op
    await s.attachUrl('buf', new URL('small.duckdb', base).href);
    res.reattach = JSON.parse(await s.queryJson('SELECT count(*) AS n FROM buf.main.t'));
    await s.detach('buf');
    res.badAlias = await err(() => s.attachUrl('Bad-Alias"', new URL('small.duckdb', base).href));
    res.relUrl = await err(() => s.attachUrl('x', 'small.duckdb'));
    res.missing = await err(() => s.attachUrl('x', new URL('missing.duckdb', base).href));
    res.missingThenOk = await err(() => s.attachUrl('x', new URL('small.duckdb', base).href));
    await s.detach('x');
    res.badSql = await err(() => s.queryJson('SELEC 1'));
    res.notBytes = await err(() => s.attachBuffer('y', [1, 2, 3]));
    return res;
  }, base);
  log('api:', JSON.stringify(r));
  assert.match(r.version, /^v1\.4\.3/);
  assert.equal(r.again, true, 'init() must return the same db');
  assert.deepEqual(r.types, [{
    a: 42, big: '9007199254740993', dc: -1.25, bigdec: '12345678901234567890.12',
    h: '123456789012345678901234567890', dt: '2024-01-02', ts: '2024-01-02T03:04:05.123Z',
    tm: '03:04:05.500', l: [1, 2, 3], ll: [[1], [2, null]], st: { x: 1, y: 'z' }, mp: { k: 1 },
    n: null, s: 'str', b: true, nan: null, f: 2.5,
    negdec: '-12345678901234567890.12', negsmall: -0.05, negbig: '-9007199254740993',
    olddt: '1969-12-31', tstz: '2024-01-02T03:04:05.000Z', ld: ['2024-01-01', null],
  }]);
  assert.deepEqual(r.rows, [{ i: 0 }, { i: 1 }, { i: 2 }]);
  assert.equal(r.empty, '[]');
  assert.deepEqual(r.buf, [{ n: SMALL_ROWS }]);
  assert.match(r.dup, /^attachUrl: alias "b" is already attached/);
  assert.match(r.afterDetach, /^queryJson: .*buf/);
  assert.deepEqual(r.reattach, [{ n: SMALL_ROWS }]);
  assert.match(r.badAlias, /^attachUrl: invalid alias/);
  assert.match(r.relUrl, /^attachUrl: "small.duckdb" is not an absolute URL/);
  assert.match(r.missing, /^attachUrl: cannot attach http:\/\/127\.0\.0\.1:\d+\/repo\/missing\.duckdb as "x": /);
  assert.equal(r.missingThenOk, 'no error', 'a failed attach must not leave the alias registered');
  assert.match(r.badSql, /^queryJson: Parser Error/);
  assert.match(r.notBytes, /^attachBuffer: expected a Uint8Array/);
}

async function main() {
  mkdirSync(site, { recursive: true });
  log(`temp dir ${tmp}`);
  run('bash', [join(JS_DIR, 'build-assets.sh'), site], { stdio: ['ignore', 'pipe', 'inherit'] });
  copyFileSync(join(HERE, 'index.html'), join(site, 'index.html'));
  makeDatabases();
  const bigSize = statSync(join(site, 'big.duckdb')).size;
  log(`big.duckdb is ${bigSize} bytes`);

  context = await chromium.launchPersistentContext(join(tmp, 'profile'), {
    executablePath: CHROMIUM, args: CHROME_ARGS, headless: true,
  });

  // 1 + 2: range-capable server, small file by URL, then the API checks.
  const countA = join(tmp, 'bytes-range.txt');
  const baseA = (await serve(root, countA)) + 'repo/';
  const a = await openPage(baseA);
  assert.deepEqual(a.rows, [{ n: SMALL_ROWS }]);
  const progress = await a.page.evaluate(() => window.progress);
  assert.ok(progress.includes('starting DuckDB-WASM') && progress.includes('DuckDB-WASM ready'), `progress: ${progress}`);
  log(`small.duckdb by URL: ${JSON.stringify(a.rows)} in ${a.ms} ms (init + attach + query)`);
  await apiChecks(a.page, baseA);

  // 3: lazy read of the tiny table in the big file.
  const tinySql = encodeURIComponent('SELECT count(*) AS n FROM b.main.tiny');
  const lazy = await openPage(`${baseA}?file=big.duckdb&sql=${tinySql}`);
  assert.deepEqual(lazy.rows, [{ n: TINY_ROWS }]);
  const got = bytesFor(countA, '/repo/big.duckdb');
  log(`lazy: fetched ${got.total} of ${bigSize} bytes (${(100 * got.total / bigSize).toFixed(2)} %) in ${got.requests} requests, statuses ${[...got.statuses]}`);
  assert.ok(got.statuses.has('206'), 'expected range (206) responses');
  assert.ok(got.total < bigSize / 20, `lazy read fetched ${got.total} bytes of ${bigSize}`);

  // 4: host that ignores Range -> full-read fallback still answers.
  const countB = join(tmp, 'bytes-norange.txt');
  const baseB = (await serve(root, countB, ['--no-range'])) + 'repo/';
  const full = await openPage(`${baseB}?file=big.duckdb&sql=${tinySql}`);
  assert.deepEqual(full.rows, [{ n: TINY_ROWS }]);
  const gotB = bytesFor(countB, '/repo/big.duckdb');
  log(`no-range fallback: fetched ${gotB.total} of ${bigSize} bytes in ${gotB.requests} requests, statuses ${[...gotB.statuses]}`);
  assert.ok(gotB.total >= bigSize, 'fallback should have read the whole file');

  log('PASS');
}

let failed = false;
try {
  await main();
} catch (e) {
  failed = true;
  console.error('[smoke] FAIL:', e && e.stack ? e.stack : e);
} finally {
  if (context) await context.close().catch(() => {});
  for (const c of children) c.kill();
  if (process.env.KEEP_TMP) log(`kept ${tmp}`);
  else rmSync(tmp, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
