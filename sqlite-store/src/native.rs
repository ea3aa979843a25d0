//! [`NativeEngine`]: the engine and its SQLite store in one value, with typed calls for
//! applications that link the crate directly instead of speaking HTTP.
//!
//! Every typed call builds the same [`ApiRequest`] an HTTP client would send and runs it
//! through [`Engine::handle_with`], so authentication, validation, idempotency and push
//! routing are exactly those of the HTTP contract; the answer is decoded into
//! [`WriteResult`] or [`WriteError`].

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use writesync_core::cdm::{FieldError, ObjectType};
use writesync_core::http::{problem, ProblemKind};
use writesync_core::records::{ObjectRef, SyncStatus, TargetStatus};
use writesync_core::util::crypto::basic_auth_header;
use writesync_core::{
    ApiRequest, ApiResponse, CoreError, Engine, EngineConfig, KvRead, Outcome, Storage, WorkItem,
    WorkKind,
};

use crate::{SqliteStore, StoreError, StoreOptions};

/// How many pushes and deliveries [`NativeEngine::run_due`] claims (leases) at a time unless
/// changed with [`NativeEngine::set_claim_limit`]. Claimed items are sent one after the
/// other; keep `limit x slowest send` well under the lease (`EngineConfig::lease_ms`, 2 min
/// by default), or an item whose lease ran out may be handed out again.
pub const DEFAULT_CLAIM_LIMIT: usize = 16;

/// How many retention records [`NativeEngine::prune`] removes per transaction.
pub const PRUNE_BATCH: usize = 256;

/// An API key and its secret: the HTTP Basic credentials of the data API.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The key (the Basic username).
    pub key: String,
    /// The secret (the Basic password).
    pub secret: String,
}

impl Credentials {
    /// Credentials from a key and its secret.
    pub fn new(key: impl Into<String>, secret: impl Into<String>) -> Self {
        Credentials {
            key: key.into(),
            secret: secret.into(),
        }
    }

    /// The credentials in the answer to `POST /admin/accounts/{id}/api-keys`
    /// (`{key, secret, scopes}`), if it has them.
    pub fn from_api_key_answer(answer: &Value) -> Option<Self> {
        Some(Credentials::new(
            answer.get("key")?.as_str()?,
            answer.get("secret")?.as_str()?,
        ))
    }

    fn authorization(&self) -> String {
        basic_auth_header(&self.key, &self.secret)
    }
}

/// Never prints the secret.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The optional headers of a write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Also push the write to the account's connections (`X-Sync-Data: push`).
    pub push: bool,
    /// Limit the push to connections whose app or type is listed (`X-Sync-Sources`).
    pub sources: Option<Vec<String>>,
    /// Echoed, stored with the sync and sent with every push and webhook
    /// (`X-Tracking-ID`, at most 128 visible ASCII characters).
    pub tracking_id: Option<String>,
    /// Make the write idempotent (`Idempotency-Key`, at most 255 visible ASCII characters):
    /// a repeat with the same body within the retention answers the first result again.
    pub idempotency_key: Option<String>,
    /// Only update when the stored version is this one (`If-Match`); ignored on creates.
    pub if_match: Option<u64>,
}

/// A write that succeeded.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteResult {
    /// `201` for a create or payment, `200` for an update.
    pub status: u16,
    /// The stored object (an array for a bank-transaction preload).
    pub object: Value,
    /// The sync of a pushing write (`X-Sync-ID`).
    pub sync_id: Option<String>,
    /// The apps of the connections the write is pushed to (`X-Sync-Targets`).
    pub targets: Vec<String>,
    /// `X-Request-ID` of the write (the `requestId` of the webhooks it causes).
    pub request_id: Option<String>,
    /// Whether this is the replayed first answer of an idempotent write.
    pub replayed: bool,
}

/// An API call answered with a problem document (RFC 9457): nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {problem_type}: {detail}")]
pub struct WriteError {
    /// HTTP status (`400`, `401`, `403`, `404`, `409`, `412`, `422`, `503`, ...).
    pub status: u16,
    /// The problem `type`, e.g. `/problems/validation-failed` (each type has one fixed
    /// `title`, which is therefore not repeated here).
    pub problem_type: String,
    /// The problem `detail`.
    pub detail: String,
    /// Every validation problem (`422`), each with its JSON Pointer into the body.
    pub errors: Vec<FieldError>,
    /// `X-Request-ID` of the call, when it was a data API call.
    pub request_id: Option<String>,
}

impl WriteError {
    fn from_response(r: &ApiResponse) -> WriteError {
        #[derive(Deserialize, Default)]
        struct Problem {
            #[serde(rename = "type")]
            problem_type: Option<String>,
            detail: Option<String>,
            #[serde(default)]
            errors: Vec<FieldError>,
        }
        let p: Problem = serde_json::from_str(&r.body).unwrap_or_default();
        let detail = p.detail.unwrap_or_else(|| {
            let mut end = r.body.len().min(200);
            while !r.body.is_char_boundary(end) {
                end -= 1;
            }
            r.body[..end].to_string()
        });
        WriteError {
            status: r.status,
            problem_type: p.problem_type.unwrap_or_else(|| "about:blank".into()),
            detail,
            errors: p.errors,
            request_id: r.headers.get("X-Request-ID").cloned(),
        }
    }

    fn unreadable(r: &ApiResponse, what: &str, e: &serde_json::Error) -> WriteError {
        WriteError {
            status: r.status,
            problem_type: "about:blank".into(),
            detail: format!("the {what} could not be decoded: {e}"),
            errors: Vec::new(),
            request_id: r.headers.get("X-Request-ID").cloned(),
        }
    }
}

/// One target of a sync, as `GET /api/syncs/{id}` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncTarget {
    /// App key of the connection.
    pub app: String,
    /// Application type of the connection.
    #[serde(rename = "type")]
    pub app_type: String,
    /// The connection's id.
    #[serde(default)]
    pub connection_id: Option<String>,
    /// `pending`, `in_progress`, `succeeded` or `failed`.
    pub status: TargetStatus,
    /// Push attempts so far.
    pub attempts: u32,
    /// The object's id at the source, once it answered one.
    #[serde(default)]
    pub remote_id: Option<String>,
    /// The last error, while not succeeded.
    #[serde(default)]
    pub last_error: Option<String>,
    /// RFC 3339.
    pub updated_at: String,
}

/// A sync, as `GET /api/syncs/{id}` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    /// The sync id (`X-Sync-ID` of the write).
    pub id: String,
    /// `pending`, `in_progress`, `succeeded`, `partially_failed`, `failed` or `no_targets`.
    pub status: SyncStatus,
    /// `X-Request-ID` of the write.
    #[serde(default)]
    pub request_id: Option<String>,
    /// `X-Tracking-ID` of the write.
    #[serde(default)]
    pub tracking_id: Option<String>,
    /// `create` or `update`.
    pub operation: String,
    /// The object written.
    pub object: ObjectRef,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// One entry per connection pushed to.
    pub targets: Vec<SyncTarget>,
}

/// Performs the outbound HTTP requests of pushes and webhook deliveries for
/// [`NativeEngine::run_due`]. Any `FnMut(&WorkItem) -> Outcome` is a transport.
pub trait Transport {
    /// Send `item.request` and say what happened: the answer (status, headers, the start of
    /// the body) or the error. Must not panic; a timeout is an [`Outcome::Error`].
    fn send(&mut self, item: &WorkItem) -> Outcome;
}

impl<F: FnMut(&WorkItem) -> Outcome> Transport for F {
    fn send(&mut self, item: &WorkItem) -> Outcome {
        self(item)
    }
}

/// What one [`NativeEngine::run_due`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Pushes sent.
    pub pushes: usize,
    /// Webhook deliveries sent.
    pub webhooks: usize,
    /// Access-token requests of provider connections answered by the transport.
    pub tokens: usize,
    /// Outcomes the engine no longer waited for (the item was handed out again elsewhere
    /// after its lease ran out); they changed nothing.
    pub stale: usize,
}

/// The engine and its SQLite store in one value.
///
/// The host still owns time: every call takes `now_ms` (Unix milliseconds) and
/// [`NativeEngine::next_deadline`] says when [`NativeEngine::run_due`] has work again.
#[derive(Debug)]
pub struct NativeEngine {
    engine: Engine,
    store: SqliteStore,
    claim_limit: usize,
}

/// The store as the engine sees it when SQLite cannot even start a transaction: every read
/// fails with that error (as the source of the engine's storage error), so the engine answers
/// its own `503` (with `X-Request-ID` on data API calls).
struct Unavailable(Arc<StoreError>);

impl Unavailable {
    fn error(&self) -> CoreError {
        CoreError::storage_caused_by(self.0.to_string(), Arc::clone(&self.0))
    }
}

impl KvRead for Unavailable {
    fn get(&self, _key: &str) -> Result<Option<String>, CoreError> {
        Err(self.error())
    }
    fn scan(
        &self,
        _prefix: &str,
        _offset: usize,
        _limit: usize,
    ) -> Result<Vec<(String, String)>, CoreError> {
        Err(self.error())
    }
}

/// The `503` that replaces a success whose commit failed.
fn commit_failed(answer: &ApiResponse, e: &StoreError) -> ApiResponse {
    let mut r = problem(ProblemKind::StorageUnavailable, e.to_string());
    if let Some(id) = answer.headers.get("X-Request-ID") {
        r.set_header("X-Request-ID", id.clone());
    }
    r
}

fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn header_list(v: Option<&String>) -> Vec<String> {
    v.map(|s| {
        s.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

impl NativeEngine {
    /// Open (creating and migrating if needed) the database at `path` with the default
    /// [`StoreOptions`], and an engine with `config`.
    ///
    /// `config.seed` drives every id and secret the engine draws: pass fresh OS randomness
    /// in production (the default all-zero seed is for tests).
    pub fn open(path: impl AsRef<Path>, config: EngineConfig) -> Result<Self, StoreError> {
        NativeEngine::open_with(path, config, &StoreOptions::default())
    }

    /// [`NativeEngine::open`] with explicit store options (e.g. `synchronous=FULL`).
    pub fn open_with(
        path: impl AsRef<Path>,
        config: EngineConfig,
        options: &StoreOptions,
    ) -> Result<Self, StoreError> {
        let store = SqliteStore::open_with(path, options)?;
        Ok(NativeEngine::from_parts(Engine::new(config), store))
    }

    /// Put an engine and an opened store together.
    pub fn from_parts(engine: Engine, store: SqliteStore) -> Self {
        NativeEngine {
            engine,
            store,
            claim_limit: DEFAULT_CLAIM_LIMIT,
        }
    }

    /// Take the engine and the store apart again.
    pub fn into_parts(self) -> (Engine, SqliteStore) {
        (self.engine, self.store)
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The store.
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    /// Set how many items [`NativeEngine::run_due`] claims at a time (at least 1).
    pub fn set_claim_limit(&mut self, limit: usize) {
        self.claim_limit = limit.max(1);
    }

    /// Answer one request of the HTTP contract (admin or data API) with
    /// [`Engine::handle_with`], inside one SQLite transaction: the engine's reads and the
    /// batch it commits form one step (`BEGIN IMMEDIATE` for writes, a read snapshot for
    /// `GET`/`HEAD`), so another process on the same file cannot commit in between. The
    /// answer is returned only once the transaction is committed; a failed commit answers
    /// `503` and changes nothing.
    pub fn handle(&mut self, request: &ApiRequest, now_ms: i64) -> ApiResponse {
        let reads_only = matches!(request.method.as_str(), "GET" | "HEAD");
        let unit = if reads_only {
            self.store.begin_read()
        } else {
            self.store.begin_write()
        };
        let mut unit = match unit {
            Ok(unit) => unit,
            Err(e) => {
                let e = Arc::new(e);
                let step = self
                    .engine
                    .handle(request, now_ms, &Unavailable(Arc::clone(&e)));
                self.engine.finish(&step);
                if step.batch.is_empty() {
                    return step.response;
                }
                return commit_failed(&step.response, &e);
            }
        };
        let answer = self.engine.handle_with(request, now_ms, &mut unit);
        match unit.commit() {
            Ok(()) => answer,
            Err(e) if (200..300).contains(&answer.status) => commit_failed(&answer, &e),
            Err(_) => answer,
        }
    }

    fn data_request(
        creds: &Credentials,
        method: &str,
        path: &str,
        body: Option<&Value>,
        options: &WriteOptions,
    ) -> ApiRequest {
        let mut r = ApiRequest::new(method, path).header("Authorization", &creds.authorization());
        if let Some(b) = body {
            r = r.json(b);
        }
        if options.push {
            r = r.header("X-Sync-Data", "push");
        }
        if let Some(s) = &options.sources {
            r = r.header("X-Sync-Sources", &s.join(","));
        }
        if let Some(t) = &options.tracking_id {
            r = r.header("X-Tracking-ID", t);
        }
        if let Some(k) = &options.idempotency_key {
            r = r.header("Idempotency-Key", k);
        }
        r
    }

    fn written(r: ApiResponse) -> Result<WriteResult, WriteError> {
        if !(200..300).contains(&r.status) {
            return Err(WriteError::from_response(&r));
        }
        let object = serde_json::from_str(&r.body)
            .map_err(|e| WriteError::unreadable(&r, "written object", &e))?;
        Ok(WriteResult {
            status: r.status,
            object,
            sync_id: r.headers.get("X-Sync-ID").cloned(),
            targets: header_list(r.headers.get("X-Sync-Targets")),
            request_id: r.headers.get("X-Request-ID").cloned(),
            replayed: r
                .headers
                .get("Idempotency-Replayed")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        })
    }

    /// Create an object: `POST /api/{collection}` with `body`. A bank-transaction body may be
    /// an array (a preload). Payments are created with [`NativeEngine::pay_invoice`] (the
    /// engine answers `405` to a payment sent here).
    pub fn write(
        &mut self,
        creds: &Credentials,
        object: ObjectType,
        body: &Value,
        options: &WriteOptions,
        now_ms: i64,
    ) -> Result<WriteResult, WriteError> {
        let path = format!("/api/{}", object.collection());
        let req = Self::data_request(creds, "POST", &path, Some(body), options);
        Self::written(self.handle(&req, now_ms))
    }

    /// Update an object with the method its type takes: `PATCH` (a JSON merge patch) for
    /// customers, vendors and accounts, `PUT` (the whole object) for invoices and expenses.
    /// Payments and bank transactions cannot be updated (the engine answers `405`).
    /// `options.if_match` sends `If-Match`.
    pub fn update(
        &mut self,
        creds: &Credentials,
        object: ObjectType,
        id: &str,
        body: &Value,
        options: &WriteOptions,
        now_ms: i64,
    ) -> Result<WriteResult, WriteError> {
        let method = match object {
            ObjectType::Invoice | ObjectType::Expense => "PUT",
            _ => "PATCH",
        };
        let path = format!("/api/{}/{}", object.collection(), segment(id));
        let mut req = Self::data_request(creds, method, &path, Some(body), options);
        if let Some(v) = options.if_match {
            req = req.header("If-Match", &format!("\"{v}\""));
        }
        Self::written(self.handle(&req, now_ms))
    }

    /// Record a payment against an invoice: `POST /api/invoices/{id}/payments`.
    pub fn pay_invoice(
        &mut self,
        creds: &Credentials,
        invoice_id: &str,
        body: &Value,
        options: &WriteOptions,
        now_ms: i64,
    ) -> Result<WriteResult, WriteError> {
        let path = format!("/api/invoices/{}/payments", segment(invoice_id));
        let req = Self::data_request(creds, "POST", &path, Some(body), options);
        Self::written(self.handle(&req, now_ms))
    }

    /// The state of a sync: `GET /api/syncs/{id}`.
    pub fn sync_status(
        &mut self,
        creds: &Credentials,
        sync_id: &str,
        now_ms: i64,
    ) -> Result<SyncReport, WriteError> {
        let path = format!("/api/syncs/{}", segment(sync_id));
        let req = Self::data_request(creds, "GET", &path, None, &WriteOptions::default());
        let r = self.handle(&req, now_ms);
        if r.status != 200 {
            return Err(WriteError::from_response(&r));
        }
        serde_json::from_str(&r.body).map_err(|e| WriteError::unreadable(&r, "sync", &e))
    }

    /// Perform every push and webhook delivery due at `now_ms`: claim them in groups (the
    /// leases are committed before anything is sent), send each through `transport`, and
    /// commit each outcome. Retries scheduled for later are left for a later call (see
    /// [`NativeEngine::next_deadline`]); follow-up work due at once (the webhooks of a
    /// finished push) is performed in the same call.
    ///
    /// A storage failure stops the run with an error; items claimed but not reported are
    /// handed out again when their lease runs out.
    pub fn run_due(
        &mut self,
        now_ms: i64,
        transport: &mut dyn Transport,
    ) -> Result<RunStats, StoreError> {
        let mut stats = RunStats::default();
        loop {
            // Claim in one write transaction (two processes never claim the same item);
            // send with no transaction open (a slow peer never holds the database).
            let items = {
                let mut unit = self.store.begin_write()?;
                let items = self.engine.due_with(now_ms, self.claim_limit, &mut unit)?;
                unit.commit()?;
                items
            };
            if items.is_empty() {
                return Ok(stats);
            }
            for item in &items {
                let outcome = transport.send(item);
                match item.kind {
                    WorkKind::Push => stats.pushes += 1,
                    WorkKind::Webhook => stats.webhooks += 1,
                    WorkKind::Token => stats.tokens += 1,
                }
                let mut unit = self.store.begin_write()?;
                match self
                    .engine
                    .report_with(&item.id, &outcome, now_ms, &mut unit)
                {
                    Ok(()) => unit.commit()?,
                    Err(CoreError::UnknownWork(_) | CoreError::WrongState(_)) => stats.stale += 1,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }

    /// When [`NativeEngine::run_due`] will next have something to do (a retry, or a lease
    /// running out), in Unix milliseconds; `None` when nothing is owed.
    pub fn next_deadline(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.engine.next_deadline(&self.store)?)
    }

    /// Apply the retention: remove idempotency records older than
    /// `EngineConfig::idempotency_retention_ms` (default 24 h) and finished (delivered or
    /// failed) webhook deliveries older than `EngineConfig::delivery_retention_ms` (default
    /// 7 days), in transactions of [`PRUNE_BATCH`] records until nothing is left. Nothing
    /// unfinished is removed: pending deliveries, syncs and push tasks stay. Returns the number
    /// of rows deleted.
    pub fn prune(&mut self, now_ms: i64) -> Result<usize, StoreError> {
        let mut deleted = 0;
        loop {
            let mut unit = self.store.begin_write()?;
            let batch = self.engine.prune(now_ms, PRUNE_BATCH, &unit)?;
            if batch.is_empty() {
                return Ok(deleted);
            }
            unit.apply(&batch)?;
            unit.commit()?;
            deleted += batch.ops.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(segment("abc-1.2_~"), "abc-1.2_~");
        assert_eq!(segment("a/b?c"), "a%2Fb%3Fc");
        assert_eq!(segment("é"), "%C3%A9");
        assert_eq!(segment("a+b c"), "a%2Bb%20c");
    }

    #[test]
    fn credentials_debug_hides_the_secret() {
        let c = Credentials::new("k1", "s3cr3t");
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn target_lists() {
        assert_eq!(header_list(None), Vec::<String>::new());
        assert_eq!(header_list(Some(&String::new())), Vec::<String>::new());
        assert_eq!(
            header_list(Some(&"quickbooks,shopify".to_string())),
            vec!["quickbooks", "shopify"]
        );
    }

    #[test]
    fn problems_decode_and_garbage_does_not_panic() {
        let r = writesync_core::http::problem(
            writesync_core::http::ProblemKind::NotFound,
            "no such sync",
        );
        let e = WriteError::from_response(&r);
        assert_eq!(e.status, 404);
        assert_eq!(e.problem_type, "/problems/not-found");
        assert_eq!(e.detail, "no such sync");
        let weird = ApiResponse {
            status: 500,
            headers: Default::default(),
            body: "é".repeat(300),
        };
        let e = WriteError::from_response(&weird);
        assert_eq!(e.problem_type, "about:blank");
        assert!(e.detail.len() <= 200);
    }
}
