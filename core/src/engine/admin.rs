//! The admin API: accounts, API keys, webhooks and their deliveries (connections are in
//! `connections.rs`).

use serde_json::{json, Value};

use super::auth::{SCOPE_READ, SCOPE_WRITE};
use super::command::{AdminOp, Body, Page, Reply};
use super::connections::create_connection;
use super::events::{manual_retry, queue_test};
use super::fields::{reject_unknown, require_object, url_field};
use super::state::Engine;
use super::views::{account_json, connection_json, delivery_json, webhook_json};
use super::vocab::{fail, field_error, invalid, Ctx, H};
use crate::cdm::{codes, FieldError};
use crate::http::ProblemKind;
use crate::records::*;
use crate::util::crypto::{
    base64_standard, sha256_hex, valid_signing_secret, SIGNING_SECRET_PREFIX,
};

/// Carry out an admin call (the admin token was checked).
pub(crate) fn execute(engine: &mut Engine, ctx: &mut Ctx<'_>, op: AdminOp<'_>) -> H<Reply> {
    match op {
        AdminOp::CreateAccount { body } => create_account(body, ctx, engine),
        AdminOp::GetAccount { account } => {
            let account = load_account(ctx, account)?;
            Ok(Reply::json(200, &account_json(&account)))
        }
        AdminOp::UpdateAccount { account, body } => {
            let account = load_account(ctx, account)?;
            patch_account(body, ctx, account)
        }
        AdminOp::CreateApiKey { account, body } => {
            let account = load_account(ctx, account)?;
            create_api_key(engine, body, ctx, &account)
        }
        AdminOp::DeleteApiKey { account, key } => {
            let account = load_account(ctx, account)?;
            let k = keys::api_key(key);
            match ctx.tx.get_json::<ApiKeyRec>(&k)? {
                Some(rec) if rec.account_id == account.id => {
                    ctx.tx.delete(k);
                    Ok(Reply::empty(204))
                }
                _ => fail(ProblemKind::NotFound, "no such API key in this account"),
            }
        }
        AdminOp::CreateConnection { account, body } => {
            let account = load_account(ctx, account)?;
            create_connection(engine, body, ctx, &account)
        }
        AdminOp::ListConnections { account } => {
            let account = load_account(ctx, account)?;
            let list: Vec<ConnectionRec> =
                ctx.tx
                    .scan_json(&keys::connections(&account.id), 0, usize::MAX)?;
            Ok(Reply::json(
                200,
                &Value::Array(list.iter().map(connection_json).collect()),
            ))
        }
        AdminOp::GetConnection {
            account,
            connection,
        } => {
            let account = load_account(ctx, account)?;
            let conn = load_connection(ctx, &account, connection)?;
            Ok(Reply::json(200, &connection_json(&conn)))
        }
        AdminOp::DeleteConnection {
            account,
            connection,
        } => {
            let account = load_account(ctx, account)?;
            let conn = load_connection(ctx, &account, connection)?;
            ctx.tx.delete(keys::connection(&account.id, connection));
            // The host's access token for it goes too.
            if !conn.connector.is_generic() {
                ctx.tx.delete(keys::token(&conn.id));
            }
            Ok(Reply::empty(204))
        }
        AdminOp::CreateWebhook { account, body } => {
            let account = load_account(ctx, account)?;
            create_webhook(engine, body, ctx, &account)
        }
        AdminOp::ListWebhooks { account } => {
            let account = load_account(ctx, account)?;
            let list: Vec<WebhookRec> =
                ctx.tx
                    .scan_json(&keys::webhooks(&account.id), 0, usize::MAX)?;
            Ok(Reply::json(
                200,
                &Value::Array(list.iter().map(webhook_json).collect()),
            ))
        }
        AdminOp::GetWebhook { account, webhook } => {
            let account = load_account(ctx, account)?;
            let hook = load_webhook(ctx, &account, webhook)?;
            Ok(Reply::json(200, &webhook_json(&hook)))
        }
        AdminOp::UpdateWebhook {
            account,
            webhook,
            body,
        } => {
            let account = load_account(ctx, account)?;
            let hook = load_webhook(ctx, &account, webhook)?;
            patch_webhook(engine, body, ctx, &account, hook)
        }
        AdminOp::RotateWebhookSecret {
            account,
            webhook,
            body,
        } => {
            let account = load_account(ctx, account)?;
            let mut hook = load_webhook(ctx, &account, webhook)?;
            body.optional_value()?;
            let secret = format!(
                "{SIGNING_SECRET_PREFIX}{}",
                base64_standard(&engine.random_bytes::<24>())
            );
            // A rotation during an overlap starts a new one from the current secret: the
            // older one is dropped.
            hook.previous_secret = hook.signing_secret.take().map(|old| RetiredSecret {
                secret: old,
                until_ms: ctx.now.saturating_add(SECRET_OVERLAP_MS),
            });
            hook.signing_secret = Some(secret.clone());
            ctx.tx.put_json(keys::webhook(&account.id, &hook.id), &hook);
            Ok(Reply::json(200, &json!({ "signingSecret": secret })))
        }
        AdminOp::TestWebhook {
            account,
            webhook,
            body,
        } => {
            let account = load_account(ctx, account)?;
            let hook = load_webhook(ctx, &account, webhook)?;
            body.optional_value()?;
            refuse_disabled(&hook)?;
            let d = queue_test(engine, ctx, &account, &hook);
            Ok(Reply::json(202, &json!({ "deliveryId": d.id })))
        }
        AdminOp::DeleteWebhook { account, webhook } => {
            let account = load_account(ctx, account)?;
            load_webhook(ctx, &account, webhook)?;
            ctx.tx.delete(keys::webhook(&account.id, webhook));
            Ok(Reply::empty(204))
        }
        AdminOp::ListDeliveries {
            account,
            webhook,
            page,
            status,
            sync_id,
        } => {
            let account = load_account(ctx, account)?;
            load_webhook(ctx, &account, webhook)?;
            let keep = |d: &DeliveryRec| {
                status.is_none_or(|s| d.state.status() == s)
                    && sync_id.is_none_or(|s| d.sync_id.as_deref() == Some(s))
            };
            let filtered = status.is_some() || sync_id.is_some();
            list_deliveries(ctx, &account, webhook, page, filtered.then_some(&keep))
        }
        AdminOp::RetryDelivery {
            account,
            webhook,
            delivery,
            body,
        } => {
            let account = load_account(ctx, account)?;
            let hook = load_webhook(ctx, &account, webhook)?;
            body.optional_value()?;
            refuse_disabled(&hook)?;
            let d = match ctx.tx.get_json::<DeliveryRec>(&keys::delivery(delivery))? {
                Some(d) if d.account_id == account.id && d.webhook_id == webhook => d,
                _ => return fail(ProblemKind::NotFound, "no such delivery"),
            };
            let d = manual_retry(ctx, d)?;
            Ok(Reply::json(202, &delivery_json(&d)))
        }
    }
}

/// A webhook's deliveries, newest first (the index is ordered that way): the whole list, or
/// one page; with a filter, the page is taken from the deliveries it keeps.
fn list_deliveries(
    ctx: &Ctx<'_>,
    account: &AccountRec,
    webhook: &str,
    page: Option<Page>,
    filter: Option<&dyn Fn(&DeliveryRec) -> bool>,
) -> H<Reply> {
    let (offset, size) = match page {
        Some(p) => (p.offset(), p.size),
        None => (0, usize::MAX),
    };
    let prefix = keys::webhook_deliveries(&account.id, webhook);
    let index = match filter {
        Some(_) => ctx.tx.scan(&prefix, 0, usize::MAX)?,
        None => ctx.tx.scan(&prefix, offset, size)?,
    };
    let mut out = Vec::new();
    for (_, v) in &index {
        let did: String = serde_json::from_str(v).unwrap_or_default();
        if let Some(d) = ctx.tx.get_json::<DeliveryRec>(&keys::delivery(&did))? {
            if filter.is_none_or(|f| f(&d)) {
                out.push(delivery_json(&d));
            }
        }
    }
    if filter.is_some() {
        out = out.into_iter().skip(offset).take(size).collect();
    }
    Ok(Reply::json(200, &Value::Array(out)))
}

/// How long a rotated-out signing secret keeps signing beside the new one.
pub(crate) const SECRET_OVERLAP_MS: i64 = 24 * 60 * 60 * 1000;

/// A disabled subscription is sent nothing until a `PATCH` enables it again.
fn refuse_disabled(hook: &WebhookRec) -> H<()> {
    match &hook.disabled_reason {
        Some(why) => fail(
            ProblemKind::Conflict,
            format!("the webhook is disabled ({why}); PATCH it with enabled: true first"),
        ),
        None => Ok(()),
    }
}

/// An account by id (`404` when there is none).
pub(crate) fn load_account(ctx: &Ctx<'_>, aid: &str) -> H<AccountRec> {
    match ctx.tx.get_json::<AccountRec>(&keys::account(aid))? {
        Some(a) => Ok(a),
        None => fail(ProblemKind::NotFound, "no such account"),
    }
}

pub(crate) fn load_webhook(ctx: &Ctx<'_>, account: &AccountRec, wid: &str) -> H<WebhookRec> {
    match ctx
        .tx
        .get_json::<WebhookRec>(&keys::webhook(&account.id, wid))?
    {
        Some(w) => Ok(w),
        None => fail(ProblemKind::NotFound, "no such webhook in this account"),
    }
}

/// A connection of an account (`404` when there is none).
pub(crate) fn load_connection(ctx: &Ctx<'_>, account: &AccountRec, cid: &str) -> H<ConnectionRec> {
    match ctx
        .tx
        .get_json::<ConnectionRec>(&keys::connection(&account.id, cid))?
    {
        Some(c) => Ok(c),
        None => fail(ProblemKind::NotFound, "no such connection in this account"),
    }
}

fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn create_account(body: Body<'_>, ctx: &mut Ctx<'_>, engine: &mut Engine) -> H<Reply> {
    let body = body.value()?;
    let obj = require_object(&body)?;
    let mut errors = Vec::new();
    reject_unknown(&body, &["domain", "writeEnabled"], &mut errors);
    let domain = match obj.get("domain") {
        Some(Value::String(s)) => {
            let d = s.trim().to_ascii_lowercase();
            if !valid_domain(&d) {
                errors.push(field_error(
                    "/domain",
                    codes::INVALID_FORMAT,
                    "domain must be a host name like acme.example.com",
                ));
            }
            d
        }
        None | Some(Value::Null) => {
            errors.push(field_error(
                "/domain",
                codes::REQUIRED,
                "domain is required",
            ));
            String::new()
        }
        Some(_) => {
            errors.push(field_error(
                "/domain",
                codes::INVALID_TYPE,
                "domain must be a string",
            ));
            String::new()
        }
    };
    let write_enabled = match obj.get("writeEnabled") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(field_error(
                "/writeEnabled",
                codes::INVALID_TYPE,
                "writeEnabled must be a boolean",
            ));
            false
        }
    };
    if !errors.is_empty() {
        return invalid(errors);
    }
    let dk = keys::account_domain(&domain);
    if ctx.tx.get(&dk)?.is_some() {
        return fail(
            ProblemKind::Conflict,
            format!("an account with domain {domain} exists"),
        );
    }
    let id = engine.new_id(ctx.now);
    let rec = AccountRec {
        id: id.clone(),
        domain,
        write_enabled,
        created_at: ctx.now_str.clone(),
    };
    ctx.tx
        .put(dk, crate::json::to_text(&id, 40).unwrap_or_default());
    ctx.tx.put_json(keys::account(&id), &rec);
    Ok(Reply::json(201, &account_json(&rec)))
}

fn patch_account(body: Body<'_>, ctx: &mut Ctx<'_>, mut account: AccountRec) -> H<Reply> {
    let body = body.value()?;
    let obj = require_object(&body)?;
    let mut errors = Vec::new();
    reject_unknown(
        &body,
        &["writeEnabled", "id", "domain", "createdAt"],
        &mut errors,
    );
    match obj.get("writeEnabled") {
        Some(Value::Bool(b)) => account.write_enabled = *b,
        None | Some(Value::Null) => errors.push(field_error(
            "/writeEnabled",
            codes::REQUIRED,
            "writeEnabled is required",
        )),
        Some(_) => errors.push(field_error(
            "/writeEnabled",
            codes::INVALID_TYPE,
            "writeEnabled must be a boolean",
        )),
    }
    if let Some(d) = obj.get("domain") {
        if d.as_str().map(|s| s.trim().to_ascii_lowercase()) != Some(account.domain.clone()) {
            errors.push(field_error(
                "/domain",
                codes::INVALID_VALUE,
                "the domain of an account cannot be changed",
            ));
        }
    }
    if !errors.is_empty() {
        return invalid(errors);
    }
    ctx.tx.put_json(keys::account(&account.id), &account);
    Ok(Reply::json(200, &account_json(&account)))
}

fn create_api_key(
    engine: &mut Engine,
    body: Body<'_>,
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
) -> H<Reply> {
    let body = body.value()?;
    let obj = require_object(&body)?;
    let mut errors = Vec::new();
    reject_unknown(&body, &["scopes", "name"], &mut errors);
    let mut scopes = Vec::new();
    match obj.get("scopes") {
        Some(Value::Array(list)) => {
            if list.is_empty() {
                errors.push(field_error(
                    "/scopes",
                    codes::TOO_FEW,
                    "at least one scope is required",
                ));
            }
            for (i, s) in list.iter().enumerate() {
                match s.as_str() {
                    Some(s @ (SCOPE_READ | SCOPE_WRITE)) => {
                        if !scopes.iter().any(|x: &String| x == s) {
                            scopes.push(s.to_string());
                        }
                    }
                    _ => errors.push(field_error(
                        &format!("/scopes/{i}"),
                        codes::INVALID_VALUE,
                        "a scope is api.read or api.write",
                    )),
                }
            }
        }
        None | Some(Value::Null) => errors.push(field_error(
            "/scopes",
            codes::REQUIRED,
            "scopes is required",
        )),
        Some(_) => errors.push(field_error(
            "/scopes",
            codes::INVALID_TYPE,
            "scopes must be an array",
        )),
    }
    let name = match obj.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= 200 => Some(s.clone()),
        Some(Value::String(_)) => {
            errors.push(field_error(
                "/name",
                codes::TOO_LONG,
                "name is at most 200 characters",
            ));
            None
        }
        Some(_) => {
            errors.push(field_error(
                "/name",
                codes::INVALID_TYPE,
                "name must be a string",
            ));
            None
        }
    };
    if !errors.is_empty() {
        return invalid(errors);
    }
    let key = format!("wsk_{}", hex(&engine.random_bytes::<12>()));
    let secret = format!("wss_{}", hex(&engine.random_bytes::<24>()));
    let rec = ApiKeyRec {
        key: key.clone(),
        account_id: account.id.clone(),
        secret_sha256: sha256_hex(secret.as_bytes()),
        scopes: scopes.clone(),
        name: name.clone(),
        created_at: ctx.now_str.clone(),
    };
    ctx.tx.put_json(keys::api_key(&key), &rec);
    let mut out = json!({"key": key, "secret": secret, "scopes": scopes, "accountId": account.id, "createdAt": ctx.now_str});
    if let (Some(n), Some(o)) = (name, out.as_object_mut()) {
        o.insert("name".into(), Value::String(n));
    }
    Ok(Reply::json(201, &out))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The webhook event names.
pub(crate) const EVENTS: [&str; 2] = ["api_push_update", "api_push_complete"];

fn create_webhook(
    engine: &mut Engine,
    body: Body<'_>,
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
) -> H<Reply> {
    let body = body.value()?;
    let obj = require_object(&body)?;
    let mut errors = Vec::new();
    reject_unknown(
        &body,
        &["url", "events", "username", "password", "signingSecret"],
        &mut errors,
    );
    let url = url_field(obj, "url", engine, &mut errors);
    let events = events_field(obj, &mut errors);
    let mut text = |name: &str| text_field(obj, name, &mut errors);
    let username = text("username");
    let password = text("password");
    let signing_secret = text("signingSecret");
    check_basic_auth(&username, &password, &mut errors);
    if let Some(s) = &signing_secret {
        if !valid_signing_secret(s) {
            errors.push(field_error(
                "/signingSecret",
                codes::INVALID_FORMAT,
                "signingSecret is whsec_ followed by the base64 of the key",
            ));
        }
    }
    if !errors.is_empty() {
        return invalid(errors);
    }
    let id = engine.new_id(ctx.now);
    let rec = WebhookRec {
        id: id.clone(),
        url,
        events,
        username,
        password,
        signing_secret,
        created_at: ctx.now_str.clone(),
        previous_secret: None,
        disabled_reason: None,
        consecutive_failures: 0,
    };
    ctx.tx.put_json(keys::webhook(&account.id, &id), &rec);
    Ok(Reply::json(201, &webhook_json(&rec)))
}

/// `events`: a non-empty array of event names or `*` (duplicates dropped).
fn events_field(obj: &serde_json::Map<String, Value>, errors: &mut Vec<FieldError>) -> Vec<String> {
    let mut events = Vec::new();
    match obj.get("events") {
        Some(Value::Array(list)) if !list.is_empty() => {
            for (i, v) in list.iter().enumerate() {
                match v.as_str() {
                    Some(e) if e == "*" || EVENTS.contains(&e) => {
                        if !events.iter().any(|x: &String| x == e) {
                            events.push(e.to_string())
                        }
                    }
                    _ => errors.push(field_error(
                        &format!("/events/{i}"),
                        codes::INVALID_VALUE,
                        "an event is api_push_update, api_push_complete or *",
                    )),
                }
            }
        }
        Some(Value::Array(_)) => errors.push(field_error(
            "/events",
            codes::TOO_FEW,
            "at least one event is required",
        )),
        None | Some(Value::Null) => errors.push(field_error(
            "/events",
            codes::REQUIRED,
            "events is required",
        )),
        Some(_) => errors.push(field_error(
            "/events",
            codes::INVALID_TYPE,
            "events must be an array",
        )),
    }
    events
}

/// An optional string of at most 256 bytes without control characters.
fn text_field(
    obj: &serde_json::Map<String, Value>,
    name: &str,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    const MAX: usize = 256;
    match obj.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() <= MAX && !s.chars().any(char::is_control) => {
            Some(s.clone())
        }
        Some(Value::String(_)) => {
            errors.push(field_error(
                &format!("/{name}"),
                codes::INVALID_FORMAT,
                format!("{name} is at most {MAX} bytes without control characters"),
            ));
            None
        }
        Some(_) => {
            errors.push(field_error(
                &format!("/{name}"),
                codes::INVALID_TYPE,
                format!("{name} must be a string"),
            ));
            None
        }
    }
}

/// The Basic auth pair a subscription ends up with.
fn check_basic_auth(
    username: &Option<String>,
    password: &Option<String>,
    errors: &mut Vec<FieldError>,
) {
    if username.as_deref().is_some_and(|u| u.contains(':')) {
        errors.push(field_error(
            "/username",
            codes::INVALID_FORMAT,
            "a Basic auth user name cannot contain ':'",
        ));
    }
    if password.is_some() && username.is_none() {
        errors.push(field_error(
            "/username",
            codes::REQUIRED,
            "a password needs a username",
        ));
    }
}

/// `PATCH` of a subscription: only the members sent change, each checked as on creation;
/// `null` removes `username` (and with it the password) or `password`. Nothing is stored
/// unless every member is valid.
fn patch_webhook(
    engine: &Engine,
    body: Body<'_>,
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
    mut hook: WebhookRec,
) -> H<Reply> {
    let body = body.value()?;
    let obj = require_object(&body)?;
    let mut errors = Vec::new();
    reject_unknown(
        &body,
        &["url", "events", "username", "password", "enabled"],
        &mut errors,
    );
    if obj.contains_key("url") {
        hook.url = url_field(obj, "url", engine, &mut errors);
    }
    if obj.contains_key("events") {
        hook.events = events_field(obj, &mut errors);
    }
    if obj.contains_key("username") {
        hook.username = text_field(obj, "username", &mut errors);
        if hook.username.is_none() && !obj.contains_key("password") {
            hook.password = None;
        }
    }
    if obj.contains_key("password") {
        hook.password = text_field(obj, "password", &mut errors);
    }
    check_basic_auth(&hook.username, &hook.password, &mut errors);
    match obj.get("enabled") {
        None => {}
        Some(Value::Bool(true)) => {
            hook.disabled_reason = None;
            hook.consecutive_failures = 0;
        }
        Some(Value::Bool(false)) => {
            let why = hook.disabled_reason.take();
            hook.disabled_reason = why.or_else(|| Some("disabled through the admin API".into()));
        }
        Some(_) => errors.push(field_error(
            "/enabled",
            codes::INVALID_TYPE,
            "enabled must be a boolean",
        )),
    }
    if !errors.is_empty() {
        return invalid(errors);
    }
    ctx.tx.put_json(keys::webhook(&account.id, &hook.id), &hook);
    Ok(Reply::json(200, &webhook_json(&hook)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        assert!(valid_domain("acme.example.com"));
        assert!(valid_domain("localhost"));
        assert!(!valid_domain("-bad.com"));
        assert!(!valid_domain("a..b"));
        assert!(!valid_domain("sp ace.com"));
    }
}
