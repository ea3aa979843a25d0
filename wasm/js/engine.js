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
// here and each engine is handed it (as a JS string, copied into wasm memory only when it is
// served), so the answer is the same as the native engine's.
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
const encoder = new TextEncoder();

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

/**
 * A request as the raw engine takes it: method, path, headers as JSON text and the body, both
 * as UTF-8 bytes (see `RawEngine::handle` in src/lib.rs). With `reuse`, for a call whose step
 * runs before anything else can run, the bytes are encoded into one reused buffer:
 * `TextEncoder.encode` allocates an ArrayBuffer per call, which cost more than the encoding.
 */
function encodeRequest(request, reuse) {
  if (request === null || typeof request !== "object") {
    throw argError("request must be an object {method, path, headers?, body?}");
  }
  const { method, path } = request;
  if (typeof method !== "string" || typeof path !== "string") {
    throw argError("request.method and request.path must be strings");
  }
  const headers = JSON.stringify(headersToObject(request.headers, "request.headers"));
  const body = bodyToText(request.body);
  const need = 3 * (headers.length + (body === null ? 0 : body.length));
  if (!reuse || need > SCRATCH_MAX) {
    return { method, path, headers: encoder.encode(headers), body: body === null ? undefined : encoder.encode(body) };
  }
  if (scratch.length < need) scratch = new Uint8Array(Math.min(SCRATCH_MAX, Math.max(need, 2 * scratch.length)));
  const h = encoder.encodeInto(headers, scratch).written;
  const b = body === null ? undefined : scratch.subarray(h, h + encoder.encodeInto(body, scratch.subarray(h)).written);
  return { method, path, headers: scratch.subarray(0, h), body: b };
}

/** encodeRequest's reused buffer, and the most bytes it grows to. */
const SCRATCH_MAX = 1 << 16;
let scratch = new Uint8Array(4096);

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
  return hex(bytes);
}

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** options.seed as the configuration's text: a string as it is, 32 bytes as 64 hex digits. */
function seedText(seed) {
  if (seed === undefined) return randomSeed();
  if (typeof seed === "string") return seed;
  if (seed instanceof Uint8Array) {
    if (seed.length !== 32) {
      throw argError(`options.seed as bytes must be exactly 32 bytes, got ${seed.length}`);
    }
    return hex(seed);
  }
  throw argError("options.seed must be a string or a Uint8Array of 32 bytes");
}

// ---------------------------------------------------------------------------------------------
// Reading the host. See index.d.ts (`SyncHost`, `AsyncHost`) and wasm/src/reads.rs.

function what(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (v && typeof v.then === "function") {
    return "a Promise (an asynchronous host must say so with `async: true`)";
  }
  return `a value of type ${typeof v}`;
}

function quote(s) {
  return JSON.stringify(s);
}

/** A host's answer to get(key): the string, or undefined when absent; throws (a string) else. */
function checkValue(v, key) {
  if (typeof v === "string") return v;
  if (v === undefined || v === null) return undefined;
  throw `host.get(${quote(key)}) answered ${what(v)}, not a string or undefined`;
}

/** A host's answer to scan(...): checked rows; throws (a string) when it is not an answer. */
function checkRows(rows, prefix, limit) {
  if (!Array.isArray(rows)) {
    throw `host.scan(${quote(prefix)}) answered ${what(rows)}, not an array of [key, value] pairs`;
  }
  if (rows.length > limit) {
    throw `host.scan(${quote(prefix)}) answered ${rows.length} rows, more than the limit ${limit}`;
  }
  for (const r of rows) {
    if (!Array.isArray(r) || typeof r[0] !== "string" || typeof r[1] !== "string") {
      throw `host.scan(${quote(prefix)}) answered a row that is not a [key, value] pair of strings`;
    }
    if (!r[0].startsWith(prefix)) {
      throw `host.scan(${quote(prefix)}) answered the key ${quote(r[0])}, which lacks the prefix`;
    }
  }
  return rows;
}

/** Rows as the engine takes them (wasm/src/reads.rs: `rows`): JSON `[[key, value], ...]`. */
function encodeRows(rows) {
  return JSON.stringify(rows);
}

/**
 * The engine's reader of the host (wasm/src/reads.rs: `HostReader`). Its methods throw a string
 * that says what failed.
 *
 * A synchronous host is read at once. For an asynchronous host, a run of a step is answered from
 * what was fetched for the step so far; every other read is answered as absent (or empty) and
 * recorded, `missed()` tells the engine to discard the run, and `fetch()` fetches what was
 * recorded, all at once, before the step runs again. After a failed fetch, the reads that would
 * need fetching throw its message. `done()` ends the step.
 */
class Reader {
  #host;
  #async;
  #values = new Map();
  #scans = new Map();
  #needKeys = new Set();
  #needScans = new Map();
  #fault = null;

  constructor(host, isAsync) {
    this.#host = host;
    this.#async = isAsync;
  }

  get(key) {
    if (this.#async) {
      if (this.#values.has(key)) return this.#values.get(key);
      if (this.#fault !== null) throw this.#fault;
      this.#needKeys.add(key);
      return undefined;
    }
    let v;
    try {
      v = this.#host.get(key);
    } catch (e) {
      throw `host.get(${quote(key)}) failed: ${describe(e)}`;
    }
    return checkValue(v, key);
  }

  scan(prefix, offset, limit) {
    if (this.#async) {
      const id = `${offset}/${limit}/${prefix}`;
      const text = this.#scans.get(id);
      if (text !== undefined) return text;
      if (this.#fault !== null) throw this.#fault;
      this.#needScans.set(id, [prefix, offset, limit]);
      return "[]";
    }
    let rows;
    try {
      rows = this.#host.scan(prefix, offset, limit);
    } catch (e) {
      throw `host.scan(${quote(prefix)}) failed: ${describe(e)}`;
    }
    return encodeRows(checkRows(rows, prefix, limit));
  }

  missed() {
    return this.#needKeys.size > 0 || this.#needScans.size > 0;
  }

  /** Fetch what the last run missed; a failure is kept as the fault (never rejects). */
  async fetch() {
    const host = this.#host;
    const keys = [...this.#needKeys];
    const scans = [...this.#needScans];
    this.#needKeys.clear();
    this.#needScans.clear();
    const gets = keys.map((key) =>
      Promise.resolve()
        .then(() => host.get(key))
        .then(
          (v) => checkValue(v, key),
          (e) => {
            throw `host.get(${quote(key)}) failed: ${describe(e)}`;
          },
        ),
    );
    const ranges = scans.map(([, [prefix, offset, limit]]) =>
      Promise.resolve()
        .then(() => host.scan(prefix, offset, limit))
        .then(
          (rows) => encodeRows(checkRows(rows, prefix, limit)),
          (e) => {
            throw `host.scan(${quote(prefix)}) failed: ${describe(e)}`;
          },
        ),
    );
    try {
      const [values, texts] = await Promise.all([Promise.all(gets), Promise.all(ranges)]);
      keys.forEach((k, i) => this.#values.set(k, values[i]));
      scans.forEach(([id], i) => this.#scans.set(id, texts[i]));
    } catch (e) {
      this.#fault = typeof e === "string" ? e : describe(e);
    }
  }

  done() {
    this.#values.clear();
    this.#scans.clear();
    this.#needKeys.clear();
    this.#needScans.clear();
    this.#fault = null;
  }
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

const HOST_SHAPE =
  "host must have get(key), scan(prefix, offset, limit) and apply(batch) methods (add " +
  "`async: true` when get and scan return Promises), or be a legacy host with entries() and " +
  "apply(batch)";

/**
 * The legacy whole-store path: a host with only entries() and apply(). Its entries are read once
 * into a MemoryHost, which the engine then reads; writes go to the host, then to the copy. Memory
 * grows with the store: prefer a host with get and scan.
 */
class LegacyHost {
  #inner;
  #copy;
  constructor(inner, entries) {
    this.#inner = inner;
    this.#copy = new MemoryHost(entries);
  }
  get(key) {
    return this.#copy.get(key);
  }
  scan(prefix, offset, limit) {
    return this.#copy.scan(prefix, offset, limit);
  }
  async apply(ops) {
    await this.#inner.apply(ops);
    this.#copy.apply(ops);
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * Create an engine over `host` (see index.d.ts: `Host`). The engine reads the host on demand
 * (keeping a bounded cache) and is from now on the single writer of that storage.
 */
export async function createEngine(host, options = {}) {
  if (!host || (typeof host !== "object" && typeof host !== "function") || typeof host.apply !== "function") {
    throw argError(HOST_SHAPE);
  }
  const reads = typeof host.get === "function" && typeof host.scan === "function";
  if (!reads && (typeof host.get === "function" || typeof host.scan === "function" || typeof host.entries !== "function")) {
    throw argError(HOST_SHAPE);
  }
  if (host.async !== undefined && typeof host.async !== "boolean") {
    throw argError("host.async must be true, false or absent");
  }
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw argError("options must be an object");
  }
  const config = { ...options, seed: seedText(options.seed) };
  await ready();
  if (!reads) {
    try {
      host = new LegacyHost(host, await collectEntries(await host.entries()));
    } catch (e) {
      if (e instanceof WritesyncError) throw e;
      throw new WritesyncError("host_error", `host.entries() failed: ${describe(e)}`, { cause: e });
    }
  }
  const isAsync = reads && host.async === true;
  const state = { inCall: false, freed: false };
  const reader = new Reader(host, isAsync);
  const raw = call(state, () => new RawEngine(JSON.stringify(config), openapiJson, reader, isAsync));
  const engine = new Engine(raw, host, state, isAsync ? reader : null);
  // Check the stored data's layout, marking an unmarked store through the host; a layout-1
  // store is refused (a native host migrates it).
  try {
    await Engine.migrate(engine);
  } catch (e) {
    engine.free();
    throw e;
  }
  return engine;
}

/** Rows one migration step rewrites at most. */
const MIGRATION_STEP = 500;

class Engine {
  #raw;
  #host;
  #state;
  /** The Reader of an asynchronous host; null for a synchronous one. */
  #async;
  #tail = Promise.resolve();

  constructor(raw, host, state, asyncReader) {
    this.#raw = raw;
    this.#host = host;
    this.#state = state;
    this.#async = asyncReader;
  }

  /**
   * Run the layout check to its end (`RawEngine.migrate`): a current or empty store costs one
   * read, one with data but no layout mark is marked. Layout 1 (which this module cannot
   * migrate: the core's feature `layout1` is off), a newer or an unknown layout throws a
   * `layout` error and nothing is written.
   */
  static async migrate(engine) {
    for (;;) {
      const out = decodeFrame(await engine.#step(() => engine.#raw.migrate(MIGRATION_STEP)), false);
      await engine.#commitOrThrow(out.ops, "migrate");
      if (out.head.done) return;
    }
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

  /**
   * Run a step of the raw engine (`fn` answers its frame) until it needs nothing more from an
   * asynchronous host: fetch what a "need" frame names, hand it over, run the step again.
   */
  async #drive(fn) {
    const reader = this.#async;
    try {
      for (;;) {
        const answer = call(this.#state, fn);
        // A run that missed reads was discarded by the engine (its answer means nothing).
        if (!reader.missed()) return answer;
        await reader.fetch();
      }
    } finally {
      reader.done();
    }
  }

  /** The frame of a step: directly for a synchronous host, through #drive for an asynchronous one. */
  #step(fn) {
    return this.#async ? this.#drive(fn) : call(this.#state, fn);
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
      // A synchronous host's step runs at once: the shared buffer is read before anything else
      // can fill it.
      const req = encodeRequest(request, this.#async === null);
      const now = toMillis(nowMillis);
      const out = decodeFrame(
        await this.#step(() => this.#raw.handle(req.method, req.path, req.headers, req.body, now)),
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
      const out = decodeFrame(await this.#step(() => this.#raw.due(now, n)), false);
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
      const out = decodeFrame(await this.#step(() => this.#raw.report(id, o, now)), false);
      await this.#commitOrThrow(out.ops, "report");
    });
  }

  /** Remove expired idempotency records and finished deliveries; answers how many writes. */
  prune(nowMillis, limit) {
    return this.#enqueue(async () => {
      const now = toMillis(nowMillis);
      const n = toLimit(limit, 1000);
      const out = decodeFrame(await this.#step(() => this.#raw.prune(now, n)), false);
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
      const out = decodeFrame(await this.#step(() => this.#raw.recover(now)), false);
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

  /**
   * When `due` will next have work (Unix ms), or null when nothing is owed. A Promise of it when
   * the host is asynchronous.
   */
  nextDeadline() {
    const at = (d) => (d === undefined || d === null ? null : d);
    if (this.#async) return this.#enqueue(async () => at(await this.#drive(() => this.#raw.nextDeadline())));
    return at(call(this.#state, () => this.#raw.nextDeadline()));
  }

  /** The bounded cache of the host's storage: point entries, their bytes, scan results. */
  get cacheStats() {
    const [entries, bytes, scans] = call(this.#state, () => this.#raw.cacheStats());
    return { entries, bytes, scans };
  }

  /** Bytes of the wasm instance's linear memory (shared by the engines of this module instance). */
  get wasmMemoryBytes() {
    return initSync().memory.buffer.byteLength;
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

// A string without UTF-16 units from U+D800 up orders against any string by the built-in string
// comparison exactly as compareUtf8 orders it: the two orders differ only where both strings have
// such a unit at their first difference.
const HIGH_UNITS = /[\ud800-\uffff]/;


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

/** Keys per chunk of MemoryHost's ordered key list; a chunk splits at twice this. */
const CHUNK = 128;

/**
 * A complete in-memory synchronous host, for tests, demos and the legacy path. Values in a Map;
 * keys also in an ordered list of chunks (each at most 2 * CHUNK keys), so that a scan and an
 * insert cost a binary search and a copy within one chunk, not a sort of the whole store.
 * New keys are put in order when the order is next needed (`scan`, `entries`): writes between
 * two scans cost a Map insert each, and their keys are sorted and merged in once.
 */
export class MemoryHost {
  #map = new Map();
  /** Non-empty arrays of keys, in UTF-8 byte order, the chunks themselves in order. */
  #chunks = [];
  /**
   * Keys put since the chunks were last brought up to date, unordered; may hold keys deleted
   * since, and a key twice (put, deleted, put again): `#order` keeps those still in the Map,
   * once.
   */
  #pending = [];
  /** Number of keys in the chunks. */
  #ordered = 0;
  /** Whether a key with UTF-16 units from U+D800 up was ever put (then the built-in string
   * order may differ from UTF-8 order, and `#order` compares with compareUtf8). */
  #high = false;

  /** @param entries optional initial entries, [[key, value], ...] */
  constructor(entries) {
    if (!entries) return;
    for (const e of entries) {
      if (!Array.isArray(e) || typeof e[0] !== "string" || typeof e[1] !== "string") {
        throw argError("MemoryHost entries must be [key, value] pairs of strings");
      }
      this.#map.set(e[0], e[1]);
    }
    const keys = Array.from(this.#map.keys());
    let sorted = true;
    for (let i = 1; i < keys.length && sorted; i++) sorted = compareUtf8(keys[i - 1], keys[i]) < 0;
    if (!sorted) keys.sort(compareUtf8);
    this.#high = keys.some((k) => HIGH_UNITS.test(k));
    this.#rechunk(keys);
  }

  /** Replace the chunks by `keys` (ordered), cut into chunks of CHUNK. */
  #rechunk(keys) {
    this.#chunks = [];
    for (let i = 0; i < keys.length; i += CHUNK) this.#chunks.push(keys.slice(i, i + CHUNK));
    this.#ordered = keys.length;
  }

  /** Bring the chunks up to date with the keys put since: one by one when they are few, by one
   * merge of the whole list when they are many. */
  #order() {
    if (this.#pending.length === 0) return;
    const map = this.#map;
    const high = this.#high;
    const before = high ? (a, b) => compareUtf8(a, b) < 0 : (a, b) => a < b;
    const fresh = this.#pending
      .filter((k) => map.has(k))
      .sort(high ? compareUtf8 : (a, b) => (a < b ? -1 : a > b ? 1 : 0));
    this.#pending = [];
    const keys = [];
    for (let i = 0; i < fresh.length; i++) if (i === 0 || fresh[i] !== fresh[i - 1]) keys.push(fresh[i]);
    if (keys.length * 16 < this.#ordered) {
      for (const k of keys) this.#insert(k);
      return;
    }
    const merged = new Array(this.#ordered + keys.length);
    let n = 0;
    let j = 0;
    for (const c of this.#chunks) {
      for (const k of c) {
        while (j < keys.length && before(keys[j], k)) merged[n++] = keys[j++];
        merged[n++] = k;
      }
    }
    while (j < keys.length) merged[n++] = keys[j++];
    this.#rechunk(merged);
  }

  /** The position of the first key not below `probe`: [chunk index, index in the chunk]. */
  #lowerBound(probe) {
    // The built-in comparison unless the probe has units where it disagrees with UTF-8 order.
    const high = HIGH_UNITS.test(probe);
    const chunks = this.#chunks;
    let lo = 0;
    let hi = chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = chunks[mid];
      const k = c[c.length - 1];
      if (high ? compareUtf8(k, probe) < 0 : k < probe) lo = mid + 1;
      else hi = mid;
    }
    if (lo === chunks.length) return [lo, 0];
    const c = chunks[lo];
    let a = 0;
    let b = c.length;
    while (a < b) {
      const mid = (a + b) >>> 1;
      const k = c[mid];
      if (high ? compareUtf8(k, probe) < 0 : k < probe) a = mid + 1;
      else b = mid;
    }
    return [lo, a];
  }

  #insert(key) {
    const chunks = this.#chunks;
    if (chunks.length === 0) {
      chunks.push([key]);
      this.#ordered += 1;
      return;
    }
    let [ci, i] = this.#lowerBound(key);
    if (ci === chunks.length) {
      ci -= 1;
      i = chunks[ci].length;
    }
    const c = chunks[ci];
    c.splice(i, 0, key);
    this.#ordered += 1;
    if (c.length >= 2 * CHUNK) chunks.splice(ci, 1, c.slice(0, CHUNK), c.slice(CHUNK));
  }

  /** Take `key` out of the chunks if it is there (a key put since the last `#order` is not). */
  #remove(key) {
    const [ci, i] = this.#lowerBound(key);
    const c = this.#chunks[ci];
    if (c === undefined || c[i] !== key) return;
    c.splice(i, 1);
    this.#ordered -= 1;
    if (c.length === 0) this.#chunks.splice(ci, 1);
  }

  /** Every entry, ordered bytewise (UTF-8) by key. */
  entries() {
    this.#order();
    const out = [];
    for (const c of this.#chunks) for (const k of c) out.push([k, this.#map.get(k)]);
    return out;
  }

  /** Apply a batch atomically: the whole batch is checked before anything changes. */
  apply(batch) {
    checkOps(batch);
    const map = this.#map;
    for (const op of batch) {
      if (op.op === "put") {
        // One lookup: the size tells whether the key is new.
        const size = map.size;
        map.set(op.key, op.value);
        if (map.size !== size) {
          this.#pending.push(op.key);
          if (!this.#high && HIGH_UNITS.test(op.key)) this.#high = true;
        }
      } else if (map.delete(op.key)) {
        this.#remove(op.key);
      }
    }
  }

  /** The value under `key`, or undefined. */
  get(key) {
    return this.#map.get(key);
  }

  /**
   * Entries whose key starts with `prefix`, ordered bytewise (UTF-8) by key, skipping the first
   * `offset` of them, at most `limit`.
   */
  scan(prefix = "", offset = 0, limit = Infinity) {
    if (typeof prefix !== "string") throw argError("scan: prefix must be a string");
    if (!(Number.isSafeInteger(offset) && offset >= 0)) throw argError("scan: offset must be a non-negative integer");
    if (!((Number.isSafeInteger(limit) || limit === Infinity) && limit >= 0)) {
      throw argError("scan: limit must be a non-negative integer");
    }
    const out = [];
    if (limit === 0) return out;
    this.#order();
    const chunks = this.#chunks;
    let [ci, i] = this.#lowerBound(prefix);
    // Keys with the prefix are contiguous: skip whole chunks while the offset allows.
    while (offset > 0 && ci < chunks.length) {
      const c = chunks[ci];
      const left = c.length - i;
      if (offset >= left && c[c.length - 1].startsWith(prefix)) {
        offset -= left;
        ci += 1;
        i = 0;
        continue;
      }
      break;
    }
    for (; ci < chunks.length; ci++, i = 0) {
      const c = chunks[ci];
      for (; i < c.length; i++) {
        const k = c[i];
        if (!k.startsWith(prefix)) return out;
        if (offset > 0) {
          offset -= 1;
          continue;
        }
        out.push([k, this.#map.get(k)]);
        if (out.length >= limit) return out;
      }
    }
    return out;
  }

  /** Number of entries. */
  get size() {
    return this.#map.size;
  }
}
