//! A unit of work: reads see the writes made so far; the writes become one [`Batch`].

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::records::{SyncRec, TaskRec};
use crate::store::{Batch, KvRead};
use crate::CoreError;

/// A sync row decoded: the sync and its tasks.
pub(crate) type DecodedSync = (SyncRec, Vec<TaskRec>);

/// Read-your-writes overlay over the host's store. `scan` does not see the overlay.
pub(crate) struct Tx<'a> {
    store: &'a dyn KvRead,
    overlay: BTreeMap<String, Option<String>>,
    /// Sync rows decoded from the text this unit of work reads under their key now, so that
    /// the steps of one claim or outcome (find the task, store it, update its target, release
    /// its chain) parse a row once. Every write of a key empties its entry (a slot is emptied,
    /// never removed: the removal code of a B-tree of this value type cost 1.3 KB of the wasm
    /// module gzipped).
    syncs: RefCell<BTreeMap<String, Option<DecodedSync>>>,
    /// What the store answered to this unit of work's reads of absent keys and short values
    /// ([`KEPT_READ_BYTES`]), and its small scans. The store does not change while a unit of
    /// work plans (its batch is applied after), so a second such read is answered from here.
    reads: RefCell<BTreeMap<String, Option<String>>>,
    scans: RefCell<BTreeMap<ScanRange, Vec<(String, String)>>>,
}

/// `(prefix, offset, limit)` of a scan.
type ScanRange = (String, usize, usize);

/// Values of at most this many bytes are kept for a second read of the same key.
const KEPT_READ_BYTES: usize = 128;

/// Scans of at most this many entries are kept for a second scan of the same range.
const KEPT_SCAN_ENTRIES: usize = 16;

impl<'a> Tx<'a> {
    pub(crate) fn new(store: &'a dyn KvRead) -> Self {
        Tx {
            store,
            overlay: BTreeMap::new(),
            syncs: RefCell::new(BTreeMap::new()),
            reads: RefCell::new(BTreeMap::new()),
            scans: RefCell::new(BTreeMap::new()),
        }
    }

    /// The store's value under `key` (an absent key or a short value is read once per unit of
    /// work).
    fn store_get(&self, key: &str) -> Result<Option<String>, CoreError> {
        if let Some(v) = self.reads.borrow().get(key) {
            return Ok(v.clone());
        }
        let v = self.store.get(key)?;
        // Absent keys and short values (index rows, chains, remote ids) are what a unit of
        // work reads again; records and sync rows are decoded once by their own caches
        // (`RecordCache`, `syncs`), and copying them here cost more than it saved.
        if v.as_ref().is_none_or(|v| v.len() <= KEPT_READ_BYTES) {
            self.reads.borrow_mut().insert(key.to_string(), v.clone());
        }
        Ok(v)
    }

    /// The decoded sync row under `key`, when this unit of work decoded its current text.
    pub(crate) fn decoded_sync(&self, key: &str) -> Option<DecodedSync> {
        self.syncs.borrow().get(key).cloned().flatten()
    }

    /// Remember the decoding of the text now stored under `key`.
    pub(crate) fn remember_sync(&self, key: &str, decoded: &DecodedSync) {
        self.syncs
            .borrow_mut()
            .insert(key.to_string(), Some(decoded.clone()));
    }

    pub(crate) fn get(&self, key: &str) -> Result<Option<String>, CoreError> {
        match self.overlay.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.store_get(key),
        }
    }

    pub(crate) fn contains(&self, key: &str) -> Result<bool, CoreError> {
        match self.overlay.get(key) {
            Some(v) => Ok(v.is_some()),
            None => match self.reads.borrow().get(key) {
                Some(v) => Ok(v.is_some()),
                None => self.store.contains(key),
            },
        }
    }

    pub(crate) fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, CoreError> {
        match self.get(key)? {
            None => Ok(None),
            Some(text) => {
                serde_json::from_str(&text)
                    .map(Some)
                    .map_err(|e| CoreError::CorruptRow {
                        key: key.to_string(),
                        reason: e.to_string(),
                    })
            }
        }
    }

    pub(crate) fn scan(
        &self,
        prefix: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<(String, String)>, CoreError> {
        let range = (prefix.to_string(), offset, limit);
        if let Some(rows) = self.scans.borrow().get(&range) {
            return Ok(rows.clone());
        }
        let rows = self.store.scan(prefix, offset, limit)?;
        if rows.len() <= KEPT_SCAN_ENTRIES {
            self.scans.borrow_mut().insert(range, rows.clone());
        }
        Ok(rows)
    }

    pub(crate) fn scan_json<T: DeserializeOwned>(
        &self,
        prefix: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<T>, CoreError> {
        self.scan(prefix, offset, limit)?
            .into_iter()
            .map(|(k, v)| {
                serde_json::from_str(&v).map_err(|e| CoreError::CorruptRow {
                    key: k,
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    pub(crate) fn put(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        self.forget_sync(&key);
        self.overlay.insert(key, Some(value.into()));
    }

    fn forget_sync(&mut self, key: &str) {
        if let Some(slot) = self.syncs.get_mut().get_mut(key) {
            *slot = None;
        }
    }

    pub(crate) fn put_json<T: Serialize>(&mut self, key: impl Into<String>, value: &T) {
        self.put_json_sized(key, value, 512);
    }

    /// [`Tx::put_json`] for a record of about `size_hint` bytes: one buffer of that size
    /// instead of one that grows from empty.
    pub(crate) fn put_json_sized<T: Serialize>(
        &mut self,
        key: impl Into<String>,
        value: &T,
        size_hint: usize,
    ) {
        self.put(key, json_text(value, size_hint));
    }

    pub(crate) fn delete(&mut self, key: impl Into<String>) {
        let key = key.into();
        self.forget_sync(&key);
        self.overlay.insert(key, None);
    }

    /// The writes so far, to [`Tx::restore`] if what follows fails.
    pub(crate) fn checkpoint(&self) -> BTreeMap<String, Option<String>> {
        self.overlay.clone()
    }

    /// Go back to a checkpoint.
    pub(crate) fn restore(&mut self, checkpoint: BTreeMap<String, Option<String>>) {
        self.overlay = checkpoint;
        self.syncs.get_mut().clear();
    }

    pub(crate) fn into_batch(self) -> Batch {
        let mut b = Batch {
            ops: Vec::with_capacity(self.overlay.len()),
        };
        for (k, v) in self.overlay {
            match v {
                Some(v) => b.put(k, v),
                None => b.delete(k),
            }
        }
        b
    }
}

/// `value` as JSON text, serialized into one buffer of `size_hint` bytes instead of one that
/// grows from empty. Serializing the engine's own types cannot fail (no maps with non-string
/// keys, no failing Serialize impls) and writes UTF-8; the fallback to null keeps this
/// panic-free.
pub(crate) fn json_text<T: Serialize + ?Sized>(value: &T, size_hint: usize) -> String {
    crate::json::to_text(value, size_hint).unwrap_or_else(|_| "null".into())
}
