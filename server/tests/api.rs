//! The data and admin API over real HTTP: authentication, scopes, write mode, tenant
//! isolation, validation, body limits, content types, header limits, idempotency.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use writesync_demo::fake::FakeServer;

fn setup(args: &[&str]) -> (tempfile::TempDir, Server, Client) {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("t.db"), args);
    let c = Client::new(&srv);
    (dir, srv, c)
}

#[test]
fn health_and_openapi() {
    let (_d, _srv, c) = setup(&[]);
    let h = c.call("GET", "/healthz", &[], None);
    assert_eq!(h.status, 200);
    let o = c.call("GET", "/openapi.json", &[], None);
    assert_eq!(o.status, 200);
    assert!(
        o.json()["openapi"].is_string(),
        "{}",
        &o.text[..100.min(o.text.len())]
    );
    assert!(o.json()["paths"]["/api/customers"].is_object());
}

#[test]
fn authentication_scopes_and_write_mode() {
    let (_d, _srv, c) = setup(&[]);
    let t = c.tenant("acme.example.com");
    // No credentials, wrong secret, unknown key: 401 with a Basic challenge.
    let r = c.call("GET", "/api/customers", &[], None);
    assert_eq!(r.status, 401);
    assert!(r.header("WWW-Authenticate").unwrap().starts_with("Basic"));
    assert!(r.header("X-Request-ID").is_some());
    let wrong = writesync_core::util::crypto::basic_auth_header(&t.key, "not-the-secret");
    let r = c.call("GET", "/api/customers", &[("Authorization", &wrong)], None);
    assert_eq!(r.status, 401);
    let unknown = writesync_core::util::crypto::basic_auth_header("wsk_nope", &t.secret);
    assert_eq!(
        c.call(
            "GET",
            "/api/customers",
            &[("Authorization", &unknown)],
            None
        )
        .status,
        401
    );
    // The admin API needs the bearer token.
    assert_eq!(
        c.call("POST", "/admin/accounts", &[], Some("{}")).status,
        401
    );
    let bad = c.call(
        "GET",
        "/admin/accounts/x",
        &[("Authorization", "Bearer wrong-token")],
        None,
    );
    assert_eq!(bad.status, 401);
    // A read-only key cannot write.
    let ro = c.tenant_with("readonly.example.com", true, &["api.read"]);
    let r = c.api(&ro, "POST", "/api/customers", &[], Some(customer("A")));
    assert_eq!(r.status, 403);
    let missing_scope = r.json()["type"].as_str().unwrap().to_string();
    assert_eq!(c.api(&ro, "GET", "/api/customers", &[], None).status, 200);
    // Write mode off: 403 with another problem type, saying write mode must be enabled.
    let off = c.tenant_with("off.example.com", false, &["api.read", "api.write"]);
    let r = c.api(&off, "POST", "/api/customers", &[], Some(customer("A")));
    assert_eq!(r.status, 403);
    assert_ne!(r.json()["type"].as_str().unwrap(), missing_scope);
    assert!(r.json()["detail"].as_str().unwrap().contains("write mode"));
    assert_eq!(r.header("Content-Type"), Some("application/problem+json"));
    // Turning it on lets the same write through; a deleted key stops working at once.
    let p = c.admin(
        "PATCH",
        &format!("/admin/accounts/{}", off.id),
        Some(json!({"writeEnabled": true})),
    );
    assert_eq!(p.status, 200);
    assert_eq!(
        c.api(&off, "POST", "/api/customers", &[], Some(customer("A")))
            .status,
        201
    );
    // A domain is unique.
    let dup = c.admin(
        "POST",
        "/admin/accounts",
        Some(json!({"domain": "OFF.example.com"})),
    );
    assert_eq!(dup.status, 409, "{}", dup.text);
    let d = c.admin(
        "DELETE",
        &format!("/admin/accounts/{}/api-keys/{}", off.id, off.key),
        None,
    );
    assert_eq!(d.status, 204);
    assert_eq!(c.api(&off, "GET", "/api/customers", &[], None).status, 401);
    let _ = t;
}

#[test]
fn tenants_cannot_see_each_other() {
    let fake = FakeServer::source("quickbooks").unwrap();
    let (_d, _srv, c) = setup(&[&FAST[..], &ALLOW_LOOPBACK[..]].concat());
    let a = c.tenant("a.example.com");
    let b = c.tenant("b.example.com");
    let conn_b = c.connect(&b, "quickbooks", "accounting", &fake.url("/push"));
    let hook_b = c.webhook(&b, json!({"url": fake.url("/hooks"), "events": ["*"]}));
    let r = c.api(
        &b,
        "POST",
        "/api/customers",
        &[("X-Sync-Data", "push")],
        Some(customer("B's customer")),
    );
    assert_eq!(r.status, 201);
    let cust_b = r.json()["id"].as_str().unwrap().to_string();
    let sync_b = r.header("X-Sync-ID").unwrap().to_string();
    c.wait_sync(&b, &sync_b);
    // Through A's key, B's ids are unknown: 404 like an id that does not exist.
    for path in [
        format!("/api/customers/{cust_b}"),
        format!("/api/syncs/{sync_b}"),
        "/api/customers/no-such-id".to_string(),
    ] {
        assert_eq!(c.api(&a, "GET", &path, &[], None).status, 404, "{path}");
    }
    let r = c.api(
        &a,
        "PATCH",
        &format!("/api/customers/{cust_b}"),
        &[],
        Some(json!({"phone": "+1 555 0100"})),
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        c.api(&a, "GET", "/api/customers", &[], None).json(),
        json!([])
    );
    // The admin API scopes connections, webhooks and deliveries by account too.
    for path in [
        format!("/admin/accounts/{}/connections/{conn_b}", a.id),
        format!("/admin/accounts/{}/webhooks/{hook_b}", a.id),
        format!("/admin/accounts/{}/webhooks/{hook_b}/deliveries", a.id),
    ] {
        assert_eq!(c.admin("GET", &path, None).status, 404, "{path}");
    }
    let del = c.admin(
        "DELETE",
        &format!("/admin/accounts/{}/connections/{conn_b}", a.id),
        None,
    );
    assert_eq!(del.status, 404);
    // B still sees its own.
    assert_eq!(
        c.api(&b, "GET", &format!("/api/customers/{cust_b}"), &[], None)
            .status,
        200
    );
}

#[test]
fn validation_errors_are_all_reported_and_nothing_is_stored() {
    let fake = FakeServer::source("quickbooks").unwrap();
    let hooks = FakeServer::webhook_receiver("hooks").unwrap();
    let (_d, _srv, c) = setup(&[&FAST[..], &ALLOW_LOOPBACK[..]].concat());
    let t = c.tenant("acme.example.com");
    c.connect(&t, "quickbooks", "accounting", &fake.url("/push"));
    c.webhook(&t, json!({"url": hooks.url("/h"), "events": ["*"]}));
    let r = c.api(
        &t,
        "POST",
        "/api/invoices",
        &[("X-Sync-Data", "push")],
        Some(
            json!({"number": "", "customerId": "nope", "issueDate": "2026-02-30",
                    "dueDate": "yesterday", "currency": "euro",
                    "lines": [{"description": "", "quantity": -1, "unitAmount": 1.5}],
                    "total": 5}),
        ),
    );
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.header("Content-Type"), Some("application/problem+json"));
    assert!(r.header("X-Sync-ID").is_none());
    let p = r.json();
    assert_eq!(p["status"], 422);
    assert!(p["type"].is_string() && p["title"].is_string() && p["detail"].is_string());
    let pointers: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    for expected in ["/customerId", "/issueDate", "/dueDate", "/currency"] {
        assert!(pointers.contains(&expected), "{pointers:?}");
    }
    assert!(
        pointers.iter().any(|p| p.starts_with("/lines/0/")),
        "{pointers:?}"
    );
    assert!(pointers.len() >= 6, "{pointers:?}");
    // A valid write with a unique-field clash is 422 with the pointer too.
    let cust = c.api(&t, "POST", "/api/customers", &[], Some(customer("Acme")));
    let cid = cust.json()["id"].as_str().unwrap().to_string();
    let inv = json!({"number": "INV-1", "customerId": cid, "issueDate": "2026-11-01",
                     "dueDate": "2026-11-30", "currency": "EUR",
                     "lines": [{"description": "x", "quantity": 1, "unitAmount": 100}]});
    assert_eq!(
        c.api(&t, "POST", "/api/invoices", &[], Some(inv.clone()))
            .status,
        201
    );
    let dup = c.api(
        &t,
        "POST",
        "/api/invoices",
        &[("X-Sync-Data", "push")],
        Some(inv),
    );
    assert_eq!(dup.status, 422);
    assert_eq!(dup.json()["errors"][0]["pointer"], "/number");
    // Nothing of the failed writes exists, and nothing was sent.
    let list = c.api(&t, "GET", "/api/invoices", &[], None).json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(fake.count(), 0);
    assert_eq!(hooks.count(), 0);
}

#[test]
fn body_limits_content_types_and_malformed_input() {
    let (_d, srv, c) = setup(&["--max-body-bytes", "2000"]);
    let t = c.tenant("acme.example.com");
    let auth = t.auth.clone();
    // 413 from Content-Length alone: the body is never sent, the answer comes anyway; also for
    // a length far beyond any memory.
    for len in ["5000", "100000000000", "9223372036854775807"] {
        let head = format!(
            "POST /api/customers HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
             Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
        );
        let answer = raw(&srv.addr, head.as_bytes(), Duration::from_secs(5));
        assert_eq!(raw_status(&answer), 413, "{len}: {answer}");
        let body: Value = serde_json::from_str(raw_body(&answer)).unwrap();
        assert_eq!(body["status"], 413);
        assert!(answer.contains("application/problem+json"));
        assert!(answer.to_ascii_lowercase().contains("x-request-id"));
    }
    // Over the limit with the body sent: 413 as well; chunked without a length too.
    let big = json!({"name": "x".repeat(3000)}).to_string();
    let r = c.call(
        "POST",
        "/api/customers",
        &[("Authorization", &auth)],
        Some(&big),
    );
    assert_eq!(r.status, 413);
    let chunk = format!("{:x}\r\n{big}\r\n0\r\n\r\n", big.len());
    let head = format!(
        "POST /api/customers HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunk}"
    );
    assert_eq!(
        raw_status(&raw(&srv.addr, head.as_bytes(), Duration::from_secs(5))),
        413
    );
    // A small chunked body is read and handled.
    let small = customer("Chunked Ltd").to_string();
    let head = format!(
        "POST /api/customers HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         {:x}\r\n{small}\r\n0\r\n\r\n",
        small.len()
    );
    assert_eq!(
        raw_status(&raw(&srv.addr, head.as_bytes(), Duration::from_secs(5))),
        201
    );
    // 415 for a body that is not JSON-typed; a +json type is fine.
    let r = c.call(
        "POST",
        "/api/customers",
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        Some(&customer("A").to_string()),
    );
    assert_eq!(r.status, 415);
    let r = c.call(
        "POST",
        "/api/customers",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/vnd.acme+json; charset=utf-8"),
        ],
        Some(&customer("A").to_string()),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    // 400: malformed JSON, a body that is not UTF-8, a bad header value, a repeated header.
    let r = c.call(
        "POST",
        "/api/customers",
        &[("Authorization", &auth)],
        Some("{\"name\": "),
    );
    assert_eq!(r.status, 400);
    let not_utf8 = format!(
        "POST /api/customers HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
         Content-Type: application/json\r\nContent-Length: 4\r\nConnection: close\r\n\r\n"
    );
    let mut bytes = not_utf8.into_bytes();
    bytes.extend_from_slice(&[0x22, 0xff, 0xfe, 0x22]);
    let answer = raw(&srv.addr, &bytes, Duration::from_secs(5));
    assert_eq!(raw_status(&answer), 400, "{answer}");
    assert!(raw_body(&answer).contains("malformed-json"), "{answer}");
    let long_tracking = "t".repeat(200);
    let r = c.call(
        "POST",
        "/api/customers",
        &[("Authorization", &auth), ("X-Tracking-ID", &long_tracking)],
        Some(&customer("A").to_string()),
    );
    assert_eq!(r.status, 400);
    let r = c.call(
        "POST",
        "/api/customers",
        &[("Authorization", &auth), ("X-Sync-Data", "sometimes")],
        Some(&customer("A").to_string()),
    );
    assert_eq!(r.status, 400);
    let twice = format!(
        "GET /api/customers HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
         Authorization: Basic Zm9vOmJhcg==\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(
        raw_status(&raw(&srv.addr, twice.as_bytes(), Duration::from_secs(5))),
        400
    );
    // Header limits: too many fields, or one too large: 431 problem+json.
    let mut many = format!("GET /api/customers HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n");
    for i in 0..120 {
        many.push_str(&format!("X-Extra-{i}: v\r\n"));
    }
    many.push_str("Connection: close\r\n\r\n");
    let answer = raw(&srv.addr, many.as_bytes(), Duration::from_secs(5));
    assert_eq!(raw_status(&answer), 431, "{answer}");
    assert!(answer.contains("application/problem+json"));
    let huge = format!(
        "GET /api/customers HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(10_000)
    );
    assert_eq!(
        raw_status(&raw(&srv.addr, huge.as_bytes(), Duration::from_secs(5))),
        431
    );
    // Still serving.
    assert_eq!(c.call("GET", "/healthz", &[], None).status, 200);
    let list = c.api(&t, "GET", "/api/customers", &[], None).json();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
}

#[test]
fn idempotent_replay_and_reuse() {
    let fake = FakeServer::source("quickbooks").unwrap();
    let (_d, _srv, c) = setup(&[&FAST[..], &ALLOW_LOOPBACK[..]].concat());
    let t = c.tenant("acme.example.com");
    c.connect(&t, "quickbooks", "accounting", &fake.url("/push"));
    let h = [
        ("Idempotency-Key", "order-42"),
        ("X-Sync-Data", "push"),
        ("X-Tracking-ID", "trk-42"),
    ];
    let first = c.api(&t, "POST", "/api/customers", &h, Some(customer("Acme")));
    assert_eq!(first.status, 201);
    assert!(first.header("Idempotency-Replayed").is_none());
    let sync = first.header("X-Sync-ID").unwrap().to_string();
    let again = c.api(&t, "POST", "/api/customers", &h, Some(customer("Acme")));
    assert_eq!(again.status, 201);
    assert_eq!(again.text, first.text);
    assert_eq!(again.header("X-Sync-ID"), Some(sync.as_str()));
    assert_eq!(again.header("Idempotency-Replayed"), Some("true"));
    // Same key, another body: 422 and nothing changes.
    let other = c.api(&t, "POST", "/api/customers", &h, Some(customer("Other")));
    assert_eq!(other.status, 422, "{}", other.text);
    let list = c.api(&t, "GET", "/api/customers", &[], None).json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    // One sync, one push.
    assert_eq!(c.wait_sync(&t, &sync)["status"], "succeeded");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(fake.count(), 1);
    // Updates: If-Match with a stale version is 412; answers carry the ETag.
    let id = first.json()["id"].as_str().unwrap().to_string();
    let stale = c.api(
        &t,
        "PATCH",
        &format!("/api/customers/{id}"),
        &[("If-Match", "\"7\"")],
        Some(json!({"phone": "+1 555 0100"})),
    );
    assert_eq!(stale.status, 412);
    let ok = c.api(
        &t,
        "PATCH",
        &format!("/api/customers/{id}"),
        &[("If-Match", "1")],
        Some(json!({"phone": "+1 555 0100"})),
    );
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.header("ETag"), Some("\"2\""));
}

#[test]
fn lists_page_and_subscriptions_can_be_removed() {
    let (_d, _srv, c) = setup(&[]);
    let t = c.tenant("acme.example.com");
    for i in 0..3 {
        let r = c.api(
            &t,
            "POST",
            "/api/customers",
            &[],
            Some(customer(&format!("C{i}"))),
        );
        assert_eq!(r.status, 201);
        assert_eq!(r.json()["version"], 1);
        assert!(r.json()["createdAt"].is_string());
    }
    let page = |q: &str| c.api(&t, "GET", &format!("/api/customers?{q}"), &[], None);
    assert_eq!(
        page("page=1&pageSize=2").json().as_array().unwrap().len(),
        2
    );
    assert_eq!(
        page("page=2&pageSize=2").json().as_array().unwrap().len(),
        1
    );
    assert_eq!(page("page=3&pageSize=2").json(), json!([]));
    assert_eq!(page("page=0").status, 400);
    assert_eq!(c.api(&t, "GET", "/api/nothing-here", &[], None).status, 404);
    let hook = c.webhook(
        &t,
        json!({"url": "https://hooks.example.com/in", "events": ["api_push_update"]}),
    );
    let del = c.admin(
        "DELETE",
        &format!("/admin/accounts/{}/webhooks/{hook}", t.id),
        None,
    );
    assert_eq!(del.status, 204);
    let gone = c.admin(
        "GET",
        &format!("/admin/accounts/{}/webhooks/{hook}/deliveries", t.id),
        None,
    );
    assert_eq!(gone.status, 404);
    let conn = c.connect(&t, "xero", "accounting", "https://xero.example.com/push");
    let del = c.admin(
        "DELETE",
        &format!("/admin/accounts/{}/connections/{conn}", t.id),
        None,
    );
    assert_eq!(del.status, 204);
}

/// Contract section 7: a valid `X-Tracking-ID` comes back on every answer (reads, writes,
/// admin calls, problems, and the answers the server gives before the engine sees the
/// request); an invalid or repeated one does not.
#[test]
fn the_tracking_id_comes_back_on_every_answer() {
    let (_d, srv, c) = setup(&[]);
    let t = c.tenant("track.example.com");
    let tid = ("X-Tracking-ID", "order-77");
    let echoed = |r: &Resp| r.header("X-Tracking-ID").map(str::to_string);
    // A read, a write, a refused write, a 404, an admin call, the health check.
    let r = c.api(&t, "GET", "/api/customers", &[tid], None);
    assert_eq!((r.status, echoed(&r).as_deref()), (200, Some("order-77")));
    let r = c.api(&t, "POST", "/api/customers", &[tid], Some(customer("A")));
    assert_eq!((r.status, echoed(&r).as_deref()), (201, Some("order-77")));
    let r = c.api(&t, "POST", "/api/customers", &[tid], Some(json!({})));
    assert_eq!((r.status, echoed(&r).as_deref()), (422, Some("order-77")));
    let r = c.api(&t, "GET", "/api/customers/nope", &[tid], None);
    assert_eq!((r.status, echoed(&r).as_deref()), (404, Some("order-77")));
    let bearer = format!("Bearer {ADMIN}");
    let path = format!("/admin/accounts/{}", t.id);
    let r = c.call("GET", &path, &[("Authorization", &bearer), tid], None);
    assert_eq!((r.status, echoed(&r).as_deref()), (200, Some("order-77")));
    let r = c.call("GET", "/healthz", &[tid], None);
    assert_eq!((r.status, echoed(&r).as_deref()), (200, Some("order-77")));
    // An invalid one is refused on a write and never echoed.
    let r = c.api(
        &t,
        "GET",
        "/api/customers",
        &[("X-Tracking-ID", "a b")],
        None,
    );
    assert_eq!((r.status, echoed(&r)), (200, None));
    // Answers the server gives before the engine sees the request: 413 from Content-Length,
    // 431 for too many header fields, 400 for a repeated singleton header.
    let answer = raw(
        &srv.addr,
        b"POST /api/customers HTTP/1.1\r\nHost: x\r\nX-Tracking-ID: order-77\r\n\
          Content-Type: application/json\r\nContent-Length: 100000000000\r\n\r\n",
        Duration::from_secs(5),
    );
    assert_eq!(raw_status(&answer), 413, "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("x-tracking-id: order-77"),
        "{answer}"
    );
    let mut many = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Tracking-ID: order-77\r\n");
    for i in 0..120 {
        many.push_str(&format!("X-Filler-{i}: 1\r\n"));
    }
    many.push_str("Connection: close\r\n\r\n");
    let answer = raw(&srv.addr, many.as_bytes(), Duration::from_secs(5));
    assert_eq!(raw_status(&answer), 431, "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("x-tracking-id: order-77"),
        "{answer}"
    );
    let answer = raw(
        &srv.addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Tracking-ID: order-77\r\n\
          Content-Type: application/json\r\nContent-Type: application/json\r\n\
          Connection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    assert_eq!(raw_status(&answer), 400, "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("x-tracking-id: order-77"),
        "{answer}"
    );
    // Sent twice: not one tracking id, so not echoed.
    let answer = raw(
        &srv.addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Tracking-ID: a\r\nX-Tracking-ID: b\r\n\
          Connection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    let head = answer.split_once("\r\n\r\n").map_or("", |(h, _)| h);
    assert_eq!(raw_status(&answer), 400, "{answer}");
    assert!(
        !head.to_ascii_lowercase().contains("x-tracking-id"),
        "{answer}"
    );
}

/// Contract section 7, dry run: every check, nothing stored, no sync, through `writesync serve`.
#[test]
fn a_dry_run_checks_everything_and_stores_nothing() {
    let (_d, _srv, c) = setup(&["--allow-target-cidr", "127.0.0.0/8"]);
    let t = c.tenant("dry.example.com");
    c.connect(&t, "quickbooks", "accounting", "http://127.0.0.1:9/push");
    let push = [("X-Sync-Data", "push"), ("X-Tracking-ID", "dry-1")];
    let r = c.api(
        &t,
        "POST",
        "/api/customers?dryRun=true",
        &push,
        Some(customer("A")),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let b = r.json();
    assert_eq!(b["valid"], true);
    assert_eq!(b["targets"], json!(["quickbooks"]));
    assert_eq!(b["object"]["name"], "A");
    assert!(b["object"].get("id").is_none(), "{b}");
    assert_eq!(r.header("X-Sync-ID"), None);
    assert_eq!(r.header("X-Tracking-ID"), Some("dry-1"));
    let r = c.api(
        &t,
        "POST",
        "/api/customers?dryRun=true",
        &push,
        Some(json!({})),
    );
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json()["errors"][0]["pointer"], "/name");
    let r = c.api(
        &t,
        "POST",
        "/api/customers?dryRun=TRUE",
        &[],
        Some(customer("A")),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json()["type"], "/problems/invalid-query");
    assert_eq!(r.header("Content-Type"), Some("application/problem+json"));
    let listed = c.api(&t, "GET", "/api/customers", &[], None);
    assert_eq!(listed.json(), json!([]));
    let real = c.api(
        &t,
        "POST",
        "/api/customers?dryRun=false",
        &[],
        Some(customer("A")),
    );
    assert_eq!(real.status, 201, "{}", real.text);
}

/// Contract section 7 / issue 15: a header section beyond hyper's own bounds (a head over
/// 128 KiB, more than 200 fields) or one hyper cannot parse is answered with problem JSON too,
/// not a bare status line, and the server keeps serving.
#[test]
fn heads_beyond_the_parser_bounds_get_problem_json() {
    let (_d, srv, c) = setup(&[]);
    let check = |answer: &str, status: u16| {
        assert_eq!(raw_status(answer), status, "{answer}");
        let lower = answer.to_ascii_lowercase();
        assert!(
            lower.contains("content-type: application/problem+json"),
            "{answer}"
        );
        let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
        let p: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
        assert_eq!(p["status"], status, "{p}");
        assert!(p["type"].as_str().unwrap().starts_with("/problems/"), "{p}");
        assert!(!p["detail"].as_str().unwrap().is_empty(), "{p}");
    };
    // 10 fields of 7 KiB each (70 KiB): over the server's own bound on the header section,
    // so the handler answers, with the tracking id.
    let mut mid = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Tracking-ID: big-1\r\n");
    for i in 0..10 {
        mid.push_str(&format!("X-Mid-{i}: {}\r\n", "a".repeat(7 * 1024)));
    }
    mid.push_str("Connection: close\r\n\r\n");
    let answer = raw(&srv.addr, mid.as_bytes(), Duration::from_secs(5));
    check(&answer, 431);
    assert!(
        answer.to_ascii_lowercase().contains("x-tracking-id: big-1"),
        "{answer}"
    );
    // 40 fields of 7 KiB each: every one under the per-field bound, 280 KiB in all.
    let mut big = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for i in 0..40 {
        big.push_str(&format!("X-Big-{i}: {}\r\n", "a".repeat(7 * 1024)));
    }
    big.push_str("\r\n");
    check(&raw(&srv.addr, big.as_bytes(), Duration::from_secs(5)), 431);
    // 300 small fields.
    let mut many = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for i in 0..300 {
        many.push_str(&format!("X-F-{i}: 1\r\n"));
    }
    many.push_str("\r\n");
    check(
        &raw(&srv.addr, many.as_bytes(), Duration::from_secs(5)),
        431,
    );
    // Not HTTP at all.
    check(
        &raw(
            &srv.addr,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad\x01: 1\r\n\r\n",
            Duration::from_secs(5),
        ),
        400,
    );
    assert_eq!(c.call("GET", "/healthz", &[], None).status, 200);
}
