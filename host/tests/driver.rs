//! The work loop against loopback peers: a target that hangs never holds every sender (the
//! per-origin cap), and stale reports are counted and ignored. Assertions are on counts and
//! order, never on time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use writesync_core::net::{Cidr, TargetPolicy};
use writesync_core::{OutboundRequest, Outcome, WorkItem, WorkKind};
use writesync_host::driver::{Driver, DriverConfig, Event, Perform, Reported, WorkSource};
use writesync_host::transport::TransportConfig;
use writesync_host::{Performer, TokenBroker};

/// The reports a [`ListSource`] received, in order.
type Reports = [(String, Outcome)];

/// A work source over a list: hands the items out in order, records the reports.
struct ListSource {
    todo: VecDeque<WorkItem>,
    reports: Vec<(String, Outcome)>,
    stale_ids: Vec<String>,
    events: Vec<String>,
    /// Called after each report with the reports so far.
    on_report: Box<dyn FnMut(&Reports)>,
}

impl WorkSource for ListSource {
    type Error = String;
    fn claim(&mut self, _now: i64, limit: usize) -> Result<Vec<WorkItem>, String> {
        let n = limit.min(self.todo.len());
        Ok(self.todo.drain(..n).collect())
    }
    fn report(&mut self, item: &WorkItem, outcome: Outcome, _now: i64) -> Result<Reported, String> {
        if self.stale_ids.contains(&item.id) {
            return Ok(Reported::Stale);
        }
        self.reports.push((item.id.clone(), outcome));
        (self.on_report)(&self.reports);
        Ok(Reported::Recorded)
    }
    fn next_deadline(&mut self) -> Result<Option<i64>, String> {
        Ok(None)
    }
    fn prune(&mut self, _now: i64) -> Result<usize, String> {
        Ok(0)
    }
    fn event(&mut self, event: Event<'_>) {
        self.events.push(format!("{event:?}"));
    }
}

fn push(id: &str, url: &str) -> WorkItem {
    WorkItem {
        id: id.into(),
        kind: WorkKind::Push,
        request: OutboundRequest {
            method: "POST".into(),
            url: url.into(),
            headers: BTreeMap::new(),
            body: "{}".into(),
        },
    }
}

/// Read one request (head and `{}` body) from a connection.
fn read_request(s: &mut std::net::TcpStream) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).ends_with("{}") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// A loopback peer that holds every request until released, counting connections.
struct HangingPeer {
    port: u16,
    release: Arc<(Mutex<bool>, Condvar)>,
    open: Arc<AtomicUsize>,
    most_open: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl HangingPeer {
    fn start() -> HangingPeer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let peer = HangingPeer {
            port: listener.local_addr().unwrap().port(),
            release: Arc::new((Mutex::new(false), Condvar::new())),
            open: Arc::new(AtomicUsize::new(0)),
            most_open: Arc::new(AtomicUsize::new(0)),
            accepted: Arc::new(AtomicUsize::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (release, open, most, accepted, stop) = (
            Arc::clone(&peer.release),
            Arc::clone(&peer.open),
            Arc::clone(&peer.most_open),
            Arc::clone(&peer.accepted),
            Arc::clone(&peer.stop),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                s.set_nonblocking(false).unwrap();
                accepted.fetch_add(1, Ordering::SeqCst);
                let now_open = open.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now_open, Ordering::SeqCst);
                let (release, open) = (Arc::clone(&release), Arc::clone(&open));
                std::thread::spawn(move || {
                    read_request(&mut s);
                    let (lock, cv) = &*release;
                    let mut go = lock.lock().unwrap();
                    while !*go {
                        go = cv.wait(go).unwrap();
                    }
                    drop(go);
                    open.fetch_sub(1, Ordering::SeqCst);
                    let _ = s.write_all(OK);
                });
            }
        });
        peer
    }

    fn release(&self) {
        let (lock, cv) = &*self.release;
        *lock.lock().unwrap() = true;
        cv.notify_all();
    }
}

impl Drop for HangingPeer {
    fn drop(&mut self) {
        self.release();
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A loopback peer that answers 200 at once.
fn fast_peer() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            read_request(&mut s);
            let _ = s.write_all(OK);
        }
    });
    port
}

fn loopback_performer() -> Arc<dyn Perform> {
    Arc::new(Performer::new(
        &TransportConfig {
            policy: TargetPolicy {
                allowed: vec![Cidr::parse("127.0.0.0/8").unwrap()],
            },
            ..TransportConfig::default()
        },
        TokenBroker::new(None),
    ))
}

#[test]
fn a_hanging_origin_never_holds_every_sender() {
    const SLOW: usize = 6;
    const FAST: usize = 10;
    let slow = Arc::new(HangingPeer::start());
    let fast = fast_peer();
    // The hanging origin's items come first, as the engine would hand them out.
    let mut todo: VecDeque<WorkItem> = (0..SLOW)
        .map(|i| {
            push(
                &format!("s{i}"),
                &format!("http://127.0.0.1:{}/s{i}", slow.port),
            )
        })
        .collect();
    todo.extend(
        (0..FAST).map(|i| push(&format!("f{i}"), &format!("http://127.0.0.1:{fast}/f{i}"))),
    );
    let releaser = Arc::clone(&slow);
    let mut source = ListSource {
        todo,
        reports: Vec::new(),
        stale_ids: Vec::new(),
        events: Vec::new(),
        // The hanging peer answers only once every fast item was reported: without the cap
        // the senders would all wait on it and the fast items would come after its timeouts.
        on_report: Box::new(move |reports| {
            if reports.iter().filter(|(id, _)| id.starts_with('f')).count() == FAST {
                releaser.release();
            }
        }),
    };
    let driver = Driver::new(DriverConfig {
        senders: 4,
        per_origin: 2,
        claim_ahead: 1,
        stall_after: Duration::ZERO,
        ..DriverConfig::default()
    });
    let stats = driver
        .drain(&mut source, &|| 0, &loopback_performer())
        .unwrap();

    let order: Vec<&str> = source.reports.iter().map(|(id, _)| id.as_str()).collect();
    let first_slow = order.iter().position(|id| id.starts_with('s')).unwrap();
    assert_eq!(
        first_slow, FAST,
        "every fast item before any slow one: {order:?} {stats:?} {:?}",
        source.events
    );
    assert!(source
        .reports
        .iter()
        .all(|(_, o)| matches!(o, Outcome::Response { status: 200, .. })));
    // At most two requests were ever open at the hanging peer; the two items claimed while its
    // origin already held a full claim window were deferred (not sent: their lease brings them
    // back), the others sent once it answered.
    assert_eq!(slow.most_open.load(Ordering::SeqCst), 2);
    assert_eq!(stats.deferred, 2, "{:?}", source.events);
    assert_eq!(slow.accepted.load(Ordering::SeqCst), SLOW - 2);
    assert_eq!(stats.pushes, FAST + SLOW - 2);
    assert_eq!(
        source
            .events
            .iter()
            .filter(|e| e.starts_with("Deferred"))
            .count(),
        2
    );
}

#[test]
fn stale_reports_are_counted_and_ignored() {
    let mut source = ListSource {
        todo: (0..3)
            .map(|i| push(&format!("t{i}"), "https://push.example.com/x"))
            .collect(),
        reports: Vec::new(),
        stale_ids: vec!["t1".into()],
        events: Vec::new(),
        on_report: Box::new(|_| {}),
    };
    let mut sent = Vec::new();
    let stats = Driver::default()
        .drain_with(&mut source, &|| 0, &mut |item: &WorkItem| {
            sent.push(item.id.clone());
            Outcome::Response {
                status: 201,
                headers: BTreeMap::new(),
                body: String::new(),
            }
        })
        .unwrap();
    assert_eq!(sent, ["t0", "t1", "t2"]);
    assert_eq!((stats.pushes, stats.stale), (3, 1));
    let recorded: Vec<&str> = source.reports.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(recorded, ["t0", "t2"]);
    assert_eq!(source.events.len(), 1);
    assert!(source.events[0].starts_with("Stale"), "{:?}", source.events);
}
