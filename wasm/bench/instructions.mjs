// The workload of bench/instructions.sh: the throughput benchmark's setup, then N pushing 1 KB
// invoice writes through the package (`engine.handle` with MemoryHost), nothing timed.
//
// Usage: node bench/instructions.mjs N [PACKAGE_DIR]   (PACKAGE_DIR: another build of the
// package to load, for comparisons; default this one)
import { invoiceBody } from "./invoice.mjs";

const N = Number(process.argv[2]);
if (!Number.isSafeInteger(N) || N < 0) throw new Error("usage: node bench/instructions.mjs N [PACKAGE_DIR]");
const dir = process.argv[3] ? new URL(`file://${process.argv[3].replace(/\/$/, "")}/`) : new URL("../", import.meta.url);
const { createEngine, MemoryHost } = await import(new URL("js/node.js", dir).href);

const ADMIN = "bench-admin-token";
const T0 = 1_790_000_000_000;
const engine = await createEngine(new MemoryHost(), { adminToken: ADMIN, seed: "bench" });
const post = async (path, auth, body) => {
  const r = await engine.handle(
    { method: "POST", path, headers: { Authorization: auth, "Content-Type": "application/json" }, body: JSON.stringify(body) },
    T0,
  );
  if (r.status !== 201) throw new Error(`setup ${path}: ${r.status} ${r.body}`);
  return JSON.parse(r.body);
};
const admin = `Bearer ${ADMIN}`;
const acct = await post("/admin/accounts", admin, { domain: "bench.example.com", writeEnabled: true });
const key = await post(`/admin/accounts/${acct.id}/api-keys`, admin, { scopes: ["api.read", "api.write"] });
const auth = `Basic ${Buffer.from(`${key.key}:${key.secret}`).toString("base64")}`;
await post(`/admin/accounts/${acct.id}/connections`, admin, {
  app: "quickbooks", type: "accounting", pushUrl: "https://quickbooks.example.com/push",
});
await post(`/admin/accounts/${acct.id}/connections`, admin, {
  app: "shopify", type: "commerce", pushUrl: "https://shopify.example.com/push",
});
await post(`/admin/accounts/${acct.id}/webhooks`, admin, {
  url: "https://hooks.example.com/in", events: ["*"], username: "hook", password: "pw",
  signingSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
});
const customer = await post("/api/customers", auth, { name: "Acme Ltd", email: "ap@acme.example.com" });
for (let i = 0; i < N; i++) {
  const r = await engine.handle(
    {
      method: "POST",
      path: "/api/invoices",
      headers: { Authorization: auth, "Content-Type": "application/json", "X-Sync-Data": "push" },
      body: invoiceBody(customer.id, i),
    },
    T0,
  );
  if (r.status !== 201) throw new Error(`${r.status} ${r.body}`);
}
engine.free();
