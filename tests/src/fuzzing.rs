//! The bodies of the fuzz targets (`fuzz/`), kept here so that every input saved under
//! `fuzz/crashers/<target>/` (crashes and the minimized corpus) is replayed by an ordinary
//! `cargo test` (`tests/tests/fuzz_replay.rs`).
//!
//! Each function takes arbitrary bytes and panics only when an invariant breaks: panicking is
//! how a fuzz target reports a finding, so unwrap and expect are allowed here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use serde_json::{json, Value};
use writesync_core::util::crypto::basic_auth_header;
use writesync_core::{ApiRequest, Engine, EngineConfig, MemoryStore, Outcome, WorkKind};

const NOW: i64 = 1_790_000_000_000;
const ADMIN: &str = "fuzz-admin";

/// An engine and store with one write-enabled tenant, two connections, a webhook, a customer.
pub struct Fixture {
    /// The engine.
    pub engine: Engine,
    /// Its store.
    pub store: MemoryStore,
    /// Basic credentials of the tenant's key.
    pub auth: String,
    /// The account id.
    pub account: String,
    /// A stored customer's id.
    pub customer: String,
}

impl Fixture {
    /// Build the fixture (deterministic).
    pub fn new() -> Fixture {
        let mut engine = Engine::new(EngineConfig::new([9; 32]).with_admin_token(ADMIN));
        let mut store = MemoryStore::new();
        let admin = |e: &mut Engine, s: &mut MemoryStore, m: &str, p: &str, b: Value| {
            let r = ApiRequest::new(m, p)
                .header("Authorization", &format!("Bearer {ADMIN}"))
                .json(&b);
            e.handle_with(&r, NOW, s).body_json()
        };
        let a = admin(
            &mut engine,
            &mut store,
            "POST",
            "/admin/accounts",
            json!({"domain": "fuzz.example.com", "writeEnabled": true}),
        );
        let account = a["id"].as_str().unwrap_or_default().to_string();
        let k = admin(
            &mut engine,
            &mut store,
            "POST",
            &format!("/admin/accounts/{account}/api-keys"),
            json!({"scopes": ["api.read", "api.write"]}),
        );
        for (app, kind) in [("quickbooks", "accounting"), ("hubspot", "crm")] {
            admin(
                &mut engine,
                &mut store,
                "POST",
                &format!("/admin/accounts/{account}/connections"),
                json!({"app": app, "type": kind, "pushUrl": format!("https://{app}.example.com/push")}),
            );
        }
        admin(
            &mut engine,
            &mut store,
            "POST",
            &format!("/admin/accounts/{account}/webhooks"),
            json!({"url": "https://hooks.example.com/in", "events": ["*"]}),
        );
        let auth = basic_auth_header(
            k["key"].as_str().unwrap_or_default(),
            k["secret"].as_str().unwrap_or_default(),
        );
        let c = engine
            .handle_with(
                &ApiRequest::new("POST", "/api/customers")
                    .header("Authorization", &auth)
                    .json(&json!({"name": "Acme"})),
                NOW,
                &mut store,
            )
            .body_json();
        let customer = c["id"].as_str().unwrap_or_default().to_string();
        Fixture {
            engine,
            store,
            auth,
            account,
            customer,
        }
    }
}

impl Fixture {
    /// A copy of a fixture built once per process (building one takes about a millisecond,
    /// which would dominate a fuzz run): the store is cloned, the engine rebuilt from the same
    /// configuration.
    pub fn shared() -> Fixture {
        static ONCE: std::sync::OnceLock<(MemoryStore, String, String, String)> =
            std::sync::OnceLock::new();
        let (store, auth, account, customer) = ONCE.get_or_init(|| {
            let f = Fixture::new();
            (f.store, f.auth, f.account, f.customer)
        });
        Fixture {
            engine: Engine::new(EngineConfig::new([10; 32]).with_admin_token(ADMIN)),
            store: store.clone(),
            auth: auth.clone(),
            account: account.clone(),
            customer: customer.clone(),
        }
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Fixture::new()
    }
}

/// An arbitrary request aimed at the engine's routes.
#[derive(Debug, Arbitrary)]
struct FuzzRequest {
    method: u8,
    path: Vec<String>,
    query: Option<String>,
    auth: u8,
    headers: Vec<(u8, String)>,
    content_type: u8,
    body: FuzzBody,
}

#[derive(Debug, Arbitrary)]
enum FuzzBody {
    None,
    Raw(String),
    Json(FuzzJson),
}

/// JSON built from the CDM's own field names, so that the validators are reached.
#[derive(Debug, Arbitrary)]
enum FuzzJson {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Field(u8),
    Array(Vec<FuzzJson>),
    Object(Vec<(u8, FuzzJson)>),
}

const FIELDS: &[&str] = &[
    "name",
    "email",
    "phone",
    "contactName",
    "billingAddress",
    "line1",
    "country",
    "code",
    "type",
    "active",
    "number",
    "customerId",
    "issueDate",
    "dueDate",
    "currency",
    "lines",
    "description",
    "quantity",
    "unitAmount",
    "accountId",
    "taxAmount",
    "total",
    "amountPaid",
    "balance",
    "status",
    "amount",
    "date",
    "reference",
    "vendorId",
    "vendor",
    "bankAccount",
    "externalId",
    "memo",
    "id",
    "version",
    "domain",
    "writeEnabled",
    "scopes",
    "app",
    "pushUrl",
    "objects",
    "url",
    "events",
    "username",
    "password",
    "signingSecret",
];

const VALUES: &[&str] = &[
    "2026-11-01",
    "2026-02-30",
    "EUR",
    "usd",
    "void",
    "open",
    "income",
    "accounting",
    "crm",
    "api.write",
    "*",
    "https://x.example.com/h",
    "http://127.0.0.1/",
    "a@b.co",
    "INV-1",
    "customer",
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
];

impl FuzzJson {
    fn to_value(&self, depth: usize) -> Value {
        if depth > 12 {
            return Value::Null;
        }
        match self {
            FuzzJson::Null => Value::Null,
            FuzzJson::Bool(b) => Value::Bool(*b),
            FuzzJson::Int(i) => json!(i),
            FuzzJson::Float(f) => {
                serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
            }
            FuzzJson::Str(s) => Value::String(s.clone()),
            FuzzJson::Field(i) => Value::String(VALUES[*i as usize % VALUES.len()].to_string()),
            FuzzJson::Array(a) => Value::Array(a.iter().map(|v| v.to_value(depth + 1)).collect()),
            FuzzJson::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| {
                        (
                            FIELDS[*k as usize % FIELDS.len()].to_string(),
                            v.to_value(depth + 1),
                        )
                    })
                    .collect(),
            ),
        }
    }
}

const SEGMENTS: &[&str] = &[
    "api",
    "admin",
    "accounts",
    "customers",
    "vendors",
    "invoices",
    "payments",
    "expenses",
    "bank-transactions",
    "syncs",
    "api-keys",
    "connections",
    "webhooks",
    "deliveries",
    "retry",
    "healthz",
    "openapi.json",
];

const HEADERS: &[&str] = &[
    "X-Sync-Data",
    "X-Sync-Sources",
    "X-Tracking-ID",
    "Idempotency-Key",
    "If-Match",
    "Content-Type",
];

fn check_answer(r: &writesync_core::ApiResponse) {
    assert!((200..600).contains(&r.status), "status {}", r.status);
    assert!(r.status != 500, "internal error: {}", r.body);
    if r.status >= 400 {
        let v: Value = serde_json::from_str(&r.body).expect("problem body is JSON");
        assert_eq!(v["status"], json!(r.status));
        assert!(v["type"].is_string() && v["title"].is_string() && v["detail"].is_string());
    }
}

/// Target `request`: any request, authenticated or not, on a populated store. The answer is
/// well formed, never `500`, and a failed write changes nothing.
pub fn fuzz_request(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(req) = FuzzRequest::arbitrary(&mut u) else {
        return;
    };
    let mut fx = Fixture::shared();
    let method = [
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "BREW",
    ][req.method as usize % 8];
    let mut path = String::new();
    for (i, seg) in req.path.iter().take(8).enumerate() {
        path.push('/');
        // By the first character, not the first byte: a `String` never starts with a byte
        // from 128 to 169 (UTF-8 continuation bytes and 0xC0/0xC1), so a byte test would make
        // the fixture's real ids unreachable.
        match seg.chars().next().map(u32::from) {
            Some(c) if c < 128 => path.push_str(SEGMENTS[c as usize % SEGMENTS.len()]),
            Some(c) if c < 160 && i > 0 => path.push_str(&fx.customer),
            Some(c) if c < 170 => path.push_str(&fx.account),
            _ => path.push_str(seg),
        }
    }
    if let Some(q) = &req.query {
        path.push('?');
        path.push_str(q);
    }
    let mut r = ApiRequest::new(method, &path);
    match req.auth % 4 {
        0 => {}
        1 => r = r.header("Authorization", &fx.auth),
        2 => r = r.header("Authorization", &format!("Bearer {ADMIN}")),
        _ => r = r.header("Authorization", "Basic !!!"),
    }
    for (k, v) in req.headers.iter().take(8) {
        r = r.header(HEADERS[*k as usize % HEADERS.len()], v);
    }
    match req.content_type % 3 {
        0 => r = r.header("Content-Type", "application/json"),
        1 => r = r.header("Content-Type", "application/merge-patch+json"),
        _ => {}
    }
    r.body = match &req.body {
        FuzzBody::None => None,
        FuzzBody::Raw(s) => Some(s.clone()),
        FuzzBody::Json(j) => Some(j.to_value(0).to_string()),
    };
    let before: Vec<(String, String)> = fx
        .store
        .entries()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let answer = fx.engine.handle_with(&r, NOW + 1, &mut fx.store);
    check_answer(&answer);
    if !(200..300).contains(&answer.status) {
        let after: Vec<(String, String)> = fx
            .store
            .entries()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert!(
            before == after,
            "a {} answer changed the store",
            answer.status
        );
    }
}

/// Target `validators`: every validator on arbitrary JSON; never a panic, and a valid invoice's
/// total is the sum of its lines.
pub fn fuzz_validators(data: &[u8]) {
    use writesync_core::validate::*;
    struct NoRefs;
    impl writesync_core::cdm::RefLookup for NoRefs {
        fn customer_exists(&self, id: &str) -> bool {
            id == "c1"
        }
        fn vendor_exists(&self, id: &str) -> bool {
            id == "v1"
        }
        fn account_exists(&self, id: &str) -> bool {
            id == "a1"
        }
        fn invoice_number_owner(&self, n: &str) -> Option<String> {
            (n == "INV-1").then(|| "i1".into())
        }
        fn account_code_owner(&self, c: &str) -> Option<String> {
            (c == "4000").then(|| "a1".into())
        }
        fn bank_external_id_owner(&self, _: &str, x: &str) -> Option<String> {
            (x == "bt-1").then(|| "b1".into())
        }
    }
    let mut u = Unstructured::new(data);
    let value = match FuzzJson::arbitrary(&mut u) {
        Ok(j) => j.to_value(0),
        Err(_) => return,
    };
    let refs = NoRefs;
    let _ = validate_customer(&value, &refs, None);
    let _ = validate_vendor(&value, "");
    let _ = validate_account(&value, &refs, Some("a1"));
    if let Ok(inv) = validate_invoice(&value, &refs, None, 0) {
        let sum = inv
            .lines
            .iter()
            .try_fold(0i64, |a, l| a.checked_add(l.amount));
        assert_eq!(sum, Some(inv.total));
        assert_eq!(inv.balance, inv.total);
        let _ = validate_payment(&value, &inv);
    }
    if let Ok((e, _)) = validate_expense(&value, &refs) {
        let sum = e
            .lines
            .iter()
            .try_fold(0i64, |a, l| a.checked_add(l.amount));
        assert_eq!(sum, Some(e.total));
    }
    let _ = validate_bank_transactions(&value, &refs, 50);
    let mut target = value.clone();
    merge_patch(&mut target, &value);
    strip_server_fields(&mut target);
}

/// The delivery id of a webhook work item id (`d.<delivery>.<attempt>`).
fn delivery_of(work_id: &str) -> String {
    work_id.split('.').nth(1).unwrap_or_default().to_string()
}

/// One input of the engine-sequence target.
#[derive(Debug, Arbitrary)]
enum Input {
    WriteCustomer {
        push: bool,
    },
    UpdateCustomer,
    WriteInvoice {
        lines: u8,
    },
    WriteExpenseNewVendor,
    Due,
    Report {
        which: u8,
        answer: u8,
        retry_after: Option<u8>,
    },
    Tick {
        seconds: u16,
    },
}

/// Target `engine`: arbitrary sequences of writes, claims, outcomes and ticks. Invariants: no
/// panic, no `500`, webhook attempts never above 4 per budget, and once every peer answers
/// success every sync reaches exactly one final status and nothing stays owed.
pub fn fuzz_engine(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(inputs) = Vec::<Input>::arbitrary(&mut u) else {
        return;
    };
    let mut fx = Fixture::shared();
    let mut now = NOW;
    let mut out: Vec<writesync_core::WorkItem> = Vec::new();
    let mut syncs: Vec<String> = Vec::new();
    let mut attempts: BTreeMap<String, usize> = BTreeMap::new();
    let auth = fx.auth.clone();
    let customer = fx.customer.clone();
    let write = |fx: &mut Fixture, now: i64, m: &str, p: &str, b: Value, push: bool| {
        let mut r = ApiRequest::new(m, p)
            .header("Authorization", &auth)
            .json(&b);
        if push {
            r = r.header("X-Sync-Data", "push");
        }
        let a = fx.engine.handle_with(&r, now, &mut fx.store);
        check_answer(&a);
        a
    };
    for (n, input) in inputs.iter().take(64).enumerate() {
        match input {
            Input::WriteCustomer { push } => {
                let a = write(
                    &mut fx,
                    now,
                    "POST",
                    "/api/customers",
                    json!({"name": format!("C{n}")}),
                    *push,
                );
                syncs.extend(a.headers.get("X-Sync-ID").cloned());
            }
            Input::UpdateCustomer => {
                let a = write(
                    &mut fx,
                    now,
                    "PATCH",
                    &format!("/api/customers/{customer}"),
                    json!({"phone": format!("{n}")}),
                    true,
                );
                syncs.extend(a.headers.get("X-Sync-ID").cloned());
            }
            Input::WriteInvoice { lines } => {
                let lines: Vec<Value> = (0..(*lines % 4 + 1)).map(|i| json!({"description": "x", "quantity": 1.5, "unitAmount": 100 * i64::from(i)})).collect();
                let a = write(
                    &mut fx,
                    now,
                    "POST",
                    "/api/invoices",
                    json!({"number": format!("INV-{n}"), "customerId": customer,
                    "issueDate": "2026-11-01", "dueDate": "2026-11-02", "currency": "EUR", "lines": lines}),
                    true,
                );
                syncs.extend(a.headers.get("X-Sync-ID").cloned());
            }
            Input::WriteExpenseNewVendor => {
                let a = write(
                    &mut fx,
                    now,
                    "POST",
                    "/api/expenses",
                    json!({"vendor": {"name": format!("V{n}")}, "date": "2026-11-01",
                    "currency": "EUR", "lines": [{"description": "x", "amount": 5}]}),
                    true,
                );
                syncs.extend(a.headers.get("X-Sync-ID").cloned());
            }
            Input::Due => {
                let items = fx.engine.due_with(now, 16, &mut fx.store).expect("due");
                for it in &items {
                    if it.kind == WorkKind::Webhook {
                        let c = attempts.entry(delivery_of(&it.id)).or_default();
                        *c += 1;
                    }
                }
                out.extend(items);
            }
            Input::Report {
                which,
                answer,
                retry_after,
            } => {
                if out.is_empty() {
                    continue;
                }
                let it = out.remove(*which as usize % out.len());
                let mut headers = std::collections::BTreeMap::new();
                if let Some(s) = retry_after {
                    headers.insert("Retry-After".to_string(), s.to_string());
                }
                let outcome = match answer % 6 {
                    0 | 1 => Outcome::Response {
                        status: 201,
                        headers,
                        body: r#"{"id":"R"}"#.into(),
                    },
                    2 => Outcome::Response {
                        status: 503,
                        headers,
                        body: String::new(),
                    },
                    3 => Outcome::Response {
                        status: 400,
                        headers,
                        body: "no".into(),
                    },
                    4 => Outcome::Error {
                        error: "reset".into(),
                        permanent: false,
                    },
                    _ => Outcome::Error {
                        error: "refused".into(),
                        permanent: true,
                    },
                };
                // A report may be stale (lease expired and re-issued): an error, never a panic.
                let _ = fx.engine.report_with(&it.id, &outcome, now, &mut fx.store);
            }
            Input::Tick { seconds } => now += i64::from(*seconds) * 1000,
        }
    }
    // Settle: every peer answers success from now on.
    for _ in 0..500 {
        let items = fx.engine.due_with(now, 64, &mut fx.store).expect("due");
        for it in &items {
            if it.kind == WorkKind::Webhook {
                *attempts.entry(delivery_of(&it.id)).or_default() += 1;
            }
            let ok = Outcome::Response {
                status: 200,
                headers: Default::default(),
                body: "{}".into(),
            };
            fx.engine
                .report_with(&it.id, &ok, now, &mut fx.store)
                .expect("report");
        }
        match fx.engine.next_deadline(&fx.store).expect("deadline") {
            Some(t) => now = now.max(t),
            None => break,
        }
    }
    assert_eq!(
        fx.engine.next_deadline(&fx.store).expect("deadline"),
        None,
        "work still owed"
    );
    for (id, n) in &attempts {
        assert!(*n <= 4, "delivery {id} attempted {n} times");
    }
    for s in &syncs {
        let r =
            ApiRequest::new("GET", &format!("/api/syncs/{s}")).header("Authorization", &fx.auth);
        let a = fx.engine.handle_with(&r, now, &mut fx.store).body_json();
        let st = a["status"].as_str().unwrap_or("");
        assert!(
            ["succeeded", "partially_failed", "failed", "no_targets"].contains(&st),
            "sync {s} is {st}"
        );
    }
}
