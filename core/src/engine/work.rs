//! Due work, outcomes, the sync, delivery and token-request state machines, and webhook
//! events.
//!
//! A push to a connection whose connector needs an access token first looks for the
//! connection's token ([`TokenRec`]). When there is none, or it has expired, the push waits
//! (`waiting_for_token`) and the connection gets one open [`TokenRequestRec`], handed to the
//! host as a [`WorkKind::Token`] item; the host answers `200 {"accessToken", "expiresAt"}`
//! and every waiting push becomes due. A `401` from the provider marks the token the attempt
//! carried as expired and asks once more, without counting the attempt; a second `401` fails
//! the push. A token request that fails is retried on the push retry schedule when the failure
//! may heal (transport error, `408`, `429`, `5xx`), otherwise (or after the last retry) the
//! waiting pushes fail with the reason.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::api::{Ctx, H};
use super::tx::Tx;
use super::writes::sync_json;
use super::{DueWork, Engine};
use crate::connectors::{Answer, Operation, ProviderVerdict, PushInput, Reference};
use crate::records::*;
use crate::store::{Batch, KvRead};
use crate::util::crypto::{basic_auth_header, webhook_signature};
use crate::util::schedule::{jittered, parse_retry_after};
use crate::util::time::rfc3339_millis;
use crate::CoreError;

/// Attempts of one webhook delivery budget: the first and 3 retries.
pub const WEBHOOK_ATTEMPTS: u32 = 4;
/// How much of an answer body is kept in `lastError`.
pub const ERROR_BODY_PREFIX: usize = 200;

/// A token is treated as expired this long before the expiry the host gave.
pub const TOKEN_EXPIRY_MARGIN_MS: i64 = 5_000;

/// The URL of a token request item (it is not sent over HTTP: the host answers it).
pub const TOKEN_URL: &str = "writesync:token";

/// The kind of a work item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkKind {
    /// A push to a source application.
    Push,
    /// A webhook delivery.
    Webhook,
    /// A request to the host for a connection's access token: `request` is
    /// `{method: "TOKEN", url: "writesync:token", headers: {}, body}` with the body
    /// `{"connectionId", "accountId", "app", "reason"}` (`reason` is `missing`, `expired` or
    /// `unauthorized`). The host answers `Outcome::Response` with status `200` and the body
    /// `{"accessToken": "...", "expiresAt": <Unix ms, optional>}`, or any other status or an
    /// `Outcome::Error` when it has no token (never a refresh token: the engine does not
    /// want one).
    Token,
}

/// An outbound HTTP request the host must perform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundRequest {
    /// Method (always `POST` today).
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Headers to send.
    pub headers: BTreeMap<String, String>,
    /// JSON body.
    pub body: String,
}

/// One push, delivery or token request to perform now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkItem {
    /// Id to report the outcome with (`t.<task>.<attempt>`, `d.<delivery>.<attempt>` or
    /// `k.<connection>.<attempt>`).
    pub id: String,
    /// Push, webhook or token.
    pub kind: WorkKind,
    /// What to send.
    pub request: OutboundRequest,
}

/// What happened to a work item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Outcome {
    /// The peer answered.
    Response {
        /// Status code.
        status: u16,
        /// Answer headers (names case-insensitive).
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// The start of the answer body (hosts bound how much they read).
        #[serde(default)]
        body: String,
    },
    /// No answer: a timeout, a connection error, or a refused address.
    Error {
        /// What went wrong.
        error: String,
        /// True when retrying cannot help (a refused address); such a push fails at once.
        #[serde(default)]
        permanent: bool,
    },
}

impl Outcome {
    fn header(&self, name: &str) -> Option<&str> {
        match self {
            Outcome::Response { headers, .. } => headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str()),
            Outcome::Error { .. } => None,
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn parse_due_key(key: &str) -> Option<(i64, char, &str)> {
    let rest = key.strip_prefix(keys::DUE)?;
    let (ms, rest) = rest.split_once('/')?;
    let (kind, id) = rest.split_once('/')?;
    let kind = match kind {
        "t" => 't',
        "d" => 'd',
        "k" => 'k',
        _ => return None,
    };
    Some((ms.parse().ok()?, kind, id))
}

pub(crate) fn next_deadline(store: &dyn KvRead) -> Result<Option<i64>, CoreError> {
    Ok(store
        .first_key(keys::DUE)?
        .and_then(|k| parse_due_key(&k).map(|(ms, _, _)| ms)))
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
        let entries = store.scan(keys::DUE, offset, 64)?;
        if entries.is_empty() {
            break;
        }
        offset += entries.len();
        for (key, _) in entries {
            if items.len() >= limit {
                break 'outer;
            }
            let Some((ms, kind, id)) = parse_due_key(&key) else {
                tx.delete(key);
                continue;
            };
            if ms > now {
                break 'outer;
            }
            tx.delete(key.clone());
            let checkpoint = tx.checkpoint();
            let item = match kind {
                't' => due_task(engine, now, &mut tx, id),
                'k' => due_token_request(engine, now, &mut tx, id),
                _ => due_delivery(engine, now, &mut tx, id),
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

fn lease_until(engine: &Engine, now: i64) -> i64 {
    now.saturating_add(i64::try_from(engine.config.lease_ms).unwrap_or(i64::MAX / 2))
}

fn push_attempts_allowed(engine: &Engine) -> u32 {
    u32::try_from(engine.config.push_retry.len())
        .unwrap_or(u32::MAX - 1)
        .saturating_add(1)
}

fn due_task(
    engine: &mut Engine,
    now: i64,
    tx: &mut Tx<'_>,
    id: &str,
) -> Result<Option<WorkItem>, CoreError> {
    let Some(mut task) = tx.get_json::<TaskRec>(&keys::task(id))? else {
        return Ok(None);
    };
    match task.state {
        TaskState::Pending { .. } => {}
        TaskState::InProgress { .. } => {
            // The lease ran out without a result: the host died or lost the item.
            if task.attempts >= push_attempts_allowed(engine) {
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
        task.last_error = Some("the connection was deleted".into());
        task.state = TaskState::Failed;
        finish_task(engine, now, tx, task)?;
        return Ok(None);
    };
    let connector = conn.connector.connector();
    let provider = !conn.connector.is_generic();
    let remote = tx.get_json::<RemoteRec>(&keys::remote(
        &conn.id,
        task.object.object_type,
        &task.object.id,
    ))?;
    let mut references = Vec::with_capacity(task.references.len());
    for (field, t, rid) in &task.references {
        let remote_id = tx
            .get_json::<RemoteRec>(&keys::remote(&conn.id, *t, rid))?
            .and_then(|r| r.remote_id);
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
                tx.put_json(keys::task(&task.id), &task);
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
    let input = PushInput {
        object_type: task.object.object_type,
        object: &task.body,
        operation: if remote.is_some() {
            Operation::Update
        } else {
            Operation::Create
        },
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
    tx.put(keys::due_task(until, &task.id), "\"\"");
    let item = WorkItem {
        id: format!("t.{}.{}", task.id, task.attempts),
        kind: WorkKind::Push,
        request,
    };
    update_target(engine, now, tx, &task)?;
    tx.put_json(keys::task(&task.id), &task);
    Ok(Some(item))
}

fn token_expired(t: &TokenRec, now: i64) -> bool {
    t.access_token.is_empty()
        || t.expires_at_ms
            .is_some_and(|e| e.saturating_sub(TOKEN_EXPIRY_MARGIN_MS) <= now)
}

/// Make `task_id` wait for the connection's token: join the open request, or open one. With
/// `emit_now` a new request is handed out at once (as the returned item); otherwise it is due
/// at `now`.
#[allow(clippy::too_many_arguments)]
fn ask_token(
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
fn lease_token_request(
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
        id: format!("k.{}.{}", r.connection_id, r.attempts),
        kind: WorkKind::Token,
        request: OutboundRequest {
            method: "TOKEN".into(),
            url: TOKEN_URL.into(),
            headers: BTreeMap::new(),
            body: body.to_string(),
        },
    }
}

/// A token request's wake-up: hand it out (again), or give up after its last attempt.
fn due_token_request(
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

/// Fail every push still waiting for a token, with `why`.
fn fail_waiting(
    engine: &mut Engine,
    now: i64,
    tx: &mut Tx<'_>,
    waiting: Vec<String>,
    why: &str,
) -> Result<(), CoreError> {
    for tid in waiting {
        let Some(mut t) = tx.get_json::<TaskRec>(&keys::task(&tid))? else {
            continue;
        };
        if t.state != TaskState::WaitingForToken {
            continue;
        }
        t.last_error = Some(why.to_string());
        t.state = TaskState::Failed;
        finish_task(engine, now, tx, t)?;
    }
    Ok(())
}

fn due_delivery(
    engine: &mut Engine,
    now: i64,
    tx: &mut Tx<'_>,
    id: &str,
) -> Result<Option<WorkItem>, CoreError> {
    let Some(mut d) = tx.get_json::<DeliveryRec>(&keys::delivery(id))? else {
        return Ok(None);
    };
    if d.status != DeliveryStatus::Pending {
        return Ok(None);
    }
    if d.lease_until_ms.is_some() && d.budget_used >= WEBHOOK_ATTEMPTS {
        d.lease_until_ms = None;
        d.last_error = Some("no result was reported before the lease expired".into());
        finish_delivery(now, tx, d, DeliveryStatus::Failed);
        return Ok(None);
    }
    let Some(hook) = tx.get_json::<WebhookRec>(&keys::webhook(&d.account_id, &d.webhook_id))?
    else {
        d.lease_until_ms = None;
        d.last_error = Some("the webhook subscription was deleted".into());
        finish_delivery(now, tx, d, DeliveryStatus::Failed);
        return Ok(None);
    };
    let mut headers = BTreeMap::new();
    headers.insert("Content-Type".to_string(), "application/json".to_string());
    headers.insert("X-Sync-ID".to_string(), d.sync_id.clone());
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
        match webhook_signature(secret, &d.id, ts, &d.body) {
            Ok(sig) => {
                headers.insert("webhook-id".to_string(), d.id.clone());
                headers.insert("webhook-timestamp".to_string(), ts.to_string());
                headers.insert("webhook-signature".to_string(), sig);
            }
            Err(e) => {
                d.last_error = Some(format!("cannot sign: {e}"));
                finish_delivery(now, tx, d, DeliveryStatus::Failed);
                return Ok(None);
            }
        }
    }
    d.attempts = d.attempts.saturating_add(1);
    d.budget_used = d.budget_used.saturating_add(1);
    let until = lease_until(engine, now);
    d.lease_until_ms = Some(until);
    d.due_ms = None;
    d.updated_at = rfc3339_millis(now);
    tx.put(keys::due_delivery(until, &d.id), "\"\"");
    let item = WorkItem {
        id: format!("d.{}.{}", d.id, d.attempts),
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

fn parse_work_id(id: &str) -> Option<(char, &str, u32)> {
    let (kind, rest) = id.split_once('.')?;
    let (rid, attempt) = rest.rsplit_once('.')?;
    let kind = match kind {
        "t" => 't',
        "d" => 'd',
        "k" => 'k',
        _ => return None,
    };
    if rid.is_empty() || rid.contains('/') {
        return None;
    }
    Some((kind, rid, attempt.parse().ok()?))
}

pub(crate) fn recover(now: i64, store: &dyn KvRead) -> Result<Batch, CoreError> {
    let mut tx = Tx::new(store);
    for (key, _) in store.scan(keys::DUE, 0, usize::MAX)? {
        let Some((ms, kind, id)) = parse_due_key(&key) else {
            continue;
        };
        if ms <= now {
            continue;
        }
        let leased = match kind {
            't' => matches!(
                tx.get_json::<TaskRec>(&keys::task(id)),
                Ok(Some(TaskRec {
                    state: TaskState::InProgress { .. },
                    ..
                }))
            ),
            'k' => matches!(
                tx.get_json::<TokenRequestRec>(&keys::token_request(id)),
                Ok(Some(TokenRequestRec {
                    state: TokenRequestState::InProgress { .. },
                    ..
                }))
            ),
            _ => matches!(
                tx.get_json::<DeliveryRec>(&keys::delivery(id)),
                Ok(Some(DeliveryRec {
                    lease_until_ms: Some(_),
                    ..
                }))
            ),
        };
        if leased {
            tx.delete(key.clone());
            tx.put(
                match kind {
                    't' => keys::due_task(now, id),
                    'k' => keys::due_token(now, id),
                    _ => keys::due_delivery(now, id),
                },
                "\"\"",
            );
        }
    }
    Ok(tx.into_batch())
}

pub(crate) fn report(
    engine: &mut Engine,
    work_id: &str,
    outcome: &Outcome,
    now: i64,
    store: &dyn KvRead,
) -> Result<Batch, CoreError> {
    let Some((kind, id, attempt)) = parse_work_id(work_id) else {
        return Err(CoreError::UnknownWork(work_id.to_string()));
    };
    let mut tx = Tx::new(store);
    match kind {
        't' => report_task(engine, now, &mut tx, work_id, id, attempt, outcome)?,
        'k' => report_token(engine, now, &mut tx, work_id, id, attempt, outcome)?,
        _ => report_delivery(engine, now, &mut tx, work_id, id, attempt, outcome)?,
    }
    Ok(tx.into_batch())
}

/// What an outcome means for a push: the connector reads an answer; transport errors are
/// retried unless the host says retrying cannot help.
fn classify_push(
    connector: crate::connectors::ConnectorKind,
    operation: Operation,
    object_type: crate::cdm::ObjectType,
    outcome: &Outcome,
    now: i64,
) -> ProviderVerdict {
    match outcome {
        Outcome::Response {
            status,
            headers,
            body,
        } => connector.connector().interpret(&Answer {
            object_type,
            operation,
            status: *status,
            headers,
            body,
            now_ms: now,
        }),
        Outcome::Error {
            error,
            permanent: true,
        } => ProviderVerdict::Permanent {
            error: truncate(error, 500),
        },
        Outcome::Error { error, .. } => ProviderVerdict::Retryable {
            error: truncate(error, 500),
            retry_after_ms: None,
        },
    }
}

fn report_task(
    engine: &mut Engine,
    now: i64,
    tx: &mut Tx<'_>,
    work_id: &str,
    id: &str,
    attempt: u32,
    outcome: &Outcome,
) -> Result<(), CoreError> {
    let Some(mut task) = tx.get_json::<TaskRec>(&keys::task(id))? else {
        return Err(CoreError::UnknownWork(work_id.to_string()));
    };
    let TaskState::InProgress { lease_until_ms } = task.state else {
        return Err(CoreError::UnknownWork(format!(
            "{work_id} is not in progress"
        )));
    };
    if task.attempts != attempt {
        return Err(CoreError::UnknownWork(format!(
            "{work_id} is not the current attempt"
        )));
    }
    tx.delete(keys::due_task(lease_until_ms, &task.id));
    let rk = keys::remote(
        &task.connection_id,
        task.object.object_type,
        &task.object.id,
    );
    let previous = tx.get_json::<RemoteRec>(&rk)?;
    let operation = if previous.is_some() {
        Operation::Update
    } else {
        Operation::Create
    };
    let verdict = classify_push(
        task.connector,
        operation,
        task.object.object_type,
        outcome,
        now,
    );
    match verdict {
        ProviderVerdict::Success { remote_id, version } => {
            let (previous_id, previous_version) = match previous {
                Some(r) => (r.remote_id, r.version),
                None => (None, None),
            };
            tx.put_json(
                rk,
                &RemoteRec {
                    remote_id: remote_id.or(previous_id),
                    version: version.or(previous_version),
                },
            );
            task.state = TaskState::Succeeded;
            task.last_error = None;
            finish_task(engine, now, tx, task)
        }
        ProviderVerdict::Retryable {
            error,
            retry_after_ms: after,
        } => {
            task.last_error = Some(error);
            let retry_index = task.attempts.saturating_sub(1) as usize;
            if retry_index < engine.config.push_retry.len() {
                let unit = engine.unit();
                let delay = jittered(engine.config.push_retry.delay_for_retry(retry_index), unit)
                    .max(after.unwrap_or(0));
                let due = now.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX / 2));
                task.state = TaskState::Pending { due_ms: due };
                tx.put(keys::due_task(due, &task.id), "\"\"");
                update_target(engine, now, tx, &task)?;
                tx.put_json(keys::task(&task.id), &task);
                Ok(())
            } else {
                task.state = TaskState::Failed;
                finish_task(engine, now, tx, task)
            }
        }
        ProviderVerdict::Unauthorized { error }
            if !task.reauthorized && task.connector.connector().needs_token() =>
        {
            reauthorize(engine, now, tx, task, error)
        }
        ProviderVerdict::Permanent { error } | ProviderVerdict::Unauthorized { error } => {
            task.last_error = Some(error);
            task.state = TaskState::Failed;
            finish_task(engine, now, tx, task)
        }
    }
}

/// A first `401`: the token this attempt carried is spent; ask the host for a new one (unless
/// a newer one already arrived) and send again, without counting the attempt.
fn reauthorize(
    engine: &mut Engine,
    now: i64,
    tx: &mut Tx<'_>,
    mut task: TaskRec,
    error: String,
) -> Result<(), CoreError> {
    task.reauthorized = true;
    task.attempts = task.attempts.saturating_sub(1);
    task.last_error = Some(error);
    let tk = keys::token(&task.connection_id);
    let newer = match tx.get_json::<TokenRec>(&tk)? {
        Some(t) if Some(t.serial) != task.token_serial && !token_expired(&t, now) => true,
        Some(mut t) => {
            // Keep the record (and its serial); mark it spent.
            t.expires_at_ms = Some(0);
            tx.put_json(tk, &t);
            false
        }
        None => false,
    };
    task.token_serial = None;
    if newer {
        task.state = TaskState::Pending { due_ms: now };
        tx.put(keys::due_task(now, &task.id), "\"\"");
    } else {
        let Some(conn) =
            tx.get_json::<ConnectionRec>(&keys::connection(&task.account_id, &task.connection_id))?
        else {
            task.last_error = Some("the connection was deleted".into());
            task.state = TaskState::Failed;
            return finish_task(engine, now, tx, task);
        };
        task.state = TaskState::WaitingForToken;
        tx.put_json(keys::task(&task.id), &task);
        let account = task.account_id.clone();
        ask_token(
            engine,
            now,
            tx,
            &conn,
            &account,
            &task.id,
            "unauthorized",
            false,
        )?;
    }
    update_target(engine, now, tx, &task)?;
    tx.put_json(keys::task(&task.id), &task);
    Ok(())
}

/// Why a token request failed: the text, whether retrying may help, the delay asked for.
type TokenFailure = (String, bool, Option<u64>);

/// The host's answer to a token request.
fn report_token(
    engine: &mut Engine,
    now: i64,
    tx: &mut Tx<'_>,
    work_id: &str,
    connection: &str,
    attempt: u32,
    outcome: &Outcome,
) -> Result<(), CoreError> {
    let key = keys::token_request(connection);
    let Some(mut r) = tx.get_json::<TokenRequestRec>(&key)? else {
        return Err(CoreError::UnknownWork(work_id.to_string()));
    };
    let TokenRequestState::InProgress { lease_until_ms } = r.state else {
        return Err(CoreError::UnknownWork(format!(
            "{work_id} is not in progress"
        )));
    };
    if r.attempts != attempt {
        return Err(CoreError::UnknownWork(format!(
            "{work_id} is not the current attempt"
        )));
    }
    tx.delete(keys::due_token(lease_until_ms, connection));
    // The error text never includes a 200 answer's body: it may hold a token.
    let answer: Result<(String, Option<i64>), TokenFailure> = match outcome {
        Outcome::Response {
            status: 200 | 201,
            body,
            ..
        } => parse_token_answer(body).ok_or_else(|| {
            (
                "the host's token answer is not {\"accessToken\": \"...\", \"expiresAt\": <ms>}"
                    .to_string(),
                false,
                None,
            )
        }),
        Outcome::Response { status, body, .. } => {
            let retry = matches!(status, 408 | 429 | 500..=599);
            let after = outcome
                .header("Retry-After")
                .and_then(|v| parse_retry_after(v, now));
            Err((
                format!("HTTP {status}: {}", truncate(body, ERROR_BODY_PREFIX)),
                retry,
                after,
            ))
        }
        Outcome::Error { error, permanent } => Err((truncate(error, 500), !permanent, None)),
    };
    match answer {
        Ok((access_token, expires_at_ms)) => {
            let tk = keys::token(connection);
            let serial = tx
                .get_json::<TokenRec>(&tk)?
                .map_or(1, |t| t.serial.saturating_add(1));
            tx.put_json(
                tk,
                &TokenRec {
                    access_token,
                    expires_at_ms,
                    serial,
                },
            );
            tx.delete(key);
            for tid in &r.waiting {
                let Some(mut t) = tx.get_json::<TaskRec>(&keys::task(tid))? else {
                    continue;
                };
                if t.state != TaskState::WaitingForToken {
                    continue;
                }
                t.state = TaskState::Pending { due_ms: now };
                tx.put(keys::due_task(now, tid), "\"\"");
                tx.put_json(keys::task(tid), &t);
            }
            Ok(())
        }
        Err((error, retryable, after)) => {
            let retry_index = r.attempts.saturating_sub(1) as usize;
            if retryable && retry_index < engine.config.push_retry.len() {
                let unit = engine.unit();
                let delay = jittered(engine.config.push_retry.delay_for_retry(retry_index), unit)
                    .max(after.unwrap_or(0));
                let due = now.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX / 2));
                r.state = TokenRequestState::Pending { due_ms: due };
                tx.put(keys::due_token(due, connection), "\"\"");
                tx.put_json(key, &r);
                Ok(())
            } else {
                tx.delete(key);
                let why = format!("no access token for {}: {error}", r.app);
                fail_waiting(engine, now, tx, r.waiting, &why)
            }
        }
    }
}

/// `{"accessToken": "<non-empty>", "expiresAt": <ms or null, optional>}`.
fn parse_token_answer(body: &str) -> Option<(String, Option<i64>)> {
    let v: Value = serde_json::from_str(body).ok()?;
    let token = v.get("accessToken")?.as_str()?.trim();
    if token.is_empty() || token.len() > 8192 || token.chars().any(char::is_control) {
        return None;
    }
    let expires = match v.get("expiresAt") {
        None | Some(Value::Null) => None,
        Some(x) => Some(x.as_i64()?),
    };
    Some((token.to_string(), expires))
}

/// A task reached a final state: store it, release the tasks waiting for it (failing those
/// that required its success), and update its target and sync.
fn finish_task(
    engine: &mut Engine,
    now: i64,
    tx: &mut Tx<'_>,
    first: TaskRec,
) -> Result<(), CoreError> {
    let mut work = vec![first];
    while let Some(task) = work.pop() {
        let ck = keys::chain(
            &task.connection_id,
            task.object.object_type,
            &task.object.id,
        );
        if tx.get_json::<String>(&ck)?.as_deref() == Some(task.id.as_str()) {
            tx.delete(ck);
        }
        tx.put_json(keys::task(&task.id), &task);
        let failed = task.state == TaskState::Failed;
        for sid in &task.successors {
            let Some(mut succ) = tx.get_json::<TaskRec>(&keys::task(sid))? else {
                continue;
            };
            if succ.state != TaskState::Waiting {
                continue;
            }
            succ.waiting_on.retain(|w| w != &task.id);
            if failed && succ.requires.contains(&task.id) {
                succ.state = TaskState::Failed;
                succ.last_error = Some(format!(
                    "not sent: the push of {} {} that it depends on failed",
                    task.object.object_type.as_str(),
                    task.object.id
                ));
                work.push(succ);
            } else if succ.waiting_on.is_empty() {
                succ.state = TaskState::Pending { due_ms: now };
                tx.put(keys::due_task(now, &succ.id), "\"\"");
                tx.put_json(keys::task(&succ.id), &succ);
            } else {
                tx.put_json(keys::task(&succ.id), &succ);
            }
        }
        update_target(engine, now, tx, &task)?;
    }
    Ok(())
}

/// Recompute the target of `task` (and its sync) from its tasks; emit the events of targets
/// and syncs that became final.
fn update_target(
    engine: &mut Engine,
    now: i64,
    tx: &mut Tx<'_>,
    task: &TaskRec,
) -> Result<(), CoreError> {
    let sk = keys::sync(&task.account_id, &task.sync_id);
    let Some(mut sync) = tx.get_json::<SyncRec>(&sk)? else {
        return Ok(());
    };
    let Some(ti) = sync.targets.iter().position(|t| t.tasks.contains(&task.id)) else {
        return Ok(());
    };
    let now_str = rfc3339_millis(now);
    let mut statuses = Vec::new();
    let mut attempts = 0u32;
    let mut last_error = None;
    for tid in &sync.targets[ti].tasks {
        let t = if tid == &task.id {
            Some(task.clone())
        } else {
            tx.get_json::<TaskRec>(&keys::task(tid))?
        };
        if let Some(t) = t {
            statuses.push(t.state.status());
            attempts = attempts.saturating_add(t.attempts);
            if t.last_error.is_some() {
                last_error = t.last_error.clone();
            }
        }
    }
    let status = if statuses.iter().all(|s| s.is_final()) {
        if statuses.iter().all(|s| *s == TargetStatus::Succeeded) {
            TargetStatus::Succeeded
        } else {
            TargetStatus::Failed
        }
    } else if attempts == 0 && statuses.iter().all(|s| *s == TargetStatus::Pending) {
        TargetStatus::Pending
    } else {
        TargetStatus::InProgress
    };
    let target = &mut sync.targets[ti];
    let was_final = target.status.is_final();
    let conn_id = target.connection_id.clone();
    target.status = status;
    target.attempts = attempts;
    target.last_error = if status == TargetStatus::Succeeded {
        None
    } else {
        last_error
    };
    target.remote_id = tx
        .get_json::<RemoteRec>(&keys::remote(
            &conn_id,
            sync.object.object_type,
            &sync.object.id,
        ))?
        .and_then(|r| r.remote_id);
    target.updated_at = now_str.clone();
    let sync_was_final = sync.status.is_final();
    sync.status = SyncStatus::aggregate(&sync.targets.iter().map(|t| t.status).collect::<Vec<_>>());
    sync.updated_at = now_str;
    if !was_final && status.is_final() {
        emit_target_update(engine, now, tx, &sync, ti)?;
    }
    if !sync_was_final && sync.status.is_final() {
        emit_sync_complete(engine, now, tx, &sync)?;
    }
    tx.put_json(sk, &sync);
    Ok(())
}

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
    sync: &SyncRec,
    ti: usize,
) -> Result<(), CoreError> {
    let Some(t) = sync.targets.get(ti) else {
        return Ok(());
    };
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
    emit(engine, now, tx, sync, "api_push_update", message, data)
}

pub(crate) fn emit_sync_complete(
    engine: &mut Engine,
    now: i64,
    tx: &mut Tx<'_>,
    sync: &SyncRec,
) -> Result<(), CoreError> {
    let message = format!(
        "{} sync {}",
        sync.label,
        sync.status.as_str().replace('_', " ")
    );
    let full = sync_json(sync);
    let data = json!({
        "syncId": sync.id,
        "trackingId": sync.tracking_id,
        "status": sync.status,
        "operation": sync.operation,
        "object": sync.object,
        "objects": sync.objects,
        "targets": full.get("targets").cloned().unwrap_or(Value::Array(vec![])),
    });
    emit(engine, now, tx, sync, "api_push_complete", message, data)
}

fn emit(
    engine: &mut Engine,
    now: i64,
    tx: &mut Tx<'_>,
    sync: &SyncRec,
    event: &str,
    message: String,
    data: Value,
) -> Result<(), CoreError> {
    let hooks: Vec<WebhookRec> = tx.scan_json(&keys::webhooks(&sync.account_id), 0, usize::MAX)?;
    let hooks: Vec<WebhookRec> = hooks
        .into_iter()
        .filter(|h| {
            tx.get(&keys::webhook(&sync.account_id, &h.id))
                .ok()
                .flatten()
                .is_some()
        })
        .filter(|h| h.events.iter().any(|e| e == "*" || e == event))
        .collect();
    if hooks.is_empty() {
        return Ok(());
    }
    let body = json!({
        "event": event,
        "requestId": sync.request_id,
        "domain": account_domain(tx, &sync.account_id)?,
        "message": message,
        "data": data,
    })
    .to_string();
    let now_str = rfc3339_millis(now);
    for h in hooks {
        let id = engine.new_id(now);
        let d = DeliveryRec {
            id: id.clone(),
            account_id: sync.account_id.clone(),
            webhook_id: h.id.clone(),
            event: event.to_string(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            budget_used: 0,
            lease_until_ms: None,
            due_ms: Some(now),
            last_status_code: None,
            last_error: None,
            sync_id: sync.id.clone(),
            tracking_id: sync.tracking_id.clone(),
            body: body.clone(),
            created_at: now_str.clone(),
            updated_at: now_str.clone(),
        };
        tx.put_json(keys::delivery(&id), &d);
        tx.put(
            keys::webhook_delivery(&sync.account_id, &h.id, &id),
            json_string(&id),
        );
        tx.put(keys::due_delivery(now, &id), "\"\"");
    }
    Ok(())
}

fn finish_delivery(now: i64, tx: &mut Tx<'_>, mut d: DeliveryRec, status: DeliveryStatus) {
    d.status = status;
    d.due_ms = None;
    d.lease_until_ms = None;
    d.updated_at = rfc3339_millis(now);
    tx.put(keys::delivery_expiry(now, &d.id), "\"\"");
    tx.put_json(keys::delivery(&d.id), &d);
}

fn report_delivery(
    engine: &mut Engine,
    now: i64,
    tx: &mut Tx<'_>,
    work_id: &str,
    id: &str,
    attempt: u32,
    outcome: &Outcome,
) -> Result<(), CoreError> {
    let Some(mut d) = tx.get_json::<DeliveryRec>(&keys::delivery(id))? else {
        return Err(CoreError::UnknownWork(work_id.to_string()));
    };
    let Some(lease) = d.lease_until_ms else {
        return Err(CoreError::UnknownWork(format!(
            "{work_id} is not in progress"
        )));
    };
    if d.status != DeliveryStatus::Pending || d.attempts != attempt {
        return Err(CoreError::UnknownWork(format!(
            "{work_id} is not the current attempt"
        )));
    }
    tx.delete(keys::due_delivery(lease, &d.id));
    d.lease_until_ms = None;
    let permanent = match outcome {
        Outcome::Response { status, body, .. } => {
            d.last_status_code = Some(*status);
            if *status == 200 {
                d.last_error = None;
                finish_delivery(now, tx, d, DeliveryStatus::Delivered);
                return Ok(());
            }
            d.last_error = Some(format!(
                "HTTP {status}: {}",
                truncate(body, ERROR_BODY_PREFIX)
            ));
            false
        }
        Outcome::Error { error, permanent } => {
            d.last_status_code = None;
            d.last_error = Some(truncate(error, 500));
            *permanent
        }
    };
    if permanent || d.budget_used >= WEBHOOK_ATTEMPTS {
        finish_delivery(now, tx, d, DeliveryStatus::Failed);
        return Ok(());
    }
    let retry_index = d.budget_used.saturating_sub(1) as usize;
    let unit = engine.unit();
    let delay = jittered(
        engine.config.webhook_retry.delay_for_retry(retry_index),
        unit,
    );
    let due = now.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX / 2));
    d.due_ms = Some(due);
    d.updated_at = rfc3339_millis(now);
    tx.put(keys::due_delivery(due, &d.id), "\"\"");
    tx.put_json(keys::delivery(&d.id), &d);
    Ok(())
}

/// The admin API's retry: a failed delivery is attempted again now with a fresh budget.
pub(crate) fn manual_retry(ctx: &mut Ctx<'_>, mut d: DeliveryRec) -> H<DeliveryRec> {
    if d.status != DeliveryStatus::Failed {
        return super::api::fail(
            crate::http::ProblemKind::Conflict,
            format!(
                "only a failed delivery can be retried; this one is {}",
                match d.status {
                    DeliveryStatus::Pending => "pending",
                    DeliveryStatus::Delivered => "delivered",
                    DeliveryStatus::Failed => "failed",
                }
            ),
        );
    }
    d.status = DeliveryStatus::Pending;
    d.budget_used = 0;
    d.lease_until_ms = None;
    d.due_ms = Some(ctx.now);
    d.updated_at = ctx.now_str.clone();
    ctx.tx.put(keys::due_delivery(ctx.now, &d.id), "\"\"");
    ctx.tx.put_json(keys::delivery(&d.id), &d);
    Ok(d)
}

/// The entries of a retention index (`{prefix}{ms:016}/{rest}`) written at or before `cut`, at
/// most `limit`, in time order, as (entry key, rest); `rest` is `None` for a malformed entry,
/// which the caller only removes.
fn expired(
    store: &dyn KvRead,
    prefix: &str,
    cut: i64,
    limit: usize,
) -> Result<Vec<(String, Option<String>)>, CoreError> {
    let mut out = Vec::new();
    for (k, _) in store.scan(prefix, 0, limit)? {
        match k[prefix.len()..].split_once('/') {
            None => out.push((k.clone(), None)),
            Some((ms, rest)) => {
                if ms.parse::<i64>().unwrap_or(i64::MIN) > cut {
                    break;
                }
                let rest = Some(rest.to_string());
                out.push((k, rest));
            }
        }
    }
    Ok(out)
}

fn retention_cut(now: i64, retention_ms: u64) -> i64 {
    now.saturating_sub(i64::try_from(retention_ms).unwrap_or(i64::MAX))
}

pub(crate) fn prune(
    engine: &mut Engine,
    now: i64,
    limit: usize,
    store: &dyn KvRead,
) -> Result<Batch, CoreError> {
    let mut tx = Tx::new(store);
    let idem_cut = retention_cut(now, engine.config.idempotency_retention_ms);
    for (entry, rest) in expired(store, keys::IDEM_EXPIRY, idem_cut, limit)? {
        tx.delete(entry);
        if let Some((account, key)) = rest.as_deref().and_then(|r| r.split_once('/')) {
            let ik = keys::idempotency(account, key);
            // Only delete the record this entry was written for (not a newer one).
            if let Some(rec) = tx.get_json::<IdemRec>(&ik)? {
                if rec.created_ms <= idem_cut {
                    tx.delete(ik);
                }
            }
        }
    }
    let dlv_cut = retention_cut(now, engine.config.delivery_retention_ms);
    for (entry, rest) in expired(store, keys::DELIVERY_EXPIRY, dlv_cut, limit)? {
        tx.delete(entry);
        let Some(id) = rest else { continue };
        if let Some(d) = tx.get_json::<DeliveryRec>(&keys::delivery(&id))? {
            // A delivery retried by hand after it finished is unfinished again: keep it.
            if d.status != DeliveryStatus::Pending {
                tx.delete(keys::delivery(&id));
                tx.delete(keys::webhook_delivery(&d.account_id, &d.webhook_id, &id));
            }
        }
    }
    Ok(tx.into_batch())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_ids_parse() {
        assert_eq!(parse_work_id("t.abc.2"), Some(('t', "abc", 2)));
        assert_eq!(parse_work_id("d.0190-aa.1"), Some(('d', "0190-aa", 1)));
        assert_eq!(parse_work_id("x.abc.1"), None);
        assert_eq!(parse_work_id("t.abc"), None);
        assert_eq!(parse_work_id("t.a/b.1"), None);
    }

    #[test]
    fn due_keys_parse() {
        let k = keys::due_task(1234, "x");
        assert_eq!(parse_due_key(&k), Some((1234, 't', "x")));
        assert_eq!(parse_due_key("due/zz/t/x"), None);
    }

    #[test]
    fn classify() {
        use crate::cdm::ObjectType::Customer;
        use crate::connectors::ConnectorKind::Generic;
        let c = |o: &Outcome| classify_push(Generic, Operation::Create, Customer, o, 0);
        let ok = Outcome::Response {
            status: 201,
            headers: BTreeMap::new(),
            body: r#"{"id":"R1"}"#.into(),
        };
        assert!(
            matches!(c(&ok), ProviderVerdict::Success { remote_id: Some(ref s), .. } if s == "R1")
        );
        let mut h = BTreeMap::new();
        h.insert("retry-after".to_string(), "7".to_string());
        let busy = Outcome::Response {
            status: 429,
            headers: h,
            body: String::new(),
        };
        assert!(matches!(
            c(&busy),
            ProviderVerdict::Retryable {
                retry_after_ms: Some(7000),
                ..
            }
        ));
        let bad = Outcome::Response {
            status: 400,
            headers: BTreeMap::new(),
            body: "nope".into(),
        };
        assert!(
            matches!(c(&bad), ProviderVerdict::Permanent { ref error } if error == "HTTP 400: nope")
        );
        let moved = Outcome::Response {
            status: 301,
            headers: BTreeMap::new(),
            body: String::new(),
        };
        assert!(matches!(c(&moved), ProviderVerdict::Permanent { .. }));
        // The generic connector never asks for a token: a 401 is a permanent failure.
        let denied = Outcome::Response {
            status: 401,
            headers: BTreeMap::new(),
            body: String::new(),
        };
        assert!(matches!(c(&denied), ProviderVerdict::Permanent { .. }));
        let refused = Outcome::Error {
            error: "refused".into(),
            permanent: true,
        };
        assert!(matches!(c(&refused), ProviderVerdict::Permanent { .. }));
        let reset = Outcome::Error {
            error: "reset".into(),
            permanent: false,
        };
        assert!(matches!(
            c(&reset),
            ProviderVerdict::Retryable {
                retry_after_ms: None,
                ..
            }
        ));
    }

    #[test]
    fn token_answers_parse() {
        assert_eq!(
            parse_token_answer(r#"{"accessToken":"abc","expiresAt":1790000000000}"#),
            Some(("abc".into(), Some(1_790_000_000_000)))
        );
        assert_eq!(
            parse_token_answer(r#"{"accessToken":"abc"}"#),
            Some(("abc".into(), None))
        );
        assert_eq!(parse_token_answer(r#"{"accessToken":""}"#), None);
        assert_eq!(
            parse_token_answer(r#"{"accessToken":"a","expiresAt":"soon"}"#),
            None
        );
        assert_eq!(parse_token_answer("nope"), None);
    }
}
