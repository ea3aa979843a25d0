// IndexedDbHost: an asynchronous storage host on IndexedDB, for browsers (exported by js/browser.js).
//
// - One database per storage, one object store ("kv") in it. Each entry is stored under its key's
//   UTF-8 bytes (a binary key, an ArrayBuffer); the value is the entry's text, stored verbatim.
//   IndexedDB compares binary keys bytewise, so its order is the engine's (UTF-8 bytes); string
//   keys would compare by UTF-16 code units, which puts U+10000.. (surrogate pairs) before
//   U+E000..U+FFFF.
// - `scan(prefix, offset, limit)` reads the range [prefix, prefix + 0xFF): 0xFF never occurs in
//   UTF-8, so every key that starts with the prefix is below that bound and every key in the
//   range starts with the prefix. The first `offset` entries are skipped with `cursor.advance`.
// - `apply(ops)` runs in one readwrite transaction: the operations are checked before it starts,
//   any failure aborts it (IndexedDB then undoes every operation of it), and the Promise resolves
//   on the transaction's `complete`. The transaction asks for `durability: "strict"` by default,
//   so `complete` means flushed to disk (option `durability`).
// - Errors are `Error`s whose message names the database, the operation and IndexedDB's own
//   error (`cause` keeps the original).

const STORE = "kv";
const VERSION = 1;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
/** Largest `count` IndexedDB's getAll accepts (an unsigned long). */
const MAX_COUNT = 0xffffffff;

function describe(e) {
  if (e && typeof e === "object" && "name" in e && "message" in e) return `${e.name}: ${e.message}`;
  return String(e);
}

/** True when `s` holds no lone surrogate (TextEncoder would replace one with U+FFFD). */
function wellFormed(s) {
  if (typeof s.isWellFormed === "function") return s.isWellFormed();
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

/** Wait for an IDBRequest: its result, or its error. */
function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

export class IndexedDbHost {
  /** Marks an asynchronous host: `get` and `scan` answer Promises. */
  async = true;
  #db;
  #name;
  #durability;
  #closed = false;
  /** Gets waiting for this turn's shared transaction, or null. */
  #gets = null;

  /** Use `IndexedDbHost.open(name)`. */
  constructor(db, name, durability) {
    if (!db || typeof db.transaction !== "function") {
      throw new TypeError("use `await IndexedDbHost.open(name)` to create an IndexedDbHost");
    }
    this.#db = db;
    this.#name = name;
    this.#durability = durability;
    // Another tab upgrading or deleting the database: let it, this host is closed.
    db.onversionchange = () => this.close();
  }

  /**
   * Open (or create) the database `name`.
   * @param {string} name
   * @param {{durability?: "strict" | "relaxed" | "default", indexedDB?: IDBFactory}} [options]
   */
  static async open(name, options = {}) {
    if (typeof name !== "string" || name === "") {
      throw new TypeError("IndexedDbHost.open(name): name must be a non-empty string");
    }
    const durability = options.durability ?? "strict";
    if (!["strict", "relaxed", "default"].includes(durability)) {
      throw new TypeError(`IndexedDbHost.open: durability must be "strict", "relaxed" or "default"`);
    }
    const factory = options.indexedDB ?? globalThis.indexedDB;
    if (!factory) throw new Error(`IndexedDbHost.open("${name}"): IndexedDB is not available here`);
    let db;
    try {
      db = await new Promise((resolve, reject) => {
        const req = factory.open(name, VERSION);
        req.onupgradeneeded = () => {
          if (!req.result.objectStoreNames.contains(STORE)) req.result.createObjectStore(STORE);
        };
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
        // `blocked`: a connection to an older version is still open; the request goes on once it
        // closes (IndexedDbHost connections close on `versionchange`).
      });
    } catch (e) {
      throw new Error(`IndexedDbHost.open("${name}") failed: ${describe(e)}`, { cause: e });
    }
    if (!db.objectStoreNames.contains(STORE)) {
      db.close();
      throw new Error(`IndexedDbHost.open("${name}"): the database has no object store "${STORE}"`);
    }
    return new IndexedDbHost(db, name, durability);
  }

  /** The database's name. */
  get name() {
    return this.#name;
  }

  #fail(what, e) {
    return new Error(`IndexedDbHost("${this.#name}"): ${what} failed: ${describe(e)}`, { cause: e });
  }

  #transaction(mode, what) {
    if (this.#closed) throw new Error(`IndexedDbHost("${this.#name}"): ${what} after close()`);
    try {
      return mode === "readwrite"
        ? this.#db.transaction(STORE, mode, { durability: this.#durability })
        : this.#db.transaction(STORE, mode);
    } catch (e) {
      throw this.#fail(what, e);
    }
  }

  #keyBytes(key, what) {
    if (typeof key !== "string") throw new TypeError(`IndexedDbHost: ${what}: the key must be a string`);
    if (!wellFormed(key)) {
      throw new TypeError(`IndexedDbHost: ${what}: the key ${JSON.stringify(key)} holds a lone surrogate`);
    }
    return encoder.encode(key);
  }

  /**
   * The value under `key`, or undefined. Reads asked for in the same turn of the event loop (the
   * engine asks for all it needs at once) share one readonly transaction.
   */
  get(key) {
    let bytes;
    try {
      bytes = this.#keyBytes(key, "get");
      if (this.#closed) throw new Error(`IndexedDbHost("${this.#name}"): get after close()`);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => {
      if (this.#gets === null) {
        this.#gets = [];
        queueMicrotask(() => this.#readGets());
      }
      this.#gets.push({ key, bytes, resolve, reject });
    });
  }

  /** Read the gets queued in this turn in one transaction. */
  #readGets() {
    const gets = this.#gets;
    this.#gets = null;
    let store;
    try {
      store = this.#transaction("readonly", "get").objectStore(STORE);
    } catch (e) {
      for (const g of gets) g.reject(e);
      return;
    }
    for (const g of gets) {
      const what = `get(${JSON.stringify(g.key)})`;
      let req;
      try {
        req = store.get(g.bytes);
      } catch (e) {
        g.reject(this.#fail(what, e));
        continue;
      }
      req.onsuccess = () => {
        const value = req.result;
        if (value === undefined || typeof value === "string") g.resolve(value);
        else g.reject(new Error(`IndexedDbHost("${this.#name}"): ${what}: the stored value is not a string`));
      };
      req.onerror = (event) => {
        // Fail this read only; the other reads of the transaction go on.
        event.preventDefault();
        g.reject(this.#fail(what, req.error));
      };
    }
  }

  /**
   * Entries whose key starts with `prefix`, ordered bytewise by the keys' UTF-8, skipping the
   * first `offset` of them, at most `limit`: `[[key, value], ...]`.
   */
  async scan(prefix = "", offset = 0, limit = Number.MAX_SAFE_INTEGER) {
    const lower = this.#keyBytes(prefix, "scan");
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(limit) || limit < 0) {
      throw new TypeError("IndexedDbHost: scan: offset and limit must be non-negative integers");
    }
    if (limit === 0) return [];
    const what = `scan(${JSON.stringify(prefix)}, ${offset}, ${limit})`;
    const upper = new Uint8Array(lower.length + 1);
    upper.set(lower);
    upper[lower.length] = 0xff;
    const tx = this.#transaction("readonly", what);
    const store = tx.objectStore(STORE);
    try {
      let range = IDBKeyRange.bound(lower, upper, false, true);
      if (offset > 0) {
        // Skip `offset` entries with a key cursor, then read the rest from the key it stopped at.
        const first = await new Promise((resolve, reject) => {
          const req = store.openKeyCursor(range);
          let advanced = false;
          req.onsuccess = () => {
            const cursor = req.result;
            if (!cursor) return resolve(null);
            if (advanced) return resolve(cursor.primaryKey);
            advanced = true;
            cursor.advance(offset);
          };
          req.onerror = () => reject(req.error);
        });
        if (first === null) return [];
        range = IDBKeyRange.bound(first, upper, false, true);
      }
      // Both requests run in one readonly transaction, so they see the same entries, in key order.
      const count = limit > MAX_COUNT ? undefined : limit;
      const [keys, values] = await Promise.all([
        request(store.getAllKeys(range, count)),
        request(store.getAll(range, count)),
      ]);
      const out = new Array(keys.length);
      for (let i = 0; i < keys.length; i++) {
        const value = values[i];
        if (typeof value !== "string") throw new Error("a stored value is not a string");
        out[i] = [decoder.decode(keys[i]), value];
      }
      return out;
    } catch (e) {
      throw this.#fail(what, e);
    }
  }

  /**
   * Apply `ops` atomically in one readwrite transaction: all of them or none. Resolves when the
   * transaction completed.
   * @param {Array<{op: "put", key: string, value: string} | {op: "delete", key: string}>} ops
   */
  apply(ops) {
    // Check everything before the transaction starts: a bad operation changes nothing.
    if (!Array.isArray(ops)) return Promise.reject(new TypeError("IndexedDbHost: apply: ops must be an array"));
    const planned = new Array(ops.length);
    try {
      for (let i = 0; i < ops.length; i++) {
        const op = ops[i];
        const put = op?.op === "put";
        if (!op || (!put && op.op !== "delete") || (put && typeof op.value !== "string")) {
          throw new TypeError(`IndexedDbHost: apply: not an operation: ${JSON.stringify(op)}`);
        }
        planned[i] = { put, key: this.#keyBytes(op.key, "apply"), value: op.value };
      }
    } catch (e) {
      return Promise.reject(e);
    }
    if (planned.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      let tx;
      try {
        tx = this.#transaction("readwrite", "apply");
      } catch (e) {
        reject(e);
        return;
      }
      let failure = null;
      tx.oncomplete = () => resolve();
      tx.onabort = () => reject(this.#fail("apply", failure ?? tx.error ?? new Error("the transaction was aborted")));
      tx.onerror = (event) => {
        // A request failed; the transaction aborts (its default), remember why.
        failure ??= event.target?.error ?? tx.error;
      };
      try {
        const store = tx.objectStore(STORE);
        for (const op of planned) {
          if (op.put) store.put(op.value, op.key);
          else store.delete(op.key);
        }
      } catch (e) {
        failure = e;
        try {
          tx.abort();
        } catch {
          // Already finished or aborting: onabort reports the failure.
        }
      }
    });
  }

  /** Close the database connection. Later calls fail; closing twice does nothing. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }
}
