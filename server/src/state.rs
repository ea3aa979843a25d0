//! What the committer, the worker and the startup share: the writing engine and its store
//! behind one mutex, the wall clock, a wake-up signal for the worker, and the shutdown flag.
//! (Request threads reach the engine through the group commit and the reader engines,
//! `commit.rs`.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use writesync_core::Engine;
use writesync_sqlite::SqliteStore;

/// The writing engine and the store it plans against. Every call of it happens with this
/// locked (the committer, the worker's pruning and deadline reads, startup), so the engine sees
/// one consistent store and batches commit in the order they were planned.
#[derive(Debug)]
pub struct Core {
    /// The engine.
    pub engine: Engine,
    /// Its storage.
    pub store: SqliteStore,
}

/// Shared state of one running server.
#[derive(Debug)]
pub struct AppState {
    core: Mutex<Core>,
    wake: Mutex<bool>,
    wake_cv: Condvar,
    shutdown: AtomicBool,
}

impl AppState {
    /// Wrap an engine and its store.
    pub fn new(engine: Engine, store: SqliteStore) -> AppState {
        AppState {
            core: Mutex::new(Core { engine, store }),
            wake: Mutex::new(false),
            wake_cv: Condvar::new(),
            shutdown: AtomicBool::new(false),
        }
    }

    /// Lock the engine and store. A panic in another thread while it held the lock (a bug)
    /// does not stop the server: the engine's state is only committed through the store,
    /// which is transactional.
    pub fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wake the worker (a write may have created due work; an item finished).
    pub fn notify(&self) {
        let mut w = self.wake.lock().unwrap_or_else(|p| p.into_inner());
        *w = true;
        self.wake_cv.notify_all();
    }

    /// Sleep until [`AppState::notify`] is called or `timeout` passes. A notification that
    /// arrived since the last wait returns at once.
    pub fn wait(&self, timeout: Duration) {
        let w = self.wake.lock().unwrap_or_else(|p| p.into_inner());
        let mut w = if *w {
            w
        } else {
            self.wake_cv
                .wait_timeout_while(w, timeout, |woken| !*woken)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0)
        };
        *w = false;
    }

    /// Ask every thread to stop (request threads after their current request, the worker
    /// after its in-flight items).
    pub fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        self.notify();
    }

    /// Whether shutdown was requested.
    pub fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }
}

/// The wall clock in Unix milliseconds: the host passes it to every engine call.
#[allow(clippy::disallowed_methods)] // the host owns the clock; the core takes `now` from here
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `n` fresh random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], String> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| format!("the OS random generator failed: {e}"))?;
    Ok(b)
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// A random UUID (version 4) for answers the host makes itself (`X-Request-ID`).
pub fn random_uuid() -> String {
    let mut b = random_bytes::<16>().unwrap_or_else(|_| {
        // Without OS randomness, fall back to the clock: unique enough for a request id.
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&now_ms().to_be_bytes());
        b
    });
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_look_right() {
        let u = random_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, random_uuid());
    }

    #[test]
    fn clock_is_recent() {
        assert!(now_ms() > 1_700_000_000_000);
    }
}
