//! The layout-1 fixture: a store written by the layout-1 engine (commit `c02cf06` and before),
//! and the reads it answered.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
//!
//! `tests/fixtures/layout1/store.json` holds every entry (`[[key, value], ...]`, key order) of
//! a store after a fixed scenario; `reads.json` holds reads of that store by a fresh engine
//! (requests with their answers, and the due work at a fixed time). With
//! `WRITESYNC_REGENERATE_LAYOUT1=1` both files are written from the scenario; that only makes
//! sense on the layout-1 code that wrote them (the engine of today writes a newer layout, so
//! regenerating would no longer produce a layout-1 store). Without it, the scenario's reads
//! must still be the recorded ones (reads are behaviour, not storage), and the committed
//! layout-1 store, opened and migrated by today's engine, must answer them the same.
//!
//! `migrated.json` holds the entries (same form) of `store.json` after today's migration: the
//! fixture of the hosts that cannot migrate (the wasm package, built without the feature
//! `layout1`). With `WRITESYNC_REGENERATE_LAYOUT1=1` it is written from the committed
//! `store.json`; without it, migrating `store.json` must give exactly its entries.

use serde_json::{json, Value};
use writesync_core::util::crypto::basic_auth_header;
use writesync_core::{ApiRequest, Batch, Engine, KvRead, MemoryStore, Outcome, WorkKind};
use writesync_tests::{engine_for, items_value, response_value};

const ADMIN: &str = "layout-admin-token";
const T0: i64 = 1_790_000_000_000;
const DAY: i64 = 86_400_000;

fn config() -> Value {
    json!({"adminToken": ADMIN, "seed": "writesync layout fixture",
           "pushRetrySchedule": [1, 4], "webhookRetrySchedule": [2, 10]})
}

fn dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/layout1")
}

struct Sc {
    engine: Engine,
    store: MemoryStore,
    now: i64,
}

struct Tenant {
    id: String,
    auth: String,
}

impl Sc {
    fn send(&mut self, req: ApiRequest) -> Value {
        let r = self.engine.handle_with(&req, self.now, &mut self.store);
        assert!(r.status < 500, "{} {}: {}", req.method, req.path, r.body);
        let mut v = response_value(&r);
        v["headers"] = json!(r.headers);
        v
    }
    fn admin(&mut self, method: &str, path: &str, body: Value) -> Value {
        let q = ApiRequest::new(method, path)
            .header("Authorization", &format!("Bearer {ADMIN}"))
            .json(&body);
        self.send(q)
    }
    fn api(
        &mut self,
        t: &Tenant,
        method: &str,
        path: &str,
        body: Value,
        h: &[(&str, &str)],
    ) -> Value {
        let mut q = ApiRequest::new(method, path)
            .header("Authorization", &t.auth)
            .json(&body);
        for (k, v) in h {
            q = q.header(k, v);
        }
        self.send(q)
    }
    fn due(&mut self) -> Vec<writesync_core::WorkItem> {
        self.engine
            .due_with(self.now, 100, &mut self.store)
            .unwrap()
    }
    fn report(&mut self, id: &str, status: u16, body: &str) {
        let o = Outcome::Response {
            status,
            headers: Default::default(),
            body: body.into(),
        };
        self.engine
            .report_with(id, &o, self.now, &mut self.store)
            .unwrap();
    }
}

/// The scenario; answers the store, the tenant's auth and the ids worth reading.
fn scenario() -> (MemoryStore, Tenant, Vec<String>, Vec<String>) {
    let mut s = Sc {
        engine: engine_for(&config()).unwrap(),
        store: MemoryStore::new(),
        now: T0,
    };
    let a = s.admin(
        "POST",
        "/admin/accounts",
        json!({"domain": "fixture.example.com", "writeEnabled": true}),
    );
    let account = a["body"]["id"].as_str().unwrap().to_string();
    let k = s.admin(
        "POST",
        &format!("/admin/accounts/{account}/api-keys"),
        json!({"scopes": ["api.read", "api.write"], "name": "fixture"}),
    );
    let t = Tenant {
        id: account.clone(),
        auth: basic_auth_header(
            k["body"]["key"].as_str().unwrap(),
            k["body"]["secret"].as_str().unwrap(),
        ),
    };
    for (app, kind) in [("quickbooks", "accounting"), ("shopify", "commerce")] {
        let r = s.admin(
            "POST",
            &format!("/admin/accounts/{account}/connections"),
            json!({"app": app, "type": kind, "pushUrl": format!("https://{app}.example.com/push")}),
        );
        assert_eq!(r["status"], 201, "{r}");
    }
    let hook = s.admin(
        "POST",
        &format!("/admin/accounts/{account}/webhooks"),
        json!({"url": "https://hooks.example.com/in", "events": ["*"],
               "signingSecret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
    );
    let hook = hook["body"]["id"].as_str().unwrap().to_string();
    let push = [("X-Sync-Data", "push")];
    let mut ids = Vec::new();
    let mut syncs = Vec::new();
    let keep = |r: &Value, ids: &mut Vec<String>, syncs: &mut Vec<String>| {
        assert!(r["status"] == 201 || r["status"] == 200, "{r}");
        ids.push(r["body"]["id"].as_str().unwrap_or_default().to_string());
        if let Some(sid) = r["headers"]["X-Sync-ID"].as_str() {
            syncs.push(sid.to_string());
        }
    };
    let c1 = s.api(
        &t,
        "POST",
        "/api/customers",
        json!({"name": "Acme Ltd", "email": "ap@acme.example.com",
               "billingAddress": {"line1": "1 High St", "city": "London", "postalCode": "EC1A 1AA", "country": "GB"}}),
        &push,
    );
    keep(&c1, &mut ids, &mut syncs);
    let cid = c1["body"]["id"].as_str().unwrap().to_string();
    s.now += 1000;
    let items = s.due();
    for i in &items {
        let body = if i.request.url.contains("quickbooks") {
            r#"{"id":"QB-C1"}"#
        } else {
            r#"{"id":"SH-C1"}"#
        };
        s.report(&i.id, 201, body);
    }
    let invoice = |n: u32| {
        json!({"number": format!("INV-{n}"), "customerId": cid, "issueDate": "2026-11-01",
               "dueDate": "2026-11-30", "currency": "EUR", "lines": [
                   {"description": "Consulting", "quantity": 2, "unitAmount": 15000, "taxAmount": 6300},
                   {"description": "Travel", "quantity": 1.5, "unitAmount": 333}]})
    };
    // Invoice 1: delivered to both, then a payment marks it paid (pending pushes).
    s.now += 1000;
    let i1 = s.api(
        &t,
        "POST",
        "/api/invoices",
        invoice(1),
        &[
            ("X-Sync-Data", "push"),
            ("X-Tracking-ID", "order-1"),
            ("Idempotency-Key", "inv-1"),
        ],
    );
    keep(&i1, &mut ids, &mut syncs);
    let i1id = i1["body"]["id"].as_str().unwrap().to_string();
    for i in s.due() {
        if i.kind == WorkKind::Push {
            let body = if i.request.url.contains("quickbooks") {
                r#"{"id":"QB-I1"}"#
            } else {
                r#"{"id":"SH-I1"}"#
            };
            s.report(&i.id, 201, body);
        }
    }
    // Invoice 2: one target fails for good (400), the other is retried (503) and stays pending.
    s.now += 1000;
    let i2 = s.api(&t, "POST", "/api/invoices", invoice(2), &push);
    keep(&i2, &mut ids, &mut syncs);
    for i in s.due() {
        if i.kind == WorkKind::Push {
            if i.request.url.contains("quickbooks") {
                s.report(&i.id, 400, r#"{"error":"bad customer"}"#);
            } else {
                s.report(&i.id, 503, "maintenance");
            }
        }
    }
    // Webhooks so far: the first delivered, the rest left pending.
    s.now += 1000;
    let mut first = true;
    for i in s.due() {
        if i.kind == WorkKind::Webhook {
            if first {
                s.report(&i.id, 200, "");
                first = false;
            } else {
                s.report(&i.id, 500, "down");
            }
        }
    }
    // Invoice 3 with no push; an update of invoice 1 that pushes; a payment on invoice 1.
    s.now += 1000;
    let i3 = s.api(&t, "POST", "/api/invoices", invoice(3), &[]);
    keep(&i3, &mut ids, &mut syncs);
    let mut upd = invoice(1);
    upd["dueDate"] = json!("2026-12-15");
    let u = s.api(
        &t,
        "PUT",
        &format!("/api/invoices/{i1id}"),
        upd,
        &[("X-Sync-Data", "push"), ("If-Match", "1")],
    );
    keep(&u, &mut ids, &mut syncs);
    let p = s.api(
        &t,
        "POST",
        &format!("/api/invoices/{i1id}/payments"),
        json!({"amount": 36800, "date": "2026-11-05", "reference": "wire 1"}),
        &push,
    );
    keep(&p, &mut ids, &mut syncs);
    // An expense with a new vendor: the vendor push succeeds, the expense stays waiting for
    // its due time.
    s.now += 1000;
    let e = s.api(
        &t,
        "POST",
        "/api/expenses",
        json!({"vendor": {"name": "Office Supplies Co", "email": "billing@osc.example.com"},
               "date": "2026-11-03", "currency": "USD",
               "lines": [{"description": "Paper", "amount": 4599}, {"description": "Toner", "amount": 8900}]}),
        &[("X-Sync-Data", "push"), ("X-Tracking-ID", "exp-1")],
    );
    keep(&e, &mut ids, &mut syncs);
    ids.push(e["body"]["vendorId"].as_str().unwrap().to_string());
    let v2 = s.api(
        &t,
        "POST",
        "/api/vendors",
        json!({"name": "Paper Mill"}),
        &[],
    );
    keep(&v2, &mut ids, &mut syncs);
    s.now += 1000;
    let items = s.due();
    for i in items.iter().filter(|i| i.kind == WorkKind::Push) {
        if i.request.body.contains("\"vendor\"") {
            s.report(&i.id, 201, r#"{"id":"QB-V1"}"#);
        } else if i.request.url.contains("quickbooks") {
            s.report(&i.id, 201, r#"{"id":"QB-X"}"#);
        }
        // The rest stay leased (in progress).
    }
    let _ = hook;
    let _ = t.id.len();
    (s.store, t, ids, syncs)
}

/// The reads recorded from a fresh engine over `store`.
fn reads(store: &MemoryStore, t: &Tenant, ids: &[String], syncs: &[String]) -> Value {
    let mut engine = engine_for(&config()).unwrap();
    let mut store = store.clone();
    read_with(&mut engine, &mut store, t, ids, syncs)
}

fn read_paths(
    t: &Tenant,
    ids: &[String],
    syncs: &[String],
    store: &MemoryStore,
) -> Vec<(String, String)> {
    let mut paths: Vec<(String, String)> = Vec::new();
    let user = t.auth.clone();
    let admin = format!("Bearer {ADMIN}");
    for p in [
        "/api/customers",
        "/api/vendors",
        "/api/invoices",
        "/api/expenses",
        "/api/payments",
        "/api/syncs",
        "/api/syncs?status=failed",
        "/api/syncs?objectType=invoice",
    ] {
        paths.push((user.clone(), p.to_string()));
    }
    for id in ids.iter().filter(|i| !i.is_empty()) {
        for ty in ["customers", "invoices", "vendors", "expenses"] {
            paths.push((user.clone(), format!("/api/{ty}/{id}")));
        }
    }
    for s in syncs {
        paths.push((user.clone(), format!("/api/syncs/{s}")));
    }
    paths.push((user.clone(), "/api/syncs/unknown".into()));
    paths.push((admin.clone(), format!("/admin/accounts/{}", t.id)));
    paths.push((
        admin.clone(),
        format!("/admin/accounts/{}/connections", t.id),
    ));
    paths.push((admin.clone(), format!("/admin/accounts/{}/webhooks", t.id)));
    for (k, _) in store.entries().filter(|(k, _)| k.starts_with("hook/")) {
        let wid = k.rsplit('/').next().unwrap_or_default();
        paths.push((
            admin.clone(),
            format!("/admin/accounts/{}/webhooks/{wid}/deliveries", t.id),
        ));
    }
    paths
}

fn read_with(
    engine: &mut Engine,
    store: &mut MemoryStore,
    t: &Tenant,
    ids: &[String],
    syncs: &[String],
) -> Value {
    let mut out = Vec::new();
    for (auth, path) in read_paths(t, ids, syncs, store) {
        let q = ApiRequest::new("GET", &path).header("Authorization", &auth);
        let r = engine.handle_with(&q, T0 + DAY, store);
        out.push(json!({"auth": auth, "path": path, "expect": response_value(&r)}));
    }
    let deadline = engine.next_deadline(store).unwrap();
    let due_at = T0 + DAY;
    let items = engine.due_with(due_at, 100, store).unwrap();
    json!({"requests": out, "deadline": deadline, "due": {"now": due_at, "expect": items_value(&items)}})
}

/// Replays recorded reads against an engine and store; answers the first mismatch.
pub fn replay_reads(
    engine: &mut Engine,
    store: &mut MemoryStore,
    recorded: &Value,
) -> Result<(), String> {
    for r in recorded["requests"].as_array().unwrap() {
        let q = ApiRequest::new("GET", r["path"].as_str().unwrap())
            .header("Authorization", r["auth"].as_str().unwrap());
        let got = response_value(&engine.handle_with(&q, T0 + DAY, store));
        if got != r["expect"] {
            return Err(format!(
                "{}: expected\n{:#}\ngot\n{got:#}",
                r["path"], r["expect"]
            ));
        }
    }
    let deadline = json!(engine.next_deadline(store).map_err(|e| e.to_string())?);
    if deadline != recorded["deadline"] {
        return Err(format!(
            "deadline: expected {} got {deadline}",
            recorded["deadline"]
        ));
    }
    let now = recorded["due"]["now"].as_i64().unwrap();
    let items = engine
        .due_with(now, 100, store)
        .map_err(|e| e.to_string())?;
    let got = items_value(&items);
    if got != recorded["due"]["expect"] {
        return Err(format!(
            "due: expected\n{:#}\ngot\n{got:#}",
            recorded["due"]["expect"]
        ));
    }
    Ok(())
}

fn store_json(store: &MemoryStore) -> Value {
    Value::Array(store.entries().map(|(k, v)| json!([k, v])).collect())
}

/// A store holding the entries of a fixture file (`[[key, value], ...]`).
fn store_from(path: &std::path::Path) -> MemoryStore {
    let text = std::fs::read_to_string(path).unwrap();
    let entries: Vec<(String, String)> = serde_json::from_str(&text).unwrap();
    let mut b = Batch::new();
    for (k, v) in entries {
        b.put(k, v);
    }
    let mut s = MemoryStore::new();
    s.apply_batch(&b);
    s
}

fn load_store() -> MemoryStore {
    store_from(&dir().join("store.json"))
}

fn tenant_of(recorded: &Value) -> (Tenant, Vec<String>, Vec<String>) {
    let t = Tenant {
        id: recorded["account"].as_str().unwrap().into(),
        auth: recorded["auth"].as_str().unwrap().into(),
    };
    let ids = serde_json::from_value(recorded["ids"].clone()).unwrap();
    let syncs = serde_json::from_value(recorded["syncs"].clone()).unwrap();
    (t, ids, syncs)
}

fn recorded_reads() -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("reads.json")).unwrap()).unwrap()
}

#[test]
fn layout1_fixture_reads_are_todays_behaviour() {
    let (store, t, ids, syncs) = scenario();
    let mut fresh = reads(&store, &t, &ids, &syncs);
    fresh["account"] = json!(t.id);
    fresh["auth"] = json!(t.auth);
    fresh["ids"] = json!(ids);
    fresh["syncs"] = json!(syncs);
    if std::env::var_os("WRITESYNC_REGENERATE_LAYOUT1").is_some() {
        std::fs::create_dir_all(dir()).unwrap();
        std::fs::write(
            dir().join("store.json"),
            serde_json::to_string_pretty(&store_json(&store)).unwrap() + "\n",
        )
        .unwrap();
        std::fs::write(
            dir().join("reads.json"),
            serde_json::to_string_pretty(&fresh).unwrap() + "\n",
        )
        .unwrap();
    }
    assert_eq!(
        fresh,
        recorded_reads(),
        "the scenario's reads differ from tests/fixtures/layout1/reads.json"
    );
}

#[test]
fn the_layout1_store_answers_its_recorded_reads_after_migration() {
    let recorded = recorded_reads();
    let (t, ids, syncs) = tenant_of(&recorded);
    let mut store = load_store();
    let mut engine = engine_for(&config()).unwrap();
    // The recorded reads name every read the fixture answers.
    assert_eq!(
        read_paths(&t, &ids, &syncs, &store).len(),
        recorded["requests"].as_array().unwrap().len()
    );
    // Before the migration the engine refuses the store: 503 over HTTP, an error elsewhere.
    let q = ApiRequest::new("GET", "/api/invoices").header("Authorization", &t.auth);
    let refused = engine.handle_with(&q, T0 + DAY, &mut store);
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.body.contains("layout 1"), "{}", refused.body);
    let e = engine.due_with(T0 + DAY, 10, &mut store).unwrap_err();
    assert_eq!(e.code(), "layout");
    // Migrate in small steps; one step's batch is lost (a crash before its commit) and a
    // new engine resumes from the progress the store holds.
    let mut steps = 0;
    let mut dropped = false;
    loop {
        let step = engine.migrate(3, &store).unwrap();
        steps += 1;
        assert!(steps < 1000, "the migration ends");
        assert_eq!(step.from, 1);
        if steps == 4 && !dropped {
            dropped = true;
            engine = engine_for(&config()).unwrap();
            continue;
        }
        store.apply_batch(&step.batch);
        if step.done {
            break;
        }
    }
    assert!(
        steps > 5,
        "the fixture takes several bounded steps: {steps}"
    );
    for prefix in ["sync/", "task/", "chain/", "remote/", "meta/migration"] {
        assert!(
            store.entries().all(|(k, _)| !k.starts_with(prefix)),
            "{prefix} is left"
        );
    }
    assert_eq!(
        store.get("meta/layout").unwrap().as_deref(),
        Some(format!("{{\"version\":{}}}", writesync_core::LAYOUT_VERSION).as_str())
    );
    // Migrating again is a no-op.
    let again = engine.migrate(3, &store).unwrap();
    assert!(again.done && again.batch.is_empty());
    let mut engine = engine_for(&config()).unwrap();
    // The migration indexed every sync under its account: GET /api/syncs lists them all,
    // newest first.
    let q = ApiRequest::new("GET", "/api/syncs?pageSize=200").header("Authorization", &t.auth);
    let listed = engine_for(&config())
        .unwrap()
        .handle_with(&q, T0 + DAY, &mut store.clone())
        .body_json();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let mut want: Vec<&str> = syncs.iter().map(String::as_str).collect();
    want.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids, want);
    assert!(store.entries().any(|(k, _)| k.starts_with("sa/")));
    replay_reads(&mut engine, &mut store, &recorded).unwrap();
}

fn migrated_path() -> std::path::PathBuf {
    dir().join("migrated.json")
}

#[test]
fn migrating_the_layout1_store_gives_exactly_migrated_json() {
    let mut store = load_store();
    let mut engine = engine_for(&config()).unwrap();
    assert_eq!(engine.migrate_with(100, &mut store).unwrap(), 1);
    let migrated = store_json(&store);
    if std::env::var_os("WRITESYNC_REGENERATE_LAYOUT1").is_some() {
        std::fs::write(
            migrated_path(),
            serde_json::to_string_pretty(&migrated).unwrap() + "\n",
        )
        .unwrap();
    }
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(migrated_path()).unwrap()).unwrap();
    assert!(
        migrated == committed,
        "migrating tests/fixtures/layout1/store.json no longer gives migrated.json \
         (regenerate it with WRITESYNC_REGENERATE_LAYOUT1=1 if the change is intended)"
    );
    // The committed file is a store in the current layout that answers the recorded reads.
    let mut store = store_from(&migrated_path());
    let step = engine_for(&config()).unwrap().migrate(10, &store).unwrap();
    assert!(step.done && step.batch.is_empty() && step.from == writesync_core::LAYOUT_VERSION);
    let mut engine = engine_for(&config()).unwrap();
    replay_reads(&mut engine, &mut store, &recorded_reads()).unwrap();
}

/// The stores `load()` becomes when its migration in steps of `limit` stops after each step
/// in turn (a crash before the next commit) and a fresh engine finishes it; with the number of
/// steps it took before the stop.
fn migrated_from_every_stop(load: fn() -> MemoryStore, limit: usize) -> Vec<(usize, MemoryStore)> {
    let mut total = 0;
    {
        let mut store = load();
        let mut engine = engine_for(&config()).unwrap();
        while !{
            let s = engine.migrate(limit, &store).unwrap();
            store.apply_batch(&s.batch);
            total += 1;
            s.done
        } {}
    }
    (0..total)
        .map(|stop| {
            let mut store = load();
            let mut engine = engine_for(&config()).unwrap();
            for _ in 0..stop {
                let s = engine.migrate(limit, &store).unwrap();
                store.apply_batch(&s.batch);
            }
            let mut engine = engine_for(&config()).unwrap();
            engine.migrate_with(limit, &mut store).unwrap();
            (stop, store)
        })
        .collect()
}

#[test]
fn a_migration_resumes_after_every_possible_crash_point() {
    let recorded = recorded_reads();
    // Stop after each step in turn, reopen with a fresh engine, finish, and answer the reads.
    for (stop, mut store) in migrated_from_every_stop(load_store, 2) {
        let mut engine = engine_for(&config()).unwrap();
        replay_reads(&mut engine, &mut store, &recorded)
            .unwrap_or_else(|e| panic!("stop {stop}: {e}"));
    }
}

/// A SQLite file holding `fixture`, opened by `NativeEngine` (which migrates it to the current
/// layout): the layout marker, what `left_out` names is gone, and the recorded reads and
/// deadline are answered.
fn a_sqlite_file_migrated_when_opened_answers_the_same(
    name: &str,
    fixture: MemoryStore,
    left_out: &[&str],
) {
    use writesync_core::{ConfigJson, Storage};
    use writesync_sqlite::{NativeEngine, SqliteStore};
    let recorded = recorded_reads();
    let path = std::env::temp_dir().join(format!("writesync-{name}-{}.db", std::process::id()));
    SqliteStore::remove_files(&path).unwrap();
    {
        let mut file = SqliteStore::open(&path).unwrap();
        let mut b = Batch::new();
        for (k, v) in fixture.entries() {
            b.put(k.clone(), v.clone());
        }
        file.apply(&b).unwrap();
    }
    let config = ConfigJson::parse(&config().to_string())
        .unwrap()
        .into_config([0; 32])
        .unwrap();
    let mut app = NativeEngine::open(&path, config).unwrap();
    assert_eq!(
        app.store().get("meta/layout").unwrap().as_deref(),
        Some(format!("{{\"version\":{}}}", writesync_core::LAYOUT_VERSION).as_str())
    );
    for prefix in left_out {
        assert!(app.store().first_key(prefix).unwrap().is_none(), "{prefix}");
    }
    for r in recorded["requests"].as_array().unwrap() {
        let q = ApiRequest::new("GET", r["path"].as_str().unwrap())
            .header("Authorization", r["auth"].as_str().unwrap());
        let got = response_value(&app.handle(&q, T0 + DAY));
        assert_eq!(got, r["expect"], "{}", r["path"]);
    }
    assert_eq!(json!(app.next_deadline().unwrap()), recorded["deadline"]);
    drop(app);
    SqliteStore::remove_files(&path).unwrap();
}

#[test]
fn a_layout1_sqlite_file_is_migrated_when_opened_and_answers_the_same() {
    a_sqlite_file_migrated_when_opened_answers_the_same(
        "layout1",
        load_store(),
        &["sync/", "task/", "chain/", "remote/"],
    );
}

/// The layout-3 fixture: the layout-1 fixture as the layout-3 engine (commit `793ce4b`)
/// migrated it, i.e. the `migrated.json` of that commit.
fn load_layout3() -> MemoryStore {
    store_from(&dir().join("../layout3/store.json"))
}

/// The layout-4 fixture: the layout-1 fixture as the layout-4 engine (commit `ad0a28c`)
/// migrated it, i.e. the `migrated.json` of that commit (push chains under `ch/`).
fn load_layout4() -> MemoryStore {
    store_from(&dir().join("../layout4/store.json"))
}

/// A fixture of an older layout: refused before its migration, then migrated from every
/// crash point to exactly `migrated.json`, answering the recorded reads. Answers the number of
/// steps the migration took.
fn an_older_store_migrates_from_every_crash_point(
    load: fn() -> MemoryStore,
    version: u32,
) -> usize {
    let recorded = recorded_reads();
    let committed: Vec<(String, String)> =
        serde_json::from_str(&std::fs::read_to_string(migrated_path()).unwrap()).unwrap();
    let mut store = load();
    assert_eq!(
        store.get("meta/layout").unwrap().as_deref(),
        Some(format!("{{\"version\":{version}}}").as_str())
    );
    // Before the migration the engine refuses it.
    let (t, _, _) = tenant_of(&recorded);
    let q = ApiRequest::new("GET", "/api/invoices").header("Authorization", &t.auth);
    let refused = engine_for(&config())
        .unwrap()
        .handle_with(&q, T0 + DAY, &mut store);
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused.body.contains(&format!("layout {version}")),
        "{}",
        refused.body
    );
    let stops = migrated_from_every_stop(load, 4);
    let steps = stops.len();
    for (stop, mut store) in stops {
        let got: Vec<(String, String)> = store
            .entries()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert!(got == committed, "stop {stop}: not migrated.json");
        let mut engine = engine_for(&config()).unwrap();
        replay_reads(&mut engine, &mut store, &recorded)
            .unwrap_or_else(|e| panic!("stop {stop}: {e}"));
    }
    steps
}

#[test]
fn the_layout3_store_migrates_from_every_crash_point_to_migrated_json() {
    let steps = an_older_store_migrates_from_every_crash_point(load_layout3, 3);
    assert!(steps > 5, "bounded steps: {steps}");
}

#[test]
fn the_layout4_store_migrates_from_every_crash_point_to_migrated_json() {
    // Its 4 push chains, 4 rows a step: one step converts them, the next finds none left.
    let steps = an_older_store_migrates_from_every_crash_point(load_layout4, 4);
    assert_eq!(steps, 2);
}

#[test]
fn a_layout3_sqlite_file_is_migrated_when_opened_and_answers_the_same() {
    a_sqlite_file_migrated_when_opened_answers_the_same(
        "layout3",
        load_layout3(),
        &[
            "s/", "sx/", "t/", "c/", "r/", "v/", "ref/", "uniq/", "due/", "hookdlv/",
        ],
    );
}

#[test]
fn a_layout4_sqlite_file_is_migrated_when_opened_and_answers_the_same() {
    a_sqlite_file_migrated_when_opened_answers_the_same("layout4", load_layout4(), &["ch/"]);
}
