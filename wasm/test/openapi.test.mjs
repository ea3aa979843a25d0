// GET /openapi.json from the wasm engine. The module is built without the document (core feature
// `openapi` off); js/engine.js hands each engine the text of core/openapi.json from
// pkg/writesync_openapi.js. The native engine answers the same request with 200,
// `Content-Type: application/json` and exactly that text (core/tests/openapi.rs checks that the
// handed-over and the built-in document give identical answers), so this test holds the wasm
// answer to the file itself. The engine keeps the handed-over text as a JS string and copies it
// into linear memory only for a request whose decoded first path segment is `openapi.json`, so
// every spelling of that path must still find it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createEngine, MemoryHost } from "writesync-wasm";
import { ADMIN, T0, Client } from "./helpers.mjs";

const DOCUMENT = readFileSync(new URL("../../core/openapi.json", import.meta.url), "utf8");

async function engine() {
  return createEngine(new MemoryHost(), { adminToken: ADMIN, seed: "wasm openapi tests" });
}

test("GET and HEAD answer the document byte for byte, with no auth and any query", async () => {
  const e = await engine();
  const requests = [
    { method: "GET", path: "/openapi.json" },
    { method: "HEAD", path: "/openapi.json" },
    { method: "GET", path: "/openapi.json?x=1" },
    { method: "GET", path: "/openapi.json/" },
    { method: "GET", path: "/openapi%2Ejson" },
    { method: "GET", path: "//openapi.json" },
    { method: "GET", path: "/openapi.json", headers: { Authorization: "Bearer nope" } },
    { method: "GET", path: "/openapi.json", headers: { "X-Request-ID": "r-1" } },
  ];
  for (const request of requests) {
    const r = await e.handle(request, T0);
    assert.equal(r.status, 200, JSON.stringify(request));
    assert.deepEqual(r.headers, { "Content-Type": "application/json" }, JSON.stringify(request));
    assert.ok(r.body === DOCUMENT, `${JSON.stringify(request)}: the body is not the document's text`);
  }
  e.free();
});

test("other methods are 405 with Allow: GET, as for every fixed route", async () => {
  const e = await engine();
  for (const method of ["POST", "PUT", "DELETE"]) {
    const r = await e.handle({ method, path: "/openapi.json", body: "{}" }, T0);
    assert.equal(r.status, 405);
    assert.equal(r.headers.Allow, "GET");
    assert.equal(JSON.parse(r.body).type, "/problems/method-not-allowed");
  }
  e.free();
});

test("the document is served by every engine, also after other requests", async () => {
  const a = await engine();
  const b = await engine();
  const c = new Client(a);
  await c.tenant("acme.example.com");
  for (const e of [a, b]) {
    const r = await e.handle({ method: "GET", path: "/openapi.json" }, T0);
    assert.ok(r.status === 200 && r.body === DOCUMENT);
  }
  a.free();
  b.free();
});

test("the package ships the document module", () => {
  const [pack] = JSON.parse(
    execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
      cwd: new URL("..", import.meta.url),
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }),
  );
  const files = pack.files.map((f) => f.path);
  for (const f of ["pkg/writesync_openapi.js", "pkg/writesync_wasm.js", "pkg/writesync_wasm_bg.wasm"]) {
    assert.ok(files.includes(f), `${f} is not in the package: ${files.join(", ")}`);
  }
});

test("URL hosts must be ASCII here too: 422 at the field, the xn-- form is accepted", async () => {
  const e = await engine();
  const c = new Client(e);
  const t = await c.tenant("acme.example.com");
  const bad = await c.admin("POST", `/admin/accounts/${t.id}/connections`, {
    app: "quickbooks",
    type: "accounting",
    pushUrl: "https://bücher.example/push",
  });
  assert.equal(bad.status, 422, bad.body);
  assert.equal(bad.json.errors.length, 1);
  assert.equal(bad.json.errors[0].pointer, "/pushUrl");
  assert.equal(bad.json.errors[0].code, "invalid_value");
  assert.match(bad.json.errors[0].message, /xn-- Punycode form/);
  const good = await c.admin("POST", `/admin/accounts/${t.id}/connections`, {
    app: "quickbooks",
    type: "accounting",
    pushUrl: "https://xn--bcher-kva.example/push",
  });
  assert.equal(good.status, 201, good.body);
  assert.equal(good.json.pushUrl, "https://xn--bcher-kva.example/push");
  e.free();
});
