//! The engine: one value driven by its host.
//!
//! See the crate documentation for the calling contract, and `docs/architecture.md` for the
//! layers of this folder. From the bottom up, each file importing only from the ones below it:
//!
//! | layer | files |
//! |---|---|
//! | vocabulary | `command.rs` (the typed commands and answers), `state.rs` (the [`Engine`] value), `config.rs`, `tx.rs`, `cache.rs`, `vocab.rs` (unit of work, refusals), `items.rs` (work items and ids), `stored.rs` (syncs, tasks, chains, remote ids and kept versions as stored) |
//! | shared rules | `views.rs`, `auth.rs`, `fields.rs`, `idempotency.rs`, `events.rs` |
//! | state machines | `lifecycle.rs` (tasks, token requests, deliveries) |
//! | operations | `reads.rs`, `plan.rs`, `writes.rs`, `deletes.rs` (on top of `writes.rs`), `connections.rs`, `admin.rs`, `due.rs`, `report.rs`, `retry.rs`, `maintenance.rs`, `migrate.rs` and `migrate_v1.rs` (the data layout's migrations, over `migration.rs`: what a step answers and records, and `convert.rs`: the conversion to layout 4 that both end with) |
//! | dispatch | `data.rs` (the data API), `execute.rs` (one command in one unit of work) |
//! | adapter | `http_adapter.rs` (the HTTP contract over the commands) |
//! | facade | this file: the public methods of [`Engine`] |

mod admin;
mod auth;
mod cache;
mod command;
mod config;
mod connections;
mod convert;
mod data;
mod deletes;
mod due;
mod events;
mod execute;
mod fields;
mod http_adapter;
mod idempotency;
mod items;
mod lifecycle;
mod maintenance;
mod migrate;
#[cfg(feature = "layout1")]
mod migrate_v1;
mod migration;
mod plan;
mod reads;
mod report;
mod retry;
mod state;
mod stored;
mod tx;
mod views;
mod vocab;
mod writes;

use crate::http::{problem, ApiRequest, ApiResponse, ProblemKind};
use crate::store::{Batch, KvRead, Storage};
use crate::CoreError;

pub use crate::records::layout::LAYOUT_VERSION;
pub use auth::{SCOPE_READ, SCOPE_WRITE};
pub use command::{
    AdminOp, Body, Command, CommandError, Credentials, DataOp, IfMatch, Page, Problem, Reply,
    RequestLine, SyncFilter, SyncStarted, UpdateMode, WriteOptions, DEFAULT_PAGE_SIZE, MAX_PAGE,
    MAX_PAGE_SIZE,
};
pub use config::{
    ConfigJson, EngineConfig, DEFAULT_DELIVERY_RETENTION_MS, DEFAULT_IDEMPOTENCY_RETENTION_MS,
    DEFAULT_LEASE_MS, DEFAULT_MAX_BATCH, DEFAULT_MAX_BODY_BYTES, DEFAULT_SYNC_RETENTION_MS,
};
pub use execute::Executed;
pub use http_adapter::{Step, MAX_PATH_BYTES};
pub use items::{
    DueWork, OutboundRequest, Outcome, WorkItem, WorkKind, TOKEN_EXPIRY_MARGIN_MS, TOKEN_URL,
};
pub use migration::MigrationStep;
pub use state::Engine;
#[cfg(feature = "openapi")]
pub use state::OPENAPI_JSON;

impl Engine {
    /// Plan the answer to one request. Reads go through `store`; the returned
    /// [`Step::batch`] must be applied atomically before [`Step::response`] is sent, and
    /// [`Engine::finish`] must be called with the step afterwards (also when the commit failed,
    /// in which case the host answers `503` instead). Never panics on any request.
    pub fn handle(&mut self, request: &ApiRequest, now_ms: i64, store: &dyn KvRead) -> Step {
        http_adapter::handle(self, request, now_ms, store)
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
        self.check_layout(store)?;
        due::due(self, now_ms, limit, store)
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
        self.check_layout(store)?;
        report::report(self, work_id, outcome, now_ms, store)
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
        due::next_deadline(store)
    }

    /// Remove idempotency records, finished deliveries and finished syncs (with their tasks
    /// and deliveries) older than their retention. Nothing unfinished is removed; objects,
    /// their current versions and their remote ids are never removed. At most `limit` records
    /// of each kind per call.
    pub fn prune(
        &mut self,
        now_ms: i64,
        limit: usize,
        store: &dyn KvRead,
    ) -> Result<Batch, CoreError> {
        self.check_layout(store)?;
        maintenance::prune(self, now_ms, limit, store)
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
        self.check_layout(store)?;
        maintenance::recover(now_ms, store)
    }

    /// One bounded step of bringing `store` to the data layout this engine writes
    /// ([`LAYOUT_VERSION`]): commit [`MigrationStep::batch`] atomically, then call again until
    /// [`MigrationStep::done`]. Each step rewrites at most `limit` rows of one kind and
    /// records its progress in the same batch, so a step whose batch is lost is done again and
    /// a store left between steps resumes where it stopped. A store in the current layout (or
    /// an empty one) is done at once. A newer or unknown layout is refused with
    /// [`CoreError::Layout`] and nothing is written; so is layout 1 in a build without the
    /// feature `layout1` (the wasm package), whose error says to migrate the store once with
    /// a native host. Hosts run this when they open a store,
    /// before anything else; until the store is migrated the engine's other calls refuse it
    /// with [`CoreError::Layout`] (`503` over HTTP).
    pub fn migrate(
        &mut self,
        limit: usize,
        store: &dyn KvRead,
    ) -> Result<MigrationStep, CoreError> {
        let step = migrate::step(limit, store)?;
        if step.done {
            self.layout_checked(&step, store)?;
        }
        Ok(step)
    }

    /// [`Engine::migrate`] step after step, each committed through `store`, until the store
    /// holds the current layout; answers the layout it held before.
    pub fn migrate_with(
        &mut self,
        limit: usize,
        store: &mut dyn Storage,
    ) -> Result<u32, CoreError> {
        loop {
            let step = migrate::step(limit, &*store)?;
            if !step.batch.is_empty() {
                store.apply(&step.batch)?;
            }
            if step.done {
                self.layout_checked(&step, &*store)?;
                return Ok(step.from);
            }
        }
    }

    /// Plan one typed command at `now` (Unix ms), reading through `store`: the typed entry of
    /// the engine, which the HTTP adapter of [`Engine::handle`] also goes through. Commit
    /// [`Executed::batch`] atomically before telling anyone the result, then call
    /// [`Engine::finish_executed`] (also when the commit failed; the result is then a storage
    /// failure and nothing changed). Never panics on any command.
    pub fn execute(&mut self, command: Command<'_>, now_ms: i64, store: &dyn KvRead) -> Executed {
        execute::plan(self, now_ms, store, |engine, ctx| {
            execute::run(engine, ctx, command)
        })
    }

    /// Release what an executed command held (its idempotency slot).
    pub fn finish_executed(&mut self, executed: &Executed) {
        if let Some(k) = &executed.in_flight {
            self.in_flight.remove(k);
        }
    }

    /// Plan, commit through `store`, and finish: the whole cycle of a typed command for hosts
    /// whose storage answers synchronously. A failed commit is
    /// [`CommandError::Storage`] and changes nothing.
    pub fn execute_with(
        &mut self,
        command: Command<'_>,
        now_ms: i64,
        store: &mut dyn Storage,
    ) -> Result<Reply, CommandError> {
        let executed = self.execute(command, now_ms, &*store);
        let committed = if executed.batch.is_empty() {
            Ok(())
        } else {
            store.apply(&executed.batch)
        };
        self.finish_executed(&executed);
        committed?;
        executed.result
    }
}
