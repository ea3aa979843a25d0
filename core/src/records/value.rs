//! Reading the engine's own rows from parsed JSON (`serde_json::Value`) field by field.
//!
//! The sync rows and the rows of layout 1 are read this way rather than with derived
//! `Deserialize` impls: the code a derive generates for each large record is a measurable
//! share of the wasm module (held to 250 KB gzipped), and these readers share one parser.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

#[cfg(feature = "layout1")]
use super::ObjectRef;
use super::{
    AccountRec, AdminRec, ApiKeyRec, ConnectionRec, DeliveryRec, DeliveryState, IdemRec,
    RetiredSecret, SyncStatus, TargetStatus, TaskState, TokenRec, TokenRequestRec,
    TokenRequestState, WebhookRec,
};
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

/// A required field: `Err` when it is absent or `null`.
fn need<T>(v: Option<T>, k: &str) -> Result<T, String> {
    v.ok_or_else(|| bad(k, "missing"))
}

impl Fields<'_> {
    #[inline(never)]
    pub(crate) fn opt_i64(&self, k: &str) -> Result<Option<i64>, String> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v.as_i64().map(Some).ok_or_else(|| bad(k, "not an integer")),
        }
    }
    #[inline(never)]
    pub(crate) fn opt_u16(&self, k: &str) -> Result<Option<u16>, String> {
        match self.opt_u64(k)? {
            None => Ok(None),
            Some(n) => u16::try_from(n)
                .map(Some)
                .map_err(|_| bad(k, "out of range")),
        }
    }
    #[inline(never)]
    pub(crate) fn u32(&self, k: &str) -> Result<u32, String> {
        need(self.opt_u32(k)?, k)
    }
    #[inline(never)]
    pub(crate) fn i64(&self, k: &str) -> Result<i64, String> {
        need(self.opt_i64(k)?, k)
    }
}

// The stored records read field by field (their `Deserialize` impls in `records/mod.rs` parse
// the text once into a `Value` and call these): what serde's derive accepts, they accept.

pub(crate) fn admin(v: &Value) -> Result<AdminRec, String> {
    let f = Fields::of(v, "admin")?;
    Ok(AdminRec {
        token_sha256: f.string("tokenSha256")?,
    })
}

pub(crate) fn account(v: &Value) -> Result<AccountRec, String> {
    let f = Fields::of(v, "account")?;
    Ok(AccountRec {
        id: f.string("id")?,
        domain: f.string("domain")?,
        write_enabled: need(
            f.get("writeEnabled").and_then(Value::as_bool),
            "writeEnabled",
        )?,
        created_at: f.string("createdAt")?,
    })
}

pub(crate) fn api_key(v: &Value) -> Result<ApiKeyRec, String> {
    let f = Fields::of(v, "API key")?;
    Ok(ApiKeyRec {
        key: f.string("key")?,
        account_id: f.string("accountId")?,
        secret_sha256: f.string("secretSha256")?,
        scopes: f.strings("scopes")?,
        name: f.opt_string("name")?,
        created_at: f.string("createdAt")?,
    })
}

pub(crate) fn connection(v: &Value) -> Result<ConnectionRec, String> {
    let f = Fields::of(v, "connection")?;
    let mut objects = Vec::new();
    if let Some(list) = f.get("objects") {
        for t in list
            .as_array()
            .ok_or_else(|| bad("objects", "not a list"))?
        {
            objects.push(object_type(t)?);
        }
    }
    let mut settings = BTreeMap::new();
    if let Some(map) = f.get("settings") {
        for (k, s) in map
            .as_object()
            .ok_or_else(|| bad("settings", "not an object"))?
        {
            let s = s.as_str().ok_or_else(|| bad("settings", "not a string"))?;
            settings.insert(k.clone(), s.to_string());
        }
    }
    Ok(ConnectionRec {
        id: f.string("id")?,
        app: f.string("app")?,
        app_type: f.string("type")?,
        push_url: f.opt_string("pushUrl")?,
        objects,
        created_at: f.string("createdAt")?,
        connector: f.connector("connector")?,
        base_url: f.opt_string("baseUrl")?,
        settings,
    })
}

pub(crate) fn webhook(v: &Value) -> Result<WebhookRec, String> {
    let f = Fields::of(v, "webhook")?;
    let previous_secret = match f.get("previousSecret") {
        None => None,
        Some(p) => {
            let p = Fields::of(p, "previousSecret")?;
            Some(RetiredSecret {
                secret: p.string("secret")?,
                until_ms: p.i64("untilMs")?,
            })
        }
    };
    Ok(WebhookRec {
        id: f.string("id")?,
        url: f.string("url")?,
        events: f.strings("events")?,
        username: f.opt_string("username")?,
        password: f.opt_string("password")?,
        signing_secret: f.opt_string("signingSecret")?,
        created_at: f.string("createdAt")?,
        previous_secret,
        disabled_reason: f.opt_string("disabledReason")?,
        consecutive_failures: f.opt_u32("consecutiveFailures")?.unwrap_or(0),
    })
}

pub(crate) fn token(v: &Value) -> Result<TokenRec, String> {
    let f = Fields::of(v, "token")?;
    Ok(TokenRec {
        access_token: f.string("accessToken")?,
        expires_at_ms: f.opt_i64("expiresAtMs")?,
        serial: need(f.opt_u64("serial")?, "serial")?,
    })
}

pub(crate) fn token_request(v: &Value) -> Result<TokenRequestRec, String> {
    let f = Fields::of(v, "token request")?;
    // Stored as serde writes the enum, the same form as a task's state.
    let state = match task_state(need(f.get("state"), "state")?)? {
        TaskState::Pending { due_ms } => TokenRequestState::Pending { due_ms },
        TaskState::InProgress { lease_until_ms } => {
            TokenRequestState::InProgress { lease_until_ms }
        }
        _ => return Err(bad("state", "not pending or in_progress")),
    };
    Ok(TokenRequestRec {
        connection_id: f.string("connectionId")?,
        account_id: f.string("accountId")?,
        app: f.string("app")?,
        reason: f.string("reason")?,
        state,
        attempts: f.u32("attempts")?,
        waiting: f.strings("waiting")?,
    })
}

pub(crate) fn delivery(v: &Value) -> Result<DeliveryRec, String> {
    let f = Fields::of(v, "delivery")?;
    let status = f.string("status")?;
    let state = match (status.as_str(), f.opt_i64("leaseUntilMs")?) {
        ("pending", Some(lease_until_ms)) => DeliveryState::InProgress { lease_until_ms },
        // The engine always stores a pending delivery with one of the two; one without
        // either is taken as due at once, the safe reading (it is attempted, not lost).
        ("pending", None) => DeliveryState::Pending {
            due_ms: f.opt_i64("dueMs")?.unwrap_or(0),
        },
        ("delivered", _) => DeliveryState::Delivered,
        ("failed", _) => DeliveryState::Failed,
        _ => return Err(bad("status", "unknown delivery status")),
    };
    Ok(DeliveryRec {
        id: f.string("id")?,
        account_id: f.string("accountId")?,
        webhook_id: f.string("webhookId")?,
        event: f.string("event")?,
        state,
        attempts: f.u32("attempts")?,
        budget_used: f.u32("budgetUsed")?,
        last_status_code: f.opt_u16("lastStatusCode")?,
        last_error: f.opt_string("lastError")?,
        sync_id: f.opt_string("syncId")?,
        tracking_id: f.opt_string("trackingId")?,
        body: f.string("body")?,
        created_at: f.string("createdAt")?,
        updated_at: f.string("updatedAt")?,
    })
}

pub(crate) fn idem(v: &Value) -> Result<IdemRec, String> {
    let f = Fields::of(v, "idempotency record")?;
    let mut headers = Vec::new();
    for h in need(f.get("headers"), "headers")?
        .as_array()
        .ok_or_else(|| bad("headers", "not a list"))?
    {
        match h.as_array().map(Vec::as_slice) {
            Some([Value::String(k), Value::String(v)]) => headers.push((k.clone(), v.clone())),
            _ => return Err(bad("headers", "not [name, value]")),
        }
    }
    Ok(IdemRec {
        fingerprint: f.string("fingerprint")?,
        status: need(f.opt_u16("status")?, "status")?,
        headers,
        body: f.string("body")?,
        created_ms: f.i64("createdMs")?,
    })
}
