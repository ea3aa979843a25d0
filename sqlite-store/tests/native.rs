//! The typed native engine over a file: writes, errors, retention. (The work loop over it is
//! tested with the host driver, host/tests/native.rs.)
// Helpers outside #[test] functions unwrap too (clippy.toml covers only the test functions):
// a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::native_world::{admin, answer, push, world, World, ADMIN, HOUR, T0};
use common::TempDb;
use serde_json::{json, Value};
use writesync_core::cdm::ObjectType;
use writesync_core::records::SyncStatus;
use writesync_core::{ApiRequest, CoreError, EngineConfig, KvRead, WorkKind};
use writesync_sqlite::{
    Credentials, NativeEngine, SqliteStore, StoreError, StoreOptions, WriteOptions,
};

impl World {
    fn rows(&self) -> usize {
        self.app.store().scan("", 0, usize::MAX).unwrap().len()
    }
}

#[test]
fn validation_errors_carry_every_pointer_and_write_nothing() {
    let mut w = world(true);
    w.connect("quickbooks", "accounting");
    let before = w.rows();
    let err = w
        .app
        .write(
            &w.creds,
            ObjectType::Invoice,
            &json!({"number": "", "customerId": "nope", "issueDate": "2026-13-01", "currency": "EURO", "lines": []}),
            &push(),
            T0,
        )
        .unwrap_err();
    assert_eq!(err.status, 422);
    assert_eq!(err.problem_type, "/problems/validation-failed");
    assert!(err.errors.len() >= 4, "{:?}", err.errors);
    let pointers: Vec<&str> = err.errors.iter().map(|e| e.pointer.as_str()).collect();
    for p in ["/customerId", "/issueDate", "/currency", "/lines"] {
        assert!(pointers.contains(&p), "{pointers:?}");
    }
    assert!(err.request_id.is_some());
    assert_eq!(w.rows(), before);
}

#[test]
fn write_mode_off_bad_headers_and_unknown_syncs_are_problems() {
    let mut w = world(false);
    let err = w
        .app
        .write(
            &w.creds,
            ObjectType::Customer,
            &json!({"name": "A"}),
            &push(),
            T0,
        )
        .unwrap_err();
    assert_eq!(
        (err.status, err.problem_type.as_str()),
        (403, "/problems/write-mode-disabled")
    );
    assert!(err.detail.contains("write mode"), "{}", err.detail);

    let mut w = world(true);
    let bad = WriteOptions {
        tracking_id: Some("line\r\nbreak".into()),
        ..Default::default()
    };
    let err = w
        .app
        .write(
            &w.creds,
            ObjectType::Customer,
            &json!({"name": "A"}),
            &bad,
            T0,
        )
        .unwrap_err();
    assert_eq!(err.status, 400);
    let err = w.app.sync_status(&w.creds, "no/such?sync", T0).unwrap_err();
    assert_eq!(err.status, 404);
    let wrong = Credentials::new("nope", "nope");
    let err = w
        .app
        .write(
            &wrong,
            ObjectType::Customer,
            &json!({"name": "A"}),
            &push(),
            T0,
        )
        .unwrap_err();
    assert_eq!(err.status, 401);
    let err = w
        .app
        .write(
            &w.creds,
            ObjectType::Payment,
            &json!({"amount": 1}),
            &push(),
            T0,
        )
        .unwrap_err();
    assert_eq!(err.status, 405);
}

#[test]
fn updates_use_patch_or_put_and_honour_if_match() {
    let mut w = world(true);
    let c = w.customer(&WriteOptions::default(), T0);
    let id = c.object["id"].as_str().unwrap().to_string();
    let patched = w
        .app
        .update(
            &w.creds,
            ObjectType::Customer,
            &id,
            &json!({"email": "ap@acme.example.com"}),
            &WriteOptions {
                if_match: Some(1),
                ..Default::default()
            },
            T0 + 1,
        )
        .unwrap();
    assert_eq!(patched.status, 200);
    assert_eq!(patched.object["version"], 2);
    assert_eq!(patched.object["name"], "Acme Ltd");
    let stale = w
        .app
        .update(
            &w.creds,
            ObjectType::Customer,
            &id,
            &json!({"phone": "1"}),
            &WriteOptions {
                if_match: Some(1),
                ..Default::default()
            },
            T0 + 2,
        )
        .unwrap_err();
    assert_eq!(stale.status, 412);

    let invoice = json!({"number": "INV-1", "customerId": id, "issueDate": "2026-11-01",
        "dueDate": "2026-11-30", "currency": "EUR",
        "lines": [{"description": "Consulting", "quantity": 2, "unitAmount": 15000}]});
    let inv = w
        .app
        .write(
            &w.creds,
            ObjectType::Invoice,
            &invoice,
            &WriteOptions::default(),
            T0,
        )
        .unwrap();
    let inv_id = inv.object["id"].as_str().unwrap().to_string();
    let mut changed = invoice.clone();
    changed["lines"][0]["quantity"] = json!(3);
    let put = w
        .app
        .update(
            &w.creds,
            ObjectType::Invoice,
            &inv_id,
            &changed,
            &WriteOptions::default(),
            T0 + 3,
        )
        .unwrap();
    assert_eq!(put.object["total"], 45000);
    let paid = w
        .app
        .pay_invoice(
            &w.creds,
            &inv_id,
            &json!({"date": "2026-11-15"}),
            &WriteOptions::default(),
            T0 + 4,
        )
        .unwrap();
    assert_eq!(paid.status, 201);
    assert_eq!(paid.object["amount"], 45000);
    let unknown = w
        .app
        .update(
            &w.creds,
            ObjectType::Customer,
            "a/../b",
            &json!({}),
            &WriteOptions::default(),
            T0,
        )
        .unwrap_err();
    assert_eq!(unknown.status, 404);
}

#[test]
fn claimed_work_is_reported_once_and_a_second_report_changes_nothing() {
    let mut w = world(true);
    w.connect("quickbooks", "accounting");
    let written = w.customer(&push(), T0);
    let sync_id = written.sync_id.unwrap();
    let items = w.app.claim_due(T0, 16).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].kind, WorkKind::Push);
    // Claimed: leased, so not handed out again.
    assert!(w.app.claim_due(T0, 16).unwrap().is_empty());
    let ok = answer(201, r#"{"id":"QB-1"}"#);
    w.app.report_outcome(&items[0].id, &ok, T0).unwrap();
    let rows = w.rows();
    match w.app.report_outcome(&items[0].id, &ok, T0) {
        Err(StoreError::Engine(CoreError::UnknownWork(_) | CoreError::WrongState(_))) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(w.rows(), rows, "a stale report writes nothing");
    let s = w.app.sync_status(&w.creds, &sync_id, T0).unwrap();
    assert_eq!(s.status, SyncStatus::Succeeded);
}

#[test]
fn recover_hands_out_again_at_once_what_was_claimed_and_not_reported() {
    let mut w = world(true);
    w.connect("quickbooks", "accounting");
    w.customer(&push(), T0);
    let first = w.app.claim_due(T0, 16).unwrap();
    assert_eq!(first.len(), 1);
    // Leased: a claim before the lease runs out finds nothing.
    assert!(w.app.claim_due(T0 + 1_000, 16).unwrap().is_empty());
    assert_eq!(w.app.recover(T0 + 1_000).unwrap(), 2);
    let again = w.app.claim_due(T0 + 1_000, 16).unwrap();
    assert_eq!(again.len(), 1);
    assert_ne!(again[0].id, first[0].id, "a new attempt");
    assert_eq!(
        again[0].request.headers.get("Idempotency-Key"),
        first[0].request.headers.get("Idempotency-Key")
    );
    // The first attempt's report is stale now; the second one's counts.
    assert!(w
        .app
        .report_outcome(&first[0].id, &answer(201, "{}"), T0 + 1_500)
        .is_err());
    w.app
        .report_outcome(&again[0].id, &answer(201, r#"{"id":"QB-1"}"#), T0 + 1_500)
        .unwrap();
    assert_eq!(w.app.recover(T0 + 2_000).unwrap(), 0);
}

#[test]
fn idempotent_writes_replay_until_the_retention_ends() {
    let mut w = world(true);
    let keyed = WriteOptions {
        idempotency_key: Some("create-acme-1".into()),
        ..Default::default()
    };
    let first = w.customer(&keyed, T0);
    assert!(!first.replayed);
    assert_eq!(w.app.prune(T0 + 23 * HOUR).unwrap(), 0);
    let again = w.customer(&keyed, T0 + 23 * HOUR);
    assert!(again.replayed);
    assert_eq!(again.object["id"], first.object["id"]);
    // Default retention: 24 hours.
    assert!(w.app.prune(T0 + 25 * HOUR).unwrap() >= 2);
    assert_eq!(w.app.prune(T0 + 25 * HOUR).unwrap(), 0);
    let after = w.customer(&keyed, T0 + 25 * HOUR);
    assert!(!after.replayed);
    assert_ne!(after.object["id"], first.object["id"]);
}

#[test]
fn data_survives_reopening_the_native_engine() {
    let db = TempDb::new("native-reopen");
    let config = || EngineConfig::new([5; 32]).with_admin_token(ADMIN);
    let id = {
        let mut app = NativeEngine::open(db.path(), config()).unwrap();
        let a = admin(
            &mut app,
            "POST",
            "/admin/accounts",
            Some(json!({"domain": "x.example.com"})),
        );
        a.body_json()["id"].as_str().unwrap().to_string()
    };
    let mut app = NativeEngine::open(db.path(), config()).unwrap();
    let r = admin(&mut app, "GET", &format!("/admin/accounts/{id}"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let (_engine, store) = app.into_parts();
    assert_eq!(
        store.schema_version().unwrap(),
        writesync_sqlite::schema::CURRENT_VERSION
    );
}

#[test]
fn the_native_engine_refuses_a_newer_database() {
    let db = TempDb::new("native-toonew");
    drop(SqliteStore::open(db.path()).unwrap());
    let c = rusqlite::Connection::open(db.path()).unwrap();
    c.pragma_update(None, "user_version", 99).unwrap();
    drop(c);
    let err = NativeEngine::open(db.path(), EngineConfig::zero_seed_for_tests()).unwrap_err();
    assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
}

#[test]
fn a_locked_database_answers_503_with_a_request_id_and_reads_go_on() {
    let db = TempDb::new("native-locked");
    let config = EngineConfig::new([8; 32]).with_admin_token(ADMIN);
    let opts = StoreOptions::default().with_busy_timeout(std::time::Duration::from_millis(20));
    let mut app = NativeEngine::open_with(db.path(), config, &opts).unwrap();
    let a = admin(
        &mut app,
        "POST",
        "/admin/accounts",
        Some(json!({"domain": "l.example.com", "writeEnabled": true})),
    );
    let account = a.body_json()["id"].as_str().unwrap().to_string();
    let k = admin(
        &mut app,
        "POST",
        &format!("/admin/accounts/{account}/api-keys"),
        Some(json!({"scopes": ["api.read", "api.write"]})),
    );
    let creds = Credentials::from_api_key_answer(&k.body_json()).unwrap();
    let before = app.store().scan("", 0, usize::MAX).unwrap().len();

    let other = rusqlite::Connection::open(db.path()).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = app
        .write(
            &creds,
            ObjectType::Customer,
            &json!({"name": "A"}),
            &push(),
            T0,
        )
        .unwrap_err();
    assert_eq!(err.status, 503);
    assert_eq!(err.problem_type, "/problems/storage-unavailable");
    assert!(err.request_id.is_some());
    // Reads are not blocked by the other writer (WAL + a read snapshot).
    let list = app.handle(
        &ApiRequest::new("GET", "/api/customers").header(
            "Authorization",
            &writesync_core::util::crypto::basic_auth_header(&creds.key, &creds.secret),
        ),
        T0,
    );
    assert_eq!(list.status, 200, "{}", list.body);
    other.execute_batch("ROLLBACK").unwrap();
    assert_eq!(app.store().scan("", 0, usize::MAX).unwrap().len(), before);
    let ok = app
        .write(
            &creds,
            ObjectType::Customer,
            &json!({"name": "A"}),
            &push(),
            T0,
        )
        .unwrap();
    assert_eq!(ok.status, 201);
}

#[test]
fn two_engines_on_one_file_never_both_pass_a_uniqueness_check() {
    let db = TempDb::new("native-race");
    let mut w = {
        let config = EngineConfig::new([1; 32]).with_admin_token(ADMIN);
        NativeEngine::open(db.path(), config).unwrap()
    };
    let a = admin(
        &mut w,
        "POST",
        "/admin/accounts",
        Some(json!({"domain": "race.example.com", "writeEnabled": true})),
    );
    let account = a.body_json()["id"].as_str().unwrap().to_string();
    let k = admin(
        &mut w,
        "POST",
        &format!("/admin/accounts/{account}/api-keys"),
        Some(json!({"scopes": ["api.read", "api.write"]})),
    );
    let creds = Credentials::from_api_key_answer(&k.body_json()).unwrap();
    let c = w
        .write(
            &creds,
            ObjectType::Customer,
            &json!({"name": "Acme"}),
            &WriteOptions::default(),
            T0,
        )
        .unwrap();
    let customer = c.object["id"].as_str().unwrap().to_string();
    drop(w);

    const NUMBERS: usize = 40;
    let created: Vec<usize> = std::thread::scope(|scope| {
        let handles: Vec<_> = [11u8, 12]
            .into_iter()
            .map(|seed| {
                let (path, creds, customer) =
                    (db.path().to_path_buf(), creds.clone(), customer.clone());
                scope.spawn(move || {
                    let config = EngineConfig::new([seed; 32]);
                    let mut app = NativeEngine::open(&path, config).unwrap();
                    let mut ok = 0;
                    for n in 0..NUMBERS {
                        let body = json!({"number": format!("INV-{n}"), "customerId": customer,
                            "issueDate": "2026-11-01", "dueDate": "2026-11-30", "currency": "EUR",
                            "lines": [{"description": "x", "quantity": 1, "unitAmount": 100}]});
                        match app.write(
                            &creds,
                            ObjectType::Invoice,
                            &body,
                            &WriteOptions::default(),
                            T0 + n as i64,
                        ) {
                            Ok(_) => ok += 1,
                            Err(e) => assert_eq!(e.status, 422, "{e}"),
                        }
                    }
                    ok
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(created.iter().sum::<usize>(), NUMBERS, "{created:?}");
    let store = SqliteStore::open(db.path()).unwrap();
    let invoices = store
        .scan(&format!("obj/{account}/invoice/"), 0, usize::MAX)
        .unwrap();
    assert_eq!(invoices.len(), NUMBERS);
}

#[test]
fn delete_answers_204_refuses_a_referred_customer_and_frees_the_object() {
    let mut w = world(true);
    let c = w.customer(&WriteOptions::default(), T0);
    let id = c.object["id"].as_str().unwrap().to_string();
    let other = w.customer(&WriteOptions::default(), T0);
    let other_id = other.object["id"].as_str().unwrap().to_string();
    let invoice = json!({"number": "INV-1", "customerId": other_id, "issueDate": "2026-11-01",
        "dueDate": "2026-11-30", "currency": "EUR",
        "lines": [{"description": "Consulting", "quantity": 2, "unitAmount": 15000}]});
    w.app
        .write(
            &w.creds,
            ObjectType::Invoice,
            &invoice,
            &WriteOptions::default(),
            T0,
        )
        .unwrap();
    let refused = w
        .app
        .delete(
            &w.creds,
            ObjectType::Customer,
            &other_id,
            &WriteOptions::default(),
            T0,
        )
        .unwrap_err();
    assert_eq!(refused.status, 409);
    assert!(refused.detail.contains("invoice"), "{}", refused.detail);
    let stale = w
        .app
        .delete(
            &w.creds,
            ObjectType::Customer,
            &id,
            &WriteOptions {
                if_match: Some(2),
                ..Default::default()
            },
            T0,
        )
        .unwrap_err();
    assert_eq!(stale.status, 412);
    let done = w
        .app
        .delete(
            &w.creds,
            ObjectType::Customer,
            &id,
            &WriteOptions::default(),
            T0,
        )
        .unwrap();
    assert_eq!(done.status, 204);
    assert_eq!(done.object, Value::Null);
    assert_eq!(done.sync_id, None);
    let again = w
        .app
        .delete(
            &w.creds,
            ObjectType::Customer,
            &id,
            &WriteOptions::default(),
            T0,
        )
        .unwrap_err();
    assert_eq!(again.status, 404);
}

/// The API-key secret a fresh engine with `config` gives its first key.
fn first_key_secret(config: EngineConfig, db: &TempDb) -> String {
    let mut app = NativeEngine::open(db.path(), config.with_admin_token(ADMIN)).unwrap();
    let a = admin(
        &mut app,
        "POST",
        "/admin/accounts",
        Some(json!({"domain": "acme.example.com"})),
    );
    let account = a.body_json()["id"].as_str().unwrap().to_string();
    let k = admin(
        &mut app,
        "POST",
        &format!("/admin/accounts/{account}/api-keys"),
        Some(json!({"scopes": ["api.read"]})),
    );
    assert_eq!(k.status, 201, "{}", k.body);
    k.body_json()["secret"].as_str().unwrap().to_string()
}

#[test]
fn os_seeded_engines_give_unpredictable_api_key_secrets() {
    let secret = |config: EngineConfig, name: &str| first_key_secret(config, &TempDb::new(name));
    // A fixed seed replays: the same secret twice (what makes it unfit for production).
    let zero_a = secret(EngineConfig::zero_seed_for_tests(), "seed-zero-a");
    let zero_b = secret(EngineConfig::zero_seed_for_tests(), "seed-zero-b");
    assert_eq!(zero_a, zero_b);
    // OS randomness: two engines on empty stores never share a secret, nor with the zero seed.
    let os_a = secret(writesync_sqlite::os_seeded_config().unwrap(), "seed-os-a");
    let os_b = secret(writesync_sqlite::os_seeded_config().unwrap(), "seed-os-b");
    assert_ne!(os_a, os_b);
    assert_ne!(os_a, zero_a);
    assert_ne!(os_b, zero_a);
}
