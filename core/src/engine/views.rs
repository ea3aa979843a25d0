//! The JSON views of stored records in answers and webhook payloads.

use serde_json::{json, Value};

use crate::records::*;

pub(crate) fn account_json(a: &AccountRec) -> Value {
    json!({"id": a.id, "domain": a.domain, "writeEnabled": a.write_enabled, "createdAt": a.created_at})
}

/// The JSON of a connection. A provider connection also shows its `connector`, `baseUrl`
/// and `settings` (which never hold secrets: tokens are the host's).
pub(crate) fn connection_json(c: &ConnectionRec) -> Value {
    let mut v = json!({"id": c.id, "app": c.app, "type": c.app_type,
                       "objects": c.objects, "createdAt": c.created_at});
    if let Some(o) = v.as_object_mut() {
        if let Some(u) = &c.push_url {
            o.insert("pushUrl".into(), Value::String(u.clone()));
        }
        if !c.connector.is_generic() {
            o.insert("connector".into(), json!(c.connector));
            o.insert("baseUrl".into(), json!(c.base_url));
            o.insert("settings".into(), json!(c.settings));
        }
    }
    v
}

pub(crate) fn webhook_json(w: &WebhookRec) -> Value {
    json!({"id": w.id, "url": w.url, "events": w.events, "createdAt": w.created_at,
           "basicAuth": w.username.is_some(), "signed": w.signing_secret.is_some(),
           "enabled": w.disabled_reason.is_none(), "disabledReason": w.disabled_reason})
}

pub(crate) fn delivery_json(d: &DeliveryRec) -> Value {
    json!({"id": d.id, "event": d.event, "status": d.state.status(), "attempts": d.attempts,
           "lastStatusCode": d.last_status_code, "lastError": d.last_error,
           "syncId": d.sync_id, "trackingId": d.tracking_id, "createdAt": d.created_at, "updatedAt": d.updated_at})
}

/// The JSON answer of `GET /api/syncs/{id}`.
pub(crate) fn sync_json(s: &SyncRec) -> Value {
    json!({
        "id": s.id,
        "status": s.status,
        "requestId": s.request_id,
        "trackingId": s.tracking_id,
        "operation": s.operation,
        "object": s.object,
        "objects": s.objects,
        "createdAt": s.created_at,
        "updatedAt": s.updated_at,
        "targets": s.targets.iter().map(|t| json!({
            "app": t.app, "type": t.app_type, "connectionId": t.connection_id,
            "status": t.status, "attempts": t.attempts, "remoteId": t.remote_id,
            "lastError": t.last_error, "updatedAt": t.updated_at,
        })).collect::<Vec<_>>(),
    })
}
