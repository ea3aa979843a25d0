//! Fake providers on 127.0.0.1: QuickBooks Online, Xero, HubSpot and Shopify as real HTTP
//! servers that check each request the way the provider documents it (path, method,
//! headers, the required body fields and the references to objects they hold) and answer the
//! way the provider does: its success shape with ids (and QuickBooks' `SyncToken`), its error
//! format, its idempotency (`requestid`, `Idempotency-Key`), its `401` for a token it did not
//! issue or that expired, and its rate limiting (`429`, with `Retry-After` where the provider
//! sends one). A [`FakeTokenBroker`] plays the host's token broker and issues the access
//! tokens the providers accept.
//!
//! These fakes follow the providers' public documentation; they are not the providers. What
//! each checks is listed on [`Provider`].

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{json, Map, Value};

use writesync_server::httpd::{
    Handler, HttpLimits, HttpRequest, HttpResponse, HttpServer, Rejection, RequestHead,
};
use writesync_server::state::now_ms;

use super::Received;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The access tokens a [`FakeTokenBroker`] issued, shared with the providers that accept
/// them.
#[derive(Debug, Default)]
pub struct TokenBook {
    /// (token, still valid).
    issued: Mutex<Vec<(String, bool)>>,
}

impl TokenBook {
    /// A new, empty book.
    pub fn new() -> Arc<TokenBook> {
        Arc::new(TokenBook::default())
    }
    /// Issue a token.
    pub fn issue(&self, token: &str) {
        lock(&self.issued).push((token.to_string(), true));
    }
    /// Whether a token was issued and is still valid.
    pub fn valid(&self, token: &str) -> bool {
        lock(&self.issued).iter().any(|(t, ok)| *ok && t == token)
    }
    /// Expire one token.
    pub fn revoke(&self, token: &str) {
        for (t, ok) in lock(&self.issued).iter_mut() {
            if t == token {
                *ok = false;
            }
        }
    }
    /// Expire every token issued so far.
    pub fn revoke_all(&self) {
        for (_, ok) in lock(&self.issued).iter_mut() {
            *ok = false;
        }
    }
    /// How many tokens were issued.
    pub fn count(&self) -> usize {
        lock(&self.issued).len()
    }
}

/// Which provider a [`FakeProvider`] plays, and what it checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// QuickBooks Online: `POST /v3/company/{realmId}/{customer|vendor|account|invoice|payment|purchase|deposit}`
    /// with `requestid` (at most 50 characters, answers replayed) and `minorversion`,
    /// `Accept: application/json`, a bearer token; sparse updates with the current
    /// `SyncToken` (else `Stale Object Error` 5010), `?operation=void` for invoices; the
    /// references (`CustomerRef`, `VendorRef`/`EntityRef`, `AccountRef`, `LinkedTxn`) must
    /// name existing entities (else `Object Not Found` 610), a Deposit's `DepositToAccountRef`
    /// a Bank account, amounts of Purchase and Deposit lines are not negative; display names
    /// are unique across
    /// customers and vendors (6240); `Active` (deactivation) only on customers, vendors and
    /// accounts, and a deactivated entity cannot be referenced. Errors are `Fault` documents.
    QuickBooks {
        /// The company id expected in the path.
        realm: String,
    },
    /// Xero: `PUT /api.xro/2.0/{Contacts|Accounts|Invoices|Payments|BankTransactions}` and
    /// `POST .../{id}`, `xero-tenant-id`, `Accept: application/json`, a bearer token,
    /// `Idempotency-Key` (at most 128 characters, answers replayed); contacts need a unique
    /// `Name`, accounts a unique `Code` (at most 10) and a known `Type`, invoices `Type`
    /// `ACCREC`, a known `Contact.ContactID`, `LineItems` with `Description` and, when
    /// `AUTHORISED`, a known `AccountCode`; payments a known `Invoice.InvoiceID` and bank
    /// `Account.Code`; bank transactions `RECEIVE`/`SPEND`, a `Contact`, a known bank
    /// `BankAccount` and coded `LineItems`; `ContactStatus` ACTIVE or ARCHIVED on an existing
    /// contact only (an archived contact cannot be invoiced, an archived account not coded
    /// to). Errors are `ValidationException` documents.
    Xero {
        /// The tenant id expected in `xero-tenant-id`.
        tenant: String,
    },
    /// HubSpot CRM v3: `POST /crm/v3/objects/{contacts|companies}`, `PATCH .../{id}` and
    /// `DELETE .../{id}` (no body; `204`, `404` for an unknown id),
    /// `{"properties": {...}}` with string values of known properties only; contacts are
    /// unique by e-mail (`409 Contact already exists. Existing ID: N`).
    HubSpot,
    /// Shopify Admin REST: `POST /admin/api/{YYYY-MM}/customers.json` and
    /// `PUT .../customers/{id}.json` (and `DELETE` of it, no body: `200 {}`, `404` for an
    /// unknown id) with `X-Shopify-Access-Token`, `{"customer": {...}}`
    /// with a name, e-mail or phone; e-mails are unique and phones E.164 (`422` `errors`).
    Shopify,
}

impl Provider {
    /// The app key.
    pub fn key(&self) -> &'static str {
        match self {
            Provider::QuickBooks { .. } => "quickbooks",
            Provider::Xero { .. } => "xero",
            Provider::HubSpot => "hubspot",
            Provider::Shopify => "shopify",
        }
    }
}

/// A failure the fake is scripted to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scripted {
    /// `429` in the provider's form, with this `Retry-After` (when the provider sends one).
    RateLimit(Option<String>),
    /// `401` in the provider's form; the token of the request is expired.
    Unauthorized,
    /// A server error with this status.
    Status(u16),
}

/// One entity the fake holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// Its body as the provider would answer it.
    pub body: Value,
    /// QuickBooks' SyncToken (0, then +1 per update).
    pub version: u64,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    /// (kind, id) -> entity. Kinds: QuickBooks entity names, Xero collections, HubSpot
    /// objects, `customers` for Shopify.
    entities: BTreeMap<(String, String), Entity>,
    /// Idempotency key -> the first answer.
    replay: BTreeMap<String, Reply>,
    script: VecDeque<Scripted>,
    /// While set, every authenticated request is refused as the provider refuses a write
    /// its business rules forbid: (field, message).
    refusal: Option<(String, String)>,
}

#[derive(Debug)]
struct Shared {
    provider: Provider,
    tokens: Arc<TokenBook>,
    state: Mutex<State>,
    received: Mutex<Vec<Received>>,
    changed: Condvar,
}

/// An answer: status, headers, body.
type Reply = (u16, Vec<(String, String)>, String);

fn reply(status: u16, body: Value) -> Reply {
    (
        status,
        vec![("Content-Type".into(), "application/json".into())],
        body.to_string(),
    )
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|x| !x.is_empty())
}

fn split_target(target: &str) -> (&str, BTreeMap<String, String>) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let q = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    (path, q)
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    req.header("authorization")?.strip_prefix("Bearer ")
}

fn timestamp() -> String {
    writesync_core::util::time::rfc3339_millis(now_ms())
}

// ----------------------------------------------------------------------------------------
// QuickBooks
// ----------------------------------------------------------------------------------------

const QB_ENTITIES: [(&str, &str); 7] = [
    ("customer", "Customer"),
    ("vendor", "Vendor"),
    ("account", "Account"),
    ("invoice", "Invoice"),
    ("payment", "Payment"),
    ("purchase", "Purchase"),
    ("deposit", "Deposit"),
];

const QB_ACCOUNT_TYPES: [&str; 15] = [
    "Bank",
    "Other Current Asset",
    "Fixed Asset",
    "Other Asset",
    "Accounts Receivable",
    "Equity",
    "Expense",
    "Other Expense",
    "Cost of Goods Sold",
    "Accounts Payable",
    "Credit Card",
    "Long Term Liability",
    "Other Current Liability",
    "Income",
    "Other Income",
];

fn qb_fault(status: u16, kind: &str, errors: &[(&str, String, &str, &str)]) -> Reply {
    let list: Vec<Value> = errors
        .iter()
        .map(|(message, detail, code, element)| {
            json!({"Message": message, "Detail": detail, "code": code, "element": element})
        })
        .collect();
    reply(
        status,
        json!({"Fault": {"Error": list, "type": kind}, "time": timestamp()}),
    )
}

fn qb_invalid(detail: String, element: &str) -> Reply {
    qb_fault(
        400,
        "ValidationFault",
        &[(
            "Required param missing, need to supply the required value for the API",
            detail,
            "2020",
            element,
        )],
    )
}

fn qb_not_found(what: &str, id: &str) -> Reply {
    qb_fault(
        400,
        "ValidationFault",
        &[(
            "Object Not Found",
            format!("Object Not Found : Something you're trying to use has been made inactive or doesn't exist: {what} {id}"),
            "610",
            "",
        )],
    )
}

impl Shared {
    fn qb(&self, st: &mut State, req: &HttpRequest, realm: &str) -> Reply {
        let (path, query) = split_target(&req.target);
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (entity_path, entity) = match parts.as_slice() {
            ["v3", "company", r, e] if *r == realm => {
                match QB_ENTITIES.iter().find(|(p, _)| p == e) {
                    Some(&(p, name)) => (p, name),
                    None => {
                        return qb_fault(
                            400,
                            "ValidationFault",
                            &[(
                                "Unsupported Operation",
                                format!("Operation {e} is not supported."),
                                "500",
                                "",
                            )],
                        )
                    }
                }
            }
            ["v3", "company", _, _] => {
                return qb_fault(
                    403,
                    "AuthorizationFault",
                    &[(
                        "ApplicationAuthorizationFailed",
                        "The realm in the path is not the company of this token".into(),
                        "3100",
                        "",
                    )],
                )
            }
            _ => return reply(404, json!({"fault": "no such resource"})),
        };
        if req.method != "POST" {
            return qb_fault(
                405,
                "ValidationFault",
                &[(
                    "Unsupported Operation",
                    format!("Method {} is not supported", req.method),
                    "500",
                    "",
                )],
            );
        }
        if req.header("accept") != Some("application/json") {
            return (
                406,
                vec![("Content-Type".into(), "text/plain".into())],
                "the fake answers JSON only: send Accept: application/json".into(),
            );
        }
        let Some(request_id) = query.get("requestid") else {
            return qb_invalid(
                "requestid is required by this fake (idempotency)".into(),
                "requestid",
            );
        };
        if request_id.is_empty() || request_id.len() > 50 {
            return qb_fault(
                400,
                "ValidationFault",
                &[(
                    "Invalid Request Id",
                    format!(
                        "requestid must be 1 to 50 characters, got {}",
                        request_id.len()
                    ),
                    "4000",
                    "requestid",
                )],
            );
        }
        if !query
            .get("minorversion")
            .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        {
            return qb_invalid(
                "minorversion is required by this fake".into(),
                "minorversion",
            );
        }
        let replay_key = format!("{entity_path}:{request_id}");
        if let Some(r) = st.replay.get(&replay_key) {
            return r.clone();
        }
        let answer = self.qb_entity(st, req, entity, query.get("operation").map(String::as_str));
        if answer.0 == 200 {
            st.replay.insert(replay_key, answer.clone());
        }
        answer
    }

    fn qb_exists(st: &State, entity: &str, r: Option<&Value>) -> Result<String, Reply> {
        let id = r
            .and_then(|r| s(r, "value"))
            .unwrap_or_default()
            .to_string();
        if id.is_empty() {
            return Err(qb_invalid(
                format!("{entity}Ref.value is required"),
                &format!("{entity}Ref"),
            ));
        }
        // A deactivated entity (`Active: false`) cannot be referenced, as in QuickBooks.
        let active = st
            .entities
            .get(&(entity.to_string(), id.clone()))
            .is_some_and(|e| e.body.get("Active") != Some(&json!(false)));
        if !active {
            return Err(qb_not_found(entity, &id));
        }
        Ok(id)
    }

    fn qb_entity(
        &self,
        st: &mut State,
        req: &HttpRequest,
        entity: &str,
        operation: Option<&str>,
    ) -> Reply {
        if req
            .header("content-type")
            .map(|c| c.starts_with("application/json"))
            != Some(true)
        {
            return qb_fault(
                415,
                "ValidationFault",
                &[(
                    "Unsupported Media Type",
                    "send Content-Type: application/json".into(),
                    "4000",
                    "",
                )],
            );
        }
        let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&req.body) else {
            return qb_fault(
                400,
                "ValidationFault",
                &[(
                    "Request has invalid or unsupported property",
                    "the body is not a JSON object".into(),
                    "2010",
                    "",
                )],
            );
        };
        let body = Value::Object(body);
        if let Some(id) = s(&body, "Id") {
            let key = (entity.to_string(), id.to_string());
            let Some(current) = st.entities.get(&key).cloned() else {
                return qb_not_found(entity, id);
            };
            let sent = s(&body, "SyncToken").unwrap_or_default();
            if sent != current.version.to_string() {
                return qb_fault(400, "ValidationFault", &[(
                    "Stale Object Error",
                    format!("Stale Object Error : You and root were working on this at the same time. root finished before you did, so your work was not saved. (SyncToken {sent}, current {})", current.version),
                    "5010",
                    "",
                )]);
            }
            let mut merged = current.body.clone();
            if operation == Some("void") {
                if entity != "Invoice" {
                    return qb_fault(
                        400,
                        "ValidationFault",
                        &[(
                            "Unsupported Operation",
                            "void applies to transactions".into(),
                            "500",
                            "",
                        )],
                    );
                }
                merged["PrivateNote"] = json!("Voided");
                merged["Balance"] = json!(0);
                merged["TotalAmt"] = json!(0);
            } else {
                if body.get("sparse") != Some(&json!(true)) {
                    return qb_invalid("a full update needs every field; this fake takes sparse updates (\"sparse\": true)".into(), "sparse");
                }
                // Deactivation (`Active: false`) applies to names lists only.
                if let Some(a) = body.get("Active") {
                    if !a.is_boolean() || !matches!(entity, "Customer" | "Vendor" | "Account") {
                        return qb_invalid(format!("Active is a boolean of a Customer, Vendor or Account, got {a} on {entity}"), "Active");
                    }
                }
                if let Err(r) = self.qb_validate(st, entity, &body, true) {
                    return r;
                }
                if let (Some(m), Some(b)) = (merged.as_object_mut(), body.as_object()) {
                    for (k, v) in b {
                        if k != "sparse" {
                            m.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            let version = current.version + 1;
            merged["SyncToken"] = json!(version.to_string());
            merged["MetaData"] = json!({"CreateTime": current.body["MetaData"]["CreateTime"], "LastUpdatedTime": timestamp()});
            st.entities.insert(
                key,
                Entity {
                    body: merged.clone(),
                    version,
                },
            );
            return reply(200, json!({entity: merged, "time": timestamp()}));
        }
        if let Err(r) = self.qb_validate(st, entity, &body, false) {
            return r;
        }
        st.next_id += 1;
        let id = st.next_id.to_string();
        let mut stored = body.clone();
        stored["Id"] = json!(id);
        stored["SyncToken"] = json!("0");
        stored["domain"] = json!("QBO");
        stored["sparse"] = json!(false);
        stored["MetaData"] = json!({"CreateTime": timestamp(), "LastUpdatedTime": timestamp()});
        if entity == "Invoice" {
            let total: f64 = body["Line"]
                .as_array()
                .map(|l| l.iter().filter_map(|x| x["Amount"].as_f64()).sum())
                .unwrap_or(0.0)
                + body["TxnTaxDetail"]["TotalTax"].as_f64().unwrap_or(0.0);
            stored["TotalAmt"] = json!(total);
            stored["Balance"] = json!(total);
        }
        st.entities.insert(
            (entity.to_string(), id),
            Entity {
                body: stored.clone(),
                version: 0,
            },
        );
        reply(200, json!({entity: stored, "time": timestamp()}))
    }

    fn qb_validate(&self, st: &State, entity: &str, b: &Value, sparse: bool) -> Result<(), Reply> {
        let required = |field: &str| -> Result<(), Reply> {
            if b.get(field).is_none_or(Value::is_null) && !sparse {
                return Err(qb_invalid(
                    format!("Required parameter {field} is missing in the request"),
                    field,
                ));
            }
            Ok(())
        };
        match entity {
            "Customer" | "Vendor" => {
                required("DisplayName")?;
                if let Some(name) = s(b, "DisplayName") {
                    if name.chars().count() > 500 || name.contains(':') {
                        return Err(qb_fault(
                            400,
                            "ValidationFault",
                            &[(
                                "Invalid Name",
                                "The name supplied contains invalid characters or is too long."
                                    .into(),
                                "6000",
                                "DisplayName",
                            )],
                        ));
                    }
                    let id = s(b, "Id");
                    let taken = st.entities.iter().any(|((k, eid), e)| {
                        (k == "Customer" || k == "Vendor")
                            && Some(eid.as_str()) != id
                            && s(&e.body, "DisplayName") == Some(name)
                    });
                    if taken {
                        return Err(qb_fault(400, "ValidationFault", &[("Duplicate Name Exists Error", format!("The name supplied already exists. : Another customer, vendor or employee is already using this name. Please use a different name. ({name})"), "6240", "")]));
                    }
                }
                if let Some(e) = b.get("PrimaryEmailAddr") {
                    if !s(e, "Address").is_some_and(|a| a.contains('@')) {
                        return Err(qb_fault(
                            400,
                            "ValidationFault",
                            &[(
                                "Invalid Email Address format",
                                "PrimaryEmailAddr.Address is not an e-mail address".into(),
                                "6010",
                                "PrimaryEmailAddr",
                            )],
                        ));
                    }
                }
            }
            "Account" => {
                required("Name")?;
                required("AccountType")?;
                if let Some(t) = b.get("AccountType") {
                    if !t.as_str().is_some_and(|t| QB_ACCOUNT_TYPES.contains(&t)) {
                        return Err(qb_fault(
                            400,
                            "ValidationFault",
                            &[(
                                "Invalid Enumeration",
                                format!("Invalid AccountType {t}"),
                                "2170",
                                "AccountType",
                            )],
                        ));
                    }
                }
                if s(b, "Name")
                    .is_some_and(|n| n.chars().count() > 100 || n.contains(':') || n.contains('"'))
                {
                    return Err(qb_fault(
                        400,
                        "ValidationFault",
                        &[(
                            "Invalid Name",
                            "The account name is too long or contains invalid characters.".into(),
                            "6000",
                            "Name",
                        )],
                    ));
                }
            }
            "Invoice" => {
                if !sparse || b.get("CustomerRef").is_some() {
                    Self::qb_exists(st, "Customer", b.get("CustomerRef"))?;
                }
                if s(b, "DocNumber").is_some_and(|d| d.chars().count() > 21) {
                    return Err(qb_fault(400, "ValidationFault", &[("String length is either shorter or longer than supported by specification", "DocNumber is at most 21 characters".into(), "6000", "DocNumber")]));
                }
                if !sparse || b.get("Line").is_some() {
                    let lines = b["Line"].as_array().cloned().unwrap_or_default();
                    if lines.is_empty() {
                        return Err(qb_invalid(
                            "Required parameter Line is missing in the request".into(),
                            "Line",
                        ));
                    }
                    for l in &lines {
                        let ok = s(l, "DetailType") == Some("SalesItemLineDetail")
                            && l["Amount"].is_number()
                            && l["SalesItemLineDetail"].is_object();
                        if !ok {
                            return Err(qb_invalid("every Line needs DetailType SalesItemLineDetail, Amount and SalesItemLineDetail".into(), "Line"));
                        }
                    }
                }
            }
            "Payment" => {
                Self::qb_exists(st, "Customer", b.get("CustomerRef"))?;
                if !b["TotalAmt"].is_number() {
                    return Err(qb_invalid(
                        "Required parameter TotalAmt is missing in the request".into(),
                        "TotalAmt",
                    ));
                }
                for l in b["Line"].as_array().cloned().unwrap_or_default() {
                    for t in l["LinkedTxn"].as_array().cloned().unwrap_or_default() {
                        if s(&t, "TxnType") != Some("Invoice") {
                            return Err(qb_invalid(
                                "LinkedTxn.TxnType must be Invoice".into(),
                                "LinkedTxn",
                            ));
                        }
                        let id = s(&t, "TxnId").unwrap_or_default();
                        if !st
                            .entities
                            .contains_key(&("Invoice".to_string(), id.to_string()))
                        {
                            return Err(qb_not_found("Invoice", id));
                        }
                    }
                }
            }
            "Purchase" => {
                if !sparse {
                    if !s(b, "PaymentType")
                        .is_some_and(|t| matches!(t, "Cash" | "Check" | "CreditCard"))
                    {
                        return Err(qb_invalid("Required parameter PaymentType is missing or invalid (Cash, Check, CreditCard)".into(), "PaymentType"));
                    }
                    Self::qb_exists(st, "Account", b.get("AccountRef"))?;
                }
                if let Some(e) = b.get("EntityRef") {
                    let kind = s(e, "type").unwrap_or("Vendor");
                    Self::qb_exists(st, kind, Some(e))?;
                }
                let lines = b["Line"].as_array().cloned().unwrap_or_default();
                if lines.is_empty() && !sparse {
                    return Err(qb_invalid(
                        "Required parameter Line is missing in the request".into(),
                        "Line",
                    ));
                }
                for l in &lines {
                    if s(l, "DetailType") != Some("AccountBasedExpenseLineDetail")
                        || !l["Amount"].as_f64().is_some_and(|a| a >= 0.0)
                    {
                        return Err(qb_invalid(
                            "every Line needs DetailType AccountBasedExpenseLineDetail and an Amount of 0 or more"
                                .into(),
                            "Line",
                        ));
                    }
                    Self::qb_exists(
                        st,
                        "Account",
                        l["AccountBasedExpenseLineDetail"].get("AccountRef"),
                    )?;
                }
            }
            "Deposit" => {
                if !sparse || b.get("DepositToAccountRef").is_some() {
                    let bank = Self::qb_exists(st, "Account", b.get("DepositToAccountRef"))?;
                    let is_bank = st
                        .entities
                        .get(&("Account".to_string(), bank.clone()))
                        .is_some_and(|e| s(&e.body, "AccountType") == Some("Bank"));
                    if !is_bank {
                        return Err(qb_invalid(
                            format!("DepositToAccountRef {bank} is not a Bank account"),
                            "DepositToAccountRef",
                        ));
                    }
                }
                let lines = b["Line"].as_array().cloned().unwrap_or_default();
                if lines.is_empty() && !sparse {
                    return Err(qb_invalid(
                        "Required parameter Line is missing in the request".into(),
                        "Line",
                    ));
                }
                for l in &lines {
                    if s(l, "DetailType") != Some("DepositLineDetail")
                        || !l["Amount"].as_f64().is_some_and(|a| a >= 0.0)
                    {
                        return Err(qb_invalid(
                            "every Line needs DetailType DepositLineDetail and an Amount of 0 or more"
                                .into(),
                            "Line",
                        ));
                    }
                    Self::qb_exists(st, "Account", l["DepositLineDetail"].get("AccountRef"))?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    // ------------------------------------------------------------------------------------
    // Xero
    // ------------------------------------------------------------------------------------

    fn xero(&self, st: &mut State, req: &HttpRequest, tenant: &str) -> Reply {
        let (path, _) = split_target(&req.target);
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (coll, id) = match parts.as_slice() {
            ["api.xro", "2.0", c] => (*c, None),
            ["api.xro", "2.0", c, id] => (*c, Some(*id)),
            _ => return reply(404, json!({"Title": "Not Found", "Status": 404})),
        };
        let id_field = match coll {
            "Contacts" => "ContactID",
            "Accounts" => "AccountID",
            "Invoices" => "InvoiceID",
            "Payments" => "PaymentID",
            "BankTransactions" => "BankTransactionID",
            _ => {
                return reply(
                    404,
                    json!({"Title": "Not Found", "Status": 404, "Detail": format!("The resource {coll} is not supported by this fake")}),
                )
            }
        };
        match (req.method.as_str(), id) {
            ("PUT", None) | ("POST", _) => {}
            _ => return reply(405, json!({"Title": "Method Not Allowed", "Status": 405})),
        }
        if req.header("xero-tenant-id") != Some(tenant) {
            return reply(
                403,
                json!({"Type": null, "Title": "Forbidden", "Status": 403, "Detail": "AuthenticationUnsuccessful", "Instance": "xero-tenant-id does not name a connected organisation"}),
            );
        }
        if req.header("accept") != Some("application/json") {
            return (406, vec![("Content-Type".into(), "text/plain".into())], "the fake answers JSON only: send Accept: application/json (Xero answers XML otherwise)".into());
        }
        let key = req.header("idempotency-key").map(str::to_string);
        if let Some(k) = &key {
            if k.len() > 128 {
                return xero_invalid(vec![format!(
                    "Idempotency-Key is at most 128 characters, got {}",
                    k.len()
                )]);
            }
            if let Some(r) = st.replay.get(k) {
                return r.clone();
            }
        }
        let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
            return reply(
                400,
                json!({"ErrorNumber": 14, "Type": "PostDataInvalidException", "Message": "JSON for post data was invalid"}),
            );
        };
        let items: Vec<Value> = match body.get(coll).and_then(Value::as_array) {
            Some(list) if !list.is_empty() => list.clone(),
            Some(_) => return xero_invalid(vec![format!("{coll} is empty")]),
            None if coll == "Accounts" && body.is_object() => vec![body.clone()],
            None => {
                return reply(
                    400,
                    json!({"ErrorNumber": 14, "Type": "PostDataInvalidException", "Message": format!("JSON for post data was invalid: expected {{\"{coll}\": [...]}}")}),
                )
            }
        };
        let mut answered = Vec::new();
        for mut item in items {
            let existing = id
                .map(str::to_string)
                .or_else(|| s(&item, id_field).map(str::to_string));
            if let Some(eid) = &existing {
                if !st.entities.contains_key(&(coll.to_string(), eid.clone())) {
                    return reply(
                        404,
                        json!({"Title": "Not Found", "Status": 404, "Detail": format!("{id_field} {eid} does not exist")}),
                    );
                }
            }
            let errors = xero_validate(st, coll, &item, existing.as_deref());
            if !errors.is_empty() {
                return xero_invalid(errors);
            }
            let eid = match existing {
                Some(e) => {
                    let mut merged = st
                        .entities
                        .get(&(coll.to_string(), e.clone()))
                        .map(|x| x.body.clone())
                        .unwrap_or(json!({}));
                    if let (Some(m), Some(b)) = (merged.as_object_mut(), item.as_object()) {
                        for (k, v) in b {
                            m.insert(k.clone(), v.clone());
                        }
                    }
                    item = merged;
                    e
                }
                None => {
                    st.next_id += 1;
                    format!("{:08x}-0000-4000-8000-{:012x}", st.next_id, st.next_id)
                }
            };
            item[id_field] = json!(eid);
            item["UpdatedDateUTC"] = json!(format!("/Date({})/", now_ms()));
            if coll == "Contacts" && item.get("ContactStatus").is_none() {
                item["ContactStatus"] = json!("ACTIVE");
            }
            st.entities.insert(
                (coll.to_string(), eid),
                Entity {
                    body: item.clone(),
                    version: 0,
                },
            );
            answered.push(item);
        }
        let answer = reply(
            200,
            json!({"Id": format!("{:08x}-0000-4000-9000-000000000000", st.next_id), "Status": "OK",
                                       "ProviderName": "writesync fake", "DateTimeUTC": format!("/Date({})/", now_ms()),
                                       coll: answered}),
        );
        if let Some(k) = key {
            st.replay.insert(k, answer.clone());
        }
        answer
    }

    // ------------------------------------------------------------------------------------
    // HubSpot
    // ------------------------------------------------------------------------------------

    fn hubspot(&self, st: &mut State, req: &HttpRequest) -> Reply {
        let (path, _) = split_target(&req.target);
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (object, id) = match parts.as_slice() {
            ["crm", "v3", "objects", o] if matches!(*o, "contacts" | "companies") => (*o, None),
            ["crm", "v3", "objects", o, id] if matches!(*o, "contacts" | "companies") => {
                (*o, Some(*id))
            }
            _ => return hs_error(404, "resource not found", "OBJECT_NOT_FOUND"),
        };
        match (req.method.as_str(), id) {
            ("POST", None) | ("PATCH", Some(_)) => {}
            // Archive: no body; `204`, or `404` for an id it does not hold.
            ("DELETE", Some(i)) => {
                if req.has_body && !req.body.is_empty() {
                    return hs_error(400, "a DELETE takes no body", "VALIDATION_ERROR");
                }
                return match st.entities.remove(&(object.to_string(), i.to_string())) {
                    Some(_) => (204, Vec::new(), String::new()),
                    None => hs_error(404, "resource not found", "OBJECT_NOT_FOUND"),
                };
            }
            _ => {
                return hs_error(
                    405,
                    &format!("{} is not allowed here", req.method),
                    "VALIDATION_ERROR",
                )
            }
        }
        let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
            return hs_error(400, "Invalid input JSON on line 1", "VALIDATION_ERROR");
        };
        let Some(props) = body.get("properties").and_then(Value::as_object) else {
            return hs_error(
                400,
                "Invalid input JSON: properties is required",
                "VALIDATION_ERROR",
            );
        };
        let known: &[&str] = if object == "contacts" {
            &[
                "email",
                "firstname",
                "lastname",
                "phone",
                "company",
                "address",
                "city",
                "state",
                "zip",
                "country",
                "website",
                "jobtitle",
            ]
        } else {
            &[
                "name",
                "domain",
                "phone",
                "address",
                "address2",
                "city",
                "state",
                "zip",
                "country",
                "industry",
                "description",
            ]
        };
        let mut invalid = Vec::new();
        for (k, v) in props {
            if !known.contains(&k.as_str()) {
                invalid.push(json!({"isValid": false, "message": format!("Property \"{k}\" does not exist"), "error": "PROPERTY_DOESNT_EXIST", "name": k}));
            } else if !v.is_string() {
                invalid.push(json!({"isValid": false, "message": format!("{v} was not a valid string."), "error": "INVALID_STRING", "name": k}));
            }
        }
        if !invalid.is_empty() {
            return hs_error(
                400,
                &format!("Property values were not valid: {}", Value::Array(invalid)),
                "VALIDATION_ERROR",
            );
        }
        if object == "contacts" {
            if let Some(email) = props.get("email").and_then(Value::as_str) {
                let holder = st.entities.iter().find(|((k, eid), e)| {
                    k == "contacts"
                        && Some(eid.as_str()) != id
                        && e.body["properties"]["email"]
                            .as_str()
                            .map(str::to_ascii_lowercase)
                            == Some(email.to_ascii_lowercase())
                });
                if let Some(((_, existing), _)) = holder {
                    return hs_error(
                        409,
                        &format!("Contact already exists. Existing ID: {existing}"),
                        "CONFLICT",
                    );
                }
            }
        }
        let now = timestamp();
        let (status, eid, mut stored) = match id {
            Some(i) => match st.entities.get(&(object.to_string(), i.to_string())) {
                Some(e) => (200, i.to_string(), e.body.clone()),
                None => return hs_error(404, "resource not found", "OBJECT_NOT_FOUND"),
            },
            None => {
                st.next_id += 1;
                let i = (st.next_id + 500).to_string();
                (
                    201,
                    i.clone(),
                    json!({"id": i, "properties": {"hs_object_id": i}, "createdAt": now, "archived": false}),
                )
            }
        };
        if let Some(m) = stored["properties"].as_object_mut() {
            for (k, v) in props {
                m.insert(k.clone(), v.clone());
            }
        }
        stored["updatedAt"] = json!(now);
        st.entities.insert(
            (object.to_string(), eid),
            Entity {
                body: stored.clone(),
                version: 0,
            },
        );
        reply(status, stored)
    }

    // ------------------------------------------------------------------------------------
    // Shopify
    // ------------------------------------------------------------------------------------

    fn shopify(&self, st: &mut State, req: &HttpRequest) -> Reply {
        let (path, _) = split_target(&req.target);
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (version, id) = match parts.as_slice() {
            ["admin", "api", v, "customers.json"] => (*v, None),
            ["admin", "api", v, "customers", file] => match file.strip_suffix(".json") {
                Some(i) => (*v, Some(i)),
                None => return reply(404, json!({"errors": "Not Found"})),
            },
            _ => return reply(404, json!({"errors": "Not Found"})),
        };
        let vb = version.as_bytes();
        if !(version.len() == 7
            && vb[4] == b'-'
            && vb
                .iter()
                .enumerate()
                .all(|(n, c)| n == 4 || c.is_ascii_digit()))
        {
            return reply(404, json!({"errors": "Not Found"}));
        }
        match (req.method.as_str(), id) {
            ("POST", None) | ("PUT", Some(_)) => {}
            // `200 {}`, or `404` for an id it does not hold; a DELETE takes no body.
            ("DELETE", Some(i)) if req.body.is_empty() => {
                return match st
                    .entities
                    .remove(&("customers".to_string(), i.to_string()))
                {
                    Some(_) => reply(200, json!({})),
                    None => reply(404, json!({"errors": "Not Found"})),
                };
            }
            _ => return reply(406, json!({"errors": "Not Acceptable"})),
        }
        let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
            return reply(
                400,
                json!({"errors": {"customer": "Required parameter missing or invalid"}}),
            );
        };
        let Some(c) = body.get("customer").and_then(Value::as_object) else {
            return reply(
                400,
                json!({"errors": {"customer": "Required parameter missing or invalid"}}),
            );
        };
        let known = [
            "id",
            "first_name",
            "last_name",
            "email",
            "phone",
            "addresses",
            "note",
            "tags",
            "tax_exempt",
            "verified_email",
            "send_email_welcome",
        ];
        if let Some(k) = c.keys().find(|k| !known.contains(&k.as_str())) {
            return reply(400, json!({"errors": {k: ["is not a customer attribute"]}}));
        }
        let mut errors = Map::new();
        if let Some(p) = c.get("phone").and_then(Value::as_str) {
            let digits = p.strip_prefix('+').unwrap_or("");
            if !((7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())) {
                errors.insert("phone".into(), json!(["is invalid"]));
            }
        }
        if let Some(e) = c.get("email").and_then(Value::as_str) {
            let taken = st.entities.iter().any(|((k, eid), x)| {
                k == "customers"
                    && Some(eid.as_str()) != id
                    && x.body["email"].as_str().map(str::to_ascii_lowercase)
                        == Some(e.to_ascii_lowercase())
            });
            if taken {
                errors.insert("email".into(), json!(["has already been taken"]));
            }
        }
        if id.is_none()
            && ["first_name", "last_name", "email", "phone"]
                .iter()
                .all(|k| c.get(*k).and_then(Value::as_str).is_none_or(str::is_empty))
        {
            errors.insert(
                "customer".into(),
                json!(["Customer must have a name, phone number or email address"]),
            );
        }
        if !errors.is_empty() {
            return reply(422, json!({"errors": errors}));
        }
        let now = timestamp();
        let (status, eid, mut stored) = match id {
            Some(i) => match st.entities.get(&("customers".to_string(), i.to_string())) {
                Some(e) => (200, i.to_string(), e.body.clone()),
                None => return reply(404, json!({"errors": "Not Found"})),
            },
            None => {
                st.next_id += 1;
                let n = 207_119_550 + st.next_id;
                (
                    201,
                    n.to_string(),
                    json!({"id": n, "created_at": now, "state": "disabled", "currency": "USD"}),
                )
            }
        };
        if let Some(m) = stored.as_object_mut() {
            for (k, v) in c {
                if k != "id" {
                    m.insert(k.clone(), v.clone());
                }
            }
            m.insert("updated_at".into(), json!(now));
        }
        st.entities.insert(
            ("customers".to_string(), eid),
            Entity {
                body: stored.clone(),
                version: 0,
            },
        );
        reply(status, json!({ "customer": stored }))
    }

    // ------------------------------------------------------------------------------------
    // Common
    // ------------------------------------------------------------------------------------

    fn token_of<'a>(&self, req: &'a HttpRequest) -> Option<&'a str> {
        match self.provider {
            Provider::Shopify => req.header("x-shopify-access-token"),
            _ => bearer(req),
        }
    }

    fn unauthorized(&self) -> Reply {
        match &self.provider {
            Provider::QuickBooks { .. } => reply(
                401,
                json!({"fault": {"error": [{
                "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                "detail": "Token expired: the access token is not valid",
                "code": "3200"}], "type": "AUTHENTICATION"}, "time": timestamp()}),
            ),
            Provider::Xero { .. } => reply(
                401,
                json!({"Type": null, "Title": "Unauthorized", "Status": 401,
                "Detail": "AuthenticationUnsuccessful", "Instance": "fake", "Extensions": {}}),
            ),
            Provider::HubSpot => hs_error(
                401,
                "The OAuth token used to make this call expired.",
                "EXPIRED_AUTHENTICATION",
            ),
            Provider::Shopify => reply(
                401,
                json!({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}),
            ),
        }
    }

    fn rate_limited(&self, retry_after: Option<String>) -> Reply {
        let (status, mut headers, body) = match &self.provider {
            Provider::QuickBooks { .. } => qb_fault(
                429,
                "ThrottlingFault",
                &[(
                    "message=ThrottleExceeded; errorCode=003001; statusCode=429",
                    "The request limit was reached.".into(),
                    "3001",
                    "",
                )],
            ),
            Provider::Xero { .. } => (
                429,
                vec![("X-Rate-Limit-Problem".to_string(), "minute".to_string())],
                String::new(),
            ),
            Provider::HubSpot => reply(
                429,
                json!({"status": "error", "message": "You have reached your secondly limit.",
                "errorType": "RATE_LIMIT", "correlationId": "fake", "policyName": "SECONDLY"}),
            ),
            Provider::Shopify => reply(
                429,
                json!({"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."}),
            ),
        };
        if let Some(r) = retry_after {
            headers.push(("Retry-After".into(), r));
        }
        (status, headers, body)
    }

    fn server_error(&self, status: u16) -> Reply {
        match &self.provider {
            Provider::QuickBooks { .. } => qb_fault(
                status,
                "SystemFault",
                &[(
                    "An application error has occurred while processing your request",
                    "System Failure Error".into(),
                    "10000",
                    "",
                )],
            ),
            Provider::Xero { .. } => reply(
                status,
                json!({"Title": "An error occurred", "Status": status, "Detail": "Internal error"}),
            ),
            Provider::HubSpot => hs_error(status, "internal error", "INTERNAL_ERROR"),
            Provider::Shopify => reply(status, json!({"errors": "Internal Server Error"})),
        }
    }

    /// A write refused by the provider's business rules (not retryable), in its format,
    /// naming `field`.
    fn refused(&self, field: &str, message: &str) -> Reply {
        match &self.provider {
            Provider::QuickBooks { .. } => qb_fault(
                400,
                "ValidationFault",
                &[(
                    "A business validation error has occurred while processing your request",
                    format!("Business Validation Error: {message}"),
                    "6000",
                    field,
                )],
            ),
            Provider::Xero { .. } => xero_invalid(vec![format!("{field}: {message}")]),
            Provider::HubSpot => reply(
                400,
                json!({"status": "error", "message": message, "category": "VALIDATION_ERROR",
                       "correlationId": "00000000-0000-4000-8000-00000000fa4e",
                       "errors": [{"message": message, "context": {"propertyName": [field]}}]}),
            ),
            Provider::Shopify => reply(422, json!({"errors": {field: [message]}})),
        }
    }

    fn answer(&self, req: &HttpRequest) -> Reply {
        let mut st = lock(&self.state);
        if let Some(s) = st.script.pop_front() {
            match s {
                Scripted::RateLimit(after) => return self.rate_limited(after),
                Scripted::Status(code) => return self.server_error(code),
                Scripted::Unauthorized => {
                    if let Some(t) = self.token_of(req) {
                        self.tokens.revoke(t);
                    }
                    return self.unauthorized();
                }
            }
        }
        if !self.token_of(req).is_some_and(|t| self.tokens.valid(t)) {
            return self.unauthorized();
        }
        if let Some((field, message)) = &st.refusal {
            return self.refused(field, message);
        }
        match &self.provider {
            Provider::QuickBooks { realm } => self.qb(&mut st, req, realm),
            Provider::Xero { tenant } => self.xero(&mut st, req, tenant),
            Provider::HubSpot => self.hubspot(&mut st, req),
            Provider::Shopify => self.shopify(&mut st, req),
        }
    }
}

fn hs_error(status: u16, message: &str, category: &str) -> Reply {
    reply(
        status,
        json!({"status": "error", "message": message, "correlationId": "00000000-0000-4000-8000-00000000fa4e", "category": category}),
    )
}

fn xero_invalid(messages: Vec<String>) -> Reply {
    let errors: Vec<Value> = messages
        .into_iter()
        .map(|m| json!({"Message": m}))
        .collect();
    reply(
        400,
        json!({"ErrorNumber": 10, "Type": "ValidationException", "Message": "A validation exception occurred",
                      "Elements": [{"ValidationErrors": errors}]}),
    )
}

/// Whether an account with this code exists and is not archived (lines cannot be coded to
/// an archived account).
fn xero_account_code_exists(st: &State, code: &str) -> bool {
    st.entities.iter().any(|((k, _), e)| {
        k == "Accounts"
            && s(&e.body, "Code") == Some(code)
            && s(&e.body, "Status") != Some("ARCHIVED")
    })
}

fn xero_validate(st: &State, coll: &str, item: &Value, existing: Option<&str>) -> Vec<String> {
    let mut errors = Vec::new();
    let creating = existing.is_none();
    match coll {
        "Contacts"
            if !matches!(s(item, "ContactStatus"), None | Some("ACTIVE" | "ARCHIVED"))
                || (creating && item.get("ContactStatus").is_some()) =>
        {
            errors.push(
                "ContactStatus is ACTIVE or ARCHIVED, and only on an existing contact.".into(),
            );
        }
        "Contacts" => match s(item, "Name") {
            Some(name) => {
                let taken = st.entities.iter().any(|((k, eid), e)| {
                    k == "Contacts"
                        && Some(eid.as_str()) != existing
                        && s(&e.body, "Name") == Some(name)
                });
                if taken {
                    errors.push(format!("The contact name {name} is already assigned to another contact. The contact name must be unique across all active contacts."));
                }
            }
            None if creating => errors.push("The contact name must be specified.".into()),
            None => {}
        },
        "Accounts" => {
            if creating {
                for f in ["Code", "Name", "Type"] {
                    if s(item, f).is_none() {
                        errors.push(format!("Please enter a {}.", f.to_ascii_lowercase()));
                    }
                }
            }
            if let Some(code) = s(item, "Code") {
                if code.chars().count() > 10 {
                    errors.push("Account code must be between 1 and 10 characters long.".into());
                }
                let taken = st.entities.iter().any(|((k, eid), e)| {
                    k == "Accounts"
                        && Some(eid.as_str()) != existing
                        && s(&e.body, "Code") == Some(code)
                });
                if taken {
                    errors.push("Please enter a unique Code.".into());
                }
            }
            let types = [
                "BANK",
                "CURRENT",
                "CURRLIAB",
                "DEPRECIATN",
                "DIRECTCOSTS",
                "EQUITY",
                "EXPENSE",
                "FIXED",
                "INVENTORY",
                "LIABILITY",
                "NONCURRENT",
                "OTHERINCOME",
                "OVERHEADS",
                "PREPAYMENT",
                "REVENUE",
                "SALES",
                "TERMLIAB",
            ];
            if let Some(t) = s(item, "Type") {
                if !types.contains(&t) {
                    errors.push(format!("Account type '{t}' is not valid."));
                }
            }
            if let Some(st_) = s(item, "Status") {
                if !matches!(st_, "ACTIVE" | "ARCHIVED") {
                    errors.push(format!("Status '{st_}' is not valid for an account."));
                }
            }
        }
        "Invoices" => {
            if s(item, "Status") == Some("VOIDED") && !creating {
                return errors;
            }
            if !matches!(s(item, "Type"), Some("ACCREC" | "ACCPAY")) {
                errors.push("Invoice Type must be specified (ACCREC or ACCPAY).".into());
            }
            match item.get("Contact").and_then(|c| s(c, "ContactID")) {
                Some(cid)
                    if st
                        .entities
                        .get(&("Contacts".to_string(), cid.to_string()))
                        .is_some_and(|c| s(&c.body, "ContactStatus") != Some("ARCHIVED")) => {}
                Some(cid) => errors.push(format!("Contact {cid} does not exist or is archived.")),
                None => {
                    errors.push("A Contact must be specified for this type of transaction.".into())
                }
            }
            let authorised = s(item, "Status") == Some("AUTHORISED");
            let lines = item["LineItems"].as_array().cloned().unwrap_or_default();
            if lines.is_empty() {
                errors.push("Invoice must contain at least one line item.".into());
            }
            for l in &lines {
                if s(l, "Description").is_none() {
                    errors.push("Description needs to be specified.".into());
                }
                match s(l, "AccountCode") {
                    Some(c) if !xero_account_code_exists(st, c) => errors.push(format!(
                        "Account code '{c}' is not a valid code for this document."
                    )),
                    None if authorised => errors.push(
                        "Account code must be specified for an AUTHORISED invoice line.".into(),
                    ),
                    _ => {}
                }
            }
        }
        "Payments" => {
            match item.get("Invoice").and_then(|i| s(i, "InvoiceID")) {
                Some(iid)
                    if st
                        .entities
                        .contains_key(&("Invoices".to_string(), iid.to_string())) => {}
                _ => errors.push("Invoice could not be found.".into()),
            }
            match item.get("Account").and_then(|a| s(a, "Code")) {
                Some(c) if xero_account_code_exists(st, c) => {}
                _ => errors.push("Account could not be found.".into()),
            }
            if !item["Amount"].as_f64().is_some_and(|a| a > 0.0) {
                errors.push("Payment amount must be greater than zero.".into());
            }
            if s(item, "Date").is_none() {
                errors.push("Payment date must be specified.".into());
            }
        }
        "BankTransactions" => {
            if !matches!(s(item, "Type"), Some("RECEIVE" | "SPEND")) {
                errors.push("The Type of the bank transaction must be RECEIVE or SPEND.".into());
            }
            let contact = item.get("Contact");
            match contact.and_then(|c| s(c, "ContactID")) {
                Some(cid)
                    if !st
                        .entities
                        .contains_key(&("Contacts".to_string(), cid.to_string())) =>
                {
                    errors.push(format!("Contact {cid} does not exist."))
                }
                Some(_) => {}
                None if contact.and_then(|c| s(c, "Name")).is_none() => {
                    errors.push("A Contact must be specified for this type of transaction.".into())
                }
                None => {}
            }
            let bank = item.get("BankAccount");
            let bank_ok = match bank {
                Some(b) => match (s(b, "Code"), s(b, "AccountID")) {
                    (Some(c), _) => st.entities.iter().any(|((k, _), e)| {
                        k == "Accounts"
                            && s(&e.body, "Code") == Some(c)
                            && s(&e.body, "Type") == Some("BANK")
                    }),
                    (None, Some(id)) => st
                        .entities
                        .get(&("Accounts".to_string(), id.to_string()))
                        .is_some_and(|e| s(&e.body, "Type") == Some("BANK")),
                    _ => false,
                },
                None => false,
            };
            if !bank_ok {
                errors.push("Bank Account could not be found or is not a bank account.".into());
            }
            for l in item["LineItems"].as_array().cloned().unwrap_or_default() {
                match s(&l, "AccountCode") {
                    Some(c) if xero_account_code_exists(st, c) => {}
                    _ => {
                        errors.push("Account code must be a valid code for every line item.".into())
                    }
                }
            }
        }
        _ => {}
    }
    errors
}

impl Handler for Shared {
    fn handle(&self, req: HttpRequest) -> HttpResponse {
        let (status, headers, body) = self.answer(&req);
        let rec = Received {
            method: req.method.clone(),
            path: req.target.clone(),
            headers: req.headers.clone(),
            body: String::from_utf8_lossy(&req.body).into_owned(),
            at_ms: now_ms(),
            answered: status,
        };
        lock(&self.received).push(rec);
        self.changed.notify_all();
        HttpResponse {
            status,
            headers,
            body: body.into_bytes(),
        }
    }

    fn reject(&self, _head: RequestHead, why: Rejection) -> HttpResponse {
        HttpResponse::new(400, "text/plain", format!("refused: {why:?}"))
    }
}

/// A fake provider listening on 127.0.0.1 (see [`Provider`]).
#[derive(Debug)]
pub struct FakeProvider {
    shared: Arc<Shared>,
    http: Option<HttpServer>,
    addr: SocketAddr,
}

impl FakeProvider {
    /// Start a fake of `provider` that accepts the tokens of `tokens`.
    pub fn start(provider: Provider, tokens: Arc<TokenBook>) -> std::io::Result<FakeProvider> {
        let shared = Arc::new(Shared {
            provider,
            tokens,
            state: Mutex::new(State::default()),
            received: Mutex::new(Vec::new()),
            changed: Condvar::new(),
        });
        let handler: Arc<dyn Handler> = shared.clone();
        let http = HttpServer::bind("127.0.0.1:0", HttpLimits::default(), handler, 1)?;
        let addr = http.local_addr();
        Ok(FakeProvider {
            shared,
            http: Some(http),
            addr,
        })
    }

    /// Which provider it plays.
    pub fn provider(&self) -> &Provider {
        &self.shared.provider
    }

    /// `http://127.0.0.1:PORT`: the connection's `baseUrl`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Hold an entity already (a bank account the user has, an item, ...). `kind` is the
    /// QuickBooks entity name (`Account`), the Xero collection (`Accounts`), the HubSpot
    /// object (`companies`) or `customers` for Shopify.
    pub fn seed(&self, kind: &str, id: &str, body: Value) {
        self.seed_version(kind, id, body, 0);
    }

    /// [`FakeProvider::seed`] with a version (QuickBooks' SyncToken).
    pub fn seed_version(&self, kind: &str, id: &str, body: Value, version: u64) {
        lock(&self.shared.state)
            .entities
            .insert((kind.to_string(), id.to_string()), Entity { body, version });
    }

    /// The entity `kind`/`id`, if the fake holds it.
    pub fn entity(&self, kind: &str, id: &str) -> Option<Entity> {
        lock(&self.shared.state)
            .entities
            .get(&(kind.to_string(), id.to_string()))
            .cloned()
    }

    /// Every entity of a kind, by id.
    pub fn entities(&self, kind: &str) -> Vec<(String, Entity)> {
        lock(&self.shared.state)
            .entities
            .iter()
            .filter(|((k, _), _)| k == kind)
            .map(|((_, id), e)| (id.clone(), e.clone()))
            .collect()
    }

    /// Answer the next `n` requests with the provider's `429`, with this `Retry-After` (in
    /// the provider's form; `None` when it sends none).
    pub fn rate_limit_next(&self, n: usize, retry_after: Option<&str>) {
        let mut st = lock(&self.shared.state);
        for _ in 0..n {
            st.script
                .push_back(Scripted::RateLimit(retry_after.map(str::to_string)));
        }
    }

    /// Answer the next request with the provider's `401` and expire the token it carried.
    pub fn expire_token_next(&self) {
        lock(&self.shared.state)
            .script
            .push_back(Scripted::Unauthorized);
    }

    /// Answer the next `n` requests with a server error `status` in the provider's form.
    pub fn fail_next(&self, n: usize, status: u16) {
        let mut st = lock(&self.shared.state);
        for _ in 0..n {
            st.script.push_back(Scripted::Status(status));
        }
    }

    /// Refuse every request from now on as the provider refuses a write its business rules
    /// forbid (QuickBooks' `ValidationFault` 6000, Xero's `ValidationException`, HubSpot's
    /// `VALIDATION_ERROR`, Shopify's `422`), naming `field` with `message`; `None` accepts
    /// again. The refusal is not retryable and is not kept for idempotent replays.
    pub fn refuse(&self, refusal: Option<(&str, &str)>) {
        lock(&self.shared.state).refusal = refusal.map(|(f, m)| (f.to_string(), m.to_string()));
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.shared.received).clone()
    }

    /// How many requests were received.
    pub fn count(&self) -> usize {
        lock(&self.shared.received).len()
    }

    /// Wait until `pred` holds for the requests received, at most `timeout`.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&[Received]) -> bool) -> bool {
        super::wait_for(&self.shared.received, &self.shared.changed, timeout, pred)
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        if let Some(h) = self.http.take() {
            h.shutdown(Duration::from_secs(2));
        }
    }
}

#[derive(Debug)]
struct BrokerShared {
    tokens: Arc<TokenBook>,
    lifetime_ms: Mutex<i64>,
    refuse: Mutex<VecDeque<u16>>,
    received: Mutex<Vec<Received>>,
}

impl Handler for BrokerShared {
    fn handle(&self, req: HttpRequest) -> HttpResponse {
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let refused = lock(&self.refuse).pop_front();
        let (status, text) = match (refused, s(&body, "connectionId"), s(&body, "app")) {
            (Some(code), _, _) => (
                code,
                json!({"error": "the broker refused (scripted)"}).to_string(),
            ),
            (None, Some(_), Some(app)) if req.method == "POST" => {
                let token = format!("tok-{app}-{}", self.tokens.count() + 1);
                self.tokens.issue(&token);
                let expires = now_ms() + *lock(&self.lifetime_ms);
                (
                    200,
                    json!({"accessToken": token, "expiresAt": expires}).to_string(),
                )
            }
            _ => (
                400,
                json!({"error": "expected POST {connectionId, app, ...}"}).to_string(),
            ),
        };
        lock(&self.received).push(Received {
            method: req.method.clone(),
            path: req.target.clone(),
            headers: req.headers.clone(),
            body: String::from_utf8_lossy(&req.body).into_owned(),
            at_ms: now_ms(),
            answered: status,
        });
        HttpResponse::new(status, "application/json", text)
    }

    fn reject(&self, _head: RequestHead, why: Rejection) -> HttpResponse {
        HttpResponse::new(400, "text/plain", format!("refused: {why:?}"))
    }
}

/// The host's token broker: answers `POST {connectionId, accountId, app, reason}` with a
/// fresh access token (`tok-{app}-{n}`, valid one hour unless changed) that the fake
/// providers sharing its [`TokenBook`] accept.
#[derive(Debug)]
pub struct FakeTokenBroker {
    shared: Arc<BrokerShared>,
    http: Option<HttpServer>,
    addr: SocketAddr,
}

impl FakeTokenBroker {
    /// Start a broker issuing into `tokens`.
    pub fn start(tokens: Arc<TokenBook>) -> std::io::Result<FakeTokenBroker> {
        let shared = Arc::new(BrokerShared {
            tokens,
            lifetime_ms: Mutex::new(3_600_000),
            refuse: Mutex::new(VecDeque::new()),
            received: Mutex::new(Vec::new()),
        });
        let handler: Arc<dyn Handler> = shared.clone();
        let http = HttpServer::bind("127.0.0.1:0", HttpLimits::default(), handler, 1)?;
        let addr = http.local_addr();
        Ok(FakeTokenBroker {
            shared,
            http: Some(http),
            addr,
        })
    }

    /// `http://127.0.0.1:PORT/token`: the server's `--token-url`.
    pub fn url(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// Answer the next requests with these statuses instead of tokens.
    pub fn refuse_next(&self, statuses: &[u16]) {
        lock(&self.shared.refuse).extend(statuses.iter().copied());
    }

    /// How long the tokens issued from now on are valid.
    pub fn set_lifetime(&self, lifetime: Duration) {
        *lock(&self.shared.lifetime_ms) =
            i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX / 2);
    }

    /// Every token request received (the bodies are `{connectionId, accountId, app, reason}`).
    pub fn received(&self) -> Vec<Received> {
        lock(&self.shared.received).clone()
    }
}

impl Drop for FakeTokenBroker {
    fn drop(&mut self) {
        if let Some(h) = self.http.take() {
            h.shutdown(Duration::from_secs(2));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use writesync_core::cdm::ObjectType;
    use writesync_core::connectors::{lookup, Answer, Operation};

    /// Each fake's refusal is its provider's error format: the connector of that provider
    /// reads the message (and the field where the provider names one) from it.
    #[test]
    fn refusals_read_by_their_connectors() {
        let providers = [
            (
                Provider::QuickBooks { realm: "1".into() },
                Some("TxnDate"),
                Some("6000"),
            ),
            (
                Provider::Xero { tenant: "t".into() },
                None,
                Some("ValidationException"),
            ),
            (Provider::HubSpot, Some("TxnDate"), Some("VALIDATION_ERROR")),
            (Provider::Shopify, Some("TxnDate"), None),
        ];
        for (provider, field, code) in providers {
            let key = provider.key();
            let shared = Shared {
                provider,
                tokens: TokenBook::new(),
                state: Mutex::new(State::default()),
                received: Mutex::new(Vec::new()),
                changed: Condvar::new(),
            };
            let (status, headers, body) = shared.refused("TxnDate", "the books are closed");
            let headers: BTreeMap<String, String> = headers.into_iter().collect();
            let answer = Answer {
                object_type: ObjectType::Invoice,
                operation: Operation::Create,
                status,
                headers: &headers,
                body: &body,
                now_ms: 0,
            };
            let e = lookup(key).unwrap().source_error(&answer);
            assert!((400..500).contains(&e.status) && e.status != 429, "{key}");
            assert!(
                e.message
                    .as_deref()
                    .is_some_and(|m| m.contains("the books are closed")),
                "{key}: {e:?}"
            );
            assert_eq!(e.field.as_deref(), field, "{key}");
            assert_eq!(e.code.as_deref(), code, "{key}");
        }
    }
}
