//! The push and webhook worker of `writesync serve`: the host driver's loop
//! ([`writesync_host::driver`]) over the group commit, on a thread of its own.
//!
//! - **Work source**: claims go through the group commit (`commit.rs`: a claim waits for the
//!   next commit, with the write requests and the outcomes queued meanwhile), and so do the
//!   outcomes, queued without waiting. A report the engine no longer expects (`UnknownWork`:
//!   the lease ran out and the item was handed out again) is logged by the group commit and
//!   ignored. Pruning and the next deadline read the writing engine directly.
//! - **Sending**: [`writesync_host::Performer`] (the one transport and the token broker client
//!   of every host) on `ServeConfig::senders` threads (default [`DEFAULT_SENDERS`]), at most
//!   `--max-in-flight-per-origin` (default [`DEFAULT_PER_ORIGIN`]) per origin, so a slow or
//!   hanging target never holds every sender. Each attempt is logged here.
//! - **Token requests** (`WorkKind::Token`: a provider connection needs an access token) are
//!   POSTed to `--token-url`; without it they fail at once and the pushes waiting for them fail
//!   with that reason.
//! - **Sleeping**: until the next deadline (at most a second), or until a write or a finished
//!   item wakes the worker ([`AppState::notify`]). On shutdown the items being sent are
//!   finished and reported; claimed items not yet sent are due again at the next start
//!   (`Engine::recover`).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use writesync_core::{CoreError, Outcome, WorkItem, WorkKind};
use writesync_host::driver::{Driver, DriverConfig, Event, Perform, Reported, Signal, WorkSource};
use writesync_host::Performer;

pub use writesync_host::driver::{DEFAULT_PER_ORIGIN, DEFAULT_SENDERS};

use crate::commit::GroupCommit;
use crate::log;
use crate::state::{now_ms, AppState};

/// Records pruned per kind and round.
const PRUNE_LIMIT: usize = 500;

/// A running worker.
#[derive(Debug)]
pub struct Worker {
    main: Option<JoinHandle<()>>,
}

impl Worker {
    /// Start the worker: `performer` sends (transport and token broker), `driver` says how many
    /// items at once and per origin. Outcomes are recorded through `group`, batched with the
    /// write requests.
    pub fn start(
        state: Arc<AppState>,
        group: Arc<GroupCommit>,
        performer: Performer,
        driver: DriverConfig,
    ) -> std::io::Result<Worker> {
        let main = std::thread::Builder::new()
            .name("worker".into())
            .spawn(move || {
                let signal: Arc<dyn Signal> = Arc::clone(&state) as Arc<dyn Signal>;
                let mut source = ServerSource { state, group };
                let perform: Arc<dyn Perform> = Arc::new(LoggedPerformer(performer));
                Driver::new(driver).serve(&mut source, &now_ms, &perform, &signal);
            })?;
        Ok(Worker { main: Some(main) })
    }

    /// Wait until the worker stopped (after [`AppState::begin_shutdown`]): the items being
    /// sent are finished and reported; nothing new is claimed.
    pub fn join(mut self) {
        if let Some(h) = self.main.take() {
            let _ = h.join();
        }
    }
}

impl Signal for AppState {
    fn wait(&self, timeout: Duration) {
        AppState::wait(self, timeout);
    }
    fn notify(&self) {
        AppState::notify(self);
    }
    fn stopping(&self) -> bool {
        self.shutting_down()
    }
}

/// The server's work source: the group commit and the writing engine.
struct ServerSource {
    state: Arc<AppState>,
    group: Arc<GroupCommit>,
}

impl WorkSource for ServerSource {
    type Error = CoreError;

    fn claim(&mut self, _now_ms: i64, limit: usize) -> Result<Vec<WorkItem>, CoreError> {
        // In the next group commit, with the writes and outcomes queued meanwhile (the
        // committer takes the time when it commits).
        self.group.claim(limit)
    }

    fn report(
        &mut self,
        item: &WorkItem,
        outcome: Outcome,
        _now_ms: i64,
    ) -> Result<Reported, CoreError> {
        // Queued for the next commit, which logs and ignores a stale one.
        self.group.report(
            item.id.clone(),
            outcome,
            header(item, "X-Sync-ID").map(String::from),
        );
        Ok(Reported::Recorded)
    }

    fn next_deadline(&mut self) -> Result<Option<i64>, CoreError> {
        let guard = self.state.lock();
        guard.engine.next_deadline(&guard.store)
    }

    fn prune(&mut self, now_ms: i64) -> Result<usize, CoreError> {
        let mut guard = self.state.lock();
        let core = &mut *guard;
        let batch = core.engine.prune(now_ms, PRUNE_LIMIT, &core.store)?;
        if batch.is_empty() {
            return Ok(0);
        }
        let n = batch.ops.len();
        writesync_core::Storage::apply(&mut core.store, &batch)?;
        Ok(n)
    }

    fn event(&mut self, event: Event<'_>) {
        let error = |e: &str| [("error", Value::String(e.to_string()))];
        match event {
            Event::Pruned(n) => log::info("pruned old records", &[("records", json!(n))]),
            Event::PruneFailed(e) => log::error("prune failed", &error(e)),
            Event::ClaimFailed(e) => log::error("cannot claim due work", &error(e)),
            Event::DeadlineFailed(e) => log::error("cannot read the next deadline", &error(e)),
            Event::ReportFailed(item, e) => log::error(
                "cannot record an outcome; the item is sent again when its lease runs out",
                &[
                    ("work", Value::String(item.id.clone())),
                    ("error", Value::String(e.to_string())),
                ],
            ),
            Event::Deferred(item) => log::info(
                "too many items in flight to one origin; this one is sent when its lease runs out",
                &[
                    ("work", Value::String(item.id.clone())),
                    ("url", Value::String(log::redact_url(&item.request.url))),
                ],
            ),
            Event::Stale(item) => log::info(
                "outcome no longer expected (the lease ran out); ignored",
                &[("work", Value::String(item.id.clone()))],
            ),
            _ => {}
        }
    }
}

fn header<'a>(item: &'a WorkItem, name: &str) -> Option<&'a str> {
    item.request
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The host's performer, with one log line per attempt.
struct LoggedPerformer(Performer);

impl Perform for LoggedPerformer {
    fn perform(&self, item: &WorkItem) -> Outcome {
        let started = Instant::now();
        let outcome = self.0.perform(item);
        log_attempt(item, self.0.url_of(item), &outcome, started);
        outcome
    }

    fn origin(&self, item: &WorkItem) -> String {
        self.0.origin(item)
    }
}

fn log_attempt(item: &WorkItem, url: &str, outcome: &Outcome, started: Instant) {
    let kind = match item.kind {
        WorkKind::Push => "push",
        WorkKind::Webhook => "webhook",
        WorkKind::Token => "token request",
    };
    let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (status, error, permanent) = match outcome {
        Outcome::Response { status, .. } => (json!(status), Value::Null, Value::Null),
        Outcome::Error { error, permanent } => {
            (Value::Null, Value::String(error.clone()), json!(permanent))
        }
    };
    let ok = match (outcome, item.kind) {
        (Outcome::Response { status, .. }, WorkKind::Push) => matches!(status, 200 | 201),
        (Outcome::Response { status, .. }, WorkKind::Webhook | WorkKind::Token) => *status == 200,
        _ => false,
    };
    // A webhook body names the request that caused it; a push body does not.
    let request_id = match item.kind {
        WorkKind::Webhook => serde_json::from_str::<Value>(&item.request.body)
            .ok()
            .and_then(|b| b.get("requestId").and_then(Value::as_str).map(String::from)),
        WorkKind::Push | WorkKind::Token => None,
    };
    let fields = [
        ("work", Value::String(item.id.clone())),
        ("kind", Value::String(kind.into())),
        ("url", Value::String(log::redact_url(url))),
        ("requestId", log::opt(request_id.as_deref())),
        ("syncId", log::opt(header(item, "X-Sync-ID"))),
        ("trackingId", log::opt(header(item, "X-Tracking-ID"))),
        ("status", status),
        ("error", error),
        ("permanent", permanent),
        ("ms", json!(elapsed)),
    ];
    if ok {
        log::info(&format!("{kind} sent"), &fields);
    } else {
        log::warn(&format!("{kind} attempt failed"), &fields);
    }
}
