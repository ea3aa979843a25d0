//! HTTP/1.1 on hyper: one keep-alive client connection, a pool of writers that share a
//! count of requests, and a small server that hands each request to a function.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, HOST};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::stats::Clock;

/// Any error of the tool.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

/// The longest any single request may take before it counts as failed.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer or request body read.
const MAX_BODY: usize = 1 << 20;

/// Header fields of one request.
pub(crate) type Headers = Vec<(HeaderName, HeaderValue)>;

/// One keep-alive HTTP/1.1 connection.
#[derive(Debug)]
pub(crate) struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
}

impl Conn {
    /// Connect to `addr` (TCP_NODELAY, as the server sets it).
    pub(crate) async fn open(addr: SocketAddr) -> Result<Conn, Error> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Ends when the sender is dropped or the peer closes; nothing to report.
            let _ = conn.await;
        });
        Ok(Conn {
            sender,
            host: HeaderValue::from_str(&addr.to_string())?,
        })
    }

    /// Send one request and read the whole answer: status and body.
    pub(crate) async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: Headers,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), Error> {
        let exchange = async {
            self.sender.ready().await?;
            let mut req = Request::builder()
                .method(method)
                .uri(path)
                .body(Full::new(body))?;
            let h = req.headers_mut();
            h.insert(HOST, self.host.clone());
            for (k, v) in headers {
                h.append(k, v);
            }
            let resp = self.sender.send_request(req).await?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await?
                .to_bytes();
            Ok::<_, Error>((status, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| Error::from("request timed out"))?
    }

    /// A JSON request; status and parsed answer (`Null` when it is not JSON).
    pub(crate) async fn json(
        &mut self,
        method: Method,
        path: &str,
        auth: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(StatusCode, serde_json::Value), Error> {
        let mut headers = vec![(hyper::header::AUTHORIZATION, HeaderValue::from_str(auth)?)];
        let bytes = match body {
            Some(b) => {
                headers.push((
                    hyper::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ));
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        let (status, answer) = self.send(method, path, headers, bytes).await?;
        let value = serde_json::from_slice(&answer).unwrap_or(serde_json::Value::Null);
        Ok((status, value))
    }
}

/// What the writers send: for request number `index`, sent at `sent_us` on the run's
/// clock, its varying header fields and body. Fixed fields go in `headers`.
pub(crate) struct Plan {
    /// Method of every request.
    pub method: Method,
    /// Path of every request.
    pub path: String,
    /// Header fields of every request.
    pub headers: Headers,
    /// The status that counts as success.
    pub expect: StatusCode,
    /// Varying header fields and the body.
    pub make: Box<dyn Fn(usize, u64) -> (Headers, Bytes) + Send + Sync>,
}

/// One request of a writer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// When it was sent.
    pub sent_us: u64,
    /// When its answer was read.
    pub answered_us: u64,
    /// Whether the answer had the expected status.
    pub ok: bool,
}

/// What a pool of writers did.
#[derive(Debug, Default)]
pub(crate) struct Run {
    /// Every request, in no particular order.
    pub samples: Vec<Sample>,
    /// Requests without an answer (connection error, timeout).
    pub failed: usize,
    /// The first few unexpected answers and errors.
    pub problems: Vec<String>,
}

impl Run {
    /// When the first request was sent and the last answer read.
    pub(crate) fn span_us(&self) -> Option<(u64, u64)> {
        let first = self.samples.iter().map(|s| s.sent_us).min()?;
        let last = self.samples.iter().map(|s| s.answered_us).max()?;
        Some((first, last))
    }

    /// Requests answered with the expected status.
    pub(crate) fn ok(&self) -> usize {
        self.samples.iter().filter(|s| s.ok).count()
    }
}

/// Send requests `0..total` from `clients` keep-alive connections, each request as soon as
/// its connection's previous one was answered (a closed loop: no pacing). No request is
/// started after `deadline`.
pub(crate) async fn run_writers(
    addr: SocketAddr,
    clients: usize,
    total: usize,
    plan: Arc<Plan>,
    clock: Clock,
    deadline: Instant,
) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients.max(1) {
        let (next, plan) = (Arc::clone(&next), Arc::clone(&plan));
        tasks.push(tokio::spawn(async move {
            let mut run = Run::default();
            let mut conn: Option<Conn> = None;
            loop {
                if Instant::now() > deadline {
                    note(&mut run.problems, "stopped at the deadline".into());
                    break;
                }
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= total {
                    break;
                }
                let c = match conn.as_mut() {
                    Some(c) => c,
                    None => match Conn::open(addr).await {
                        Ok(c) => conn.insert(c),
                        Err(e) => {
                            run.failed += 1;
                            note(&mut run.problems, format!("connect: {e}"));
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let sent_us = clock.us();
                let (varying, body) = (plan.make)(index, sent_us);
                let mut headers = plan.headers.clone();
                headers.extend(varying);
                headers.push((CONTENT_LENGTH, HeaderValue::from(body.len())));
                match c.send(plan.method.clone(), &plan.path, headers, body).await {
                    Ok((status, answer)) => {
                        let ok = status == plan.expect;
                        if !ok {
                            note(
                                &mut run.problems,
                                format!("{status}: {}", String::from_utf8_lossy(&answer)),
                            );
                        }
                        run.samples.push(Sample {
                            sent_us,
                            answered_us: clock.us(),
                            ok,
                        });
                    }
                    Err(e) => {
                        run.failed += 1;
                        note(&mut run.problems, e.to_string());
                        conn = None;
                    }
                }
            }
            run
        }));
    }
    let mut all = Run::default();
    for t in tasks {
        match t.await {
            Ok(r) => {
                all.samples.extend(r.samples);
                all.failed += r.failed;
                for p in r.problems {
                    note(&mut all.problems, p);
                }
            }
            Err(e) => note(&mut all.problems, format!("writer task: {e}")),
        }
    }
    all
}

fn note(problems: &mut Vec<String>, p: String) {
    if problems.len() < 5 {
        problems.push(p);
    }
}

/// What a [`serve`]d server does with one request: its method, path and body in, an answer
/// out.
pub(crate) type Respond = dyn Fn(&Method, &str, Bytes) -> Response<Full<Bytes>> + Send + Sync;

/// Serve HTTP/1.1 on 127.0.0.1 (a free port) until the handle is aborted; each request body
/// is read whole (at most 1 MiB) and passed to `respond`.
pub(crate) async fn serve(respond: Arc<Respond>) -> Result<(SocketAddr, JoinHandle<()>), Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let respond = Arc::clone(&respond);
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let respond = Arc::clone(&respond);
                async move {
                    let (parts, body) = req.into_parts();
                    let resp = match Limited::new(body, MAX_BODY).collect().await {
                        Ok(b) => respond(&parts.method, parts.uri.path(), b.to_bytes()),
                        Err(_) => {
                            let mut r = Response::new(Full::new(Bytes::from_static(b"bad body")));
                            *r.status_mut() = StatusCode::BAD_REQUEST;
                            r
                        }
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((addr, task))
}

/// An answer with a status and a body.
pub(crate) fn answer(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    r
}
