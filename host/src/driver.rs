//! The work loop, written once: claim due work, send it, report each outcome, sleep until the
//! next deadline (or a wake-up), prune now and then, and recover from failures of the store.
//!
//! Where work comes from is a [`WorkSource`] (the [`NativeEngine`](writesync_sqlite::NativeEngine)
//! of the C API and of Rust applications, the group commit of `writesync serve`); how an item
//! is sent is a [`Perform`] (normally [`crate::Performer`]: the one transport and the token
//! broker client). The loop runs in two modes:
//!
//! - [`Driver::drain`] / [`Driver::drain_with`]: perform everything due now, including the work
//!   that the outcomes make due at once (the webhooks of a finished push), then return. A
//!   storage failure stops the run with that error; items claimed but not reported are handed
//!   out again when their lease runs out.
//! - [`Driver::serve`]: run until the [`Signal`] says stop, sleeping until the next deadline
//!   or a wake-up. A storage failure is reported as an [`Event`] and retried after
//!   [`DriverConfig::max_sleep`]; on stop, the items being sent are finished and reported
//!   and nothing new is claimed.
//!
//! Every mode handles a report the source no longer expects ([`Reported::Stale`]: the lease
//! ran out and the item was handed out again) the same way: counted in
//! [`RunStats::stale`], passed to [`WorkSource::event`], otherwise ignored.
//!
//! # Concurrency and the per-origin cap
//!
//! Items are sent by [`DriverConfig::senders`] threads (one: on the calling thread). The loop
//! hands every claimed item over at once and each sender takes the first waiting item whose
//! origin has room, so senders never wait for the loop's thread (which may be waiting for a
//! claim to commit); the loop's thread claims, reports and sleeps. At most
//! [`DriverConfig::per_origin`] items are in flight per origin (scheme, host and port of the
//! URL the item goes to; token requests go to the broker's), so a slow or hanging target
//! never occupies every sender: items over the cap wait while the items of other origins are
//! sent. The loop keeps at most `senders x claim_ahead` items claimed and not yet finished.
//! When all of them wait behind capped origins, senders are idle, and nothing finished for
//! [`DriverConfig::stall_after`], the loop claims a few more items (as many as senders are
//! idle) to find work for other origins; an item of an origin that already holds that many
//! items is not sent and not reported (*deferred*, [`RunStats::deferred`]): its lease runs
//! out and the engine hands it out again later, in its order (the engine never hands out the
//! next push of an object before the previous one finished, so deferring keeps the order).
//! An item that waited longer than [`DriverConfig::max_wait`] for a sender is deferred the
//! same way, so that no item is sent after its lease ran out.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use writesync_core::{Outcome, WorkItem, WorkKind};

/// Default number of items sent at once by `writesync serve` (sender threads).
pub const DEFAULT_SENDERS: usize = 8;
/// Default most items in flight per origin (scheme, host, port).
pub const DEFAULT_PER_ORIGIN: usize = 4;
/// Default items claimed ahead per sender: a claim may wait for a commit, so each sender keeps
/// a few items queued and never idles meanwhile (with 4, `loadbench`'s pushes arrived 2,075 ms
/// after their write at p99 and fell behind the writes; with 8, 31.9 ms, keeping pace).
pub const DEFAULT_CLAIM_AHEAD: usize = 8;
/// Default longest time a claimed item waits for a sender before it is deferred instead of
/// sent: with the default lease (120 s) and overall timeout (10 s), an item is never sent
/// after its lease ran out, when the engine may have handed it out again.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(60);
/// Default time without any finished item after which idle senders look for work of other
/// origins (see the module docs).
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(1);
/// Default interval between two prunes in [`Driver::serve`].
pub const DEFAULT_PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Default longest sleep of the loop without looking at the source.
pub const DEFAULT_MAX_SLEEP: Duration = Duration::from_secs(1);

/// How the loop behaves. [`Default`] gives the documented defaults of every host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverConfig {
    /// Items sent at once (at least 1); with 1, items are sent on the calling thread.
    pub senders: usize,
    /// Most items in flight per origin (at least 1).
    pub per_origin: usize,
    /// Items claimed ahead per sender (at least 1).
    pub claim_ahead: usize,
    /// See the module docs.
    pub stall_after: Duration,
    /// Interval between two prunes ([`Driver::serve`] only).
    pub prune_every: Duration,
    /// Longest sleep without looking at the source.
    pub max_sleep: Duration,
    /// Most items one [`Driver::drain`] claims (a bound on the time one call takes).
    pub max_items: usize,
    /// Longest time a claimed item waits for a sender; one that waited longer is deferred
    /// (not sent, not reported: its lease brings it back). Keep it below the lease minus the
    /// overall timeout of one request.
    pub max_wait: Duration,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            senders: DEFAULT_SENDERS,
            per_origin: DEFAULT_PER_ORIGIN,
            claim_ahead: DEFAULT_CLAIM_AHEAD,
            stall_after: DEFAULT_STALL_AFTER,
            prune_every: DEFAULT_PRUNE_EVERY,
            max_sleep: DEFAULT_MAX_SLEEP,
            max_items: usize::MAX,
            max_wait: DEFAULT_MAX_WAIT,
        }
    }
}

/// What became of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// The outcome was recorded (or queued to be).
    Recorded,
    /// The source no longer waited for this item (its lease ran out and it was handed out
    /// again); the outcome changed nothing.
    Stale,
}

/// Something the loop did or met that a host may want to log.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A report was stale ([`Reported::Stale`]).
    Stale(&'a WorkItem),
    /// A claimed item was deferred (see the module docs).
    Deferred(&'a WorkItem),
    /// Claiming failed ([`Driver::serve`] retries later).
    ClaimFailed(&'a str),
    /// Recording an outcome failed ([`Driver::serve`]: the item is due again when its lease
    /// runs out).
    ReportFailed(&'a WorkItem, &'a str),
    /// Reading the next deadline failed.
    DeadlineFailed(&'a str),
    /// Records were pruned.
    Pruned(usize),
    /// Pruning failed.
    PruneFailed(&'a str),
}

/// Where work comes from and where outcomes go. Only the loop's own thread calls it.
pub trait WorkSource {
    /// The source's error (a storage failure).
    type Error: fmt::Display;
    /// Claim (lease) at most `limit` items due at `now_ms`.
    fn claim(&mut self, now_ms: i64, limit: usize) -> Result<Vec<WorkItem>, Self::Error>;
    /// Record the outcome of a claimed item.
    fn report(
        &mut self,
        item: &WorkItem,
        outcome: Outcome,
        now_ms: i64,
    ) -> Result<Reported, Self::Error>;
    /// When work is next due, Unix milliseconds; `None` when nothing is owed.
    fn next_deadline(&mut self) -> Result<Option<i64>, Self::Error>;
    /// Remove what has outlived its retention; the number of records removed.
    fn prune(&mut self, now_ms: i64) -> Result<usize, Self::Error>;
    /// Something happened (for logs); the default ignores it.
    fn event(&mut self, _event: Event<'_>) {}
}

/// Sends one item. Called from the sender threads.
pub trait Perform: Send + Sync {
    /// Send the item and say what happened. Must not panic; a failure is an
    /// [`Outcome::Error`].
    fn perform(&self, item: &WorkItem) -> Outcome;
    /// The origin the item goes to, for the per-origin cap.
    fn origin(&self, item: &WorkItem) -> String {
        origin_of(&item.request.url)
    }
}

/// `scheme://host:port` of a URL (the port made explicit), or the text itself when it is not
/// a URL (it then fails at once in the transport).
pub fn origin_of(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(u) => format!(
            "{}://{}:{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port_or_known_default().unwrap_or(0)
        ),
        Err(_) => raw.to_string(),
    }
}

/// How the loop sleeps and is woken, and when [`Driver::serve`] stops.
pub trait Signal: Send + Sync {
    /// Sleep until [`Signal::notify`] or `timeout`; a notification that came since the last
    /// wait returns at once.
    fn wait(&self, timeout: Duration);
    /// Wake the loop (an item finished, a write made work due, stop was asked).
    fn notify(&self);
    /// Whether [`Driver::serve`] should stop.
    fn stopping(&self) -> bool {
        false
    }
}

/// A plain [`Signal`]: a flag and a condition variable.
#[derive(Debug, Default)]
pub struct Wakeup {
    woken: Mutex<bool>,
    cv: Condvar,
    stop: AtomicBool,
}

impl Wakeup {
    /// A signal nobody has notified yet.
    pub fn new() -> Wakeup {
        Wakeup::default()
    }

    /// Ask [`Driver::serve`] to stop, and wake it.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.notify();
    }

    fn flag(&self) -> MutexGuard<'_, bool> {
        self.woken.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Signal for Wakeup {
    fn wait(&self, timeout: Duration) {
        let w = self.flag();
        let mut w = if *w {
            w
        } else {
            self.cv
                .wait_timeout_while(w, timeout, |woken| !*woken)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0)
        };
        *w = false;
    }

    fn notify(&self) {
        *self.flag() = true;
        self.cv.notify_all();
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// What one run of the loop did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Pushes sent.
    pub pushes: usize,
    /// Webhook deliveries sent.
    pub webhooks: usize,
    /// Access-token requests sent (to the broker).
    pub tokens: usize,
    /// Outcomes the source no longer waited for ([`Reported::Stale`]); they changed nothing.
    pub stale: usize,
    /// Claimed items not sent because their origin held too many (see the module docs).
    pub deferred: usize,
}

type Done = (WorkItem, Outcome);

/// Items handed to the senders and not yet finished, with the per-origin counts. The sender
/// threads pick from it themselves, so they never wait for the loop's thread (which may be
/// waiting for a claim to commit).
struct PoolQueue {
    /// Waiting for a sender, in claim order, with their origin and when they were handed over.
    todo: VecDeque<(String, WorkItem, Instant)>,
    /// Items that waited longer than `max_wait` for a sender: deferred, not sent.
    expired: Vec<WorkItem>,
    max_wait: Duration,
    /// Items being sent, per origin.
    busy: HashMap<String, usize>,
    /// Items being sent.
    running: usize,
    done: VecDeque<Done>,
    per_origin: usize,
    closed: bool,
}

impl PoolQueue {
    fn new(per_origin: usize, max_wait: Duration) -> PoolQueue {
        PoolQueue {
            todo: VecDeque::new(),
            expired: Vec::new(),
            max_wait,
            busy: HashMap::new(),
            running: 0,
            done: VecDeque::new(),
            per_origin: per_origin.max(1),
            closed: false,
        }
    }

    /// Take the first item whose origin has room, counting it as being sent. Items that
    /// waited longer than `max_wait` are moved to `expired` instead.
    fn next_sendable(&mut self) -> Option<(String, WorkItem)> {
        let now = Instant::now();
        while let Some(i) = self
            .todo
            .iter()
            .position(|(_, _, at)| now.saturating_duration_since(*at) > self.max_wait)
        {
            if let Some((_, item, _)) = self.todo.remove(i) {
                self.expired.push(item);
            }
        }
        let i = self
            .todo
            .iter()
            .position(|(o, _, _)| self.busy.get(o).copied().unwrap_or(0) < self.per_origin)?;
        let (o, item, _) = self.todo.remove(i)?;
        *self.busy.entry(o.clone()).or_insert(0) += 1;
        self.running += 1;
        Some((o, item))
    }

    /// Count an item of `origin` as sent, with its outcome.
    fn finish(&mut self, origin: &str, item: WorkItem, outcome: Outcome) {
        if let Some(n) = self.busy.get_mut(origin) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.busy.remove(origin);
            }
        }
        self.running = self.running.saturating_sub(1);
        self.done.push_back((item, outcome));
    }

    /// Items of `origin` being sent or waiting.
    fn held(&self, origin: &str) -> usize {
        self.busy.get(origin).copied().unwrap_or(0)
            + self.todo.iter().filter(|(o, _, _)| o == origin).count()
    }
}

struct PoolShared {
    queue: Mutex<PoolQueue>,
    work: Condvar,
}

impl PoolShared {
    fn lock(&self) -> MutexGuard<'_, PoolQueue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The sender threads. Dropping it lets the threads finish their current item and joins them.
struct Pool {
    shared: Arc<PoolShared>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Up to `n` threads (fewer when the system refuses more; `None` when it refuses all).
    fn start(
        n: usize,
        per_origin: usize,
        max_wait: Duration,
        perform: &Arc<dyn Perform>,
        signal: &Arc<dyn Signal>,
    ) -> Option<Pool> {
        let shared = Arc::new(PoolShared {
            queue: Mutex::new(PoolQueue::new(per_origin, max_wait)),
            work: Condvar::new(),
        });
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let shared = Arc::clone(&shared);
            let perform = Arc::clone(perform);
            let signal = Arc::clone(signal);
            let spawned = std::thread::Builder::new()
                .name(format!("writesync-sender-{i}"))
                .spawn(move || sender(&shared, &*perform, &*signal));
            match spawned {
                Ok(h) => threads.push(h),
                Err(_) => break,
            }
        }
        if threads.is_empty() {
            return None;
        }
        Some(Pool { shared, threads })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.work.notify_all();
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

fn sender(shared: &PoolShared, perform: &dyn Perform, signal: &dyn Signal) {
    loop {
        let (origin, item) = {
            let mut q = shared.lock();
            loop {
                if q.closed {
                    return;
                }
                if let Some(next) = q.next_sendable() {
                    break next;
                }
                q = shared.work.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        let outcome = perform.perform(&item);
        shared.lock().finish(&origin, item, outcome);
        // Its origin has room again: a sender waiting for it may go on.
        shared.work.notify_all();
        signal.notify();
    }
}

/// How many items are being sent, how many wait, and how many of those could be sent now.
#[derive(Debug, Clone, Copy)]
struct Load {
    running: usize,
    queued: usize,
    sendable: usize,
}

/// Who sends: the calling thread, or a pool.
enum Senders<'a> {
    Inline {
        perform: &'a mut dyn FnMut(&WorkItem) -> Outcome,
        queue: PoolQueue,
    },
    Pool {
        pool: Pool,
        count: usize,
    },
}

impl Senders<'_> {
    fn count(&self) -> usize {
        match self {
            Senders::Inline { .. } => 1,
            Senders::Pool { count, .. } => *count,
        }
    }

    fn with_queue<T>(&mut self, f: impl FnOnce(&mut PoolQueue) -> T) -> T {
        match self {
            Senders::Inline { queue, .. } => f(queue),
            Senders::Pool { pool, .. } => f(&mut pool.shared.lock()),
        }
    }

    /// Hand an item over; the pool's senders pick it up as soon as its origin has room.
    fn submit(&mut self, origin: String, item: WorkItem) {
        self.with_queue(|q| q.todo.push_back((origin, item, Instant::now())));
        if let Senders::Pool { pool, .. } = self {
            pool.shared.work.notify_one();
        }
    }

    /// On the calling thread: send the next item, if any. (A pool sends by itself.)
    fn send_inline(&mut self) -> bool {
        if let Senders::Inline { perform, queue } = self {
            if let Some((o, item)) = queue.next_sendable() {
                let outcome = perform(&item);
                queue.finish(&o, item, outcome);
                return true;
            }
        }
        false
    }

    /// The items that waited longer than `max_wait` for a sender (deferred, not sent).
    fn take_expired(&mut self) -> Vec<WorkItem> {
        self.with_queue(|q| std::mem::take(&mut q.expired))
    }

    fn take_done(&mut self) -> Vec<Done> {
        self.with_queue(|q| q.done.drain(..).collect())
    }

    fn load(&mut self) -> Load {
        self.with_queue(|q| Load {
            running: q.running,
            queued: q.todo.len(),
            sendable: q
                .todo
                .iter()
                .filter(|(o, _, _)| q.busy.get(o).copied().unwrap_or(0) < q.per_origin)
                .count(),
        })
    }

    fn held(&mut self, origin: &str) -> usize {
        self.with_queue(|q| q.held(origin))
    }

    /// Drop the items not yet being sent; how many.
    fn clear_queue(&mut self) -> usize {
        self.with_queue(|q| {
            let n = q.todo.len();
            q.todo.clear();
            n
        })
    }
}

/// The loop (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Driver {
    config: DriverConfig,
}

impl Driver {
    /// A driver with `config`.
    pub fn new(config: DriverConfig) -> Driver {
        Driver { config }
    }

    /// The configuration.
    pub fn config(&self) -> &DriverConfig {
        &self.config
    }

    /// Perform everything due at `clock()` with `perform`, on [`DriverConfig::senders`]
    /// threads (the calling thread when 1), and return. See the module docs.
    pub fn drain<S: WorkSource>(
        &self,
        source: &mut S,
        clock: &dyn Fn() -> i64,
        perform: &Arc<dyn Perform>,
    ) -> Result<RunStats, S::Error> {
        let signal: Arc<dyn Signal> = Arc::new(Wakeup::new());
        if self.config.senders > 1 {
            let per_origin = self.config.per_origin;
            let max_wait = self.config.max_wait;
            if let Some(pool) =
                Pool::start(self.config.senders, per_origin, max_wait, perform, &signal)
            {
                let count = pool.threads.len();
                let mut senders = Senders::Pool { pool, count };
                let origin = |item: &WorkItem| perform.origin(item);
                return self.run(source, clock, &mut senders, &origin, &*signal, false);
            }
        }
        let mut send = |item: &WorkItem| perform.perform(item);
        let mut senders = Senders::Inline {
            perform: &mut send,
            queue: PoolQueue::new(self.config.per_origin, self.config.max_wait),
        };
        let origin = |item: &WorkItem| perform.origin(item);
        self.run(source, clock, &mut senders, &origin, &*signal, false)
    }

    /// [`Driver::drain`] sending one item at a time on the calling thread with any closure
    /// (a test's scripted answers, a host's own HTTP client).
    pub fn drain_with<S: WorkSource>(
        &self,
        source: &mut S,
        clock: &dyn Fn() -> i64,
        perform: &mut dyn FnMut(&WorkItem) -> Outcome,
    ) -> Result<RunStats, S::Error> {
        let signal = Wakeup::new();
        let mut senders = Senders::Inline {
            perform,
            queue: PoolQueue::new(self.config.per_origin, self.config.max_wait),
        };
        let origin = |item: &WorkItem| origin_of(&item.request.url);
        self.run(source, clock, &mut senders, &origin, &signal, false)
    }

    /// Run until `signal` says stop (see the module docs); answers what was done. Failures of
    /// the source are passed to [`WorkSource::event`] and retried.
    pub fn serve<S: WorkSource>(
        &self,
        source: &mut S,
        clock: &dyn Fn() -> i64,
        perform: &Arc<dyn Perform>,
        signal: &Arc<dyn Signal>,
    ) -> RunStats {
        let pool = Pool::start(
            self.config.senders.max(1),
            self.config.per_origin,
            self.config.max_wait,
            perform,
            signal,
        );
        let origin = |item: &WorkItem| perform.origin(item);
        let result = match pool {
            Some(pool) => {
                let count = pool.threads.len();
                let mut senders = Senders::Pool { pool, count };
                self.run(source, clock, &mut senders, &origin, &**signal, true)
            }
            None => {
                let mut send = |item: &WorkItem| perform.perform(item);
                let mut senders = Senders::Inline {
                    perform: &mut send,
                    queue: PoolQueue::new(self.config.per_origin, self.config.max_wait),
                };
                self.run(source, clock, &mut senders, &origin, &**signal, true)
            }
        };
        // Serving never returns a source error: each one was an event.
        result.unwrap_or_default()
    }

    fn run<S: WorkSource>(
        &self,
        source: &mut S,
        clock: &dyn Fn() -> i64,
        senders: &mut Senders<'_>,
        origin: &dyn Fn(&WorkItem) -> String,
        signal: &dyn Signal,
        serve: bool,
    ) -> Result<RunStats, S::Error> {
        let c = &self.config;
        let capacity = senders.count() * c.claim_ahead.max(1);
        let bound = capacity.max(c.per_origin.max(1));
        let mut stats = RunStats::default();
        // Claimed and not yet reported: handed to the senders, being sent, or done.
        let mut outstanding = 0usize;
        let mut claimed_total = 0usize;
        // The last claim found less than it asked for (drain: nothing more is due).
        let mut dry = false;
        let mut last_progress = Instant::now();
        let mut last_prune: Option<Instant> = None;
        loop {
            // 1. Send on the calling thread (one sender), then record what finished.
            senders.send_inline();
            for (item, outcome) in senders.take_done() {
                outstanding = outstanding.saturating_sub(1);
                last_progress = Instant::now();
                dry = false;
                match item.kind {
                    WorkKind::Push => stats.pushes += 1,
                    WorkKind::Webhook => stats.webhooks += 1,
                    WorkKind::Token => stats.tokens += 1,
                }
                match source.report(&item, outcome, clock()) {
                    Ok(Reported::Recorded) => {}
                    Ok(Reported::Stale) => {
                        stats.stale += 1;
                        source.event(Event::Stale(&item));
                    }
                    Err(e) if serve => source.event(Event::ReportFailed(&item, &e.to_string())),
                    // Items claimed and not reported are due again when their lease runs out.
                    Err(e) => return Err(e),
                }
            }

            for item in senders.take_expired() {
                outstanding = outstanding.saturating_sub(1);
                stats.deferred += 1;
                source.event(Event::Deferred(&item));
            }

            // 2. Stop: finish what is being sent; what waits is handed out again later.
            if serve && signal.stopping() {
                outstanding = outstanding.saturating_sub(senders.clear_queue());
                if outstanding == 0 {
                    return Ok(stats);
                }
                signal.wait(c.max_sleep);
                continue;
            }

            // 3. Prune now and then.
            if serve && last_prune.is_none_or(|t| t.elapsed() >= c.prune_every) {
                match source.prune(clock()) {
                    Ok(0) => {}
                    Ok(n) => source.event(Event::Pruned(n)),
                    Err(e) => source.event(Event::PruneFailed(&e.to_string())),
                }
                last_prune = Some(Instant::now());
            }

            // 4. Claim while the window has room; when it is full of items waiting behind
            // capped origins and senders are idle, probe for other origins' work.
            let load = senders.load();
            let idle = senders.count().saturating_sub(load.running);
            let free = capacity.saturating_sub(outstanding);
            let stalled = last_progress.elapsed() >= c.stall_after;
            // Everything waiting waits behind a capped origin (not merely for a sender to
            // pick it up).
            let blocked = load.queued > 0 && load.sendable == 0;
            let probe = free == 0 && idle > 0 && blocked && stalled;
            let mut limit = if free > 0 {
                free
            } else if probe {
                idle
            } else {
                0
            };
            if !serve {
                if dry {
                    limit = 0;
                }
                limit = limit.min(c.max_items.saturating_sub(claimed_total));
            }
            let mut claimed_all = false;
            if limit > 0 {
                match source.claim(clock(), limit) {
                    Ok(items) => {
                        if probe {
                            // One probe per stall period.
                            last_progress = Instant::now();
                        }
                        claimed_total += items.len();
                        dry = items.len() < limit;
                        claimed_all = !dry;
                        for item in items {
                            let o = origin(&item);
                            if senders.held(&o) >= bound {
                                stats.deferred += 1;
                                source.event(Event::Deferred(&item));
                                continue;
                            }
                            outstanding += 1;
                            senders.submit(o, item);
                        }
                    }
                    Err(e) if serve => {
                        source.event(Event::ClaimFailed(&e.to_string()));
                        signal.wait(c.max_sleep);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }

            // 5. Sleep, or go on.
            if matches!(senders, Senders::Inline { .. }) && outstanding > 0 {
                continue; // the calling thread sends the next one
            }
            if claimed_all {
                continue;
            }
            let load = senders.load();
            // A probe may come once the stall period is over: wake for it. (Items not yet
            // picked up count too: a sender taking one wakes nobody, and it may turn out to
            // wait behind a capped origin.)
            let may_probe = capacity <= outstanding
                && senders.count() > load.running
                && load.queued > 0
                && (serve || !dry);
            let stall_wait = if may_probe {
                c.stall_after
                    .saturating_sub(last_progress.elapsed())
                    .max(Duration::from_millis(1))
            } else {
                c.max_sleep
            };
            if !serve {
                if outstanding == 0 {
                    if dry || claimed_total >= c.max_items {
                        return Ok(stats);
                    }
                    continue;
                }
                signal.wait(c.max_sleep.min(stall_wait));
                continue;
            }
            let sleep = if capacity > outstanding {
                match source.next_deadline() {
                    Ok(Some(at)) => {
                        let ms = at.saturating_sub(clock()).clamp(0, 1_000_000);
                        Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(c.max_sleep)
                    }
                    Ok(None) => c.max_sleep,
                    Err(e) => {
                        source.event(Event::DeadlineFailed(&e.to_string()));
                        c.max_sleep
                    }
                }
            } else {
                c.max_sleep
            };
            let sleep = sleep.min(stall_wait);
            if !sleep.is_zero() {
                signal.wait(sleep);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use writesync_core::OutboundRequest;

    use super::*;

    fn item(id: &str) -> WorkItem {
        WorkItem {
            id: id.into(),
            kind: WorkKind::Push,
            request: OutboundRequest {
                method: "POST".into(),
                url: "http://127.0.0.1:9/push".into(),
                headers: BTreeMap::new(),
                body: "{}".into(),
            },
        }
    }

    #[test]
    fn an_item_that_waited_longer_than_max_wait_is_deferred_not_sent() {
        let mut q = PoolQueue::new(1, Duration::from_secs(60));
        let long_ago = Instant::now().checked_sub(Duration::from_secs(61)).unwrap();
        q.todo.push_back(("o".into(), item("t.old.1"), long_ago));
        q.todo
            .push_back(("o".into(), item("t.new.1"), Instant::now()));
        let (_, sent) = q.next_sendable().unwrap();
        assert_eq!(sent.id, "t.new.1");
        let expired: Vec<String> = q.expired.iter().map(|i| i.id.clone()).collect();
        assert_eq!(expired, ["t.old.1"]);
        assert!(q.todo.is_empty());
        // Within the wait an item waits its turn behind the per-origin cap.
        q.todo
            .push_back(("o".into(), item("t.next.1"), Instant::now()));
        assert!(q.next_sendable().is_none(), "origin o holds its one slot");
        assert_eq!(q.todo.len(), 1);
        assert_eq!(q.expired.len(), 1);
    }
}
