// Seeding-only wrapper of the example, for bench/coldstart.mjs: the same Durable Object class
// (same name, so the same persisted storage) plus a route that writes rows into its `kv` table.
// The benchmark then restarts on src/index.js itself; this file is never deployed.
import Example, { AccountEngine as Base } from "../src/index.js";
import { SqlStorageHost } from "../src/sql-host.js";

export class AccountEngine extends Base {
  async fetch(request) {
    if (new URL(request.url).pathname !== "/__bench/load") return super.fetch(request);
    const rows = await request.json();
    new SqlStorageHost(this.ctx.storage).apply(rows.map(([key, value]) => ({ op: "put", key, value })));
    return new Response(null, { status: 204 });
  }
}

export default {
  fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/__bench/load") return env.ACCOUNTS.get(env.ACCOUNTS.idFromName(url.hostname)).fetch(request);
    return Example.fetch(request, env);
  },
};
