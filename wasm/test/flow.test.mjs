// The JS API over MemoryHost: the full push-and-webhook flow, restarts, the host contract
// (atomic batches, failures, async hosts, serialization of calls) and the error objects.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createEngine, MemoryHost, WritesyncError, compareUtf8 } from "writesync-wasm";
import { ADMIN, T0, SIGNING_SECRET, Client, basic, invoice, verifySignature } from "./helpers.mjs";

const OPTIONS = {
  adminToken: ADMIN,
  seed: "wasm flow tests",
  pushRetrySchedule: [1, 4, 16],
  webhookRetrySchedule: [2, 10],
};

/** Account + 2 capable connections (and a crm one that cannot take invoices) + 1 webhook. */
async function setup(engine) {
  const c = new Client(engine);
  const t = await c.tenant("acme.example.com");
  for (const [app, type] of [
    ["quickbooks", "accounting"],
    ["shopify", "commerce"],
    ["hubspot", "crm"],
  ]) {
    const r = await c.admin("POST", `/admin/accounts/${t.id}/connections`, {
      app,
      type,
      pushUrl: `https://${app}.example.com/push`,
    });
    assert.equal(r.status, 201, r.body);
  }
  const w = await c.admin("POST", `/admin/accounts/${t.id}/webhooks`, {
    url: "https://hooks.example.com/in",
    events: ["*"],
    username: "hook",
    password: "pw",
    signingSecret: SIGNING_SECRET,
  });
  assert.equal(w.status, 201, w.body);
  const cust = await c.send("POST", "/api/customers", {
    auth: t.auth,
    body: { name: "Acme Ltd", email: "ap@acme.example.com" },
  });
  assert.equal(cust.status, 201, cust.body);
  return { c, t, webhookId: w.json.id, customerId: cust.json.id };
}

test("full flow: pushing invoice, two targets, 201 and 503, retry, signed webhooks, succeeded", async () => {
  const host = new MemoryHost();
  const engine = await createEngine(host, OPTIONS);
  const { c, t, webhookId, customerId } = await setup(engine);

  const w = await c.send("POST", "/api/invoices", {
    auth: t.auth,
    body: invoice(customerId, "INV-1001"),
    headers: { "X-Sync-Data": "push", "X-Tracking-ID": "trk-1" },
  });
  assert.equal(w.status, 201, w.body);
  assert.equal(w.headers["X-Sync-Targets"], "quickbooks,shopify");
  assert.equal(w.headers["X-Tracking-ID"], "trk-1");
  assert.ok(w.headers["X-Request-ID"]);
  assert.equal(w.json.total, 36300);
  const syncId = w.headers["X-Sync-ID"];
  assert.ok(syncId);

  // due(): one push to each target.
  const items = await engine.due(c.now);
  assert.equal(items.length, 2);
  assert.ok(items.every((i) => i.kind === "push" && i.request.method === "POST"));
  const qb = items.find((i) => i.request.url === "https://quickbooks.example.com/push");
  const sh = items.find((i) => i.request.url === "https://shopify.example.com/push");
  assert.ok(qb && sh);
  for (const it of items) {
    const body = JSON.parse(it.request.body);
    assert.equal(body.operation, "create");
    assert.equal(body.objectType, "invoice");
    assert.equal(body.syncId, syncId);
    assert.equal(body.trackingId, "trk-1");
    assert.equal(it.request.headers["X-Sync-ID"], syncId);
    assert.equal(it.request.headers["X-Tracking-ID"], "trk-1");
    assert.ok(it.request.headers["Idempotency-Key"]);
  }
  // Leased: nothing is handed out twice.
  assert.deepEqual(await engine.due(c.now), []);

  c.now += 300;
  await engine.report(qb.id, { status: 201, headers: { "content-type": "application/json" }, body: '{"id":"QB-1"}' }, c.now);
  await engine.report(sh.id, { status: 503, headers: {}, body: "busy" }, c.now);
  let s = await c.send("GET", `/api/syncs/${syncId}`, { auth: t.auth });
  assert.equal(s.status, 200);
  assert.equal(s.json.status, "in_progress");

  // The retry waits for its deadline.
  const deadline = engine.nextDeadline();
  assert.equal(typeof deadline, "number");
  const early = await engine.due(c.now);
  assert.ok(early.every((i) => i.kind === "webhook"), "no push before the retry deadline");
  const delivered = [...early];
  let retry;
  for (let i = 0; i < 5 && !retry; i++) {
    const d = engine.nextDeadline();
    assert.ok(d !== null, "a deadline while the push is owed");
    c.now = Math.max(c.now, d);
    const due = await engine.due(c.now);
    retry = due.find((it) => it.kind === "push");
    delivered.push(...due.filter((it) => it.kind === "webhook"));
  }
  assert.ok(retry, "the push to shopify is retried");
  assert.ok(c.now >= T0 + 300 + 500, "after the backoff");
  assert.equal(retry.request.url, "https://shopify.example.com/push");
  assert.equal(retry.request.headers["Idempotency-Key"], sh.request.headers["Idempotency-Key"]);
  await engine.report(retry.id, { status: 201, body: '{"id":"SH-9"}' }, c.now);

  s = await c.send("GET", `/api/syncs/${syncId}`, { auth: t.auth });
  assert.equal(s.json.status, "succeeded");
  assert.equal(s.json.trackingId, "trk-1");
  const byApp = Object.fromEntries(s.json.targets.map((x) => [x.app, x]));
  assert.equal(byApp.quickbooks.status, "succeeded");
  assert.equal(byApp.quickbooks.remoteId, "QB-1");
  assert.equal(byApp.shopify.status, "succeeded");
  assert.equal(byApp.shopify.attempts, 2);
  assert.equal(byApp.shopify.remoteId, "SH-9");

  // Webhook deliveries: 2 target updates and 1 completion, with Basic auth and signatures.
  delivered.push(...(await engine.due(c.now)).filter((it) => it.kind === "webhook"));
  const events = delivered.map((d) => JSON.parse(d.request.body).event).sort();
  assert.deepEqual(events, ["api_push_complete", "api_push_update", "api_push_update"]);
  for (const d of delivered) {
    assert.equal(d.request.url, "https://hooks.example.com/in");
    assert.equal(d.request.headers.Authorization, basic("hook", "pw"));
    assert.equal(d.request.headers["X-Sync-ID"], syncId);
    assert.equal(d.request.headers["X-Tracking-ID"], "trk-1");
    assert.ok(verifySignature(d.request.headers, d.request.body), "signature verifies");
    const body = JSON.parse(d.request.body);
    assert.equal(body.domain, "acme.example.com");
    assert.equal(body.requestId, w.headers["X-Request-ID"]);
    assert.equal(body.data.syncId, syncId);
    assert.equal(body.data.trackingId, "trk-1");
    await engine.report(d.id, { status: 200, body: "" }, c.now);
  }
  const list = await c.admin("GET", `/admin/accounts/${t.id}/webhooks/${webhookId}/deliveries`);
  assert.equal(list.status, 200);
  assert.equal(list.json.length, 3);
  assert.ok(list.json.every((d) => d.status === "delivered"));
  assert.equal(engine.nextDeadline(), null, "nothing owed");
});

test("state lives in the host: a new engine over the same host sees it", async () => {
  const host = new MemoryHost();
  const e1 = await createEngine(host, OPTIONS);
  const { c, t, customerId } = await setup(e1);
  const w = await c.send("POST", "/api/invoices", {
    auth: t.auth,
    body: invoice(customerId, "INV-7"),
    headers: { "X-Sync-Data": "push" },
  });
  assert.equal(w.status, 201);
  const deadline = e1.nextDeadline();
  e1.free();
  assert.throws(() => e1.nextDeadline(), { code: "wrong_state" });

  // A restart: fresh engine, fresh random seed, same storage (entries copied verbatim).
  const e2 = await createEngine(new MemoryHost(host.entries()), { adminToken: ADMIN });
  const c2 = new Client(e2, c.now);
  const s = await c2.send("GET", `/api/syncs/${w.headers["X-Sync-ID"]}`, { auth: t.auth });
  assert.equal(s.status, 200);
  assert.equal(s.json.status, "pending");
  const inv = await c2.send("GET", `/api/invoices/${w.json.id}`, { auth: t.auth });
  assert.deepEqual(inv.json, w.json);
  assert.equal(e2.nextDeadline(), deadline);
  assert.equal((await e2.due(c2.now)).length, 2, "the owed pushes survive the restart");
  const dup = await c2.send("POST", "/api/invoices", { auth: t.auth, body: invoice(customerId, "INV-7") });
  assert.equal(dup.status, 422, "the stored invoice number is still taken");
});

test("non-ASCII text crosses the boundary intact (UTF-16 lengths of the frame)", async () => {
  const host = new MemoryHost();
  const e1 = await createEngine(host, OPTIONS);
  const c = new Client(e1);
  const t = await c.tenant("acme.example.com");
  const name = "Zoë \u{1F600} Ltd \u00e9\u4e2d";
  const w = await c.send("POST", "/api/customers", { auth: t.auth, body: { name, contactName: "\u{10FFFF}x" } });
  assert.equal(w.status, 201, w.body);
  assert.equal(w.json.name, name);
  assert.ok(host.entries().some(([, v]) => v.includes(name)), "stored verbatim");
  const e2 = await createEngine(new MemoryHost(host.entries()), OPTIONS);
  const r = await new Client(e2).send("GET", `/api/customers/${w.json.id}`, { auth: t.auth });
  assert.deepEqual(r.json, w.json);
});

test("recover(): what a crashed host had in flight is due again at once", async () => {
  const host = new MemoryHost();
  const e1 = await createEngine(host, OPTIONS);
  const { c, t, customerId } = await setup(e1);
  await c.send("POST", "/api/invoices", { auth: t.auth, body: invoice(customerId, "INV-R"), headers: { "X-Sync-Data": "push" } });
  const leased = await e1.due(c.now);
  assert.equal(leased.length, 2);
  // The host "crashes" with both pushes in flight; a new engine starts on the same storage.
  const e2 = await createEngine(host, OPTIONS);
  assert.deepEqual(await e2.due(c.now), [], "leased items wait for their lease");
  assert.ok((await e2.recover(c.now)) > 0);
  const again = await e2.due(c.now);
  assert.deepEqual(
    again.map((i) => i.request.headers["Idempotency-Key"]).sort(),
    leased.map((i) => i.request.headers["Idempotency-Key"]).sort(),
  );
  assert.deepEqual(await e2.due(c.now), [], "the recovered items are leased again");
});

test("a 429 with an HTTP-date Retry-After waits until that date", async () => {
  const engine = await createEngine(new MemoryHost(), OPTIONS);
  const { c, t, customerId } = await setup(engine);
  await c.send("POST", "/api/invoices", { auth: t.auth, body: invoice(customerId, "INV-D"), headers: { "X-Sync-Data": "push" } });
  const pushes = (await engine.due(c.now)).filter((i) => i.kind === "push");
  assert.equal(pushes.length, 2);
  // Ten minutes on, well past the schedule's 1 s; whole seconds, as HTTP dates have.
  const at = Math.ceil(c.now / 1000) * 1000 + 600_000;
  const asctime = (ms) => {
    // "Sun Nov  6 08:49:37 1994": the obsolete form RFC 9110 still has recipients accept.
    // toUTCString() writes the IMF-fixdate form, "Sun, 06 Nov 1994 08:49:37 GMT".
    const [wd, day, mon, year, time] = new Date(ms).toUTCString().replace(",", "").split(" ");
    return `${wd} ${mon} ${String(Number(day)).padStart(2, " ")} ${time} ${year}`;
  };
  await engine.report(pushes[0].id, { status: 429, headers: { "Retry-After": new Date(at).toUTCString() }, body: "" }, c.now);
  await engine.report(pushes[1].id, { status: 429, headers: { "Retry-After": asctime(at) }, body: "" }, c.now);
  const early = (await engine.due(at - 1)).filter((i) => i.kind === "push");
  assert.deepEqual(early, [], "nothing is pushed before the date");
  const again = (await engine.due(at)).filter((i) => i.kind === "push");
  assert.deepEqual(again.map((i) => i.request.url).sort(), pushes.map((i) => i.request.url).sort());
});

/** A host whose apply can be made to fail; otherwise a MemoryHost. */
class FlakyHost extends MemoryHost {
  failures = 0;
  applied = 0;
  apply(batch) {
    if (this.failures > 0) {
      this.failures--;
      throw new Error("disk on fire");
    }
    this.applied++;
    super.apply(batch);
  }
}

test("a failed host apply answers 503, changes nothing, and releases the step", async () => {
  const host = new FlakyHost();
  const engine = await createEngine(host, OPTIONS);
  const { c, t, customerId } = await setup(engine);
  const before = host.entries();
  const req = {
    auth: t.auth,
    body: invoice(customerId, "INV-9"),
    headers: { "X-Sync-Data": "push", "Idempotency-Key": "idem-9" },
  };
  host.failures = 1;
  const r = await c.send("POST", "/api/invoices", req);
  assert.equal(r.status, 503);
  assert.equal(r.headers["Content-Type"], "application/problem+json");
  assert.equal(r.json.status, 503);
  assert.match(r.json.detail, /disk on fire/);
  assert.ok(r.headers["X-Request-ID"]);
  assert.deepEqual(host.entries(), before, "host unchanged");
  assert.equal(engine.nextDeadline(), null, "no push owed");
  const list = await c.send("GET", "/api/invoices?page=1", { auth: t.auth });
  assert.deepEqual(list.json, []);

  // The Idempotency-Key slot was released (finish was called): the retry is processed, not 409.
  const again = await c.send("POST", "/api/invoices", req);
  assert.equal(again.status, 201, again.body);
  const replay = await c.send("POST", "/api/invoices", req);
  assert.equal(replay.status, 201);
  assert.equal(replay.headers["Idempotency-Replayed"], "true");

  // due(): the error is rethrown, the leases are not recorded, the items come again.
  host.failures = 1;
  await assert.rejects(engine.due(c.now), (e) => {
    assert.ok(e instanceof WritesyncError);
    assert.equal(e.code, "host_error");
    assert.match(e.message, /disk on fire/);
    return true;
  });
  const items = await engine.due(c.now);
  assert.equal(items.length, 2);
  // report(): likewise; the item stays reportable.
  host.failures = 1;
  await assert.rejects(engine.report(items[0].id, { status: 201, body: "{}" }, c.now), {
    code: "host_error",
  });
  await engine.report(items[0].id, { status: 201, body: "{}" }, c.now);
  await assert.rejects(engine.report(items[0].id, { status: 201, body: "{}" }, c.now), {
    code: "unknown_work",
  });
});

/** An asynchronous host (think IndexedDB): every method answers a Promise, later. */
class SlowHost {
  async = true;
  inner = new MemoryHost();
  log = [];
  async get(key) {
    await new Promise((r) => setTimeout(r, 1));
    return this.inner.get(key);
  }
  async scan(prefix, offset, limit) {
    await new Promise((r) => setTimeout(r, 1));
    return this.inner.scan(prefix, offset, limit);
  }
  async apply(batch) {
    this.log.push("start");
    await new Promise((r) => setTimeout(r, 2));
    this.inner.apply(batch);
    this.log.push("end");
  }
}

test("async host: concurrent calls are serialized, one batch at a time", async () => {
  const host = new SlowHost();
  const engine = await createEngine(host, OPTIONS);
  const { c, t, customerId } = await setup(engine);
  const writes = [];
  for (let i = 0; i < 8; i++) {
    writes.push(
      engine.handle(
        {
          method: "POST",
          path: "/api/invoices",
          headers: new Headers({ Authorization: t.auth, "Content-Type": "application/json", "X-Sync-Data": "push" }),
          body: new TextEncoder().encode(JSON.stringify(invoice(customerId, `INV-C${i}`))),
        },
        c.now,
      ),
    );
  }
  // The same Idempotency-Key twice at once: serialized, the second is a replay (not a 409).
  const idem = (n) =>
    engine.handle(
      {
        method: "POST",
        path: "/api/customers",
        headers: { Authorization: t.auth, "Content-Type": "application/json", "Idempotency-Key": "same" },
        body: { name: `Twin ${n}` },
      },
      c.now,
    );
  const [a, b] = await Promise.all([idem(1), idem(1)]);
  const answers = await Promise.all(writes);
  assert.ok(answers.every((r) => r.status === 201));
  assert.equal(a.status, 201);
  assert.equal(b.status, 201);
  assert.equal(b.headers["Idempotency-Replayed"], "true");
  // Batches never overlapped.
  for (let i = 0; i < host.log.length; i += 2) {
    assert.deepEqual(host.log.slice(i, i + 2), ["start", "end"]);
  }
  // A fresh engine reads the async host on demand.
  const again = await createEngine(host, OPTIONS);
  assert.equal((await again.due(c.now)).length, 16);
  assert.equal(await again.nextDeadline(), c.now + 120_000, "the leases run out next");
});

test("errors are WritesyncError objects with a code", async () => {
  const host = new MemoryHost();
  await assert.rejects(createEngine({}, {}), { code: "invalid_argument" });
  await assert.rejects(createEngine(host, { adminToken: ADMIN, nope: 1 }), (e) => {
    assert.ok(e instanceof WritesyncError && e instanceof Error);
    assert.equal(e.code, "invalid_input");
    assert.match(e.message, /nope/);
    return true;
  });
  await assert.rejects(createEngine(host, { pushRetrySchedule: [-1] }), { code: "invalid_input" });
  await assert.rejects(createEngine(host, { seed: 7 }), { code: "invalid_argument" });
  await assert.rejects(
    createEngine({ entries: () => { throw new Error("no disk"); }, apply() {} }, {}),
    { code: "host_error" },
  );
  const engine = await createEngine(host, OPTIONS);
  await assert.rejects(engine.handle("GET /", T0), { code: "invalid_argument" });
  await assert.rejects(engine.handle({ method: "GET", path: "/healthz" }, 1.5), { code: "invalid_argument" });
  await assert.rejects(engine.handle({ method: "GET", path: "/healthz", headers: { a: 1 } }, "now"), {
    code: "invalid_argument",
  });
  await assert.rejects(engine.due(T0, -1), { code: "invalid_argument" });
  await assert.rejects(engine.report("t.nope.1", { status: 201 }, T0), { code: "unknown_work" });
  await assert.rejects(engine.report("t.nope.1", { what: 1 }, T0), { code: "invalid_argument" });
  await assert.rejects(engine.report("t.nope.1", { status: 70000 }, T0), { code: "invalid_input" });
  // The engine still answers after every error, and a bad request is an HTTP answer, not an error.
  const r = await engine.handle({ method: "POST", path: "/admin/accounts", headers: { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" }, body: "{bad" }, T0);
  assert.equal(r.status, 400);
  const unauth = await engine.handle({ method: "GET", path: "/api/customers" }, new Date(T0));
  assert.equal(unauth.status, 401);
  assert.equal(unauth.headers["WWW-Authenticate"]?.startsWith("Basic"), true);
});

test("MemoryHost: atomic batches and bytewise UTF-8 key order", () => {
  const h = new MemoryHost([["a", "1"]]);
  assert.throws(() => h.apply([{ op: "put", key: "b", value: "2" }, { op: "put", key: "c" }]), {
    code: "invalid_argument",
  });
  assert.deepEqual(h.entries(), [["a", "1"]], "nothing of a rejected batch applied");
  h.apply([
    { op: "put", key: "k/\u{1F600}", value: "emoji" },
    { op: "put", key: "k/\uFFFD", value: "replacement" },
    { op: "put", key: "k/z", value: "z" },
    { op: "put", key: "k/\u00e9", value: "e-acute" },
    { op: "delete", key: "a" },
  ]);
  // UTF-8 bytes: z (7a) < é (c3 a9) < U+FFFD (ef bf bd) < U+1F600 (f0 9f 98 80)
  assert.deepEqual(
    h.scan("k/").map(([, v]) => v),
    ["z", "e-acute", "replacement", "emoji"],
  );
  const keys = h.entries().map(([k]) => k);
  const bytes = keys.map((k) => Buffer.from(k));
  for (let i = 1; i < bytes.length; i++) assert.ok(Buffer.compare(bytes[i - 1], bytes[i]) < 0);
  assert.ok(compareUtf8("\u{10000}", "\uFFFF") > 0);
  assert.equal(h.get("a"), undefined);
  assert.equal(h.size, 4);
});
