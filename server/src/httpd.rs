//! A bounded HTTP/1.1 server: hyper on a small tokio runtime, handing complete requests to a
//! blocking handler.
//!
//! The limits are checked before the handler sees anything: the number and size of header
//! fields and the length of the request target (answered by [`Handler::reject`]), the
//! declared `Content-Length` against the body limit (`413` without reading a byte of the
//! body), and the body actually read (a chunked body is read with the same bound). hyper adds
//! its own outer limits (a head larger than [`MAX_HEAD_BYTES`] or with more than
//! [`HARD_MAX_HEADERS`] fields is `431`; a malformed `Content-Length` is `400`), a timeout for
//! reading the head, and closes a connection whose body was not read instead of draining it.
//!
//! Why not tiny_http 0.12: when a handler answers without reading the body (the `413`
//! contract), tiny_http drains the rest on drop and first allocates a buffer of the whole
//! declared length, so `Content-Length: 100000000000` aborts the process; it also reads
//! header lines without a bound and has no timeouts.
//!
//! [`HttpServer::shutdown`] stops accepting, lets every request in progress finish and be
//! answered (up to a grace period), then closes the idle connections.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::{watch, Semaphore};

use crate::log;

/// hyper's own bound on the size of a request head.
pub const MAX_HEAD_BYTES: usize = 128 * 1024;
/// hyper's own bound on the number of header fields.
pub const HARD_MAX_HEADERS: usize = 200;

/// What the server accepts.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Most header fields.
    pub max_headers: usize,
    /// Largest header field (name, `: `, value).
    pub max_header_bytes: usize,
    /// Longest request target (path and query).
    pub max_target_bytes: usize,
    /// Time allowed to send the request head.
    pub header_timeout: Duration,
    /// Time allowed to send the request body.
    pub body_timeout: Duration,
    /// Most connections open at once (further ones wait in the listen backlog).
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_body_bytes: 1024 * 1024,
            max_headers: 100,
            max_header_bytes: 8 * 1024,
            max_target_bytes: 8 * 1024,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            max_connections: 1024,
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
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let local = std_listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .max_blocking_threads(64)
            .thread_name("http")
            .enable_all()
            .build()?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener)?
        };
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

async fn accept_loop(
    listener: tokio::net::TcpListener,
    limits: Arc<HttpLimits>,
    handler: Arc<dyn Handler>,
    mut stop: watch::Receiver<bool>,
) -> GracefulShutdown {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
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
        let conn = builder.serve_connection(TokioIo::new(stream), service);
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
            drop(permit);
        });
    }
    graceful
}

fn head(method: &str, target: &str, remote: SocketAddr) -> RequestHead {
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
    }
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
    let reject = |why: Rejection| {
        let h = Arc::clone(&handler);
        let hd = head(&method, &target, remote);
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
