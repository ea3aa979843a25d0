// Cold start and memory with reads on demand (issue #13), figures only: nothing here fails on a
// target (run-tests.sh prints the figures; timing targets never live in tests).
//
// 1. This process builds a host holding N pushed invoices through the engine (an account, an
//    API key, 2 connections, 1 webhook subscription, 1 customer, then N invoice creates with
//    `X-Sync-Data: push`) on a MemoryHost, prints the wasm linear memory
//    (`engine.wasmMemoryBytes`, i.e. `memory.buffer.byteLength`) after the writes, and dumps the
//    host's entries to a temporary file.
// 2. For each of the full host and an "empty" one (the same account, key, connections, webhook and
//    customer, no invoice), a fresh node process (nothing of step 1 warm or allocated) loads the
//    dump into a MemoryHost, instantiates the wasm module (timed apart: once per process), lets
//    the garbage of loading be collected, then measures the cold start, `createEngine` plus the
//    first authenticated read (`GET /api/invoices/{id}`: 200 on the full host, 404 on the empty
//    one), and the growth of the process's RSS during it; then 9 more cold starts (fresh
//    engines in the now warm process), of which it reports the median.
// 3. Step 2 runs in `--processes` fresh processes per host (empty and full alternating); the
//    figures are the medians over them, with their range: one first cold start is a single
//    sample that moves by several ms with the machine's load.
//
// Usage: node bench/coldstart.mjs [--n 20000] [--processes 5]
//        (CHILD_FLAGS="--no-wasm-lazy-compilation" passes node flags to the child processes)
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createEngine, initWasm, MemoryHost } from "writesync-wasm";
import { invoiceBody } from "./invoice.mjs";

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const ADMIN = "coldstart-admin-token";
const T0 = 1_790_000_000_000;
const MB = 1024 * 1024;

async function send(engine, method, path, auth, body, headers = {}) {
  const r = await engine.handle(
    {
      method,
      path,
      headers: { Authorization: auth, "Content-Type": "application/json", ...headers },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    },
    T0,
  );
  return r;
}

/** Account, key, 2 connections, 1 webhook, 1 customer on `engine`; answers the key's auth. */
async function setup(engine) {
  const admin = `Bearer ${ADMIN}`;
  const ok = (r) => {
    if (r.status !== 201) throw new Error(`setup: ${r.status} ${r.body}`);
    return JSON.parse(r.body);
  };
  const acct = ok(await send(engine, "POST", "/admin/accounts", admin, { domain: "cold.example.com", writeEnabled: true }));
  const key = ok(await send(engine, "POST", `/admin/accounts/${acct.id}/api-keys`, admin, { scopes: ["api.read", "api.write"] }));
  const auth = `Basic ${Buffer.from(`${key.key}:${key.secret}`).toString("base64")}`;
  for (const [app, type] of [["quickbooks", "accounting"], ["shopify", "commerce"]]) {
    ok(await send(engine, "POST", `/admin/accounts/${acct.id}/connections`, admin, { app, type, pushUrl: `https://${app}.example.com/push` }));
  }
  ok(await send(engine, "POST", `/admin/accounts/${acct.id}/webhooks`, admin, { url: "https://hooks.example.com/in", events: ["*"] }));
  const customer = ok(await send(engine, "POST", "/api/customers", auth, { name: "Cold Start Ltd" }));
  return { auth, customerId: customer.id };
}

async function build(n, dir) {
  const empty = new MemoryHost();
  const e0 = await createEngine(empty, { adminToken: ADMIN, seed: "coldstart" });
  const auth = await setup(e0);
  e0.free();
  const host = new MemoryHost(empty.entries());
  const engine = await createEngine(host, { adminToken: ADMIN, seed: "coldstart-2" });
  const started = performance.now();
  let last;
  for (let i = 0; i < n; i++) {
    const r = await send(engine, "POST", "/api/invoices", auth.auth, invoiceBody(auth.customerId, i), { "X-Sync-Data": "push" });
    if (r.status !== 201) throw new Error(`invoice ${i}: ${r.status} ${r.body}`);
    last = JSON.parse(r.body).id;
  }
  const secs = (performance.now() - started) / 1000;
  const stats = engine.cacheStats;
  console.log(`built: ${n} pushed invoices in ${secs.toFixed(1)} s (${Math.round(n / secs)}/s), host ${host.size} entries`);
  console.log(
    `wasm linear memory after ${n} writes: ${(engine.wasmMemoryBytes / MB).toFixed(1)} MB ` +
      `(memory.buffer.byteLength; target <= 32 MB); cache ${stats.entries} entries, ` +
      `${(stats.bytes / MB).toFixed(2)} MB, ${stats.scans} scans`,
  );
  writeFileSync(join(dir, "empty.json"), JSON.stringify({ auth, entries: empty.entries(), read: last }));
  writeFileSync(join(dir, "full.json"), JSON.stringify({ auth, entries: host.entries(), read: last }));
}

/** Runs in a fresh process: cold starts on one dumped host ("empty" or "full"). */
async function child(dir, which) {
  const d = JSON.parse(readFileSync(join(dir, `${which}.json`), "utf8"));
  const host = new MemoryHost(d.entries);
  d.entries = null;
  const t = performance.now();
  await initWasm(readFileSync(new URL("../pkg/writesync_wasm_bg.wasm", import.meta.url)));
  const instantiateMs = performance.now() - t;
  const settle = async () => {
    // Collect what loading the host left behind, so that it is not counted.
    for (let i = 0; i < 3; i++) {
      globalThis.gc?.();
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const cold = async () => {
    const t0 = performance.now();
    const engine = await createEngine(host, { adminToken: ADMIN });
    const r = await send(engine, "GET", `/api/invoices/${d.read}`, d.auth.auth);
    const ms = performance.now() - t0;
    const expect = which === "full" ? 200 : 404;
    if (r.status !== expect) throw new Error(`first read: ${r.status} ${r.body}`);
    engine.free();
    return ms;
  };
  await settle();
  const rss0 = process.memoryUsage().rss;
  const first = await cold();
  const rss1 = process.memoryUsage().rss;
  const warm = [];
  for (let i = 0; i < 9; i++) {
    globalThis.gc?.();
    warm.push(await cold());
  }
  warm.sort((a, b) => a - b);
  process.stdout.write(JSON.stringify({ entries: host.size, instantiateMs, first, median: warm[4], rssGrowth: rss1 - rss0 }));
}

if (args[0] === "--child") {
  await child(args[1], args[2]);
} else {
  const n = Number(opt("n", 20000));
  const processes = Number(opt("processes", 5));
  if (!Number.isInteger(processes) || processes < 1) throw new Error("--processes must be a whole number of at least 1");
  const dir = mkdtempSync(join(tmpdir(), "writesync-coldstart-"));
  try {
    await build(n, dir);
    const run = (which) =>
      JSON.parse(
        execFileSync(process.execPath, [...(process.env.CHILD_FLAGS ? process.env.CHILD_FLAGS.split(" ") : []), "--expose-gc", fileURLToPath(import.meta.url), "--child", dir, which], {
          encoding: "utf8",
          maxBuffer: 1 << 20,
        }),
      );
    // One fresh process gives one first cold start, and a single sample of it moves by
    // several ms with the machine's load: run `processes` of each, alternating, and report
    // their median (and range).
    const runs = { empty: [], full: [] };
    for (let i = 0; i < processes; i++) {
      runs.empty.push(run("empty"));
      runs.full.push(run("full"));
    }
    const med = (xs) => {
      const v = [...xs].sort((a, b) => a - b);
      return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
    };
    const stat = (which, field) => {
      const xs = runs[which].map((r) => r[field]);
      return { med: med(xs), min: Math.min(...xs), max: Math.max(...xs) };
    };
    const f = (x) => x.toFixed(2);
    const range = (st, scale = 1) => `${f(st.med / scale)} (${f(st.min / scale)}-${f(st.max / scale)})`;
    const [full, empty] = [runs.full[0], runs.empty[0]];
    const first = { full: stat("full", "first"), empty: stat("empty", "first") };
    const warm = { full: stat("full", "median"), empty: stat("empty", "median") };
    const rss = { full: stat("full", "rssGrowth"), empty: stat("empty", "rssGrowth") };
    console.log(`module instantiation (once per process, not counted): ${range(stat("full", "instantiateMs"))} ms`);
    console.log(`hosts: full ${full.entries} entries, empty ${empty.entries} entries (account, key, connections, webhook, customer)`);
    console.log(`cold start (createEngine + GET /api/invoices/{id}), first in a fresh process, median (min-max) of ${processes} processes each: full ${range(first.full)} ms, empty ${range(first.empty)} ms, ratio of the medians ${f(first.full.med / first.empty.med)}`);
    console.log(`cold start, median of 9 more per process (fresh engines, warm process), median over the processes: full ${f(warm.full.med)} ms, empty ${f(warm.empty.med)} ms, ratio ${f(warm.full.med / warm.empty.med)}`);
    console.log("targets: full <= 20 ms and <= 2x empty");
    console.log(`RSS growth during the first cold start: full ${range(rss.full, MB)} MB, empty ${range(rss.empty, MB)} MB (target <= 8 MB)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
