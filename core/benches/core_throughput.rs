//! Core throughput: validate, authorize, route and plan a 1 KB invoice create with push to 2
//! connections and 1 webhook subscription, in memory; against a baseline that parses the same
//! body into `serde_json::Value` and validates it against an equivalent JSON Schema with the
//! `jsonschema` crate, in the same run.
//!
//! Run: `cargo bench -p writesync-core --bench core_throughput`.
// Benchmark code: a failed unwrap is a failed setup.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod plan_case;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use plan_case::{setup, NOW};
use serde_json::{json, Value};
use std::hint::black_box;

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
