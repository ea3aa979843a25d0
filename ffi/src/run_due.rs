//! `writesync_run_due`: the host driver ([`writesync_host::Driver::drain`]) over an engine
//! handle. Each claim and each report locks the engine for that step only, so other threads'
//! calls proceed while a request is on the network.

use std::time::Instant;

use writesync_core::{CoreError, Outcome, WorkItem};
use writesync_host::driver::{Reported, WorkSource};

use crate::error::FfiError;
use crate::{writesync_engine, State};

/// The engine behind a handle, as the driver's work source.
struct HandleSource<'a> {
    handle: &'a writesync_engine,
}

impl WorkSource for HandleSource<'_> {
    type Error = FfiError;

    fn claim(&mut self, now_ms: i64, limit: usize) -> Result<Vec<WorkItem>, FfiError> {
        let mut st = self.handle.lock()?;
        let State { engine, store } = &mut *st;
        Ok(engine.due_with(now_ms, limit, store)?)
    }

    fn report(
        &mut self,
        item: &WorkItem,
        outcome: Outcome,
        now_ms: i64,
    ) -> Result<Reported, FfiError> {
        let mut st = self.handle.lock()?;
        let State { engine, store } = &mut *st;
        match engine.report_with(&item.id, &outcome, now_ms, store) {
            Ok(()) => Ok(Reported::Recorded),
            Err(CoreError::UnknownWork(_) | CoreError::WrongState(_)) => Ok(Reported::Stale),
            Err(e) => Err(e.into()),
        }
    }

    fn next_deadline(&mut self) -> Result<Option<i64>, FfiError> {
        let st = self.handle.lock()?;
        Ok(st.engine.next_deadline(&st.store)?)
    }

    fn prune(&mut self, now_ms: i64) -> Result<usize, FfiError> {
        let mut st = self.handle.lock()?;
        let State { engine, store } = &mut *st;
        let batch = engine.prune(now_ms, usize::MAX, store)?;
        if !batch.ops.is_empty() {
            writesync_core::Storage::apply(store, &batch)?;
        }
        Ok(batch.ops.len())
    }
}

/// Perform what is due at `now_ms` (the clock then moves on with the time the call takes).
pub(crate) fn run(handle: &writesync_engine, now_ms: i64) -> Result<(), FfiError> {
    let started = Instant::now();
    let clock = || {
        let elapsed = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        now_ms.saturating_add(elapsed)
    };
    let mut source = HandleSource { handle };
    handle
        .driver
        .drain(&mut source, &clock, &handle.performer)
        .map(|_| ())
}
