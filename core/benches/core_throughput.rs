//! Core throughput: validate, authorize, route and plan a 1 KB invoice create with push to 2
//! connections and 1 webhook subscription, in memory; against a baseline that parses the same
//! body into `serde_json::Value` and validates it against an equivalent JSON Schema with the
//! `jsonschema` crate, in the same run.
//!
//! Run: `cargo bench -p writesync-core --bench core_throughput`.
// Benchmark code: a failed unwrap is a failed setup.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};
use std::hint::black_box;
use writesync_core::util::crypto::basic_auth_header;
use writesync_core::{ApiRequest, Engine, EngineConfig, MemoryStore};

const NOW: i64 = 1_790_000_000_000;

/// An engine and store with one tenant, 2 accounting connections, 1 webhook, a customer and an
/// income account; answers the request to plan.
fn setup() -> (Engine, MemoryStore, ApiRequest, String) {
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

/// The same rules as the engine's invoice validation, as far as JSON Schema can say them.
fn invoice_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": false,
        "required": ["number", "customerId", "issueDate", "dueDate", "currency", "lines"],
        "properties": {
            "number": {"type": "string", "minLength": 1, "maxLength": 64},
            "customerId": {"type": "string", "minLength": 1, "maxLength": 255},
            "issueDate": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
            "dueDate": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "memo": {"type": "string", "maxLength": 1000},
            "lines": {"type": "array", "minItems": 1, "items": {
                "type": "object",
                "additionalProperties": false,
                "required": ["description", "quantity", "unitAmount"],
                "properties": {
                    "description": {"type": "string", "minLength": 1, "maxLength": 1000},
                    "quantity": {"type": "number", "exclusiveMinimum": 0},
                    "unitAmount": {"type": "integer", "minimum": 0},
                    "accountId": {"type": "string", "maxLength": 255},
                    "taxAmount": {"type": "integer", "minimum": 0}
                }
            }}
        }
    })
}

fn bench(c: &mut Criterion) {
    let (mut engine, store, req, text) = setup();
    let step = engine.handle(&req, NOW, &store);
    assert_eq!(step.response.status, 201, "{}", step.response.body);
    assert_eq!(step.response.headers["X-Sync-Targets"], "quickbooks,xero");
    engine.finish(&step);

    let mut g = c.benchmark_group("invoice_create_1kb");
    g.throughput(Throughput::Elements(1));
    g.bench_function("engine_validate_authorize_route_plan", |b| {
        b.iter(|| {
            let step = engine.handle(black_box(&req), NOW, &store);
            engine.finish(&step);
            black_box(step.batch.ops.len())
        })
    });
    let schema = invoice_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let parsed: Value = serde_json::from_str(&text).unwrap();
    assert!(validator.is_valid(&parsed));
    g.bench_function("baseline_serde_value_jsonschema", |b| {
        b.iter(|| {
            let v: Value = serde_json::from_str(black_box(&text)).unwrap();
            black_box(validator.is_valid(&v))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
