//! The rows of layout 1 that layout 2 changed, as layout 1 wrote them: read by the migration
//! (`engine/migrate.rs`) only.
//!
//! | key | value |
//! |---|---|
//! | `sync/{account}/{sync}` | [`SyncRec`](super::SyncRec) (its serde form is layout 1's) |
//! | `task/{task}` | [`TaskRecV1`]: one push, with a full copy of the object |
//! | `chain/{connection}/{type}/{id}` | the last unfinished task of the object there |
//! | `remote/{connection}/{type}/{id}` | [`RemoteRec`](super::RemoteRec) |
//!
//! Due entries of tasks had the value `""`.

use serde::{Deserialize, Serialize};

use super::{ObjectRef, TaskState};
use crate::cdm::ObjectType as Ty;
use crate::cdm::ObjectType;
use crate::connectors::ConnectorKind;

/// Prefix of layout 1's sync rows.
pub const SYNCS: &str = "sync/";
/// Prefix of layout 1's task rows.
pub const TASKS: &str = "task/";
/// Prefix of layout 1's push chains.
pub const CHAINS: &str = "chain/";
/// Prefix of layout 1's remote ids.
pub const REMOTES: &str = "remote/";

/// Layout 1's key of a sync.
pub fn sync_key(account: &str, id: &str) -> String {
    format!("sync/{account}/{id}")
}
/// Layout 1's key of a task.
pub fn task_key(id: &str) -> String {
    format!("task/{id}")
}
/// Layout 1's key of a remote id.
pub fn remote_key(connection: &str, t: Ty, id: &str) -> String {
    format!("remote/{connection}/{}/{id}", t.as_str())
}

/// One push task as layout 1 stored it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
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
    /// The object as written (JSON text).
    pub body: Box<serde_json::value::RawValue>,
    /// Tracking id.
    #[serde(default)]
    pub tracking_id: Option<String>,
    /// State.
    pub state: TaskState,
    /// Attempts.
    pub attempts: u32,
    /// Last error.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Tasks that must finish first.
    #[serde(default)]
    pub waiting_on: Vec<String>,
    /// Tasks that must have succeeded first.
    #[serde(default)]
    pub requires: Vec<String>,
    /// Tasks waiting for this one (task ids).
    #[serde(default)]
    pub successors: Vec<String>,
    /// References.
    #[serde(default)]
    pub references: Vec<(String, ObjectType, String)>,
    /// Connector.
    #[serde(default)]
    pub connector: ConnectorKind,
    /// Whether a `401` already asked for a new token.
    #[serde(default)]
    pub reauthorized: bool,
    /// Serial of the token in use.
    #[serde(default)]
    pub token_serial: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout1_tasks_read_with_and_without_empty_fields() {
        let compact = r#"{"id":"t","accountId":"a","syncId":"s","connectionId":"c","object":{"type":"invoice","id":"i"},"body":{"x":1},"state":{"state":"waiting"},"attempts":0}"#;
        let full = r#"{"id":"t","accountId":"a","syncId":"s","connectionId":"c","object":{"type":"invoice","id":"i"},"body":{"x":1},"trackingId":null,"state":{"state":"waiting"},"attempts":0,"lastError":null,"waitingOn":[],"requires":[],"successors":[],"references":[]}"#;
        for text in [compact, full] {
            let t: TaskRecV1 = serde_json::from_str(text).unwrap();
            assert_eq!(t.body.get(), "{\"x\":1}");
            assert_eq!(t.state, TaskState::Waiting);
            assert!(t.waiting_on.is_empty() && t.tracking_id.is_none());
        }
    }
}
