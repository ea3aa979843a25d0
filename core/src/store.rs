//! The storage seam: an ordered key-value view that the host supplies, and the atomic batch
//! of writes that the engine hands back.
//!
//! The engine never owns storage. For every call it reads through [`KvRead`] and answers with
//! a [`Batch`] that the host must apply atomically (all operations or none) before it acts on
//! anything else the call returned. Keys are UTF-8 strings ordered bytewise; values are JSON
//! text. The key layout is private to the engine (see `keys` in `engine.rs`); hosts store keys
//! and values verbatim.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// Read access to the host's storage.
pub trait KvRead {
    /// The value stored under `key`, if any.
    fn get(&self, key: &str) -> Result<Option<String>, CoreError>;
    /// Up to `limit` entries whose key starts with `prefix`, in ascending key order, skipping
    /// the first `offset` of them.
    fn scan(
        &self,
        prefix: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<(String, String)>, CoreError>;
    /// Whether `key` is stored. The default uses `get`.
    fn contains(&self, key: &str) -> Result<bool, CoreError> {
        Ok(self.get(key)?.is_some())
    }
    /// The smallest key starting with `prefix`, if any. The default uses `scan`.
    fn first_key(&self, prefix: &str) -> Result<Option<String>, CoreError> {
        Ok(self.scan(prefix, 0, 1)?.into_iter().next().map(|(k, _)| k))
    }
}

/// Storage that can also apply a batch atomically.
pub trait Storage: KvRead {
    /// Apply every operation of `batch`, or none of them.
    fn apply(&mut self, batch: &Batch) -> Result<(), CoreError>;
}

/// One write of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Op {
    /// Store `value` under `key`, replacing any previous value.
    Put {
        /// The key.
        key: String,
        /// The JSON text to store.
        value: String,
    },
    /// Remove `key` if present.
    Delete {
        /// The key.
        key: String,
    },
}

/// An ordered list of writes that the host applies as one atomic unit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[must_use = "a batch changes nothing until the host applies it"]
pub struct Batch {
    /// The operations, applied in order.
    pub ops: Vec<Op>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Batch::default()
    }
    /// Append a put.
    pub fn put(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.ops.push(Op::Put {
            key: key.into(),
            value: value.into(),
        });
    }
    /// Append a delete.
    pub fn delete(&mut self, key: impl Into<String>) {
        self.ops.push(Op::Delete { key: key.into() });
    }
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    /// Append every operation of `other`.
    pub fn extend(&mut self, other: Batch) {
        self.ops.extend(other.ops);
    }
}

/// A complete in-memory store: used by tests, the simulation, benchmarks and as a cache.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    map: BTreeMap<String, String>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }
    /// Number of keys stored.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// Every entry, in key order.
    pub fn entries(&self) -> impl Iterator<Item = (&String, &String)> {
        self.map.iter()
    }
    /// Apply a batch (infallible for memory).
    pub fn apply_batch(&mut self, batch: &Batch) {
        for op in &batch.ops {
            match op {
                Op::Put { key, value } => {
                    self.map.insert(key.clone(), value.clone());
                }
                Op::Delete { key } => {
                    self.map.remove(key);
                }
            }
        }
    }
}

impl KvRead for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<String>, CoreError> {
        Ok(self.map.get(key).cloned())
    }
    fn contains(&self, key: &str) -> Result<bool, CoreError> {
        Ok(self.map.contains_key(key))
    }
    fn scan(
        &self,
        prefix: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<(String, String)>, CoreError> {
        Ok(self
            .map
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .skip(offset)
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

impl Storage for MemoryStore {
    fn apply(&mut self, batch: &Batch) -> Result<(), CoreError> {
        self.apply_batch(batch);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_respects_prefix_offset_and_limit() {
        let mut s = MemoryStore::new();
        let mut b = Batch::new();
        for k in ["a/1", "a/2", "a/3", "ab/1", "b/1"] {
            b.put(k, "{}");
        }
        s.apply_batch(&b);
        let keys: Vec<String> = s
            .scan("a/", 1, 5)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec!["a/2", "a/3"]);
        assert_eq!(s.first_key("ab").unwrap().as_deref(), Some("ab/1"));
        let mut d = Batch::new();
        d.delete("a/2");
        s.apply_batch(&d);
        assert_eq!(s.scan("a/", 0, 10).unwrap().len(), 2);
    }
}
