//! Finding and repairing syncs through `writesync serve` (contract section 7): `GET
//! /api/syncs` with filters, a source's structured error, and `POST /api/syncs/{id}/retry`
//! pushing again with the first attempt's `Idempotency-Key`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;
use serde_json::{json, Value};
use writesync_demo::fake::{FakeServer, Reply};

fn ids(r: &Resp) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn syncs_are_found_by_filters_and_a_failed_target_is_retried_with_its_idempotency_key() {
    let qb = FakeServer::source("quickbooks").unwrap();
    let hs = FakeServer::source("hubspot").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args = [&FAST[..], &ALLOW_LOOPBACK[..]].concat();
    let srv = Server::start(&dir.path().join("t.db"), &args);
    let c = Client::new(&srv);
    let t = c.tenant("acme.example.com");
    c.connect(&t, "quickbooks", "accounting", &qb.url("/push"));
    c.connect(&t, "hubspot", "crm", &hs.url("/push"));
    // QuickBooks refuses the first push for good, with a structured body.
    qb.queue(vec![Reply {
        status: 422,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: r#"{"error":{"code":"DUPLICATE_NAME","message":"name taken","field":"name"}}"#.into(),
    }]);
    let first = c.api(
        &t,
        "POST",
        "/api/customers",
        &[("X-Sync-Data", "push"), ("X-Tracking-ID", "order-7")],
        Some(customer("Acme Ltd")),
    );
    assert_eq!(first.status, 201, "{}", first.text);
    let first_id = first.header("X-Sync-ID").unwrap().to_string();
    let done = c.wait_sync(&t, &first_id);
    assert_eq!(done["status"], "partially_failed", "{done}");
    let second = c.api(
        &t,
        "POST",
        "/api/customers",
        &[("X-Sync-Data", "push"), ("X-Sync-Sources", "hubspot")],
        Some(customer("Beta")),
    );
    let second_id = second.header("X-Sync-ID").unwrap().to_string();
    c.wait_sync(&t, &second_id);

    // The list, newest first, and its filters.
    let get = |q: &str| c.api(&t, "GET", &format!("/api/syncs{q}"), &[], None);
    assert_eq!(ids(&get("")), vec![second_id.clone(), first_id.clone()]);
    assert_eq!(
        ids(&get("?status=partially_failed")),
        vec![first_id.clone()]
    );
    assert_eq!(ids(&get("?trackingId=order-7")), vec![first_id.clone()]);
    assert_eq!(ids(&get("?app=quickbooks")), vec![first_id.clone()]);
    assert_eq!(
        ids(&get("?app=hubspot&pageSize=1&page=2")),
        vec![first_id.clone()]
    );
    assert_eq!(ids(&get("?objectType=customer")).len(), 2);
    assert!(ids(&get("?until=2000-01-01T00:00:00Z")).is_empty());
    let listed = get("?status=partially_failed").json();
    let qb_target = listed[0]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["app"] == "quickbooks")
        .unwrap()
        .clone();
    assert_eq!(
        qb_target["error"],
        json!({"status": 422, "code": "DUPLICATE_NAME", "message": "name taken", "field": "name"})
    );
    for q in ["?colour=red", "?since=soon", "?pageSize=0", "?status=done"] {
        let r = get(q);
        assert_eq!(r.status, 400, "{q}: {}", r.text);
        assert_eq!(r.json()["type"], "/problems/invalid-query");
    }

    // Retry: a name that is no target is refused, then quickbooks is pushed again.
    let retry = format!("/api/syncs/{first_id}/retry");
    let refused = c.api(&t, "POST", &retry, &[], Some(json!({"apps": ["xero"]})));
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert_eq!(refused.json()["errors"][0]["pointer"], "/apps/0");
    let nothing = c.api(
        &t,
        "POST",
        &format!("/api/syncs/{second_id}/retry"),
        &[],
        None,
    );
    assert_eq!(nothing.status, 409, "{}", nothing.text);
    assert_eq!(nothing.json()["type"], "/problems/nothing-to-retry");
    let before = qb.count();
    let r = c.api(
        &t,
        "POST",
        &retry,
        &[],
        Some(json!({"apps": ["quickbooks"]})),
    );
    assert_eq!(r.status, 202, "{}", r.text);
    let v: Value = r.json();
    assert_eq!(v["id"], first_id.as_str());
    let done = c.wait_sync(&t, &first_id);
    assert_eq!(done["status"], "succeeded", "{done}");
    let got = qb.received();
    assert_eq!(got.len(), before + 1);
    let key = |i: usize| got[i].header("idempotency-key").unwrap().to_string();
    assert_eq!(
        key(0),
        key(before),
        "the retried push keeps its Idempotency-Key"
    );
    assert_eq!(got[before].header("x-tracking-id"), Some("order-7"));
    let again = c.api(&t, "POST", &retry, &[], None);
    assert_eq!(again.status, 409, "{}", again.text);
}
