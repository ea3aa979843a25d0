//! The command line, the admin token, structured logs and graceful shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use writesync_demo::fake::FakeServer;

fn writesync(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_writesync"))
        .args(args)
        .env_remove("WRITESYNC_ADMIN_TOKEN")
        .output()
        .unwrap()
}

#[test]
fn help_and_usage_errors() {
    let h = writesync(&["--help"]);
    assert!(h.status.success());
    let out = String::from_utf8_lossy(&h.stdout);
    assert!(out.contains("serve"), "{out}");
    // The demo is a binary of its own (writesync-demo), not a subcommand of the product.
    assert!(!out.contains("demo"), "{out}");
    let d = writesync(&["demo"]);
    assert_eq!(d.status.code(), Some(2));
    let h = writesync(&["serve", "--help"]);
    assert!(h.status.success());
    let out = String::from_utf8_lossy(&h.stdout);
    for flag in [
        "--db",
        "--listen",
        "--admin-token",
        "WRITESYNC_ADMIN_TOKEN",
        "--push-retry-schedule",
        "--webhook-retry-schedule",
        "--allow-target-cidr",
        "--max-body-bytes",
        "--lease-seconds",
        "--idempotency-retention-hours",
        "--sync-retention-days",
        "--outbound-timeout-seconds",
    ] {
        assert!(out.contains(flag), "{flag} missing from {out}");
    }
    for (args, needle) in [
        (vec!["serve", "--bogus"], "--bogus"),
        (
            vec!["serve", "--push-retry-schedule", "1,x"],
            "retry schedule",
        ),
        (vec!["serve", "--webhook-retry-schedule", ""], "empty"),
        (
            vec!["serve", "--allow-target-cidr", "10.0.0.0/99"],
            "prefix",
        ),
        (vec!["serve", "--max-body-bytes", "lots"], "body limit"),
        (vec!["serve", "--lease-seconds", "0"], "lease"),
        (
            vec!["serve", "--idempotency-retention-hours", "1"],
            "retention",
        ),
        (
            vec!["serve", "--sync-retention-days", "0.5"],
            "sync retention",
        ),
        (vec!["serve", "--admin-token", ""], "empty"),
        (
            vec!["serve", "--max-in-flight-per-origin", "0"],
            "per origin",
        ),
        (vec!["serve", "--senders", "0"], "senders"),
        (vec!["serve", "--senders", "257"], "senders"),
        (vec!["frobnicate"], "frobnicate"),
        (vec![], "Usage"),
    ] {
        let o = writesync(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn the_senders_and_the_per_origin_cap_are_set_by_flags_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let listening = |args: &[&str]| -> Value {
        let srv = Server::start(&dir.path().join(format!("s{}.db", args.len())), args);
        srv.logs()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["msg"] == "listening")
            .unwrap()
    };
    let line = listening(&[]);
    assert_eq!(
        (&line["senders"], &line["maxInFlightPerOrigin"]),
        (&json!(8), &json!(4)),
        "{line}"
    );
    let line = listening(&["--senders", "3", "--max-in-flight-per-origin", "2"]);
    assert_eq!(
        (&line["senders"], &line["maxInFlightPerOrigin"]),
        (&json!(3), &json!(2)),
        "{line}"
    );
}

#[test]
fn a_server_that_cannot_start_says_why() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let o = Command::new(env!("CARGO_BIN_EXE_writesync"))
        .args(["serve", "--admin-token", ADMIN, "--listen", &addr, "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot listen") && err.contains(&addr),
        "{err}"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_writesync"))
        .args([
            "serve",
            "--admin-token",
            ADMIN,
            "--listen",
            "127.0.0.1:0",
            "--db",
        ])
        .arg(dir.path().join("no/such/dir/t.db"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("database"));
}

#[test]
fn admin_token_generated_once_or_taken_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let mut first = Server::spawn(&db, &[], &[]);
    let line = poll(DEADLINE, || {
        first
            .stdout()
            .into_iter()
            .find(|l| l.contains("admin token"))
    });
    let token = line.rsplit(' ').next().unwrap().to_string();
    assert!(token.len() >= 32, "{line}");
    let c = Client::new(&first);
    let bearer = format!("Bearer {token}");
    let ok = c.call(
        "POST",
        "/admin/accounts",
        &[("Authorization", &bearer)],
        Some(&json!({"domain": "acme.example.com"}).to_string()),
    );
    assert_eq!(ok.status, 201, "{}", ok.text);
    // The token is printed on stdout only, never logged.
    assert!(first.logs().iter().all(|l| !l.contains(&token)));
    first.kill();
    // Restart on the same database: nothing printed, the same token still works.
    let second = Server::spawn(&db, &[], &[]);
    let c = Client::new(&second);
    let r = c.call(
        "GET",
        &format!("/admin/accounts/{}", ok.json()["id"].as_str().unwrap()),
        &[("Authorization", &bearer)],
        None,
    );
    assert_eq!(r.status, 200);
    std::thread::sleep(Duration::from_millis(200));
    assert!(second.stdout().iter().all(|l| !l.contains("admin token")));
    drop(second);
    // WRITESYNC_ADMIN_TOKEN takes precedence over the stored hash.
    let third = Server::spawn(&db, &[], &[("WRITESYNC_ADMIN_TOKEN", "from-the-env-123")]);
    let c = Client::new(&third);
    let r = c.call(
        "POST",
        "/admin/accounts",
        &[("Authorization", "Bearer from-the-env-123")],
        Some(&json!({"domain": "env.example.com"}).to_string()),
    );
    assert_eq!(r.status, 201);
    assert!(third.stdout().iter().all(|l| !l.contains("admin token")));
}

#[test]
fn graceful_shutdown_finishes_the_request_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Server::start(&dir.path().join("t.db"), &[]);
    let c = Client::new(&srv);
    let t = c.tenant("acme.example.com");
    let body = json!({"name": "Slow Sender Ltd", "contactName": "x".repeat(900)}).to_string();
    let head = format!(
        "POST /api/customers HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        t.auth,
        body.len()
    );
    let mut s = TcpStream::connect(&srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body.as_bytes()[..500]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    srv.terminate();
    std::thread::sleep(Duration::from_millis(300));
    // New connections are no longer accepted...
    assert!(
        TcpStream::connect(&srv.addr).is_err()
            || try_call(&agent(), &srv.base, "GET", "/healthz", &[], None).is_err()
    );
    // ...but the request in flight is completed and answered.
    s.write_all(&body.as_bytes()[500..]).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(raw_status(&answer), 201, "{answer}");
    let st = srv.wait_exit(Duration::from_secs(15)).expect("exited");
    assert!(st.success(), "{st}");
    let logs = srv.logs();
    assert!(logs.iter().any(|l| l.contains("shutting down")));
    assert!(logs.last().unwrap().contains("stopped"), "{logs:?}");
    // The write is durable.
    let again = Server::start(&srv.db, &[]);
    let list = Client::new(&again).api(&t, "GET", "/api/customers", &[], None);
    assert_eq!(list.json().as_array().unwrap().len(), 1);
}

#[test]
fn logs_are_json_lines_with_ids_and_no_secrets() {
    let qb = FakeServer::source("quickbooks").unwrap();
    let hooks = FakeServer::webhook_receiver("hooks").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(
        &dir.path().join("t.db"),
        &[&FAST[..], &ALLOW_LOOPBACK[..]].concat(),
    );
    let c = Client::new(&srv);
    let t = c.tenant("acme.example.com");
    c.connect(
        &t,
        "quickbooks",
        "accounting",
        &qb.url("/push?token=query-secret"),
    );
    let hook_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let hook = c.webhook(
        &t,
        json!({"url": hooks.url("/in"), "events": ["*"], "username": "u",
               "password": "hook-password-secret", "signingSecret": hook_secret}),
    );
    let w = c.api(
        &t,
        "POST",
        "/api/customers",
        &[("X-Sync-Data", "push"), ("X-Tracking-ID", "trk-log")],
        Some(customer("Acme")),
    );
    let sync = w.header("X-Sync-ID").unwrap().to_string();
    let request_id = w.header("X-Request-ID").unwrap().to_string();
    c.wait_sync(&t, &sync);
    poll(DEADLINE, || {
        let l = c.deliveries(&t, &hook);
        (l.len() == 2 && l.iter().all(|d| d["status"] == "delivered")).then_some(())
    });
    let logs = srv.logs();
    let parsed: Vec<Value> = logs
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    for v in &parsed {
        assert!(v["ts"].is_string() && v["level"].is_string() && v["msg"].is_string());
    }
    for secret in [
        ADMIN,
        t.secret.as_str(),
        "hook-password-secret",
        hook_secret,
        "query-secret",
        "Authorization",
        "Basic ",
        "Bearer",
    ] {
        assert!(
            logs.iter().all(|l| !l.contains(secret)),
            "{secret} appears in the logs"
        );
    }
    let write = parsed
        .iter()
        .find(|v| v["msg"] == "request" && v["requestId"] == request_id.as_str())
        .expect("request line");
    assert_eq!(write["syncId"], sync.as_str());
    assert_eq!(write["trackingId"], "trk-log");
    assert_eq!(write["status"], 201);
    let pushes: Vec<&Value> = parsed
        .iter()
        .filter(|v| v["kind"] == "push" && v["syncId"] == sync.as_str())
        .collect();
    assert!(!pushes.is_empty());
    assert!(pushes.iter().all(|v| v["trackingId"] == "trk-log"));
    let webhooks: Vec<&Value> = parsed
        .iter()
        .filter(|v| v["kind"] == "webhook" && v["syncId"] == sync.as_str())
        .collect();
    assert!(webhooks.len() >= 2);
    assert!(webhooks
        .iter()
        .all(|v| v["requestId"] == request_id.as_str() && v["trackingId"] == "trk-log"));
}

#[test]
fn a_store_of_a_newer_data_layout_is_refused_at_start() {
    use writesync_core::{Batch, Storage};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    {
        let mut store = writesync_sqlite::SqliteStore::open(&db).unwrap();
        let mut b = Batch::new();
        b.put("meta/layout", r#"{"version":9}"#);
        store.apply(&b).unwrap();
    }
    let o = Command::new(env!("CARGO_BIN_EXE_writesync"))
        .args([
            "serve",
            "--admin-token",
            ADMIN,
            "--listen",
            "127.0.0.1:0",
            "--db",
        ])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("data layout 9"), "{err}");
}
