// Loads the package in headless Chromium (Debian's chromium, driven by playwright-core) from a
// local HTTP server on 127.0.0.1 and checks that it answers a write with MemoryHost.
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
  const allowed = file === "test/browser/index.html" || file.startsWith("js/") || file.startsWith("pkg/");
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
const profile = mkdtempSync(join(tmpdir(), "writesync-chromium-"));
after(() => {
  server.close();
  rmSync(profile, { recursive: true, force: true });
});

test("the package answers a write in headless Chromium", { timeout: 120_000 }, async () => {
  assert.ok(existsSync(executablePath), `no Chromium at ${executablePath} (apt-get install chromium)`);
  const context = await chromium.launchPersistentContext(profile, {
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
  try {
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 60_000 });
    const r = await page.evaluate(() => window.__result);
    assert.deepEqual(errors, []);
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
    await context.close();
  }
});
