//! The push and webhook worker: claim due work from the engine, send it on a small pool of
//! threads, queue each outcome for the group commit (`commit.rs`, which records the outcomes
//! queued meanwhile in one transaction with the write requests), sleep until the next deadline
//! or a wake-up.
//!
//! Token requests (`WorkKind::Token`: a provider connection needs an access token) are
//! answered by the operator's token broker: the item's JSON body
//! `{connectionId, accountId, app, reason}` is POSTed to `--token-url`, whose answer
//! (`200 {"accessToken", "expiresAt"}`) is reported as is. The broker holds the refresh
//! tokens; writesync never sees one. Without `--token-url` a token request fails at once and
//! the pushes waiting for it fail with that reason.
//!
//! The worker keeps at most [`CLAIM_AHEAD`] items per sender claimed and not yet sent, so a
//! claimed item is sent soon and its lease (`--lease-seconds`) only has to cover a few
//! requests. Pushes of one object
//! to one connection are ordered by the engine (it hands out the next only after the previous
//! finished). A report that the engine no longer expects (`UnknownWork`: the lease ran out
//! and the item was handed out again) is logged and ignored.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use writesync_core::{OutboundRequest, Outcome, WorkItem, WorkKind};

use crate::commit::GroupCommit;
use crate::log;
use crate::state::{now_ms, AppState};
use crate::transport::Transport;

/// Default number of sender threads.
pub const DEFAULT_SENDERS: usize = 8;

/// Items claimed ahead per sender: a claim waits for the next group commit, so each sender
/// keeps a few items queued and never idles while the next claim is being committed. The
/// lease (`--lease-seconds`, 120 s by default) covers the wait in the queue too.
pub const CLAIM_AHEAD: usize = 8;
/// How often finished records are pruned.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// The longest the worker sleeps without looking at the store.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// Records pruned per kind and round.
const PRUNE_LIMIT: usize = 500;

/// A running worker.
#[derive(Debug)]
pub struct Worker {
    main: Option<JoinHandle<()>>,
}

impl Worker {
    /// Start the worker with `senders` sender threads and no token broker.
    pub fn start(
        state: Arc<AppState>,
        group: Arc<GroupCommit>,
        transport: Transport,
        senders: usize,
    ) -> std::io::Result<Worker> {
        Worker::start_with_token_url(state, group, transport, senders, None)
    }

    /// Start the worker with `senders` sender threads; token requests go to `token_url`.
    /// Outcomes are recorded through `group`, batched with the write requests.
    pub fn start_with_token_url(
        state: Arc<AppState>,
        group: Arc<GroupCommit>,
        transport: Transport,
        senders: usize,
        token_url: Option<String>,
    ) -> std::io::Result<Worker> {
        let token_url: Arc<Option<String>> = Arc::new(token_url);
        let senders = senders.max(1);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel::<WorkItem>();
        let rx = Arc::new(Mutex::new(rx));
        let mut pool = Vec::with_capacity(senders);
        for i in 0..senders {
            let rx = Arc::clone(&rx);
            let state = Arc::clone(&state);
            let group = Arc::clone(&group);
            let transport = transport.clone();
            let in_flight = Arc::clone(&in_flight);
            let token_url = Arc::clone(&token_url);
            pool.push(
                std::thread::Builder::new()
                    .name(format!("sender-{i}"))
                    .spawn(move || {
                        sender_loop(
                            &rx,
                            &state,
                            &group,
                            &transport,
                            &in_flight,
                            token_url.as_deref(),
                        )
                    })?,
            );
        }
        let main = std::thread::Builder::new()
            .name("worker".into())
            .spawn(move || {
                main_loop(&state, &group, &tx, &in_flight, senders * CLAIM_AHEAD);
                // Closing the channel stops the senders once their current item is reported.
                drop(tx);
                for h in pool {
                    let _ = h.join();
                }
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

fn main_loop(
    state: &AppState,
    group: &GroupCommit,
    tx: &mpsc::Sender<WorkItem>,
    in_flight: &AtomicUsize,
    capacity: usize,
) {
    let mut last_prune = Instant::now();
    prune(state);
    while !state.shutting_down() {
        if last_prune.elapsed() >= PRUNE_EVERY {
            prune(state);
            last_prune = Instant::now();
        }
        let free = capacity.saturating_sub(in_flight.load(Ordering::SeqCst));
        if free == 0 {
            state.wait(MAX_SLEEP);
            continue;
        }
        // In the next group commit, with the writes and outcomes queued meanwhile.
        let claimed = group.claim(free);
        let items = match claimed {
            Ok(items) => items,
            Err(e) => {
                log::error(
                    "cannot claim due work",
                    &[("error", Value::String(e.to_string()))],
                );
                state.wait(MAX_SLEEP);
                continue;
            }
        };
        let n = items.len();
        for item in items {
            in_flight.fetch_add(1, Ordering::SeqCst);
            if tx.send(item).is_err() {
                // The senders are gone (cannot happen before shutdown); the lease brings the
                // item back after a restart.
                in_flight.fetch_sub(1, Ordering::SeqCst);
            }
        }
        if n >= free {
            continue;
        }
        let next = {
            let guard = state.lock();
            guard.engine.next_deadline(&guard.store)
        };
        let sleep = match next {
            Ok(Some(at)) => {
                let ms = at.saturating_sub(now_ms()).clamp(0, 1000);
                Duration::from_millis(u64::try_from(ms).unwrap_or(0))
            }
            Ok(None) => MAX_SLEEP,
            Err(e) => {
                log::error(
                    "cannot read the next deadline",
                    &[("error", Value::String(e.to_string()))],
                );
                MAX_SLEEP
            }
        };
        if !sleep.is_zero() {
            state.wait(sleep);
        }
    }
}

fn prune(state: &AppState) {
    let mut guard = state.lock();
    let core = &mut *guard;
    let result = core
        .engine
        .prune(now_ms(), PRUNE_LIMIT, &core.store)
        .and_then(|batch| {
            if batch.is_empty() {
                Ok(0)
            } else {
                let n = batch.ops.len();
                writesync_core::Storage::apply(&mut core.store, &batch).map(|()| n)
            }
        });
    match result {
        Ok(0) => {}
        Ok(n) => log::info("pruned old records", &[("records", json!(n))]),
        Err(e) => log::error("prune failed", &[("error", Value::String(e.to_string()))]),
    }
}

fn sender_loop(
    rx: &Mutex<mpsc::Receiver<WorkItem>>,
    state: &AppState,
    group: &GroupCommit,
    transport: &Transport,
    in_flight: &AtomicUsize,
    token_url: Option<&str>,
) {
    loop {
        let next = {
            let guard = rx.lock().unwrap_or_else(|p| p.into_inner());
            guard.recv()
        };
        let Ok(item) = next else {
            return;
        };
        perform(group, transport, &item, token_url);
        in_flight.fetch_sub(1, Ordering::SeqCst);
        state.notify();
    }
}

fn header<'a>(item: &'a WorkItem, name: &str) -> Option<&'a str> {
    item.request
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Ask the token broker for a connection's access token.
fn fetch_token(transport: &Transport, item: &WorkItem, token_url: Option<&str>) -> Outcome {
    let Some(url) = token_url else {
        return Outcome::Error {
            error: "no token source: start writesync serve with --token-url".into(),
            permanent: true,
        };
    };
    let mut headers = std::collections::BTreeMap::new();
    headers.insert("Content-Type".to_string(), "application/json".to_string());
    headers.insert("Accept".to_string(), "application/json".to_string());
    transport.send(&OutboundRequest {
        method: "POST".into(),
        url: url.to_string(),
        headers,
        body: item.request.body.clone(),
    })
}

/// Send one item and queue its outcome for the next group commit.
fn perform(group: &GroupCommit, transport: &Transport, item: &WorkItem, token_url: Option<&str>) {
    let kind = match item.kind {
        WorkKind::Push => "push",
        WorkKind::Webhook => "webhook",
        WorkKind::Token => "token request",
    };
    let started = Instant::now();
    let outcome = match item.kind {
        WorkKind::Token => fetch_token(transport, item, token_url),
        _ => transport.send(&item.request),
    };
    let url = match item.kind {
        WorkKind::Token => token_url.unwrap_or(""),
        _ => item.request.url.as_str(),
    };
    let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (status, error, permanent) = match &outcome {
        Outcome::Response { status, .. } => (json!(status), Value::Null, Value::Null),
        Outcome::Error { error, permanent } => {
            (Value::Null, Value::String(error.clone()), json!(permanent))
        }
    };
    let ok = match (&outcome, item.kind) {
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
    group.report(
        item.id.clone(),
        outcome,
        header(item, "X-Sync-ID").map(String::from),
    );
}
