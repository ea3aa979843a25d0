//! Schema versions: every old schema, migrated, equals a fresh database; bad files are refused.
// Helpers outside #[test] functions unwrap too (clippy.toml covers only the test functions):
// a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::path::Path;

use common::TempDb;
use rusqlite::Connection;
use writesync_core::{Batch, KvRead, Storage};
use writesync_sqlite::schema::{self, APPLICATION_ID, CURRENT_VERSION, VERSIONS};
use writesync_sqlite::{SqliteStore, StoreError};

/// `CREATE` text with whitespace runs collapsed and no blanks inside parentheses or before
/// commas, so that formatting alone never makes two schemas differ.
fn normalize(sql: &str) -> String {
    let mut s = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    for (from, to) in [("( ", "("), (" )", ")"), (" ,", ","), (" (", "(")] {
        s = s.replace(from, to);
    }
    s
}

/// (table, cid, name, type, notnull, default, pk) of one column.
type Column = (String, i64, String, String, i64, Option<String>, i64);

#[derive(Debug, PartialEq, Eq)]
struct Schema {
    user_version: i64,
    application_id: i64,
    /// (type, name, tbl_name, normalized sql) of every schema object.
    objects: Vec<(String, String, String, Option<String>)>,
    /// (name, type, ncol, without rowid, strict) of every table.
    tables: Vec<(String, String, i64, i64, i64)>,
    /// (table, cid, name, type, notnull, default, pk) of every column.
    columns: Vec<Column>,
}

fn schema_of(path: &Path) -> Schema {
    let c = Connection::open(path).unwrap();
    let user_version = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    let application_id = c
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .unwrap();
    let mut st = c
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name")
        .unwrap();
    let objects = st
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get::<_, Option<String>>(3)?.map(|s| normalize(&s)),
            ))
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let mut st = c
        .prepare(
            "SELECT name, type, ncol, wr, strict FROM pragma_table_list
             WHERE schema = 'main' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )
        .unwrap();
    let tables: Vec<(String, String, i64, i64, i64)> = st
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut columns = Vec::new();
    for (t, ..) in &tables {
        let mut st = c
            .prepare("SELECT cid, name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1) ORDER BY cid")
            .unwrap();
        let rows = st
            .query_map([t], |r| {
                Ok((
                    t.clone(),
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .unwrap();
        for row in rows {
            columns.push(row.unwrap());
        }
    }
    Schema {
        user_version,
        application_id,
        objects,
        tables,
        columns,
    }
}

fn fresh_schema() -> Schema {
    let db = TempDb::new("fresh");
    let s = SqliteStore::open(db.path()).unwrap();
    assert_eq!(s.schema_version().unwrap(), CURRENT_VERSION);
    drop(s);
    schema_of(db.path())
}

/// A database as version `v` of the code created it, with some rows, stamped `stamp`.
fn old_database(v: i64, stamp: i64, rows: usize) -> TempDb {
    let db = TempDb::new(&format!("v{v}"));
    let mut c = Connection::open(db.path()).unwrap();
    let tx = c.transaction().unwrap();
    tx.execute_batch(schema::schema_sql(v).unwrap()).unwrap();
    tx.pragma_update(None, "user_version", stamp).unwrap();
    for i in 0..rows {
        tx.execute(
            "INSERT INTO kv (key, value) VALUES (?1, ?2)",
            (format!("obj/a/customer/{i:05}"), format!("{{\"n\":{i}}}")),
        )
        .unwrap();
    }
    tx.commit().unwrap();
    db
}

#[test]
fn the_current_sql_is_the_schema_of_a_fresh_database() {
    let db = old_database(CURRENT_VERSION, CURRENT_VERSION, 0);
    assert_eq!(schema_of(db.path()), fresh_schema());
    let fresh = fresh_schema();
    assert_eq!(fresh.application_id, APPLICATION_ID);
    assert_eq!(fresh.user_version, CURRENT_VERSION);
    // Every table is STRICT; kv is a rowid table (schema 3), store_meta is WITHOUT ROWID.
    assert!(fresh.tables.iter().all(|t| t.4 == 1), "{:?}", fresh.tables);
    let without_rowid = |name: &str| fresh.tables.iter().find(|t| t.0 == name).map(|t| t.3);
    assert_eq!(without_rowid("kv"), Some(0), "{:?}", fresh.tables);
    assert_eq!(without_rowid("store_meta"), Some(1), "{:?}", fresh.tables);
}

#[test]
fn every_old_schema_migrates_to_the_fresh_schema() {
    let fresh = fresh_schema();
    for old in &VERSIONS[..VERSIONS.len() - 1] {
        let db = old_database(old.version, old.version, 300);
        assert_ne!(schema_of(db.path()), fresh);
        let s = SqliteStore::open(db.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), CURRENT_VERSION);
        assert_eq!(
            s.meta("created_schema").unwrap(),
            Some(old.version.to_string())
        );
        assert_eq!(s.meta("format").unwrap().as_deref(), Some("writesync-kv"));
        let rows = s.scan("", 0, usize::MAX).unwrap();
        assert_eq!(rows.len(), 300, "version {}", old.version);
        assert_eq!(
            rows[7],
            ("obj/a/customer/00007".to_string(), "{\"n\":7}".to_string())
        );
        drop(s);
        assert_eq!(schema_of(db.path()), fresh, "from version {}", old.version);
    }
}

#[test]
fn the_first_cut_unstamped_file_is_version_1_and_migrates() {
    // The first cut created its table with IF NOT EXISTS and never set user_version.
    let db = TempDb::new("firstcut");
    let c = Connection::open(db.path()).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
         INSERT INTO kv VALUES ('acct/1', '{}'), ('due/0000000000000005/t/x', '\"\"');
         INSERT INTO kv VALUES (42, '{\"by\":\"another tool\"}');",
    )
    .unwrap();
    drop(c);
    assert_eq!(schema_of(db.path()).user_version, 0);
    let s = SqliteStore::open(db.path()).unwrap();
    assert_eq!(s.get("acct/1").unwrap().as_deref(), Some("{}"));
    assert_eq!(
        s.get("42").unwrap().as_deref(),
        Some("{\"by\":\"another tool\"}")
    );
    assert_eq!(
        s.first_key("due/").unwrap().as_deref(),
        Some("due/0000000000000005/t/x")
    );
    drop(s);
    assert_eq!(schema_of(db.path()), fresh_schema());
}

#[test]
fn reopening_is_idempotent_and_keeps_the_history() {
    let db = old_database(1, 1, 3);
    for _ in 0..3 {
        let mut s = SqliteStore::open(db.path()).unwrap();
        let mut b = Batch::new();
        b.put("x", "1");
        s.apply(&b).unwrap();
        assert_eq!(s.meta("created_schema").unwrap().as_deref(), Some("1"));
    }
    assert_eq!(schema_of(db.path()), fresh_schema());
}

#[test]
fn a_newer_schema_is_refused_and_left_untouched() {
    let db = TempDb::new("toonew");
    drop(SqliteStore::open(db.path()).unwrap());
    let c = Connection::open(db.path()).unwrap();
    c.pragma_update(None, "user_version", CURRENT_VERSION + 1)
        .unwrap();
    drop(c);
    let before = schema_of(db.path());
    let err = SqliteStore::open(db.path()).unwrap_err();
    assert!(
        matches!(err, StoreError::TooNew { found, supported } if found == CURRENT_VERSION + 1 && supported == CURRENT_VERSION),
        "{err}"
    );
    assert!(err.to_string().contains("supports up to"), "{err}");
    assert_eq!(schema_of(db.path()), before);
}

#[test]
fn another_programs_database_is_refused_and_left_untouched() {
    let db = TempDb::new("foreign");
    let c = Connection::open(db.path()).unwrap();
    c.execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);")
        .unwrap();
    drop(c);
    let before = schema_of(db.path());
    let err = SqliteStore::open(db.path()).unwrap_err();
    assert!(matches!(err, StoreError::NotWritesync { .. }), "{err}");
    assert!(err.to_string().contains("table users"), "{err}");
    assert_eq!(schema_of(db.path()), before);

    let db = TempDb::new("foreign-app");
    let c = Connection::open(db.path()).unwrap();
    c.pragma_update(None, "application_id", 0x1234).unwrap();
    drop(c);
    let err = SqliteStore::open(db.path()).unwrap_err();
    assert!(matches!(err, StoreError::NotWritesync { .. }), "{err}");
    assert!(schema_of(db.path()).objects.is_empty());
}

#[test]
fn a_failing_migration_step_rolls_back_to_the_old_version() {
    // A stray table named like the migration's temporary table makes the step fail.
    let db = old_database(1, 1, 5);
    let c = Connection::open(db.path()).unwrap();
    c.execute_batch("CREATE TABLE kv_v1 (x);").unwrap();
    drop(c);
    let before = schema_of(db.path());
    let err = SqliteStore::open(db.path()).unwrap_err();
    assert!(
        matches!(err, StoreError::Migration { from: 1, to: 2, .. }),
        "{err}"
    );
    let after = schema_of(db.path());
    assert_eq!(after, before);
    assert_eq!(after.user_version, 1);
    let c = Connection::open(db.path()).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM kv", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 5);
}
