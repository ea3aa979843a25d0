//! Managing webhooks (contract section 7): listing, PATCH, secret rotation, the test ping,
//! auto-disable, deliveries filters and `Retry-After` on webhook retries.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::{json, Value};
use writesync_core::util::crypto::{valid_signing_secret, webhook_signature};
use writesync_core::{Outcome, WorkItem};

const ORIGINAL_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const DAY_MS: i64 = 86_400_000;

fn hook_path(t: &Tenant, wid: &str) -> String {
    format!("/admin/accounts/{}/webhooks/{wid}", t.id)
}

fn setup() -> (World, Tenant, String) {
    let mut w = World::new();
    let t = w.tenant("acme.example.com", true);
    let wid = w.webhook(&t, json!(["api_push_complete"]));
    (w, t, wid)
}

/// Queue a test ping and hand it out; the item.
fn ping(w: &mut World, t: &Tenant, wid: &str) -> (String, WorkItem) {
    let r = w.admin("POST", &format!("{}/test", hook_path(t, wid)), None);
    assert_eq!(r.status, 202, "{}", r.body);
    let did = r.body_json()["deliveryId"].as_str().unwrap().to_string();
    let items = w.due();
    assert_eq!(items.len(), 1, "{items:?}");
    (did, items.into_iter().next().unwrap())
}

/// A test ping handed out and answered `200`.
fn ping_delivered(w: &mut World, t: &Tenant, wid: &str) -> (String, WorkItem) {
    let (did, item) = ping(w, t, wid);
    w.report(&item.id, status(200, ""));
    (did, item)
}

/// Fail every attempt of the delivery `first` is the first attempt of, until it is `failed`.
fn fail_all_attempts(w: &mut World, first: WorkItem) {
    let mut item = first;
    for attempt in 1..=4 {
        w.report(&item.id, status(500, "down"));
        if attempt == 4 {
            break;
        }
        assert!(w.advance());
        let mut items = w.due();
        assert_eq!(items.len(), 1, "attempt {attempt}: {items:?}");
        item = items.remove(0);
    }
    assert!(w.due().is_empty());
}

fn signatures(item: &WorkItem) -> Vec<String> {
    item.request.headers["webhook-signature"]
        .split(' ')
        .map(str::to_string)
        .collect()
}

fn verifies(item: &WorkItem, secret: &str, sig: &str) -> bool {
    let h = &item.request.headers;
    let ts: i64 = h["webhook-timestamp"].parse().unwrap();
    webhook_signature(secret, &h["webhook-id"], ts, &item.request.body).unwrap() == sig
}

#[test]
fn subscriptions_are_listed_without_credentials() {
    let (mut w, t, wid) = setup();
    let r = w.admin("GET", &format!("/admin/accounts/{}/webhooks", t.id), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let list = r.body_json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let h = &list[0];
    assert_eq!(h["id"], wid.as_str());
    assert_eq!(h["enabled"], true);
    assert_eq!(h["disabledReason"], Value::Null);
    assert_eq!(h["signed"], true);
    assert_eq!(h["basicAuth"], true);
    for secret in [
        "password",
        "signingSecret",
        "previousSecret",
        "consecutiveFailures",
    ] {
        assert!(h.get(secret).is_none(), "{secret} shown: {h}");
    }
    assert!(!r.body.contains("whsec_") && !r.body.contains("\"pw\""));
}

#[test]
fn patch_changes_each_member_and_refuses_bad_input_untouched() {
    let (mut w, t, wid) = setup();
    let path = hook_path(&t, &wid);
    let before = w.admin("GET", &path, None).body;
    let bad = [
        (json!({"url": "not a url"}), "/url"),
        (json!({"url": 7}), "/url"),
        (json!({"events": ["api_push_nothing"]}), "/events/0"),
        (json!({"events": "api_push_update"}), "/events"),
        (json!({"events": []}), "/events"),
        (json!({"enabled": "yes"}), "/enabled"),
        (json!({"enabled": null}), "/enabled"),
        (json!({"username": 5}), "/username"),
        (json!({"username": "a:b"}), "/username"),
        (json!({"username": null, "password": "x"}), "/username"),
        (json!({"signingSecret": ORIGINAL_SECRET}), "/signingSecret"),
        (json!({"id": "other"}), "/id"),
    ];
    for (body, pointer) in bad {
        let r = w.admin("PATCH", &path, Some(body.clone()));
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        let errors = r.body_json()["errors"].clone();
        assert!(
            errors
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["pointer"] == pointer),
            "{body}: {errors}"
        );
        assert_eq!(w.admin("GET", &path, None).body, before, "{body}");
    }
    // Every problem at once, and still nothing stored.
    let r = w.admin(
        "PATCH",
        &path,
        Some(json!({"url": 1, "events": [1], "enabled": 0})),
    );
    assert_eq!(r.body_json()["errors"].as_array().unwrap().len(), 3);
    let mut broken = writesync_core::ApiRequest::new("PATCH", &path)
        .header("Authorization", &format!("Bearer {ADMIN}"))
        .json(&json!({}));
    broken.body = Some("{".into());
    let not_json = w.send(broken);
    assert_eq!(not_json.status, 400, "{}", not_json.body);
    assert_eq!(
        w.admin("PATCH", &hook_path(&t, "nope"), Some(json!({})))
            .status,
        404
    );

    let r = w.admin(
        "PATCH",
        &path,
        Some(
            json!({"url": "https://other.example.com/hook", "events": ["api_push_update", "*"],
                    "username": "u2", "password": "p2"}),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let h = r.body_json();
    assert_eq!(h["url"], "https://other.example.com/hook");
    assert_eq!(h["events"], json!(["api_push_update", "*"]));
    assert_eq!(w.admin("GET", &path, None).body_json(), h);
    // The new URL and credentials are used for the next delivery.
    let (_, item) = ping(&mut w, &t, &wid);
    assert_eq!(item.request.url, "https://other.example.com/hook");
    assert_eq!(
        item.request.headers["Authorization"],
        writesync_core::util::crypto::basic_auth_header("u2", "p2")
    );
    // Removing the user name removes Basic auth altogether.
    let r = w.admin("PATCH", &path, Some(json!({"username": null})));
    assert_eq!(r.body_json()["basicAuth"], false);
    let (_, item) = ping(&mut w, &t, &wid);
    assert!(!item.request.headers.contains_key("Authorization"));
}

#[test]
fn rotation_signs_with_both_secrets_for_24_hours() {
    let (mut w, t, wid) = setup();
    let rotate = format!("{}/rotate-secret", hook_path(&t, &wid));
    let r = w.admin("POST", &rotate, None);
    assert_eq!(r.status, 200, "{}", r.body);
    let first = r.body_json()["signingSecret"].as_str().unwrap().to_string();
    assert!(first.starts_with("whsec_") && valid_signing_secret(&first));
    assert_ne!(first, ORIGINAL_SECRET);
    assert!(!w
        .admin("GET", &hook_path(&t, &wid), None)
        .body
        .contains("whsec_"));

    let (_, item) = ping_delivered(&mut w, &t, &wid);
    let sigs = signatures(&item);
    assert_eq!(sigs.len(), 2, "{sigs:?}");
    assert!(verifies(&item, &first, &sigs[0]));
    assert!(verifies(&item, ORIGINAL_SECRET, &sigs[1]));

    // A second rotation an hour later: the new overlap is from `first`; the original is gone.
    w.now += 3_600_000;
    let second = w.admin("POST", &rotate, None).body_json()["signingSecret"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(second, first);
    let (_, item) = ping_delivered(&mut w, &t, &wid);
    let sigs = signatures(&item);
    assert_eq!(sigs.len(), 2, "{sigs:?}");
    assert!(verifies(&item, &second, &sigs[0]));
    assert!(verifies(&item, &first, &sigs[1]));
    assert!(!sigs.iter().any(|s| verifies(&item, ORIGINAL_SECRET, s)));

    // Just before the end of that overlap both still sign; from its end only the new one.
    w.now += DAY_MS - 1;
    let (_, item) = ping_delivered(&mut w, &t, &wid);
    assert_eq!(signatures(&item).len(), 2);
    w.now += 1;
    let (_, item) = ping_delivered(&mut w, &t, &wid);
    let sigs = signatures(&item);
    assert_eq!(sigs.len(), 1, "{sigs:?}");
    assert!(verifies(&item, &second, &sigs[0]));

    // An unsigned subscription gets its first secret: nothing to overlap with.
    let r = w.admin(
        "POST",
        &format!("/admin/accounts/{}/webhooks", t.id),
        Some(json!({"url": "https://plain.example.com/in", "events": ["*"]})),
    );
    let plain = r.body_json()["id"].as_str().unwrap().to_string();
    assert_eq!(r.body_json()["signed"], false);
    let s = w.admin(
        "POST",
        &format!("{}/rotate-secret", hook_path(&t, &plain)),
        None,
    );
    let secret = s.body_json()["signingSecret"].as_str().unwrap().to_string();
    assert_eq!(
        w.admin("GET", &hook_path(&t, &plain), None).body_json()["signed"],
        true
    );
    let (_, item) = ping_delivered(&mut w, &t, &plain);
    let sigs = signatures(&item);
    assert_eq!(sigs.len(), 1);
    assert!(verifies(&item, &secret, &sigs[0]));
    assert_eq!(
        w.admin(
            "POST",
            &format!("{}/rotate-secret", hook_path(&t, "nope")),
            None
        )
        .status,
        404
    );
    assert_eq!(w.admin("GET", &rotate, None).status, 405);
}

#[test]
fn test_ping_is_one_delivery_whatever_the_events() {
    let (mut w, t, wid) = setup();
    let (did, item) = ping(&mut w, &t, &wid);
    assert_eq!(item.id, format!("d.{did}.1"));
    let body: Value = serde_json::from_str(&item.request.body).unwrap();
    assert_eq!(body["event"], "webhook_test");
    assert_eq!(body["data"], json!({"webhookId": wid}));
    assert_eq!(body["domain"], "acme.example.com");
    assert!(!item.request.headers.contains_key("X-Sync-ID"));
    // Retried like any other delivery.
    w.report(&item.id, status(502, "bad gateway"));
    assert!(w.advance());
    let again = w.due();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, format!("d.{did}.2"));
    w.report(&again[0].id, status(200, ""));
    let list = w
        .admin("GET", &format!("{}/deliveries", hook_path(&t, &wid)), None)
        .body_json();
    assert_eq!(list[0]["id"], did.as_str());
    assert_eq!(list[0]["event"], "webhook_test");
    assert_eq!(list[0]["status"], "delivered");
    assert_eq!(list[0]["attempts"], 2);
    assert_eq!(list[0]["syncId"], Value::Null);
    assert_eq!(list[0]["trackingId"], Value::Null);

    let r = w.admin("POST", &format!("{}/test", hook_path(&t, "nope")), None);
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        w.admin("GET", &format!("{}/test", hook_path(&t, &wid)), None)
            .status,
        405
    );
}

#[test]
fn ten_failed_deliveries_in_a_row_disable_until_patched() {
    let (mut w, t, wid) = setup();
    let path = hook_path(&t, &wid);
    // Nine failures, one success: the run starts again.
    for _ in 0..9 {
        let (_, item) = ping(&mut w, &t, &wid);
        fail_all_attempts(&mut w, item);
    }
    let (_, item) = ping(&mut w, &t, &wid);
    w.report(&item.id, status(200, ""));
    for i in 0..10 {
        let h = w.admin("GET", &path, None).body_json();
        assert_eq!(h["enabled"], true, "after {i} failures");
        let (_, item) = ping(&mut w, &t, &wid);
        fail_all_attempts(&mut w, item);
    }
    let h = w.admin("GET", &path, None).body_json();
    assert_eq!(h["enabled"], false);
    let reason = h["disabledReason"].as_str().unwrap();
    assert!(
        reason.contains("10 consecutive failed deliveries"),
        "{reason}"
    );
    assert!(reason.contains("HTTP 500: down"), "{reason}");
    let listed = w
        .admin("GET", &format!("/admin/accounts/{}/webhooks", t.id), None)
        .body_json();
    assert_eq!(listed[0]["enabled"], false);

    // Nothing more is queued: not by a write, not by a ping, not by a manual retry.
    let deliveries = format!("{path}/deliveries");
    let count = |w: &mut World| {
        w.admin("GET", &deliveries, None)
            .body_json()
            .as_array()
            .unwrap()
            .len()
    };
    let n = count(&mut w);
    let r = w.api_h(
        &t,
        "POST",
        "/api/customers",
        Some(customer()),
        &[("X-Sync-Data", "push")],
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(count(&mut w), n);
    let r = w.admin("POST", &format!("{path}/test"), None);
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("disabled"));
    let failed = w.admin("GET", &deliveries, None).body_json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = w.admin("POST", &format!("{deliveries}/{failed}/retry"), None);
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(w.due().is_empty());

    // PATCH enabled: true clears the reason and the run.
    let r = w.admin("PATCH", &path, Some(json!({"enabled": true})));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body_json()["enabled"], true);
    assert_eq!(r.body_json()["disabledReason"], Value::Null);
    let r = w.api_h(
        &t,
        "POST",
        "/api/customers",
        Some(customer()),
        &[("X-Sync-Data", "push")],
    );
    assert_eq!(r.status, 201);
    assert_eq!(count(&mut w), n + 1);
    // One more failure does not disable it again: the run started over.
    let item = w.due().remove(0);
    fail_all_attempts(&mut w, item);
    assert_eq!(w.admin("GET", &path, None).body_json()["enabled"], true);

    // Disabling by hand gives its own reason.
    let r = w.admin("PATCH", &path, Some(json!({"enabled": false})));
    assert_eq!(r.body_json()["enabled"], false);
    assert_eq!(
        r.body_json()["disabledReason"],
        "disabled through the admin API"
    );
}

#[test]
fn webhook_retries_honour_retry_after_capped_at_a_day() {
    let (mut w, t, wid) = setup();
    let busy = |after: &str| Outcome::Response {
        status: 503,
        headers: [("Retry-After".to_string(), after.to_string())].into(),
        body: String::new(),
    };
    let (_, item) = ping(&mut w, &t, &wid);
    let start = w.now;
    w.report(&item.id, busy("3600"));
    assert_eq!(
        w.engine.next_deadline(&w.store).unwrap(),
        Some(start + 3_600_000)
    );
    w.now = start + 3_600_000 - 1;
    assert!(w.due().is_empty());
    w.now = start + 3_600_000;
    let item = w.due().remove(0);
    // A week is capped at 24 hours.
    let start = w.now;
    w.report(&item.id, busy("604800"));
    assert_eq!(
        w.engine.next_deadline(&w.store).unwrap(),
        Some(start + DAY_MS)
    );
    // A Retry-After shorter than the schedule's delay does not shorten it.
    w.now = start + DAY_MS;
    let item = w.due().remove(0);
    let start = w.now;
    w.report(&item.id, busy("0"));
    let next = w.engine.next_deadline(&w.store).unwrap().unwrap();
    assert!(next > start, "{next} <= {start}");
}

#[test]
fn deliveries_are_filtered_by_status_and_sync() {
    let (mut w, t, wid) = setup();
    let mut syncs = Vec::new();
    for i in 0..3 {
        let r = w.api_h(
            &t,
            "POST",
            "/api/customers",
            Some(json!({"name": format!("C{i}")})),
            &[
                ("X-Sync-Data", "push"),
                ("X-Tracking-ID", &format!("trk-{i}")),
            ],
        );
        syncs.push(r.headers["X-Sync-ID"].clone());
        w.now += 1;
    }
    let items = w.due();
    assert_eq!(items.len(), 3);
    // The first sync's delivery is delivered, the others stay pending.
    let body0 = |i: &WorkItem| serde_json::from_str::<Value>(&i.request.body).unwrap();
    let first = items
        .iter()
        .find(|i| body0(i)["data"]["syncId"] == syncs[0].as_str())
        .unwrap();
    w.report(&first.id, status(200, ""));
    let path = format!("{}/deliveries", hook_path(&t, &wid));
    let get = |w: &mut World, q: &str| w.admin("GET", &format!("{path}?{q}"), None);
    let ids = |v: Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|d| d["syncId"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(get(&mut w, "status=delivered").body_json()),
        vec![syncs[0].clone()]
    );
    assert_eq!(
        ids(get(&mut w, "status=pending").body_json()),
        vec![syncs[2].clone(), syncs[1].clone()]
    );
    assert_eq!(get(&mut w, "status=failed").body_json(), json!([]));
    let one = get(&mut w, &format!("syncId={}", syncs[1])).body_json();
    assert_eq!(ids(one.clone()), vec![syncs[1].clone()]);
    assert_eq!(one[0]["trackingId"], "trk-1");
    assert_eq!(one[0]["event"], "api_push_complete");
    assert_eq!(
        get(&mut w, &format!("syncId={}&status=delivered", syncs[1])).body_json(),
        json!([])
    );
    // Paging applies to what the filter keeps.
    assert_eq!(
        ids(get(&mut w, "status=pending&page=2&pageSize=1").body_json()),
        vec![syncs[1].clone()]
    );
    for (q, names) in [
        ("status=done", "status"),
        ("status=", "status"),
        ("syncId=", "syncId"),
        ("sort=createdAt", "sort"),
        ("status=failed&event=x", "event"),
    ] {
        let r = get(&mut w, q);
        assert_eq!(r.status, 400, "{q}: {}", r.body);
        assert!(
            r.body_json()["detail"].as_str().unwrap().contains(names),
            "{q}: {}",
            r.body
        );
    }
    // The webhook is looked up first.
    assert_eq!(
        w.admin(
            "GET",
            &format!("{}/deliveries?status=done", hook_path(&t, "nope")),
            None
        )
        .status,
        404
    );
}
