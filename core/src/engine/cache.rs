//! Decoded records, reused while their stored text is unchanged.
//!
//! Every request reads the API key, the account and (for pushes) the connections. The engine
//! still reads their JSON text from the host's store each time, so the store stays the only
//! source of truth; what is cached is the decoding, keyed by store key and checked against the
//! text just read. A changed row is decoded again; nothing stale can be answered.

#[cfg(feature = "record-cache")]
use std::any::Any;
#[cfg(feature = "record-cache")]
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::CoreError;

/// At most this many records are kept; the cache starts over when it is full.
#[cfg(feature = "record-cache")]
const MAX_ENTRIES: usize = 1024;

#[cfg(feature = "record-cache")]
struct Entry {
    raw: String,
    value: Arc<dyn Any + Send + Sync>,
}

/// Decoded records by store key.
#[derive(Default)]
pub(crate) struct RecordCache {
    #[cfg(feature = "record-cache")]
    map: BTreeMap<String, Entry>,
}

impl fmt::Debug for RecordCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RecordCache");
        #[cfg(feature = "record-cache")]
        d.field("entries", &self.map.len());
        d.finish()
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
            .map_err(|e| CoreError::CorruptRow {
                key: key.to_string(),
                reason: e.to_string(),
            })
    }

    /// The record stored under `key` as `raw`, decoded (or the earlier decoding of the same
    /// text).
    #[cfg(feature = "record-cache")]
    pub(crate) fn decode<T>(&mut self, key: &str, raw: String) -> Result<Arc<T>, CoreError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        if let Some(e) = self.map.get(key) {
            if e.raw == raw {
                if let Ok(v) = Arc::clone(&e.value).downcast::<T>() {
                    return Ok(v);
                }
            }
        }
        let value: Arc<T> =
            Arc::new(
                serde_json::from_str(&raw).map_err(|e| CoreError::CorruptRow {
                    key: key.to_string(),
                    reason: e.to_string(),
                })?,
            );
        if self.map.len() >= MAX_ENTRIES && !self.map.contains_key(key) {
            self.map.clear();
        }
        let entry = Entry {
            raw,
            value: Arc::clone(&value) as Arc<dyn Any + Send + Sync>,
        };
        match self.map.get_mut(key) {
            Some(e) => *e = entry,
            None => {
                self.map.insert(key.to_string(), entry);
            }
        }
        Ok(value)
    }

    /// Number of cached records.
    #[cfg(all(test, feature = "record-cache"))]
    fn len(&self) -> usize {
        self.map.len()
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
    fn the_cache_is_bounded() {
        let mut c = RecordCache::default();
        for i in 0..(MAX_ENTRIES + 10) {
            c.decode::<R>(&format!("k{i}"), r#"{"a":1}"#.into())
                .unwrap();
        }
        assert!(c.len() <= MAX_ENTRIES);
    }
}
