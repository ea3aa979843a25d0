//! Webhook deliveries over real HTTP: retries (4 attempts), the failed state, the manual
//! retry through the admin API, Basic auth and Standard Webhooks signatures.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use base64::Engine as _;
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use writesync_demo::fake::{FakeServer, Received, Reply};

const SECRET_B64: &str = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Verify a delivery the way a receiver would (Standard Webhooks, v1 = HMAC-SHA256).
fn verify(r: &Received) {
    let id = r.header("webhook-id").expect("webhook-id");
    let ts = r.header("webhook-timestamp").expect("webhook-timestamp");
    let sig = r.header("webhook-signature").expect("webhook-signature");
    let now = writesync_server::state::now_ms() / 1000;
    let ts_n: i64 = ts.parse().unwrap();
    assert!((now - ts_n).abs() < 300, "timestamp {ts_n} vs now {now}");
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET_B64)
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{}", r.body).as_bytes());
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert!(
        sig.split(' ').any(|s| s == expected),
        "signature {sig} != {expected}"
    );
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

#[test]
fn retries_failure_manual_retry_auth_and_signatures() {
    let qb = FakeServer::source("quickbooks").unwrap();
    let flaky = FakeServer::webhook_receiver("flaky").unwrap();
    let down = FakeServer::webhook_receiver("down").unwrap();
    let updates = FakeServer::webhook_receiver("updates").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(
        &dir.path().join("t.db"),
        &[&FAST[..], &ALLOW_LOOPBACK[..]].concat(),
    );
    let c = Client::new(&srv);
    let t = c.tenant("acme.example.com");
    c.connect(&t, "quickbooks", "accounting", &qb.url("/push"));
    let signed = |url: String, events: Value| {
        json!({"url": url, "events": events, "username": "hookuser",
               "password": "hook:pass", "signingSecret": format!("whsec_{SECRET_B64}")})
    };
    let flaky_id = c.webhook(&t, signed(flaky.url("/in"), json!(["api_push_complete"])));
    let down_id = c.webhook(
        &t,
        json!({"url": down.url("/in"), "events": ["api_push_complete"]}),
    );
    let updates_id = c.webhook(&t, signed(updates.url("/in"), json!(["api_push_update"])));
    // flaky fails 3 times then answers 200; down never answers 200.
    flaky.fail_next(3, 503);
    down.set_always(Some(Reply::status(500)));
    let w = c.api(
        &t,
        "POST",
        "/api/customers",
        &[("X-Sync-Data", "push"), ("X-Tracking-ID", "trk-hook")],
        Some(customer("Acme")),
    );
    assert_eq!(w.status, 201);
    let sync = w.header("X-Sync-ID").unwrap().to_string();
    let request_id = w.header("X-Request-ID").unwrap().to_string();
    assert_eq!(c.wait_sync(&t, &sync)["status"], "succeeded");

    // Delivered on the 4th attempt.
    let d = poll(DEADLINE, || {
        let l = c.deliveries(&t, &flaky_id);
        (l.len() == 1 && l[0]["status"] == "delivered").then(|| l[0].clone())
    });
    assert_eq!(d["attempts"], 4);
    assert_eq!(d["lastStatusCode"], 200);
    assert_eq!(d["event"], "api_push_complete");
    let got = flaky.received();
    assert_eq!(got.len(), 4);
    let answers: Vec<u16> = got.iter().map(|r| r.answered).collect();
    assert_eq!(answers, [503, 503, 503, 200]);
    for r in &got {
        assert_eq!(r.header("webhook-id"), d["id"].as_str());
        assert_eq!(
            r.header("authorization"),
            Some(basic("hookuser", "hook:pass").as_str())
        );
        assert_eq!(r.header("x-sync-id"), Some(sync.as_str()));
        assert_eq!(r.header("x-tracking-id"), Some("trk-hook"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        verify(r);
        let b = r.json();
        assert_eq!(b["event"], "api_push_complete");
        assert_eq!(b["requestId"], request_id.as_str());
        assert_eq!(b["domain"], "acme.example.com");
        assert!(b["message"].is_string());
        assert_eq!(b["data"]["syncId"], sync.as_str());
        assert_eq!(b["data"]["trackingId"], "trk-hook");
        assert_eq!(b["data"]["status"], "succeeded");
        assert_eq!(b["data"]["object"]["type"], "customer");
        assert_eq!(b["data"]["targets"][0]["app"], "quickbooks");
    }

    // The update event carries the target's outcome.
    let u = poll(DEADLINE, || {
        let g = updates.received();
        (!g.is_empty()).then(|| g[0].clone())
    });
    verify(&u);
    let b = u.json();
    assert_eq!(b["event"], "api_push_update");
    assert_eq!(b["data"]["app"], "quickbooks");
    assert_eq!(b["data"]["status"], "succeeded");
    assert_eq!(b["data"]["remoteId"], "quickbooks-1");
    let ul = c.deliveries(&t, &updates_id);
    assert_eq!(ul.len(), 1);

    // Never 200: 4 attempts, then failed, visible in the list.
    let f = poll(DEADLINE, || {
        let l = c.deliveries(&t, &down_id);
        (l.len() == 1 && l[0]["status"] == "failed").then(|| l[0].clone())
    });
    assert_eq!(f["attempts"], 4);
    assert_eq!(f["lastStatusCode"], 500);
    assert!(f["lastError"].as_str().unwrap().contains("500"));
    assert_eq!(down.count(), 4);
    assert!(down.received()[0].header("authorization").is_none());
    assert!(down.received()[0].header("webhook-signature").is_none());
    // Nothing more happens on its own.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(down.count(), 4);
    // A retry of a delivery that is not failed is refused; of the failed one accepted.
    let did = f["id"].as_str().unwrap();
    let not_failed = c.admin(
        "POST",
        &format!(
            "/admin/accounts/{}/webhooks/{flaky_id}/deliveries/{}/retry",
            t.id,
            d["id"].as_str().unwrap()
        ),
        None,
    );
    assert_eq!(not_failed.status, 409);
    down.set_always(None);
    let retry = c.admin(
        "POST",
        &format!(
            "/admin/accounts/{}/webhooks/{down_id}/deliveries/{did}/retry",
            t.id
        ),
        None,
    );
    assert_eq!(retry.status, 202, "{}", retry.text);
    let after = poll(DEADLINE, || {
        let l = c.deliveries(&t, &down_id);
        (l[0]["status"] == "delivered").then(|| l[0].clone())
    });
    assert_eq!(after["attempts"], 5);
    assert_eq!(after["lastStatusCode"], 200);
    assert_eq!(down.count(), 5);
    // Someone else's delivery cannot be retried through another account.
    let other = c.tenant("other.example.com");
    let foreign = c.admin(
        "POST",
        &format!(
            "/admin/accounts/{}/webhooks/{down_id}/deliveries/{did}/retry",
            other.id
        ),
        None,
    );
    assert_eq!(foreign.status, 404);
}

#[test]
fn a_failed_delivery_retried_by_hand_gets_a_fresh_budget() {
    let qb = FakeServer::source("quickbooks").unwrap();
    let down = FakeServer::webhook_receiver("down").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(
        &dir.path().join("t.db"),
        &[&FAST[..], &ALLOW_LOOPBACK[..]].concat(),
    );
    let c = Client::new(&srv);
    let t = c.tenant("acme.example.com");
    c.connect(&t, "quickbooks", "accounting", &qb.url("/push"));
    let hook = c.webhook(
        &t,
        json!({"url": down.url("/in"), "events": ["api_push_complete"]}),
    );
    down.set_always(Some(Reply::status(502)));
    let w = c.api(
        &t,
        "POST",
        "/api/customers",
        &[("X-Sync-Data", "push")],
        Some(customer("Acme")),
    );
    assert_eq!(w.status, 201);
    let f = poll(DEADLINE, || {
        let l = c.deliveries(&t, &hook);
        (l.len() == 1 && l[0]["status"] == "failed").then(|| l[0].clone())
    });
    // Still failing: the manual retry spends a whole new budget of 4 attempts.
    let did = f["id"].as_str().unwrap();
    let r = c.admin(
        "POST",
        &format!(
            "/admin/accounts/{}/webhooks/{hook}/deliveries/{did}/retry",
            t.id
        ),
        None,
    );
    assert_eq!(r.status, 202);
    let again = poll(DEADLINE, || {
        let l = c.deliveries(&t, &hook);
        (l[0]["status"] == "failed" && l[0]["attempts"] == 8).then(|| l[0].clone())
    });
    assert_eq!(again["lastStatusCode"], 502);
    assert_eq!(down.count(), 8);
}

/// The signature a receiver expects for `r` under `secret` (`whsec_...`).
fn signature_with(r: &Received, secret: &str) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    let (id, ts) = (
        r.header("webhook-id").unwrap(),
        r.header("webhook-timestamp").unwrap(),
    );
    mac.update(format!("{id}.{ts}.{}", r.body).as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

#[test]
fn managing_webhooks_over_http() {
    let first = FakeServer::webhook_receiver("first").unwrap();
    let second = FakeServer::webhook_receiver("second").unwrap();
    let down = FakeServer::webhook_receiver("down").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(
        &dir.path().join("t.db"),
        &[&FAST[..], &ALLOW_LOOPBACK[..]].concat(),
    );
    let c = Client::new(&srv);
    let t = c.tenant("acme.example.com");
    let old_secret = format!("whsec_{SECRET_B64}");
    let hid = c.webhook(
        &t,
        json!({"url": first.url("/in"), "events": ["api_push_complete"],
               "signingSecret": old_secret}),
    );
    let hooks = format!("/admin/accounts/{}/webhooks", t.id);
    let hook = format!("{hooks}/{hid}");

    // List: the view, never a secret.
    let l = c.admin("GET", &hooks, None);
    assert_eq!(l.status, 200, "{}", l.text);
    assert_eq!(l.json()[0]["id"], hid.as_str());
    assert_eq!(l.json()[0]["enabled"], true);
    assert!(!l.text.contains("whsec_"));

    // PATCH: bad input is 422 with pointers and changes nothing; then a real change.
    let bad = c.admin(
        "PATCH",
        &hook,
        Some(json!({"url": "nope", "events": ["x"], "enabled": 1, "colour": "red"})),
    );
    assert_eq!(bad.status, 422, "{}", bad.text);
    let pointers: Vec<String> = bad.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap().to_string())
        .collect();
    for p in ["/url", "/events/0", "/enabled", "/colour"] {
        assert!(pointers.iter().any(|x| x == p), "{p} in {pointers:?}");
    }
    let ok = c.admin(
        "PATCH",
        &hook,
        Some(json!({"url": second.url("/in"), "username": "u", "password": "p"})),
    );
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.json()["basicAuth"], true);

    // Rotate, then ping: both secrets sign; the first answer asks for a 1 s pause.
    let rot = c.admin("POST", &format!("{hook}/rotate-secret"), None);
    assert_eq!(rot.status, 200, "{}", rot.text);
    let new_secret = rot.json()["signingSecret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, old_secret);
    second.queue(vec![Reply::status(503).with_header("Retry-After", "1")]);
    let ping = c.admin("POST", &format!("{hook}/test"), None);
    assert_eq!(ping.status, 202, "{}", ping.text);
    let did = ping.json()["deliveryId"].as_str().unwrap().to_string();
    assert!(second.wait_until(DEADLINE, |r| r.len() == 2));
    let got = second.received();
    assert_eq!(got[0].answered, 503);
    assert!(
        got[1].at_ms - got[0].at_ms >= 1000,
        "retried after {} ms despite Retry-After: 1",
        got[1].at_ms - got[0].at_ms
    );
    for r in &got {
        let sigs: Vec<&str> = r.header("webhook-signature").unwrap().split(' ').collect();
        assert_eq!(
            sigs,
            [
                signature_with(r, &new_secret),
                signature_with(r, &old_secret)
            ]
        );
        assert_eq!(r.header("authorization"), Some(basic("u", "p").as_str()));
        assert!(r.header("x-sync-id").is_none());
        assert_eq!(r.json()["event"], "webhook_test");
        assert_eq!(r.json()["data"]["webhookId"], hid.as_str());
    }
    assert_eq!(first.count(), 0);

    // Filters.
    let delivered = poll(DEADLINE, || {
        let r = c.admin("GET", &format!("{hook}/deliveries?status=delivered"), None);
        (r.json().as_array().map_or(0, Vec::len) == 1).then_some(r)
    });
    assert_eq!(delivered.json()[0]["id"], did.as_str());
    assert_eq!(delivered.json()[0]["syncId"], Value::Null);
    let none = c.admin("GET", &format!("{hook}/deliveries?syncId=nope"), None);
    assert_eq!(none.json(), json!([]));
    let unknown = c.admin("GET", &format!("{hook}/deliveries?colour=red"), None);
    assert_eq!(unknown.status, 400);
    assert!(unknown.json()["detail"]
        .as_str()
        .unwrap()
        .contains("colour"));

    // Ten failed deliveries in a row disable the subscription; PATCH enables it again.
    let off = c.webhook(
        &t,
        json!({"url": down.url("/in"), "events": ["api_push_complete"]}),
    );
    let off_path = format!("{hooks}/{off}");
    down.set_always(Some(Reply::status(500)));
    for _ in 0..10 {
        assert_eq!(
            c.admin("POST", &format!("{off_path}/test"), None).status,
            202
        );
    }
    let disabled = poll(DEADLINE, || {
        let h = c.admin("GET", &off_path, None).json();
        (h["enabled"] == false).then_some(h)
    });
    assert!(disabled["disabledReason"]
        .as_str()
        .unwrap()
        .contains("10 consecutive failed deliveries"));
    assert_eq!(down.count(), 40);
    let refused = c.admin("POST", &format!("{off_path}/test"), None);
    assert_eq!(refused.status, 409, "{}", refused.text);
    down.set_always(None);
    let on = c.admin("PATCH", &off_path, Some(json!({"enabled": true})));
    assert_eq!(on.status, 200, "{}", on.text);
    assert_eq!(on.json()["disabledReason"], Value::Null);
    assert_eq!(
        c.admin("POST", &format!("{off_path}/test"), None).status,
        202
    );
    assert!(down.wait_until(DEADLINE, |r| r.len() == 41 && r[40].answered == 200));
    assert_eq!(
        c.admin("POST", &format!("{hooks}/nope/test"), None).status,
        404
    );
}
