//! writesync-sqlite: the SQLite store of writesync (the engine's key-value seam on one file).
//!
//! This first cut opens a file, sets WAL and creates the table; migrations, the typed native
//! engine and retention are being added.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use writesync_core::{Batch, CoreError, KvRead, Op, Storage};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// The engine's key-value store on an SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    /// Open (creating if needed) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;",
        )?;
        Ok(SqliteStore { conn })
    }
}

fn storage(e: rusqlite::Error) -> CoreError {
    CoreError::Storage(e.to_string())
}

impl KvRead for SqliteStore {
    fn get(&self, key: &str) -> Result<Option<String>, CoreError> {
        self.conn
            .prepare_cached("SELECT value FROM kv WHERE key = ?1")
            .and_then(|mut s| s.query_row(params![key], |r| r.get(0)).optional())
            .map_err(storage)
    }

    fn scan(&self, prefix: &str, offset: usize, limit: usize) -> Result<Vec<(String, String)>, CoreError> {
        let mut s = self
            .conn
            .prepare_cached("SELECT key, value FROM kv WHERE key >= ?1 ORDER BY key LIMIT ?2 OFFSET ?3")
            .map_err(storage)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let rows = s
            .query_map(params![prefix, limit, offset], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(storage)?;
        let mut out = Vec::new();
        for row in rows {
            let (k, v) = row.map_err(storage)?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k, v));
        }
        Ok(out)
    }
}

impl Storage for SqliteStore {
    fn apply(&mut self, batch: &Batch) -> Result<(), CoreError> {
        let tx = self.conn.transaction().map_err(storage)?;
        for op in &batch.ops {
            match op {
                Op::Put { key, value } => tx
                    .prepare_cached("INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)")
                    .and_then(|mut s| s.execute(params![key, value]))
                    .map_err(storage)?,
                Op::Delete { key } => tx
                    .prepare_cached("DELETE FROM kv WHERE key = ?1")
                    .and_then(|mut s| s.execute(params![key]))
                    .map_err(storage)?,
            };
        }
        tx.commit().map_err(storage)
    }
}
