//! Deterministic simulation: the engine over an in-memory store, fake sources and webhook
//! endpoints with scripted answers, and a virtual clock that jumps to the next deadline.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, VecDeque};

use common::*;
use quickcheck::{Arbitrary, Gen, QuickCheck};
use serde_json::{json, Value};
use writesync_core::{EngineConfig, Outcome, WorkItem};

/// A scripted peer: answers in order, then the default forever.
#[derive(Clone, Debug)]
struct Peer {
    script: VecDeque<Outcome>,
    default: Outcome,
    received: Vec<WorkItem>,
}

impl Peer {
    fn ok() -> Peer {
        Peer::with(vec![], status(200, "{}"))
    }
    fn with(script: Vec<Outcome>, default: Outcome) -> Peer {
        Peer {
            script: script.into(),
            default,
            received: vec![],
        }
    }
}

struct Sim {
    w: World,
    peers: BTreeMap<String, Peer>,
    /// (time, item) of everything sent.
    log: Vec<(i64, WorkItem)>,
}

fn host(url: &str) -> String {
    url.split("//")
        .nth(1)
        .unwrap_or("")
        .split('/')
        .next()
        .unwrap_or("")
        .to_string()
}

impl Sim {
    fn new(config: EngineConfig) -> Sim {
        Sim {
            w: World::with_config(config),
            peers: BTreeMap::new(),
            log: vec![],
        }
    }
    fn peer(&mut self, host: &str, p: Peer) {
        self.peers.insert(host.to_string(), p);
    }
    /// Run until nothing is owed (bounded).
    fn run(&mut self) {
        for _ in 0..10_000 {
            let items = self.w.due();
            for it in items {
                let h = host(&it.request.url);
                let peer = self.peers.entry(h).or_insert_with(Peer::ok);
                peer.received.push(it.clone());
                let outcome = peer
                    .script
                    .pop_front()
                    .unwrap_or_else(|| peer.default.clone());
                self.log.push((self.w.now, it.clone()));
                self.w.report(&it.id, outcome);
            }
            if !self.w.advance() {
                return;
            }
        }
        panic!("simulation did not settle");
    }
    fn sync(&mut self, t: &Tenant, id: &str) -> Value {
        self.w
            .api(t, "GET", &format!("/api/syncs/{id}"), None)
            .body_json()
    }
    fn hook_bodies(&self) -> Vec<Value> {
        self.peers
            .get("hooks.example.com")
            .map(|p| {
                p.received
                    .iter()
                    .map(|i| serde_json::from_str(&i.request.body).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn fast() -> EngineConfig {
    use writesync_core::util::schedule::RetrySchedule;
    EngineConfig {
        push_retry: RetrySchedule::from_millis(vec![1000, 4000, 16000]).unwrap(),
        webhook_retry: RetrySchedule::from_millis(vec![2000, 10000]).unwrap(),
        ..EngineConfig::zero_seed_for_tests()
    }
}

fn push_bodies(p: &Peer) -> Vec<Value> {
    p.received
        .iter()
        .map(|i| serde_json::from_str(&i.request.body).unwrap())
        .collect()
}

#[test]
fn one_target_fails_permanently_other_recovers_from_503s() {
    let mut s = Sim::new(fast());
    let t = s.w.tenant("acme.example.com", true);
    s.w.connect(&t, "quickbooks", "accounting");
    s.w.connect(&t, "shopify", "commerce");
    s.w.webhook(&t, json!(["*"]));
    s.peer(
        "quickbooks.example.com",
        Peer::with(
            vec![status(503, ""), status(503, "")],
            status(201, r#"{"id":"QB-1"}"#),
        ),
    );
    s.peer(
        "shopify.example.com",
        Peer::with(vec![], status(400, "bad customer")),
    );
    let c = s.w.api_h(
        &t,
        "POST",
        "/api/customers",
        Some(customer()),
        &[("X-Sync-Data", "push")],
    );
    let sync_id = c.headers["X-Sync-ID"].clone();
    s.run();
    let sync = s.sync(&t, &sync_id);
    assert_eq!(sync["status"], "partially_failed", "{sync}");
    let qb = &sync["targets"][0];
    assert_eq!(
        (
            qb["status"].as_str(),
            qb["attempts"].as_u64(),
            qb["remoteId"].as_str()
        ),
        (Some("succeeded"), Some(3), Some("QB-1"))
    );
    let sh = &sync["targets"][1];
    assert_eq!(sh["status"], "failed");
    assert_eq!(sh["attempts"], 1);
    assert!(sh["lastError"]
        .as_str()
        .unwrap()
        .contains("HTTP 400: bad customer"));
    // One Idempotency-Key across the three attempts; retries 1 s then 4 s (±10 % jitter) later.
    let sent: Vec<_> = s
        .log
        .iter()
        .filter(|(_, i)| i.request.url.contains("quickbooks"))
        .collect();
    assert_eq!(sent.len(), 3);
    assert!(sent
        .iter()
        .all(|(_, i)| i.request.headers["Idempotency-Key"]
            == sent[0].1.request.headers["Idempotency-Key"]));
    let gaps: Vec<i64> = sent.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(
        (900..=1100).contains(&gaps[0]) && (3600..=4400).contains(&gaps[1]),
        "{gaps:?}"
    );
    let events: Vec<String> = s
        .hook_bodies()
        .iter()
        .map(|b| b["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events.iter().filter(|e| *e == "api_push_update").count(), 2);
    assert_eq!(
        events.iter().filter(|e| *e == "api_push_complete").count(),
        1
    );
}

#[test]
fn retry_after_is_honoured() {
    let mut s = Sim::new(fast());
    let t = s.w.tenant("acme.example.com", true);
    s.w.connect(&t, "hubspot", "crm");
    let mut h = BTreeMap::new();
    h.insert("Retry-After".to_string(), "120".to_string());
    s.peer(
        "hubspot.example.com",
        Peer::with(
            vec![Outcome::Response {
                status: 429,
                headers: h,
                body: String::new(),
            }],
            status(201, "{}"),
        ),
    );
    s.w.api_h(
        &t,
        "POST",
        "/api/customers",
        Some(customer()),
        &[("X-Sync-Data", "push")],
    );
    s.run();
    let sent: Vec<i64> = s.log.iter().map(|(t, _)| *t).collect();
    assert_eq!(sent.len(), 2);
    assert!(sent[1] - sent[0] >= 120_000, "{sent:?}");
}

#[test]
fn exhausted_retries_fail_the_target() {
    let mut s = Sim::new(fast());
    let t = s.w.tenant("acme.example.com", true);
    s.w.connect(&t, "hubspot", "crm");
    s.peer(
        "hubspot.example.com",
        Peer::with(
            vec![],
            Outcome::Error {
                error: "connection reset".into(),
                permanent: false,
            },
        ),
    );
    let c = s.w.api_h(
        &t,
        "POST",
        "/api/customers",
        Some(customer()),
        &[("X-Sync-Data", "push")],
    );
    s.run();
    let sync = s.sync(&t, &c.headers["X-Sync-ID"]);
    assert_eq!(sync["status"], "failed");
    assert_eq!(
        sync["targets"][0]["attempts"], 4,
        "1 attempt + 3 retries of the schedule"
    );
    assert_eq!(sync["targets"][0]["lastError"], "connection reset");
}

#[test]
fn webhook_failing_three_times_then_delivered_and_four_times_then_failed() {
    for (failures, expect, attempts) in [(3, "delivered", 4), (4, "failed", 4)] {
        let mut s = Sim::new(fast());
        let t = s.w.tenant("acme.example.com", true);
        s.w.connect(&t, "hubspot", "crm");
        let wid = s.w.webhook(&t, json!(["api_push_complete"]));
        s.peer(
            "hooks.example.com",
            Peer::with(vec![status(500, ""); failures], status(200, "")),
        );
        s.w.api_h(
            &t,
            "POST",
            "/api/customers",
            Some(customer()),
            &[("X-Sync-Data", "push")],
        );
        s.run();
        let list =
            s.w.admin(
                "GET",
                &format!("/admin/accounts/{}/webhooks/{wid}/deliveries", t.id),
                None,
            )
            .body_json();
        assert_eq!(list[0]["status"], expect, "{list}");
        assert_eq!(list[0]["attempts"], attempts);
        let sends = s.peers["hooks.example.com"].received.len();
        assert_eq!(sends, attempts as usize);
        // Same webhook-id on every attempt; the signature verifies for each.
        let ids: Vec<_> = s.peers["hooks.example.com"]
            .received
            .iter()
            .map(|i| i.request.headers["webhook-id"].clone())
            .collect();
        assert!(ids.iter().all(|i| *i == ids[0]));
    }
}

#[test]
fn expense_with_new_vendor_pushes_vendor_first() {
    let mut s = Sim::new(fast());
    let t = s.w.tenant("acme.example.com", true);
    s.w.connect(&t, "quickbooks", "accounting");
    s.peer(
        "quickbooks.example.com",
        Peer::with(
            vec![status(503, ""), status(201, r#"{"id":"V-1"}"#)],
            status(201, r#"{"id":"P-1"}"#),
        ),
    );
    let e = s.w.api_h(&t, "POST", "/api/expenses",
        Some(json!({"vendor": {"name": "New Vendor"}, "date": "2026-11-03", "currency": "USD", "lines": [{"description": "x", "amount": 100}]})),
        &[("X-Sync-Data", "push")]);
    assert_eq!(e.status, 201, "{}", e.body);
    s.run();
    let bodies = push_bodies(&s.peers["quickbooks.example.com"]);
    let types: Vec<&str> = bodies
        .iter()
        .map(|b| b["objectType"].as_str().unwrap())
        .collect();
    assert_eq!(types, vec!["vendor", "vendor", "expense"]);
    assert_eq!(bodies[2]["references"]["vendorId"], "V-1");
    assert_eq!(bodies[2]["object"]["vendorId"], bodies[0]["object"]["id"]);
    assert_eq!(s.sync(&t, &e.headers["X-Sync-ID"])["status"], "succeeded");
}

#[test]
fn updates_queue_behind_a_backing_off_first_push() {
    let mut s = Sim::new(fast());
    let t = s.w.tenant("acme.example.com", true);
    s.w.connect(&t, "quickbooks", "accounting");
    s.peer(
        "quickbooks.example.com",
        Peer::with(
            vec![status(503, ""), status(503, "")],
            status(200, r#"{"id":"INV-R"}"#),
        ),
    );
    let c = s.w.api(&t, "POST", "/api/customers", Some(customer()));
    let cid = c.body_json()["id"].as_str().unwrap().to_string();
    let inv = s.w.api_h(
        &t,
        "POST",
        "/api/invoices",
        Some(invoice(&cid, "INV-1")),
        &[("X-Sync-Data", "push")],
    );
    let iid = inv.body_json()["id"].as_str().unwrap().to_string();
    // First attempt fails; while it backs off, two updates are written.
    let first = s.w.due();
    s.w.report(&first[0].id, status(503, ""));
    s.peers
        .get_mut("quickbooks.example.com")
        .unwrap()
        .script
        .pop_front();
    for memo in ["one", "two"] {
        let mut b = invoice(&cid, "INV-1");
        b["memo"] = json!(memo);
        let r = s.w.api_h(
            &t,
            "PUT",
            &format!("/api/invoices/{iid}"),
            Some(b),
            &[("X-Sync-Data", "push")],
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert!(s.w.due().is_empty(), "updates must wait for the first push");
    s.run();
    let bodies = push_bodies(&s.peers["quickbooks.example.com"]);
    let seq: Vec<(String, Value)> = bodies
        .iter()
        .map(|b| {
            (
                b["operation"].as_str().unwrap().to_string(),
                b["object"]["memo"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seq,
        vec![
            ("create".to_string(), Value::Null),
            ("create".to_string(), Value::Null),
            ("update".to_string(), json!("one")),
            ("update".to_string(), json!("two")),
        ]
    );
    assert_eq!(bodies[2]["remoteId"], "INV-R");
}

#[test]
fn an_expired_lease_is_handed_out_again_with_the_same_key() {
    let mut s = Sim::new(fast());
    let t = s.w.tenant("acme.example.com", true);
    s.w.connect(&t, "hubspot", "crm");
    let c = s.w.api_h(
        &t,
        "POST",
        "/api/customers",
        Some(customer()),
        &[("X-Sync-Data", "push")],
    );
    let lost = s.w.due();
    assert_eq!(lost.len(), 1);
    // The host dies: nothing is reported. After the lease the push is due again.
    assert!(s.w.due().is_empty());
    s.w.advance();
    let again = s.w.due();
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].request.headers["Idempotency-Key"],
        lost[0].request.headers["Idempotency-Key"]
    );
    // The stale attempt's late report is refused; the current one counts.
    let stale =
        s.w.engine
            .report(&lost[0].id, &status(201, "{}"), s.w.now, &s.w.store);
    assert!(stale.is_err());
    s.w.report(&again[0].id, status(201, "{}"));
    assert_eq!(s.sync(&t, &c.headers["X-Sync-ID"])["status"], "succeeded");
}

// ---- properties ----

#[derive(Clone, Debug)]
enum Answer {
    Ok,
    Busy,
    Reject,
    Reset,
    Refused,
}

impl Arbitrary for Answer {
    fn arbitrary(g: &mut Gen) -> Self {
        g.choose(&[
            Answer::Ok,
            Answer::Ok,
            Answer::Busy,
            Answer::Reject,
            Answer::Reset,
            Answer::Refused,
        ])
        .unwrap()
        .clone()
    }
}

impl Answer {
    fn outcome(&self) -> Outcome {
        match self {
            Answer::Ok => status(201, r#"{"id":"R"}"#),
            Answer::Busy => status(503, ""),
            Answer::Reject => status(422, "no"),
            Answer::Reset => Outcome::Error {
                error: "reset".into(),
                permanent: false,
            },
            Answer::Refused => Outcome::Error {
                error: "refused address".into(),
                permanent: true,
            },
        }
    }
}

#[derive(Clone, Debug)]
enum Write {
    Customer,
    UpdateLast,
    Invoice,
    ExpenseNewVendor,
}

impl Arbitrary for Write {
    fn arbitrary(g: &mut Gen) -> Self {
        g.choose(&[
            Write::Customer,
            Write::UpdateLast,
            Write::Invoice,
            Write::ExpenseNewVendor,
        ])
        .unwrap()
        .clone()
    }
}

fn run_random(writes: Vec<Write>, qb: Vec<Answer>, hs: Vec<Answer>, hook: Vec<bool>) -> bool {
    let mut s = Sim::new(fast());
    let t = s.w.tenant("acme.example.com", true);
    s.w.connect(&t, "quickbooks", "accounting");
    s.w.connect(&t, "hubspot", "crm");
    s.w.webhook(&t, json!(["*"]));
    s.peer(
        "quickbooks.example.com",
        Peer::with(qb.iter().map(Answer::outcome).collect(), status(201, "{}")),
    );
    s.peer(
        "hubspot.example.com",
        Peer::with(hs.iter().map(Answer::outcome).collect(), status(201, "{}")),
    );
    s.peer(
        "hooks.example.com",
        Peer::with(
            hook.iter()
                .map(|ok| status(if *ok { 200 } else { 500 }, ""))
                .collect(),
            status(200, ""),
        ),
    );
    let mut syncs = Vec::new();
    let mut last_customer: Option<String> = None;
    for (i, w) in writes.iter().take(12).enumerate() {
        let push = [("X-Sync-Data", "push")];
        let r = match (w, &last_customer) {
            (Write::UpdateLast, Some(id)) => s.w.api_h(&t, "PATCH", &format!("/api/customers/{id}"), Some(json!({"phone": format!("{i}")})), &push),
            (Write::Invoice, Some(id)) => s.w.api_h(&t, "POST", "/api/invoices", Some(invoice(id, &format!("INV-{i}"))), &push),
            (Write::ExpenseNewVendor, _) => s.w.api_h(&t, "POST", "/api/expenses",
                Some(json!({"vendor": {"name": format!("V{i}")}, "date": "2026-11-03", "currency": "USD", "lines": [{"description": "x", "amount": 100}]})), &push),
            _ => s.w.api_h(&t, "POST", "/api/customers", Some(customer()), &push),
        };
        if !(200..300).contains(&r.status) {
            return false;
        }
        if matches!(w, Write::Customer)
            || last_customer.is_none() && r.body_json()["name"].is_string()
        {
            last_customer = r.body_json()["id"].as_str().map(str::to_string);
        }
        syncs.push(r.headers["X-Sync-ID"].clone());
        // Interleave some work with the writes.
        if i % 3 == 2 {
            let items = s.w.due();
            for it in items {
                let peer = s.peers.get_mut(&host(&it.request.url)).unwrap();
                peer.received.push(it.clone());
                let o = peer
                    .script
                    .pop_front()
                    .unwrap_or_else(|| peer.default.clone());
                s.w.report(&it.id, o);
            }
        }
    }
    s.run();
    // Distinct completion deliveries (by webhook-id) per sync: a sync reaches a final status once.
    let mut completes: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for i in &s.peers["hooks.example.com"].received {
        let b: Value = serde_json::from_str(&i.request.body).unwrap();
        if b["event"] == "api_push_complete" {
            let sid = b["data"]["syncId"].as_str().unwrap().to_string();
            completes
                .entry(sid)
                .or_default()
                .insert(i.request.headers["webhook-id"].clone());
        }
    }
    for id in &syncs {
        let st = s.sync(&t, id);
        let final_status = ["succeeded", "partially_failed", "failed", "no_targets"]
            .contains(&st["status"].as_str().unwrap_or(""));
        if !final_status {
            eprintln!("sync not final: {st}");
            return false;
        }
        if completes.get(id).map_or(0, |s| s.len()) != 1 {
            eprintln!("sync {id} completed {:?} times", completes.get(id));
            return false;
        }
    }
    // Webhook attempts never exceed 4 per delivery.
    let mut per_delivery: BTreeMap<String, usize> = BTreeMap::new();
    for i in &s.peers["hooks.example.com"].received {
        *per_delivery
            .entry(i.request.headers["webhook-id"].clone())
            .or_default() += 1;
    }
    if per_delivery.values().any(|n| *n > 4) {
        return false;
    }
    // Each delivery is either delivered or failed; nothing pending once settled.
    let hooks =
        s.w.admin("GET", &format!("/admin/accounts/{}/webhooks", t.id), None)
            .body_json();
    let wid = hooks[0]["id"].as_str().unwrap();
    let list =
        s.w.admin(
            "GET",
            &format!("/admin/accounts/{}/webhooks/{wid}/deliveries", t.id),
            None,
        )
        .body_json();
    let done = list
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["status"] == "delivered" || d["status"] == "failed");
    done && s.w.engine.next_deadline(&s.w.store).unwrap().is_none()
}

#[test]
fn property_every_pushed_write_ends_in_one_final_status() {
    QuickCheck::new()
        .tests(150)
        .quickcheck(run_random as fn(Vec<Write>, Vec<Answer>, Vec<Answer>, Vec<bool>) -> bool);
}

#[test]
fn a_corrupt_task_row_is_skipped_and_other_work_goes_on() {
    let mut s = Sim::new(fast());
    let t = s.w.tenant("acme.example.com", true);
    s.w.connect(&t, "hubspot", "crm");
    let a = s.w.api_h(
        &t,
        "POST",
        "/api/customers",
        Some(customer()),
        &[("X-Sync-Data", "push")],
    );
    let b = s.w.api_h(
        &t,
        "POST",
        "/api/customers",
        Some(json!({"name": "Second"})),
        &[("X-Sync-Data", "push")],
    );
    // Corrupt the first write's task row (in layout 2 its sync's row holds it).
    let sync: Value = s.sync(&t, &a.headers["X-Sync-ID"]);
    assert_eq!(sync["status"], "pending");
    let first = writesync_core::records::keys::sync(&a.headers["X-Sync-ID"]);
    assert!(writesync_core::KvRead::get(&s.w.store, &first)
        .unwrap()
        .is_some());
    let mut batch = writesync_core::Batch::new();
    batch.put(first, "{not json");
    s.w.store.apply_batch(&batch);
    let work = s.w.engine.due(s.w.now, 10, &s.w.store).unwrap();
    assert_eq!(work.items.len(), 1);
    assert_eq!(work.skipped.len(), 1, "{:?}", work.skipped);
    assert!(
        work.skipped[0].contains("corrupt row sy/"),
        "{:?}",
        work.skipped
    );
    s.w.store.apply_batch(&work.batch);
    s.w.report(&work.items[0].id, status(201, "{}"));
    assert_eq!(s.sync(&t, &b.headers["X-Sync-ID"])["status"], "succeeded");
}

#[test]
fn recover_makes_leased_work_due_at_once() {
    let mut s = Sim::new(fast());
    let t = s.w.tenant("acme.example.com", true);
    s.w.connect(&t, "hubspot", "crm");
    s.w.webhook(&t, json!(["*"]));
    s.w.api_h(
        &t,
        "POST",
        "/api/customers",
        Some(customer()),
        &[("X-Sync-Data", "push")],
    );
    let lost = s.w.due();
    assert_eq!(lost.len(), 1);
    // Restart: the lease would keep the push back for 2 minutes; recover releases it.
    let lease_end = s.w.engine.next_deadline(&s.w.store).unwrap().unwrap();
    assert!(lease_end > s.w.now + 60_000);
    let batch = s.w.engine.recover(s.w.now, &s.w.store).unwrap();
    s.w.store.apply_batch(&batch);
    assert_eq!(s.w.engine.next_deadline(&s.w.store).unwrap(), Some(s.w.now));
    let again = s.w.due();
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].request.headers["Idempotency-Key"],
        lost[0].request.headers["Idempotency-Key"]
    );
    // The two deliveries just handed out are leased too: recover releases them as well.
    s.w.report(&again[0].id, status(201, "{}"));
    let items = s.w.due();
    assert_eq!(items.len(), 2, "two webhook deliveries");
    let none = s.w.engine.recover(s.w.now + 1, &s.w.store).unwrap();
    assert_eq!(none.ops.len(), 4, "the two leased deliveries are released");
}
