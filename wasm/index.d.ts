// Types of the writesync-wasm package: the writesync engine compiled to WebAssembly.
//
// Storage and the network belong to the JS host. The engine plans every answer; the host applies
// the writes the engine asks for (one atomic batch per step) and performs the pushes and webhook
// deliveries that `due()` lists, reporting each outcome with `report()`.

/** Unix time in milliseconds (an integer), or a Date. */
export type Millis = number | Date;

/**
 * Options of `createEngine`: the engine configuration in its JSON form (the core's `ConfigJson`).
 * Unknown fields are an `invalid_input` error.
 */
export interface EngineOptions {
  /** The admin token in clear (only its SHA-256 is kept). Give it or `adminTokenSha256`. */
  adminToken?: string;
  /** The SHA-256 (hex) of the admin token. */
  adminTokenSha256?: string;
  /**
   * Seed of the engine's generator of ids, secrets and jitter: 64 hex digits, or any other text
   * (hashed), or exactly 32 bytes (the same as their 64 hex digits; other lengths are
   * `invalid_argument`). Absent: 32 bytes from `crypto.getRandomValues`. Give a fixed seed only
   * in tests.
   */
  seed?: string | Uint8Array;
  /** Delays between push retries, in seconds (fractions allowed); one retry per entry. */
  pushRetrySchedule?: number[];
  /** Delays between webhook retries, in seconds; 3 retries, the last delay repeating. */
  webhookRetrySchedule?: number[];
  /** How long a handed-out work item is leased before it is due again (default 120000). */
  leaseMs?: number;
  /** Request bodies larger than this are `413` (default 1048576). */
  maxBodyBytes?: number;
  /** Largest bank-transaction preload (default 1000). */
  maxBatch?: number;
  /** How long idempotency records are kept (default 24 h). */
  idempotencyRetentionMs?: number;
  /** How long finished deliveries are kept (default 7 days). */
  deliveryRetentionMs?: number;
  /** Retention of finished syncs (with their tasks and deliveries), ms; default 30 days. */
  syncRetentionMs?: number;
  /** Restricted address ranges (loopback, private, ...) that push and webhook URLs may name. */
  allowTargetCidrs?: string[];
}

/** One write of a batch. Keys are UTF-8 strings ordered bytewise; values are JSON text. */
export type Op =
  | { op: "put"; key: string; value: string }
  | { op: "delete"; key: string };

/** A batch: operations to apply in order, all or none. */
export type Batch = Op[];

/** `[key, value]` or `{key, value}`. */
export type Entry = readonly [string, string] | { key: string; value: string };

/** A stored entry as `scan` answers it. */
export type Row = [string, string];

/**
 * The storage interface of a host whose reads answer at once (a `Map`, a Durable Object's
 * `ctx.storage.sql`, SQLite). The engine reads it on demand, from inside a step: one call per read
 * its bounded cache cannot answer (see README "Hosts").
 *
 * Contract:
 * - `get(key)`: the value stored under `key`, or `undefined` (`null` is taken as `undefined`).
 * - `scan(prefix, offset, limit)`: the entries whose key starts with `prefix`, ordered bytewise by
 *   the UTF-8 bytes of the key, skipping the first `offset` of them, at most `limit` (a
 *   non-negative integer up to 4294967295, which stands for "all").
 * - `apply(batch)` stores the batch atomically: every operation or none. Resolve only once the
 *   batch is durable; throw (or reject) if it was not applied. The engine updates its cache, and
 *   acts on the step, only after `apply` resolved.
 * - A read that throws, or answers something else than the shapes above, fails the step: `handle`
 *   answers the `503` storage problem, the other calls throw `host_error`; nothing is committed.
 * - Single writer: while an engine lives, nothing else may change the storage. Create one engine
 *   per storage (a Durable Object holds exactly one).
 */
export interface SyncHost {
  readonly async?: false;
  get(key: string): string | undefined | null;
  scan(prefix: string, offset: number, limit: number): Row[];
  apply(batch: Batch): void | Promise<void>;
}

/**
 * The storage interface of a host whose reads are asynchronous (IndexedDB, a remote store): the
 * same methods as `SyncHost`, answering Promises, and `async: true`. A step that lacks reads ends
 * by naming them; the engine fetches them all at once and runs the step again (README "Hosts").
 */
export interface AsyncHost {
  readonly async: true;
  get(key: string): Promise<string | undefined | null>;
  scan(prefix: string, offset: number, limit: number): Promise<Row[]>;
  apply(batch: Batch): void | Promise<void>;
}

/**
 * The legacy whole-store host: `entries()` answers every stored entry (any order). `createEngine`
 * reads it once into an in-memory copy that the engine then reads, so memory grows with the store
 * (the path of versions before reads on demand). Prefer `SyncHost` or `AsyncHost`.
 */
export interface LegacyHost {
  entries(): Iterable<Entry> | AsyncIterable<Entry> | Promise<Iterable<Entry> | AsyncIterable<Entry>>;
  apply(batch: Batch): void | Promise<void>;
}

/** Any host `createEngine` takes. */
export type Host = SyncHost | AsyncHost | LegacyHost;

/** A request to the HTTP API. */
export interface ApiRequest {
  /** `GET`, `POST`, `PUT`, `PATCH`, `DELETE`. */
  method: string;
  /** Path with optional query string, e.g. `/api/customers?page=2`. */
  path: string;
  /** Header fields (names matched case-insensitively). A `Headers` or `Map` works too. */
  headers?: Record<string, string> | Headers | Map<string, string> | Array<[string, string]>;
  /** The body: text, UTF-8 bytes, or any other JSON value (sent as its JSON text). */
  body?: string | Uint8Array | ArrayBuffer | unknown;
}

/** An answer of the HTTP API, exactly as the HTTP contract says. */
export interface ApiResponse {
  status: number;
  /** Header fields, spelled as the contract spells them (`X-Request-ID`, ...). */
  headers: Record<string, string>;
  /** The body text (JSON or problem+json); `""` when there is none (`204`). */
  body: string;
}

/** An HTTP request the host must perform. */
export interface OutboundRequest {
  /** `POST`, or a provider API's `PUT`, `PATCH` or `DELETE`. */
  method: string;
  url: string;
  headers: Record<string, string>;
  /** JSON text; empty for a provider's `DELETE`, which is sent without a body. */
  body: string;
}

/**
 * A push or webhook delivery to perform now, then report.
 *
 * Kind `token`: the engine asks the host for an access token of a provider connection (a
 * connection with a `connector` such as `quickbooks`); nothing is sent over the network.
 * `request` is `{method: "TOKEN", url: "writesync:token", headers: {}, body}` with the body
 * `{"connectionId", "accountId", "app", "reason"}` (`reason`: `missing`, `expired` or
 * `unauthorized`). Report `{status: 200, body: '{"accessToken": "...", "expiresAt": <ms>?}'}`,
 * or any other status or an `{error}` when the host has no token. Generic (`pushUrl`)
 * connections never need one.
 */
export interface WorkItem {
  /** Report the outcome with this id (`t.<task>.<attempt>`, `d.<delivery>.<attempt>`, ...). */
  id: string;
  kind: "push" | "webhook" | "token";
  request: OutboundRequest;
}

/**
 * What happened to a work item: the peer's answer (the start of its body is enough), or an error
 * when there was none (timeout, connection error). `permanent: true` fails a push at once (a
 * refused address); otherwise errors are retried.
 */
export type Outcome =
  | { status: number; headers?: Record<string, string> | Headers; body?: string }
  | { error: string; permanent?: boolean };

/**
 * Error codes:
 * - `invalid_argument`: a JS argument of the wrong shape or type (checked by the wrapper);
 * - `invalid_input`, `wrong_state`, `unknown_work`, `storage`, `corrupt_row`: errors of the core
 *   (`CoreError::code()`), e.g. a bad option, an unknown or stale work item id;
 * - `host_error`: the host's `entries()` or `apply()` failed (for `due`, `report` and `prune`;
 *   `handle` answers a `503` problem instead);
 * - `wasm_init`: the .wasm module could not be loaded;
 * - `engine_panic`: the engine trapped (a bug); `engine_poisoned`: every later call of every
 *   engine of this module instance. See `createEngine`.
 */
export type ErrorCode =
  | "invalid_argument"
  | "invalid_input"
  | "wrong_state"
  | "unknown_work"
  | "storage"
  | "corrupt_row"
  | "host_error"
  | "wasm_init"
  | "engine_panic"
  | "engine_poisoned";

/** Every error the package throws. HTTP-level problems are answers, not errors. */
export class WritesyncError extends Error {
  readonly code: ErrorCode | string;
  readonly cause?: unknown;
}

/** What every engine does. Calls are serialized: each runs after the previous ended. */
export interface EngineBase {
  /**
   * Answer one API request. When the request writes, the answer is returned only after
   * `host.apply` resolved; if it failed, the answer is a `503` problem and nothing changed.
   */
  handle(request: ApiRequest, nowMillis: Millis): Promise<ApiResponse>;
  /**
   * Claim the pushes and webhook deliveries to perform now (at most `limit`, default 100). Their
   * leases are stored before this resolves. Perform each, then `report` it; an item not reported
   * within `leaseMs` is handed out again.
   */
  due(nowMillis: Millis, limit?: number): Promise<WorkItem[]>;
  /** Report the outcome of a work item. */
  report(id: string, outcome: Outcome, nowMillis: Millis): Promise<void>;
  /**
   * Make every work item that was handed out but not reported due again now (their leases are
   * dropped). Call once after start when this engine is the only worker on its storage, e.g. in a
   * Durable Object's constructor; otherwise such items come back when their lease runs out.
   * Answers the number of writes.
   */
  recover(nowMillis: Millis): Promise<number>;
  /** Remove expired idempotency records and finished deliveries; answers the number of writes. */
  prune(nowMillis: Millis, limit?: number): Promise<number>;
  /**
   * The engine's bounded cache of the host's storage: point entries (at most 8192), bytes of
   * their keys and values plus those of the cached scans (at most 4 MiB + 1 MiB), scan results
   * (at most 64).
   */
  readonly cacheStats: { entries: number; bytes: number; scans: number };
  /** Bytes of the wasm instance's linear memory (`memory.buffer.byteLength`), shared by every
   * engine of this module instance. */
  readonly wasmMemoryBytes: number;
  /** Release the engine's memory; later calls throw `wrong_state`. */
  free(): void;
}

/** An engine over a synchronous (or legacy) host. */
export interface Engine extends EngineBase {
  /** When `due` will next have work, in Unix milliseconds; null when nothing is owed. */
  nextDeadline(): number | null;
}

/** An engine over an asynchronous host: `nextDeadline` has to read it, so it answers a Promise. */
export interface AsyncEngine extends EngineBase {
  /** When `due` will next have work, in Unix milliseconds; null when nothing is owed. */
  nextDeadline(): Promise<number | null>;
}

/**
 * Create an engine over `host`. Loads the wasm module on first use and answers the engine, which
 * reads the host on demand (a legacy host is read once into a copy). A host of none of the three
 * shapes, `async` other than a boolean, or a bad `options.seed` is `invalid_argument`.
 *
 * A trap inside the engine (a bug: the core is written not to panic on any input, and wasm32
 * cannot unwind) throws `engine_panic` and poisons this module instance: every later call of every
 * engine created from it throws `engine_poisoned`. No write of the failed step reached the host,
 * so a new engine in a fresh module instance (a new worker or isolate) continues from the host's
 * storage.
 */
export function createEngine(host: AsyncHost, options?: EngineOptions): Promise<AsyncEngine>;
export function createEngine(host: SyncHost | LegacyHost, options?: EngineOptions): Promise<Engine>;

/**
 * Load the wasm module from `source` (a `WebAssembly.Module`, the .wasm bytes, or a URL, Response
 * or Promise of one) instead of the entry point's default. Call before `createEngine`.
 */
export function initWasm(source: WebAssembly.Module | BufferSource | URL | string | Response | Promise<Response>): Promise<void>;

/**
 * A complete in-memory synchronous host for tests and demos: a `Map` of values and an ordered
 * list of key chunks, so that a scan or an insert costs a binary search and a copy within one
 * chunk, not a sort of the store.
 */
export class MemoryHost implements SyncHost {
  constructor(entries?: Iterable<readonly [string, string]>);
  /** Every entry, ordered bytewise (UTF-8) by key. */
  entries(): Array<[string, string]>;
  /** Apply a batch atomically (the whole batch is checked before anything changes). */
  apply(batch: Batch): void;
  get(key: string): string | undefined;
  /**
   * Entries whose key starts with `prefix`, ordered bytewise (UTF-8) by key, skipping `offset`
   * (default 0), at most `limit` (default all).
   */
  scan(prefix?: string, offset?: number, limit?: number): Row[];
  readonly size: number;
}

/** Compare two strings in the order of their UTF-8 bytes (code point order). */
export function compareUtf8(a: string, b: string): number;

/** Trap the wasm instance on purpose; only for tests of the poisoning. */
export function __trapForTests(): void;

// ---------------------------------------------------------------------------------------------
// IndexedDbHost (js/idb.js). Exported by the browser entry (`js/browser.js`, the default export
// condition) only: Node and workerd have no IndexedDB.

/** Options of `IndexedDbHost.open`. */
export interface IndexedDbHostOptions {
  /**
   * The durability hint of `apply`'s readwrite transactions. Default `"strict"`: the transaction
   * completes once its writes are flushed to disk, so `apply` resolves only when they are durable.
   */
  durability?: "strict" | "relaxed" | "default";
  /** The IndexedDB factory to use; default `globalThis.indexedDB`. */
  indexedDB?: IDBFactory;
}

/**
 * An asynchronous host on IndexedDB: one database, one object store (`kv`); each entry is stored
 * under its key's UTF-8 bytes (a binary key), so IndexedDB orders keys as the engine does.
 * Errors are `Error`s whose message names the database, the operation and IndexedDB's error.
 */
export declare class IndexedDbHost implements AsyncHost {
  /** Open (or create) the database `name`. */
  static open(name: string, options?: IndexedDbHostOptions): Promise<IndexedDbHost>;
  /** Marks an asynchronous host: `get` and `scan` answer Promises. */
  readonly async: true;
  /** The database's name. */
  readonly name: string;
  /** The value under `key`, or undefined. */
  get(key: string): Promise<string | undefined>;
  /**
   * Entries whose key starts with `prefix`, ordered bytewise by the keys' UTF-8, skipping the
   * first `offset`, at most `limit`.
   */
  scan(prefix: string, offset: number, limit: number): Promise<Array<[string, string]>>;
  /** Apply the batch in one readwrite transaction: all of it or none; resolves on `complete`. */
  apply(batch: Batch): Promise<void>;
  /** Close the connection; later calls reject. */
  close(): void;
}
