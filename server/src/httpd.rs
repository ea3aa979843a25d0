//! A bounded HTTP/1.1 server: hyper on a small tokio runtime, handing complete requests to a
//! blocking handler.
//!
//! The limits are checked before the handler sees anything: the number and size of header
//! fields, the size of the header section and the length of the request target (answered by
//! [`Handler::reject`]), the
//! declared `Content-Length` against the body limit (`413` without reading a byte of the
//! body), and the body actually read (a chunked body is read with the same bound). hyper adds
//! its own outer limits (a head larger than [`MAX_HEAD_BYTES`] or with more than
//! [`HARD_MAX_HEADERS`] fields is `431`; a malformed `Content-Length` is `400`; both get a
//! problem JSON body from [`ProblemBodies`], since hyper writes none), a timeout for
//! reading the head, and closes a connection whose body was not read instead of draining it.
//!
//! Why not tiny_http 0.12: when a handler answers without reading the body (the `413`
//! contract), tiny_http drains the rest on drop and first allocates a buffer of the whole
//! declared length, so `Content-Length: 100000000000` aborts the process; it also reads
//! header lines without a bound and has no timeouts.
//!
//! Connections are bounded twice: at most [`HttpLimits::max_connections`] are open at once
//! (further ones wait in the listen backlog), and at most
//! [`HttpLimits::max_connections_per_ip`] come from one peer (an IPv4 address, or an IPv6 /64
//! network, the block one host usually holds). A connection over the peer bound is closed as
//! soon as it is accepted, before a byte is read, and gives its slot of the global bound back
//! at once: one client holding many half-sent requests cannot shut others out. The head
//! timeout also closes a keep-alive connection that stays idle that long between requests
//! (hyper restarts it whenever it waits for a head).
//!
//! [`HttpServer::shutdown`] stops accepting, lets every request in progress finish and be
//! answered (up to a grace period), then closes the idle connections.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::{watch, Semaphore};

use crate::log;
use writesync_core::http::is_visible_ascii;

/// hyper's own bound on the size of a request head.
pub const MAX_HEAD_BYTES: usize = 128 * 1024;
/// hyper's own bound on the number of header fields.
pub const HARD_MAX_HEADERS: usize = 200;
/// Default of [`HttpLimits::max_connections`]: far above what honest clients need, while the
/// per-peer bound keeps one client from taking them all. An open connection costs a file
/// descriptor, a task and hyper's read buffer: measured on a release build, about 12 KiB of
/// resident memory for a silent connection and about 24 KiB for one holding half a request
/// head, so 16,384 of the latter take about 380 MiB.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;
/// Default of [`HttpLimits::max_connections_per_ip`].
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;
/// Default of [`HttpLimits::header_timeout`].
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The listen backlog asked for (the kernel caps it, on Linux at `net.core.somaxconn`): a burst
/// of connections waits there for the accept loop instead of having its SYNs dropped.
pub const LISTEN_BACKLOG: u32 = 4096;
/// How often at most a refused or waiting connection is logged (with the count since).
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// What the server accepts.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Most header fields.
    pub max_headers: usize,
    /// Largest header field (name, `: `, value).
    pub max_header_bytes: usize,
    /// Largest header section: every field counted as name, `: `, value and the line end.
    /// Keep it under [`MAX_HEAD_BYTES`], so that the handler's problem answer (with the
    /// tracking id) is the one given.
    pub max_head_bytes: usize,
    /// Longest request target (path and query).
    pub max_target_bytes: usize,
    /// Time allowed to send a request head, counted from the moment the server waits for it:
    /// the connection's start, or the end of the previous answer on a keep-alive connection.
    /// Past it the connection is closed.
    pub header_timeout: Duration,
    /// Time allowed to send the request body.
    pub body_timeout: Duration,
    /// Most connections open at once (further ones wait in the listen backlog).
    pub max_connections: usize,
    /// Most connections open at once from one peer: an IPv4 address (also when it comes as an
    /// IPv4-mapped IPv6 address) or an IPv6 /64 network. A connection over it is closed as
    /// soon as it is accepted.
    pub max_connections_per_ip: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_body_bytes: 1024 * 1024,
            max_headers: 100,
            max_header_bytes: 8 * 1024,
            max_head_bytes: 64 * 1024,
            max_target_bytes: 8 * 1024,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: Duration::from_secs(60),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
        }
    }
}

/// A complete request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Method, e.g. `POST`.
    pub method: String,
    /// Path with query, e.g. `/api/customers?page=2`.
    pub target: String,
    /// Header fields in the order received (names lowercase).
    pub headers: Vec<(String, String)>,
    /// The body (empty when none was sent).
    pub body: Vec<u8>,
    /// Whether a body was sent (`Content-Length` or chunked), even an empty one.
    pub has_body: bool,
    /// The peer.
    pub remote: SocketAddr,
}

impl HttpRequest {
    /// The first value of a header (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The head of a request that was refused before the handler saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Method.
    pub method: String,
    /// Path with query (possibly cut short).
    pub target: String,
    /// The peer.
    pub remote: SocketAddr,
    /// The request's `X-Tracking-ID`, when it was sent once and is valid (1 to 128 visible
    /// ASCII characters): the answer carries it back.
    pub tracking_id: Option<String>,
}

/// Why a request was refused before the handler saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// More header fields than allowed (`431`).
    TooManyHeaders {
        /// How many were sent.
        count: usize,
    },
    /// One header field is too large (`431`).
    HeaderTooLarge {
        /// Its name.
        name: String,
    },
    /// The header section as a whole is too large (`431`).
    HeadTooLarge {
        /// Its size (fields counted as name, `: `, value and line end).
        bytes: usize,
    },
    /// A header value is not visible ASCII text (`400`).
    BadHeaderValue {
        /// Its name.
        name: String,
    },
    /// The request target is too long (`414`).
    TargetTooLong,
    /// The body is over the limit (`413`); `declared` is the `Content-Length` when the
    /// decision was made from it, without reading the body.
    BodyTooLarge {
        /// The declared length, if any.
        declared: Option<u64>,
        /// The limit.
        limit: usize,
    },
    /// The body could not be read (the client went away, bad chunked encoding, timeout).
    BodyUnreadable {
        /// What happened.
        reason: String,
    },
}

/// A complete answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header fields.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// An answer with a body and its content type.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }
}

/// What the server calls. Both methods run on a blocking thread and may take locks and do
/// file I/O; they must not panic (a panic answers `500`).
pub trait Handler: Send + Sync + 'static {
    /// Answer a complete request.
    fn handle(&self, request: HttpRequest) -> HttpResponse;
    /// Answer a request refused by the limits.
    fn reject(&self, head: RequestHead, why: Rejection) -> HttpResponse;
}

/// A running server.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
    stop: watch::Sender<bool>,
    accept: Option<tokio::task::JoinHandle<GracefulShutdown>>,
}

impl HttpServer {
    /// Bind `addr` and start serving with `threads` runtime threads.
    pub fn bind(
        addr: &str,
        limits: HttpLimits,
        handler: Arc<dyn Handler>,
        threads: usize,
    ) -> std::io::Result<HttpServer> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .max_blocking_threads(64)
            .thread_name("http")
            .enable_all()
            .build()?;
        let listener = {
            let _guard = runtime.enter();
            listen(addr)?
        };
        let local = listener.local_addr()?;
        let (stop, stop_rx) = watch::channel(false);
        let accept = runtime.spawn(accept_loop(listener, Arc::new(limits), handler, stop_rx));
        Ok(HttpServer {
            addr: local,
            runtime: Some(runtime),
            stop,
            accept: Some(accept),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting connections, let the requests in progress finish (at most `grace`),
    /// then close every connection.
    pub fn shutdown(mut self, grace: Duration) {
        self.stop_now(grace);
    }

    fn stop_now(&mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let (Some(runtime), Some(accept)) = (self.runtime.take(), self.accept.take()) else {
            return;
        };
        runtime.block_on(async move {
            if let Ok(graceful) = accept.await {
                if tokio::time::timeout(grace, graceful.shutdown())
                    .await
                    .is_err()
                {
                    log::warn(
                        "requests still in progress after the grace period; closing",
                        &[("graceMs", serde_json::json!(grace.as_millis() as u64))],
                    );
                }
            }
        });
        runtime.shutdown_timeout(Duration::from_secs(1));
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if self.runtime.is_some() {
            self.stop_now(Duration::from_secs(5));
        }
    }
}

/// Bind the first address `addr` resolves to that can be bound, with [`LISTEN_BACKLOG`].
/// `SO_REUSEADDR` is set, as the standard library's listener sets it on Unix, so that a
/// restarted server can bind while old connections linger in `TIME_WAIT`.
fn listen(addr: &str) -> std::io::Result<tokio::net::TcpListener> {
    let mut last_error = None;
    for a in addr.to_socket_addrs()? {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        let bound = socket
            .set_reuseaddr(true)
            .and_then(|()| socket.bind(a))
            .and_then(|()| socket.listen(LISTEN_BACKLOG));
        match bound {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the address resolves to nothing",
        )
    }))
}

/// Whom the per-peer bound counts together: an IPv4 address, or an IPv6 /64 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum PeerKey {
    V4(Ipv4Addr),
    V6Net(u64),
}

impl PeerKey {
    fn of(ip: IpAddr) -> PeerKey {
        match ip {
            IpAddr::V4(a) => PeerKey::V4(a),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => PeerKey::V4(v4),
                None => PeerKey::V6Net((u128::from(a) >> 64) as u64),
            },
        }
    }
}

/// The number of open connections of each peer.
#[derive(Debug, Default)]
struct PeerTable {
    open: Mutex<HashMap<PeerKey, usize>>,
}

/// One connection counted against its peer; uncounted when dropped.
#[derive(Debug)]
struct PeerSlot {
    table: Arc<PeerTable>,
    key: PeerKey,
}

impl PeerTable {
    /// Count one more connection of `ip`, unless it already has `max` open.
    fn enter(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<PeerSlot> {
        let key = PeerKey::of(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(key).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            table: Arc::clone(self),
            key,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self
            .table
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// A warning about connections that are being refused or kept waiting, at most once per
/// [`REFUSAL_LOG_EVERY`], with the count since the previous line.
#[derive(Debug, Default)]
struct ThrottledWarning {
    last: Option<Instant>,
    count: u64,
}

impl ThrottledWarning {
    fn hit(&mut self, msg: &str, fields: &[(&str, serde_json::Value)]) {
        self.count += 1;
        if self.last.is_some_and(|t| t.elapsed() < REFUSAL_LOG_EVERY) {
            return;
        }
        let mut all = fields.to_vec();
        all.push(("count", serde_json::json!(self.count)));
        log::warn(msg, &all);
        self.last = Some(Instant::now());
        self.count = 0;
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    limits: Arc<HttpLimits>,
    handler: Arc<dyn Handler>,
    mut stop: watch::Receiver<bool>,
) -> GracefulShutdown {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let peers = Arc::new(PeerTable::default());
    let mut refused = ThrottledWarning::default();
    let mut at_cap = ThrottledWarning::default();
    loop {
        if permits.available_permits() == 0 {
            at_cap.hit(
                "every connection slot is taken; new connections wait in the listen backlog \
                 (count: times since the previous such line)",
                &[("maxConnections", serde_json::json!(limits.max_connections))],
            );
        }
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stop.changed() => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait a little, keep serving.
                log::warn(
                    "accept failed",
                    &[("error", serde_json::Value::String(e.to_string()))],
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(peer_slot) = peers.enter(remote.ip(), limits.max_connections_per_ip.max(1)) else {
            // Closed before a byte is read; the global slot is given back with it.
            drop(stream);
            drop(permit);
            refused.hit(
                "closed connections of peers over their connection bound (count: since the \
                 previous such line; remote: the peer that caused this one)",
                &[
                    ("remote", serde_json::Value::String(remote.ip().to_string())),
                    (
                        "maxConnectionsPerIp",
                        serde_json::json!(limits.max_connections_per_ip),
                    ),
                ],
            );
            continue;
        };
        let _ = stream.set_nodelay(true);
        let header_timeout = limits.header_timeout;
        let limits = Arc::clone(&limits);
        let handler = Arc::clone(&handler);
        let service = hyper::service::service_fn(move |req| {
            serve_one(req, remote, Arc::clone(&limits), Arc::clone(&handler))
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_buf_size(MAX_HEAD_BYTES)
            .max_headers(HARD_MAX_HEADERS)
            .keep_alive(true);
        let conn = builder.serve_connection(TokioIo::new(ProblemBodies::new(stream)), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                log::debug(
                    "connection ended with an error",
                    &[
                        ("remote", serde_json::Value::String(remote.to_string())),
                        ("error", serde_json::Value::String(e.to_string())),
                    ],
                );
            }
            drop(peer_slot);
            drop(permit);
        });
    }
    graceful
}

fn head(
    method: &str,
    target: &str,
    remote: SocketAddr,
    tracking_id: Option<String>,
) -> RequestHead {
    let mut t = target.to_string();
    if t.len() > 256 {
        let mut end = 256;
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        t.truncate(end);
    }
    RequestHead {
        method: method.to_string(),
        target: t,
        remote,
        tracking_id,
    }
}

/// Whether a request target is on the data API (`/api`, `/api/...`, `/api?...`), whose answers
/// carry an `X-Request-ID`.
pub fn is_api_path(target: &str) -> bool {
    target == "/api" || target.starts_with("/api/") || target.starts_with("/api?")
}

/// The tracking id among a request's `X-Tracking-ID` values: the one value when it was sent
/// once and is 1 to 128 visible ASCII characters, else none.
pub fn valid_tracking_id<'a>(mut values: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let first = values.next()?;
    if values.next().is_some() || !is_visible_ascii(first, 128) {
        return None;
    }
    Some(first)
}

async fn run_blocking<F>(f: F) -> HttpResponse
where
    F: FnOnce() -> HttpResponse + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => {
            log::error(
                "request handler failed",
                &[("error", serde_json::Value::String(e.to_string()))],
            );
            HttpResponse::new(
                500,
                "application/problem+json",
                serde_json::json!({"type": "/problems/internal", "title": "Internal error",
                                   "status": 500, "detail": "the request handler failed"})
                .to_string(),
            )
        }
    }
}

async fn serve_one(
    req: Request<Incoming>,
    remote: SocketAddr,
    limits: Arc<HttpLimits>,
    handler: Arc<dyn Handler>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_string();
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
    let tracking_id = valid_tracking_id(
        parts
            .headers
            .get_all("x-tracking-id")
            .iter()
            .map(|v| v.to_str().unwrap_or("")),
    )
    .map(str::to_string);
    let reject = |why: Rejection| {
        let h = Arc::clone(&handler);
        let hd = head(&method, &target, remote, tracking_id.clone());
        run_blocking(move || h.reject(hd, why))
    };
    if parts.headers.len() > limits.max_headers {
        let r = reject(Rejection::TooManyHeaders {
            count: parts.headers.len(),
        })
        .await;
        return Ok(to_hyper(r));
    }
    if target.len() > limits.max_target_bytes {
        return Ok(to_hyper(reject(Rejection::TargetTooLong).await));
    }
    let head_bytes: usize = parts
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + 4 + v.len())
        .sum();
    if head_bytes > limits.max_head_bytes {
        let r = reject(Rejection::HeadTooLarge { bytes: head_bytes }).await;
        return Ok(to_hyper(r));
    }
    let mut headers = Vec::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        if name.as_str().len() + 2 + value.len() > limits.max_header_bytes {
            let r = reject(Rejection::HeaderTooLarge {
                name: name.as_str().to_string(),
            })
            .await;
            return Ok(to_hyper(r));
        }
        match value.to_str() {
            Ok(v) => headers.push((name.as_str().to_string(), v.to_string())),
            Err(_) => {
                let r = reject(Rejection::BadHeaderValue {
                    name: name.as_str().to_string(),
                })
                .await;
                return Ok(to_hyper(r));
            }
        }
    }
    // hyper has validated Content-Length (one value, digits only) or refused the request.
    let declared: Option<u64> = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let chunked = parts.headers.contains_key(hyper::header::TRANSFER_ENCODING);
    if let Some(n) = declared {
        if n > limits.max_body_bytes as u64 {
            let r = reject(Rejection::BodyTooLarge {
                declared: Some(n),
                limit: limits.max_body_bytes,
            })
            .await;
            // The body is never read: hyper closes the connection after this answer.
            return Ok(to_hyper(r));
        }
    }
    let collected = tokio::time::timeout(
        limits.body_timeout,
        Limited::new(body, limits.max_body_bytes).collect(),
    )
    .await;
    let body = match collected {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) => {
            let why = if e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Rejection::BodyTooLarge {
                    declared: None,
                    limit: limits.max_body_bytes,
                }
            } else {
                Rejection::BodyUnreadable {
                    reason: e.to_string(),
                }
            };
            return Ok(to_hyper(reject(why).await));
        }
        Err(_) => {
            let why = Rejection::BodyUnreadable {
                reason: "the body was not sent in time".into(),
            };
            return Ok(to_hyper(reject(why).await));
        }
    };
    let request = HttpRequest {
        method,
        target,
        headers,
        has_body: declared.is_some() || chunked,
        body: body.to_vec(),
        remote,
    };
    let h = Arc::clone(&handler);
    Ok(to_hyper(run_blocking(move || h.handle(request)).await))
}

fn to_hyper(r: HttpResponse) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(r.body)));
    *resp.status_mut() =
        hyper::StatusCode::from_u16(r.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in r.headers {
        match (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            (Ok(name), Ok(value)) => {
                resp.headers_mut().append(name, value);
            }
            _ => log::warn(
                "dropped an answer header that is not valid HTTP",
                &[("header", serde_json::Value::String(k))],
            ),
        }
    }
    resp
}

/// The connection's stream, with one change on the way out: hyper answers a request head it
/// cannot take (over [`MAX_HEAD_BYTES`], more than [`HARD_MAX_HEADERS`] fields, not HTTP/1.1)
/// itself, before any handler runs, with a status line and an empty body. This puts a problem
/// JSON body in place of that answer, as every other refusal has (contract, issue 15). hyper's
/// own answers are told from the handler's by what hyper writes: status `400` or `431`, and no
/// `content-type` (every handler answer with those statuses is problem JSON, so has one).
/// Nothing of the request is known there, so the answer carries no tracking id; heads up to
/// [`HttpLimits::max_head_bytes`] are refused by the handler, with it.
struct ProblemBodies<S> {
    inner: S,
    /// The replacement being written and how much of it is written.
    replacing: Option<(Vec<u8>, usize)>,
}

impl<S> ProblemBodies<S> {
    fn new(inner: S) -> Self {
        ProblemBodies {
            inner,
            replacing: None,
        }
    }
}

/// The problem answer that replaces hyper's bare answer `head`, when it is one.
fn problem_for_bare_answer(head: &[u8]) -> Option<Vec<u8>> {
    let (status, slug, title, detail) = if head.starts_with(b"HTTP/1.1 431 ") {
        (
            431,
            "header-fields-too-large",
            "Request header fields too large",
            format!(
                "the request head is larger than {MAX_HEAD_BYTES} bytes or has more than \
                 {HARD_MAX_HEADERS} header fields"
            ),
        )
    } else if head.starts_with(b"HTTP/1.1 400 ") {
        (
            400,
            "malformed-request",
            "Malformed request",
            "the request line or a header field is not valid HTTP/1.1".to_string(),
        )
    } else {
        return None;
    };
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let lines = &head[..end];
    let lower = lines.to_ascii_lowercase();
    if lower.windows(15).any(|w| w == b"\r\ncontent-type:") {
        return None;
    }
    // Keep hyper's status line and its `date`; the body and its length are ours.
    let status_line = lines.split(|&b| b == b'\n').next()?;
    let date = lower
        .split(|&b| b == b'\n')
        .position(|l| l.starts_with(b"date:"))
        .and_then(|i| lines.split(|&b| b == b'\n').nth(i));
    let body = serde_json::json!({"type": format!("/problems/{slug}"), "title": title,
                                  "status": status, "detail": detail})
    .to_string();
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(status_line);
    out.extend_from_slice(b"\ncontent-type: application/problem+json\r\nconnection: close\r\n");
    if let Some(d) = date {
        out.extend_from_slice(d);
        out.push(b'\n');
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body.as_bytes());
    Some(out)
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for ProblemBodies<S> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for ProblemBodies<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::task::Poll;
        let this = self.get_mut();
        if this.replacing.is_none() {
            match problem_for_bare_answer(buf) {
                Some(answer) => this.replacing = Some((answer, 0)),
                None => return std::pin::Pin::new(&mut this.inner).poll_write(cx, buf),
            }
        }
        // Write the replacement whole; hyper's bytes count as written once it is.
        while let Some((answer, done)) = &mut this.replacing {
            if *done == answer.len() {
                this.replacing = None;
                return Poll::Ready(Ok(buf.len()));
            }
            match std::pin::Pin::new(&mut this.inner).poll_write(cx, &answer[*done..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()))
                }
                Poll::Ready(Ok(n)) => *done += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn peers_are_ipv4_addresses_or_ipv6_networks() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(PeerKey::of(v4), PeerKey::of(mapped));
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(PeerKey::of(a), PeerKey::of(b));
        assert_ne!(PeerKey::of(a), PeerKey::of(c));
        assert_ne!(
            PeerKey::of(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            PeerKey::of("127.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn the_peer_table_bounds_each_peer_and_forgets_closed_connections() {
        let table = Arc::new(PeerTable::default());
        let one: IpAddr = "127.0.0.2".parse().unwrap();
        let other: IpAddr = "127.0.0.1".parse().unwrap();
        let held: Vec<PeerSlot> = (0..3).map(|_| table.enter(one, 3).unwrap()).collect();
        assert!(table.enter(one, 3).is_none());
        let o = table.enter(other, 3).unwrap();
        drop(held);
        assert!(table.enter(one, 3).is_some());
        drop(o);
        assert!(table.open.lock().unwrap().is_empty());
    }
}
