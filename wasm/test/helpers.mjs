// Shared helpers of the node tests.
import { createHmac } from "node:crypto";

export const ADMIN = "admin-token-for-wasm-tests";
export const T0 = 1_790_000_000_000;
export const SIGNING_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

export function basic(user, pass) {
  return `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}`;
}

/** Verify a Standard Webhooks signature (`v1,<base64 HMAC-SHA256 of id.timestamp.body>`). */
export function verifySignature(headers, body, secret = SIGNING_SECRET) {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const mac = createHmac("sha256", key)
    .update(`${headers["webhook-id"]}.${headers["webhook-timestamp"]}.${body}`)
    .digest("base64");
  return headers["webhook-signature"].split(" ").includes(`v1,${mac}`);
}

/** A small client over an engine: admin and data calls at a settable clock. */
export class Client {
  constructor(engine, now = T0) {
    this.engine = engine;
    this.now = now;
  }
  async send(method, path, { auth, body, headers = {} } = {}) {
    const h = { ...headers };
    if (auth) h.Authorization = auth;
    if (body !== undefined) h["Content-Type"] = "application/json";
    const r = await this.engine.handle(
      { method, path, headers: h, body: body === undefined ? undefined : JSON.stringify(body) },
      this.now,
    );
    return { ...r, json: r.body ? JSON.parse(r.body) : null };
  }
  admin(method, path, body) {
    return this.send(method, path, { auth: `Bearer ${ADMIN}`, body });
  }
  /** An account with write mode on and a read+write key; answers {id, auth}. */
  async tenant(domain) {
    const a = await this.admin("POST", "/admin/accounts", { domain, writeEnabled: true });
    if (a.status !== 201) throw new Error(a.body);
    const k = await this.admin("POST", `/admin/accounts/${a.json.id}/api-keys`, {
      scopes: ["api.read", "api.write"],
    });
    if (k.status !== 201) throw new Error(k.body);
    return { id: a.json.id, auth: basic(k.json.key, k.json.secret) };
  }
}

export function invoice(customerId, number) {
  return {
    number,
    customerId,
    issueDate: "2026-11-01",
    dueDate: "2026-11-30",
    currency: "EUR",
    lines: [{ description: "Consulting", quantity: 2, unitAmount: 15000, taxAmount: 6300 }],
  };
}
