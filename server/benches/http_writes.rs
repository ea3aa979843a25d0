//! Writes per second of the HTTP server at 8 concurrent clients (no crashes): the release
//! `writesync serve` on a fresh SQLite file, 8 client threads each on one keep-alive
//! connection, every write a `POST /api/customers` with its own Idempotency-Key.
//!
//! Two cases: plain writes (the CDM only), and pushing writes (`X-Sync-Data: push`) to two
//! sources and one webhook endpoint on 127.0.0.1, with the push and webhook workers running
//! beside the writes. Prints one line per case: writes, seconds, writes per second, and how
//! far the pushes and deliveries had got when the last write was answered.
//!
//! `cargo bench -p writesync-server --bench http_writes`; `WRITESYNC_BENCH_WRITES` (default
//! 20000) and `WRITESYNC_BENCH_CLIENTS` (default 8) change the size.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/load.rs"]
mod load;

use std::time::Instant;

use common::{Client, Server};
use load::{secs, start_writers, Sink};
use serde_json::json;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let writes = env_or("WRITESYNC_BENCH_WRITES", 20_000);
    let clients = env_or("WRITESYNC_BENCH_CLIENTS", 8);
    println!("http_writes: {writes} writes from {clients} concurrent clients per case");
    for push in [false, true] {
        let steady = Sink::source("quickbooks", 0, 7);
        let other = Sink::source("hubspot", 0, 11);
        let hooks = Sink::hooks("hooks");
        let dir = tempfile::tempdir().unwrap();
        let srv = Server::start(
            &dir.path().join("bench.db"),
            &["--allow-target-cidr", "127.0.0.0/8"],
        );
        let c = Client::new(&srv);
        let t = c.tenant("bench.example.com");
        if push {
            c.connect(&t, "quickbooks", "accounting", &steady.url("/push"));
            c.connect(&t, "hubspot", "crm", &other.url("/push"));
            c.webhook(&t, json!({"url": hooks.url("/in"), "events": ["*"]}));
        }
        // Warm-up: connections, page cache, WAL.
        start_writers(&srv.base, &t.auth, clients, 500, push, "warm").join();
        let started = Instant::now();
        let answered = start_writers(&srv.base, &t.auth, clients, writes, push, "bench").join();
        let s = secs(started);
        assert_eq!(answered.len(), writes);
        let label = if push {
            "pushing writes (2 sources, 1 webhook)"
        } else {
            "plain writes"
        };
        let tail = if push {
            format!(
                "; by then {} pushes and {} deliveries sent",
                steady.push_count() + other.push_count(),
                hooks.distinct_delivered()
            )
        } else {
            String::new()
        };
        println!(
            "{label}: {writes} in {s:.2} s = {:.0} writes/s{tail}",
            writes as f64 / s
        );
    }
}
