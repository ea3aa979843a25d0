//! Decoded records, reused while their stored text is unchanged.
//!
//! Every request reads the API key, the account and (for pushes) the connections. The engine
//! still reads their JSON text from the host's store each time, so the store stays the only
//! source of truth; what is cached is the decoding, keyed by store key and checked against the
//! text just read. A changed row is decoded again; nothing stale can be answered.
//!
//! Natively the entries are a B-tree of up to [`MAX_ENTRIES`] (a server holds many accounts);
//! on wasm32 (an engine per account, held to a size budget) a short list, searched in order,
//! whose oldest entry makes room for a new one: the same behaviour without a B-tree
//! instantiation in the module.

#[cfg(feature = "record-cache")]
use std::any::Any;
#[cfg(all(feature = "record-cache", not(target_arch = "wasm32")))]
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::CoreError;

/// At most this many records are kept; natively the cache starts over when it is full.
#[cfg(all(feature = "record-cache", not(target_arch = "wasm32")))]
const MAX_ENTRIES: usize = 1024;
/// At most this many records are kept; a new one replaces the oldest.
#[cfg(all(feature = "record-cache", target_arch = "wasm32"))]
const MAX_ENTRIES: usize = 32;

#[cfg(feature = "record-cache")]
struct Entry {
    raw: String,
    value: Arc<dyn Any + Send + Sync>,
}

/// Decoded records by store key.
#[derive(Default)]
pub(crate) struct RecordCache {
    #[cfg(all(feature = "record-cache", not(target_arch = "wasm32")))]
    map: BTreeMap<String, Entry>,
    #[cfg(all(feature = "record-cache", target_arch = "wasm32"))]
    list: Recent<Entry>,
}

/// A short list of entries by key, searched in order: up to `MAX_ENTRIES`, after which a new
/// key replaces the oldest one. The wasm32 container (natively only its tests use it).
#[cfg(feature = "record-cache")]
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Recent<E> {
    list: Vec<(String, E)>,
    /// The index the next new key takes once the list is full.
    next: usize,
}

#[cfg(feature = "record-cache")]
impl<E> Default for Recent<E> {
    fn default() -> Self {
        Recent {
            list: Vec::new(),
            next: 0,
        }
    }
}

#[cfg(feature = "record-cache")]
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
impl<E> Recent<E> {
    fn get(&self, key: &str) -> Option<&E> {
        self.list.iter().find(|(k, _)| k == key).map(|(_, e)| e)
    }

    fn put(&mut self, key: &str, entry: E) {
        if let Some(slot) = self.list.iter_mut().find(|(k, _)| k == key) {
            slot.1 = entry;
        } else if self.list.len() < MAX_ENTRIES {
            self.list.push((key.to_string(), entry));
        } else if let Some(slot) = self.list.get_mut(self.next) {
            *slot = (key.to_string(), entry);
            self.next = (self.next + 1) % MAX_ENTRIES;
        }
    }

    fn len(&self) -> usize {
        self.list.len()
    }
}

impl fmt::Debug for RecordCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RecordCache");
        #[cfg(feature = "record-cache")]
        d.field("entries", &self.len());
        d.finish()
    }
}

#[cfg(all(feature = "record-cache", not(target_arch = "wasm32")))]
impl RecordCache {
    #[inline(never)]
    fn find(&self, key: &str) -> Option<&Entry> {
        self.map.get(key)
    }

    #[inline(never)]
    fn keep(&mut self, key: &str, entry: Entry) {
        if self.map.len() >= MAX_ENTRIES && !self.map.contains_key(key) {
            self.map.clear();
        }
        match self.map.get_mut(key) {
            Some(e) => *e = entry,
            None => {
                self.map.insert(key.to_string(), entry);
            }
        }
    }

    /// Number of cached records.
    fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(all(feature = "record-cache", target_arch = "wasm32"))]
impl RecordCache {
    #[inline(never)]
    fn find(&self, key: &str) -> Option<&Entry> {
        self.list.get(key)
    }

    #[inline(never)]
    fn keep(&mut self, key: &str, entry: Entry) {
        self.list.put(key, entry);
    }

    /// Number of cached records.
    fn len(&self) -> usize {
        self.list.len()
    }
}

/// The error of a row that does not decode.
fn corrupt(key: &str, e: &serde_json::Error) -> CoreError {
    CoreError::CorruptRow {
        key: key.to_string(),
        reason: e.to_string(),
    }
}

impl RecordCache {
    /// The record stored under `key` as `raw`, decoded (with the `record-cache` feature off:
    /// always decoded afresh).
    #[cfg(not(feature = "record-cache"))]
    pub(crate) fn decode<T>(&mut self, key: &str, raw: String) -> Result<Arc<T>, CoreError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        serde_json::from_str(&raw)
            .map(Arc::new)
            .map_err(|e| corrupt(key, &e))
    }

    /// The record stored under `key` as `raw`, decoded (or the earlier decoding of the same
    /// text). Only the parse and the downcast are per record type; the lookup and the update
    /// are shared (`hit`, `keep`).
    #[cfg(feature = "record-cache")]
    pub(crate) fn decode<T>(&mut self, key: &str, raw: String) -> Result<Arc<T>, CoreError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        if let Some(Ok(v)) = self.hit(key, &raw).map(|v| v.downcast::<T>()) {
            return Ok(v);
        }
        let value: Arc<T> = Arc::new(serde_json::from_str(&raw).map_err(|e| corrupt(key, &e))?);
        self.keep(
            key,
            Entry {
                raw,
                value: Arc::clone(&value) as Arc<dyn Any + Send + Sync>,
            },
        );
        Ok(value)
    }

    /// The decoding kept for `key`, if it was decoded from `raw`.
    #[cfg(feature = "record-cache")]
    #[inline(never)]
    fn hit(&self, key: &str, raw: &str) -> Option<Arc<dyn Any + Send + Sync>> {
        self.find(key)
            .filter(|e| e.raw == raw)
            .map(|e| Arc::clone(&e.value))
    }
}

#[cfg(all(test, feature = "record-cache"))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct R {
        a: u32,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Other {
        b: u32,
    }

    #[test]
    fn same_text_reuses_the_decoding_and_new_text_is_decoded_again() {
        let mut c = RecordCache::default();
        let one = c.decode::<R>("k", r#"{"a":1}"#.into()).unwrap();
        let again = c.decode::<R>("k", r#"{"a":1}"#.into()).unwrap();
        assert!(Arc::ptr_eq(&one, &again));
        let changed = c.decode::<R>("k", r#"{"a":2}"#.into()).unwrap();
        assert_eq!(changed.a, 2);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn another_type_under_the_same_key_is_decoded_as_that_type() {
        let mut c = RecordCache::default();
        c.decode::<R>("k", r#"{"a":1,"b":2}"#.into()).unwrap();
        let o = c.decode::<Other>("k", r#"{"a":1,"b":2}"#.into()).unwrap();
        assert_eq!(o.b, 2);
    }

    #[test]
    fn corrupt_text_is_an_error_and_is_not_cached() {
        let mut c = RecordCache::default();
        let e = c.decode::<R>("k", "{".into()).unwrap_err();
        assert!(matches!(e, CoreError::CorruptRow { .. }));
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn the_short_list_keeps_the_newest_and_replaces_the_oldest() {
        let mut r = Recent::default();
        for i in 0..MAX_ENTRIES {
            r.put(&format!("k{i}"), i);
        }
        r.put("k0", 100);
        assert_eq!((r.get("k0"), r.len()), (Some(&100), MAX_ENTRIES));
        // Full: each new key takes the place of the oldest one.
        r.put("new1", 1);
        r.put("new2", 2);
        assert_eq!((r.get("k0"), r.get("k1")), (None, None));
        assert_eq!(
            (r.get("new1"), r.get("new2"), r.get("k2")),
            (Some(&1), Some(&2), Some(&2))
        );
        assert_eq!(r.len(), MAX_ENTRIES);
        for i in 0..3 * MAX_ENTRIES {
            r.put(&format!("m{i}"), i);
            assert!(r.len() <= MAX_ENTRIES);
        }
        assert_eq!(
            r.get(&format!("m{}", 3 * MAX_ENTRIES - 1)),
            Some(&(3 * MAX_ENTRIES - 1))
        );
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut c = RecordCache::default();
        for i in 0..(MAX_ENTRIES + 10) {
            c.decode::<R>(&format!("k{i}"), r#"{"a":1}"#.into())
                .unwrap();
        }
        assert!(c.len() <= MAX_ENTRIES);
    }
}
