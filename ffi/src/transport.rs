//! The built-in HTTP transport of `writesync_run_due`: performs one push or webhook delivery
//! with ureq and turns what happened into an [`Outcome`].
//!
//! The SSRF rules are the server's: the host name is resolved, every resolved address that
//! [`TargetPolicy::allows`] refuses is dropped, and ureq connects only to what is left, so the
//! check applies to the address actually connected to (no second lookup that a rebinding DNS
//! server could answer differently). When nothing is left the outcome is a permanent error
//! (the push fails at once and is not retried). Proxies are off (a proxy would be the address
//! connected to), redirects are not followed (a `3xx` is the answer), every request has a
//! connect and an overall timeout, and at most [`MAX_BODY_BYTES`] of an answer are read.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};
use writesync_core::net::TargetPolicy;
use writesync_core::{OutboundRequest, Outcome};

/// How much of an answer body is read.
pub(crate) const MAX_BODY_BYTES: u64 = 64 * 1024;

/// What the transport needs: the address policy and the timeouts.
#[derive(Debug, Clone)]
pub(crate) struct TransportConfig {
    /// Which restricted addresses may be connected to.
    pub(crate) policy: TargetPolicy,
    /// The overall time of one request (resolve, connect, send, read the answer).
    pub(crate) timeout: Duration,
    /// The time to open the connection.
    pub(crate) connect_timeout: Duration,
}

type Lookup = Option<std::io::Result<Vec<SocketAddr>>>;

/// Resolve `host_port` on a helper thread, waiting at most `limit`.
///
/// ureq's own resolver waits on a channel, which makes the Rust runtime register the calling
/// (foreign) thread and keep an allocation for it until that thread exits; valgrind reports it
/// as possibly lost for a C program's main thread. A condition variable does not.
fn lookup(host_port: String, limit: Duration) -> Result<Vec<SocketAddr>, ureq::Error> {
    let slot: Arc<(Mutex<Lookup>, Condvar)> = Arc::new((Mutex::new(None), Condvar::new()));
    let theirs = slot.clone();
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
            found.map_err(ureq::Error::Io)
        }
        // The lookup goes on without us; the thread ends by itself.
        None => Err(ureq::Error::Timeout(ureq::Timeout::Resolve)),
    }
}

/// A resolver that keeps only the addresses the policy allows, and remembers why it refused
/// when none is left.
#[derive(Debug)]
struct PolicyResolver {
    policy: TargetPolicy,
    refused: Arc<Mutex<Option<String>>>,
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
        let all = lookup(format!("{}:{port}", authority.host()), *timeout.after)?;
        let mut allowed = self.empty();
        let mut refused = Vec::new();
        for addr in &all {
            if self.policy.allows(addr.ip()) {
                // ureq keeps at most 16 addresses.
                if allowed.len() < 16 {
                    allowed.push(*addr);
                }
            } else {
                refused.push(addr.ip().to_string());
            }
        }
        if allowed.is_empty() {
            let reason = format!(
                "refused: {} resolves only to refused addresses ({}: loopback, private, \
                 link-local or reserved; allow them with allowTargetCidrs)",
                uri.host().unwrap_or("the host"),
                refused.join(", ")
            );
            if let Ok(mut slot) = self.refused.lock() {
                *slot = Some(reason.clone());
            }
            return Err(ureq::Error::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                reason,
            )));
        }
        Ok(allowed)
    }
}

fn headers_of(response: &ureq::http::Response<ureq::Body>) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in response.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        out.entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    out
}

/// Perform one outbound request.
pub(crate) fn perform(config: &TransportConfig, request: &OutboundRequest) -> Outcome {
    let refused = Arc::new(Mutex::new(None));
    let agent_config = ureq::config::Config::builder()
        .proxy(None)
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(config.timeout))
        .timeout_connect(Some(config.connect_timeout))
        .user_agent("writesync-ffi")
        .build();
    let agent = ureq::Agent::with_parts(
        agent_config,
        DefaultConnector::default(),
        PolicyResolver {
            policy: config.policy.clone(),
            refused: refused.clone(),
        },
    );
    let mut builder = match request.method.as_str() {
        "POST" => agent.post(&request.url),
        "PUT" => agent.put(&request.url),
        "PATCH" => agent.patch(&request.url),
        other => {
            return Outcome::Error {
                error: format!("unsupported method {other}"),
                permanent: true,
            }
        }
    };
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    match builder.send(request.body.as_bytes()) {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let headers = headers_of(&response);
            let mut bytes = Vec::new();
            // A body cut short still leaves the status, which is what counts.
            let _ = response
                .body_mut()
                .as_reader()
                .take(MAX_BODY_BYTES)
                .read_to_end(&mut bytes);
            Outcome::Response {
                status,
                headers,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            }
        }
        Err(e) => {
            let reason = refused.lock().ok().and_then(|mut slot| slot.take());
            match (reason, e) {
                (Some(reason), _) => Outcome::Error {
                    error: reason,
                    permanent: true,
                },
                (None, e @ (ureq::Error::BadUri(_) | ureq::Error::Http(_))) => Outcome::Error {
                    error: format!("cannot send to {}: {e}", request.url),
                    permanent: true,
                },
                (None, e) => Outcome::Error {
                    error: e.to_string(),
                    permanent: false,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(url: &str) -> OutboundRequest {
        OutboundRequest {
            method: "POST".into(),
            url: url.into(),
            headers: BTreeMap::new(),
            body: "{}".into(),
        }
    }

    fn config(allowed: &[&str]) -> TransportConfig {
        TransportConfig {
            policy: TargetPolicy {
                allowed: allowed
                    .iter()
                    .map(|c| writesync_core::net::Cidr::parse(c).unwrap())
                    .collect(),
            },
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
        }
    }

    #[test]
    fn refuses_loopback_names_and_literals_permanently() {
        for url in [
            "http://localhost:9/push",
            "http://127.0.0.1:9/push",
            "http://[::1]:9/",
        ] {
            match perform(&config(&[]), &post(url)) {
                Outcome::Error { error, permanent } => {
                    assert!(permanent, "{url}: {error}");
                    assert!(error.starts_with("refused"), "{url}: {error}");
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn talks_to_an_allowed_loopback_server() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while !String::from_utf8_lossy(&seen).contains("{}") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
            }
            let big = "x".repeat(100_000);
            write!(
                s,
                "HTTP/1.1 503 Busy\r\nRetry-After: 7\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{big}",
                big.len()
            )
            .unwrap();
            String::from_utf8_lossy(&seen).into_owned()
        });
        let outcome = perform(
            &config(&["127.0.0.0/8"]),
            &post(&format!("http://127.0.0.1:{port}/push")),
        );
        let seen = server.join().unwrap();
        assert!(seen.starts_with("POST /push HTTP/1.1"), "{seen}");
        match outcome {
            Outcome::Response {
                status,
                headers,
                body,
            } => {
                assert_eq!(status, 503);
                assert_eq!(headers.get("retry-after").map(String::as_str), Some("7"));
                assert_eq!(body.len() as u64, MAX_BODY_BYTES);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn connection_errors_are_retryable() {
        // Bind then drop a listener: the port is (almost certainly) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        match perform(
            &config(&["127.0.0.0/8"]),
            &post(&format!("http://127.0.0.1:{port}/")),
        ) {
            Outcome::Error { permanent, .. } => assert!(!permanent),
            other => panic!("{other:?}"),
        }
    }
}
