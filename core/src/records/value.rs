//! Reading the engine's own rows from parsed JSON (`serde_json::Value`) field by field.
//!
//! The sync rows and the rows of layout 1 are read this way rather than with derived
//! `Deserialize` impls: the code a derive generates for each large record is a measurable
//! share of the wasm module (held to 250 KB gzipped), and these readers share one parser.

use serde_json::{Map, Value};

#[cfg(feature = "layout1")]
use super::ObjectRef;
use super::{SyncStatus, TargetStatus, TaskState};
use crate::cdm::ObjectType;
use crate::connectors::ConnectorKind;

/// The fields of one JSON object.
pub(crate) struct Fields<'a>(&'a Map<String, Value>);

fn bad(what: &str, why: &str) -> String {
    format!("{what}: {why}")
}

impl<'a> Fields<'a> {
    pub(crate) fn of(v: &'a Value, what: &str) -> Result<Fields<'a>, String> {
        v.as_object()
            .map(Fields)
            .ok_or_else(|| bad(what, "not a JSON object"))
    }
    /// A field as given (also `null`).
    #[inline(never)]
    pub(crate) fn raw(&self, k: &str) -> Option<&'a Value> {
        self.0.get(k)
    }
    /// A field, `null` read as absent.
    #[inline(never)]
    pub(crate) fn get(&self, k: &str) -> Option<&'a Value> {
        self.0.get(k).filter(|v| !v.is_null())
    }
    #[inline(never)]
    pub(crate) fn string(&self, k: &str) -> Result<String, String> {
        self.opt_string(k)?.ok_or_else(|| bad(k, "missing"))
    }
    #[inline(never)]
    pub(crate) fn opt_string(&self, k: &str) -> Result<Option<String>, String> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(|s| Some(s.to_string()))
                .ok_or_else(|| bad(k, "not a string")),
        }
    }
    #[inline(never)]
    pub(crate) fn opt_u64(&self, k: &str) -> Result<Option<u64>, String> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| bad(k, "not a count")),
        }
    }
    #[inline(never)]
    pub(crate) fn opt_u32(&self, k: &str) -> Result<Option<u32>, String> {
        match self.opt_u64(k)? {
            None => Ok(None),
            Some(n) => u32::try_from(n)
                .map(Some)
                .map_err(|_| bad(k, "out of range")),
        }
    }
    #[inline(never)]
    pub(crate) fn strings(&self, k: &str) -> Result<Vec<String>, String> {
        match self.get(k) {
            None => Ok(Vec::new()),
            Some(Value::Array(list)) => {
                let mut out = Vec::with_capacity(list.len());
                for v in list {
                    out.push(
                        v.as_str()
                            .ok_or_else(|| bad(k, "not a list of strings"))?
                            .to_string(),
                    );
                }
                Ok(out)
            }
            Some(_) => Err(bad(k, "not a list")),
        }
    }
    #[inline(never)]
    pub(crate) fn flag(&self, k: &str) -> Result<bool, String> {
        match self.get(k) {
            None => Ok(false),
            Some(v) => v.as_bool().ok_or_else(|| bad(k, "not a boolean")),
        }
    }
    #[inline(never)]
    pub(crate) fn connector(&self, k: &str) -> Result<ConnectorKind, String> {
        match self.opt_string(k)? {
            None => Ok(ConnectorKind::default()),
            Some(s) => ConnectorKind::parse(&s).ok_or_else(|| bad(k, "unknown connector")),
        }
    }
    /// Layout 1's `references` field (layout 2 stores them positionally).
    #[cfg(feature = "layout1")]
    #[inline(never)]
    pub(crate) fn references(&self, k: &str) -> Result<Vec<(String, ObjectType, String)>, String> {
        match self.get(k) {
            None => Ok(Vec::new()),
            Some(v) => references(v),
        }
    }
}

#[inline(never)]
pub(crate) fn object_type(v: &Value) -> Result<ObjectType, String> {
    v.as_str()
        .and_then(ObjectType::parse)
        .ok_or_else(|| "not an object type".to_string())
}

/// `[type, id]`.
#[inline(never)]
pub(crate) fn pair(v: &Value) -> Result<(ObjectType, String), String> {
    match v.as_array().map(Vec::as_slice) {
        Some([t, id]) => Ok((
            object_type(t)?,
            id.as_str().ok_or("the id is not a string")?.to_string(),
        )),
        _ => Err("not [type, id]".into()),
    }
}

/// `{"type", "id"}`, as layout 1 stored objects.
#[cfg(feature = "layout1")]
#[inline(never)]
pub(crate) fn object_ref(v: &Value) -> Result<ObjectRef, String> {
    let f = Fields::of(v, "object")?;
    Ok(ObjectRef {
        object_type: object_type(f.get("type").unwrap_or(&Value::Null))?,
        id: f.string("id")?,
    })
}

/// `[[field, type, id], ...]`.
#[inline(never)]
pub(crate) fn references(v: &Value) -> Result<Vec<(String, ObjectType, String)>, String> {
    let list = v.as_array().ok_or("references: not a list")?;
    let mut out = Vec::with_capacity(list.len());
    for r in list {
        match r.as_array().map(Vec::as_slice) {
            Some([field, t, id]) => out.push((
                field.as_str().ok_or("reference field")?.to_string(),
                object_type(t)?,
                id.as_str().ok_or("reference id")?.to_string(),
            )),
            _ => return Err("references: not [field, type, id]".to_string()),
        }
    }
    Ok(out)
}

/// A task's state as serde writes [`TaskState`] (`{"state": "pending", "due_ms": 5}`).
#[inline(never)]
pub(crate) fn task_state(v: &Value) -> Result<TaskState, String> {
    let f = Fields::of(v, "state")?;
    let ms = |k: &str| {
        f.get(k)
            .and_then(Value::as_i64)
            .ok_or_else(|| bad(k, "missing"))
    };
    Ok(match f.string("state")?.as_str() {
        "waiting" => TaskState::Waiting,
        "waiting_for_token" => TaskState::WaitingForToken,
        "pending" => TaskState::Pending {
            due_ms: ms("due_ms")?,
        },
        "in_progress" => TaskState::InProgress {
            lease_until_ms: ms("lease_until_ms")?,
        },
        "succeeded" => TaskState::Succeeded,
        "failed" => TaskState::Failed,
        other => return Err(format!("unknown task state {other:?}")),
    })
}

#[inline(never)]
pub(crate) fn target_status(s: &str) -> Result<TargetStatus, String> {
    [
        TargetStatus::Pending,
        TargetStatus::InProgress,
        TargetStatus::Succeeded,
        TargetStatus::Failed,
    ]
    .into_iter()
    .find(|t| t.as_str() == s)
    .ok_or_else(|| format!("unknown target status {s:?}"))
}

#[inline(never)]
pub(crate) fn sync_status(s: &str) -> Result<SyncStatus, String> {
    [
        SyncStatus::Pending,
        SyncStatus::InProgress,
        SyncStatus::Succeeded,
        SyncStatus::PartiallyFailed,
        SyncStatus::Failed,
        SyncStatus::NoTargets,
    ]
    .into_iter()
    .find(|t| t.as_str() == s)
    .ok_or_else(|| format!("unknown sync status {s:?}"))
}
