//! The data API: CDM reads and writes, and the planning of the push of a write.

use std::cell::RefCell;
use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::api::{
    connections_and_filter, fail, field_error, fingerprint, idempotency_check, idempotency_store,
    invalid, json_doc, write_headers, Ctx, IfMatch, Stop, WriteHeaders, H, SCOPE_READ, SCOPE_WRITE,
};
use super::tx::Tx;
use super::work::{emit_sync_complete, emit_target_update};
use super::Engine;
use crate::cdm::*;
use crate::http::{ApiRequest, ApiResponse, ProblemKind};
use crate::json::Json;
use crate::records::*;
use crate::routing::{select_targets, ConnectionRef, SourceFilter};
use crate::validate::{self, merge_patch, strip_server_fields, Document};
use crate::CoreError;

/// Default page size of lists.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Largest page number of lists (the same on 32-bit hosts such as wasm32).
pub const MAX_PAGE: usize = 1_000_000_000;
/// Largest page size of lists.
pub const MAX_PAGE_SIZE: usize = 200;

/// Uniqueness rules.
const UNIQ_INVOICE_NUMBER: &str = "invoice-number";
const UNIQ_ACCOUNT_CODE: &str = "account-code";
const UNIQ_BANK_EXTERNAL_ID: &str = "bank-external-id";

fn bank_uniq_value(bank_account: &str, external_id: &str) -> String {
    serde_json::to_string(&[bank_account, external_id]).unwrap_or_default()
}

/// Lookups of stored state for the validators; the first storage error is kept and
/// reported after validation.
struct Refs<'a, 'b> {
    tx: &'a Tx<'b>,
    account: &'a str,
    error: RefCell<Option<CoreError>>,
    /// Objects already found to exist (an invoice's lines often name one account many times).
    found: RefCell<Vec<(ObjectType, String)>>,
}

impl Refs<'_, '_> {
    fn keep<T>(&self, r: Result<T, CoreError>, fallback: T) -> T {
        match r {
            Ok(v) => v,
            Err(e) => {
                self.error.borrow_mut().get_or_insert(e);
                fallback
            }
        }
    }
    fn exists(&self, t: ObjectType, id: &str) -> bool {
        if id.is_empty() || id.contains('/') {
            return false;
        }
        if self
            .found
            .borrow()
            .iter()
            .any(|(ft, fid)| *ft == t && fid == id)
        {
            return true;
        }
        let r = self.tx.contains(&keys::object(self.account, t, id));
        let exists = self.keep(r, false);
        if exists {
            self.found.borrow_mut().push((t, id.to_string()));
        }
        exists
    }
    fn owner(&self, rule: &str, value: &str) -> Option<String> {
        let r = self
            .tx
            .get_json::<String>(&keys::unique(self.account, rule, value));
        self.keep(r, None)
    }
    fn check(self) -> Result<(), CoreError> {
        match self.error.into_inner() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl RefLookup for Refs<'_, '_> {
    fn customer_exists(&self, id: &str) -> bool {
        self.exists(ObjectType::Customer, id)
    }
    fn vendor_exists(&self, id: &str) -> bool {
        self.exists(ObjectType::Vendor, id)
    }
    fn account_exists(&self, id: &str) -> bool {
        self.exists(ObjectType::Account, id)
    }
    fn invoice_number_owner(&self, number: &str) -> Option<String> {
        self.owner(UNIQ_INVOICE_NUMBER, number)
    }
    fn account_code_owner(&self, code: &str) -> Option<String> {
        self.owner(UNIQ_ACCOUNT_CODE, code)
    }
    fn bank_external_id_owner(&self, bank_account: &str, external_id: &str) -> Option<String> {
        self.owner(
            UNIQ_BANK_EXTERNAL_ID,
            &bank_uniq_value(bank_account, external_id),
        )
    }
}

/// Run a validator with lookups, turning storage errors into a stop.
fn with_refs<T>(
    ctx: &Ctx<'_>,
    account: &AccountRec,
    f: impl FnOnce(&Refs<'_, '_>) -> validate::Validated<T>,
) -> H<T> {
    let refs = Refs {
        tx: &ctx.tx,
        account: &account.id,
        error: RefCell::new(None),
        found: RefCell::new(Vec::new()),
    };
    let out = f(&refs);
    refs.check()?;
    match out {
        Ok(v) => Ok(v),
        Err(errors) => invalid(errors),
    }
}

/// One object of a write to push.
pub(crate) struct PushItem {
    pub object: ObjectRef,
    /// The object as written (JSON text), shared by the tasks of every target.
    pub body: Box<RawValue>,
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
fn line_accounts<'a>(ids: impl Iterator<Item = Option<&'a String>>) -> ConnectorRefs {
    ConnectorRefs::LineAccounts(ids.map(|id| id.cloned()).collect())
}

/// What a write wants pushed.
pub(crate) struct PushPlan {
    pub route_type: ObjectType,
    pub operation: &'static str,
    pub items: Vec<PushItem>,
    pub label: String,
}

/// The result of a write handler.
struct Written {
    status: u16,
    /// JSON text of the answer.
    body: String,
    etag: Option<u64>,
    push: PushPlan,
}

fn has_scope(key: &ApiKeyRec, scope: &str) -> bool {
    key.scopes.iter().any(|s| s == scope)
}

pub(crate) fn api(
    engine: &mut Engine,
    req: &ApiRequest,
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
    key: &ApiKeyRec,
    rest: &[&str],
    query: &[(String, String)],
) -> H<ApiResponse> {
    let m = req.method.as_str();
    let allowed: &[&str] = match rest {
        ["syncs", _] => &["GET"],
        ["payments"] | ["payments", _] => &["GET"],
        ["invoices", _, "payments"] => &["POST"],
        [coll] if ObjectType::from_collection(coll).is_some() => &["GET", "POST"],
        [coll, _] => match ObjectType::from_collection(coll) {
            Some(ObjectType::Customer | ObjectType::Vendor | ObjectType::Account) => {
                &["GET", "PATCH"]
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
    let head_of_get = m == "HEAD" && allowed.contains(&"GET");
    if !(allowed.contains(&m) || head_of_get) {
        let mut r = crate::http::problem(
            ProblemKind::MethodNotAllowed,
            format!("this path accepts {}", allowed.join(", ")),
        );
        r.set_header("Allow", allowed.join(", "));
        return Err(Stop::Answer(r));
    }
    if m == "GET" || m == "HEAD" {
        if !has_scope(key, SCOPE_READ) && !has_scope(key, SCOPE_WRITE) {
            return fail(
                ProblemKind::MissingScope,
                "reading needs an API key with api.read",
            );
        }
        return read(ctx, account, rest, query);
    }
    if !has_scope(key, SCOPE_WRITE) {
        return fail(
            ProblemKind::MissingScope,
            "writing needs an API key with the api.write scope",
        );
    }
    if !account.write_enabled {
        return fail(
            ProblemKind::WriteModeDisabled,
            "write mode is not enabled for this account; an administrator must enable it (PATCH /admin/accounts/{id} with writeEnabled: true)",
        );
    }
    let headers = write_headers(req)?;
    let body = json_doc(req)?;
    // Connections are read only when the write pushes or names sources to check.
    let (connections, filter) = if headers.push || headers.sources.is_some() {
        connections_and_filter(engine, ctx, account, headers.sources.as_deref())?
    } else {
        (Vec::new(), SourceFilter::All)
    };
    let idem = match &headers.idempotency_key {
        Some(k) => {
            let fp = fingerprint(req, &body);
            if let Some(replay) = idempotency_check(engine, ctx, account, k, &fp)? {
                return Ok(replay);
            }
            Some((k.clone(), fp))
        }
        None => None,
    };
    let written = match rest {
        ["invoices", id, "payments"] => create_payment(engine, ctx, account, id, &body)?,
        [coll] => {
            let t = ObjectType::from_collection(coll).unwrap_or(ObjectType::Customer);
            create(engine, ctx, account, t, &body)?
        }
        [coll, id] => {
            let t = ObjectType::from_collection(coll).unwrap_or(ObjectType::Customer);
            update(
                engine,
                ctx,
                account,
                t,
                id,
                &body.to_value(),
                &headers,
                m == "PATCH",
            )?
        }
        _ => return fail(ProblemKind::NotFound, "no such route"),
    };
    let mut response = ApiResponse::json_text(written.status, written.body);
    if let Some(v) = written.etag {
        response.set_header("ETag", format!("\"{v}\""));
    }
    if headers.push {
        let (sync_id, apps) = plan_sync(
            engine,
            ctx,
            account,
            &headers,
            written.push,
            &connections,
            &filter,
        )?;
        response.set_header("X-Sync-ID", sync_id);
        response.set_header("X-Sync-Targets", apps.join(","));
    }
    if let Some((k, fp)) = idem {
        idempotency_store(ctx, account, &k, &fp, &response);
    }
    Ok(response)
}

fn read(
    ctx: &Ctx<'_>,
    account: &AccountRec,
    rest: &[&str],
    query: &[(String, String)],
) -> H<ApiResponse> {
    match rest {
        ["syncs", sid] => match ctx.tx.get_json::<SyncRec>(&keys::sync(&account.id, sid))? {
            Some(s) => Ok(ApiResponse::json(200, &sync_json(&s))),
            None => fail(ProblemKind::NotFound, "no such sync"),
        },
        [coll] => {
            let t = ObjectType::from_collection(coll).unwrap_or(ObjectType::Customer);
            let (page, size) = paging(query)?;
            let offset = (page - 1).saturating_mul(size);
            let rows = ctx.tx.scan(&keys::objects(&account.id, t), offset, size)?;
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
            Ok(ApiResponse::json_text(200, out))
        }
        [coll, id] => {
            let t = ObjectType::from_collection(coll).unwrap_or(ObjectType::Customer);
            let v = load_object(ctx, account, t, id)?;
            let version = v.get("version").and_then(Value::as_u64).unwrap_or(0);
            Ok(ApiResponse::json(200, &v).with_header("ETag", format!("\"{version}\"")))
        }
        _ => fail(ProblemKind::NotFound, "no such route"),
    }
}

pub(crate) fn paging(query: &[(String, String)]) -> H<(usize, usize)> {
    let mut page = 1usize;
    let mut size = DEFAULT_PAGE_SIZE;
    for (k, v) in query {
        match k.as_str() {
            "page" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => page = n,
                _ => {
                    return fail(
                        ProblemKind::InvalidQuery,
                        format!("page must be an integer from 1 to {MAX_PAGE}"),
                    )
                }
            },
            "pageSize" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => size = n,
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
    Ok((page, size))
}

/// The JSON answer of `GET /api/syncs/{id}`.
pub(crate) fn sync_json(s: &SyncRec) -> Value {
    json!({
        "id": s.id,
        "status": s.status,
        "requestId": s.request_id,
        "trackingId": s.tracking_id,
        "operation": s.operation,
        "object": s.object,
        "objects": s.objects,
        "createdAt": s.created_at,
        "updatedAt": s.updated_at,
        "targets": s.targets.iter().map(|t| json!({
            "app": t.app, "type": t.app_type, "connectionId": t.connection_id,
            "status": t.status, "attempts": t.attempts, "remoteId": t.remote_id,
            "lastError": t.last_error, "updatedAt": t.updated_at,
        })).collect::<Vec<_>>(),
    })
}

fn load_object(ctx: &Ctx<'_>, account: &AccountRec, t: ObjectType, id: &str) -> H<Value> {
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

fn new_meta(engine: &mut Engine, ctx: &Ctx<'_>) -> Meta {
    Meta {
        id: engine.new_id(ctx.now),
        version: 1,
        created_at: ctx.now_str.clone(),
        updated_at: ctx.now_str.clone(),
    }
}

/// Serialize an object once: the same text is stored, answered and pushed.
fn store<T: Serialize>(
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
    t: ObjectType,
    id: &str,
    obj: &T,
) -> Stored {
    let raw = serde_json::value::to_raw_value(obj)
        .unwrap_or_else(|_| RawValue::from_string("null".into()).unwrap_or_default());
    let text = raw.get().to_string();
    ctx.tx.put(keys::object(&account.id, t, id), text.clone());
    Stored { text, raw }
}

/// An object as stored: its JSON text, and the same text as a raw value for push tasks.
struct Stored {
    text: String,
    raw: Box<RawValue>,
}

fn set_unique(
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
    rule: &str,
    old: Option<&str>,
    new: &str,
    id: &str,
) {
    if let Some(o) = old {
        if o != new {
            ctx.tx.delete(keys::unique(&account.id, rule, o));
        }
    }
    ctx.tx
        .put(keys::unique(&account.id, rule, new), json_string(id));
}

fn label(t: ObjectType, name: &str) -> String {
    format!("{} {name}", t.as_str())
}

fn single(
    t: ObjectType,
    id: &str,
    label: String,
    stored: &Stored,
    operation: &'static str,
    references: Vec<(String, ObjectType, String)>,
) -> PushPlan {
    PushPlan {
        route_type: t,
        operation,
        label,
        items: vec![PushItem {
            object: ObjectRef {
                object_type: t,
                id: id.to_string(),
            },
            body: stored.raw.clone(),
            references,
            requires_previous: false,
            connector_references: ConnectorRefs::None,
            pointer: String::new(),
        }],
    }
}

fn create(
    engine: &mut Engine,
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
    t: ObjectType,
    body: &Json<'_>,
) -> H<Written> {
    match t {
        ObjectType::Customer => {
            let mut c = with_refs(ctx, account, |r| validate::validate_customer(body, r, None))?;
            c.meta = new_meta(engine, ctx);
            let v = store(ctx, account, t, &c.meta.id, &c);
            let push = single(t, &c.meta.id, label(t, &c.name), &v, "create", vec![]);
            Ok(Written {
                status: 201,
                etag: Some(1),
                push,
                body: v.text,
            })
        }
        ObjectType::Vendor => {
            let mut c = match validate::validate_vendor(body, "") {
                Ok(c) => c,
                Err(e) => return invalid(e),
            };
            c.meta = new_meta(engine, ctx);
            let v = store(ctx, account, t, &c.meta.id, &c);
            let push = single(t, &c.meta.id, label(t, &c.name), &v, "create", vec![]);
            Ok(Written {
                status: 201,
                etag: Some(1),
                push,
                body: v.text,
            })
        }
        ObjectType::Account => {
            let mut a = with_refs(ctx, account, |r| validate::validate_account(body, r, None))?;
            a.meta = new_meta(engine, ctx);
            set_unique(ctx, account, UNIQ_ACCOUNT_CODE, None, &a.code, &a.meta.id);
            let v = store(ctx, account, t, &a.meta.id, &a);
            let push = single(t, &a.meta.id, label(t, &a.code), &v, "create", vec![]);
            Ok(Written {
                status: 201,
                etag: Some(1),
                push,
                body: v.text,
            })
        }
        ObjectType::Invoice => {
            let mut inv = with_refs(ctx, account, |r| {
                validate::validate_invoice(body, r, None, 0)
            })?;
            inv.meta = new_meta(engine, ctx);
            set_unique(
                ctx,
                account,
                UNIQ_INVOICE_NUMBER,
                None,
                &inv.number,
                &inv.meta.id,
            );
            let v = store(ctx, account, t, &inv.meta.id, &inv);
            let refs = vec![(
                "customerId".to_string(),
                ObjectType::Customer,
                inv.customer_id.clone(),
            )];
            let mut push = single(t, &inv.meta.id, label(t, &inv.number), &v, "create", refs);
            if let Some(item) = push.items.first_mut() {
                // The invoice is stored; its lines' account ids move into the push.
                item.connector_references = ConnectorRefs::LineAccounts(
                    inv.lines.into_iter().map(|l| l.account_id).collect(),
                );
            }
            Ok(Written {
                status: 201,
                etag: Some(1),
                push,
                body: v.text,
            })
        }
        ObjectType::Expense => write_expense(engine, ctx, account, body, None),
        ObjectType::BankTransaction => {
            let max = engine.config.max_batch;
            let (list, is_array) = with_refs(ctx, account, |r| {
                validate::validate_bank_transactions(body, r, max)
            })?;
            let mut stored = Vec::with_capacity(list.len());
            let mut names = Vec::with_capacity(list.len());
            let mut items = Vec::with_capacity(list.len());
            for mut b in list {
                b.meta = new_meta(engine, ctx);
                if let Some(x) = &b.external_id {
                    let value = bank_uniq_value(&b.bank_account, x);
                    set_unique(
                        ctx,
                        account,
                        UNIQ_BANK_EXTERNAL_ID,
                        None,
                        &value,
                        &b.meta.id,
                    );
                }
                let v = store(ctx, account, t, &b.meta.id, &b);
                items.push(PushItem {
                    object: ObjectRef {
                        object_type: t,
                        id: b.meta.id.clone(),
                    },
                    body: v.raw.clone(),
                    references: vec![],
                    requires_previous: false,
                    connector_references: ConnectorRefs::None,
                    pointer: if is_array {
                        format!("/{}", items.len())
                    } else {
                        String::new()
                    },
                });
                names.push(b.external_id.clone().unwrap_or_else(|| b.meta.id.clone()));
                stored.push(v.text);
            }
            let label = match names.as_slice() {
                [one] => label(t, one),
                many => format!("{} bank transactions", many.len()),
            };
            let push = PushPlan {
                route_type: t,
                operation: "create",
                items,
                label,
            };
            let (body, etag) = if is_array {
                (format!("[{}]", stored.join(",")), None)
            } else {
                (
                    stored.into_iter().next().unwrap_or_else(|| "null".into()),
                    Some(1),
                )
            };
            Ok(Written {
                status: 201,
                etag,
                push,
                body,
            })
        }
        ObjectType::Payment => fail(
            ProblemKind::NotFound,
            "payments are created with POST /api/invoices/{id}/payments",
        ),
    }
}

fn write_expense(
    engine: &mut Engine,
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
    body: &(impl Document + ?Sized),
    existing: Option<Meta>,
) -> H<Written> {
    let (mut exp, new_vendor) = with_refs(ctx, account, |r| validate::validate_expense(body, r))?;
    let mut items = Vec::new();
    if let Some(mut vendor) = new_vendor {
        vendor.meta = new_meta(engine, ctx);
        exp.vendor_id = vendor.meta.id.clone();
        let vv = store(ctx, account, ObjectType::Vendor, &vendor.meta.id, &vendor);
        items.push(PushItem {
            object: ObjectRef {
                object_type: ObjectType::Vendor,
                id: vendor.meta.id.clone(),
            },
            body: vv.raw.clone(),
            references: vec![],
            requires_previous: false,
            connector_references: ConnectorRefs::None,
            pointer: "/vendor".to_string(),
        });
    }
    let (status, operation) = match existing {
        Some(meta) => {
            exp.meta = meta;
            (200, "update")
        }
        None => {
            exp.meta = new_meta(engine, ctx);
            (201, "create")
        }
    };
    let v = store(ctx, account, ObjectType::Expense, &exp.meta.id, &exp);
    let requires_previous = !items.is_empty();
    items.push(PushItem {
        object: ObjectRef {
            object_type: ObjectType::Expense,
            id: exp.meta.id.clone(),
        },
        body: v.raw.clone(),
        references: vec![(
            "vendorId".to_string(),
            ObjectType::Vendor,
            exp.vendor_id.clone(),
        )],
        requires_previous,
        connector_references: line_accounts(exp.lines.iter().map(|l| l.account_id.as_ref())),
        pointer: String::new(),
    });
    let push = PushPlan {
        route_type: ObjectType::Expense,
        operation,
        items,
        label: label(ObjectType::Expense, &exp.meta.id),
    };
    Ok(Written {
        status,
        etag: Some(exp.meta.version),
        push,
        body: v.text,
    })
}

#[allow(clippy::too_many_arguments)]
fn update(
    engine: &mut Engine,
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
    t: ObjectType,
    id: &str,
    body: &Value,
    headers: &WriteHeaders,
    patch: bool,
) -> H<Written> {
    let stored = load_object(ctx, account, t, id)?;
    let old: Meta = serde_json::from_value(stored.clone()).map_err(|e| CoreError::CorruptRow {
        key: keys::object(&account.id, t, id),
        reason: e.to_string(),
    })?;
    if let Some(IfMatch::Version(v)) = headers.if_match {
        if v != old.version {
            return fail(
                ProblemKind::PreconditionFailed,
                format!(
                    "If-Match names version {v}; the stored version is {}",
                    old.version
                ),
            );
        }
    }
    let input = if patch {
        let mut merged = stored.clone();
        merge_patch(&mut merged, body);
        if let Some(Value::String(sent)) = body.get("id") {
            if sent != id {
                return invalid(vec![field_error(
                    "/id",
                    codes::MISMATCH,
                    "id does not match the path",
                )]);
            }
        }
        strip_server_fields(&mut merged);
        merged
    } else {
        if let Some(sent) = body.get("id") {
            if sent.as_str() != Some(id) {
                return invalid(vec![field_error(
                    "/id",
                    codes::MISMATCH,
                    "id does not match the path",
                )]);
            }
        }
        let mut b = body.clone();
        strip_server_fields(&mut b);
        b
    };
    let meta = Meta {
        id: id.to_string(),
        version: old.version.saturating_add(1),
        created_at: old.created_at.clone(),
        updated_at: ctx.now_str.clone(),
    };
    let version = meta.version;
    let written = |v: Stored, name: &str, refs| Written {
        status: 200,
        etag: Some(version),
        push: single(t, id, label(t, name), &v, "update", refs),
        body: v.text,
    };
    match t {
        ObjectType::Customer => {
            let mut c = with_refs(ctx, account, |r| {
                validate::validate_customer(&input, r, Some(id))
            })?;
            c.meta = meta;
            Ok(written(store(ctx, account, t, id, &c), &c.name, vec![]))
        }
        ObjectType::Vendor => {
            let mut c = match validate::validate_vendor(&input, "") {
                Ok(c) => c,
                Err(e) => return invalid(e),
            };
            c.meta = meta;
            Ok(written(store(ctx, account, t, id, &c), &c.name, vec![]))
        }
        ObjectType::Account => {
            let mut a = with_refs(ctx, account, |r| {
                validate::validate_account(&input, r, Some(id))
            })?;
            a.meta = meta;
            let old_code = stored
                .get("code")
                .and_then(Value::as_str)
                .map(str::to_string);
            set_unique(
                ctx,
                account,
                UNIQ_ACCOUNT_CODE,
                old_code.as_deref(),
                &a.code,
                id,
            );
            Ok(written(store(ctx, account, t, id, &a), &a.code, vec![]))
        }
        ObjectType::Invoice => {
            if stored.get("status").and_then(Value::as_str) == Some("void") {
                return invalid(vec![field_error(
                    "/status",
                    codes::INVALID_STATE,
                    "a void invoice cannot be changed",
                )]);
            }
            let paid = stored
                .get("amountPaid")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let mut inv = with_refs(ctx, account, |r| {
                validate::validate_invoice(&input, r, Some(id), paid)
            })?;
            inv.meta = meta;
            let old_number = stored
                .get("number")
                .and_then(Value::as_str)
                .map(str::to_string);
            set_unique(
                ctx,
                account,
                UNIQ_INVOICE_NUMBER,
                old_number.as_deref(),
                &inv.number,
                id,
            );
            let refs = vec![(
                "customerId".to_string(),
                ObjectType::Customer,
                inv.customer_id.clone(),
            )];
            let accounts = line_accounts(inv.lines.iter().map(|l| l.account_id.as_ref()));
            let mut w = written(store(ctx, account, t, id, &inv), &inv.number, refs);
            for item in &mut w.push.items {
                item.connector_references = accounts.clone();
            }
            Ok(w)
        }
        ObjectType::Expense => write_expense(engine, ctx, account, &input, Some(meta)),
        _ => fail(ProblemKind::NotFound, "this object cannot be updated"),
    }
}

fn create_payment(
    engine: &mut Engine,
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
    invoice_id: &str,
    body: &Json<'_>,
) -> H<Written> {
    let stored = load_object(ctx, account, ObjectType::Invoice, invoice_id)?;
    let key = keys::object(&account.id, ObjectType::Invoice, invoice_id);
    let mut invoice: Invoice =
        serde_json::from_value(stored).map_err(|e| CoreError::CorruptRow {
            key: key.clone(),
            reason: e.to_string(),
        })?;
    let mut payment = match validate::validate_payment(body, &invoice) {
        Ok(p) => p,
        Err(e) => return invalid(e),
    };
    let (paid, balance) = match (
        invoice.amount_paid.checked_add(payment.amount),
        invoice.balance.checked_sub(payment.amount),
    ) {
        (Some(p), Some(b)) if b >= 0 => (p, b),
        _ => {
            return invalid(vec![field_error(
                "/amount",
                codes::OUT_OF_RANGE,
                "amount is above the invoice's balance",
            )])
        }
    };
    payment.meta = new_meta(engine, ctx);
    invoice.amount_paid = paid;
    invoice.balance = balance;
    if balance == 0 {
        invoice.status = InvoiceStatus::Paid;
    }
    invoice.meta.version = invoice.meta.version.saturating_add(1);
    invoice.meta.updated_at = ctx.now_str.clone();
    store(ctx, account, ObjectType::Invoice, invoice_id, &invoice);
    let v = store(
        ctx,
        account,
        ObjectType::Payment,
        &payment.meta.id,
        &payment,
    );
    let refs = vec![(
        "invoiceId".to_string(),
        ObjectType::Invoice,
        invoice_id.to_string(),
    )];
    let mut push = single(
        ObjectType::Payment,
        &payment.meta.id,
        format!("payment of invoice {}", invoice.number),
        &v,
        "create",
        refs,
    );
    for item in &mut push.items {
        item.connector_references = ConnectorRefs::Listed(vec![(
            "customerId".to_string(),
            ObjectType::Customer,
            invoice.customer_id.clone(),
        )]);
    }
    Ok(Written {
        status: 201,
        etag: Some(1),
        push,
        body: v.text,
    })
}

/// Plan the sync of a pushing write: the sync record, one target per selected connection,
/// and the push tasks, ordered behind unfinished pushes of the same objects.
///
/// A target whose connector finds fields missing that its provider needs is not pushed: when
/// the client named it in `X-Sync-Sources` (by app key or type) the whole write fails with
/// `422` and those errors; when it was only implied, the target is created `failed` with the
/// reason and no task.
fn plan_sync(
    engine: &mut Engine,
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
    headers: &WriteHeaders,
    plan: PushPlan,
    connections: &[Arc<ConnectionRec>],
    filter: &SourceFilter,
) -> H<(String, Vec<String>)> {
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
    let skipped = connector_checks(&plan, &selected, filter)?;
    let sync_id = engine.new_id(ctx.now);
    let mut targets = Vec::with_capacity(selected.len());
    let mut failed_at_plan = Vec::new();
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
                updated_at: ctx.now_str.clone(),
                tasks: Vec::new(),
            });
            continue;
        }
        let provider = !conn.connector.is_generic();
        let mut task_ids: Vec<String> = Vec::new();
        let mut previous: Option<String> = None;
        for item in &plan.items {
            let t = item.object.object_type;
            if t != plan.route_type && !conn.objects.contains(&t) {
                continue;
            }
            let with_connector_refs;
            let references: &[(String, ObjectType, String)] =
                if provider && !item.connector_references.is_empty() {
                    let mut r = item.references.clone();
                    item.connector_references.extend_into(&mut r);
                    with_connector_refs = r;
                    &with_connector_refs
                } else {
                    &item.references
                };
            let tid = engine.new_id(ctx.now);
            let mut waiting_on = Vec::new();
            let mut requires = Vec::new();
            let mut wait_for = |ctx: &mut Ctx<'_>, ot: ObjectType, oid: &str| -> H<()> {
                let chain = keys::chain(&conn.id, ot, oid);
                if let Some(tail) = ctx.tx.get_json::<String>(&chain)? {
                    if let Some(mut tail_task) = ctx.tx.get_json::<TaskRec>(&keys::task(&tail))? {
                        if !tail_task.state.status().is_final() && !waiting_on.contains(&tail) {
                            tail_task.successors.push(tid.clone());
                            ctx.tx.put_json(keys::task(&tail), &tail_task);
                            waiting_on.push(tail);
                        }
                    }
                }
                Ok(())
            };
            wait_for(ctx, t, &item.object.id)?;
            for (_, rt, rid) in references {
                wait_for(ctx, *rt, rid)?;
            }
            if item.requires_previous {
                if let Some(p) = &previous {
                    requires.push(p.clone());
                    if !waiting_on.contains(p) {
                        waiting_on.push(p.clone());
                    }
                }
            }
            let state = if waiting_on.is_empty() {
                ctx.tx.put(keys::due_task(ctx.now, &tid), "\"\"");
                TaskState::Pending { due_ms: ctx.now }
            } else {
                TaskState::Waiting
            };
            let task = NewTask {
                id: &tid,
                account_id: &account.id,
                sync_id: &sync_id,
                connection_id: &conn.id,
                object: &item.object,
                body: &item.body,
                tracking_id: headers.tracking_id.as_deref(),
                state: &state,
                attempts: 0,
                waiting_on: &waiting_on,
                requires: &requires,
                references,
                connector: conn.connector,
            };
            // The body plus about 600 bytes of ids, state and references.
            let hint = item.body.get().len() + 768;
            ctx.tx.put_json_sized(keys::task(&tid), &task, hint);
            ctx.tx
                .put(keys::chain(&conn.id, t, &item.object.id), json_string(&tid));
            previous = Some(tid.clone());
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
            updated_at: ctx.now_str.clone(),
            tasks: task_ids,
        });
    }
    let apps: Vec<String> = targets.iter().map(|t| t.app.clone()).collect();
    let objects: Vec<ObjectRef> = plan
        .items
        .iter()
        .filter(|i| i.object.object_type == plan.route_type)
        .map(|i| i.object.clone())
        .collect();
    let status = SyncStatus::aggregate(&targets.iter().map(|t| t.status).collect::<Vec<_>>());
    let sync = SyncRec {
        id: sync_id.clone(),
        account_id: account.id.clone(),
        status,
        request_id: ctx.request_id.clone(),
        tracking_id: headers.tracking_id.clone(),
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
    };
    for ti in failed_at_plan {
        emit_target_update(engine, ctx.now, &mut ctx.tx, &sync, ti)?;
    }
    if sync.status.is_final() {
        emit_sync_complete(engine, ctx.now, &mut ctx.tx, &sync)?;
    }
    ctx.tx
        .put_json_sized(keys::sync(&account.id, &sync_id), &sync, 1024);
    Ok((sync_id, apps))
}

/// Run each selected provider connector's requirements on the objects it would receive.
/// Answers, per selected connection, the reason it is skipped (an implied target), or stops
/// the write with `422` when a target the client named explicitly lacks fields.
fn connector_checks(
    plan: &PushPlan,
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
            let object = slot
                .get_or_insert_with(|| serde_json::from_str(item.body.get()).unwrap_or_default());
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
