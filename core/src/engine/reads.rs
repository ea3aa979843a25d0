//! The data API's reads: stored objects, lists of them, syncs.

use serde_json::Value;

use super::command::{DataOp, Reply};
use super::stored;
use super::views::sync_json;
use super::vocab::{fail, Ctx, H};
use crate::cdm::ObjectType;
use crate::http::ProblemKind;
use crate::records::*;

/// Carry out a read (the caller may read).
pub(crate) fn execute(ctx: &Ctx<'_>, account: &AccountRec, op: &DataOp<'_>) -> H<Reply> {
    match *op {
        DataOp::GetSync { id } => match stored::get_sync(&ctx.tx, id)? {
            Some(s) if s.account_id == account.id => Ok(Reply::json(200, &sync_json(&s))),
            _ => fail(ProblemKind::NotFound, "no such sync"),
        },
        DataOp::List { object, page } => {
            let rows = ctx.tx.scan(
                &keys::objects(&account.id, object),
                page.offset(),
                page.size,
            )?;
            let mut out =
                String::with_capacity(rows.iter().map(|(_, v)| v.len() + 1).sum::<usize>() + 2);
            out.push('[');
            for (i, (_, v)) in rows.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(v);
            }
            out.push(']');
            Ok(Reply::text(200, out))
        }
        DataOp::Get { object, id } => {
            let v = load_object(ctx, account, object, id)?;
            let version = v.get("version").and_then(Value::as_u64).unwrap_or(0);
            let mut reply = Reply::json(200, &v);
            reply.etag = Some(version);
            Ok(reply)
        }
        _ => fail(ProblemKind::NotFound, "no such route"),
    }
}

/// A stored object as JSON (`404` when there is none).
pub(crate) fn load_object(
    ctx: &Ctx<'_>,
    account: &AccountRec,
    t: ObjectType,
    id: &str,
) -> H<Value> {
    if !id.contains('/') {
        if let Some(v) = ctx
            .tx
            .get_json::<Value>(&keys::object(&account.id, t, id))?
        {
            return Ok(v);
        }
    }
    fail(
        ProblemKind::NotFound,
        format!("no {} with id {id}", t.as_str()),
    )
}
