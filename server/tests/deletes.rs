//! `DELETE /api/{customers,vendors,accounts}/{id}` over real HTTP: 204 without a body, 404
//! afterwards, 409 naming the referrer, an idempotent replay, and the pushed deletion reaching
//! only the source that holds a remote id for the object (also after a restart).
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;
use serde_json::json;
use writesync_demo::fake::{FakeServer, Reply};

fn fast_loopback() -> Vec<&'static str> {
    [&FAST[..], &ALLOW_LOOPBACK[..]].concat()
}

#[test]
fn a_pushed_delete_reaches_the_source_that_holds_the_object() {
    let qb = FakeServer::source("quickbooks").unwrap();
    let xero = FakeServer::source("xero").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let srv = Server::start(&db, &fast_loopback());
    let c = Client::new(&srv);
    let t = c.tenant("acme.example.com");
    c.connect(&t, "quickbooks", "accounting", &qb.url("/push"));
    c.connect(&t, "xero", "accounting", &xero.url("/push"));
    // xero refuses the customer for good: it never holds a remote id for it.
    xero.set_always(Some(Reply::status(400)));
    let push = [("X-Sync-Data", "push")];
    let created = c.api(&t, "POST", "/api/customers", &push, Some(customer("Acme")));
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json()["id"].as_str().unwrap().to_string();
    let s = c.wait_sync(&t, created.header("X-Sync-ID").unwrap());
    assert_eq!(s["status"], "partially_failed", "{s}");
    let remote = s["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["app"] == "quickbooks")
        .unwrap()["remoteId"]
        .as_str()
        .unwrap()
        .to_string();
    xero.set_always(None);
    let xero_before = xero.count();

    // A customer an invoice refers to: 409 naming the invoice.
    let other = c.api(&t, "POST", "/api/customers", &[], Some(customer("Other")));
    let other_id = other.json()["id"].as_str().unwrap().to_string();
    let inv = c.api(
        &t,
        "POST",
        "/api/invoices",
        &[],
        Some(
            json!({"number": "INV-1", "customerId": other_id, "issueDate": "2026-11-01",
                    "dueDate": "2026-11-30", "currency": "EUR",
                    "lines": [{"description": "x", "quantity": 1, "unitAmount": 100}]}),
        ),
    );
    assert_eq!(inv.status, 201, "{}", inv.text);
    let inv_id = inv.json()["id"].as_str().unwrap().to_string();
    let r = c.api(
        &t,
        "DELETE",
        &format!("/api/customers/{other_id}"),
        &[],
        None,
    );
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.header("Content-Type"), Some("application/problem+json"));
    assert_eq!(r.json()["type"], "/problems/conflict");
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains(&format!("invoice {inv_id}")));

    // The pushed delete.
    let path = format!("/api/customers/{id}");
    let d = c.api(
        &t,
        "DELETE",
        &path,
        &[
            ("X-Sync-Data", "push"),
            ("X-Tracking-ID", "gdpr-9"),
            ("Idempotency-Key", "erase-acme"),
            ("If-Match", "1"),
        ],
        None,
    );
    assert_eq!(d.status, 204, "{}", d.text);
    assert!(d.text.is_empty());
    assert_eq!(d.header("X-Sync-Targets"), Some("quickbooks"));
    assert_eq!(d.header("X-Tracking-ID"), Some("gdpr-9"));
    let sync = d.header("X-Sync-ID").unwrap().to_string();
    assert_eq!(c.api(&t, "GET", &path, &[], None).status, 404);
    let s = c.wait_sync(&t, &sync);
    assert_eq!(s["status"], "succeeded", "{s}");
    assert_eq!(s["operation"], "delete");
    assert_eq!(s["trackingId"], "gdpr-9");
    let sent: Vec<_> = qb
        .received()
        .into_iter()
        .filter(|r| r.header("x-sync-id") == Some(sync.as_str()))
        .collect();
    assert_eq!(sent.len(), 1);
    let body = sent[0].json();
    assert_eq!(body["operation"], "delete");
    assert_eq!(body["objectType"], "customer");
    assert_eq!(body["remoteId"], remote.as_str());
    assert_eq!(body["object"]["id"], id.as_str());
    assert_eq!(body["object"]["name"], "Acme");
    assert_eq!(sent[0].header("x-tracking-id"), Some("gdpr-9"));
    assert!(sent[0].header("idempotency-key").is_some());
    assert_eq!(xero.count(), xero_before, "xero holds no id: not a target");

    // The same request again: the first answer, nothing new sent.
    let again = c.api(
        &t,
        "DELETE",
        &path,
        &[
            ("X-Sync-Data", "push"),
            ("X-Tracking-ID", "gdpr-9"),
            ("Idempotency-Key", "erase-acme"),
            ("If-Match", "1"),
        ],
        None,
    );
    assert_eq!(again.status, 204, "{}", again.text);
    assert_eq!(again.header("Idempotency-Replayed"), Some("true"));
    assert_eq!(again.header("X-Sync-ID"), Some(sync.as_str()));
    // Without the key it is simply gone.
    assert_eq!(c.api(&t, "DELETE", &path, &[], None).status, 404);

    // After a restart the deletion holds, and the list no longer has it.
    drop(srv);
    let srv = Server::start(&db, &fast_loopback());
    let c = Client::new(&srv);
    assert_eq!(c.api(&t, "GET", &path, &[], None).status, 404);
    let list = c.api(&t, "GET", "/api/customers", &[], None).json();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![other_id.as_str()]);
    // A read-only key may not delete.
    let reader = c.tenant_with("reader.example.com", true, &["api.read"]);
    let r = c.api(&reader, "DELETE", "/api/accounts/x", &[], None);
    assert_eq!(r.status, 403, "{}", r.text);
}
