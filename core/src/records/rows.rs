//! Layout 2's stored form of a sync and its push tasks: one row per sync (`s/{sync}`), holding
//! the tasks of each target, with everything the key or the rest of the row already says left
//! out.
//!
//! In memory the engine works with [`SyncRec`] and [`TaskRec`]; [`SyncRow::encode`] and
//! [`SyncRow::decode`] convert both ways and a round trip gives back the same values (unit
//! tests below). What is left out and how it is read back:
//!
//! - the sync's id (the key), its `status` and `updatedAt` (the aggregate of its targets, as the
//!   engine always sets them; stored only if they ever differ);
//! - `operation` when `create`, `objects` when it is just `[object]`, times as Unix ms when they
//!   are what [`rfc3339_millis`] writes for them;
//! - a target's `status`, `attempts` and `lastError` when they are what its tasks say (the rule
//!   of `update_target`), its `updatedAt` when it is the sync's `createdAt`;
//! - a task's account, sync, connection and tracking id (the sync's and its target's), its
//!   object when it is the sync's object, version 1, the state `pending` due at the sync's
//!   creation, zero attempts, empty lists, the generic connector, and its references when they
//!   are those of the task before it in the row with the same object;
//! - the object's body: a task names the version it pushes (see [`super::keys::kept_version`]).
//!
//! A successor in another sync is written `{sync}/{task}`, one in the same sync `{task}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::value::{pair, references, sync_status, target_status, task_state, Fields, Reader};

use super::{ObjectRef, SyncRec, SyncStatus, TargetRec, TargetStatus, TaskRec, TaskState};
use crate::cdm::ObjectType;
use crate::connectors::{ConnectorKind, SourceError};
use crate::util::time::{parse_rfc3339_millis, rfc3339_millis};

/// A time as stored: Unix ms when the text is exactly what [`rfc3339_millis`] writes for it,
/// else the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum StoredTime {
    /// Unix ms.
    Ms(i64),
    /// Any other text.
    Text(String),
}

impl StoredTime {
    /// The stored form of `text`.
    pub fn from_text(text: &str) -> StoredTime {
        match parse_rfc3339_millis(text) {
            Some(ms) if rfc3339_millis(ms) == text => StoredTime::Ms(ms),
            _ => StoredTime::Text(text.to_string()),
        }
    }
    /// The text it stands for.
    pub fn text(&self) -> String {
        match self {
            StoredTime::Ms(ms) => rfc3339_millis(*ms),
            StoredTime::Text(t) => t.clone(),
        }
    }
    /// Unix ms, when known.
    pub fn ms(&self) -> Option<i64> {
        match self {
            StoredTime::Ms(ms) => Some(*ms),
            StoredTime::Text(t) => parse_rfc3339_millis(t),
        }
    }
}

/// `(type, id)`.
type Obj = (ObjectType, String);
/// `(field, type, id)`.
type Refs = Vec<(String, ObjectType, String)>;

fn object_ref(o: &Obj) -> ObjectRef {
    ObjectRef {
        object_type: o.0,
        id: o.1.clone(),
    }
}

fn is_create(op: &str) -> bool {
    op == "create"
}
fn is_one(v: &u64) -> bool {
    *v == 1
}
fn is_zero(v: &u32) -> bool {
    *v == 0
}
fn is_false(b: &bool) -> bool {
    !*b
}

/// The stored sync (`sy/{sync*}`) as read back ([`SyncRow::parse`]); it is written as a
/// [`SyncRowRef`], which gives the stored names of the fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRow {
    /// Account.
    pub account_id: String,
    /// `X-Request-ID` of the write.
    pub request_id: String,
    /// `X-Tracking-ID` of the write.
    pub tracking_id: Option<String>,
    /// `create` (left out), `update` or `delete` (every task of a `delete` sync pushes a
    /// deletion).
    pub op: String,
    /// The written object.
    pub object: Obj,
    /// Every object the write stored, when not just `[object]`.
    pub objects: Option<Vec<Obj>>,
    /// The label for messages.
    pub label: String,
    /// Created.
    pub created: StoredTime,
    /// Status, only when it is not the aggregate of the targets.
    pub status: Option<SyncStatus>,
    /// Updated, only when it is not the latest of `created` and the targets' times.
    pub updated: Option<StoredTime>,
    /// Targets.
    pub targets: Vec<TargetRow>,
    /// Webhook deliveries queued by its events.
    pub deliveries: Vec<String>,
}

/// One stored target, as read back ([`TargetRowRef`] when written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRow {
    /// Connection.
    pub connection_id: String,
    /// App key.
    pub app: String,
    /// App type.
    pub app_type: String,
    /// Status, when not what the tasks say.
    pub status: Option<TargetStatus>,
    /// Attempts, when not the tasks' sum.
    pub attempts: Option<u32>,
    /// Last error, when not what the tasks say (`null` for none).
    pub last_error: Option<Option<String>>,
    /// Remote id of the sync's object there.
    pub remote_id: Option<String>,
    /// Updated, when not the sync's creation.
    pub updated: Option<StoredTime>,
    /// Its tasks, in push order.
    pub tasks: Vec<TaskRow>,
}

/// One stored task, as read back ([`TaskRowRef`] when written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    /// Id.
    pub id: String,
    /// The object, when not the sync's.
    pub object: Option<Obj>,
    /// The version it pushes.
    pub version: u64,
    /// Tracking id, when not the sync's.
    pub tracking_id: Option<Option<String>>,
    /// State, when not pending from the sync's creation.
    pub state: Option<TaskState>,
    /// Attempts.
    pub attempts: u32,
    /// Last error.
    pub last_error: Option<String>,
    /// The structured last error (absent in rows written before it existed).
    pub error: Option<SourceError>,
    /// Attempts made before the current retry budget.
    pub budget_start: u32,
    /// Tasks that must finish first.
    pub waiting_on: Vec<String>,
    /// Tasks that must have succeeded first.
    pub requires: Vec<String>,
    /// Tasks waiting for this one (`{sync}/{task}`, or `{task}` in the same sync).
    pub successors: Vec<String>,
    /// References, when not those of the previous task of the row with the same object.
    pub references: Option<Refs>,
    /// Connector.
    pub connector: ConnectorKind,
    /// A `401` already asked for a new token.
    pub reauthorized: bool,
    /// Serial of the token the attempt in progress carries.
    pub token_serial: Option<u64>,
}

/// `(type, id)`, borrowed.
type ObjRef<'a> = (ObjectType, &'a str);

fn obj_ref(o: &ObjectRef) -> ObjRef<'_> {
    (o.object_type, &o.id)
}

fn is_create_ref(op: &&str) -> bool {
    is_create(op)
}

/// A sync row as [`SyncRow::encode`] writes it: the fields of [`SyncRow`], same names and
/// rules for leaving them out, borrowed from the sync and tasks it encodes.
#[derive(Debug, Serialize)]
pub struct SyncRowRef<'a> {
    #[serde(rename = "a")]
    account_id: &'a str,
    #[serde(rename = "r")]
    request_id: &'a str,
    #[serde(rename = "tr", skip_serializing_if = "Option::is_none")]
    tracking_id: Option<&'a str>,
    #[serde(skip_serializing_if = "is_create_ref")]
    op: &'a str,
    #[serde(rename = "o")]
    object: ObjRef<'a>,
    #[serde(rename = "os", skip_serializing_if = "Option::is_none")]
    objects: Option<Vec<ObjRef<'a>>>,
    #[serde(rename = "l")]
    label: &'a str,
    #[serde(rename = "c")]
    created: StoredTime,
    #[serde(rename = "s", skip_serializing_if = "Option::is_none")]
    status: Option<SyncStatus>,
    #[serde(rename = "u", skip_serializing_if = "Option::is_none")]
    updated: Option<StoredTime>,
    /// Targets.
    #[serde(rename = "t")]
    pub targets: Vec<TargetRowRef<'a>>,
    #[serde(rename = "d", skip_serializing_if = "<[String]>::is_empty")]
    deliveries: &'a [String],
}

/// One target of a [`SyncRowRef`] ([`TargetRow`]'s fields).
#[derive(Debug, Serialize)]
pub struct TargetRowRef<'a> {
    #[serde(rename = "c")]
    connection_id: &'a str,
    app: &'a str,
    #[serde(rename = "y")]
    app_type: &'a str,
    #[serde(rename = "s", skip_serializing_if = "Option::is_none")]
    status: Option<TargetStatus>,
    #[serde(rename = "n", skip_serializing_if = "Option::is_none")]
    attempts: Option<u32>,
    #[serde(rename = "e", skip_serializing_if = "Option::is_none")]
    last_error: Option<Option<&'a str>>,
    #[serde(rename = "rid", skip_serializing_if = "Option::is_none")]
    remote_id: Option<&'a str>,
    #[serde(rename = "u", skip_serializing_if = "Option::is_none")]
    updated: Option<StoredTime>,
    /// Its tasks, in push order.
    #[serde(rename = "k")]
    pub tasks: Vec<TaskRowRef<'a>>,
}

/// One task of a [`SyncRowRef`] ([`TaskRow`]'s fields).
#[derive(Debug, Serialize)]
pub struct TaskRowRef<'a> {
    #[serde(rename = "i")]
    id: &'a str,
    #[serde(rename = "o", skip_serializing_if = "Option::is_none")]
    object: Option<ObjRef<'a>>,
    #[serde(rename = "v", skip_serializing_if = "is_one")]
    version: u64,
    #[serde(rename = "tr", skip_serializing_if = "Option::is_none")]
    tracking_id: Option<Option<&'a str>>,
    #[serde(rename = "st", skip_serializing_if = "Option::is_none")]
    state: Option<&'a TaskState>,
    #[serde(rename = "n", skip_serializing_if = "is_zero")]
    attempts: u32,
    #[serde(rename = "e", skip_serializing_if = "Option::is_none")]
    last_error: Option<&'a str>,
    #[serde(rename = "er", skip_serializing_if = "Option::is_none")]
    error: Option<&'a SourceError>,
    #[serde(rename = "b", skip_serializing_if = "is_zero")]
    budget_start: u32,
    #[serde(rename = "w", skip_serializing_if = "<[String]>::is_empty")]
    waiting_on: &'a [String],
    #[serde(rename = "q", skip_serializing_if = "<[String]>::is_empty")]
    requires: &'a [String],
    /// Tasks waiting for this one (`{sync}/{task}`, or `{task}` in the same sync).
    #[serde(rename = "x", skip_serializing_if = "Vec::is_empty")]
    pub successors: Vec<&'a str>,
    #[serde(rename = "f", skip_serializing_if = "Option::is_none")]
    references: Option<&'a Refs>,
    #[serde(rename = "cn", skip_serializing_if = "ConnectorKind::is_generic")]
    connector: ConnectorKind,
    #[serde(rename = "ra", skip_serializing_if = "is_false")]
    reauthorized: bool,
    #[serde(rename = "ts", skip_serializing_if = "Option::is_none")]
    token_serial: Option<u64>,
}

#[inline(never)]
fn stored_time(v: &Value) -> Result<StoredTime, String> {
    match v {
        Value::String(t) => Ok(StoredTime::Text(t.clone())),
        _ => v
            .as_i64()
            .map(StoredTime::Ms)
            .ok_or_else(|| "a time is neither ms nor text".to_string()),
    }
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or a string.
#[inline(never)]
fn present_string(f: &Fields<'_>, k: &str) -> Result<Option<Option<String>>, String> {
    match f.raw(k) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(format!("{k}: not a string")),
    }
}

fn list<T>(
    f: &Fields<'_>,
    k: &str,
    each: impl Fn(&Value) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    match f.get(k) {
        None => Ok(Vec::new()),
        Some(Value::Array(l)) => {
            let mut out = Vec::with_capacity(l.len());
            for v in l {
                out.push(each(v)?);
            }
            Ok(out)
        }
        Some(_) => Err(format!("{k}: not a list")),
    }
}

impl TaskRow {
    #[inline(never)]
    fn from_value(v: &Value) -> Result<TaskRow, String> {
        let r = Reader::of(v, "task")?;
        let f = &r.f;
        let error = match f.get("er") {
            None => None,
            Some(e) => {
                let e = Reader::of(e, "er")?;
                let se = SourceError {
                    status: e.keep(e.f.opt_u16("status")).unwrap_or(0),
                    code: e.os("code"),
                    message: e.os("message"),
                    field: e.os("field"),
                };
                if e.f.get("status").is_none() {
                    e.fail("er: status missing".into());
                }
                Some(e.done(se)?)
            }
        };
        let row = TaskRow {
            id: r.s("i"),
            object: r.keep(f.get("o").map(pair).transpose()),
            version: r.keep(f.opt_u64("v")).unwrap_or(1),
            tracking_id: r.keep(present_string(f, "tr")),
            state: r.keep(f.get("st").map(task_state).transpose()),
            attempts: r.keep(f.opt_u32("n")).unwrap_or(0),
            last_error: r.os("e"),
            error,
            budget_start: r.keep(f.opt_u32("b")).unwrap_or(0),
            waiting_on: r.list("w"),
            requires: r.list("q"),
            successors: r.list("x"),
            references: r.keep(f.get("f").map(references).transpose()),
            connector: r.keep(f.connector("cn")),
            reauthorized: r.keep(f.flag("ra")),
            token_serial: r.keep(f.opt_u64("ts")),
        };
        r.done(row)
    }
}

impl TargetRow {
    #[inline(never)]
    fn from_value(v: &Value) -> Result<TargetRow, String> {
        let r = Reader::of(v, "target")?;
        let f = &r.f;
        let row = TargetRow {
            connection_id: r.s("c"),
            app: r.s("app"),
            app_type: r.s("y"),
            status: r.keep(r.os("s").map(|s| target_status(&s)).transpose()),
            attempts: r.keep(f.opt_u32("n")),
            last_error: r.keep(present_string(f, "e")),
            remote_id: r.os("rid"),
            updated: r.keep(f.get("u").map(stored_time).transpose()),
            tasks: r.keep(list(f, "k", TaskRow::from_value)),
        };
        r.done(row)
    }
}

impl SyncRow {
    /// Read a stored row.
    pub fn parse(text: &str) -> Result<SyncRow, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let r = Reader::of(&v, "sync")?;
        let f = &r.f;
        let object = pair(f.get("o").ok_or("o: missing")?)?;
        let created = stored_time(f.get("c").ok_or("c: missing")?)?;
        let row = SyncRow {
            account_id: r.s("a"),
            request_id: r.s("r"),
            tracking_id: r.os("tr"),
            op: r.os("op").unwrap_or_else(|| "create".into()),
            object,
            objects: f.get("os").map(|_| r.keep(list(f, "os", pair))),
            label: r.s("l"),
            created,
            status: r.keep(r.os("s").map(|s| sync_status(&s)).transpose()),
            updated: r.keep(f.get("u").map(stored_time).transpose()),
            targets: r.keep(list(f, "t", TargetRow::from_value)),
            deliveries: r.list("d"),
        };
        r.done(row)
    }
}

#[derive(Deserialize)]
struct VersionOnly {
    #[serde(default)]
    version: u64,
}

/// The `version` of a stored object (`None` when the text is not an object with one).
pub fn version_of(text: &str) -> Option<u64> {
    serde_json::from_str::<VersionOnly>(text)
        .ok()
        .map(|v| v.version)
}

/// What a target's tasks say about it: status, attempts, last error and its structured
/// form (the rule `update_target` applies). A target whose tasks are all pending and made no
/// attempt in their current retry budget is `pending`.
pub fn derive_target(tasks: &[&TaskRec]) -> (TargetStatus, u32, Option<String>) {
    let (status, attempts, last_error, _) = derive_target_error(tasks);
    (status, attempts, last_error)
}

/// [`derive_target`] with the structured error of the task whose `last_error` it took.
pub fn derive_target_error(
    tasks: &[&TaskRec],
) -> (TargetStatus, u32, Option<String>, Option<SourceError>) {
    derive_from(tasks.iter().copied())
}

/// [`derive_target_error`] over any pass of the tasks (it goes through them twice).
fn derive_from<'a>(
    tasks: impl Iterator<Item = &'a TaskRec> + Clone,
) -> (TargetStatus, u32, Option<String>, Option<SourceError>) {
    let mut attempts = 0u32;
    let mut last_error = None;
    let mut fresh = true;
    for t in tasks.clone() {
        attempts = attempts.saturating_add(t.attempts);
        fresh &= t.attempts <= t.budget_start;
        if t.last_error.is_some() {
            last_error = Some(t);
        }
    }
    let statuses = tasks.map(|t| t.state.status());
    let status = if statuses.clone().all(|s| s.is_final()) {
        if statuses.clone().all(|s| s == TargetStatus::Succeeded) {
            TargetStatus::Succeeded
        } else {
            TargetStatus::Failed
        }
    } else if fresh && statuses.clone().all(|s| s == TargetStatus::Pending) {
        TargetStatus::Pending
    } else {
        TargetStatus::InProgress
    };
    match last_error {
        Some(t) if status != TargetStatus::Succeeded => {
            (status, attempts, t.last_error.clone(), t.error.clone())
        }
        _ => (status, attempts, None, None),
    }
}

/// The sync-level values the targets imply: the status and `updatedAt`.
fn derived<'a>(created_at: &'a str, targets: &'a [TargetRec]) -> (SyncStatus, &'a str) {
    let status = SyncStatus::aggregate_of(targets.iter().map(|t| t.status));
    let mut updated = created_at;
    for t in targets {
        if t.updated_at.as_str() > updated {
            updated = &t.updated_at;
        }
    }
    (status, updated)
}

/// Splits a stored successor into `(sync, task)`, `sync` defaulting to `own`.
pub fn successor_parts<'a>(s: &'a str, own: &'a str) -> (&'a str, &'a str) {
    s.split_once('/').unwrap_or((own, s))
}

impl SyncRow {
    /// The stored form of a sync and its tasks, borrowed from them. A task id a target lists
    /// without a task among `tasks` is left out of the row.
    pub fn encode<'a>(sync: &'a SyncRec, tasks: &'a [TaskRec]) -> SyncRowRef<'a> {
        SyncRow::encode_at(sync, tasks, None)
    }

    /// [`SyncRow::encode`] with the creation time in ms when the caller knows it is what
    /// `sync.created_at` says.
    pub fn encode_at<'a>(
        sync: &'a SyncRec,
        tasks: &'a [TaskRec],
        created_ms: Option<i64>,
    ) -> SyncRowRef<'a> {
        let created = match created_ms {
            Some(ms) => StoredTime::Ms(ms),
            None => StoredTime::from_text(&sync.created_at),
        };
        let created_ms = match created {
            StoredTime::Ms(ms) => Some(ms),
            StoredTime::Text(_) => None,
        };
        let default_state = created_ms.map(|due_ms| TaskState::Pending { due_ms });
        // Each task goes into the row once, under the first target that lists it.
        let mut taken = vec![false; tasks.len()];
        // A map only pays for itself on large syncs (bulk preloads).
        let index: Option<BTreeMap<String, usize>> = (tasks.len() > 16).then(|| {
            let mut map = BTreeMap::new();
            for (i, t) in tasks.iter().enumerate().rev() {
                map.insert(t.id.clone(), i);
            }
            map
        });
        // The references of the last task written for each object that has any (a short
        // list: the objects with references in one sync are the one written and at most a
        // new vendor).
        let mut last_refs: Vec<(ObjRef<'a>, &'a Refs)> = Vec::new();
        let (status, updated) = derived(&sync.created_at, &sync.targets);
        let object = obj_ref(&sync.object);
        let tracking_id = sync.tracking_id.as_deref();
        let mut targets = Vec::with_capacity(sync.targets.len());
        for t in &sync.targets {
            let mut mine: Vec<&'a TaskRec> = Vec::with_capacity(t.tasks.len());
            for id in &t.tasks {
                let i = match &index {
                    Some(map) => map.get(id).copied(),
                    None => tasks.iter().position(|x| &x.id == id),
                };
                if let Some(i) = i {
                    if let (Some(task), Some(used)) = (tasks.get(i), taken.get_mut(i)) {
                        if !*used {
                            *used = true;
                            mine.push(task);
                        }
                    }
                }
            }
            let (t_status, t_attempts, t_error, _) = derive_target_error(&mine);
            let mut rows = Vec::with_capacity(mine.len());
            for task in mine {
                let o = obj_ref(&task.object);
                let last = last_refs.iter_mut().find(|(x, _)| *x == o);
                let previous = last.as_ref().map_or(&[][..], |(_, r)| r.as_slice());
                let references = if previous == task.references.as_slice() {
                    None
                } else {
                    match last {
                        Some((_, r)) => *r = &task.references,
                        None => last_refs.push((o, &task.references)),
                    }
                    Some(&task.references)
                };
                let successors = task
                    .successors
                    .iter()
                    .map(|s| {
                        match s
                            .strip_prefix(sync.id.as_str())
                            .and_then(|r| r.strip_prefix('/'))
                        {
                            Some(local) if !local.contains('/') => local,
                            _ => s.as_str(),
                        }
                    })
                    .collect();
                rows.push(TaskRowRef {
                    id: &task.id,
                    object: (o != object).then_some(o),
                    version: task.version,
                    tracking_id: (task.tracking_id.as_deref() != tracking_id)
                        .then_some(task.tracking_id.as_deref()),
                    state: (Some(&task.state) != default_state.as_ref()).then_some(&task.state),
                    attempts: task.attempts,
                    last_error: task.last_error.as_deref(),
                    error: task.error.as_ref(),
                    budget_start: task.budget_start,
                    waiting_on: &task.waiting_on,
                    requires: &task.requires,
                    successors,
                    references,
                    connector: task.connector,
                    reauthorized: task.reauthorized,
                    token_serial: task.token_serial,
                });
            }
            targets.push(TargetRowRef {
                connection_id: &t.connection_id,
                app: &t.app,
                app_type: &t.app_type,
                status: (t.status != t_status).then_some(t.status),
                attempts: (t.attempts != t_attempts).then_some(t.attempts),
                last_error: (t.last_error != t_error).then_some(t.last_error.as_deref()),
                remote_id: t.remote_id.as_deref(),
                updated: (t.updated_at != sync.created_at)
                    .then(|| StoredTime::from_text(&t.updated_at)),
                tasks: rows,
            });
        }
        let just_the_object = matches!(sync.objects.as_slice(), [only] if obj_ref(only) == object);
        SyncRowRef {
            account_id: &sync.account_id,
            request_id: &sync.request_id,
            tracking_id,
            op: &sync.operation,
            object,
            objects: (!just_the_object).then(|| sync.objects.iter().map(obj_ref).collect()),
            label: &sync.label,
            created,
            status: (status != sync.status).then_some(sync.status),
            updated: (updated != sync.updated_at).then(|| StoredTime::from_text(&sync.updated_at)),
            targets,
            deliveries: &sync.deliveries,
        }
    }

    /// The sync `id` and its tasks.
    pub fn decode(&self, id: &str) -> (SyncRec, Vec<TaskRec>) {
        let created_at = self.created.text();
        let created_ms = match self.created {
            StoredTime::Ms(ms) => Some(ms),
            StoredTime::Text(_) => None,
        };
        let object = object_ref(&self.object);
        let mut tasks = Vec::new();
        let mut targets = Vec::with_capacity(self.targets.len());
        // The references of the last task read for each object that named any (a short list,
        // as in `encode_at`).
        let mut last_refs: Vec<(&Obj, &Refs)> = Vec::new();
        for t in &self.targets {
            let first = tasks.len();
            for r in &t.tasks {
                let o = r.object.as_ref().unwrap_or(&self.object);
                let last = last_refs.iter_mut().find(|(x, _)| *x == o);
                let references = match (&r.references, last) {
                    (Some(refs), Some((_, l))) => {
                        *l = refs;
                        refs.clone()
                    }
                    (Some(refs), None) => {
                        last_refs.push((o, refs));
                        refs.clone()
                    }
                    (None, Some((_, l))) => (*l).clone(),
                    (None, None) => Vec::new(),
                };
                let state = match (&r.state, created_ms) {
                    (Some(s), _) => s.clone(),
                    (None, Some(due_ms)) => TaskState::Pending { due_ms },
                    // Never written: a row whose creation is not in ms stores every state.
                    (None, None) => TaskState::Pending { due_ms: 0 },
                };
                tasks.push(TaskRec {
                    id: r.id.clone(),
                    account_id: self.account_id.clone(),
                    sync_id: id.to_string(),
                    connection_id: t.connection_id.clone(),
                    object: object_ref(o),
                    version: r.version,
                    tracking_id: match &r.tracking_id {
                        Some(tr) => tr.clone(),
                        None => self.tracking_id.clone(),
                    },
                    state,
                    attempts: r.attempts,
                    last_error: r.last_error.clone(),
                    error: r.error.clone(),
                    budget_start: r.budget_start,
                    waiting_on: r.waiting_on.clone(),
                    requires: r.requires.clone(),
                    successors: r
                        .successors
                        .iter()
                        .map(|s| {
                            if s.contains('/') {
                                s.clone()
                            } else {
                                format!("{id}/{s}")
                            }
                        })
                        .collect(),
                    references,
                    connector: r.connector,
                    reauthorized: r.reauthorized,
                    token_serial: r.token_serial,
                    delete: self.op == "delete",
                });
            }
            let mine: Vec<&TaskRec> = tasks[first..].iter().collect();
            let (status, attempts, last_error, error) = derive_target_error(&mine);
            targets.push(TargetRec {
                connection_id: t.connection_id.clone(),
                app: t.app.clone(),
                app_type: t.app_type.clone(),
                status: t.status.unwrap_or(status),
                attempts: t.attempts.unwrap_or(attempts),
                remote_id: t.remote_id.clone(),
                last_error: match &t.last_error {
                    Some(e) => e.clone(),
                    None => last_error,
                },
                error,
                updated_at: t
                    .updated
                    .as_ref()
                    .map_or_else(|| created_at.clone(), StoredTime::text),
                tasks: t.tasks.iter().map(|r| r.id.clone()).collect(),
            });
        }
        let (status, updated) = derived(&created_at, &targets);
        let updated = updated.to_string();
        let sync = SyncRec {
            id: id.to_string(),
            account_id: self.account_id.clone(),
            status: self.status.unwrap_or(status),
            request_id: self.request_id.clone(),
            tracking_id: self.tracking_id.clone(),
            operation: self.op.clone(),
            object,
            objects: match &self.objects {
                Some(list) => list.iter().map(object_ref).collect(),
                None => vec![object_ref(&self.object)],
            },
            label: self.label.clone(),
            created_at,
            updated_at: self.updated.as_ref().map_or(updated, StoredTime::text),
            targets,
            deliveries: self.deliveries.clone(),
        };
        (sync, tasks)
    }

    /// Whether every target is final and the sync will change no more.
    pub fn finished(&self, id: &str) -> bool {
        let (sync, tasks) = self.decode(id);
        sync.status.is_final() && tasks.iter().all(|t| t.state.status().is_final())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_790_000_000_000;

    fn task(id: &str, o: &ObjectRef, state: TaskState) -> TaskRec {
        TaskRec {
            id: id.into(),
            account_id: "a".into(),
            sync_id: "s".into(),
            connection_id: "c1".into(),
            object: o.clone(),
            version: 1,
            tracking_id: Some("tr".into()),
            state,
            attempts: 0,
            last_error: None,
            error: None,
            budget_start: 0,
            waiting_on: vec![],
            requires: vec![],
            successors: vec![],
            references: vec![("customerId".into(), ObjectType::Customer, "cu".into())],
            connector: ConnectorKind::default(),
            reauthorized: false,
            token_serial: None,
            delete: false,
        }
    }

    fn sync(targets: Vec<TargetRec>) -> SyncRec {
        let o = ObjectRef {
            object_type: ObjectType::Invoice,
            id: "i".into(),
        };
        SyncRec {
            id: "s".into(),
            account_id: "a".into(),
            status: SyncStatus::aggregate_of(targets.iter().map(|t| t.status)),
            request_id: "r".into(),
            tracking_id: Some("tr".into()),
            operation: "create".into(),
            object: o.clone(),
            objects: vec![o],
            label: "invoice INV-1".into(),
            created_at: rfc3339_millis(T0),
            updated_at: rfc3339_millis(T0),
            targets,
            deliveries: vec![],
        }
    }

    fn target(conn: &str, tasks: &[&str], status: TargetStatus) -> TargetRec {
        TargetRec {
            connection_id: conn.into(),
            app: "quickbooks".into(),
            app_type: "accounting".into(),
            status,
            attempts: 0,
            remote_id: None,
            last_error: None,
            error: None,
            updated_at: rfc3339_millis(T0),
            tasks: tasks.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn a_new_sync_is_stored_small_and_reads_back_the_same() {
        let s = sync(vec![
            target("c1", &["t1"], TargetStatus::Pending),
            target("c2", &["t2"], TargetStatus::Pending),
        ]);
        let mut t2 = task("t2", &s.object, TaskState::Pending { due_ms: T0 });
        t2.connection_id = "c2".into();
        let tasks = vec![task("t1", &s.object, TaskState::Pending { due_ms: T0 }), t2];
        let row = SyncRow::encode(&s, &tasks);
        let text = serde_json::to_string(&row).unwrap();
        assert_eq!(
            text,
            r#"{"a":"a","r":"r","tr":"tr","o":["invoice","i"],"l":"invoice INV-1","c":1790000000000,"t":[{"c":"c1","app":"quickbooks","y":"accounting","k":[{"i":"t1","f":[["customerId","customer","cu"]]}]},{"c":"c2","app":"quickbooks","y":"accounting","k":[{"i":"t2"}]}]}"#
        );
        let back = SyncRow::parse(&text).unwrap();
        assert_eq!(back.decode("s"), (s, tasks));
    }

    #[test]
    fn every_field_that_differs_from_its_default_is_kept() {
        let mut s = sync(vec![
            target("c1", &["t1", "t2"], TargetStatus::InProgress),
            target("c2", &[], TargetStatus::Failed),
        ]);
        s.targets[0].attempts = 7;
        s.targets[0].remote_id = Some("R1".into());
        s.targets[0].updated_at = rfc3339_millis(T0 + 5);
        s.targets[1].last_error = Some("not pushed: x".into());
        s.operation = "update".into();
        s.objects = vec![];
        s.updated_at = "not a time".into();
        s.created_at = "2026-01-01T00:00:00Z".into();
        s.deliveries = vec!["d1".into()];
        let vendor = ObjectRef {
            object_type: ObjectType::Vendor,
            id: "v".into(),
        };
        let mut t1 = task("t1", &vendor, TaskState::Succeeded);
        t1.version = 3;
        t1.attempts = 2;
        t1.successors = vec!["s/t2".into(), "other/t9".into()];
        t1.references = vec![];
        t1.connector = ConnectorKind::Quickbooks;
        t1.reauthorized = true;
        t1.token_serial = Some(4);
        t1.tracking_id = None;
        let mut t2 = task("t2", &s.object, TaskState::Waiting);
        t2.waiting_on = vec!["t1".into()];
        t2.requires = vec!["t1".into()];
        t2.last_error = Some("e".into());
        let tasks = vec![t1, t2];
        let row = SyncRow::encode(&s, &tasks);
        assert_eq!(row.targets[0].tasks[0].successors, vec!["t2", "other/t9"]);
        let text = serde_json::to_string(&row).unwrap();
        let back = SyncRow::parse(&text).unwrap();
        assert_eq!(back.decode("s"), (s, tasks));
    }

    #[test]
    fn a_task_two_targets_list_is_written_under_the_first() {
        let s = sync(vec![
            target("c1", &["t1"], TargetStatus::Pending),
            target("c2", &["t1", "gone"], TargetStatus::Pending),
        ]);
        let tasks = vec![task("t1", &s.object, TaskState::Pending { due_ms: T0 })];
        let row = SyncRow::encode(&s, &tasks);
        assert_eq!(row.targets[0].tasks.len(), 1);
        assert!(row.targets[1].tasks.is_empty());
    }

    #[test]
    fn target_values_are_derived_as_update_target_does() {
        let o = ObjectRef {
            object_type: ObjectType::Invoice,
            id: "i".into(),
        };
        let mut a = task("a", &o, TaskState::Succeeded);
        a.attempts = 1;
        let mut b = task("b", &o, TaskState::Failed);
        b.attempts = 2;
        b.last_error = Some("boom".into());
        assert_eq!(
            derive_target(&[&a, &b]),
            (TargetStatus::Failed, 3, Some("boom".into()))
        );
        assert_eq!(derive_target(&[&a]), (TargetStatus::Succeeded, 1, None));
        let p = task("p", &o, TaskState::Waiting);
        assert_eq!(derive_target(&[&p]), (TargetStatus::Pending, 0, None));
        assert_eq!(
            derive_target(&[&a, &p]).0,
            TargetStatus::InProgress,
            "a started target is in progress"
        );
    }

    #[test]
    fn stored_times_keep_text_they_cannot_write_back() {
        assert_eq!(
            StoredTime::from_text(&rfc3339_millis(T0)),
            StoredTime::Ms(T0)
        );
        for odd in ["2026-01-01T00:00:00Z", "yesterday", ""] {
            assert_eq!(StoredTime::from_text(odd).text(), odd);
        }
    }
}
