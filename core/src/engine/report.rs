//! Taking outcomes: what a source's answer, the host's token or a webhook endpoint's answer
//! does to the task, the token request or the delivery it was for.

use serde_json::Value;

use super::items::{truncate, Outcome, WorkId, WorkRef, ERROR_BODY_PREFIX, WEBHOOK_ATTEMPTS};
use super::lifecycle::{
    ask_token, fail_waiting, finish_delivery, finish_task, token_expired, update_target,
};
use super::state::Engine;
use super::stored;
use super::tx::Tx;
use crate::connectors::{Answer, Operation, ProviderVerdict};
use crate::records::*;
use crate::store::{Batch, KvRead};
use crate::util::schedule::{jittered, parse_retry_after};
use crate::util::time::rfc3339_millis;
use crate::CoreError;

pub(crate) fn report(
    engine: &mut Engine,
    work_id: &str,
    outcome: &Outcome,
    now: i64,
    store: &dyn KvRead,
) -> Result<Batch, CoreError> {
    let Some(WorkId { what, attempt }) = WorkId::parse(work_id) else {
        return Err(CoreError::UnknownWork(work_id.to_string()));
    };
    let mut tx = Tx::new(store);
    match what {
        WorkRef::Task(id) => report_task(engine, now, &mut tx, work_id, id, attempt, outcome)?,
        WorkRef::TokenRequest(id) => {
            report_token(engine, now, &mut tx, work_id, id, attempt, outcome)?
        }
        WorkRef::Delivery(id) => {
            report_delivery(engine, now, &mut tx, work_id, id, attempt, outcome)?
        }
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
    let Some(mut task) = stored::get_task(tx, id, None)? else {
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
    let previous = stored::get_remote(
        tx,
        &task.connection_id,
        task.object.object_type,
        &task.object.id,
    )?;
    let operation = task.operation(previous.is_some());
    let verdict = classify_push(
        task.connector,
        operation,
        task.object.object_type,
        outcome,
        now,
    );
    // A failure the source answered has a structured form; a transport error has none.
    task.error = match outcome {
        Outcome::Response {
            status,
            headers,
            body,
        } if !matches!(verdict, ProviderVerdict::Success { .. }) => {
            Some(task.connector.connector().source_error(&Answer {
                object_type: task.object.object_type,
                operation,
                status: *status,
                headers,
                body,
                now_ms: now,
            }))
        }
        _ => None,
    };
    match verdict {
        ProviderVerdict::Success { .. } if operation == Operation::Delete => {
            // The source no longer has it: forget its id there.
            stored::drop_remote(
                tx,
                &task.connection_id,
                task.object.object_type,
                &task.object.id,
            )?;
            task.state = TaskState::Succeeded;
            task.last_error = None;
            finish_task(engine, now, tx, task)
        }
        ProviderVerdict::Success { remote_id, version } => {
            let (previous_id, previous_version) = match previous {
                Some(r) => (r.remote_id, r.version),
                None => (None, None),
            };
            stored::put_remote(
                tx,
                &task.connection_id,
                task.object.object_type,
                &task.object.id,
                RemoteRec {
                    remote_id: remote_id.or(previous_id),
                    version: version.or(previous_version),
                },
            )?;
            task.state = TaskState::Succeeded;
            task.last_error = None;
            finish_task(engine, now, tx, task)
        }
        ProviderVerdict::Retryable {
            error,
            retry_after_ms: after,
        } => {
            task.last_error = Some(error);
            // The schedule counts the attempts of the current budget (see `retry_sync`).
            let retry_index = task
                .attempts
                .saturating_sub(task.budget_start)
                .saturating_sub(1) as usize;
            if retry_index < engine.config.push_retry.len() {
                let unit = engine.unit();
                let delay = jittered(engine.config.push_retry.delay_for_retry(retry_index), unit)
                    .max(after.unwrap_or(0));
                let due = now.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX / 2));
                task.state = TaskState::Pending { due_ms: due };
                stored::put_due(tx, due, &task);
                update_target(engine, now, tx, &task)?;
                stored::put_task(tx, &task)?;
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
        stored::put_due(tx, now, &task);
    } else {
        let Some(conn) =
            tx.get_json::<ConnectionRec>(&keys::connection(&task.account_id, &task.connection_id))?
        else {
            task.last_error = Some("the connection was deleted".into());
            task.error = None;
            task.state = TaskState::Failed;
            return finish_task(engine, now, tx, task);
        };
        task.state = TaskState::WaitingForToken;
        stored::put_task(tx, &task)?;
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
    stored::put_task(tx, &task)?;
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
                let Some(mut t) = stored::get_task(tx, tid, None)? else {
                    continue;
                };
                if t.state != TaskState::WaitingForToken {
                    continue;
                }
                t.state = TaskState::Pending { due_ms: now };
                stored::put_due(tx, now, &t);
                stored::put_task(tx, &t)?;
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
    let DeliveryState::InProgress {
        lease_until_ms: lease,
    } = d.state
    else {
        return Err(CoreError::UnknownWork(format!(
            "{work_id} is not in progress"
        )));
    };
    if d.attempts != attempt {
        return Err(CoreError::UnknownWork(format!(
            "{work_id} is not the current attempt"
        )));
    }
    tx.delete(keys::due_delivery(lease, &d.id));
    // `Retry-After` (capped at 24 hours by its parser) stretches the schedule's delay, as
    // for pushes.
    let after = outcome
        .header("Retry-After")
        .and_then(|v| parse_retry_after(v, now));
    let permanent = match outcome {
        Outcome::Response { status, body, .. } => {
            d.last_status_code = Some(*status);
            if *status == 200 {
                d.last_error = None;
                finish_delivery(now, tx, d, DeliveryState::Delivered)?;
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
        return finish_delivery(now, tx, d, DeliveryState::Failed);
    }
    let retry_index = d.budget_used.saturating_sub(1) as usize;
    let unit = engine.unit();
    let delay = jittered(
        engine.config.webhook_retry.delay_for_retry(retry_index),
        unit,
    )
    .max(after.unwrap_or(0));
    let due = now.saturating_add(i64::try_from(delay).unwrap_or(i64::MAX / 2));
    d.state = DeliveryState::Pending { due_ms: due };
    d.updated_at = rfc3339_millis(now);
    tx.put(keys::due_delivery(due, &d.id), "\"\"");
    tx.put_json(keys::delivery(&d.id), &d);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

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
