//! writesync-sqlite: the SQLite store of writesync, and the typed native engine on top of it.
//!
//! # Contract
//!
//! The engine ([`writesync_core::Engine`]) is sans-I/O: it reads through
//! [`writesync_core::KvRead`] and hands back a [`writesync_core::Batch`] that the host must
//! commit atomically before acting on anything else the call returned. [`SqliteStore`] is
//! that host storage on one SQLite file:
//!
//! - [`SqliteStore::open`] sets the connection up (WAL, `synchronous=NORMAL` or `FULL`,
//!   foreign keys, busy timeout; see [`StoreOptions`]) and migrates the file to
//!   [`schema::CURRENT_VERSION`], one transaction per step; a file from a newer version is
//!   refused with [`StoreError::TooNew`].
//! - `get`/`scan` read with cached prepared statements; `scan` is a range over the primary
//!   key, bounded above by the prefix's successor, never a filter.
//! - `apply` commits a whole batch in one `BEGIN IMMEDIATE` transaction, or nothing of it.
//! - Nothing here reads the clock: times come from the caller, as `now_ms`.
//!
//! Two versions are kept apart: the SQL schema of the file ([`schema`], `PRAGMA user_version`,
//! migrated by [`SqliteStore::open`]) and the engine's data layout in the key-value rows
//! (`meta/layout`, migrated by [`migrate_layout`], which [`NativeEngine::open`] runs).
//!
//! [`NativeEngine`] puts an engine and a store together for applications that link the
//! crate: typed writes, sync status, due work ([`NativeEngine::claim_due`] and
//! [`NativeEngine::report_outcome`], each one transaction) and retention
//! ([`NativeEngine::prune`]). The calling contract is: answer requests; when
//! [`NativeEngine::next_deadline`] is reached (and after pushing writes), claim the due work,
//! perform it and report each outcome; call `prune` now and then. The work loop over these
//! calls, with the outbound transport and the token broker client, is the host driver's
//! (`writesync_host::native::run_due` in the `writesync-host` crate), written once for every
//! Rust host.
//!
//! # Example
//!
//! ```
//! use serde_json::{json, Value};
//! use writesync_core::cdm::ObjectType;
//! use writesync_core::records::{SyncStatus, TargetStatus};
//! use writesync_core::{ApiRequest, EngineConfig, Outcome, WorkKind};
//! use writesync_sqlite::{Credentials, NativeEngine, SqliteStore, WriteOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let path = std::env::temp_dir().join(format!("writesync-doc-{}.db", std::process::id()));
//! SqliteStore::remove_files(&path)?;
//! // A fixed seed replays byte for byte; production uses `os_seeded_config()` instead.
//! let config = EngineConfig::new([7; 32]).with_admin_token("admin-token");
//! let mut app = NativeEngine::open(&path, config)?;
//! let now = 1_790_000_000_000; // the host's clock, Unix ms
//!
//! // An account, a key, write mode and one connection, through the admin API.
//! let admin = |method: &str, path: &str, body: Value| {
//!     ApiRequest::new(method, path)
//!         .header("Authorization", "Bearer admin-token")
//!         .json(&body)
//! };
//! let account = app.handle(&admin("POST", "/admin/accounts", json!({"domain": "acme.example.com"})), now);
//! assert_eq!(account.status, 201);
//! let id = account.body_json()["id"].as_str().unwrap_or_default().to_string();
//! let key = app.handle(
//!     &admin("POST", &format!("/admin/accounts/{id}/api-keys"), json!({"scopes": ["api.read", "api.write"]})),
//!     now,
//! );
//! let creds = Credentials::from_api_key_answer(&key.body_json()).ok_or("no key")?;
//! let on = app.handle(&admin("PATCH", &format!("/admin/accounts/{id}"), json!({"writeEnabled": true})), now);
//! assert_eq!(on.status, 200);
//! let conn = app.handle(
//!     &admin("POST", &format!("/admin/accounts/{id}/connections"),
//!            json!({"app": "hubspot", "type": "crm", "pushUrl": "https://push.example.com/hubspot"})),
//!     now,
//! );
//! assert_eq!(conn.status, 201);
//!
//! // A customer, pushed to the connection.
//! let options = WriteOptions { push: true, tracking_id: Some("trk-1".into()), ..Default::default() };
//! let written = app.write(&creds, ObjectType::Customer, &json!({"name": "Acme Ltd"}), &options, now)?;
//! assert_eq!(written.status, 201);
//! assert_eq!(written.targets, ["hubspot"]);
//! let sync_id = written.sync_id.ok_or("no sync")?;
//!
//! // The due work: one push, performed here by answering 201 (a real host performs it with
//! // the host driver, `writesync_host::native::run_due`).
//! let items = app.claim_due(now, 16)?;
//! assert_eq!(items.len(), 1);
//! assert_eq!(items[0].kind, WorkKind::Push);
//! assert_eq!(items[0].request.url, "https://push.example.com/hubspot");
//! let answer = Outcome::Response { status: 201, headers: Default::default(), body: r#"{"id":"HS-1"}"#.into() };
//! app.report_outcome(&items[0].id, &answer, now)?;
//!
//! let sync = app.sync_status(&creds, &sync_id, now)?;
//! assert_eq!(sync.status, SyncStatus::Succeeded);
//! assert_eq!(sync.targets[0].status, TargetStatus::Succeeded);
//! assert_eq!(sync.targets[0].remote_id.as_deref(), Some("HS-1"));
//! assert_eq!(app.next_deadline()?, None); // nothing owed
//!
//! drop(app);
//! SqliteStore::remove_files(&path)?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod native;
pub mod schema;
mod store;

pub use native::{
    migrate_layout, Credentials, NativeEngine, SyncReport, SyncTarget, WriteError, WriteOptions,
    WriteResult,
};
pub use store::{SqliteStore, StoreOptions, Synchronous, UnitOfWork, DEFAULT_BUSY_TIMEOUT};

use writesync_core::{CoreError, EngineConfig};

/// Errors of the store and of the native engine's store-backed calls.
///
/// [`StoreError::TooNew`] and [`StoreError::NotWritesync`] are about the file given (wrong
/// file, or one written by newer code); [`StoreError::Sqlite`], [`StoreError::Io`] and
/// [`StoreError::JournalMode`] are the environment failing; [`StoreError::Migration`] is a
/// schema step that could not be applied (nothing of it was); [`StoreError::Engine`] passes
/// the engine's own error through.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed (cannot open the file, disk full, locked beyond the busy timeout, ...).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file's schema version is newer than this code knows: it was written by a newer
    /// writesync and is left untouched.
    #[error("the database has schema version {found}; this writesync supports up to {supported}")]
    TooNew {
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// [`schema::CURRENT_VERSION`].
        supported: i64,
    },
    /// The file is an SQLite database of another program (or damaged): it is left untouched.
    #[error("not a writesync database: {reason}")]
    NotWritesync {
        /// What gave it away.
        reason: String,
    },
    /// A migration step failed and was rolled back: the file stays at version `from`.
    #[error("migrating the schema from version {from} to {to} failed: {source}")]
    Migration {
        /// The version the file stays at.
        from: i64,
        /// The version the step was to reach.
        to: i64,
        /// What SQLite reported.
        #[source]
        source: rusqlite::Error,
    },
    /// SQLite would not switch the file to WAL (a file system without shared memory, e.g.
    /// some network file systems); without WAL readers would block the writer.
    #[error("journal_mode is {mode}, not wal")]
    JournalMode {
        /// The journal mode SQLite kept.
        mode: String,
    },
    /// A file operation failed (removing database files).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The engine failed (its storage reads or commits failed, or it found a corrupt row).
    #[error("engine: {0}")]
    Engine(#[from] CoreError),
    /// The operating system gave no randomness for the engine's seed.
    #[error("no OS randomness for the seed: {0}")]
    Random(String),
}

/// The documented engine defaults ([`EngineConfig::new`]) with a seed of fresh OS
/// randomness: what a production host passes to [`NativeEngine::open`], so that ids and
/// API-key secrets cannot be predicted. (A fixed seed replays byte for byte, for tests; the
/// all-zero one is only reachable as [`EngineConfig::zero_seed_for_tests`].)
pub fn os_seeded_config() -> Result<EngineConfig, StoreError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| StoreError::Random(e.to_string()))?;
    Ok(EngineConfig::new(seed))
}
