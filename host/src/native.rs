//! [`NativeEngine`] as a [`WorkSource`], and [`run_due`]: the work loop of applications that
//! link the engine directly (and of the C API's `writesync_run_due`).
//!
//! Each claim and each report is its own SQLite write transaction
//! ([`NativeEngine::claim_due`], [`NativeEngine::report_outcome`]); nothing is sent while a
//! transaction is open, so a slow peer never holds the database.

use std::sync::Arc;

use writesync_core::{CoreError, Outcome, WorkItem};
use writesync_sqlite::{NativeEngine, StoreError};

use crate::driver::{Driver, DriverConfig, Perform, Reported, RunStats, WorkSource};

impl WorkSource for NativeEngine {
    type Error = StoreError;

    fn claim(&mut self, now_ms: i64, limit: usize) -> Result<Vec<WorkItem>, StoreError> {
        self.claim_due(now_ms, limit)
    }

    fn report(
        &mut self,
        item: &WorkItem,
        outcome: Outcome,
        now_ms: i64,
    ) -> Result<Reported, StoreError> {
        match self.report_outcome(&item.id, &outcome, now_ms) {
            Ok(()) => Ok(Reported::Recorded),
            Err(StoreError::Engine(CoreError::UnknownWork(_) | CoreError::WrongState(_))) => {
                Ok(Reported::Stale)
            }
            Err(e) => Err(e),
        }
    }

    fn next_deadline(&mut self) -> Result<Option<i64>, StoreError> {
        NativeEngine::next_deadline(self)
    }

    fn prune(&mut self, now_ms: i64) -> Result<usize, StoreError> {
        NativeEngine::prune(self, now_ms)
    }
}

/// Perform every push, webhook delivery and token request due at `now_ms` through `send`
/// (one at a time, on the calling thread), report each outcome, and go on with the work those
/// outcomes make due at once (the webhooks of a finished push); retries scheduled for later
/// are left for a later call (see [`NativeEngine::next_deadline`]). Items are claimed
/// [`crate::driver::DEFAULT_CLAIM_AHEAD`] at a time.
///
/// `send` is any closure: a test's scripted answers, or a [`crate::Performer`]
/// (`&mut |item| performer.perform(item)`, with `Perform` in scope) for the real transport
/// and token broker. To send several items at once (at most
/// [`crate::driver::DEFAULT_PER_ORIGIN`] per origin), use [`run_due_with`].
///
/// A storage failure stops the run with that error; items claimed but not reported are handed
/// out again when their lease runs out. Stale reports are counted in [`RunStats::stale`].
pub fn run_due(
    app: &mut NativeEngine,
    now_ms: i64,
    send: &mut dyn FnMut(&WorkItem) -> Outcome,
) -> Result<RunStats, StoreError> {
    let driver = Driver::new(DriverConfig {
        senders: 1,
        ..DriverConfig::default()
    });
    driver.drain_with(app, &|| now_ms, send)
}

/// [`run_due`] with a [`Perform`] (normally a [`crate::Performer`]) and a driver of your
/// configuration: [`DriverConfig::senders`] items at once, at most
/// [`DriverConfig::per_origin`] per origin.
pub fn run_due_with(
    app: &mut NativeEngine,
    clock: &dyn Fn() -> i64,
    driver: &Driver,
    perform: &Arc<dyn Perform>,
) -> Result<RunStats, StoreError> {
    driver.drain(app, clock, perform)
}
