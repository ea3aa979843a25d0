//! Upkeep: handing leased work out again after a restart, and pruning what is past its
//! retention.

use super::items::{parse_due_key, WorkRef};
use super::state::{id_time_ms, Engine};
use super::stored;
use super::tx::Tx;
use crate::records::rows::SyncRow;
use crate::records::*;
use crate::store::{Batch, KvRead};
use crate::util::time::parse_rfc3339_millis;
use crate::CoreError;

pub(crate) fn recover(now: i64, store: &dyn KvRead) -> Result<Batch, CoreError> {
    let mut tx = Tx::new(store);
    for (key, value) in store.scan(keys::DUE, 0, usize::MAX)? {
        let Some(entry) = parse_due_key(&key) else {
            continue;
        };
        if entry.ms <= now {
            continue;
        }
        let leased = match entry.what() {
            WorkRef::Task(id) => {
                let sync = keys::id_of_value(&value);
                matches!(
                    stored::get_task(&tx, id, sync.as_deref()),
                    Ok(Some(TaskRec {
                        state: TaskState::InProgress { .. },
                        ..
                    }))
                )
            }
            WorkRef::TokenRequest(id) => matches!(
                tx.get_json::<TokenRequestRec>(&keys::token_request(id)),
                Ok(Some(TokenRequestRec {
                    state: TokenRequestState::InProgress { .. },
                    ..
                }))
            ),
            WorkRef::Delivery(id) => matches!(
                tx.get_json::<DeliveryRec>(&keys::delivery(id)),
                Ok(Some(DeliveryRec {
                    state: DeliveryState::InProgress { .. },
                    ..
                }))
            ),
        };
        if leased {
            tx.delete(key.clone());
            // The value (a task's sync) goes with the entry.
            tx.put(entry.what().due_key(now), value.clone());
        }
    }
    Ok(tx.into_batch())
}

fn expired(
    store: &dyn KvRead,
    prefix: &str,
    cut: i64,
    limit: usize,
) -> Result<Vec<(String, Option<String>)>, CoreError> {
    let mut out = Vec::new();
    for (k, _) in store.scan(prefix, 0, limit)? {
        match k[prefix.len()..].split_once('/') {
            None => out.push((k.clone(), None)),
            Some((ms, rest)) => {
                if ms.parse::<i64>().unwrap_or(i64::MIN) > cut {
                    break;
                }
                let rest = Some(rest.to_string());
                out.push((k, rest));
            }
        }
    }
    Ok(out)
}

fn retention_cut(now: i64, retention_ms: u64) -> i64 {
    now.saturating_sub(i64::try_from(retention_ms).unwrap_or(i64::MAX))
}

pub(crate) fn prune(
    engine: &mut Engine,
    now: i64,
    limit: usize,
    store: &dyn KvRead,
) -> Result<Batch, CoreError> {
    let mut tx = Tx::new(store);
    let idem_cut = retention_cut(now, engine.config.idempotency_retention_ms);
    for (entry, rest) in expired(store, keys::IDEM_EXPIRY, idem_cut, limit)? {
        tx.delete(entry);
        if let Some((account, key)) = rest.as_deref().and_then(|r| r.split_once('/')) {
            let ik = keys::idempotency(account, key);
            // Only delete the record this entry was written for (not a newer one).
            if let Some(rec) = tx.get_json::<IdemRec>(&ik)? {
                if rec.created_ms <= idem_cut {
                    tx.delete(ik);
                }
            }
        }
    }
    let dlv_cut = retention_cut(now, engine.config.delivery_retention_ms);
    for (entry, rest) in expired(store, keys::DELIVERY_EXPIRY, dlv_cut, limit)? {
        tx.delete(entry);
        let Some(id) = rest else { continue };
        if let Some(d) = tx.get_json::<DeliveryRec>(&keys::delivery(&id))? {
            // A delivery retried by hand after it finished is unfinished again: keep it.
            if d.state.status() != DeliveryStatus::Pending {
                tx.delete(keys::delivery(&id));
                tx.delete(keys::webhook_delivery(&d.account_id, &d.webhook_id, &id));
            }
        }
    }
    prune_syncs(engine, now, limit, store, &mut tx)?;
    Ok(tx.into_batch())
}

/// How many pages of `limit` syncs one prune reads at most: old syncs that must stay (still
/// unfinished) are skipped without stopping the pruning of those after them, up to this bound.
const SYNC_PAGES: usize = 8;

/// Remove up to `limit` syncs made before the retention window whose targets all finished,
/// with their task pointers and webhook deliveries (and the deliveries' index entries). The
/// syncs are scanned oldest first (their ids are time-ordered) and the scan stops at the
/// window; an unfinished sync, or one with a delivery still owed, is kept and skipped. At
/// most [`SYNC_PAGES`] pages of `limit` rows are read per call.
fn prune_syncs(
    engine: &Engine,
    now: i64,
    limit: usize,
    store: &dyn KvRead,
    tx: &mut Tx<'_>,
) -> Result<(), CoreError> {
    let cut = retention_cut(now, engine.config.sync_retention_ms);
    let limit = limit.max(1);
    let mut pruned = 0;
    let mut offset = 0;
    // The store does not change during the call (the deletes are in `tx`): each page starts
    // after the rows already read.
    for _ in 0..SYNC_PAGES {
        let page = store.scan(keys::SYNCS, offset, limit)?;
        offset += page.len();
        let full = page.len() == limit;
        for (key, value) in page {
            if pruned >= limit {
                return Ok(());
            }
            if keys::is_chain(&key) {
                // A push chain: it goes when its object's last unfinished push finishes.
                continue;
            }
            match prune_sync(cut, tx, &key, &value)? {
                Pruned::Yes => pruned += 1,
                Pruned::Kept => {}
                Pruned::Past => return Ok(()),
            }
        }
        if !full || pruned >= limit {
            break;
        }
    }
    Ok(())
}

enum Pruned {
    Yes,
    Kept,
    Past,
}

/// Prune one sync row if it is past `cut` and finished.
fn prune_sync(cut: i64, tx: &mut Tx<'_>, key: &str, value: &str) -> Result<Pruned, CoreError> {
    {
        let Some(id) = keys::id_from_key(&key[keys::SYNCS.len()..]) else {
            return Ok(Pruned::Kept);
        };
        let id = id.as_str();
        match id_time_ms(id) {
            Some(ms) if ms <= cut => {}
            Some(_) => return Ok(Pruned::Past),
            None => return Ok(Pruned::Kept),
        }
        let Ok(row) = SyncRow::parse(value) else {
            return Ok(Pruned::Kept);
        };
        let (sync, tasks) = row.decode(id);
        if !sync.status.is_final() || tasks.iter().any(|t| !t.state.status().is_final()) {
            return Ok(Pruned::Kept);
        }
        let mut deliveries = Vec::with_capacity(sync.deliveries.len());
        for d in &sync.deliveries {
            if let Some(rec) = tx.get_json::<DeliveryRec>(&keys::delivery(d))? {
                deliveries.push(rec);
            }
        }
        if deliveries
            .iter()
            .any(|d| d.state.status() == DeliveryStatus::Pending)
        {
            return Ok(Pruned::Kept);
        }
        tx.delete(key.to_string());
        tx.delete(keys::account_sync(&sync.account_id, id));
        for t in &tasks {
            tx.delete(keys::task(&t.id));
        }
        for d in deliveries {
            tx.delete(keys::delivery(&d.id));
            tx.delete(keys::webhook_delivery(&d.account_id, &d.webhook_id, &d.id));
            if let Some(ms) = parse_rfc3339_millis(&d.updated_at) {
                tx.delete(keys::delivery_expiry(ms, &d.id));
            }
        }
    }
    Ok(Pruned::Yes)
}
