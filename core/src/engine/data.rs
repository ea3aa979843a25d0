//! The data API: a [`DataOp`] of an authenticated caller, carried out. Reads go to
//! `reads.rs`; a write is checked (scope, write mode, options, body), its idempotency slot
//! taken, then written (`writes.rs`) and, with push, planned (`plan.rs`).

use super::auth::{authorize, Principal};
use super::command::{Body, DataOp, Problem, Reply, SyncStarted, UpdateMode, WriteOptions};
use super::deletes;
use super::idempotency;
use super::plan::{connections_and_filter, plan_sync};
use super::reads;
use super::retry::retry_sync;
use super::state::Engine;
use super::stored;
use super::vocab::{fail, Ctx, H};
use super::writes::{create, create_payment, update};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::cdm::ObjectType;
use crate::http::{is_visible_ascii, ProblemKind};
use crate::json::Json;
use crate::records::{AccountRec, ConnectionRec};
use crate::routing::SourceFilter;
use crate::validate::strip_server_fields;

/// Longest `X-Tracking-ID`.
pub(crate) const MAX_TRACKING_ID: usize = 128;
/// Longest `Idempotency-Key`.
pub(crate) const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The refusal of a tracking id that is not 1 to 128 visible ASCII characters.
pub(crate) fn bad_tracking_id<T>() -> H<T> {
    fail(
        ProblemKind::InvalidHeader,
        "X-Tracking-ID must be 1 to 128 visible ASCII characters",
    )
}

/// The refusal of an idempotency key that is not 1 to 255 visible ASCII characters.
pub(crate) fn bad_idempotency_key<T>() -> H<T> {
    fail(
        ProblemKind::InvalidHeader,
        "Idempotency-Key must be 1 to 255 visible ASCII characters",
    )
}

/// Check the options of a write the way the contract checks their headers.
fn check_options(options: &WriteOptions<'_>) -> H<()> {
    if options
        .tracking_id
        .is_some_and(|t| !is_visible_ascii(t, MAX_TRACKING_ID))
    {
        return bad_tracking_id();
    }
    if options
        .idempotency_key
        .is_some_and(|k| !is_visible_ascii(k, MAX_IDEMPOTENCY_KEY))
    {
        return bad_idempotency_key();
    }
    Ok(())
}

/// A sync retry, answered again from its idempotency record when its key was used before.
fn retry(
    engine: &mut Engine,
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
    op: &DataOp<'_>,
    id: &str,
    body: Body<'_>,
    key: Option<&str>,
) -> H<Reply> {
    let Some(k) = key else {
        return retry_sync(ctx, account, id, body);
    };
    if !is_visible_ascii(k, MAX_IDEMPOTENCY_KEY) {
        return bad_idempotency_key();
    }
    let text = match body {
        Body::None => "null",
        b => b.text()?,
    };
    let doc =
        Json::parse(text).map_err(|e| Problem::new(ProblemKind::MalformedJson, e.to_string()))?;
    let (method, target) = op.canonical_request_line();
    let fp = idempotency::fingerprint(method, &target, &doc);
    if let Some(replay) = idempotency::check(engine, ctx, account, k, &fp)? {
        return Ok(replay);
    }
    let reply = retry_sync(ctx, account, id, body)?;
    idempotency::store(ctx, account, k, &fp, &reply);
    Ok(reply)
}

/// Carry out a data API call of an authenticated caller.
pub(crate) fn execute(
    engine: &mut Engine,
    ctx: &mut Ctx<'_>,
    principal: &Principal,
    op: DataOp<'_>,
) -> H<Reply> {
    authorize(principal, op.is_write())?;
    let account = &*principal.account;
    let (body, options) = match &op {
        DataOp::Create { body, options, .. }
        | DataOp::Update { body, options, .. }
        | DataOp::Pay { body, options, .. } => (Some(*body), options),
        // A delete reads no body; its idempotency fingerprint is the request line.
        DataOp::Delete { options, .. } => (None, options),
        DataOp::RetrySync {
            id,
            body,
            idempotency_key,
        } => return retry(engine, ctx, account, &op, id, *body, *idempotency_key),
        DataOp::Meta { object, sources } => {
            return reads::meta(engine, ctx, account, *object, *sources)
        }
        _ => return reads::execute(ctx, account, &op, engine.config.sync_retention_ms),
    };
    check_options(options)?;
    let doc = match body {
        Some(b) => b.document()?,
        None => Json::Null,
    };
    // Connections are read only when the write pushes or names sources to check.
    let (connections, filter) = if options.push || options.sources.is_some() {
        connections_and_filter(engine, ctx, account, options.sources)?
    } else {
        (Vec::new(), SourceFilter::All)
    };
    if options.dry_run {
        // Every check of the real write runs, against the same reads; what it would store is
        // dropped, and the generator and id clock are put back, so that the next real write
        // draws exactly the ids it would have drawn without the dry run.
        let checkpoint = ctx.tx.checkpoint();
        let tried = engine.tentatively(|engine| {
            let r = write(
                engine,
                ctx,
                account,
                &op,
                &doc,
                options,
                &connections,
                &filter,
            );
            (r, false)
        });
        ctx.tx.restore(checkpoint);
        return dry_run_answer(&tried?);
    }
    let idem = match options.idempotency_key {
        Some(k) => {
            let fp = match options.idempotency_scope {
                Some(line) => idempotency::fingerprint(line.method, &[line.target], &doc),
                None => {
                    let (method, target) = op.canonical_request_line();
                    idempotency::fingerprint(method, &target, &doc)
                }
            };
            if let Some(replay) = idempotency::check(engine, ctx, account, k, &fp)? {
                return Ok(replay);
            }
            Some((k, fp))
        }
        None => None,
    };
    let reply = write(
        engine,
        ctx,
        account,
        &op,
        &doc,
        options,
        &connections,
        &filter,
    )?;
    if let Some((k, fp)) = idem {
        idempotency::store(ctx, account, k, &fp, &reply);
    }
    Ok(reply)
}

/// The answer of a dry run: `200 {valid, object, targets}`, the object (or each object of a
/// preload) as it would be stored, without what only storing gives it.
fn dry_run_answer(reply: &Reply) -> H<Reply> {
    let mut object: Value = match reply.body.as_deref().map(serde_json::from_str) {
        Some(Ok(v)) => v,
        _ => Value::Null,
    };
    match &mut object {
        Value::Array(items) => items.iter_mut().for_each(strip_server_fields),
        one => strip_server_fields(one),
    }
    let targets = reply.sync.as_ref().map_or(&[][..], |s| &s.targets[..]);
    Ok(Reply::json(
        200,
        &json!({"valid": true, "object": object, "targets": targets}),
    ))
}

/// The write itself and, with push, its sync: everything but the idempotency record.
#[allow(clippy::too_many_arguments)]
fn write(
    engine: &mut Engine,
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
    op: &DataOp<'_>,
    doc: &Json<'_>,
    options: &WriteOptions<'_>,
    connections: &[Arc<ConnectionRec>],
    filter: &SourceFilter,
) -> H<Reply> {
    let written = match op {
        DataOp::Pay { invoice, .. } => create_payment(engine, ctx, account, invoice, doc)?,
        DataOp::Create { object, .. } => {
            if matches!(object, ObjectType::Payment) {
                return fail(
                    ProblemKind::MethodNotAllowed,
                    "a payment is created by paying an invoice",
                );
            }
            create(engine, ctx, account, *object, doc)?
        }
        DataOp::Delete {
            object,
            id,
            options,
        } => {
            return delete(
                engine,
                ctx,
                account,
                *object,
                id,
                options,
                connections,
                filter,
            )
        }
        DataOp::Update {
            object,
            id,
            options,
            ..
        } => {
            let Some(mode) = object.update_mode() else {
                return fail(
                    ProblemKind::MethodNotAllowed,
                    "payments and bank transactions cannot be changed",
                );
            };
            update(
                engine,
                ctx,
                account,
                *object,
                id,
                &doc.to_value(),
                options.if_match,
                mode == UpdateMode::MergePatch,
            )?
        }
        _ => return fail(ProblemKind::NotFound, "no such route"),
    };
    let sync = if options.push {
        let (id, targets) = plan_sync(
            engine,
            ctx,
            account,
            options.tracking_id,
            written.push,
            &written.body,
            connections,
            filter,
        )?;
        Some(SyncStarted { id, targets })
    } else {
        None
    };
    let mut reply = Reply::text(written.status, written.body);
    reply.etag = written.etag;
    reply.sync = sync;
    Ok(reply)
}

/// `DELETE /api/{customers,vendors,accounts}/{id}`: the object goes at once; with push, its
/// deletion goes to the connections that hold a remote id for it (the others are no targets).
#[allow(clippy::too_many_arguments)]
fn delete(
    engine: &mut Engine,
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
    t: ObjectType,
    id: &str,
    options: &WriteOptions<'_>,
    connections: &[Arc<ConnectionRec>],
    filter: &SourceFilter,
) -> H<Reply> {
    let (written, text, version) = deletes::delete(ctx, account, t, id, options.if_match)?;
    let mut reply = Reply::empty(204);
    if options.push {
        let holders = stored::remote_connections(&ctx.tx, t, id)?;
        let targets: Vec<Arc<ConnectionRec>> = connections
            .iter()
            .filter(|c| holders.contains(&c.id))
            .cloned()
            .collect();
        let (sync, apps) = plan_sync(
            engine,
            ctx,
            account,
            options.tracking_id,
            written.push,
            // A deletion's push item carries the deleted text itself.
            "",
            &targets,
            filter,
        )?;
        reply.sync = Some(SyncStarted {
            id: sync,
            targets: apps,
        });
    }
    stored::after_delete(&mut ctx.tx, t, id, version, text)?;
    Ok(reply)
}
