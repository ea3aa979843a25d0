//! The HTTP contract as one adapter over the commands: an [`ApiRequest`] becomes a
//! [`Command`], and its [`Reply`] or refusal becomes an [`ApiResponse`] (status, headers,
//! `application/problem+json`).
//!
//! The adapter keeps the contract's order of refusals: a caller is authenticated before the
//! path is matched (`401` before `404`), an account named in an admin path is looked up before
//! the method is checked, and a data call's scope is checked before its headers are read.

use super::admin::{load_account, load_connection, load_webhook};
use super::auth::{self, authorize};
use super::command::{
    AdminOp, Body, Command, Credentials, DataOp, IfMatch, Page, Problem, Reply, RequestLine,
    SyncFilter, WriteOptions, MAX_PAGE, MAX_PAGE_SIZE,
};
use super::data::{
    self, bad_idempotency_key, bad_tracking_id, MAX_IDEMPOTENCY_KEY, MAX_TRACKING_ID,
};
use super::execute::{self, Executed};
use super::state::Engine;
use super::vocab::{fail, Ctx, H};
use crate::cdm::ObjectType;
use crate::http::{
    first_segment, is_json_content_type, is_visible_ascii, problem_with_errors, split_path,
    ApiRequest, ApiResponse, ProblemKind,
};
use crate::records::DeliveryStatus;
use crate::records::SyncStatus;
use crate::store::{Batch, KvRead};
use crate::util::crypto::{parse_basic_auth, parse_bearer};
use crate::util::time::parse_rfc3339;

/// Longest path with query the engine accepts.
pub const MAX_PATH_BYTES: usize = 8192;

/// The result of planning one API request: the answer, and the writes that must be committed
/// atomically before the answer is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "the batch must be committed, the answer sent, and the engine told with Engine::finish"]
pub struct Step {
    /// The answer to send once `batch` is committed.
    pub response: ApiResponse,
    /// The writes of the request; empty for reads and errors.
    pub batch: Batch,
    /// The idempotency slot this step holds until [`Engine::finish`](crate::Engine::finish).
    pub(crate) in_flight: Option<String>,
}

/// Plan the answer to one request.
pub(crate) fn handle(engine: &mut Engine, req: &ApiRequest, now: i64, store: &dyn KvRead) -> Step {
    let Executed {
        result,
        batch,
        request_id,
        in_flight,
    } = execute::plan(engine, now, store, |engine, ctx| route(engine, req, ctx));
    let mut response = match result {
        Ok(reply) => render_reply(reply),
        Err(e) => render_problem(&e.into_problem()),
    };
    if first_segment(&req.path).as_deref() == Some("api") {
        response.set_header("X-Request-ID", request_id);
    }
    // A valid tracking id comes back on every answer (contract, section 7): reads, writes,
    // admin calls and problems alike.
    if let Some(t) = req.header_value("X-Tracking-ID") {
        if is_visible_ascii(t, MAX_TRACKING_ID) {
            response.set_header("X-Tracking-ID", t.to_string());
        }
    }
    Step {
        response,
        batch,
        in_flight,
    }
}

/// The answer of a reply.
pub(crate) fn render_reply(reply: Reply) -> ApiResponse {
    let mut r = match reply.body {
        Some(body) => ApiResponse::json_text(reply.status, body),
        None => ApiResponse::empty(reply.status),
    };
    if let Some(v) = reply.etag {
        r.set_header("ETag", format!("\"{v}\""));
    }
    if let Some(sync) = reply.sync {
        r.set_header("X-Sync-ID", sync.id);
        r.set_header("X-Sync-Targets", sync.targets.join(","));
    }
    if reply.replayed {
        r.set_header("Idempotency-Replayed", "true");
    }
    r
}

/// The `application/problem+json` answer of a problem.
pub(crate) fn render_problem(p: &Problem) -> ApiResponse {
    let errors = (p.kind == ProblemKind::ValidationFailed).then_some(p.errors.as_slice());
    let mut r = problem_with_errors(p.kind, p.detail.clone(), errors);
    if let Some(allow) = p.allow {
        r.set_header("Allow", allow.join(", "));
    }
    if let Some(scheme) = p.challenge {
        r.set_header("WWW-Authenticate", format!("{scheme} realm=\"writesync\""));
    }
    r
}

fn method_not_allowed<T>(allowed: &'static [&'static str]) -> H<T> {
    let mut p = Problem::new(
        ProblemKind::MethodNotAllowed,
        format!("this path accepts {}", allowed.join(", ")),
    );
    p.allow = Some(allowed);
    Err(p.into())
}

fn path_only(p: &str) -> &str {
    p.split('?').next().unwrap_or(p)
}

fn no_route<T>(req: &ApiRequest) -> H<T> {
    fail(
        ProblemKind::NotFound,
        format!("no route for {}", path_only(&req.path)),
    )
}

/// What the request sent as its body.
fn body_of(req: &ApiRequest) -> Body<'_> {
    let text = req.body.as_deref().unwrap_or("");
    if text.trim().is_empty() {
        return Body::None;
    }
    match req.header_value("Content-Type") {
        Some(ct) if is_json_content_type(ct) => Body::Json(text),
        content_type => Body::NotJson { content_type },
    }
}

fn route(engine: &mut Engine, req: &ApiRequest, ctx: &mut Ctx<'_>) -> H<Reply> {
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
    let get = matches!(req.method.as_str(), "GET" | "HEAD");
    let command = match seg.as_slice() {
        ["healthz"] if get => Command::Health,
        ["openapi.json"] if get => Command::OpenApi,
        ["healthz"] | ["openapi.json"] => return method_not_allowed(&["GET"]),
        ["admin", rest @ ..] => {
            let token = req.header_value("Authorization").and_then(parse_bearer);
            auth::admin(engine, token, ctx)?;
            let op = admin_op(ctx, req, rest, &query)?;
            return super::admin::execute(engine, ctx, op);
        }
        ["api", rest @ ..] => {
            let basic = req.header_value("Authorization").and_then(parse_basic_auth);
            let credentials = basic.as_ref().map(|(key, secret)| Credentials {
                key: key.as_str(),
                secret: secret.as_str(),
            });
            let principal = auth::api(engine, credentials, ctx)?;
            let op = data_op(&principal, req, rest, &query)?;
            return data::execute(engine, ctx, &principal, op);
        }
        _ => return no_route(req),
    };
    execute::run(engine, ctx, command)
}

/// The page a list's query asks for (`page`, `pageSize`; other parameters are ignored).
fn paging(query: &[(String, String)]) -> H<Page> {
    let mut page = Page::default();
    for (k, v) in query {
        match k.as_str() {
            "page" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => page.page = n,
                _ => {
                    return fail(
                        ProblemKind::InvalidQuery,
                        format!("page must be an integer from 1 to {MAX_PAGE}"),
                    )
                }
            },
            "pageSize" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => page.size = n,
                _ => {
                    return fail(
                        ProblemKind::InvalidQuery,
                        format!("pageSize must be an integer from 1 to {MAX_PAGE_SIZE}"),
                    )
                }
            },
            _ => {}
        }
    }
    Ok(page)
}

/// The filters of a deliveries list (`status`, `syncId`); any parameter but these and the
/// paging ones is refused, naming it.
fn delivery_filters(query: &[(String, String)]) -> H<(Option<DeliveryStatus>, Option<&str>)> {
    let (mut status, mut sync_id) = (None, None);
    for (k, v) in query {
        match k.as_str() {
            "page" | "pageSize" => {}
            "status" => {
                status = Some(match v.as_str() {
                    "pending" => DeliveryStatus::Pending,
                    "delivered" => DeliveryStatus::Delivered,
                    "failed" => DeliveryStatus::Failed,
                    _ => {
                        return fail(
                            ProblemKind::InvalidQuery,
                            "status must be pending, delivered or failed",
                        )
                    }
                })
            }
            "syncId" if !v.is_empty() && v.len() <= 64 => sync_id = Some(v.as_str()),
            "syncId" => {
                return fail(
                    ProblemKind::InvalidQuery,
                    "syncId must be a sync id (1 to 64 characters)",
                )
            }
            other => {
                return fail(
                    ProblemKind::InvalidQuery,
                    format!(
                        "{other} is not a parameter of this list (page, pageSize, status, syncId)"
                    ),
                )
            }
        }
    }
    Ok((status, sync_id))
}

/// The filters and page of `GET /api/syncs`: `page`, `pageSize` and the filters, each at
/// most once; any other name, a repeat or a bad value is `400 invalid-query` naming the
/// parameter.
fn sync_query(query: &[(String, String)]) -> H<(SyncFilter, Page)> {
    let page = paging(query)?;
    let mut f = SyncFilter::default();
    let mut since = None;
    for (i, (k, v)) in query.iter().enumerate() {
        let bad = |why: &str| Problem::new(ProblemKind::InvalidQuery, format!("{k}: {why}"));
        if query[..i].iter().any(|(p, _)| p == k) {
            return Err(bad("given more than once").into());
        }
        if v.is_empty() {
            return Err(bad("must not be empty").into());
        }
        let time = || match parse_rfc3339(v) {
            Some((ms, rest)) => Ok((ms, rest)),
            None => Err(bad("must be an RFC 3339 timestamp (2026-11-28T23:37:30Z)")),
        };
        match k.as_str() {
            "page" | "pageSize" => {}
            "trackingId" if is_visible_ascii(v, MAX_TRACKING_ID) => {
                f.tracking_id = Some(v.clone())
            }
            "trackingId" => return Err(bad("must be 1 to 128 visible ASCII characters").into()),
            "status" => match SyncStatus::parse(v) {
                Some(st) => f.status = Some(st),
                None => {
                    return Err(bad("must be pending, in_progress, succeeded, partially_failed, failed or no_targets").into())
                }
            },
            "objectType" => match ObjectType::parse(v) {
                Some(t) => f.object_type = Some(t),
                None => {
                    return Err(bad("must be customer, vendor, account, invoice, payment, expense or bankTransaction").into())
                }
            },
            "objectId" if v.len() <= 128 => f.object_id = Some(v.clone()),
            "app" if v.len() <= 64 => f.app = Some(v.to_ascii_lowercase()),
            "objectId" | "app" => return Err(bad("is too long").into()),
            "since" => {
                let (ms, rest) = time()?;
                // The first millisecond at or after the instant.
                since = Some((v, ms));
                f.since_ms = Some(ms.saturating_add(i64::from(rest)));
            }
            "until" => f.until_ms = Some(time()?.0),
            _ => {
                return fail(
                    ProblemKind::InvalidQuery,
                    format!("{k}: unknown parameter; GET /api/syncs takes page, pageSize, trackingId, status, objectType, objectId, app, since and until"),
                )
            }
        }
    }
    if let (Some((text, s)), Some(u)) = (since, f.until_ms) {
        if s > u {
            return fail(
                ProblemKind::InvalidQuery,
                format!("since: {text} is after until"),
            );
        }
    }
    Ok((f, page))
}

/// The admin call a request is. An account (and webhook) named in the path is looked up
/// before a wrong method is refused, as the contract orders it.
fn admin_op<'a>(
    ctx: &Ctx<'_>,
    req: &'a ApiRequest,
    rest: &[&'a str],
    query: &'a [(String, String)],
) -> H<AdminOp<'a>> {
    let m = req.method.as_str();
    let body = body_of(req);
    // A wrong method on a path that names an account: the account (and the webhook) must
    // exist first.
    let refuse = |account: &str,
                  allowed: &'static [&'static str],
                  webhook: Option<&str>|
     -> H<AdminOp<'a>> {
        let account = load_account(ctx, account)?;
        if let Some(w) = webhook {
            load_webhook(ctx, &account, w)?;
        }
        method_not_allowed(allowed)
    };
    Ok(match *rest {
        ["accounts"] => match m {
            "POST" => AdminOp::CreateAccount { body },
            _ => return method_not_allowed(&["POST"]),
        },
        ["accounts", account] => match m {
            "GET" => AdminOp::GetAccount { account },
            "PATCH" => AdminOp::UpdateAccount { account, body },
            _ => return refuse(account, &["GET", "PATCH"], None),
        },
        ["accounts", account, "api-keys"] => match m {
            "POST" => AdminOp::CreateApiKey { account, body },
            _ => return refuse(account, &["POST"], None),
        },
        ["accounts", account, "api-keys", key] => match m {
            "DELETE" => AdminOp::DeleteApiKey { account, key },
            _ => return refuse(account, &["DELETE"], None),
        },
        ["accounts", account, "connections"] => match m {
            "POST" => AdminOp::CreateConnection { account, body },
            "GET" => AdminOp::ListConnections { account },
            _ => return refuse(account, &["GET", "POST"], None),
        },
        ["accounts", account, "connections", connection] => match m {
            "GET" => AdminOp::GetConnection {
                account,
                connection,
            },
            "DELETE" => AdminOp::DeleteConnection {
                account,
                connection,
            },
            _ => {
                // The connection must exist too.
                let a = load_account(ctx, account)?;
                load_connection(ctx, &a, connection)?;
                return method_not_allowed(&["GET", "DELETE"]);
            }
        },
        ["accounts", account, "webhooks"] => match m {
            "POST" => AdminOp::CreateWebhook { account, body },
            "GET" => AdminOp::ListWebhooks { account },
            _ => return refuse(account, &["GET", "POST"], None),
        },
        ["accounts", account, "webhooks", webhook] => match m {
            "GET" => AdminOp::GetWebhook { account, webhook },
            "PATCH" => AdminOp::UpdateWebhook {
                account,
                webhook,
                body,
            },
            "DELETE" => AdminOp::DeleteWebhook { account, webhook },
            _ => return refuse(account, &["GET", "PATCH", "DELETE"], Some(webhook)),
        },
        ["accounts", account, "webhooks", webhook, "rotate-secret"] => match m {
            "POST" => AdminOp::RotateWebhookSecret {
                account,
                webhook,
                body,
            },
            _ => return refuse(account, &["POST"], Some(webhook)),
        },
        ["accounts", account, "webhooks", webhook, "test"] => match m {
            "POST" => AdminOp::TestWebhook {
                account,
                webhook,
                body,
            },
            _ => return refuse(account, &["POST"], Some(webhook)),
        },
        ["accounts", account, "webhooks", webhook, "deliveries"] => match m {
            "GET" => {
                // The contract answers the whole list; `page`/`pageSize` page it like the
                // data API when given.
                let paged = query.iter().any(|(k, _)| k == "page" || k == "pageSize");
                let filters = paging(query).and_then(|p| Ok((p, delivery_filters(query)?)));
                let (page, (status, sync_id)) = match filters {
                    Ok((p, f)) => (paged.then_some(p), f),
                    Err(e) => {
                        let a = load_account(ctx, account)?;
                        load_webhook(ctx, &a, webhook)?;
                        return Err(e);
                    }
                };
                AdminOp::ListDeliveries {
                    account,
                    webhook,
                    page,
                    status,
                    sync_id,
                }
            }
            _ => return refuse(account, &["GET"], Some(webhook)),
        },
        ["accounts", account, "webhooks", webhook, "deliveries", delivery, "retry"] => match m {
            "POST" => AdminOp::RetryDelivery {
                account,
                webhook,
                delivery,
                body,
            },
            _ => return refuse(account, &["POST"], Some(webhook)),
        },
        _ => return no_route(req),
    })
}

/// The data call a request is: its path and method (`404`, `405`), then, once the caller's
/// scope allows it, its query or its write headers (`400`).
fn data_op<'a>(
    principal: &auth::Principal,
    req: &'a ApiRequest,
    rest: &[&'a str],
    query: &'a [(String, String)],
) -> H<DataOp<'a>> {
    let m = req.method.as_str();
    let allowed: &'static [&'static str] = match rest {
        ["syncs"] | ["syncs", _] => &["GET"],
        ["syncs", _, "retry"] => &["POST"],
        ["meta", t] if ObjectType::parse(t).is_some() => &["GET"],
        ["payments"] | ["payments", _] => &["GET"],
        ["invoices", _, "payments"] => &["POST"],
        [coll] if ObjectType::from_collection(coll).is_some() => &["GET", "POST"],
        [coll, _] => match ObjectType::from_collection(coll) {
            Some(ObjectType::Customer | ObjectType::Vendor | ObjectType::Account) => {
                &["GET", "PATCH", "DELETE"]
            }
            Some(ObjectType::Invoice | ObjectType::Expense) => &["GET", "PUT"],
            Some(_) => &["GET"],
            None => &[],
        },
        _ => &[],
    };
    if allowed.is_empty() {
        return fail(
            ProblemKind::NotFound,
            format!("no route for /api/{}", rest.join("/")),
        );
    }
    let read = matches!(m, "GET" | "HEAD") && allowed.contains(&"GET");
    if !(read || allowed.contains(&m)) {
        return method_not_allowed(allowed);
    }
    authorize(principal, !read)?;
    let object = |coll: &str| ObjectType::from_collection(coll).unwrap_or(ObjectType::Customer);
    if read {
        return Ok(match *rest {
            ["syncs", id] => DataOp::GetSync { id },
            ["syncs"] => {
                let (filter, page) = sync_query(query)?;
                DataOp::ListSyncs { filter, page }
            }
            ["meta", t] => DataOp::Meta {
                object: ObjectType::parse(t).unwrap_or(ObjectType::Customer),
                sources: meta_sources(query)?,
            },
            [coll] => DataOp::List {
                object: object(coll),
                page: paging(query)?,
            },
            [coll, id] => DataOp::Get {
                object: object(coll),
                id,
            },
            _ => return fail(ProblemKind::NotFound, "no such route"),
        });
    }
    if let ["syncs", id, "retry"] = *rest {
        let idempotency_key = match req.header_value("Idempotency-Key") {
            Some(k) if !is_visible_ascii(k, MAX_IDEMPOTENCY_KEY) => return bad_idempotency_key(),
            k => k,
        };
        return Ok(DataOp::RetrySync {
            id,
            body: body_of(req),
            idempotency_key,
        });
    }
    let mut options = write_options(req)?;
    options.dry_run = dry_run(query)?;
    // The fingerprint of an idempotent write covers the request line as it was sent.
    options.idempotency_scope = Some(RequestLine {
        method: m,
        target: &req.path,
    });
    let body = body_of(req);
    Ok(match *rest {
        ["invoices", invoice, "payments"] => DataOp::Pay {
            invoice,
            body,
            options,
        },
        [coll] => DataOp::Create {
            object: object(coll),
            body,
            options,
        },
        [coll, id] if m == "DELETE" => DataOp::Delete {
            object: object(coll),
            id,
            options,
        },
        [coll, id] => DataOp::Update {
            object: object(coll),
            id,
            body,
            options,
        },
        _ => return fail(ProblemKind::NotFound, "no such route"),
    })
}

/// `?sources=` of `GET /api/meta/{type}`, the only parameter it takes (`400` for others and
/// for a repeated one).
fn meta_sources(query: &[(String, String)]) -> H<Option<&str>> {
    let mut sources = None;
    for (k, v) in query {
        if k != "sources" || sources.is_some() {
            return fail(
                ProblemKind::InvalidQuery,
                format!("unknown or repeated query parameter {k:?}: this path takes sources"),
            );
        }
        sources = Some(v.as_str());
    }
    Ok(sources)
}

/// The options of a write from its headers, checked in the contract's order.
fn write_options(req: &ApiRequest) -> H<WriteOptions<'_>> {
    let tracking_id = match req.header_value("X-Tracking-ID") {
        None => None,
        Some(t) if is_visible_ascii(t, MAX_TRACKING_ID) => Some(t),
        Some(_) => return bad_tracking_id(),
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
    let sources = req.header_value("X-Sync-Sources");
    let idempotency_key = match req.header_value("Idempotency-Key") {
        None => None,
        Some(k) if is_visible_ascii(k, MAX_IDEMPOTENCY_KEY) => Some(k),
        Some(_) => return bad_idempotency_key(),
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
    Ok(WriteOptions {
        push,
        sources,
        tracking_id,
        idempotency_key,
        idempotency_scope: None,
        if_match,
        dry_run: false,
    })
}

/// `dryRun` of a write's query: absent or `false` is a real write, `true` a dry run; any
/// other value is `400`. (Other query parameters of a write are ignored, as before.)
fn dry_run(query: &[(String, String)]) -> H<bool> {
    let mut dry = false;
    for (k, v) in query {
        if k == "dryRun" {
            dry = match v.as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    return fail(
                        ProblemKind::InvalidQuery,
                        "dryRun accepts only true or false",
                    )
                }
            };
        }
    }
    Ok(dry)
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
}
