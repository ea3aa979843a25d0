//! Security checks of the running server: no secret ever appears in a log line (a debug-level
//! run that creates keys, webhooks with passwords and signing secrets, sends Basic auth, right
//! and wrong, and makes pushes and deliveries fail), and push and webhook URLs are validated
//! at registration (schemes, credentials, every spelling of a refused address), without any
//! traffic.
//!
//! Tenant isolation and hashed secrets at rest are tested in `tests/tests/security.rs`; the
//! info-level log check of one happy path is in `cli.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::time::Duration;

use base64::Engine as _;
use common::*;
use serde_json::{json, Value};
use writesync_core::util::crypto::basic_auth_header;
use writesync_demo::fake::{FakeServer, Reply};

const ENV_ADMIN: &str = "env-admin-token-ZXCVBNM-0987654321";
const HOOK_PASSWORD: &str = "hook-pass-QWERTY-112233";
const SIGNING_KEY_B64: &str = "c2lnbmluZy1rZXktZm9yLXdyaXRlc3luYy10ZXN0cw==";
const PUSH_QUERY_TOKEN: &str = "push-query-token-ASDFGH-445566";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn no_secret_in_any_log_line_at_debug_level() {
    let qb = FakeServer::source("quickbooks").unwrap();
    let hooks = FakeServer::webhook_receiver("hooks").unwrap();
    let failing_hooks = FakeServer::webhook_receiver("failing").unwrap();
    failing_hooks.set_always(Some(Reply {
        status: 500,
        headers: vec![],
        body: format!("I got password {HOOK_PASSWORD}"),
    }));
    qb.queue(vec![
        Reply::status(503),
        Reply::status(429).with_header("Retry-After", "0"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<&str> = [&FAST[..], &ALLOW_LOOPBACK[..]].concat();
    args.extend_from_slice(&["--log-level", "debug"]);
    // The admin token from the environment this time.
    let mut srv = Server::spawn(
        &dir.path().join("t.db"),
        &args,
        &[("WRITESYNC_ADMIN_TOKEN", ENV_ADMIN)],
    );
    let c = Client::new(&srv);
    let admin = |method: &str, path: &str, body: Option<Value>| {
        let text = body.map(|b| b.to_string());
        c.call(
            method,
            path,
            &[("Authorization", &format!("Bearer {ENV_ADMIN}"))],
            text.as_deref(),
        )
    };
    let acc = admin(
        "POST",
        "/admin/accounts",
        Some(json!({"domain": "acme.example.com", "writeEnabled": true})),
    );
    assert_eq!(acc.status, 201);
    let aid = acc.json()["id"].as_str().unwrap().to_string();
    let mut secrets: Vec<String> = vec![
        ENV_ADMIN.into(),
        HOOK_PASSWORD.into(),
        SIGNING_KEY_B64.into(),
        PUSH_QUERY_TOKEN.into(),
    ];
    // Two keys (one deleted later).
    let mut keys = Vec::new();
    for _ in 0..2 {
        let k = admin(
            "POST",
            &format!("/admin/accounts/{aid}/api-keys"),
            Some(json!({"scopes": ["api.read", "api.write"], "name": "ci"})),
        );
        assert_eq!(k.status, 201);
        let kb = k.json();
        let (key, secret) = (
            kb["key"].as_str().unwrap().to_string(),
            kb["secret"].as_str().unwrap().to_string(),
        );
        secrets.push(secret.clone());
        secrets.push(basic_auth_header(&key, &secret));
        secrets.push(b64(&format!("{key}:{secret}")));
        keys.push((key, secret));
    }
    let auth = basic_auth_header(&keys[0].0, &keys[0].1);
    // A connection whose URL carries a token in its query.
    let conn = admin(
        "POST",
        &format!("/admin/accounts/{aid}/connections"),
        Some(json!({"app": "quickbooks", "type": "accounting",
                    "pushUrl": format!("{}?token={PUSH_QUERY_TOKEN}", qb.url("/push"))})),
    );
    assert_eq!(conn.status, 201, "{}", conn.text);
    // Webhooks with Basic credentials and a signing secret; one endpoint fails and echoes.
    for (fake, events) in [
        (&hooks, json!(["*"])),
        (&failing_hooks, json!(["api_push_complete"])),
    ] {
        let w = admin(
            "POST",
            &format!("/admin/accounts/{aid}/webhooks"),
            Some(
                json!({"url": fake.url("/in"), "events": events, "username": "hookuser",
                        "password": HOOK_PASSWORD,
                        "signingSecret": format!("whsec_{SIGNING_KEY_B64}")}),
            ),
        );
        assert_eq!(w.status, 201, "{}", w.text);
    }
    secrets.push(b64(&format!("hookuser:{HOOK_PASSWORD}")));
    // Registrations refused for carrying credentials: the password must not be logged either.
    let cred_pw = "url-password-POIUYT-778899";
    secrets.push(cred_pw.into());
    let r = admin(
        "POST",
        &format!("/admin/accounts/{aid}/webhooks"),
        Some(
            json!({"url": format!("https://user:{cred_pw}@hooks.example.com/in"),
                    "events": ["*"]}),
        ),
    );
    assert_eq!(r.status, 422);
    // Writes with the right key (two pushes: the first meets a 503 and a 429).
    for name in ["Acme", "Beta"] {
        let w = c.call(
            "POST",
            "/api/customers",
            &[("Authorization", &auth), ("X-Sync-Data", "push")],
            Some(&customer(name).to_string()),
        );
        assert_eq!(w.status, 201, "{}", w.text);
    }
    // Wrong credentials of every kind.
    let wrong_secret = "wss_wrong-secret-LKJHGF-665544";
    let guessed_admin = "guessed-admin-MNBVCX-332211";
    secrets.push(wrong_secret.into());
    secrets.push(guessed_admin.into());
    secrets.push(b64(&format!("{}:{wrong_secret}", keys[0].0)));
    for h in [
        basic_auth_header(&keys[0].0, wrong_secret),
        basic_auth_header("wsk_unknown", &keys[0].1),
        format!("Basic {}", b64(&keys[0].1)),
        format!("Bearer {ENV_ADMIN}"),
        format!("Bearer {}", keys[0].1),
        format!("Basic !!{}!!", keys[0].1),
    ] {
        let r = c.call("GET", "/api/customers", &[("Authorization", &h)], None);
        assert_eq!(r.status, 401, "{h}");
    }
    let r = c.call(
        "GET",
        &format!("/admin/accounts/{aid}"),
        &[("Authorization", &format!("Bearer {guessed_admin}"))],
        None,
    );
    assert_eq!(r.status, 401);
    // A secret in a query string, in a refused oversized header, in a 414 target.
    let r = c.call(
        "GET",
        &format!("/api/customers?secret={}", keys[0].1),
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(r.status, 200);
    let r = c.call(
        "GET",
        "/api/customers",
        &[
            ("Authorization", &auth),
            ("X-Secret", &format!("{}{}", keys[0].1, "s".repeat(9000))),
        ],
        None,
    );
    assert_eq!(r.status, 431);
    let r = c.call(
        "GET",
        &format!(
            "/api/customers?secret={}&pad={}",
            keys[0].1,
            "p".repeat(9000)
        ),
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(r.status, 414);
    // A request head cut off by the client (a debug line about the connection), with a
    // credential in it.
    let partial = format!("GET /api/customers HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nX-A");
    let _ = raw(&srv.addr, partial.as_bytes(), Duration::from_millis(200));
    // The second key is deleted, then used.
    let d = admin(
        "DELETE",
        &format!("/admin/accounts/{aid}/api-keys/{}", keys[1].0),
        None,
    );
    assert_eq!(d.status, 204);
    let gone = basic_auth_header(&keys[1].0, &keys[1].1);
    assert_eq!(
        c.call("GET", "/api/customers", &[("Authorization", &gone)], None)
            .status,
        401
    );
    // Wait until every delivery is settled (the failing endpoint's after 4 attempts).
    let hook_list = admin("GET", &format!("/admin/accounts/{aid}/webhooks"), None).json();
    for h in hook_list.as_array().unwrap() {
        let wid = h["id"].as_str().unwrap().to_string();
        poll(DEADLINE, || {
            let l = admin(
                "GET",
                &format!("/admin/accounts/{aid}/webhooks/{wid}/deliveries"),
                None,
            )
            .json();
            let l = l.as_array().unwrap().clone();
            (!l.is_empty() && l.iter().all(|d| d["status"] != "pending")).then_some(())
        });
    }
    assert!(failing_hooks.count() >= 4 && hooks.count() >= 4 && qb.count() >= 3);
    // The deliveries carried the credentials (so they were in the process's hands).
    assert!(hooks.received().iter().all(|r| r.header("authorization")
        == Some(format!("Basic {}", b64(&format!("hookuser:{HOOK_PASSWORD}"))).as_str())));
    // Stop gracefully so that the shutdown lines are in the log too.
    srv.terminate();
    assert!(srv.wait_exit(Duration::from_secs(20)).is_some());
    std::thread::sleep(Duration::from_millis(100));
    let logs = srv.logs();
    let debug_lines = logs
        .iter()
        .filter(|l| l.contains("\"level\":\"debug\""))
        .count();
    println!(
        "{} log lines ({debug_lines} at debug level) checked against {} secrets",
        logs.len(),
        secrets.len()
    );
    assert!(logs.len() > 30, "too few log lines to mean anything");
    for line in &logs {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
        assert!(v["msg"].is_string());
        for s in &secrets {
            assert!(
                !line.contains(s.as_str()),
                "a secret ({s}) appears in: {line}"
            );
        }
        for word in ["Authorization", "Basic ", "Bearer ", "whsec_", "wss_"] {
            assert!(!line.contains(word), "{word} appears in: {line}");
        }
    }
    // The stdout has nothing either (the token came from the environment).
    for line in srv.stdout() {
        for s in &secrets {
            assert!(
                !line.contains(s.as_str()),
                "a secret appears on stdout: {line}"
            );
        }
    }
}

#[test]
fn push_and_webhook_urls_are_validated_at_registration() {
    // No --allow-target-cidr: every restricted range is refused. Nothing listens on and
    // nothing is sent to any of these addresses: registration only parses.
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("t.db"), &[]);
    let c = Client::new(&srv);
    let t = c.tenant("acme.example.com");
    let refused: Vec<Value> = [
        // Not http(s), not a URL, no host.
        "ftp://files.example.com/x",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "gopher://example.com/",
        "data:text/plain,hi",
        "not a url",
        "",
        "http://",
        "//example.com/x",
        "http://exa mple.com/",
        "http://example.com\r\nX-Injected: 1/",
        // Credentials in the URL.
        "https://user:pw@hooks.example.com/in",
        "https://user@hooks.example.com/in",
        // Loopback, every spelling.
        "http://127.0.0.1/x",
        "http://127.0.0.1:8080/x",
        "http://127.1/x",
        "http://2130706433/x",
        "http://0x7f000001/x",
        "http://0x7f.0.0.1/x",
        "http://0177.0.0.1/x",
        "http://[::1]/x",
        "http://[0:0:0:0:0:0:0:1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://[::ffff:7f00:1]/x",
        "http://[64:ff9b::7f00:1]/x",
        // Unspecified, private, shared, link-local (cloud metadata), multicast, broadcast,
        // reserved, documentation.
        "http://0.0.0.0/x",
        "http://0/x",
        "http://[::]/x",
        "http://10.0.0.1/x",
        "http://172.16.0.1/x",
        "http://172.31.255.255/x",
        "http://192.168.1.1/x",
        "http://100.64.0.1/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/x",
        "http://[fd00::1]/x",
        "http://[::ffff:10.0.0.1]/x",
        "http://[::ffff:169.254.169.254]/x",
        "http://224.0.0.1/x",
        "http://255.255.255.255/x",
        "http://240.0.0.1/x",
        "http://192.0.2.1/x",
        "http://198.18.0.1/x",
    ]
    .iter()
    .map(|u| json!(u))
    .chain([
        json!(42),
        json!(null),
        json!(["https://hooks.example.com/in"]),
        json!({}),
    ])
    .collect();
    let mut accepted = Vec::new();
    for url in &refused {
        let w = c.admin(
            "POST",
            &format!("/admin/accounts/{}/webhooks", t.id),
            Some(json!({"url": url, "events": ["*"]})),
        );
        let p = c.admin(
            "POST",
            &format!("/admin/accounts/{}/connections", t.id),
            Some(json!({"app": "quickbooks", "type": "accounting", "pushUrl": url})),
        );
        for (r, pointer) in [(&w, "/url"), (&p, "/pushUrl")] {
            if r.status != 422 {
                accepted.push(format!("{pointer} {url} -> {} {}", r.status, r.text));
                continue;
            }
            let errs = r.json()["errors"].clone();
            assert!(
                errs.as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["pointer"] == pointer),
                "{url}: {errs}"
            );
        }
    }
    assert!(
        accepted.is_empty(),
        "accepted at registration:\n{}",
        accepted.join("\n")
    );
    // Known gap (core, `TargetPolicy::check_url`): the URL parser reads `https:///path` as
    // host `path`, so it passes registration and is stored as sent; sending it then fails
    // (the HTTP client finds no host). Harmless (the connect-time policy still applies), but
    // the stored URL is not the one that was checked.
    let w = c.admin(
        "POST",
        &format!("/admin/accounts/{}/webhooks", t.id),
        Some(json!({"url": "https:///path", "events": ["*"]})),
    );
    println!("`https:///path` at registration: {}", w.status);
    // A URL longer than 2048 characters.
    let long = format!("https://hooks.example.com/{}", "a".repeat(10_000));
    let w = c.admin(
        "POST",
        &format!("/admin/accounts/{}/webhooks", t.id),
        Some(json!({"url": long, "events": ["*"]})),
    );
    assert_eq!(w.status, 422, "{}", w.text);
    assert_eq!(w.json()["errors"][0]["pointer"], "/url");
    assert_eq!(w.json()["errors"][0]["code"], "too_long");
    // Public names and addresses are accepted (names are checked again at connect time).
    for url in [
        "https://hooks.example.com/in",
        "http://hooks.example.com:8080/in?x=1",
        "https://93.184.215.14/in",
        "https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/in",
        "http://localhost:9/in",
    ] {
        let w = c.admin(
            "POST",
            &format!("/admin/accounts/{}/webhooks", t.id),
            Some(json!({"url": url, "events": ["*"]})),
        );
        assert_eq!(w.status, 201, "{url}: {}", w.text);
    }
    // Nothing was written for this account, so nothing was ever sent anywhere.
    let list = c
        .admin("GET", &format!("/admin/accounts/{}/webhooks", t.id), None)
        .json();
    for h in list.as_array().unwrap() {
        let wid = h["id"].as_str().unwrap();
        assert!(c.deliveries(&t, wid).is_empty());
    }
}
