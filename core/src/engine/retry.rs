//! `POST /api/syncs/{id}/retry`: the failed targets of a sync, pushed again.
//!
//! (An `Idempotency-Key` on the call is handled by `data.rs` as for other writes.)
//!
//! Every `failed` task of a retried target goes back to `pending` with a fresh retry budget
//! (`budget_start`: the retry schedule counts only the attempts made after it) and keeps its
//! id, which is the push's `Idempotency-Key`: the source sees the first attempt's key again.
//!
//! Order: a retried push sends the same version of the object as its first attempt, so it
//! is retried only while that version is still the object's current one (a later write
//! replaced it otherwise, and that write's own sync carries the newer version: sending the
//! older one after it would undo it at the source). It joins the end of the object's push
//! chain: when a push of the same object to the same connection is still unfinished (a later
//! sync's, planned after the failure), the retried one waits for it; a task of the sync that
//! required another retried task waits for that one again.

use serde_json::Value;

use super::command::{Body, Reply};
use super::stored;
use super::views::sync_json;
use super::vocab::{fail, field_error, invalid, Ctx, H};
use crate::cdm::codes;
use crate::http::ProblemKind;
use crate::records::rows::{derive_target_error, version_of, SyncRow};
use crate::records::*;
use crate::util::time::rfc3339_millis;

/// The apps a retry body names (lowercase), or `None` for every target; `400`/`415` for a
/// body that is not JSON, `422` with pointers for a wrong shape or an app that is no target.
fn apps_of(body: Body<'_>, sync: &SyncRec) -> H<Option<Vec<String>>> {
    let Some(v) = body.optional_value()? else {
        return Ok(None);
    };
    let Value::Object(map) = v else {
        return invalid(vec![field_error(
            "",
            codes::INVALID_TYPE,
            "the body must be an object {\"apps\": [...]}",
        )]);
    };
    let mut errors = Vec::new();
    for k in map.keys().filter(|k| *k != "apps") {
        errors.push(field_error(
            &format!("/{}", crate::validate::pointer_token(k)),
            codes::UNKNOWN_FIELD,
            "a retry takes only apps",
        ));
    }
    let mut apps = Vec::new();
    match map.get("apps") {
        None => errors.push(field_error("/apps", codes::REQUIRED, "apps is required")),
        Some(Value::Array(list)) if list.is_empty() => errors.push(field_error(
            "/apps",
            codes::TOO_FEW,
            "apps names at least one app; send no body to retry every failed target",
        )),
        Some(Value::Array(list)) => {
            for (i, a) in list.iter().enumerate() {
                let pointer = format!("/apps/{i}");
                match a.as_str() {
                    None => errors.push(field_error(
                        &pointer,
                        codes::INVALID_TYPE,
                        "an app key is a string",
                    )),
                    Some(app) if sync.targets.iter().any(|t| t.app.eq_ignore_ascii_case(app)) => {
                        apps.push(app.to_ascii_lowercase())
                    }
                    Some(app) => errors.push(field_error(
                        &pointer,
                        codes::NOT_FOUND,
                        format!("{app} is not a target of this sync"),
                    )),
                }
            }
        }
        Some(_) => errors.push(field_error(
            "/apps",
            codes::INVALID_TYPE,
            "apps is a list of app keys",
        )),
    }
    if errors.is_empty() {
        Ok(Some(apps))
    } else {
        invalid(errors)
    }
}

/// Retry the failed targets of a sync of `account`.
pub(crate) fn retry_sync(
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
    id: &str,
    body: Body<'_>,
) -> H<Reply> {
    let found = if id.contains('/') {
        None
    } else {
        stored::get_sync_tasks(&ctx.tx, id)?
    };
    let Some((mut sync, mut tasks)) = found.filter(|(s, _)| s.account_id == account.id) else {
        return fail(ProblemKind::NotFound, "no such sync");
    };
    let apps = apps_of(body, &sync)?;
    let selected: Vec<usize> = (0..sync.targets.len())
        .filter(|&i| {
            let t = &sync.targets[i];
            t.status == TargetStatus::Failed
                && apps
                    .as_ref()
                    .is_none_or(|a| a.iter().any(|x| t.app.eq_ignore_ascii_case(x)))
        })
        .collect();
    if selected.is_empty() {
        return fail(
            ProblemKind::NothingToRetry,
            format!("no target of sync {id} is failed"),
        );
    }
    // The failed tasks of the selected targets whose version is still the current one.
    let mut retried: Vec<usize> = Vec::new();
    for &ti in &selected {
        for tid in &sync.targets[ti].tasks {
            let Some(i) = tasks.iter().position(|t| &t.id == tid) else {
                continue;
            };
            let t = &tasks[i];
            if t.state != TaskState::Failed {
                continue;
            }
            let key = keys::object(&t.account_id, t.object.object_type, &t.object.id);
            if ctx.tx.get(&key)?.as_deref().and_then(version_of) == Some(t.version) {
                retried.push(i);
            }
        }
    }
    if retried.is_empty() {
        return fail(
            ProblemKind::NothingToRetry,
            format!("every failed push of sync {id} sends a version of its object that a later write replaced; that write's sync pushes the newer version"),
        );
    }
    let now = ctx.now;
    let ids: Vec<String> = retried.iter().map(|&i| tasks[i].id.clone()).collect();
    for &i in &retried {
        let (conn, t, oid) = {
            let t = &tasks[i];
            (
                t.connection_id.clone(),
                t.object.object_type,
                t.object.id.clone(),
            )
        };
        let mut waiting_on: Vec<String> = tasks[i]
            .requires
            .iter()
            .filter(|r| ids.contains(r))
            .cloned()
            .collect();
        if let Some(mut tail) = stored::chain_tail(&ctx.tx, &conn, t, &oid)? {
            let link = format!("{id}/{}", tasks[i].id);
            if !tail.successors.contains(&link) {
                tail.successors.push(link);
            }
            waiting_on.push(tail.id.clone());
            stored::put_task(&mut ctx.tx, &tail)?;
        }
        stored::chain_add(&mut ctx.tx, &oid, id)?;
        let task = &mut tasks[i];
        task.budget_start = task.attempts;
        task.reauthorized = false;
        task.token_serial = None;
        task.state = if waiting_on.is_empty() {
            stored::put_due(&mut ctx.tx, now, task);
            TaskState::Pending { due_ms: now }
        } else {
            TaskState::Waiting
        };
        task.waiting_on = waiting_on;
    }
    let now_str = rfc3339_millis(now);
    for &ti in &selected {
        let target = &mut sync.targets[ti];
        let mine: Vec<&TaskRec> = tasks
            .iter()
            .filter(|t| target.tasks.contains(&t.id))
            .collect();
        let (status, attempts, last_error, error) = derive_target_error(&mine);
        target.status = status;
        target.attempts = attempts;
        target.last_error = last_error;
        target.error = error;
        target.updated_at = now_str.clone();
    }
    sync.status = SyncStatus::aggregate_of(sync.targets.iter().map(|t| t.status));
    sync.updated_at = now_str;
    ctx.tx
        .put_json(keys::sync(id), &SyncRow::encode(&sync, &tasks));
    Ok(Reply::json(202, &sync_json(&sync)))
}
