//! Webhook events: what a change of a sync's targets queues for the account's subscriptions,
//! and a delivery's manual retry.

use serde_json::{json, Value};

use super::state::Engine;
use super::tx::Tx;
use super::views::sync_json;
use super::vocab::{Ctx, H};
use crate::records::*;
use crate::util::time::rfc3339_millis;
use crate::CoreError;

fn account_domain(tx: &Tx<'_>, account: &str) -> Result<String, CoreError> {
    Ok(tx
        .get_json::<AccountRec>(&keys::account(account))?
        .map(|a| a.domain)
        .unwrap_or_default())
}

pub(crate) fn emit_target_update(
    engine: &mut Engine,
    now: i64,
    tx: &mut Tx<'_>,
    sync: &mut SyncRec,
    ti: usize,
) -> Result<(), CoreError> {
    let Some(t) = sync.targets.get(ti) else {
        return Ok(());
    };
    let hooks = subscribed(tx, &sync.account_id, "api_push_update")?;
    if hooks.is_empty() {
        return Ok(());
    }
    let message = match t.status {
        TargetStatus::Succeeded => format!("{} pushed to {}", sync.label, t.app),
        _ => format!(
            "{} failed to push to {}: {}",
            sync.label,
            t.app,
            t.last_error.as_deref().unwrap_or("unknown error")
        ),
    };
    let data = json!({
        "syncId": sync.id,
        "trackingId": sync.tracking_id,
        "status": t.status,
        "app": t.app,
        "type": t.app_type,
        "connectionId": t.connection_id,
        "object": sync.object,
        "remoteId": t.remote_id,
        "attempts": t.attempts,
        "error": if t.status == TargetStatus::Failed { Value::from(t.last_error.clone()) } else { Value::Null },
    });
    emit(
        engine,
        now,
        tx,
        sync,
        hooks,
        "api_push_update",
        message,
        data,
    )
}

pub(crate) fn emit_sync_complete(
    engine: &mut Engine,
    now: i64,
    tx: &mut Tx<'_>,
    sync: &mut SyncRec,
) -> Result<(), CoreError> {
    let hooks = subscribed(tx, &sync.account_id, "api_push_complete")?;
    if hooks.is_empty() {
        return Ok(());
    }
    let message = format!(
        "{} sync {}",
        sync.label,
        sync.status.as_str().replace('_', " ")
    );
    let mut full = sync_json(sync);
    // The webhook keeps the targets of section 5 (status, attempts, lastError, ...): the
    // structured `error` of section 7 belongs to the sync view only, so that a delivery made
    // before it existed and one made after read alike.
    if let Some(Value::Array(targets)) = full.get_mut("targets") {
        for t in targets {
            if let Some(o) = t.as_object_mut() {
                o.remove("error");
            }
        }
    }
    let data = json!({
        "syncId": sync.id,
        "trackingId": sync.tracking_id,
        "status": sync.status,
        "operation": sync.operation,
        "object": sync.object,
        "objects": sync.objects,
        "targets": full.get("targets").cloned().unwrap_or(Value::Array(vec![])),
    });
    emit(
        engine,
        now,
        tx,
        sync,
        hooks,
        "api_push_complete",
        message,
        data,
    )
}

/// The account's enabled subscriptions to `event` (asked before an event's body is built:
/// most accounts subscribe to none).
fn subscribed(tx: &Tx<'_>, account: &str, event: &str) -> Result<Vec<WebhookRec>, CoreError> {
    let hooks: Vec<WebhookRec> = tx.scan_json(&keys::webhooks(account), 0, usize::MAX)?;
    Ok(hooks
        .into_iter()
        .filter(|h| {
            tx.get(&keys::webhook(account, &h.id))
                .ok()
                .flatten()
                .is_some()
        })
        .filter(|h| h.disabled_reason.is_none() && h.events.iter().any(|e| e == "*" || e == event))
        .collect())
}

/// Queue a delivery of `event` to each of `hooks`.
#[allow(clippy::too_many_arguments)]
fn emit(
    engine: &mut Engine,
    now: i64,
    tx: &mut Tx<'_>,
    sync: &mut SyncRec,
    hooks: Vec<WebhookRec>,
    event: &str,
    message: String,
    data: Value,
) -> Result<(), CoreError> {
    let body = json!({
        "event": event,
        "requestId": sync.request_id,
        "domain": account_domain(tx, &sync.account_id)?,
        "message": message,
        "data": data,
    })
    .to_string();
    for h in hooks {
        let d = queue(
            engine,
            now,
            tx,
            &sync.account_id,
            &h.id,
            event,
            body.clone(),
        );
        let d = DeliveryRec {
            sync_id: Some(sync.id.clone()),
            tracking_id: sync.tracking_id.clone(),
            ..d
        };
        tx.put_json(keys::delivery(&d.id), &d);
        // Kept with the sync, so that it is pruned with it.
        sync.deliveries.push(d.id);
    }
    Ok(())
}

/// A new delivery due now, in the subscription's index and the wake-up index (the caller
/// stores the record).
fn queue(
    engine: &mut Engine,
    now: i64,
    tx: &mut Tx<'_>,
    account: &str,
    webhook: &str,
    event: &str,
    body: String,
) -> DeliveryRec {
    let id = engine.new_id(now);
    let now_str = rfc3339_millis(now);
    tx.put(
        keys::webhook_delivery(account, webhook, &id),
        json_string(&id),
    );
    tx.put(keys::due_delivery(now, &id), "\"\"");
    DeliveryRec {
        id,
        account_id: account.to_string(),
        webhook_id: webhook.to_string(),
        event: event.to_string(),
        state: DeliveryState::Pending { due_ms: now },
        attempts: 0,
        budget_used: 0,
        last_status_code: None,
        last_error: None,
        sync_id: None,
        tracking_id: None,
        body,
        created_at: now_str.clone(),
        updated_at: now_str,
    }
}

/// The admin API's test ping: one `webhook_test` delivery (`data: {webhookId}`), whatever
/// the subscription's `events`, delivered and retried like any other. Pruned by the
/// finished-delivery retention, as it belongs to no sync.
pub(crate) fn queue_test(
    engine: &mut Engine,
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
    hook: &WebhookRec,
) -> DeliveryRec {
    let body = json!({
        "event": TEST_EVENT,
        // No write caused it.
        "requestId": null,
        "domain": account.domain,
        "message": format!("test delivery to webhook {}", hook.id),
        "data": {"webhookId": hook.id},
    })
    .to_string();
    let d = queue(
        engine,
        ctx.now,
        &mut ctx.tx,
        &account.id,
        &hook.id,
        TEST_EVENT,
        body,
    );
    ctx.tx.put_json(keys::delivery(&d.id), &d);
    d
}

/// The event of a test ping; not one a subscription can name in `events`.
pub(crate) const TEST_EVENT: &str = "webhook_test";

/// The admin API's retry: a failed delivery is attempted again now with a fresh budget.
pub(crate) fn manual_retry(ctx: &mut Ctx<'_>, mut d: DeliveryRec) -> H<DeliveryRec> {
    let now_is = match d.state {
        DeliveryState::Failed => None,
        DeliveryState::Pending { .. } | DeliveryState::InProgress { .. } => Some("pending"),
        DeliveryState::Delivered => Some("delivered"),
    };
    if let Some(status) = now_is {
        return super::vocab::fail(
            crate::http::ProblemKind::Conflict,
            format!("only a failed delivery can be retried; this one is {status}"),
        );
    }
    d.state = DeliveryState::Pending { due_ms: ctx.now };
    d.budget_used = 0;
    d.updated_at = ctx.now_str.clone();
    ctx.tx.put(keys::due_delivery(ctx.now, &d.id), "\"\"");
    ctx.tx.put_json(keys::delivery(&d.id), &d);
    Ok(d)
}
