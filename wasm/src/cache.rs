//! The binding's cache of the host's storage: the core's [`KvRead`] seam over memory.
//!
//! It answers exactly what [`writesync_core::MemoryStore`] answers (keys ordered bytewise), but is
//! laid out for wasm32, where `memcmp` is a byte loop: the B-tree's keys compare 8 bytes at a
//! time. With byte-loop comparisons the B-tree took about a tenth of the wasm engine's time in
//! the throughput benchmark.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use writesync_core::{Batch, CoreError, KvRead, Op};

/// Compare byte strings in the order of `<[u8]>::cmp`, a machine word at a time.
fn cmp_bytes(a: &[u8], b: &[u8]) -> Ordering {
    let mut wa = a.chunks_exact(8);
    let mut wb = b.chunks_exact(8);
    let mut done = 0;
    while let (Some(x), Some(y)) = (wa.next(), wb.next()) {
        // Chunks are exactly 8 bytes, so the conversions cannot fail.
        let x = u64::from_be_bytes(<[u8; 8]>::try_from(x).unwrap_or_default());
        let y = u64::from_be_bytes(<[u8; 8]>::try_from(y).unwrap_or_default());
        if x != y {
            return x.cmp(&y);
        }
        done += 8;
    }
    a.get(done..).cmp(&b.get(done..))
}

/// A key in byte order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OrdKey(Box<str>);

impl Ord for OrdKey {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_bytes(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl PartialOrd for OrdKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Entries of the host's storage, held in memory.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    entries: BTreeMap<OrdKey, String>,
}

impl Cache {
    /// An empty cache.
    pub(crate) fn new() -> Cache {
        Cache::default()
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Apply a batch the host has committed, taking its strings.
    pub(crate) fn apply(&mut self, batch: Batch) {
        for op in batch.ops {
            match op {
                Op::Put { key, value } => {
                    self.entries.insert(OrdKey(key.into_boxed_str()), value);
                }
                Op::Delete { key } => {
                    self.entries.remove(&OrdKey(key.into_boxed_str()));
                }
            }
        }
    }
}

impl KvRead for Cache {
    fn get(&self, key: &str) -> Result<Option<String>, CoreError> {
        Ok(self.entries.get(&OrdKey(Box::from(key))).cloned())
    }

    fn scan(
        &self,
        prefix: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<(String, String)>, CoreError> {
        Ok(self
            .entries
            .range(OrdKey(Box::from(prefix))..)
            .take_while(|(k, _)| k.0.starts_with(prefix))
            .skip(offset)
            .take(limit)
            .map(|(k, v)| (k.0.to_string(), v.clone()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use writesync_core::MemoryStore;

    #[test]
    fn word_compare_is_byte_order() {
        let words = [
            "",
            "a",
            "ab",
            "abcdefgh",
            "abcdefgh\u{0}",
            "abcdefghi",
            "abcdefgi",
            "abcdefg",
            "b",
            "\u{7f}",
            "\u{80}",
            "é",
            "\u{fffd}",
            "\u{10000}",
            "obj/a/invoice/1",
            "obj/a/invoice/10",
            "obj/a/invoice/2",
            "obj/a/invoice",
            "obj/a/invoices",
        ];
        for a in words {
            for b in words {
                assert_eq!(
                    cmp_bytes(a.as_bytes(), b.as_bytes()),
                    a.as_bytes().cmp(b.as_bytes()),
                    "{a:?} {b:?}"
                );
            }
        }
    }

    #[test]
    fn answers_like_memory_store() {
        let mut cache = Cache::new();
        let mut mem = MemoryStore::new();
        let mut b = Batch::new();
        for k in [
            "a/1", "a/2", "a/3", "ab/1", "b/1", "a/10", "a/\u{e9}", "a/z",
        ] {
            b.put(k, format!("\"{k}\""));
        }
        b.delete("a/2");
        b.put("a/1", "\"again\"");
        mem.apply_batch(&b);
        cache.apply(b);
        assert_eq!(cache.len(), mem.len());
        for prefix in ["", "a", "a/", "ab", "b/", "c"] {
            for (offset, limit) in [(0, 100), (1, 2), (0, 1), (5, 5)] {
                assert_eq!(
                    cache.scan(prefix, offset, limit).unwrap(),
                    mem.scan(prefix, offset, limit).unwrap(),
                    "{prefix} {offset} {limit}"
                );
            }
            assert_eq!(
                cache.first_key(prefix).unwrap(),
                mem.first_key(prefix).unwrap()
            );
        }
        for k in ["a/1", "a/2", "zz"] {
            assert_eq!(cache.get(k).unwrap(), mem.get(k).unwrap());
        }
    }
}
