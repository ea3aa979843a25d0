//! The stored data layout: which one a store holds, and the migration of layouts 1 and 2 to
//! layout 3 in bounded, resumable steps.
//!
//! Layout 3 is layout 2 with two indexes that contract section 7 reads: the reverse reference
//! index `ref/` (the `409` of a delete) and the per-account sync index `sx/`
//! (`GET /api/syncs`). A layout-2 store gets them in the phases `references` and `sync-index`
//! below (in every build, the wasm package's too); a layout-1 store gets them on its way.
//!
//! The layout is stored under `meta/layout` (`{"version": 3}`). A store without it holds
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
//! | `sync-index` (from layout 2 only) | up to `limit` syncs `s/...` (from the recorded offset) get their entry `sx/{account}/{inverted id}` |
//!
//! Layout 1 runs every phase but `sync-index` (its `syncs` phase writes the entries); layout 2
//! runs `references` and `sync-index`. A store without a marker that holds data (layout 1
//! where nothing was ever pushed, or a store a layout-2 engine began empty, which it never
//! marked) gets both indexes in the one step that marks it.

use super::migration::{layout_row, MigrationStep, Progress};
use super::tx::Tx;
#[cfg(not(feature = "layout1"))]
use crate::records::layout::LAYOUT1_UNSUPPORTED;
use crate::records::layout::{layout_of, Layout, LAYOUT_VERSION};
use crate::records::*;
use crate::store::KvRead;
use crate::CoreError;

/// Put the per-account index entries of up to `limit` syncs from `offset` in key order;
/// answers how many syncs were read.
fn index_syncs(
    tx: &mut Tx<'_>,
    store: &dyn KvRead,
    offset: usize,
    limit: usize,
) -> Result<usize, CoreError> {
    let rows = store.scan(keys::SYNCS, offset, limit)?;
    for (k, text) in &rows {
        let sync = rows::SyncRow::parse(text).map_err(|reason| CoreError::CorruptRow {
            key: k.clone(),
            reason,
        })?;
        let id = &k[keys::SYNCS.len()..];
        tx.put(keys::account_sync(&sync.account_id, id), json_string(id));
    }
    Ok(rows.len())
}

/// One bounded step of migrating a layout-2 store (or a migration from it) to layout 3.
fn step_from_2(
    mut tx: Tx<'_>,
    store: &dyn KvRead,
    limit: usize,
) -> Result<MigrationStep, CoreError> {
    let mut progress = match tx.get(keys::MIGRATION)? {
        Some(text) => Progress::parse(&text)
            .filter(|p| p.from == 2)
            .ok_or_else(|| CoreError::CorruptRow {
                key: keys::MIGRATION.into(),
                reason: format!("not the progress of a migration from layout 2: {text}"),
            })?,
        None => Progress {
            from: 2,
            phase: "references".into(),
            offset: 0,
        },
    };
    let n = match progress.phase.as_str() {
        "references" => super::stored::index_references(&mut tx, store, progress.offset, limit)?,
        "sync-index" => index_syncs(&mut tx, store, progress.offset, limit)?,
        other => {
            return Err(CoreError::CorruptRow {
                key: keys::MIGRATION.into(),
                reason: format!("unknown phase {other:?}"),
            })
        }
    };
    progress.offset += n;
    let mut done = false;
    if n < limit {
        progress.offset = 0;
        if progress.phase == "references" {
            progress.phase = "sync-index".into();
        } else {
            done = true;
        }
    }
    if done {
        tx.delete(keys::MIGRATION);
        tx.put(keys::LAYOUT, layout_row());
    } else {
        tx.put(keys::MIGRATION, progress.text());
    }
    Ok(MigrationStep {
        batch: tx.into_batch(),
        done,
        from: 2,
    })
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
                if store.first_key(keys::SYNCS)?.is_some() {
                    index_syncs(&mut tx, store, 0, usize::MAX)?;
                }
            }
            return Ok(MigrationStep {
                batch: tx.into_batch(),
                done: true,
                from: LAYOUT_VERSION,
            });
        }
        Layout::Two => return step_from_2(tx, store, limit),
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
