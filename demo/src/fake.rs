//! Fake peers on 127.0.0.1 for the demo and the tests: source applications that receive
//! pushes and webhook receivers that receive deliveries. Each records every request it got
//! and answers from a script (default: success), which can be changed while it runs.
//!
//! A source answers `201 {"id": "<name>-<n>"}` to a create and `200 {"id": <remoteId>}` to an
//! update; a webhook receiver answers `200 ok`.
//!
//! [`providers`] has fake QuickBooks, Xero, HubSpot and Shopify APIs for the provider
//! connectors, and a fake token broker.

pub mod providers;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use writesync_server::httpd::{
    Handler, HttpLimits, HttpRequest, HttpResponse, HttpServer, Rejection, RequestHead,
};
use writesync_server::state::now_ms;

/// One request a fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Method.
    pub method: String,
    /// Path with query.
    pub path: String,
    /// Header fields (names lowercase).
    pub headers: Vec<(String, String)>,
    /// Body as text.
    pub body: String,
    /// When it arrived (Unix ms).
    pub at_ms: i64,
    /// The status the fake answered.
    pub answered: u16,
}

impl Received {
    /// The first value of a header (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// An answer a fake gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
}

impl Reply {
    /// A status with a short text body.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: format!("status {status} from the fake"),
        }
    }
    /// Builder: add a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// What kind of peer a fake plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A source application receiving pushes.
    Source,
    /// A webhook endpoint.
    WebhookReceiver,
}

#[derive(Debug, Default)]
struct Script {
    /// Answers for the next requests, in order.
    queued: VecDeque<Reply>,
    /// An answer for every request (after the queue) until cleared.
    always: Option<Reply>,
    /// Next remote id number.
    next_id: u64,
    /// How long to wait before answering.
    delay: Duration,
}

#[derive(Debug)]
struct Shared {
    name: String,
    role: Role,
    received: Mutex<Vec<Received>>,
    changed: Condvar,
    script: Mutex<Script>,
}

/// Wait until `pred` holds for what a fake has `received` (signalled on `changed` after each
/// request), at most `timeout`. Shared by the fake sources and the fake providers.
fn wait_for(
    received: &Mutex<Vec<Received>>,
    changed: &Condvar,
    timeout: Duration,
    pred: impl Fn(&[Received]) -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    let mut got = lock(received);
    loop {
        if pred(&got) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        got = changed
            .wait_timeout(got, deadline - now)
            .map(|(g, _)| g)
            .unwrap_or_else(|p| p.into_inner().0);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn answer(&self, req: &HttpRequest) -> Reply {
        let mut script = lock(&self.script);
        if let Some(r) = script.queued.pop_front() {
            return r;
        }
        if let Some(r) = &script.always {
            return r.clone();
        }
        match self.role {
            Role::WebhookReceiver => Reply {
                status: 200,
                headers: Vec::new(),
                body: "ok".into(),
            },
            Role::Source => {
                let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                match body.get("remoteId").and_then(Value::as_str) {
                    Some(rid) => Reply {
                        status: 200,
                        headers: vec![("Content-Type".into(), "application/json".into())],
                        body: json!({"id": rid}).to_string(),
                    },
                    None => {
                        script.next_id += 1;
                        Reply {
                            status: 201,
                            headers: vec![("Content-Type".into(), "application/json".into())],
                            body: json!({"id": format!("{}-{}", self.name, script.next_id)})
                                .to_string(),
                        }
                    }
                }
            }
        }
    }
}

impl Handler for Shared {
    fn handle(&self, req: HttpRequest) -> HttpResponse {
        let delay = lock(&self.script).delay;
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let reply = self.answer(&req);
        let rec = Received {
            method: req.method.clone(),
            path: req.target.clone(),
            headers: req.headers.clone(),
            body: String::from_utf8_lossy(&req.body).into_owned(),
            at_ms: now_ms(),
            answered: reply.status,
        };
        lock(&self.received).push(rec);
        self.changed.notify_all();
        let mut resp = HttpResponse {
            status: reply.status,
            headers: reply.headers,
            body: reply.body.into_bytes(),
        };
        if !resp
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            resp.headers
                .push(("Content-Type".into(), "text/plain".into()));
        }
        resp
    }

    fn reject(&self, _head: RequestHead, why: Rejection) -> HttpResponse {
        HttpResponse::new(400, "text/plain", format!("refused: {why:?}"))
    }
}

/// A fake peer listening on 127.0.0.1.
#[derive(Debug)]
pub struct FakeServer {
    shared: Arc<Shared>,
    http: Option<HttpServer>,
    addr: SocketAddr,
}

impl FakeServer {
    /// A fake source application named `name` (its remote ids start with the name).
    pub fn source(name: &str) -> std::io::Result<FakeServer> {
        FakeServer::start(name, Role::Source)
    }

    /// A fake webhook endpoint.
    pub fn webhook_receiver(name: &str) -> std::io::Result<FakeServer> {
        FakeServer::start(name, Role::WebhookReceiver)
    }

    fn start(name: &str, role: Role) -> std::io::Result<FakeServer> {
        let shared = Arc::new(Shared {
            name: name.to_string(),
            role,
            received: Mutex::new(Vec::new()),
            changed: Condvar::new(),
            script: Mutex::new(Script::default()),
        });
        let handler: Arc<dyn Handler> = shared.clone();
        let http = HttpServer::bind("127.0.0.1:0", HttpLimits::default(), handler, 1)?;
        let addr = http.local_addr();
        Ok(FakeServer {
            shared,
            http: Some(http),
            addr,
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://localhost:PORT{path}`: the same fake under a name instead of an address.
    pub fn localhost_url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.addr.port())
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.shared.received).clone()
    }

    /// How many requests were received.
    pub fn count(&self) -> usize {
        lock(&self.shared.received).len()
    }

    /// Answer the next `n` requests with `status`.
    pub fn fail_next(&self, n: usize, status: u16) {
        let mut s = lock(&self.shared.script);
        for _ in 0..n {
            s.queued.push_back(Reply::status(status));
        }
    }

    /// Answer the next requests with these replies, in order.
    pub fn queue(&self, replies: Vec<Reply>) {
        lock(&self.shared.script).queued.extend(replies);
    }

    /// Answer every request with `reply` (after the queue), or go back to success with `None`.
    pub fn set_always(&self, reply: Option<Reply>) {
        lock(&self.shared.script).always = reply;
    }

    /// Wait `delay` before answering each request (a slow peer).
    pub fn set_delay(&self, delay: Duration) {
        lock(&self.shared.script).delay = delay;
    }

    /// Wait until `pred` holds for the requests received, at most `timeout`.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&[Received]) -> bool) -> bool {
        wait_for(&self.shared.received, &self.shared.changed, timeout, pred)
    }

    /// Stop listening (also done on drop).
    pub fn stop(mut self) {
        if let Some(h) = self.http.take() {
            h.shutdown(Duration::from_secs(2));
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(h) = self.http.take() {
            h.shutdown(Duration::from_secs(2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_records_and_answers() {
        let f = FakeServer::source("acc").unwrap();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        let mut r = agent.post(&f.url("/push")).send("{\"a\":1}").unwrap();
        assert_eq!(r.status().as_u16(), 201);
        let body = r.body_mut().read_to_string().unwrap();
        assert!(body.contains("acc-1"), "{body}");
        f.fail_next(1, 503);
        let r = agent.post(&f.url("/push")).send("{}").unwrap();
        assert_eq!(r.status().as_u16(), 503);
        assert!(f.wait_until(Duration::from_secs(1), |g| g.len() == 2));
        assert_eq!(f.received()[0].json()["a"], 1);
        assert_eq!(f.received()[1].answered, 503);
    }
}
