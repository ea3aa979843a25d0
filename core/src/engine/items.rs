//! The vocabulary of due work: work items, their outcomes, their typed ids and wake-up
//! entries, and the leases and budgets they are handed out under.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::state::Engine;
use crate::records::keys;
use crate::store::Batch;

/// Attempts of one webhook delivery budget: the first and 3 retries.
pub(crate) const WEBHOOK_ATTEMPTS: u32 = 4;
/// How much of an answer body is kept in `lastError`.
pub(crate) const ERROR_BODY_PREFIX: usize = 200;

/// A token is treated as expired this long before the expiry the host gave.
pub const TOKEN_EXPIRY_MARGIN_MS: i64 = 5_000;

/// The URL of a token request item (it is not sent over HTTP: the host answers it).
pub const TOKEN_URL: &str = "writesync:token";

/// The kind of a work item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkKind {
    /// A push to a source application.
    Push,
    /// A webhook delivery.
    Webhook,
    /// A request to the host for a connection's access token: `request` is
    /// `{method: "TOKEN", url: "writesync:token", headers: {}, body}` with the body
    /// `{"connectionId", "accountId", "app", "reason"}` (`reason` is `missing`, `expired` or
    /// `unauthorized`). The host answers `Outcome::Response` with status `200` and the body
    /// `{"accessToken": "...", "expiresAt": <Unix ms, optional>}`, or any other status or an
    /// `Outcome::Error` when it has no token (never a refresh token: the engine does not
    /// want one).
    Token,
}

/// An outbound HTTP request the host must perform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundRequest {
    /// Method: `POST`, or a provider API's `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Headers to send.
    pub headers: BTreeMap<String, String>,
    /// JSON body (empty for a provider's bodiless `DELETE`).
    pub body: String,
}

/// One push, delivery or token request to perform now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkItem {
    /// Id to report the outcome with (`t.<task>.<attempt>`, `d.<delivery>.<attempt>` or
    /// `k.<connection>.<attempt>`).
    pub id: String,
    /// Push, webhook or token.
    pub kind: WorkKind,
    /// What to send.
    pub request: OutboundRequest,
}

/// What happened to a work item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Outcome {
    /// The peer answered.
    Response {
        /// Status code.
        status: u16,
        /// Answer headers (names case-insensitive).
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// The start of the answer body (hosts bound how much they read).
        #[serde(default)]
        body: String,
    },
    /// No answer: a timeout, a connection error, or a refused address.
    Error {
        /// What went wrong.
        error: String,
        /// True when retrying cannot help (a refused address); such a push fails at once.
        #[serde(default)]
        permanent: bool,
    },
}

/// Read as serde reads an untagged enum: a `Response` when the fields of one are there and
/// well typed (`status`, optional `headers` and `body`; other members ignored), else an
/// `Error`, else refused. Written by hand from a `Value`: the derived impl buffers the input
/// and tries each variant, several KB of the wasm module (README "Size and speed").
impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        outcome(&crate::records::value::value_of(d)?).ok_or_else(|| {
            serde::de::Error::custom("data did not match any variant of untagged enum Outcome")
        })
    }
}

fn outcome(v: &serde_json::Value) -> Option<Outcome> {
    let m = v.as_object()?;
    let response = || {
        let status = u16::try_from(m.get("status")?.as_u64()?).ok()?;
        let mut headers = BTreeMap::new();
        if let Some(h) = m.get("headers") {
            for (k, v) in h.as_object()? {
                headers.insert(k.clone(), v.as_str()?.to_string());
            }
        }
        let body = match m.get("body") {
            None => String::new(),
            Some(b) => b.as_str()?.to_string(),
        };
        Some(Outcome::Response {
            status,
            headers,
            body,
        })
    };
    response().or_else(|| {
        Some(Outcome::Error {
            error: m.get("error")?.as_str()?.to_string(),
            permanent: match m.get("permanent") {
                None => false,
                Some(p) => p.as_bool()?,
            },
        })
    })
}

impl Outcome {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        match self {
            Outcome::Response { headers, .. } => headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str()),
            Outcome::Error { .. } => None,
        }
    }
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The record a work item or a wake-up entry is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WorkRef<'a> {
    /// A push task.
    Task(&'a str),
    /// A webhook delivery.
    Delivery(&'a str),
    /// A connection's token request (keyed by the connection id).
    TokenRequest(&'a str),
}

impl<'a> WorkRef<'a> {
    fn from_tag(tag: &str, id: &'a str) -> Option<WorkRef<'a>> {
        match tag {
            "t" => Some(WorkRef::Task(id)),
            "d" => Some(WorkRef::Delivery(id)),
            "k" => Some(WorkRef::TokenRequest(id)),
            _ => None,
        }
    }

    fn tag(self) -> &'static str {
        match self {
            WorkRef::Task(_) => "t",
            WorkRef::Delivery(_) => "d",
            WorkRef::TokenRequest(_) => "k",
        }
    }

    /// The record's id.
    pub(crate) fn id(self) -> &'a str {
        match self {
            WorkRef::Task(id) | WorkRef::Delivery(id) | WorkRef::TokenRequest(id) => id,
        }
    }

    /// The id of its work item for one attempt: `t.<task>.<attempt>`, `d.<delivery>.<attempt>`
    /// or `k.<connection>.<attempt>`.
    pub(crate) fn work_id(self, attempt: u32) -> String {
        format!("{}.{}.{attempt}", self.tag(), self.id())
    }

    /// Its wake-up entry at `ms`.
    pub(crate) fn due_key(self, ms: i64) -> String {
        match self {
            WorkRef::Task(id) => keys::due_task(ms, id),
            WorkRef::Delivery(id) => keys::due_delivery(ms, id),
            WorkRef::TokenRequest(id) => keys::due_token(ms, id),
        }
    }
}

/// A parsed work item id: which record, and which attempt of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WorkId<'a> {
    /// The record.
    pub what: WorkRef<'a>,
    /// The attempt the item was handed out for.
    pub attempt: u32,
}

impl<'a> WorkId<'a> {
    /// Parse `t.<id>.<attempt>` and its kin; `None` for anything else.
    pub(crate) fn parse(id: &'a str) -> Option<WorkId<'a>> {
        let (tag, rest) = id.split_once('.')?;
        let (rid, attempt) = rest.rsplit_once('.')?;
        if rid.is_empty() || rid.contains('/') {
            return None;
        }
        Some(WorkId {
            what: WorkRef::from_tag(tag, rid)?,
            attempt: attempt.parse().ok()?,
        })
    }
}

/// A parsed wake-up entry (`du/<ms>/<tag>/<id>`, the id in the form of
/// [`keys::id_in_key`]): when, and for what.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DueEntry {
    /// When the work is due (Unix ms).
    pub(crate) ms: i64,
    tag: &'static str,
    id: String,
}

impl DueEntry {
    /// What is due.
    pub(crate) fn what(&self) -> WorkRef<'_> {
        match self.tag {
            "t" => WorkRef::Task(&self.id),
            "d" => WorkRef::Delivery(&self.id),
            _ => WorkRef::TokenRequest(&self.id),
        }
    }
}

/// Parse a wake-up entry's key; `None` for anything else.
pub(crate) fn parse_due_key(key: &str) -> Option<DueEntry> {
    let rest = key.strip_prefix(keys::DUE)?;
    let (ms, rest) = rest.split_once('/')?;
    let (tag, id) = rest.split_once('/')?;
    let tag = WorkRef::from_tag(tag, "")?.tag();
    Some(DueEntry {
        ms: ms.parse().ok()?,
        tag,
        id: keys::id_from_key(id)?,
    })
}

/// The work that [`Engine::due`](crate::Engine::due) hands out: commit `batch` first (it
/// records the leases), then perform `items` and report each outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[must_use = "the lease batch must be committed before the items are performed"]
pub struct DueWork {
    /// Pushes and deliveries to perform now.
    pub items: Vec<WorkItem>,
    /// The lease records to commit before performing them.
    pub batch: Batch,
    /// Records that could not be decoded and were taken off the wake-up index (each with the
    /// reason), so that one corrupt row does not stop all other work. Hosts should log them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

pub(crate) fn lease_until(engine: &Engine, now: i64) -> i64 {
    now.saturating_add(i64::try_from(engine.config.lease_ms).unwrap_or(i64::MAX / 2))
}

pub(crate) fn push_attempts_allowed(engine: &Engine) -> u32 {
    u32::try_from(engine.config.push_retry.len())
        .unwrap_or(u32::MAX - 1)
        .saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_read_as_the_untagged_enum_did() {
        let read = |t: &str| serde_json::from_str::<Outcome>(t).ok();
        let response = |status, headers: &[(&str, &str)], body: &str| Outcome::Response {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.into(),
        };
        assert_eq!(read(r#"{"status":201}"#), Some(response(201, &[], "")));
        assert_eq!(
            read(r#"{"status":200,"headers":{"A":"b"},"body":"x","other":1}"#),
            Some(response(200, &[("A", "b")], "x"))
        );
        let error = |e: &str, permanent| Outcome::Error {
            error: e.into(),
            permanent,
        };
        assert_eq!(
            read(r#"{"error":"timeout"}"#),
            Some(error("timeout", false))
        );
        assert_eq!(
            read(r#"{"error":"refused","permanent":true}"#),
            Some(error("refused", true))
        );
        // A malformed response part falls back to the error variant, as untagged did.
        assert_eq!(
            read(r#"{"status":70000,"error":"x"}"#),
            Some(error("x", false))
        );
        assert_eq!(
            read(r#"{"status":200,"headers":{"A":1},"error":"x"}"#),
            Some(error("x", false))
        );
        for bad in [
            r#"{"status":70000}"#,
            r#"{"status":200.5}"#,
            r#"{"status":200,"body":null}"#,
            r#"{"error":"x","permanent":"yes"}"#,
            r#"{"what":1}"#,
            "null",
            "[]",
        ] {
            assert_eq!(read(bad), None, "{bad}");
        }
        for o in [response(204, &[("Etag", "1")], "{}"), error("e", true)] {
            assert_eq!(read(&serde_json::to_string(&o).unwrap()), Some(o));
        }
    }

    #[test]
    fn work_ids_parse() {
        let id = |s| WorkId::parse(s).map(|w| (w.what, w.attempt));
        assert_eq!(id("t.abc.2"), Some((WorkRef::Task("abc"), 2)));
        assert_eq!(id("d.0190-aa.1"), Some((WorkRef::Delivery("0190-aa"), 1)));
        assert_eq!(id("k.c1.3"), Some((WorkRef::TokenRequest("c1"), 3)));
        assert_eq!(id("x.abc.1"), None);
        assert_eq!(id("t.abc"), None);
        assert_eq!(id("t.a/b.1"), None);
        assert_eq!(id("t..1"), None);
        for w in [
            WorkRef::Task("a"),
            WorkRef::Delivery("b"),
            WorkRef::TokenRequest("c"),
        ] {
            let text = w.work_id(7);
            assert_eq!(
                WorkId::parse(&text).map(|p| (p.what, p.attempt)),
                Some((w, 7))
            );
        }
    }

    #[test]
    fn due_keys_parse() {
        let id = "01a0c450-6c00-700e-80c1-964a263e95de";
        let k = keys::due_task(1234, id);
        let e = parse_due_key(&k).unwrap();
        assert_eq!((e.ms, e.what()), (1234, WorkRef::Task(id)));
        assert_eq!(k.len(), "du/0000000000001234/t/".len() + 22, "{k}");
        assert!(parse_due_key("du/zz/t/x").is_none());
        assert!(
            parse_due_key("du/5/t/not-short").is_none(),
            "an id in no known form"
        );
        assert!(parse_due_key("du/5/q/~x").is_none(), "an unknown tag");
        for w in [
            WorkRef::Task("a"),
            WorkRef::Delivery(id),
            WorkRef::TokenRequest("c"),
        ] {
            let e = parse_due_key(&w.due_key(5)).unwrap();
            assert_eq!((e.ms, e.what()), (5, w));
        }
    }
}
