-- Migration from schema version 1 to version 2. Runs inside one transaction, together with
-- `PRAGMA user_version = 2`; any failure rolls all of it back and leaves a version 1 file.
--
-- kv becomes STRICT. SQLite cannot alter a table's options, so the table is rebuilt with the
-- documented procedure: rename the old table away, create the new one under the final name
-- (so its stored CREATE text is exactly the one of v2.sql), copy, drop the old one. No
-- foreign key, index, trigger or view refers to kv, so nothing else needs rebuilding; the
-- runner runs `PRAGMA foreign_key_check` before committing all the same.
ALTER TABLE kv RENAME TO kv_v1;

CREATE TABLE kv (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;

-- A version 1 table accepted any type; the store only ever wrote TEXT, the casts cover rows
-- written by other tools (a key that collides after the cast fails the migration, visibly).
INSERT INTO kv (key, value) SELECT CAST(key AS TEXT), CAST(value AS TEXT) FROM kv_v1;

DROP TABLE kv_v1;

CREATE TABLE store_meta (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;

INSERT INTO store_meta (name, value) VALUES ('format', 'writesync-kv'), ('created_schema', '1');

PRAGMA application_id = 1465080131;
