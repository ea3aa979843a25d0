//! Load helpers shared by `reliability_load.rs` and `benches/http_writes.rs`: compact sinks
//! on 127.0.0.1 (a source application that fails a given share of pushes, a webhook endpoint)
//! and a pool of writer threads that send pushing writes over keep-alive connections and
//! retry each unanswered write with its Idempotency-Key until it is answered.
//!
//! The sinks keep only what the checks need (sync id, Idempotency-Key, `webhook-id`, the
//! status answered), not whole requests, so that hundreds of thousands of them fit.

// Helpers shared by the test binaries through `mod common;`: `pub` is their API there.
#![allow(unreachable_pub)]
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use writesync_server::httpd::{
    Handler, HttpLimits, HttpRequest, HttpResponse, HttpServer, Rejection, RequestHead,
};

use super::common::{customer, try_call};

/// xorshift64*: a tiny seeded generator (the seed is printed by the tests).
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}

/// One push a source received.
#[derive(Debug, Clone)]
pub struct PushSeen {
    pub sync: String,
    pub key: String,
    pub answered: u16,
}

/// One delivery a webhook endpoint received.
#[derive(Debug, Clone)]
pub struct HookSeen {
    pub webhook_id: String,
    pub sync: String,
    pub answered: u16,
}

#[derive(Debug)]
enum Kind {
    /// A source that answers 503 to `fail_per_mille` of the pushes (seeded), 201 otherwise.
    Source { fail_per_mille: u64 },
    /// A webhook endpoint that always answers 200.
    Hooks,
}

#[derive(Debug)]
struct SinkState {
    name: String,
    kind: Kind,
    rng: Mutex<Rng>,
    pushes: Mutex<Vec<PushSeen>>,
    hooks: Mutex<Vec<HookSeen>>,
    next_id: AtomicU64,
}

fn header<'a>(r: &'a HttpRequest, name: &str) -> &'a str {
    r.header(name).unwrap_or("")
}

impl Handler for SinkState {
    fn handle(&self, r: HttpRequest) -> HttpResponse {
        match self.kind {
            Kind::Source { fail_per_mille } => {
                let fail = self.rng.lock().unwrap().next() % 1000 < fail_per_mille;
                let status = if fail { 503 } else { 201 };
                self.pushes.lock().unwrap().push(PushSeen {
                    sync: header(&r, "x-sync-id").to_string(),
                    key: header(&r, "idempotency-key").to_string(),
                    answered: status,
                });
                if fail {
                    return HttpResponse::new(503, "text/plain", "busy");
                }
                let n = self.next_id.fetch_add(1, Ordering::SeqCst);
                HttpResponse::new(
                    201,
                    "application/json",
                    format!("{{\"id\":\"{}-{n}\"}}", self.name),
                )
            }
            Kind::Hooks => {
                let sync = serde_json::from_slice::<serde_json::Value>(&r.body)
                    .ok()
                    .and_then(|v| v["data"]["syncId"].as_str().map(String::from))
                    .unwrap_or_default();
                self.hooks.lock().unwrap().push(HookSeen {
                    webhook_id: header(&r, "webhook-id").to_string(),
                    sync,
                    answered: 200,
                });
                HttpResponse::new(200, "text/plain", "ok")
            }
        }
    }

    fn reject(&self, _head: RequestHead, why: Rejection) -> HttpResponse {
        HttpResponse::new(400, "text/plain", format!("{why:?}"))
    }
}

/// A compact peer on 127.0.0.1.
pub struct Sink {
    state: Arc<SinkState>,
    http: Option<HttpServer>,
    addr: SocketAddr,
}

impl Sink {
    /// A source application that fails `fail_per_mille` / 1000 of the pushes with 503.
    pub fn source(name: &str, fail_per_mille: u64, seed: u64) -> Sink {
        Sink::start(name, Kind::Source { fail_per_mille }, seed)
    }

    /// A webhook endpoint that answers 200.
    pub fn hooks(name: &str) -> Sink {
        Sink::start(name, Kind::Hooks, 1)
    }

    fn start(name: &str, kind: Kind, seed: u64) -> Sink {
        let state = Arc::new(SinkState {
            name: name.to_string(),
            kind,
            rng: Mutex::new(Rng(seed | 1)),
            pushes: Mutex::new(Vec::new()),
            hooks: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
        });
        let handler: Arc<dyn Handler> = state.clone();
        let http = HttpServer::bind("127.0.0.1:0", HttpLimits::default(), handler, 2).unwrap();
        let addr = http.local_addr();
        Sink {
            state,
            http: Some(http),
            addr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn pushes(&self) -> Vec<PushSeen> {
        self.state.pushes.lock().unwrap().clone()
    }

    pub fn push_count(&self) -> usize {
        self.state.pushes.lock().unwrap().len()
    }

    pub fn hooks_seen(&self) -> Vec<HookSeen> {
        self.state.hooks.lock().unwrap().clone()
    }

    /// Distinct `webhook-id`s answered 200.
    pub fn distinct_delivered(&self) -> usize {
        let seen = self.state.hooks.lock().unwrap();
        let mut ids: Vec<&str> = seen.iter().map(|h| h.webhook_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(h) = self.http.take() {
            h.shutdown(Duration::from_secs(2));
        }
    }
}

/// One answered write.
#[derive(Debug, Clone)]
pub struct Answered {
    pub key: String,
    pub id: String,
    pub sync: String,
    /// The answer was a replay (the first answer was lost, e.g. to a kill).
    pub replayed: bool,
    /// Attempts before the answer (1 = answered at once).
    pub attempts: u32,
}

/// What the writer pool shares with the test.
pub struct Writers {
    /// The current base URL (changes when the server restarts on another port).
    pub base: Arc<Mutex<String>>,
    pub answered: Arc<Mutex<Vec<Answered>>>,
    pub done: Arc<AtomicUsize>,
    pub unanswered_attempts: Arc<AtomicUsize>,
    pub stop: Arc<AtomicBool>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

/// Start `clients` threads that together send `total` customer writes (pushing ones when
/// `push`), each with its own Idempotency-Key (`{prefix}-c{client}-w{n}`), retrying a write
/// that got no answer (or a 5xx) with the same key.
pub fn start_writers(
    base: &str,
    auth: &str,
    clients: usize,
    total: usize,
    push: bool,
    prefix: &str,
) -> Writers {
    let base = Arc::new(Mutex::new(base.to_string()));
    let answered = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let done = Arc::new(AtomicUsize::new(0));
    let unanswered = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for c in 0..clients {
        let (base, answered, done, unanswered, stop) = (
            Arc::clone(&base),
            Arc::clone(&answered),
            Arc::clone(&done),
            Arc::clone(&unanswered),
            Arc::clone(&stop),
        );
        let auth = auth.to_string();
        let prefix = prefix.to_string();
        let share = total / clients + usize::from(c < total % clients);
        handles.push(std::thread::spawn(move || {
            // One keep-alive connection per client.
            let agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .proxy(None)
                .max_redirects(0)
                .max_idle_connections_per_host(1)
                .timeout_global(Some(Duration::from_secs(5)))
                .build()
                .new_agent();
            let mut local = Vec::with_capacity(share);
            for i in 0..share {
                let key = format!("{prefix}-c{c}-w{i}");
                let tracking = format!("trk-c{c}-w{i}");
                let body = customer(&format!("Load customer {c}/{i}")).to_string();
                let mut attempts = 0u32;
                loop {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    attempts += 1;
                    let b = base.lock().unwrap().clone();
                    let mut headers = vec![
                        ("Authorization", auth.as_str()),
                        ("Idempotency-Key", key.as_str()),
                        ("X-Tracking-ID", tracking.as_str()),
                    ];
                    if push {
                        headers.push(("X-Sync-Data", "push"));
                    }
                    let r = try_call(&agent, &b, "POST", "/api/customers", &headers, Some(&body));
                    match r {
                        Ok(r) if r.status == 201 => {
                            let v = r.json();
                            local.push(Answered {
                                key: key.clone(),
                                id: v["id"].as_str().unwrap().to_string(),
                                sync: r.header("X-Sync-ID").unwrap_or("").to_string(),
                                replayed: r.header("Idempotency-Replayed") == Some("true"),
                                attempts,
                            });
                            done.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        // 409: the first attempt is still being processed; 5xx: retry.
                        Ok(r) if r.status == 409 || r.status >= 500 => {
                            unanswered.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Ok(r) => panic!("unexpected answer {}: {}", r.status, r.text),
                        Err(_) => {
                            unanswered.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                }
            }
            answered.lock().unwrap().extend(local);
        }));
    }
    Writers {
        base,
        answered,
        done,
        unanswered_attempts: unanswered,
        stop,
        handles,
    }
}

impl Writers {
    /// Wait for every writer to finish; the answered writes.
    pub fn join(self) -> Vec<Answered> {
        for h in self.handles {
            h.join().unwrap();
        }
        let v = self.answered.lock().unwrap().clone();
        v
    }
}

/// Run `f` over `items` on `threads` threads; the results in order.
pub fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let chunk = items.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| s.spawn(|| part.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

/// Count how often each value occurs.
pub fn counts<'a>(values: impl Iterator<Item = &'a str>) -> HashMap<&'a str, usize> {
    let mut m = HashMap::new();
    for v in values {
        *m.entry(v).or_insert(0) += 1;
    }
    m
}

/// Seconds since `t`, as a float.
pub fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}
