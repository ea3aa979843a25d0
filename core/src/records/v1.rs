//! The rows of layout 1 that layout 2 changed, as layout 1 wrote them: read by the migration
//! (`engine/migrate_v1.rs`) only, and built with the feature `layout1` only.
//!
//! | key | value |
//! |---|---|
//! | `sync/{account}/{sync}` | [`SyncRec`] (its serde form is layout 1's) |
//! | `task/{task}` | [`TaskRecV1`]: one push, with a full copy of the object |
//! | `chain/{connection}/{type}/{id}` | the last unfinished task of the object there |
//! | `remote/{connection}/{type}/{id}` | [`RemoteRec`](super::RemoteRec) |
//!
//! Due entries of tasks had the value `""`.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::value::{object_ref, sync_status, target_status, task_state, Fields};
use super::{ObjectRef, SyncRec, TargetRec, TaskState};
use crate::cdm::ObjectType as Ty;
use crate::connectors::ConnectorKind;

use super::layout::LAYOUT1_PREFIXES;

/// Prefix of layout 1's sync rows.
pub const SYNCS: &str = LAYOUT1_PREFIXES[0];
/// Prefix of layout 1's task rows.
pub const TASKS: &str = LAYOUT1_PREFIXES[1];
/// Prefix of layout 1's push chains.
pub const CHAINS: &str = LAYOUT1_PREFIXES[2];
/// Prefix of layout 1's remote ids.
pub const REMOTES: &str = LAYOUT1_PREFIXES[3];

/// Layout 1's key of a sync.
pub fn sync_key(account: &str, id: &str) -> String {
    format!("sync/{account}/{id}")
}
/// Layout 1's key of a task.
pub fn task_key(id: &str) -> String {
    format!("task/{id}")
}
/// The wake-up entry of a task as layouts 1 to 3 spell it (`due/{ms:016}/t/{id}`); the
/// conversion of `engine/convert.rs` rewrites it.
pub fn due_task_key(ms: i64, id: &str) -> String {
    format!("due/{:016}/t/{id}", ms.max(0))
}
/// Layout 1's key of a remote id.
pub fn remote_key(connection: &str, t: Ty, id: &str) -> String {
    format!("remote/{connection}/{}/{id}", t.as_str())
}

/// One push task as layout 1 stored it.
#[derive(Debug, Clone)]
pub struct TaskRecV1 {
    /// Id.
    pub id: String,
    /// Account.
    pub account_id: String,
    /// Sync.
    pub sync_id: String,
    /// Connection.
    pub connection_id: String,
    /// The object.
    pub object: ObjectRef,
    /// The object as written (JSON text, verbatim).
    pub body: Box<RawValue>,
    /// Tracking id.
    pub tracking_id: Option<String>,
    /// State.
    pub state: TaskState,
    /// Attempts.
    pub attempts: u32,
    /// Last error.
    pub last_error: Option<String>,
    /// Tasks that must finish first.
    pub waiting_on: Vec<String>,
    /// Tasks that must have succeeded first.
    pub requires: Vec<String>,
    /// Tasks waiting for this one (task ids).
    pub successors: Vec<String>,
    /// References.
    pub references: Vec<(String, Ty, String)>,
    /// Connector.
    pub connector: ConnectorKind,
    /// Whether a `401` already asked for a new token.
    pub reauthorized: bool,
    /// Serial of the token in use.
    pub token_serial: Option<u64>,
}

/// Only the body, kept verbatim (a parsed `Value` would reorder its keys).
#[derive(Deserialize)]
struct BodyOnly {
    body: Box<RawValue>,
}

impl TaskRecV1 {
    /// Read a layout 1 task row (fields left out when empty, or spelled `null` / `[]`).
    pub fn parse(text: &str) -> Result<TaskRecV1, String> {
        let body = serde_json::from_str::<BodyOnly>(text)
            .map_err(|e| e.to_string())?
            .body;
        let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let f = Fields::of(&v, "task")?;
        Ok(TaskRecV1 {
            id: f.string("id")?,
            account_id: f.string("accountId")?,
            sync_id: f.string("syncId")?,
            connection_id: f.string("connectionId")?,
            object: object_ref(f.get("object").ok_or("object: missing")?)?,
            body,
            tracking_id: f.opt_string("trackingId")?,
            state: task_state(f.get("state").ok_or("state: missing")?)?,
            attempts: f.opt_u32("attempts")?.unwrap_or(0),
            last_error: f.opt_string("lastError")?,
            waiting_on: f.strings("waitingOn")?,
            requires: f.strings("requires")?,
            successors: f.strings("successors")?,
            references: f.references("references")?,
            connector: f.connector("connector")?,
            reauthorized: f.flag("reauthorized")?,
            token_serial: f.opt_u64("tokenSerial")?,
        })
    }
}

/// Read a layout 1 sync row (the serde form of [`SyncRec`] of layout 1).
pub fn parse_sync(text: &str) -> Result<SyncRec, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let f = Fields::of(&v, "sync")?;
    let object = object_ref(f.get("object").ok_or("object: missing")?)?;
    let mut objects = Vec::new();
    if let Some(Value::Array(list)) = f.get("objects") {
        for o in list {
            objects.push(object_ref(o)?);
        }
    }
    let mut targets = Vec::new();
    if let Some(Value::Array(list)) = f.get("targets") {
        for t in list {
            let g = Fields::of(t, "target")?;
            targets.push(TargetRec {
                connection_id: g.string("connectionId")?,
                app: g.string("app")?,
                app_type: g.string("type")?,
                status: target_status(&g.string("status")?)?,
                attempts: g.opt_u32("attempts")?.unwrap_or(0),
                remote_id: g.opt_string("remoteId")?,
                last_error: g.opt_string("lastError")?,
                error: None,
                updated_at: g.string("updatedAt")?,
                tasks: g.strings("tasks")?,
            });
        }
    }
    Ok(SyncRec {
        id: f.string("id")?,
        account_id: f.string("accountId")?,
        status: sync_status(&f.string("status")?)?,
        request_id: f.string("requestId")?,
        tracking_id: f.opt_string("trackingId")?,
        operation: f.string("operation")?,
        object,
        objects,
        label: f.string("label")?,
        created_at: f.string("createdAt")?,
        updated_at: f.string("updatedAt")?,
        targets,
        deliveries: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout1_tasks_read_with_and_without_empty_fields() {
        let compact = r#"{"id":"t","accountId":"a","syncId":"s","connectionId":"c","object":{"type":"invoice","id":"i"},"body":{"x":1},"state":{"state":"waiting"},"attempts":0}"#;
        let full = r#"{"id":"t","accountId":"a","syncId":"s","connectionId":"c","object":{"type":"invoice","id":"i"},"body":{"x":1},"trackingId":null,"state":{"state":"waiting"},"attempts":0,"lastError":null,"waitingOn":[],"requires":[],"successors":[],"references":[]}"#;
        for text in [compact, full] {
            let t = TaskRecV1::parse(text).unwrap();
            assert_eq!(t.body.get(), "{\"x\":1}");
            assert_eq!(t.state, TaskState::Waiting);
            assert!(t.waiting_on.is_empty() && t.tracking_id.is_none());
        }
    }
}
