//! The stored data layout: which one a store holds, and the migration of layouts 1 to 4 to
//! layout 5 in bounded, resumable steps.
//!
//! Layout 3 is layout 2 with two indexes that contract section 7 reads: the reverse reference
//! index (the `409` of a delete) and the per-account sync index (`GET /api/syncs`). Layout 4
//! spells the keys of the rows a write adds per object and per push shorter
//! ([`keys::id_in_key`]): the ids in them are 22 symbols instead of 36, the chains, remote
//! ids, kept versions and references name no account (object ids are unique in a store), and
//! their families have new prefixes (`s/` became `sy/`, `sx/` `sa/`, `t/` `tk/`, `c/` `ch/`,
//! `r/` `rm/`, `v/` `ov/`, `ref/` `rf/`, `uniq/` `uq/`, `due/` `du/`, `hookdlv/` `wd/`), so that the conversion
//! can take the first rows left under an old prefix at every step, with no offset to keep.
//! Layout 5 keeps an object's push chain among the syncs, `sy/{id*}/c` instead of
//! `ch/{type}/{id*}` ([`keys::chain`]): ids are drawn in time order, so the chain a create
//! starts sits beside the row of its sync, and the write touches one page of the store's key
//! index for both instead of two.
//!
//! The layout is stored under `meta/layout` (`{"version": 5}`). A store without it holds
//! layout 1 when any of layout 1's own prefixes (`sync/`, `task/`, `chain/`, `remote/`) is
//! present; otherwise it holds nothing layout 1 and 2 spell differently, and it is migrated as
//! a layout-2 store. Nothing is written for an empty store: the engine that found it empty
//! marks it with its first write (`Engine::mark_pending`, `execute.rs`), so a store this engine
//! began is never left unmarked with data. A migration step converts
//! up to `limit` rows of one phase and writes, in the same batch, its progress under
//! `meta/migration`: a step whose batch is lost is simply done again, and a store left between
//! steps resumes where it stopped. The phases of layout 1 are in `migrate_v1.rs`, built with
//! the feature `layout1` (on by default); a build without it (the wasm package) refuses a
//! layout-1 store with [`CoreError::Layout`]
//! ([`LAYOUT1_UNSUPPORTED`](crate::records::layout::LAYOUT1_UNSUPPORTED)) and writes nothing.
//!
//! | phase | what one step does |
//! |---|---|
//! | `syncs` | up to `limit` syncs `sync/{account}/{sync}` with their tasks `task/{task}` become rows `sy/{sync}` (a task names the version it pushes; a version replaced since is kept under `ov/` while the task is unfinished); each task gets its pointer `tk/{task}`, and the due entries of its unfinished tasks name the sync |
//! | `chains` | `chain/{connection}/{type}/{id}` becomes the object's push chain `sy/{id*}/c` (for an unfinished task) |
//! | `remotes` | `remote/{connection}/{type}/{id}` joins the object's `rm/` row (a connection that no longer exists has no account and its ids are dropped) |
//! | `deliveries` | each delivery is listed in its sync's row (so that it is pruned with it) |
//! | `orphans` | task rows that no sync listed are removed |
//! | `references` | up to `limit` objects `obj/...` (in key order, from the recorded offset) get their entries in the reverse reference index `rf/...` (an invoice's customer and line accounts, an expense's vendor and line accounts) |
//! | `convert` (`convert.rs`) | the first `limit` rows left under the prefixes of layouts 2, 3 and 4 (`s/`, `sx/`, `t/`, `c/`, `ch/`, `r/`, `v/`, `ref/`, `uniq/`, `due/`, `hookdlv/`) are written under layout 5's keys, with the ids in their index values in the short form, and removed |
//! | `sync-index` (from layout 2 only) | the syncs among up to `limit` rows under `sy/` (from the recorded offset; push chains are passed over) get their entry `sa/{account}/{inverted id}` |
//!
//! Layout 1 runs every phase but `sync-index` (its `syncs` phase writes the entries), ending
//! with `convert` (for its uniqueness and wake-up entries); layout 2 runs `convert`,
//! `references` and `sync-index`; layouts 3 and 4 run `convert` only.

use super::migration::{layout_row, MigrationStep, Progress};
use super::tx::Tx;
#[cfg(not(feature = "layout1"))]
use crate::records::layout::LAYOUT1_UNSUPPORTED;
use crate::records::layout::{layout_of, Layout, LAYOUT_VERSION};
use crate::records::*;
use crate::store::KvRead;
use crate::CoreError;

/// Put the per-account index entries of the syncs among up to `limit` rows under `sy/` from
/// `offset` in key order (the push chains among them are passed over); answers how many rows
/// were read.
fn index_syncs(
    tx: &mut Tx<'_>,
    store: &dyn KvRead,
    offset: usize,
    limit: usize,
) -> Result<usize, CoreError> {
    let rows = store.scan(keys::SYNCS, offset, limit)?;
    for (k, text) in &rows {
        if keys::is_chain(k) {
            continue;
        }
        let corrupt = |reason: String| CoreError::CorruptRow {
            key: k.clone(),
            reason,
        };
        let sync = rows::SyncRow::parse(text).map_err(corrupt)?;
        let id = keys::id_from_key(&k[keys::SYNCS.len()..])
            .ok_or_else(|| corrupt("not a sync id".into()))?;
        tx.put(
            keys::account_sync(&sync.account_id, &id),
            keys::id_value(&id),
        );
    }
    Ok(rows.len())
}

/// One bounded step of migrating a layout-2, 3 or 4 store (or a migration from one) to
/// layout 5.
fn step_from_old(
    mut tx: Tx<'_>,
    store: &dyn KvRead,
    limit: usize,
    from: u32,
) -> Result<MigrationStep, CoreError> {
    let mut progress = match tx.get(keys::MIGRATION)? {
        Some(text) => Progress::parse(&text)
            .filter(|p| p.from == from)
            .ok_or_else(|| CoreError::CorruptRow {
                key: keys::MIGRATION.into(),
                reason: format!("not the progress of a migration from layout {from}: {text}"),
            })?,
        None => Progress {
            from,
            phase: "convert".into(),
            offset: 0,
        },
    };
    // Phases follow one another within a step while rows of its budget are left, except after
    // a conversion that rewrote rows: the phases after it read the store as committed, which
    // does not hold those rows yet.
    let mut left = limit;
    let mut done = false;
    loop {
        let (read, complete) = match progress.phase.as_str() {
            "convert" => super::convert::convert(&mut tx, store, left)?,
            "references" => {
                let n = super::stored::index_references(&mut tx, store, progress.offset, left)?;
                (n, n < left)
            }
            "sync-index" => {
                let n = index_syncs(&mut tx, store, progress.offset, left)?;
                (n, n < left)
            }
            other => {
                return Err(CoreError::CorruptRow {
                    key: keys::MIGRATION.into(),
                    reason: format!("unknown phase {other:?}"),
                })
            }
        };
        left -= read;
        if !complete {
            // The conversion keeps no offset: the rows it took are gone from the old prefixes.
            if progress.phase != "convert" {
                progress.offset += read;
            }
            break;
        }
        let converted = progress.phase == "convert" && read > 0;
        progress.offset = 0;
        match (from, progress.phase.as_str()) {
            (2, "convert") => progress.phase = "references".into(),
            (2, "references") => progress.phase = "sync-index".into(),
            _ => done = true,
        }
        if done || converted || left == 0 {
            break;
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
        from,
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
            // An empty store has nothing to mark yet (its first open costs no write; the
            // engine's first write marks it). One with data holds nothing that layouts 1 and 2
            // spell differently: it is migrated as layout 2, and marked so (a later step knows
            // what it holds).
            if store.first_key("")?.is_none() {
                return Ok(MigrationStep {
                    batch: tx.into_batch(),
                    done: true,
                    from: LAYOUT_VERSION,
                });
            }
            tx.put(keys::LAYOUT, "{\"version\":2}");
            return step_from_old(tx, store, limit, 2);
        }
        Layout::Older(from) => return step_from_old(tx, store, limit, from),
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
