//! The request/answer envelope of the HTTP contract and the problem documents (RFC 9457).
//!
//! Every host (native server, WASM, C) converts its own HTTP representation into an
//! [`ApiRequest`] and writes the [`ApiResponse`] back verbatim. Header names in a request are
//! matched case-insensitively; answers use the contract's spelling (`X-Request-ID`, ...).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::cdm::FieldError;

/// A request as the engine sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiRequest {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path with optional query string, e.g. `/api/customers?page=2`.
    pub path: String,
    /// Header fields. Names are compared case-insensitively.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body as text, if any.
    #[serde(default, deserialize_with = "body_text")]
    pub body: Option<String>,
}

/// Accept a body given as text, or as any other JSON value (serialized back to text).
fn body_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

impl ApiRequest {
    /// A request without headers or body.
    pub fn new(method: &str, path: &str) -> Self {
        ApiRequest {
            method: method.to_string(),
            path: path.to_string(),
            ..Default::default()
        }
    }
    /// Builder: add a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(name.to_string(), value.to_string());
        self
    }
    /// Builder: set a JSON body and `Content-Type: application/json`.
    pub fn json(mut self, body: &Value) -> Self {
        self.headers
            .insert("Content-Type".into(), "application/json".into());
        self.body = Some(body.to_string());
        self
    }
    /// The value of a header, matched case-insensitively.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An answer as the engine produces it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiResponse {
    /// HTTP status code.
    pub status: u16,
    /// Header fields, spelled as the contract spells them.
    pub headers: BTreeMap<String, String>,
    /// The body text (`""` for `204`).
    pub body: String,
}

impl ApiResponse {
    /// A JSON answer.
    pub fn json(status: u16, body: &Value) -> Self {
        let mut headers = BTreeMap::new();
        headers.insert("Content-Type".to_string(), "application/json".to_string());
        ApiResponse {
            status,
            headers,
            body: body.to_string(),
        }
    }
    /// A JSON answer from text that is already JSON.
    pub fn json_text(status: u16, body: String) -> Self {
        let mut headers = BTreeMap::new();
        headers.insert("Content-Type".to_string(), "application/json".to_string());
        ApiResponse {
            status,
            headers,
            body,
        }
    }
    /// An answer without body.
    pub fn empty(status: u16) -> Self {
        ApiResponse {
            status,
            headers: BTreeMap::new(),
            body: String::new(),
        }
    }
    /// Set a header.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.insert(name.to_string(), value.into());
    }
    /// Builder form of [`ApiResponse::set_header`].
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.set_header(name, value);
        self
    }
    /// The body parsed as JSON (`Null` when empty or not JSON).
    pub fn body_json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// The kinds of problem the engine answers, each with its status and `type` slug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// 400: the body is not valid JSON (or not the JSON shape the call takes).
    MalformedJson,
    /// 400: a header value is not acceptable.
    InvalidHeader,
    /// 400: a query parameter is not acceptable.
    InvalidQuery,
    /// 401: missing or wrong credentials.
    Unauthorized,
    /// 403: the API key lacks the scope.
    MissingScope,
    /// 403: the account's write mode is off.
    WriteModeDisabled,
    /// 404: no such route or object.
    NotFound,
    /// 405: the route exists, the method does not.
    MethodNotAllowed,
    /// 409: the same Idempotency-Key is still being processed.
    IdempotencyInFlight,
    /// 409: the request conflicts with the current state (duplicate domain, ...).
    Conflict,
    /// 409: a sync retry found no `failed` target to retry.
    NothingToRetry,
    /// 412: stale `If-Match`.
    PreconditionFailed,
    /// 413: body over the limit.
    PayloadTooLarge,
    /// 414: the path and query are longer than the engine accepts.
    UriTooLong,
    /// 415: unsupported `Content-Type`.
    UnsupportedMediaType,
    /// 422: validation failed (with `errors`).
    ValidationFailed,
    /// 422: the Idempotency-Key was used with a different request.
    IdempotencyKeyReused,
    /// 500: an internal error (a bug or corrupt data).
    Internal,
    /// 503: the storage failed.
    StorageUnavailable,
}

impl ProblemKind {
    /// Status code and slug and title.
    pub fn parts(self) -> (u16, &'static str, &'static str) {
        match self {
            ProblemKind::MalformedJson => (400, "malformed-json", "Malformed JSON body"),
            ProblemKind::InvalidHeader => (400, "invalid-header", "Invalid header value"),
            ProblemKind::InvalidQuery => (400, "invalid-query", "Invalid query parameter"),
            ProblemKind::Unauthorized => (401, "unauthorized", "Authentication required"),
            ProblemKind::MissingScope => (403, "missing-scope", "The API key lacks a scope"),
            ProblemKind::WriteModeDisabled => {
                (403, "write-mode-disabled", "Write mode is not enabled")
            }
            ProblemKind::NotFound => (404, "not-found", "Not found"),
            ProblemKind::MethodNotAllowed => (405, "method-not-allowed", "Method not allowed"),
            ProblemKind::IdempotencyInFlight => (
                409,
                "idempotency-in-flight",
                "A request with this Idempotency-Key is in progress",
            ),
            ProblemKind::Conflict => (409, "conflict", "Conflict"),
            ProblemKind::NothingToRetry => (409, "nothing-to-retry", "Nothing to retry"),
            ProblemKind::PreconditionFailed => (412, "precondition-failed", "Precondition failed"),
            ProblemKind::PayloadTooLarge => (413, "payload-too-large", "Payload too large"),
            ProblemKind::UriTooLong => (414, "uri-too-long", "URI too long"),
            ProblemKind::UnsupportedMediaType => {
                (415, "unsupported-media-type", "Unsupported media type")
            }
            ProblemKind::ValidationFailed => (422, "validation-failed", "Validation failed"),
            ProblemKind::IdempotencyKeyReused => (
                422,
                "idempotency-key-reused",
                "Idempotency-Key reused with a different request",
            ),
            ProblemKind::Internal => (500, "internal", "Internal error"),
            ProblemKind::StorageUnavailable => (503, "storage-unavailable", "Storage unavailable"),
        }
    }
}

/// A problem+json answer.
pub fn problem(kind: ProblemKind, detail: impl Into<String>) -> ApiResponse {
    problem_with(kind, detail.into(), None)
}

/// A `422 validation-failed` answer with every field error.
pub fn validation_problem(errors: &[FieldError]) -> ApiResponse {
    problem_with_errors(
        ProblemKind::ValidationFailed,
        validation_detail(errors),
        Some(errors),
    )
}

/// The detail of a `422 validation-failed` answer: how many fields are invalid, and how many
/// of them are listed.
pub fn validation_detail(errors: &[FieldError]) -> String {
    let n = errors.len();
    let mut detail = if n == 1 {
        "1 field is invalid".to_string()
    } else {
        format!("{n} fields are invalid")
    };
    if n > MAX_LISTED_ERRORS {
        detail.push_str(&format!("; the first {MAX_LISTED_ERRORS} are listed"));
    }
    detail
}

/// A problem answer with a detail and, for `422`, the field errors. Every problem is listed
/// up to [`MAX_LISTED_ERRORS`], so that a hostile body cannot make the answer many times
/// larger than itself; [`validation_detail`] says how many were left out.
pub fn problem_with_errors(
    kind: ProblemKind,
    detail: String,
    errors: Option<&[FieldError]>,
) -> ApiResponse {
    let shown = errors.map(|e| &e[..e.len().min(MAX_LISTED_ERRORS)]);
    problem_with(kind, detail, shown)
}

/// Most field errors listed in one `422` answer.
pub const MAX_LISTED_ERRORS: usize = 100;

fn problem_with(kind: ProblemKind, detail: String, errors: Option<&[FieldError]>) -> ApiResponse {
    let (status, slug, title) = kind.parts();
    let mut body = json!({
        "type": format!("/problems/{slug}"),
        "title": title,
        "status": status,
        "detail": detail,
    });
    if let (Some(errors), Some(obj)) = (errors, body.as_object_mut()) {
        obj.insert(
            "errors".into(),
            serde_json::to_value(errors).unwrap_or(Value::Null),
        );
    }
    let mut headers = BTreeMap::new();
    headers.insert(
        "Content-Type".to_string(),
        "application/problem+json".to_string(),
    );
    ApiResponse {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Whether `s` consists of 1..=`max` visible ASCII characters (VCHAR, 0x21-0x7E).
pub fn is_visible_ascii(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// Whether a `Content-Type` value is JSON (`application/json` or any `+json` type).
pub fn is_json_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim();
    let (type_, suffix) = (
        essence.get(..12),
        essence.get(essence.len().saturating_sub(5)..),
    );
    essence.eq_ignore_ascii_case("application/json")
        || (essence.len() >= 17
            && type_.is_some_and(|t| t.eq_ignore_ascii_case("application/"))
            && suffix.is_some_and(|s| s.eq_ignore_ascii_case("+json")))
}

/// Split a path into its segments and its query pairs (percent-decoding query values).
pub fn split_path(path: &str) -> (Vec<String>, Vec<(String, String)>) {
    let (p, q) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let segments = p
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let query = q
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    (segments, query)
}

/// The first segment of a path, decoded as [`split_path`] decodes it.
pub fn first_segment(path: &str) -> Option<std::borrow::Cow<'_, str>> {
    let p = path.split_once('?').map_or(path, |(p, _)| p);
    let first = p.split('/').find(|s| !s.is_empty())?;
    Some(if first.contains('%') {
        std::borrow::Cow::Owned(percent_decode(first))
    } else {
        std::borrow::Cow::Borrowed(first)
    })
}

fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_has_contract_fields() {
        let r = problem(ProblemKind::NotFound, "no such invoice");
        assert_eq!(r.status, 404);
        assert_eq!(r.headers["Content-Type"], "application/problem+json");
        let b = r.body_json();
        assert_eq!(b["type"], "/problems/not-found");
        assert_eq!(b["status"], 404);
        assert_eq!(b["detail"], "no such invoice");
        assert!(b["title"].is_string());
    }

    #[test]
    fn visible_ascii_rules() {
        assert!(is_visible_ascii("abc-123", 128));
        assert!(!is_visible_ascii("a b", 128));
        assert!(!is_visible_ascii("a\r\nb", 128));
        assert!(!is_visible_ascii("", 128));
        assert!(!is_visible_ascii(&"x".repeat(129), 128));
        assert!(!is_visible_ascii("é", 128));
    }

    #[test]
    fn json_content_types() {
        assert!(is_json_content_type("application/json"));
        assert!(is_json_content_type("application/json; charset=utf-8"));
        assert!(is_json_content_type("application/merge-patch+json"));
        assert!(is_json_content_type("Application/Vnd.API+JSON"));
        assert!(is_json_content_type("application/+json"));
        assert!(!is_json_content_type("application/json5"));
        assert!(!is_json_content_type("text/x+json"));
        assert!(!is_json_content_type("text/plain"));
        assert!(!is_json_content_type(""));
    }

    #[test]
    fn path_split_and_query() {
        let (s, q) = split_path("/api/customers?page=2&pageSize=10");
        assert_eq!(s, vec!["api", "customers"]);
        assert_eq!(
            q,
            vec![
                ("page".into(), "2".into()),
                ("pageSize".into(), "10".into())
            ]
        );
        for path in [
            "/api/customers?page=2",
            "api",
            "//api//x",
            "/%61pi/x",
            "/?api",
            "",
            "/",
            "/admin?x=/api",
            "/a%2Fb/c",
        ] {
            assert_eq!(
                first_segment(path).map(|c| c.into_owned()),
                split_path(path).0.first().cloned(),
                "{path}"
            );
        }
        let (s, _) = split_path("/admin/accounts/a%2Fb/api-keys/k+1");
        assert_eq!(s, vec!["admin", "accounts", "a/b", "api-keys", "k+1"]);
    }

    #[test]
    fn body_may_be_text_or_json() {
        let r: ApiRequest =
            serde_json::from_str(r#"{"method":"POST","path":"/x","body":{"a":1}}"#).unwrap();
        assert_eq!(r.body.as_deref(), Some(r#"{"a":1}"#));
        let r: ApiRequest =
            serde_json::from_str(r#"{"method":"POST","path":"/x","body":"{bad"}"#).unwrap();
        assert_eq!(r.body.as_deref(), Some("{bad"));
    }
}
