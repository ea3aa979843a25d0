//! The migration of data layout 1 to layout 5 (feature `layout1`): the phases of the table in
//! `engine/migrate.rs`, and the progress they record under `meta/migration`.

use super::migration::{layout_row, MigrationStep, Progress};
use super::stored;
use super::tx::Tx;
use crate::cdm::ObjectType;
use crate::connectors::{ConnectorKind, SourceError};
use crate::records::rows::{self, SyncRow};
use crate::records::v1::{self, TaskRecV1};
use crate::records::*;
use crate::store::KvRead;
use crate::CoreError;

/// One bounded step of migrating a store that holds layout 1 (or a migration from it).
pub(super) fn step(
    mut tx: Tx<'_>,
    store: &dyn KvRead,
    limit: usize,
) -> Result<MigrationStep, CoreError> {
    let mut progress = match tx.get(keys::MIGRATION)? {
        Some(text) => Progress::parse(&text).ok_or_else(|| CoreError::CorruptRow {
            key: keys::MIGRATION.into(),
            reason: format!("not a migration's progress: {text}"),
        })?,
        None => Progress {
            from: 1,
            phase: "syncs".into(),
            offset: 0,
        },
    };
    let complete = match progress.phase.as_str() {
        "syncs" => syncs(&mut tx, store, limit)?,
        "chains" => chains(&mut tx, store, limit)?,
        "remotes" => remotes(&mut tx, store, limit)?,
        "deliveries" => deliveries(&mut tx, store, limit, &mut progress.offset)?,
        "orphans" => orphans(&mut tx, store, limit)?,
        "references" => {
            let n = stored::index_references(&mut tx, store, progress.offset, limit)?;
            progress.offset += n;
            n < limit
        }
        "convert" => super::convert::convert(&mut tx, store, limit)?.1,
        other => {
            return Err(CoreError::CorruptRow {
                key: keys::MIGRATION.into(),
                reason: format!("unknown phase {other:?}"),
            })
        }
    };
    let mut done = false;
    if complete {
        progress.offset = 0;
        progress.phase = match progress.phase.as_str() {
            "syncs" => "chains",
            "chains" => "remotes",
            "remotes" => "deliveries",
            "deliveries" => "orphans",
            "orphans" => "references",
            "references" => "convert",
            _ => "",
        }
        .into();
        if progress.phase.is_empty() {
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
        from: progress.from,
    })
}

fn corrupt(key: &str, e: impl std::fmt::Display) -> CoreError {
    CoreError::CorruptRow {
        key: key.to_string(),
        reason: e.to_string(),
    }
}

fn version_of(text: &str) -> u64 {
    rows::version_of(text).unwrap_or(0)
}

fn object_type(s: &str) -> Option<ObjectType> {
    ObjectType::parse(s)
}

fn v1_task(tx: &Tx<'_>, key: &str) -> Result<Option<TaskRecV1>, CoreError> {
    match tx.get(key)? {
        None => Ok(None),
        Some(text) => TaskRecV1::parse(&text)
            .map(Some)
            .map_err(|e| corrupt(key, e)),
    }
}

/// The sync of a task: from its pointer when it was migrated, else from its layout 1 row.
fn sync_of(tx: &Tx<'_>, task: &str) -> Result<Option<String>, CoreError> {
    if let Some(s) = stored::get_id(tx, keys::task(task))? {
        return Ok(Some(s));
    }
    Ok(v1_task(tx, &v1::task_key(task))?.map(|t| t.sync_id))
}

/// Answers whether the phase is complete.
fn syncs(tx: &mut Tx<'_>, store: &dyn KvRead, limit: usize) -> Result<bool, CoreError> {
    let rows = store.scan(v1::SYNCS, 0, limit)?;
    for (key, value) in &rows {
        tx.delete(key.clone());
        let sync = v1::parse_sync(value).map_err(|e| corrupt(key, e))?;
        let mut tasks = Vec::new();
        for tid in sync.targets.iter().flat_map(|t| t.tasks.iter()) {
            let tk = v1::task_key(tid);
            let Some(old) = v1_task(tx, &tk)? else {
                continue;
            };
            tx.delete(tk);
            let body = old.body.get();
            let version = version_of(body);
            let unfinished = !old.state.status().is_final();
            let (a, t, oid) = (&old.account_id, old.object.object_type, &old.object.id);
            if unfinished {
                let current = tx.get(&keys::object(a, t, oid))?;
                if current.as_deref().map(version_of) != Some(version) {
                    tx.put(keys::kept_version(t, oid, version), body.to_string());
                }
                let due = match old.state {
                    TaskState::Pending { due_ms } => Some(due_ms),
                    TaskState::InProgress { lease_until_ms } => Some(lease_until_ms),
                    _ => None,
                };
                if let Some(ms) = due {
                    // Written as layout 3 names it: the phase `convert` rewrites every
                    // wake-up entry, also those of deliveries and token requests.
                    if store.contains(&v1::due_task_key(ms, tid))? {
                        tx.put(v1::due_task_key(ms, tid), json_string(&sync.id));
                    }
                }
            }
            let mut successors = Vec::with_capacity(old.successors.len());
            for s in &old.successors {
                if let Some(sync_id) = sync_of(tx, s)? {
                    successors.push(format!("{sync_id}/{s}"));
                }
            }
            tx.put(keys::task(tid), keys::id_value(&sync.id));
            tasks.push(TaskRec {
                id: old.id,
                account_id: old.account_id,
                sync_id: old.sync_id,
                connection_id: old.connection_id,
                object: old.object,
                version,
                tracking_id: old.tracking_id,
                state: old.state,
                attempts: old.attempts,
                error: recovered_error(old.last_error.as_deref(), old.connector),
                last_error: old.last_error,
                budget_start: 0,
                waiting_on: old.waiting_on,
                requires: old.requires,
                successors,
                references: old.references,
                connector: old.connector,
                reauthorized: old.reauthorized,
                token_serial: old.token_serial,
                delete: false,
            });
        }
        tx.put(
            keys::account_sync(&sync.account_id, &sync.id),
            keys::id_value(&sync.id),
        );
        tx.put_json(keys::sync(&sync.id), &SyncRow::encode(&sync, &tasks));
    }
    Ok(rows.len() < limit)
}

/// The structured error of a layout-1 task, recovered from its `lastError` (layout 1 kept
/// only the text): a source's answer was written `HTTP {status}` or `HTTP {status}: {text}`,
/// where the generic connector's text is the start of the answer's body, which is read as
/// today's answer would be; a provider connector's text is its own summary, so only the
/// status is known. Any other text (not sent, transport errors) has no structured form.
fn recovered_error(text: Option<&str>, connector: ConnectorKind) -> Option<SourceError> {
    let rest = text?.strip_prefix("HTTP ")?;
    let (code, body) = rest.split_once(": ").unwrap_or((rest, ""));
    if code.len() != 3 {
        return None;
    }
    let status: u16 = code.parse().ok()?;
    Some(if connector.is_generic() {
        SourceError::generic(
            status,
            &serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
        )
    } else {
        SourceError {
            status,
            code: None,
            message: None,
            field: None,
        }
    })
}

fn chains(tx: &mut Tx<'_>, store: &dyn KvRead, limit: usize) -> Result<bool, CoreError> {
    let rows = store.scan(v1::CHAINS, 0, limit)?;
    for (key, value) in &rows {
        tx.delete(key.clone());
        let mut parts = key[v1::CHAINS.len()..].splitn(3, '/');
        let (Some(_conn), Some(ty), Some(oid)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if object_type(ty).is_none() {
            continue;
        }
        let task_id: String = serde_json::from_str(value).map_err(|e| corrupt(key, e))?;
        let Some(sync_id) = stored::get_id(tx, keys::task(&task_id))? else {
            continue;
        };
        let Some(task) = stored::get_task(tx, &task_id, Some(&sync_id))? else {
            continue;
        };
        if !task.state.status().is_final() {
            stored::chain_add(tx, oid, &sync_id)?;
        }
    }
    Ok(rows.len() < limit)
}

fn remotes(tx: &mut Tx<'_>, store: &dyn KvRead, limit: usize) -> Result<bool, CoreError> {
    let rows = store.scan(v1::REMOTES, 0, limit)?;
    let mut accounts: Vec<(String, String)> = Vec::new();
    if !rows.is_empty() {
        for (k, _) in store.scan("conn/", 0, usize::MAX)? {
            if let Some((account, conn)) = k["conn/".len()..].split_once('/') {
                accounts.push((conn.to_string(), account.to_string()));
            }
        }
    }
    for (key, value) in &rows {
        tx.delete(key.clone());
        let mut parts = key[v1::REMOTES.len()..].splitn(3, '/');
        let (Some(conn), Some(ty), Some(oid)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Some(t) = object_type(ty) else { continue };
        if !accounts.iter().any(|(c, _)| c == conn) {
            continue;
        }
        let rec: RemoteRec = serde_json::from_str(value).map_err(|e| corrupt(key, e))?;
        stored::put_remote(tx, conn, t, oid, rec)?;
    }
    Ok(rows.len() < limit)
}

fn deliveries(
    tx: &mut Tx<'_>,
    store: &dyn KvRead,
    limit: usize,
    offset: &mut usize,
) -> Result<bool, CoreError> {
    let rows = store.scan("dlv/", *offset, limit)?;
    *offset += rows.len();
    for (key, value) in &rows {
        let d: DeliveryRec = serde_json::from_str(value).map_err(|e| corrupt(key, e))?;
        let Some(sid) = &d.sync_id else { continue };
        if let Some(mut sync) = stored::get_sync(tx, sid)? {
            if !sync.deliveries.contains(&d.id) {
                sync.deliveries.push(d.id.clone());
                stored::put_sync(tx, &sync)?;
            }
        }
    }
    Ok(rows.len() < limit)
}

fn orphans(tx: &mut Tx<'_>, store: &dyn KvRead, limit: usize) -> Result<bool, CoreError> {
    let rows = store.scan(v1::TASKS, 0, limit)?;
    for (key, _) in &rows {
        tx.delete(key.clone());
    }
    Ok(rows.len() < limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_errors_are_recovered_from_layout1_texts() {
        let generic = ConnectorKind::Generic;
        assert_eq!(
            recovered_error(
                Some(r#"HTTP 422: {"code":"E1","message":"bad","field":"name"}"#),
                generic
            ),
            Some(SourceError {
                status: 422,
                code: Some("E1".into()),
                message: Some("bad".into()),
                field: Some("name".into()),
            })
        );
        let status_only = |status| SourceError {
            status,
            code: None,
            message: None,
            field: None,
        };
        assert_eq!(
            recovered_error(Some("HTTP 503: maintenance"), generic),
            Some(status_only(503))
        );
        assert_eq!(
            recovered_error(Some("HTTP 500"), generic),
            Some(status_only(500))
        );
        // A provider connector's text is its own summary: only the status is known.
        assert_eq!(
            recovered_error(
                Some("HTTP 400: Duplicate Name Exists Error (code 6240)"),
                ConnectorKind::Quickbooks
            ),
            Some(status_only(400))
        );
        for none in [
            None,
            Some("not sent: the object has no customerId"),
            Some("connection refused"),
            Some("HTTP 4000: x"),
            Some("HTTP abc: x"),
        ] {
            assert_eq!(recovered_error(none, generic), None, "{none:?}");
        }
    }
}
