//! [`SqliteStore`]: the engine's key-value seam ([`KvRead`] + [`Storage`]) on one SQLite file.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use writesync_core::{Batch, CoreError, KvRead, Op, Storage};

use crate::schema;
use crate::StoreError;

/// How hard a commit waits for the disk (`PRAGMA synchronous`), always in WAL mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// `synchronous=NORMAL` (the default). A commit appends to the WAL file without waiting
    /// for the disk; the WAL is synced at checkpoints. A killed process loses no committed
    /// transaction (the operating system still has the appended pages and the next open
    /// replays the WAL); a power loss or kernel crash may lose the last commits before the
    /// most recent sync, but never corrupts the file.
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit waits until the WAL is on the disk, so a power loss
    /// loses no committed transaction either. Costs about 2.5x in commit throughput on the
    /// project's machines (see `shared/guide/toolchain.md`).
    Full,
}

impl Synchronous {
    fn as_sql(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// Default [`StoreOptions::busy_timeout`]: 5 seconds.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How [`SqliteStore::open_with`] opens a file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Durability of a commit; default [`Synchronous::Normal`].
    pub synchronous: Synchronous,
    /// How long a statement waits for another connection's lock before failing with
    /// `SQLITE_BUSY`; default [`DEFAULT_BUSY_TIMEOUT`].
    pub busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            synchronous: Synchronous::Normal,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
        }
    }
}

impl StoreOptions {
    /// Builder: set [`StoreOptions::synchronous`].
    pub fn with_synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }
    /// Builder: set [`StoreOptions::busy_timeout`].
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }
}

const GET: &str = "SELECT value FROM kv WHERE key = ?1";
/// Keys in `[prefix, upper)`: every key with the prefix and nothing else (see [`upper_bound`]).
const SCAN_BOUNDED: &str =
    "SELECT key, value FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key LIMIT ?3 OFFSET ?4";
/// Keys `>= prefix`, used when the prefix has no upper bound (empty, or only U+10FFFF).
const SCAN_FROM: &str = "SELECT key, value FROM kv WHERE key >= ?1 ORDER BY key LIMIT ?2 OFFSET ?3";
const FIRST_BOUNDED: &str = "SELECT key FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key LIMIT 1";
const FIRST_FROM: &str = "SELECT key FROM kv WHERE key >= ?1 ORDER BY key LIMIT 1";
const PUT: &str =
    "INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value";
const DELETE: &str = "DELETE FROM kv WHERE key = ?1";

/// The character after `c` in code point order, skipping the surrogate gap.
fn next_char(c: char) -> Option<char> {
    match c {
        '\u{D7FF}' => Some('\u{E000}'),
        char::MAX => None,
        _ => char::from_u32(u32::from(c) + 1),
    }
}

/// The smallest string greater than every string that starts with `prefix`: the prefix with
/// its last character incremented, dropping trailing U+10FFFF characters (which cannot be
/// incremented). `None` when there is no such string (empty prefix, or only U+10FFFF): then
/// every key `>= prefix` starts with it.
///
/// Exact because UTF-8 byte order, SQLite's BINARY collation and Rust's `str` order all equal
/// code point order: a key `k` with `prefix <= k < upper` must share the prefix's leading
/// characters and cannot have a code point strictly between the last one and its successor.
pub(crate) fn upper_bound(prefix: &str) -> Option<String> {
    for (i, c) in prefix.char_indices().rev() {
        if let Some(n) = next_char(c) {
            let mut upper = String::with_capacity(i + 4);
            upper.push_str(&prefix[..i]);
            upper.push(n);
            return Some(upper);
        }
    }
    None
}

/// SQLite's error as the engine's storage error: the text the engine reports, with SQLite's
/// error kept as its source.
fn storage(e: rusqlite::Error) -> CoreError {
    CoreError::storage_caused_by(format!("sqlite: {e}"), e)
}

fn sql_count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The engine's ordered key-value store on one SQLite file.
///
/// Opening sets the connection up (WAL, `synchronous`, foreign keys, busy timeout) and
/// migrates the file to [`schema::CURRENT_VERSION`]. Reads use cached prepared statements;
/// [`Storage::apply`] commits a whole [`Batch`] in one `BEGIN IMMEDIATE` transaction or
/// nothing of it. The store never reads the clock: every timestamp in the rows comes from
/// the engine, which gets it from the caller.
///
/// Used directly as the engine's storage (`Engine::handle_with(.., &mut store)`), each read
/// is its own snapshot and only the batch is one transaction. That is enough while one
/// connection writes the file. When several connections or processes write it, run each
/// engine call inside [`SqliteStore::begin_write`] (as [`crate::NativeEngine`] does):
/// otherwise two of them can both pass the same uniqueness check or claim the same push.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    /// Open (creating if needed) the database at `path` with the default [`StoreOptions`]
    /// (WAL, `synchronous=NORMAL`, 5 s busy timeout), migrating it to the current schema.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, &StoreOptions::default())
    }

    /// Open (creating if needed) the database at `path` with `options`, migrating it to the
    /// current schema. A file whose schema is newer than this code is refused with
    /// [`StoreError::TooNew`], another program's SQLite file with
    /// [`StoreError::NotWritesync`].
    pub fn open_with(
        path: impl AsRef<Path>,
        options: &StoreOptions,
    ) -> Result<SqliteStore, StoreError> {
        let mut conn = Connection::open(path)?;
        configure(&conn, options)?;
        schema::migrate(&mut conn)?;
        Ok(SqliteStore { conn })
    }

    /// The schema version of the file (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// A row of the `store_meta` table (`format`, `created_schema`).
    pub fn meta(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM store_meta WHERE name = ?1")?
            .query_row(params![name], |r| r.get(0))
            .optional()?)
    }

    /// Delete the database at `path` with its `-wal`, `-shm` and `-journal` companions.
    /// Files that do not exist are not an error. Close every store on the file first.
    pub fn remove_files(path: impl AsRef<Path>) -> Result<(), StoreError> {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = OsString::from(path.as_ref().as_os_str());
            name.push(suffix);
            match std::fs::remove_file(&name) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::Io(e)),
            }
        }
        Ok(())
    }

    fn apply_batch(&mut self, batch: &Batch) -> Result<(), rusqlite::Error> {
        // IMMEDIATE takes the write lock at BEGIN, so a busy database fails (after the busy
        // timeout) before any write instead of at the first write of a deferred transaction.
        // A failure anywhere drops `tx` uncommitted, which rolls everything back.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        write_ops(&tx, batch)?;
        tx.commit()
    }

    /// Start a unit of work that will write: `BEGIN IMMEDIATE`, so that its reads and its
    /// writes form one serializable step even when other processes use the file (no other
    /// connection can commit between what the engine read and what it writes).
    ///
    /// Each batch applied through it is written inside a savepoint, so a batch that fails
    /// midway leaves nothing of itself and the unit can still commit the others (what the
    /// server's group commit needs). A savepoint makes SQLite copy every page the batch
    /// changes into a statement journal first; a unit that applies one batch only should use
    /// [`SqliteStore::begin_single_write`].
    pub fn begin_write(&mut self) -> Result<UnitOfWork<'_>, StoreError> {
        Ok(UnitOfWork {
            tx: self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?,
            savepoints: true,
            failed: None,
        })
    }

    /// Start a unit of work that will write one engine step: `BEGIN IMMEDIATE` as
    /// [`SqliteStore::begin_write`], but its batches are written straight into the
    /// transaction, without a savepoint. A batch that fails midway spoils the whole unit: every
    /// later batch is refused and [`UnitOfWork::commit`] rolls everything back and answers the
    /// failure, so nothing of a failed step is ever committed. This is what
    /// [`crate::NativeEngine`] uses for each call.
    pub fn begin_single_write(&mut self) -> Result<UnitOfWork<'_>, StoreError> {
        Ok(UnitOfWork {
            tx: self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?,
            savepoints: false,
            failed: None,
        })
    }

    /// Start a unit of work that only reads: `BEGIN DEFERRED`, one consistent snapshot for
    /// all its reads, without taking the write lock.
    pub fn begin_read(&mut self) -> Result<UnitOfWork<'_>, StoreError> {
        Ok(UnitOfWork {
            tx: self
                .conn
                .transaction_with_behavior(TransactionBehavior::Deferred)?,
            savepoints: true,
            failed: None,
        })
    }
}

/// One transaction on a [`SqliteStore`]: every read sees the same snapshot, and every batch
/// applied through it becomes durable together at [`UnitOfWork::commit`]. Dropping it
/// without committing rolls everything back.
///
/// This is how [`crate::NativeEngine`] runs the engine: plan (reads) and commit (the batch)
/// inside one `BEGIN IMMEDIATE`, so two processes on one file cannot both pass a uniqueness
/// check or claim the same push.
#[derive(Debug)]
pub struct UnitOfWork<'a> {
    tx: Transaction<'a>,
    /// Whether each batch is applied inside a savepoint of its own.
    savepoints: bool,
    /// Without savepoints: what made a batch fail midway (the unit can then only roll back).
    failed: Option<String>,
}

impl UnitOfWork<'_> {
    /// Make everything applied through this unit durable. A unit of
    /// [`SqliteStore::begin_single_write`] whose batch failed midway is rolled back instead,
    /// and the failure is answered.
    pub fn commit(self) -> Result<(), StoreError> {
        if let Some(reason) = self.failed {
            self.tx.rollback()?;
            return Err(StoreError::Engine(CoreError::storage(format!(
                "nothing committed: a batch of this unit failed midway ({reason})"
            ))));
        }
        Ok(self.tx.commit()?)
    }
}

fn get(conn: &Connection, key: &str) -> Result<Option<String>, CoreError> {
    conn.prepare_cached(GET)
        .and_then(|mut s| s.query_row(params![key], |r| r.get(0)).optional())
        .map_err(storage)
}

fn query_pairs<P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
) -> Result<Vec<(String, String)>, rusqlite::Error> {
    let mut s = conn.prepare_cached(sql)?;
    let rows = s.query_map(params, |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

fn scan(
    conn: &Connection,
    prefix: &str,
    offset: usize,
    limit: usize,
) -> Result<Vec<(String, String)>, CoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let (limit, offset) = (sql_count(limit), sql_count(offset));
    match upper_bound(prefix) {
        Some(upper) => query_pairs(conn, SCAN_BOUNDED, params![prefix, upper, limit, offset]),
        None => query_pairs(conn, SCAN_FROM, params![prefix, limit, offset]),
    }
    .map_err(storage)
}

fn first_key(conn: &Connection, prefix: &str) -> Result<Option<String>, CoreError> {
    let found = match upper_bound(prefix) {
        Some(upper) => conn
            .prepare_cached(FIRST_BOUNDED)
            .and_then(|mut s| s.query_row(params![prefix, upper], |r| r.get(0)).optional()),
        None => conn
            .prepare_cached(FIRST_FROM)
            .and_then(|mut s| s.query_row(params![prefix], |r| r.get(0)).optional()),
    };
    found.map_err(storage)
}

/// Execute the operations of `batch` on a connection that is inside a transaction.
fn write_ops(conn: &Connection, batch: &Batch) -> Result<(), rusqlite::Error> {
    let mut put = conn.prepare_cached(PUT)?;
    let mut delete = conn.prepare_cached(DELETE)?;
    for op in &batch.ops {
        match op {
            Op::Put { key, value } => put.execute(params![key, value])?,
            Op::Delete { key } => delete.execute(params![key])?,
        };
    }
    Ok(())
}

/// Set the connection up, once per open.
fn configure(conn: &Connection, options: &StoreOptions) -> Result<(), StoreError> {
    // First, so that the statements below and the migrations wait for another connection's
    // lock instead of failing at once.
    conn.busy_timeout(options.busy_timeout)?;
    // WAL: readers do not block the writer and the writer does not block readers (the
    // server reads while workers commit), and a commit is an append to the -wal file that the
    // next open replays: a killed process loses no committed transaction. The mode is
    // persistent in the file; setting it on every open is cheap and covers files created
    // elsewhere. SQLite answers the mode in force, which is checked: it stays on the old
    // mode when the file system cannot support WAL, and is "memory" for `:memory:`.
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
        return Err(StoreError::JournalMode { mode });
    }
    // Per connection, not stored in the file: see `Synchronous` for what each level keeps.
    conn.pragma_update(None, "synchronous", options.synchronous.as_sql())?;
    // SQLite leaves foreign keys off by default (compatibility) and the setting is per
    // connection and ignored inside a transaction, so it is set here, once, before the
    // migrations run. Schema 2 declares no foreign key; this makes any REFERENCES a later
    // version declares enforced from its first statement, its own migration included.
    conn.pragma_update(None, "foreign_keys", true)?;
    // The query planner stability guarantee: a cached statement keeps its plan whatever is
    // bound to it. Without it, SQLite re-prepares a scan each time its bound LIMIT changes
    // (3.47 and later look at a bound LIMIT's value when planning), which cost about 8% of a
    // durable write (`benches/durable_write.rs`, under `perf`). Every statement here is a
    // search of the key's index, the one plan there is.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

impl KvRead for SqliteStore {
    fn get(&self, key: &str) -> Result<Option<String>, CoreError> {
        get(&self.conn, key)
    }
    fn scan(
        &self,
        prefix: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<(String, String)>, CoreError> {
        scan(&self.conn, prefix, offset, limit)
    }
    fn first_key(&self, prefix: &str) -> Result<Option<String>, CoreError> {
        first_key(&self.conn, prefix)
    }
}

impl Storage for SqliteStore {
    /// One `BEGIN IMMEDIATE` transaction per batch: all of it is committed or none.
    fn apply(&mut self, batch: &Batch) -> Result<(), CoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.apply_batch(batch).map_err(storage)
    }
}

impl KvRead for UnitOfWork<'_> {
    fn get(&self, key: &str) -> Result<Option<String>, CoreError> {
        get(&self.tx, key)
    }
    fn scan(
        &self,
        prefix: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<(String, String)>, CoreError> {
        scan(&self.tx, prefix, offset, limit)
    }
    fn first_key(&self, prefix: &str) -> Result<Option<String>, CoreError> {
        first_key(&self.tx, prefix)
    }
}

impl Storage for UnitOfWork<'_> {
    /// With savepoints ([`SqliteStore::begin_write`]): inside a savepoint, so a batch that
    /// fails midway leaves nothing of itself, and the unit stays usable (it still decides
    /// what to commit). Without ([`SqliteStore::begin_single_write`]): straight into the
    /// transaction; a failure midway spoils the unit (see [`UnitOfWork::commit`]).
    fn apply(&mut self, batch: &Batch) -> Result<(), CoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        if !self.savepoints {
            if let Some(reason) = &self.failed {
                return Err(CoreError::storage(format!(
                    "an earlier batch of this unit failed midway ({reason})"
                )));
            }
            return write_ops(&self.tx, batch).map_err(|e| {
                self.failed = Some(e.to_string());
                storage(e)
            });
        }
        let sp = self.tx.savepoint().map_err(storage)?;
        write_ops(&sp, batch).map_err(storage)?;
        sp.commit().map_err(storage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_bounds() {
        assert_eq!(upper_bound(""), None);
        assert_eq!(upper_bound("a/").as_deref(), Some("a0"));
        assert_eq!(upper_bound("ab").as_deref(), Some("ac"));
        assert_eq!(upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(upper_bound("\u{10FFFF}\u{10FFFF}"), None);
        assert_eq!(upper_bound("x\u{D7FF}").as_deref(), Some("x\u{E000}"));
        assert_eq!(upper_bound("\u{7F}").as_deref(), Some("\u{80}"));
        assert_eq!(upper_bound("é").as_deref(), Some("ê"));
    }

    /// The scans are range searches on the key's index, not filters over the table.
    #[test]
    fn scans_search_the_primary_key_range() {
        let path = std::env::temp_dir().join(format!(
            "writesync-sqlite-unit-plan-{}.db",
            std::process::id()
        ));
        SqliteStore::remove_files(&path).unwrap();
        let s = SqliteStore::open(&path).unwrap();
        let plan = |sql: &str| -> String {
            let mut st = s
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let mut rows = st.raw_query();
            let mut details = Vec::new();
            while let Some(r) = rows.next().unwrap() {
                details.push(r.get::<_, String>(3).unwrap());
            }
            details.join("; ")
        };
        let bounded = plan(SCAN_BOUNDED);
        assert!(
            bounded.contains("SEARCH kv USING INDEX sqlite_autoindex_kv_1 (key>? AND key<?)"),
            "{bounded}"
        );
        assert!(!bounded.contains("TEMP B-TREE"), "{bounded}");
        let from = plan(SCAN_FROM);
        assert!(
            from.contains("SEARCH kv USING INDEX sqlite_autoindex_kv_1 (key>?)"),
            "{from}"
        );
        // The first key alone is read from the index, without the table.
        assert!(plan(FIRST_BOUNDED)
            .contains("SEARCH kv USING COVERING INDEX sqlite_autoindex_kv_1 (key>? AND key<?)"));
        assert!(plan(GET).contains("SEARCH kv USING INDEX sqlite_autoindex_kv_1 (key=?)"));
        drop(s);
        SqliteStore::remove_files(&path).unwrap();
    }
}
