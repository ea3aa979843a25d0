//! # writesync-core
//!
//! The sans-I/O write-and-sync engine for a Common Data Model (customers, vendors, chart of
//! accounts, invoices, payments, expenses, bank transactions). It validates and stores writes
//! synchronously and plans their asynchronous push to the source applications an account has
//! connected, with webhooks that report the results. It implements the HTTP contract of
//! `shared/spec/http-api.md` as pure functions: no clock, no randomness of its own, no I/O.
//!
//! Every operation of the contract is a typed [`Command`] (admin calls as [`AdminOp`], data
//! calls as [`DataOp`] with their [`WriteOptions`]); [`Engine::execute`] plans one and answers
//! a [`Reply`] or a [`CommandError`]. The HTTP contract is one adapter over the commands:
//! [`Engine::handle`] turns an [`ApiRequest`] into a command and the result into an
//! [`ApiResponse`]. `docs/architecture.md` shows the layers and one request's path.
//!
//! ## The calling contract
//!
//! One [`Engine`] value is driven by its host:
//!
//! 1. **Mutate**: [`Engine::handle`] plans the answer to a request `{method, path, headers,
//!    body}` at time `now` (Unix ms), reading state through the host's [`KvRead`]. It returns a
//!    [`Step`]: the [`ApiResponse`] and a [`Batch`] of writes. The host commits the batch
//!    atomically, *then* sends the answer, then calls [`Engine::finish`]. (If the commit fails
//!    the host answers `503` instead; nothing was changed.) [`Engine::handle_with`] does all
//!    three for hosts whose storage answers synchronously.
//! 2. **Drain outputs**: [`Engine::due`] claims the pushes and webhook deliveries due at `now`
//!    (each a [`WorkItem`] with an id and an HTTP request) and returns the lease records to
//!    commit before performing them. A connection with a provider connector (QuickBooks,
//!    Xero, HubSpot, Shopify: see [`connectors`]) also needs an access token, which the
//!    engine asks the host for with a [`WorkKind::Token`] item (`TOKEN writesync:token`, body
//!    `{connectionId, accountId, app, reason}`); the host answers it like any other item, with
//!    `200 {"accessToken", "expiresAt"}` or a failure. The engine keeps the short-lived access
//!    token; refresh tokens stay with the host.
//! 3. **Report**: each result comes back through [`Engine::report`] with the item's id, as an
//!    [`Outcome`] (`{status, headers, body}` or `{error}`); its batch is committed likewise. A
//!    host may report at once or much later; an item whose lease expires without a report is
//!    handed out again with the same `Idempotency-Key`.
//! 4. **Sleep until the deadline**: [`Engine::next_deadline`] is the earliest time anything is
//!    owed; the host wakes then (or after any write) and goes back to step 2.
//!
//! Ids, secrets and jitter come from a ChaCha20 generator seeded by the host
//! ([`EngineConfig::seed`]); with a fixed seed every answer is reproducible, which is how the
//! shared vectors in `tests/vectors/` are replayed identically by the Rust, WASM and C builds.
//!
//! ```
//! use serde_json::json;
//! use writesync_core::util::crypto::basic_auth_header;
//! use writesync_core::{ApiRequest, Engine, EngineConfig, KvRead, MemoryStore, Outcome, Storage};
//!
//! let mut store = MemoryStore::new();
//! let mut engine = Engine::new(EngineConfig::new([1; 32]).with_admin_token("s3cret"));
//! let now = 1_790_000_000_000;
//! let admin = |method: &str, path: &str, body: serde_json::Value| {
//!     ApiRequest::new(method, path).header("Authorization", "Bearer s3cret").json(&body)
//! };
//!
//! // An account with write mode on, an API key, and one connected accounting app.
//! let acct = engine.handle_with(
//!     &admin("POST", "/admin/accounts", json!({"domain": "acme.example.com", "writeEnabled": true})),
//!     now, &mut store);
//! let acct_id = acct.body_json()["id"].as_str().unwrap().to_string();
//! let key = engine.handle_with(
//!     &admin("POST", &format!("/admin/accounts/{acct_id}/api-keys"), json!({"scopes": ["api.read", "api.write"]})),
//!     now, &mut store).body_json();
//! engine.handle_with(
//!     &admin("POST", &format!("/admin/accounts/{acct_id}/connections"),
//!            json!({"app": "quickbooks", "type": "accounting", "pushUrl": "https://qb.example.com/push"})),
//!     now, &mut store);
//!
//! // 1. Mutate: a customer written with push. Plan, commit, answer, finish.
//! let auth = basic_auth_header(key["key"].as_str().unwrap(), key["secret"].as_str().unwrap());
//! let request = ApiRequest::new("POST", "/api/customers")
//!     .header("Authorization", &auth)
//!     .header("X-Sync-Data", "push")
//!     .json(&json!({"name": "Acme Ltd", "email": "ap@acme.example.com"}));
//! let step = engine.handle(&request, now, &store);
//! store.apply(&step.batch).unwrap();
//! engine.finish(&step);
//! assert_eq!(step.response.status, 201);
//! let sync_id = step.response.headers["X-Sync-ID"].clone();
//!
//! // 2. Drain: one push is due now. Commit the lease, then perform it.
//! let work = engine.due(now, 10, &store).unwrap();
//! store.apply(&work.batch).unwrap();
//! assert_eq!(work.items.len(), 1);
//! assert_eq!(work.items[0].request.url, "https://qb.example.com/push");
//!
//! // 3. Report: the source answered 201 with its id.
//! let outcome = Outcome::Response { status: 201, headers: Default::default(), body: r#"{"id":"QB-42"}"#.into() };
//! let batch = engine.report(&work.items[0].id, &outcome, now + 120, &store).unwrap();
//! store.apply(&batch).unwrap();
//!
//! // 4. Nothing else is owed; the sync succeeded.
//! assert_eq!(engine.next_deadline(&store).unwrap(), None);
//! let sync = engine.handle_with(
//!     &ApiRequest::new("GET", &format!("/api/syncs/{sync_id}")).header("Authorization", &auth),
//!     now + 200, &mut store);
//! assert_eq!(sync.body_json()["status"], "succeeded");
//! assert_eq!(sync.body_json()["targets"][0]["remoteId"], "QB-42");
//! ```
//!
//! ## Modules
//!
//! | module | responsibility |
//! |---|---|
//! | [`cdm`] | the typed objects of the Common Data Model, validation problems and their [`cdm::FieldCode`]s |
//! | [`validate`] | validation with every problem as a JSON Pointer, totals, merge patch (one file per object under `validate/`) |
//! | [`http`] | request/answer envelope, problem+json |
//! | [`json`] | a JSON document whose strings borrow from the body, what CDM writes are validated on |
//! | `routing` | app catalogue, capability table, `X-Sync-Sources`, target selection (internal: hosts reach it through the commands) |
//! | [`connectors`] | how a push speaks to each provider (generic, QuickBooks, Xero, HubSpot, Shopify), and why it cannot ([`connectors::ConnectorError`]) |
//! | [`net`] | which outbound addresses are allowed |
//! | [`records`] | stored records and the key layout |
//! | [`store`] | the storage seam ([`KvRead`], [`Storage`], [`Batch`]) and [`MemoryStore`] |
//! | [`util`] | hashing, signatures, time formatting, retry schedules |
//! | `engine` | the [`Engine`]: typed commands ([`Command`], [`Reply`], [`CommandError`]), the HTTP adapter, the sync and webhook state machines |
//! | `error` | [`CoreError`], the errors the core reports to its host (a storage failure keeps the host's error as its source) |
#![forbid(unsafe_code)]

pub mod cdm;
pub mod connectors;
mod engine;
mod error;
pub mod http;
pub mod json;
pub mod net;
pub mod records;
mod routing;
pub mod store;
pub mod util;
pub mod validate;

#[cfg(feature = "openapi")]
pub use engine::OPENAPI_JSON;
pub use engine::{
    AdminOp, Body, Command, CommandError, ConfigJson, Credentials, DataOp, DueWork, Engine,
    EngineConfig, Executed, IfMatch, MigrationStep, OutboundRequest, Outcome, Page, Problem, Reply,
    RequestLine, Step, SyncStarted, UpdateMode, WorkItem, WorkKind, WriteOptions,
    DEFAULT_DELIVERY_RETENTION_MS, DEFAULT_IDEMPOTENCY_RETENTION_MS, DEFAULT_LEASE_MS,
    DEFAULT_MAX_BATCH, DEFAULT_MAX_BODY_BYTES, DEFAULT_PAGE_SIZE, DEFAULT_SYNC_RETENTION_MS,
    LAYOUT_VERSION, MAX_PAGE, MAX_PAGE_SIZE, MAX_PATH_BYTES, SCOPE_READ, SCOPE_WRITE,
    TOKEN_EXPIRY_MARGIN_MS, TOKEN_URL,
};
pub use error::CoreError;
pub use http::{ApiRequest, ApiResponse};
pub use store::{Batch, KvRead, MemoryStore, Op, Storage};
