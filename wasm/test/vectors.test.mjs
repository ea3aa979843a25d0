// Replays every shared vector (tests/vectors/*.json, format in tests/vectors/README.md) through
// the wasm build with MemoryHost. The files are recorded from the native engine, so a match is
// an answer identical to the native run.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { createEngine, MemoryHost } from "writesync-wasm";

const dir = new URL("../../tests/vectors/", import.meta.url);
const files = readdirSync(dir)
  .filter((f) => f.endsWith(".json"))
  .sort();

function parsedBody(text) {
  if (text === "") return "";
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * An asynchronous host over a MemoryHost: get and scan answer Promises (resolved a turn later),
 * so every read the engine lacks ends a run of its step (wasm/src/reads.rs).
 */
export class AsyncMemoryHost {
  async = true;
  inner = new MemoryHost();
  reads = 0;
  async get(key) {
    this.reads++;
    await null;
    return this.inner.get(key);
  }
  async scan(prefix, offset, limit) {
    this.reads++;
    await null;
    return this.inner.scan(prefix, offset, limit);
  }
  async apply(ops) {
    await null;
    this.inner.apply(ops);
  }
  entries() {
    return this.inner.entries();
  }
  get size() {
    return this.inner.size;
  }
}

/**
 * Replay one vector (through a MemoryHost, or the host `makeHost` makes); answers the engine and
 * host for further checks.
 */
export async function replay(vector, makeHost = () => new MemoryHost()) {
  const host = makeHost();
  const engine = await createEngine(host, vector.config);
  for (const [i, step] of vector.steps.entries()) {
    const where = `${vector.name} step ${i} (${step.kind})`;
    switch (step.kind) {
      case "request": {
        const r = await engine.handle(step.request, step.now);
        assert.deepStrictEqual(
          { status: r.status, headers: r.headers, body: parsedBody(r.body) },
          step.expect,
          where,
        );
        break;
      }
      case "due": {
        const items = await engine.due(step.now, step.limit);
        const got = items.map((it) => ({
          ...it,
          request: { ...it.request, body: parsedBody(it.request.body) },
        }));
        assert.deepStrictEqual({ items: got }, step.expect, where);
        break;
      }
      case "report": {
        let error = null;
        try {
          await engine.report(step.id, step.outcome, step.now);
        } catch (e) {
          if (typeof e.code !== "string") throw e;
          error = e.code;
        }
        assert.deepStrictEqual({ error }, step.expect, where);
        break;
      }
      case "deadline":
        assert.deepStrictEqual({ deadline: await engine.nextDeadline() }, step.expect, where);
        break;
      default:
        assert.fail(`${where}: unknown step kind`);
    }
  }
  // As in the Rust replay: every stored value is JSON.
  for (const [k, v] of host.entries()) {
    assert.doesNotThrow(() => JSON.parse(v), `${vector.name}: row ${k}`);
  }
  return { engine, host };
}

test("there are vectors to replay", () => {
  assert.ok(files.length > 0, `no *.json in ${dir.pathname}`);
});

for (const file of files) {
  test(`vector ${file}`, async () => {
    const vector = JSON.parse(readFileSync(new URL(file, dir), "utf8"));
    const sync = await replay(vector);
    // The same script through an asynchronous host: discarded runs leave no trace (same ids,
    // same answers as the native engine recorded), and both hosts end up holding the same bytes.
    const viaAsync = await replay(vector, () => new AsyncMemoryHost());
    assert.deepStrictEqual(viaAsync.host.entries(), sync.host.entries(), `${file}: stored entries`);
  });
}
