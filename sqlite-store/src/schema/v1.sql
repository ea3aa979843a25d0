-- writesync-sqlite schema version 1: the first cut of the store (commit e1abd20).
--
-- One ordered key-value table. Keys and values are stored verbatim: the key layout belongs
-- to the engine (writesync_core::records) and the store never interprets it. TEXT keys use the
-- BINARY collation, i.e. bytewise UTF-8 order, which is the order the engine expects.
--
-- Files of this version were created with `CREATE TABLE IF NOT EXISTS` and never stamped
-- PRAGMA user_version, so they read user_version 0. The migration runner recognises a file
-- whose user_version is 0 and whose only table is this `kv` as version 1.
CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
