// The layout-1 fixture (tests/fixtures/layout1, written by the layout-1 engine; see
// tests/tests/layout_fixture.rs). The wasm module is built without the core's feature
// `layout1`: createEngine refuses the layout-1 store (`layout`) and writes nothing. The same
// store migrated by the Rust engine (migrated.json, checked by the Rust test) answers every
// recorded read, the next deadline and the due work as layout 1 did. The layout-3 and layout-4
// fixtures (tests/fixtures/layout3, layout4) are migrated by the module itself, to exactly
// migrated.json. That a migration resumes
// where it stopped is tested in Rust (tests/tests/layout_fixture.rs), where it runs.
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

// The words of `LAYOUT1_UNSUPPORTED` (core/src/records/layout.rs) after the core's
// `storage layout: `.
const LAYOUT1_REFUSED =
  "storage layout: the store holds data layout 1, and this build of writesync cannot migrate " +
  "it (it migrates layouts 2 to 4 and reads layout 5 only): open the store once with the " +
  "native library (writesync-core with its default feature layout1, or writesync-sqlite), the " +
  "server or the C library, which migrate it to layout 5, then open it here";

function entriesOf(host) {
  return [...host.entries()].map(([k, v]) => [k, v]);
}

test("a layout-1 store is refused with `layout` and left untouched", async () => {
  const stored = fixture("store.json");
  const host = new MemoryHost(stored);
  await assert.rejects(
    createEngine(host, CONFIG),
    (e) => e instanceof WritesyncError && e.code === "layout" && e.message === LAYOUT1_REFUSED,
  );
  assert.deepStrictEqual(entriesOf(host), stored);
});

test("the layout-1 store migrated by the Rust engine answers its recorded reads", async () => {
  const migrated = fixture("migrated.json");
  const host = new MemoryHost(migrated);
  const reads = fixture("reads.json");
  const engine = await createEngine(host, CONFIG);
  // Opening a store in the current layout writes nothing.
  assert.deepStrictEqual(entriesOf(host), migrated);
  assert.equal(host.get("meta/layout"), '{"version":5}');
  for (const prefix of ["sync/", "task/", "chain/", "remote/", "meta/migration"]) {
    assert.equal(host.scan(prefix).length, 0, `${prefix} is left`);
  }
  await answersRecordedReads(engine, reads);
  engine.free();
});

// The recorded reads, the next deadline and the due work of the fixture.
async function answersRecordedReads(engine, reads) {
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
}

async function migratedByCreateEngine(store) {
  const host = new MemoryHost(store);
  let applies = 0;
  const counting = {
    get: (k) => host.get(k),
    scan: (p, o, l) => host.scan(p, o, l),
    apply(batch) {
      applies += 1;
      host.apply(batch);
    },
  };
  const engine = await createEngine(counting, CONFIG);
  // Steps of at most 500 rows, each one commit (the steps themselves are tested in Rust).
  assert.ok(applies >= 1, `${applies} commits`);
  assert.deepStrictEqual(entriesOf(host), fixture("migrated.json"));
  await answersRecordedReads(engine, fixture("reads.json"));
  engine.free();
}

test("a layout-3 store is migrated by createEngine to exactly what the Rust engine writes", async () => {
  // tests/fixtures/layout3/store.json: the layout-1 fixture as the layout-3 engine migrated it.
  await migratedByCreateEngine(
    JSON.parse(readFileSync(new URL("../layout3/store.json", dir), "utf8")),
  );
});

test("a layout-4 store is migrated by createEngine to exactly what the Rust engine writes", async () => {
  // tests/fixtures/layout4/store.json: the layout-1 fixture as the layout-4 engine migrated it
  // (its push chains under ch/).
  const layout4 = JSON.parse(readFileSync(new URL("../layout4/store.json", dir), "utf8"));
  assert.ok(layout4.some(([k]) => k.startsWith("ch/")));
  await migratedByCreateEngine(layout4);
});

test("a layout-1 store whose native migration stopped half-way is refused, no write tried", async () => {
  // A native host that stopped after the syncs phase leaves its progress under meta/migration.
  const stored = [
    ...fixture("store.json").filter(([k]) => !k.startsWith("sync/")),
    ["meta/migration", '{"from":1,"offset":0,"phase":"chains"}'],
  ].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const inner = new MemoryHost(stored);
  let applies = 0;
  const counting = {
    entries: () => inner.entries(),
    apply(batch) {
      applies += 1;
      inner.apply(batch);
    },
  };
  await assert.rejects(
    createEngine(counting, CONFIG),
    (e) => e instanceof WritesyncError && e.code === "layout" && e.message === LAYOUT1_REFUSED,
  );
  assert.equal(applies, 0);
  assert.deepStrictEqual(entriesOf(inner), stored);
});

test("a store of a newer layout is refused", async () => {
  const host = new MemoryHost([["meta/layout", '{"version":9}']]);
  await assert.rejects(
    createEngine(host, CONFIG),
    (e) => e instanceof WritesyncError && e.code === "layout" && /layout 9/.test(e.message),
  );
  assert.equal(host.get("meta/layout"), '{"version":9}');
});
