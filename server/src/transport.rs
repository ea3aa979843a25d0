//! Outbound HTTP for pushes and webhook deliveries: a ureq agent with connect and overall
//! timeouts, no proxy, no redirects (a `3xx` is the answer), a bounded read of the answer,
//! and the address policy applied to the address actually connected to.
//!
//! The policy is enforced twice: the resolver drops every resolved address that
//! [`TargetPolicy::allows`] refuses (and fails with a "refused address" error when none is
//! left), and the TCP connector checks each address again before connecting and the peer
//! address of the socket after connecting. A refusal is reported to the engine as
//! `Outcome::Error { permanent: true }`, which fails a push at once.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, RustlsConnector,
    Transport as UreqTransport,
};
use writesync_core::net::TargetPolicy;
use writesync_core::{OutboundRequest, Outcome};

/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default overall timeout of one request (connect, send, answer).
pub const DEFAULT_OVERALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an answer body is read.
pub const MAX_ANSWER_BYTES: u64 = 64 * 1024;
/// Idle keep-alive connections kept per origin: more than the worker's default senders
/// (ureq keeps 3, so the other senders to one origin opened a new connection per request).
pub const MAX_IDLE_PER_ORIGIN: usize = 16;
/// Idle keep-alive connections kept in all (within `serve`'s reserved file descriptors).
pub const MAX_IDLE: usize = 64;

/// How the transport behaves.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Which restricted addresses may be reached.
    pub policy: TargetPolicy,
    /// Connect timeout (per attempt, capped by the overall timeout).
    pub connect_timeout: Duration,
    /// Overall timeout of one request.
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
            "refused address: {} resolves only to {} (loopback, private, link-local or reserved); \
             allow the range with --allow-target-cidr",
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

/// A resolver that keeps only the addresses the policy allows.
#[derive(Debug)]
struct PolicyResolver {
    policy: TargetPolicy,
    inner: DefaultResolver,
}

impl Resolver for PolicyResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        // An IP address needs no lookup (ureq's resolver would start a thread to look it up
        // on every request, reused connection or not).
        let all = match literal_addr(uri) {
            Some(addr) => {
                let mut one = self.inner.empty();
                one.push(addr);
                one
            }
            None => self.inner.resolve(uri, config, timeout)?,
        };
        let mut kept = self.inner.empty();
        let mut dropped = Vec::new();
        for a in all.iter() {
            if self.policy.allows(a.ip()) {
                kept.push(*a);
            } else {
                dropped.push(a.ip());
            }
        }
        if kept.is_empty() {
            return Err(refused(uri.host().unwrap_or(""), dropped));
        }
        Ok(kept)
    }
}

/// The address of a URL whose host is an IP address (`http://127.0.0.1:8080/`,
/// `https://[::1]/`), with the scheme's default port when none is given.
fn literal_addr(uri: &ureq::http::Uri) -> Option<SocketAddr> {
    let host = uri.host()?;
    let ip: IpAddr = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse()
        .ok()?;
    let port = uri.port_u16().or(match uri.scheme_str()? {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    })?;
    Some(SocketAddr::new(ip, port))
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
                    let peer: Option<SocketAddr> = stream.peer_addr().ok();
                    match peer {
                        Some(p) if self.policy.allows(p.ip()) => {}
                        Some(p) => {
                            let _ = stream.shutdown(std::net::Shutdown::Both);
                            return Err(refused(host, vec![p.ip()]));
                        }
                        None => {
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
        let data = &output[..end];
        self.stream
            .write_all(data)
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

/// Performs outbound requests for the worker.
#[derive(Debug, Clone)]
pub struct Transport {
    agent: ureq::Agent,
    max_answer_bytes: u64,
}

impl Transport {
    /// A transport with its own connection pool.
    pub fn new(config: &TransportConfig) -> Transport {
        let agent_config = ureq::config::Config::builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .user_agent(concat!("writesync/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(config.connect_timeout))
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
        let resolver = PolicyResolver {
            policy: config.policy.clone(),
            inner: DefaultResolver::default(),
        };
        Transport {
            agent: ureq::Agent::with_parts(agent_config, connector, resolver),
            max_answer_bytes: config.max_answer_bytes,
        }
    }

    /// Send one request and describe what happened. Never panics; every failure is an
    /// [`Outcome::Error`].
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
                    error: format!("cannot build the request: {e}"),
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
                let read = response
                    .body_mut()
                    .as_reader()
                    .take(self.max_answer_bytes)
                    .read_to_end(&mut bytes);
                if let Err(e) = read {
                    // The status line and headers arrived: that is the answer. A body cut
                    // short keeps what was read.
                    crate::log::debug(
                        "answer body cut short",
                        &[("error", serde_json::Value::String(e.to_string()))],
                    );
                }
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
    use super::*;
    use writesync_core::net::Cidr;

    fn req(url: &str) -> OutboundRequest {
        OutboundRequest {
            method: "POST".into(),
            url: url.into(),
            headers: BTreeMap::new(),
            body: "{}".into(),
        }
    }

    #[test]
    fn loopback_is_refused_without_policy() {
        let t = Transport::new(&TransportConfig::default());
        // Nothing listens there and nothing is sent: the resolver refuses before connecting.
        match t.send(&req("http://localhost:9/x")) {
            Outcome::Error { error, permanent } => {
                assert!(permanent, "{error}");
                assert!(error.contains("refused address"), "{error}");
            }
            o => panic!("{o:?}"),
        }
        match t.send(&req("http://127.0.0.1:9/x")) {
            Outcome::Error { error, permanent } => {
                assert!(permanent, "{error}");
                assert!(error.contains("refused address"), "{error}");
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn allowed_loopback_connection_errors_are_retryable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let t = loopback_transport();
        match t.send(&req(&format!("http://127.0.0.1:{port}/x"))) {
            Outcome::Error { permanent, .. } => assert!(!permanent),
            o => panic!("{o:?}"),
        }
    }

    fn loopback_transport() -> Transport {
        Transport::new(&TransportConfig {
            policy: TargetPolicy {
                allowed: vec![Cidr::parse("127.0.0.0/8").unwrap()],
            },
            ..TransportConfig::default()
        })
    }

    #[test]
    fn ip_hosts_need_no_lookup() {
        let addr = |u: &str| literal_addr(&u.parse::<ureq::http::Uri>().unwrap());
        assert_eq!(
            addr("http://127.0.0.1:8080/p"),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(addr("https://[::1]/p"), Some("[::1]:443".parse().unwrap()));
        assert_eq!(
            addr("http://10.0.0.1/p"),
            Some("10.0.0.1:80".parse().unwrap())
        );
        assert_eq!(addr("http://localhost:8080/p"), None);
        assert_eq!(addr("http://example.com/p"), None);
    }

    #[test]
    fn bad_urls_are_permanent() {
        let t = Transport::new(&TransportConfig::default());
        assert!(matches!(
            t.send(&req("not a url")),
            Outcome::Error {
                permanent: true,
                ..
            }
        ));
    }
}
