//! The binding's bounded cache of the host's storage.
//!
//! The engine reads the host's storage on demand (`reads.rs`); this cache keeps what recent
//! steps read so that the records every request reads (the API key, the account, the
//! connections) do not cross into JS each time. It stays coherent because the engine is the
//! single writer of its storage: every batch the host commits is applied here too
//! ([`Cache::apply`]), and nothing changes on an abort.
//!
//! Two kinds of entries, each with a fixed bound:
//! - point reads, a key and its value or the knowledge that the key is absent: at most
//!   [`SLOTS`] entries (one slot per key hash, a newer key takes the slot) and [`MAX_BYTES`]
//!   of keys and values together (when a new entry would pass it, the point entries are
//!   dropped and the cache starts over); an entry larger than a sixteenth of that is not kept.
//! - scan results by `(prefix, offset, limit)`: at most [`MAX_SCANS`] results and
//!   [`MAX_SCAN_BYTES`] together, dropped first in first out, and dropped as soon as a commit
//!   writes a key that starts with their prefix; a result larger than a quarter of the bytes
//!   is not kept.
//!
//! A commit refreshes the point entries of the keys it writes that the cache holds; it does
//! not add the others (a written row is rarely read by the next steps, and would push out the
//! rows every step reads).

use writesync_core::{Batch, Op};

/// The number of point entries (a power of two).
pub(crate) const SLOTS: usize = 2048;
/// The most bytes of keys and values the point entries hold together.
pub(crate) const MAX_BYTES: usize = 4 << 20;
/// The most scan results the cache holds.
pub(crate) const MAX_SCANS: usize = 32;
/// The most bytes of keys and values the scan results hold together.
pub(crate) const MAX_SCAN_BYTES: usize = 1 << 20;

/// A point entry: the value, or `None` when the key is known to be absent.
pub(crate) type Value = Option<String>;

/// A scan's answer.
pub(crate) type Rows = Vec<(String, String)>;

/// A scan's arguments, as the host interface takes them (JS numbers: at most `u32::MAX`).
pub(crate) type ScanArgs = (String, u32, u32);

#[derive(Debug)]
struct Slot {
    key: Box<str>,
    value: Value,
}

fn weight(key: &str, value: &Value) -> usize {
    key.len() + value.as_ref().map_or(0, String::len)
}

/// A hash over 4-byte words (FxHash's step; a key's tail shorter than a word is zero-padded,
/// and the length is mixed in first), then murmur3's final mix so that every bit of the key
/// reaches the low bits the slot is taken from. Small, and enough to spread the engine's keys
/// over the slots. One multiplication per word, since this runs for every read and every written
/// key: FNV with one multiplication (and one iterator call) per byte was 2 % of a pushing write
/// in the wasm benchmark (`bench/throughput.mjs`).
fn slot_of(key: &str) -> usize {
    let b = key.as_bytes();
    let mut h = b.len() as u32;
    let mut i = 0;
    while i < b.len() {
        // The word is gathered by a plain index loop: a copy of a variable length would be a
        // `memory.copy`, which V8 runs as a call out of the module, and iterator adapters stay
        // calls in a module built for size.
        let end = b.len().min(i + 4);
        let mut w = 0u32;
        let mut shift = 0;
        while i < end {
            w |= u32::from(b[i]) << shift;
            shift += 8;
            i += 1;
        }
        h = (h.rotate_left(5) ^ w).wrapping_mul(0x9e37_79b9);
    }
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h as usize & (SLOTS - 1)
}

/// The bounded cache (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct Cache {
    slots: Vec<Option<Slot>>,
    bytes: usize,
    scans: Vec<(ScanArgs, Rows, usize)>,
    scan_bytes: usize,
}

impl Cache {
    /// Point entries, their bytes plus those of the scan results, scan results.
    pub(crate) fn stats(&self) -> [usize; 3] {
        [
            self.slots.iter().flatten().count(),
            self.bytes + self.scan_bytes,
            self.scans.len(),
        ]
    }

    /// The cached entry of `key`: `Some(None)` when it is known to be absent, `None` when the
    /// cache does not know.
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        match self.slots.get(slot_of(key)) {
            Some(Some(s)) if *s.key == *key => Some(&s.value),
            _ => None,
        }
    }

    /// Remember what `key` holds.
    pub(crate) fn put(&mut self, key: &str, value: Value) {
        if self.slots.is_empty() {
            self.slots.resize_with(SLOTS, || None);
        }
        let i = slot_of(key);
        if let Some(Some(old)) = self.slots.get_mut(i).map(Option::take) {
            self.bytes -= weight(&old.key, &old.value);
        }
        let w = weight(key, &value);
        if w > MAX_BYTES / 16 {
            return;
        }
        if self.bytes + w > MAX_BYTES {
            self.slots.iter_mut().for_each(|s| *s = None);
            self.bytes = 0;
        }
        if let Some(slot) = self.slots.get_mut(i) {
            self.bytes += w;
            *slot = Some(Slot {
                key: Box::from(key),
                value,
            });
        }
    }

    /// The cached answer of a scan.
    pub(crate) fn scan(&self, prefix: &str, offset: u32, limit: u32) -> Option<&Rows> {
        self.scans
            .iter()
            .find(|((p, o, l), _, _)| *o == offset && *l == limit && p == prefix)
            .map(|(_, rows, _)| rows)
    }

    /// Remember a scan's answer.
    pub(crate) fn put_scan(&mut self, args: ScanArgs, rows: Rows) {
        let bytes = args.0.len() + rows.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        if bytes > MAX_SCAN_BYTES / 4 || self.scan(&args.0, args.1, args.2).is_some() {
            return;
        }
        while !self.scans.is_empty()
            && (self.scans.len() >= MAX_SCANS || self.scan_bytes + bytes > MAX_SCAN_BYTES)
        {
            let (_, _, b) = self.scans.remove(0);
            self.scan_bytes -= b;
        }
        self.scan_bytes += bytes;
        self.scans.push((args, rows, bytes));
    }

    /// Apply a batch the host has committed.
    pub(crate) fn apply(&mut self, batch: &Batch) {
        for op in &batch.ops {
            let (key, value) = match op {
                Op::Put { key, value } => (key, Some(value)),
                Op::Delete { key } => (key, None),
            };
            let mut freed = 0;
            self.scans.retain(|((p, _, _), _, b)| {
                let keep = !key.starts_with(p.as_str());
                if !keep {
                    freed += b;
                }
                keep
            });
            self.scan_bytes -= freed;
            if self.get(key).is_some() {
                self.put(key, value.cloned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn points_are_remembered_refreshed_by_commits_and_known_absent() {
        let mut c = Cache::default();
        assert_eq!(c.get("a"), None);
        c.put("a", Some("1".into()));
        c.put("b", None);
        assert_eq!(c.get("a"), Some(&Some("1".into())));
        assert_eq!(c.get("b"), Some(&None));
        let mut batch = Batch::new();
        batch.put("b", "2");
        batch.delete("a");
        batch.put("c", "3");
        c.apply(&batch);
        assert_eq!(c.get("a"), Some(&None));
        assert_eq!(c.get("b"), Some(&Some("2".into())));
        assert_eq!(c.get("c"), None, "a commit does not add keys");
        assert_eq!(c.stats(), [2, 3, 0]);
    }

    #[test]
    fn the_bounds_hold() {
        let mut c = Cache::default();
        for i in 0..5 * SLOTS {
            c.put(&format!("k/{i}"), Some("v".repeat(i % 3000)));
            let [entries, bytes, _] = c.stats();
            assert!(
                entries <= SLOTS && bytes <= MAX_BYTES,
                "{i}: {entries} {bytes}"
            );
        }
        assert!(c.stats()[0] > SLOTS / 4, "the slots are used");
        // Too large to keep: not kept, and what the slot knew is gone.
        c.put("k/1", Some("y".repeat(MAX_BYTES / 8)));
        assert_eq!(c.get("k/1"), None);
    }

    #[test]
    fn keys_that_differ_in_one_byte_spread_over_the_slots() {
        // Keys of the engine's shape: a long shared prefix, then an id; one byte differs, at
        // the end (in a word's last lane) or in the middle.
        let mut used = std::collections::BTreeSet::new();
        for i in 0..256u32 {
            let c = char::from_u32(0x20 + (i % 0x5f)).unwrap();
            used.insert(slot_of(&format!("sy/-P23J5k-R15Wi0ALABCn9{c}{}", i / 0x5f)));
            used.insert(slot_of(&format!(
                "ak/{c}-P23J5k-R15Wi0ALABCn9-/{}",
                i / 0x5f
            )));
        }
        assert!(used.len() > 400, "{} slots for 512 keys", used.len());
        // The length counts: a key and its extension by a zero byte differ.
        assert_ne!(slot_of("ab"), slot_of("ab\0"));
    }

    #[test]
    fn scans_are_bounded_and_dropped_by_writes_under_their_prefix() {
        let mut c = Cache::default();
        let rows = vec![("a/1".to_string(), "1".to_string())];
        c.put_scan(("a/".into(), 0, 10), rows.clone());
        c.put_scan(("b/".into(), 0, 10), Vec::new());
        assert_eq!(c.scan("a/", 0, 10), Some(&rows));
        assert_eq!(c.scan("a/", 1, 10), None);
        let mut batch = Batch::new();
        batch.put("a/2", "2");
        c.apply(&batch);
        assert_eq!(
            c.scan("a/", 0, 10),
            None,
            "a write under the prefix drops it"
        );
        assert_eq!(c.scan("b/", 0, 10), Some(&Vec::new()), "others stay");
        for i in 0..3 * MAX_SCANS {
            c.put_scan((format!("p{i}/"), 0, 1), rows.clone());
            assert!(c.stats()[2] <= MAX_SCANS);
        }
        let fat = vec![("k".to_string(), "v".repeat(MAX_SCAN_BYTES / 8))];
        for i in 0..40 {
            c.put_scan((format!("q{i}/"), 0, 1), fat.clone());
            assert!(c.scan_bytes <= MAX_SCAN_BYTES);
        }
        c.put_scan(
            ("big/".into(), 0, 1),
            vec![("k".into(), "v".repeat(MAX_SCAN_BYTES))],
        );
        assert_eq!(c.scan("big/", 0, 1), None);
    }
}
