-- writesync-sqlite schema version 3 (current): the schema of a fresh database.
--
-- kv is a rowid table: its rows live in insertion order in the table's B-tree and the key's
-- unique index is a separate, small B-tree. WITHOUT ROWID (versions 1 and 2) kept whole rows in
-- key order, where a row larger than about 1 KB (an invoice, a sync) spilled into an overflow
-- page of its own; a write's rows now share the last table page, and each touched key range
-- costs one page of the small index.
CREATE TABLE kv (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE store_meta (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;

INSERT INTO store_meta (name, value) VALUES ('format', 'writesync-kv'), ('created_schema', '3');

PRAGMA application_id = 1465080131;
