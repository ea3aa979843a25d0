//! The one outbound transport of every Rust host: pushes, webhook deliveries and token broker
//! requests go out through [`Transport::send`].
//!
//! - **Address policy, twice.** The resolver drops every resolved address that
//!   [`TargetPolicy::allows`] refuses (and fails with [`RefusedAddress`] when none is left);
//!   the TCP connector checks each address again before connecting and checks the peer
//!   address of the socket it opened, so the rule applies to the address actually connected
//!   to, whatever a (rebinding) name server answered. A refusal is
//!   `Outcome::Error { permanent: true }`: the push fails at once and is not retried.
//! - **No proxy** (a proxy would be the address connected to) and **no redirects** (a `3xx`
//!   is the answer).
//! - **Timeouts**: [`DEFAULT_CONNECT_TIMEOUT`] to open a connection and
//!   [`DEFAULT_OVERALL_TIMEOUT`] for the whole request (resolve, connect, send, answer),
//!   both configurable ([`TransportConfig`]). These are the defaults of `writesync serve`,
//!   of the C API's `writesync_run_due` and of [`crate::native::run_due`] hosts alike.
//! - **Bounded answers**: at most [`MAX_ANSWER_BYTES`] of a body are read; a body cut short
//!   keeps what was read (the status is what counts).
//! - **Names looked up once per [`NAME_TTL`]**: a name's addresses are kept (at most
//!   [`MAX_NAMES`] names) and reused by every request to it within that time, pooled
//!   connection or not, instead of a lookup per request. The policy is applied to them on
//!   every request, and the connector checks the address connected to as always, so a kept
//!   answer cannot reach a refused address. Failed lookups are not kept.
//! - **Valgrind-friendly name lookup**: names are resolved on a helper thread that hands the
//!   result back through a mutex and a condition variable, never a channel: waiting on a
//!   channel makes the Rust runtime register the calling thread (a C program's own thread,
//!   for the C API) and keep an allocation for it until that thread exits, which valgrind
//!   reports as possibly lost.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, RustlsConnector,
    Transport as UreqTransport,
};
use writesync_core::net::TargetPolicy;
use writesync_core::{OutboundRequest, Outcome};

/// Default time to open a connection (capped by the overall timeout).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default overall time of one request: resolve, connect, send, read the answer.
pub const DEFAULT_OVERALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an answer body is read (64 KiB).
pub const MAX_ANSWER_BYTES: u64 = 64 * 1024;
/// Idle keep-alive connections kept per origin: at least the server's senders and the
/// per-origin cap (ureq keeps 3, so the other senders to one origin opened a new connection
/// per request).
pub const MAX_IDLE_PER_ORIGIN: usize = 16;
/// Idle keep-alive connections kept in all (within the server's reserved file descriptors).
pub const MAX_IDLE: usize = 64;
/// The most addresses of one name that are tried (ureq's own bound).
const MAX_ADDRESSES: usize = 16;
/// How long a name's looked-up addresses are reused. The system resolver does not tell a
/// record's TTL; 30 s is short against the minutes most webhook and API hosts publish, and
/// long against a sender's request rate.
pub const NAME_TTL: Duration = Duration::from_secs(30);
/// The most names whose addresses are kept at once.
pub const MAX_NAMES: usize = 256;

/// How the transport behaves.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Which restricted addresses may be reached (`--allow-target-cidr`, `allowTargetCidrs`).
    pub policy: TargetPolicy,
    /// Time to open a connection (per attempt, capped by the overall timeout).
    pub connect_timeout: Duration,
    /// Overall time of one request.
    pub overall_timeout: Duration,
    /// How much of an answer body is kept.
    pub max_answer_bytes: u64,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            policy: TargetPolicy::default(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            overall_timeout: DEFAULT_OVERALL_TIMEOUT,
            max_answer_bytes: MAX_ANSWER_BYTES,
        }
    }
}

/// The error of a connection that the address policy refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedAddress {
    /// The host of the URL.
    pub host: String,
    /// The addresses that were refused.
    pub addrs: Vec<IpAddr>,
}

impl fmt::Display for RefusedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.addrs.iter().map(ToString::to_string).collect();
        write!(
            f,
            "refused address: {} resolves only to {} (loopback, private, link-local or \
             reserved); allow the range with --allow-target-cidr (allowTargetCidrs in the C \
             API's configuration)",
            self.host,
            list.join(", ")
        )
    }
}

impl std::error::Error for RefusedAddress {}

fn refused(host: &str, addrs: Vec<IpAddr>) -> ureq::Error {
    ureq::Error::Other(Box::new(RefusedAddress {
        host: host.to_string(),
        addrs,
    }))
}

type Lookup = Option<std::io::Result<Vec<SocketAddr>>>;

/// Resolve `host_port` on a helper thread, waiting at most `limit` (see the module docs for
/// why not a channel).
fn lookup(host_port: String, limit: Duration) -> Result<Vec<SocketAddr>, ureq::Error> {
    let slot: Arc<(Mutex<Lookup>, Condvar)> = Arc::new((Mutex::new(None), Condvar::new()));
    let theirs = Arc::clone(&slot);
    let worker = std::thread::Builder::new()
        .name("writesync-resolve".into())
        .spawn(move || {
            let found = host_port.to_socket_addrs().map(Iterator::collect);
            let (lock, ready) = &*theirs;
            if let Ok(mut s) = lock.lock() {
                *s = Some(found);
            }
            ready.notify_all();
        })
        .map_err(ureq::Error::Io)?;
    let (lock, ready) = &*slot;
    let poisoned = || ureq::Error::Io(std::io::Error::other("name resolution failed"));
    let guard = lock.lock().map_err(|_| poisoned())?;
    let (mut guard, _) = ready
        .wait_timeout_while(guard, limit, |s| s.is_none())
        .map_err(|_| poisoned())?;
    match guard.take() {
        Some(found) => {
            drop(guard);
            let _ = worker.join();
            found.map_err(|e| match e.kind() {
                std::io::ErrorKind::InvalidInput => ureq::Error::Io(e),
                _ => ureq::Error::HostNotFound,
            })
        }
        // The lookup goes on without us; the thread ends by itself.
        None => Err(ureq::Error::Timeout(ureq::Timeout::Resolve)),
    }
}

/// Looked-up addresses by `host:port`, each with the time it was looked up.
#[derive(Debug, Default)]
struct NameCache {
    names: BTreeMap<String, (Instant, Vec<SocketAddr>)>,
}

impl NameCache {
    /// The addresses of `name` looked up less than [`NAME_TTL`] before `now`.
    fn get(&self, name: &str, now: Instant) -> Option<Vec<SocketAddr>> {
        self.names
            .get(name)
            .filter(|(at, _)| now.saturating_duration_since(*at) < NAME_TTL)
            .map(|(_, addrs)| addrs.clone())
    }

    /// Keep `addrs` for `name`; when [`MAX_NAMES`] are kept, the expired ones go first, and
    /// all of them when none has expired.
    fn put(&mut self, name: String, addrs: Vec<SocketAddr>, now: Instant) {
        if self.names.len() >= MAX_NAMES && !self.names.contains_key(&name) {
            self.names
                .retain(|_, (at, _)| now.saturating_duration_since(*at) < NAME_TTL);
            if self.names.len() >= MAX_NAMES {
                self.names.clear();
            }
        }
        self.names.insert(name, (now, addrs));
    }
}

/// A resolver that keeps only the addresses the policy allows.
#[derive(Debug)]
struct PolicyResolver {
    policy: TargetPolicy,
    /// False only in tests that check the connector on its own.
    filter: bool,
    names: Mutex<NameCache>,
    /// Lookups started (shared with the [`Transport`], for tests and figures).
    lookups: Arc<AtomicU64>,
}

impl PolicyResolver {
    /// The addresses of `host_port`: kept ones while fresh, else looked up (and kept).
    fn addresses(
        &self,
        host_port: String,
        limit: Duration,
    ) -> Result<Vec<SocketAddr>, ureq::Error> {
        let now = Instant::now();
        if let Some(addrs) = self.names.lock().ok().and_then(|c| c.get(&host_port, now)) {
            return Ok(addrs);
        }
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let addrs = lookup(host_port.clone(), limit)?;
        if let Ok(mut c) = self.names.lock() {
            c.put(host_port, addrs.clone(), now);
        }
        Ok(addrs)
    }
}

/// The IP address a URL's host names literally (`127.0.0.1`, `[::1]`), if it is one.
fn literal_ip(host: &str) -> Option<IpAddr> {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse()
        .ok()
}

impl Resolver for PolicyResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        _config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(ureq::Error::BadUri(format!("{uri} is not an absolute URL")));
        };
        let port = match (authority.port_u16(), scheme.as_str()) {
            (Some(p), _) => p,
            (None, "http") => 80,
            (None, "https") => 443,
            (None, other) => return Err(ureq::Error::BadUri(format!("unknown scheme {other}"))),
        };
        // An IP address needs no lookup (which would start a thread on every request, reused
        // connection or not); a name is looked up, `[::1]` with its brackets.
        let all = match literal_ip(authority.host()) {
            Some(ip) => vec![SocketAddr::new(ip, port)],
            None => self.addresses(format!("{}:{port}", authority.host()), *timeout.after)?,
        };
        let mut kept = self.empty();
        let mut dropped = Vec::new();
        for addr in &all {
            if !self.filter || self.policy.allows(addr.ip()) {
                if kept.len() < MAX_ADDRESSES {
                    kept.push(*addr);
                }
            } else {
                dropped.push(addr.ip());
            }
        }
        if kept.is_empty() {
            if dropped.is_empty() {
                return Err(ureq::Error::HostNotFound);
            }
            return Err(refused(uri.host().unwrap_or(""), dropped));
        }
        Ok(kept)
    }
}

/// A TCP connector that connects only to allowed addresses and checks the peer address of
/// the socket it opened.
#[derive(Debug)]
struct PolicyTcpConnector {
    policy: TargetPolicy,
    connect_timeout: Duration,
}

impl Connector<()> for PolicyTcpConnector {
    type Out = GuardedTcp;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let host = details.uri.host().unwrap_or("");
        let timeout = match details.timeout.not_zero() {
            Some(t) => (*t).min(self.connect_timeout),
            None => self.connect_timeout,
        };
        let mut refused_addrs = Vec::new();
        let mut last_err: Option<std::io::Error> = None;
        for addr in details.addrs.iter() {
            if !self.policy.allows(addr.ip()) {
                refused_addrs.push(addr.ip());
                continue;
            }
            match TcpStream::connect_timeout(addr, timeout) {
                Ok(stream) => {
                    match stream.peer_addr() {
                        Ok(p) if self.policy.allows(p.ip()) => {}
                        Ok(p) => {
                            let _ = stream.shutdown(std::net::Shutdown::Both);
                            return Err(refused(host, vec![p.ip()]));
                        }
                        Err(_) => {
                            last_err = Some(std::io::Error::new(
                                std::io::ErrorKind::NotConnected,
                                "the connection closed at once",
                            ));
                            continue;
                        }
                    }
                    if details.config.no_delay() {
                        let _ = stream.set_nodelay(true);
                    }
                    let buffers = LazyBuffers::new(
                        details.config.input_buffer_size(),
                        details.config.output_buffer_size(),
                    );
                    return Ok(Some(GuardedTcp { stream, buffers }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return Err(ureq::Error::Timeout(ureq::Timeout::Connect));
                }
                Err(e) => last_err = Some(e),
            }
        }
        match last_err {
            Some(e) => Err(ureq::Error::Io(e)),
            None => Err(refused(host, refused_addrs)),
        }
    }
}

/// A plain TCP transport over a socket whose peer address passed the policy.
#[derive(Debug)]
struct GuardedTcp {
    stream: TcpStream,
    buffers: LazyBuffers,
}

fn io_error(e: std::io::Error, timeout: &NextTimeout) -> ureq::Error {
    match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
            ureq::Error::Timeout(timeout.reason)
        }
        _ => ureq::Error::Io(e),
    }
}

impl UreqTransport for GuardedTcp {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let timeout = timeout.for_write();
        if timeout.after.is_zero() {
            return Err(ureq::Error::Timeout(timeout.reason));
        }
        self.stream
            .set_write_timeout(timeout.not_zero().map(|d| *d))
            .map_err(ureq::Error::Io)?;
        let output = self.buffers.output();
        let end = amount.min(output.len());
        self.stream
            .write_all(&output[..end])
            .map_err(|e| io_error(e, &timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        if timeout.after.is_zero() {
            return Err(ureq::Error::Timeout(timeout.reason));
        }
        self.stream
            .set_read_timeout(timeout.not_zero().map(|d| *d))
            .map_err(ureq::Error::Io)?;
        let n = loop {
            let input = self.buffers.input_append_buf();
            match self.stream.read(input) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(e, &timeout)),
            }
        };
        self.buffers.input_appended(n);
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        // Open means: no error and nothing unexpected waiting to be read.
        if self.stream.set_nonblocking(true).is_err() {
            return false;
        }
        let mut buf = [0u8; 1];
        let open = matches!(
            self.stream.peek(&mut buf),
            Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock
        );
        self.stream.set_nonblocking(false).is_ok() && open
    }
}

/// Performs outbound requests. Cloning shares the connection pool.
#[derive(Debug, Clone)]
pub struct Transport {
    agent: ureq::Agent,
    max_answer_bytes: u64,
    lookups: Arc<AtomicU64>,
}

impl Transport {
    /// A transport with its own connection pool.
    pub fn new(config: &TransportConfig) -> Transport {
        Transport::build(config, true)
    }

    fn build(config: &TransportConfig, filter_at_resolve: bool) -> Transport {
        let agent_config = ureq::config::Config::builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .user_agent(concat!("writesync/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(config.connect_timeout.min(config.overall_timeout)))
            .timeout_global(Some(config.overall_timeout))
            .timeout_per_read(Some(config.overall_timeout))
            .max_response_header_size(32 * 1024)
            .max_idle_connections(MAX_IDLE)
            .max_idle_connections_per_host(MAX_IDLE_PER_ORIGIN)
            .build();
        let connector = PolicyTcpConnector {
            policy: config.policy.clone(),
            connect_timeout: config.connect_timeout,
        }
        .chain(RustlsConnector::default());
        let lookups = Arc::new(AtomicU64::new(0));
        let resolver = PolicyResolver {
            policy: config.policy.clone(),
            filter: filter_at_resolve,
            names: Mutex::new(NameCache::default()),
            lookups: Arc::clone(&lookups),
        };
        Transport {
            agent: ureq::Agent::with_parts(agent_config, connector, resolver),
            max_answer_bytes: config.max_answer_bytes,
            lookups,
        }
    }

    /// How many name lookups this transport (and its clones) started: one per name per
    /// [`NAME_TTL`] at most, however many requests go to it.
    pub fn name_lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }

    /// Send one request and describe what happened. Never panics; every failure is an
    /// [`Outcome::Error`], permanent for a refused address or an unusable URL.
    pub fn send(&self, req: &OutboundRequest) -> Outcome {
        let mut builder = ureq::http::Request::builder()
            .method(req.method.as_str())
            .uri(req.url.as_str());
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let request = match builder.body(req.body.as_bytes()) {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Error {
                    error: format!("cannot build the request to {}: {e}", req.url),
                    permanent: true,
                }
            }
        };
        match self.agent.run(request) {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let mut headers: BTreeMap<String, String> = BTreeMap::new();
                for (name, value) in response.headers() {
                    let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    headers
                        .entry(name.as_str().to_ascii_lowercase())
                        .and_modify(|old| {
                            old.push_str(", ");
                            old.push_str(&v);
                        })
                        .or_insert(v);
                }
                let mut bytes = Vec::new();
                // The status line and headers arrived: that is the answer. A body cut short
                // keeps what was read.
                let _ = response
                    .body_mut()
                    .as_reader()
                    .take(self.max_answer_bytes)
                    .read_to_end(&mut bytes);
                Outcome::Response {
                    status,
                    headers,
                    body: String::from_utf8_lossy(&bytes).into_owned(),
                }
            }
            Err(e) => error_outcome(e),
        }
    }
}

/// Map a ureq error to an outcome: a refused address or an unusable URL is permanent,
/// everything else (timeouts, connection errors, DNS failures) may heal and is retried.
fn error_outcome(e: ureq::Error) -> Outcome {
    match e {
        ureq::Error::Other(inner) => match inner.downcast_ref::<RefusedAddress>() {
            Some(r) => Outcome::Error {
                error: r.to_string(),
                permanent: true,
            },
            None => Outcome::Error {
                error: inner.to_string(),
                permanent: false,
            },
        },
        ureq::Error::BadUri(u) => Outcome::Error {
            error: format!("the URL cannot be used: {u}"),
            permanent: true,
        },
        ureq::Error::Http(h) => Outcome::Error {
            error: format!("the request cannot be sent: {h}"),
            permanent: true,
        },
        ureq::Error::Timeout(t) => Outcome::Error {
            error: format!("timeout: {t}"),
            permanent: false,
        },
        ureq::Error::HostNotFound => Outcome::Error {
            error: "host not found".to_string(),
            permanent: false,
        },
        ureq::Error::Io(io) => Outcome::Error {
            error: format!("connection error: {io}"),
            permanent: false,
        },
        other => Outcome::Error {
            error: other.to_string(),
            permanent: false,
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::net::TcpListener;
    use writesync_core::net::Cidr;

    /// A loopback server that takes one connection per answer, reads each request up to its
    /// `{}` body, writes the answer and closes; its port, and the first lines it read.
    fn answering(answers: Vec<String>) -> (u16, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let mut firsts = Vec::new();
            for answer in answers {
                let (mut s, _) = listener.accept().unwrap();
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !String::from_utf8_lossy(&seen).ends_with("{}") {
                    let n = s.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    seen.extend_from_slice(&buf[..n]);
                }
                let _ = s.write_all(answer.as_bytes());
                let text = String::from_utf8_lossy(&seen).into_owned();
                firsts.push(text.lines().next().unwrap_or("").to_string());
            }
            firsts
        });
        (port, server)
    }

    #[test]
    fn kept_names_expire_and_stay_bounded() {
        let t0 = Instant::now();
        let a: Vec<SocketAddr> = vec!["127.0.0.1:80".parse().unwrap()];
        let mut c = NameCache::default();
        c.put("h:80".into(), a.clone(), t0);
        assert_eq!(c.get("h:80", t0 + NAME_TTL / 2), Some(a.clone()));
        assert_eq!(c.get("h:80", t0 + NAME_TTL), None);
        assert_eq!(c.get("other:80", t0), None);
        // Full of fresh names: a new one starts over; with expired ones, only those go.
        let mut c = NameCache::default();
        for i in 0..MAX_NAMES {
            c.put(format!("n{i}:80"), a.clone(), t0);
        }
        assert_eq!(c.names.len(), MAX_NAMES);
        c.put("late:80".into(), a.clone(), t0 + NAME_TTL / 2);
        assert_eq!(c.names.len(), 1);
        for i in 0..MAX_NAMES - 1 {
            c.put(format!("n{i}:80"), a.clone(), t0 + NAME_TTL);
        }
        assert_eq!(c.names.len(), MAX_NAMES);
        c.put(
            "later:80".into(),
            a.clone(),
            t0 + NAME_TTL * 3 / 2 + Duration::from_secs(1),
        );
        // "late" (looked up at t0 + TTL/2) expired and went; the others stay.
        assert_eq!(c.names.len(), MAX_NAMES);
        assert!(!c.names.contains_key("late:80"));
    }

    #[test]
    fn a_name_is_looked_up_once_for_many_requests() {
        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let (port, server) = answering(vec![ok.to_string(); 3]);
        let t = Transport::new(&TransportConfig {
            policy: policy(&["127.0.0.0/8"]),
            ..TransportConfig::default()
        });
        for _ in 0..3 {
            match t.send(&req(&format!("http://localhost:{port}/push"))) {
                Outcome::Response { status, .. } => assert_eq!(status, 200),
                o => panic!("{o:?}"),
            }
        }
        server.join().unwrap();
        assert_eq!(t.name_lookups(), 1);
        // A clone shares the kept names (the server's senders use clones).
        let _ = t
            .clone()
            .send(&req(&format!("http://localhost:{port}/push")));
        assert_eq!(t.name_lookups(), 1);
    }

    #[test]
    fn ip_hosts_need_no_lookup() {
        assert_eq!(literal_ip("127.0.0.1"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(literal_ip("[::1]"), Some("::1".parse().unwrap()));
        assert_eq!(literal_ip("10.0.0.1"), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(literal_ip("localhost"), None);
        assert_eq!(literal_ip("example.com"), None);
        assert_eq!(literal_ip("[localhost]"), None);
    }

    fn req(url: &str) -> OutboundRequest {
        OutboundRequest {
            method: "POST".into(),
            url: url.into(),
            headers: BTreeMap::new(),
            body: "{}".into(),
        }
    }

    fn policy(allowed: &[&str]) -> TargetPolicy {
        TargetPolicy {
            allowed: allowed.iter().map(|c| Cidr::parse(c).unwrap()).collect(),
        }
    }

    fn refused_permanently(outcome: Outcome, what: &str) -> String {
        match outcome {
            Outcome::Error { error, permanent } => {
                assert!(permanent, "{what}: {error}");
                assert!(error.starts_with("refused address: "), "{what}: {error}");
                error
            }
            o => panic!("{what}: {o:?}"),
        }
    }

    /// A listener on 127.0.0.1 that must never see a connection.
    fn untouched_listener() -> (TcpListener, u16) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        (l, port)
    }

    fn assert_untouched(l: &TcpListener) {
        match l.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("a connection arrived: {other:?}"),
        }
    }

    #[test]
    fn a_name_resolving_to_loopback_is_refused_without_traffic() {
        let (l, port) = untouched_listener();
        // Loopback not allowed at all, or only another loopback address than the one the name
        // resolves to: refused either way, permanently, and nothing is sent.
        for allowed in [&[][..], &["127.0.0.2/32"][..], &["10.0.0.0/8"][..]] {
            let t = Transport::new(&TransportConfig {
                policy: policy(allowed),
                ..TransportConfig::default()
            });
            let e = refused_permanently(
                t.send(&req(&format!("http://localhost:{port}/push"))),
                "localhost",
            );
            assert!(e.contains("127.0.0.1"), "{e}");
            refused_permanently(
                t.send(&req(&format!("http://127.0.0.1:{port}/x"))),
                "literal",
            );
            refused_permanently(
                t.send(&req(&format!("http://[::1]:{port}/x"))),
                "v6 literal",
            );
        }
        assert_untouched(&l);
    }

    #[test]
    fn the_connector_refuses_the_connected_address_on_its_own() {
        // The resolver lets every address through here, as a name server answering
        // differently at connect time would: the connector still refuses before connecting.
        let (l, port) = untouched_listener();
        let t = Transport::build(
            &TransportConfig {
                policy: policy(&["127.0.0.2/32"]),
                ..TransportConfig::default()
            },
            false,
        );
        let e = refused_permanently(
            t.send(&req(&format!("http://localhost:{port}/push"))),
            "connector",
        );
        assert!(e.contains("localhost"), "{e}");
        assert_untouched(&l);
    }

    #[test]
    fn allowed_loopback_answers_are_bounded_and_redirects_not_followed() {
        let (port, server) = answering(vec![
            format!(
                "HTTP/1.1 503 Busy\r\nRetry-After: 7\r\nContent-Length: 100000\r\n\
                     Connection: close\r\n\r\n{}",
                "x".repeat(100_000)
            ),
            "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\
                 Connection: close\r\n\r\n"
                .to_string(),
        ]);
        let t = Transport::new(&TransportConfig {
            policy: policy(&["127.0.0.0/8"]),
            ..TransportConfig::default()
        });
        match t.send(&req(&format!("http://localhost:{port}/push"))) {
            Outcome::Response {
                status,
                headers,
                body,
            } => {
                assert_eq!(status, 503);
                assert_eq!(headers.get("retry-after").map(String::as_str), Some("7"));
                assert_eq!(body.len() as u64, MAX_ANSWER_BYTES);
            }
            o => panic!("{o:?}"),
        }
        match t.send(&req(&format!("http://127.0.0.1:{port}/push"))) {
            Outcome::Response { status, .. } => assert_eq!(status, 302),
            o => panic!("{o:?}"),
        }
        let firsts = server.join().unwrap();
        assert_eq!(firsts, ["POST /push HTTP/1.1", "POST /push HTTP/1.1"]);
    }

    #[test]
    fn connection_errors_are_retryable_and_bad_urls_permanent() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t = Transport::new(&TransportConfig {
            policy: policy(&["127.0.0.0/8"]),
            ..TransportConfig::default()
        });
        match t.send(&req(&format!("http://127.0.0.1:{port}/x"))) {
            Outcome::Error { permanent, .. } => assert!(!permanent),
            o => panic!("{o:?}"),
        }
        assert!(matches!(
            t.send(&req("not a url")),
            Outcome::Error {
                permanent: true,
                ..
            }
        ));
    }
}
