// A Cloudflare Worker that serves the writesync HTTP API from Durable Objects.
//
// - Each account lives in its own Durable Object, addressed by the host name the request was
//   sent to (the account's domain, e.g. `acme.example.com`). The object holds that account's
//   engine: one engine per storage, the single writer of it.
// - The engine's storage host is the object's SQLite storage (`ctx.storage.sql`, src/sql-host.js):
//   one table of keys and values, read on demand by key and by ordered prefix range, every batch
//   applied inside `transactionSync` (all or nothing).
// - `/api/...`, `/admin/...`, `/openapi.json` and `/healthz` go to `engine.handle`.
// - The pushes and webhook deliveries the engine owes are performed with `fetch` from the
//   object's alarm, which is always set to `engine.nextDeadline()`. The object is the only worker
//   on its storage, so on start it calls `engine.recover()`: what a crash left in flight is
//   retried at once.
// - Access tokens of provider connections (work items of kind `token`) come from the
//   ACCESS_TOKENS secret, a JSON object from connection id or app key to access token; a real
//   deployment would run its OAuth refresh there.
//
// Configuration (wrangler.toml `[vars]` / secrets): ADMIN_TOKEN (required), and optionally
// PUSH_RETRY_SCHEDULE and WEBHOOK_RETRY_SCHEDULE (JSON arrays of seconds), ALLOW_TARGET_CIDRS
// (comma-separated CIDRs that pushes may target although restricted, e.g. for local tests),
// MAX_BODY_BYTES, ACCESS_TOKENS.
import { DurableObject } from "cloudflare:workers";
import { createEngine } from "./writesync.js";
import { SqlStorageHost } from "./sql-host.js";

const ROUTES = [/^\/api(\/|$)/, /^\/admin(\/|$)/, /^\/openapi\.json$/, /^\/healthz$/];
/** How much of a peer's answer is read and reported. */
const ANSWER_LIMIT = 4096;
/** Timeout of one push or delivery. */
const OUTBOUND_TIMEOUT_MS = 15_000;
/** Work items claimed per round of an alarm. */
const BATCH = 25;

function engineOptions(env) {
  const options = { adminToken: env.ADMIN_TOKEN };
  if (env.PUSH_RETRY_SCHEDULE) options.pushRetrySchedule = JSON.parse(env.PUSH_RETRY_SCHEDULE);
  if (env.WEBHOOK_RETRY_SCHEDULE) options.webhookRetrySchedule = JSON.parse(env.WEBHOOK_RETRY_SCHEDULE);
  if (env.ALLOW_TARGET_CIDRS) {
    options.allowTargetCidrs = env.ALLOW_TARGET_CIDRS.split(",").map((s) => s.trim()).filter(Boolean);
  }
  if (env.MAX_BODY_BYTES) options.maxBodyBytes = Number(env.MAX_BODY_BYTES);
  return options;
}

/** Answer a token work item from the ACCESS_TOKENS secret. */
function accessToken(item, env) {
  let wanted;
  try {
    wanted = JSON.parse(item.request.body);
  } catch {
    return { error: "malformed token request" };
  }
  const tokens = env.ACCESS_TOKENS ? JSON.parse(env.ACCESS_TOKENS) : {};
  const token = tokens[wanted.connectionId] ?? tokens[wanted.app];
  if (!token) return { error: `no access token configured for ${wanted.app}` };
  return { status: 200, body: JSON.stringify({ accessToken: token }) };
}

/** Perform one push or delivery; answers the outcome the engine takes. */
async function perform(request) {
  try {
    const res = await fetch(request.url, {
      method: request.method,
      headers: request.headers,
      // A provider's DELETE has an empty body: send none (a string body would add a
      // Content-Type).
      body: request.body === "" ? undefined : request.body,
      redirect: "manual",
      signal: AbortSignal.timeout(OUTBOUND_TIMEOUT_MS),
    });
    const text = await res.text();
    return {
      status: res.status,
      headers: Object.fromEntries(res.headers),
      body: text.slice(0, ANSWER_LIMIT),
    };
  } catch (e) {
    return { error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
  }
}

export class AccountEngine extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.maxBodyBytes = Number(env.MAX_BODY_BYTES || 1024 * 1024);
    // No request or alarm runs until the engine exists and has recovered. Nothing is loaded: the
    // engine reads the storage on demand through SqlStorageHost.
    ctx.blockConcurrencyWhile(async () => {
      this.engine = await createEngine(new SqlStorageHost(ctx.storage), engineOptions(env));
      await this.engine.recover(Date.now());
      await this.schedule();
    });
  }

  async fetch(request) {
    const url = new URL(request.url);
    let body;
    const declared = Number(request.headers.get("Content-Length") || 0);
    // Over the limit: do not read it; the engine answers 413 from Content-Length.
    if (declared <= this.maxBodyBytes && request.body) {
      const text = await request.text();
      if (text !== "") body = text;
    }
    const answer = await this.engine.handle(
      { method: request.method, path: url.pathname + url.search, headers: request.headers, body },
      Date.now(),
    );
    await this.schedule();
    const empty = answer.body === "" || answer.status === 204 || answer.status === 304;
    return new Response(empty ? null : answer.body, { status: answer.status, headers: answer.headers });
  }

  async alarm() {
    // Claim what is due, perform it concurrently, report each outcome; repeat while there is more.
    for (let round = 0; round < 20; round++) {
      const items = await this.engine.due(Date.now(), BATCH);
      if (items.length === 0) break;
      await Promise.all(
        items.map(async (item) => {
          const outcome = item.kind === "token" ? accessToken(item, this.env) : await perform(item.request);
          try {
            await this.engine.report(item.id, outcome, Date.now());
          } catch (e) {
            // unknown_work: the lease ran out meanwhile and the engine handed the item out again.
            if (e.code !== "unknown_work") throw e;
          }
        }),
      );
    }
    await this.engine.prune(Date.now());
    await this.schedule();
  }

  /** Keep the alarm at the engine's next deadline. */
  async schedule() {
    const next = this.engine.nextDeadline();
    const current = await this.ctx.storage.getAlarm();
    if (next === null) {
      if (current !== null) await this.ctx.storage.deleteAlarm();
      return;
    }
    const at = Math.max(next, Date.now());
    if (current !== at) await this.ctx.storage.setAlarm(at);
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (!ROUTES.some((r) => r.test(url.pathname))) {
      return new Response(JSON.stringify({ type: "/problems/not-found", title: "Not found", status: 404, detail: "no such route" }), {
        status: 404,
        headers: { "Content-Type": "application/problem+json" },
      });
    }
    const stub = env.ACCOUNTS.get(env.ACCOUNTS.idFromName(url.hostname));
    return stub.fetch(request);
  },
};
