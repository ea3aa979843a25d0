//! `DELETE` of a customer, vendor or account (contract section 7): the refusals (`404`,
//! `412`, `409` naming a referrer from the reverse reference index), the release of its
//! uniqueness entries and of its index entries, and the push plan of the deletion.

use serde_json::Value;

use super::command::IfMatch;
use super::plan::{ConnectorRefs, PushItem, PushPlan};
use super::stored;
use super::vocab::{fail, Ctx, H};
use super::writes::{label, Written, UNIQ_ACCOUNT_CODE};
use crate::cdm::ObjectType;
use crate::http::ProblemKind;
use crate::records::*;
use crate::CoreError;

/// Delete a customer, vendor or account: `404` when unknown, `412` on a stale `If-Match`,
/// `409` while another object refers to it. Its uniqueness entries go at once; what its
/// pushes still need is handled by [`stored::after_delete`] once its push is planned.
/// Answers the stored text and version (for the push plan).
pub(crate) fn delete(
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
    t: ObjectType,
    id: &str,
    if_match: Option<IfMatch>,
) -> H<(Written, String, u64)> {
    let key = keys::object(&account.id, t, id);
    let text = match ctx.tx.get(&key)? {
        Some(text) if !id.contains('/') => text,
        _ => {
            return fail(
                ProblemKind::NotFound,
                format!("no {} with id {id}", t.as_str()),
            )
        }
    };
    let stored: Value = serde_json::from_str(&text).map_err(|e| CoreError::CorruptRow {
        key: key.clone(),
        reason: e.to_string(),
    })?;
    let version = stored.get("version").and_then(Value::as_u64).unwrap_or(0);
    if let Some(IfMatch::Version(v)) = if_match {
        if v != version {
            return fail(
                ProblemKind::PreconditionFailed,
                format!("If-Match names version {v}; the stored version is {version}"),
            );
        }
    }
    if let Some((rt, rid, pointer)) = stored::first_referrer(&ctx.tx, t, id)? {
        return fail(
            ProblemKind::Conflict,
            format!(
                "{} {id} is referred to by {} {rid} (at {pointer}); it cannot be deleted",
                t.as_str(),
                rt.as_str()
            ),
        );
    }
    let field = |f: &str| stored.get(f).and_then(Value::as_str).unwrap_or(id);
    let name = match t {
        ObjectType::Account => {
            let code = field("code");
            let uniq = keys::unique(&account.id, UNIQ_ACCOUNT_CODE, code);
            if stored::get_id(&ctx.tx, uniq.clone())?.as_deref() == Some(id) {
                ctx.tx.delete(uniq);
            }
            code
        }
        ObjectType::Customer | ObjectType::Vendor => field("name"),
        _ => {
            return fail(
                ProblemKind::MethodNotAllowed,
                "this object cannot be deleted",
            )
        }
    };
    let push = PushPlan {
        route_type: t,
        operation: "delete",
        // Webhook messages read "deletion of customer Acme Ltd pushed to quickbooks".
        label: format!("deletion of {}", label(t, name)),
        items: vec![PushItem {
            object: ObjectRef {
                object_type: t,
                id: id.to_string(),
            },
            // Read as JSON above.
            body: Some(text.clone()),
            version,
            references: vec![],
            requires_previous: false,
            connector_references: ConnectorRefs::None,
            pointer: String::new(),
        }],
    };
    stored::set_references(&mut ctx.tx, t, id, Some(&text), stored::Refs::new());
    ctx.tx.delete(key);
    Ok((
        Written {
            status: 204,
            body: String::new(),
            etag: None,
            push,
        },
        text,
        version,
    ))
}
