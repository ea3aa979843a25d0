//! Reading the engine's own rows from parsed JSON (`serde_json::Value`) field by field.
//!
//! The sync rows, the rows of layout 1 and the stored records (accounts, API keys,
//! connections, webhooks, tokens, token requests, deliveries, idempotency records; their
//! `Deserialize` impls in `records/mod.rs` call the readers at the end of this file) are read
//! this way rather than with derived `Deserialize` impls: the code a derive generates for each
//! large record is a measurable share of the wasm module (held to 250 KB gzipped), and these
//! readers share one parser (wasm/README.md "Size and speed").

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

/// The input parsed as a `Value`: one out-of-line instance per deserializer for every
/// hand-written `Deserialize` impl (inlined into one of them it was a second 1.4 KB copy).
#[inline(never)]
pub(crate) fn value_of<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    serde::Deserialize::deserialize(d)
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

/// Reads the fields of one record without a `?` per field: the first error is kept and
/// [`Reader::done`] reports it. (A `?` inside a struct literal makes the compiler write the
/// cleanup of every field read before it, a ladder per field; one check at the end keeps
/// each reader small in the wasm module.)
pub(crate) struct Reader<'a> {
    pub(crate) f: Fields<'a>,
    err: std::cell::Cell<Option<String>>,
}

impl<'a> Reader<'a> {
    pub(crate) fn of(v: &'a Value, what: &str) -> Result<Reader<'a>, String> {
        Ok(Reader {
            f: Fields::of(v, what)?,
            err: std::cell::Cell::new(None),
        })
    }
    /// The value, or (keeping the first error) a placeholder that [`Reader::done`] drops.
    pub(crate) fn keep<T: Default>(&self, r: Result<T, String>) -> T {
        match r {
            Ok(v) => v,
            Err(e) => {
                self.fail(e);
                T::default()
            }
        }
    }
    /// Note an error (the first one is kept).
    #[inline(never)]
    pub(crate) fn fail(&self, e: String) {
        let first = self.err.take().unwrap_or(e);
        self.err.set(Some(first));
    }
    #[inline(never)]
    pub(crate) fn s(&self, k: &str) -> String {
        self.keep(self.f.string(k))
    }
    #[inline(never)]
    pub(crate) fn os(&self, k: &str) -> Option<String> {
        self.keep(self.f.opt_string(k))
    }
    #[inline(never)]
    pub(crate) fn list(&self, k: &str) -> Vec<String> {
        self.keep(self.f.strings(k))
    }
    #[inline(never)]
    pub(crate) fn n(&self, k: &str) -> u32 {
        self.keep(self.f.u32(k))
    }
    #[inline(never)]
    pub(crate) fn oi(&self, k: &str) -> Option<i64> {
        self.keep(self.f.opt_i64(k))
    }
    #[inline(never)]
    pub(crate) fn i(&self, k: &str) -> i64 {
        self.keep(self.f.i64(k))
    }
    /// `rec`, or the first error met while reading it.
    pub(crate) fn done<T>(self, rec: T) -> Result<T, String> {
        match self.err.into_inner() {
            None => Ok(rec),
            Some(e) => Err(e),
        }
    }
}

// The stored records read field by field (their `Deserialize` impls in `records/mod.rs` parse
// the text once into a `Value` and call these): what serde's derive accepts, they accept.

pub(crate) fn admin(v: &Value) -> Result<AdminRec, String> {
    let r = Reader::of(v, "admin")?;
    let rec = AdminRec {
        token_sha256: r.s("tokenSha256"),
    };
    r.done(rec)
}

pub(crate) fn account(v: &Value) -> Result<AccountRec, String> {
    let r = Reader::of(v, "account")?;
    let rec = AccountRec {
        id: r.s("id"),
        domain: r.s("domain"),
        write_enabled: r.keep(need(
            r.f.get("writeEnabled").and_then(Value::as_bool),
            "writeEnabled",
        )),
        created_at: r.s("createdAt"),
    };
    r.done(rec)
}

pub(crate) fn api_key(v: &Value) -> Result<ApiKeyRec, String> {
    let r = Reader::of(v, "API key")?;
    let rec = ApiKeyRec {
        key: r.s("key"),
        account_id: r.s("accountId"),
        secret_sha256: r.s("secretSha256"),
        scopes: r.list("scopes"),
        name: r.os("name"),
        created_at: r.s("createdAt"),
    };
    r.done(rec)
}

pub(crate) fn connection(v: &Value) -> Result<ConnectionRec, String> {
    let r = Reader::of(v, "connection")?;
    let mut objects = Vec::new();
    if let Some(list) = r.f.get("objects") {
        match list.as_array() {
            None => r.fail(bad("objects", "not a list")),
            Some(list) => {
                for t in list {
                    match object_type(t) {
                        Ok(t) => objects.push(t),
                        Err(e) => r.fail(e),
                    }
                }
            }
        }
    }
    let mut settings = BTreeMap::new();
    if let Some(map) = r.f.get("settings") {
        match map.as_object() {
            None => r.fail(bad("settings", "not an object")),
            Some(map) => {
                for (k, s) in map {
                    match s.as_str() {
                        Some(s) => {
                            settings.insert(k.clone(), s.to_string());
                        }
                        None => r.fail(bad("settings", "not a string")),
                    }
                }
            }
        }
    }
    let rec = ConnectionRec {
        id: r.s("id"),
        app: r.s("app"),
        app_type: r.s("type"),
        push_url: r.os("pushUrl"),
        objects,
        created_at: r.s("createdAt"),
        connector: r.keep(r.f.connector("connector")),
        base_url: r.os("baseUrl"),
        settings,
    };
    r.done(rec)
}

pub(crate) fn webhook(v: &Value) -> Result<WebhookRec, String> {
    let r = Reader::of(v, "webhook")?;
    let previous_secret = match r.f.get("previousSecret") {
        None => None,
        Some(p) => {
            let p = Reader::of(p, "previousSecret")?;
            let old = RetiredSecret {
                secret: p.s("secret"),
                until_ms: p.i("untilMs"),
            };
            Some(p.done(old)?)
        }
    };
    let rec = WebhookRec {
        id: r.s("id"),
        url: r.s("url"),
        events: r.list("events"),
        username: r.os("username"),
        password: r.os("password"),
        signing_secret: r.os("signingSecret"),
        created_at: r.s("createdAt"),
        previous_secret,
        disabled_reason: r.os("disabledReason"),
        consecutive_failures: r.keep(r.f.opt_u32("consecutiveFailures")).unwrap_or(0),
    };
    r.done(rec)
}

pub(crate) fn token(v: &Value) -> Result<TokenRec, String> {
    let r = Reader::of(v, "token")?;
    let rec = TokenRec {
        access_token: r.s("accessToken"),
        expires_at_ms: r.oi("expiresAtMs"),
        serial: r.keep(r.f.opt_u64("serial").and_then(|n| need(n, "serial"))),
    };
    r.done(rec)
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
    let r = Reader::of(v, "token request")?;
    let rec = TokenRequestRec {
        connection_id: r.s("connectionId"),
        account_id: r.s("accountId"),
        app: r.s("app"),
        reason: r.s("reason"),
        state,
        attempts: r.n("attempts"),
        waiting: r.list("waiting"),
    };
    r.done(rec)
}

pub(crate) fn delivery(v: &Value) -> Result<DeliveryRec, String> {
    let r = Reader::of(v, "delivery")?;
    let state = match (r.s("status").as_str(), r.oi("leaseUntilMs")) {
        ("pending", Some(lease_until_ms)) => DeliveryState::InProgress { lease_until_ms },
        // The engine always stores a pending delivery with one of the two; one without
        // either is taken as due at once, the safe reading (it is attempted, not lost).
        ("pending", None) => DeliveryState::Pending {
            due_ms: r.oi("dueMs").unwrap_or(0),
        },
        ("delivered", _) => DeliveryState::Delivered,
        ("failed", _) => DeliveryState::Failed,
        _ => {
            r.fail(bad("status", "unknown delivery status"));
            DeliveryState::Failed
        }
    };
    let rec = DeliveryRec {
        id: r.s("id"),
        account_id: r.s("accountId"),
        webhook_id: r.s("webhookId"),
        event: r.s("event"),
        state,
        attempts: r.n("attempts"),
        budget_used: r.n("budgetUsed"),
        last_status_code: r.keep(r.f.opt_u16("lastStatusCode")),
        last_error: r.os("lastError"),
        sync_id: r.os("syncId"),
        tracking_id: r.os("trackingId"),
        body: r.s("body"),
        created_at: r.s("createdAt"),
        updated_at: r.s("updatedAt"),
    };
    r.done(rec)
}

pub(crate) fn idem(v: &Value) -> Result<IdemRec, String> {
    let r = Reader::of(v, "idempotency record")?;
    let mut headers = Vec::new();
    match r.f.get("headers").and_then(Value::as_array) {
        None => r.fail(bad("headers", "not a list")),
        Some(list) => {
            for h in list {
                match h.as_array().map(Vec::as_slice) {
                    Some([Value::String(k), Value::String(v)]) => {
                        headers.push((k.clone(), v.clone()))
                    }
                    _ => r.fail(bad("headers", "not [name, value]")),
                }
            }
        }
    }
    let rec = IdemRec {
        fingerprint: r.s("fingerprint"),
        status: r.keep(r.f.opt_u16("status").and_then(|n| need(n, "status"))),
        headers,
        body: r.s("body"),
        created_ms: r.i("createdMs"),
    };
    r.done(rec)
}
