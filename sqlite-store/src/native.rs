//! [`NativeEngine`]: the engine and its SQLite store in one value, with typed calls for
//! applications that link the crate directly instead of speaking HTTP.
//!
//! Every typed call is a [`Command`] of the core, run by [`Engine::execute`] in one SQLite
//! transaction: no URL, header or status line is built or parsed on the way. Authentication,
//! validation, idempotency and push routing are the ones the HTTP contract is an adapter over,
//! so a typed call and the same request over HTTP give the same result; the result is
//! [`WriteResult`] or [`WriteError`]. [`NativeEngine::execute`] runs any other command (the
//! admin calls, lists), and [`NativeEngine::handle`] a whole HTTP request for hosts that
//! serve one.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use writesync_core::cdm::{FieldError, ObjectType};
use writesync_core::connectors::SourceError;
use writesync_core::http::{problem, ProblemKind};
use writesync_core::records::{ObjectRef, SyncStatus, TargetStatus};
use writesync_core::{
    ApiRequest, ApiResponse, Body, Command, CommandError, CoreError, DataOp, Engine, EngineConfig,
    Executed, IfMatch, KvRead, Outcome, Page, Reply, Storage, SyncFilter, WorkItem,
};

use crate::{SqliteStore, StoreError, StoreOptions};

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

    /// As the core's borrowed credentials.
    fn as_core(&self) -> writesync_core::Credentials<'_> {
        writesync_core::Credentials {
            key: &self.key,
            secret: &self.secret,
        }
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

impl WriteOptions {
    /// As the core's write options; `sources` is the list joined with commas.
    fn as_core<'a>(&'a self, sources: Option<&'a str>) -> writesync_core::WriteOptions<'a> {
        writesync_core::WriteOptions {
            push: self.push,
            sources,
            tracking_id: self.tracking_id.as_deref(),
            idempotency_key: self.idempotency_key.as_deref(),
            idempotency_scope: None,
            if_match: self.if_match.map(IfMatch::Version),
            dry_run: false,
        }
    }
}

/// A write that succeeded.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteResult {
    /// `201` for a create or payment, `200` for an update, `204` for a delete.
    pub status: u16,
    /// The stored object (an array for a bank-transaction preload; `null` for a delete).
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
    fn from_command(e: CommandError, request_id: &str) -> WriteError {
        let p = e.into_problem();
        let (status, slug, _) = p.kind.parts();
        WriteError {
            status,
            problem_type: format!("/problems/{slug}"),
            detail: p.detail,
            errors: p.errors,
            request_id: Some(request_id.to_string()),
        }
    }

    fn unreadable(status: u16, request_id: &str, what: &str, e: &serde_json::Error) -> WriteError {
        WriteError {
            status,
            problem_type: "about:blank".into(),
            detail: format!("the {what} could not be decoded: {e}"),
            errors: Vec::new(),
            request_id: Some(request_id.to_string()),
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
    /// The structured form of the last error, when the source's answer allowed it.
    #[serde(default)]
    pub error: Option<SourceError>,
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

/// The engine and its SQLite store in one value.
///
/// The host still owns time: every call takes `now_ms` (Unix milliseconds) and
/// [`NativeEngine::next_deadline`] says when due work is next owed. The work itself is
/// claimed with [`NativeEngine::claim_due`] and reported with [`NativeEngine::report_outcome`];
/// the work loop over these (sending, per-origin limits, the token broker) is the host
/// driver's (`writesync_host::native::run_due`), not this crate's.
#[derive(Debug)]
pub struct NativeEngine {
    engine: Engine,
    store: SqliteStore,
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

/// A store failure as the core's storage error, keeping it as the source.
fn core_error(e: StoreError) -> CoreError {
    CoreError::storage_caused_by(e.to_string(), e)
}

/// The `503` that replaces a success whose commit failed.
fn commit_failed(answer: &ApiResponse, e: &StoreError) -> ApiResponse {
    let mut r = problem(ProblemKind::StorageUnavailable, e.to_string());
    if let Some(id) = answer.headers.get("X-Request-ID") {
        r.set_header("X-Request-ID", id.clone());
    }
    r
}

/// Rows the data-layout migration rewrites per transaction.
pub const MIGRATION_BATCH: usize = 500;

/// Bring the engine's *data layout* in `store` up to date ([`Engine::migrate`], one
/// `BEGIN IMMEDIATE` transaction per step of [`MIGRATION_BATCH`] rows); answers the layout the
/// store held. This is not the SQL schema ([`crate::schema`], `PRAGMA user_version`), which
/// [`SqliteStore::open`] migrates: the schema is how SQLite holds the key-value rows, the data
/// layout is what the engine keeps in them (`meta/layout`). An interrupted migration resumes
/// at the next call; a newer or unknown layout is refused with the engine's
/// [`CoreError::Layout`] and nothing is written. [`NativeEngine::open`] calls it; a host
/// that builds its engine itself ([`NativeEngine::from_parts`]) calls it before serving.
pub fn migrate_layout(engine: &mut Engine, store: &mut SqliteStore) -> Result<u32, StoreError> {
    loop {
        let mut unit = store.begin_single_write()?;
        let step = engine.migrate(MIGRATION_BATCH, &unit)?;
        if !step.batch.is_empty() {
            unit.apply(&step.batch)?;
        }
        unit.commit()?;
        if step.done {
            return Ok(step.from);
        }
    }
}

impl NativeEngine {
    /// Open (creating and migrating if needed) the database at `path` with the default
    /// [`StoreOptions`], and an engine with `config`; the engine's data layout in it is
    /// migrated too ([`migrate_layout`]).
    ///
    /// `config.seed` drives every id and secret the engine draws: in production pass
    /// [`crate::os_seeded_config`] (fresh OS randomness).
    pub fn open(path: impl AsRef<Path>, config: EngineConfig) -> Result<Self, StoreError> {
        NativeEngine::open_with(path, config, &StoreOptions::default())
    }

    /// [`NativeEngine::open`] with explicit store options (e.g. `synchronous=FULL`).
    pub fn open_with(
        path: impl AsRef<Path>,
        config: EngineConfig,
        options: &StoreOptions,
    ) -> Result<Self, StoreError> {
        let mut store = SqliteStore::open_with(path, options)?;
        let mut engine = Engine::new(config);
        migrate_layout(&mut engine, &mut store)?;
        Ok(NativeEngine::from_parts(engine, store))
    }

    /// Put an engine and an opened store together.
    pub fn from_parts(engine: Engine, store: SqliteStore) -> Self {
        NativeEngine { engine, store }
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
            self.store.begin_single_write()
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

    /// Run one command in one SQLite transaction (a read transaction for reads): plan it,
    /// commit its writes, and answer the result, as [`Engine::execute_with`] does. Errors
    /// carry the id of the request (the `X-Request-ID` an HTTP answer would carry).
    pub fn execute(
        &mut self,
        command: Command<'_>,
        now_ms: i64,
    ) -> (Result<Reply, CommandError>, String) {
        let reads_only = match &command {
            Command::Data { op, .. } => !op.is_write(),
            Command::Health | Command::OpenApi => true,
            _ => false,
        };
        let unit = if reads_only {
            self.store.begin_read()
        } else {
            self.store.begin_single_write()
        };
        let mut unit = match unit {
            Ok(unit) => unit,
            Err(e) => {
                let unavailable = Unavailable(Arc::new(e));
                let executed = self.engine.execute(command, now_ms, &unavailable);
                self.engine.finish_executed(&executed);
                let Executed {
                    result,
                    batch,
                    request_id,
                    ..
                } = executed;
                let result = match result {
                    Ok(_) if !batch.is_empty() => Err(CommandError::Storage(unavailable.error())),
                    r => r,
                };
                return (result, request_id);
            }
        };
        let executed = self.engine.execute(command, now_ms, &unit);
        let applied = if executed.batch.is_empty() {
            Ok(())
        } else {
            unit.apply(&executed.batch)
        };
        self.engine.finish_executed(&executed);
        let Executed {
            result, request_id, ..
        } = executed;
        let result = match (
            result,
            applied.and_then(|()| unit.commit().map_err(core_error)),
        ) {
            (Ok(_), Err(e)) => Err(CommandError::Storage(e)),
            (r, _) => r,
        };
        (result, request_id)
    }

    /// Run a data call of `creds` and decode the written object.
    fn data(
        &mut self,
        creds: &Credentials,
        op: DataOp<'_>,
        now_ms: i64,
    ) -> Result<WriteResult, WriteError> {
        let command = Command::Data {
            credentials: Some(creds.as_core()),
            op,
        };
        let (result, request_id) = self.execute(command, now_ms);
        let reply = result.map_err(|e| WriteError::from_command(e, &request_id))?;
        // A delete answers `204` without a body: its object is `null`.
        let object = match reply.body.as_deref() {
            None => Value::Null,
            Some(text) => serde_json::from_str(text).map_err(|e| {
                WriteError::unreadable(reply.status, &request_id, "written object", &e)
            })?,
        };
        let (sync_id, targets) = match reply.sync {
            Some(s) => (Some(s.id), s.targets),
            None => (None, Vec::new()),
        };
        Ok(WriteResult {
            status: reply.status,
            object,
            sync_id,
            targets,
            request_id: Some(request_id),
            replayed: reply.replayed,
        })
    }

    /// Create an object (`POST /api/{collection}`). A bank transaction body may also be an
    /// array of up to 1000 to preload.
    ///
    /// ```
    /// # use serde_json::json;
    /// # use writesync_core::cdm::ObjectType;
    /// # use writesync_core::{ApiRequest, EngineConfig};
    /// # use writesync_sqlite::{Credentials, NativeEngine, WriteOptions};
    /// # let dir = std::env::temp_dir().join(format!("ws-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// let config = EngineConfig::new([7; 32]).with_admin_token("s3cret");
    /// let mut engine = NativeEngine::open(dir.join("write.db"), config).unwrap();
    /// # let now = 1_790_000_000_000;
    /// # let admin = |m: &str, p: &str, b: serde_json::Value| ApiRequest::new(m, p)
    /// #     .header("Authorization", "Bearer s3cret").json(&b);
    /// # let acct = engine.handle(&admin("POST", "/admin/accounts",
    /// #     json!({"domain": "acme.example.com", "writeEnabled": true})), now).body_json();
    /// # let key = engine.handle(&admin("POST", &format!("/admin/accounts/{}/api-keys", acct["id"].as_str().unwrap()),
    /// #     json!({"scopes": ["api.write"]})), now).body_json();
    /// let creds = Credentials::from_api_key_answer(&key).unwrap();
    /// let written = engine
    ///     .write(&creds, ObjectType::Customer, &json!({"name": "Acme Ltd"}), &WriteOptions::default(), now)
    ///     .unwrap();
    /// assert_eq!(written.status, 201);
    /// assert_eq!(written.object["version"], 1);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// ```
    pub fn write(
        &mut self,
        creds: &Credentials,
        object: ObjectType,
        body: &Value,
        options: &WriteOptions,
        now_ms: i64,
    ) -> Result<WriteResult, WriteError> {
        let text = body.to_string();
        let sources = options.sources.as_ref().map(|s| s.join(","));
        let op = DataOp::Create {
            object,
            body: Body::Json(&text),
            options: options.as_core(sources.as_deref()),
        };
        self.data(creds, op, now_ms)
    }

    /// Update an object: a JSON merge patch for customers, vendors and accounts (`PATCH`), the
    /// whole object for invoices and expenses (`PUT`). `options.if_match` guards the version.
    pub fn update(
        &mut self,
        creds: &Credentials,
        object: ObjectType,
        id: &str,
        body: &Value,
        options: &WriteOptions,
        now_ms: i64,
    ) -> Result<WriteResult, WriteError> {
        let text = body.to_string();
        let sources = options.sources.as_ref().map(|s| s.join(","));
        let op = DataOp::Update {
            object,
            id,
            body: Body::Json(&text),
            options: options.as_core(sources.as_deref()),
        };
        self.data(creds, op, now_ms)
    }

    /// Delete a customer, vendor or account (`DELETE /api/{collection}/{id}`): status `204`
    /// and `object` `null`; `409` while another object refers to it. With `options.push` the
    /// deletion goes to the connections that hold a remote id for it.
    pub fn delete(
        &mut self,
        creds: &Credentials,
        object: ObjectType,
        id: &str,
        options: &WriteOptions,
        now_ms: i64,
    ) -> Result<WriteResult, WriteError> {
        let sources = options.sources.as_ref().map(|s| s.join(","));
        let op = DataOp::Delete {
            object,
            id,
            options: options.as_core(sources.as_deref()),
        };
        self.data(creds, op, now_ms)
    }

    /// Record a payment of an invoice (`POST /api/invoices/{id}/payments`): `{amount?, date,
    /// reference?}`; the answer's object is the payment.
    pub fn pay_invoice(
        &mut self,
        creds: &Credentials,
        invoice_id: &str,
        body: &Value,
        options: &WriteOptions,
        now_ms: i64,
    ) -> Result<WriteResult, WriteError> {
        let text = body.to_string();
        let sources = options.sources.as_ref().map(|s| s.join(","));
        let op = DataOp::Pay {
            invoice: invoice_id,
            body: Body::Json(&text),
            options: options.as_core(sources.as_deref()),
        };
        self.data(creds, op, now_ms)
    }

    /// The status of a sync and of each of its targets (`GET /api/syncs/{id}`).
    pub fn sync_status(
        &mut self,
        creds: &Credentials,
        sync_id: &str,
        now_ms: i64,
    ) -> Result<SyncReport, WriteError> {
        let command = Command::Data {
            credentials: Some(creds.as_core()),
            op: DataOp::GetSync { id: sync_id },
        };
        let (result, request_id) = self.execute(command, now_ms);
        let reply = result.map_err(|e| WriteError::from_command(e, &request_id))?;
        serde_json::from_str(reply.body.as_deref().unwrap_or(""))
            .map_err(|e| WriteError::unreadable(reply.status, &request_id, "sync", &e))
    }

    /// The account's syncs that pass `filter`, newest first, one page (`GET /api/syncs`).
    pub fn find_syncs(
        &mut self,
        creds: &Credentials,
        filter: SyncFilter,
        page: Page,
        now_ms: i64,
    ) -> Result<Vec<SyncReport>, WriteError> {
        let command = Command::Data {
            credentials: Some(creds.as_core()),
            op: DataOp::ListSyncs { filter, page },
        };
        let (result, request_id) = self.execute(command, now_ms);
        let reply = result.map_err(|e| WriteError::from_command(e, &request_id))?;
        serde_json::from_str(reply.body.as_deref().unwrap_or(""))
            .map_err(|e| WriteError::unreadable(reply.status, &request_id, "syncs", &e))
    }

    /// Put the failed targets of a sync (only those of `apps`, when given) back to pending
    /// with a fresh retry budget (`POST /api/syncs/{id}/retry`); each push keeps its
    /// `Idempotency-Key`. A sync without a failed target is a `409` `nothing-to-retry`.
    pub fn retry_sync(
        &mut self,
        creds: &Credentials,
        sync_id: &str,
        apps: Option<&[&str]>,
        now_ms: i64,
    ) -> Result<SyncReport, WriteError> {
        let text = apps.map(|a| serde_json::json!({ "apps": a }).to_string());
        let command = Command::Data {
            credentials: Some(creds.as_core()),
            op: DataOp::RetrySync {
                id: sync_id,
                body: text.as_deref().map_or(Body::None, Body::Json),
                idempotency_key: None,
            },
        };
        let (result, request_id) = self.execute(command, now_ms);
        let reply = result.map_err(|e| WriteError::from_command(e, &request_id))?;
        serde_json::from_str(reply.body.as_deref().unwrap_or(""))
            .map_err(|e| WriteError::unreadable(reply.status, &request_id, "sync", &e))
    }

    /// Claim (lease) at most `limit` pushes, webhook deliveries and token requests due at
    /// `now_ms`, in one write transaction, committed before they are returned (two processes
    /// on one file never claim the same item). Perform each item's request with no transaction
    /// open and give its outcome to [`NativeEngine::report_outcome`]; an item whose outcome
    /// never comes is due again when its lease (`EngineConfig::lease_ms`) runs out.
    pub fn claim_due(&mut self, now_ms: i64, limit: usize) -> Result<Vec<WorkItem>, StoreError> {
        let mut unit = self.store.begin_single_write()?;
        let items = self.engine.due_with(now_ms, limit, &mut unit)?;
        unit.commit()?;
        Ok(items)
    }

    /// Record the outcome of a claimed item in one write transaction. An item the engine no
    /// longer waits for (its lease ran out and it was handed out again) is
    /// `StoreError::Engine(CoreError::UnknownWork(_))` (or `WrongState`) and changes nothing.
    pub fn report_outcome(
        &mut self,
        work_id: &str,
        outcome: &Outcome,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut unit = self.store.begin_single_write()?;
        self.engine
            .report_with(work_id, outcome, now_ms, &mut unit)?;
        unit.commit()?;
        Ok(())
    }

    /// When work is next due (a retry, or a lease running out), in Unix milliseconds; `None` when nothing is owed.
    pub fn next_deadline(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.engine.next_deadline(&self.store)?)
    }

    /// Make every push, token request and webhook delivery that was handed out and not
    /// reported due again at `now_ms`, as if its lease had run out (`Engine::recover`). Call it
    /// once after opening the file when this process is the only worker on it: what a crashed
    /// process had in flight is then sent again at once instead of when its lease (120 s)
    /// runs out. A retried item keeps its `Idempotency-Key`; the lost attempt still counts.
    /// Returns the number of rows written (two per item: its wake-up entry moves).
    pub fn recover(&mut self, now_ms: i64) -> Result<usize, StoreError> {
        let mut unit = self.store.begin_single_write()?;
        let batch = self.engine.recover(now_ms, &unit)?;
        if batch.is_empty() {
            return Ok(0);
        }
        unit.apply(&batch)?;
        unit.commit()?;
        Ok(batch.ops.len())
    }

    /// Apply the retention: remove idempotency records older than
    /// `EngineConfig::idempotency_retention_ms` (default 24 h), finished (delivered or
    /// failed) webhook deliveries older than `EngineConfig::delivery_retention_ms` (default
    /// 7 days) and syncs whose targets all finished, made longer ago than
    /// `EngineConfig::sync_retention_ms` (default 30 days), with their tasks and deliveries,
    /// in transactions of [`PRUNE_BATCH`] records until nothing is left. Nothing unfinished
    /// is removed: pending deliveries and unfinished syncs stay; objects and their remote ids
    /// always stay. Returns the number of rows deleted.
    pub fn prune(&mut self, now_ms: i64) -> Result<usize, StoreError> {
        let mut deleted = 0;
        loop {
            let mut unit = self.store.begin_single_write()?;
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
    use writesync_core::Problem;

    #[test]
    fn credentials_debug_hides_the_secret() {
        let c = Credentials::new("k1", "s3cr3t");
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn refusals_become_write_errors() {
        let e = CommandError::Refused(Problem::new(ProblemKind::NotFound, "no such sync"));
        let e = WriteError::from_command(e, "r1");
        assert_eq!(e.status, 404);
        assert_eq!(e.problem_type, "/problems/not-found");
        assert_eq!(e.detail, "no such sync");
        assert_eq!(e.request_id.as_deref(), Some("r1"));
        let e = CommandError::Storage(CoreError::storage("disk full"));
        let e = WriteError::from_command(e, "r2");
        assert_eq!(e.status, 503);
        assert_eq!(e.problem_type, "/problems/storage-unavailable");
        assert_eq!(e.detail, "storage error: disk full");
    }

    #[test]
    fn options_map_to_the_core() {
        let o = WriteOptions {
            push: true,
            sources: Some(vec!["quickbooks".into(), "crm".into()]),
            tracking_id: Some("t1".into()),
            idempotency_key: Some("k1".into()),
            if_match: Some(3),
        };
        let joined = o.sources.as_ref().map(|s| s.join(","));
        let c = o.as_core(joined.as_deref());
        assert!(c.push);
        assert_eq!(c.sources, Some("quickbooks,crm"));
        assert_eq!(c.tracking_id, Some("t1"));
        assert_eq!(c.idempotency_key, Some("k1"));
        assert_eq!(c.if_match, Some(IfMatch::Version(3)));
        assert_eq!(c.idempotency_scope, None);
    }
}
