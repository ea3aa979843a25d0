//! A unit of work: reads see the writes made so far; the writes become one [`Batch`].

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::store::{Batch, KvRead};
use crate::CoreError;

/// Read-your-writes overlay over the host's store. `scan` does not see the overlay.
pub(crate) struct Tx<'a> {
    store: &'a dyn KvRead,
    overlay: BTreeMap<String, Option<String>>,
}

impl<'a> Tx<'a> {
    pub(crate) fn new(store: &'a dyn KvRead) -> Self {
        Tx {
            store,
            overlay: BTreeMap::new(),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Result<Option<String>, CoreError> {
        match self.overlay.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.store.get(key),
        }
    }

    pub(crate) fn contains(&self, key: &str) -> Result<bool, CoreError> {
        match self.overlay.get(key) {
            Some(v) => Ok(v.is_some()),
            None => self.store.contains(key),
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
        self.store.scan(prefix, offset, limit)
    }

    pub(crate) fn scan_json<T: DeserializeOwned>(
        &self,
        prefix: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<T>, CoreError> {
        self.store
            .scan(prefix, offset, limit)?
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
        self.overlay.insert(key.into(), Some(value.into()));
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
        // Serializing the engine's own record types cannot fail (no maps with non-string
        // keys, no failing Serialize impls); fall back to null rather than panic.
        let mut buf = Vec::with_capacity(size_hint);
        let text = match serde_json::to_writer(&mut buf, value) {
            Ok(()) => String::from_utf8(buf).unwrap_or_else(|_| "null".into()),
            Err(_) => "null".into(),
        };
        self.put(key, text);
    }

    pub(crate) fn delete(&mut self, key: impl Into<String>) {
        self.overlay.insert(key.into(), None);
    }

    /// The writes so far, to [`Tx::restore`] if what follows fails.
    pub(crate) fn checkpoint(&self) -> BTreeMap<String, Option<String>> {
        self.overlay.clone()
    }

    /// Go back to a checkpoint.
    pub(crate) fn restore(&mut self, checkpoint: BTreeMap<String, Option<String>>) {
        self.overlay = checkpoint;
    }

    pub(crate) fn into_batch(self) -> Batch {
        let mut b = Batch::new();
        for (k, v) in self.overlay {
            match v {
                Some(v) => b.put(k, v),
                None => b.delete(k),
            }
        }
        b
    }
}
