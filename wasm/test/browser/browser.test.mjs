// Loads the package in headless Chromium (Debian's chromium, driven by playwright-core) from a
// local HTTP server on 127.0.0.1 and checks that it answers a write with MemoryHost, that
// IndexedDbHost keeps its contract (test/browser/idb-host.html), and that an engine over
// IndexedDbHost answers from what it wrote before a reload of the page (idb-engine.html).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = fileURLToPath(new URL("../..", import.meta.url)); // wasm/
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm" };

const server = createServer(async (req, res) => {
  const path = new URL(req.url, "http://x").pathname;
  const file = path === "/" ? "test/browser/index.html" : normalize(path).replace(/^\/+/, "");
  const allowed = /^test\/browser\/[\w-]+\.html$/.test(file) || file.startsWith("js/") || file.startsWith("pkg/");
  try {
    if (!allowed) throw new Error("not served");
    const data = await readFile(join(root, file));
    res.writeHead(200, { "Content-Type": TYPES[file.slice(file.lastIndexOf("."))] ?? "application/octet-stream" });
    res.end(data);
  } catch {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
let context;
const profile = mkdtempSync(join(tmpdir(), "writesync-chromium-"));
after(async () => {
  await context?.close();
  server.close();
  rmSync(profile, { recursive: true, force: true });
});

/** The browser, started once for every test of this file (one profile: IndexedDB persists). */
async function browser() {
  if (context) return context;
  assert.ok(existsSync(executablePath), `no Chromium at ${executablePath} (apt-get install chromium)`);
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  return context;
}
/** Wait for the page's `window.__result`, with no page errors. */
async function result(page, errors) {
  await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 60_000 });
  const r = await page.evaluate(() => window.__result);
  assert.deepEqual(errors, []);
  return r;
}

async function open(path) {
  const page = await (await browser()).newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`http://127.0.0.1:${server.address().port}${path}`);
  return { page, errors };
}

test("the package answers a write in headless Chromium", { timeout: 120_000 }, async () => {
  const { page, errors } = await open("/");
  try {
    const r = await result(page, errors);
    assert.equal(r.error, undefined, r.error);
    assert.match(r.userAgent, /Chrome/);
    assert.equal(r.accountStatus, 201);
    assert.equal(r.writeStatus, 201);
    assert.ok(r.requestId);
    assert.equal(r.customer.name, "Zoë Ltd");
    assert.equal(r.customer.version, 1);
    assert.deepEqual(r.readBack, r.customer);
    assert.ok(r.hostEntries > 0);
  } finally {
    await page.close();
  }
});

/** Order of UTF-8 bytes, computed independently of the package's compareUtf8. */
function utf8Order(a, b) {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

test("IndexedDbHost: point reads, ordered prefix scans, atomic batches", { timeout: 120_000 }, async () => {
  const { page, errors } = await open("/test/browser/idb-host.html");
  try {
    const r = await result(page, errors);
    assert.equal(r.error, undefined, r.error);
    assert.equal(r.async, true);
    const value = (k) => `{"i":${r.keys.indexOf(k)},"k":${JSON.stringify(k)}}`;
    assert.deepEqual(r.gets, r.keys.map(value));
    assert.equal(r.missing, "undefined");

    const sorted = [...r.keys].sort(utf8Order);
    assert.deepEqual(r.expectedAll, sorted, "compareUtf8 orders as UTF-8 bytes");
    assert.deepEqual(r.all, sorted.map((k) => [k, value(k)]), "a full scan is in UTF-8 byte order");
    // Where UTF-16 order differs: U+FFFF before U+1F600 in UTF-8.
    assert.ok(sorted.indexOf("\uFFFF") < sorted.indexOf("\u{1F600}"));
    assert.ok(sorted.indexOf("a\uE000") < sorted.indexOf("a\u{1F600}"));
    const withA = sorted.filter((k) => k.startsWith("a"));
    assert.equal(withA.length, 11);
    assert.deepEqual(r.prefixA, withA);
    assert.deepEqual(r.prefixAstral, ["\u{1F600}", "\u{1F600}1"]);
    assert.deepEqual(r.prefixMax, ["a\u{10FFFF}", "a\u{10FFFF}x"]);
    assert.deepEqual(r.page, withA.slice(2, 5));
    assert.deepEqual(r.pageEnd, withA.slice(9));
    assert.deepEqual(r.pastEnd, []);
    assert.deepEqual(r.limitZero, []);
    assert.deepEqual(r.none, []);

    assert.deepEqual(r.afterBatch, { b: "B2", Z: null, c: "C" });

    assert.match(r.badOp.error, /not an operation/);
    assert.match(r.loneSurrogate.error, /lone surrogate/);
    assert.deepEqual(r.afterBad, { x1: null, x3: null });

    assert.match(r.midway.error, /IndexedDbHost\("writesync-idb-host-check"\): apply failed: UnknownError: injected failure/);
    assert.deepEqual(r.afterMidway, { m1: null, m2: null, m3: null, b: "B2" }, "nothing of the failed batch remains");
    assert.equal(r.countAfterFailures, r.keys.length, "17 keys - Z + c");

    assert.match(r.aborted.error, /apply failed/);
    assert.deepEqual(r.afterAborted, { n1: null, n2: null });

    assert.match(r.badScan.error, /offset and limit/);
    assert.match(r.badGet.error, /key must be a string/);
    assert.match(r.afterClose.error, /after close\(\)/);
    assert.deepEqual(r.reopened, { b: "B2", c: "C", count: r.keys.length });
    assert.match(r.badName.error, /non-empty string/);
  } finally {
    await page.close();
  }
});

test("an engine over IndexedDbHost answers from its data after a page reload", { timeout: 120_000 }, async () => {
  const { page, errors } = await open("/test/browser/idb-engine.html");
  try {
    const w = await result(page, errors);
    assert.equal(w.error, undefined, w.error);
    assert.equal(w.phase, "write");
    assert.deepEqual([w.accountStatus, w.keyStatus, w.writeStatus], [201, 201, 201]);
    assert.equal(w.customer.name, "Zoë Ltd");

    await page.evaluate(() => {
      window.__result = undefined;
    });
    await page.reload();
    const r = await result(page, errors);
    assert.equal(r.error, undefined, r.error);
    assert.equal(r.phase, "read");
    assert.ok(r.stored > 0, "the database kept entries");
    assert.equal(r.readStatus, 200);
    assert.deepEqual(r.readBack, w.customer);
    assert.equal(r.listStatus, 200);
    assert.deepEqual(r.list, [w.customer]);
    assert.equal(r.badAuthStatus, 401);
  } finally {
    await page.close();
  }
});
