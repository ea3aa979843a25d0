//! The state machines behind due work: a task's end and its target's status, a connection's
//! token request, a delivery's end.

use std::collections::BTreeMap;

use serde_json::json;

use super::events::{emit_sync_complete, emit_target_update};
use super::items::{
    lease_until, OutboundRequest, WorkItem, WorkKind, WorkRef, TOKEN_EXPIRY_MARGIN_MS, TOKEN_URL,
};
use super::state::Engine;
use super::stored;
use super::tx::Tx;
use crate::records::rows::derive_target_error;
use crate::records::*;
use crate::util::time::rfc3339_millis;
use crate::CoreError;

pub(crate) fn token_expired(t: &TokenRec, now: i64) -> bool {
    t.access_token.is_empty()
        || t.expires_at_ms
            .is_some_and(|e| e.saturating_sub(TOKEN_EXPIRY_MARGIN_MS) <= now)
}

/// Make `task_id` wait for the connection's token: join the open request, or open one. With
/// `emit_now` a new request is handed out at once (as the returned item); otherwise it is due
/// at `now`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn ask_token(
    engine: &mut Engine,
    now: i64,
    tx: &mut Tx<'_>,
    conn: &ConnectionRec,
    account_id: &str,
    task_id: &str,
    reason: &str,
    emit_now: bool,
) -> Result<Option<WorkItem>, CoreError> {
    let key = keys::token_request(&conn.id);
    if let Some(mut r) = tx.get_json::<TokenRequestRec>(&key)? {
        if !r.waiting.iter().any(|w| w == task_id) {
            r.waiting.push(task_id.to_string());
        }
        tx.put_json(key, &r);
        return Ok(None);
    }
    let mut r = TokenRequestRec {
        connection_id: conn.id.clone(),
        account_id: account_id.to_string(),
        app: conn.app.clone(),
        reason: reason.to_string(),
        state: TokenRequestState::Pending { due_ms: now },
        attempts: 0,
        waiting: vec![task_id.to_string()],
    };
    if emit_now {
        return Ok(Some(lease_token_request(engine, now, tx, &mut r)));
    }
    tx.put(keys::due_token(now, &conn.id), "\"\"");
    tx.put_json(key, &r);
    Ok(None)
}

/// Hand a token request to the host: lease it and build its item.
pub(crate) fn lease_token_request(
    engine: &Engine,
    now: i64,
    tx: &mut Tx<'_>,
    r: &mut TokenRequestRec,
) -> WorkItem {
    r.attempts = r.attempts.saturating_add(1);
    let until = lease_until(engine, now);
    r.state = TokenRequestState::InProgress {
        lease_until_ms: until,
    };
    tx.put(keys::due_token(until, &r.connection_id), "\"\"");
    tx.put_json(keys::token_request(&r.connection_id), &*r);
    let body = json!({
        "connectionId": r.connection_id,
        "accountId": r.account_id,
        "app": r.app,
        "reason": r.reason,
    });
    WorkItem {
        id: WorkRef::TokenRequest(&r.connection_id).work_id(r.attempts),
        kind: WorkKind::Token,
        request: OutboundRequest {
            method: "TOKEN".into(),
            url: TOKEN_URL.into(),
            headers: BTreeMap::new(),
            body: body.to_string(),
        },
    }
}

/// Fail every push still waiting for a token, with `why`.
pub(crate) fn fail_waiting(
    engine: &mut Engine,
    now: i64,
    tx: &mut Tx<'_>,
    waiting: Vec<String>,
    why: &str,
) -> Result<(), CoreError> {
    for tid in waiting {
        let Some(mut t) = stored::get_task(tx, &tid, None)? else {
            continue;
        };
        if t.state != TaskState::WaitingForToken {
            continue;
        }
        t.last_error = Some(why.to_string());
        t.error = None;
        t.state = TaskState::Failed;
        finish_task(engine, now, tx, t)?;
    }
    Ok(())
}

/// A task reached a final state: store it, release the tasks waiting for it (failing those
/// that required its success), and update its target and sync.
pub(crate) fn finish_task(
    engine: &mut Engine,
    now: i64,
    tx: &mut Tx<'_>,
    first: TaskRec,
) -> Result<(), CoreError> {
    let mut work = vec![first];
    while let Some(task) = work.pop() {
        stored::put_task(tx, &task)?;
        stored::chain_release(
            tx,
            &task.account_id,
            task.object.object_type,
            &task.object.id,
        )?;
        let failed = task.state == TaskState::Failed;
        for sref in &task.successors {
            let Some(mut succ) = stored::get_task_ref(tx, sref)? else {
                continue;
            };
            if succ.state != TaskState::Waiting {
                continue;
            }
            succ.waiting_on.retain(|w| w != &task.id);
            if failed && succ.requires.contains(&task.id) {
                succ.state = TaskState::Failed;
                succ.error = None;
                succ.last_error = Some(format!(
                    "not sent: the push of {} {} that it depends on failed",
                    task.object.object_type.as_str(),
                    task.object.id
                ));
                work.push(succ);
            } else if succ.waiting_on.is_empty() {
                succ.state = TaskState::Pending { due_ms: now };
                stored::put_due(tx, now, &succ);
                stored::put_task(tx, &succ)?;
            } else {
                stored::put_task(tx, &succ)?;
            }
        }
        update_target(engine, now, tx, &task)?;
    }
    Ok(())
}

/// Recompute the target of `task` (and its sync) from its tasks; emit the events of targets
/// and syncs that became final.
pub(crate) fn update_target(
    engine: &mut Engine,
    now: i64,
    tx: &mut Tx<'_>,
    task: &TaskRec,
) -> Result<(), CoreError> {
    let Some((mut sync, tasks)) = stored::get_sync_tasks(tx, &task.sync_id)? else {
        return Ok(());
    };
    let Some(ti) = sync.targets.iter().position(|t| t.tasks.contains(&task.id)) else {
        return Ok(());
    };
    let now_str = rfc3339_millis(now);
    let mut by_id: BTreeMap<&str, &TaskRec> = BTreeMap::new();
    for t in &tasks {
        by_id.insert(t.id.as_str(), t);
    }
    let mine: Vec<&TaskRec> = sync.targets[ti]
        .tasks
        .iter()
        .filter_map(|tid| {
            if tid == &task.id {
                Some(task)
            } else {
                by_id.get(tid.as_str()).copied()
            }
        })
        .collect();
    let (status, attempts, last_error, error) = derive_target_error(&mine);
    let target = &mut sync.targets[ti];
    let was_final = target.status.is_final();
    let conn_id = target.connection_id.clone();
    target.status = status;
    target.attempts = attempts;
    target.last_error = last_error;
    target.error = error;
    target.remote_id = stored::get_remote(tx, &conn_id, sync.object.object_type, &sync.object.id)?
        .and_then(|r| r.remote_id);
    target.updated_at = now_str.clone();
    let sync_was_final = sync.status.is_final();
    sync.status = SyncStatus::aggregate(&sync.targets.iter().map(|t| t.status).collect::<Vec<_>>());
    sync.updated_at = now_str;
    if !was_final && status.is_final() {
        emit_target_update(engine, now, tx, &mut sync, ti)?;
    }
    if !sync_was_final && sync.status.is_final() {
        emit_sync_complete(engine, now, tx, &mut sync)?;
    }
    stored::put_sync(tx, &sync)
}

/// Deliveries in a row that end `failed` before their subscription is disabled.
pub(crate) const AUTO_DISABLE_AFTER: u32 = 10;

/// A delivery's end, and what it does to its subscription's run of failures: a delivered one
/// resets it, the [`AUTO_DISABLE_AFTER`]th failed one in a row disables the subscription.
pub(crate) fn finish_delivery(
    now: i64,
    tx: &mut Tx<'_>,
    mut d: DeliveryRec,
    end: DeliveryState,
) -> Result<(), CoreError> {
    d.state = end;
    d.updated_at = rfc3339_millis(now);
    tx.put(keys::delivery_expiry(now, &d.id), "\"\"");
    tx.put_json(keys::delivery(&d.id), &d);
    let hk = keys::webhook(&d.account_id, &d.webhook_id);
    let Some(mut hook) = tx.get_json::<WebhookRec>(&hk)? else {
        return Ok(());
    };
    let before = (hook.consecutive_failures, hook.disabled_reason.is_some());
    if end == DeliveryState::Delivered {
        hook.consecutive_failures = 0;
    } else {
        hook.consecutive_failures = hook.consecutive_failures.saturating_add(1);
        if hook.consecutive_failures >= AUTO_DISABLE_AFTER && hook.disabled_reason.is_none() {
            hook.disabled_reason = Some(format!(
                "disabled after {AUTO_DISABLE_AFTER} consecutive failed deliveries (the last, {}: {})",
                d.id,
                d.last_error.as_deref().unwrap_or("unknown error")
            ));
        }
    }
    if before != (hook.consecutive_failures, hook.disabled_reason.is_some()) {
        tx.put_json(hk, &hook);
    }
    Ok(())
}
