//! The HTTP contract as a pure function: authentication, routing, headers, idempotency and
//! the admin API. CDM writes and reads are in `writes.rs`.

use std::sync::Arc;

use serde_json::{json, Value};

use super::tx::Tx;
use super::writes;
use super::{Engine, Step};
use crate::cdm::{codes, FieldCode, FieldError, ObjectType};
use crate::connectors::ConnectorKind;
use crate::http::{
    first_segment, is_json_content_type, is_visible_ascii, problem, split_path, validation_problem,
    ApiRequest, ApiResponse, ProblemKind,
};
use crate::json::Json;
use crate::records::*;
use crate::routing::{default_objects, parse_sync_sources, valid_app_key, valid_app_type};
use crate::store::KvRead;
use crate::util::crypto::{
    ct_eq_str, parse_basic_auth, parse_bearer, sha256_hex, valid_signing_secret, verify_secret,
};
use crate::util::time::rfc3339_millis;
use crate::CoreError;

/// The OpenAPI document served at `GET /openapi.json` (feature `openapi`; builds without it
/// serve what the host gives [`Engine::set_openapi_json`]).
#[cfg(feature = "openapi")]
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// Scope needed for writes.
pub const SCOPE_WRITE: &str = "api.write";
/// Scope for reads.
pub const SCOPE_READ: &str = "api.read";

/// Why handling stopped early: an answer, or a failure of the host's storage.
pub(crate) enum Stop {
    Answer(ApiResponse),
    Core(CoreError),
}

impl From<CoreError> for Stop {
    fn from(e: CoreError) -> Self {
        Stop::Core(e)
    }
}

impl From<ApiResponse> for Stop {
    fn from(r: ApiResponse) -> Self {
        Stop::Answer(r)
    }
}

pub(crate) type H<T> = Result<T, Stop>;

/// Early answer helper.
pub(crate) fn fail<T>(kind: ProblemKind, detail: impl Into<String>) -> H<T> {
    Err(Stop::Answer(problem(kind, detail)))
}

/// Early 422 helper.
pub(crate) fn invalid<T>(errors: Vec<FieldError>) -> H<T> {
    Err(Stop::Answer(validation_problem(&errors)))
}

/// One field error.
pub(crate) fn field_error(
    pointer: &str,
    code: FieldCode,
    message: impl Into<String>,
) -> FieldError {
    FieldError {
        pointer: pointer.to_string(),
        code,
        message: message.into(),
    }
}

/// What a request needs from the engine while it is planned.
pub(crate) struct Ctx<'a> {
    pub tx: Tx<'a>,
    pub now: i64,
    pub now_str: String,
    pub request_id: String,
    pub in_flight: Option<String>,
}

pub(crate) fn handle(engine: &mut Engine, req: &ApiRequest, now: i64, store: &dyn KvRead) -> Step {
    let request_id = engine.new_id(now);
    let mut ctx = Ctx {
        tx: Tx::new(store),
        now,
        now_str: rfc3339_millis(now),
        request_id: request_id.clone(),
        in_flight: None,
    };
    let result = route(engine, req, &mut ctx);
    let in_flight = ctx.in_flight.take();
    let (mut response, batch) = match result {
        Ok(r) => {
            let batch = ctx.tx.into_batch();
            (r, batch)
        }
        Err(Stop::Answer(r)) => (r, Default::default()),
        Err(Stop::Core(e)) => {
            let kind = match e {
                CoreError::Storage { .. } => ProblemKind::StorageUnavailable,
                _ => ProblemKind::Internal,
            };
            (problem(kind, e.to_string()), Default::default())
        }
    };
    if first_segment(&req.path).as_deref() == Some("api") {
        response.set_header("X-Request-ID", request_id);
        if is_write(&req.method) {
            if let Some(t) = req.header_value("X-Tracking-ID") {
                if is_visible_ascii(t, 128) {
                    response.set_header("X-Tracking-ID", t.to_string());
                }
            }
        }
    }
    // A step whose answer is not a success writes nothing and holds nothing.
    let (batch, in_flight) = if (200..300).contains(&response.status) {
        (batch, in_flight)
    } else {
        if let Some(k) = &in_flight {
            engine.in_flight.remove(k);
        }
        (Default::default(), None)
    };
    Step {
        response,
        batch,
        in_flight,
    }
}

fn is_write(method: &str) -> bool {
    matches!(method, "POST" | "PUT" | "PATCH" | "DELETE")
}

fn method_not_allowed<T>(allowed: &[&str]) -> H<T> {
    let mut r = problem(
        ProblemKind::MethodNotAllowed,
        format!("this path accepts {}", allowed.join(", ")),
    );
    r.set_header("Allow", allowed.join(", "));
    Err(Stop::Answer(r))
}

/// Longest path with query the engine accepts.
pub const MAX_PATH_BYTES: usize = 8192;

fn route(engine: &mut Engine, req: &ApiRequest, ctx: &mut Ctx<'_>) -> H<ApiResponse> {
    if req.path.len() > MAX_PATH_BYTES {
        return fail(
            ProblemKind::UriTooLong,
            format!("the path and query are longer than {MAX_PATH_BYTES} bytes"),
        );
    }
    let body_len = req.body.as_ref().map_or(0, |b| b.len());
    if body_len > engine.config.max_body_bytes {
        return fail(
            ProblemKind::PayloadTooLarge,
            format!(
                "the body is larger than {} bytes",
                engine.config.max_body_bytes
            ),
        );
    }
    let (segments, query) = split_path(&req.path);
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let m = req.method.as_str();
    match seg.as_slice() {
        ["healthz"] => match m {
            "GET" | "HEAD" => Ok(ApiResponse::json(200, &json!({"status": "ok"}))),
            _ => method_not_allowed(&["GET"]),
        },
        ["openapi.json"] => match m {
            "GET" | "HEAD" => match engine.openapi_json() {
                Some(doc) => Ok(ApiResponse::json_text(200, doc.to_string())),
                None => fail(ProblemKind::NotFound, super::NO_OPENAPI_DOCUMENT),
            },
            _ => method_not_allowed(&["GET"]),
        },
        ["admin", rest @ ..] => {
            admin_auth(engine, req, ctx)?;
            admin(engine, req, ctx, rest, &query)
        }
        ["api", rest @ ..] => {
            let (account, key) = api_auth(engine, req, ctx)?;
            writes::api(engine, req, ctx, &account, &key, rest, &query)
        }
        _ => fail(
            ProblemKind::NotFound,
            format!("no route for {}", path_only(&req.path)),
        ),
    }
}

fn path_only(p: &str) -> &str {
    p.split('?').next().unwrap_or(p)
}

fn unauthorized<T>(scheme: &str, detail: &str) -> H<T> {
    let mut r = problem(ProblemKind::Unauthorized, detail);
    r.set_header("WWW-Authenticate", format!("{scheme} realm=\"writesync\""));
    Err(Stop::Answer(r))
}

fn admin_auth(engine: &Engine, req: &ApiRequest, ctx: &Ctx<'_>) -> H<()> {
    let token = match req.header_value("Authorization").and_then(parse_bearer) {
        Some(t) => t,
        None => {
            return unauthorized(
                "Bearer",
                "the admin API needs Authorization: Bearer <token>",
            )
        }
    };
    let expected = match &engine.config.admin_token_sha256 {
        Some(h) => Some(h.clone()),
        None => ctx
            .tx
            .get_json::<AdminRec>(keys::ADMIN)?
            .map(|r| r.token_sha256),
    };
    match expected {
        Some(h) if verify_secret(token, &h) => Ok(()),
        _ => unauthorized("Bearer", "the admin token is not valid"),
    }
}

fn api_auth(
    engine: &mut Engine,
    req: &ApiRequest,
    ctx: &Ctx<'_>,
) -> H<(Arc<AccountRec>, Arc<ApiKeyRec>)> {
    let (user, pass) = match req.header_value("Authorization").and_then(parse_basic_auth) {
        Some(c) => c,
        None => return unauthorized("Basic", "the data API needs HTTP Basic credentials"),
    };
    // Every failure below is answered the same way, so that keys cannot be probed.
    let bad = || unauthorized("Basic", "the API key or secret is not valid");
    if user.is_empty() || user.len() > 128 || user.contains('/') {
        return bad();
    }
    let key_key = keys::api_key(&user);
    let key: Arc<ApiKeyRec> = match ctx.tx.get(&key_key)? {
        Some(raw) => engine.cache.decode(&key_key, raw)?,
        None => {
            // Spend the same hashing work as a known key.
            let _ = ct_eq_str(&sha256_hex(pass.as_bytes()), &sha256_hex(b"-"));
            return bad();
        }
    };
    if !verify_secret(&pass, &key.secret_sha256) {
        return bad();
    }
    let account_key = keys::account(&key.account_id);
    let account: Arc<AccountRec> = match ctx.tx.get(&account_key)? {
        Some(raw) => engine.cache.decode(&account_key, raw)?,
        None => return bad(),
    };
    Ok((account, key))
}

/// Check that a request carries a JSON body: `400` when it has none, `415` for a non-JSON
/// content type. Answers the body text.
fn json_text(req: &ApiRequest) -> H<&str> {
    let body = req.body.as_deref().unwrap_or("");
    if body.trim().is_empty() {
        return fail(ProblemKind::MalformedJson, "the request needs a JSON body");
    }
    match req.header_value("Content-Type") {
        Some(ct) if is_json_content_type(ct) => Ok(body),
        Some(ct) => fail(
            ProblemKind::UnsupportedMediaType,
            format!("Content-Type {ct:?} is not supported; send application/json"),
        ),
        None => fail(
            ProblemKind::UnsupportedMediaType,
            "a request with a body needs Content-Type: application/json",
        ),
    }
}

/// Parse a JSON body: `415` for a non-JSON content type, `400` for malformed JSON.
pub(crate) fn json_body(req: &ApiRequest) -> H<Value> {
    let body = json_text(req)?;
    serde_json::from_str(body).or_else(|e| fail(ProblemKind::MalformedJson, e.to_string()))
}

/// [`json_body`] as a document whose strings borrow from the request (the CDM writes).
pub(crate) fn json_doc(req: &ApiRequest) -> H<Json<'_>> {
    let body = json_text(req)?;
    Json::parse(body).or_else(|e| fail(ProblemKind::MalformedJson, e.to_string()))
}

/// An optional body for calls that take none (`415`/`400` only when one is sent).
fn optional_body(req: &ApiRequest) -> H<Option<Value>> {
    match req.body.as_deref() {
        None => Ok(None),
        Some(b) if b.trim().is_empty() => Ok(None),
        Some(_) => json_body(req).map(Some),
    }
}

fn reject_unknown(body: &Value, allowed: &[&str], errors: &mut Vec<FieldError>) {
    if let Some(obj) = body.as_object() {
        for k in obj.keys() {
            if !allowed.contains(&k.as_str()) {
                errors.push(field_error(
                    &format!("/{}", crate::validate::pointer_token(k)),
                    codes::UNKNOWN_FIELD,
                    format!("{k} is not a field of this call"),
                ));
            }
        }
    }
}

fn require_object(body: &Value) -> H<&serde_json::Map<String, Value>> {
    match body.as_object() {
        Some(o) => Ok(o),
        None => invalid(vec![field_error(
            "",
            codes::INVALID_TYPE,
            "the body must be a JSON object",
        )]),
    }
}

fn admin(
    engine: &mut Engine,
    req: &ApiRequest,
    ctx: &mut Ctx<'_>,
    rest: &[&str],
    query: &[(String, String)],
) -> H<ApiResponse> {
    let m = req.method.as_str();
    match rest {
        ["accounts"] => match m {
            "POST" => create_account(req, ctx, engine),
            _ => method_not_allowed(&["POST"]),
        },
        ["accounts", aid] => {
            let account = load_account(ctx, aid)?;
            match m {
                "GET" => Ok(ApiResponse::json(200, &account_json(&account))),
                "PATCH" => patch_account(req, ctx, account),
                _ => method_not_allowed(&["GET", "PATCH"]),
            }
        }
        ["accounts", aid, "api-keys"] => {
            let account = load_account(ctx, aid)?;
            match m {
                "POST" => create_api_key(engine, req, ctx, &account),
                _ => method_not_allowed(&["POST"]),
            }
        }
        ["accounts", aid, "api-keys", key] => {
            let account = load_account(ctx, aid)?;
            match m {
                "DELETE" => {
                    let k = keys::api_key(key);
                    match ctx.tx.get_json::<ApiKeyRec>(&k)? {
                        Some(rec) if rec.account_id == account.id => {
                            ctx.tx.delete(k);
                            Ok(ApiResponse::empty(204))
                        }
                        _ => fail(ProblemKind::NotFound, "no such API key in this account"),
                    }
                }
                _ => method_not_allowed(&["DELETE"]),
            }
        }
        ["accounts", aid, "connections"] => {
            let account = load_account(ctx, aid)?;
            match m {
                "POST" => create_connection(engine, req, ctx, &account),
                "GET" => {
                    let list: Vec<ConnectionRec> =
                        ctx.tx
                            .scan_json(&keys::connections(&account.id), 0, usize::MAX)?;
                    Ok(ApiResponse::json(
                        200,
                        &Value::Array(list.iter().map(connection_json).collect()),
                    ))
                }
                _ => method_not_allowed(&["GET", "POST"]),
            }
        }
        ["accounts", aid, "connections", cid] => {
            let account = load_account(ctx, aid)?;
            let k = keys::connection(&account.id, cid);
            let conn = match ctx.tx.get_json::<ConnectionRec>(&k)? {
                Some(c) => c,
                None => return fail(ProblemKind::NotFound, "no such connection in this account"),
            };
            match m {
                "GET" => Ok(ApiResponse::json(200, &connection_json(&conn))),
                "DELETE" => {
                    ctx.tx.delete(k);
                    // The host's access token for it goes too.
                    if !conn.connector.is_generic() {
                        ctx.tx.delete(keys::token(&conn.id));
                    }
                    Ok(ApiResponse::empty(204))
                }
                _ => method_not_allowed(&["GET", "DELETE"]),
            }
        }
        ["accounts", aid, "webhooks"] => {
            let account = load_account(ctx, aid)?;
            match m {
                "POST" => create_webhook(engine, req, ctx, &account),
                "GET" => {
                    let list: Vec<WebhookRec> =
                        ctx.tx
                            .scan_json(&keys::webhooks(&account.id), 0, usize::MAX)?;
                    Ok(ApiResponse::json(
                        200,
                        &Value::Array(list.iter().map(webhook_json).collect()),
                    ))
                }
                _ => method_not_allowed(&["GET", "POST"]),
            }
        }
        ["accounts", aid, "webhooks", wid] => {
            let account = load_account(ctx, aid)?;
            let hook = load_webhook(ctx, &account, wid)?;
            match m {
                "GET" => Ok(ApiResponse::json(200, &webhook_json(&hook))),
                "DELETE" => {
                    ctx.tx.delete(keys::webhook(&account.id, wid));
                    Ok(ApiResponse::empty(204))
                }
                _ => method_not_allowed(&["GET", "DELETE"]),
            }
        }
        ["accounts", aid, "webhooks", wid, "deliveries"] => {
            let account = load_account(ctx, aid)?;
            load_webhook(ctx, &account, wid)?;
            match m {
                "GET" => {
                    // Newest first (the index is ordered that way). The contract answers the
                    // whole list; `page`/`pageSize` page it like the data API when given.
                    let (page, size) = super::writes::paging(query)?;
                    let paged = query.iter().any(|(k, _)| k == "page" || k == "pageSize");
                    let size = if paged { size } else { usize::MAX };
                    let offset = (page - 1).saturating_mul(size);
                    let index =
                        ctx.tx
                            .scan(&keys::webhook_deliveries(&account.id, wid), offset, size)?;
                    let mut out = Vec::with_capacity(index.len());
                    for (_, v) in &index {
                        let did: String = serde_json::from_str(v).unwrap_or_default();
                        if let Some(d) = ctx.tx.get_json::<DeliveryRec>(&keys::delivery(&did))? {
                            out.push(delivery_json(&d));
                        }
                    }
                    Ok(ApiResponse::json(200, &Value::Array(out)))
                }
                _ => method_not_allowed(&["GET"]),
            }
        }
        ["accounts", aid, "webhooks", wid, "deliveries", did, "retry"] => {
            let account = load_account(ctx, aid)?;
            load_webhook(ctx, &account, wid)?;
            match m {
                "POST" => {
                    optional_body(req)?;
                    let d = match ctx.tx.get_json::<DeliveryRec>(&keys::delivery(did))? {
                        Some(d) if d.account_id == account.id && d.webhook_id == *wid => d,
                        _ => return fail(ProblemKind::NotFound, "no such delivery"),
                    };
                    let d = super::work::manual_retry(ctx, d)?;
                    Ok(ApiResponse::json(202, &delivery_json(&d)))
                }
                _ => method_not_allowed(&["POST"]),
            }
        }
        _ => fail(
            ProblemKind::NotFound,
            format!("no route for {}", path_only(&req.path)),
        ),
    }
}

fn load_account(ctx: &Ctx<'_>, aid: &str) -> H<AccountRec> {
    match ctx.tx.get_json::<AccountRec>(&keys::account(aid))? {
        Some(a) => Ok(a),
        None => fail(ProblemKind::NotFound, "no such account"),
    }
}

fn load_webhook(ctx: &Ctx<'_>, account: &AccountRec, wid: &str) -> H<WebhookRec> {
    match ctx
        .tx
        .get_json::<WebhookRec>(&keys::webhook(&account.id, wid))?
    {
        Some(w) => Ok(w),
        None => fail(ProblemKind::NotFound, "no such webhook in this account"),
    }
}

pub(crate) fn account_json(a: &AccountRec) -> Value {
    json!({"id": a.id, "domain": a.domain, "writeEnabled": a.write_enabled, "createdAt": a.created_at})
}

/// The JSON of a connection. A provider connection also shows its `connector`, `baseUrl`
/// and `settings` (which never hold secrets: tokens are the host's).
fn connection_json(c: &ConnectionRec) -> Value {
    let mut v = json!({"id": c.id, "app": c.app, "type": c.app_type,
                       "objects": c.objects, "createdAt": c.created_at});
    if let Some(o) = v.as_object_mut() {
        if let Some(u) = &c.push_url {
            o.insert("pushUrl".into(), Value::String(u.clone()));
        }
        if !c.connector.is_generic() {
            o.insert("connector".into(), json!(c.connector));
            o.insert("baseUrl".into(), json!(c.base_url));
            o.insert("settings".into(), json!(c.settings));
        }
    }
    v
}

fn webhook_json(w: &WebhookRec) -> Value {
    json!({"id": w.id, "url": w.url, "events": w.events, "createdAt": w.created_at,
           "basicAuth": w.username.is_some(), "signed": w.signing_secret.is_some()})
}

pub(crate) fn delivery_json(d: &DeliveryRec) -> Value {
    json!({"id": d.id, "event": d.event, "status": d.status, "attempts": d.attempts,
           "lastStatusCode": d.last_status_code, "lastError": d.last_error,
           "syncId": d.sync_id, "createdAt": d.created_at, "updatedAt": d.updated_at})
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

fn create_account(req: &ApiRequest, ctx: &mut Ctx<'_>, engine: &mut Engine) -> H<ApiResponse> {
    let body = json_body(req)?;
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
        .put(dk, serde_json::to_string(&id).unwrap_or_default());
    ctx.tx.put_json(keys::account(&id), &rec);
    Ok(ApiResponse::json(201, &account_json(&rec)))
}

fn patch_account(req: &ApiRequest, ctx: &mut Ctx<'_>, mut account: AccountRec) -> H<ApiResponse> {
    let body = json_body(req)?;
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
    Ok(ApiResponse::json(200, &account_json(&account)))
}

fn create_api_key(
    engine: &mut Engine,
    req: &ApiRequest,
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
) -> H<ApiResponse> {
    let body = json_body(req)?;
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
    Ok(ApiResponse::json(201, &out))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn create_connection(
    engine: &mut Engine,
    req: &ApiRequest,
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
) -> H<ApiResponse> {
    let body = json_body(req)?;
    let obj = require_object(&body)?;
    let mut errors = Vec::new();
    reject_unknown(
        &body,
        &[
            "app",
            "type",
            "pushUrl",
            "objects",
            "connector",
            "baseUrl",
            "settings",
        ],
        &mut errors,
    );
    let app = match obj.get("app") {
        Some(Value::String(s)) if valid_app_key(s) => s.clone(),
        Some(Value::String(_)) => {
            errors.push(field_error(
                "/app",
                codes::INVALID_FORMAT,
                "app is a lowercase key of 1 to 64 characters a-z 0-9 _ -",
            ));
            String::new()
        }
        None | Some(Value::Null) => {
            errors.push(field_error("/app", codes::REQUIRED, "app is required"));
            String::new()
        }
        Some(_) => {
            errors.push(field_error(
                "/app",
                codes::INVALID_TYPE,
                "app must be a string",
            ));
            String::new()
        }
    };
    let app_type = match obj.get("type") {
        Some(Value::String(s)) if valid_app_type(s) => s.clone(),
        Some(Value::String(_)) => {
            errors.push(field_error(
                "/type",
                codes::INVALID_VALUE,
                "type is one of accounting, commerce, crm, banking, payroll",
            ));
            String::new()
        }
        None | Some(Value::Null) => {
            errors.push(field_error("/type", codes::REQUIRED, "type is required"));
            String::new()
        }
        Some(_) => {
            errors.push(field_error(
                "/type",
                codes::INVALID_TYPE,
                "type must be a string",
            ));
            String::new()
        }
    };
    let connector = match obj.get("connector") {
        None | Some(Value::Null) => ConnectorKind::Generic,
        Some(Value::String(s)) => match ConnectorKind::parse(s) {
            Some(k) => k,
            None => {
                errors.push(field_error(
                    "/connector",
                    codes::INVALID_VALUE,
                    "connector is one of generic, quickbooks, xero, hubspot, shopify",
                ));
                ConnectorKind::Generic
            }
        },
        Some(_) => {
            errors.push(field_error(
                "/connector",
                codes::INVALID_TYPE,
                "connector must be a string",
            ));
            ConnectorKind::Generic
        }
    };
    let (push_url, base_url) = if connector.is_generic() {
        if obj.get("baseUrl").is_some_and(|v| !v.is_null()) {
            errors.push(field_error(
                "/baseUrl",
                codes::INVALID_VALUE,
                "baseUrl is for provider connectors; the generic connector sends to pushUrl",
            ));
        }
        (Some(url_field(obj, "pushUrl", engine, &mut errors)), None)
    } else {
        if obj.get("pushUrl").is_some_and(|v| !v.is_null()) {
            errors.push(field_error(
                "/pushUrl",
                codes::INVALID_VALUE,
                format!(
                    "pushUrl is for the generic connector; the {} connector sends to baseUrl",
                    connector.as_str()
                ),
            ));
        }
        (None, Some(url_field(obj, "baseUrl", engine, &mut errors)))
    };
    let settings = connection_settings(obj, connector, &mut errors);
    let capable = connector.connector().objects();
    let objects = match obj.get("objects") {
        None | Some(Value::Null) => default_objects(&app_type)
            .into_iter()
            .filter(|t| capable.contains(t))
            .collect(),
        Some(Value::Array(list)) => {
            let mut out = Vec::new();
            for (i, v) in list.iter().enumerate() {
                match v.as_str().and_then(ObjectType::parse) {
                    Some(t) if !capable.contains(&t) => errors.push(field_error(
                        &format!("/objects/{i}"),
                        codes::INVALID_VALUE,
                        format!(
                            "the {} connector cannot push {}",
                            connector.as_str(),
                            t.as_str()
                        ),
                    )),
                    Some(t) => {
                        if !out.contains(&t) {
                            out.push(t)
                        }
                    }
                    None => errors.push(field_error(&format!("/objects/{i}"), codes::INVALID_VALUE, "an object type is one of customer, vendor, account, invoice, payment, expense, bankTransaction")),
                }
            }
            out
        }
        Some(_) => {
            errors.push(field_error(
                "/objects",
                codes::INVALID_TYPE,
                "objects must be an array",
            ));
            Vec::new()
        }
    };
    if !errors.is_empty() {
        return invalid(errors);
    }
    let id = engine.new_id(ctx.now);
    let rec = ConnectionRec {
        id: id.clone(),
        app,
        app_type,
        push_url,
        objects,
        created_at: ctx.now_str.clone(),
        connector,
        base_url,
        settings,
    };
    ctx.tx.put_json(keys::connection(&account.id, &id), &rec);
    Ok(ApiResponse::json(201, &connection_json(&rec)))
}

/// The provider settings of a registration: an object of strings whose names the connector
/// takes, with the ones it requires.
fn connection_settings(
    obj: &serde_json::Map<String, Value>,
    connector: ConnectorKind,
    errors: &mut Vec<FieldError>,
) -> std::collections::BTreeMap<String, String> {
    let specs = connector.connector().settings();
    let mut out = std::collections::BTreeMap::new();
    match obj.get("settings") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let p = format!("/settings/{}", crate::validate::pointer_token(k));
                if !specs.iter().any(|s| s.name == k) {
                    errors.push(field_error(
                        &p,
                        codes::UNKNOWN_FIELD,
                        if specs.is_empty() {
                            format!("the {} connector takes no settings", connector.as_str())
                        } else {
                            format!(
                                "{k} is not a setting of the {} connector (it takes {})",
                                connector.as_str(),
                                specs.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
                            )
                        },
                    ));
                    continue;
                }
                match v {
                    Value::String(s)
                        if !s.trim().is_empty()
                            && s.len() <= 255
                            && !s.chars().any(char::is_control) =>
                    {
                        out.insert(k.clone(), s.clone());
                    }
                    Value::String(_) => errors.push(field_error(
                        &p,
                        codes::INVALID_FORMAT,
                        format!("{k} is 1 to 255 bytes without control characters"),
                    )),
                    _ => errors.push(field_error(
                        &p,
                        codes::INVALID_TYPE,
                        format!("{k} must be a string"),
                    )),
                }
            }
        }
        Some(_) => errors.push(field_error(
            "/settings",
            codes::INVALID_TYPE,
            "settings must be an object of strings",
        )),
    }
    for spec in specs.iter().filter(|s| s.required) {
        let present = obj
            .get("settings")
            .and_then(|s| s.get(spec.name))
            .is_some_and(|v| !v.is_null());
        if !present {
            errors.push(field_error(
                &format!("/settings/{}", spec.name),
                codes::REQUIRED,
                format!(
                    "the {} connector requires the setting {} ({})",
                    connector.as_str(),
                    spec.name,
                    spec.description
                ),
            ));
        }
    }
    errors.extend(connector.connector().check_settings(&out));
    out
}

fn url_field(
    obj: &serde_json::Map<String, Value>,
    name: &str,
    engine: &Engine,
    errors: &mut Vec<FieldError>,
) -> String {
    let p = format!("/{name}");
    match obj.get(name) {
        Some(Value::String(s)) => {
            if s.len() > 2048 {
                errors.push(field_error(
                    &p,
                    codes::TOO_LONG,
                    "a URL is at most 2048 characters",
                ));
            } else {
                match engine.config.target_policy.check_url(s) {
                    // The URL is stored as parsed, so what was checked is what is used.
                    Ok(normalized) => return normalized,
                    Err(why) => errors.push(field_error(&p, codes::INVALID_VALUE, why)),
                }
            }
            s.clone()
        }
        None | Some(Value::Null) => {
            errors.push(field_error(
                &p,
                codes::REQUIRED,
                format!("{name} is required"),
            ));
            String::new()
        }
        Some(_) => {
            errors.push(field_error(
                &p,
                codes::INVALID_TYPE,
                format!("{name} must be a string"),
            ));
            String::new()
        }
    }
}

/// The webhook event names.
pub const EVENTS: [&str; 2] = ["api_push_update", "api_push_complete"];

fn create_webhook(
    engine: &mut Engine,
    req: &ApiRequest,
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
) -> H<ApiResponse> {
    let body = json_body(req)?;
    let obj = require_object(&body)?;
    let mut errors = Vec::new();
    reject_unknown(
        &body,
        &["url", "events", "username", "password", "signingSecret"],
        &mut errors,
    );
    let url = url_field(obj, "url", engine, &mut errors);
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
    let mut text = |name: &str, max: usize| -> Option<String> {
        match obj.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.len() <= max && !s.chars().any(char::is_control) => {
                Some(s.clone())
            }
            Some(Value::String(_)) => {
                errors.push(field_error(
                    &format!("/{name}"),
                    codes::INVALID_FORMAT,
                    format!("{name} is at most {max} bytes without control characters"),
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
    };
    let username = text("username", 256);
    let password = text("password", 256);
    let signing_secret = text("signingSecret", 256);
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
    };
    ctx.tx.put_json(keys::webhook(&account.id, &id), &rec);
    Ok(ApiResponse::json(201, &webhook_json(&rec)))
}

/// Headers of a data-API write, validated (`400` on a bad value).
pub(crate) struct WriteHeaders {
    pub tracking_id: Option<String>,
    pub push: bool,
    pub sources: Option<String>,
    pub idempotency_key: Option<String>,
    pub if_match: Option<IfMatch>,
}

/// A parsed `If-Match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IfMatch {
    Any,
    Version(u64),
}

pub(crate) fn write_headers(req: &ApiRequest) -> H<WriteHeaders> {
    let tracking_id = match req.header_value("X-Tracking-ID") {
        None => None,
        Some(t) if is_visible_ascii(t, 128) => Some(t.to_string()),
        Some(_) => {
            return fail(
                ProblemKind::InvalidHeader,
                "X-Tracking-ID must be 1 to 128 visible ASCII characters",
            )
        }
    };
    let push = match req.header_value("X-Sync-Data") {
        None => false,
        Some(v) if v.trim().eq_ignore_ascii_case("push") => true,
        Some(_) => {
            return fail(
                ProblemKind::InvalidHeader,
                "X-Sync-Data accepts only the value push",
            )
        }
    };
    let sources = req.header_value("X-Sync-Sources").map(str::to_string);
    let idempotency_key = match req.header_value("Idempotency-Key") {
        None => None,
        Some(k) if is_visible_ascii(k, 255) => Some(k.to_string()),
        Some(_) => {
            return fail(
                ProblemKind::InvalidHeader,
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
        }
    };
    let if_match = match req.header_value("If-Match") {
        None => None,
        Some(v) => match parse_if_match(v) {
            Some(m) => Some(m),
            None => {
                return fail(
                    ProblemKind::InvalidHeader,
                    "If-Match takes a version number, bare or quoted (2 or \"2\")",
                )
            }
        },
    };
    Ok(WriteHeaders {
        tracking_id,
        push,
        sources,
        idempotency_key,
        if_match,
    })
}

fn parse_if_match(v: &str) -> Option<IfMatch> {
    let v = v.trim();
    if v == "*" {
        return Some(IfMatch::Any);
    }
    let v = v.strip_prefix("W/").unwrap_or(v);
    let inner = v
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(v);
    if inner.is_empty() || inner.len() > 19 || !inner.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    inner.parse().ok().map(IfMatch::Version)
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

/// Canonical fingerprint of a write for idempotency: method, path and the body with object
/// keys sorted (so that key order does not matter).
pub(crate) fn fingerprint(req: &ApiRequest, body: &Json<'_>) -> String {
    let mut text = String::new();
    text.push_str(&req.method);
    text.push(' ');
    text.push_str(&req.path);
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
pub(crate) fn idempotency_check(
    engine: &mut Engine,
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
    key: &str,
    fp: &str,
) -> H<Option<ApiResponse>> {
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
            let mut r = ApiResponse {
                status: rec.status,
                headers: Default::default(),
                body: rec.body,
            };
            for (k, v) in rec.headers {
                r.set_header(&k, v);
            }
            r.set_header("Idempotency-Replayed", "true");
            return Ok(Some(r));
        }
    }
    engine.in_flight.insert(slot.clone());
    ctx.in_flight = Some(slot);
    Ok(None)
}

/// Record the first answer of an idempotent write in the same unit of work.
pub(crate) fn idempotency_store(
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
    key: &str,
    fp: &str,
    r: &ApiResponse,
) {
    let keep = ["Content-Type", "ETag", "X-Sync-ID", "X-Sync-Targets"];
    let headers = r
        .headers
        .iter()
        .filter(|(k, _)| keep.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let rec = IdemRec {
        fingerprint: fp.to_string(),
        status: r.status,
        headers,
        body: r.body.clone(),
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
    fn if_match_forms() {
        assert_eq!(parse_if_match("2"), Some(IfMatch::Version(2)));
        assert_eq!(parse_if_match("\"2\""), Some(IfMatch::Version(2)));
        assert_eq!(parse_if_match("W/\"3\""), Some(IfMatch::Version(3)));
        assert_eq!(parse_if_match("*"), Some(IfMatch::Any));
        assert_eq!(parse_if_match("abc"), None);
        assert_eq!(parse_if_match("\"\""), None);
        assert_eq!(parse_if_match("99999999999999999999999"), None);
    }

    #[test]
    fn fingerprint_ignores_key_order() {
        let r = ApiRequest::new("POST", "/api/customers");
        let a = Json::parse(r#"{"a":1,"b":{"c":2,"d":[1,2]}}"#).unwrap();
        let b = Json::parse(r#"{"b":{"d":[1,2],"c":2},"a":1}"#).unwrap();
        let c = Json::parse(r#"{"b":{"d":[2,1],"c":2},"a":1}"#).unwrap();
        assert_eq!(fingerprint(&r, &a), fingerprint(&r, &b));
        assert_ne!(fingerprint(&r, &a), fingerprint(&r, &c));
    }

    #[test]
    fn fingerprint_is_the_hash_of_the_canonical_text() {
        let r = ApiRequest::new("POST", "/api/customers");
        let doc = Json::parse(r#"{"b":{"d":[1,2.5,"x\"y"],"c":null},"a":true,"a":false}"#).unwrap();
        let text = "POST /api/customers\n{\"a\":false,\"b\":{\"c\":null,\"d\":[1,2.5,\"x\\\"y\"]}}";
        assert_eq!(fingerprint(&r, &doc), sha256_hex(text.as_bytes()));
    }

    #[test]
    fn domains() {
        assert!(valid_domain("acme.example.com"));
        assert!(valid_domain("localhost"));
        assert!(!valid_domain("-bad.com"));
        assert!(!valid_domain("a..b"));
        assert!(!valid_domain("sp ace.com"));
    }
}
