//! The input [`Document`], the collection of problems, the readers of typed fields with their
//! rules (strings, money, dates, currencies, e-mail addresses, references, computed values), the
//! length limits and the active currencies. Every object validator is built from these.

use std::borrow::Cow;

use serde_json::Value;
use time::Date;

use crate::cdm::{codes, FieldCode, FieldError};
use crate::json::{Json, JsonObject};

/// What a validator takes: a `serde_json::Value`, or a [`Json`] document parsed from the
/// request body (the engine's way: its strings borrow from the body).
pub trait Document {
    /// The document to validate.
    fn doc(&self) -> Cow<'_, Json<'_>>;
}

impl Document for Value {
    fn doc(&self) -> Cow<'_, Json<'_>> {
        Cow::Owned(Json::from_value(self))
    }
}

impl Document for Json<'_> {
    fn doc(&self) -> Cow<'_, Json<'_>> {
        Cow::Borrowed(self)
    }
}

/// Outcome of a validator: the typed object (meta left default) or every problem found.
pub type Validated<T> = Result<T, Vec<FieldError>>;

/// Server-managed fields every object may carry on input; they are ignored by validators.
pub const SERVER_FIELDS: [&str; 4] = ["id", "version", "createdAt", "updatedAt"];

/// Maximum length of names, descriptions, contact names and memos (characters).
pub const MAX_TEXT: usize = 1000;
/// Maximum length of codes, numbers, phone numbers and postal codes (characters).
pub const MAX_CODE: usize = 64;
/// Maximum length of references, external ids, bank accounts, address lines and the ids of
/// referenced objects (characters).
pub const MAX_REF: usize = 255;
/// Maximum length of an e-mail address (characters).
pub const MAX_EMAIL: usize = 254;

/// The active ISO 4217 alphabetic codes (list one, including fund and special codes), sorted
/// so that it can be binary-searched. Withdrawn codes (`HRK`, `SLL`, `ZWL`, `CUC`, `ANG`, ...)
/// are not in it.
pub const ISO_4217_ACTIVE: [&str; 178] = [
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN",
    "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUP", "CVE", "CZK",
    "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS",
    "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD",
    "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD",
    "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT",
    "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK",
    "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD",
    "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP",
    "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS",
    "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES", "VND", "VUV", "WST",
    "XAF", "XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XCD", "XCG", "XDR", "XOF", "XPD", "XPF",
    "XPT", "XSU", "XTS", "XUA", "XXX", "YER", "ZAR", "ZMW", "ZWG",
];

/// The problems found so far.
#[derive(Default)]
pub(super) struct Problems(pub(super) Vec<FieldError>);

impl Problems {
    pub(super) fn add(
        &mut self,
        pointer: impl Into<String>,
        code: FieldCode,
        message: impl Into<String>,
    ) {
        self.0.push(FieldError {
            pointer: pointer.into(),
            code,
            message: message.into(),
        });
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value when nothing was found, else every problem.
    pub(super) fn finish<T>(self, value: T) -> Validated<T> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }
}

/// The pointer of member `key` of the value at `ptr`.
pub(super) fn child(ptr: &str, key: &str) -> String {
    let mut out = String::with_capacity(ptr.len() + 1 + key.len());
    out.push_str(ptr);
    out.push('/');
    for c in key.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            other => out.push(other),
        }
    }
    out
}

/// The pointer of element `index` of the array at `ptr`.
pub(super) fn element(ptr: &str, index: usize) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(ptr.len() + 4);
    out.push_str(ptr);
    out.push('/');
    // Writing to a String cannot fail.
    let _ = write!(out, "{index}");
    out
}

/// A JSON object being validated, with its pointer.
pub(super) struct Obj<'a, 'p> {
    map: &'a JsonObject<'a>,
    pub(super) ptr: Ptr<'p>,
}

/// A JSON Pointer, written out only when a problem names it.
pub(super) enum Ptr<'p> {
    /// The pointer itself.
    Text(&'p str),
    /// A pointer written out already (an array in an array element).
    Owned(String),
    /// Element `index` of the array at member `key` of the object at `parent`.
    Item {
        parent: &'p str,
        key: &'static str,
        index: usize,
    },
}

impl Ptr<'_> {
    /// The pointer's text.
    pub(super) fn text(&self) -> String {
        match self {
            Ptr::Text(t) => t.to_string(),
            Ptr::Owned(t) => t.clone(),
            Ptr::Item { parent, key, index } => element(&child(parent, key), *index),
        }
    }
}

impl<'p> From<&'p str> for Ptr<'p> {
    fn from(t: &'p str) -> Self {
        Ptr::Text(t)
    }
}

impl<'a, 'p> Obj<'a, 'p> {
    /// The object at `ptr`, or an `invalid_type` problem.
    pub(super) fn new(
        v: &'a Json,
        ptr: Ptr<'p>,
        what: &str,
        p: &mut Problems,
    ) -> Option<Obj<'a, 'p>> {
        match v {
            Json::Object(map) => Some(Obj { map, ptr }),
            other => {
                p.add(
                    ptr.text(),
                    codes::INVALID_TYPE,
                    format!("{what} must be a JSON object, not {}", type_name(other)),
                );
                None
            }
        }
    }

    /// The pointer of element `index` of the array at member `key` (written out only when a
    /// problem names it).
    pub(super) fn item(&self, key: &'static str, index: usize) -> Ptr<'_> {
        match &self.ptr {
            Ptr::Text(t) => Ptr::Item {
                parent: t,
                key,
                index,
            },
            Ptr::Item { .. } | Ptr::Owned(_) => Ptr::Owned(element(&self.at(key), index)),
        }
    }

    pub(super) fn at(&self, key: &str) -> String {
        match &self.ptr {
            Ptr::Text(t) => child(t, key),
            Ptr::Owned(t) => child(t, key),
            item => child(&item.text(), key),
        }
    }

    /// The member, `None` when absent or `null`.
    pub(super) fn get(&self, key: &str) -> Option<&'a Json<'a>> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// Report every member that is not in `allowed` (nor a server field when `server` is set).
    pub(super) fn unknown_fields(&self, allowed: &[&str], server: bool, p: &mut Problems) {
        let known = |k: &str| allowed.contains(&k) || (server && SERVER_FIELDS.contains(&k));
        if self.map.all_keys(known) {
            return;
        }
        for key in self.map.keys() {
            if known(key) {
                continue;
            }
            p.add(
                self.at(key),
                codes::UNKNOWN_FIELD,
                format!("unknown field `{key}`"),
            );
        }
    }

    /// A required string member.
    pub(super) fn req_text(&self, key: &str, max: usize, p: &mut Problems) -> Option<String> {
        match self.get(key) {
            None => {
                p.add(
                    self.at(key),
                    codes::REQUIRED,
                    format!("`{key}` is required"),
                );
                None
            }
            Some(v) => text(v, &|| self.at(key), key, max, true, p),
        }
    }

    /// A required code-like member (at most `MAX_CODE` characters) that must be unique in the
    /// tenant: `owner` answers the id of the object holding a value, and the object being
    /// updated (`self_id`) may keep its own.
    pub(super) fn req_unique(
        &self,
        key: &str,
        self_id: Option<&str>,
        owner: impl Fn(&str) -> Option<String>,
        what: &str,
        p: &mut Problems,
    ) -> Option<String> {
        let value = self.req_text(key, MAX_CODE, p)?;
        if let Some(holder) = owner(&value) {
            if Some(holder.as_str()) != self_id {
                p.add(
                    self.at(key),
                    codes::DUPLICATE,
                    format!("{what} with {key} `{value}` already exists"),
                );
            }
        }
        Some(value)
    }

    /// An optional string member (`None` when absent or invalid).
    pub(super) fn opt_text(&self, key: &str, max: usize, p: &mut Problems) -> Option<String> {
        self.get(key)
            .and_then(|v| text(v, &|| self.at(key), key, max, false, p))
    }

    /// A required integer member (money, minor units).
    pub(super) fn req_int(&self, key: &str, p: &mut Problems) -> Option<i64> {
        match self.get(key) {
            None => {
                p.add(
                    self.at(key),
                    codes::REQUIRED,
                    format!("`{key}` is required"),
                );
                None
            }
            Some(v) => integer(v, &|| self.at(key), key, p),
        }
    }

    /// An optional integer member.
    pub(super) fn opt_int(&self, key: &str, p: &mut Problems) -> Option<i64> {
        self.get(key)
            .and_then(|v| integer(v, &|| self.at(key), key, p))
    }

    /// A required date member.
    pub(super) fn req_date(&self, key: &str, p: &mut Problems) -> Option<(String, Date)> {
        let s = self.req_text(key, MAX_CODE, p)?;
        let parsed = parse_date(&s, &|| self.at(key), key, p)?;
        Some((s, parsed))
    }

    /// A required currency member.
    pub(super) fn req_currency(&self, key: &str, p: &mut Problems) -> Option<String> {
        let s = self.req_text(key, MAX_CODE, p)?;
        check_currency(&s, &|| self.at(key), key, p).then_some(s)
    }

    /// An optional e-mail member.
    pub(super) fn opt_email(&self, key: &str, p: &mut Problems) -> Option<String> {
        let s = self.opt_text(key, MAX_EMAIL, p)?;
        if is_email(&s) {
            Some(s)
        } else {
            p.add(
                self.at(key),
                codes::INVALID_FORMAT,
                format!("`{key}` must be an e-mail address like name@example.com"),
            );
            None
        }
    }
}

/// The JSON type of a value, for messages.
pub(super) fn type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// A string value; `required` makes a blank string a `required` problem.
fn text(
    v: &Json,
    ptr: &dyn Fn() -> String,
    key: &str,
    max: usize,
    required: bool,
    p: &mut Problems,
) -> Option<String> {
    let Json::String(s) = v else {
        p.add(
            ptr(),
            codes::INVALID_TYPE,
            format!("`{key}` must be a string, not {}", type_name(v)),
        );
        return None;
    };
    if required && s.trim().is_empty() {
        p.add(ptr(), codes::REQUIRED, format!("`{key}` must not be empty"));
        return None;
    }
    // Counting characters only when the bytes could be too many (a character is 1 to 4).
    let len = if s.len() <= max {
        s.len()
    } else {
        s.chars().count()
    };
    if len > max {
        p.add(
            ptr(),
            codes::TOO_LONG,
            format!("`{key}` has {len} characters, at most {max} are allowed"),
        );
        return None;
    }
    Some(s.to_string())
}

/// Money: a JSON integer that fits a signed 64-bit integer.
fn integer(v: &Json, ptr: &dyn Fn() -> String, key: &str, p: &mut Problems) -> Option<i64> {
    let Json::Number(n) = v else {
        p.add(
            ptr(),
            codes::INVALID_TYPE,
            format!(
                "`{key}` must be an integer in minor units, not {}",
                type_name(v)
            ),
        );
        return None;
    };
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    // An integer literal beyond the 64-bit range (serde_json keeps those as u64 or f64).
    let too_big = n.is_u64()
        || n.as_f64()
            .is_some_and(|f| f.is_finite() && f.fract() == 0.0 && f.abs() >= 9.2e18);
    if too_big {
        p.add(
            ptr(),
            codes::OUT_OF_RANGE,
            format!("`{key}` must fit in a signed 64-bit integer"),
        );
    } else {
        p.add(
            ptr(),
            codes::INVALID_TYPE,
            format!("`{key}` must be an integer in minor units, not a decimal number ({n})"),
        );
    }
    None
}

/// Parse a `YYYY-MM-DD` business date that must exist in the calendar.
fn parse_date(s: &str, ptr: &dyn Fn() -> String, key: &str, p: &mut Problems) -> Option<Date> {
    let b = s.as_bytes();
    let shaped = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    if !shaped {
        p.add(
            ptr(),
            codes::INVALID_FORMAT,
            format!("`{key}` must be a date written YYYY-MM-DD"),
        );
        return None;
    }
    // The shape is checked above: four, two and two ASCII digits at fixed places. Whether the
    // date exists is time's answer.
    let number = |from: usize, to: usize| s.get(from..to).and_then(|d| d.parse::<u16>().ok());
    let date = match (number(0, 4), number(5, 7), number(8, 10)) {
        (Some(year), Some(month), Some(day)) => u8::try_from(month)
            .ok()
            .and_then(|m| time::Month::try_from(m).ok())
            .zip(u8::try_from(day).ok())
            .and_then(|(m, d)| Date::from_calendar_date(i32::from(year), m, d).ok()),
        _ => None,
    };
    match date {
        Some(d) => Some(d),
        None => {
            p.add(
                ptr(),
                codes::INVALID_VALUE,
                format!("`{key}` is not a calendar date: {s}"),
            );
            None
        }
    }
}

/// Whether a currency code is well formed and active; reports the problem otherwise.
fn check_currency(s: &str, ptr: &dyn Fn() -> String, key: &str, p: &mut Problems) -> bool {
    if s.len() != 3 || !s.bytes().all(|c| c.is_ascii_uppercase()) {
        p.add(
            ptr(),
            codes::INVALID_FORMAT,
            format!("`{key}` must be an ISO 4217 code of three uppercase letters, like EUR"),
        );
        return false;
    }
    if ISO_4217_ACTIVE.binary_search(&s).is_err() {
        p.add(
            ptr(),
            codes::INVALID_VALUE,
            format!("`{key}` {s} is not an active ISO 4217 currency code"),
        );
        return false;
    }
    true
}

/// A pragmatic structural e-mail check: one `@`, a non-empty local part, a domain with a dot
/// and no empty label, no whitespace or control characters, at most [`MAX_EMAIL`] characters.
fn is_email(s: &str) -> bool {
    if s.chars().count() > MAX_EMAIL || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let mut parts = s.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty() && domain.contains('.') && domain.split('.').all(|label| !label.is_empty())
}

/// An optional reference to another object: a string that must name an existing one.
pub(super) fn check_ref(
    o: &Obj<'_, '_>,
    key: &str,
    what: &str,
    exists: &dyn Fn(&str) -> bool,
    p: &mut Problems,
) -> Option<String> {
    let id = o.opt_text(key, MAX_REF, p)?;
    if exists(&id) {
        Some(id)
    } else {
        p.add(
            o.at(key),
            codes::NOT_FOUND,
            format!("no {what} with id `{id}` exists"),
        );
        None
    }
}

/// Compare a client-sent computed value with the server's.
pub(super) fn check_computed(
    sent: Option<i64>,
    computed: Option<i64>,
    o: &Obj<'_, '_>,
    key: &str,
    p: &mut Problems,
) {
    if let (Some(s), Some(c)) = (sent, computed) {
        if s != c {
            p.add(
                o.at(key),
                codes::MISMATCH,
                format!("`{key}` is {s} but the server computes {c}"),
            );
        }
    }
}

/// The required `lines` array of an invoice or expense: its elements, or `None` after reporting.
pub(super) fn lines_array<'a>(o: &Obj<'a, '_>, p: &mut Problems) -> Option<&'a Vec<Json<'a>>> {
    match o.get("lines") {
        None => {
            p.add(
                o.at("lines"),
                codes::REQUIRED,
                "`lines` is required (at least one line)",
            );
            None
        }
        Some(Json::Array(items)) => {
            if items.is_empty() {
                p.add(
                    o.at("lines"),
                    codes::TOO_FEW,
                    "at least one line is required",
                );
                None
            } else {
                Some(items)
            }
        }
        Some(other) => {
            p.add(
                o.at("lines"),
                codes::INVALID_TYPE,
                format!("`lines` must be an array, not {}", type_name(other)),
            );
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Dates are read by position and checked by time's calendar: the same answers as time's
    /// own `[year]-[month]-[day]` parser, on every month and day number from 00 to 99 in years
    /// around the calendar's edges and leap rules, and on malformed text.
    #[test]
    fn dates_match_times_parser() {
        let description = time::macros::format_description!("[year]-[month]-[day]");
        let mut texts = Vec::new();
        for year in [
            0, 1, 4, 100, 400, 1582, 1900, 1970, 2000, 2024, 2026, 2100, 9999,
        ] {
            for month in 0..100 {
                for day in 0..100 {
                    texts.push(format!("{year:04}-{month:02}-{day:02}"));
                }
            }
        }
        for bad in [
            "",
            "2026-1-01",
            "2026-01-1",
            "20260101",
            "2026/01/01",
            "2026-01-01T00:00:00Z",
        ] {
            texts.push(bad.to_string());
        }
        let mut valid = 0;
        for text in &texts {
            let mut p = Problems(Vec::new());
            let ours = parse_date(text, &|| "/d".to_string(), "d", &mut p);
            let theirs = Date::parse(text, &description).ok();
            assert_eq!(ours, theirs, "{text}");
            assert_eq!(p.0.is_empty(), ours.is_some(), "{text}");
            valid += usize::from(ours.is_some());
        }
        // 13 years of 365 or 366 days; 0, 4, 400, 2000 and 2024 are leap years.
        assert_eq!(valid, 13 * 365 + 5);
    }

    #[test]
    fn currency_list_is_sorted_and_plausible() {
        assert!(ISO_4217_ACTIVE.windows(2).all(|w| w[0] < w[1]));
        assert!(ISO_4217_ACTIVE
            .iter()
            .all(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase())));
        for c in [
            "EUR", "USD", "GBP", "JPY", "CHF", "AED", "ZWG", "XCG", "SLE", "VES",
        ] {
            assert!(ISO_4217_ACTIVE.binary_search(&c).is_ok(), "{c}");
        }
        for c in ["HRK", "SLL", "ZWL", "DEM", "FRF", "ABC"] {
            assert!(ISO_4217_ACTIVE.binary_search(&c).is_err(), "{c}");
        }
    }
}
