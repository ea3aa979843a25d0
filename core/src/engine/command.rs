//! The typed vocabulary of the engine: every operation of the contract as a [`Command`], its
//! answer as a [`Reply`], its refusal as a [`CommandError`].
//!
//! A host that speaks HTTP hands [`Engine::handle`](crate::Engine::handle) an
//! [`ApiRequest`](crate::ApiRequest); the HTTP adapter turns it into one of these commands and
//! the answer back into an [`ApiResponse`](crate::ApiResponse). A host that links the crate
//! (a desktop app through `writesync-sqlite`'s `NativeEngine`) builds the commands itself with
//! [`Engine::execute`](crate::Engine::execute): no URL, header or status line is involved.
//!
//! The object of a write stays JSON text ([`Body`]): validation must see exactly what the
//! caller sent (unknown fields, wrong types, duplicate keys) to report every problem with its
//! JSON Pointer, which a typed struct could not even hold.

use serde_json::Value;

use crate::cdm::{FieldError, ObjectType};
use crate::http::ProblemKind;
use crate::json::Json;
use crate::CoreError;

/// One operation of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command<'a> {
    /// `GET /healthz`.
    Health,
    /// `GET /openapi.json`.
    OpenApi,
    /// An admin call, authorized by the admin token (`Authorization: Bearer`).
    Admin {
        /// The admin token the caller presents.
        token: Option<&'a str>,
        /// What to do.
        op: AdminOp<'a>,
    },
    /// A data API call, authorized by an API key and its secret (HTTP Basic).
    Data {
        /// The API key and secret the caller presents.
        credentials: Option<Credentials<'a>>,
        /// What to do.
        op: DataOp<'a>,
    },
}

/// An API key and its secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// The key (`wsk_...`).
    pub key: &'a str,
    /// The secret (`wss_...`).
    pub secret: &'a str,
}

/// Never prints the secret.
impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The body a caller sent with a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'a> {
    /// No body (or only white space).
    None,
    /// JSON text.
    Json(&'a str),
    /// A body that is not JSON: the HTTP adapter's word for a `Content-Type` other than
    /// `application/json` or a `+json` type (`None` when the header was missing). Refused with
    /// `415` where a body is read.
    NotJson {
        /// The content type that was sent, if any.
        content_type: Option<&'a str>,
    },
}

/// A page of a list: `page` from 1, `size` from 1 to [`MAX_PAGE_SIZE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Page number, from 1 to [`MAX_PAGE`].
    pub page: usize,
    /// Items per page, from 1 to [`MAX_PAGE_SIZE`].
    pub size: usize,
}

/// Default page size of lists.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Largest page number of lists (the same on 32-bit hosts such as wasm32).
pub const MAX_PAGE: usize = 1_000_000_000;
/// Largest page size of lists.
pub const MAX_PAGE_SIZE: usize = 200;

impl Default for Page {
    fn default() -> Self {
        Page {
            page: 1,
            size: DEFAULT_PAGE_SIZE,
        }
    }
}

impl Page {
    /// How many items come before this page.
    pub(crate) fn offset(&self) -> usize {
        (self.page - 1).saturating_mul(self.size)
    }
}

/// An admin call. Every call but [`AdminOp::CreateAccount`] names an account; an unknown
/// account is `404`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdminOp<'a> {
    /// Create an account: `{domain, writeEnabled?}`.
    CreateAccount {
        /// The body.
        body: Body<'a>,
    },
    /// Read an account.
    GetAccount {
        /// Account id.
        account: &'a str,
    },
    /// Change an account: `{writeEnabled}`.
    UpdateAccount {
        /// Account id.
        account: &'a str,
        /// The body.
        body: Body<'a>,
    },
    /// Create an API key: `{scopes, name?}`; the answer is the only place its secret is shown.
    CreateApiKey {
        /// Account id.
        account: &'a str,
        /// The body.
        body: Body<'a>,
    },
    /// Delete an API key; it stops working at once.
    DeleteApiKey {
        /// Account id.
        account: &'a str,
        /// The key.
        key: &'a str,
    },
    /// Register a connection: `{app, type, pushUrl | connector..., objects?}`.
    CreateConnection {
        /// Account id.
        account: &'a str,
        /// The body.
        body: Body<'a>,
    },
    /// The account's connections.
    ListConnections {
        /// Account id.
        account: &'a str,
    },
    /// One connection.
    GetConnection {
        /// Account id.
        account: &'a str,
        /// Connection id.
        connection: &'a str,
    },
    /// Remove a connection (and the access token held for it).
    DeleteConnection {
        /// Account id.
        account: &'a str,
        /// Connection id.
        connection: &'a str,
    },
    /// Subscribe a webhook: `{url, events, username?, password?, signingSecret?}`.
    CreateWebhook {
        /// Account id.
        account: &'a str,
        /// The body.
        body: Body<'a>,
    },
    /// The account's webhook subscriptions.
    ListWebhooks {
        /// Account id.
        account: &'a str,
    },
    /// One webhook subscription.
    GetWebhook {
        /// Account id.
        account: &'a str,
        /// Webhook id.
        webhook: &'a str,
    },
    /// Change a webhook subscription: any of `{url, events, username, password, enabled}`,
    /// each checked as on creation; `enabled: true` also clears `disabledReason` and the run
    /// of failed deliveries.
    UpdateWebhook {
        /// Account id.
        account: &'a str,
        /// Webhook id.
        webhook: &'a str,
        /// The body.
        body: Body<'a>,
    },
    /// Replace the signing secret with a new random one; the old one keeps signing beside it
    /// for 24 hours.
    RotateWebhookSecret {
        /// Account id.
        account: &'a str,
        /// Webhook id.
        webhook: &'a str,
        /// The body: none, or any JSON (it is not read further).
        body: Body<'a>,
    },
    /// Queue one `webhook_test` delivery to an enabled subscription.
    TestWebhook {
        /// Account id.
        account: &'a str,
        /// Webhook id.
        webhook: &'a str,
        /// The body: none, or any JSON (it is not read further).
        body: Body<'a>,
    },
    /// Remove a webhook subscription.
    DeleteWebhook {
        /// Account id.
        account: &'a str,
        /// Webhook id.
        webhook: &'a str,
    },
    /// A webhook's deliveries, newest first: all of them, or one page.
    ListDeliveries {
        /// Account id.
        account: &'a str,
        /// Webhook id.
        webhook: &'a str,
        /// One page, or `None` for the whole list.
        page: Option<Page>,
        /// Only deliveries with this status.
        status: Option<crate::records::DeliveryStatus>,
        /// Only deliveries of this sync.
        sync_id: Option<&'a str>,
    },
    /// Attempt a delivery again with a fresh retry budget.
    RetryDelivery {
        /// Account id.
        account: &'a str,
        /// Webhook id.
        webhook: &'a str,
        /// Delivery id.
        delivery: &'a str,
        /// The body: none, or any JSON (it is not read further).
        body: Body<'a>,
    },
}

/// A data API call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataOp<'a> {
    /// A page of stored objects of one type, in creation order.
    List {
        /// The object type.
        object: ObjectType,
        /// Which page.
        page: Page,
    },
    /// One stored object.
    Get {
        /// The object type.
        object: ObjectType,
        /// Its id.
        id: &'a str,
    },
    /// A sync and the status of each of its targets.
    GetSync {
        /// The sync id (`X-Sync-ID`).
        id: &'a str,
    },
    /// A page of the account's syncs, newest first, that pass every filter given.
    ListSyncs {
        /// The filters (all must hold).
        filter: SyncFilter,
        /// Which page (of the syncs that pass the filters).
        page: Page,
    },
    /// Put every `failed` target of a sync (or of those of its targets `{"apps": [...]}`
    /// names) back to `pending` with a fresh retry budget; each push keeps its task id, so
    /// its `Idempotency-Key` is the first attempt's.
    RetrySync {
        /// The sync id.
        id: &'a str,
        /// None, or `{"apps": ["quickbooks", ...]}`.
        body: Body<'a>,
        /// A repeat with the same key and body gets the first answer again (at most 255
        /// visible ASCII characters).
        idempotency_key: Option<&'a str>,
    },
    /// Create an object (a bank transaction body may also be an array to preload many).
    Create {
        /// The object type; not [`ObjectType::Payment`] (see [`DataOp::Pay`]).
        object: ObjectType,
        /// The object.
        body: Body<'a>,
        /// Push, sources, tracking id, idempotency.
        options: WriteOptions<'a>,
    },
    /// Change an object: customers, vendors and accounts take a JSON merge patch, invoices and
    /// expenses a whole replacement ([`ObjectType::update_mode`]).
    Update {
        /// The object type.
        object: ObjectType,
        /// Its id.
        id: &'a str,
        /// The patch or the replacement.
        body: Body<'a>,
        /// Push, sources, tracking id, idempotency, `If-Match`.
        options: WriteOptions<'a>,
    },
    /// What an object type is made of and what each of the account's connections requires
    /// of it and carries (`GET /api/meta/{objectType}`).
    Meta {
        /// The object type.
        object: ObjectType,
        /// Only the connections whose app or type is in this list (comma-separated, as
        /// `X-Sync-Sources`; `?sources=`).
        sources: Option<&'a str>,
    },
    /// Delete a customer, vendor or account (`204`; `409` while another object refers to
    /// it). With push, the deletion goes to the connections that hold a remote id for it.
    Delete {
        /// The object type: customer, vendor or account.
        object: ObjectType,
        /// Its id.
        id: &'a str,
        /// Push, sources, tracking id, idempotency, `If-Match`.
        options: WriteOptions<'a>,
    },
    /// Record a payment of an invoice.
    Pay {
        /// The invoice id.
        invoice: &'a str,
        /// `{amount?, date, reference?}`.
        body: Body<'a>,
        /// Push, sources, tracking id, idempotency.
        options: WriteOptions<'a>,
    },
}

/// The filters of `GET /api/syncs`; `None` filters nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncFilter {
    /// The sync's `trackingId`, exactly.
    pub tracking_id: Option<String>,
    /// The sync's status.
    pub status: Option<crate::records::SyncStatus>,
    /// The type of an object the sync pushes.
    pub object_type: Option<ObjectType>,
    /// The id of an object the sync pushes.
    pub object_id: Option<String>,
    /// The app key of one of its targets (compared ignoring case).
    pub app: Option<String>,
    /// Made at or after this time (Unix ms).
    pub since_ms: Option<i64>,
    /// Made at or before this time (Unix ms).
    pub until_ms: Option<i64>,
}

impl SyncFilter {
    /// Whether a filter needs the sync's row (not only its creation time).
    pub(crate) fn reads_rows(&self) -> bool {
        self.tracking_id.is_some()
            || self.status.is_some()
            || self.object_type.is_some()
            || self.object_id.is_some()
            || self.app.is_some()
    }
}

impl DataOp<'_> {
    /// Whether the call changes data (needs `api.write` and write mode).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            DataOp::Create { .. }
                | DataOp::Update { .. }
                | DataOp::Pay { .. }
                | DataOp::Delete { .. }
                | DataOp::RetrySync { .. }
        )
    }

    /// The call in the contract's HTTP form, method and the pieces of its path
    /// (`POST`, `/api/` `invoices`), ids as
    /// given: what the idempotency fingerprint covers besides the body when the caller gives
    /// no [`WriteOptions::idempotency_scope`]. (An id with a `/` names no stored object, so the
    /// line is unambiguous without percent-encoding.)
    pub(crate) fn canonical_request_line(&self) -> (&'static str, [&str; 4]) {
        match self {
            DataOp::Create { object, .. } => ("POST", ["/api/", object.collection(), "", ""]),
            DataOp::Update { object, id, .. } => {
                let method = match object.update_mode() {
                    Some(UpdateMode::Replace) => "PUT",
                    _ => "PATCH",
                };
                (method, ["/api/", object.collection(), "/", id])
            }
            DataOp::Pay { invoice, .. } => ("POST", ["/api/invoices/", invoice, "/payments", ""]),
            DataOp::Delete { object, id, .. } => {
                ("DELETE", ["/api/", object.collection(), "/", id])
            }
            DataOp::List { object, .. } => ("GET", ["/api/", object.collection(), "", ""]),
            DataOp::Get { object, id } => ("GET", ["/api/", object.collection(), "/", id]),
            DataOp::GetSync { id } => ("GET", ["/api/syncs/", id, "", ""]),
            DataOp::ListSyncs { .. } => ("GET", ["/api/syncs", "", "", ""]),
            DataOp::RetrySync { id, .. } => ("POST", ["/api/syncs/", id, "/retry", ""]),
            DataOp::Meta { object, .. } => ("GET", ["/api/meta/", object.as_str(), "", ""]),
        }
    }
}

/// How an object type is updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateMode {
    /// `PATCH`: a JSON merge patch (RFC 7396) of the stored object.
    MergePatch,
    /// `PUT`: the whole object again.
    Replace,
}

impl ObjectType {
    /// How the contract updates objects of this type; `None` for types that cannot be updated
    /// (payments, bank transactions).
    pub fn update_mode(self) -> Option<UpdateMode> {
        match self {
            ObjectType::Customer | ObjectType::Vendor | ObjectType::Account => {
                Some(UpdateMode::MergePatch)
            }
            ObjectType::Invoice | ObjectType::Expense => Some(UpdateMode::Replace),
            ObjectType::Payment | ObjectType::BankTransaction => None,
        }
    }
}

/// The options of a write (the contract's `X-Sync-Data`, `X-Sync-Sources`, `X-Tracking-ID`,
/// `Idempotency-Key` and `If-Match` headers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions<'a> {
    /// Also push the write to the account's connections that receive the object.
    pub push: bool,
    /// Limit the targets to these app keys or app types (comma-separated, as the header).
    pub sources: Option<&'a str>,
    /// Stored with the sync and sent with every push and webhook the write causes; at most 128
    /// visible ASCII characters.
    pub tracking_id: Option<&'a str>,
    /// A repeat with the same key and body gets the first answer again; at most 255 visible
    /// ASCII characters.
    pub idempotency_key: Option<&'a str>,
    /// What the idempotency fingerprint covers besides the body. `None`: the call's method and
    /// path in the contract's form; the HTTP adapter passes the request's own method and
    /// target, so that requests which differ there are never taken for each other.
    pub idempotency_scope: Option<RequestLine<'a>>,
    /// Only update the object while it is at this version (`412` otherwise).
    pub if_match: Option<IfMatch>,
    /// Run every check of the write (and, with `push`, resolve its targets and their
    /// requirements) but store nothing: `?dryRun=true`. The answer is `200` with
    /// `{valid, object, targets}`, or the refusal the real write would give;
    /// `idempotency_key` is ignored.
    pub dry_run: bool,
}

/// The method and target (path and query) of an HTTP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLine<'a> {
    /// `POST`, `PUT`, `PATCH`, ...
    pub method: &'a str,
    /// The path and query as sent.
    pub target: &'a str,
}

/// A precondition on the stored version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: any stored version.
    Any,
    /// Exactly this version.
    Version(u64),
}

/// The answer to a command that succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Reply {
    /// The outcome's status in the contract's HTTP terms (`200`, `201`, `202`, `204`).
    pub status: u16,
    /// The answer's JSON text (`None` for `204`).
    pub body: Option<String>,
    /// The version of the object written or read (`ETag`).
    pub etag: Option<u64>,
    /// The sync a pushing write started.
    pub sync: Option<SyncStarted>,
    /// This is the stored first answer of an idempotent write, replayed.
    pub replayed: bool,
}

impl Reply {
    /// A JSON answer.
    pub(crate) fn json(status: u16, body: &Value) -> Reply {
        Reply::text(status, body.to_string())
    }

    /// An answer whose JSON text is already made.
    pub(crate) fn text(status: u16, body: String) -> Reply {
        Reply {
            status,
            body: Some(body),
            etag: None,
            sync: None,
            replayed: false,
        }
    }

    /// An answer without a body.
    pub(crate) fn empty(status: u16) -> Reply {
        Reply {
            status,
            body: None,
            etag: None,
            sync: None,
            replayed: false,
        }
    }

    /// The body as a JSON value (`Null` when there is none or it does not parse).
    pub fn body_json(&self) -> Value {
        self.body
            .as_deref()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null)
    }
}

/// The sync a pushing write started (`X-Sync-ID`, `X-Sync-Targets`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStarted {
    /// The sync id.
    pub id: String,
    /// The app keys of its targets, possibly none.
    pub targets: Vec<String>,
}

/// A refusal in the contract's terms: what `application/problem+json` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The kind (status, `type`, `title`).
    pub kind: ProblemKind,
    /// What went wrong, for a person.
    pub detail: String,
    /// Every invalid field (`422 validation-failed`), each with its JSON Pointer.
    pub errors: Vec<FieldError>,
    /// The methods a path accepts (`405`).
    pub allow: Option<&'static [&'static str]>,
    /// The authentication scheme to ask for (`401`: `Basic` or `Bearer`).
    pub challenge: Option<&'static str>,
}

impl Problem {
    /// A problem of a kind with a detail.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Problem {
        Problem {
            kind,
            detail: detail.into(),
            errors: Vec::new(),
            allow: None,
            challenge: None,
        }
    }
}

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The caller's request was refused (authentication, validation, state): nothing changed.
    #[error("{}: {}", .0.kind.parts().1, .0.detail)]
    Refused(Problem),
    /// The host's storage failed while the command was planned or committed: nothing changed.
    #[error(transparent)]
    Storage(#[from] CoreError),
}

impl CommandError {
    /// The problem the contract answers for it (`503 storage-unavailable` or `500 internal`
    /// for a storage failure).
    pub fn into_problem(self) -> Problem {
        match self {
            CommandError::Refused(p) => p,
            CommandError::Storage(e) => {
                let kind = match e {
                    CoreError::Storage { .. } | CoreError::Layout(_) => {
                        ProblemKind::StorageUnavailable
                    }
                    _ => ProblemKind::Internal,
                };
                Problem::new(kind, e.to_string())
            }
        }
    }
}

impl From<Problem> for CommandError {
    fn from(p: Problem) -> Self {
        CommandError::Refused(p)
    }
}

impl<'a> Body<'a> {
    /// The JSON text, or `400` without a body and `415` for a body that is not JSON.
    pub(crate) fn text(self) -> Result<&'a str, Problem> {
        match self {
            Body::Json(t) if !t.trim().is_empty() => Ok(t),
            Body::None | Body::Json(_) => Err(Problem::new(
                ProblemKind::MalformedJson,
                "the request needs a JSON body",
            )),
            Body::NotJson {
                content_type: Some(ct),
            } => Err(Problem::new(
                ProblemKind::UnsupportedMediaType,
                format!("Content-Type {ct:?} is not supported; send application/json"),
            )),
            Body::NotJson { content_type: None } => Err(Problem::new(
                ProblemKind::UnsupportedMediaType,
                "a request with a body needs Content-Type: application/json",
            )),
        }
    }

    /// The body parsed into a value (`400` for malformed JSON).
    pub(crate) fn value(self) -> Result<Value, Problem> {
        serde_json::from_str(self.text()?)
            .map_err(|e| Problem::new(ProblemKind::MalformedJson, e.to_string()))
    }

    /// The body parsed into a document whose strings borrow from it (the CDM writes).
    pub(crate) fn document(self) -> Result<Json<'a>, Problem> {
        Json::parse(self.text()?)
            .map_err(|e| Problem::new(ProblemKind::MalformedJson, e.to_string()))
    }

    /// An optional body for calls that take none: read only when one was sent.
    pub(crate) fn optional_value(self) -> Result<Option<Value>, Problem> {
        match self {
            Body::None => Ok(None),
            Body::Json(t) if t.trim().is_empty() => Ok(None),
            b => b.value().map(Some),
        }
    }
}
