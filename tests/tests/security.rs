//! Security properties across crates: tenant isolation on every route, revoked keys, secrets
//! never echoed after creation, secrets and tokens stored only as hashes in the SQLite file.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use writesync_core::util::crypto::basic_auth_header;
use writesync_core::{ApiRequest, ApiResponse, EngineConfig};
use writesync_sqlite::NativeEngine;

const NOW: i64 = 1_790_000_000_000;
const ADMIN: &str = "admin-token-never-stored-in-clear";

struct Tenant {
    id: String,
    key: String,
    auth: String,
    secret: String,
}

struct World {
    e: NativeEngine,
}

impl World {
    fn send(&mut self, r: ApiRequest) -> ApiResponse {
        self.e.handle(&r, NOW)
    }
    fn admin(&mut self, m: &str, p: &str, b: Option<Value>) -> ApiResponse {
        let mut r = ApiRequest::new(m, p).header("Authorization", &format!("Bearer {ADMIN}"));
        if let Some(b) = b {
            r = r.json(&b);
        }
        self.send(r)
    }
    fn api(&mut self, t: &Tenant, m: &str, p: &str, b: Option<Value>) -> ApiResponse {
        let mut r = ApiRequest::new(m, p).header("Authorization", &t.auth);
        if let Some(b) = b {
            r = r.json(&b);
        }
        self.send(r)
    }
    fn tenant(&mut self, domain: &str) -> Tenant {
        let a = self.admin(
            "POST",
            "/admin/accounts",
            Some(json!({"domain": domain, "writeEnabled": true})),
        );
        let id = a.body_json()["id"].as_str().unwrap().to_string();
        let k = self
            .admin(
                "POST",
                &format!("/admin/accounts/{id}/api-keys"),
                Some(json!({"scopes": ["api.read", "api.write"]})),
            )
            .body_json();
        let secret = k["secret"].as_str().unwrap().to_string();
        let key = k["key"].as_str().unwrap().to_string();
        Tenant {
            auth: basic_auth_header(&key, &secret),
            key,
            id,
            secret,
        }
    }
}

fn temp_db(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("writesync-security-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("db.sqlite")
}

fn world(name: &str) -> (World, std::path::PathBuf) {
    let path = temp_db(name);
    let config = EngineConfig::new([5; 32]).with_admin_token(ADMIN);
    (
        World {
            e: NativeEngine::open(&path, config).unwrap(),
        },
        path,
    )
}

/// Every object of tenant A, and every data and admin route, probed with tenant B's key (or
/// B's account path): each answer is 404, exactly like an unknown id, and nothing changes.
#[test]
fn a_foreign_id_is_404_on_every_route() {
    let (mut w, _) = world("isolation");
    let a = w.tenant("a.example.com");
    let b = w.tenant("b.example.com");
    let conn = w.admin("POST", &format!("/admin/accounts/{}/connections", a.id),
        Some(json!({"app": "quickbooks", "type": "accounting", "pushUrl": "https://qb.example.com/p"}))).body_json();
    let hook = w
        .admin(
            "POST",
            &format!("/admin/accounts/{}/webhooks", a.id),
            Some(json!({"url": "https://h.example.com/in", "events": ["*"]})),
        )
        .body_json();
    let cust = w
        .api(
            &a,
            "POST",
            "/api/customers",
            Some(json!({"name": "A's customer"})),
        )
        .body_json();
    let cid = cust["id"].as_str().unwrap();
    let vend = w
        .api(
            &a,
            "POST",
            "/api/vendors",
            Some(json!({"name": "A's vendor"})),
        )
        .body_json();
    let acct = w
        .api(
            &a,
            "POST",
            "/api/accounts",
            Some(json!({"code": "1000", "name": "Cash", "type": "asset"})),
        )
        .body_json();
    let inv = w.api(&a, "POST", "/api/invoices", Some(json!({"number": "A-1", "customerId": cid, "issueDate": "2026-11-01",
        "dueDate": "2026-11-02", "currency": "EUR", "lines": [{"description": "x", "quantity": 1, "unitAmount": 100}]}))).body_json();
    let iid = inv["id"].as_str().unwrap();
    let pay = w
        .api(
            &a,
            "POST",
            &format!("/api/invoices/{iid}/payments"),
            Some(json!({"amount": 10, "date": "2026-11-01"})),
        )
        .body_json();
    let exp = w
        .api(
            &a,
            "POST",
            "/api/expenses",
            Some(
                json!({"vendorId": vend["id"], "date": "2026-11-01", "currency": "EUR",
        "lines": [{"description": "x", "amount": 5}]}),
            ),
        )
        .body_json();
    let bank = w
        .api(
            &a,
            "POST",
            "/api/bank-transactions",
            Some(
                json!({"bankAccount": "X", "date": "2026-11-01", "amount": 5,
        "currency": "EUR", "description": "x"}),
            ),
        )
        .body_json();
    let sync = w.send(
        ApiRequest::new("POST", "/api/customers")
            .header("Authorization", &a.auth)
            .header("X-Sync-Data", "push")
            .json(&json!({"name": "pushed"})),
    );
    let sid = sync.headers["X-Sync-ID"].clone();
    let id = |v: &Value| v["id"].as_str().unwrap().to_string();
    let data_routes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/api/customers/{cid}"), None),
        (
            "PATCH",
            format!("/api/customers/{cid}"),
            Some(json!({"name": "stolen"})),
        ),
        ("GET", format!("/api/vendors/{}", id(&vend)), None),
        (
            "PATCH",
            format!("/api/vendors/{}", id(&vend)),
            Some(json!({"name": "stolen"})),
        ),
        ("GET", format!("/api/accounts/{}", id(&acct)), None),
        (
            "PATCH",
            format!("/api/accounts/{}", id(&acct)),
            Some(json!({"name": "stolen"})),
        ),
        ("GET", format!("/api/invoices/{iid}"), None),
        (
            "PUT",
            format!("/api/invoices/{iid}"),
            Some(
                json!({"number": "B-1", "customerId": cid, "issueDate": "2026-11-01",
            "dueDate": "2026-11-02", "currency": "EUR", "lines": [{"description": "x", "quantity": 1, "unitAmount": 1}]}),
            ),
        ),
        (
            "POST",
            format!("/api/invoices/{iid}/payments"),
            Some(json!({"amount": 1, "date": "2026-11-01"})),
        ),
        ("GET", format!("/api/payments/{}", id(&pay)), None),
        ("GET", format!("/api/expenses/{}", id(&exp)), None),
        (
            "PUT",
            format!("/api/expenses/{}", id(&exp)),
            Some(
                json!({"vendorId": vend["id"], "date": "2026-11-01", "currency": "EUR",
            "lines": [{"description": "x", "amount": 5}]}),
            ),
        ),
        ("GET", format!("/api/bank-transactions/{}", id(&bank)), None),
        ("GET", format!("/api/syncs/{sid}"), None),
    ];
    let before: Vec<_> = writesync_core::KvRead::scan(w.e.store(), "", 0, usize::MAX).unwrap();
    for (m, p, body) in &data_routes {
        let foreign = w.api(&b, m, p, body.clone());
        assert_eq!(
            foreign.status, 404,
            "{m} {p} with another tenant's key: {}",
            foreign.body
        );
        // Exactly like an unknown id.
        let unknown_path = p.replacen(
            &p.split('/').nth(3).unwrap().to_string(),
            "00000000-0000-7000-8000-000000000000",
            1,
        );
        let unknown = w.api(&b, m, &unknown_path, body.clone());
        assert_eq!(unknown.status, 404, "{m} {unknown_path}");
        assert_eq!(foreign.body_json()["type"], unknown.body_json()["type"]);
        // B's lists never show A's objects.
        let collection = p.split('/').nth(2).unwrap();
        if collection != "syncs" {
            let list = w
                .api(&b, "GET", &format!("/api/{collection}"), None)
                .body_json();
            assert_eq!(list, json!([]), "{collection} of B");
        }
    }
    // Admin routes: A's connection, webhook and deliveries under B's account path are 404.
    let admin_routes = vec![
        (
            "DELETE",
            format!("/admin/accounts/{}/connections/{}", b.id, id(&conn)),
        ),
        (
            "GET",
            format!("/admin/accounts/{}/connections/{}", b.id, id(&conn)),
        ),
        (
            "DELETE",
            format!("/admin/accounts/{}/webhooks/{}", b.id, id(&hook)),
        ),
        (
            "GET",
            format!("/admin/accounts/{}/webhooks/{}/deliveries", b.id, id(&hook)),
        ),
        (
            "POST",
            format!(
                "/admin/accounts/{}/webhooks/{}/deliveries/x/retry",
                b.id,
                id(&hook)
            ),
        ),
    ];
    for (m, p) in &admin_routes {
        assert_eq!(w.admin(m, p, None).status, 404, "{m} {p}");
    }
    assert_eq!(
        before,
        writesync_core::KvRead::scan(w.e.store(), "", 0, usize::MAX).unwrap(),
        "probes changed stored data"
    );
}

#[test]
fn secrets_are_shown_once_never_echoed_and_stored_only_hashed() {
    let (mut w, path) = world("hashed");
    let t = w.tenant("acme.example.com");
    let hook = w.admin("POST", &format!("/admin/accounts/{}/webhooks", t.id),
        Some(json!({"url": "https://h.example.com/in", "events": ["*"], "username": "u", "password": "hook-password-xyz",
                    "signingSecret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})));
    assert_eq!(hook.status, 201);
    assert!(!hook.body.contains("hook-password-xyz") && !hook.body.contains("whsec_"));
    let list = w.admin("GET", &format!("/admin/accounts/{}/webhooks", t.id), None);
    assert!(!list.body.contains("hook-password-xyz") && !list.body.contains("whsec_"));
    let acct = w.admin("GET", &format!("/admin/accounts/{}", t.id), None);
    assert!(!acct.body.contains(&t.secret));
    // A failed login's answer does not reveal whether the key exists.
    let wrong_secret = w.send(
        ApiRequest::new("GET", "/api/customers")
            .header("Authorization", &basic_auth_header(&t.key, "nope")),
    );
    let no_key = w.send(
        ApiRequest::new("GET", "/api/customers")
            .header("Authorization", &basic_auth_header("wsk_nope", "nope")),
    );
    assert_eq!(wrong_secret.status, 401);
    assert_eq!(
        wrong_secret.body_json()["detail"],
        no_key.body_json()["detail"]
    );
    // The openapi document carries no real secret.
    let doc = w.send(ApiRequest::new("GET", "/openapi.json"));
    assert!(!doc.body.contains(ADMIN) && !doc.body.contains(&t.secret));
    drop(w);
    // Read every byte of the database files: neither the API secret nor the admin token is there.
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let p = format!("{}{suffix}", path.display());
        if let Ok(b) = std::fs::read(&p) {
            bytes.extend(b);
        }
    }
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(!contains(&t.secret), "API key secret stored in clear");
    assert!(!contains(ADMIN), "admin token stored in clear");
    assert!(
        contains(&writesync_core::util::crypto::sha256_hex(
            t.secret.as_bytes()
        )),
        "the secret's hash is what is stored"
    );
}

#[test]
fn a_revoked_key_fails_at_once() {
    let (mut w, _) = world("revoked");
    let t = w.tenant("acme.example.com");
    assert_eq!(w.api(&t, "GET", "/api/customers", None).status, 200);
    let key = t.auth.clone();
    let keys_answer = w
        .admin(
            "POST",
            &format!("/admin/accounts/{}/api-keys", t.id),
            Some(json!({"scopes": ["api.read"]})),
        )
        .body_json();
    let k = keys_answer["key"].as_str().unwrap();
    let second = Tenant {
        id: t.id.clone(),
        key: k.to_string(),
        auth: basic_auth_header(k, keys_answer["secret"].as_str().unwrap()),
        secret: String::new(),
    };
    assert_eq!(w.api(&second, "GET", "/api/customers", None).status, 200);
    assert_eq!(
        w.admin(
            "DELETE",
            &format!("/admin/accounts/{}/api-keys/{k}", t.id),
            None
        )
        .status,
        204
    );
    assert_eq!(w.api(&second, "GET", "/api/customers", None).status, 401);
    assert_eq!(
        w.send(ApiRequest::new("GET", "/api/customers").header("Authorization", &key))
            .status,
        200
    );
}
