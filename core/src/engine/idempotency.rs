//! Idempotency: a repeat of a write with the same `Idempotency-Key` and the same request gets
//! the first answer again and changes nothing.

use super::command::{Reply, SyncStarted};
use super::state::Engine;
use super::vocab::{fail, Ctx, H};
use crate::http::ProblemKind;
use crate::json::Json;
use crate::records::*;
use crate::util::crypto::{ct_eq_str, sha256_hex};

/// Canonical fingerprint of a write for idempotency: what the write is addressed to (its
/// method and its path, given in pieces) and the body with object keys sorted (so that key
/// order does not matter).
pub(crate) fn fingerprint(method: &str, target: &[&str], body: &Json<'_>) -> String {
    let mut text = String::new();
    text.push_str(method);
    text.push(' ');
    for piece in target {
        text.push_str(piece);
    }
    text.push('\n');
    canonical(body, &mut text);
    sha256_hex(text.as_bytes())
}

/// Compact JSON with object members in key order (`JsonObject::iter` lists them so).
fn canonical(v: &Json<'_>, out: &mut String) {
    match v {
        Json::Object(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&json_string(k));
                out.push(':');
                canonical(v, out);
            }
            out.push('}');
        }
        Json::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(v, out);
            }
            out.push(']');
        }
        Json::String(s) => out.push_str(&json_string(s)),
        Json::Number(n) => out.push_str(&n.to_string()),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Null => out.push_str("null"),
    }
}

/// Idempotency check before a write: `409` while in flight, `422` for a different request,
/// the stored answer for a replay, or `None` to go on (the slot is then held).
pub(crate) fn check(
    engine: &mut Engine,
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
    key: &str,
    fp: &str,
) -> H<Option<Reply>> {
    let slot = format!("{}/{}", account.id, key);
    if engine.in_flight.contains(&slot) {
        return fail(
            ProblemKind::IdempotencyInFlight,
            "a request with this Idempotency-Key is still being processed",
        );
    }
    if let Some(rec) = ctx
        .tx
        .get_json::<IdemRec>(&keys::idempotency(&account.id, key))?
    {
        let fresh = ctx.now.saturating_sub(rec.created_ms)
            <= i64::try_from(engine.config.idempotency_retention_ms).unwrap_or(i64::MAX);
        if fresh {
            if !ct_eq_str(&rec.fingerprint, fp) {
                return fail(
                    ProblemKind::IdempotencyKeyReused,
                    "this Idempotency-Key was used with a different request",
                );
            }
            return Ok(Some(replay(rec)));
        }
    }
    engine.in_flight.insert(slot.clone());
    ctx.in_flight = Some(slot);
    Ok(None)
}

/// The stored first answer as a reply.
fn replay(rec: IdemRec) -> Reply {
    let mut reply = if rec.status == 204 {
        Reply::empty(204)
    } else {
        Reply::text(rec.status, rec.body)
    };
    let mut sync_id = None;
    let mut targets = Vec::new();
    for (k, v) in rec.headers {
        match k.as_str() {
            "ETag" => reply.etag = v.trim_matches('"').parse().ok(),
            "X-Sync-ID" => sync_id = Some(v),
            "X-Sync-Targets" => {
                targets = v
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect()
            }
            _ => {}
        }
    }
    reply.sync = sync_id.map(|id| SyncStarted { id, targets });
    reply.replayed = true;
    reply
}

/// Record the first answer of an idempotent write in the same unit of work. The record keeps
/// the answer's status, body and the headers a replay repeats (`Content-Type`, `ETag`,
/// `X-Sync-ID`, `X-Sync-Targets`), in that order.
pub(crate) fn store(ctx: &mut Ctx<'_>, account: &AccountRec, key: &str, fp: &str, r: &Reply) {
    let mut headers = Vec::with_capacity(4);
    if r.body.is_some() {
        headers.push(("Content-Type".to_string(), "application/json".to_string()));
    }
    if let Some(v) = r.etag {
        headers.push(("ETag".to_string(), format!("\"{v}\"")));
    }
    if let Some(s) = &r.sync {
        headers.push(("X-Sync-ID".to_string(), s.id.clone()));
        headers.push(("X-Sync-Targets".to_string(), s.targets.join(",")));
    }
    let rec = IdemRec {
        fingerprint: fp.to_string(),
        status: r.status,
        headers,
        body: r.body.clone().unwrap_or_default(),
        created_ms: ctx.now,
    };
    // A replaced (expired) record leaves its old retention entry behind; pruning checks the
    // record's own time before deleting.
    ctx.tx.put_json(keys::idempotency(&account.id, key), &rec);
    ctx.tx
        .put(keys::idempotency_expiry(ctx.now, &account.id, key), "\"\"");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_ignores_key_order() {
        let a = Json::parse(r#"{"a":1,"b":{"c":2,"d":[1,2]}}"#).unwrap();
        let b = Json::parse(r#"{"b":{"d":[1,2],"c":2},"a":1}"#).unwrap();
        let c = Json::parse(r#"{"b":{"d":[2,1],"c":2},"a":1}"#).unwrap();
        let f = |d| fingerprint("POST", &["/api/customers"], d);
        assert_eq!(f(&a), f(&b));
        assert_ne!(f(&a), f(&c));
    }

    #[test]
    fn fingerprint_is_the_hash_of_the_canonical_text() {
        let doc = Json::parse(r#"{"b":{"d":[1,2.5,"x\"y"],"c":null},"a":true,"a":false}"#).unwrap();
        let text = "POST /api/customers\n{\"a\":false,\"b\":{\"c\":null,\"d\":[1,2.5,\"x\\\"y\"]}}";
        assert_eq!(
            fingerprint("POST", &["/api/", "customers"], &doc),
            sha256_hex(text.as_bytes())
        );
    }

    #[test]
    fn a_replay_gives_back_the_stored_answer() {
        let rec = IdemRec {
            fingerprint: "f".into(),
            status: 201,
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("ETag".into(), "\"3\"".into()),
                ("X-Sync-ID".into(), "s1".into()),
                ("X-Sync-Targets".into(), "quickbooks,xero".into()),
            ],
            body: "{}".into(),
            created_ms: 0,
        };
        let r = replay(rec);
        assert_eq!((r.status, r.etag, r.replayed), (201, Some(3), true));
        let sync = r.sync.unwrap();
        assert_eq!(sync.id, "s1");
        assert_eq!(sync.targets, ["quickbooks", "xero"]);
        let empty = replay(IdemRec {
            fingerprint: "f".into(),
            status: 201,
            headers: vec![
                ("X-Sync-ID".into(), "s2".into()),
                ("X-Sync-Targets".into(), String::new()),
            ],
            body: "{}".into(),
            created_ms: 0,
        });
        assert!(empty.sync.unwrap().targets.is_empty());
    }
}
