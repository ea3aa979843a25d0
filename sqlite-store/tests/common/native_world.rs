//! A native engine on a temporary file with one account (write mode as asked), an API key
//! and connections: the world the NativeEngine tests (sqlite-store/tests/native.rs) and the
//! host driver's tests over it (host/tests/native.rs) start from.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use writesync_core::cdm::ObjectType;
use writesync_core::{ApiRequest, ApiResponse, EngineConfig, Outcome};
use writesync_sqlite::{Credentials, NativeEngine, WriteOptions};

use super::TempDb;

pub const ADMIN: &str = "admin-token-for-tests";
pub const T0: i64 = 1_790_000_000_000;
pub const HOUR: i64 = 3_600_000;

pub struct World {
    pub _db: TempDb,
    pub app: NativeEngine,
    pub creds: Credentials,
    pub account: String,
}

pub fn admin(app: &mut NativeEngine, method: &str, path: &str, body: Option<Value>) -> ApiResponse {
    let mut r = ApiRequest::new(method, path).header("Authorization", &format!("Bearer {ADMIN}"));
    if let Some(b) = body {
        r = r.json(&b);
    }
    app.handle(&r, T0)
}

pub fn world(write_enabled: bool) -> World {
    let db = TempDb::new("native");
    let config = EngineConfig::new([3; 32]).with_admin_token(ADMIN);
    let mut app = NativeEngine::open(db.path(), config).unwrap();
    let a = admin(
        &mut app,
        "POST",
        "/admin/accounts",
        Some(json!({"domain": "acme.example.com", "writeEnabled": write_enabled})),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    let account = a.body_json()["id"].as_str().unwrap().to_string();
    let k = admin(
        &mut app,
        "POST",
        &format!("/admin/accounts/{account}/api-keys"),
        Some(json!({"scopes": ["api.read", "api.write"]})),
    );
    let creds = Credentials::from_api_key_answer(&k.body_json()).unwrap();
    World {
        _db: db,
        app,
        creds,
        account,
    }
}

impl World {
    pub fn connect(&mut self, app: &str, kind: &str) {
        let r = admin(
            &mut self.app,
            "POST",
            &format!("/admin/accounts/{}/connections", self.account),
            Some(
                json!({"app": app, "type": kind, "pushUrl": format!("https://{app}.example.com/push")}),
            ),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }
    /// A customer written with `options` at `now`.
    pub fn customer(&mut self, options: &WriteOptions, now: i64) -> writesync_sqlite::WriteResult {
        self.app
            .write(
                &self.creds,
                ObjectType::Customer,
                &json!({"name": "Acme Ltd"}),
                options,
                now,
            )
            .unwrap()
    }
}

/// A source's answer with `status` and `body`.
pub fn answer(status: u16, body: &str) -> Outcome {
    Outcome::Response {
        status,
        headers: BTreeMap::new(),
        body: body.to_string(),
    }
}

/// Write options that push.
pub fn push() -> WriteOptions {
    WriteOptions {
        push: true,
        ..Default::default()
    }
}
