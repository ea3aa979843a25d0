//! Test harness: an engine over a MemoryStore with helpers for the admin API.

// Helpers shared by the test binaries through `mod common;`: `pub` is their API there.
#![allow(unreachable_pub)]
#![allow(dead_code, missing_docs)]

use serde_json::{json, Value};
use writesync_core::util::crypto::basic_auth_header;
use writesync_core::{
    ApiRequest, ApiResponse, Engine, EngineConfig, MemoryStore, Outcome, WorkItem,
};

pub const ADMIN: &str = "admin-token-for-tests";
pub const T0: i64 = 1_790_000_000_000;

pub struct World {
    pub engine: Engine,
    pub store: MemoryStore,
    pub now: i64,
}

pub struct Tenant {
    pub id: String,
    pub auth: String,
}

impl World {
    pub fn new() -> World {
        World::with_config(EngineConfig::zero_seed_for_tests())
    }
    pub fn with_config(config: EngineConfig) -> World {
        let config = config.with_admin_token(ADMIN).with_seed([7; 32]);
        World {
            engine: Engine::new(config),
            store: MemoryStore::new(),
            now: T0,
        }
    }
    pub fn send(&mut self, req: ApiRequest) -> ApiResponse {
        self.engine.handle_with(&req, self.now, &mut self.store)
    }
    pub fn admin(&mut self, method: &str, path: &str, body: Option<Value>) -> ApiResponse {
        let mut r =
            ApiRequest::new(method, path).header("Authorization", &format!("Bearer {ADMIN}"));
        if let Some(b) = body {
            r = r.json(&b);
        }
        self.send(r)
    }
    pub fn tenant(&mut self, domain: &str, write: bool) -> Tenant {
        let a = self.admin(
            "POST",
            "/admin/accounts",
            Some(json!({"domain": domain, "writeEnabled": write})),
        );
        assert_eq!(a.status, 201, "{}", a.body);
        let id = a.body_json()["id"].as_str().unwrap().to_string();
        let k = self.admin(
            "POST",
            &format!("/admin/accounts/{id}/api-keys"),
            Some(json!({"scopes": ["api.read", "api.write"]})),
        );
        assert_eq!(k.status, 201, "{}", k.body);
        let kb = k.body_json();
        let auth = basic_auth_header(kb["key"].as_str().unwrap(), kb["secret"].as_str().unwrap());
        Tenant { id, auth }
    }
    pub fn connect(&mut self, t: &Tenant, app: &str, kind: &str) -> String {
        let r = self.admin(
            "POST",
            &format!("/admin/accounts/{}/connections", t.id),
            Some(json!({"app": app, "type": kind, "pushUrl": format!("https://{app}.example.com/push")})),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        r.body_json()["id"].as_str().unwrap().to_string()
    }
    pub fn webhook(&mut self, t: &Tenant, events: Value) -> String {
        let r = self.admin(
            "POST",
            &format!("/admin/accounts/{}/webhooks", t.id),
            Some(
                json!({"url": "https://hooks.example.com/in", "events": events,
                        "username": "hook", "password": "pw",
                        "signingSecret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
            ),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        r.body_json()["id"].as_str().unwrap().to_string()
    }
    pub fn api(
        &mut self,
        t: &Tenant,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> ApiResponse {
        self.api_h(t, method, path, body, &[])
    }
    pub fn api_h(
        &mut self,
        t: &Tenant,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> ApiResponse {
        let mut r = ApiRequest::new(method, path).header("Authorization", &t.auth);
        if let Some(b) = body {
            r = r.json(&b);
        }
        for (k, v) in headers {
            r = r.header(k, v);
        }
        self.send(r)
    }
    pub fn due(&mut self) -> Vec<WorkItem> {
        self.engine
            .due_with(self.now, 100, &mut self.store)
            .unwrap()
    }
    pub fn report(&mut self, id: &str, outcome: Outcome) {
        self.engine
            .report_with(id, &outcome, self.now, &mut self.store)
            .unwrap()
    }
    /// Jump the virtual clock to the next deadline (if any); returns whether it moved.
    pub fn advance(&mut self) -> bool {
        match self.engine.next_deadline(&self.store).unwrap() {
            Some(t) if t > self.now => {
                self.now = t;
                true
            }
            Some(_) => true,
            None => false,
        }
    }
}

pub fn status(code: u16, body: &str) -> Outcome {
    Outcome::Response {
        status: code,
        headers: Default::default(),
        body: body.to_string(),
    }
}

pub fn customer() -> Value {
    json!({"name": "Acme Ltd", "email": "ap@acme.example.com"})
}

pub fn invoice(customer_id: &str, number: &str) -> Value {
    json!({"number": number, "customerId": customer_id, "issueDate": "2026-11-01",
           "dueDate": "2026-11-30", "currency": "EUR",
           "lines": [{"description": "Consulting", "quantity": 2, "unitAmount": 15000, "taxAmount": 6300}]})
}
