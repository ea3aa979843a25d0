//! End-to-end flows through the engine over an in-memory store.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::{json, Value};

#[test]
fn pushing_invoice_to_two_targets_then_webhooks() {
    let mut w = World::new();
    let t = w.tenant("acme.example.com", true);
    w.connect(&t, "quickbooks", "accounting");
    w.connect(&t, "shopify", "commerce");
    w.connect(&t, "hubspot", "crm");
    w.webhook(&t, json!(["*"]));
    let c = w.api(&t, "POST", "/api/customers", Some(customer()));
    assert_eq!(c.status, 201, "{}", c.body);
    let cid = c.body_json()["id"].as_str().unwrap().to_string();
    let r = w.api_h(
        &t,
        "POST",
        "/api/invoices",
        Some(invoice(&cid, "INV-1001")),
        &[("X-Sync-Data", "push"), ("X-Tracking-ID", "trk-1")],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.headers["X-Sync-Targets"], "quickbooks,shopify");
    assert_eq!(r.headers["X-Tracking-ID"], "trk-1");
    let body = r.body_json();
    assert_eq!(body["total"], 36300);
    assert_eq!(body["balance"], 36300);
    assert_eq!(body["status"], "open");
    let sync_id = r.headers["X-Sync-ID"].clone();
    let mut items = w.due();
    assert_eq!(items.len(), 2);
    items.sort_by_key(|i| !i.request.url.contains("quickbooks"));
    for it in &items {
        let b: Value = serde_json::from_str(&it.request.body).unwrap();
        assert_eq!(b["operation"], "create");
        assert_eq!(b["objectType"], "invoice");
        assert_eq!(b["trackingId"], "trk-1");
        assert_eq!(it.request.headers["X-Sync-ID"], sync_id);
    }
    w.report(&items[0].id, status(201, r#"{"id":"QB-1"}"#));
    w.report(&items[1].id, status(503, "busy"));
    let s = w
        .api(&t, "GET", &format!("/api/syncs/{sync_id}"), None)
        .body_json();
    assert_eq!(s["status"], "in_progress", "{s}");
    assert!(w
        .due()
        .iter()
        .all(|i| i.kind == writesync_core::WorkKind::Webhook));
    w.advance();
    let again = w.due();
    let push: Vec<_> = again
        .iter()
        .filter(|i| i.kind == writesync_core::WorkKind::Push)
        .collect();
    assert_eq!(push.len(), 1);
    assert_eq!(
        push[0].request.headers["Idempotency-Key"],
        items[1].request.headers["Idempotency-Key"]
    );
    w.report(&push[0].id.clone(), status(201, r#"{"id":"SH-9"}"#));
    let s = w
        .api(&t, "GET", &format!("/api/syncs/{sync_id}"), None)
        .body_json();
    assert_eq!(s["status"], "succeeded", "{s}");
    assert_eq!(s["trackingId"], "trk-1");
    let targets = s["targets"].as_array().unwrap();
    assert_eq!(targets[0]["remoteId"], "QB-1");
    assert_eq!(targets[1]["attempts"], 2);
    // Deliveries: 2 target updates + 1 complete.
    let hooks: Vec<_> = w
        .due()
        .into_iter()
        .filter(|i| i.kind == writesync_core::WorkKind::Webhook)
        .collect();
    let mut events: Vec<String> = hooks
        .iter()
        .map(|h| {
            serde_json::from_str::<Value>(&h.request.body).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    events.sort();
    // The first target update was already handed out above (and left unreported).
    assert_eq!(events, vec!["api_push_complete", "api_push_update"]);
    for h in &hooks {
        assert!(h.request.headers["Authorization"].starts_with("Basic "));
        assert!(h.request.headers["webhook-signature"].starts_with("v1,"));
        let b: Value = serde_json::from_str(&h.request.body).unwrap();
        assert_eq!(b["domain"], "acme.example.com");
        assert_eq!(b["data"]["syncId"], sync_id.as_str());
        assert_eq!(b["data"]["trackingId"], "trk-1");
    }
}

#[test]
fn validation_errors_change_nothing() {
    let mut w = World::new();
    let t = w.tenant("acme.example.com", true);
    w.connect(&t, "quickbooks", "accounting");
    let before = w.store.len();
    let r = w.api_h(&t, "POST", "/api/invoices",
        Some(json!({"number": "", "customerId": "nope", "issueDate": "2026-13-01", "currency": "EURO", "lines": []})),
        &[("X-Sync-Data", "push")]);
    assert_eq!(r.status, 422);
    assert_eq!(r.headers["Content-Type"], "application/problem+json");
    let errs = r.body_json()["errors"].as_array().unwrap().len();
    assert!(errs >= 5, "{}", r.body);
    assert_eq!(w.store.len(), before);
    assert!(w.due().is_empty());
}

#[test]
fn validation_answers_list_at_most_a_hundred_problems() {
    let mut w = World::new();
    let t = w.tenant("acme.example.com", true);
    let mut body = serde_json::Map::new();
    for i in 0..150 {
        body.insert(format!("extra{i}"), json!(i));
    }
    let r = w.api(&t, "POST", "/api/customers", Some(Value::Object(body)));
    assert_eq!(r.status, 422);
    let b = r.body_json();
    assert_eq!(b["errors"].as_array().unwrap().len(), 100);
    assert_eq!(
        b["detail"],
        "151 fields are invalid; the first 100 are listed"
    );
}

#[test]
fn deliveries_are_listed_newest_first_in_pages() {
    let mut w = World::new();
    let t = w.tenant("acme.example.com", true);
    let wid = w.webhook(&t, json!(["api_push_complete"]));
    // No connection: every pushing write completes at once with no_targets, one delivery each.
    let mut syncs = Vec::new();
    for i in 0..60 {
        let r = w.api_h(
            &t,
            "POST",
            "/api/customers",
            Some(json!({"name": format!("C{i}")})),
            &[("X-Sync-Data", "push")],
        );
        syncs.push(r.headers["X-Sync-ID"].clone());
        w.now += 1;
    }
    let newest_first: Vec<&str> = syncs.iter().rev().map(String::as_str).collect();
    let path = format!("/admin/accounts/{}/webhooks/{wid}/deliveries", t.id);
    // Without paging parameters the whole list is answered, as the contract shows it.
    let all = w.admin("GET", &path, None).body_json();
    let order: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["syncId"].as_str().unwrap())
        .collect();
    assert_eq!(order, newest_first);
    let p2 = w
        .admin("GET", &format!("{path}?page=2&pageSize=2"), None)
        .body_json();
    assert_eq!(p2.as_array().unwrap().len(), 2);
    assert_eq!(p2[0]["syncId"], newest_first[2]);
    assert_eq!(p2[1]["syncId"], newest_first[3]);
    let default_size = w.admin("GET", &format!("{path}?page=1"), None).body_json();
    assert_eq!(default_size.as_array().unwrap().len(), 50);
    let end = w
        .admin("GET", &format!("{path}?page=31&pageSize=2"), None)
        .body_json();
    assert_eq!(end, json!([]));
    assert_eq!(
        w.admin("GET", &format!("{path}?pageSize=0"), None).status,
        400
    );
}

fn store_entries(w: &World) -> Vec<(String, String)> {
    w.store
        .entries()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[test]
fn a_dry_run_leaves_the_store_and_the_id_generator_as_they_were() {
    let push = [("X-Sync-Data", "push"), ("Idempotency-Key", "dry-1")];
    // Two identical worlds; only `dry` sees dry runs before the same real writes.
    let mut worlds: Vec<(World, Tenant)> = (0..2)
        .map(|_| {
            let mut w = World::new();
            let t = w.tenant("acme.example.com", true);
            w.connect(&t, "crm", "crm");
            (w, t)
        })
        .collect();
    // Every request draws its request id; the other world sends the same requests refused
    // at their query (`dryRun=no`), so that only the dry runs' own draws could differ.
    for (n, (w, t)) in worlds.iter_mut().enumerate() {
        let q = if n == 0 { "true" } else { "no" };
        let before = store_entries(w);
        let r = w.api_h(
            t,
            "POST",
            &format!("/api/customers?dryRun={q}"),
            Some(customer()),
            &push,
        );
        let bad = w.api(
            t,
            "POST",
            &format!("/api/customers?dryRun={q}"),
            Some(json!({"name": ""})),
        );
        assert_eq!(store_entries(w), before, "a dry run stored something");
        if n == 1 {
            assert_eq!(r.status, 400, "{}", r.body);
            assert!(r.body.contains("dryRun"), "{}", r.body);
            continue;
        }
        assert_eq!(r.status, 200, "{}", r.body);
        let b = r.body_json();
        assert_eq!(b["valid"], true);
        assert_eq!(b["targets"], json!(["crm"]));
        assert_eq!(b["object"]["name"], customer()["name"]);
        for gone in ["id", "version", "createdAt", "updatedAt"] {
            assert!(b["object"].get(gone).is_none(), "{gone} in {b}");
        }
        assert!(!r.headers.contains_key("X-Sync-ID"));
        // Refusals are those of the real write.
        let real_bad = w.api(t, "POST", "/api/customers", Some(json!({"name": ""})));
        assert_eq!(bad.status, 422);
        assert_eq!(bad.body_json()["errors"], real_bad.body_json()["errors"]);
    }
    let (w, t) = &mut worlds[1];
    w.api(t, "POST", "/api/customers", Some(json!({"name": ""})));
    // The real write after the dry runs: not an idempotent replay, and the same ids as in the
    // world that saw no dry run.
    let mut answers = Vec::new();
    for (w, t) in worlds.iter_mut() {
        let r = w.api_h(t, "POST", "/api/customers", Some(customer()), &push);
        assert_eq!(r.status, 201, "{}", r.body);
        answers.push((r.body, r.headers.get("X-Sync-ID").cloned()));
    }
    assert_eq!(answers[0], answers[1]);
    // An update's dry run answers the object as merged, without storing it.
    let (w, t) = &mut worlds[0];
    let id = serde_json::from_str::<Value>(&answers[0].0).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = store_entries(w);
    let path = format!("/api/customers/{id}?dryRun=true");
    let r = w.api(
        t,
        "PATCH",
        &path,
        Some(json!({"email": "new@acme.example.com"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body_json()["object"]["email"], "new@acme.example.com");
    assert_eq!(r.body_json()["targets"], json!([]));
    assert_eq!(store_entries(w), before);
    let stale = w.api_h(
        t,
        "PATCH",
        &path,
        Some(json!({"email": "x@y.example"})),
        &[("If-Match", "9")],
    );
    assert_eq!(stale.status, 412, "{}", stale.body);
}
