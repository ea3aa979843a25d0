//! `writesync serve`: open the store, settle the admin token, start the HTTP front and the
//! worker, stop gracefully on SIGINT/SIGTERM.
//!
//! Each request is read completely (within the limits of [`crate::httpd`]), turned into an
//! [`ApiRequest`], and answered by [`Engine::handle_with`] with the engine and store locked.
//! A successful write wakes the worker so that its pushes start at once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use writesync_core::http::{problem, ProblemKind};
use writesync_core::net::{Cidr, TargetPolicy};
use writesync_core::records::{keys, AdminRec};
use writesync_core::util::crypto::sha256_hex;
use writesync_core::util::schedule::RetrySchedule;
use writesync_core::{ApiRequest, ApiResponse, Batch, Engine, EngineConfig, KvRead, Storage};
use writesync_sqlite::SqliteStore;

use crate::commit::{GroupCommit, GroupLimits, Readers};
use crate::httpd::{
    is_api_path, valid_tracking_id, Handler, HttpLimits, HttpRequest, HttpResponse, HttpServer,
    Rejection, RequestHead,
};
use crate::log;
use crate::state::{hex, random_bytes, random_uuid, AppState};
use crate::transport::{Transport, TransportConfig};
use crate::worker::{Worker, DEFAULT_PER_ORIGIN, DEFAULT_SENDERS};

/// Default database file.
pub const DEFAULT_DB: &str = "./writesync.db";
/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// How long a graceful shutdown waits for requests in progress.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// File descriptors kept for everything but inbound connections: the SQLite files, stdio, the
/// listener and the runtime's own, and the worker's outbound connections (one per sender and
/// the idle ones its agent keeps), with room to spare.
pub const RESERVED_FDS: u64 = 128;

/// Headers that must not appear twice in a request (a repeat is `400`).
const SINGLETON_HEADERS: [&str; 9] = [
    "authorization",
    "content-type",
    "content-length",
    "idempotency-key",
    "if-match",
    "x-tracking-id",
    "x-sync-data",
    "x-sync-sources",
    "host",
];

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The SQLite file.
    pub db: PathBuf,
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: String,
    /// The admin token; when `None`, the stored hash is used, or a token is generated.
    pub admin_token: Option<String>,
    /// Delays between push retries (`None`: the engine's default).
    pub push_retry: Option<RetrySchedule>,
    /// Delays between webhook retries (`None`: the engine's default).
    pub webhook_retry: Option<RetrySchedule>,
    /// Restricted ranges that pushes and webhooks may reach anyway.
    pub allow_target_cidrs: Vec<Cidr>,
    /// Request body limit.
    pub max_body_bytes: usize,
    /// Lease of a claimed push or delivery, in milliseconds.
    pub lease_ms: u64,
    /// Idempotency retention, in milliseconds.
    pub idempotency_retention_ms: u64,
    /// Retention of finished syncs, in milliseconds.
    pub sync_retention_ms: u64,
    /// Overall timeout of one outbound request.
    pub outbound_timeout: Duration,
    /// Connect timeout of one outbound request.
    pub connect_timeout: Duration,
    /// Sender threads of the worker: items sent at once.
    pub senders: usize,
    /// Most items in flight to one origin (scheme, host, port) at once
    /// (`--max-in-flight-per-origin`), so that a slow target never holds every sender.
    pub per_origin: usize,
    /// Runtime threads of the HTTP front.
    pub http_threads: usize,
    /// Most inbound connections open at once (lowered at start to what the file descriptor
    /// limit allows, with a warning).
    pub max_connections: usize,
    /// Most inbound connections open at once from one IPv4 address or IPv6 /64 network.
    pub max_connections_per_ip: usize,
    /// Time allowed to send a request head (and the longest a keep-alive connection may stay
    /// idle between requests).
    pub header_timeout: Duration,
    /// Bounds of one group commit of write requests (`commit.rs`).
    pub group_commit: GroupLimits,
    /// Reader engines, each with its own read connection, that answer `GET` and `HEAD`.
    pub readers: usize,
    /// The token broker that answers the access-token requests of provider connections
    /// (`POST` of `{connectionId, accountId, app, reason}`, answer
    /// `{"accessToken", "expiresAt"}`); `None`: such pushes fail.
    pub token_url: Option<String>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            db: PathBuf::from(DEFAULT_DB),
            listen: DEFAULT_LISTEN.to_string(),
            admin_token: None,
            push_retry: None,
            webhook_retry: None,
            allow_target_cidrs: Vec::new(),
            max_body_bytes: writesync_core::DEFAULT_MAX_BODY_BYTES,
            lease_ms: writesync_core::DEFAULT_LEASE_MS,
            idempotency_retention_ms: writesync_core::DEFAULT_IDEMPOTENCY_RETENTION_MS,
            sync_retention_ms: writesync_core::DEFAULT_SYNC_RETENTION_MS,
            outbound_timeout: crate::transport::DEFAULT_OVERALL_TIMEOUT,
            connect_timeout: crate::transport::DEFAULT_CONNECT_TIMEOUT,
            senders: DEFAULT_SENDERS,
            per_origin: DEFAULT_PER_ORIGIN,
            http_threads: 2,
            max_connections: crate::httpd::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: crate::httpd::DEFAULT_MAX_CONNECTIONS_PER_IP,
            header_timeout: crate::httpd::DEFAULT_HEADER_TIMEOUT,
            token_url: None,
            group_commit: GroupLimits::default(),
            readers: crate::commit::DEFAULT_READERS,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The database could not be opened or written.
    #[error("cannot use the database {path}: {reason}")]
    Database {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// The OS random generator failed.
    #[error("{0}")]
    Random(String),
    /// A thread or signal handler could not be set up.
    #[error("cannot start: {0}")]
    Setup(std::io::Error),
}

/// A running server (HTTP front and worker).
#[derive(Debug)]
pub struct RunningServer {
    state: Arc<AppState>,
    group: Arc<GroupCommit>,
    http: Option<HttpServer>,
    worker: Option<Worker>,
    addr: SocketAddr,
    generated_admin_token: Option<String>,
}

impl RunningServer {
    /// The address the HTTP front listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin token generated at this start (first start without a token), if any.
    pub fn generated_admin_token(&self) -> Option<&str> {
        self.generated_admin_token.as_deref()
    }

    /// Stop gracefully: stop accepting, answer the requests in progress, let the worker
    /// finish and report the items it is sending, then return.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(http) = self.http.take() {
            http.shutdown(SHUTDOWN_GRACE);
        }
        self.state.begin_shutdown();
        if let Some(w) = self.worker.take() {
            w.join();
        }
        // The requests in progress were answered and the senders queued their last outcomes:
        // commit what is queued, then stop.
        self.group.close();
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn db_error(cfg: &ServeConfig, reason: impl ToString) -> ServeError {
    ServeError::Database {
        path: cfg.db.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Open the store, settle the admin token, and start the HTTP front and the worker.
pub fn start(cfg: &ServeConfig) -> Result<RunningServer, ServeError> {
    let mut store = SqliteStore::open(&cfg.db).map_err(|e| db_error(cfg, e))?;
    let policy = TargetPolicy {
        allowed: cfg.allow_target_cidrs.clone(),
    };
    // Fresh at every start: ids and secrets must never repeat across restarts.
    let defaults = EngineConfig::new(random_bytes::<32>().map_err(ServeError::Random)?);
    let mut config = EngineConfig {
        push_retry: cfg.push_retry.clone().unwrap_or(defaults.push_retry),
        webhook_retry: cfg.webhook_retry.clone().unwrap_or(defaults.webhook_retry),
        lease_ms: cfg.lease_ms.max(1),
        max_body_bytes: cfg.max_body_bytes,
        idempotency_retention_ms: cfg.idempotency_retention_ms,
        sync_retention_ms: cfg.sync_retention_ms,
        target_policy: policy.clone(),
        ..defaults
    };
    let mut generated = None;
    match &cfg.admin_token {
        Some(t) => config.admin_token_sha256 = Some(sha256_hex(t.as_bytes())),
        None => {
            let stored = store.get(keys::ADMIN).map_err(|e| db_error(cfg, e))?;
            if stored.is_none() {
                let token = format!(
                    "wsa_{}",
                    hex(&random_bytes::<24>().map_err(ServeError::Random)?)
                );
                let rec = AdminRec {
                    token_sha256: sha256_hex(token.as_bytes()),
                };
                let value = serde_json::to_string(&rec).map_err(|e| db_error(cfg, e))?;
                let mut batch = Batch::new();
                batch.put(keys::ADMIN, value);
                store.apply(&batch).map_err(|e| db_error(cfg, e))?;
                generated = Some(token);
            }
        }
    }
    let reader_engines = (0..cfg.readers)
        .map(|_| {
            // Each engine draws its own request ids.
            let seed = random_bytes::<32>().map_err(ServeError::Random)?;
            Ok(Engine::new(EngineConfig {
                seed,
                ..config.clone()
            }))
        })
        .collect::<Result<Vec<_>, ServeError>>()?;
    let readers = Readers::new(reader_engines, || {
        SqliteStore::open(&cfg.db).map_err(|e| e.to_string())
    })
    .map_err(|e| db_error(cfg, e))?;
    let mut engine = Engine::new(config);
    // The engine's data layout is brought up to date before anything is served.
    let from =
        writesync_sqlite::migrate_layout(&mut engine, &mut store).map_err(|e| db_error(cfg, e))?;
    if from != writesync_core::LAYOUT_VERSION {
        log::info(
            "migrated the data layout",
            &[
                ("from", json!(from)),
                ("to", json!(writesync_core::LAYOUT_VERSION)),
            ],
        );
    }
    // This process is the only worker on its database: what a previous (killed) process had
    // in flight is due again now rather than when its lease would have run out.
    let released = engine
        .recover(crate::state::now_ms(), &store)
        .map_err(|e| db_error(cfg, e))?;
    if !released.is_empty() {
        store.apply(&released).map_err(|e| db_error(cfg, e))?;
    }
    let state = Arc::new(AppState::new(engine, store));
    let group = Arc::new(
        GroupCommit::start(Arc::clone(&state), cfg.group_commit).map_err(ServeError::Setup)?,
    );
    let transport = Transport::new(&TransportConfig {
        policy,
        connect_timeout: cfg.connect_timeout.min(cfg.outbound_timeout),
        overall_timeout: cfg.outbound_timeout,
        ..TransportConfig::default()
    });
    let limits = HttpLimits {
        max_body_bytes: cfg.max_body_bytes,
        max_connections: fit_to_fd_limit(cfg.max_connections),
        max_connections_per_ip: cfg.max_connections_per_ip,
        header_timeout: cfg.header_timeout,
        ..HttpLimits::default()
    };
    let handler = Arc::new(ApiHandler {
        group: Arc::clone(&group),
        readers,
        limits: limits.clone(),
    });
    let http =
        HttpServer::bind(&cfg.listen, limits.clone(), handler, cfg.http_threads).map_err(|e| {
            ServeError::Listen {
                addr: cfg.listen.clone(),
                source: e,
            }
        })?;
    let addr = http.local_addr();
    let performer = writesync_host::Performer::with_transport(
        transport,
        writesync_host::TokenBroker::new(cfg.token_url.clone()),
    );
    let driver = writesync_host::DriverConfig {
        senders: cfg.senders.max(1),
        per_origin: cfg.per_origin.max(1),
        ..writesync_host::DriverConfig::default()
    };
    let worker = match Worker::start(Arc::clone(&state), Arc::clone(&group), performer, driver) {
        Ok(w) => w,
        Err(e) => {
            http.shutdown(Duration::from_secs(1));
            group.close();
            return Err(ServeError::Setup(e));
        }
    };
    if Duration::from_millis(cfg.lease_ms) < cfg.outbound_timeout {
        log::warn(
            "the lease is shorter than the outbound timeout: a slow push or delivery may be sent \
             again while the first attempt is still waiting (with the same Idempotency-Key)",
            &[
                ("leaseMs", json!(cfg.lease_ms)),
                (
                    "outboundTimeoutMs",
                    json!(u64::try_from(cfg.outbound_timeout.as_millis()).unwrap_or(u64::MAX)),
                ),
            ],
        );
    }
    log::info(
        "listening",
        &[
            ("addr", Value::String(addr.to_string())),
            ("db", Value::String(cfg.db.display().to_string())),
            ("maxConnections", json!(limits.max_connections)),
            ("maxConnectionsPerIp", json!(limits.max_connections_per_ip)),
            ("senders", json!(cfg.senders.max(1))),
            ("maxInFlightPerOrigin", json!(cfg.per_origin)),
            (
                "headerTimeoutMs",
                json!(u64::try_from(limits.header_timeout.as_millis()).unwrap_or(u64::MAX)),
            ),
            (
                "allowTargetCidrs",
                json!(cfg
                    .allow_target_cidrs
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()),
            ),
        ],
    );
    Ok(RunningServer {
        state,
        group,
        http: Some(http),
        worker: Some(worker),
        addr,
        generated_admin_token: generated,
    })
}

/// Raise the soft limit on open files (`RLIMIT_NOFILE`) towards the hard limit, as far as
/// `wanted` connections and [`RESERVED_FDS`] need; the number of connections that fits.
///
/// Many systems start processes with a soft limit of 1024 and a much larger hard limit,
/// which an unprivileged process may raise its soft limit to. When even the hard limit is too
/// small, the connection bound is lowered to fit, with a warning that says what to set
/// (`ulimit -n`, `LimitNOFILE=` of a systemd unit, `--ulimit nofile=` of a container):
/// without that a server at its bound would fail to accept with "too many open files"
/// instead of letting connections wait in the backlog.
fn fit_to_fd_limit(wanted: usize) -> usize {
    let needed = (wanted as u64).saturating_add(RESERVED_FDS);
    match rlimit::increase_nofile_limit(needed) {
        Ok(soft) if soft >= needed => wanted,
        Ok(soft) => {
            let fit = usize::try_from(soft.saturating_sub(RESERVED_FDS))
                .unwrap_or(usize::MAX)
                .max(1);
            log::warn(
                "the open-file limit is too low for --max-connections: fewer connections are \
                 served; raise the hard limit (ulimit -n, LimitNOFILE=) to serve them all",
                &[
                    ("maxConnections", json!(wanted)),
                    ("openFileLimit", json!(soft)),
                    ("reservedFds", json!(RESERVED_FDS)),
                    ("servedConnections", json!(fit)),
                ],
            );
            fit
        }
        Err(e) => {
            log::warn(
                "cannot read or raise the open-file limit; connections past it will fail to be \
                 accepted",
                &[("error", Value::String(e.to_string()))],
            );
            wanted
        }
    }
}

/// `writesync serve`: start, print a generated admin token once, run until SIGINT or
/// SIGTERM, then shut down gracefully. A second signal during the shutdown exits at once.
pub fn run(cfg: &ServeConfig) -> Result<(), ServeError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The conditional exit goes first: it only fires once the flag is already set.
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&stop))
            .map_err(ServeError::Setup)?;
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(ServeError::Setup)?;
    }
    let server = start(cfg)?;
    if let Some(token) = server.generated_admin_token() {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "admin token (shown only this once; only its hash is stored): {token}"
        );
        let _ = out.flush();
        log::info(
            "generated an admin token and stored its hash under meta/admin; it was printed on stdout",
            &[],
        );
    }
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
    log::info(
        "shutting down: finishing the requests and pushes in progress",
        &[],
    );
    server.shutdown();
    log::info("stopped", &[]);
    Ok(())
}

/// The HTTP handler: translate, call the engine, translate back.
#[derive(Debug)]
struct ApiHandler {
    group: Arc<GroupCommit>,
    readers: Readers,
    limits: HttpLimits,
}

fn is_write(method: &str) -> bool {
    matches!(method, "POST" | "PUT" | "PATCH" | "DELETE")
}

fn path_only(target: &str) -> &str {
    target.split('?').next().unwrap_or(target)
}

/// A problem answer the engine has no kind for.
fn host_problem(status: u16, slug: &str, title: &str, detail: &str) -> ApiResponse {
    let mut r = ApiResponse::json(
        status,
        &json!({"type": format!("/problems/{slug}"), "title": title, "status": status,
                "detail": detail}),
    );
    r.set_header("Content-Type", "application/problem+json");
    r
}

fn to_http(resp: ApiResponse) -> HttpResponse {
    HttpResponse {
        status: resp.status,
        headers: resp.headers.into_iter().collect(),
        body: resp.body.into_bytes(),
    }
}

impl ApiHandler {
    /// Answer a request the host refused itself: `X-Request-ID` on `/api` answers, a log line.
    fn host_answer(
        &self,
        method: &str,
        target: &str,
        remote: SocketAddr,
        tracking_id: Option<&str>,
        mut resp: ApiResponse,
    ) -> HttpResponse {
        if is_api_path(target) {
            resp.set_header("X-Request-ID", random_uuid());
        }
        if let Some(t) = tracking_id {
            resp.set_header("X-Tracking-ID", t);
        }
        log_request(method, target, remote, &resp, None, 0);
        to_http(resp)
    }
}

fn log_request(
    method: &str,
    target: &str,
    remote: SocketAddr,
    resp: &ApiResponse,
    tracking: Option<&str>,
    ms: u64,
) {
    let h = |n: &str| resp.headers.get(n).map(String::as_str);
    let fields = [
        ("method", Value::String(method.to_string())),
        ("path", Value::String(path_only(target).to_string())),
        ("status", json!(resp.status)),
        ("ms", json!(ms)),
        ("remote", Value::String(remote.ip().to_string())),
        ("requestId", log::opt(h("X-Request-ID"))),
        ("trackingId", log::opt(h("X-Tracking-ID").or(tracking))),
        ("syncId", log::opt(h("X-Sync-ID"))),
        (
            "replayed",
            if h("Idempotency-Replayed").is_some() {
                Value::Bool(true)
            } else {
                Value::Null
            },
        ),
    ];
    if resp.status >= 500 {
        log::error("request", &fields);
    } else {
        log::info("request", &fields);
    }
}

impl Handler for ApiHandler {
    fn handle(&self, r: HttpRequest) -> HttpResponse {
        let started = Instant::now();
        let tracking_id = valid_tracking_id(
            r.headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("X-Tracking-ID"))
                .map(|(_, v)| v.as_str()),
        );
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in &r.headers {
            let name = name.to_ascii_lowercase();
            match headers.get_mut(&name) {
                Some(_) if SINGLETON_HEADERS.contains(&name.as_str()) => {
                    let resp = problem(
                        ProblemKind::InvalidHeader,
                        format!("the {name} header must not be sent more than once"),
                    );
                    return self.host_answer(&r.method, &r.target, r.remote, tracking_id, resp);
                }
                Some(old) => {
                    old.push_str(", ");
                    old.push_str(value);
                }
                None => {
                    headers.insert(name, value.clone());
                }
            }
        }
        let body = if r.body.is_empty() {
            None
        } else {
            match String::from_utf8(r.body) {
                Ok(s) => Some(s),
                Err(_) => {
                    let resp = problem(ProblemKind::MalformedJson, "the body is not UTF-8 text");
                    return self.host_answer(&r.method, &r.target, r.remote, tracking_id, resp);
                }
            }
        };
        let request = ApiRequest {
            method: r.method.clone(),
            path: r.target.clone(),
            headers,
            body,
        };
        // Reads on a snapshot of their own; writes (and a read that wants to write) through
        // the group commit, which wakes the worker when something was written.
        let resp = if is_write(&r.method) {
            self.group.submit(request)
        } else {
            match self.readers.read(&request) {
                Some(resp) => resp,
                None => self.group.submit(request),
            }
        };
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        log_request(&r.method, &r.target, r.remote, &resp, None, ms);
        to_http(resp)
    }

    fn reject(&self, head: RequestHead, why: Rejection) -> HttpResponse {
        let resp = match why {
            Rejection::TooManyHeaders { count } => host_problem(
                431,
                "header-fields-too-large",
                "Request header fields too large",
                &format!(
                    "the request has {count} header fields; at most {} are accepted",
                    self.limits.max_headers
                ),
            ),
            Rejection::HeaderTooLarge { name } => host_problem(
                431,
                "header-fields-too-large",
                "Request header fields too large",
                &format!(
                    "the {name} header field is larger than {} bytes",
                    self.limits.max_header_bytes
                ),
            ),
            Rejection::HeadTooLarge { bytes } => host_problem(
                431,
                "header-fields-too-large",
                "Request header fields too large",
                &format!(
                    "the header section has {bytes} bytes; at most {} are accepted",
                    self.limits.max_head_bytes
                ),
            ),
            Rejection::BadHeaderValue { name } => problem(
                ProblemKind::InvalidHeader,
                format!("the value of {name} is not visible ASCII text"),
            ),
            Rejection::TargetTooLong => host_problem(
                414,
                "uri-too-long",
                "URI too long",
                &format!(
                    "the request target is longer than {} bytes",
                    self.limits.max_target_bytes
                ),
            ),
            Rejection::BodyTooLarge { declared, limit } => problem(
                ProblemKind::PayloadTooLarge,
                match declared {
                    Some(n) => format!(
                        "Content-Length {n} is over the limit of {limit} bytes; the body was not read"
                    ),
                    None => format!("the body is larger than {limit} bytes"),
                },
            ),
            Rejection::BodyUnreadable { reason } => host_problem(
                400,
                "unreadable-body",
                "The request body could not be read",
                &reason,
            ),
        };
        self.host_answer(
            &head.method,
            &head.target,
            head.remote,
            head.tracking_id.as_deref(),
            resp,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths() {
        assert!(is_api_path("/api/customers"));
        assert!(is_api_path("/api"));
        assert!(!is_api_path("/apix"));
        assert!(!is_api_path("/healthz"));
        assert_eq!(path_only("/api/customers?page=2"), "/api/customers");
    }

    #[test]
    fn host_problems_are_problem_json() {
        let r = host_problem(431, "x", "X", "d");
        assert_eq!(r.status, 431);
        assert_eq!(
            r.headers.get("Content-Type").map(String::as_str),
            Some("application/problem+json")
        );
        assert_eq!(r.body_json()["status"], 431);
    }
}
