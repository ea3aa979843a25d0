//! Faulty peers, end to end: a source application or webhook endpoint that never answers (and
//! holds at most its share of the senders: the per-origin cap),
//! answers slowly (or trickles its answer), resets the connection, sends an endless or a huge
//! body or endless headers, answers 429 with `Retry-After`, answers 301, or sits behind a name
//! or address the policy refuses. Each time the attempt is bounded (timeouts, bounded reads),
//! the outcome is the documented one (retried, failed with the reason, or succeeded), and the
//! server keeps answering.
//!
//! Every peer listens on 127.0.0.1; nothing is sent to any other address. Registration checks
//! of refused URLs send nothing at all.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use writesync_demo::fake::{FakeServer, Reply};

/// The outbound timeout used by these tests (seconds).
const TIMEOUT: &str = "0.5";

fn setup(extra: &[&str]) -> (tempfile::TempDir, Server, Client) {
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<&str> = [&FAST[..], &ALLOW_LOOPBACK[..]].concat();
    args.extend_from_slice(&["--outbound-timeout-seconds", TIMEOUT]);
    args.extend_from_slice(extra);
    let srv = Server::start(&dir.path().join("t.db"), &args);
    let c = Client::new(&srv);
    (dir, srv, c)
}

/// What a raw peer does with one accepted connection.
type Behaviour = dyn Fn(TcpStream, &PeerStats) + Send + Sync;

/// Counters of a raw peer.
#[derive(Default)]
struct PeerStats {
    connections: AtomicUsize,
    bytes_written: AtomicU64,
    /// Connections whose handler has returned (the server closed or the peer gave up).
    finished: AtomicUsize,
    stop: AtomicBool,
    /// Streams kept open on purpose (a peer that never answers).
    held: Mutex<Vec<TcpStream>>,
}

/// A misbehaving HTTP peer on 127.0.0.1: one thread per connection running `behaviour`.
struct RawPeer {
    port: u16,
    stats: Arc<PeerStats>,
}

impl RawPeer {
    fn start(behaviour: Arc<Behaviour>) -> RawPeer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stats = Arc::new(PeerStats::default());
        let s = Arc::clone(&stats);
        std::thread::spawn(move || {
            while !s.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        s.connections.fetch_add(1, Ordering::SeqCst);
                        let s2 = Arc::clone(&s);
                        let b = Arc::clone(&behaviour);
                        std::thread::spawn(move || {
                            b(stream, &s2);
                            s2.finished.fetch_add(1, Ordering::SeqCst);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        RawPeer { port, stats }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn connections(&self) -> usize {
        self.stats.connections.load(Ordering::SeqCst)
    }
}

impl Drop for RawPeer {
    fn drop(&mut self) {
        self.stats.stop.store(true, Ordering::SeqCst);
        self.stats.held.lock().unwrap().clear();
    }
}

/// Read one request head (and a body of `Content-Length` bytes), at most 1 MiB in all.
fn read_request(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            return true;
        }
        if buf.len() > 1 << 20 {
            return false;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Write `head`, then `piece` again and again until the other side goes away (or 30 s).
fn stream_forever(mut s: TcpStream, stats: &PeerStats, head: &[u8], piece: &[u8]) {
    if !read_request(&mut s) {
        return;
    }
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    if s.write_all(head).is_err() {
        return;
    }
    stats
        .bytes_written
        .fetch_add(head.len() as u64, Ordering::SeqCst);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) && !stats.stop.load(Ordering::SeqCst) {
        match s.write_all(piece) {
            Ok(()) => {
                stats
                    .bytes_written
                    .fetch_add(piece.len() as u64, Ordering::SeqCst);
            }
            Err(_) => return,
        }
    }
}

fn target<'a>(sync: &'a Value, app: &str) -> &'a Value {
    sync["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["app"] == app)
        .unwrap_or_else(|| panic!("no target {app} in {sync}"))
}

fn push_write(c: &Client, t: &Tenant, name: &str) -> String {
    let r = c.api(
        t,
        "POST",
        "/api/customers",
        &[("X-Sync-Data", "push")],
        Some(customer(name)),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    r.header("X-Sync-ID").unwrap().to_string()
}

/// Wait until no delivery of the webhook is pending; answer the list.
fn settled_deliveries(c: &Client, t: &Tenant, hook: &str, n: usize) -> Vec<Value> {
    poll(DEADLINE, || {
        let l = c.deliveries(t, hook);
        (l.len() == n && l.iter().all(|d| d["status"] != "pending")).then_some(l)
    })
}

/// The server still answers at once.
fn still_serving(c: &Client) {
    let started = Instant::now();
    assert_eq!(c.call("GET", "/healthz", &[], None).status, 200);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn peers_that_never_answer_are_bounded_by_the_timeout() {
    // Accepts the connection, never reads, never answers; keeps it open.
    let silent = Arc::new(RawPeer::start(Arc::new(|s: TcpStream, st: &PeerStats| {
        st.held.lock().unwrap().push(s);
    })));
    let hooks_silent = RawPeer::start(Arc::new(|s: TcpStream, st: &PeerStats| {
        st.held.lock().unwrap().push(s);
    }));
    let (_d, _srv, c) = setup(&[]);
    let t = c.tenant("acme.example.com");
    c.connect(&t, "quickbooks", "accounting", &silent.url("/push"));
    let hook = c.webhook(
        &t,
        json!({"url": hooks_silent.url("/in"), "events": ["api_push_complete"]}),
    );
    let started = Instant::now();
    let sync = push_write(&c, &t, "Acme");
    // While the worker waits on the silent peer, the API answers.
    still_serving(&c);
    let s = c.wait_sync(&t, &sync);
    let took = started.elapsed();
    assert_eq!(s["status"], "failed", "{s}");
    let q = target(&s, "quickbooks");
    // FAST has 3 push retries of 0.05 s: 4 attempts, each cut off by the timeout.
    assert_eq!(q["attempts"], 4, "{q}");
    assert!(q["lastError"].as_str().unwrap().contains("timeout"), "{q}");
    // 4 attempts of at most 0.5 s each plus the schedule: well under 10 s.
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(silent.connections() >= 1);
    // The webhook endpoint that never answers: 4 attempts, then failed, with the reason.
    let d = settled_deliveries(&c, &t, &hook, 1);
    assert_eq!(d[0]["status"], "failed", "{}", d[0]);
    assert_eq!(d[0]["attempts"], 4, "{}", d[0]);
    assert!(d[0]["lastError"].as_str().unwrap().contains("timeout"));
    assert!(d[0]["lastStatusCode"].is_null());
}

#[test]
fn a_source_that_never_answers_holds_at_most_its_share_of_the_senders() {
    // Accepts, never answers, keeps the connection: with a long timeout it hangs for the
    // whole test.
    let silent = RawPeer::start(Arc::new(|s: TcpStream, st: &PeerStats| {
        st.held.lock().unwrap().push(s);
    }));
    let fast = FakeServer::source("fast").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<&str> = [&FAST[..], &ALLOW_LOOPBACK[..]].concat();
    args.extend_from_slice(&[
        "--outbound-timeout-seconds",
        "120",
        "--lease-seconds",
        "300",
        "--max-in-flight-per-origin",
        "2",
    ]);
    let _srv = Server::start(&dir.path().join("t.db"), &args);
    let c = Client::new(&_srv);
    let t = c.tenant("acme.example.com");
    c.connect(&t, "quickbooks", "accounting", &silent.url("/push"));
    c.connect(&t, "hubspot", "crm", &fast.url("/push"));
    // More writes than senders (8): without the cap every sender would wait on the silent
    // source and the other pushes would wait for its timeout.
    const N: usize = 12;
    for i in 0..N {
        push_write(&c, &t, &format!("Acme {i}"));
    }
    assert!(
        fast.wait_until(DEADLINE, |r| r.len() >= N),
        "the pushes to the answering source arrived: {}",
        fast.count()
    );
    poll(DEADLINE, || (silent.connections() >= 2).then_some(()));
    assert_eq!(
        silent.connections(),
        2,
        "two in flight to the silent source"
    );
    assert_eq!(fast.count(), N);
}

#[test]
fn slow_peers_succeed_within_the_timeout_and_trickling_ones_are_cut_off() {
    // Slow (100 ms) but within the 0.5 s timeout: succeeds at the first attempt.
    let slow = FakeServer::source("quickbooks").unwrap();
    slow.set_delay(Duration::from_millis(100));
    // Sends the status line at once, then one header byte every 100 ms, forever: only the
    // overall timeout ends it.
    let trickle = RawPeer::start(Arc::new(|mut s: TcpStream, st: &PeerStats| {
        if !read_request(&mut s) {
            return;
        }
        let _ = s.write_all(b"HTTP/1.1 201 Created\r\nX-Slow: ");
        for _ in 0..600 {
            if st.stop.load(Ordering::SeqCst) || s.write_all(b"a").is_err() {
                return;
            }
            st.bytes_written.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
        }
    }));
    let (_d, _srv, c) = setup(&[]);
    let t = c.tenant("acme.example.com");
    c.connect(&t, "quickbooks", "accounting", &slow.url("/push"));
    c.connect(&t, "hubspot", "crm", &trickle.url("/push"));
    let started = Instant::now();
    let sync = push_write(&c, &t, "Acme");
    let s = c.wait_sync(&t, &sync);
    let took = started.elapsed();
    assert_eq!(s["status"], "partially_failed", "{s}");
    let q = target(&s, "quickbooks");
    assert_eq!(
        (q["status"].as_str(), q["attempts"].as_u64()),
        (Some("succeeded"), Some(1))
    );
    let h = target(&s, "hubspot");
    assert_eq!(h["status"], "failed", "{h}");
    assert_eq!(h["attempts"], 4, "{h}");
    assert!(h["lastError"].as_str().unwrap().contains("timeout"), "{h}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    // Each trickling attempt was cut off after about 0.5 s: a few bytes each, not 600.
    assert!(trickle.stats.bytes_written.load(Ordering::SeqCst) < 4 * 12);
    still_serving(&c);
}

#[test]
fn connection_resets_are_retried_and_the_next_answer_counts() {
    // The first two connections are reset (closed with the request unread, which makes the
    // kernel send RST); the third is answered 201. Another peer answers half a status line and
    // then resets, every time.
    let resets = Arc::new(AtomicUsize::new(0));
    let r2 = Arc::clone(&resets);
    let flaky = RawPeer::start(Arc::new(move |mut s: TcpStream, _st: &PeerStats| {
        if r2.fetch_add(1, Ordering::SeqCst) < 2 {
            // Let the request arrive, then close without reading it.
            let mut b = [0u8; 1];
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.peek(&mut b);
            std::thread::sleep(Duration::from_millis(20));
            return;
        }
        if read_request(&mut s) {
            let body = r#"{"id":"qb-77"}"#;
            let _ = write!(
                s,
                "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    }));
    let half = RawPeer::start(Arc::new(|mut s: TcpStream, _st: &PeerStats| {
        let mut b = [0u8; 1];
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.peek(&mut b);
        let _ = s.write_all(b"HTTP/1.1 20");
        std::thread::sleep(Duration::from_millis(20));
        // Closed with the request unread: RST.
    }));
    let hooks_half = RawPeer::start(Arc::new(|mut s: TcpStream, _st: &PeerStats| {
        let mut b = [0u8; 1];
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.peek(&mut b);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Le");
        std::thread::sleep(Duration::from_millis(20));
    }));
    let (_d, srv, c) = setup(&[]);
    let t = c.tenant("acme.example.com");
    c.connect(&t, "quickbooks", "accounting", &flaky.url("/push"));
    c.connect(&t, "hubspot", "crm", &half.url("/push"));
    let hook = c.webhook(
        &t,
        json!({"url": hooks_half.url("/in"), "events": ["api_push_complete"]}),
    );
    let sync = push_write(&c, &t, "Acme");
    let s = c.wait_sync(&t, &sync);
    assert_eq!(s["status"], "partially_failed", "{s}");
    let q = target(&s, "quickbooks");
    assert_eq!(q["status"], "succeeded", "{q}");
    assert_eq!(q["attempts"], 3, "{q}");
    assert_eq!(q["remoteId"], "qb-77");
    let h = target(&s, "hubspot");
    assert_eq!(h["status"], "failed", "{h}");
    assert_eq!(h["attempts"], 4, "{h}");
    assert!(
        h["lastError"].as_str().unwrap().contains("connection"),
        "{h}"
    );
    let d = settled_deliveries(&c, &t, &hook, 1);
    assert_eq!(d[0]["status"], "failed", "{}", d[0]);
    assert_eq!(d[0]["attempts"], 4);
    assert_eq!(half.connections(), 4);
    assert_eq!(hooks_half.connections(), 4);
    still_serving(&c);
    assert!(!srv.logs().iter().any(|l| l.contains("panicked")));
}

#[test]
fn endless_and_huge_answers_are_read_only_up_to_the_bound() {
    const PIECE: usize = 16 * 1024;
    // 201 with a chunked body that never ends.
    let endless = Arc::new(RawPeer::start(Arc::new(|s: TcpStream, st: &PeerStats| {
        let piece = format!("{PIECE:x}\r\n{}\r\n", "x".repeat(PIECE));
        stream_forever(
            s,
            st,
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n\
              Transfer-Encoding: chunked\r\n\r\n",
            piece.as_bytes(),
        );
    })));
    // 200 declaring a terabyte.
    let huge = RawPeer::start(Arc::new(|s: TcpStream, st: &PeerStats| {
        stream_forever(
            s,
            st,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000000000000\r\n\r\n",
            "y".repeat(PIECE).as_bytes(),
        );
    }));
    // Headers that never end.
    let endless_head = RawPeer::start(Arc::new(|s: TcpStream, st: &PeerStats| {
        stream_forever(
            s,
            st,
            b"HTTP/1.1 201 Created\r\n",
            "X-Filler: zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\r\n"
                .repeat(256)
                .as_bytes(),
        );
    }));
    let (_d, srv, c) = setup(&[]);
    let t = c.tenant("acme.example.com");
    c.connect(&t, "quickbooks", "accounting", &endless.url("/push"));
    c.connect(&t, "hubspot", "crm", &endless_head.url("/push"));
    let hook = c.webhook(
        &t,
        json!({"url": huge.url("/in"), "events": ["api_push_complete"]}),
    );
    let rss_before = vm_hwm_kib(srv.pid());
    let started = Instant::now();
    let sync = push_write(&c, &t, "Acme");
    let s = c.wait_sync(&t, &sync);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(s["status"], "partially_failed", "{s}");
    // The status line and headers are the answer: 201 succeeds, the endless body is cut.
    let q = target(&s, "quickbooks");
    assert_eq!(q["status"], "succeeded", "{q}");
    assert_eq!(q["attempts"], 1);
    // Endless headers: refused past the header bound, retried, then failed.
    let h = target(&s, "hubspot");
    assert_eq!(h["status"], "failed", "{h}");
    assert_eq!(h["attempts"], 4, "{h}");
    // The 200 with a terabyte body: delivered at the first attempt.
    let d = settled_deliveries(&c, &t, &hook, 1);
    assert_eq!(d[0]["status"], "delivered", "{}", d[0]);
    assert_eq!(d[0]["attempts"], 1);
    // Every connection was closed by the server soon after the bound was reached: the peers'
    // write loops ended (not after their 30 s), having written a bounded amount.
    for (name, p, n) in [
        ("endless", &*endless, 1),
        ("huge", &huge, 1),
        ("endless headers", &endless_head, 4),
    ] {
        poll(Duration::from_secs(10), || {
            (p.stats.finished.load(Ordering::SeqCst) >= n).then_some(())
        });
        let written = p.stats.bytes_written.load(Ordering::SeqCst);
        println!(
            "{name}: {} connections, {written} bytes written",
            p.connections()
        );
        // 64 KiB read plus what the loopback socket buffers hold.
        assert!(written < 64 * 1024 * 1024, "{name} wrote {written} bytes");
    }
    // The server's memory did not grow with what the peers sent.
    let rss_after = vm_hwm_kib(srv.pid());
    assert!(
        rss_after < rss_before + 64 * 1024,
        "peak RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    still_serving(&c);
}

/// Peak resident set size of a process, in KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn too_many_requests_with_retry_after() {
    let qb = FakeServer::source("quickbooks").unwrap();
    let hs = FakeServer::source("hubspot").unwrap();
    let hooks = FakeServer::webhook_receiver("hooks").unwrap();
    let (_d, _srv, c) = setup(&[]);
    let t = c.tenant("acme.example.com");
    c.connect(&t, "quickbooks", "accounting", &qb.url("/push"));
    c.connect(&t, "hubspot", "crm", &hs.url("/push"));
    let hook = c.webhook(
        &t,
        json!({"url": hooks.url("/in"), "events": ["api_push_complete"]}),
    );
    // quickbooks: 429 with an HTTP-date two to three seconds ahead (whole seconds), then
    // success.
    let at = std::time::SystemTime::now() + Duration::from_secs(3);
    qb.queue(vec![
        Reply::status(429).with_header("Retry-After", &http_date(at))
    ]);
    // hubspot: 429 asking for two days: capped at 24 h, so the target waits (pending).
    hs.queue(vec![Reply::status(429).with_header("Retry-After", "172800")]);
    // The webhook endpoint: 429 with Retry-After twice, then 200.
    hooks.queue(vec![
        Reply::status(429).with_header("Retry-After", "1"),
        Reply::status(429).with_header("Retry-After", "1"),
    ]);
    let sync = push_write(&c, &t, "Acme");
    let q = poll(DEADLINE, || {
        let s = c
            .api(&t, "GET", &format!("/api/syncs/{sync}"), &[], None)
            .json();
        let q = target(&s, "quickbooks").clone();
        (q["status"] == "succeeded").then_some(q)
    });
    assert_eq!(q["attempts"], 2);
    let got = qb.received();
    assert_eq!(got.len(), 2);
    let gap = got[1].at_ms - got[0].at_ms;
    assert!(gap >= 1000, "Retry-After as a date waited only {gap} ms");
    // hubspot: one attempt so far, waiting for its retry (not failed), the 429 as the reason.
    let s = c
        .api(&t, "GET", &format!("/api/syncs/{sync}"), &[], None)
        .json();
    let h = target(&s, "hubspot");
    assert_eq!(h["status"], "in_progress", "{h}");
    assert_eq!(h["attempts"], 1, "{h}");
    assert!(h["lastError"].as_str().unwrap().contains("429"), "{h}");
    assert_eq!(s["status"], "in_progress", "{s}");
    assert_eq!(hs.count(), 1);
    // The webhook fires only when the sync is final; hubspot keeps it open. A second sync to
    // quickbooks only completes and its delivery meets the 429s: retried no earlier than each
    // Retry-After (contract section 7; the webhook schedule here is 0.05 s), then delivered.
    let r = c.api(
        &t,
        "POST",
        "/api/customers",
        &[("X-Sync-Data", "push"), ("X-Sync-Sources", "quickbooks")],
        Some(customer("Beta")),
    );
    let sync2 = r.header("X-Sync-ID").unwrap().to_string();
    assert_eq!(c.wait_sync(&t, &sync2)["status"], "succeeded");
    let d = settled_deliveries(&c, &t, &hook, 1);
    assert_eq!(d[0]["status"], "delivered", "{}", d[0]);
    assert_eq!(d[0]["attempts"], 3, "{}", d[0]);
    let got = hooks.received();
    let statuses: Vec<u16> = got.iter().map(|r| r.answered).collect();
    assert_eq!(statuses, [429, 429, 200]);
    for w in got.windows(2) {
        let gap = w[1].at_ms - w[0].at_ms;
        assert!(gap >= 1000, "a webhook Retry-After: 1 waited only {gap} ms");
    }
}

/// An RFC 9110 IMF-fixdate for a time.
fn http_date(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    format!(
        "{wd}, {d:02} {mon} {y} {:02}:{:02}:{:02} GMT",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[test]
fn moved_permanently_is_an_answer_not_a_redirect() {
    let qb = FakeServer::source("quickbooks").unwrap();
    let hooks = FakeServer::webhook_receiver("hooks").unwrap();
    let elsewhere = FakeServer::source("elsewhere").unwrap();
    let (_d, _srv, c) = setup(&[]);
    let t = c.tenant("acme.example.com");
    c.connect(&t, "quickbooks", "accounting", &qb.url("/push"));
    let hook = c.webhook(
        &t,
        json!({"url": hooks.url("/in"), "events": ["api_push_complete"]}),
    );
    let moved = Reply::status(301).with_header("Location", &elsewhere.url("/moved"));
    qb.set_always(Some(moved.clone()));
    hooks.set_always(Some(moved));
    let sync = push_write(&c, &t, "Acme");
    let s = c.wait_sync(&t, &sync);
    // A push: a 301 fails the target at once.
    assert_eq!(s["status"], "failed", "{s}");
    let q = target(&s, "quickbooks");
    assert_eq!(q["attempts"], 1);
    assert!(q["lastError"].as_str().unwrap().contains("301"), "{q}");
    // A delivery: only 200 counts, so the 301 is retried, then the delivery fails.
    let d = settled_deliveries(&c, &t, &hook, 1);
    assert_eq!(d[0]["status"], "failed", "{}", d[0]);
    assert_eq!(d[0]["attempts"], 4);
    assert_eq!(d[0]["lastStatusCode"], 301);
    assert_eq!(qb.count(), 1);
    assert_eq!(hooks.count(), 4);
    // Nothing followed a Location.
    assert_eq!(elsewhere.count(), 0);
}

#[test]
fn names_resolving_to_refused_addresses_are_checked_per_address() {
    let qb = FakeServer::source("quickbooks").unwrap();
    let hs = FakeServer::source("hubspot").unwrap();
    // Only 127.0.0.2 is allowed: `localhost` resolves to 127.0.0.1 and ::1, both refused.
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<&str> = FAST.to_vec();
    args.extend_from_slice(&["--allow-target-cidr", "127.0.0.2/32"]);
    let srv = Server::start(&dir.path().join("a.db"), &args);
    let c = Client::new(&srv);
    let t = c.tenant("acme.example.com");
    c.connect(&t, "quickbooks", "accounting", &qb.localhost_url("/push"));
    let sync = push_write(&c, &t, "Acme");
    let s = c.wait_sync(&t, &sync);
    let q = target(&s, "quickbooks");
    assert_eq!(q["status"], "failed", "{q}");
    assert_eq!(q["attempts"], 1, "a refused address is not retried");
    let err = q["lastError"].as_str().unwrap();
    assert!(
        err.contains("refused address") && err.contains("127.0.0.1"),
        "{err}"
    );
    assert_eq!(qb.count(), 0);
    drop(srv);
    // 127.0.0.0/8 allowed: `localhost`'s ::1 is dropped and 127.0.0.1 is used.
    let srv = Server::start(
        &dir.path().join("b.db"),
        &[&FAST[..], &ALLOW_LOOPBACK[..]].concat(),
    );
    let c = Client::new(&srv);
    let t = c.tenant("acme.example.com");
    c.connect(&t, "hubspot", "crm", &hs.localhost_url("/push"));
    let sync = push_write(&c, &t, "Acme");
    let s = c.wait_sync(&t, &sync);
    assert_eq!(s["status"], "succeeded", "{s}");
    assert_eq!(hs.count(), 1);
}
