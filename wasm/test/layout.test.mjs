// The layout-1 fixture (tests/fixtures/layout1, written by the layout-1 engine; see
// tests/tests/layout_fixture.rs): createEngine migrates it through the host, and the engine
// then answers every recorded read, the next deadline and the due work as layout 1 did.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createEngine, MemoryHost, WritesyncError } from "writesync-wasm";

const dir = new URL("../../tests/fixtures/layout1/", import.meta.url);
// The configuration of the fixture's scenario (`config()` in tests/tests/layout_fixture.rs).
const CONFIG = {
  adminToken: "layout-admin-token",
  seed: "writesync layout fixture",
  pushRetrySchedule: [1, 4],
  webhookRetrySchedule: [2, 10],
};
const T0 = 1_790_000_000_000;
const DAY = 86_400_000;

function parsedBody(text) {
  if (text === "") return "";
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function fixture(name) {
  return JSON.parse(readFileSync(new URL(name, dir), "utf8"));
}

test("a layout-1 store is migrated by createEngine and answers its recorded reads", async () => {
  const host = new MemoryHost(fixture("store.json"));
  const reads = fixture("reads.json");
  const engine = await createEngine(host, CONFIG);
  assert.equal(host.get("meta/layout"), '{"version":2}');
  for (const prefix of ["sync/", "task/", "chain/", "remote/", "meta/migration"]) {
    assert.equal(host.scan(prefix).length, 0, `${prefix} is left`);
  }
  for (const r of reads.requests) {
    const got = await engine.handle(
      { method: "GET", path: r.path, headers: { Authorization: r.auth } },
      T0 + DAY,
    );
    assert.deepStrictEqual(
      { status: got.status, headers: got.headers, body: parsedBody(got.body) },
      r.expect,
      r.path,
    );
  }
  assert.equal(engine.nextDeadline(), reads.deadline);
  const items = await engine.due(reads.due.now, 100);
  const got = items.map((it) => ({
    ...it,
    request: { ...it.request, body: parsedBody(it.request.body) },
  }));
  assert.deepStrictEqual({ items: got }, reads.due.expect);
  engine.free();
});

test("a migration interrupted by a failing host resumes at the next createEngine", async () => {
  const inner = new MemoryHost(fixture("store.json"));
  let applies = 0;
  const flaky = {
    entries: () => inner.entries(),
    apply(batch) {
      applies += 1;
      if (applies === 2) throw new Error("disk full");
      inner.apply(batch);
    },
  };
  await assert.rejects(
    createEngine(flaky, CONFIG),
    (e) => e instanceof WritesyncError && e.code === "host_error" && /migrate/.test(e.message),
  );
  assert.ok(inner.get("meta/migration"), "the first step's progress is stored");
  const engine = await createEngine(inner, CONFIG);
  assert.equal(inner.get("meta/layout"), '{"version":2}');
  assert.equal(inner.get("meta/migration"), undefined);
  const r = await engine.handle(
    { method: "GET", path: "/api/invoices", headers: { Authorization: fixture("reads.json").auth } },
    T0 + DAY,
  );
  assert.equal(r.status, 200);
  engine.free();
});

test("a store of a newer layout is refused", async () => {
  const host = new MemoryHost([["meta/layout", '{"version":9}']]);
  await assert.rejects(
    createEngine(host, CONFIG),
    (e) => e instanceof WritesyncError && e.code === "layout" && /layout 9/.test(e.message),
  );
  assert.equal(host.get("meta/layout"), '{"version":9}');
});
