//! Test support: unique temporary database files that remove themselves.

// Helpers shared by the test binaries through `mod common;`: `pub` is their API there.
#![allow(unreachable_pub)]
// Shared by several test crates (each uses a part); helpers unwrap: a failure is a failed test.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use writesync_sqlite::SqliteStore;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A database path under `std::env::temp_dir()`, unique per process, test and call; the
/// files (with `-wal` and `-shm`) are removed before use and on drop.
pub struct TempDb {
    pub path: PathBuf,
}

impl TempDb {
    pub fn new(tag: &str) -> TempDb {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "writesync-sqlite-{}-{tag}-{n}.db",
            std::process::id()
        ));
        SqliteStore::remove_files(&path).unwrap();
        TempDb { path }
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = SqliteStore::remove_files(&self.path);
    }
}

pub mod native_world;
