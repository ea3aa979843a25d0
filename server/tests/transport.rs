//! The outbound transport against a live peer on 127.0.0.1: answers are read only up to
//! `MAX_ANSWER_BYTES`, a redirect is the answer (never followed), and a slow peer times out
//! as a retryable error. (The checks that need no peer are unit tests in
//! `host/src/transport.rs`, the transport the server uses.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use writesync_core::net::{Cidr, TargetPolicy};
use writesync_core::{OutboundRequest, Outcome};
use writesync_demo::fake::{FakeServer, Reply};
use writesync_server::transport::{Transport, TransportConfig, MAX_ANSWER_BYTES};

fn req(url: &str) -> OutboundRequest {
    OutboundRequest {
        method: "POST".into(),
        url: url.into(),
        headers: BTreeMap::new(),
        body: "{}".into(),
    }
}

fn loopback_transport() -> Transport {
    Transport::new(&TransportConfig {
        policy: TargetPolicy {
            allowed: vec![Cidr::parse("127.0.0.0/8").unwrap()],
        },
        ..TransportConfig::default()
    })
}

#[test]
fn answers_are_bounded_and_redirects_are_answers() {
    let f = FakeServer::source("big").unwrap();
    let t = loopback_transport();
    f.queue(vec![
        Reply {
            status: 201,
            headers: vec![("X-Custom".into(), "yes".into())],
            body: "x".repeat(1024 * 1024),
        },
        Reply::status(302).with_header("Location", &f.url("/elsewhere")),
        Reply::status(503).with_header("Retry-After", "7"),
    ]);
    match t.send(&req(&f.url("/push"))) {
        Outcome::Response {
            status,
            headers,
            body,
        } => {
            assert_eq!(status, 201);
            assert_eq!(body.len(), MAX_ANSWER_BYTES as usize);
            assert_eq!(headers.get("x-custom").map(String::as_str), Some("yes"));
        }
        o => panic!("{o:?}"),
    }
    match t.send(&req(&f.url("/push"))) {
        Outcome::Response { status, .. } => assert_eq!(status, 302),
        o => panic!("{o:?}"),
    }
    match t.send(&req(&f.url("/push"))) {
        Outcome::Response {
            status, headers, ..
        } => {
            assert_eq!(status, 503);
            assert_eq!(headers.get("retry-after").map(String::as_str), Some("7"));
        }
        o => panic!("{o:?}"),
    }
    let got = f.received();
    assert_eq!(got.len(), 3, "the redirect was not followed");
    assert!(got.iter().all(|r| r.path == "/push" && r.method == "POST"));
}

#[test]
fn slow_peers_time_out_and_are_retryable() {
    let f = FakeServer::source("slow").unwrap();
    f.set_delay(Duration::from_millis(1500));
    let t = Transport::new(&TransportConfig {
        policy: TargetPolicy {
            allowed: vec![Cidr::parse("127.0.0.0/8").unwrap()],
        },
        overall_timeout: Duration::from_millis(300),
        ..TransportConfig::default()
    });
    let started = std::time::Instant::now();
    match t.send(&req(&f.url("/push"))) {
        Outcome::Error { error, permanent } => {
            assert!(!permanent);
            assert!(error.contains("timeout"), "{error}");
        }
        o => panic!("{o:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(1));
}
