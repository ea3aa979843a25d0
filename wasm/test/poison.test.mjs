// A trap (a Rust panic; wasm32 aborts) must surface as an Error, never leave a half-applied
// write, and poison every engine of the module instance. Runs in its own process (node --test
// runs each file in a child process), because the poisoning is module-wide.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createEngine, MemoryHost, WritesyncError, __trapForTests } from "writesync-wasm";
import { ADMIN, T0, Client } from "./helpers.mjs";

test("a trap throws engine_panic, then every call throws engine_poisoned", async () => {
  const host = new MemoryHost();
  const engine = await createEngine(host, { adminToken: ADMIN, seed: "poison" });
  const c = new Client(engine);
  const t = await c.tenant("acme.example.com");
  const before = host.entries();

  assert.throws(() => __trapForTests(), (e) => {
    assert.ok(e instanceof WritesyncError);
    assert.equal(e.code, "engine_panic");
    assert.ok(e.cause instanceof WebAssembly.RuntimeError);
    return true;
  });
  await assert.rejects(
    engine.handle({ method: "GET", path: "/api/customers", headers: { Authorization: t.auth } }, T0),
    { code: "engine_poisoned" },
  );
  await assert.rejects(engine.due(T0), { code: "engine_poisoned" });
  await assert.rejects(engine.report("t.x.1", { status: 200 }, T0), { code: "engine_poisoned" });
  assert.throws(() => engine.nextDeadline(), { code: "engine_poisoned" });
  await assert.rejects(createEngine(host, { adminToken: ADMIN }), { code: "engine_poisoned" });
  assert.deepEqual(host.entries(), before, "the host's storage is untouched");
  engine.free(); // does not touch the dead instance
});
