// DuckDB-WASM shim for the viewer.
//
// Bundled by build-assets.sh with
//   esbuild shim.js --bundle --format=esm --minify --outfile=OUT/vendor/duckdb/duckdb-shim.mjs
// (apache-arrow gets inlined), and served next to duckdb-{eh,mvp}.wasm and
// duckdb-browser-{eh,mvp}.worker.js. Nothing here loads from a CDN.
//
// Every export is async and rejects with an Error whose message starts with the
// function name. Results cross to Rust as JSON strings (see queryJson).

import * as duckdb from '@duckdb/duckdb-wasm';

let initPromise = null; // Promise<AsyncDuckDB>, shared by concurrent and repeated init() calls
let db = null;
let conn = null;
const registered = new Map(); // alias -> file name registered with duckdb-wasm

const ALIAS_RE = /^[a-z0-9_]{1,63}$/;

function fail(fn, e) {
    const msg = e instanceof Error ? e.message : String(e);
    return new Error(`${fn}: ${msg}`);
}

function checkAlias(fn, alias) {
    if (typeof alias !== 'string' || !ALIAS_RE.test(alias)) {
        throw new Error(`${fn}: invalid alias ${JSON.stringify(alias)} (expected 1-63 characters of [a-z0-9_])`);
    }
}

function requireDb(fn) {
    if (!db || !conn) throw new Error(`${fn}: DuckDB-WASM is not initialised; call init() first`);
}

function fileNameFor(alias) {
    return `viewer_${alias}.duckdb`;
}

/**
 * Start DuckDB-WASM from self-hosted assets.
 * @param {string} baseUrl folder holding the wasm and worker files, e.g.
 *   new URL('vendor/duckdb', document.baseURI).href (trailing slash optional;
 *   a relative value is resolved against document.baseURI).
 * @param {(text: string) => void} [onProgress] receives short status lines.
 * @returns {Promise<duckdb.AsyncDuckDB>} the same instance on every call.
 */
export async function init(baseUrl, onProgress) {
    if (!initPromise) {
        initPromise = start(baseUrl, onProgress).catch((e) => {
            initPromise = null; // allow a retry after a failure
            throw fail('init', e);
        });
    }
    return initPromise;
}

async function start(baseUrl, onProgress) {
    const say = (text) => {
        if (typeof onProgress === 'function') {
            try { onProgress(text); } catch (_) { /* a broken callback must not break init */ }
        }
    };
    if (typeof baseUrl !== 'string' || baseUrl === '') throw new Error('baseUrl must be a non-empty string');
    say('starting DuckDB-WASM');
    const pageBase = globalThis.document?.baseURI ?? globalThis.location?.href;
    const base = new URL(baseUrl.endsWith('/') ? baseUrl : baseUrl + '/', pageBase);
    const asset = (f) => new URL(f, base).href;
    // eh = wasm exception handling (every current browser); mvp = fallback.
    // coi is left out on purpose: it needs cross-origin isolation headers that
    // static hosts (GitHub Pages, S3) cannot send.
    const bundle = await duckdb.selectBundle({
        mvp: { mainModule: asset('duckdb-mvp.wasm'), mainWorker: asset('duckdb-browser-mvp.worker.js') },
        eh: { mainModule: asset('duckdb-eh.wasm'), mainWorker: asset('duckdb-browser-eh.worker.js') },
    });
    const worker = new Worker(bundle.mainWorker);
    const instance = new duckdb.AsyncDuckDB(new duckdb.ConsoleLogger(duckdb.LogLevel.WARNING), worker);
    try {
        let lastMb = -1;
        await instance.instantiate(bundle.mainModule, bundle.pthreadWorker, (p) => {
            const mb = Math.floor((p.bytesLoaded || 0) / 1e6);
            if (mb !== lastMb && p.bytesTotal) {
                lastMb = mb;
                say(`loading DuckDB-WASM (${mb} of ${Math.ceil(p.bytesTotal / 1e6)} MB)`);
            }
        });
        // HTTP file settings, checked against runtime_browser.ts openFile() in 1.32.0:
        // - forceFullHTTPReads:false. The default (true) makes every HTTP file one
        //   plain GET of the whole file; false lets DuckDB read only the blocks it needs.
        // - reliableHeadRequests:true. openFile first sends HEAD with
        //   "Range: bytes=0-"; a 206 with Content-Length means range reads, and the
        //   file is then read block by block with synchronous range GETs. (With false
        //   and allowFull true it skips that HEAD and probes with GET bytes=0-0 and
        //   another HEAD: more requests for the same outcome.)
        // - allowFullHTTPReads:true. If the HEAD is not a 206 (host ignores Range),
        //   openFile sends GET "Range: bytes=0-0"; a host that ignores ranges answers
        //   200 with the whole body, which is kept in wasm memory and used as the file.
        //   That is one full download instead of the hard failure you get with false.
        await instance.open({
            filesystem: { forceFullHTTPReads: false, allowFullHTTPReads: true, reliableHeadRequests: true },
        });
        conn = await instance.connect();
    } catch (e) {
        try { await instance.terminate(); } catch (_) { /* ignore */ }
        conn = null;
        throw e;
    }
    db = instance;
    say('DuckDB-WASM ready');
    return db;
}

/**
 * Attach a remote .duckdb file read-only; it is read lazily with range requests
 * where the host supports them, otherwise downloaded whole once.
 * @param {string} alias catalog name, [a-z0-9_]{1,63}; query as alias.main.table
 * @param {string} url absolute http(s) URL (resolve relative ones with
 *   new URL(u, document.baseURI).href first)
 */
export async function attachUrl(alias, url) {
    checkAlias('attachUrl', alias);
    requireDb('attachUrl');
    let abs;
    try {
        abs = new URL(url);
    } catch (_) {
        throw new Error(`attachUrl: ${JSON.stringify(url)} is not an absolute URL`);
    }
    if (abs.protocol !== 'http:' && abs.protocol !== 'https:') {
        throw new Error(`attachUrl: ${JSON.stringify(url)} is not an http(s) URL`);
    }
    await attachRegistered('attachUrl', alias, abs.href, (name) =>
        db.registerFileURL(name, abs.href, duckdb.DuckDBDataProtocol.HTTP, false));
}

/**
 * Attach a .duckdb file held in memory (a file the user picked or dropped).
 * The array's underlying ArrayBuffer is transferred to the DuckDB worker, so
 * the caller's array is detached afterwards (views into a larger buffer are copied).
 * @param {string} alias catalog name, [a-z0-9_]{1,63}
 * @param {Uint8Array} bytes whole file contents
 */
export async function attachBuffer(alias, bytes) {
    checkAlias('attachBuffer', alias);
    requireDb('attachBuffer');
    if (!(bytes instanceof Uint8Array)) throw new Error('attachBuffer: expected a Uint8Array');
    let buf = bytes;
    if (!(buf.buffer instanceof ArrayBuffer) || buf.byteOffset !== 0 || buf.byteLength !== buf.buffer.byteLength) {
        buf = buf.slice(); // own, transferable copy
    }
    await attachRegistered('attachBuffer', alias, `a ${buf.byteLength}-byte buffer`, (name) =>
        db.registerFileBuffer(name, buf));
}

async function attachRegistered(fn, alias, what, register) {
    if (registered.has(alias)) throw new Error(`${fn}: alias "${alias}" is already attached; detach it first`);
    const name = fileNameFor(alias);
    try {
        await register(name);
    } catch (e) {
        throw fail(fn, e);
    }
    try {
        await conn.query(`ATTACH '${name}' AS "${alias}" (READ_ONLY)`);
    } catch (e) {
        try { await db.dropFile(name); } catch (_) { /* ignore */ }
        throw fail(fn, `cannot attach ${what} as "${alias}": ${e instanceof Error ? e.message : e}`);
    }
    registered.set(alias, name);
}

/**
 * Detach a catalog attached by attachUrl/attachBuffer and drop its file.
 * Detaching an alias that is not attached is a no-op.
 * @param {string} alias
 */
export async function detach(alias) {
    checkAlias('detach', alias);
    requireDb('detach');
    try {
        await conn.query(`DETACH DATABASE IF EXISTS "${alias}"`);
        const name = registered.get(alias);
        if (name !== undefined) {
            registered.delete(alias);
            await db.dropFile(name);
        }
    } catch (e) {
        throw fail('detach', e);
    }
}

// ---- Arrow -> JSON-friendly values ----------------------------------------

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function bigint(v) {
    return v >= -SAFE && v <= SAFE ? Number(v) : v.toString();
}

function scalar(v) {
    if (typeof v === 'bigint') return bigint(v);
    if (ArrayBuffer.isView(v)) return Array.from(v, (x) => (typeof x === 'bigint' ? bigint(x) : x)); // BLOB, INTERVAL
    return v;
}

function isoOrString(ms, cut) {
    const d = new Date(ms);
    return Number.isFinite(d.getTime()) ? d.toISOString().slice(0, cut) : String(ms);
}

// DECIMAL arrives as an unscaled big number; HUGEINT arrives as DECIMAL(38,0).
function decimal(v, scale) {
    const s = String(v);
    const u = BigInt(s);
    if (scale === 0) return bigint(u);
    if (u >= -SAFE && u <= SAFE) return Number(s) / 10 ** scale;
    const neg = u < 0n;
    const digits = (neg ? -u : u).toString().padStart(scale + 1, '0');
    return `${neg ? '-' : ''}${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
}

// Arrow type ids and time units (Arrow Schema.fbs; equal to apache-arrow's
// Type/TimeUnit enums). Spelled out so the shim imports only duckdb-wasm.
const T = { Decimal: 7, Date: 8, Time: 9, Timestamp: 10, List: 12, Struct: 13, FixedSizeList: 16, Map: 17 };
const TIME_TO_MS = [1e3, 1, 1e-3, 1e-6]; // SECOND, MILLISECOND, MICROSECOND, NANOSECOND

function timeOfDay(v, unit) {
    const ms = Number(v) * TIME_TO_MS[unit];
    return Number.isFinite(ms) ? new Date(ms).toISOString().slice(11, 23) : String(v); // HH:MM:SS.mmm
}

function converter(type) {
    switch (type.typeId) {
        case T.Decimal:
            return (v) => decimal(v, type.scale);
        case T.Date:
            return (v) => isoOrString(v, 10); // YYYY-MM-DD
        case T.Timestamp:
            return (v) => isoOrString(v); // arrow gives epoch ms; always UTC "...Z"
        case T.Time:
            return (v) => timeOfDay(v, type.unit);
        case T.List:
        case T.FixedSizeList: {
            const c = converter(type.children[0].type);
            return (v) => Array.from(v, (x) => (x == null ? null : c(x)));
        }
        case T.Struct: {
            const cs = type.children.map((f) => [f.name, converter(f.type)]);
            return (v) => {
                const o = {};
                for (const [n, c] of cs) o[n] = v[n] == null ? null : c(v[n]);
                return o;
            };
        }
        case T.Map: {
            const [kf, vf] = type.children[0].type.children;
            const kc = converter(kf.type);
            const vc = converter(vf.type);
            return (v) => {
                const o = {};
                for (const [k, x] of v) o[String(kc(k))] = x == null ? null : vc(x);
                return o;
            };
        }
        default:
            return scalar;
    }
}

/**
 * Run one SQL statement on the shared connection.
 * @param {string} sql
 * @returns {Promise<string>} JSON array of row objects keyed by column name.
 *   BIGINT/HUGEINT -> number (string if beyond +-2^53-1), DECIMAL -> number,
 *   DATE -> "YYYY-MM-DD", TIMESTAMP[TZ] -> ISO "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC),
 *   TIME -> "HH:MM:SS.mmm", LIST -> array, STRUCT/MAP -> object,
 *   BLOB -> array of bytes, NULL/NaN/Infinity -> null.
 */
export async function queryJson(sql) {
    requireDb('queryJson');
    if (typeof sql !== 'string') throw new Error('queryJson: sql must be a string');
    let table;
    try {
        table = await conn.query(sql);
    } catch (e) {
        throw fail('queryJson', e);
    }
    const cols = table.schema.fields.map((f, i) => [f.name, table.getChildAt(i), converter(f.type)]);
    const rows = new Array(table.numRows);
    for (let r = 0; r < table.numRows; r++) {
        const o = {};
        for (const [name, vec, c] of cols) {
            const v = vec.get(r);
            o[name] = v == null ? null : c(v);
        }
        rows[r] = o;
    }
    return JSON.stringify(rows);
}

/** @returns {Promise<string>} DuckDB library version, e.g. "v1.4.3". */
export async function version() {
    requireDb('version');
    try {
        return await db.getVersion();
    } catch (e) {
        throw fail('version', e);
    }
}
