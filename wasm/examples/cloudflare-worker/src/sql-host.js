// SqlStorageHost: the engine's storage host over a Durable Object's SQLite storage
// (`ctx.storage.sql`). A synchronous host: the engine reads the entries it needs when it needs
// them (point reads and ordered prefix ranges); nothing is loaded at start.
//
// One table, `kv (key TEXT PRIMARY KEY, value TEXT)`. SQLite compares TEXT with the BINARY
// collation, memcmp of the UTF-8 bytes: the engine's key order. A rowid table (the key in its
// own unique index): the engine's values are often 1-2 KB, above what a WITHOUT ROWID table
// keeps in its B-tree page (about 1 KB with 4 KB pages), and each overflow took a page of its own;
// with 3,000 pushed invoices (17.8 MB of keys and values) the file was 54.6 MB WITHOUT ROWID and
// 23.2 MB as a rowid table (bench/coldstart.mjs). A table created WITHOUT ROWID by an earlier
// version of this example keeps working: the statements are the same. A prefix is the range
// [prefix, successor(prefix)), where the successor replaces the prefix's last code point by the
// next one (UTF-8 byte order is code point order), so the primary key's index serves it.

/** The smallest string above every string that starts with `prefix`, or null when none exists. */
export function prefixEnd(prefix) {
  const points = Array.from(prefix, (c) => c.codePointAt(0));
  while (points.length > 0) {
    const last = points.pop();
    if (last < 0x10ffff) {
      // The next code point; surrogates are not code points of UTF-8 text.
      points.push(last === 0xd7ff ? 0xe000 : last + 1);
      return String.fromCodePoint(...points);
    }
    // U+10FFFF, the largest: every string with the shorter prefix that is above it.
  }
  return null;
}

export class SqlStorageHost {
  constructor(storage) {
    this.storage = storage;
    this.sql = storage.sql;
    this.sql.exec("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
  }

  /** The value under `key`, or undefined. */
  get(key) {
    const rows = this.sql.exec("SELECT value FROM kv WHERE key = ?", key).raw().toArray();
    return rows.length === 0 ? undefined : rows[0][0];
  }

  /** Entries whose key starts with `prefix`, bytewise ordered, `offset` skipped, at most `limit`. */
  scan(prefix, offset, limit) {
    const end = prefixEnd(prefix);
    const cursor =
      end === null
        ? this.sql.exec("SELECT key, value FROM kv WHERE key >= ? ORDER BY key LIMIT ? OFFSET ?", prefix, limit, offset)
        : this.sql.exec(
            "SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT ? OFFSET ?",
            prefix,
            end,
            limit,
            offset,
          );
    return cursor.raw().toArray();
  }

  /** Apply a batch atomically: transactionSync rolls the whole batch back if any statement throws. */
  apply(batch) {
    this.storage.transactionSync(() => {
      for (const op of batch) {
        if (op.op === "put") {
          this.sql.exec(
            "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            op.key,
            op.value,
          );
        } else if (op.op === "delete") {
          this.sql.exec("DELETE FROM kv WHERE key = ?", op.key);
        } else {
          throw new TypeError(`not a batch operation: ${JSON.stringify(op)}`);
        }
      }
    });
  }
}
