// SqlStorageHost (src/sql-host.js) under miniflare: point reads, prefix scans in UTF-8 byte order
// (non-ASCII and astral keys, prefixes ending in U+10FFFF and U+D7FF), offset and limit, and a
// batch that fails midway leaving nothing. A Durable Object written for this test runs each check
// inside workerd against real `ctx.storage.sql`.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";
import { prefixEnd } from "../src/sql-host.js";

const script = `
import { DurableObject } from "cloudflare:workers";
import { SqlStorageHost } from "./src/sql-host.js";
export class HostCheck extends DurableObject {
  async fetch(request) {
    const host = new SqlStorageHost(this.ctx.storage);
    const { method, args } = await request.json();
    try {
      return Response.json({ ok: host[method](...args) ?? null });
    } catch (e) {
      return Response.json({ error: String(e && e.message || e) });
    }
  }
}
export default {
  fetch(request, env) {
    return env.CHECK.get(env.CHECK.idFromName("one")).fetch(request);
  },
};
`;

const root = fileURLToPath(new URL("../../..", import.meta.url)); // wasm/
const mf = new Miniflare({
  modules: true,
  script,
  scriptPath: fileURLToPath(new URL("../host-check.js", import.meta.url)),
  modulesRoot: root,
  modulesRules: [{ type: "ESModule", include: ["**/*.js"] }],
  compatibilityDate: "2025-06-01",
  durableObjects: { CHECK: { className: "HostCheck", useSQLite: true } },
});
after(() => mf.dispose());

async function host(method, ...args) {
  const res = await mf.dispatchFetch("http://check.example/", { method: "POST", body: JSON.stringify({ method, args }) });
  const out = await res.json();
  if (out.error !== undefined) throw new Error(out.error);
  return out.ok;
}

const utf8Order = (a, b) => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
const KEYS = ["b", "a", "ab", "aé", "a\uE000", "a\u{1F600}", "a\uFFFF", "a\u{10FFFF}", "a\u{10FFFF}x", "a\u{10FFFF}\u{10FFFF}",
  "\u{1F600}", "\u{1F600}1", "\uFFFF", "é", "a/1", "a/10", "a/2", "Z", "x\uD7FF", "x\uD7FFy", "x\uE000", "\u{10FFFF}", "\u{10FFFF}z"];
const value = (k) => JSON.stringify({ k });

test("prefixEnd is the smallest string above every string with the prefix", () => {
  assert.equal(prefixEnd(""), null);
  assert.equal(prefixEnd("a"), "b");
  assert.equal(prefixEnd("a/"), "a0");
  assert.equal(prefixEnd("x\uD7FF"), "x\uE000");
  assert.equal(prefixEnd("a\uFFFF"), "a\u{10000}");
  assert.equal(prefixEnd("a\u{1F600}"), "a\u{1F601}");
  assert.equal(prefixEnd("a\u{10FFFF}"), "b");
  assert.equal(prefixEnd("\u{10FFFF}\u{10FFFF}"), null);
});

test("SqlStorageHost: get, prefix scans in UTF-8 order with offset and limit, atomic batches", async () => {
  await host("apply", KEYS.map((key) => ({ op: "put", key, value: value(key) })));
  for (const k of KEYS) assert.equal(await host("get", k), value(k));
  assert.equal(await host("get", "a\u{1F601}"), null);

  const sorted = [...KEYS].sort(utf8Order);
  const big = 0xffffffff;
  assert.deepEqual(await host("scan", "", 0, big), sorted.map((k) => [k, value(k)]));
  for (const prefix of ["a", "a\u{10FFFF}", "a\u{1F600}", "\u{1F600}", "\u{10FFFF}", "x\uD7FF", "x", "é", "a/1", "q", "\uFFFF"]) {
    const want = sorted.filter((k) => k.startsWith(prefix));
    assert.deepEqual((await host("scan", prefix, 0, big)).map(([k]) => k), want, `prefix ${JSON.stringify(prefix)}`);
    assert.deepEqual((await host("scan", prefix, 1, 2)).map(([k]) => k), want.slice(1, 3), `page of ${JSON.stringify(prefix)}`);
  }
  assert.deepEqual(await host("scan", "a", 0, 0), []);
  assert.deepEqual(await host("scan", "a", 100, 5), []);

  // The third statement fails (a NULL value violates NOT NULL): the batch's put and delete before
  // it are rolled back.
  await assert.rejects(
    host("apply", [{ op: "put", key: "m1", value: "1" }, { op: "delete", key: "b" }, { op: "put", key: "m2", value: null }]),
    /NOT NULL/,
  );
  assert.equal(await host("get", "m1"), null);
  assert.equal(await host("get", "b"), value("b"));
  await assert.rejects(host("apply", [{ op: "put", key: "m3", value: "1" }, { op: "rename", key: "b" }]), /not a batch operation/);
  assert.equal(await host("get", "m3"), null);

  await host("apply", [{ op: "delete", key: "b" }, { op: "put", key: "ab", value: "AB" }]);
  assert.equal(await host("get", "b"), null);
  assert.equal(await host("get", "ab"), "AB");
  assert.equal((await host("scan", "", 0, big)).length, KEYS.length - 1);
});
