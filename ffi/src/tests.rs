//! The exports called from Rust, as a C caller would call them. The C tests in `tests/c/`
//! cover the same ground from C, against the built libraries.

use std::ffi::{CStr, CString};
use std::ptr;

use serde_json::{json, Value};

use super::*;

const ADMIN: &str = "admin-secret";
const T0: i64 = 1_790_000_000_000;

fn temp_db(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("writesync-ffi-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("test.db").to_string_lossy().into_owned()
}

fn message() -> String {
    let mut buf = vec![0 as c_char; 1024];
    let mut n = 0usize;
    let r = unsafe { writesync_last_error_message(buf.as_mut_ptr(), buf.len(), &mut n) };
    assert_eq!(r, WRITESYNC_OK);
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

struct Eng(*mut writesync_engine);

impl Eng {
    fn open(path: &str, config: &Value) -> Eng {
        let p = CString::new(path).unwrap();
        let c = CString::new(config.to_string()).unwrap();
        let mut e = ptr::null_mut();
        let r = unsafe { writesync_open(p.as_ptr(), c.as_ptr(), &mut e) };
        assert_eq!(r, WRITESYNC_OK, "{}", message());
        Eng(e)
    }

    fn handle(&self, req: &Value, now: i64) -> Value {
        let r = CString::new(req.to_string()).unwrap();
        let mut out = ptr::null_mut();
        let code = unsafe { writesync_handle(self.0, r.as_ptr(), now, &mut out) };
        assert_eq!(code, WRITESYNC_OK, "{}", message());
        let v: Value = serde_json::from_str(&take(out)).unwrap();
        v
    }

    fn admin(&self, method: &str, path: &str, body: Value) -> Value {
        self.handle(
            &json!({"method": method, "path": path,
                    "headers": {"Authorization": format!("Bearer {ADMIN}"),
                                "Content-Type": "application/json"},
                    "body": body.to_string()}),
            T0,
        )
    }

    fn due(&self, now: i64) -> Vec<Value> {
        let mut out = ptr::null_mut();
        let code = unsafe { writesync_due(self.0, now, &mut out) };
        assert_eq!(code, WRITESYNC_OK, "{}", message());
        serde_json::from_str(&take(out)).unwrap()
    }

    fn report(&self, result: &Value, now: i64) -> writesync_result {
        let r = CString::new(result.to_string()).unwrap();
        unsafe { writesync_report(self.0, r.as_ptr(), now) }
    }

    fn deadline(&self) -> i64 {
        let mut d = 0;
        assert_eq!(
            unsafe { writesync_next_deadline(self.0, &mut d) },
            WRITESYNC_OK
        );
        d
    }
}

impl Drop for Eng {
    fn drop(&mut self) {
        assert_eq!(unsafe { writesync_close(self.0) }, WRITESYNC_OK);
    }
}

fn take(s: *mut c_char) -> String {
    assert!(!s.is_null());
    let text = unsafe { CStr::from_ptr(s) }.to_str().unwrap().to_string();
    assert_eq!(unsafe { writesync_string_free(s) }, WRITESYNC_OK);
    text
}

fn body(answer: &Value) -> Value {
    serde_json::from_str(answer["body"].as_str().unwrap()).unwrap()
}

/// An account with write mode on, a key, and a connection pushing to `push_url`.
fn tenant(e: &Eng, push_url: &str) -> String {
    let a = e.admin(
        "POST",
        "/admin/accounts",
        json!({"domain": "acme.example.com", "writeEnabled": true}),
    );
    assert_eq!(a["status"], 201, "{a}");
    let id = body(&a)["id"].as_str().unwrap().to_string();
    let k = e.admin(
        "POST",
        &format!("/admin/accounts/{id}/api-keys"),
        json!({"scopes": ["api.read", "api.write"]}),
    );
    let kb = body(&k);
    let c = e.admin(
        "POST",
        &format!("/admin/accounts/{id}/connections"),
        json!({"app": "quickbooks", "type": "accounting", "pushUrl": push_url}),
    );
    assert_eq!(c["status"], 201, "{c}");
    writesync_core::util::crypto::basic_auth_header(
        kb["key"].as_str().unwrap(),
        kb["secret"].as_str().unwrap(),
    )
}

fn push_customer(e: &Eng, auth: &str) -> String {
    let w = e.handle(
        &json!({"method": "POST", "path": "/api/customers",
                "headers": {"Authorization": auth, "Content-Type": "application/json",
                            "X-Sync-Data": "push"},
                "body": {"name": "Acme Ltd"}}),
        T0,
    );
    assert_eq!(w["status"], 201, "{w}");
    w["headers"]["X-Sync-ID"].as_str().unwrap().to_string()
}

fn sync_status(e: &Eng, auth: &str, sync_id: &str) -> Value {
    let s = e.handle(
        &json!({"method": "GET", "path": format!("/api/syncs/{sync_id}"),
                "headers": {"Authorization": auth}}),
        T0 + 10_000,
    );
    body(&s)
}

#[test]
fn push_through_due_and_report_then_reopen() {
    let path = temp_db("flow");
    let config = json!({"adminToken": ADMIN, "seed": "flow", "pushRetrySchedule": [1]});
    let sync_id;
    let auth;
    {
        let e = Eng::open(&path, &config);
        auth = tenant(&e, "https://qb.example.com/push");
        sync_id = push_customer(&e, &auth);
        assert_eq!(e.deadline(), T0);
        let items = e.due(T0);
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0]["kind"], "push");
        let id = items[0]["id"].as_str().unwrap().to_string();
        assert_eq!(
            e.report(
                &json!({"id": id, "status": 503, "headers": {}, "body": "busy"}),
                T0 + 100
            ),
            WRITESYNC_OK
        );
        // The same item again is stale.
        assert_eq!(
            e.report(&json!({"id": id, "status": 201}), T0 + 100),
            WRITESYNC_ENGINE_ERROR
        );
        assert!(message().starts_with("unknown_work: "), "{}", message());
        let retry_at = e.deadline();
        assert!(retry_at > T0 + 100 && retry_at < WRITESYNC_NO_DEADLINE);
        assert!(e.due(T0 + 100).is_empty());
    }
    // The retry survives closing the engine.
    let e = Eng::open(&path, &config);
    let retry_at = e.deadline();
    let items = e.due(retry_at);
    assert_eq!(items.len(), 1);
    let id = items[0]["id"].as_str().unwrap();
    assert_eq!(
        e.report(
            &json!({"id": id, "status": 201, "body": "{\"id\":\"QB-7\"}"}),
            retry_at
        ),
        WRITESYNC_OK
    );
    let s = sync_status(&e, &auth, &sync_id);
    assert_eq!(s["status"], "succeeded", "{s}");
    assert_eq!(s["targets"][0]["remoteId"], "QB-7");
    assert_eq!(s["targets"][0]["attempts"], 2);
    assert_eq!(e.deadline(), WRITESYNC_NO_DEADLINE);
    // An idempotent write leaves a record that retention removes after a day.
    let w = e.handle(
        &json!({"method": "POST", "path": "/api/customers",
                "headers": {"Authorization": auth, "Content-Type": "application/json",
                            "Idempotency-Key": "k-1"},
                "body": {"name": "Other"}}),
        T0,
    );
    assert_eq!(w["status"], 201, "{w}");
    let mut removed = usize::MAX;
    assert_eq!(
        unsafe { writesync_prune(e.0, T0 + 1000, 100, &mut removed) },
        WRITESYNC_OK
    );
    assert_eq!(removed, 0);
    let later = T0 + 2 * 24 * 3600 * 1000;
    assert_eq!(
        unsafe { writesync_prune(e.0, later, 100, &mut removed) },
        WRITESYNC_OK
    );
    assert!(removed > 0);
    assert_eq!(
        unsafe { writesync_prune(e.0, later, 100, &mut removed) },
        WRITESYNC_OK
    );
    assert_eq!(removed, 0);
    assert_eq!(
        unsafe { writesync_prune(e.0, later, 100, ptr::null_mut()) },
        WRITESYNC_INVALID_ARGUMENT
    );
}

#[test]
fn run_due_refuses_loopback_unless_allowed() {
    let path = temp_db("refuse");
    let e = Eng::open(&path, &json!({"adminToken": ADMIN, "seed": "r"}));
    let auth = tenant(&e, "http://localhost:9/push");
    let sync_id = push_customer(&e, &auth);
    assert_eq!(unsafe { writesync_run_due(e.0, T0) }, WRITESYNC_OK);
    let s = sync_status(&e, &auth, &sync_id);
    assert_eq!(s["status"], "failed", "{s}");
    assert_eq!(s["targets"][0]["attempts"], 1);
    assert!(s["targets"][0]["lastError"]
        .as_str()
        .unwrap()
        .starts_with("refused"));
}

#[test]
fn bad_arguments_are_reported() {
    let path = temp_db("bad");
    let p = CString::new(path.clone()).unwrap();
    let cfg = CString::new("{}").unwrap();
    let mut e = ptr::null_mut();
    unsafe {
        assert_eq!(
            writesync_open(ptr::null(), cfg.as_ptr(), &mut e),
            WRITESYNC_INVALID_ARGUMENT
        );
        assert!(e.is_null());
        assert_eq!(message(), "db_path is NULL");
        assert_eq!(
            writesync_open(p.as_ptr(), ptr::null(), &mut e),
            WRITESYNC_INVALID_ARGUMENT
        );
        assert_eq!(
            writesync_open(p.as_ptr(), cfg.as_ptr(), ptr::null_mut()),
            WRITESYNC_INVALID_ARGUMENT
        );
        let bad = [0xffu8, 0xfe, 0];
        assert_eq!(
            writesync_open(bad.as_ptr().cast(), cfg.as_ptr(), &mut e),
            WRITESYNC_INVALID_UTF8
        );
        let not_json = CString::new("{").unwrap();
        assert_eq!(
            writesync_open(p.as_ptr(), not_json.as_ptr(), &mut e),
            WRITESYNC_INVALID_JSON
        );
        let missing = CString::new("/nonexistent-dir-writesync/x/y.db").unwrap();
        assert_eq!(
            writesync_open(missing.as_ptr(), cfg.as_ptr(), &mut e),
            WRITESYNC_STORAGE_ERROR
        );
        assert!(message().starts_with("storage: "), "{}", message());
        assert_eq!(writesync_close(ptr::null_mut()), WRITESYNC_INVALID_ARGUMENT);
        assert_eq!(
            writesync_string_free(ptr::null_mut()),
            WRITESYNC_INVALID_ARGUMENT
        );
        let mut out = ptr::null_mut();
        assert_eq!(
            writesync_handle(ptr::null(), cfg.as_ptr(), 0, &mut out),
            WRITESYNC_INVALID_ARGUMENT
        );
        let mut d = 0;
        assert_eq!(
            writesync_next_deadline(ptr::null(), &mut d),
            WRITESYNC_INVALID_ARGUMENT
        );
        assert_eq!(d, WRITESYNC_NO_DEADLINE);
        assert_eq!(
            writesync_run_due(ptr::null(), 0),
            WRITESYNC_INVALID_ARGUMENT
        );
        // The message survives successful calls and its reader.
        let mut n = 0usize;
        assert_eq!(
            writesync_last_error_message(ptr::null_mut(), 0, &mut n),
            WRITESYNC_OK
        );
        assert_eq!(n, "engine is NULL".len());
        assert_eq!(
            writesync_last_error_message(ptr::null_mut(), 5, &mut n),
            WRITESYNC_INVALID_ARGUMENT
        );
        let mut small = [0 as c_char; 4];
        assert_eq!(
            writesync_last_error_message(small.as_mut_ptr(), 4, ptr::null_mut()),
            WRITESYNC_OK
        );
        assert_eq!(CStr::from_ptr(small.as_ptr()).to_str().unwrap(), "eng");
    }
    let e = Eng::open(&path, &json!({}));
    unsafe {
        let mut out = ptr::null_mut();
        let envelope = CString::new(r#"{"path":"/healthz"}"#).unwrap();
        assert_eq!(
            writesync_handle(e.0, envelope.as_ptr(), 0, &mut out),
            WRITESYNC_INVALID_JSON
        );
        assert!(out.is_null());
        let r = CString::new(r#"{"status":201}"#).unwrap();
        assert_eq!(writesync_report(e.0, r.as_ptr(), 0), WRITESYNC_INVALID_JSON);
        let r = CString::new(r#"{"id":"t.nope.1","status":201}"#).unwrap();
        assert_eq!(writesync_report(e.0, r.as_ptr(), 0), WRITESYNC_ENGINE_ERROR);
        let r = CString::new(r#"{"id":"t.nope.1","nothing":1}"#).unwrap();
        assert_eq!(writesync_report(e.0, r.as_ptr(), 0), WRITESYNC_INVALID_JSON);
    }
    let ok = e.handle(&json!({"method": "GET", "path": "/healthz"}), T0);
    assert_eq!(ok["status"], 200);
}

#[test]
fn engines_are_shared_between_threads() {
    let path = temp_db("threads");
    let e = Eng::open(&path, &json!({"adminToken": ADMIN, "seed": "t"}));
    struct Shared(*mut writesync_engine);
    // SAFETY (test): the handle is documented as safe to use from several threads.
    unsafe impl Sync for Shared {}
    let shared = Shared(e.0);
    std::thread::scope(|s| {
        for i in 0..4 {
            let shared = &shared;
            s.spawn(move || {
                for j in 0..10 {
                    let req = CString::new(
                        json!({"method": "POST", "path": "/admin/accounts",
                               "headers": {"Authorization": format!("Bearer {ADMIN}"),
                                           "Content-Type": "application/json"},
                               "body": json!({"domain": format!("t{i}-{j}.example.com")}).to_string()})
                        .to_string(),
                    )
                    .unwrap();
                    let mut out = ptr::null_mut();
                    let code = unsafe { writesync_handle(shared.0, req.as_ptr(), T0, &mut out) };
                    assert_eq!(code, WRITESYNC_OK);
                    let v: Value = serde_json::from_str(&take(out)).unwrap();
                    assert_eq!(v["status"], 201, "{v}");
                }
            });
        }
    });
}
