// Cold start of the Durable Object example under miniflare, holding N pushed invoices (figures
// only; nothing here is a pass/fail test).
//
// 1. Seed. The engine in Node (the same wasm module, MemoryHost) runs the writes the object would
//    have run: an account for acme.example.com, an API key, 2 connections, a customer, N invoice
//    creates with `X-Sync-Data: push`, and every push reported 201 (the syncs succeed). A second
//    account, empty.example.com, in its own engine, gets only an API key. The entries each
//    engine wrote are then copied, row for row, into that account's Durable Object SQLite table
//    `kv` through a route of a seeding-only wrapper of the example (bench/seed-worker.js), under
//    `durableObjectsPersist` in a temp directory.
// 2. Restart. A new Miniflare instance (a new workerd process) runs the example itself
//    (src/index.js) over the same persisted storage. Timed from the dispatch of the first request
//    to the end of its answer: an authenticated `GET /api/invoices/{id}` of the last invoice. It
//    includes the object's start (wasm instantiation, createEngine, recover, the alarm) and the
//    read. Before it, one request the worker answers 404 without any object (timed and printed
//    apart) takes the first-request cost of miniflare's plumbing (node -> workerd) out of the
//    figure. The same is measured on the empty account after another restart, for comparison.
// 3. Memory: VmRSS (and VmHWM, its peak) of the workerd process, from /proc/PID/status, just
//    before and just after that first answer; and the size of the object's SQLite file.
//
// Usage: node examples/cloudflare-worker/bench/coldstart.mjs [--n 20000]   (from wasm/)
import { Miniflare } from "miniflare";
import { createEngine, MemoryHost } from "writesync-wasm";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const N = opt("n", 20_000);
const ADMIN = "bench-admin-token";
const FULL = "acme.example.com";
const EMPTY = "empty.example.com";
const CHUNK = 5000;

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const persist = mkdtempSync(join(tmpdir(), "writesync-do-bench-"));

function miniflare(scriptPath) {
  return new Miniflare({
    modules: true,
    scriptPath,
    modulesRoot: here("../../.."),
    modulesRules: [
      { type: "ESModule", include: ["**/*.js"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    compatibilityDate: "2025-06-01",
    durableObjects: { ACCOUNTS: { className: "AccountEngine", useSQLite: true } },
    durableObjectsPersist: persist,
    bindings: { ADMIN_TOKEN: ADMIN },
  });
}

/** The workerd processes this process started (miniflare's children). */
function workerdPids() {
  const pids = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) === process.pid && stat.includes("(workerd)")) pids.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function memory() {
  const pids = workerdPids();
  if (pids.length !== 1) return { pids };
  const status = readFileSync(`/proc/${pids[0]}/status`, "utf8");
  const kb = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)[1]);
  return { pid: pids[0], rssMB: kb("VmRSS") / 1024, hwmMB: kb("VmHWM") / 1024 };
}

/** Run the writes of one account's object in Node; answers the entries its store then holds. */
async function seed(domain, n) {
  const host = new MemoryHost();
  const engine = await createEngine(host, { adminToken: ADMIN });
  let now = Date.now() - 3_600_000;
  const call = async (method, path, auth, body, headers = {}) => {
    const a = await engine.handle(
      { method, path, headers: { ...headers, Authorization: auth, "Content-Type": "application/json" }, body },
      now++,
    );
    if (a.status >= 300) throw new Error(`${method} ${path}: ${a.status} ${a.body}`);
    return JSON.parse(a.body);
  };
  const admin = `Bearer ${ADMIN}`;
  const acct = await call("POST", "/admin/accounts", admin, { domain, writeEnabled: true });
  const key = await call("POST", `/admin/accounts/${acct.id}/api-keys`, admin, { scopes: ["api.read", "api.write"] });
  const auth = `Basic ${Buffer.from(`${key.key}:${key.secret}`).toString("base64")}`;
  let last = null;
  let remote = 0;
  const t0 = performance.now();
  if (n > 0) {
    for (const [app, type] of [["quickbooks", "accounting"], ["shopify", "commerce"]]) {
      await call("POST", `/admin/accounts/${acct.id}/connections`, admin, { app, type, pushUrl: `https://push.example.com/${app}` /* never contacted: the seed reports each push */ });
    }
    const customer = await call("POST", "/api/customers", auth, { name: "Acme Ltd" });
    const pad = "x".repeat(150);
    for (let i = 1; i <= n; i++) {
      last = await call("POST", "/api/invoices", auth, {
        number: `INV-${String(i).padStart(6, "0")}`,
        customerId: customer.id,
        issueDate: "2026-11-01",
        dueDate: "2026-11-30",
        currency: "EUR",
        lines: [0, 1, 2, 3].map((l) => ({ description: `Line ${l} of invoice ${i}: ${pad}`, quantity: l + 1, unitAmount: 12500 + l })),
      }, { "X-Sync-Data": "push" });
      // Perform the pushes owed so far: each answered 201 with a remote id.
      for (;;) {
        const items = await engine.due(now++, 100);
        if (items.length === 0) break;
        for (const item of items) {
          await engine.report(item.id, { status: 201, headers: {}, body: JSON.stringify({ id: `r-${++remote}` }) }, now++);
        }
      }
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  // Every entry in key order (MemoryHost's scan of the empty prefix).
  const entries = host.scan("", 0, Number.MAX_SAFE_INTEGER);
  engine.free();
  const bytes = entries.reduce((s, [k, v]) => s + Buffer.byteLength(k) + Buffer.byteLength(v), 0);
  return { auth, last, entries, bytes, seconds, pushes: remote };
}

/** Copy each account's entries, row for row, into its object's `kv` table. */
async function load(stores) {
  const mf = miniflare(here("./seed-worker.js"));
  try {
    for (const [domain, entries] of stores) {
      for (let i = 0; i < entries.length; i += CHUNK) {
        const res = await mf.dispatchFetch(`http://${domain}/__bench/load`, {
          method: "POST",
          body: JSON.stringify(entries.slice(i, i + CHUNK)),
        });
        if (res.status !== 204) throw new Error(`load: ${res.status} ${await res.text()}`);
      }
    }
  } finally {
    await mf.dispose();
  }
}

async function firstAnswer(domain, path, auth) {
  const mf = miniflare(here("../src/index.js"));
  try {
    await mf.ready;
    // The first request through miniflare's plumbing (node -> workerd's entry worker -> the
    // example's fetch), answered 404 by the example without touching any Durable Object.
    const tp = performance.now();
    const probe = await mf.dispatchFetch(`http://${domain}/not-a-route`);
    await probe.text();
    const probeMs = performance.now() - tp;
    if (probe.status !== 404) throw new Error(`probe: ${probe.status}`);
    const before = memory();
    const t0 = performance.now();
    const res = await mf.dispatchFetch(`http://${domain}${path}`, { headers: { Authorization: auth } });
    const text = await res.text();
    const ms = performance.now() - t0;
    const after = memory();
    const t1 = performance.now();
    const again = await mf.dispatchFetch(`http://${domain}${path}`, { headers: { Authorization: auth } });
    await again.text();
    const secondMs = performance.now() - t1;
    return { status: res.status, body: text, probeMs, ms, secondMs, before, after };
  } finally {
    await mf.dispose();
  }
}

function sqliteFiles() {
  const out = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".sqlite")) out.push({ file: p.slice(persist.length + 1), mb: statSync(p).size / 1048576 });
    }
  };
  walk(persist);
  return out;
}

try {
  const s = await seed(FULL, N);
  const e = await seed(EMPTY, 0);
  console.log(
    `seed: ${N} pushed invoices (${s.pushes} pushes reported) in ${s.seconds.toFixed(1)} s in node; ` +
      `${s.entries.length} entries, ${(s.bytes / 1048576).toFixed(1)} MB of keys and values`,
  );
  const t0 = performance.now();
  await load([[FULL, s.entries], [EMPTY, e.entries]]);
  console.log(`load: copied into the objects' SQLite in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  for (const f of sqliteFiles()) console.log(`sqlite file: ${f.file} ${f.mb.toFixed(1)} MB`);

  const empty = await firstAnswer(EMPTY, "/api/customers", e.auth);
  if (empty.status !== 200) throw new Error(`empty account: ${empty.status} ${empty.body}`);
  const full = await firstAnswer(FULL, `/api/invoices/${s.last.id}`, s.auth);
  if (full.status !== 200 || JSON.parse(full.body).number !== s.last.number) {
    throw new Error(`full account: ${full.status} ${full.body.slice(0, 300)}`);
  }
  const fmt = (r) =>
    `object's first answer ${r.ms.toFixed(1)} ms (second ${r.secondMs.toFixed(1)} ms; the worker's ` +
    `first request, a 404 before it, ${r.probeMs.toFixed(1)} ms); workerd VmRSS ` +
    `${r.before.rssMB?.toFixed(1)} MB before -> ${r.after.rssMB?.toFixed(1)} MB after (peak VmHWM ${r.after.hwmMB?.toFixed(1)} MB)`;
  console.log(`restart, empty account (API key only):      ${fmt(empty)}`);
  console.log(`restart, ${N} pushed invoices:            ${fmt(full)}`);
  console.log(
    JSON.stringify({
      n: N,
      entries: s.entries.length,
      storeMB: +(s.bytes / 1048576).toFixed(1),
      probeMs: +full.probeMs.toFixed(1),
      emptyFirstMs: +empty.ms.toFixed(1),
      fullFirstMs: +full.ms.toFixed(1),
      fullRssAfterMB: +full.after.rssMB.toFixed(1),
      fullRssGrowthMB: +(full.after.rssMB - full.before.rssMB).toFixed(1),
      emptyRssAfterMB: +empty.after.rssMB.toFixed(1),
    }),
  );
} finally {
  rmSync(persist, { recursive: true, force: true });
}
