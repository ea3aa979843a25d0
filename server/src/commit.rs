//! Group commit of write requests, and reads on connections of their own.
//!
//! **Writes.** Every request that may write (any method but `GET` and `HEAD`) is queued for one
//! committer thread. It takes what is queued (at most [`GroupLimits::max_batch`] requests; under
//! load it waits up to [`GroupLimits::max_wait`] for as many requests as the previous batch
//! had, the number of requesters a steady load keeps waiting) and, holding the engine,
//! opens one `BEGIN IMMEDIATE` transaction for all of them. Each request is planned in arrival
//! order against the transaction, which already holds the writes of the requests planned
//! before it, and its batch is applied there inside a savepoint. One commit makes the whole
//! batch durable; only then are the answers released. So idempotency, `If-Match` and
//! uniqueness decide exactly as if the requests had come one after another, also between two
//! requests of one batch, and the commit's cost is shared by the batch.
//!
//! - A request whose own batch cannot be applied (its savepoint rolls back) is answered `503`;
//!   the others of the batch go on, planned against a state without it.
//! - A commit that fails answers `503` to every request of the batch, and nothing of any of
//!   them is stored.
//!
//! **Outcomes.** The worker's senders queue the outcome of each push, delivery and token
//! request here too ([`GroupCommit::report`]): the committer records every queued outcome
//! together, so a busy worker costs one commit per batch instead of one per item. When write
//! requests are queued as well, they are committed first in a transaction of their own and
//! answered, and the outcomes and the claim follow at once in a second one: a write's answer
//! does not wait for the work of the pushes and deliveries. That transaction has no
//! savepoints: an outcome or claim whose batch cannot be written spoils it, so nothing of it
//! is committed. An outcome whose commit fails is logged; its item is sent again when its
//! lease runs out, as before.
//!
//! **Claims.** The worker's claims of due work ([`GroupCommit::claim`]) are run last, in the
//! transaction of the outcomes: after the writes (whose pushes may be due at once) and the
//! outcomes (which may release the next push of an object).
//!
//! **Reads.** `GET` and `HEAD` are planned by reader engines, each with its own read-only
//! connection, in a read transaction (one WAL snapshot) of its own: reads never wait for the
//! committer, and see what was committed when they started. A read whose plan wants to write
//! (none does today) is passed to the committer instead.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use writesync_core::http::{problem, ProblemKind};
use writesync_core::{
    ApiRequest, ApiResponse, CoreError, Engine, Outcome, Step, Storage, WorkItem,
};
use writesync_sqlite::SqliteStore;

use crate::log;
use crate::state::{now_ms, random_uuid, AppState, Core};

/// Default most requests committed in one transaction.
pub const DEFAULT_MAX_BATCH: usize = 64;
/// Default longest a batch waits to fill under load.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(2);
/// Default number of reader engines (and read connections).
pub const DEFAULT_READERS: usize = 4;

/// Bounds of one group commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLimits {
    /// Most requests in one transaction.
    pub max_batch: usize,
    /// Longest the committer waits for more requests once it has some: until as many are
    /// queued as the previous batch had. It waits only while the previous batch had more
    /// than one request (under load): a lone request is committed at once.
    pub max_wait: Duration,
}

impl Default for GroupLimits {
    fn default() -> Self {
        GroupLimits {
            max_batch: DEFAULT_MAX_BATCH,
            max_wait: DEFAULT_MAX_WAIT,
        }
    }
}

/// A queued write request and where its answer goes.
struct Pending {
    request: ApiRequest,
    reply: mpsc::SyncSender<ApiResponse>,
}

/// A queued outcome of a work item.
struct Report {
    id: String,
    outcome: Outcome,
    /// For the log lines.
    sync_id: Option<String>,
}

/// A queued claim of due work: at most `limit` items, handed to `reply` after the commit.
struct Claim {
    limit: usize,
    reply: mpsc::SyncSender<Result<Vec<WorkItem>, CoreError>>,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Pending>,
    reports: Vec<Report>,
    claim: Option<Claim>,
    closed: bool,
}

impl Queue {
    fn is_empty(&self) -> bool {
        self.items.is_empty() && self.reports.is_empty() && self.claim.is_none()
    }
}

/// What one transaction of the committer runs.
struct Work {
    requests: Vec<Pending>,
    reports: Vec<Report>,
    claim: Option<Claim>,
}

/// The queue of write requests and the committer thread that empties it.
#[derive(Debug)]
pub struct GroupCommit {
    state: Arc<AppState>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    queue: Mutex<Queue>,
    arrived: Condvar,
    limits: GroupLimits,
    totals: Totals,
}

/// What the committer did since it started, logged when it stops (`group commit totals`):
/// how full its transactions were is what a raw SQLite baseline must match (`loadbench`).
#[derive(Debug, Default)]
struct Totals {
    /// Transactions committed or attempted.
    transactions: AtomicU64,
    /// Those that carried at least one write request.
    with_requests: AtomicU64,
    /// Write requests planned.
    requests: AtomicU64,
    /// Outcomes recorded.
    outcomes: AtomicU64,
    /// Claims run.
    claims: AtomicU64,
    /// Items those claims handed out.
    claimed: AtomicU64,
}

impl Totals {
    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn log(&self) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (with_requests, requests) = (get(&self.with_requests), get(&self.requests));
        let mean = if with_requests == 0 {
            Value::Null
        } else {
            serde_json::json!(((requests as f64 / with_requests as f64) * 100.0).round() / 100.0)
        };
        log::info(
            "group commit totals",
            &[
                ("transactions", serde_json::json!(get(&self.transactions))),
                ("transactionsWithRequests", serde_json::json!(with_requests)),
                ("requests", serde_json::json!(requests)),
                ("meanRequestsPerTransaction", mean),
                ("outcomes", serde_json::json!(get(&self.outcomes))),
                ("claims", serde_json::json!(get(&self.claims))),
                ("claimed", serde_json::json!(get(&self.claimed))),
            ],
        );
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl GroupCommit {
    /// Start the committer thread over `state`.
    pub fn start(state: Arc<AppState>, limits: GroupLimits) -> std::io::Result<GroupCommit> {
        let limits = GroupLimits {
            max_batch: limits.max_batch.max(1),
            max_wait: limits.max_wait,
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            arrived: Condvar::new(),
            limits,
            totals: Totals::default(),
        });
        let for_thread = Arc::clone(&shared);
        let state_for_thread = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("writesync-commit".into())
            .spawn(move || committer(&state_for_thread, &for_thread))?;
        Ok(GroupCommit {
            state,
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queue `request` and wait for its answer, which comes once its transaction committed
    /// (or failed).
    pub fn submit(&self, request: ApiRequest) -> ApiResponse {
        const NOT_RUN: &str = "the server is shutting down; the request was not run";
        let (tx, rx) = mpsc::sync_channel(1);
        let tracking = tracking_id(&request);
        {
            let mut q = self.shared.queue();
            if q.closed {
                drop(q);
                return unavailable(NOT_RUN, None, &request);
            }
            let path = request.path.clone();
            q.items.push_back(Pending { request, reply: tx });
            self.shared.arrived.notify_one();
            drop(q);
            if let Ok(answer) = rx.recv() {
                return answer;
            }
            // The committer stopped without answering (it cannot, short of a panic).
            let mut r = problem(ProblemKind::StorageUnavailable, NOT_RUN);
            if crate::httpd::is_api_path(&path) {
                r.set_header("X-Request-ID", random_uuid());
            }
            if let Some(t) = tracking {
                r.set_header("X-Tracking-ID", t);
            }
            r
        }
    }

    /// Queue the outcome of work item `id` for the next commit, without waiting for it. Once
    /// closed, it is recorded at once in a transaction of its own.
    pub fn report(&self, id: String, outcome: Outcome, sync_id: Option<String>) {
        let report = Report {
            id,
            outcome,
            sync_id,
        };
        let late = {
            let mut q = self.shared.queue();
            if q.closed {
                Some(report)
            } else {
                q.reports.push(report);
                self.shared.arrived.notify_one();
                None
            }
        };
        if let Some(r) = late {
            let mut guard = self.state.lock();
            let Core { engine, store } = &mut *guard;
            let result = engine.report_with(&r.id, &r.outcome, now_ms(), store);
            log_report(&r, result);
        }
    }

    /// Claim up to `limit` due pushes, deliveries and token requests in the next commit, and
    /// wait for them. Only one claim is queued at a time: a second one replaces the first's
    /// limit. Once closed, claims in a transaction of their own.
    pub fn claim(&self, limit: usize) -> Result<Vec<WorkItem>, CoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let queued = {
            let mut q = self.shared.queue();
            if q.closed {
                false
            } else {
                if let Some(old) = q.claim.take() {
                    // Nothing claimed for it: its caller gets an empty list.
                    let _ = old.reply.send(Ok(Vec::new()));
                }
                q.claim = Some(Claim { limit, reply: tx });
                self.shared.arrived.notify_one();
                true
            }
        };
        if !queued {
            let mut guard = self.state.lock();
            let Core { engine, store } = &mut *guard;
            return engine.due_with(now_ms(), limit, store);
        }
        rx.recv().unwrap_or_else(|_| {
            Err(CoreError::WrongState(
                "the committer stopped before the claim ran".into(),
            ))
        })
    }

    /// Commit what is queued, then stop the committer. Requests submitted afterwards are
    /// answered `503` without being run.
    pub fn close(&self) {
        self.shared.queue().closed = true;
        self.shared.arrived.notify_all();
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(h) = handle {
            let _ = h.join();
            self.shared.totals.log();
        }
    }
}

/// Take the next batch: block until a request is queued, then, under load, wait up to
/// `max_wait` for the batch to fill: to `fill` requests (at most `max_batch`). `None` once
/// closed and empty.
fn next_batch(shared: &Shared, under_load: bool, fill: usize) -> Option<Work> {
    let limits = shared.limits;
    let mut q = shared.queue();
    while q.is_empty() {
        if q.closed {
            return None;
        }
        q = shared
            .arrived
            .wait(q)
            .unwrap_or_else(PoisonError::into_inner);
    }
    let fill = fill.clamp(1, limits.max_batch);
    if under_load && !q.closed && q.items.len() < fill {
        let deadline = Instant::now() + limits.max_wait;
        while q.items.len() < fill && !q.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            q = shared
                .arrived
                .wait_timeout(q, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }
    let n = q.items.len().min(limits.max_batch);
    Some(Work {
        requests: q.items.drain(..n).collect(),
        reports: std::mem::take(&mut q.reports),
        claim: q.claim.take(),
    })
}

fn committer(state: &AppState, shared: &Shared) {
    let mut under_load = false;
    // Wait for as many requests as the last batch had: under a steady load that is how many
    // requesters are waiting for an answer, and they come back as soon as they have one. A
    // batch can grow past it (all that is queued is taken), so the target follows the load up.
    let mut fill = 1;
    while let Some(work) = next_batch(shared, under_load, fill) {
        let Work {
            requests: batch,
            reports,
            claim,
        } = work;
        // Waiting is for write requests: outcomes and claims alone (a backlog of pushes and
        // deliveries being worked off) are committed as they come.
        under_load = batch.len() > 1;
        fill = batch.len().max(2);
        if !batch.is_empty() && (!reports.is_empty() || claim.is_some()) {
            // The writes first, in a transaction of their own, so that their answers do not
            // wait for the outcomes and the claim; those follow at once in a second one.
            run(state, shared, batch, Vec::new(), None);
            run(state, shared, Vec::new(), reports, claim);
        } else {
            run(state, shared, batch, reports, claim);
        }
    }
}

/// Run one transaction and hand out what it answered.
fn run(
    state: &AppState,
    shared: &Shared,
    batch: Vec<Pending>,
    reports: Vec<Report>,
    claim: Option<Claim>,
) {
    let (answers, claimed) = commit_batch(state, &batch, &reports, claim.as_ref().map(|c| c.limit));
    let totals = &shared.totals;
    Totals::add(&totals.transactions, 1);
    if !batch.is_empty() {
        Totals::add(&totals.with_requests, 1);
        Totals::add(&totals.requests, batch.len());
    }
    Totals::add(&totals.outcomes, reports.len());
    if claim.is_some() {
        Totals::add(&totals.claims, 1);
        Totals::add(&totals.claimed, claimed.as_ref().map_or(0, Vec::len));
    }
    if let Some(c) = claim {
        let _ = c.reply.send(claimed);
    }
    let wrote = !reports.is_empty() || answers.iter().any(|a| (200..300).contains(&a.status));
    for (p, answer) in batch.into_iter().zip(answers) {
        // A requester that went away (its connection closed) no longer waits.
        let _ = p.reply.send(answer);
    }
    if wrote {
        state.notify();
    }
}

/// Plan every request of `batch` in one transaction and commit it: one answer per request,
/// in order.
/// Plan every request of `batch`, record `reports` and claim up to `claim` items in one
/// transaction and commit it: one answer per request, in order, and the claimed items.
fn commit_batch(
    state: &AppState,
    batch: &[Pending],
    reports: &[Report],
    claim: Option<usize>,
) -> (Vec<ApiResponse>, Result<Vec<WorkItem>, CoreError>) {
    let mut guard = state.lock();
    let Core { engine, store } = &mut *guard;
    let now = now_ms();
    // Write requests each get a savepoint, so that one whose batch cannot be applied is
    // answered 503 alone. Outcomes and claims never share a transaction with requests (see
    // `committer`) and are written without one: a savepoint copies every page it changes into
    // a statement journal first, which was 6% of the committer's time under pushing writes.
    // A batch of theirs that fails midway spoils the unit instead; the commit then rolls back
    // and errs, every outcome of it is logged as not recorded and its item is sent again when
    // its lease runs out, as after any failed commit.
    let mut uow = match if batch.is_empty() {
        store.begin_single_write()
    } else {
        store.begin_write()
    } {
        Ok(u) => u,
        Err(e) => {
            let reason = format!("storage error: {e}");
            for r in reports {
                log_report(r, Err(CoreError::storage(reason.clone())));
            }
            let answers = batch
                .iter()
                .map(|p| unavailable(&reason, None, &p.request))
                .collect();
            return (answers, Err(CoreError::storage(reason)));
        }
    };
    let mut planned: Vec<Result<Step, (Step, String)>> = Vec::with_capacity(batch.len());
    for p in batch {
        let step = engine.handle(&p.request, now, &uow);
        let applied = uow.apply(&step.batch);
        // The request's writes are in the transaction (or rolled back to its savepoint):
        // the next request is planned against them, as if this one had committed.
        engine.finish(&step);
        planned.push(match applied {
            Ok(()) => Ok(step),
            Err(e) => Err((step, format!("storage error: {e}"))),
        });
    }
    // Outcomes after the writes: a write never waits for them, and an outcome sees the state
    // the writes left (as if it had come just after them).
    let mut recorded = Vec::with_capacity(reports.len());
    for r in reports {
        let result = engine
            .report(&r.id, &r.outcome, now, &uow)
            .and_then(|b| uow.apply(&b));
        recorded.push(result);
    }
    let claimed = match claim {
        Some(limit) if limit > 0 => engine.due(now, limit, &uow).and_then(|work| {
            for why in &work.skipped {
                log::error(
                    "a work record could not be read and was taken off the wake-up index",
                    &[("reason", Value::String(why.clone()))],
                );
            }
            uow.apply(&work.batch).map(|()| work.items)
        }),
        _ => Ok(Vec::new()),
    };
    let committed = uow.commit();
    drop(guard);
    let claimed = match &committed {
        Ok(()) => claimed,
        Err(e) => Err(CoreError::storage(format!("storage error: {e}"))),
    };
    for (r, result) in reports.iter().zip(recorded) {
        let result = match (&committed, result) {
            (Ok(()), result) => result,
            (Err(e), Ok(())) => Err(CoreError::storage(format!("storage error: {e}"))),
            (Err(_), Err(e)) => Err(e),
        };
        log_report(r, result);
    }
    let answers = match committed {
        Ok(()) => planned
            .into_iter()
            .zip(batch)
            .map(|(r, p)| match r {
                Ok(step) => step.response,
                Err((step, reason)) => unavailable(&reason, Some(&step), &p.request),
            })
            .collect(),
        Err(e) => {
            let reason = format!("storage error: {e}");
            planned
                .iter()
                .zip(batch)
                .map(|(r, p)| {
                    let step = match r {
                        Ok(s) | Err((s, _)) => s,
                    };
                    unavailable(&reason, Some(step), &p.request)
                })
                .collect()
        }
    };
    (answers, claimed)
}

/// Log what became of a queued outcome (only what went wrong: the sender logged the attempt).
fn log_report(r: &Report, result: Result<(), CoreError>) {
    let sync = || r.sync_id.clone().map_or(Value::Null, Value::String);
    match result {
        Ok(()) => {}
        Err(CoreError::UnknownWork(why)) => log::info(
            "outcome no longer expected (the lease ran out); ignored",
            &[
                ("work", Value::String(r.id.clone())),
                ("reason", Value::String(why)),
                ("syncId", sync()),
            ],
        ),
        Err(e) => log::error(
            "cannot record an outcome; the item is sent again when its lease runs out",
            &[
                ("work", Value::String(r.id.clone())),
                ("error", Value::String(e.to_string())),
                ("syncId", sync()),
            ],
        ),
    }
}

/// A valid `X-Tracking-ID` of `request` (contract section 7: echoed on every answer).
fn tracking_id(request: &ApiRequest) -> Option<String> {
    let values = request
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("X-Tracking-ID"))
        .map(|(_, v)| v.as_str());
    crate::httpd::valid_tracking_id(values).map(String::from)
}

/// The `503` answered when a request's writes were not committed: the request id the engine
/// gave it (a fresh one for an `/api` request it never planned), and the request's valid
/// tracking id.
fn unavailable(reason: &str, step: Option<&Step>, request: &ApiRequest) -> ApiResponse {
    let mut r = problem(ProblemKind::StorageUnavailable, reason);
    match step.and_then(|s| s.response.headers.get("X-Request-ID")) {
        Some(id) => r.set_header("X-Request-ID", id.clone()),
        None if crate::httpd::is_api_path(&request.path) => {
            r.set_header("X-Request-ID", random_uuid());
        }
        None => {}
    }
    if let Some(t) = tracking_id(request) {
        r.set_header("X-Tracking-ID", t);
    }
    r
}

/// One reader: an engine and a read-only connection.
#[derive(Debug)]
struct Reader {
    engine: Engine,
    store: SqliteStore,
}

/// The reader engines that plan `GET` and `HEAD` requests.
#[derive(Debug)]
pub struct Readers {
    slots: Vec<Mutex<Reader>>,
    next: AtomicUsize,
}

impl Readers {
    /// `engines` and a connection for each, opened with `open`.
    pub fn new(
        engines: Vec<Engine>,
        mut open: impl FnMut() -> Result<SqliteStore, String>,
    ) -> Result<Readers, String> {
        let mut slots = Vec::with_capacity(engines.len());
        for engine in engines {
            slots.push(Mutex::new(Reader {
                engine,
                store: open()?,
            }));
        }
        Ok(Readers {
            slots,
            next: AtomicUsize::new(0),
        })
    }

    /// Plan a read on one snapshot. `None` when the plan wants to write (the caller passes
    /// the request to the committer) or there are no readers.
    pub fn read(&self, request: &ApiRequest) -> Option<ApiResponse> {
        let n = self.slots.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        // A free reader if there is one, else wait for the next in turn.
        let mut guard = (0..n)
            .find_map(|i| self.slots[(start + i) % n].try_lock().ok())
            .unwrap_or_else(|| {
                self.slots[start]
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
            });
        let Reader { engine, store } = &mut *guard;
        let uow = match store.begin_read() {
            Ok(u) => u,
            Err(e) => return Some(unavailable(&format!("storage error: {e}"), None, request)),
        };
        let step = engine.handle(request, now_ms(), &uow);
        engine.finish(&step);
        drop(uow);
        if step.batch.is_empty() {
            Some(step.response)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use writesync_core::EngineConfig;
    use writesync_sqlite::StoreOptions;

    const ADMIN: &str = "group-commit-admin";

    fn config(seed: u8) -> EngineConfig {
        EngineConfig::new([seed; 32]).with_admin_token(ADMIN)
    }

    fn open(path: &std::path::Path, busy: Duration) -> SqliteStore {
        SqliteStore::open_with(path, &StoreOptions::default().with_busy_timeout(busy)).unwrap()
    }

    fn state(dir: &tempfile::TempDir) -> AppState {
        let store = open(&dir.path().join("db"), Duration::from_millis(50));
        AppState::new(Engine::new(config(1)), store)
    }

    fn admin(method: &str, path: &str, body: &str) -> ApiRequest {
        let mut r =
            ApiRequest::new(method, path).header("Authorization", &format!("Bearer {ADMIN}"));
        r.body = Some(body.to_string());
        if !body.is_empty() {
            r = r.header("Content-Type", "application/json");
        }
        r
    }

    /// Run `requests` as one batch; their answers in order.
    fn batch(state: &AppState, requests: Vec<ApiRequest>) -> Vec<ApiResponse> {
        let pending: Vec<Pending> = requests
            .into_iter()
            .map(|request| Pending {
                request,
                reply: mpsc::sync_channel(1).0,
            })
            .collect();
        commit_batch(state, &pending, &[], None).0
    }

    /// Whether an account with `domain` can still be created (proves it is not stored), by
    /// creating it.
    fn domain_is_free(state: &AppState, domain: &str) -> bool {
        let body = format!(r#"{{"domain":"{domain}"}}"#);
        let r = batch(state, vec![admin("POST", "/admin/accounts", &body)]);
        match r[0].status {
            201 => true,
            409 => false,
            other => panic!("{other}: {}", r[0].body),
        }
    }

    #[test]
    fn uniqueness_holds_between_two_requests_of_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir);
        let body = r#"{"domain":"one.example.com"}"#;
        let answers = batch(
            &s,
            vec![
                admin("POST", "/admin/accounts", body),
                admin("POST", "/admin/accounts", body),
            ],
        );
        assert_eq!(answers[0].status, 201, "{}", answers[0].body);
        assert_eq!(answers[1].status, 409, "{}", answers[1].body);
        assert!(!domain_is_free(&s, "one.example.com"));
    }

    #[test]
    fn an_idempotency_key_replays_within_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir);
        let auth = tenant(&s, "idem.example.com", false);
        let create = || {
            ApiRequest::new("POST", "/api/customers")
                .header("Authorization", &auth)
                .header("Idempotency-Key", "same-key")
                .json(&serde_json::json!({"name": "Acme", "email": "ap@acme.example.com"}))
        };
        let answers = batch(&s, vec![create(), create(), create()]);
        for a in &answers {
            assert_eq!(a.status, 201, "{}", a.body);
        }
        let id = answers[0].body_json()["id"].clone();
        assert!(answers.iter().all(|a| a.body_json()["id"] == id));
        let list = batch(
            &s,
            vec![ApiRequest::new("GET", "/api/customers").header("Authorization", &auth)],
        );
        assert_eq!(
            list[0].body_json().as_array().map(Vec::len),
            Some(1),
            "{}",
            list[0].body
        );
    }

    /// A write-enabled account on `domain` with an API key (and, with `connection`, one
    /// generic connection that receives customers, never contacted: these tests report
    /// outcomes by hand); the key's Basic auth.
    fn tenant(state: &AppState, domain: &str, connection: bool) -> String {
        let body = format!(r#"{{"domain":"{domain}","writeEnabled":true}}"#);
        let r = batch(state, vec![admin("POST", "/admin/accounts", &body)]);
        let account = r[0].body_json()["id"].as_str().unwrap().to_string();
        let mut requests = vec![admin(
            "POST",
            &format!("/admin/accounts/{account}/api-keys"),
            r#"{"scopes":["api.read","api.write"]}"#,
        )];
        if connection {
            requests.push(admin(
                "POST",
                &format!("/admin/accounts/{account}/connections"),
                r#"{"app":"crm","type":"crm","pushUrl":"https://crm.example.com/push","objects":["customer"]}"#,
            ));
        }
        let k = batch(state, requests);
        assert!(k.iter().all(|a| a.status == 201), "{k:?}");
        let kb = k[0].body_json();
        writesync_core::util::crypto::basic_auth_header(
            kb["key"].as_str().unwrap(),
            kb["secret"].as_str().unwrap(),
        )
    }

    fn sync_status(state: &AppState, auth: &str, id: &str) -> String {
        let r = batch(
            state,
            vec![ApiRequest::new("GET", &format!("/api/syncs/{id}")).header("Authorization", auth)],
        );
        r[0].body_json()["status"].as_str().unwrap().to_string()
    }

    #[test]
    fn outcomes_whose_batch_fails_midway_commit_nothing_and_stay_owed() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir);
        let auth = tenant(&s, "push.example.com", true);
        let write = |name: &str| {
            ApiRequest::new("POST", "/api/customers")
                .header("Authorization", &auth)
                .header("X-Sync-Data", "push")
                .json(&serde_json::json!({"name": name, "email": "ap@acme.example.com"}))
        };
        let answers = batch(&s, vec![write("Acme"), write("Globex")]);
        let syncs: Vec<String> = answers
            .iter()
            .map(|a| a.headers["X-Sync-ID"].clone())
            .collect();
        let items = commit_batch(&s, &[], &[], Some(10)).1.unwrap();
        assert_eq!(items.len(), 2);
        for id in &syncs {
            assert_eq!(sync_status(&s, &auth, id), "in_progress");
        }
        let reports = |n: &str| -> Vec<Report> {
            items
                .iter()
                .map(|i| Report {
                    id: i.id.clone(),
                    outcome: Outcome::Response {
                        status: 201,
                        headers: Default::default(),
                        body: format!(r#"{{"id":"{n}-{}"}}"#, i.id),
                    },
                    sync_id: None,
                })
                .collect()
        };
        // Recording the first item's remote id (`r/...`) fails inside its outcome's batch,
        // after that batch has written part of it: the unit is spoiled, so neither outcome
        // (the second one is fine) nor the claim that follows is committed.
        let raw = rusqlite::Connection::open(dir.path().join("db")).unwrap();
        raw.execute_batch(&format!(
            "CREATE TRIGGER refuse_remote_ids BEFORE INSERT ON kv
             WHEN NEW.key LIKE 'rm/%' AND NEW.value LIKE '%A-{}%'
             BEGIN SELECT RAISE(ABORT, 'remote id refused'); END;",
            items[0].id
        ))
        .unwrap();
        let (_, claimed) = commit_batch(&s, &[], &reports("A"), Some(10));
        assert!(claimed.is_err(), "{claimed:?}");
        for id in &syncs {
            assert_eq!(sync_status(&s, &auth, id), "in_progress");
        }
        // Nothing was lost: the same items, still leased, are recorded once SQLite lets them.
        raw.execute_batch("DROP TRIGGER refuse_remote_ids").unwrap();
        let (_, claimed) = commit_batch(&s, &[], &reports("B"), Some(10));
        assert_eq!(claimed.unwrap().len(), 0);
        for id in &syncs {
            assert_eq!(sync_status(&s, &auth, id), "succeeded");
        }
    }

    #[test]
    fn a_batch_that_cannot_commit_answers_503_to_all_and_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir);
        let mut other = open(&dir.path().join("db"), Duration::from_millis(50));
        let lock = other.begin_write().unwrap();
        let answers = batch(
            &s,
            vec![
                admin("POST", "/admin/accounts", r#"{"domain":"a.example.com"}"#),
                admin("POST", "/admin/accounts", r#"{"domain":"b.example.com"}"#)
                    .header("X-Tracking-ID", "trk-1"),
            ],
        );
        drop(lock);
        for a in &answers {
            assert_eq!(a.status, 503, "{}", a.body);
            assert_eq!(a.body_json()["type"], "/problems/storage-unavailable");
        }
        assert_eq!(
            answers[1].headers.get("X-Tracking-ID").map(String::as_str),
            Some("trk-1")
        );
        assert!(domain_is_free(&s, "a.example.com"));
        assert!(domain_is_free(&s, "b.example.com"));
    }

    #[test]
    fn readers_answer_from_what_was_committed() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir);
        let path = dir.path().join("db");
        let readers = Readers::new(vec![Engine::new(config(2)), Engine::new(config(3))], || {
            Ok(open(&path, Duration::from_millis(50)))
        })
        .unwrap();
        let r = batch(
            &s,
            vec![admin(
                "POST",
                "/admin/accounts",
                r#"{"domain":"r.example.com"}"#,
            )],
        );
        assert_eq!(r[0].status, 201);
        let id = r[0].body_json()["id"].as_str().unwrap().to_string();
        let path_of = |id: &str| format!("/admin/accounts/{id}");
        let get = || readers.read(&admin("GET", &path_of(&id), "")).unwrap();
        // Every reader, whichever is picked, sees the commit.
        for _ in 0..4 {
            let a = get();
            assert_eq!(a.status, 200, "{}", a.body);
            assert_eq!(a.body_json()["domain"], "r.example.com");
        }
        let unknown = path_of("00000000-0000-7000-8000-000000000000");
        assert_eq!(
            readers.read(&admin("GET", &unknown, "")).unwrap().status,
            404
        );
        // A read does not wait for a writer holding the database.
        let mut other = open(&path, Duration::from_millis(50));
        let lock = other.begin_write().unwrap();
        assert_eq!(get().status, 200);
        drop(lock);
    }

    #[test]
    fn submit_runs_through_the_committer_and_close_refuses_later_requests() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(state(&dir));
        let group = GroupCommit::start(Arc::clone(&s), GroupLimits::default()).unwrap();
        let answers: Vec<ApiResponse> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let g = &group;
                    scope.spawn(move || {
                        let body = format!(r#"{{"domain":"t{i}.example.com"}}"#);
                        g.submit(admin("POST", "/admin/accounts", &body))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(answers.iter().all(|a| a.status == 201), "{answers:?}");
        for i in 0..8 {
            assert!(!domain_is_free(&s, &format!("t{i}.example.com")));
        }
        group.close();
        let late = group.submit(admin(
            "POST",
            "/admin/accounts",
            r#"{"domain":"late.example.com"}"#,
        ));
        assert_eq!(late.status, 503);
        assert!(domain_is_free(&s, "late.example.com"));
        // Every answer carries the valid tracking id, and an /api answer a request id.
        let api = group.submit(
            ApiRequest::new("POST", "/api/customers")
                .header("X-Tracking-ID", "late-1")
                .json(&serde_json::json!({"name": "Late"})),
        );
        assert_eq!(api.status, 503);
        assert_eq!(
            api.headers.get("X-Tracking-ID").map(String::as_str),
            Some("late-1")
        );
        assert_eq!(api.headers.get("X-Request-ID").map(String::len), Some(36));
    }
}
