//! The case of the core benchmark, shared by `core_throughput.rs` (criterion, time) and
//! `examples/plan_loop.rs` (a plain loop, for counting instructions under callgrind): an
//! engine and store with one tenant, and a 1 KB invoice create pushed to 2 connections with 1
//! webhook subscription.

use serde_json::{json, Value};
use writesync_core::util::crypto::basic_auth_header;
use writesync_core::{ApiRequest, Engine, EngineConfig, MemoryStore};

/// The time every request of the case is planned at.
pub(crate) const NOW: i64 = 1_790_000_000_000;

/// An engine and store with one tenant, 2 accounting connections, 1 webhook, a customer and an
/// income account; answers the request to plan (checked to plan once as it should) and its
/// body.
pub(crate) fn setup() -> (Engine, MemoryStore, ApiRequest, String) {
    let mut store = MemoryStore::new();
    let mut engine = Engine::new(EngineConfig::new([3; 32]).with_admin_token("bench"));
    let mut admin = |engine: &mut Engine, m: &str, p: &str, b: Value| {
        let r = ApiRequest::new(m, p)
            .header("Authorization", "Bearer bench")
            .json(&b);
        engine.handle_with(&r, NOW, &mut store).body_json()
    };
    let a = admin(
        &mut engine,
        "POST",
        "/admin/accounts",
        json!({"domain": "bench.example.com", "writeEnabled": true}),
    );
    let aid = a["id"].as_str().unwrap().to_string();
    let k = admin(
        &mut engine,
        "POST",
        &format!("/admin/accounts/{aid}/api-keys"),
        json!({"scopes": ["api.read", "api.write"]}),
    );
    for app in ["quickbooks", "xero"] {
        admin(
            &mut engine,
            "POST",
            &format!("/admin/accounts/{aid}/connections"),
            json!({"app": app, "type": "accounting", "pushUrl": format!("https://{app}.example.com/push")}),
        );
    }
    admin(
        &mut engine,
        "POST",
        &format!("/admin/accounts/{aid}/webhooks"),
        json!({"url": "https://hooks.example.com/in", "events": ["*"], "username": "u", "password": "p"}),
    );
    let auth = basic_auth_header(k["key"].as_str().unwrap(), k["secret"].as_str().unwrap());
    let mut api = |engine: &mut Engine, p: &str, b: Value| {
        let r = ApiRequest::new("POST", p)
            .header("Authorization", &auth)
            .json(&b);
        engine.handle_with(&r, NOW, &mut store).body_json()
    };
    let c = api(
        &mut engine,
        "/api/customers",
        json!({"name": "Acme Ltd", "email": "ap@acme.example.com"}),
    );
    let acc = api(
        &mut engine,
        "/api/accounts",
        json!({"code": "4000", "name": "Sales", "type": "income"}),
    );
    let body = invoice_body(c["id"].as_str().unwrap(), acc["id"].as_str().unwrap());
    let text = body.to_string();
    assert!(
        (950..=1150).contains(&text.len()),
        "body is {} bytes",
        text.len()
    );
    let req = ApiRequest::new("POST", "/api/invoices")
        .header("Authorization", &auth)
        .header("Content-Type", "application/json")
        .header("X-Sync-Data", "push")
        .header("X-Tracking-ID", "bench-tracking-id");
    let req = ApiRequest {
        body: Some(text.clone()),
        ..req
    };
    // The case is what it says: the request is planned, pushed to both connections.
    let step = engine.handle(&req, NOW, &store);
    assert_eq!(step.response.status, 201, "{}", step.response.body);
    assert_eq!(step.response.headers["X-Sync-Targets"], "quickbooks,xero");
    engine.finish(&step);
    (engine, store, req, text)
}

fn invoice_body(customer: &str, account: &str) -> Value {
    let lines: Vec<Value> = (0..5)
        .map(|i| json!({"description": format!("Professional services, phase {i}"), "quantity": 1.5 + i as f64,
                        "unitAmount": 12_500 + i * 100, "accountId": account, "taxAmount": 1_900 + i * 10}))
        .collect();
    json!({"number": "INV-2026-000123", "customerId": customer, "issueDate": "2026-11-01",
           "dueDate": "2026-12-01", "currency": "EUR", "memo": "Thank you for your business. Payment by bank transfer.", "lines": lines})
}
