//! `GET /openapi.json`: the document built in (feature `openapi`, the default) and the one a host
//! hands over with `Engine::set_openapi_json` (the wasm package, built without the feature)
//! are answered identically, byte for byte, and leave the engine in the same state.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use writesync_core::ApiRequest;

/// The document as the repository has it.
const DOCUMENT: &str = include_str!("../openapi.json");

/// Requests around the route: methods, a query, a trailing slash, credentials, then routes
/// whose answers carry ids drawn after it (so that the generator's state is compared too).
fn requests() -> Vec<ApiRequest> {
    vec![
        ApiRequest::new("GET", "/openapi.json"),
        ApiRequest::new("HEAD", "/openapi.json"),
        ApiRequest::new("GET", "/openapi.json?x=1"),
        ApiRequest::new("GET", "/openapi.json/"),
        ApiRequest::new("GET", "/openapi.json").header("Authorization", "Bearer nope"),
        ApiRequest::new("GET", "/openapi.json").header("X-Request-ID", "r-1"),
        ApiRequest::new("POST", "/openapi.json").json(&serde_json::json!({})),
        ApiRequest::new("DELETE", "/openapi.json"),
        ApiRequest::new("GET", "/openapi.jsonx"),
        ApiRequest::new("GET", "/api/customers").header("Authorization", "Basic eDp5"),
        ApiRequest::new("POST", "/admin/accounts")
            .header("Authorization", &format!("Bearer {ADMIN}"))
            .json(&serde_json::json!({"domain": "acme.example.com"})),
    ]
}

#[test]
fn host_document_answers_like_the_built_in_one() {
    let mut given = World::new();
    given.engine.set_openapi_json(DOCUMENT);
    let answers: Vec<_> = requests().into_iter().map(|r| given.send(r)).collect();

    let get = &answers[0];
    assert_eq!(get.status, 200);
    assert_eq!(
        get.headers.iter().collect::<Vec<_>>(),
        [(&"Content-Type".to_string(), &"application/json".to_string())]
    );
    assert!(get.body == DOCUMENT, "the body is the document's text");
    for i in 1..6 {
        assert_eq!(answers[i], answers[0], "request {i}");
    }
    assert_eq!(answers[6].status, 405);
    assert_eq!(
        answers[6].headers.get("Allow").map(String::as_str),
        Some("GET")
    );
    assert_eq!(answers[7], answers[6]);
    assert_eq!(answers[8].status, 404);
    assert_eq!(answers[10].status, 201, "{}", answers[10].body);

    #[cfg(feature = "openapi")]
    {
        let mut built_in = World::new();
        let expected: Vec<_> = requests().into_iter().map(|r| built_in.send(r)).collect();
        assert!(answers == expected, "the answers differ");
    }
}

#[cfg(not(feature = "openapi"))]
#[test]
fn without_the_feature_or_a_document_the_route_is_not_found() {
    let mut w = World::new();
    let r = w.send(ApiRequest::new("GET", "/openapi.json"));
    assert_eq!(r.status, 404);
    assert!(
        r.body_json()["detail"]
            .as_str()
            .unwrap()
            .contains("no OpenAPI document"),
        "{}",
        r.body
    );
    // Other methods are still 405.
    assert_eq!(w.send(ApiRequest::new("POST", "/openapi.json")).status, 405);
}
