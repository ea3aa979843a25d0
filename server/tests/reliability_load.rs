//! The bounded load and crash test: 8 clients send 20,000 pushing writes over keep-alive
//! connections to a server with two sources (one fails a third of its pushes with 503) and
//! one webhook endpoint, while the server is killed with SIGKILL at random moments (3 times
//! during the writes, once while pushes and deliveries drain) and restarted on the same
//! database. Clients retry an unanswered write with the same Idempotency-Key.
//!
//! Afterwards: every answered write is stored, exactly once per Idempotency-Key; every sync is
//! final and every source received each of its pushes; duplicates at a source (a push resent
//! after a kill) carry the same Idempotency-Key; every owed webhook (2 target updates and 1
//! completion per sync) was delivered or is marked failed, and each delivered one reached the
//! endpoint. The figures (writes per second, restarts, counts) are printed.
//!
//! It needs a release build to stay within about 2 minutes on 2 cores, so it is ignored by
//! the default `cargo test` and run by `scripts/test.sh` as
//! `cargo test --release -p writesync-server --test reliability_load -- --ignored --nocapture`.
//! `WRITESYNC_LOAD_WRITES` overrides the number of writes (for a quick local run).
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
#[path = "common/load.rs"]
mod load;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use load::*;
use serde_json::{json, Value};

const CLIENTS: usize = 8;
const WRITES: usize = 20_000;
const KILLS_DURING_WRITES: usize = 3;

thread_local! {
    /// One keep-alive client per checking thread.
    static AGENT: ureq::Agent = agent();
}

fn server_args() -> Vec<&'static str> {
    vec![
        // Ten retries 50 ms apart: a push to the flaky source fails for good with
        // probability 3^-11 (about once in 177,000).
        "--push-retry-schedule",
        "0.05,0.05,0.05,0.05,0.05,0.05,0.05,0.05,0.05,0.05",
        "--webhook-retry-schedule",
        "0.05",
        "--allow-target-cidr",
        "127.0.0.0/8",
        "--lease-seconds",
        "2",
        "--outbound-timeout-seconds",
        "2",
    ]
}

/// The kills so far and what the killed servers logged.
#[derive(Default)]
struct Crashes {
    restarts: usize,
    log_lines: usize,
    error_lines: Vec<String>,
    downtime: Duration,
}

impl Crashes {
    /// SIGKILL the server, keep its log figures, restart it on the same database and point
    /// the clients at it.
    fn kill_and_restart(
        &mut self,
        srv: &mut Server,
        db: &std::path::Path,
        args: &[&str],
        base: &std::sync::Mutex<String>,
    ) {
        srv.kill();
        let (n, errs) = bad_lines(srv);
        self.log_lines += n;
        self.error_lines.extend(errs);
        let t0 = Instant::now();
        *srv = Server::start(db, args);
        self.downtime += t0.elapsed();
        *base.lock().unwrap() = srv.base.clone();
        self.restarts += 1;
    }
}

/// Lines of a server's log that report a panic or an error.
fn bad_lines(srv: &Server) -> (usize, Vec<String>) {
    let logs = srv.logs();
    let errors: Vec<String> = logs
        .iter()
        .filter(|l| l.contains("\"level\":\"error\"") || l.contains("panicked"))
        .cloned()
        .collect();
    (logs.len(), errors)
}

#[test]
#[ignore = "release-build load test; run by scripts/test.sh with --release --ignored"]
fn load_with_sigkills_loses_nothing() {
    let writes: usize = std::env::var("WRITESYNC_LOAD_WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(WRITES);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("load: {writes} writes from {CLIENTS} clients, seed {seed}");
    let mut rng = Rng(seed);
    let steady = Sink::source("quickbooks", 0, rng.next());
    let flaky = Sink::source("hubspot", 333, rng.next());
    let hooks = Sink::hooks("hooks");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("load.db");
    let args = server_args();
    let mut srv = Server::start(&db, &args);
    let c = Client::new(&srv);
    let t = c.tenant("load.example.com");
    c.connect(&t, "quickbooks", "accounting", &steady.url("/push"));
    c.connect(&t, "hubspot", "crm", &flaky.url("/push"));
    let hook = c.webhook(
        &t,
        json!({"url": hooks.url("/in"), "events": ["*"],
               "signingSecret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
    );

    // Kill moments: when these many writes have been answered (sorted random fractions).
    let mut marks: Vec<usize> = (0..KILLS_DURING_WRITES)
        .map(|_| rng.between(writes as u64 / 10, writes as u64 * 9 / 10) as usize)
        .collect();
    marks.sort_unstable();
    let mut crashes = Crashes::default();
    let started = Instant::now();
    let writers = start_writers(&srv.base, &t.auth, CLIENTS, writes, true, "load");
    for mark in &marks {
        while writers.done.load(Ordering::SeqCst) < *mark {
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "writes stalled"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        // A little more randomness than the mark alone gives.
        std::thread::sleep(Duration::from_millis(rng.between(0, 50)));
        println!(
            "kill {} at {} answered writes ({:.1} s)",
            crashes.restarts + 1,
            writers.done.load(Ordering::SeqCst),
            secs(started)
        );
        crashes.kill_and_restart(&mut srv, &db, &args, &writers.base);
    }
    let base = std::sync::Arc::clone(&writers.base);
    let unanswered = std::sync::Arc::clone(&writers.unanswered_attempts);
    let answered = writers.join();
    let write_secs = secs(started);
    let writes_per_sec = answered.len() as f64 / write_secs;
    println!(
        "writes: {} answered in {write_secs:.1} s = {writes_per_sec:.0} writes/s \
         (with {} restarts, {:.1} s spent restarting)",
        answered.len(),
        crashes.restarts,
        crashes.downtime.as_secs_f64()
    );
    // One more kill while pushes and deliveries drain.
    std::thread::sleep(Duration::from_millis(rng.between(200, 1500)));
    println!(
        "kill {} while draining ({} pushes, {} deliveries received so far)",
        crashes.restarts + 1,
        steady.push_count() + flaky.push_count(),
        hooks.distinct_delivered()
    );
    crashes.kill_and_restart(&mut srv, &db, &args, &base);

    // Wait until every owed delivery reached the endpoint (or give up and let the checks say
    // what is missing).
    let owed = 3 * writes;
    let drain_started = Instant::now();
    while hooks.distinct_delivered() < owed && drain_started.elapsed() < Duration::from_secs(150) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let total_secs = secs(started);
    println!(
        "drained in {:.1} s after the writes ({total_secs:.1} s in all)",
        secs(drain_started)
    );
    let c = Client::new(&srv);

    // 1. Every answered write is stored, exactly once per Idempotency-Key.
    assert_eq!(answered.len(), writes);
    let keys: HashSet<&str> = answered.iter().map(|a| a.key.as_str()).collect();
    assert_eq!(keys.len(), writes);
    let mut stored: HashSet<String> = HashSet::new();
    for page in 1.. {
        let l = c.api(
            &t,
            "GET",
            &format!("/api/customers?page={page}&pageSize=200"),
            &[],
            None,
        );
        assert_eq!(l.status, 200);
        let items = l.json().as_array().unwrap().clone();
        if items.is_empty() {
            break;
        }
        for v in items {
            assert!(stored.insert(v["id"].as_str().unwrap().to_string()));
        }
    }
    let answered_ids: HashSet<&str> = answered.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(answered_ids.len(), writes, "two keys answered with one id");
    for id in &answered_ids {
        assert!(stored.contains(*id), "answered write {id} is lost");
    }
    assert_eq!(stored.len(), writes, "a retried write was stored twice");
    let replayed = answered.iter().filter(|a| a.replayed).count();
    let retried = answered.iter().filter(|a| a.attempts > 1).count();

    // 2. Every sync is final; each target is final.
    let syncs: Vec<String> = answered.iter().map(|a| a.sync.clone()).collect();
    let auth = t.auth.clone();
    let base_url = srv.base.clone();
    let finals: Vec<Value> = parallel_map(&syncs, CLIENTS, |sync| {
        poll(Duration::from_secs(60), || {
            let r = AGENT
                .with(|agent| {
                    try_call(
                        agent,
                        &base_url,
                        "GET",
                        &format!("/api/syncs/{sync}"),
                        &[("Authorization", &auth)],
                        None,
                    )
                })
                .ok()?;
            let v = r.json();
            is_final(&v).then_some(v)
        })
    });
    let mut target_status: HashMap<(String, String), (String, u64)> = HashMap::new();
    let mut sync_statuses: HashMap<String, usize> = HashMap::new();
    for s in &finals {
        *sync_statuses
            .entry(s["status"].as_str().unwrap().to_string())
            .or_default() += 1;
        let targets = s["targets"].as_array().unwrap();
        assert_eq!(targets.len(), 2, "{s}");
        for tg in targets {
            let st = tg["status"].as_str().unwrap();
            assert!(st == "succeeded" || st == "failed", "{s}");
            target_status.insert(
                (
                    s["id"].as_str().unwrap().to_string(),
                    tg["app"].as_str().unwrap().to_string(),
                ),
                (st.to_string(), tg["attempts"].as_u64().unwrap()),
            );
        }
    }

    // 3. Every push arrived; copies of one push carry one Idempotency-Key.
    let mut push_figures = Vec::new();
    for (name, sink) in [("quickbooks", &steady), ("hubspot", &flaky)] {
        let seen = sink.pushes();
        let mut by_sync: HashMap<&str, (HashSet<&str>, usize, usize)> = HashMap::new();
        for p in &seen {
            let e = by_sync.entry(p.sync.as_str()).or_default();
            e.0.insert(p.key.as_str());
            e.1 += 1;
            if p.answered == 201 {
                e.2 += 1;
            }
        }
        let mut duplicates = 0;
        let mut failed = 0;
        for sync in &syncs {
            let (keys, _, ok) = by_sync
                .get(sync.as_str())
                .unwrap_or_else(|| panic!("{name} never received the push of {sync}"));
            assert_eq!(keys.len(), 1, "{name}: {sync} came with keys {keys:?}");
            let (status, _) = &target_status[&(sync.clone(), name.to_string())];
            match status.as_str() {
                "succeeded" => assert!(*ok >= 1, "{name}: {sync} succeeded without a 201"),
                _ => failed += 1,
            }
            duplicates += ok.saturating_sub(1);
        }
        assert!(
            by_sync.len() == syncs.len(),
            "{name} got pushes of unknown syncs"
        );
        if name == "quickbooks" {
            assert_eq!(failed, 0, "the steady source has failed targets");
        }
        push_figures.push(format!(
            "{name}: {} requests, {} answered 503, {duplicates} accepted twice (same key), \
             {failed} targets failed",
            seen.len(),
            seen.iter().filter(|p| p.answered == 503).count()
        ));
    }

    // 4. Every owed webhook was delivered or is marked failed; delivered ones arrived.
    // The list is not paged (over 10 MiB here): read it with a larger limit than ureq's.
    let list_deliveries = || -> Vec<Value> {
        let mut r = c
            .agent
            .get(format!(
                "{}/admin/accounts/{}/webhooks/{hook}/deliveries",
                c.base, t.id
            ))
            .header("Authorization", format!("Bearer {ADMIN}"))
            .call()
            .unwrap();
        assert_eq!(r.status(), 200);
        let text = r
            .body_mut()
            .with_config()
            .limit(512 * 1024 * 1024)
            .read_to_string()
            .unwrap();
        serde_json::from_str::<Value>(&text)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    let list_started = Instant::now();
    let deliveries = poll(Duration::from_secs(60), || {
        let l = list_deliveries();
        l.iter().all(|d| d["status"] != "pending").then_some(l)
    });
    println!(
        "deliveries list: {} entries in one answer ({:.1} s to list)",
        deliveries.len(),
        secs(list_started)
    );
    assert_eq!(deliveries.len(), owed, "deliveries owed");
    let mut per_sync: HashMap<&str, usize> = HashMap::new();
    let received: HashSet<String> = hooks
        .hooks_seen()
        .into_iter()
        .map(|h| h.webhook_id)
        .collect();
    let mut delivered = 0;
    let mut failed_deliveries = 0;
    for d in &deliveries {
        *per_sync.entry(d["syncId"].as_str().unwrap()).or_default() += 1;
        match d["status"].as_str().unwrap() {
            "delivered" => {
                delivered += 1;
                assert!(
                    received.contains(d["id"].as_str().unwrap()),
                    "delivered but never received: {d}"
                );
            }
            "failed" => failed_deliveries += 1,
            other => panic!("delivery status {other}: {d}"),
        }
    }
    for sync in &syncs {
        assert_eq!(
            per_sync.get(sync.as_str()),
            Some(&3),
            "deliveries of {sync}"
        );
    }
    let hook_requests = hooks.hooks_seen().len();

    // 5. No panic, no error logged.
    let (n, errs) = bad_lines(&srv);
    let log_lines = crashes.log_lines + n;
    let mut error_lines = crashes.error_lines.clone();
    error_lines.extend(errs);
    for l in error_lines.iter().take(10) {
        println!("error line: {l}");
    }
    assert!(
        error_lines.is_empty(),
        "{} error or panic lines were logged",
        error_lines.len()
    );

    println!("---- load and crash figures ----");
    println!(
        "clients: {CLIENTS}, writes answered: {}, seed {seed}",
        answered.len()
    );
    println!("write phase: {write_secs:.1} s, {writes_per_sec:.0} writes/s (kills included)");
    println!(
        "restarts survived: {} (SIGKILL; {KILLS_DURING_WRITES} during writes, 1 while draining)",
        crashes.restarts
    );
    println!(
        "writes retried after a lost answer: {retried} ({replayed} answered by replay, {} attempts without answer)",
        unanswered.load(Ordering::SeqCst)
    );
    println!("syncs: {} final {sync_statuses:?}", finals.len());
    for f in &push_figures {
        println!("{f}");
    }
    println!(
        "deliveries: {owed} owed, {delivered} delivered, {failed_deliveries} failed; \
         {hook_requests} requests at the endpoint ({} resent after a kill)",
        hook_requests - received.len()
    );
    println!(
        "log lines: {log_lines}, error lines: {}; all done in {:.1} s",
        error_lines.len(),
        secs(started)
    );
}
