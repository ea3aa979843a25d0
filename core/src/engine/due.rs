//! Handing out due work: pushes, token requests and webhook deliveries whose time has come,
//! each under a lease.

use std::collections::BTreeMap;

use serde_json::Value;

use super::items::{
    lease_until, parse_due_key, push_attempts_allowed, DueWork, OutboundRequest, WorkItem,
    WorkKind, WorkRef, WEBHOOK_ATTEMPTS,
};
use super::lifecycle::{
    ask_token, fail_waiting, finish_delivery, finish_task, lease_token_request, token_expired,
    update_target,
};
use super::state::Engine;
use super::stored;
use super::tx::Tx;
use crate::connectors::{Operation, PushInput, Reference};
use crate::records::*;
use crate::store::KvRead;
use crate::util::crypto::{basic_auth_header, webhook_signature};
use crate::util::time::rfc3339_millis;
use crate::CoreError;

pub(crate) fn next_deadline(store: &dyn KvRead) -> Result<Option<i64>, CoreError> {
    Ok(store
        .first_key(keys::DUE)?
        .and_then(|k| parse_due_key(&k).map(|e| e.ms)))
}

pub(crate) fn due(
    engine: &mut Engine,
    now: i64,
    limit: usize,
    store: &dyn KvRead,
) -> Result<DueWork, CoreError> {
    let mut tx = Tx::new(store);
    let mut items = Vec::new();
    let mut skipped = Vec::new();
    let mut offset = 0;
    'outer: while items.len() < limit {
        // A page of about what is still wanted (the worker claims a few items at a time):
        // each entry read is a row with its value.
        let page = (limit - items.len()).clamp(8, 64);
        let entries = store.scan(keys::DUE, offset, page)?;
        if entries.is_empty() {
            break;
        }
        offset += entries.len();
        for (key, value) in entries {
            if items.len() >= limit {
                break 'outer;
            }
            let Some(entry) = parse_due_key(&key) else {
                tx.delete(key);
                continue;
            };
            if entry.ms > now {
                break 'outer;
            }
            tx.delete(key.clone());
            let checkpoint = tx.checkpoint();
            let item = match entry.what() {
                WorkRef::Task(id) => {
                    let sync = keys::id_of_value(&value);
                    due_task(engine, now, &mut tx, id, sync.as_deref())
                }
                WorkRef::TokenRequest(id) => due_token_request(engine, now, &mut tx, id),
                WorkRef::Delivery(id) => due_delivery(engine, now, &mut tx, id),
            };
            match item {
                Ok(item) => items.extend(item),
                Err(e @ CoreError::CorruptRow { .. }) => {
                    // Undo whatever this item wrote; its wake-up entry stays deleted.
                    tx.restore(checkpoint);
                    skipped.push(e.to_string());
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(DueWork {
        items,
        batch: tx.into_batch(),
        skipped,
    })
}

pub(crate) fn due_task(
    engine: &mut Engine,
    now: i64,
    tx: &mut Tx<'_>,
    id: &str,
    sync: Option<&str>,
) -> Result<Option<WorkItem>, CoreError> {
    let Some(mut task) = stored::get_task(tx, id, sync)? else {
        return Ok(None);
    };
    match task.state {
        TaskState::Pending { .. } => {}
        TaskState::InProgress { .. } => {
            // The lease ran out without a result: the host died or lost the item.
            if task.attempts.saturating_sub(task.budget_start) >= push_attempts_allowed(engine) {
                task.error = None;
                task.last_error = Some("no result was reported before the lease expired".into());
                task.state = TaskState::Failed;
                finish_task(engine, now, tx, task)?;
                return Ok(None);
            }
        }
        _ => return Ok(None),
    }
    let Some(conn) =
        tx.get_json::<ConnectionRec>(&keys::connection(&task.account_id, &task.connection_id))?
    else {
        task.error = None;
        task.last_error = Some("the connection was deleted".into());
        task.state = TaskState::Failed;
        finish_task(engine, now, tx, task)?;
        return Ok(None);
    };
    let connector = conn.connector.connector();
    let provider = !conn.connector.is_generic();
    let remote = stored::get_remote(tx, &conn.id, task.object.object_type, &task.object.id)?;
    let mut references = Vec::with_capacity(task.references.len());
    for (field, t, rid) in &task.references {
        let remote_id = stored::get_remote(tx, &conn.id, *t, rid)?.and_then(|r| r.remote_id);
        // Provider connectors may need the referenced object itself (an account's code).
        let object = if provider && !rid.contains('/') {
            tx.get_json::<Value>(&keys::object(&task.account_id, *t, rid))?
        } else {
            None
        };
        references.push(Reference {
            field: field.clone(),
            object_type: *t,
            id: rid.clone(),
            remote_id,
            object,
        });
    }
    let mut token = None;
    if connector.needs_token() {
        match tx.get_json::<TokenRec>(&keys::token(&conn.id))? {
            Some(t) if !token_expired(&t, now) => token = Some(t),
            other => {
                let reason = if other.is_some() {
                    "expired"
                } else {
                    "missing"
                };
                task.state = TaskState::WaitingForToken;
                stored::point(tx, &task)?;
                stored::put_task(tx, &task)?;
                let account = task.account_id.clone();
                return ask_token(engine, now, tx, &conn, &account, &task.id, reason, true);
            }
        }
    }
    let url = if provider {
        conn.base_url.as_deref()
    } else {
        conn.push_url.as_deref()
    };
    let Some(body) = stored::pushed_body(tx, &task)? else {
        task.error = None;
        task.last_error = Some(format!(
            "version {} of the object is no longer stored",
            task.version
        ));
        task.state = TaskState::Failed;
        finish_task(engine, now, tx, task)?;
        return Ok(None);
    };
    let body = match serde_json::value::RawValue::from_string(body) {
        Ok(b) => b,
        Err(e) => {
            return Err(CoreError::CorruptRow {
                key: keys::object(&task.account_id, task.object.object_type, &task.object.id),
                reason: e.to_string(),
            })
        }
    };
    let operation = task.operation(remote.is_some());
    if operation == Operation::Delete
        && remote.as_ref().and_then(|r| r.remote_id.as_ref()).is_none()
    {
        task.last_error = Some(format!(
            "not sent: {} holds no id for this object",
            conn.app
        ));
        task.state = TaskState::Failed;
        finish_task(engine, now, tx, task)?;
        return Ok(None);
    }
    let input = PushInput {
        object_type: task.object.object_type,
        object: &body,
        operation,
        remote_id: remote.as_ref().and_then(|r| r.remote_id.as_deref()),
        remote_version: remote.as_ref().and_then(|r| r.version.as_deref()),
        references: &references,
        idempotency_key: &task.id,
        sync_id: &task.sync_id,
        tracking_id: task.tracking_id.as_deref(),
        url: url.unwrap_or_default(),
        settings: &conn.settings,
        access_token: token.as_ref().map(|t| t.access_token.as_str()),
    };
    let request = match connector.request(&input) {
        Ok(r) => r,
        Err(why) => {
            task.error = None;
            task.last_error = Some(why.to_string());
            task.state = TaskState::Failed;
            finish_task(engine, now, tx, task)?;
            return Ok(None);
        }
    };
    task.attempts = task.attempts.saturating_add(1);
    task.token_serial = token.map(|t| t.serial);
    let until = lease_until(engine, now);
    task.state = TaskState::InProgress {
        lease_until_ms: until,
    };
    stored::put_due(tx, until, &task);
    stored::point(tx, &task)?;
    let item = WorkItem {
        id: WorkRef::Task(&task.id).work_id(task.attempts),
        kind: WorkKind::Push,
        request,
    };
    update_target(engine, now, tx, &task)?;
    stored::put_task(tx, &task)?;
    Ok(Some(item))
}

/// A token request's wake-up: hand it out (again), or give up after its last attempt.
pub(crate) fn due_token_request(
    engine: &mut Engine,
    now: i64,
    tx: &mut Tx<'_>,
    connection: &str,
) -> Result<Option<WorkItem>, CoreError> {
    let Some(mut r) = tx.get_json::<TokenRequestRec>(&keys::token_request(connection))? else {
        return Ok(None);
    };
    if matches!(r.state, TokenRequestState::InProgress { .. })
        && r.attempts >= push_attempts_allowed(engine)
    {
        tx.delete(keys::token_request(connection));
        let why = format!(
            "no access token for {}: the host reported no result before the lease expired",
            r.app
        );
        fail_waiting(engine, now, tx, r.waiting, &why)?;
        return Ok(None);
    }
    Ok(Some(lease_token_request(engine, now, tx, &mut r)))
}

pub(crate) fn due_delivery(
    engine: &mut Engine,
    now: i64,
    tx: &mut Tx<'_>,
    id: &str,
) -> Result<Option<WorkItem>, CoreError> {
    let Some(mut d) = tx.get_json::<DeliveryRec>(&keys::delivery(id))? else {
        return Ok(None);
    };
    let leased = match d.state {
        DeliveryState::Pending { .. } => false,
        DeliveryState::InProgress { .. } => true,
        DeliveryState::Delivered | DeliveryState::Failed => return Ok(None),
    };
    if leased && d.budget_used >= WEBHOOK_ATTEMPTS {
        d.last_error = Some("no result was reported before the lease expired".into());
        finish_delivery(now, tx, d, DeliveryState::Failed)?;
        return Ok(None);
    }
    let Some(hook) = tx.get_json::<WebhookRec>(&keys::webhook(&d.account_id, &d.webhook_id))?
    else {
        d.last_error = Some("the webhook subscription was deleted".into());
        finish_delivery(now, tx, d, DeliveryState::Failed)?;
        return Ok(None);
    };
    let mut headers = BTreeMap::new();
    headers.insert("Content-Type".to_string(), "application/json".to_string());
    if let Some(s) = &d.sync_id {
        headers.insert("X-Sync-ID".to_string(), s.clone());
    }
    if let Some(t) = &d.tracking_id {
        headers.insert("X-Tracking-ID".to_string(), t.clone());
    }
    if let Some(u) = &hook.username {
        headers.insert(
            "Authorization".to_string(),
            basic_auth_header(u, hook.password.as_deref().unwrap_or("")),
        );
    }
    if let Some(secret) = &hook.signing_secret {
        let ts = now.div_euclid(1000);
        // During a rotation's overlap the old secret signs too (Standard Webhooks sends
        // space-separated signatures; a receiver accepts any one it can verify).
        let old = hook.previous_secret.as_ref().filter(|p| now < p.until_ms);
        let sign = |s: &str| webhook_signature(s, &d.id, ts, &d.body);
        let signed = match old {
            Some(p) => sign(secret).and_then(|a| Ok(format!("{a} {}", sign(&p.secret)?))),
            None => sign(secret),
        };
        match signed {
            Ok(sig) => {
                headers.insert("webhook-id".to_string(), d.id.clone());
                headers.insert("webhook-timestamp".to_string(), ts.to_string());
                headers.insert("webhook-signature".to_string(), sig);
            }
            Err(e) => {
                d.last_error = Some(format!("cannot sign: {e}"));
                finish_delivery(now, tx, d, DeliveryState::Failed)?;
                return Ok(None);
            }
        }
    }
    d.attempts = d.attempts.saturating_add(1);
    d.budget_used = d.budget_used.saturating_add(1);
    let until = lease_until(engine, now);
    d.state = DeliveryState::InProgress {
        lease_until_ms: until,
    };
    d.updated_at = rfc3339_millis(now);
    tx.put(keys::due_delivery(until, &d.id), "\"\"");
    let item = WorkItem {
        id: WorkRef::Delivery(&d.id).work_id(d.attempts),
        kind: WorkKind::Webhook,
        request: OutboundRequest {
            method: "POST".into(),
            url: hook.url,
            headers,
            body: d.body.clone(),
        },
    };
    tx.put_json(keys::delivery(&d.id), &d);
    Ok(Some(item))
}
