-- writesync-sqlite schema version 2: the schema of a fresh database of that version.
--
-- kv: the engine's ordered key-value rows, verbatim. STRICT makes SQLite refuse anything but
--     TEXT in either column: a BLOB or INTEGER key would sort outside the TEXT range and
--     escape the bounded prefix scans. BINARY collation = bytewise UTF-8 order.
-- store_meta: what this file is, for people and tools looking at it with `sqlite3`:
--     format          always 'writesync-kv' (the engine's key layout stays opaque)
--     created_schema  the schema version the file was created with (history, not checked)
-- application_id 0x57535943 ('WSYC') marks the file as a writesync store, so that opening
-- another program's SQLite file is refused instead of being written to.
CREATE TABLE kv (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE store_meta (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;

INSERT INTO store_meta (name, value) VALUES ('format', 'writesync-kv'), ('created_schema', '2');

PRAGMA application_id = 1465080131;
