//! Connectors: how a push speaks to one kind of source application.
//!
//! A connection chooses a connector (`connector` at registration; default `generic`). A
//! connector is three pure functions and a little metadata (the object types it pushes, the
//! settings it takes, and per type what it [`needs`](Connector::needs) beyond the CDM and what
//! it [`ignores`](Connector::ignores), which `GET /api/meta/{objectType}` answers):
//!
//! - [`Connector::check`]: the fields the provider needs that a CDM object lacks, as
//!   validation errors (run at write time, per target, so a write fails early instead of a
//!   push failing later);
//! - [`Connector::request`]: a CDM object, its operation (create, update or delete), its
//!   remote id (and version) at the connection and the remote ids of the objects it refers
//!   to → the provider's HTTP request, or a [`ConnectorError`] saying why it cannot be sent
//!   (its text becomes the target's `lastError`);
//! - [`Connector::interpret`]: the provider's answer → success with its remote id (and
//!   version, e.g. QuickBooks' `SyncToken`), a retryable failure (with the provider's
//!   `Retry-After`), a permanent failure with the provider's own error text, or
//!   `Unauthorized` (the access token was refused: the engine asks the host for a new one once).
//!
//! None of them reads a clock, a store or the network; the engine resolves remote ids and
//! referenced objects before it calls them. The registry ([`registry`], [`lookup`]) is keyed
//! by the connector key, which is also the app key of the provider:
//!
//! | key | speaks to | objects | token |
//! |---|---|---|---|
//! | `generic` | `POST {pushUrl}` with the writesync envelope | every type | no |
//! | `quickbooks` | QuickBooks Online Accounting API v3 | customer, vendor, account, invoice, payment, expense (Purchase), bankTransaction (Deposit or Purchase) | yes |
//! | `xero` | Xero Accounting API 2.0 | customer, vendor (Contacts), account, invoice (ACCREC), payment, bankTransaction, expense (SPEND BankTransaction) | yes |
//! | `hubspot` | HubSpot CRM v3 | customer (company or contact) | yes |
//! | `shopify` | Shopify Admin REST | customer | yes |
//!
//! A delete (customer, vendor, account) is what the application supports: the generic envelope
//! with `operation: "delete"`, QuickBooks deactivates, Xero archives, HubSpot and Shopify
//! delete; a `204` or `404` answer to it is success ([`Answer::delete_done`]).
//!
//! The field-by-field mapping of each connector, and what it does not support, is the table
//! in `docs/connectors.md`. The base URL of every provider connector is the connection's
//! `baseUrl`, so tests and sandboxes can point a connection at a fake.
//!
//! ```
//! use std::collections::BTreeMap;
//! use serde_json::value::RawValue;
//! use writesync_core::cdm::ObjectType;
//! use writesync_core::connectors::{lookup, Operation, PushInput};
//!
//! let hubspot = lookup("hubspot").unwrap();
//! let customer = RawValue::from_string(r#"{"id":"c1","name":"Acme Ltd","phone":"+1 555 0100"}"#.into()).unwrap();
//! let settings = BTreeMap::new();
//! let request = hubspot.request(&PushInput {
//!     object_type: ObjectType::Customer,
//!     object: &customer,
//!     operation: Operation::Create,
//!     remote_id: None,
//!     remote_version: None,
//!     references: &[],
//!     idempotency_key: "0190a1b2-0000-7000-8000-000000000001",
//!     sync_id: "s1",
//!     tracking_id: None,
//!     url: "https://api.hubapi.com",
//!     settings: &settings,
//!     access_token: Some("token"),
//! }).unwrap();
//! assert_eq!(request.url, "https://api.hubapi.com/crm/v3/objects/companies");
//! assert_eq!(request.headers["Authorization"], "Bearer token");
//! ```

mod build;
mod error;
mod generic;
mod hubspot;
mod quickbooks;
mod shopify;
mod xero;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::cdm::{codes, FieldCode, FieldError, ObjectType};
use crate::util::schedule::parse_retry_after;
use crate::OutboundRequest;

pub(crate) use build::{amount, copy_all, copy_present, obj, one, put, put_str, string, text, Obj};

pub use error::{ConnectorError, SourceError};
pub use generic::Generic;
pub use hubspot::HubSpot;
pub use quickbooks::QuickBooks;
pub use shopify::Shopify;
pub use xero::Xero;

/// The connector a connection uses.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorKind {
    /// `POST {pushUrl}` with the writesync envelope (the default).
    #[default]
    Generic,
    /// QuickBooks Online.
    Quickbooks,
    /// Xero.
    Xero,
    /// HubSpot CRM.
    Hubspot,
    /// Shopify.
    Shopify,
}

impl ConnectorKind {
    /// Every connector, in a fixed order.
    pub const ALL: [ConnectorKind; 5] = [
        ConnectorKind::Generic,
        ConnectorKind::Quickbooks,
        ConnectorKind::Xero,
        ConnectorKind::Hubspot,
        ConnectorKind::Shopify,
    ];
    /// The key (`generic`, `quickbooks`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorKind::Generic => "generic",
            ConnectorKind::Quickbooks => "quickbooks",
            ConnectorKind::Xero => "xero",
            ConnectorKind::Hubspot => "hubspot",
            ConnectorKind::Shopify => "shopify",
        }
    }
    /// Parse a key.
    pub fn parse(s: &str) -> Option<ConnectorKind> {
        ConnectorKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
    /// Whether this is the generic connector.
    pub fn is_generic(&self) -> bool {
        *self == ConnectorKind::Generic
    }
    /// The connector itself.
    pub fn connector(self) -> &'static dyn Connector {
        match self {
            ConnectorKind::Generic => &Generic,
            ConnectorKind::Quickbooks => &QuickBooks,
            ConnectorKind::Xero => &Xero,
            ConnectorKind::Hubspot => &HubSpot,
            ConnectorKind::Shopify => &Shopify,
        }
    }
}

/// Whether a push creates the object at the source, updates the one it already has, or
/// removes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// The source has not acknowledged the object yet.
    Create,
    /// The source acknowledged the object before (its remote id is known, when it named one).
    Update,
    /// The object was deleted from the CDM: the source deletes, archives or deactivates its
    /// copy (each connector does what its application supports; see `docs/connectors.md`).
    /// The pushed object is its last stored version.
    Delete,
}

impl Operation {
    /// `create`, `update` or `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

/// A reference field of the pushed object, resolved for one connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// Where the reference is in the object: `customerId`, `vendorId`, `invoiceId`, or
    /// `lines/{i}/accountId` for a line's account.
    pub field: String,
    /// The type of the referenced object.
    pub object_type: ObjectType,
    /// Its CDM id.
    pub id: String,
    /// Its id at the connection, when the connection acknowledged it with one.
    pub remote_id: Option<String>,
    /// The referenced CDM object as stored (provider connectors only), e.g. to read an
    /// account's `code`.
    pub object: Option<Value>,
}

/// Everything a connector needs to build one push request.
#[derive(Debug, Clone, Copy)]
pub struct PushInput<'a> {
    /// The object's type.
    pub object_type: ObjectType,
    /// The CDM object as stored (JSON text).
    pub object: &'a RawValue,
    /// Create, update or delete.
    pub operation: Operation,
    /// The object's id at the connection, when known.
    pub remote_id: Option<&'a str>,
    /// The version the connection gave the object with its id (QuickBooks' `SyncToken`).
    pub remote_version: Option<&'a str>,
    /// The reference fields, resolved.
    pub references: &'a [Reference],
    /// The push's idempotency key: the same on every retry of this push.
    pub idempotency_key: &'a str,
    /// The sync the push serves.
    pub sync_id: &'a str,
    /// The write's tracking id.
    pub tracking_id: Option<&'a str>,
    /// `pushUrl` for the generic connector, the provider's base URL for the others.
    pub url: &'a str,
    /// The connection's provider settings (`realmId`, `tenantId`, ...).
    pub settings: &'a BTreeMap<String, String>,
    /// The access token from the host (provider connectors).
    pub access_token: Option<&'a str>,
}

impl PushInput<'_> {
    /// The object parsed (`Null` when the stored text is not JSON, which the engine never
    /// stores).
    pub fn object_value(&self) -> Value {
        serde_json::from_str(self.object.get()).unwrap_or(Value::Null)
    }
    /// The reference at `field`.
    pub fn reference(&self, field: &str) -> Option<&Reference> {
        self.references.iter().find(|r| r.field == field)
    }
    /// The remote id at connector `app` of the reference at `field`, or why the push cannot
    /// be sent without it.
    pub fn remote_of(&self, field: &str, app: ConnectorKind) -> Result<String, ConnectorError> {
        match self.reference(field) {
            Some(Reference {
                remote_id: Some(r), ..
            }) => Ok(r.clone()),
            Some(r) => Err(ConnectorError::ReferenceNotPushed {
                field: field.to_string(),
                object_type: r.object_type,
                id: r.id.clone(),
                connector: app,
            }),
            None => Err(ConnectorError::MissingReference {
                field: field.to_string(),
            }),
        }
    }
    /// A setting.
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.settings
            .get(name)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }
}

/// A provider's answer to a push.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    /// The pushed object's type.
    pub object_type: ObjectType,
    /// Create, update or delete.
    pub operation: Operation,
    /// Status code.
    pub status: u16,
    /// Answer headers (names compared ignoring case).
    pub headers: &'a BTreeMap<String, String>,
    /// The start of the answer body.
    pub body: &'a str,
    /// When the answer arrived (Unix ms), for an HTTP-date `Retry-After`.
    pub now_ms: i64,
}

impl Answer<'_> {
    /// Whether this answers a delete with `204` (done, no body) or `404` (the source no
    /// longer has the object, which is what the delete wanted): both are success, keeping
    /// the remote id the engine already holds.
    pub fn delete_done(&self) -> bool {
        self.operation == Operation::Delete && matches!(self.status, 204 | 404)
    }
    /// A header, ignoring case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(self.body).unwrap_or(Value::Null)
    }
    /// The delay the provider asked for with `Retry-After` (whole or fractional seconds, or
    /// an HTTP date), in ms.
    pub fn retry_after_ms(&self) -> Option<u64> {
        let v = self.header("Retry-After")?.trim();
        if let Some(ms) = parse_retry_after(v, self.now_ms) {
            return Some(ms);
        }
        // Shopify sends fractional seconds (`2.0`).
        fractional_seconds_ms(v)
    }
}

/// Seconds with a fraction (`2.0`, `0.25`), as Shopify writes `Retry-After`, in whole
/// milliseconds rounded up and capped at the longest delay; `None` for any other text. Read
/// digit by digit, exactly: whole seconds (`delay-seconds` of RFC 9110) and HTTP dates are
/// read by `parse_retry_after` before this.
fn fractional_seconds_ms(s: &str) -> Option<u64> {
    let (whole, fraction) = s.split_once('.')?;
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit());
    if !digits(whole) || !digits(fraction) {
        return None;
    }
    let max = crate::util::schedule::MAX_DELAY_MS;
    let mut ms: u64 = 0;
    for c in whole.bytes() {
        ms = ms.saturating_mul(10).saturating_add(u64::from(c - b'0'));
        if ms > max {
            return Some(max);
        }
    }
    ms = ms.saturating_mul(1000);
    // The first three digits of the fraction are milliseconds; any other non-zero digit
    // rounds up.
    let f = fraction.as_bytes();
    let mut part: u64 = 0;
    for i in 0..3 {
        part = part * 10 + f.get(i).map_or(0, |c| u64::from(c - b'0'));
    }
    if f.iter().skip(3).any(|c| *c != b'0') {
        part += 1;
    }
    Some(ms.saturating_add(part).min(max))
}

/// What a provider's answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderVerdict {
    /// Accepted; the provider's id and version of the object, when it named them.
    Success {
        /// The provider's id of the object.
        remote_id: Option<String>,
        /// The provider's version of the object (QuickBooks' `SyncToken`).
        version: Option<String>,
    },
    /// Worth retrying (timeouts, throttling, server errors).
    Retryable {
        /// The provider's error text.
        error: String,
        /// The delay the provider asked for, in ms.
        retry_after_ms: Option<u64>,
    },
    /// Refused for good.
    Permanent {
        /// The provider's error text.
        error: String,
    },
    /// The access token was refused (`401`): ask the host for a new one and retry once.
    Unauthorized {
        /// The provider's error text.
        error: String,
    },
}

/// A provider setting a connection may carry in `settings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingSpec {
    /// Its name in `settings`.
    pub name: &'static str,
    /// Whether registration needs it.
    pub required: bool,
    /// What it is.
    pub description: &'static str,
}

/// What a connector requires of one object type beyond the CDM's own rules: the table that
/// both [`Connector::check`] (a write naming the target is `422`) and `GET /api/meta/{type}`
/// (`requires`) read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// The fields it requires, as JSON Pointers into the object (`*` stands for every element
    /// of a list), each with the provider's reason.
    pub fields: &'static [(&'static str, &'static str)],
    /// The connection settings it needs (a missing one is `422` at `""`).
    pub settings: &'static [&'static str],
}

/// How a push speaks to one kind of source application. Every method is pure.
pub trait Connector: Sync + Send + std::fmt::Debug {
    /// Which connector this is.
    fn kind(&self) -> ConnectorKind;
    /// The object types it can push.
    fn objects(&self) -> &'static [ObjectType];
    /// The provider settings it takes.
    fn settings(&self) -> &'static [SettingSpec];
    /// Whether a push needs an access token from the host: every provider API does; the
    /// generic envelope overrides this.
    fn needs_token(&self) -> bool {
        true
    }
    /// Check the settings of a registration beyond presence (formats); errors point at
    /// `/settings/{name}`.
    fn check_settings(&self, _settings: &BTreeMap<String, String>) -> Vec<FieldError> {
        Vec::new()
    }
    /// What it requires of `object_type` beyond the CDM ([`check`](Connector::check) reports
    /// these as `required` errors).
    fn needs(&self, _object_type: ObjectType, _settings: &BTreeMap<String, String>) -> Needs {
        Needs::default()
    }
    /// The CDM fields (pointers, `*` for every element of a list) of `object_type` that it
    /// does not carry to the source.
    fn ignores(
        &self,
        _object_type: ObjectType,
        _settings: &BTreeMap<String, String>,
    ) -> &'static [&'static str] {
        &[]
    }
    /// The fields the provider needs that `object` lacks (or has in a form the provider
    /// refuses), as validation errors whose pointers are relative to the object and whose
    /// messages start with the connector key: [`needs`](Connector::needs), and the provider's
    /// own limits (lengths, formats). `settings` are the connection's.
    fn check(
        &self,
        object_type: ObjectType,
        object: &Value,
        settings: &BTreeMap<String, String>,
    ) -> Vec<FieldError>;
    /// The provider's request for one push, or why it cannot be sent (a permanent failure
    /// of the push, e.g. a referenced object the provider does not know yet).
    fn request(&self, input: &PushInput<'_>) -> Result<OutboundRequest, ConnectorError>;
    /// What the provider's answer means.
    fn interpret(&self, answer: &Answer<'_>) -> ProviderVerdict;
    /// The structured form of an answer that refused a push (the target's `error`): the
    /// provider's own error code, message and field where its body names them. The default
    /// reads the generic shape ([`SourceError::generic`]).
    fn source_error(&self, answer: &Answer<'_>) -> SourceError {
        SourceError::generic(answer.status, &answer.json())
    }
}

/// Every connector, generic first.
pub fn registry() -> [&'static dyn Connector; 5] {
    ConnectorKind::ALL.map(ConnectorKind::connector)
}

/// The connector with this key (`generic`, `quickbooks`, `xero`, `hubspot`, `shopify`).
pub fn lookup(key: &str) -> Option<&'static dyn Connector> {
    ConnectorKind::parse(key).map(ConnectorKind::connector)
}

/// How much of a provider's error text is kept.
pub const ERROR_TEXT_MAX: usize = 300;

/// Cut `s` to at most `max` bytes at a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The verdict of a non-success status: `401` unauthorized; `408`, `429`, `5xx` retryable;
/// anything else permanent. `text` is the provider's error text.
pub(crate) fn failure(answer: &Answer<'_>, text: &str) -> ProviderVerdict {
    let text = if text.trim().is_empty() {
        truncate(answer.body, ERROR_TEXT_MAX)
    } else {
        truncate(text, ERROR_TEXT_MAX)
    };
    let error = if text.trim().is_empty() {
        format!("HTTP {}", answer.status)
    } else {
        format!("HTTP {}: {text}", answer.status)
    };
    match answer.status {
        401 => ProviderVerdict::Unauthorized { error },
        408 | 429 | 500..=599 => ProviderVerdict::Retryable {
            error,
            retry_after_ms: answer.retry_after_ms(),
        },
        _ => ProviderVerdict::Permanent { error },
    }
}

/// The number of decimals of a currency's minor unit (ISO 4217).
pub fn currency_exponent(code: &str) -> u32 {
    match code {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        "CLF" | "UYW" => 4,
        _ => 2,
    }
}

/// An amount in minor units as the decimal JSON number providers take (`36300` EUR →
/// `363.0`). Exact for amounts below 2^53 minor units.
pub fn decimal(minor: i64, currency: &str) -> Value {
    let scale = 10f64.powi(currency_exponent(currency) as i32);
    serde_json::Number::from_f64(minor as f64 / scale)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// A string member.
pub(crate) fn s<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str).filter(|x| !x.is_empty())
}

/// An integer member.
pub(crate) fn i(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

/// A list member (empty when absent).
pub(crate) fn list<'v>(v: &'v Value, key: &str) -> &'v [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Split a person's name into (first, last) at its last blank; a single word is the last
/// name.
pub fn split_name(name: &str) -> (Option<String>, String) {
    let name = name.trim();
    match name.rsplit_once(char::is_whitespace) {
        Some((first, last)) if !first.trim().is_empty() => {
            (Some(first.trim().to_string()), last.to_string())
        }
        _ => (None, name.to_string()),
    }
}

/// `base` without its trailing slashes, followed by `path`.
pub(crate) fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// Percent-encode a path segment or query value (unreserved characters kept).
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The object types the CDM deletes (`DELETE /api/customers|vendors|accounts/{id}`).
pub const DELETABLE: [ObjectType; 3] = [
    ObjectType::Customer,
    ObjectType::Vendor,
    ObjectType::Account,
];

/// The remote id a delete needs, or why it cannot be sent.
pub(crate) fn delete_target<'a>(
    input: &PushInput<'a>,
    app: ConnectorKind,
    types: &[ObjectType],
) -> Result<&'a str, ConnectorError> {
    if !types.contains(&input.object_type) {
        return Err(ConnectorError::UnsupportedDelete {
            connector: app,
            object_type: input.object_type,
        });
    }
    input
        .remote_id
        .ok_or(ConnectorError::NoRemoteId { connector: app })
}

/// A bodiless `DELETE`: `headers` without `Content-Type`. (Copied over rather than removed in
/// place: a map removal pulls the B-tree's rebalancing code into the wasm module.)
pub(crate) fn delete_request(url: String, headers: BTreeMap<String, String>) -> OutboundRequest {
    let mut kept = BTreeMap::new();
    for (k, v) in headers {
        if k != "Content-Type" {
            kept.insert(k, v);
        }
    }
    OutboundRequest {
        method: "DELETE".into(),
        url,
        headers: kept,
        body: String::new(),
    }
}

/// The success of a delete the source confirmed without naming an id.
pub(crate) const DELETED: ProviderVerdict = ProviderVerdict::Success {
    remote_id: None,
    version: None,
};

/// The standard headers of a provider request with a bearer token.
pub(crate) fn bearer_headers(token: Option<&str>) -> BTreeMap<String, String> {
    let mut h = BTreeMap::new();
    h.insert("Accept".to_string(), "application/json".to_string());
    h.insert("Content-Type".to_string(), "application/json".to_string());
    if let Some(t) = token {
        h.insert("Authorization".to_string(), format!("Bearer {t}"));
    }
    h
}

/// A validation error of a provider requirement: the message starts with the app key.
pub(crate) fn requirement(
    app: ConnectorKind,
    pointer: &str,
    code: FieldCode,
    message: impl std::fmt::Display,
) -> FieldError {
    FieldError {
        pointer: pointer.to_string(),
        code,
        message: format!("{} requires {message}", app.as_str()),
    }
}

/// An error for a missing connection setting needed by one object type.
pub(crate) fn setting_required(app: ConnectorKind, setting: &str, what: &str) -> FieldError {
    requirement(
        app,
        "",
        codes::REQUIRED,
        format!("the connection setting {setting} to push {what}"),
    )
}

/// Whether a setting is present and not blank.
pub(crate) fn has_setting(settings: &BTreeMap<String, String>, name: &str) -> bool {
    settings.get(name).is_some_and(|v| !v.trim().is_empty())
}

/// The pointers, under `at`, where the path `segments` (`*`: every element) has no value
/// (absent, `null` or a blank string). Nothing below an absent parent is reported.
fn missing(v: &Value, segments: &[&str], at: &str, out: &mut Vec<String>) {
    match segments {
        [] => {}
        ["*", rest @ ..] => {
            for (n, e) in v.as_array().into_iter().flatten().enumerate() {
                missing(e, rest, &format!("{at}/{n}"), out);
            }
        }
        [key, rest @ ..] => {
            let here = format!("{at}/{key}");
            match v.get(*key) {
                None | Some(Value::Null) if rest.is_empty() => out.push(here),
                Some(Value::String(t)) if rest.is_empty() && t.trim().is_empty() => out.push(here),
                Some(c) => missing(c, rest, &here, out),
                None => {}
            }
        }
    }
}

/// The requirement errors of `needs` on `object`: each required field it lacks
/// (`accountId on every line (...)`), then each setting the connection lacks.
pub(crate) fn check_needs(
    app: ConnectorKind,
    object_type: ObjectType,
    needs: Needs,
    object: &Value,
    settings: &BTreeMap<String, String>,
    errors: &mut Vec<FieldError>,
) {
    for (pointer, why) in needs.fields {
        let segments: Vec<&str> = pointer.split('/').skip(1).collect();
        let mut at = Vec::new();
        missing(object, &segments, "", &mut at);
        let field = segments.last().copied().unwrap_or_default();
        let every = match segments.iter().position(|x| *x == "*") {
            // `lines` → `on every line`.
            Some(n) if n > 0 => format!(" on every {}", segments[n - 1].trim_end_matches('s')),
            _ => String::new(),
        };
        for p in at {
            errors.push(requirement(
                app,
                &p,
                codes::REQUIRED,
                format!("{field}{every} ({why})"),
            ));
        }
    }
    for name in needs.settings {
        if !has_setting(settings, name) {
            let what = object_type.collection().replace('-', " ");
            errors.push(setting_required(app, name, &what));
        }
    }
}

/// A string field's length limit in characters.
pub(crate) fn max_chars(
    app: ConnectorKind,
    object: &Value,
    key: &str,
    max: usize,
    what: &str,
) -> Option<FieldError> {
    let v = s(object, key)?;
    (v.chars().count() > max).then(|| {
        requirement(
            app,
            &format!("/{key}"),
            codes::TOO_LONG,
            format!("{key} ({what}) of at most {max} characters"),
        )
    })
}

// JSON building blocks of the request builders. They are kept out of line on purpose: a
// `json!` literal or a `m.insert("Key".into(), json!(x))` expands to inline allocation and
// conversion code at every use, which made the builders the largest functions of the wasm
// module; a call with a few constants is a fraction of that.

/// Whether `s` is a UUID in its hyphenated form (Xero ids).
pub(crate) fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(n, b)| match n {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractional_seconds_are_read_exactly_and_rounded_up() {
        let max = crate::util::schedule::MAX_DELAY_MS;
        for (text, ms) in [
            ("2.0", Some(2_000)),
            ("0.25", Some(250)),
            ("0.0015", Some(2)),
            ("1.0001", Some(1_001)),
            ("1.000000", Some(1_000)),
            ("0.000", Some(0)),
            ("12.3456789", Some(12_346)),
            ("99999999999999999999999.5", Some(max)),
            ("2", None),
            (".5", None),
            ("5.", None),
            ("+5.0", None),
            ("-1.0", None),
            ("1e3", None),
            ("1.5.0", None),
            ("1. 5", None),
            ("", None),
            ("NaN", None),
        ] {
            assert_eq!(fractional_seconds_ms(text), ms, "{text:?}");
        }
        // Against the float reading it replaces, on every value with up to 6 decimals.
        for n in 0..200_000u64 {
            let text = format!("{}.{:06}", n / 7, (n * 7919) % 1_000_000);
            let f: f64 = text.parse().unwrap_or(0.0);
            let expected = ((f * 1000.0).ceil() as u64).min(max);
            let got = fractional_seconds_ms(&text).unwrap_or(u64::MAX);
            // The float product can land a hair above a whole millisecond: at most 1 ms more.
            assert!(
                got == expected || got + 1 == expected,
                "{text}: {got} vs {expected}"
            );
        }
    }

    #[test]
    fn needs_are_checked_from_their_table() {
        let o = serde_json::json!({"lines": [{"accountId": "a"}, {"description": "x"}, {"accountId": " "}],
                                   "email": null});
        let needs = Needs {
            fields: &[
                ("/lines/*/accountId", "why"),
                ("/email", "e-mail"),
                ("/vendor/name", "absent parent"),
            ],
            settings: &["s1", "s2"],
        };
        let mut settings = BTreeMap::new();
        settings.insert("s2".to_string(), "x".to_string());
        let mut errors = Vec::new();
        let (app, t) = (ConnectorKind::Xero, ObjectType::BankTransaction);
        check_needs(app, t, needs, &o, &settings, &mut errors);
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            ["/lines/1/accountId", "/lines/2/accountId", "/email", ""]
        );
        assert!(errors.iter().all(|e| e.code == codes::REQUIRED));
        assert_eq!(
            errors[0].message,
            "xero requires accountId on every line (why)"
        );
        assert_eq!(errors[2].message, "xero requires email (e-mail)");
        assert_eq!(
            errors[3].message,
            "xero requires the connection setting s1 to push bank transactions"
        );
    }

    #[test]
    fn registry_and_keys() {
        for c in registry() {
            assert_eq!(lookup(c.kind().as_str()).map(|x| x.kind()), Some(c.kind()));
        }
        assert!(lookup("sage").is_none());
        assert_eq!(ConnectorKind::default(), ConnectorKind::Generic);
        assert_eq!(
            serde_json::to_string(&ConnectorKind::Quickbooks).unwrap(),
            "\"quickbooks\""
        );
    }

    #[test]
    fn decimals_and_names() {
        assert_eq!(decimal(36300, "EUR").to_string(), "363.0");
        assert_eq!(decimal(499, "USD").to_string(), "4.99");
        assert_eq!(decimal(-1200, "USD").to_string(), "-12.0");
        assert_eq!(decimal(1500, "JPY").to_string(), "1500.0");
        assert_eq!(decimal(1234, "KWD").to_string(), "1.234");
        assert_eq!(
            split_name("Jo Ann Smith"),
            (Some("Jo Ann".into()), "Smith".into())
        );
        assert_eq!(split_name("Acme"), (None, "Acme".into()));
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
        assert!(is_uuid("6f7594f2-f059-4d56-9e67-47ac9733bfe9"));
        assert!(!is_uuid("088"));
        assert_eq!(join("https://x.test/", "/a"), "https://x.test/a");
    }

    #[test]
    fn retry_after_forms() {
        let mut h = BTreeMap::new();
        h.insert("retry-after".to_string(), "2.0".to_string());
        let a = Answer {
            object_type: ObjectType::Customer,
            operation: Operation::Create,
            status: 429,
            headers: &h,
            body: "",
            now_ms: 0,
        };
        assert_eq!(a.retry_after_ms(), Some(2000));
        let mut h2 = BTreeMap::new();
        h2.insert("retry-after".to_string(), "7".to_string());
        let a = Answer { headers: &h2, ..a };
        assert_eq!(a.retry_after_ms(), Some(7000));
        assert!(matches!(
            failure(&a, "slow down"),
            ProviderVerdict::Retryable {
                retry_after_ms: Some(7000),
                ..
            }
        ));
        let a = Answer { status: 401, ..a };
        assert!(matches!(
            failure(&a, "x"),
            ProviderVerdict::Unauthorized { .. }
        ));
        let a = Answer { status: 400, ..a };
        assert_eq!(
            failure(&a, "bad"),
            ProviderVerdict::Permanent {
                error: "HTTP 400: bad".into()
            }
        );
    }
}
