// Core-throughput benchmark, wasm in Node against native in the same run.
//
// The case: validate, authorize, route and plan a 1 KB invoice create with `X-Sync-Data: push`
// to 2 connections and 1 webhook subscription, in memory. The wasm side goes through the whole
// JS API (`await engine.handle(...)` with MemoryHost: JSON across the boundary, host apply,
// cache commit); the native side (bench/native_throughput.rs) runs `Engine::handle_with` on a
// MemoryStore with the same requests. Prints both rates and their ratio; with --check, exits 1
// when wasm is below --min-ratio (default 0.5) of native.
//
// Usage: node bench/throughput.mjs [--n 5000] [--warmup 500] [--rounds 3] [--check] [--min-ratio 0.5]
//        [--wasm-only]
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createEngine, MemoryHost } from "writesync-wasm";
import { invoiceBody } from "./invoice.mjs";

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const N = opt("n", 5000);
const WARMUP = opt("warmup", 500);
const ROUNDS = opt("rounds", 3);
const MIN_RATIO = opt("min-ratio", 0.5);
const CHECK = args.includes("--check");
const WASM_ONLY = args.includes("--wasm-only");

const ADMIN = "bench-admin-token";
const T0 = 1_790_000_000_000;

/** CPU time of this (the main JS) thread in ns, from Linux schedstat; null elsewhere. */
function threadCpuNs() {
  try {
    return Number(readFileSync("/proc/thread-self/schedstat", "utf8").split(" ")[0]);
  } catch {
    return null;
  }
}

async function wasmRound() {
  const engine = await createEngine(new MemoryHost(), { adminToken: ADMIN, seed: "bench" });
  const admin = async (path, body) => {
    const r = await engine.handle(
      {
        method: "POST",
        path,
        headers: { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" },
        body: JSON.stringify(body),
      },
      T0,
    );
    if (r.status !== 201) throw new Error(`setup ${path}: ${r.status} ${r.body}`);
    return JSON.parse(r.body);
  };
  const acct = await admin("/admin/accounts", { domain: "bench.example.com", writeEnabled: true });
  const key = await admin(`/admin/accounts/${acct.id}/api-keys`, { scopes: ["api.read", "api.write"] });
  const auth = `Basic ${Buffer.from(`${key.key}:${key.secret}`).toString("base64")}`;
  await admin(`/admin/accounts/${acct.id}/connections`, {
    app: "quickbooks", type: "accounting", pushUrl: "https://quickbooks.example.com/push",
  });
  await admin(`/admin/accounts/${acct.id}/connections`, {
    app: "shopify", type: "commerce", pushUrl: "https://shopify.example.com/push",
  });
  await admin(`/admin/accounts/${acct.id}/webhooks`, {
    url: "https://hooks.example.com/in", events: ["*"], username: "hook", password: "pw",
    signingSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  });
  const c = await engine.handle(
    {
      method: "POST",
      path: "/api/customers",
      headers: { Authorization: auth, "Content-Type": "application/json" },
      body: JSON.stringify({ name: "Acme Ltd", email: "ap@acme.example.com" }),
    },
    T0,
  );
  const cid = JSON.parse(c.body).id;
  const requests = Array.from({ length: WARMUP + N }, (_, i) => ({
    method: "POST",
    path: "/api/invoices",
    headers: { Authorization: auth, "Content-Type": "application/json", "X-Sync-Data": "push" },
    body: invoiceBody(cid, i),
  }));
  const run = async (from, to) => {
    for (let i = from; i < to; i++) {
      const r = await engine.handle(requests[i], T0);
      if (r.status !== 201) throw new Error(`${r.status} ${r.body}`);
    }
  };
  await run(0, WARMUP);
  const start = process.hrtime.bigint();
  const cpuStart = threadCpuNs();
  await run(WARMUP, WARMUP + N);
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  const cpuEnd = threadCpuNs();
  engine.free();
  const cpuOpsPerSec = cpuStart !== null && cpuEnd > cpuStart ? N / ((cpuEnd - cpuStart) / 1e9) : null;
  return { opsPerSec: N / secs, cpuOpsPerSec, bodyBytes: requests[0].body.length };
}

function nativeRound() {
  const root = fileURLToPath(new URL("../..", import.meta.url));
  const out = execFileSync(
    "cargo",
    ["run", "--quiet", "--release", "-p", "writesync-wasm", "--example", "native_throughput", "--", String(N), String(WARMUP)],
    { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
  );
  return JSON.parse(out.trim().split("\n").pop());
}

if (WASM_ONLY) {
  const w = [];
  for (let r = 0; r < ROUNDS; r++) w.push(await wasmRound());
  console.log(JSON.stringify({ n: N, wall: w.map((x) => Math.round(x.opsPerSec)), cpu: w.map((x) => Math.round(x.cpuOpsPerSec)) }));
  process.exit(0);
}

// Build the native side first so that compiling does not overlap a measurement.
execFileSync("cargo", ["build", "--quiet", "--release", "-p", "writesync-wasm", "--example", "native_throughput"], {
  cwd: fileURLToPath(new URL("../..", import.meta.url)),
  stdio: "inherit",
});

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const wasm = [];
const native = [];
let bodyBytes = 0;
for (let r = 0; r < ROUNDS; r++) {
  // Alternate, so that drifts of the machine hit both sides alike.
  const w = await wasmRound();
  bodyBytes = w.bodyBytes;
  wasm.push(w);
  native.push(nativeRound());
}
const rate = (rounds, key) => (rounds.every((x) => x[key]) ? median(rounds.map((x) => x[key])) : null);
const wasmWall = rate(wasm, "opsPerSec");
const nativeWall = rate(native, "opsPerSec");
const wasmCpu = rate(wasm, "cpuOpsPerSec");
const nativeCpu = rate(native, "cpuOpsPerSec");
const round3 = (x) => (x === null ? null : Number(x.toFixed(3)));
const result = {
  case: `invoice create, ${bodyBytes} B body, push to 2 connections, 1 webhook, in memory`,
  n: N,
  rounds: ROUNDS,
  wall: {
    wasmOpsPerSec: Math.round(wasmWall),
    nativeOpsPerSec: Math.round(nativeWall),
    ratio: round3(wasmWall / nativeWall),
  },
  threadCpu: wasmCpu && nativeCpu
    ? { wasmOpsPerSec: Math.round(wasmCpu), nativeOpsPerSec: Math.round(nativeCpu), ratio: round3(wasmCpu / nativeCpu) }
    : null,
  wasmRounds: wasm.map((x) => Math.round(x.opsPerSec)),
  nativeRounds: native.map((x) => Math.round(x.opsPerSec)),
};
console.log(JSON.stringify(result, null, 2));
// The check uses thread CPU time where available: other load on the machine disturbs it less.
const ratio = result.threadCpu ? result.threadCpu.ratio : result.wall.ratio;
if (CHECK && ratio < MIN_RATIO) {
  console.error(`wasm/native = ${ratio} is below ${MIN_RATIO}`);
  process.exit(1);
}
