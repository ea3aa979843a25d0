//! The stored data layout: which one a store holds, and the migration of layout 1 to
//! layout 2 in bounded, resumable steps.
//!
//! The layout is stored under `meta/layout` (`{"version": 2}`). A store without it holds
//! layout 1 when any of layout 1's own prefixes (`sync/`, `task/`, `chain/`, `remote/`) is
//! present; otherwise it holds nothing layout 1 and 2 spell differently, and migrating it only
//! writes the version (nothing at all for an empty store). A migration step converts up to `limit` rows of one phase and writes,
//! in the same batch, its progress under `meta/migration`: a step whose batch is lost is
//! simply done again, and a store left between steps resumes where it stopped. The phases
//! are in `migrate_v1.rs`, built with the feature `layout1` (on by default); a build without
//! it (the wasm package) refuses a layout-1 store with [`CoreError::Layout`]
//! ([`LAYOUT1_UNSUPPORTED`](crate::records::layout::LAYOUT1_UNSUPPORTED)) and writes nothing.
//!
//! | phase | what one step does |
//! |---|---|
//! | `syncs` | up to `limit` syncs `sync/{account}/{sync}` with their tasks `task/{task}` become rows `s/{sync}` (a task names the version it pushes; a version replaced since is kept under `v/` while the task is unfinished); each task gets its pointer `t/{task}`, and the due entries of its unfinished tasks name the sync |
//! | `chains` | `chain/{connection}/{type}/{id}` becomes the object's `c/` list (for an unfinished task) |
//! | `remotes` | `remote/{connection}/{type}/{id}` joins the object's `r/` row (a connection that no longer exists has no account and its ids are dropped) |
//! | `deliveries` | each delivery is listed in its sync's row (so that it is pruned with it) |
//! | `orphans` | task rows that no sync listed are removed |
//! | `references` | up to `limit` objects `obj/...` (in key order, from the recorded offset) get their entries in the reverse reference index `ref/...` (an invoice's customer and line accounts, an expense's vendor and line accounts) |
//!
//! A store without a marker that holds objects (layout 1 where nothing was ever pushed) gets
//! its reverse reference index in the one step that marks it.

use super::tx::Tx;
#[cfg(not(feature = "layout1"))]
use crate::records::layout::LAYOUT1_UNSUPPORTED;
use crate::records::layout::{layout_of, Layout, LAYOUT_VERSION};
use crate::records::*;
use crate::store::{Batch, KvRead};
use crate::CoreError;

/// One step of [`Engine::migrate`](crate::Engine::migrate).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use = "the batch must be committed before the next step"]
pub struct MigrationStep {
    /// The rewrites of this step and its progress marker: commit them atomically.
    pub batch: Batch,
    /// Whether the store holds [`LAYOUT_VERSION`] once `batch` is committed.
    pub done: bool,
    /// The layout the store held when the migration started (`LAYOUT_VERSION` when there was
    /// nothing to do).
    pub from: u32,
}

pub(super) fn layout_row() -> String {
    format!("{{\"version\":{LAYOUT_VERSION}}}")
}

/// One bounded step of the migration to [`LAYOUT_VERSION`].
pub(crate) fn step(limit: usize, store: &dyn KvRead) -> Result<MigrationStep, CoreError> {
    let limit = limit.max(1);
    let mut tx = Tx::new(store);
    match layout_of(store)? {
        Layout::Current => {
            if store.get(keys::MIGRATION)?.is_some() {
                tx.delete(keys::MIGRATION);
            }
            return Ok(MigrationStep {
                batch: tx.into_batch(),
                done: true,
                from: LAYOUT_VERSION,
            });
        }
        Layout::Unmarked => {
            // An empty store has nothing to mark yet (its first open costs no write); one with
            // data is marked, so that a later engine knows what it holds.
            if store.first_key("")?.is_some() {
                tx.put(keys::LAYOUT, layout_row());
                // Objects written without the reverse reference index (layout 1 with no push
                // ever made) get it now, in this one step.
                if store.first_key(keys::OBJECTS)?.is_some() {
                    super::stored::index_references(&mut tx, store, 0, usize::MAX)?;
                }
            }
            return Ok(MigrationStep {
                batch: tx.into_batch(),
                done: true,
                from: LAYOUT_VERSION,
            });
        }
        Layout::One => {}
    }
    #[cfg(not(feature = "layout1"))]
    {
        // This build cannot read layout 1's rows: refuse before writing anything.
        let _ = (tx, store, limit);
        Err(CoreError::Layout(LAYOUT1_UNSUPPORTED.into()))
    }
    #[cfg(feature = "layout1")]
    super::migrate_v1::step(tx, store, limit)
}
