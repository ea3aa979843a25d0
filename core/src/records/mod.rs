//! The records the engine stores, and the key layout of the store.
//!
//! Every record is JSON text under a key built by the functions of [`keys`]. Hosts never need
//! to interpret them; the layout is documented here for debugging and for the store's tests.
//! This is data layout 5 ([`layout::LAYOUT_VERSION`], stored under `meta/layout`); what
//! layout 1 spelled differently is in `v1` (feature `layout1`), and `engine/migrate_v1.rs`
//! converts it; `engine/migrate.rs` converts layouts 2 and 3.
//!
//! In the rows below, `{id*}` is an id in the short form of [`keys::id_in_key`] (a UUID as 22
//! symbols of base64 over an alphabet in ASCII order, so keys sort as the UUIDs do), and an
//! index value "names" an id as [`keys::id_value`] (that form as a JSON string). The other ids
//! are written as they are. Object ids are drawn by the engine and unique in a store, so the
//! rows read only for an object already found under its account (push chains, `rm/`, `ov/`, `rf/`)
//! name no account.
//!
//! | key | value |
//! |---|---|
//! | `meta/admin` | [`AdminRec`]: hash of the admin token (when the host stores it) |
//! | `meta/layout` | `{"version": 5}`: the data layout of the store |
//! | `meta/migration` | progress of a layout migration under way |
//! | `acct/{account}` | [`AccountRec`] |
//! | `acctdom/{domain}` | account id (uniqueness of domains) |
//! | `key/{key}` | [`ApiKeyRec`] (secret stored as SHA-256 only) |
//! | `conn/{account}/{connection}` | [`ConnectionRec`] |
//! | `hook/{account}/{webhook}` | [`WebhookRec`] |
//! | `obj/{account}/{type}/{id}` | the stored CDM object (its current version) |
//! | `ov/{type}/{id*}/{version:020}` | an older version of the object, kept while an unfinished push task sends it |
//! | `uq/{account*}/{rule}/{value}` | names the object holding a unique value |
//! | `rf/{type}/{id*}/{referrer type}/{referrer id*}` | reverse reference index: the referrer names the object (customer, vendor or account) in the field at the JSON Pointer stored as the value (the first such field); written with the referrer, so a delete finds a referrer with one bounded scan |
//! | `sy/{sync*}` | [`rows::SyncRow`]: a sync with its targets and their push tasks ([`SyncRec`], [`TaskRec`]); a task names the object version it pushes |
//! | `sy/{object*}/c` | the push chain of an object: the syncs with unfinished push tasks of it (JSON list of `{sync*}`, oldest first). Among the syncs because ids are drawn in time order: a create's chain is the neighbour of its sync's row, and the two share a page of the key index |
//! | `sa/{account*}/{sync*, every bit inverted}` | index of an account's syncs, newest first (`GET /api/syncs`); names the sync |
//! | `tk/{task*}` | names the sync of a push task that was handed out (work ids name only the task) |
//! | `rm/{type}/{id*}` | the object's ids at its connections: `{connection*: remote id}`, a [`RemoteRec`] where the source also gave a version |
//! | `token/{connection}` | [`TokenRec`]: the access token the host gave for a connection |
//! | `tokreq/{connection}` | [`TokenRequestRec`]: an open request to the host for a token |
//! | `dlv/{delivery}` | [`DeliveryRec`]: one webhook delivery |
//! | `wd/{account}/{webhook}/{delivery*, every bit inverted}` | index of deliveries per subscription, newest first; the value is the delivery id |
//! | `du/{ms:016}/{t, d or k}/{id*}` | wake-up index of tasks (`t`, names the task's sync), deliveries (`d`) and token requests (`k`, by connection) |
//! | `idem/{account}/{key}` | [`IdemRec`]: the first answer of an idempotent write |
//! | `idemexp/{ms:016}/{account}/{key}` | retention index of idempotency records |
//! | `dlvexp/{ms:016}/{delivery}` | retention index of finished deliveries |
//!
//! A deleted object (`DELETE /api/{customers,vendors,accounts}/{id}`) leaves `obj/` and its
//! uniqueness entries at once; its last version stays under `ov/` while a push (its delete
//! push, or an earlier unfinished one) still sends it, and its `rm/` row and push chain go when
//! its last unfinished push finished. A delete push's sync has `op: "delete"`: every task of
//! it builds a delete request.
//!
//! Retention (`Engine::prune`): idempotency records and finished deliveries by their indexes;
//! a sync whose targets all finished (and whose deliveries are not owed) once the time its id
//! carries is older than `syncRetentionMs`, with its `tk/` pointers, its `sa/` index entry and
//! its deliveries. Objects, their current version, uniqueness entries, reference entries and
//! remote ids are never pruned (a delete removes them, as above); a kept version
//! goes when no unfinished task sends it, a chain entry when no task of it is unfinished.
//! `GET /api/syncs/{id}` of a missing sync whose id carries a time past the window answers
//! `404` with a detail saying it expired (the id is the watermark: no row is kept for it).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cdm::ObjectType;
use crate::connectors::ConnectorKind;

/// A string as JSON text (quoted and escaped), as stored in index rows.
pub fn json_string(s: &str) -> String {
    // Serializing a string cannot fail; the fallback keeps this panic-free.
    crate::json::to_text(s, s.len() + 2).unwrap_or_else(|_| "\"\"".into())
}

pub mod keys;
pub mod layout;
pub mod rows;
#[cfg(feature = "layout1")]
pub mod v1;
pub(crate) mod value;

/// The stored hash of the admin token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminRec {
    /// Lowercase hex SHA-256 of the token.
    pub token_sha256: String,
}

/// An account (tenant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountRec {
    /// Id.
    pub id: String,
    /// Domain, unique, lowercase.
    pub domain: String,
    /// Whether writes are allowed.
    pub write_enabled: bool,
    /// RFC 3339.
    pub created_at: String,
}

/// An API key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyRec {
    /// The key (username of Basic auth).
    pub key: String,
    /// The account it belongs to.
    pub account_id: String,
    /// SHA-256 of the secret, lowercase hex.
    pub secret_sha256: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Optional name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

/// A connected source application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionRec {
    /// Id.
    pub id: String,
    /// App key.
    pub app: String,
    /// App type.
    #[serde(rename = "type")]
    pub app_type: String,
    /// Where the generic connector sends pushes (`None` for provider connectors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_url: Option<String>,
    /// Object types it receives.
    pub objects: Vec<ObjectType>,
    /// RFC 3339.
    pub created_at: String,
    /// The connector that speaks to the application (`generic` when absent).
    #[serde(default, skip_serializing_if = "ConnectorKind::is_generic")]
    pub connector: ConnectorKind,
    /// The provider's base URL (provider connectors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Provider settings (`realmId`, `tenantId`, ...); never secrets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, String>,
}

/// A webhook subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookRec {
    /// Id.
    pub id: String,
    /// Endpoint.
    pub url: String,
    /// Event names or `*`.
    pub events: Vec<String>,
    /// Basic auth user name sent with deliveries (an outbound credential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Basic auth password sent with deliveries (an outbound credential: it must be sent in
    /// clear to the receiver, so it cannot be stored as a hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Standard Webhooks signing secret (`whsec_...`), an outbound credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// The secret a rotation replaced, still signing beside the new one until its deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret: Option<RetiredSecret>,
    /// Why the subscription is disabled; `None` while it is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// Deliveries in a row that ended `failed` (a delivered one resets it).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub consecutive_failures: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A signing secret replaced by a rotation: deliveries carry its signature too until
/// `until_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetiredSecret {
    /// The old `whsec_...` secret.
    pub secret: String,
    /// End of the overlap (Unix ms).
    pub until_ms: i64,
}

/// Status of one target (connection) of a sync, and of one push task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetStatus {
    /// Not started.
    Pending,
    /// Started, not final.
    InProgress,
    /// Final: delivered.
    Succeeded,
    /// Final: gave up.
    Failed,
}

impl TargetStatus {
    /// Whether the status is final.
    pub fn is_final(self) -> bool {
        matches!(self, TargetStatus::Succeeded | TargetStatus::Failed)
    }
    /// The JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetStatus::Pending => "pending",
            TargetStatus::InProgress => "in_progress",
            TargetStatus::Succeeded => "succeeded",
            TargetStatus::Failed => "failed",
        }
    }
}

/// Status of a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    /// No target started.
    Pending,
    /// Some target started, not all final.
    InProgress,
    /// Every target succeeded.
    Succeeded,
    /// Some succeeded, some failed.
    PartiallyFailed,
    /// Every target failed.
    Failed,
    /// Nothing to push to.
    NoTargets,
}

impl SyncStatus {
    /// Whether the status is final.
    pub fn is_final(self) -> bool {
        !matches!(self, SyncStatus::Pending | SyncStatus::InProgress)
    }
    /// The JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Pending => "pending",
            SyncStatus::InProgress => "in_progress",
            SyncStatus::Succeeded => "succeeded",
            SyncStatus::PartiallyFailed => "partially_failed",
            SyncStatus::Failed => "failed",
            SyncStatus::NoTargets => "no_targets",
        }
    }
    /// The status with this JSON name.
    pub fn parse(s: &str) -> Option<SyncStatus> {
        value::sync_status(s).ok()
    }
    /// The aggregate of target statuses.
    pub fn aggregate(targets: &[TargetStatus]) -> SyncStatus {
        SyncStatus::aggregate_of(targets.iter().copied())
    }

    /// [`SyncStatus::aggregate`] over any pass of the statuses (it goes through them more
    /// than once).
    pub fn aggregate_of(targets: impl Iterator<Item = TargetStatus> + Clone) -> SyncStatus {
        let n = targets.clone().count();
        if n == 0 {
            return SyncStatus::NoTargets;
        }
        if targets.clone().all(|t| t == TargetStatus::Pending) {
            return SyncStatus::Pending;
        }
        if !targets.clone().all(|t| t.is_final()) {
            return SyncStatus::InProgress;
        }
        let ok = targets.filter(|t| *t == TargetStatus::Succeeded).count();
        if ok == n {
            SyncStatus::Succeeded
        } else if ok == 0 {
            SyncStatus::Failed
        } else {
            SyncStatus::PartiallyFailed
        }
    }
}

/// A reference to a CDM object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Its type.
    #[serde(rename = "type")]
    pub object_type: ObjectType,
    /// Its id.
    pub id: String,
}

/// One target of a sync: a connection, and the push tasks that serve it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetRec {
    /// Connection id.
    pub connection_id: String,
    /// App key.
    pub app: String,
    /// App type.
    #[serde(rename = "type")]
    pub app_type: String,
    /// Aggregate status of its tasks.
    pub status: TargetStatus,
    /// Sum of attempts of its tasks.
    pub attempts: u32,
    /// Remote id of the sync's object at this connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    /// The last error of any of its tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The structured form of `last_error` when a source's answer gave it (always what the
    /// tasks say; never stored at the target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::connectors::SourceError>,
    /// RFC 3339.
    pub updated_at: String,
    /// Its tasks, in push order.
    pub tasks: Vec<String>,
}

/// A sync: the push of one write to its targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRec {
    /// Id (the `X-Sync-ID`).
    pub id: String,
    /// The account.
    pub account_id: String,
    /// Aggregate status.
    pub status: SyncStatus,
    /// `X-Request-ID` of the write.
    pub request_id: String,
    /// `X-Tracking-ID` of the write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_id: Option<String>,
    /// `create`, `update` or `delete`.
    pub operation: String,
    /// The written object (the first one of a bulk write).
    pub object: ObjectRef,
    /// Every object the write stored (a bulk preload stores several).
    pub objects: Vec<ObjectRef>,
    /// A label for messages (`invoice INV-1001`).
    pub label: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Targets.
    pub targets: Vec<TargetRec>,
    /// The webhook deliveries its events queued (pruned with it). Layout 1 did not keep them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deliveries: Vec<String>,
}

/// Where a push task is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for earlier tasks (`waiting_on`).
    Waiting,
    /// Waiting for the host to give the connection an access token (see [`TokenRequestRec`]).
    WaitingForToken,
    /// Due at `due_ms`.
    Pending {
        /// When it may be sent.
        due_ms: i64,
    },
    /// Handed to the host; if no result arrives by `lease_until_ms` it is due again.
    InProgress {
        /// Lease deadline.
        lease_until_ms: i64,
    },
    /// Final: the source accepted it.
    Succeeded,
    /// Final: given up.
    Failed,
}

impl TaskState {
    /// The status shown for it.
    pub fn status(&self) -> TargetStatus {
        match self {
            TaskState::Waiting | TaskState::WaitingForToken | TaskState::Pending { .. } => {
                TargetStatus::Pending
            }
            TaskState::InProgress { .. } => TargetStatus::InProgress,
            TaskState::Succeeded => TargetStatus::Succeeded,
            TaskState::Failed => TargetStatus::Failed,
        }
    }
}

/// One push of one object to one connection, as the engine works with it. Layout 2 stores it
/// inside its sync's row (see [`rows`]); layout 1 stored it as `v1::TaskRecV1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRec {
    /// Id; also the push's `Idempotency-Key`.
    pub id: String,
    /// Account.
    pub account_id: String,
    /// Sync it serves.
    pub sync_id: String,
    /// Connection it goes to.
    pub connection_id: String,
    /// The object.
    pub object: ObjectRef,
    /// The version of the object it pushes (the stored object while it is current, else a
    /// kept version, see [`keys::kept_version`]).
    pub version: u64,
    /// Tracking id of the write.
    pub tracking_id: Option<String>,
    /// State.
    pub state: TaskState,
    /// Attempts made (including one in progress).
    pub attempts: u32,
    /// Last error.
    pub last_error: Option<String>,
    /// The structured form of `last_error`, when it came from a source's answer.
    pub error: Option<crate::connectors::SourceError>,
    /// The attempts made before the current retry budget began (a manual retry of the sync
    /// starts a new one): the retry schedule counts `attempts - budget_start`.
    pub budget_start: u32,
    /// Tasks that must finish first.
    pub waiting_on: Vec<String>,
    /// Tasks that must have *succeeded* first (a subset of `waiting_on`).
    pub requires: Vec<String>,
    /// Tasks waiting for this one, as `{sync}/{task}`.
    pub successors: Vec<String>,
    /// Reference fields of the object resolved to remote ids at send time: (field, type, id).
    pub references: Vec<(String, ObjectType, String)>,
    /// The connector of the connection when the task was planned.
    pub connector: ConnectorKind,
    /// Whether a `401` already made this push ask the host for a new token (the next `401`
    /// fails it).
    pub reauthorized: bool,
    /// The serial of the access token the attempt in progress carries.
    pub token_serial: Option<u64>,
    /// It pushes a deletion (not stored per task: its sync's `operation` is `delete`).
    pub delete: bool,
}

impl TaskRec {
    /// What it sends: a deletion when its sync deletes, else an update where the connection
    /// already knows the object (`known`), else a create.
    pub fn operation(&self, known: bool) -> crate::connectors::Operation {
        use crate::connectors::Operation;
        if self.delete {
            Operation::Delete
        } else if known {
            Operation::Update
        } else {
            Operation::Create
        }
    }
}

/// The id of an object at a source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteRec {
    /// The source's id, when its answer named one.
    pub remote_id: Option<String>,
    /// The source's version of the object, when it keeps one that updates must send back
    /// (QuickBooks' `SyncToken`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The access token the host gave for a connection. Short-lived; the engine never sees a
/// refresh token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRec {
    /// The bearer token.
    pub access_token: String,
    /// When it expires (Unix ms), if the host said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    /// Counts the tokens stored for the connection, so that a `401` invalidates only the
    /// token that attempt carried.
    pub serial: u64,
}

/// Where a token request is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TokenRequestState {
    /// To be handed to the host at `due_ms`.
    Pending {
        /// When.
        due_ms: i64,
    },
    /// Handed to the host; handed out again if no answer arrives by `lease_until_ms`.
    InProgress {
        /// Lease deadline.
        lease_until_ms: i64,
    },
}

/// An open request to the host for a connection's access token, and the pushes waiting for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRequestRec {
    /// The connection.
    pub connection_id: String,
    /// Its account.
    pub account_id: String,
    /// Its app key.
    pub app: String,
    /// Why a token is needed: `missing`, `expired` or `unauthorized`.
    pub reason: String,
    /// State.
    pub state: TokenRequestState,
    /// Attempts handed to the host.
    pub attempts: u32,
    /// The push tasks waiting for the token.
    pub waiting: Vec<String>,
}

/// Status of a webhook delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not delivered yet, more attempts owed.
    Pending,
    /// The endpoint answered 200.
    Delivered,
    /// Every attempt of the budget failed.
    Failed,
}

/// Where a webhook delivery is in its life. Each state owns the deadline it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// More attempts owed: the next is due at `due_ms`.
    Pending {
        /// When the next attempt may be made.
        due_ms: i64,
    },
    /// An attempt is out with the host; if no result arrives by `lease_until_ms` it is due
    /// again.
    InProgress {
        /// Lease deadline.
        lease_until_ms: i64,
    },
    /// Final: the endpoint answered `200`.
    Delivered,
    /// Final: every attempt of the budget failed (a manual retry starts a new budget).
    Failed,
}

impl DeliveryState {
    /// The status shown for it (`pending` while attempts are owed or one is out).
    pub fn status(&self) -> DeliveryStatus {
        match self {
            DeliveryState::Pending { .. } | DeliveryState::InProgress { .. } => {
                DeliveryStatus::Pending
            }
            DeliveryState::Delivered => DeliveryStatus::Delivered,
            DeliveryState::Failed => DeliveryStatus::Failed,
        }
    }
}

/// One webhook delivery. Stored as `{..., "status", "leaseUntilMs", "dueMs", ...}`: the state
/// is spelled as the flat fields the layout has always had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRec {
    /// Id; also the `webhook-id` header.
    pub id: String,
    /// Account.
    pub account_id: String,
    /// Subscription.
    pub webhook_id: String,
    /// Event name.
    pub event: String,
    /// Where it is in its life.
    pub state: DeliveryState,
    /// Attempts made in all.
    pub attempts: u32,
    /// Attempts made in the current budget (a manual retry starts a new one).
    pub budget_used: u32,
    /// Status code of the last answer.
    pub last_status_code: Option<u16>,
    /// Last error.
    pub last_error: Option<String>,
    /// Sync it reports on (`None` for a `webhook_test` delivery).
    pub sync_id: Option<String>,
    /// Tracking id of the write.
    pub tracking_id: Option<String>,
    /// The JSON body, fixed at creation.
    pub body: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl Serialize for DeliveryRec {
    fn serialize<Z: serde::Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        use serde::ser::SerializeStruct;
        let (status, lease_until_ms, due_ms) = match self.state {
            DeliveryState::Pending { due_ms } => (DeliveryStatus::Pending, None, Some(due_ms)),
            DeliveryState::InProgress { lease_until_ms } => {
                (DeliveryStatus::Pending, Some(lease_until_ms), None)
            }
            DeliveryState::Delivered => (DeliveryStatus::Delivered, None, None),
            DeliveryState::Failed => (DeliveryStatus::Failed, None, None),
        };
        let mut s = serializer.serialize_struct("DeliveryRec", 16)?;
        s.serialize_field("id", &self.id)?;
        s.serialize_field("accountId", &self.account_id)?;
        s.serialize_field("webhookId", &self.webhook_id)?;
        s.serialize_field("event", &self.event)?;
        s.serialize_field("status", &status)?;
        s.serialize_field("attempts", &self.attempts)?;
        s.serialize_field("budgetUsed", &self.budget_used)?;
        s.serialize_field("leaseUntilMs", &lease_until_ms)?;
        s.serialize_field("dueMs", &due_ms)?;
        s.serialize_field("lastStatusCode", &self.last_status_code)?;
        s.serialize_field("lastError", &self.last_error)?;
        s.serialize_field("syncId", &self.sync_id)?;
        s.serialize_field("trackingId", &self.tracking_id)?;
        s.serialize_field("body", &self.body)?;
        s.serialize_field("createdAt", &self.created_at)?;
        s.serialize_field("updatedAt", &self.updated_at)?;
        s.end()
    }
}

/// The first answer of an idempotent write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdemRec {
    /// SHA-256 of method, path and canonical body.
    pub fingerprint: String,
    /// Status of the first answer.
    pub status: u16,
    /// Headers of the first answer worth replaying.
    pub headers: Vec<(String, String)>,
    /// Body of the first answer.
    pub body: String,
    /// When it was stored (ms).
    pub created_ms: i64,
}

/// `Deserialize` through [`value`]'s field readers: the text is parsed once into a `Value`
/// and read field by field, which keeps the code of each record small (a derived impl is
/// 1 to 6 KB of wasm per record; README "Size and speed").
macro_rules! read_via_value {
    ($($t:ty => $read:path),* $(,)?) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = value::value_of(d)?;
                $read(&v).map_err(serde::de::Error::custom)
            }
        }
    )*};
}

read_via_value! {
    AdminRec => value::admin,
    AccountRec => value::account,
    ApiKeyRec => value::api_key,
    ConnectionRec => value::connection,
    WebhookRec => value::webhook,
    TokenRec => value::token,
    TokenRequestRec => value::token_request,
    DeliveryRec => value::delivery,
    IdemRec => value::idem,
}

#[cfg(test)]
mod tests {
    use super::*;
    use TargetStatus::*;

    #[test]
    fn deliveries_keep_their_stored_layout_in_every_state() {
        let base = r#"{"id":"d1","accountId":"a1","webhookId":"w1","event":"api_push_update","#;
        let tail = r#""lastStatusCode":500,"lastError":"HTTP 500: x","syncId":"s1","trackingId":null,"body":"{}","createdAt":"t0","updatedAt":"t1"}"#;
        let cases = [
            (
                r#""status":"pending","attempts":1,"budgetUsed":1,"leaseUntilMs":null,"dueMs":5,"#,
                DeliveryState::Pending { due_ms: 5 },
            ),
            (
                r#""status":"pending","attempts":1,"budgetUsed":1,"leaseUntilMs":9,"dueMs":null,"#,
                DeliveryState::InProgress { lease_until_ms: 9 },
            ),
            (
                r#""status":"delivered","attempts":1,"budgetUsed":1,"leaseUntilMs":null,"dueMs":null,"#,
                DeliveryState::Delivered,
            ),
            (
                r#""status":"failed","attempts":1,"budgetUsed":1,"leaseUntilMs":null,"dueMs":null,"#,
                DeliveryState::Failed,
            ),
        ];
        for (middle, state) in cases {
            let text = format!("{base}{middle}{tail}");
            let d: DeliveryRec = serde_json::from_str(&text).unwrap();
            assert_eq!(d.state, state);
            assert_eq!(serde_json::to_string(&d).unwrap(), text);
        }
        let neither = format!(
            r#"{base}"status":"pending","attempts":1,"budgetUsed":1,"leaseUntilMs":null,"dueMs":null,{tail}"#
        );
        // Never written by the engine; read as due at once rather than refused, so that it
        // is attempted instead of dropped from the wake-up index.
        let d: DeliveryRec = serde_json::from_str(&neither).unwrap();
        assert_eq!(d.state, DeliveryState::Pending { due_ms: 0 });
    }

    #[test]
    fn webhooks_stored_before_management_load_and_write_back_unchanged() {
        let old = r#"{"id":"w1","url":"https://h.example.com/in","events":["*"],"username":"u","password":"p","signingSecret":"whsec_dGVzdA==","createdAt":"t0"}"#;
        let w: WebhookRec = serde_json::from_str(old).unwrap();
        assert_eq!(w.disabled_reason, None);
        assert_eq!(w.consecutive_failures, 0);
        assert_eq!(w.previous_secret, None);
        assert_eq!(serde_json::to_string(&w).unwrap(), old);
        let managed = WebhookRec {
            previous_secret: Some(RetiredSecret {
                secret: "whsec_b2xk".into(),
                until_ms: 9,
            }),
            disabled_reason: Some("why".into()),
            consecutive_failures: 10,
            ..w
        };
        let text = serde_json::to_string(&managed).unwrap();
        assert!(text.ends_with(r#""previousSecret":{"secret":"whsec_b2xk","untilMs":9},"disabledReason":"why","consecutiveFailures":10}"#), "{text}");
        assert_eq!(serde_json::from_str::<WebhookRec>(&text).unwrap(), managed);
        // A test ping's delivery belongs to no sync.
        let ping = r#"{"id":"d1","accountId":"a1","webhookId":"w1","event":"webhook_test","status":"failed","attempts":4,"budgetUsed":4,"leaseUntilMs":null,"dueMs":null,"lastStatusCode":500,"lastError":null,"syncId":null,"trackingId":null,"body":"{}","createdAt":"t0","updatedAt":"t1"}"#;
        let d: DeliveryRec = serde_json::from_str(ping).unwrap();
        assert_eq!(d.sync_id, None);
        assert_eq!(serde_json::to_string(&d).unwrap(), ping);
    }

    /// Each record reads back what it writes, with every optional field set and with none.
    #[test]
    fn records_read_back_what_they_write() {
        fn round<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(r: T) {
            let text = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<T>(&text).unwrap(), r, "{text}");
        }
        round(AdminRec {
            token_sha256: "ab".into(),
        });
        round(AccountRec {
            id: "a".into(),
            domain: "d".into(),
            write_enabled: true,
            created_at: "t".into(),
        });
        for name in [None, Some("n".to_string())] {
            round(ApiKeyRec {
                key: "k".into(),
                account_id: "a".into(),
                secret_sha256: "s".into(),
                scopes: vec!["read".into(), "write".into()],
                name,
                created_at: "t".into(),
            });
        }
        let conn = ConnectionRec {
            id: "c".into(),
            app: "quickbooks".into(),
            app_type: "accounting".into(),
            push_url: Some("https://x.example.com".into()),
            objects: vec![ObjectType::Invoice, ObjectType::Customer],
            created_at: "t".into(),
            connector: ConnectorKind::Quickbooks,
            base_url: Some("https://b.example.com".into()),
            settings: [("realmId".to_string(), "9".to_string())].into(),
        };
        round(conn.clone());
        round(ConnectionRec {
            push_url: None,
            objects: vec![],
            connector: ConnectorKind::Generic,
            base_url: None,
            settings: BTreeMap::new(),
            ..conn
        });
        round(TokenRec {
            access_token: "x".into(),
            expires_at_ms: Some(-3),
            serial: 7,
        });
        round(TokenRec {
            access_token: "x".into(),
            expires_at_ms: None,
            serial: 0,
        });
        for state in [
            TokenRequestState::Pending { due_ms: 5 },
            TokenRequestState::InProgress { lease_until_ms: 6 },
        ] {
            round(TokenRequestRec {
                connection_id: "c".into(),
                account_id: "a".into(),
                app: "xero".into(),
                reason: "missing".into(),
                state,
                attempts: 2,
                waiting: vec!["t1".into()],
            });
        }
        round(IdemRec {
            fingerprint: "f".into(),
            status: 201,
            headers: vec![("X-Sync-ID".into(), "s".into())],
            body: "{}".into(),
            created_ms: 1,
        });
        let bad = |t: &str| serde_json::from_str::<TokenRec>(t).is_err();
        assert!(bad(r#"{"accessToken":"x"}"#));
        assert!(bad(r#"{"accessToken":1,"serial":1}"#));
        assert!(bad("[]"));
        assert!(serde_json::from_str::<IdemRec>(
            r#"{"fingerprint":"f","status":70000,"headers":[],"body":"","createdMs":1}"#
        )
        .is_err());
    }

    #[test]
    fn sync_status_aggregates_targets() {
        assert_eq!(SyncStatus::aggregate(&[]), SyncStatus::NoTargets);
        assert_eq!(
            SyncStatus::aggregate(&[Pending, Pending]),
            SyncStatus::Pending
        );
        assert_eq!(
            SyncStatus::aggregate(&[Succeeded, Pending]),
            SyncStatus::InProgress
        );
        assert_eq!(SyncStatus::aggregate(&[InProgress]), SyncStatus::InProgress);
        assert_eq!(
            SyncStatus::aggregate(&[Succeeded, Succeeded]),
            SyncStatus::Succeeded
        );
        assert_eq!(
            SyncStatus::aggregate(&[Succeeded, Failed]),
            SyncStatus::PartiallyFailed
        );
        assert_eq!(SyncStatus::aggregate(&[Failed, Failed]), SyncStatus::Failed);
        for s in [
            SyncStatus::Succeeded,
            SyncStatus::PartiallyFailed,
            SyncStatus::Failed,
            SyncStatus::NoTargets,
        ] {
            assert!(s.is_final());
        }
        assert_eq!(
            serde_json::to_string(&SyncStatus::PartiallyFailed).unwrap(),
            "\"partially_failed\""
        );
        assert_eq!(
            serde_json::to_string(&InProgress).unwrap(),
            "\"in_progress\""
        );
    }

    #[test]
    fn timed_keys_are_zero_padded_like_format() {
        for ms in [
            -5,
            0,
            7,
            1_790_000_000_123,
            9_999_999_999_999_999,
            10_000_000_000_000_000,
            i64::MAX,
        ] {
            let m = ms.max(0);
            assert_eq!(keys::due_task(ms, "x"), format!("du/{m:016}/t/~x"));
            assert_eq!(keys::due_delivery(ms, "x"), format!("du/{m:016}/d/~x"));
            assert_eq!(keys::due_token(ms, "c"), format!("du/{m:016}/k/~c"));
            assert_eq!(
                keys::idempotency_expiry(ms, "a", "k"),
                format!("idemexp/{m:016}/a/k")
            );
            assert_eq!(keys::delivery_expiry(ms, "d"), format!("dlvexp/{m:016}/d"));
        }
        assert_eq!(
            keys::object("a", ObjectType::Invoice, "i"),
            "obj/a/invoice/i"
        );
    }

    fn uuid_of(n: u128) -> String {
        uuid::Uuid::from_u128(n).hyphenated().to_string()
    }

    #[test]
    fn ids_in_keys_are_22_symbols_that_sort_as_the_uuids_do() {
        let id = "01a0c450-6c00-700c-984f-f1346102aa1a";
        let short = keys::id_in_key(id);
        assert_eq!(short.len(), 22, "{short}");
        assert!(!short.contains('/'), "{short}");
        assert_eq!(keys::id_from_key(&short).as_deref(), Some(id));
        assert_eq!(keys::id_of_value(&keys::id_value(id)).as_deref(), Some(id));
        // Anything but a UUID's canonical text is kept as it is, behind `~`.
        for other in ["x", "01A0C450-6C00-700C-984F-F1346102AA1A", "", "a/b"] {
            let k = keys::id_in_key(other);
            assert_eq!(k, format!("~{other}"));
            assert_eq!(keys::id_from_key(&k).as_deref(), Some(other));
        }
        // No other text reads as an id: a short form has one spelling.
        for bad in [
            "",
            "abc",
            "-----------------------",
            "zzzzzzzzzzzzzzzzzzzzzz",
            "A/AAAAAAAAAAAAAAAAAAAA",
        ] {
            assert_eq!(keys::id_from_key(bad), None, "{bad}");
        }
        let mut ids: Vec<u128> = vec![0, 1, 2, 63, 64, 255, 256, u128::MAX - 1, u128::MAX];
        ids.extend(
            (0..2000u128).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)),
        );
        ids.sort_unstable();
        ids.dedup();
        let texts: Vec<String> = ids.iter().map(|n| uuid_of(*n)).collect();
        let shorts: Vec<String> = texts.iter().map(|t| keys::id_in_key(t)).collect();
        for (t, s) in texts.iter().zip(&shorts) {
            assert_eq!(keys::id_from_key(s).as_ref(), Some(t));
        }
        assert!(
            shorts.windows(2).all(|w| w[0] < w[1]),
            "short ids keep the order of UUIDs"
        );
        // Conversions are remembered per thread (`keys::MEMO_SLOTS`): a second pass, in
        // either order, answers the same, and a remembered id's upper-case spelling is still
        // no UUID.
        for (t, s) in texts.iter().zip(&shorts).rev() {
            assert_eq!(&keys::id_in_key(t), s);
            assert_eq!(&keys::id_in_key(t), s);
            let upper = t.to_ascii_uppercase();
            if upper != *t {
                assert_eq!(keys::id_in_key(&upper), format!("~{upper}"));
            }
        }
        // The per-account sync index lists the newest first, and gives every id back.
        let entries: Vec<String> = texts.iter().map(|t| keys::account_sync("a", t)).collect();
        assert!(entries.windows(2).all(|w| w[0] > w[1]));
        let prefix = keys::account_syncs("a");
        for (t, e) in texts.iter().zip(&entries) {
            assert_eq!(keys::id_from_inverted(&e[prefix.len()..]).as_ref(), Some(t));
        }
        assert_eq!(
            keys::id_from_inverted(&keys::account_sync("a", "x")[prefix.len()..]).as_deref(),
            Some("x")
        );
    }

    quickcheck::quickcheck! {
        fn short_ids_round_trip_and_keep_order(a: u128, b: u128) -> bool {
            let (x, y) = (uuid_of(a), uuid_of(b));
            let (sx, sy) = (keys::id_in_key(&x), keys::id_in_key(&y));
            keys::id_from_key(&sx) == Some(x.clone())
                && keys::id_from_key(&sy) == Some(y.clone())
                && sx.cmp(&sy) == x.cmp(&y)
        }
    }

    #[test]
    fn targets_written_with_every_field_still_read() {
        let target = TargetRec {
            connection_id: "c".into(),
            app: "quickbooks".into(),
            app_type: "accounting".into(),
            status: TargetStatus::Pending,
            attempts: 0,
            remote_id: None,
            last_error: None,
            error: None,
            updated_at: "2026-01-01T00:00:00.000Z".into(),
            tasks: vec!["t".into()],
        };
        let old = r#"{"connectionId":"c","app":"quickbooks","type":"accounting","status":"pending","attempts":0,"remoteId":null,"lastError":null,"updatedAt":"2026-01-01T00:00:00.000Z","tasks":["t"]}"#;
        assert_eq!(serde_json::from_str::<TargetRec>(old).unwrap(), target);
        let compact = serde_json::to_string(&target).unwrap();
        assert_eq!(serde_json::from_str::<TargetRec>(&compact).unwrap(), target);
    }

    #[test]
    fn due_keys_sort_by_time() {
        let a = keys::due_task(999, "z");
        let b = keys::due_delivery(1000, "a");
        assert!(a < b);
        assert_eq!(keys::due_task(-5, "x"), keys::due_task(0, "x"));
    }
}
