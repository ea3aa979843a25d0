//! Push to source applications over real HTTP: routing by `X-Sync-Sources`, `no_targets`,
//! per-target status, retries with one Idempotency-Key, `Retry-After`, no redirects, and the
//! refusal of restricted addresses.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use writesync_demo::fake::{FakeServer, Received, Reply};

fn setup(args: &[&str]) -> (tempfile::TempDir, Server, Client) {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("t.db"), args);
    let c = Client::new(&srv);
    (dir, srv, c)
}

fn fast_loopback() -> Vec<&'static str> {
    [&FAST[..], &ALLOW_LOOPBACK[..]].concat()
}

fn for_sync(got: &[Received], sync: &str) -> Vec<Received> {
    got.iter()
        .filter(|r| r.header("x-sync-id") == Some(sync))
        .cloned()
        .collect()
}

fn target<'a>(sync: &'a Value, app: &str) -> &'a Value {
    sync["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["app"] == app)
        .unwrap_or_else(|| panic!("no target {app} in {sync}"))
}

#[test]
fn sources_by_key_and_by_type_and_no_targets() {
    let qb = FakeServer::source("quickbooks").unwrap();
    let xero = FakeServer::source("xero").unwrap();
    let hs = FakeServer::source("hubspot").unwrap();
    let (_d, _srv, c) = setup(&fast_loopback());
    let t = c.tenant("acme.example.com");
    c.connect(&t, "quickbooks", "accounting", &qb.url("/push"));
    c.connect(&t, "xero", "accounting", &xero.url("/push"));
    c.connect(&t, "hubspot", "crm", &hs.url("/push"));
    let write = |sources: Option<&str>, name: &str| {
        let mut h = vec![("X-Sync-Data", "push")];
        if let Some(s) = sources {
            h.push(("X-Sync-Sources", s));
        }
        c.api(&t, "POST", "/api/customers", &h, Some(customer(name)))
    };
    let sorted = |s: Option<&str>| {
        let mut v: Vec<String> = s
            .unwrap_or("")
            .split(',')
            .filter(|x| !x.is_empty())
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    // No header: every capable connection.
    let all = write(None, "All");
    assert_eq!(all.status, 201);
    assert_eq!(
        sorted(all.header("X-Sync-Targets")),
        ["hubspot", "quickbooks", "xero"]
    );
    // By key, by type, mixed case and blanks.
    let by_key = write(Some("hubspot"), "Key");
    assert_eq!(sorted(by_key.header("X-Sync-Targets")), ["hubspot"]);
    let by_type = write(Some("accounting"), "Type");
    assert_eq!(
        sorted(by_type.header("X-Sync-Targets")),
        ["quickbooks", "xero"]
    );
    let mixed = write(Some(" HubSpot , XERO "), "Mixed");
    assert_eq!(sorted(mixed.header("X-Sync-Targets")), ["hubspot", "xero"]);
    // A catalogue app that is not connected, a type without capable connection: no_targets.
    let none = write(Some("shopify"), "None");
    assert_eq!(none.status, 201);
    assert_eq!(none.header("X-Sync-Targets"), Some(""));
    let none_sync = none.header("X-Sync-ID").unwrap().to_string();
    let s = c.wait_sync(&t, &none_sync);
    assert_eq!(s["status"], "no_targets");
    assert_eq!(s["targets"], json!([]));
    // An unknown token is 400 and nothing is written.
    let bad = write(Some("hubspot,nonsense"), "Bad");
    assert_eq!(bad.status, 400, "{}", bad.text);
    // Each sync reaches the sources it names and only those.
    for (r, expected) in [
        (&all, vec![1, 1, 1]),
        (&by_key, vec![0, 0, 1]),
        (&by_type, vec![1, 1, 0]),
        (&mixed, vec![0, 1, 1]),
    ] {
        let sync = r.header("X-Sync-ID").unwrap().to_string();
        let s = c.wait_sync(&t, &sync);
        assert_eq!(s["status"], "succeeded", "{s}");
        let counts: Vec<usize> = [&qb, &xero, &hs]
            .iter()
            .map(|f| for_sync(&f.received(), &sync).len())
            .collect();
        assert_eq!(counts, expected, "{sync}");
    }
    assert_eq!(
        c.api(&t, "GET", "/api/customers", &[], None)
            .json()
            .as_array()
            .unwrap()
            .len(),
        5
    );
}

#[test]
fn per_target_status_retries_and_one_idempotency_key() {
    let qb = FakeServer::source("quickbooks").unwrap();
    let hs = FakeServer::source("hubspot").unwrap();
    let xero = FakeServer::source("xero").unwrap();
    let (_d, _srv, c) = setup(&fast_loopback());
    let t = c.tenant("acme.example.com");
    c.connect(&t, "quickbooks", "accounting", &qb.url("/push"));
    c.connect(&t, "hubspot", "crm", &hs.url("/push"));
    c.connect(&t, "xero", "accounting", &xero.url("/push"));
    // quickbooks fails twice, then accepts; hubspot refuses for good; xero is always busy.
    qb.fail_next(2, 503);
    hs.set_always(Some(Reply {
        status: 400,
        headers: vec![],
        body: "customer name too long for hubspot".into(),
    }));
    xero.set_always(Some(Reply::status(500)));
    let r = c.api(
        &t,
        "POST",
        "/api/customers",
        &[("X-Sync-Data", "push"), ("X-Tracking-ID", "trk-7")],
        Some(customer("Acme")),
    );
    assert_eq!(r.status, 201);
    let sync = r.header("X-Sync-ID").unwrap().to_string();
    let s = c.wait_sync(&t, &sync);
    assert_eq!(s["status"], "partially_failed", "{s}");
    assert_eq!(s["trackingId"], "trk-7");
    let q = target(&s, "quickbooks");
    assert_eq!(q["status"], "succeeded");
    assert_eq!(q["attempts"], 3);
    assert_eq!(q["remoteId"], "quickbooks-1");
    let h = target(&s, "hubspot");
    assert_eq!(h["status"], "failed");
    assert_eq!(h["attempts"], 1, "a 400 is not retried");
    assert!(
        h["lastError"]
            .as_str()
            .unwrap()
            .contains("400: customer name too long"),
        "{h}"
    );
    let x = target(&s, "xero");
    assert_eq!(x["status"], "failed");
    assert_eq!(
        x["attempts"], 4,
        "one attempt and one retry per schedule entry"
    );
    assert!(x["lastError"].as_str().unwrap().contains("500"), "{x}");
    // Every copy of one push carries the same Idempotency-Key, X-Sync-ID and tracking id.
    for (fake, n) in [(&qb, 3), (&hs, 1), (&xero, 4)] {
        let got = for_sync(&fake.received(), &sync);
        assert_eq!(got.len(), n, "{}", fake.name());
        let key = got[0].header("idempotency-key").unwrap();
        assert!(!key.is_empty());
        for g in &got {
            assert_eq!(g.header("idempotency-key"), Some(key));
            assert_eq!(g.header("x-tracking-id"), Some("trk-7"));
            assert_eq!(g.header("content-type"), Some("application/json"));
            let b = g.json();
            assert_eq!(b["syncId"], sync.as_str());
            assert_eq!(b["operation"], "create");
            assert_eq!(b["objectType"], "customer");
            assert_eq!(b["object"]["name"], "Acme");
            assert_eq!(b["trackingId"], "trk-7");
        }
    }
    // An update of the same object goes to quickbooks as an update with its remote id.
    let id = r.json()["id"].as_str().unwrap().to_string();
    let u = c.api(
        &t,
        "PATCH",
        &format!("/api/customers/{id}"),
        &[("X-Sync-Data", "push"), ("X-Sync-Sources", "quickbooks")],
        Some(json!({"phone": "+1 555 0100"})),
    );
    assert_eq!(u.status, 200);
    let usync = u.header("X-Sync-ID").unwrap().to_string();
    assert_eq!(c.wait_sync(&t, &usync)["status"], "succeeded");
    let got = for_sync(&qb.received(), &usync);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["operation"], "update");
    assert_eq!(got[0].json()["remoteId"], "quickbooks-1");
}

#[test]
fn retry_after_is_honoured_and_redirects_are_not_followed() {
    let qb = FakeServer::source("quickbooks").unwrap();
    let elsewhere = FakeServer::source("elsewhere").unwrap();
    let hs = FakeServer::source("hubspot").unwrap();
    let (_d, _srv, c) = setup(&fast_loopback());
    let t = c.tenant("acme.example.com");
    c.connect(&t, "quickbooks", "accounting", &qb.url("/push"));
    c.connect(&t, "hubspot", "crm", &hs.url("/push"));
    qb.queue(vec![Reply::status(429).with_header("Retry-After", "1")]);
    hs.set_always(Some(
        Reply::status(307).with_header("Location", &elsewhere.url("/push")),
    ));
    let r = c.api(
        &t,
        "POST",
        "/api/customers",
        &[("X-Sync-Data", "push")],
        Some(customer("Acme")),
    );
    let sync = r.header("X-Sync-ID").unwrap().to_string();
    let s = c.wait_sync(&t, &sync);
    assert_eq!(s["status"], "partially_failed", "{s}");
    let got = for_sync(&qb.received(), &sync);
    assert_eq!(got.len(), 2);
    let gap = got[1].at_ms - got[0].at_ms;
    assert!(gap >= 900, "Retry-After: 1 waited only {gap} ms");
    assert_eq!(target(&s, "quickbooks")["status"], "succeeded");
    // The 307 is the answer: the target fails with it, and the Location got nothing.
    let h = target(&s, "hubspot");
    assert_eq!(h["status"], "failed");
    assert!(h["lastError"].as_str().unwrap().contains("307"), "{h}");
    assert_eq!(hs.count(), 1);
    assert_eq!(elsewhere.count(), 0);
}

#[test]
fn restricted_addresses_are_refused_without_allow_target_cidr() {
    let fake = FakeServer::source("quickbooks").unwrap();
    let hooks = FakeServer::webhook_receiver("hooks").unwrap();
    // No --allow-target-cidr: loopback is refused.
    let (_d, srv, c) = setup(&FAST);
    let t = c.tenant("acme.example.com");
    // A literal restricted address is refused at registration...
    let lit = c.admin(
        "POST",
        &format!("/admin/accounts/{}/connections", t.id),
        Some(json!({"app": "quickbooks", "type": "accounting", "pushUrl": fake.url("/push")})),
    );
    assert_eq!(lit.status, 422, "{}", lit.text);
    assert_eq!(lit.json()["errors"][0]["pointer"], "/pushUrl");
    // ...a name passes registration and is refused when the worker connects.
    c.connect(&t, "quickbooks", "accounting", &fake.localhost_url("/push"));
    let hook = c.webhook(
        &t,
        json!({"url": hooks.localhost_url("/h"), "events": ["api_push_complete"]}),
    );
    let r = c.api(
        &t,
        "POST",
        "/api/customers",
        &[("X-Sync-Data", "push")],
        Some(customer("Acme")),
    );
    assert_eq!(r.status, 201);
    let sync = r.header("X-Sync-ID").unwrap().to_string();
    let s = c.wait_sync(&t, &sync);
    assert_eq!(s["status"], "failed", "{s}");
    let q = target(&s, "quickbooks");
    assert_eq!(q["attempts"], 1, "a refused address is not retried");
    let err = q["lastError"].as_str().unwrap();
    assert!(err.contains("refused address"), "{err}");
    assert!(err.contains("localhost"), "{err}");
    // The webhook to the same kind of address fails at once too, visibly.
    let d = poll(DEADLINE, || {
        let list = c.deliveries(&t, &hook);
        (list.len() == 1 && list[0]["status"] != "pending").then(|| list[0].clone())
    });
    assert_eq!(d["status"], "failed");
    assert_eq!(d["attempts"], 1);
    assert!(d["lastError"].as_str().unwrap().contains("refused address"));
    // Nothing reached the fakes.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(fake.count(), 0);
    assert_eq!(hooks.count(), 0);
    // The log says why, without secrets.
    assert!(srv
        .logs()
        .iter()
        .any(|l| l.contains("refused address") && l.contains(&sync)));
}
