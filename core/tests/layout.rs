//! The data layout: objects stored once (a push task names the version it sends), the bytes
//! one pushing write commits, what stays after the retention window, and the migrations from
//! older layouts.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::{json, Value};
use writesync_core::records::keys;
use writesync_core::{ApiRequest, Batch, KvRead, Op};

fn keys_with(w: &World, prefix: &str) -> Vec<String> {
    w.store
        .scan(prefix, 0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

fn pushed(item: &writesync_core::WorkItem) -> Value {
    serde_json::from_str::<Value>(&item.request.body).unwrap()["object"].clone()
}

#[test]
fn a_later_update_while_the_first_push_is_pending_pushes_version_1_then_2() {
    let mut w = World::new();
    let t = w.tenant("acme.example.com", true);
    w.connect(&t, "quickbooks", "accounting");
    let c = w.api(&t, "POST", "/api/customers", Some(customer()));
    let cid = c.body_json()["id"].as_str().unwrap().to_string();
    let push = [("X-Sync-Data", "push")];
    let inv = w.api_h(
        &t,
        "POST",
        "/api/invoices",
        Some(invoice(&cid, "INV-1")),
        &push,
    );
    assert_eq!(inv.status, 201, "{}", inv.body);
    let id = inv.body_json()["id"].as_str().unwrap().to_string();
    // Version 1 is handed out and its answer is still outstanding.
    let first = w.due();
    assert_eq!(first.len(), 1);
    assert_eq!(pushed(&first[0])["version"], 1);
    let mut body = invoice(&cid, "INV-1");
    body["dueDate"] = json!("2026-12-31");
    let upd = w.api_h(
        &t,
        "PUT",
        &format!("/api/invoices/{id}"),
        Some(body),
        &[("X-Sync-Data", "push"), ("If-Match", "1")],
    );
    assert_eq!(upd.status, 200, "{}", upd.body);
    // A payment makes version 3 without pushing the invoice: version 2 must stay sendable.
    let pay = w.api(
        &t,
        "POST",
        &format!("/api/invoices/{id}/payments"),
        Some(json!({"amount": 100, "date": "2026-11-05"})),
    );
    assert_eq!(pay.status, 201, "{}", pay.body);
    let kept = keys_with(&w, "ov/");
    assert_eq!(kept.len(), 2, "versions 1 and 2 are kept: {kept:?}");
    assert!(w.due().is_empty(), "version 2 waits for version 1");
    w.report(&first[0].id, status(201, r#"{"id":"QB-1"}"#));
    assert_eq!(
        keys_with(&w, "ov/").len(),
        1,
        "version 1 is no longer needed"
    );
    let second = w.due();
    assert_eq!(second.len(), 1);
    let sent = pushed(&second[0]);
    assert_eq!(sent["version"], 2);
    assert_eq!(sent["dueDate"], "2026-12-31");
    assert_eq!(sent["amountPaid"], 0, "the payment came after version 2");
    assert_eq!(
        serde_json::from_str::<Value>(&second[0].request.body).unwrap()["operation"],
        "update"
    );
    w.report(&second[0].id, status(200, r#"{"id":"QB-1"}"#));
    assert!(
        keys_with(&w, "ov/").is_empty(),
        "nothing unfinished needs a kept version"
    );
    assert!(
        !keys_with(&w, keys::SYNCS).iter().any(|k| keys::is_chain(k)),
        "no unfinished push is chained"
    );
    let current = w.api(&t, "GET", &format!("/api/invoices/{id}"), None);
    assert_eq!(current.body_json()["version"], 3);
}

fn bytes(batch: &Batch) -> usize {
    batch
        .ops
        .iter()
        .map(|op| match op {
            Op::Put { key, value } => key.len() + value.len(),
            Op::Delete { key } => key.len(),
        })
        .sum()
}

/// An invoice of about 1 KB as stored.
fn big_invoice(customer: &str) -> Value {
    let lines: Vec<Value> = (0..5)
        .map(|i| {
            json!({"description": format!("Consulting, phase {i}: workshops and review"),
                   "quantity": 2, "unitAmount": 15000 + i, "taxAmount": 6300})
        })
        .collect();
    json!({"number": "INV-2026-0001", "customerId": customer, "issueDate": "2026-11-01",
           "dueDate": "2026-11-30", "currency": "EUR", "lines": lines})
}

/// A store with 2 connections and a webhook subscription, and one pushing invoice write;
/// answers the world, the write's batch, the invoice's id and the store before the write.
fn one_pushing_write() -> (World, Tenant, Batch, String, writesync_core::MemoryStore) {
    let mut w = World::new();
    let t = w.tenant("acme.example.com", true);
    w.connect(&t, "quickbooks", "accounting");
    w.connect(&t, "shopify", "commerce");
    w.webhook(&t, json!(["*"]));
    let c = w.api(&t, "POST", "/api/customers", Some(customer()));
    let cid = c.body_json()["id"].as_str().unwrap().to_string();
    let req = ApiRequest::new("POST", "/api/invoices")
        .header("Authorization", &t.auth)
        .header("X-Sync-Data", "push")
        .json(&big_invoice(&cid));
    let before = w.store.clone();
    let step = w.engine.handle(&req, w.now, &w.store);
    assert_eq!(step.response.status, 201, "{}", step.response.body);
    assert_eq!(
        step.response.headers["X-Sync-Targets"],
        "quickbooks,shopify"
    );
    w.store.apply_batch(&step.batch);
    w.engine.finish(&step);
    let id = step.response.body_json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    (w, t, step.batch, id, before)
}

fn object_bytes(w: &World, t: &Tenant, id: &str) -> usize {
    let key = format!("obj/{}/invoice/{id}", t.id);
    key.len() + w.store.get(&key).unwrap().unwrap().len()
}

#[test]
fn one_pushing_invoice_write_commits_at_most_the_object_plus_1_kib() {
    let (w, t, batch, id, _) = one_pushing_write();
    let object = object_bytes(&w, &t, &id);
    let total = bytes(&batch);
    println!(
        "one pushing invoice write (2 connections, 1 webhook): {total} bytes committed in {} \
         entries; the stored invoice itself: {object} bytes; the rest: {} bytes",
        batch.ops.len(),
        total - object
    );
    for op in &batch.ops {
        if let Op::Put { key, value } = op {
            println!("  {:>5}  {key}", key.len() + value.len());
        }
    }
    assert!(object >= 1000, "the invoice is about 1 KB: {object}");
    // Everything counts, the reverse reference entry (a delete's 409) and the per-account sync
    // index (`GET /api/syncs`) included.
    assert!(
        total <= object + 1024,
        "{total} bytes committed for a {object}-byte object"
    );
}

fn store_bytes(w: &World) -> usize {
    w.store.entries().map(|(k, v)| k.len() + v.len()).sum()
}

const DAY: i64 = 86_400_000;

#[test]
fn after_the_retention_window_an_invoice_keeps_at_most_the_object_plus_300_bytes() {
    let (mut w, t, _, id, before) = one_pushing_write();
    let base: usize = before.entries().map(|(k, v)| k.len() + v.len()).sum();
    let sync_id = w
        .store
        .scan(keys::SYNCS, 0, 10)
        .unwrap()
        .iter()
        .find(|(k, _)| !keys::is_chain(k))
        .and_then(|(k, _)| keys::id_from_key(&k[keys::SYNCS.len()..]))
        .unwrap();
    for item in w.due() {
        let answer = if item.request.url.contains("quickbooks") {
            r#"{"id":"QB-1001"}"#
        } else {
            r#"{"id":"SH-7001"}"#
        };
        w.report(&item.id, status(201, answer));
    }
    for _ in 0..3 {
        for item in w.due() {
            w.report(&item.id, status(200, ""));
        }
    }
    assert!(
        w.engine.next_deadline(&w.store).unwrap().is_none(),
        "all done"
    );
    // Within the window nothing of the sync goes.
    w.now += 29 * DAY;
    while w.engine.prune_with(w.now, 100, &mut w.store).unwrap() > 0 {}
    let sync = w.api(&t, "GET", &format!("/api/syncs/{sync_id}"), None);
    assert_eq!(sync.status, 200, "{}", sync.body);
    w.now += 2 * DAY;
    while w.engine.prune_with(w.now, 1, &mut w.store).unwrap() > 0 {}
    let object = object_bytes(&w, &t, &id);
    let kept = store_bytes(&w) - base;
    println!(
        "after the retention window: {kept} bytes kept for the invoice (the stored invoice \
         itself: {object} bytes; the rest: {} bytes)",
        kept - object
    );
    for (k, v) in w.store.entries() {
        if !before.entries().any(|(bk, _)| bk == k) {
            println!("  {:>5}  {k}", k.len() + v.len());
        }
    }
    assert!(
        kept <= object + 300,
        "{kept} bytes kept for a {object}-byte object"
    );
    let gone = w.api(&t, "GET", &format!("/api/syncs/{sync_id}"), None);
    assert_eq!(gone.status, 404);
    assert!(
        gone.body_json()["detail"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{}",
        gone.body
    );
    let unknown = w.api(&t, "GET", "/api/syncs/unknown", None);
    assert_eq!(unknown.body_json()["detail"], "no such sync");
    // The object, its version and its remote ids stay: an update pushes as an update.
    let stored = w.api(&t, "GET", &format!("/api/invoices/{id}"), None);
    let customer = stored.body_json()["customerId"]
        .as_str()
        .unwrap()
        .to_string();
    let mut body = big_invoice(&customer);
    body["dueDate"] = json!("2027-01-31");
    let upd = w.api_h(
        &t,
        "PUT",
        &format!("/api/invoices/{id}"),
        Some(body),
        &[("X-Sync-Data", "push")],
    );
    assert_eq!(upd.status, 200, "{}", upd.body);
    let items = w.due();
    assert_eq!(items.len(), 2);
    for i in &items {
        let b: Value = serde_json::from_str(&i.request.body).unwrap();
        assert_eq!(b["operation"], "update");
    }
}

#[test]
fn unfinished_syncs_are_never_pruned_and_prune_is_bounded() {
    let mut w = World::new();
    let t = w.tenant("acme.example.com", true);
    w.connect(&t, "quickbooks", "accounting");
    let push = [("X-Sync-Data", "push")];
    let mut syncs = Vec::new();
    for i in 0..3 {
        let c = w.api_h(
            &t,
            "POST",
            "/api/customers",
            Some(json!({"name": format!("C{i}")})),
            &push,
        );
        syncs.push(c.headers["X-Sync-ID"].clone());
        w.now += 1;
    }
    // The first two finish, the third stays leased.
    let items = w.due();
    assert_eq!(items.len(), 3);
    w.report(&items[0].id, status(201, "{}"));
    w.report(&items[1].id, status(400, "no"));
    w.now += 40 * DAY;
    // The third's lease ran out long ago, but it is still unfinished (never reported).
    // Three deletes for the pruned sync: its row, its task's pointer and its entry in the
    // account's sync index (`GET /api/syncs`).
    assert_eq!(w.engine.prune_with(w.now, 1, &mut w.store).unwrap(), 3);
    assert_eq!(
        w.api(&t, "GET", &format!("/api/syncs/{}", syncs[0]), None)
            .status,
        404
    );
    assert_eq!(
        w.api(&t, "GET", &format!("/api/syncs/{}", syncs[1]), None)
            .status,
        200
    );
    while w.engine.prune_with(w.now, 1, &mut w.store).unwrap() > 0 {}
    assert_eq!(
        w.api(&t, "GET", &format!("/api/syncs/{}", syncs[1]), None)
            .status,
        404
    );
    let third = w.api(&t, "GET", &format!("/api/syncs/{}", syncs[2]), None);
    assert_eq!(third.status, 200, "an unfinished sync is kept");
    assert_eq!(third.body_json()["status"], "in_progress");
}

#[test]
fn the_layout_is_stored_and_a_newer_one_is_refused() {
    let mut w = World::new();
    // An empty store has nothing to migrate and nothing to mark.
    let step = w.engine.migrate(10, &w.store).unwrap();
    assert!(step.done && step.batch.is_empty());
    assert_eq!(step.from, writesync_core::LAYOUT_VERSION);
    let t = w.tenant("acme.example.com", true);
    // The engine that found it empty marks it with its first write: the account's creation
    // carries the mark, and opening it again has nothing to do.
    assert_eq!(
        w.store.get("meta/layout").unwrap().as_deref(),
        Some(r#"{"version":5}"#)
    );
    let marked = entries(&w.store);
    assert_eq!(
        w.engine.migrate_with(10, &mut w.store).unwrap(),
        writesync_core::LAYOUT_VERSION
    );
    // A store that holds data without a mark (an engine of before layout 4 began it empty)
    // is migrated as layout 2: its indexes are written again, the same, and it is marked.
    let mut unmarked = w.store.clone();
    let mut b = Batch::new();
    b.delete("meta/layout");
    unmarked.apply_batch(&b);
    let mut engine =
        writesync_core::Engine::new(writesync_core::EngineConfig::zero_seed_for_tests());
    assert_eq!(engine.migrate_with(10, &mut unmarked).unwrap(), 2);
    assert_eq!(entries(&unmarked), marked);
    assert!(w.engine.migrate(10, &w.store).unwrap().batch.is_empty());
    assert_eq!(w.api(&t, "GET", "/api/customers", None).status, 200);
    for (text, says) in [
        (r#"{"version":6}"#, "data layout 6, newer"),
        (r#"{"version":"x"}"#, "not a layout this engine knows"),
        ("[]", "not a layout this engine knows"),
    ] {
        let mut b = Batch::new();
        b.put("meta/layout", text);
        let mut store = w.store.clone();
        store.apply_batch(&b);
        let mut engine =
            writesync_core::Engine::new(writesync_core::EngineConfig::zero_seed_for_tests());
        let e = engine.migrate(10, &store).unwrap_err();
        assert_eq!(e.code(), "layout");
        assert!(e.to_string().contains(says), "{e}");
        let e = engine.migrate_with(10, &mut store).unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
        // Nothing was written, and the engine refuses to work on it.
        assert_eq!(store.get("meta/layout").unwrap().as_deref(), Some(text));
        assert_eq!(engine.due(w.now, 10, &store).unwrap_err().code(), "layout");
        let r = engine.handle(
            &ApiRequest::new("GET", "/api/customers").header("Authorization", &t.auth),
            w.now,
            &store,
        );
        assert_eq!(r.response.status, 503, "{}", r.response.body);
        assert!(r.batch.is_empty());
    }
}

#[test]
fn an_old_unfinished_sync_does_not_hold_back_the_pruning_of_later_ones() {
    let mut w = World::new();
    let t = w.tenant("acme.example.com", true);
    w.connect(&t, "quickbooks", "accounting");
    let push = [("X-Sync-Data", "push")];
    let mut syncs = Vec::new();
    for i in 0..3 {
        let c = w.api_h(
            &t,
            "POST",
            "/api/customers",
            Some(json!({"name": format!("C{i}")})),
            &push,
        );
        syncs.push(c.headers["X-Sync-ID"].clone());
        w.now += 1;
    }
    // The oldest stays unfinished (handed out, never reported); the two after it finish.
    let items = w.due();
    w.report(&items[1].id, status(201, "{}"));
    w.report(&items[2].id, status(201, "{}"));
    w.now += 40 * DAY;
    let status_of =
        |w: &mut World, s: &str| w.api(&t, "GET", &format!("/api/syncs/{s}"), None).status;
    // limit 1: one sync per call, found past the one that must stay.
    assert!(w.engine.prune_with(w.now, 1, &mut w.store).unwrap() > 0);
    assert_eq!(status_of(&mut w, &syncs[1]), 404);
    assert_eq!(status_of(&mut w, &syncs[2]), 200);
    while w.engine.prune_with(w.now, 1, &mut w.store).unwrap() > 0 {}
    assert_eq!(status_of(&mut w, &syncs[2]), 404);
    assert_eq!(status_of(&mut w, &syncs[0]), 200);
    // Among the syncs, the pruning passed over the push chain of the oldest's customer (its
    // push is unfinished) and left it; the two finished pushes left none.
    let chains: Vec<String> = keys_with(&w, keys::SYNCS)
        .into_iter()
        .filter(|k| keys::is_chain(k))
        .collect();
    assert_eq!(chains.len(), 1, "{chains:?}");
}

/// A layout-1 store is migrated by a build with the feature `layout1` (the default); a build
/// without it (the wasm package) refuses it with a precise `layout` error and writes nothing.
#[test]
fn a_layout1_store_is_migrated_only_by_a_build_with_the_feature_layout1() {
    use writesync_core::{Engine, EngineConfig, MemoryStore};
    // Three ways a store says it holds layout 1: one of its own rows, its recorded version,
    // and a migration from it under way.
    for (key, value) in [
        ("chain/c1/invoice/i1", r#""t1""#),
        ("meta/layout", r#"{"version":1}"#),
        (
            "meta/migration",
            r#"{"from":1,"phase":"orphans","offset":0}"#,
        ),
    ] {
        let mut b = Batch::new();
        b.put("acct/a1", "{}");
        b.put(key, value);
        let mut store = MemoryStore::new();
        store.apply_batch(&b);
        #[cfg(not(feature = "layout1"))]
        let before: Vec<(String, String)> = store
            .entries()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut engine = Engine::new(EngineConfig::zero_seed_for_tests());
        let got = engine.migrate_with(10, &mut store);
        #[cfg(feature = "layout1")]
        {
            assert_eq!(got.unwrap(), 1, "{key}");
            assert_eq!(
                store.get("meta/layout").unwrap().as_deref(),
                Some(r#"{"version":5}"#)
            );
            assert!(store.get("meta/migration").unwrap().is_none());
            // The account and the layout's mark are all that is left.
            assert_eq!(store.entries().count(), 2, "{key}");
            for prefix in writesync_core::records::layout::LAYOUT1_PREFIXES {
                assert!(store.first_key(prefix).unwrap().is_none(), "{prefix}");
            }
            assert!(engine.due(0, 10, &store).is_ok());
        }
        #[cfg(not(feature = "layout1"))]
        {
            use writesync_core::records::layout::LAYOUT1_UNSUPPORTED;
            let e = got.unwrap_err();
            assert_eq!(e.code(), "layout", "{key}");
            assert!(e.to_string().contains(LAYOUT1_UNSUPPORTED), "{e}");
            let e = engine.migrate(10, &store).unwrap_err();
            assert!(e.to_string().contains(LAYOUT1_UNSUPPORTED), "{e}");
            let after: Vec<(String, String)> = store
                .entries()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            assert_eq!(after, before, "nothing is written");
            // The engine's other calls refuse it with the same words.
            let e = engine.due(0, 10, &store).unwrap_err();
            assert!(e.to_string().contains(LAYOUT1_UNSUPPORTED), "{e}");
        }
    }
}

fn fixture(text: &str) -> writesync_core::MemoryStore {
    let rows: Vec<(String, String)> = serde_json::from_str(text).unwrap();
    let mut b = Batch::new();
    for (k, v) in rows {
        b.put(k, v);
    }
    let mut store = writesync_core::MemoryStore::new();
    store.apply_batch(&b);
    store
}

fn entries(s: &writesync_core::MemoryStore) -> Vec<(String, String)> {
    s.entries().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Migrate `store` in steps of one row, losing every other batch once (as after a crash
/// between steps); answers the number of steps.
fn migrate_by_single_rows(store: &mut writesync_core::MemoryStore, from: u32) -> usize {
    let mut engine =
        writesync_core::Engine::new(writesync_core::EngineConfig::zero_seed_for_tests());
    let mut steps = 0;
    loop {
        let step = engine.migrate(1, store).unwrap();
        assert_eq!(step.from, from);
        // One row read: at most a few written (a converted row and its old key, an
        // invoice's references, the marker).
        assert!(step.batch.ops.len() <= 5, "{:?}", step.batch);
        steps += 1;
        if steps % 2 == 0 {
            let again = engine.migrate(1, store).unwrap();
            assert_eq!(again, step, "a lost step is planned again the same");
        }
        store.apply_batch(&step.batch);
        if step.done {
            return steps;
        }
        assert!(steps < 1000);
    }
}

/// The layout-3 fixture (`tests/fixtures/layout3/store.json`: the layout-1 fixture as the
/// layout-3 engine migrated it), the same data as layout 2 held it (without the reverse
/// reference index `ref/` and the per-account sync index `sx/`, marked version 2), and the
/// layout-4 fixture (`tests/fixtures/layout4/store.json`: the layout-1 fixture as the layout-4
/// engine migrated it, push chains under `ch/`) all migrate to layout 5 in bounded steps that
/// resume after a lost batch, and end byte for byte as `tests/fixtures/layout1/migrated.json`
/// (the layout-1 fixture migrated by today's engine).
#[test]
fn layout_2_3_and_4_stores_migrate_in_bounded_resumable_steps() {
    let layout3 = fixture(include_str!("../../tests/fixtures/layout3/store.json"));
    let layout4 = fixture(include_str!("../../tests/fixtures/layout4/store.json"));
    let current = fixture(include_str!("../../tests/fixtures/layout1/migrated.json"));
    assert_eq!(
        layout3.get("meta/layout").unwrap().as_deref(),
        Some(r#"{"version":3}"#)
    );
    assert_eq!(
        layout4.get("meta/layout").unwrap().as_deref(),
        Some(r#"{"version":4}"#)
    );
    assert!(layout4.scan("ch/", 0, 10).unwrap().len() == 4);
    let mut layout2 = layout3.clone();
    let mut old = Batch::new();
    for (k, _) in layout3.entries() {
        if k.starts_with("ref/") || k.starts_with("sx/") {
            old.delete(k.clone());
        }
    }
    old.put("meta/layout", r#"{"version":2}"#);
    layout2.apply_batch(&old);
    assert!(layout2.len() < layout3.len());
    for (from, mut store, more_than) in [(4, layout4, 3), (3, layout3, 40), (2, layout2, 40)] {
        // An engine refuses to work on it before the migration.
        let mut engine =
            writesync_core::Engine::new(writesync_core::EngineConfig::zero_seed_for_tests());
        assert_eq!(engine.due(0, 10, &store).unwrap_err().code(), "layout");
        let steps = migrate_by_single_rows(&mut store, from);
        assert!(steps > more_than, "layout {from}: {steps} steps");
        assert_eq!(entries(&store), entries(&current), "layout {from}");
    }
}

/// A conversion step that meets a row it cannot read fails with `corrupt_row` naming it and
/// writes nothing; the store stays as it was.
#[test]
fn a_layout_3_row_that_cannot_be_read_stops_the_migration_with_its_key() {
    for (key, value) in [
        ("c/a/invoice/i", "not json"),
        ("r/a/widget/i", "{}"),
        ("sx/a/not-hex", "\"x\""),
        ("due/0000000000000001/t/x", "[]"),
        ("t/x", "7"),
        ("ch/invoice/not-a-short-id", "[]"),
        ("ch/widget/-P23J6TsR-5JVrENsWhfEk", "[]"),
        ("c/a/widget/01a0c450-77b8-7001-9483-73d8e21b6b3f", "[]"),
    ] {
        let mut store = fixture(include_str!("../../tests/fixtures/layout3/store.json"));
        let mut b = Batch::new();
        b.put(key, value);
        store.apply_batch(&b);
        let before = entries(&store);
        let mut engine =
            writesync_core::Engine::new(writesync_core::EngineConfig::zero_seed_for_tests());
        let e = engine.migrate_with(1, &mut store).unwrap_err();
        assert!(e.to_string().contains(key), "{key}: {e}");
        assert_eq!(e.code(), "corrupt_row", "{key}");
        // The steps before the one that failed were committed; that one wrote nothing, and
        // the migration goes on once the row is mended.
        assert!(store.get(key).unwrap().is_some());
        assert_ne!(entries(&store), before, "{key}");
        let mut mend = Batch::new();
        mend.delete(key);
        store.apply_batch(&mend);
        assert_eq!(engine.migrate_with(1000, &mut store).unwrap(), 3, "{key}");
    }
}
