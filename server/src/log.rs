//! Structured logs: one JSON object per line on stderr.
//!
//! Every line has `ts` (RFC 3339, UTC), `level` and `msg`, then the fields of the event.
//! Lines about one request or one sync carry `requestId`, `trackingId` and `syncId` when they
//! are known. Callers never pass secrets: no `Authorization` header, no request or answer
//! body, no token.
//!
//! The output can be switched off (the demo, `writesync-demo`, prints its own story on stdout
//! and keeps the server quiet unless asked).

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use serde_json::Value;

use crate::state::now_ms;

static ENABLED: AtomicBool = AtomicBool::new(true);
static MIN_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Turn log output on or off for the whole process.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Write only lines of `level` and above (default: [`Level::Info`]).
pub fn set_min_level(level: Level) {
    MIN_LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Severity of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Details of normal operation (each push attempt, ...).
    Debug,
    /// Normal operation (startup, each request).
    Info,
    /// Something went wrong outside the server (a refused push, a failed read).
    Warn,
    /// Something went wrong in the server (storage).
    Error,
}

impl Level {
    /// Parse `debug`, `info`, `warn` or `error`.
    pub fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_lowercase().as_str() {
            "debug" => Some(Level::Debug),
            "info" => Some(Level::Info),
            "warn" | "warning" => Some(Level::Warn),
            "error" => Some(Level::Error),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// Format one log line (without the newline): `ts`, `level` and `msg` first, then the fields
/// in the order given. Fields whose value is `null` are left out.
pub fn format_line(level: Level, msg: &str, fields: &[(&str, Value)]) -> String {
    let ts = writesync_core::util::time::rfc3339_millis(now_ms());
    // Serialized straight into one buffer (a line is written for every request and every
    // push or delivery attempt). Writing JSON into a Vec cannot fail.
    let mut out: Vec<u8> = Vec::with_capacity(256);
    out.push(b'{');
    let push = |out: &mut Vec<u8>, k: &str, v: &dyn erased::Json| {
        if out.len() > 1 {
            out.push(b',');
        }
        let _ = serde_json::to_writer(&mut *out, k);
        out.push(b':');
        v.write(out);
    };
    push(&mut out, "ts", &ts.as_str());
    push(&mut out, "level", &level.as_str());
    push(&mut out, "msg", &msg);
    for (i, (k, v)) in fields.iter().enumerate() {
        let repeated = ["ts", "level", "msg"].contains(k)
            || fields[..i].iter().any(|(p, pv)| p == k && !pv.is_null());
        if v.is_null() || repeated {
            continue;
        }
        push(&mut out, k, v);
    }
    out.push(b'}');
    String::from_utf8(out).unwrap_or_default()
}

/// What a log line's values are written from: text, or any JSON value.
mod erased {
    use serde_json::Value;

    pub(super) trait Json {
        fn write(&self, out: &mut Vec<u8>);
    }

    impl Json for &str {
        fn write(&self, out: &mut Vec<u8>) {
            let _ = serde_json::to_writer(out, self);
        }
    }

    impl Json for Value {
        fn write(&self, out: &mut Vec<u8>) {
            let _ = serde_json::to_writer(out, self);
        }
    }
}

/// Write one line to stderr (when enabled). Fields whose value is `null` are left out.
pub fn log(level: Level, msg: &str, fields: &[(&str, Value)]) {
    if !ENABLED.load(Ordering::Relaxed) || (level as u8) < MIN_LEVEL.load(Ordering::Relaxed) {
        return;
    }
    let line = format_line(level, msg, fields);
    let mut err = std::io::stderr().lock();
    // A closed stderr must not take the server down.
    let _ = writeln!(err, "{line}");
}

/// [`log`] at [`Level::Info`].
pub fn info(msg: &str, fields: &[(&str, Value)]) {
    log(Level::Info, msg, fields);
}

/// [`log`] at [`Level::Warn`].
pub fn warn(msg: &str, fields: &[(&str, Value)]) {
    log(Level::Warn, msg, fields);
}

/// [`log`] at [`Level::Error`].
pub fn error(msg: &str, fields: &[(&str, Value)]) {
    log(Level::Error, msg, fields);
}

/// [`log`] at [`Level::Debug`].
pub fn debug(msg: &str, fields: &[(&str, Value)]) {
    log(Level::Debug, msg, fields);
}

/// A JSON string value, or `null` when absent (so that the field is left out).
pub fn opt(v: Option<&str>) -> Value {
    v.map_or(Value::Null, |s| Value::String(s.to_string()))
}

/// A URL without credentials, query string and fragment, for logs (they may carry tokens).
pub fn redact_url(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..end];
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match scheme {
        Some(s) => format!("{s}://{host}{path}"),
        None => format!("{host}{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_are_json_with_fields() {
        let l = format_line(
            Level::Info,
            "hello",
            &[("requestId", json!("r1")), ("syncId", Value::Null)],
        );
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["msg"], "hello");
        assert_eq!(v["level"], "info");
        assert_eq!(v["requestId"], "r1");
        assert!(v.get("syncId").is_none());
        assert!(v["ts"].as_str().unwrap().ends_with('Z'));
        assert!(l.starts_with("{\"ts\":"), "{l}");
        assert!(
            l.ends_with(r#"Z","level":"info","msg":"hello","requestId":"r1"}"#),
            "{l}"
        );
        // A repeated key keeps its first value that is not null.
        let twice = format_line(
            Level::Info,
            "m",
            &[("a", Value::Null), ("a", json!(1)), ("a", json!(2))],
        );
        assert!(twice.ends_with(r#""msg":"m","a":1}"#), "{twice}");
        let dup = format_line(
            Level::Warn,
            "m",
            &[("msg", json!("x")), ("a", json!("q\"\n"))],
        );
        let v: Value = serde_json::from_str(&dup).unwrap();
        assert_eq!(v["msg"], "m");
        assert_eq!(v["a"], "q\"\n");
    }

    #[test]
    fn urls_lose_their_query() {
        assert_eq!(
            redact_url("https://h.example.com/p?token=x#f"),
            "https://h.example.com/p"
        );
        assert_eq!(redact_url("http://a/b"), "http://a/b");
        assert_eq!(
            redact_url("https://user:pw@h.example.com:8443/p/q?x"),
            "https://h.example.com:8443/p/q"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
