//! `GET /api/meta/{objectType}` over real HTTP against `writesync serve`: the fields of each
//! type, and per connection what its connector requires; what the answer predicts is what a
//! write naming that connection in `X-Sync-Sources` gets (`422` at each required pointer and at
//! `""` for each missing setting, or no requirement error at all). `?sources=` is read like the
//! header and refused like it, as `400 invalid-query`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;
use serde_json::{json, Value};

fn connect(c: &Client, t: &Tenant, body: Value) {
    let r = c.admin(
        "POST",
        &format!("/admin/accounts/{}/connections", t.id),
        Some(body),
    );
    assert_eq!(r.status, 201, "{}", r.text);
}

/// The pointers a write gets refused at when it names `app`.
fn refused_at(c: &Client, t: &Tenant, path: &str, app: &str, body: &Value) -> Vec<String> {
    let r = c.api(
        t,
        "POST",
        path,
        &[("X-Sync-Data", "push"), ("X-Sync-Sources", app)],
        Some(body.clone()),
    );
    match r.status {
        201 => Vec::new(),
        422 => r.json()["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["pointer"].as_str().unwrap().to_string())
            .collect(),
        other => panic!("{app}: {other} {}", r.text),
    }
}

/// What the meta answer predicts for `body`: each required pointer the body lacks (with `*`
/// as each element of its list), then `""` for each missing setting.
fn predicted(conn: &Value, body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for p in conn["requires"].as_array().unwrap() {
        let p = p.as_str().unwrap();
        match p.split_once("/*/") {
            Some((list, field)) => {
                for (n, e) in body[&list[1..]].as_array().unwrap().iter().enumerate() {
                    if e.get(field).is_none() {
                        out.push(format!("{list}/{n}/{field}"));
                    }
                }
            }
            None if body.pointer(p).is_none() => out.push(p.to_string()),
            None => {}
        }
    }
    for _ in conn["missingSettings"].as_array().unwrap() {
        out.push(String::new());
    }
    out
}

#[test]
fn meta_predicts_what_a_write_naming_each_target_gets() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("t.db"), &[]);
    let c = Client::new(&srv);
    let t = c.tenant("acme.example.com");
    c.connect(&t, "sage", "accounting", "https://sage.example.com/push");
    connect(
        &c,
        &t,
        json!({"app": "quickbooks", "type": "accounting", "connector": "quickbooks",
               "baseUrl": "https://qbo.example.com", "settings": {"realmId": "123145"}}),
    );
    connect(
        &c,
        &t,
        json!({"app": "xero", "type": "accounting", "connector": "xero", "baseUrl": "https://xero.example.com",
               "settings": {"tenantId": "5b7c7a3e-1f1a-4a55-9d3c-2a1f0e6b8c01", "expenseBankAccountCode": "090"}}),
    );
    connect(
        &c,
        &t,
        json!({"app": "hubspot", "type": "crm", "connector": "hubspot", "baseUrl": "https://hubspot.example.com",
               "settings": {"customerObject": "contacts"}}),
    );
    let vendor = c.api(
        &t,
        "POST",
        "/api/vendors",
        &[],
        Some(json!({"name": "Paper Co"})),
    );
    let vendor = vendor.json()["id"].as_str().unwrap().to_string();
    let cases = [
        (
            "expense",
            "/api/expenses",
            json!({"vendorId": vendor, "date": "2026-11-03", "currency": "EUR",
                   "lines": [{"description": "Paper", "amount": 4599}, {"description": "Ink", "amount": 100}]}),
        ),
        ("customer", "/api/customers", json!({"name": "Acme Ltd"})),
        (
            "bankTransaction",
            "/api/bank-transactions",
            json!({"bankAccount": "090", "date": "2026-11-21", "amount": -4599, "currency": "EUR",
                   "description": "Paper"}),
        ),
    ];
    for (t_name, path, body) in cases {
        let m = c.api(&t, "GET", &format!("/api/meta/{t_name}"), &[], None);
        assert_eq!(m.status, 200, "{}", m.text);
        assert!(m.header("X-Request-ID").is_some());
        let m = m.json();
        assert_eq!(m["objectType"], t_name);
        assert!(m["fields"].as_array().unwrap().len() >= 4);
        let conns = m["connections"].as_array().unwrap();
        assert_eq!(conns.len(), 4);
        for conn in conns {
            let app = conn["app"].as_str().unwrap();
            if conn["receives"] == false {
                assert_eq!(conn["requires"], json!([]), "{t_name} {app}");
                continue;
            }
            let want = predicted(conn, &body);
            let got = refused_at(&c, &t, path, app, &body);
            assert_eq!(got, want, "{t_name} {app}: {conn}");
        }
    }
    // What the answer says for these connections, spelled out.
    let m = c
        .api(
            &t,
            "GET",
            "/api/meta/expense?sources=quickbooks,xero",
            &[],
            None,
        )
        .json();
    let conns = m["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 2);
    assert_eq!(conns[0]["requires"], json!(["/lines/*/accountId"]));
    assert_eq!(conns[0]["missingSettings"], json!(["paymentAccountId"]));
    assert_eq!(conns[1]["missingSettings"], json!([]));
    let hub = c
        .api(&t, "GET", "/api/meta/customer?sources=crm", &[], None)
        .json();
    assert_eq!(hub["connections"][0]["requires"], json!(["/email"]));
}

#[test]
fn meta_refuses_like_the_header_and_echoes_the_tracking_id() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("t.db"), &[]);
    let c = Client::new(&srv);
    let t = c.tenant("acme.example.com");
    c.connect(&t, "myshop", "commerce", "https://shop.example.com/push");
    // A key with api.read alone reads it; no credentials is 401.
    let reader = c.tenant_with("reader.example.com", false, &["api.read"]);
    let r = c.api(&reader, "GET", "/api/meta/invoice", &[], None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["connections"], json!([]));
    assert_eq!(c.call("GET", "/api/meta/invoice", &[], None).status, 401);
    // The account's own app key is a known source, as for the header.
    let r = c.api(&t, "GET", "/api/meta/invoice?sources=MyShop", &[], None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["connections"][0]["receives"], true);
    // A bad list: the header's error as a 400 invalid-query.
    let q = c.api(&t, "GET", "/api/meta/invoice?sources=nosuchapp", &[], None);
    assert_eq!(q.status, 400);
    assert_eq!(q.json()["type"], "/problems/invalid-query");
    let h = c.api(
        &t,
        "POST",
        "/api/customers",
        &[("X-Sync-Data", "push"), ("X-Sync-Sources", "nosuchapp")],
        Some(json!({"name": "A"})),
    );
    assert_eq!(h.status, 400);
    assert_eq!(h.json()["type"], "/problems/invalid-header");
    let reason = |r: &Resp| {
        let d = r.json()["detail"].as_str().unwrap().to_string();
        d.split_once(": ").map(|x| x.1.to_string()).unwrap_or(d)
    };
    assert_eq!(reason(&q), reason(&h));
    for bad in [
        "/api/meta/invoice?sources=",
        "/api/meta/invoice?sources=crm,,xero",
        "/api/meta/invoice?page=1",
        "/api/meta/invoice?sources=crm&sources=xero",
    ] {
        let r = c.api(&t, "GET", bad, &[], None);
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
    // Unknown types are 404 problems; other methods 405; the tracking id comes back.
    for path in ["/api/meta/widget", "/api/meta/customers", "/api/meta"] {
        let r = c.api(&t, "GET", path, &[("X-Tracking-ID", "trk-9")], None);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.header("Content-Type"), Some("application/problem+json"));
        assert_eq!(r.header("X-Tracking-ID"), Some("trk-9"));
    }
    let r = c.api(&t, "DELETE", "/api/meta/customer", &[], None);
    assert_eq!(r.status, 405);
    let r = c.api(
        &t,
        "GET",
        "/api/meta/payment",
        &[("X-Tracking-ID", "trk-9")],
        None,
    );
    assert_eq!(r.header("X-Tracking-ID"), Some("trk-9"));
}
