-- Migration from schema version 2 to version 3. Runs inside one transaction, together with
-- `PRAGMA user_version = 3`; any failure rolls all of it back and leaves a version 2 file.
--
-- kv becomes a rowid table (see v3.sql for why). SQLite cannot drop WITHOUT ROWID from a
-- table, so the table is rebuilt as in v1_to_v2.sql: rename the old table away, create the new
-- one under the final name (its stored CREATE text is exactly the one of v3.sql), copy in key
-- order, drop the old one. Nothing else refers to kv.
ALTER TABLE kv RENAME TO kv_v2;

CREATE TABLE kv (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

INSERT INTO kv (key, value) SELECT key, value FROM kv_v2 ORDER BY key;

DROP TABLE kv_v2;
