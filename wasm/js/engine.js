// The JS face of writesync-wasm: createEngine, MemoryHost, WritesyncError.
//
// This file wraps the raw wasm-bindgen export (RawEngine, see wasm/src/lib.rs) and owns what
// belongs to the JS side: the promise queue that serializes calls, the host's (possibly
// asynchronous) atomic apply, the cache commit after it, error objects with a `code`, and the
// poisoning of engines after a trap. It has no business rules: every answer comes from the core.
// Types and the host contract: ../index.d.ts.

import init, { initSync, RawEngine, __trapForTests as rawTrap } from "../pkg/writesync_wasm.js";
// The text of core/openapi.json, which the engine serves at `GET /openapi.json`. It is not built
// into the wasm module (that keeps the module about 21 KB smaller gzipped); build.sh writes it
// here and each engine is handed it, so the answer is the same as the native engine's.
import openapiJson from "../pkg/writesync_openapi.js";

/** An error thrown by the package: `code` is machine-readable, `message` says what happened. */
export class WritesyncError extends Error {
  constructor(code, message, options) {
    super(message, options);
    this.name = "WritesyncError";
    this.code = code;
  }
}

// ---------------------------------------------------------------------------------------------
// Initialization of the wasm module: each entry point (node.js, browser.js, worker.js) installs
// how it obtains the module; createEngine awaits it.

let initializer = null;
let initialized = null;

/** @internal Used by the entry points. */
export function setInitializer(fn) {
  initializer = fn;
}

/**
 * Instantiate the wasm module from `source` instead of the entry point's default: a
 * `WebAssembly.Module`, the bytes of the .wasm file, or a URL / Response / Promise of one.
 * Call it before createEngine; later calls do nothing.
 */
export async function initWasm(source) {
  if (initialized) return initialized;
  initialized = (async () => {
    if (source instanceof WebAssembly.Module || source instanceof ArrayBuffer || ArrayBuffer.isView(source)) {
      initSync({ module: source });
    } else {
      await init({ module_or_path: source });
    }
  })().catch((e) => {
    initialized = null;
    throw new WritesyncError("wasm_init", `cannot load the wasm module: ${describe(e)}`, { cause: e });
  });
  return initialized;
}

async function ready() {
  if (!initialized) {
    initialized = Promise.resolve()
      .then(() => (initializer ? initializer() : undefined))
      .catch((e) => {
        initialized = null;
        throw new WritesyncError("wasm_init", `cannot load the wasm module: ${describe(e)}`, {
          cause: e,
        });
      });
  }
  return initialized;
}

// ---------------------------------------------------------------------------------------------
// Traps. A trap (a Rust panic, compiled as abort) stops the wasm instance in the middle of a call:
// its memory is shared by every engine of this module instance, so all of them are poisoned.

let trapped = null;

function describe(e) {
  return e instanceof Error ? e.message : String(e);
}

function poisonedError() {
  return new WritesyncError(
    "engine_poisoned",
    `the engine stopped after an internal error (${describe(trapped)}); create a new engine ` +
      "from the host's storage in a fresh module instance (a new worker or isolate)",
    { cause: trapped },
  );
}

/** Call into wasm with the poison flag set for the duration of the call. */
function call(state, fn) {
  if (trapped || state.inCall || state.freed) {
    if (state.freed) throw new WritesyncError("wrong_state", "the engine was freed");
    throw poisonedError();
  }
  state.inCall = true;
  let result;
  try {
    result = fn();
  } catch (e) {
    if (e instanceof Error && typeof e.code === "string" && !(e instanceof WebAssembly.RuntimeError)) {
      // An error value of the core (or of the binding's decoding): the engine is fine.
      state.inCall = false;
      throw new WritesyncError(e.code, e.message);
    }
    // Anything else escaping wasm is a trap: leave inCall set, remember it module-wide.
    trapped = e instanceof Error ? e : new Error(String(e));
    throw new WritesyncError("engine_panic", `internal error in the engine: ${describe(e)}`, {
      cause: e,
    });
  }
  state.inCall = false;
  return result;
}

/**
 * Trap the wasm instance on purpose; only for tests of the poisoning. Every engine of this
 * module instance is unusable afterwards.
 */
export function __trapForTests() {
  call({ inCall: false }, () => rawTrap());
}

// ---------------------------------------------------------------------------------------------
// Argument checks and conversions (shapes only; the core decides everything else).

function argError(message) {
  return new WritesyncError("invalid_argument", message);
}

function toMillis(now, what = "nowMillis") {
  if (now instanceof Date) now = now.getTime();
  if (typeof now !== "number" || !Number.isSafeInteger(now)) {
    throw argError(`${what} must be an integer number of milliseconds since the Unix epoch`);
  }
  return now;
}

function toLimit(limit, fallback) {
  if (limit === undefined || limit === null) return fallback;
  if (!Number.isSafeInteger(limit) || limit < 0 || limit > 0xffffffff) {
    throw argError("limit must be a non-negative integer");
  }
  return limit;
}

const decoder = new TextDecoder();

function headersToObject(headers, what) {
  if (headers === undefined || headers === null) return {};
  const out = {};
  if (typeof headers.forEach === "function" && typeof headers.get === "function") {
    // Headers or Map
    headers.forEach((value, name) => {
      out[name] = String(value);
    });
    return out;
  }
  if (Array.isArray(headers)) {
    for (const pair of headers) {
      if (!Array.isArray(pair) || pair.length !== 2) throw argError(`${what} pairs must be [name, value]`);
      out[String(pair[0])] = String(pair[1]);
    }
    return out;
  }
  if (typeof headers !== "object") throw argError(`${what} must be an object`);
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || value === null) continue;
    out[name] = typeof value === "string" ? value : String(value);
  }
  return out;
}

function bodyToText(body) {
  if (body === undefined || body === null) return null;
  if (typeof body === "string") return body;
  if (body instanceof ArrayBuffer) return decoder.decode(new Uint8Array(body));
  if (ArrayBuffer.isView(body)) {
    return decoder.decode(new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
  }
  // Any other value is JSON: the engine takes its text.
  return JSON.stringify(body);
}

/** A request as the raw engine takes it: method, path, headers as JSON text, body text. */
function encodeRequest(request) {
  if (request === null || typeof request !== "object") {
    throw argError("request must be an object {method, path, headers?, body?}");
  }
  const { method, path } = request;
  if (typeof method !== "string" || typeof path !== "string") {
    throw argError("request.method and request.path must be strings");
  }
  return {
    method,
    path,
    headers: JSON.stringify(headersToObject(request.headers, "request.headers")),
    body: bodyToText(request.body) ?? undefined,
  };
}

function encodeOutcome(outcome) {
  if (outcome === null || typeof outcome !== "object") {
    throw argError("outcome must be {status, headers?, body?} or {error, permanent?}");
  }
  if (typeof outcome.error === "string") {
    return JSON.stringify({ error: outcome.error, permanent: outcome.permanent === true });
  }
  if (typeof outcome.status !== "number") {
    throw argError("outcome must be {status, headers?, body?} or {error, permanent?}");
  }
  const body = bodyToText(outcome.body);
  return JSON.stringify({
    status: outcome.status,
    headers: headersToObject(outcome.headers, "outcome.headers"),
    body: body === null ? "" : body,
  });
}

/**
 * Decode a frame of the raw engine (wasm/src/lib.rs, `Frame`): a JSON head on the first line,
 * then texts (the response body, the batch's keys and values) verbatim, their UTF-16 lengths in
 * `head.lens` and the kinds of the batch's operations (1 put, 0 delete) in `head.ops`.
 */
function decodeFrame(frame, withBody) {
  const nl = frame.indexOf("\n");
  const head = JSON.parse(frame.slice(0, nl));
  const lens = head.lens;
  let pos = nl + 1;
  let li = 0;
  const take = () => {
    const end = pos + lens[li++];
    const text = frame.slice(pos, end);
    pos = end;
    return text;
  };
  const body = withBody ? take() : undefined;
  const kinds = head.ops;
  const ops = new Array(kinds.length);
  for (let i = 0; i < kinds.length; i++) {
    ops[i] = kinds[i] === 1 ? { op: "put", key: take(), value: take() } : { op: "delete", key: take() };
  }
  return { head, body, ops };
}

function randomSeed() {
  const bytes = new Uint8Array(32);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Normalize what host.entries() gave into [[key, value], ...]. */
async function collectEntries(entries) {
  const out = [];
  const push = (e) => {
    let key;
    let value;
    if (Array.isArray(e)) [key, value] = e;
    else if (e && typeof e === "object") ({ key, value } = e);
    if (typeof key !== "string" || typeof value !== "string") {
      throw argError("host.entries() must yield [key, value] pairs (or {key, value}) of strings");
    }
    out.push([key, value]);
  };
  if (entries === undefined || entries === null) return out;
  if (typeof entries[Symbol.asyncIterator] === "function") {
    for await (const e of entries) push(e);
  } else if (typeof entries[Symbol.iterator] === "function") {
    for (const e of entries) push(e);
  } else {
    throw argError("host.entries() must return an iterable (or a Promise of one)");
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

/**
 * Create an engine over `host` (see index.d.ts: `Host`). Reads every entry of the host once into
 * the engine's cache; afterwards the engine is the single writer of that storage.
 */
export async function createEngine(host, options = {}) {
  if (!host || typeof host.apply !== "function" || typeof host.entries !== "function") {
    throw argError("host must have entries() and apply(batch) methods");
  }
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw argError("options must be an object");
  }
  if (options.seed !== undefined && typeof options.seed !== "string") {
    throw argError("options.seed must be a string");
  }
  await ready();
  const config = { ...options };
  if (config.seed === undefined) config.seed = randomSeed();
  const state = { inCall: false, freed: false };
  const raw = call(state, () => new RawEngine(JSON.stringify(config), openapiJson));
  let entries;
  try {
    entries = await collectEntries(await host.entries());
  } catch (e) {
    raw.free();
    if (e instanceof WritesyncError) throw e;
    throw new WritesyncError("host_error", `host.entries() failed: ${describe(e)}`, { cause: e });
  }
  try {
    call(state, () => raw.load(JSON.stringify(entries)));
  } catch (e) {
    if (!trapped) raw.free();
    throw e;
  }
  // Bring the stored data to the engine's layout (bounded steps; each is committed through the
  // host before the next, so an interrupted migration resumes at the next createEngine).
  for (;;) {
    let out;
    try {
      out = decodeFrame(call(state, () => raw.migrate(MIGRATION_STEP)), false);
    } catch (e) {
      if (!trapped) raw.free();
      throw e;
    }
    if (out.ops.length > 0) {
      try {
        await host.apply(out.ops);
      } catch (e) {
        call(state, () => raw.abort(describe(e)));
        raw.free();
        throw new WritesyncError("host_error", `host.apply() failed during migrate: ${describe(e)}`, {
          cause: e,
        });
      }
      call(state, () => raw.commit());
    }
    if (out.head.done) break;
  }
  return new Engine(raw, host, state);
}

/** Rows one migration step rewrites at most. */
const MIGRATION_STEP = 500;

class Engine {
  #raw;
  #host;
  #state;
  #tail = Promise.resolve();

  constructor(raw, host, state) {
    this.#raw = raw;
    this.#host = host;
    this.#state = state;
  }

  /** Run `fn` after every call queued before it. */
  #enqueue(fn) {
    const run = this.#tail.then(fn);
    this.#tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Apply `ops` through the host, then commit (or abort) the pending step. */
  async #apply(ops) {
    try {
      await this.#host.apply(ops);
    } catch (e) {
      const answer = call(this.#state, () => this.#raw.abort(describe(e)));
      return { ok: false, error: e, answer };
    }
    call(this.#state, () => this.#raw.commit());
    return { ok: true };
  }

  /** Answer one API request: `{status, headers, body}`, as the HTTP contract says. */
  handle(request, nowMillis) {
    return this.#enqueue(async () => {
      const req = encodeRequest(request);
      const now = toMillis(nowMillis);
      const out = decodeFrame(
        call(this.#state, () => this.#raw.handle(req.method, req.path, req.headers, req.body, now)),
        true,
      );
      const response = { status: out.head.status, headers: out.head.headers, body: out.body };
      if (out.ops.length === 0) return response;
      const applied = await this.#apply(out.ops);
      return applied.ok ? response : JSON.parse(applied.answer);
    });
  }

  /** Claim the pushes and webhook deliveries to perform now (at most `limit`, default 100). */
  due(nowMillis, limit) {
    return this.#enqueue(async () => {
      const now = toMillis(nowMillis);
      const n = toLimit(limit, 100);
      const out = decodeFrame(call(this.#state, () => this.#raw.due(now, n)), false);
      await this.#commitOrThrow(out.ops, "due");
      return out.head.items;
    });
  }

  /** Report what happened to work item `id`. */
  report(id, outcome, nowMillis) {
    return this.#enqueue(async () => {
      if (typeof id !== "string") throw argError("id must be a string");
      const o = encodeOutcome(outcome);
      const now = toMillis(nowMillis);
      const out = decodeFrame(call(this.#state, () => this.#raw.report(id, o, now)), false);
      await this.#commitOrThrow(out.ops, "report");
    });
  }

  /** Remove expired idempotency records and finished deliveries; answers how many writes. */
  prune(nowMillis, limit) {
    return this.#enqueue(async () => {
      const now = toMillis(nowMillis);
      const n = toLimit(limit, 1000);
      const out = decodeFrame(call(this.#state, () => this.#raw.prune(now, n)), false);
      await this.#commitOrThrow(out.ops, "prune");
      return out.ops.length;
    });
  }

  /**
   * Make every push and delivery that was handed out but not reported due again now. Call it once
   * after start when this engine is the only worker on its storage (a crash lost what was in
   * flight); otherwise such items come back when their lease runs out. Answers the number of
   * writes.
   */
  recover(nowMillis) {
    return this.#enqueue(async () => {
      const now = toMillis(nowMillis);
      const out = decodeFrame(call(this.#state, () => this.#raw.recover(now)), false);
      await this.#commitOrThrow(out.ops, "recover");
      return out.ops.length;
    });
  }

  async #commitOrThrow(ops, what) {
    if (ops.length === 0) return;
    const applied = await this.#apply(ops);
    if (!applied.ok) {
      throw new WritesyncError(
        "host_error",
        `host.apply() failed during ${what}: ${describe(applied.error)}`,
        { cause: applied.error },
      );
    }
  }

  /** When `due` will next have work (Unix ms), or null when nothing is owed. */
  nextDeadline() {
    const d = call(this.#state, () => this.#raw.nextDeadline());
    return d === undefined || d === null ? null : d;
  }

  /** Number of entries in the engine's cache of the host's storage. */
  get cacheSize() {
    return call(this.#state, () => this.#raw.cacheSize());
  }

  /** Release the engine's wasm memory. Calls after this throw `wrong_state`. */
  free() {
    if (this.#state.freed) return;
    if (!trapped && !this.#state.inCall) this.#raw.free();
    this.#state.freed = true;
  }
}

// ---------------------------------------------------------------------------------------------

/** Order two strings as their UTF-8 bytes compare (code point order). */
export function compareUtf8(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      // UTF-16 units order like code points except surrogates (>= U+10000) against
      // U+E000..U+FFFF: move surrogates above.
      if (x >= 0xd800 && y >= 0xd800) {
        x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
        y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
      }
      return x - y;
    }
  }
  return a.length - b.length;
}

function checkOps(ops) {
  if (!Array.isArray(ops)) throw argError("batch must be an array of operations");
  for (const op of ops) {
    const ok =
      op &&
      typeof op.key === "string" &&
      ((op.op === "put" && typeof op.value === "string") || op.op === "delete");
    if (!ok) throw argError(`not a batch operation: ${JSON.stringify(op)}`);
  }
}

/** A complete in-memory host, for tests and demos. */
export class MemoryHost {
  #map = new Map();

  /** @param entries optional initial entries, [[key, value], ...] */
  constructor(entries) {
    if (entries) for (const [k, v] of entries) this.#map.set(k, v);
  }

  /** Every entry, ordered bytewise by key. */
  entries() {
    return Array.from(this.#map.entries()).sort((a, b) => compareUtf8(a[0], b[0]));
  }

  /** Apply a batch atomically: the whole batch is checked before anything changes. */
  apply(batch) {
    checkOps(batch);
    for (const op of batch) {
      if (op.op === "put") this.#map.set(op.key, op.value);
      else this.#map.delete(op.key);
    }
  }

  /** The value under `key`, or undefined. */
  get(key) {
    return this.#map.get(key);
  }

  /** Entries whose key starts with `prefix`, ordered bytewise by key. */
  scan(prefix = "") {
    return this.entries().filter(([k]) => k.startsWith(prefix));
  }

  /** Number of entries. */
  get size() {
    return this.#map.size;
  }
}
