//! The engine: one value driven by its host.
//!
//! See the crate documentation for the calling contract.

mod api;
mod cache;
mod config;
mod tx;
mod work;
mod writes;

use std::collections::BTreeSet;
use std::sync::Arc;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::http::{problem, ApiRequest, ApiResponse, ProblemKind};
use crate::store::{Batch, KvRead, Storage};
use crate::CoreError;

pub use config::{ConfigJson, EngineConfig};
pub use work::{OutboundRequest, Outcome, WorkItem, WorkKind, TOKEN_EXPIRY_MARGIN_MS, TOKEN_URL};

/// The result of planning one API request: the answer, and the writes that must be committed
/// atomically before the answer is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The answer to send once `batch` is committed.
    pub response: ApiResponse,
    /// The writes of the request; empty for reads and errors.
    pub batch: Batch,
    /// The idempotency slot this step holds until [`Engine::finish`].
    in_flight: Option<String>,
}

/// The work that [`Engine::due`] hands out: commit `batch` first (it records the leases), then
/// perform `items` and report each outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueWork {
    /// Pushes and deliveries to perform now.
    pub items: Vec<WorkItem>,
    /// The lease records to commit before performing them.
    pub batch: Batch,
    /// Records that could not be decoded and were taken off the wake-up index (each with the
    /// reason), so that one corrupt row does not stop all other work. Hosts should log them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

/// The detail of the `404` for `GET /openapi.json` from an engine that has no document: built
/// without the `openapi` feature, and not given one with [`Engine::set_openapi_json`].
const NO_OPENAPI_DOCUMENT: &str = "this engine has no OpenAPI document: it was built without \
     the `openapi` feature and its host did not give one";

/// The write-and-sync engine.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    rng: ChaCha20Rng,
    in_flight: BTreeSet<String>,
    last_id_ms: u64,
    id_counter: u16,
    cache: cache::RecordCache,
    openapi_json: Option<HostDocument>,
}

/// A document the host gave the engine; its `Debug` form shows the length only.
struct HostDocument(Arc<str>);

impl std::fmt::Debug for HostDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostDocument({} bytes)", self.0.len())
    }
}

impl Engine {
    /// A new engine. The configuration's seed drives every id, secret and jitter it draws:
    /// hosts pass fresh OS randomness in production and a fixed seed in tests.
    pub fn new(config: EngineConfig) -> Engine {
        let rng = ChaCha20Rng::from_seed(config.seed);
        Engine {
            config,
            rng,
            in_flight: BTreeSet::new(),
            last_id_ms: 0,
            id_counter: 0,
            cache: cache::RecordCache::default(),
            openapi_json: None,
        }
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
    fn openapi_json(&self) -> Option<&str> {
        match &self.openapi_json {
            Some(HostDocument(doc)) => Some(doc),
            #[cfg(feature = "openapi")]
            None => Some(api::OPENAPI_JSON),
            #[cfg(not(feature = "openapi"))]
            None => None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Plan the answer to one request. Reads go through `store`; the returned
    /// [`Step::batch`] must be applied atomically before [`Step::response`] is sent, and
    /// [`Engine::finish`] must be called with the step afterwards (also when the commit failed,
    /// in which case the host answers `503` instead). Never panics on any request.
    pub fn handle(&mut self, request: &ApiRequest, now_ms: i64, store: &dyn KvRead) -> Step {
        api::handle(self, request, now_ms, store)
    }

    /// Release what a step held (its idempotency slot).
    pub fn finish(&mut self, step: &Step) {
        if let Some(k) = &step.in_flight {
            self.in_flight.remove(k);
        }
    }

    /// Plan, commit through `store`, and finish: the whole request cycle for hosts whose
    /// storage answers synchronously. A failed commit answers `503` and changes nothing.
    pub fn handle_with(
        &mut self,
        request: &ApiRequest,
        now_ms: i64,
        store: &mut dyn Storage,
    ) -> ApiResponse {
        let step = self.handle(request, now_ms, &*store);
        let committed = if step.batch.is_empty() {
            Ok(())
        } else {
            store.apply(&step.batch)
        };
        self.finish(&step);
        match committed {
            Ok(()) => step.response,
            Err(e) => {
                let mut r = problem(ProblemKind::StorageUnavailable, e.to_string());
                if let Some(id) = step.response.headers.get("X-Request-ID") {
                    r.set_header("X-Request-ID", id.clone());
                }
                r
            }
        }
    }

    /// Claim up to `limit` pushes and deliveries that are due at `now_ms`.
    pub fn due(
        &mut self,
        now_ms: i64,
        limit: usize,
        store: &dyn KvRead,
    ) -> Result<DueWork, CoreError> {
        work::due(self, now_ms, limit, store)
    }

    /// [`Engine::due`] with the lease batch committed through `store`.
    pub fn due_with(
        &mut self,
        now_ms: i64,
        limit: usize,
        store: &mut dyn Storage,
    ) -> Result<Vec<WorkItem>, CoreError> {
        let work = self.due(now_ms, limit, &*store)?;
        if !work.batch.is_empty() {
            store.apply(&work.batch)?;
        }
        Ok(work.items)
    }

    /// Take the outcome of a work item handed out by [`Engine::due`]; the returned batch must
    /// be committed atomically.
    pub fn report(
        &mut self,
        work_id: &str,
        outcome: &Outcome,
        now_ms: i64,
        store: &dyn KvRead,
    ) -> Result<Batch, CoreError> {
        work::report(self, work_id, outcome, now_ms, store)
    }

    /// [`Engine::report`] with the batch committed through `store`.
    pub fn report_with(
        &mut self,
        work_id: &str,
        outcome: &Outcome,
        now_ms: i64,
        store: &mut dyn Storage,
    ) -> Result<(), CoreError> {
        let batch = self.report(work_id, outcome, now_ms, &*store)?;
        store.apply(&batch)
    }

    /// The earliest time at which [`Engine::due`] will have something (or a lease expires),
    /// in Unix milliseconds; `None` when nothing is owed.
    pub fn next_deadline(&self, store: &dyn KvRead) -> Result<Option<i64>, CoreError> {
        work::next_deadline(store)
    }

    /// Remove idempotency records and finished deliveries older than their retention.
    /// Nothing unfinished is removed. At most `limit` records of each kind per call.
    pub fn prune(
        &mut self,
        now_ms: i64,
        limit: usize,
        store: &dyn KvRead,
    ) -> Result<Batch, CoreError> {
        work::prune(self, now_ms, limit, store)
    }

    /// [`Engine::prune`] with the batch committed through `store`; answers how many writes
    /// the batch held (0 when nothing was left to prune).
    pub fn prune_with(
        &mut self,
        now_ms: i64,
        limit: usize,
        store: &mut dyn Storage,
    ) -> Result<usize, CoreError> {
        let batch = self.prune(now_ms, limit, &*store)?;
        if !batch.is_empty() {
            store.apply(&batch)?;
        }
        Ok(batch.ops.len())
    }

    /// Make every leased push and delivery due at `now_ms` again, as if its lease had run out.
    /// For a host that knows it is the only worker on its storage and has just started (after
    /// a crash, the items it had in flight are then retried at once instead of after their
    /// lease). Retried items keep their `Idempotency-Key`; the lost attempt still counts.
    pub fn recover(&mut self, now_ms: i64, store: &dyn KvRead) -> Result<Batch, CoreError> {
        work::recover(now_ms, store)
    }

    /// A fresh time-ordered id: a UUID version 7 (RFC 9562) whose 12-bit `rand_a` field is a
    /// counter within the millisecond (method 1), so ids made by one engine sort in creation
    /// order; the other 62 bits come from the seeded generator.
    pub(crate) fn new_id(&mut self, now_ms: i64) -> String {
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
    pub(crate) fn random_bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        self.rng.fill_bytes(&mut b);
        b
    }

    /// A uniform number in [0, 1) for jitter.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v7_and_sort_in_creation_order() {
        let mut e = Engine::new(EngineConfig::default());
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
}
