//! Crash safety: a server receiving pushing writes is killed with SIGKILL at random moments
//! and restarted on the same database. Afterwards every answered write is readable, every
//! sync is final, every source received each push (all copies with one Idempotency-Key) and
//! every owed webhook was delivered.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::json;
use writesync_demo::fake::FakeServer;

const KILLS: usize = 4;

/// xorshift64*: a tiny generator for the kill moments; the seed is printed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

#[test]
fn sigkill_at_random_moments_loses_nothing() {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("kill-moment seed: {seed}");
    let mut rng = Rng(seed);
    let qb = FakeServer::source("quickbooks").unwrap();
    let hs = FakeServer::source("hubspot").unwrap();
    let hooks = FakeServer::webhook_receiver("hooks").unwrap();
    // Slow peers keep pushes and deliveries in flight when the kills come.
    for f in [&qb, &hs, &hooks] {
        f.set_delay(Duration::from_millis(30));
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    // A long push schedule and a short lease: a kill costs at most one attempt of the items
    // in flight, and their lease runs out one second after the restart.
    let args = [
        "--push-retry-schedule",
        "0.05,0.05,0.1,0.1,0.2,0.2,0.5,0.5",
        "--webhook-retry-schedule",
        "0.05",
        "--allow-target-cidr",
        "127.0.0.0/8",
        "--lease-seconds",
        "1",
    ];
    let mut srv = Server::start(&db, &args);
    let c = Client::new(&srv);
    let t = c.tenant("acme.example.com");
    c.connect(&t, "quickbooks", "accounting", &qb.url("/push"));
    c.connect(&t, "hubspot", "crm", &hs.url("/push"));
    let hook = c.webhook(
        &t,
        json!({"url": hooks.url("/in"), "events": ["*"],
               "signingSecret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
    );

    let base = Arc::new(Mutex::new(srv.base.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let answered: Arc<Mutex<Vec<(String, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let base = Arc::clone(&base);
        let stop = Arc::clone(&stop);
        let answered = Arc::clone(&answered);
        let auth = t.auth.clone();
        std::thread::spawn(move || {
            let agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .proxy(None)
                .timeout_global(Some(Duration::from_secs(2)))
                .build()
                .new_agent();
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let key = format!("write-{i}");
                let tracking = format!("trk-{i}");
                let body = customer(&format!("Customer {i}")).to_string();
                // The same write, with the same key, until an answer arrives.
                loop {
                    let b = base.lock().unwrap().clone();
                    let r = try_call(
                        &agent,
                        &b,
                        "POST",
                        "/api/customers",
                        &[
                            ("Authorization", &auth),
                            ("Idempotency-Key", &key),
                            ("X-Sync-Data", "push"),
                            ("X-Tracking-ID", &tracking),
                        ],
                        Some(&body),
                    );
                    match r {
                        Ok(r) if r.status == 201 => {
                            let id = r.json()["id"].as_str().unwrap().to_string();
                            let sync = r.header("X-Sync-ID").unwrap().to_string();
                            answered.lock().unwrap().push((id, sync));
                            break;
                        }
                        Ok(r) => assert!(
                            r.status >= 500,
                            "unexpected answer {}: {}",
                            r.status,
                            r.text
                        ),
                        Err(_) => {}
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                std::thread::sleep(Duration::from_millis(15));
            }
        })
    };

    for round in 0..KILLS {
        std::thread::sleep(Duration::from_millis(rng.between(150, 600)));
        srv.kill();
        let before = answered.lock().unwrap().len();
        println!("kill {} after {before} answered writes", round + 1);
        srv = Server::start(&db, &args);
        *base.lock().unwrap() = srv.base.clone();
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let answered = answered.lock().unwrap().clone();
    println!("{} writes answered", answered.len());
    assert!(answered.len() >= 10, "too few writes to mean anything");

    let c = Client::new(&srv);
    // Every answered write is readable.
    for (id, _) in &answered {
        let r = c.api(&t, "GET", &format!("/api/customers/{id}"), &[], None);
        assert_eq!(r.status, 200, "answered write {id} is lost");
    }
    // Every sync reaches a final status; the fakes always accept, so it succeeded.
    let syncs: BTreeSet<String> = answered.iter().map(|(_, s)| s.clone()).collect();
    for sync in &syncs {
        let s = c.wait_sync(&t, sync);
        assert_eq!(s["status"], "succeeded", "{s}");
    }
    // Each source received each push at least once, all copies with one Idempotency-Key.
    for fake in [&qb, &hs] {
        let mut keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for r in fake.received() {
            if let Some(s) = r.header("x-sync-id") {
                keys.entry(s.to_string())
                    .or_default()
                    .insert(r.header("idempotency-key").unwrap_or("").to_string());
            }
        }
        for sync in &syncs {
            let k = keys
                .get(sync)
                .unwrap_or_else(|| panic!("{} never received sync {sync}", fake.name()));
            assert_eq!(k.len(), 1, "{}: {sync} had keys {k:?}", fake.name());
        }
    }
    // Every owed webhook (2 target updates and 1 completion per sync) was delivered.
    let delivered_ids: BTreeSet<String> = hooks
        .received()
        .iter()
        .filter(|r| r.answered == 200)
        .filter_map(|r| r.header("webhook-id").map(String::from))
        .collect();
    let list = poll(Duration::from_secs(30), || {
        let l = c.deliveries(&t, &hook);
        l.iter().all(|d| d["status"] != "pending").then_some(l)
    });
    let mut per_sync: BTreeMap<String, usize> = BTreeMap::new();
    for d in &list {
        assert_eq!(d["status"], "delivered", "{d}");
        let id = d["id"].as_str().unwrap();
        let got = poll(DEADLINE, || {
            let ids: BTreeSet<String> = hooks
                .received()
                .iter()
                .filter(|r| r.answered == 200)
                .filter_map(|r| r.header("webhook-id").map(String::from))
                .collect();
            ids.contains(id).then_some(true)
        });
        assert!(got || delivered_ids.contains(id));
        *per_sync
            .entry(d["syncId"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for sync in &syncs {
        assert_eq!(per_sync.get(sync), Some(&3), "deliveries of {sync}");
    }
}
