//! The native half of `wasm/bench/throughput.mjs`: the core-throughput case run by the core
//! directly, in memory. Prints one JSON line `{"opsPerSec", "cpuOpsPerSec", "n", "bodyBytes"}`:
//! the rate over wall time, and over the CPU time of the running thread (Linux
//! `/proc/thread-self/schedstat`; `null` elsewhere), which other load on the machine disturbs
//! less.
//!
//! The case: validate, authorize, route and plan a 1 KB invoice create with `X-Sync-Data:
//! push` to 2 connections and 1 webhook subscription, committed to a `MemoryStore`.
//! `throughput.mjs` builds the same requests (see `invoice_body` there) and runs them through
//! the wasm package with `MemoryHost`.
//!
//! Usage: `cargo run --release -p writesync-wasm --example native_throughput -- [N] [WARMUP]`
#![allow(missing_docs)]

use serde_json::{json, Value};
use writesync_core::util::crypto::basic_auth_header;
use writesync_core::{ApiRequest, ApiResponse, Engine, EngineConfig, MemoryStore};

const ADMIN: &str = "bench-admin-token";
const T0: i64 = 1_790_000_000_000;

/// The same 1 KB invoice as `invoiceBody` in throughput.mjs.
fn invoice_body(customer_id: &str, i: usize) -> String {
    let pad = "x".repeat(150);
    let lines: Vec<Value> = (0..4)
        .map(|l| {
            json!({"description": format!("Line {l} of invoice {i}: consulting {pad}"),
                   "quantity": l + 1, "unitAmount": 12500 + l, "taxAmount": 100 * l})
        })
        .collect();
    json!({"number": format!("INV-{i:06}"), "customerId": customer_id,
           "issueDate": "2026-11-01", "dueDate": "2026-11-30", "currency": "EUR",
           "lines": lines})
    .to_string()
}

/// CPU time of this thread in nanoseconds (Linux), if available.
fn thread_cpu_ns() -> Option<u64> {
    #[allow(clippy::disallowed_methods)] // a benchmark host reads its own CPU clock
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

fn send(engine: &mut Engine, store: &mut MemoryStore, req: &ApiRequest) -> ApiResponse {
    engine.handle_with(req, T0, store)
}

fn admin(
    engine: &mut Engine,
    store: &mut MemoryStore,
    method: &str,
    path: &str,
    body: Value,
) -> Value {
    let req = ApiRequest::new(method, path)
        .header("Authorization", &format!("Bearer {ADMIN}"))
        .json(&body);
    let r = send(engine, store, &req);
    assert!(r.status == 201, "setup {path}: {} {}", r.status, r.body);
    r.body_json()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(5000);
    let warmup: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(500);

    let config = EngineConfig::new([9; 32]).with_admin_token(ADMIN);
    let mut engine = Engine::new(config);
    let mut store = MemoryStore::new();
    let e = &mut engine;
    let s = &mut store;
    let acct = admin(
        e,
        s,
        "POST",
        "/admin/accounts",
        json!({"domain": "bench.example.com", "writeEnabled": true}),
    );
    let id = acct["id"].as_str().unwrap_or_default().to_string();
    let key = admin(
        e,
        s,
        "POST",
        &format!("/admin/accounts/{id}/api-keys"),
        json!({"scopes": ["api.read", "api.write"]}),
    );
    let auth = basic_auth_header(
        key["key"].as_str().unwrap_or_default(),
        key["secret"].as_str().unwrap_or_default(),
    );
    admin(
        e,
        s,
        "POST",
        &format!("/admin/accounts/{id}/connections"),
        json!({"app": "quickbooks", "type": "accounting", "pushUrl": "https://quickbooks.example.com/push"}),
    );
    admin(
        e,
        s,
        "POST",
        &format!("/admin/accounts/{id}/connections"),
        json!({"app": "shopify", "type": "commerce", "pushUrl": "https://shopify.example.com/push"}),
    );
    admin(
        e,
        s,
        "POST",
        &format!("/admin/accounts/{id}/webhooks"),
        json!({"url": "https://hooks.example.com/in", "events": ["*"], "username": "hook", "password": "pw",
               "signingSecret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
    );
    let c = send(
        e,
        s,
        &ApiRequest::new("POST", "/api/customers")
            .header("Authorization", &auth)
            .json(&json!({"name": "Acme Ltd", "email": "ap@acme.example.com"})),
    );
    assert!(c.status == 201, "customer: {}", c.body);
    let cid = c.body_json()["id"].as_str().unwrap_or_default().to_string();

    let requests: Vec<ApiRequest> = (0..warmup + n)
        .map(|i| ApiRequest {
            method: "POST".into(),
            path: "/api/invoices".into(),
            headers: [
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json"),
                ("X-Sync-Data", "push"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            body: Some(invoice_body(&cid, i)),
        })
        .collect();
    let body_bytes = requests[0].body.as_deref().map_or(0, str::len);

    let mut run = |reqs: &[ApiRequest]| {
        for r in reqs {
            let a = engine.handle_with(r, T0, &mut store);
            assert!(a.status == 201, "{} {}", a.status, a.body);
        }
    };
    run(&requests[..warmup]);
    #[allow(clippy::disallowed_methods)] // a benchmark host measures wall time
    let start = std::time::Instant::now();
    let cpu_start = thread_cpu_ns();
    run(&requests[warmup..]);
    let secs = start.elapsed().as_secs_f64();
    let cpu = match (cpu_start, thread_cpu_ns()) {
        (Some(a), Some(b)) if b > a => Some(n as f64 / ((b - a) as f64 / 1e9)),
        _ => None,
    };
    println!(
        "{}",
        json!({"opsPerSec": n as f64 / secs, "cpuOpsPerSec": cpu, "n": n, "bodyBytes": body_bytes})
    );
}
