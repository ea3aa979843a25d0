//! Planning the push of a write: the targets it goes to, the sync, its tasks and what each
//! connector requires.

use std::sync::Arc;

use serde_json::Value;

use super::events::{emit_sync_complete, emit_target_update};
use super::state::Engine;
use super::stored;
use super::vocab::{fail, invalid, Ctx, H};
use crate::cdm::*;
use crate::http::ProblemKind;
use crate::records::*;
use crate::routing::{parse_sync_sources, select_targets, ConnectionRef, SourceFilter};

/// One object of a write to push.
pub(crate) struct PushItem {
    pub object: ObjectRef,
    /// The object as written (JSON text), for the connectors' requirements; `None` when it is
    /// the write's answer (the one object a create or an update wrote), which
    /// [`plan_sync`] is given as `answer`.
    pub body: Option<String>,
    /// Its version as written: what its tasks push.
    pub version: u64,
    /// Reference fields resolved to remote ids when sent.
    pub references: Vec<(String, ObjectType, String)>,
    /// This item may only be sent after the previous item of the same target succeeded.
    pub requires_previous: bool,
    /// More references that provider connectors need (a line's account, a payment's
    /// customer); the generic connector's envelope does not carry them.
    pub connector_references: ConnectorRefs,
    /// Where the object is in the request body (`""`, `/vendor`, `/3`), for the pointers of
    /// connector requirements.
    pub pointer: String,
}

/// References that only provider connectors need.
#[derive(Clone, Default)]
pub(crate) enum ConnectorRefs {
    /// None.
    #[default]
    None,
    /// Listed as `(field, type, id)`.
    Listed(Vec<(String, ObjectType, String)>),
    /// The account of each line (`lines/{i}/accountId`), when the line names one. Kept as
    /// ids and named only for a provider target: most writes push to generic targets only.
    LineAccounts(Vec<Option<String>>),
}

impl ConnectorRefs {
    fn is_empty(&self) -> bool {
        match self {
            ConnectorRefs::None => true,
            ConnectorRefs::Listed(v) => v.is_empty(),
            ConnectorRefs::LineAccounts(v) => v.iter().all(Option::is_none),
        }
    }

    /// Append the references as `(field, type, id)`.
    fn extend_into(&self, out: &mut Vec<(String, ObjectType, String)>) {
        match self {
            ConnectorRefs::None => {}
            ConnectorRefs::Listed(v) => out.extend(v.iter().cloned()),
            ConnectorRefs::LineAccounts(v) => {
                for (i, id) in v.iter().enumerate() {
                    if let Some(id) = id {
                        out.push((
                            format!("lines/{i}/accountId"),
                            ObjectType::Account,
                            id.clone(),
                        ));
                    }
                }
            }
        }
    }
}

/// The accounts of an object's lines as connector references `lines/{i}/accountId`.
pub(crate) fn line_accounts<'a>(ids: impl Iterator<Item = Option<&'a String>>) -> ConnectorRefs {
    ConnectorRefs::LineAccounts(ids.map(|id| id.cloned()).collect())
}

/// What a write wants pushed.
pub(crate) struct PushPlan {
    pub route_type: ObjectType,
    /// `create`, `update` or `delete`. Every item of a `create` plan is an object this write
    /// created under a freshly drawn id: it has no push chain yet.
    pub operation: &'static str,
    pub items: Vec<PushItem>,
    pub label: String,
}

/// The connections of an account and the parsed `X-Sync-Sources` filter.
pub(crate) fn connections_and_filter(
    engine: &mut Engine,
    ctx: &Ctx<'_>,
    account: &AccountRec,
    sources: Option<&str>,
) -> H<(Vec<Arc<ConnectionRec>>, crate::routing::SourceFilter)> {
    let rows = ctx
        .tx
        .scan(&keys::connections(&account.id), 0, usize::MAX)?;
    let mut conns: Vec<Arc<ConnectionRec>> = Vec::with_capacity(rows.len());
    for (k, raw) in rows {
        conns.push(engine.cache.decode(&k, raw)?);
    }
    let filter = match sources {
        None => crate::routing::SourceFilter::All,
        Some(h) => {
            let apps: Vec<&str> = conns.iter().map(|c| c.app.as_str()).collect();
            match parse_sync_sources(h, &apps) {
                Ok(f) => f,
                Err(e) => return fail(ProblemKind::InvalidHeader, format!("X-Sync-Sources: {e}")),
            }
        }
    };
    Ok((conns, filter))
}

/// reason and no task.
#[allow(clippy::too_many_arguments)]
pub(crate) fn plan_sync(
    engine: &mut Engine,
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
    tracking_id: Option<&str>,
    plan: PushPlan,
    answer: &str,
    connections: &[Arc<ConnectionRec>],
    filter: &SourceFilter,
) -> H<(String, Vec<String>)> {
    let created = plan.operation == "create";
    let refs: Vec<ConnectionRef<'_>> = connections
        .iter()
        .map(|c| ConnectionRef {
            id: &c.id,
            app: &c.app,
            app_type: &c.app_type,
            objects: &c.objects,
        })
        .collect();
    let selected: Vec<&ConnectionRec> = select_targets(plan.route_type, &refs, filter)
        .into_iter()
        .filter_map(|r| connections.iter().find(|c| c.id == r.id))
        .map(|c| &**c)
        .collect();
    // A deletion sends the object as it was last stored: no requirements to check.
    let skipped = if plan.operation == "delete" {
        vec![None; selected.len()]
    } else {
        connector_checks(&plan, answer, &selected, filter)?
    };
    let sync_id = engine.new_id(ctx.now);
    let mut targets = Vec::with_capacity(selected.len());
    let mut failed_at_plan = Vec::new();
    let mut new_tasks: Vec<TaskRec> = Vec::new();
    for (conn, skip) in selected.iter().zip(skipped) {
        if let Some(reason) = skip {
            failed_at_plan.push(targets.len());
            targets.push(TargetRec {
                connection_id: conn.id.clone(),
                app: conn.app.clone(),
                app_type: conn.app_type.clone(),
                status: TargetStatus::Failed,
                attempts: 0,
                remote_id: None,
                last_error: Some(reason),
                error: None,
                updated_at: ctx.now_str.clone(),
                tasks: Vec::new(),
            });
            continue;
        }
        let provider = !conn.connector.is_generic();
        let mut task_ids: Vec<String> = Vec::new();
        // The task planned for the previous item (an index into `new_tasks`).
        let mut previous: Option<usize> = None;
        for item in &plan.items {
            let t = item.object.object_type;
            if t != plan.route_type && !conn.objects.contains(&t) {
                continue;
            }
            let mut references = item.references.clone();
            if provider && !item.connector_references.is_empty() {
                item.connector_references.extend_into(&mut references);
            }
            let tid = engine.new_id(ctx.now);
            let mut waiting_on = Vec::new();
            let mut requires = Vec::new();
            // How a tail this task waits for names it (made only when there is one).
            let successor = || [sync_id.as_str(), "/", tid.as_str()].concat();
            // `stored_chain`: whether the object can have pushes of earlier syncs (not when this
            // write created it).
            let mut wait_for = |ctx: &mut Ctx<'_>,
                                new_tasks: &mut Vec<TaskRec>,
                                ot: ObjectType,
                                oid: &str,
                                stored_chain: bool|
             -> H<()> {
                // The tail is a task planned earlier in this write, or one of an earlier sync.
                if let Some(tail) = new_tasks.iter_mut().rev().find(|x| {
                    x.connection_id == conn.id && x.object.object_type == ot && x.object.id == oid
                }) {
                    if !waiting_on.contains(&tail.id) {
                        tail.successors.push(successor());
                        waiting_on.push(tail.id.clone());
                    }
                    return Ok(());
                }
                if !stored_chain {
                    return Ok(());
                }
                if let Some(mut tail) = stored::chain_tail(&ctx.tx, &conn.id, ot, oid)? {
                    if !waiting_on.contains(&tail.id) {
                        tail.successors.push(successor());
                        stored::put_task(&mut ctx.tx, &tail)?;
                        waiting_on.push(tail.id);
                    }
                }
                Ok(())
            };
            wait_for(ctx, &mut new_tasks, t, &item.object.id, !created)?;
            for (_, rt, rid) in &references {
                wait_for(ctx, &mut new_tasks, *rt, rid, true)?;
            }
            if item.requires_previous {
                if let Some(p) = previous.and_then(|i| new_tasks.get(i)) {
                    requires.push(p.id.clone());
                    if !waiting_on.contains(&p.id) {
                        waiting_on.push(p.id.clone());
                    }
                }
            }
            let state = if waiting_on.is_empty() {
                TaskState::Pending { due_ms: ctx.now }
            } else {
                TaskState::Waiting
            };
            let task = TaskRec {
                id: tid.clone(),
                account_id: account.id.clone(),
                sync_id: sync_id.clone(),
                connection_id: conn.id.clone(),
                object: item.object.clone(),
                version: item.version,
                tracking_id: tracking_id.map(str::to_string),
                state,
                attempts: 0,
                last_error: None,
                error: None,
                budget_start: 0,
                waiting_on,
                requires,
                successors: Vec::new(),
                references,
                connector: conn.connector,
                reauthorized: false,
                token_serial: None,
                delete: plan.operation == "delete",
            };
            if task.waiting_on.is_empty() {
                stored::put_due(&mut ctx.tx, ctx.now, &task);
            }
            previous = Some(new_tasks.len());
            new_tasks.push(task);
            task_ids.push(tid);
        }
        targets.push(TargetRec {
            connection_id: conn.id.clone(),
            app: conn.app.clone(),
            app_type: conn.app_type.clone(),
            status: TargetStatus::Pending,
            attempts: 0,
            remote_id: None,
            last_error: None,
            error: None,
            updated_at: ctx.now_str.clone(),
            tasks: task_ids,
        });
    }
    for item in &plan.items {
        let o = &item.object;
        if new_tasks.iter().any(|x| &x.object == o) {
            if created {
                stored::chain_start(&mut ctx.tx, &o.id, &sync_id);
            } else {
                stored::chain_add(&mut ctx.tx, &o.id, &sync_id)?;
            }
        }
    }
    let apps: Vec<String> = targets.iter().map(|t| t.app.clone()).collect();
    let objects: Vec<ObjectRef> = plan
        .items
        .iter()
        .filter(|i| i.object.object_type == plan.route_type)
        .map(|i| i.object.clone())
        .collect();
    let status = SyncStatus::aggregate_of(targets.iter().map(|t| t.status));
    let mut sync = SyncRec {
        id: sync_id.clone(),
        account_id: account.id.clone(),
        status,
        request_id: ctx.request_id.clone(),
        tracking_id: tracking_id.map(str::to_string),
        operation: plan.operation.to_string(),
        object: objects.first().cloned().unwrap_or(ObjectRef {
            object_type: plan.route_type,
            id: String::new(),
        }),
        objects,
        label: plan.label,
        created_at: ctx.now_str.clone(),
        updated_at: ctx.now_str.clone(),
        targets,
        deliveries: Vec::new(),
    };
    for ti in failed_at_plan {
        emit_target_update(engine, ctx.now, &mut ctx.tx, &mut sync, ti)?;
    }
    if sync.status.is_final() {
        emit_sync_complete(engine, ctx.now, &mut ctx.tx, &mut sync)?;
    }
    stored::put_new(&mut ctx.tx, sync, new_tasks, ctx.now);
    Ok((sync_id, apps))
}

/// Run each selected provider connector's requirements on the objects it would receive.
/// Answers, per selected connection, the reason it is skipped (an implied target), or stops
/// the write with `422` when a target the client named explicitly lacks fields.
fn connector_checks(
    plan: &PushPlan,
    answer: &str,
    selected: &[&ConnectionRec],
    filter: &SourceFilter,
) -> H<Vec<Option<String>>> {
    let mut parsed: Vec<Option<Value>> = vec![None; plan.items.len()];
    let mut explicit_errors: Vec<FieldError> = Vec::new();
    let mut skipped = Vec::with_capacity(selected.len());
    for conn in selected {
        if conn.connector.is_generic() {
            skipped.push(None);
            continue;
        }
        let connector = conn.connector.connector();
        let mut errors: Vec<FieldError> = Vec::new();
        for (n, item) in plan.items.iter().enumerate() {
            let t = item.object.object_type;
            if t != plan.route_type && !conn.objects.contains(&t) {
                continue;
            }
            let Some(slot) = parsed.get_mut(n) else {
                continue;
            };
            let object = slot.get_or_insert_with(|| {
                serde_json::from_str(item.body.as_deref().unwrap_or(answer)).unwrap_or_default()
            });
            for mut e in connector.check(t, object, &conn.settings) {
                e.pointer = format!("{}{}", item.pointer, e.pointer);
                errors.push(e);
            }
        }
        if errors.is_empty() {
            skipped.push(None);
            continue;
        }
        let named = match filter {
            SourceFilter::Tokens(tokens) => tokens.iter().any(|x| {
                x.eq_ignore_ascii_case(&conn.app) || x.eq_ignore_ascii_case(&conn.app_type)
            }),
            SourceFilter::All => false,
        };
        if named {
            for e in errors {
                if !explicit_errors.contains(&e) {
                    explicit_errors.push(e);
                }
            }
            skipped.push(None);
        } else {
            let reasons: Vec<String> = errors
                .iter()
                .map(|e| {
                    if e.pointer.is_empty() {
                        e.message.clone()
                    } else {
                        format!("{} (at {})", e.message, e.pointer)
                    }
                })
                .collect();
            skipped.push(Some(format!("not pushed: {}", reasons.join("; "))));
        }
    }
    if !explicit_errors.is_empty() {
        return invalid(explicit_errors);
    }
    Ok(skipped)
}
