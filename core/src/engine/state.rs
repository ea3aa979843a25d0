//! The engine's state: its configuration, the seeded generator every id, secret and jitter
//! comes from, the idempotency slots in flight and the record cache. The operations on it live
//! in the layers above (see `docs/architecture.md`).

use std::sync::Arc;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use super::cache;
use super::config::EngineConfig;
use crate::records::layout::{layout_of, Layout};
use crate::store::KvRead;
use crate::CoreError;

/// The detail of the `404` for `GET /openapi.json` from an engine that has no document: built
/// without the `openapi` feature, and not given one with [`Engine::set_openapi_json`].
pub(super) const NO_OPENAPI_DOCUMENT: &str =
    "this engine has no OpenAPI document: it was built without \
     the `openapi` feature and its host did not give one";

/// The idempotency slots (`{account}/{key}`) of the requests being processed: a few at a time
/// (one per request between its step and `finish`), so a list, searched in order. (A B-tree
/// set cost 1.2 KB of the wasm module gzipped for its removal code alone.)
#[derive(Debug, Default)]
pub(super) struct InFlight(Vec<String>);

impl InFlight {
    pub(super) fn contains(&self, slot: &str) -> bool {
        self.0.iter().any(|s| s == slot)
    }
    pub(super) fn insert(&mut self, slot: String) {
        if !self.contains(&slot) {
            self.0.push(slot);
        }
    }
    pub(super) fn remove(&mut self, slot: &str) {
        if let Some(i) = self.0.iter().position(|s| s == slot) {
            self.0.swap_remove(i);
        }
    }
}

/// The write-and-sync engine.
#[derive(Debug)]
pub struct Engine {
    pub(super) config: EngineConfig,
    rng: ChaCha20Rng,
    pub(super) in_flight: InFlight,
    last_id_ms: u64,
    id_counter: u16,
    pub(super) cache: cache::RecordCache,
    openapi_json: Option<HostDocument>,
    /// Whether the store was seen to hold the current data layout (checked once).
    layout_ok: bool,
    /// The store was empty and unmarked when this engine first looked: the first unit of work
    /// that writes also marks it with the current layout (`execute.rs`), so that a store is
    /// never found later holding data without a mark, which its next open would migrate as
    /// layout 2 (a pass over all its objects and syncs). A run [`Engine::tentatively`] drops
    /// gives it back.
    pub(super) mark_pending: bool,
}

/// A document the host gave the engine; its `Debug` form shows the length only.
struct HostDocument(Arc<str>);

impl std::fmt::Debug for HostDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostDocument({} bytes)", self.0.len())
    }
}

/// The OpenAPI 3.1 document of the contract (`core/openapi.json`), served at
/// `GET /openapi.json`.
#[cfg(feature = "openapi")]
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

impl Engine {
    /// A new engine. The configuration's seed drives every id, secret and jitter it draws:
    /// hosts pass fresh OS randomness in production and a fixed seed in tests.
    pub fn new(config: EngineConfig) -> Engine {
        let rng = ChaCha20Rng::from_seed(config.seed);
        Engine {
            config,
            rng,
            in_flight: InFlight::default(),
            last_id_ms: 0,
            id_counter: 0,
            cache: cache::RecordCache::default(),
            openapi_json: None,
            layout_ok: false,
            mark_pending: false,
        }
    }

    /// Refuse to work on a store whose data layout is not the current one (checked on the
    /// first call only: the engine is the single writer of its store).
    pub(super) fn check_layout(&mut self, store: &dyn KvRead) -> Result<(), CoreError> {
        if self.layout_ok {
            return Ok(());
        }
        match layout_of(store)? {
            #[cfg(feature = "layout1")]
            Layout::One => Err(CoreError::Layout(
                "the store holds data layout 1: migrate it first (Engine::migrate)".into(),
            )),
            #[cfg(not(feature = "layout1"))]
            Layout::One => Err(CoreError::Layout(
                crate::records::layout::LAYOUT1_UNSUPPORTED.into(),
            )),
            Layout::Older(v) => Err(CoreError::Layout(format!(
                "the store holds data layout {v}: migrate it first (Engine::migrate)"
            ))),
            Layout::Unmarked => {
                self.mark_pending = store.first_key("")?.is_none();
                self.layout_ok = true;
                Ok(())
            }
            Layout::Current => {
                self.layout_ok = true;
                Ok(())
            }
        }
    }

    /// A migration step found the store in the current layout (`step`, done): mark it with
    /// its first write when it holds nothing yet, no mark included.
    pub(super) fn layout_checked(
        &mut self,
        step: &super::MigrationStep,
        store: &dyn KvRead,
    ) -> Result<(), CoreError> {
        self.layout_ok = true;
        self.mark_pending = step.batch.is_empty()
            && store.get(crate::records::keys::LAYOUT)?.is_none()
            && store.first_key("")?.is_none();
        Ok(())
    }

    /// Serve `document` at `GET /openapi.json`: the text of `core/openapi.json`, which the
    /// host ships when the engine is built without the `openapi` feature (the wasm package
    /// does this to keep 217 KB out of its module). With the feature, the built-in document
    /// is served unless this was called. The answer is the same either way: `200`,
    /// `Content-Type: application/json`, the text as given.
    pub fn set_openapi_json(&mut self, document: impl Into<Arc<str>>) {
        self.openapi_json = Some(HostDocument(document.into()));
    }

    /// The document `GET /openapi.json` answers, if any.
    pub(super) fn openapi_json(&self) -> Option<&str> {
        match &self.openapi_json {
            Some(HostDocument(doc)) => Some(doc),
            #[cfg(feature = "openapi")]
            None => Some(OPENAPI_JSON),
            #[cfg(not(feature = "openapi"))]
            None => None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }
    /// A fresh time-ordered id: a UUID version 7 (RFC 9562) whose 12-bit `rand_a` field is a
    /// counter within the millisecond (method 1), so ids made by one engine sort in creation
    /// order; the other 62 bits come from the seeded generator.
    pub(super) fn new_id(&mut self, now_ms: i64) -> String {
        let mut ms = u64::try_from(now_ms).unwrap_or(0) & 0xffff_ffff_ffff;
        if ms <= self.last_id_ms {
            ms = self.last_id_ms;
            self.id_counter += 1;
            if self.id_counter > 0x0fff {
                ms += 1;
                self.id_counter = 0;
            }
        } else {
            self.id_counter = 0;
        }
        self.last_id_ms = ms;
        let mut bytes = [0u8; 16];
        bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
        bytes[6] = 0x70 | ((self.id_counter >> 8) as u8 & 0x0f);
        bytes[7] = (self.id_counter & 0xff) as u8;
        self.rng.fill_bytes(&mut bytes[8..]);
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        // Encoded into a stack buffer: `to_string` would go through `fmt` for each id.
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        uuid::Uuid::from_bytes(bytes)
            .hyphenated()
            .encode_lower(&mut text)
            .to_string()
    }

    /// Random bytes from the seeded generator.
    pub(super) fn random_bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        self.rng.fill_bytes(&mut b);
        b
    }

    /// A uniform number in [0, 1) for jitter.
    pub(super) fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Engine {
    /// Run `run`, which plans a step and answers it with whether the step is kept. When it is
    /// not, the generator, the id clock and a pending layout mark are put back as they were,
    /// so that planning the step again draws the same ids (and marks the store): for a host
    /// that discards a step it planned against incomplete reads (the wasm binding over an
    /// asynchronous store) and runs it again once it has read more. A discarded step must
    /// still be released ([`Engine::finish`]).
    pub fn tentatively<T>(&mut self, run: impl FnOnce(&mut Engine) -> (T, bool)) -> T {
        let saved = (
            self.rng.clone(),
            self.last_id_ms,
            self.id_counter,
            self.mark_pending,
        );
        let (out, keep) = run(self);
        if !keep {
            (
                self.rng,
                self.last_id_ms,
                self.id_counter,
                self.mark_pending,
            ) = saved;
        }
        out
    }
}

/// The time a time-ordered id of [`Engine::new_id`] carries (Unix ms); `None` for any other
/// text.
pub(crate) fn id_time_ms(id: &str) -> Option<i64> {
    let b = id.as_bytes();
    if b.len() != 36 || b[8] != b'-' || b[13] != b'-' || b[14] != b'7' {
        return None;
    }
    let high = i64::from_str_radix(id.get(0..8)?, 16).ok()?;
    let low = i64::from_str_radix(id.get(9..13)?, 16).ok()?;
    Some((high << 16) | low)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v7_and_sort_in_creation_order() {
        let mut e = Engine::new(EngineConfig::zero_seed_for_tests());
        let mut ids: Vec<String> = (0..5000).map(|_| e.new_id(1_790_000_000_000)).collect();
        ids.push(e.new_id(1_790_000_000_001));
        ids.push(e.new_id(1_789_000_000_000)); // a clock going back keeps the order
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        for id in &ids {
            let u = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(u.get_version_num(), 7);
        }
        let set: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(set.len(), ids.len());
    }

    #[test]
    fn a_discarded_run_draws_the_same_ids_again() {
        let mut e = Engine::new(EngineConfig::zero_seed_for_tests());
        let first = e.tentatively(|e| ((e.new_id(5), e.new_id(5)), false));
        let again = e.tentatively(|e| ((e.new_id(5), e.new_id(5)), true));
        assert_eq!(first, again);
        assert_ne!(e.new_id(5), again.1, "a kept run moved the generator on");
    }

    #[test]
    fn ids_carry_their_time() {
        let mut e = Engine::new(crate::EngineConfig::zero_seed_for_tests());
        let id = e.new_id(1_790_000_000_123);
        assert_eq!(id_time_ms(&id), Some(1_790_000_000_123));
        assert_eq!(id_time_ms("unknown"), None);
        assert_eq!(id_time_ms("01a0c450-6c00-400b-9d16-f0a2a95851ef"), None);
    }
}
