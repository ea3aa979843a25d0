//! Finding and repairing syncs (contract section 7): `GET /api/syncs` with its filters and
//! paging, `POST /api/syncs/{id}/retry`, and the structured `error` of a target.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use std::collections::BTreeMap;

use common::*;
use serde_json::{json, Value};
use writesync_core::connectors::{lookup, Answer, Operation, SourceError};
use writesync_core::util::crypto::basic_auth_header;
use writesync_core::util::schedule::RetrySchedule;
use writesync_core::util::time::rfc3339_millis;
use writesync_core::{ApiResponse, EngineConfig, Outcome, WorkItem};

const PUSH: [(&str, &str); 1] = [("X-Sync-Data", "push")];

fn fast() -> EngineConfig {
    EngineConfig {
        push_retry: RetrySchedule::from_millis(vec![1000, 4000]).unwrap(),
        ..EngineConfig::zero_seed_for_tests()
    }
}

fn ids(r: &ApiResponse) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.body);
    r.body_json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn header(item: &WorkItem, name: &str) -> String {
    item.request
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// A tenant with quickbooks (accounting) and hubspot (crm) connections and four syncs made
/// one second apart, newest last: a customer (both targets, tracking `t-1`), an invoice
/// (quickbooks), a customer for hubspot only (tracking `t-2`), and a customer write with
/// sources that match nothing (`no_targets`).
struct Setup {
    w: World,
    t: Tenant,
    syncs: Vec<String>,
    customer: String,
}

fn setup() -> Setup {
    let mut w = World::with_config(fast());
    let t = w.tenant("acme.example.com", true);
    w.connect(&t, "quickbooks", "accounting");
    w.connect(&t, "hubspot", "crm");
    let mut syncs = Vec::new();
    let c = w.api_h(
        &t,
        "POST",
        "/api/customers",
        Some(customer()),
        &[PUSH[0], ("X-Tracking-ID", "t-1")],
    );
    assert_eq!(c.status, 201, "{}", c.body);
    let customer = c.body_json()["id"].as_str().unwrap().to_string();
    syncs.push(c.headers["X-Sync-ID"].clone());
    w.now += 1000;
    let i = w.api_h(
        &t,
        "POST",
        "/api/invoices",
        Some(invoice(&customer, "INV-1")),
        &PUSH,
    );
    assert_eq!(i.status, 201, "{}", i.body);
    syncs.push(i.headers["X-Sync-ID"].clone());
    w.now += 1000;
    let c2 = w.api_h(
        &t,
        "POST",
        "/api/customers",
        Some(json!({"name": "Beta"})),
        &[
            PUSH[0],
            ("X-Sync-Sources", "hubspot"),
            ("X-Tracking-ID", "t-2"),
        ],
    );
    syncs.push(c2.headers["X-Sync-ID"].clone());
    w.now += 1000;
    let c3 = w.api_h(
        &t,
        "POST",
        "/api/customers",
        Some(json!({"name": "Gamma"})),
        &[PUSH[0], ("X-Sync-Sources", "banking")],
    );
    assert_eq!(c3.headers["X-Sync-Targets"], "");
    syncs.push(c3.headers["X-Sync-ID"].clone());
    Setup {
        w,
        t,
        syncs,
        customer,
    }
}

fn newest_first(s: &Setup, which: &[usize]) -> Vec<String> {
    let mut v: Vec<String> = which.iter().map(|i| s.syncs[*i].clone()).collect();
    v.reverse();
    v
}

#[test]
fn syncs_are_listed_newest_first_and_paged() {
    let mut s = setup();
    let all = s.w.api(&s.t, "GET", "/api/syncs", None);
    assert_eq!(ids(&all), newest_first(&s, &[0, 1, 2, 3]));
    // Each entry is the sync view of GET /api/syncs/{id}.
    let one =
        s.w.api(&s.t, "GET", &format!("/api/syncs/{}", s.syncs[1]), None);
    assert_eq!(all.body_json()[2], one.body_json());
    let p1 = s.w.api(&s.t, "GET", "/api/syncs?pageSize=3", None);
    assert_eq!(ids(&p1), newest_first(&s, &[1, 2, 3]));
    let p2 = s.w.api(&s.t, "GET", "/api/syncs?pageSize=3&page=2", None);
    assert_eq!(ids(&p2), newest_first(&s, &[0]));
    let p3 = s.w.api(&s.t, "GET", "/api/syncs?pageSize=3&page=3", None);
    assert!(ids(&p3).is_empty(), "an empty array is the end");
    // Another account sees none of them.
    let other = s.w.tenant("other.example.com", true);
    assert!(ids(&s.w.api(&other, "GET", "/api/syncs", None)).is_empty());
}

#[test]
fn every_filter_narrows_the_list() {
    let mut s = setup();
    let t0 = rfc3339_millis(T0);
    let t1 = rfc3339_millis(T0 + 1000);
    let t2 = rfc3339_millis(T0 + 2000);
    let cases: Vec<(String, Vec<usize>)> = vec![
        ("trackingId=t-1".into(), vec![0]),
        ("trackingId=t-2".into(), vec![2]),
        ("trackingId=none".into(), vec![]),
        ("status=pending".into(), vec![0, 1, 2]),
        ("status=no_targets".into(), vec![3]),
        ("status=failed".into(), vec![]),
        ("objectType=invoice".into(), vec![1]),
        ("objectType=customer".into(), vec![0, 2, 3]),
        (format!("objectId={}", s.customer), vec![0]),
        ("app=quickbooks".into(), vec![0, 1]),
        ("app=HubSpot".into(), vec![0, 2]),
        ("app=xero".into(), vec![]),
        (format!("since={t1}"), vec![1, 2, 3]),
        (format!("until={t1}"), vec![0, 1]),
        (format!("since={t1}&until={t2}"), vec![1, 2]),
        (format!("since={t0}&until={t0}"), vec![0]),
        // Offsets are read as the instant they name.
        ("since=2026-09-21T16:13:21%2B02:00".into(), vec![1, 2, 3]),
        ("since=2026-09-21T14:13:20.0001Z".into(), vec![1, 2, 3]),
        (
            "since=2026-09-21T14:13:20.0005Z&until=2026-09-21T14:13:20.0005Z".into(),
            vec![],
        ),
        ("app=quickbooks&objectType=customer".into(), vec![0]),
        ("app=hubspot&status=pending&pageSize=1".into(), vec![2]),
        (
            "app=hubspot&status=pending&pageSize=1&page=2".into(),
            vec![0],
        ),
        (
            "app=hubspot&status=pending&pageSize=1&page=3".into(),
            vec![],
        ),
    ];
    for (q, want) in cases {
        let r = s.w.api(&s.t, "GET", &format!("/api/syncs?{q}"), None);
        assert_eq!(ids(&r), newest_first(&s, &want), "{q}");
    }
    assert_eq!(t0, "2026-09-21T14:13:20.000Z");
}

#[test]
fn the_status_filter_follows_the_targets() {
    let mut s = setup();
    // Fail every push of the invoice's sync (quickbooks answers 400).
    let invoice_sync = s.syncs[1].clone();
    drain(&mut s.w, |i| {
        let body: Value = serde_json::from_str(&i.request.body).unwrap();
        if body["syncId"] == invoice_sync {
            status(400, r#"{"code":"E1","message":"bad","field":"number"}"#)
        } else {
            status(201, r#"{"id":"R"}"#)
        }
    });
    let failed = s.w.api(&s.t, "GET", "/api/syncs?status=failed", None);
    assert_eq!(ids(&failed), vec![s.syncs[1].clone()]);
    let ok = s.w.api(&s.t, "GET", "/api/syncs?status=succeeded", None);
    assert_eq!(ids(&ok), newest_first(&s, &[0, 2]));
}

#[test]
fn bad_queries_are_400_naming_the_parameter_and_change_nothing() {
    let mut s = setup();
    let cases = [
        ("colour=red", "colour"),
        ("status=done", "status"),
        ("status=", "status"),
        ("objectType=widget", "objectType"),
        ("since=yesterday", "since"),
        ("until=2026-02-30T00:00:00Z", "until"),
        (
            "since=2026-09-21T14:13:20Z&until=2026-09-21T14:13:19Z",
            "since",
        ),
        ("pageSize=0", "pageSize"),
        ("pageSize=201", "pageSize"),
        ("page=0", "page"),
        ("app=quickbooks&app=xero", "app"),
        ("trackingId=%0Abad", "trackingId"),
    ];
    let before = s.w.store.clone();
    for (q, param) in cases {
        let r = s.w.api(&s.t, "GET", &format!("/api/syncs?{q}"), None);
        assert_eq!(r.status, 400, "{q}: {}", r.body);
        let b = r.body_json();
        assert_eq!(b["type"], "/problems/invalid-query", "{q}");
        assert!(
            b["detail"].as_str().unwrap().starts_with(param),
            "{q}: {}",
            b["detail"]
        );
    }
    assert_eq!(s.w.store.entries().count(), before.entries().count());
    assert!(s.w.store.entries().eq(before.entries()));
}

#[test]
fn listing_needs_a_key_and_a_read_only_key_may_list() {
    let mut s = setup();
    let r =
        s.w.send(writesync_core::ApiRequest::new("GET", "/api/syncs"));
    assert_eq!(r.status, 401);
    let k = s.w.admin(
        "POST",
        &format!("/admin/accounts/{}/api-keys", s.t.id),
        Some(json!({"scopes": ["api.read"]})),
    );
    let kb = k.body_json();
    let ro = Tenant {
        id: s.t.id.clone(),
        auth: basic_auth_header(kb["key"].as_str().unwrap(), kb["secret"].as_str().unwrap()),
    };
    assert_eq!(ids(&s.w.api(&ro, "GET", "/api/syncs", None)).len(), 4);
    // A retry is a write: api.write is needed.
    let r = s.w.api(
        &ro,
        "POST",
        &format!("/api/syncs/{}/retry", s.syncs[0]),
        None,
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.body_json()["type"], "/problems/missing-scope");
    assert_eq!(
        s.w.api(&s.t, "DELETE", "/api/syncs", None).status,
        405,
        "GET only"
    );
    assert_eq!(
        s.w.api(
            &s.t,
            "GET",
            &format!("/api/syncs/{}/retry", s.syncs[0]),
            None
        )
        .status,
        405
    );
}

/// Hand out and answer every due push (and those they release) with `answer`.
fn drain(w: &mut World, mut answer: impl FnMut(&WorkItem) -> Outcome) {
    for _ in 0..10 {
        let items = w.due();
        if items.is_empty() {
            return;
        }
        for i in &items {
            let o = answer(i);
            w.report(&i.id, o);
        }
    }
    panic!("pushes kept coming");
}

/// Fail the first sync's pushes for good (quickbooks 422 with a structured body, hubspot
/// 400), answer the others 201. The invoice's push needs the customer at quickbooks, so it
/// fails with it.
fn fail_first(s: &mut Setup) -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    let first = s.syncs[0].clone();
    drain(&mut s.w, |i| {
        let body: Value = serde_json::from_str(&i.request.body).unwrap();
        let app = if i.request.url.contains("quickbooks") {
            "quickbooks"
        } else {
            "hubspot"
        };
        if body["syncId"] == first {
            keys.insert(app.to_string(), header(i, "Idempotency-Key"));
            if app == "quickbooks" {
                status(
                    422,
                    r#"{"error":{"code":"DUPLICATE","message":"name taken","field":"name"}}"#,
                )
            } else {
                status(400, "plain text")
            }
        } else {
            status(201, r#"{"id":"R"}"#)
        }
    });
    keys
}

#[test]
fn a_target_shows_the_structured_error_of_the_answer() {
    let mut s = setup();
    fail_first(&mut s);
    let v =
        s.w.api(&s.t, "GET", &format!("/api/syncs/{}", s.syncs[0]), None)
            .body_json();
    assert_eq!(v["status"], "failed");
    let qb = &v["targets"][0];
    assert_eq!(qb["app"], "quickbooks");
    assert_eq!(
        qb["error"],
        json!({"status": 422, "code": "DUPLICATE", "message": "name taken", "field": "name"})
    );
    assert!(qb["lastError"].as_str().unwrap().starts_with("HTTP 422"));
    let hs = &v["targets"][1];
    assert_eq!(
        hs["error"],
        json!({"status": 400, "code": null, "message": null, "field": null})
    );
    assert_eq!(hs["lastError"], "HTTP 400: plain text");
    // A succeeded target has none.
    let ok =
        s.w.api(&s.t, "GET", &format!("/api/syncs/{}", s.syncs[1]), None)
            .body_json();
    assert_eq!(ok["targets"][0]["error"], Value::Null);
    assert_eq!(ok["targets"][0]["status"], "succeeded");
}

#[test]
fn a_transport_error_has_no_structured_error() {
    let mut s = setup();
    let invoice_sync = s.syncs[1].clone();
    drain(&mut s.w, |i| {
        let body: Value = serde_json::from_str(&i.request.body).unwrap();
        if body["syncId"] == invoice_sync {
            Outcome::Error {
                error: "refused: 10.0.0.1 is not allowed".into(),
                permanent: true,
            }
        } else {
            status(201, "{}")
        }
    });
    let v =
        s.w.api(&s.t, "GET", &format!("/api/syncs/{}", s.syncs[1]), None)
            .body_json();
    assert_eq!(v["targets"][0]["status"], "failed");
    assert_eq!(v["targets"][0]["error"], Value::Null);
    assert!(v["targets"][0]["lastError"]
        .as_str()
        .unwrap()
        .contains("refused"));
}

#[test]
fn a_retry_puts_failed_targets_back_with_their_idempotency_keys_and_a_fresh_budget() {
    let mut s = setup();
    let keys = fail_first(&mut s);
    let path = format!("/api/syncs/{}/retry", s.syncs[0]);
    let r = s.w.api(&s.t, "POST", &path, None);
    assert_eq!(r.status, 202, "{}", r.body);
    let v = r.body_json();
    assert_eq!(v["id"], s.syncs[0]);
    assert_eq!(v["status"], "pending");
    for t in v["targets"].as_array().unwrap() {
        assert_eq!(t["status"], "pending");
        assert_eq!(t["attempts"], 1, "attempts keep counting");
        assert!(
            t["lastError"].is_string(),
            "lastError is kept until the next answer"
        );
    }
    assert_eq!(
        s.w.api(&s.t, "GET", &format!("/api/syncs/{}", s.syncs[0]), None)
            .body_json(),
        v
    );
    // Both pushes are due at once, with the first attempt's Idempotency-Key.
    let items = s.w.due();
    assert_eq!(items.len(), 2);
    for i in &items {
        let app = if i.request.url.contains("quickbooks") {
            "quickbooks"
        } else {
            "hubspot"
        };
        assert_eq!(header(i, "Idempotency-Key"), keys[app], "{app}");
        assert_eq!(header(i, "X-Tracking-ID"), "t-1");
    }
    // A fresh budget: the schedule has 2 retries, so 3 attempts are made before it fails.
    let mut attempts = 0;
    for i in &items {
        attempts += 1;
        s.w.report(&i.id, status(503, "busy"));
    }
    while s.w.advance() {
        let items = s.w.due();
        for i in &items {
            attempts += 1;
            s.w.report(&i.id, status(503, "busy"));
        }
        if attempts > 20 {
            panic!("never gave up");
        }
    }
    let v =
        s.w.api(&s.t, "GET", &format!("/api/syncs/{}", s.syncs[0]), None)
            .body_json();
    assert_eq!(v["status"], "failed");
    assert_eq!(attempts, 6, "3 attempts for each of 2 targets");
    assert_eq!(v["targets"][0]["attempts"], 4);
    assert_eq!(
        v["targets"][0]["error"],
        json!({"status": 503, "code": null, "message": null, "field": null})
    );
}

#[test]
fn a_retry_limited_to_apps_and_the_refusals() {
    let mut s = setup();
    fail_first(&mut s);
    let path = format!("/api/syncs/{}/retry", s.syncs[0]);
    let other = s.w.tenant("other.example.com", true);
    let before: Vec<(String, String)> =
        s.w.store
            .entries()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    let unchanged = |s: &Setup| {
        let now: Vec<(String, String)> =
            s.w.store
                .entries()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        let added: Vec<_> = now.iter().filter(|e| !before.contains(e)).collect();
        let gone: Vec<_> = before.iter().filter(|e| !now.contains(e)).collect();
        assert!(
            now == before,
            "a refused retry changed the store: {added:?} {gone:?}"
        );
    };
    let refusals = [
        (json!({"apps": ["xero"]}), 422, "/apps/0"),
        (json!({"apps": ["hubspot", 7]}), 422, "/apps/1"),
        (json!({"apps": []}), 422, "/apps"),
        (json!({"apps": "hubspot"}), 422, "/apps"),
        (json!({"app": ["hubspot"]}), 422, "/app"),
        (json!(["hubspot"]), 422, ""),
    ];
    for (body, code, pointer) in refusals {
        let r = s.w.api(&s.t, "POST", &path, Some(body.clone()));
        assert_eq!(r.status, code, "{body}: {}", r.body);
        let b = r.body_json();
        assert_eq!(b["type"], "/problems/validation-failed");
        assert!(
            b["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["pointer"] == pointer),
            "{body}: {b}"
        );
        unchanged(&s);
    }
    let mut bad = writesync_core::ApiRequest::new("POST", &path)
        .header("Authorization", &s.t.auth)
        .header("Content-Type", "application/json");
    bad.body = Some("{\"apps\": [".into());
    let bad = s.w.send(bad);
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body_json()["type"], "/problems/malformed-json");
    let mut text = writesync_core::ApiRequest::new("POST", &path)
        .header("Authorization", &s.t.auth)
        .header("Content-Type", "text/plain");
    text.body = Some("hubspot".into());
    let text = s.w.send(text);
    assert_eq!(text.status, 415);
    let unknown = s.w.api(
        &s.t,
        "POST",
        "/api/syncs/01a0c450-0000-7000-8000-000000000000/retry",
        None,
    );
    assert_eq!(unknown.status, 404);
    assert_eq!(s.w.api(&other, "POST", &path, None).status, 404);
    unchanged(&s);
    // Only hubspot.
    let r =
        s.w.api(&s.t, "POST", &path, Some(json!({"apps": ["HubSpot"]})));
    assert_eq!(r.status, 202, "{}", r.body);
    let v = r.body_json();
    assert_eq!(v["targets"][0]["status"], "failed");
    assert_eq!(v["targets"][1]["status"], "pending");
    assert_eq!(v["status"], "in_progress");
    let items = s.w.due();
    assert_eq!(items.len(), 1);
    assert!(items[0].request.url.contains("hubspot"));
    // Hubspot is no longer failed: a retry limited to it has nothing to do.
    let r =
        s.w.api(&s.t, "POST", &path, Some(json!({"apps": ["hubspot"]})));
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.body_json()["type"], "/problems/nothing-to-retry");
    s.w.report(&items[0].id, status(201, r#"{"id":"HS-9"}"#));
    let r = s.w.api(&s.t, "POST", &path, None);
    assert_eq!(r.status, 202, "quickbooks is still failed: {}", r.body);
    let r = s.w.api(&s.t, "POST", &path, None);
    assert_eq!(r.status, 409, "{}", r.body);
}

#[test]
fn nothing_to_retry_without_a_failed_target_and_write_mode_is_needed() {
    let mut s = setup();
    for sync in [&s.syncs[1], &s.syncs[3]] {
        let r =
            s.w.api(&s.t, "POST", &format!("/api/syncs/{sync}/retry"), None);
        assert_eq!(r.status, 409, "{}", r.body);
        assert_eq!(r.body_json()["type"], "/problems/nothing-to-retry");
    }
    s.w.admin(
        "PATCH",
        &format!("/admin/accounts/{}", s.t.id),
        Some(json!({"writeEnabled": false})),
    );
    let r = s.w.api(
        &s.t,
        "POST",
        &format!("/api/syncs/{}/retry", s.syncs[0]),
        None,
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.body_json()["type"], "/problems/write-mode-disabled");
}

#[test]
fn a_retried_push_waits_for_a_later_push_of_the_same_object_and_never_resends_a_replaced_version() {
    let mut w = World::with_config(fast());
    let t = w.tenant("acme.example.com", true);
    w.connect(&t, "quickbooks", "accounting");
    let c = w.api_h(&t, "POST", "/api/customers", Some(customer()), &PUSH);
    let cid = c.body_json()["id"].as_str().unwrap().to_string();
    let first = c.headers["X-Sync-ID"].clone();
    let items = w.due();
    w.report(&items[0].id, status(400, "no"));
    // A later write of the same object replaces version 1: the failed push of version 1 is
    // not sent again (that would undo version 2 at the source).
    let u = w.api_h(
        &t,
        "PATCH",
        &format!("/api/customers/{cid}"),
        Some(json!({"phone": "+1 555 0100"})),
        &PUSH,
    );
    assert_eq!(u.status, 200, "{}", u.body);
    let second = u.headers["X-Sync-ID"].clone();
    let r = w.api(&t, "POST", &format!("/api/syncs/{first}/retry"), None);
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body_json()["detail"]
        .as_str()
        .unwrap()
        .contains("later write"));
    // The second sync's push fails too; retrying it sends version 2 again.
    let items = w.due();
    assert_eq!(items.len(), 1);
    w.report(&items[0].id, status(400, "no"));
    let r = w.api(&t, "POST", &format!("/api/syncs/{second}/retry"), None);
    assert_eq!(r.status, 202, "{}", r.body);
    let items = w.due();
    let body: Value = serde_json::from_str(&items[0].request.body).unwrap();
    assert_eq!(body["object"]["version"], 2);
    assert_eq!(body["syncId"], second);
    // While that push is out, a third write is planned behind it; ordering holds.
    let u = w.api_h(
        &t,
        "PATCH",
        &format!("/api/customers/{cid}"),
        Some(json!({"phone": "+1 555 0101"})),
        &PUSH,
    );
    let third = u.headers["X-Sync-ID"].clone();
    assert!(w.due().is_empty(), "the third waits for the retried push");
    w.report(&items[0].id, status(201, r#"{"id":"QB-1"}"#));
    let items = w.due();
    assert_eq!(items.len(), 1);
    let body: Value = serde_json::from_str(&items[0].request.body).unwrap();
    assert_eq!(body["syncId"], third);
    assert_eq!(body["object"]["version"], 3);
}

fn answer<'a>(status: u16, body: &'a str, headers: &'a BTreeMap<String, String>) -> Answer<'a> {
    Answer {
        object_type: writesync_core::cdm::ObjectType::Customer,
        operation: Operation::Create,
        status,
        headers,
        body,
        now_ms: T0,
    }
}

fn source_error(connector: &str, status: u16, body: &str) -> SourceError {
    let h = BTreeMap::new();
    lookup(connector)
        .unwrap()
        .source_error(&answer(status, body, &h))
}

fn se(status: u16, code: Option<&str>, message: Option<&str>, field: Option<&str>) -> SourceError {
    SourceError {
        status,
        code: code.map(str::to_string),
        message: message.map(str::to_string),
        field: field.map(str::to_string),
    }
}

#[test]
fn each_connector_reads_its_sources_errors() {
    let cases = [
        (
            "generic",
            422,
            r#"{"code":"E42","message":"bad name","field":"/name"}"#,
            se(422, Some("E42"), Some("bad name"), Some("/name")),
        ),
        (
            "generic",
            400,
            r#"{"error":{"code":7,"message":"nope","pointer":"/lines/0"}}"#,
            se(400, Some("7"), Some("nope"), Some("/lines/0")),
        ),
        (
            "generic",
            400,
            r#"{"error":"bad customer"}"#,
            se(400, None, Some("bad customer"), None),
        ),
        (
            "generic",
            500,
            "<html>oops</html>",
            se(500, None, None, None),
        ),
        (
            "quickbooks",
            400,
            r#"{"Fault":{"Error":[{"Message":"Duplicate Name Exists Error","Detail":"The name supplied already exists.","code":"6240","element":"DisplayName"}],"type":"ValidationFault"}}"#,
            se(
                400,
                Some("6240"),
                Some("Duplicate Name Exists Error: The name supplied already exists."),
                Some("DisplayName"),
            ),
        ),
        (
            "quickbooks",
            401,
            r#"{"fault":{"error":[{"message":"AuthenticationFailed","code":"3200"}]}}"#,
            se(401, Some("3200"), Some("AuthenticationFailed"), None),
        ),
        (
            "xero",
            400,
            r#"{"ErrorNumber":10,"Type":"ValidationException","Message":"A validation exception occurred","Elements":[{"ValidationErrors":[],"LineItems":[{"ValidationErrors":[]},{"ValidationErrors":[{"Message":"Description needs to be specified."}]}]}]}"#,
            se(
                400,
                Some("ValidationException"),
                Some("Description needs to be specified."),
                Some("LineItems/1"),
            ),
        ),
        (
            "xero",
            400,
            r#"{"ErrorNumber":10,"Type":"ValidationException","Elements":[{"ValidationErrors":[{"Message":"Email address must be valid."}]}]}"#,
            se(
                400,
                Some("ValidationException"),
                Some("Email address must be valid."),
                None,
            ),
        ),
        (
            "xero",
            401,
            r#"{"Title":"Unauthorized","Status":401,"Detail":"AuthenticationUnsuccessful"}"#,
            se(401, None, Some("AuthenticationUnsuccessful"), None),
        ),
        (
            "hubspot",
            400,
            r#"{"status":"error","message":"Property values were not valid","category":"VALIDATION_ERROR","errors":[{"message":"Email is invalid","code":"INVALID_EMAIL","context":{"propertyName":["email"]}}]}"#,
            se(
                400,
                Some("VALIDATION_ERROR"),
                Some("Property values were not valid"),
                Some("email"),
            ),
        ),
        (
            "shopify",
            422,
            r#"{"errors":{"email":["has already been taken","is invalid"]}}"#,
            se(
                422,
                None,
                Some("has already been taken, is invalid"),
                Some("email"),
            ),
        ),
        (
            "shopify",
            404,
            r#"{"errors":"Not Found"}"#,
            se(404, None, Some("Not Found"), None),
        ),
    ];
    for (connector, status, body, want) in cases {
        assert_eq!(
            source_error(connector, status, body),
            want,
            "{connector} {body}"
        );
    }
}

#[test]
fn a_retry_with_an_idempotency_key_is_answered_once() {
    let mut s = setup();
    fail_first(&mut s);
    let path = format!("/api/syncs/{}/retry", s.syncs[0]);
    let key = [("Idempotency-Key", "retry-1")];
    let first = s.w.api_h(&s.t, "POST", &path, None, &key);
    assert_eq!(first.status, 202, "{}", first.body);
    let again = s.w.api_h(&s.t, "POST", &path, None, &key);
    assert_eq!(again.status, 202, "{}", again.body);
    assert_eq!(again.headers["Idempotency-Replayed"], "true");
    assert_eq!(again.body, first.body);
    let other = s.w.api_h(
        &s.t,
        "POST",
        &path,
        Some(json!({"apps": ["hubspot"]})),
        &key,
    );
    assert_eq!(other.status, 422, "{}", other.body);
    assert_eq!(
        other.body_json()["type"],
        "/problems/idempotency-key-reused"
    );
    let bad = s.w.api_h(
        &s.t,
        "POST",
        &path,
        None,
        &[("Idempotency-Key", "a\u{7f}b")],
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    // Without a key a repeat finds nothing failed.
    assert_eq!(s.w.api(&s.t, "POST", &path, None).status, 409);
}

#[test]
fn a_filtered_list_examines_at_most_10000_syncs_from_until_on() {
    let mut w = World::new();
    let t = w.tenant("acme.example.com", true);
    for i in 0..10_001 {
        let tracking = if i == 0 { "oldest" } else { "bulk" };
        let r = w.api_h(
            &t,
            "POST",
            "/api/customers",
            Some(json!({"name": format!("C{i}")})),
            &[PUSH[0], ("X-Tracking-ID", tracking)],
        );
        assert_eq!(r.status, 201, "{}", r.body);
        w.now += 1;
    }
    // Unfiltered pages come straight from the index, however deep.
    let deep = w.api(&t, "GET", "/api/syncs?pageSize=1&page=10001", None);
    let oldest = ids(&deep);
    assert_eq!(oldest.len(), 1);
    // The oldest sync is the 10,001st newest: a filter that needs it runs out of budget.
    let r = w.api(&t, "GET", "/api/syncs?trackingId=oldest", None);
    assert_eq!(r.status, 400, "{}", r.body);
    let b = r.body_json();
    assert_eq!(b["type"], "/problems/invalid-query");
    assert!(b["detail"].as_str().unwrap().contains("since"), "{b}");
    // A page the budget fills is answered; so is a range that starts late enough.
    let r = w.api(
        &t,
        "GET",
        "/api/syncs?trackingId=bulk&pageSize=200&page=50",
        None,
    );
    assert_eq!(ids(&r).len(), 200);
    let until = rfc3339_millis(T0);
    let r = w.api(
        &t,
        "GET",
        &format!("/api/syncs?trackingId=oldest&until={until}"),
        None,
    );
    assert_eq!(ids(&r), oldest, "until starts the walk at its time");
    let since = rfc3339_millis(T0 + 5_000);
    let r = w.api(
        &t,
        "GET",
        &format!("/api/syncs?trackingId=oldest&since={since}"),
        None,
    );
    assert!(ids(&r).is_empty(), "the walk stops at since");
    let r = w.api(
        &t,
        "GET",
        &format!("/api/syncs?since={until}&until={until}"),
        None,
    );
    assert_eq!(ids(&r), oldest);
    let r = w.api(
        &t,
        "GET",
        &format!("/api/syncs?until={}&pageSize=3", rfc3339_millis(T0 + 2)),
        None,
    );
    assert_eq!(ids(&r).len(), 3);
    assert_eq!(ids(&r)[2], oldest[0]);
    assert_eq!(oldest[0].len(), 36);
}
