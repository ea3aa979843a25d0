// Reads on demand: MemoryHost's ordered scans, the host shapes createEngine takes (synchronous,
// asynchronous, legacy), failing and malformed reads, the bounded cache and options.seed bytes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createEngine, MemoryHost, compareUtf8 } from "writesync-wasm";
import { ADMIN, T0, Client, invoice } from "./helpers.mjs";
import { AsyncMemoryHost } from "./vectors.test.mjs";

const OPTIONS = { adminToken: ADMIN, seed: "wasm on-demand tests" };

/** The reference answer of a scan: filter and sort everything by UTF-8 bytes. */
function naiveScan(entries, prefix, offset = 0, limit = Infinity) {
  return entries
    .filter(([k]) => k.startsWith(prefix))
    .sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])))
    .slice(offset, offset + limit);
}

test("MemoryHost: scans across chunks, with offsets and limits, match a sorted reference", () => {
  const h = new MemoryHost();
  const all = new Map();
  // Enough keys to split chunks many times, inserted out of order, with non-ASCII and
  // surrogate-pair keys where UTF-16 order and UTF-8 order differ.
  const tails = ["", "a", "z", "\u00e9", "\uFFFD", "\uE000", "\u{1F600}", "\u{10000}", "\uD7FF"];
  let n = 0;
  for (let i = 0; i < 2600; i++) {
    const j = (i * 7919) % 2600;
    const key = `${["p/", "q/", "p/x/"][j % 3]}${String(j % 97).padStart(3, "0")}${tails[j % tails.length]}${j}`;
    all.set(key, `v${n++}`);
  }
  const ops = [...all].map(([key, value]) => ({ op: "put", key, value }));
  for (let i = 0; i < ops.length; i += 100) h.apply(ops.slice(i, i + 100));
  // Delete a third of them, through several chunks.
  const gone = [...all.keys()].filter((_, i) => i % 3 === 0);
  h.apply(gone.map((key) => ({ op: "delete", key })));
  for (const k of gone) all.delete(k);
  const entries = [...all];
  assert.equal(h.size, all.size);
  assert.deepEqual(h.entries(), naiveScan(entries, ""), "entries() in UTF-8 order");
  for (const prefix of ["", "p/", "p/x/", "q/", "p/00", "q/050", "r/", "p/x/096\uD7FF"]) {
    for (const [offset, limit] of [[0, Infinity], [0, 1], [5, 10], [500, 1000], [1030, 3], [5000, 1]]) {
      assert.deepEqual(h.scan(prefix, offset, limit), naiveScan(entries, prefix, offset, limit), `${prefix} ${offset} ${limit}`);
    }
  }
  assert.deepEqual(h.scan("p/", 0, 0), []);
  // A copy from its entries answers the same.
  const copy = new MemoryHost(h.entries().reverse());
  assert.deepEqual(copy.entries(), h.entries());
  assert.deepEqual(copy.scan("q/", 10, 20), h.scan("q/", 10, 20));
});

test("MemoryHost: puts, deletes and re-puts between scans keep the order (both ways of ordering new keys)", () => {
  // New keys are ordered at the next scan: one by one when few, by one merge when many. Mix
  // both with deletes of ordered and not yet ordered keys and re-puts, against a reference.
  for (const tails of [["a", "b"], ["a", "\u{1F600}", "\uE000"]]) {
    const h = new MemoryHost();
    const all = new Map();
    let seed = 7;
    const rand = (n) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (let step = 0; step < 400; step++) {
      const ops = [];
      // Mostly small batches (ordered one by one), now and then a large one (merged).
      const size = step % 50 === 0 ? 600 : 1 + rand(12);
      for (let i = 0; i < size; i++) {
        const key = `k/${String(rand(3000)).padStart(4, "0")}${tails[rand(tails.length)]}`;
        if (rand(4) === 0) {
          ops.push({ op: "delete", key });
          all.delete(key);
        } else {
          ops.push({ op: "put", key, value: `v${step}.${i}` });
          all.set(key, `v${step}.${i}`);
        }
      }
      h.apply(ops);
      if (step % 3 !== 0) {
        const prefix = ["k/", "k/1", "k/02", ""][step % 4];
        const offset = rand(50);
        assert.deepEqual(h.scan(prefix, offset, 40), naiveScan([...all], prefix, offset, 40), `step ${step}`);
      }
      assert.equal(h.size, all.size);
    }
    assert.deepEqual(h.entries(), naiveScan([...all], ""));
  }
  // Put, delete and put again between two scans: once in the order; deleted before any scan:
  // not at all.
  const h = new MemoryHost([["k/1", "a"]]);
  h.apply([{ op: "put", key: "k/2", value: "b" }, { op: "delete", key: "k/2" }, { op: "put", key: "k/0", value: "c" }]);
  h.apply([{ op: "put", key: "k/2", value: "d" }, { op: "delete", key: "k/1" }, { op: "delete", key: "k/0" }]);
  h.apply([{ op: "put", key: "k/0", value: "e" }]);
  assert.deepEqual(h.scan("k/"), [["k/0", "e"], ["k/2", "d"]]);
  assert.equal(h.size, 2);
});

test("MemoryHost: UTF-8 order of surrogate pairs against U+E000..U+FFFF, and bad arguments", () => {
  const h = new MemoryHost();
  h.apply([
    { op: "put", key: "\u{10000}", value: "astral" },
    { op: "put", key: "\uFFFF", value: "bmp-top" },
    { op: "put", key: "\uE000", value: "private" },
    { op: "put", key: "\uD7FF", value: "below-surrogates" },
  ]);
  assert.deepEqual(h.scan("").map(([, v]) => v), ["below-surrogates", "private", "bmp-top", "astral"]);
  assert.ok(compareUtf8("\u{10000}", "\uFFFF") > 0);
  assert.throws(() => h.scan("", -1, 1), { code: "invalid_argument" });
  assert.throws(() => h.scan("", 0, 1.5), { code: "invalid_argument" });
  assert.throws(() => new MemoryHost([["k", 1]]), { code: "invalid_argument" });
  // A bad batch changes nothing, even when its bad operation comes last.
  const before = h.entries();
  assert.throws(() => h.apply([{ op: "delete", key: "\uE000" }, { op: "put", key: "x", value: "1" }, { op: "nope", key: "y" }]), {
    code: "invalid_argument",
  });
  assert.deepEqual(h.entries(), before);
  assert.equal(h.size, 4);
});

/** Account, key, 2 connections, 1 webhook, 1 customer; answers the client, tenant, customer. */
async function setup(engine) {
  const c = new Client(engine);
  const t = await c.tenant("ondemand.example.com");
  for (const [app, type] of [["quickbooks", "accounting"], ["shopify", "commerce"]]) {
    const r = await c.admin("POST", `/admin/accounts/${t.id}/connections`, { app, type, pushUrl: `https://${app}.example.com/push` });
    assert.equal(r.status, 201, r.body);
  }
  const w = await c.admin("POST", `/admin/accounts/${t.id}/webhooks`, { url: "https://hooks.example.com/in", events: ["*"] });
  assert.equal(w.status, 201, w.body);
  const cust = await c.send("POST", "/api/customers", { auth: t.auth, body: { name: "On Demand Ltd" } });
  assert.equal(cust.status, 201, cust.body);
  return { c, t, customerId: cust.json.id };
}

/** A synchronous host over a MemoryHost whose reads can be made to fail or answer garbage. */
class FaultyHost {
  inner = new MemoryHost();
  fault = null; // null, "throw", or a function answering the malformed value
  get(key) {
    if (this.fault === "throw") throw new Error("disk unreadable");
    if (this.fault) return this.fault("get");
    return this.inner.get(key);
  }
  scan(prefix, offset, limit) {
    if (this.fault === "throw") throw new Error("disk unreadable");
    if (this.fault) return this.fault("scan");
    return this.inner.scan(prefix, offset, limit);
  }
  apply(ops) {
    this.inner.apply(ops);
  }
}

/** The same, asynchronous. */
class AsyncFaultyHost extends FaultyHost {
  async = true;
  async get(key) {
    await null;
    return super.get(key);
  }
  async scan(prefix, offset, limit) {
    await null;
    return super.scan(prefix, offset, limit);
  }
}

for (const [name, Host] of [["sync", FaultyHost], ["async", AsyncFaultyHost]]) {
  test(`${name} host: a failing or malformed read is a 503 (handle) or host_error, commits nothing, and the engine goes on`, async () => {
    const host = new Host();
    // Fresh engines for each fault, so that nothing is answered from the cache.
    const { t, customerId } = await setup(await createEngine(host, OPTIONS));
    const faults = [
      ["throw", /disk unreadable/],
      [() => 42, /not a string or undefined|not an array/],
      // A sync host answering a Promise is told to say `async: true`.
      [(m) => (m === "get" ? (host.async ? 17n : Promise.resolve("x")) : [["k", 1]]), /Promise|not a \[key, value\] pair|not a string/],
      [(m) => (m === "get" ? { value: "x" } : "rows"), /not a string or undefined|not an array/],
    ];
    for (const [fault, detail] of faults) {
      const engine = await createEngine(host, OPTIONS);
      const c = new Client(engine);
      const before = host.inner.entries();
      host.fault = fault;
      const r = await c.send("POST", "/api/invoices", { auth: t.auth, body: invoice(customerId, "INV-F"), headers: { "X-Sync-Data": "push" } });
      assert.equal(r.status, 503, r.body);
      assert.equal(r.headers["Content-Type"], "application/problem+json");
      assert.match(r.json.detail, detail);
      assert.ok(r.headers["X-Request-ID"]);
      await assert.rejects(engine.due(T0), (e) => e.code === "host_error" && detail.test(e.message));
      await assert.rejects(Promise.resolve().then(() => engine.nextDeadline()), { code: "host_error" });
      assert.deepEqual(host.inner.entries(), before, "nothing committed");
      host.fault = null;
      const ok = await c.send("POST", "/api/invoices", { auth: t.auth, body: invoice(customerId, "INV-F"), headers: { "X-Sync-Data": "push" } });
      assert.equal(ok.status, 201, ok.body);
      assert.equal((await engine.due(T0)).filter((i) => i.kind === "push").length, 2);
      // The store as it was before the write, for the next fault (and a fresh engine).
      host.inner = new MemoryHost(before);
      engine.free();
    }
  });
}

test("an async host and a sync host give byte-identical answers and stores", async () => {
  const run = async (host) => {
    const engine = await createEngine(host, { ...OPTIONS, pushRetrySchedule: [1] });
    const { c, t, customerId } = await setup(engine);
    const answers = [];
    for (let i = 0; i < 20; i++) {
      const r = await c.send("POST", "/api/invoices", {
        auth: t.auth,
        body: invoice(customerId, `INV-${i}`),
        headers: { "X-Sync-Data": "push", "Idempotency-Key": `k-${i % 15}` },
      });
      answers.push(r.status, r.headers, r.body);
      c.now += 7;
    }
    const items = await engine.due(c.now, 100);
    for (const it of items) await engine.report(it.id, { status: 503, body: "" }, c.now);
    answers.push(items, await engine.nextDeadline(), await engine.prune(c.now + 10 * 86_400_000));
    answers.push(await c.send("GET", "/api/invoices?page=1&pageSize=5", { auth: t.auth }));
    return { answers, entries: host.entries() };
  };
  const sync = await run(new MemoryHost());
  const asyncHost = new AsyncMemoryHost();
  const viaAsync = await run(asyncHost);
  assert.deepStrictEqual(viaAsync.answers, sync.answers);
  assert.deepStrictEqual(viaAsync.entries, sync.entries);
  assert.ok(asyncHost.reads > 0);
});

test("the cache is bounded (entries and bytes) while the host grows", async () => {
  const host = new MemoryHost();
  const engine = await createEngine(host, OPTIONS);
  const { c, t, customerId } = await setup(engine);
  for (let i = 0; i < 700; i++) {
    const r = await c.send("POST", "/api/invoices", { auth: t.auth, body: invoice(customerId, `INV-B${i}`), headers: { "X-Sync-Data": "push" } });
    assert.equal(r.status, 201, r.body);
  }
  const s = engine.cacheStats;
  // The bounds of wasm/src/cache.rs: 2048 point entries, 4 MiB + 1 MiB, 32 scans.
  assert.ok(host.size > 2 * 2048, `the host holds ${host.size} entries`);
  assert.ok(s.entries <= 2048, `cache entries ${s.entries}`);
  assert.ok(s.bytes <= 5 * 1024 * 1024, `cache bytes ${s.bytes}`);
  assert.ok(s.scans <= 32, `cache scans ${s.scans}`);
  assert.ok(s.entries > 0 && s.scans > 0, "the cache is used");
  // Everything written is still readable (from the host when the cache let it go).
  const first = await c.send("GET", "/api/invoices?page=1&pageSize=1", { auth: t.auth });
  assert.equal(first.status, 200);
  const one = await c.send("GET", `/api/invoices/${first.json[0].id}`, { auth: t.auth });
  assert.equal(one.status, 200);
});

test("a legacy host (entries + apply) still works, read once into a copy", async () => {
  const store = new MemoryHost();
  const seedEngine = await createEngine(store, OPTIONS);
  const { t, customerId } = await setup(seedEngine);
  const applied = [];
  const legacy = {
    entries: async () => store.entries().map(([key, value]) => ({ key, value })),
    apply: async (ops) => {
      applied.push(ops.length);
      store.apply(ops);
    },
  };
  const engine = await createEngine(legacy, OPTIONS);
  // Opening may have marked the store's data layout (one batch) before the write.
  const opened = applied.length;
  assert.ok(opened <= 1, `batches at open: ${opened}`);
  const c = new Client(engine);
  const w = await c.send("POST", "/api/invoices", { auth: t.auth, body: invoice(customerId, "INV-L"), headers: { "X-Sync-Data": "push" } });
  assert.equal(w.status, 201, w.body);
  assert.equal(applied.length, opened + 1, "the write went to the legacy host");
  const r = await c.send("GET", `/api/invoices/${w.json.id}`, { auth: t.auth });
  assert.deepEqual(r.json, w.json);
});

test("host shapes and options.seed bytes", async () => {
  const h = new MemoryHost();
  await assert.rejects(createEngine({ get() {}, apply() {} }, OPTIONS), { code: "invalid_argument" });
  await assert.rejects(createEngine({ scan() {}, apply() {}, entries() {} }, OPTIONS), { code: "invalid_argument" });
  await assert.rejects(createEngine({ get() {}, scan() {} }, OPTIONS), { code: "invalid_argument" });
  await assert.rejects(createEngine({ get() {}, scan() {}, apply() {}, async: "yes" }, OPTIONS), { code: "invalid_argument" });
  const bytes = new Uint8Array(32).map((_, i) => i * 7);
  for (const bad of [new Uint8Array(31), new Uint8Array(33), [1, 2], 7]) {
    await assert.rejects(createEngine(h, { adminToken: ADMIN, seed: bad }), { code: "invalid_argument" });
  }
  // 32 bytes seed the engine exactly as their 64 hex digits do.
  const ids = async (seed) => {
    const e = await createEngine(new MemoryHost(), { adminToken: ADMIN, seed });
    const r = await new Client(e).admin("POST", "/admin/accounts", { domain: "seed.example.com" });
    return [r.headers["X-Request-ID"], JSON.parse(r.body).id];
  };
  const hex = Buffer.from(bytes).toString("hex");
  assert.deepEqual(await ids(bytes), await ids(hex));
  assert.notDeepEqual(await ids(bytes), await ids("another seed"));
});

test("wasmMemoryBytes reports the instance's linear memory", async () => {
  const engine = await createEngine(new MemoryHost(), OPTIONS);
  assert.ok(engine.wasmMemoryBytes >= 65536);
  assert.equal(engine.wasmMemoryBytes % 65536, 0);
});
