//! The shared vectors: scenarios run against the real engine. With
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `WRITESYNC_REGENERATE_VECTORS=1` they are written to `tests/vectors/`; otherwise every file
//! there is replayed and must match, and every scenario must still produce its file exactly.

use serde_json::{json, Value};
use writesync_core::util::crypto::basic_auth_header;
use writesync_core::{ApiRequest, ApiResponse, Outcome, WorkItem, WorkKind};
use writesync_tests::{replay, vectors_dir, Recorder, Step, Vector};

const ADMIN: &str = "vector-admin-token";
const T0: i64 = 1_790_000_000_000;

fn config() -> Value {
    json!({"adminToken": ADMIN, "seed": "writesync vectors",
           "pushRetrySchedule": [1, 4, 16], "webhookRetrySchedule": [2, 10],
           "maxBodyBytes": 4096})
}

struct Sc {
    r: Recorder,
    now: i64,
}

struct Tenant {
    id: String,
    auth: String,
}

fn ok(v: u16, r: &ApiResponse) {
    assert_eq!(r.status, v, "{}", r.body);
}

impl Sc {
    fn new(name: &str, description: &str) -> Sc {
        Sc {
            r: Recorder::new(name, description, config()),
            now: T0,
        }
    }
    fn at(&mut self, ms: i64) {
        self.now = T0 + ms;
    }
    fn send(&mut self, req: ApiRequest) -> ApiResponse {
        self.r.request(self.now, req)
    }
    fn admin(&mut self, method: &str, path: &str, body: Option<Value>) -> ApiResponse {
        let mut q =
            ApiRequest::new(method, path).header("Authorization", &format!("Bearer {ADMIN}"));
        if let Some(b) = body {
            q = q.json(&b);
        }
        self.send(q)
    }
    fn tenant(&mut self, domain: &str) -> Tenant {
        let a = self.admin(
            "POST",
            "/admin/accounts",
            Some(json!({"domain": domain, "writeEnabled": true})),
        );
        ok(201, &a);
        let id = a.body_json()["id"].as_str().unwrap().to_string();
        let k = self.admin(
            "POST",
            &format!("/admin/accounts/{id}/api-keys"),
            Some(json!({"scopes": ["api.read", "api.write"]})),
        );
        ok(201, &k);
        let kb = k.body_json();
        Tenant {
            id,
            auth: basic_auth_header(kb["key"].as_str().unwrap(), kb["secret"].as_str().unwrap()),
        }
    }
    fn connect(&mut self, t: &Tenant, app: &str, kind: &str) {
        let r = self.admin(
            "POST",
            &format!("/admin/accounts/{}/connections", t.id),
            Some(json!({"app": app, "type": kind, "pushUrl": format!("https://{app}.example.com/push")})),
        );
        ok(201, &r);
    }
    fn webhook(&mut self, t: &Tenant, events: Value) -> String {
        let r = self.admin(
            "POST",
            &format!("/admin/accounts/{}/webhooks", t.id),
            Some(
                json!({"url": "https://hooks.example.com/in", "events": events, "username": "hook",
                        "password": "hook-password",
                        "signingSecret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
            ),
        );
        ok(201, &r);
        r.body_json()["id"].as_str().unwrap().to_string()
    }
    fn api(
        &mut self,
        t: &Tenant,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> ApiResponse {
        let mut q = ApiRequest::new(method, path).header("Authorization", &t.auth);
        if let Some(b) = body {
            q = q.json(&b);
        }
        for (k, v) in headers {
            q = q.header(k, v);
        }
        self.send(q)
    }
    fn due(&mut self) -> Vec<WorkItem> {
        let now = self.now;
        self.r.due(now, 100)
    }
    fn report(&mut self, id: &str, status: u16, headers: &[(&str, &str)], body: &str) {
        let now = self.now;
        let outcome = Outcome::Response {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.into(),
        };
        let e = self.r.report(now, id, outcome);
        assert_eq!(e["error"], Value::Null, "{e}");
    }
    fn advance_to_deadline(&mut self) {
        let d = self.r.deadline().expect("a deadline");
        if d > self.now {
            self.now = d;
        }
    }
    /// Advance to deadlines until a push is due; webhooks met on the way are answered 200.
    fn next_push(&mut self) -> String {
        for _ in 0..10 {
            self.advance_to_deadline();
            let due = self.due();
            for h in hooks(&due) {
                let id = h.id.clone();
                self.report(&id, 200, &[], "");
            }
            if let Some(p) = pushes(&due).first() {
                return p.id.clone();
            }
        }
        panic!("no push became due");
    }
    fn finish(self) -> Vector {
        self.r.finish()
    }
}

fn pushes(items: &[WorkItem]) -> Vec<&WorkItem> {
    items.iter().filter(|i| i.kind == WorkKind::Push).collect()
}

fn hooks(items: &[WorkItem]) -> Vec<&WorkItem> {
    items
        .iter()
        .filter(|i| i.kind == WorkKind::Webhook)
        .collect()
}

fn body(i: &WorkItem) -> Value {
    serde_json::from_str(&i.request.body).unwrap()
}

fn customer_body() -> Value {
    json!({"name": "Acme Ltd", "email": "ap@acme.example.com", "phone": "+44 20 7946 0000",
           "billingAddress": {"line1": "1 High St", "city": "London", "postalCode": "EC1A 1AA", "country": "GB"}})
}

fn invoice_body(customer: &str, number: &str) -> Value {
    json!({"number": number, "customerId": customer, "issueDate": "2026-11-01", "dueDate": "2026-11-30",
           "currency": "EUR", "lines": [
               {"description": "Consulting", "quantity": 2, "unitAmount": 15000, "taxAmount": 6300},
               {"description": "Travel", "quantity": 1.5, "unitAmount": 333}]})
}

fn id_of(r: &ApiResponse) -> String {
    r.body_json()["id"].as_str().unwrap().to_string()
}

fn admin_and_auth() -> Vector {
    let mut s = Sc::new(
        "admin_and_auth",
        "Admin API, authentication, scopes, write mode, 401/403/404/405/409/422/204.",
    );
    ok(200, &s.send(ApiRequest::new("GET", "/healthz")));
    ok(
        401,
        &s.send(
            ApiRequest::new("POST", "/admin/accounts").json(&json!({"domain": "a.example.com"})),
        ),
    );
    ok(
        401,
        &s.send(
            ApiRequest::new("POST", "/admin/accounts")
                .header("Authorization", "Bearer wrong")
                .json(&json!({"domain": "a.example.com"})),
        ),
    );
    let a = s.admin(
        "POST",
        "/admin/accounts",
        Some(json!({"domain": "acme.example.com"})),
    );
    ok(201, &a);
    assert_eq!(a.body_json()["writeEnabled"], false);
    let aid = id_of(&a);
    ok(
        409,
        &s.admin(
            "POST",
            "/admin/accounts",
            Some(json!({"domain": "ACME.example.com"})),
        ),
    );
    ok(
        422,
        &s.admin(
            "POST",
            "/admin/accounts",
            Some(json!({"domain": "not a domain", "writeEnabled": "yes", "extra": 1})),
        ),
    );
    ok(404, &s.admin("GET", "/admin/accounts/nope", None));
    ok(405, &s.admin("DELETE", "/admin/accounts", None));
    let k = s.admin(
        "POST",
        &format!("/admin/accounts/{aid}/api-keys"),
        Some(json!({"scopes": ["api.read", "api.write"], "name": "erp"})),
    );
    ok(201, &k);
    let kb = k.body_json();
    let key = kb["key"].as_str().unwrap().to_string();
    let auth = basic_auth_header(&key, kb["secret"].as_str().unwrap());
    let ro = s.admin(
        "POST",
        &format!("/admin/accounts/{aid}/api-keys"),
        Some(json!({"scopes": ["api.read"]})),
    );
    let rb = ro.body_json();
    let ro_auth = basic_auth_header(rb["key"].as_str().unwrap(), rb["secret"].as_str().unwrap());
    ok(
        422,
        &s.admin(
            "POST",
            &format!("/admin/accounts/{aid}/api-keys"),
            Some(json!({"scopes": ["api.admin"]})),
        ),
    );
    let t = Tenant {
        id: aid.clone(),
        auth: auth.clone(),
    };
    ok(401, &s.send(ApiRequest::new("GET", "/api/customers")));
    ok(
        401,
        &s.send(
            ApiRequest::new("GET", "/api/customers")
                .header("Authorization", &basic_auth_header(&key, "wrong")),
        ),
    );
    ok(200, &s.api(&t, "GET", "/api/customers", None, &[]));
    let off = s.api(&t, "POST", "/api/customers", Some(customer_body()), &[]);
    ok(403, &off);
    assert_eq!(off.body_json()["type"], "/problems/write-mode-disabled");
    ok(
        200,
        &s.admin(
            "PATCH",
            &format!("/admin/accounts/{aid}"),
            Some(json!({"writeEnabled": true})),
        ),
    );
    ok(
        201,
        &s.api(&t, "POST", "/api/customers", Some(customer_body()), &[]),
    );
    let ro_t = Tenant {
        id: aid.clone(),
        auth: ro_auth,
    };
    let scope = s.api(&ro_t, "POST", "/api/customers", Some(customer_body()), &[]);
    ok(403, &scope);
    assert_eq!(scope.body_json()["type"], "/problems/missing-scope");
    ok(200, &s.api(&ro_t, "GET", "/api/customers", None, &[]));
    ok(404, &s.api(&t, "GET", "/api/widgets", None, &[]));
    ok(405, &s.api(&t, "DELETE", "/api/customers", None, &[]));
    ok(
        204,
        &s.admin(
            "DELETE",
            &format!("/admin/accounts/{aid}/api-keys/{key}"),
            None,
        ),
    );
    ok(401, &s.api(&t, "GET", "/api/customers", None, &[]));
    ok(
        404,
        &s.admin(
            "DELETE",
            &format!("/admin/accounts/{aid}/api-keys/{key}"),
            None,
        ),
    );
    s.finish()
}

fn customer_crud_and_errors() -> Vector {
    let mut s = Sc::new(
        "customer_crud_and_errors",
        "Create, read, list, merge-patch with If-Match; 400, 404, 412, 413, 415, 422; tenant isolation.",
    );
    let t = s.tenant("acme.example.com");
    let other = s.tenant("globex.example.com");
    let c = s.api(
        &t,
        "POST",
        "/api/customers",
        Some(customer_body()),
        &[("X-Tracking-ID", "trk-c1")],
    );
    ok(201, &c);
    let cid = id_of(&c);
    s.at(1000);
    ok(
        200,
        &s.api(&t, "GET", &format!("/api/customers/{cid}"), None, &[]),
    );
    ok(
        404,
        &s.api(&other, "GET", &format!("/api/customers/{cid}"), None, &[]),
    );
    ok(
        404,
        &s.api(
            &other,
            "PATCH",
            &format!("/api/customers/{cid}"),
            Some(json!({"phone": "1"})),
            &[],
        ),
    );
    let p = s.api(
        &t,
        "PATCH",
        &format!("/api/customers/{cid}"),
        Some(json!({"phone": "+44 20 0000 0000", "contactName": "Jo", "billingAddress": {"line2": "Floor 2"}})),
        &[("If-Match", "\"1\"")],
    );
    ok(200, &p);
    assert_eq!(p.body_json()["version"], 2);
    assert_eq!(p.headers["ETag"], "\"2\"");
    ok(
        412,
        &s.api(
            &t,
            "PATCH",
            &format!("/api/customers/{cid}"),
            Some(json!({"phone": "x"})),
            &[("If-Match", "1")],
        ),
    );
    ok(
        400,
        &s.api(
            &t,
            "PATCH",
            &format!("/api/customers/{cid}"),
            Some(json!({"phone": "x"})),
            &[("If-Match", "one")],
        ),
    );
    ok(
        422,
        &s.api(
            &t,
            "PATCH",
            &format!("/api/customers/{cid}"),
            Some(json!({"name": null, "email": "not-an-email"})),
            &[],
        ),
    );
    ok(
        404,
        &s.api(
            &t,
            "PATCH",
            "/api/customers/unknown",
            Some(json!({"name": "x"})),
            &[],
        ),
    );
    let bad = ApiRequest::new("POST", "/api/customers")
        .header("Authorization", &t.auth)
        .header("Content-Type", "application/json");
    let mut malformed = bad.clone();
    malformed.body = Some("{\"name\": ".into());
    ok(400, &s.send(malformed));
    let mut text = ApiRequest::new("POST", "/api/customers")
        .header("Authorization", &t.auth)
        .header("Content-Type", "text/plain");
    text.body = Some("name=Acme".into());
    ok(415, &s.send(text));
    let mut big = bad;
    big.body = Some(json!({"name": "x".repeat(5000)}).to_string());
    ok(413, &s.send(big));
    ok(
        422,
        &s.api(
            &t,
            "POST",
            "/api/customers",
            Some(json!({"email": "a@", "nickname": "x", "billingAddress": {"country": "gbr"}})),
            &[],
        ),
    );
    for i in 0..3 {
        ok(
            201,
            &s.api(
                &t,
                "POST",
                "/api/customers",
                Some(json!({"name": format!("Customer {i}")})),
                &[],
            ),
        );
    }
    ok(
        200,
        &s.api(&t, "GET", "/api/customers?page=1&pageSize=2", None, &[]),
    );
    ok(
        200,
        &s.api(&t, "GET", "/api/customers?page=2&pageSize=2", None, &[]),
    );
    let end = s.api(&t, "GET", "/api/customers?page=3&pageSize=2", None, &[]);
    assert_eq!(end.body_json(), json!([]));
    ok(400, &s.api(&t, "GET", "/api/customers?page=0", None, &[]));
    ok(200, &s.api(&other, "GET", "/api/customers", None, &[]));
    s.finish()
}

fn invoice_push_two_targets() -> Vector {
    let mut s = Sc::new(
        "invoice_push_two_targets",
        "A pushing invoice: pushes to accounting and commerce (not crm), one 201 and one 503, retry after the deadline, webhooks with Basic auth and signature, sync succeeded; a later update is pushed as an update.",
    );
    let t = s.tenant("acme.example.com");
    s.connect(&t, "quickbooks", "accounting");
    s.connect(&t, "shopify", "commerce");
    s.connect(&t, "hubspot", "crm");
    s.webhook(&t, json!(["*"]));
    let cid = id_of(&s.api(&t, "POST", "/api/customers", Some(customer_body()), &[]));
    let inv = s.api(
        &t,
        "POST",
        "/api/invoices",
        Some(invoice_body(&cid, "INV-1001")),
        &[("X-Sync-Data", "push"), ("X-Tracking-ID", "order-77")],
    );
    ok(201, &inv);
    assert_eq!(inv.body_json()["total"], 36800);
    let sync = inv.headers["X-Sync-ID"].clone();
    let items = s.due();
    assert_eq!(pushes(&items).len(), 2);
    let qb = items
        .iter()
        .find(|i| i.request.url.contains("quickbooks"))
        .unwrap()
        .id
        .clone();
    let sh = items
        .iter()
        .find(|i| i.request.url.contains("shopify"))
        .unwrap()
        .id
        .clone();
    s.at(300);
    s.report(&qb, 201, &[], r#"{"id":"QB-1"}"#);
    s.report(&sh, 503, &[], "maintenance");
    ok(
        200,
        &s.api(&t, "GET", &format!("/api/syncs/{sync}"), None, &[]),
    );
    let h = s.due();
    assert_eq!(hooks(&h).len(), 1);
    let hid = h[0].id.clone();
    s.report(&hid, 200, &[], "");
    s.advance_to_deadline();
    let again = s.due();
    let retry = pushes(&again);
    assert_eq!(retry.len(), 1);
    let rid = retry[0].id.clone();
    s.report(&rid, 200, &[], r#"{"id":"SH-9"}"#);
    let st = s.api(&t, "GET", &format!("/api/syncs/{sync}"), None, &[]);
    assert_eq!(st.body_json()["status"], "succeeded");
    let h = s.due();
    assert_eq!(hooks(&h).len(), 2);
    for i in h {
        s.report(&i.id, 200, &[], "ok");
    }
    s.r.deadline();
    let upd = s.api(
        &t,
        "PUT",
        &format!("/api/invoices/{}", id_of(&inv)),
        Some(invoice_body(&cid, "INV-1001")),
        &[("X-Sync-Data", "push"), ("If-Match", "1")],
    );
    ok(200, &upd);
    let items = s.due();
    assert!(pushes(&items)
        .iter()
        .all(|i| body(i)["operation"] == "update"));
    s.finish()
}

fn sources_and_headers() -> Vector {
    let mut s = Sc::new(
        "sources_and_headers",
        "X-Sync-Sources by app key and by type, unknown tokens, no_targets, bad X-Sync-Data, X-Tracking-ID and Idempotency-Key.",
    );
    let t = s.tenant("acme.example.com");
    s.connect(&t, "quickbooks", "accounting");
    s.connect(&t, "xero", "accounting");
    s.connect(&t, "hubspot", "crm");
    let by_key = s.api(
        &t,
        "POST",
        "/api/customers",
        Some(customer_body()),
        &[
            ("X-Sync-Data", "push"),
            ("X-Sync-Sources", " QuickBooks , hubspot"),
        ],
    );
    assert_eq!(by_key.headers["X-Sync-Targets"], "quickbooks,hubspot");
    let by_type = s.api(
        &t,
        "POST",
        "/api/customers",
        Some(customer_body()),
        &[("X-Sync-Data", "push"), ("X-Sync-Sources", "accounting")],
    );
    assert_eq!(by_type.headers["X-Sync-Targets"], "quickbooks,xero");
    let none = s.api(
        &t,
        "POST",
        "/api/bank-transactions",
        Some(json!({"bankAccount": "GB33BUKB20201555555555", "date": "2026-11-02", "amount": -1299, "currency": "GBP", "description": "Coffee"})),
        &[("X-Sync-Data", "push"), ("X-Sync-Sources", "crm")],
    );
    ok(201, &none);
    assert_eq!(none.headers["X-Sync-Targets"], "");
    let sync = none.headers["X-Sync-ID"].clone();
    let st = s.api(&t, "GET", &format!("/api/syncs/{sync}"), None, &[]);
    assert_eq!(st.body_json()["status"], "no_targets");
    let push = [
        ("X-Sync-Data", "push"),
        ("X-Sync-Sources", "quickbooks,nosuchapp"),
    ];
    ok(
        400,
        &s.api(&t, "POST", "/api/customers", Some(customer_body()), &push),
    );
    ok(
        400,
        &s.api(
            &t,
            "POST",
            "/api/customers",
            Some(customer_body()),
            &[("X-Sync-Data", "pull")],
        ),
    );
    ok(
        400,
        &s.api(
            &t,
            "POST",
            "/api/customers",
            Some(customer_body()),
            &[("X-Tracking-ID", "bad\r\nInjected: yes")],
        ),
    );
    ok(
        400,
        &s.api(
            &t,
            "POST",
            "/api/customers",
            Some(customer_body()),
            &[("X-Tracking-ID", &"x".repeat(129))],
        ),
    );
    ok(
        400,
        &s.api(
            &t,
            "POST",
            "/api/customers",
            Some(customer_body()),
            &[("Idempotency-Key", &"k".repeat(256))],
        ),
    );
    let cat = s.api(
        &t,
        "POST",
        "/api/customers",
        Some(customer_body()),
        &[("X-Sync-Data", "push"), ("X-Sync-Sources", "sage")],
    );
    ok(201, &cat);
    assert_eq!(cat.headers["X-Sync-Targets"], "");
    ok(404, &s.api(&t, "GET", "/api/syncs/unknown", None, &[]));
    s.finish()
}

fn idempotency() -> Vector {
    let mut s = Sc::new(
        "idempotency",
        "Idempotency-Key: replay with Idempotency-Replayed, 422 with a different body, keys independent per account.",
    );
    let t = s.tenant("acme.example.com");
    s.connect(&t, "quickbooks", "accounting");
    let h = [("Idempotency-Key", "k-1"), ("X-Sync-Data", "push")];
    let first = s.api(&t, "POST", "/api/customers", Some(customer_body()), &h);
    ok(201, &first);
    s.at(5000);
    let again = s.api(&t, "POST", "/api/customers", Some(customer_body()), &h);
    ok(201, &again);
    assert_eq!(again.headers["Idempotency-Replayed"], "true");
    assert_eq!(again.headers["X-Sync-ID"], first.headers["X-Sync-ID"]);
    assert_eq!(again.body, first.body);
    let list = s.api(&t, "GET", "/api/customers", None, &[]);
    assert_eq!(list.body_json().as_array().unwrap().len(), 1);
    ok(
        422,
        &s.api(
            &t,
            "POST",
            "/api/customers",
            Some(json!({"name": "Other"})),
            &[("Idempotency-Key", "k-1")],
        ),
    );
    let other = s.tenant("globex.example.com");
    ok(
        201,
        &s.api(
            &other,
            "POST",
            "/api/customers",
            Some(json!({"name": "Other"})),
            &[("Idempotency-Key", "k-1")],
        ),
    );
    assert_eq!(pushes(&s.due()).len(), 1);
    s.finish()
}

fn expense_with_new_vendor() -> Vector {
    let mut s = Sc::new(
        "expense_with_new_vendor",
        "An expense with a new vendor: the vendor is pushed first, the expense after it with the vendor's remote id.",
    );
    let t = s.tenant("acme.example.com");
    s.connect(&t, "quickbooks", "accounting");
    let e = s.api(
        &t,
        "POST",
        "/api/expenses",
        Some(json!({"vendor": {"name": "Office Supplies Co", "email": "billing@osc.example.com"},
                    "date": "2026-11-03", "currency": "USD",
                    "lines": [{"description": "Paper", "amount": 4599}, {"description": "Toner", "amount": 8900}]})),
        &[("X-Sync-Data", "push"), ("X-Tracking-ID", "exp-1")],
    );
    ok(201, &e);
    let eb = e.body_json();
    assert_eq!(eb["total"], 13499);
    assert!(eb["vendorId"].is_string());
    let first = s.due();
    assert_eq!(first.len(), 1);
    assert_eq!(body(&first[0])["objectType"], "vendor");
    let vid = first[0].id.clone();
    s.report(&vid, 201, &[], r#"{"id":"V-7"}"#);
    let second = s.due();
    let p = pushes(&second);
    assert_eq!(p.len(), 1);
    assert_eq!(body(p[0])["objectType"], "expense");
    assert_eq!(body(p[0])["references"]["vendorId"], "V-7");
    let pid = p[0].id.clone();
    s.report(&pid, 201, &[], r#"{"id":"P-1"}"#);
    let st = s.api(
        &t,
        "GET",
        &format!("/api/syncs/{}", e.headers["X-Sync-ID"]),
        None,
        &[],
    );
    assert_eq!(st.body_json()["status"], "succeeded");
    let e2 = s.api(
        &t,
        "POST",
        "/api/expenses",
        Some(
            json!({"vendorId": eb["vendorId"], "date": "2026-11-04", "currency": "USD",
                    "lines": [{"description": "Pens", "amount": 500}]}),
        ),
        &[("X-Sync-Data", "push")],
    );
    ok(201, &e2);
    let third = s.due();
    assert_eq!(body(pushes(&third)[0])["references"]["vendorId"], "V-7");
    ok(
        422,
        &s.api(
            &t,
            "POST",
            "/api/expenses",
            Some(json!({"vendorId": "nope", "vendor": {"name": ""}, "date": "2026-02-30", "currency": "usd",
                        "lines": [{"description": "x", "amount": 0}]})),
            &[],
        ),
    );
    s.finish()
}

fn expense_vendor_push_fails() -> Vector {
    let mut s = Sc::new(
        "expense_vendor_push_fails",
        "When the new vendor's push fails, the expense push is not sent and fails with the reason.",
    );
    let t = s.tenant("acme.example.com");
    s.connect(&t, "quickbooks", "accounting");
    s.webhook(&t, json!(["api_push_complete"]));
    let e = s.api(
        &t,
        "POST",
        "/api/expenses",
        Some(
            json!({"vendor": {"name": "Bad Vendor"}, "date": "2026-11-03", "currency": "USD",
                    "lines": [{"description": "Paper", "amount": 100}]}),
        ),
        &[("X-Sync-Data", "push")],
    );
    ok(201, &e);
    let first = s.due();
    let vid = first[0].id.clone();
    s.report(
        &vid,
        400,
        &[],
        r#"{"Fault":{"Error":[{"Message":"Duplicate Name Exists Error"}]}}"#,
    );
    let st = s.api(
        &t,
        "GET",
        &format!("/api/syncs/{}", e.headers["X-Sync-ID"]),
        None,
        &[],
    );
    let sb = st.body_json();
    assert_eq!(sb["status"], "failed");
    assert!(sb["targets"][0]["lastError"]
        .as_str()
        .unwrap()
        .contains("not sent"));
    let h = s.due();
    assert_eq!(h.len(), 1);
    assert_eq!(body(&h[0])["event"], "api_push_complete");
    s.finish()
}

fn payments_and_totals() -> Vector {
    let mut s = Sc::new(
        "payments_and_totals",
        "Payments against an invoice: partial, above balance (422), the rest (paid); half-even rounding; unique numbers; a client total that disagrees.",
    );
    let t = s.tenant("acme.example.com");
    s.connect(&t, "quickbooks", "accounting");
    let cid = id_of(&s.api(&t, "POST", "/api/customers", Some(customer_body()), &[]));
    let mut b = invoice_body(&cid, "INV-2001");
    b["lines"] = json!([{"description": "Half units", "quantity": 0.5, "unitAmount": 5},
                        {"description": "More", "quantity": 1.5, "unitAmount": 5}]);
    let inv = s.api(&t, "POST", "/api/invoices", Some(b), &[]);
    ok(201, &inv);
    assert_eq!(inv.body_json()["total"], 10);
    let iid = id_of(&inv);
    ok(
        422,
        &s.api(
            &t,
            "POST",
            "/api/invoices",
            Some(invoice_body(&cid, "INV-2001")),
            &[],
        ),
    );
    let mut wrong = invoice_body(&cid, "INV-2002");
    wrong["total"] = json!(1);
    ok(422, &s.api(&t, "POST", "/api/invoices", Some(wrong), &[]));
    let pay = format!("/api/invoices/{iid}/payments");
    let push = [("X-Sync-Data", "push")];
    ok(
        201,
        &s.api(
            &t,
            "POST",
            &pay,
            Some(json!({"amount": 4, "date": "2026-11-05", "reference": "wire 1"})),
            &push,
        ),
    );
    ok(
        422,
        &s.api(
            &t,
            "POST",
            &pay,
            Some(json!({"amount": 7, "date": "2026-11-06"})),
            &[],
        ),
    );
    let rest = s.api(&t, "POST", &pay, Some(json!({"date": "2026-11-06"})), &push);
    ok(201, &rest);
    assert_eq!(rest.body_json()["amount"], 6);
    let paid = s.api(&t, "GET", &format!("/api/invoices/{iid}"), None, &[]);
    assert_eq!(paid.body_json()["status"], "paid");
    assert_eq!(paid.body_json()["balance"], 0);
    ok(
        422,
        &s.api(&t, "POST", &pay, Some(json!({"date": "2026-11-07"})), &[]),
    );
    ok(
        404,
        &s.api(
            &t,
            "POST",
            "/api/invoices/unknown/payments",
            Some(json!({"date": "2026-11-07"})),
            &[],
        ),
    );
    ok(
        200,
        &s.api(
            &t,
            "GET",
            &format!("/api/payments/{}", id_of(&rest)),
            None,
            &[],
        ),
    );
    ok(200, &s.api(&t, "GET", "/api/payments", None, &[]));
    let p = s.due();
    assert_eq!(pushes(&p).len(), 2);
    assert!(pushes(&p)
        .iter()
        .all(|i| body(i)["objectType"] == "payment"));
    s.finish()
}

fn bank_preload_and_accounts() -> Vector {
    let mut s = Sc::new(
        "bank_preload_and_accounts",
        "A bank-transaction preload (array), duplicate externalIds in the batch and against stored ones, chart of accounts with unique codes.",
    );
    let t = s.tenant("acme.example.com");
    let txs: Vec<Value> = (1..=3)
        .map(|i| {
            json!({"bankAccount": "GB33BUKB20201555555555", "date": format!("2026-11-0{i}"),
                   "amount": -100 * i, "currency": "GBP", "description": format!("Card {i}"),
                   "externalId": format!("bt-{i}")})
        })
        .collect();
    let pre = s.api(
        &t,
        "POST",
        "/api/bank-transactions",
        Some(Value::Array(txs.clone())),
        &[],
    );
    ok(201, &pre);
    assert_eq!(pre.body_json().as_array().unwrap().len(), 3);
    ok(
        422,
        &s.api(
            &t,
            "POST",
            "/api/bank-transactions",
            Some(Value::Array(txs)),
            &[],
        ),
    );
    let dup = json!([
        {"bankAccount": "X", "date": "2026-11-01", "amount": 1, "currency": "GBP", "description": "a", "externalId": "same"},
        {"bankAccount": "X", "date": "2026-11-01", "amount": 2, "currency": "GBP", "description": "b", "externalId": "same"}]);
    ok(
        422,
        &s.api(&t, "POST", "/api/bank-transactions", Some(dup), &[]),
    );
    ok(
        200,
        &s.api(&t, "GET", "/api/bank-transactions?pageSize=2", None, &[]),
    );
    let a = s.api(
        &t,
        "POST",
        "/api/accounts",
        Some(json!({"code": "4000", "name": "Sales", "type": "income"})),
        &[],
    );
    ok(201, &a);
    assert_eq!(a.body_json()["active"], true);
    ok(
        422,
        &s.api(
            &t,
            "POST",
            "/api/accounts",
            Some(json!({"code": "4000", "name": "Sales 2", "type": "revenue"})),
            &[],
        ),
    );
    ok(
        200,
        &s.api(
            &t,
            "PATCH",
            &format!("/api/accounts/{}", id_of(&a)),
            Some(json!({"code": "4100", "active": false})),
            &[],
        ),
    );
    ok(
        201,
        &s.api(
            &t,
            "POST",
            "/api/accounts",
            Some(json!({"code": "4000", "name": "Sales again", "type": "income"})),
            &[],
        ),
    );
    s.finish()
}

fn webhook_retries_and_manual_retry() -> Vector {
    let mut s = Sc::new(
        "webhook_retries_and_manual_retry",
        "A webhook endpoint that fails 4 times: 4 attempts then failed; a manual retry delivers it with a fresh budget.",
    );
    let t = s.tenant("acme.example.com");
    s.connect(&t, "hubspot", "crm");
    let wid = s.webhook(&t, json!(["api_push_complete"]));
    let c = s.api(
        &t,
        "POST",
        "/api/customers",
        Some(customer_body()),
        &[("X-Sync-Data", "push")],
    );
    ok(201, &c);
    let p = s.due();
    let pid = p[0].id.clone();
    s.report(&pid, 201, &[], r#"{"id":"HS-1"}"#);
    for attempt in 1..=4 {
        let h = s.due();
        assert_eq!(h.len(), 1, "attempt {attempt}");
        let hid = h[0].id.clone();
        s.report(&hid, 500, &[], "down");
        if attempt < 4 {
            s.advance_to_deadline();
        }
    }
    assert!(s.due().is_empty());
    let deliveries = format!("/admin/accounts/{}/webhooks/{wid}/deliveries", t.id);
    let list = s.admin("GET", &deliveries, None);
    let lb = list.body_json();
    assert_eq!(lb[0]["status"], "failed");
    assert_eq!(lb[0]["attempts"], 4);
    let did = lb[0]["id"].as_str().unwrap().to_string();
    ok(
        202,
        &s.admin("POST", &format!("{deliveries}/{did}/retry"), None),
    );
    ok(
        409,
        &s.admin("POST", &format!("{deliveries}/{did}/retry"), None),
    );
    let h = s.due();
    let hid = h[0].id.clone();
    s.report(&hid, 200, &[], "");
    let list = s.admin("GET", &deliveries, None);
    assert_eq!(list.body_json()[0]["status"], "delivered");
    assert_eq!(list.body_json()[0]["attempts"], 5);
    s.finish()
}

fn webhook_management() -> Vector {
    let mut s = Sc::new(
        "webhook_management",
        "Managing webhooks (section 7): list, PATCH (bad input, then a change), rotate-secret (two signatures for 24 h), a test ping retried after its Retry-After, deliveries filters, auto-disable after 10 failed deliveries and re-enabling.",
    );
    let t = s.tenant("acme.example.com");
    let wid = s.webhook(&t, json!(["api_push_complete"]));
    let hooks_path = format!("/admin/accounts/{}/webhooks", t.id);
    let hook = format!("{hooks_path}/{wid}");
    let list = s.admin("GET", &hooks_path, None);
    ok(200, &list);
    assert_eq!(list.body_json()[0]["enabled"], true);
    let bad = s.admin(
        "PATCH",
        &hook,
        Some(
            json!({"url": "ftp://hooks.example.com/in", "events": ["api_push_nothing"],
                    "enabled": "yes", "signingSecret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
        ),
    );
    ok(422, &bad);
    assert_eq!(bad.body_json()["errors"].as_array().unwrap().len(), 4);
    let patched = s.admin(
        "PATCH",
        &hook,
        Some(json!({"events": ["*"], "username": "hook2", "password": "second-password"})),
    );
    ok(200, &patched);
    assert_eq!(patched.body_json()["events"], json!(["*"]));
    let rotated = s.admin("POST", &format!("{hook}/rotate-secret"), None);
    ok(200, &rotated);
    assert!(rotated.body_json()["signingSecret"]
        .as_str()
        .unwrap()
        .starts_with("whsec_"));
    ok(
        404,
        &s.admin("POST", &format!("{hooks_path}/nope/test"), None),
    );

    // The test ping: signed with the new and the old secret, retried after its Retry-After.
    let ping = s.admin("POST", &format!("{hook}/test"), None);
    ok(202, &ping);
    let items = s.due();
    assert_eq!(items.len(), 1);
    assert_eq!(body(&items[0])["event"], "webhook_test");
    let sigs = items[0].request.headers["webhook-signature"].clone();
    assert_eq!(sigs.split(' ').count(), 2, "{sigs}");
    let id = items[0].id.clone();
    s.report(&id, 503, &[("Retry-After", "120")], "busy");
    assert_eq!(s.r.deadline(), Some(s.now + 120_000));
    s.advance_to_deadline();
    let items = s.due();
    let id = items[0].id.clone();
    s.report(&id, 200, &[], "");

    // A sync's delivery, then the filters.
    let c = s.api(
        &t,
        "POST",
        "/api/customers",
        Some(customer_body()),
        &[("X-Sync-Data", "push"), ("X-Tracking-ID", "trk-7")],
    );
    ok(201, &c);
    let sync = c.headers["X-Sync-ID"].clone();
    let sync_item = s.due();
    assert_eq!(sync_item.len(), 1);
    let deliveries = format!("{hook}/deliveries");
    let pending = s.admin("GET", &format!("{deliveries}?status=pending"), None);
    ok(200, &pending);
    assert_eq!(pending.body_json()[0]["trackingId"], "trk-7");
    let of_sync = s.admin("GET", &format!("{deliveries}?syncId={sync}"), None);
    assert_eq!(of_sync.body_json().as_array().unwrap().len(), 1);
    let delivered = s.admin("GET", &format!("{deliveries}?status=delivered"), None);
    assert_eq!(delivered.body_json()[0]["event"], "webhook_test");
    assert_eq!(delivered.body_json()[0]["syncId"], Value::Null);
    ok(
        400,
        &s.admin("GET", &format!("{deliveries}?status=done"), None),
    );
    ok(
        400,
        &s.admin("GET", &format!("{deliveries}?sort=new"), None),
    );

    // Ten deliveries that end failed disable the subscription (the sync's one is among them).
    for _ in 0..9 {
        ok(202, &s.admin("POST", &format!("{hook}/test"), None));
    }
    let mut items = sync_item;
    for round in 1..=4 {
        items.extend(s.due());
        assert_eq!(items.len(), 10, "round {round}");
        for i in items.drain(..) {
            s.report(&i.id, 500, &[], "down");
        }
        if round < 4 {
            // Past every jittered retry delay of the schedule (2 s, then 10 s).
            s.now += 60_000;
        }
    }
    let off = s.admin("GET", &hook, None);
    assert_eq!(off.body_json()["enabled"], false);
    assert!(off.body_json()["disabledReason"].is_string());
    ok(409, &s.admin("POST", &format!("{hook}/test"), None));
    let failed = s.admin(
        "GET",
        &format!("{deliveries}?status=failed&pageSize=2&page=1"),
        None,
    );
    assert_eq!(failed.body_json().as_array().unwrap().len(), 2);
    let on = s.admin("PATCH", &hook, Some(json!({"enabled": true})));
    ok(200, &on);
    assert_eq!(on.body_json()["disabledReason"], Value::Null);
    ok(202, &s.admin("POST", &format!("{hook}/test"), None));
    assert_eq!(s.due().len(), 1);
    s.finish()
}

fn ordered_updates_behind_backoff() -> Vector {
    let mut s = Sc::new(
        "ordered_updates_behind_backoff",
        "Two updates of one invoice wait behind its first push while it backs off (429 with Retry-After); they go in write order as updates.",
    );
    let t = s.tenant("acme.example.com");
    s.connect(&t, "quickbooks", "accounting");
    let cid = id_of(&s.api(&t, "POST", "/api/customers", Some(customer_body()), &[]));
    let inv = s.api(
        &t,
        "POST",
        "/api/invoices",
        Some(invoice_body(&cid, "INV-3001")),
        &[("X-Sync-Data", "push")],
    );
    let iid = id_of(&inv);
    let first = s.due();
    let fid = first[0].id.clone();
    s.report(&fid, 429, &[("Retry-After", "30")], "slow down");
    let mut b = invoice_body(&cid, "INV-3001");
    b["memo"] = json!("first change");
    ok(
        200,
        &s.api(
            &t,
            "PUT",
            &format!("/api/invoices/{iid}"),
            Some(b.clone()),
            &[("X-Sync-Data", "push")],
        ),
    );
    b["memo"] = json!("second change");
    ok(
        200,
        &s.api(
            &t,
            "PUT",
            &format!("/api/invoices/{iid}"),
            Some(b),
            &[("X-Sync-Data", "push"), ("If-Match", "2")],
        ),
    );
    assert!(s.due().is_empty());
    s.advance_to_deadline();
    assert!(s.now >= T0 + 30_000);
    let retry = s.due();
    assert_eq!(retry.len(), 1);
    let rid = retry[0].id.clone();
    s.report(&rid, 201, &[], r#"{"id":"QB-55"}"#);
    let u1 = s.due();
    assert_eq!(u1.len(), 1);
    assert_eq!(body(&u1[0])["object"]["memo"], "first change");
    assert_eq!(body(&u1[0])["operation"], "update");
    assert_eq!(body(&u1[0])["remoteId"], "QB-55");
    let u1id = u1[0].id.clone();
    s.report(&u1id, 200, &[], "{}");
    let u2 = s.due();
    assert_eq!(body(&u2[0])["object"]["memo"], "second change");
    s.finish()
}

fn partial_failure() -> Vector {
    let mut s = Sc::new(
        "partial_failure",
        "A push to two targets where one fails permanently (422 from the source): partially_failed; the other answers 503 twice, then 201.",
    );
    let t = s.tenant("acme.example.com");
    s.connect(&t, "quickbooks", "accounting");
    s.connect(&t, "hubspot", "crm");
    s.webhook(&t, json!(["api_push_update"]));
    let c = s.api(
        &t,
        "POST",
        "/api/customers",
        Some(customer_body()),
        &[("X-Sync-Data", "push")],
    );
    let items = s.due();
    let qb = items
        .iter()
        .find(|i| i.request.url.contains("quickbooks"))
        .unwrap()
        .id
        .clone();
    let hs = items
        .iter()
        .find(|i| i.request.url.contains("hubspot"))
        .unwrap()
        .id
        .clone();
    s.report(
        &hs,
        422,
        &[],
        r#"{"status":"error","message":"Property values were not valid"}"#,
    );
    s.report(&qb, 503, &[], "");
    for status in [503, 201] {
        let next = s.next_push();
        s.report(&next, status, &[], r#"{"id":"QB-2"}"#);
    }
    let st = s.api(
        &t,
        "GET",
        &format!("/api/syncs/{}", c.headers["X-Sync-ID"]),
        None,
        &[],
    );
    assert_eq!(st.body_json()["status"], "partially_failed");
    s.finish()
}

fn meta() -> Vector {
    let mut s = Sc::new(
        "meta",
        "GET /api/meta/{objectType}: the CDM fields of a type and, per connection, whether it receives the type, what its connector requires (the same rules that make a write naming it 422) and does not carry; ?sources= narrows the connections as X-Sync-Sources does; unknown types 404, bad sources and unknown parameters 400.",
    );
    let t = s.tenant("acme.example.com");
    s.connect(&t, "sage", "accounting");
    let conn = |s: &mut Sc, body: Value| {
        let r = s.admin(
            "POST",
            &format!("/admin/accounts/{}/connections", t.id),
            Some(body),
        );
        ok(201, &r);
    };
    conn(
        &mut s,
        json!({"app": "quickbooks", "type": "accounting", "connector": "quickbooks",
               "baseUrl": "https://qbo.example.com", "settings": {"realmId": "123145", "paymentAccountId": "35"}}),
    );
    conn(
        &mut s,
        json!({"app": "xero", "type": "accounting", "connector": "xero", "baseUrl": "https://api.xero.example.com",
               "settings": {"tenantId": "5b7c7a3e-1f1a-4a55-9d3c-2a1f0e6b8c01"}}),
    );
    conn(
        &mut s,
        json!({"app": "hubspot", "type": "crm", "connector": "hubspot", "baseUrl": "https://api.hubapi.example.com",
               "settings": {"customerObject": "contacts"}}),
    );
    let by_app = |m: &Value| -> std::collections::BTreeMap<String, Value> {
        m["connections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["app"].as_str().unwrap().to_string(), c.clone()))
            .collect()
    };
    let customer = s.api(&t, "GET", "/api/meta/customer", None, &[]);
    ok(200, &customer);
    let m = customer.body_json();
    assert_eq!(m["objectType"], "customer");
    assert_eq!(
        m["fields"][0],
        json!({"pointer": "/name", "type": "string", "required": true, "maxLength": 1000})
    );
    let c = by_app(&m);
    assert_eq!(c.len(), 4);
    assert_eq!(c["hubspot"]["requires"], json!(["/email"]));
    assert_eq!(c["hubspot"]["ignores"], json!(["/billingAddress/line2"]));
    assert_eq!(c["sage"]["connector"], "generic");
    assert_eq!(c["quickbooks"]["receives"], true);
    let expense = s.api(&t, "GET", "/api/meta/expense", None, &[]);
    ok(200, &expense);
    let c = by_app(&expense.body_json());
    assert_eq!(c["quickbooks"]["requires"], json!(["/lines/*/accountId"]));
    assert_eq!(c["quickbooks"]["missingSettings"], json!([]));
    assert_eq!(
        c["xero"]["missingSettings"],
        json!(["expenseBankAccountCode"])
    );
    assert_eq!(c["hubspot"]["receives"], false);
    // The same rules make a write that names xero 422: each required field, and the setting.
    let v = s.api(
        &t,
        "POST",
        "/api/vendors",
        Some(json!({"name": "Paper Co"})),
        &[],
    );
    let expense_body = json!({"vendorId": id_of(&v), "date": "2026-11-03", "currency": "EUR",
                              "lines": [{"description": "Paper", "amount": 4599}]});
    let refused = s.api(
        &t,
        "POST",
        "/api/expenses",
        Some(expense_body),
        &[("X-Sync-Data", "push"), ("X-Sync-Sources", "xero")],
    );
    ok(422, &refused);
    let pointers: Vec<Value> = refused.body_json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].clone())
        .collect();
    assert_eq!(pointers, [json!("/lines/0/accountId"), json!("")]);
    let bank = s.api(
        &t,
        "GET",
        "/api/meta/bankTransaction?sources=accounting",
        None,
        &[],
    );
    ok(200, &bank);
    let c = by_app(&bank.body_json());
    assert_eq!(
        c.keys().cloned().collect::<Vec<_>>(),
        ["quickbooks", "sage", "xero"]
    );
    assert_eq!(
        c["quickbooks"]["missingSettings"],
        json!(["bankAccountId", "bankLineAccountId"])
    );
    assert_eq!(
        c["quickbooks"]["ignores"],
        json!(["/bankAccount", "/externalId"])
    );
    let narrowed = s.api(
        &t,
        "GET",
        "/api/meta/invoice?sources=%20HubSpot%20",
        None,
        &[],
    );
    ok(200, &narrowed);
    assert_eq!(by_app(&narrowed.body_json())["hubspot"]["receives"], false);
    ok(404, &s.api(&t, "GET", "/api/meta/widget", None, &[]));
    ok(404, &s.api(&t, "GET", "/api/meta/customers", None, &[]));
    ok(
        400,
        &s.api(&t, "GET", "/api/meta/customer?sources=nosuchapp", None, &[]),
    );
    ok(
        400,
        &s.api(&t, "GET", "/api/meta/customer?sources=", None, &[]),
    );
    ok(
        400,
        &s.api(&t, "GET", "/api/meta/customer?source=crm", None, &[]),
    );
    ok(
        405,
        &s.api(&t, "POST", "/api/meta/customer", Some(json!({})), &[]),
    );
    // Reading needs only api.read.
    let k = s.admin(
        "POST",
        &format!("/admin/accounts/{}/api-keys", t.id),
        Some(json!({"scopes": ["api.read"]})),
    );
    let kb = k.body_json();
    let reader = Tenant {
        id: t.id.clone(),
        auth: basic_auth_header(kb["key"].as_str().unwrap(), kb["secret"].as_str().unwrap()),
    };
    ok(200, &s.api(&reader, "GET", "/api/meta/payment", None, &[]));
    let anonymous = s.send(ApiRequest::new("GET", "/api/meta/payment"));
    ok(401, &anonymous);
    s.finish()
}

fn delete_pushed() -> Vector {
    let mut s = Sc::new(
        "delete_pushed",
        "DELETE of customers and accounts: 409 naming the referring invoice, 204 and 404 afterwards, a released account code, and a pushed delete sent only to the connection that holds a remote id (generic envelope with operation delete, the last stored version and the remote id).",
    );
    let t = s.tenant("acme.example.com");
    s.connect(&t, "quickbooks", "accounting");
    s.connect(&t, "shopify", "commerce");
    let push = [("X-Sync-Data", "push")];
    let c = s.api(&t, "POST", "/api/customers", Some(customer_body()), &push);
    ok(201, &c);
    let cid = id_of(&c);
    assert_eq!(c.headers["X-Sync-Targets"], "quickbooks,shopify");
    let items = s.due();
    for i in pushes(&items) {
        if i.request.url.contains("quickbooks") {
            s.report(&i.id, 201, &[], r#"{"id":"QB-42"}"#);
        } else {
            s.report(&i.id, 422, &[], r#"{"error":"missing field"}"#);
        }
    }
    // An invoice refers to the customer: 409 names it.
    let other = id_of(&s.api(
        &t,
        "POST",
        "/api/customers",
        Some(json!({"name": "Other"})),
        &[],
    ));
    let inv = s.api(
        &t,
        "POST",
        "/api/invoices",
        Some(invoice_body(&other, "INV-7")),
        &[],
    );
    ok(201, &inv);
    let r = s.api(&t, "DELETE", &format!("/api/customers/{other}"), None, &[]);
    ok(409, &r);
    assert!(r.body.contains(&format!("invoice {}", id_of(&inv))));
    // The pushed delete of the first customer.
    let path = format!("/api/customers/{cid}");
    ok(412, &s.api(&t, "DELETE", &path, None, &[("If-Match", "2")]));
    let d = s.api(
        &t,
        "DELETE",
        &path,
        None,
        &[
            ("X-Sync-Data", "push"),
            ("X-Tracking-ID", "erase-1"),
            ("If-Match", "1"),
        ],
    );
    ok(204, &d);
    assert_eq!(d.headers["X-Sync-Targets"], "quickbooks");
    let sync = d.headers["X-Sync-ID"].clone();
    ok(404, &s.api(&t, "GET", &path, None, &[]));
    ok(404, &s.api(&t, "DELETE", &path, None, &[]));
    let list = s.api(&t, "GET", "/api/customers", None, &[]);
    assert_eq!(list.body_json().as_array().unwrap().len(), 1);
    let items = s.due();
    let p = pushes(&items);
    assert_eq!(p.len(), 1);
    assert_eq!(body(p[0])["operation"], "delete");
    assert_eq!(body(p[0])["remoteId"], "QB-42");
    let pid = p[0].id.clone();
    s.at(200);
    s.report(&pid, 200, &[], "");
    let st = s.api(&t, "GET", &format!("/api/syncs/{sync}"), None, &[]);
    assert_eq!(st.body_json()["status"], "succeeded");
    assert_eq!(st.body_json()["operation"], "delete");
    // An account's code is free again once it is deleted.
    let acct = json!({"code": "4000", "name": "Sales", "type": "income"});
    let a = s.api(&t, "POST", "/api/accounts", Some(acct.clone()), &[]);
    ok(201, &a);
    ok(
        422,
        &s.api(&t, "POST", "/api/accounts", Some(acct.clone()), &[]),
    );
    ok(
        204,
        &s.api(
            &t,
            "DELETE",
            &format!("/api/accounts/{}", id_of(&a)),
            None,
            &[],
        ),
    );
    ok(201, &s.api(&t, "POST", "/api/accounts", Some(acct), &[]));
    s.finish()
}

fn dry_run() -> Vector {
    let mut s = Sc::new(
        "dry_run",
        "?dryRun=true: every check of the real write, nothing stored, no sync, no push; 200 {valid, object, targets} or the real write's refusal; Idempotency-Key ignored; dryRun values other than true/false are 400.",
    );
    let t = s.tenant("acme.example.com");
    s.connect(&t, "quickbooks", "accounting");
    s.connect(&t, "hubspot", "crm");
    let push = [("X-Sync-Data", "push"), ("X-Tracking-ID", "dry-77")];
    let r = s.api(
        &t,
        "POST",
        "/api/customers?dryRun=true",
        Some(customer_body()),
        &push,
    );
    ok(200, &r);
    assert_eq!(r.body_json()["targets"], json!(["quickbooks", "hubspot"]));
    let only = [("X-Sync-Data", "push"), ("X-Sync-Sources", "crm")];
    let r = s.api(
        &t,
        "POST",
        "/api/customers?dryRun=true",
        Some(customer_body()),
        &only,
    );
    assert_eq!(r.body_json()["targets"], json!(["hubspot"]));
    let unknown = [("X-Sync-Data", "push"), ("X-Sync-Sources", "shopify")];
    let r = s.api(
        &t,
        "POST",
        "/api/customers?dryRun=true",
        Some(customer_body()),
        &unknown,
    );
    ok(200, &r);
    assert_eq!(r.body_json()["targets"], json!([]));
    ok(
        400,
        &s.api(
            &t,
            "POST",
            "/api/customers?dryRun=1",
            Some(customer_body()),
            &[],
        ),
    );
    ok(
        422,
        &s.api(
            &t,
            "POST",
            "/api/customers?dryRun=true",
            Some(json!({"name": ""})),
            &[],
        ),
    );
    let listed = s.api(&t, "GET", "/api/customers", None, &[]);
    assert_eq!(listed.body_json(), json!([]));
    assert!(s.due().is_empty());
    // Idempotency-Key is ignored: the real write with the same key is a first write.
    let key = [("Idempotency-Key", "dry-key")];
    ok(
        200,
        &s.api(
            &t,
            "POST",
            "/api/customers?dryRun=true",
            Some(customer_body()),
            &key,
        ),
    );
    let c = s.api(
        &t,
        "POST",
        "/api/customers?dryRun=false",
        Some(customer_body()),
        &key,
    );
    ok(201, &c);
    assert!(!c.headers.contains_key("Idempotency-Replayed"));
    let cid = id_of(&c);
    // An invoice with its computed totals; a wrong total and an unknown customer as the real
    // write refuses them.
    let inv = s.api(
        &t,
        "POST",
        "/api/invoices?dryRun=true",
        Some(invoice_body(&cid, "INV-1")),
        &push,
    );
    ok(200, &inv);
    assert!(inv.body_json()["object"]["total"].is_number());
    let mut wrong = invoice_body(&cid, "INV-1");
    wrong["total"] = json!(1);
    ok(
        422,
        &s.api(&t, "POST", "/api/invoices?dryRun=true", Some(wrong), &[]),
    );
    ok(
        422,
        &s.api(
            &t,
            "POST",
            "/api/invoices?dryRun=true",
            Some(invoice_body("nope", "INV-1")),
            &[],
        ),
    );
    let iid = id_of(&s.api(
        &t,
        "POST",
        "/api/invoices",
        Some(invoice_body(&cid, "INV-1")),
        &[],
    ));
    // A payment, an update with If-Match, a preload.
    let pay = format!("/api/invoices/{iid}/payments?dryRun=true");
    ok(
        200,
        &s.api(
            &t,
            "POST",
            &pay,
            Some(json!({"amount": 100, "date": "2026-11-05"})),
            &push,
        ),
    );
    let patch = format!("/api/customers/{cid}?dryRun=true");
    let p = s.api(
        &t,
        "PATCH",
        &patch,
        Some(json!({"email": "billing@acme.example.com"})),
        &[("If-Match", "1")],
    );
    ok(200, &p);
    ok(
        412,
        &s.api(
            &t,
            "PATCH",
            &patch,
            Some(json!({"email": "x@acme.example.com"})),
            &[("If-Match", "2")],
        ),
    );
    let txs = json!([{"bankAccount": "GB33BUKB20201555555555", "date": "2026-11-01", "amount": -100,
                      "currency": "GBP", "description": "Card", "externalId": "bt-1"}]);
    let pre = s.api(
        &t,
        "POST",
        "/api/bank-transactions?dryRun=true",
        Some(txs),
        &[],
    );
    ok(200, &pre);
    assert_eq!(pre.body_json()["object"].as_array().map(Vec::len), Some(1));
    let got = s.api(&t, "GET", &format!("/api/customers/{cid}"), None, &[]);
    assert_eq!(got.body_json()["version"], 1);
    ok(200, &s.api(&t, "GET", "/api/payments", None, &[]));
    assert_eq!(
        s.api(&t, "GET", "/api/bank-transactions", None, &[])
            .body_json(),
        json!([])
    );
    assert!(s.due().is_empty());
    s.finish()
}

fn syncs_search_and_retry() -> Vector {
    let mut s = Sc::new(
        "syncs_search_and_retry",
        "Section 7: GET /api/syncs newest first with its filters and paging, bad queries (400), a quickbooks target failed by a structured source error, POST /api/syncs/{id}/retry (202, same Idempotency-Key, fresh budget), refusals (422 /apps/0, 409 nothing-to-retry).",
    );
    let t = s.tenant("acme.example.com");
    s.connect(&t, "quickbooks", "accounting");
    s.connect(&t, "hubspot", "crm");
    let push = ("X-Sync-Data", "push");
    let c = s.api(
        &t,
        "POST",
        "/api/customers",
        Some(customer_body()),
        &[push, ("X-Tracking-ID", "crm-42")],
    );
    ok(201, &c);
    let first = c.headers["X-Sync-ID"].clone();
    s.at(1000);
    let b = s.api(
        &t,
        "POST",
        "/api/customers",
        Some(json!({"name": "Beta GmbH"})),
        &[push, ("X-Sync-Sources", "hubspot")],
    );
    ok(201, &b);
    let second = b.headers["X-Sync-ID"].clone();
    let items = s.due();
    assert_eq!(pushes(&items).len(), 3);
    let mut qb_key = String::new();
    for i in pushes(&items) {
        let sync = body(i)["syncId"].as_str().unwrap().to_string();
        if i.request.url.contains("quickbooks") {
            qb_key = i.request.headers["Idempotency-Key"].clone();
            s.report(
                &i.id,
                422,
                &[],
                r#"{"error":{"code":"DUPLICATE_NAME","message":"Another customer is named Acme Ltd","field":"name"}}"#,
            );
        } else {
            let id = if sync == first { "HS-1" } else { "HS-2" };
            s.report(&i.id, 201, &[], &format!(r#"{{"id":"{id}"}}"#));
        }
    }
    s.at(2000);
    let listed = s.api(&t, "GET", "/api/syncs", None, &[]);
    ok(200, &listed);
    let order: Vec<Value> = listed
        .body_json()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].clone())
        .collect();
    assert_eq!(order, vec![json!(second), json!(first)]);
    for q in [
        "status=partially_failed",
        "trackingId=crm-42",
        "app=quickbooks",
        "objectType=customer&pageSize=1",
        "objectType=customer&pageSize=1&page=2",
        "since=2026-09-21T14:13:20.500Z",
        "until=2026-09-21T16:13:20%2B02:00",
    ] {
        ok(
            200,
            &s.api(&t, "GET", &format!("/api/syncs?{q}"), None, &[]),
        );
    }
    let f = s.api(&t, "GET", "/api/syncs?status=partially_failed", None, &[]);
    let v = f.body_json();
    assert_eq!(v[0]["targets"][0]["error"]["code"], "DUPLICATE_NAME");
    for q in [
        "state=failed",
        "status=broken",
        "since=not-a-time",
        "since=2026-09-21T14:13:21Z&until=2026-09-21T14:13:20Z",
        "pageSize=500",
    ] {
        ok(
            400,
            &s.api(&t, "GET", &format!("/api/syncs?{q}"), None, &[]),
        );
    }
    let retry = format!("/api/syncs/{first}/retry");
    ok(
        422,
        &s.api(&t, "POST", &retry, Some(json!({"apps": ["xero"]})), &[]),
    );
    ok(
        409,
        &s.api(&t, "POST", &format!("/api/syncs/{second}/retry"), None, &[]),
    );
    let r = s.api(
        &t,
        "POST",
        &retry,
        Some(json!({"apps": ["quickbooks"]})),
        &[],
    );
    ok(202, &r);
    assert_eq!(r.body_json()["targets"][0]["status"], "pending");
    let items = s.due();
    let again = pushes(&items);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].request.headers["Idempotency-Key"], qb_key);
    let id = again[0].id.clone();
    s.report(&id, 503, &[], "");
    let next = s.next_push();
    s.report(&next, 201, &[], r#"{"id":"QB-7"}"#);
    let done = s.api(&t, "GET", &format!("/api/syncs/{first}"), None, &[]);
    assert_eq!(done.body_json()["status"], "succeeded");
    ok(409, &s.api(&t, "POST", &retry, None, &[]));
    s.finish()
}

fn scenarios() -> Vec<Vector> {
    vec![
        admin_and_auth(),
        customer_crud_and_errors(),
        invoice_push_two_targets(),
        sources_and_headers(),
        idempotency(),
        expense_with_new_vendor(),
        expense_vendor_push_fails(),
        payments_and_totals(),
        bank_preload_and_accounts(),
        webhook_retries_and_manual_retry(),
        webhook_management(),
        ordered_updates_behind_backoff(),
        partial_failure(),
        meta(),
        delete_pushed(),
        dry_run(),
        syncs_search_and_retry(),
    ]
}

fn read_dir() -> Vec<Vector> {
    let mut paths: Vec<_> = std::fs::read_dir(vectors_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        })
        .collect()
}

#[test]
fn vectors_match_scenarios_and_replay() {
    let fresh = scenarios();
    if std::env::var_os("WRITESYNC_REGENERATE_VECTORS").is_some() {
        for v in &fresh {
            let path = vectors_dir().join(format!("{}.json", v.name));
            std::fs::write(path, serde_json::to_string_pretty(v).unwrap() + "\n").unwrap();
        }
    }
    let stored = read_dir();
    for v in &fresh {
        let s = stored
            .iter()
            .find(|s| s.name == v.name)
            .unwrap_or_else(|| panic!("{} is not in tests/vectors (regenerate)", v.name));
        assert!(
            s == v,
            "{} differs from its scenario: regenerate with WRITESYNC_REGENERATE_VECTORS=1",
            v.name
        );
    }
    assert_eq!(
        stored.len(),
        fresh.len(),
        "tests/vectors has files no scenario makes"
    );
    for v in &stored {
        replay(v).unwrap();
    }
}

#[test]
fn vectors_cover_every_status_of_the_contract() {
    let mut seen = std::collections::BTreeSet::new();
    for v in read_dir() {
        for s in v.steps {
            if let Step::Request { expect, .. } = s {
                seen.insert(expect["status"].as_u64().unwrap());
            }
        }
    }
    for code in [
        200, 201, 202, 204, 400, 401, 403, 404, 405, 409, 412, 413, 415, 422,
    ] {
        assert!(seen.contains(&code), "no vector answers {code}");
    }
}

#[test]
fn a_tampered_vector_fails_replay() {
    let mut v = read_dir()
        .into_iter()
        .find(|v| v.name == "invoice_push_two_targets")
        .unwrap();
    let last = v
        .steps
        .iter_mut()
        .rev()
        .find(|s| matches!(s, Step::Request { .. }));
    if let Some(Step::Request { expect, .. }) = last {
        expect["status"] = json!(299);
    }
    assert!(replay(&v).is_err());
}
