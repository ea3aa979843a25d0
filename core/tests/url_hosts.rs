//! Host names of push, provider and webhook URLs must be ASCII: the URL parser is built without
//! Unicode IDNA data (the `idna_adapter` pin in the workspace Cargo.toml), the same in the
//! native and the wasm builds. A non-ASCII name is a `422` field error; its xn-- form is fine.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::{json, Value};

const MESSAGE: &str = "not a valid URL: the host is not a valid ASCII domain name (a non-ASCII \
     name must be written in its xn-- Punycode form, e.g. xn--bcher-kva.example for bücher.example)";

fn assert_one_error(status: u16, body: &Value, pointer: &str) {
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["type"], "/problems/validation-failed", "{body}");
    assert_eq!(
        body["errors"],
        json!([{"pointer": pointer, "code": "invalid_value", "message": MESSAGE}]),
        "{body}"
    );
}

#[test]
fn non_ascii_hosts_are_refused_at_registration() {
    let mut w = World::new();
    let t = w.tenant("acme.example.com", true);
    let connections = format!("/admin/accounts/{}/connections", t.id);
    let webhooks = format!("/admin/accounts/{}/webhooks", t.id);
    for url in [
        "https://bücher.example/push",
        "https://b%C3%BCcher.example/push",
    ] {
        let r = w.admin(
            "POST",
            &connections,
            Some(json!({"app": "quickbooks", "type": "accounting", "pushUrl": url})),
        );
        assert_one_error(r.status, &r.body_json(), "/pushUrl");
        let r = w.admin(
            "POST",
            &connections,
            Some(
                json!({"app": "quickbooks", "type": "accounting", "connector": "quickbooks",
                        "baseUrl": url, "settings": {"realmId": "1"}}),
            ),
        );
        assert_one_error(r.status, &r.body_json(), "/baseUrl");
        let r = w.admin(
            "POST",
            &webhooks,
            Some(json!({"url": url, "events": ["*"]})),
        );
        assert_one_error(r.status, &r.body_json(), "/url");
    }
    // Nothing was stored.
    let r = w.admin("GET", &connections, None);
    assert_eq!(r.body_json(), json!([]), "{}", r.body);
}

#[test]
fn punycode_hosts_are_accepted() {
    let mut w = World::new();
    let t = w.tenant("acme.example.com", true);
    let r = w.admin(
        "POST",
        &format!("/admin/accounts/{}/connections", t.id),
        Some(json!({"app": "quickbooks", "type": "accounting",
                    "pushUrl": "https://XN--BCHER-KVA.example/push"})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.body_json()["pushUrl"],
        "https://xn--bcher-kva.example/push"
    );
    let r = w.admin(
        "POST",
        &format!("/admin/accounts/{}/webhooks", t.id),
        Some(json!({"url": "https://xn--bcher-kva.example/in", "events": ["*"]})),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body_json()["url"], "https://xn--bcher-kva.example/in");
}
