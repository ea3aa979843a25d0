//! Limits at their boundaries: body size, bulk preload count, JSON nesting depth, header size
//! and count, tracking-id and idempotency-key length, URL length. The value at the limit is
//! accepted; one past it is refused with the contract's status and a problem that says which
//! limit; far past it (the sizes an attacker would send) the answer is the same, no panic
//! happens and the server's peak memory stays flat.
//!
//! The basics (413 from `Content-Length`, 415, 400 on malformed JSON, 431 on 120 headers or
//! a 10 KB header) are in `api.rs`; this file adds the boundaries and the extremes.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const MIB: usize = 1024 * 1024;

/// Peak resident set size of a process, in KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A problem answer: its status, `type` and `detail`.
fn problem_of(r: &Resp) -> (u16, String, String) {
    assert_eq!(
        r.header("Content-Type"),
        Some("application/problem+json"),
        "{} {}",
        r.status,
        r.text
    );
    let p = r.json();
    assert_eq!(p["status"], r.status, "{}", r.text);
    assert!(p["title"].is_string(), "{}", r.text);
    (
        r.status,
        p["type"].as_str().unwrap_or("").to_string(),
        p["detail"].as_str().unwrap_or("").to_string(),
    )
}

/// A raw request; the answer's status and body.
fn raw_req(srv: &Server, head: &str, body: &[u8]) -> (u16, String) {
    let mut bytes = head.as_bytes().to_vec();
    bytes.extend_from_slice(body);
    let a = raw(&srv.addr, &bytes, Duration::from_secs(10));
    (raw_status(&a), raw_body(&a).to_string())
}

/// A JSON customer padded with spaces to exactly `len` bytes.
fn padded_customer(len: usize) -> String {
    let base = customer("Padded Ltd").to_string();
    let inner = &base[..base.len() - 1];
    let pad = len - base.len();
    format!("{inner}{}}}", " ".repeat(pad))
}

#[test]
fn body_size_at_and_past_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("t.db"), &[]);
    let c = Client::new(&srv);
    let t = c.tenant("acme.example.com");
    let h = [("Authorization", t.auth.as_str())];
    // Exactly 1 MiB: accepted.
    let at = padded_customer(MIB);
    assert_eq!(at.len(), MIB);
    let r = c.call("POST", "/api/customers", &h, Some(&at));
    assert_eq!(r.status, 201, "{}", r.text);
    // One byte more: 413 with a problem naming the limit. (Sent raw: the server answers
    // without reading the body and closes, so a client still writing sees a broken pipe.)
    let head = |path: &str, auth: &str, len: usize| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
             Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
        )
    };
    let over = padded_customer(MIB + 1);
    let (status, body) = raw_req(
        &srv,
        &head("/api/customers", &t.auth, over.len()),
        over.as_bytes(),
    );
    assert_eq!(status, 413, "{body}");
    let p: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(p["type"], "/problems/payload-too-large");
    assert!(p["detail"].as_str().unwrap().contains("1048576"), "{p}");
    // The admin API has the same limit.
    let admin = format!("Bearer {ADMIN}");
    let big = format!("{{\"domain\": \"big.example.com\"{}}}", " ".repeat(MIB));
    let (status, _) = raw_req(
        &srv,
        &head("/admin/accounts", &admin, big.len()),
        big.as_bytes(),
    );
    assert_eq!(status, 413);
    // Only one object was stored.
    let list = c.api(&t, "GET", "/api/customers", &[], None).json();
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[test]
fn bulk_preload_count() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("t.db"), &[]);
    let c = Client::new(&srv);
    let t = c.tenant("acme.example.com");
    let item = |i: usize| {
        json!({"bankAccount": "main", "date": "2026-01-02", "amount": -100 - i as i64,
               "currency": "EUR", "description": "card", "externalId": format!("x-{i}")})
    };
    let batch = |from: usize, n: usize| Value::Array((from..from + n).map(item).collect());
    // 1000 in one request: accepted, all stored.
    let r = c.api(
        &t,
        "POST",
        "/api/bank-transactions",
        &[],
        Some(batch(0, 1000)),
    );
    assert_eq!(r.status, 201, "{}", &r.text[..r.text.len().min(300)]);
    assert_eq!(r.json().as_array().unwrap().len(), 1000);
    // 1001: 422 too_long at the root, nothing stored.
    let r = c.api(
        &t,
        "POST",
        "/api/bank-transactions",
        &[],
        Some(batch(5000, 1001)),
    );
    let (status, ty, _) = problem_of(&r);
    assert_eq!((status, ty.as_str()), (422, "/problems/validation-failed"));
    let errors = r.json()["errors"].clone();
    assert_eq!(errors.as_array().unwrap().len(), 1, "{errors}");
    assert_eq!(errors[0]["pointer"], "");
    assert_eq!(errors[0]["code"], "too_long");
    // Far past it (as many as fit in the body limit): the same answer, at once.
    let tiny = |i: usize| json!({"bankAccount": "m", "date": "2026-01-02", "amount": i});
    let many = Value::Array((0..8000).map(tiny).collect());
    assert!(many.to_string().len() < MIB);
    let r = c.api(&t, "POST", "/api/bank-transactions", &[], Some(many));
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["errors"].as_array().unwrap().len(), 1);
    let mut n = 0;
    for page in 1.. {
        let l = c.api(
            &t,
            "GET",
            &format!("/api/bank-transactions?page={page}&pageSize=200"),
            &[],
            None,
        );
        let len = l.json().as_array().unwrap().len();
        if len == 0 {
            break;
        }
        n += len;
    }
    assert_eq!(n, 1000);
}

#[test]
fn json_nesting_depth() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("t.db"), &[]);
    let c = Client::new(&srv);
    let t = c.tenant("acme.example.com");
    let hwm_before = vm_hwm_kib(srv.pid());
    let nested = |depth: usize| {
        format!(
            "{{\"name\": \"Deep\", \"extra\": {}{}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        )
    };
    let auth = [("Authorization", t.auth.as_str())];
    // Within serde_json's depth limit of 128 (the object itself is one level): parsed, then
    // refused by validation as an unknown field.
    let r = c.call("POST", "/api/customers", &auth, Some(&nested(126)));
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json()["errors"][0]["code"], "unknown_field");
    // Past it, and far past it (a body of half a million levels): 400 malformed-json.
    for depth in [128, 1000, 500_000] {
        let r = c.call("POST", "/api/customers", &auth, Some(&nested(depth)));
        let (status, ty, detail) = problem_of(&r);
        assert_eq!(
            (status, ty.as_str()),
            (400, "/problems/malformed-json"),
            "{depth}"
        );
        assert!(detail.contains("recursion"), "{detail}");
    }
    // The same through a merge patch, with an Idempotency-Key (the key hashes the body), and
    // in the admin API: never deeper than the parser allows, never a crash.
    let cust = c.api(&t, "POST", "/api/customers", &[], Some(customer("Flat")));
    let id = cust.json()["id"].as_str().unwrap().to_string();
    let deep_obj = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    let r = c.call(
        "PATCH",
        &format!("/api/customers/{id}"),
        &[
            ("Authorization", t.auth.as_str()),
            ("Idempotency-Key", "deep-1"),
        ],
        Some(&deep_obj),
    );
    assert_eq!(problem_of(&r).0, 400);
    let r = c.call(
        "PATCH",
        &format!("/api/customers/{id}"),
        &[("Authorization", t.auth.as_str())],
        Some(&format!("{{\"billingAddress\": {deep_obj}}}")),
    );
    assert_eq!(problem_of(&r).0, 400);
    let admin = format!("Bearer {ADMIN}");
    let r = c.call(
        "POST",
        "/admin/accounts",
        &[("Authorization", &admin)],
        Some(&deep_obj),
    );
    assert_eq!(problem_of(&r).0, 400);
    // Still serving, the object unchanged, memory flat.
    let got = c.api(&t, "GET", &format!("/api/customers/{id}"), &[], None);
    assert_eq!(got.json()["version"], 1);
    let hwm_after = vm_hwm_kib(srv.pid());
    println!("peak RSS {hwm_before} KiB -> {hwm_after} KiB");
    assert!(
        hwm_after < hwm_before + 64 * 1024,
        "{hwm_before} -> {hwm_after}"
    );
    assert!(!srv.logs().iter().any(|l| l.contains("panicked")));
}

#[test]
fn validation_answers_stay_bounded() {
    // One body of 1 MiB holding as many unknown fields as fit: every problem is reported, so
    // the answer is bounded by the body limit times a constant.
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("t.db"), &[]);
    let c = Client::new(&srv);
    let t = c.tenant("acme.example.com");
    let mut body = String::from("{\"name\": \"Many\"");
    let mut n = 0;
    while body.len() < MIB - 32 {
        body.push_str(&format!(",\"f{n}\":0"));
        n += 1;
    }
    body.push('}');
    let r = c.call(
        "POST",
        "/api/customers",
        &[("Authorization", t.auth.as_str())],
        Some(&body),
    );
    assert_eq!(r.status, 422);
    let errors = r.json()["errors"].as_array().unwrap().len();
    println!(
        "{n} unknown fields in {} bytes: {errors} errors in an answer of {} bytes",
        body.len(),
        r.text.len()
    );
    assert!(errors >= 1 && errors <= n);
    // Today every problem is listed (about 7 bytes of answer per byte of body); whatever the
    // engine does, the answer stays within a constant factor of the body limit.
    assert!(r.text.len() < 20 * MIB, "answer of {} bytes", r.text.len());
}

#[test]
fn header_count_and_size_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("t.db"), &[]);
    let c = Client::new(&srv);
    let t = c.tenant("acme.example.com");
    let auth = t.auth.clone();
    let hwm_before = vm_hwm_kib(srv.pid());
    let get_with = |extra: &str| {
        let head = format!(
            "GET /api/customers HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n{extra}Connection: close\r\n\r\n"
        );
        raw_req(&srv, &head, b"")
    };
    let fields = |n: usize| -> String { (0..n).map(|i| format!("X-F{i}: v\r\n")).collect() };
    // Host, Authorization, Connection + 97 = 100 fields: accepted; 101: 431.
    assert_eq!(get_with(&fields(97)).0, 200);
    let (status, body) = get_with(&fields(98));
    assert_eq!(status, 431, "{body}");
    assert!(
        body.contains("header-fields-too-large") && body.contains("100"),
        "{body}"
    );
    // One field of exactly 8 KiB (name, ": ", value) is accepted; one byte more is 431.
    let value = |total: usize| "v".repeat(total - "X-Big".len() - 2);
    assert_eq!(get_with(&format!("X-Big: {}\r\n", value(8192))).0, 200);
    let (status, body) = get_with(&format!("X-Big: {}\r\n", value(8193)));
    assert_eq!(status, 431, "{body}");
    assert!(body.contains("X-Big") || body.contains("x-big"), "{body}");
    // Past hyper's own bounds (200 fields, a 128 KiB head): still 431, the connection closed.
    let (status, _) = get_with(&fields(300));
    assert_eq!(status, 431);
    let (status, _) = get_with(&format!("X-Big: {}\r\n", "v".repeat(200 * 1024)));
    assert_eq!(status, 431);
    // A head that never ends (4 MiB of one header line): refused once the bound is reached.
    let endless = format!(
        "GET /api/customers HTTP/1.1\r\nHost: x\r\nX-Endless: {}",
        "e".repeat(4 * MIB)
    );
    let (status, _) = raw_req(&srv, &endless, b"");
    assert!(status == 431 || status == 0, "{status}");
    // A header value that is not visible ASCII: 400 invalid-header.
    let mut head =
        format!("GET /api/customers HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n").into_bytes();
    head.extend_from_slice(b"X-Tracking-ID: caf\xc3\xa9\r\nConnection: close\r\n\r\n");
    let a = raw(&srv.addr, &head, Duration::from_secs(5));
    assert_eq!(raw_status(&a), 400, "{a}");
    assert!(raw_body(&a).contains("invalid-header"), "{a}");
    // Still serving, memory flat.
    assert_eq!(c.call("GET", "/healthz", &[], None).status, 200);
    let hwm_after = vm_hwm_kib(srv.pid());
    assert!(
        hwm_after < hwm_before + 64 * 1024,
        "{hwm_before} -> {hwm_after}"
    );
}

#[test]
fn tracking_id_and_idempotency_key_length() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("t.db"), &[]);
    let c = Client::new(&srv);
    let t = c.tenant("acme.example.com");
    let write = |h: &[(&str, &str)], name: &str| {
        c.api(&t, "POST", "/api/customers", h, Some(customer(name)))
    };
    // X-Tracking-ID: 128 visible ASCII characters accepted and echoed; 129, empty, a space or
    // a control character: 400 invalid-header.
    let tr128 = "t".repeat(128);
    let r = write(&[("X-Tracking-ID", &tr128)], "T128");
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("X-Tracking-ID"), Some(tr128.as_str()));
    for bad in [
        "t".repeat(129),
        "a b".into(),
        "a\tb".into(),
        "t".repeat(8000),
    ] {
        let r = write(&[("X-Tracking-ID", &bad)], "Bad");
        let (status, ty, detail) = problem_of(&r);
        assert_eq!(
            (status, ty.as_str()),
            (400, "/problems/invalid-header"),
            "{bad:?}"
        );
        assert!(
            detail.contains("X-Tracking-ID") && detail.contains("128"),
            "{detail}"
        );
    }
    // Idempotency-Key: 255 accepted (and replayed); 256: 400 invalid-header.
    let k255 = "k".repeat(255);
    let r = write(&[("Idempotency-Key", &k255)], "K255");
    assert_eq!(r.status, 201, "{}", r.text);
    let again = write(&[("Idempotency-Key", &k255)], "K255");
    assert_eq!(again.header("Idempotency-Replayed"), Some("true"));
    for bad in ["k".repeat(256), "k k".into(), "k".repeat(8000)] {
        let r = write(&[("Idempotency-Key", &bad)], "Bad");
        let (status, ty, detail) = problem_of(&r);
        assert_eq!(
            (status, ty.as_str()),
            (400, "/problems/invalid-header"),
            "{}",
            bad.len()
        );
        assert!(
            detail.contains("Idempotency-Key") && detail.contains("255"),
            "{detail}"
        );
    }
    // Nothing of the refused writes exists.
    let list = c.api(&t, "GET", "/api/customers", &[], None).json();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
}

#[test]
fn url_length() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("t.db"), &[]);
    let c = Client::new(&srv);
    let t = c.tenant("acme.example.com");
    let auth = [("Authorization", t.auth.as_str())];
    // A request target of exactly 8 KiB is routed (here: an unknown id, 404); 8 KiB + 1 is 414.
    let path_of = |len: usize| {
        let prefix = "/api/customers/";
        format!("{prefix}{}", "x".repeat(len - prefix.len()))
    };
    let r = c.call("GET", &path_of(8192), &auth, None);
    assert_eq!(problem_of(&r).0, 404);
    let r = c.call("GET", &path_of(8193), &auth, None);
    let (status, ty, detail) = problem_of(&r);
    assert_eq!((status, ty.as_str()), (414, "/problems/uri-too-long"));
    assert!(detail.contains("8192"), "{detail}");
    assert!(r.header("X-Request-ID").is_some());
    // The query counts too.
    let q = format!("/api/customers?page=1&pad={}", "p".repeat(8200));
    assert_eq!(c.call("GET", &q, &auth, None).status, 414);
    // Past hyper's head bound (200 KiB): refused, the connection closed, no panic.
    let head = format!(
        "GET /api/customers?x={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "q".repeat(200 * 1024)
    );
    let (status, _) = raw_req(&srv, &head, b"");
    assert!(status == 414 || status == 431, "{status}");
    assert_eq!(c.call("GET", "/healthz", &[], None).status, 200);
    assert!(!srv.logs().iter().any(|l| l.contains("panicked")));
}

#[test]
fn list_paging_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(&dir.path().join("t.db"), &[]);
    let c = Client::new(&srv);
    let t = c.tenant("acme.example.com");
    assert_eq!(
        c.api(&t, "GET", "/api/customers?pageSize=200", &[], None)
            .status,
        200
    );
    for q in [
        "pageSize=201",
        "pageSize=0",
        "page=0",
        "page=-1",
        "page=99999999999999999999999",
        "page=1000000001",
        "pageSize=1e3",
    ] {
        let r = c.api(&t, "GET", &format!("/api/customers?{q}"), &[], None);
        let (status, ty, _) = problem_of(&r);
        assert_eq!(
            (status, ty.as_str()),
            (400, "/problems/invalid-query"),
            "{q}"
        );
    }
    // A page far past the end (up to the bound of 1,000,000,000, the same on every host) is
    // an empty array, not an error.
    let r = c.api(&t, "GET", "/api/customers?page=1000000000", &[], None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json(), json!([]));
}
