//! Validators of the Common Data Model (section 3 of the HTTP contract).
//!
//! Every validator walks a `serde_json::Value` instead of deserialising it with serde, so that it
//! can report *every* problem of a body, each with a JSON Pointer (RFC 6901) into the body, a
//! stable code from [`codes`] and a message for people. A validator never panics, whatever the
//! input: money arithmetic is checked and an overflow is reported as [`codes::OVERFLOW`].
//!
//! Rules common to every object:
//!
//! - A body that is not a JSON object (where one is required) gives a single `invalid_type` at
//!   the object's pointer.
//! - The server-managed fields [`SERVER_FIELDS`] are ignored on input (on top-level objects and
//!   on the nested `vendor` of an expense); any other field the object does not have is
//!   `unknown_field` at its pointer. Nested parts (lines, addresses) accept no server fields.
//! - `null` for an optional field means the field is absent; for a required field it is
//!   `required`.
//! - A required string that is empty after trimming whitespace is `required`. Strings are
//!   stored as sent (not trimmed). Lengths are counted in Unicode scalar values: see
//!   [`MAX_TEXT`], [`MAX_CODE`], [`MAX_REF`], [`MAX_EMAIL`]; a longer string is `too_long`.
//! - Money is a JSON integer in minor units that fits a signed 64-bit integer: a float or a
//!   string is `invalid_type`, an integer beyond the 64-bit range is `out_of_range`.
//! - Dates are `YYYY-MM-DD` (`invalid_format` otherwise) and must be real calendar dates
//!   (`invalid_value` for e.g. `2023-02-29`).
//! - Currencies are three uppercase ASCII letters (`invalid_format` otherwise) that are an active
//!   ISO 4217 code ([`ISO_4217_ACTIVE`]; `invalid_value` otherwise).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

use crate::json::{Json, JsonObject};
use time::Date;

use crate::cdm::*;

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
/// Maximum number of decimal places of an invoice line quantity (after removing trailing zeros).
pub const MAX_QUANTITY_SCALE: u32 = 6;

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

/// The fields of a customer besides [`SERVER_FIELDS`].
const CUSTOMER_FIELDS: &[&str] = &["name", "email", "phone", "contactName", "billingAddress"];
/// The fields of a vendor besides [`SERVER_FIELDS`].
const VENDOR_FIELDS: &[&str] = &["name", "email", "phone", "address"];
/// The fields of an address.
const ADDRESS_FIELDS: &[&str] = &["line1", "line2", "city", "region", "postalCode", "country"];
/// The fields of an account besides [`SERVER_FIELDS`].
const ACCOUNT_FIELDS: &[&str] = &["code", "name", "type", "description", "active"];
/// The fields of an invoice besides [`SERVER_FIELDS`].
const INVOICE_FIELDS: &[&str] = &[
    "number",
    "customerId",
    "issueDate",
    "dueDate",
    "currency",
    "lines",
    "memo",
    "total",
    "amountPaid",
    "balance",
    "status",
];
/// The fields of an invoice line.
const INVOICE_LINE_FIELDS: &[&str] = &[
    "description",
    "quantity",
    "unitAmount",
    "accountId",
    "taxAmount",
    "amount",
];
/// The fields of a payment body besides [`SERVER_FIELDS`].
const PAYMENT_FIELDS: &[&str] = &["amount", "date", "reference", "invoiceId", "currency"];
/// The fields of an expense besides [`SERVER_FIELDS`].
const EXPENSE_FIELDS: &[&str] = &[
    "vendorId", "vendor", "date", "currency", "lines", "memo", "total",
];
/// The fields of an expense line.
const EXPENSE_LINE_FIELDS: &[&str] = &["description", "amount", "accountId"];
/// The fields of a bank transaction besides [`SERVER_FIELDS`].
const BANK_FIELDS: &[&str] = &[
    "bankAccount",
    "date",
    "amount",
    "currency",
    "description",
    "reference",
    "externalId",
];

// ---------------------------------------------------------------------------------------------
// Public helpers
// ---------------------------------------------------------------------------------------------

/// Escape one JSON Pointer reference token (RFC 6901): `~` becomes `~0`, `/` becomes `~1`.
pub fn pointer_token(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            other => out.push(other),
        }
    }
    out
}

/// RFC 7396 JSON merge patch applied in place.
///
/// A patch that is an object merges member by member (`null` removes a member); any other patch
/// replaces the target.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(members) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (key, value) in members {
            if value.is_null() {
                map.remove(key);
            } else {
                merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Remove [`SERVER_FIELDS`] (and nothing else, computed fields included) from an object value in
/// place. Any other value is left as it is.
pub fn strip_server_fields(v: &mut Value) {
    if let Value::Object(map) = v {
        for field in SERVER_FIELDS {
            map.remove(field);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Problem collection and field access
// ---------------------------------------------------------------------------------------------

/// The problems found so far.
#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, pointer: impl Into<String>, code: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            pointer: pointer.into(),
            code: code.to_string(),
            message: message.into(),
        });
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value when nothing was found, else every problem.
    fn finish<T>(self, value: T) -> Validated<T> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }
}

/// The pointer of member `key` of the value at `ptr`.
fn child(ptr: &str, key: &str) -> String {
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
fn element(ptr: &str, index: usize) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(ptr.len() + 4);
    out.push_str(ptr);
    out.push('/');
    // Writing to a String cannot fail.
    let _ = write!(out, "{index}");
    out
}

/// A JSON object being validated, with its pointer.
struct Obj<'a> {
    map: &'a JsonObject<'a>,
    ptr: String,
}

impl<'a> Obj<'a> {
    /// The object at `ptr`, or an `invalid_type` problem.
    fn new(
        v: &'a Json,
        ptr: impl Into<String> + AsRef<str>,
        what: &str,
        p: &mut Problems,
    ) -> Option<Obj<'a>> {
        match v {
            Json::Object(map) => Some(Obj {
                map,
                ptr: ptr.into(),
            }),
            other => {
                p.add(
                    ptr.as_ref(),
                    codes::INVALID_TYPE,
                    format!("{what} must be a JSON object, not {}", type_name(other)),
                );
                None
            }
        }
    }

    fn at(&self, key: &str) -> String {
        child(&self.ptr, key)
    }

    /// The member, `None` when absent or `null`.
    fn get(&self, key: &str) -> Option<&'a Json<'a>> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// Report every member that is not in `allowed` (nor a server field when `server` is set).
    fn unknown_fields(&self, allowed: &[&str], server: bool, p: &mut Problems) {
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
    fn req_text(&self, key: &str, max: usize, p: &mut Problems) -> Option<String> {
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
    fn req_unique(
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
    fn opt_text(&self, key: &str, max: usize, p: &mut Problems) -> Option<String> {
        self.get(key)
            .and_then(|v| text(v, &|| self.at(key), key, max, false, p))
    }

    /// A required integer member (money, minor units).
    fn req_int(&self, key: &str, p: &mut Problems) -> Option<i64> {
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
    fn opt_int(&self, key: &str, p: &mut Problems) -> Option<i64> {
        self.get(key)
            .and_then(|v| integer(v, &|| self.at(key), key, p))
    }

    /// A required date member.
    fn req_date(&self, key: &str, p: &mut Problems) -> Option<(String, Date)> {
        let s = self.req_text(key, MAX_CODE, p)?;
        let parsed = parse_date(&s, &|| self.at(key), key, p)?;
        Some((s, parsed))
    }

    /// A required currency member.
    fn req_currency(&self, key: &str, p: &mut Problems) -> Option<String> {
        let s = self.req_text(key, MAX_CODE, p)?;
        check_currency(&s, &|| self.at(key), key, p).then_some(s)
    }

    /// An optional e-mail member.
    fn opt_email(&self, key: &str, p: &mut Problems) -> Option<String> {
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
fn type_name(v: &Json) -> &'static str {
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
    let len = s.chars().count();
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
fn check_ref(
    o: &Obj<'_>,
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

// ---------------------------------------------------------------------------------------------
// Decimal quantities and money arithmetic
// ---------------------------------------------------------------------------------------------

/// An exact decimal `mantissa x 10^-scale`, normalised (no trailing zeros in the mantissa).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Decimal {
    mantissa: i128,
    scale: u32,
}

/// Why a number's text is not a usable quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecimalError {
    /// Not the text of a JSON number.
    Syntax,
    /// More than [`MAX_QUANTITY_SCALE`] decimal places.
    TooPrecise,
    /// Too large to compute with.
    TooLarge,
}

/// Parse the decimal text of a JSON number (`-12.5`, `1e-7`, `3.0E+2`) exactly.
fn parse_decimal(text: &str) -> Result<Decimal, DecimalError> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (number, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let (int_part, frac_part) = match number.find('.') {
        Some(i) => (&number[..i], &number[i + 1..]),
        None => (number, ""),
    };
    let digits_ok = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    if int_part.is_empty() || !digits_ok(int_part) || !digits_ok(frac_part) {
        return Err(DecimalError::Syntax);
    }
    if number.contains('.') && frac_part.is_empty() {
        return Err(DecimalError::Syntax);
    }
    // The exponent, saturating: absurd exponents end in TooLarge/TooPrecise below.
    let mut exp: i64 = 0;
    if let Some(e) = exponent {
        let (sign, e_digits) = match e.as_bytes().first() {
            Some(b'-') => (-1, &e[1..]),
            Some(b'+') => (1, &e[1..]),
            _ => (1, e),
        };
        if e_digits.is_empty() || !digits_ok(e_digits) {
            return Err(DecimalError::Syntax);
        }
        for c in e_digits.bytes() {
            exp = exp.saturating_mul(10).saturating_add(i64::from(c - b'0'));
        }
        exp = exp.saturating_mul(sign);
    }
    // All significant digits, without leading zeros; trailing zeros move into the exponent.
    let all: Vec<u8> = int_part.bytes().chain(frac_part.bytes()).collect();
    let frac_len = i64::try_from(frac_part.len()).map_err(|_| DecimalError::TooLarge)?;
    let significant: &[u8] = match all.iter().position(|c| *c != b'0') {
        Some(first) => &all[first..],
        None => {
            return Ok(Decimal {
                mantissa: 0,
                scale: 0,
            })
        }
    };
    let trailing = significant.iter().rev().take_while(|c| **c == b'0').count();
    let kept = &significant[..significant.len() - trailing];
    let trailing = i64::try_from(trailing).map_err(|_| DecimalError::TooLarge)?;
    // value = kept x 10^power
    let power = exp.saturating_sub(frac_len).saturating_add(trailing);
    if power < -i64::from(MAX_QUANTITY_SCALE) {
        return Err(DecimalError::TooPrecise);
    }
    let mut mantissa: i128 = 0;
    for c in kept {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(i128::from(c - b'0')))
            .ok_or(DecimalError::TooLarge)?;
    }
    let scale = if power >= 0 {
        let shift = u32::try_from(power).map_err(|_| DecimalError::TooLarge)?;
        let factor = 10i128.checked_pow(shift).ok_or(DecimalError::TooLarge)?;
        mantissa = mantissa.checked_mul(factor).ok_or(DecimalError::TooLarge)?;
        0
    } else {
        u32::try_from(-power).map_err(|_| DecimalError::TooPrecise)?
    };
    if negative {
        mantissa = -mantissa;
    }
    Ok(Decimal { mantissa, scale })
}

/// `n / d` rounded half to even (`d > 0`).
fn div_round_half_even(n: i128, d: i128) -> Option<i128> {
    if d <= 0 {
        return None;
    }
    let q = n.div_euclid(d);
    let r = n.rem_euclid(d);
    let twice = r.checked_mul(2)?;
    if twice > d || (twice == d && q % 2 != 0) {
        q.checked_add(1)
    } else {
        Some(q)
    }
}

/// `quantity x unit_amount` rounded half to even to the minor unit, plus `tax`; `None` when the
/// result does not fit a signed 64-bit integer.
fn line_amount(quantity: Decimal, unit_amount: i64, tax: i64) -> Option<i64> {
    let product = quantity.mantissa.checked_mul(i128::from(unit_amount))?;
    let divisor = 10i128.checked_pow(quantity.scale)?;
    let rounded = div_round_half_even(product, divisor)?;
    let amount = rounded.checked_add(i128::from(tax))?;
    i64::try_from(amount).ok()
}

/// The checked sum of amounts.
fn checked_sum(amounts: impl IntoIterator<Item = i64>) -> Option<i64> {
    amounts.into_iter().try_fold(0i64, i64::checked_add)
}

/// Compare a client-sent computed value with the server's.
fn check_computed(
    sent: Option<i64>,
    computed: Option<i64>,
    o: &Obj<'_>,
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

// ---------------------------------------------------------------------------------------------
// Customers, vendors, accounts
// ---------------------------------------------------------------------------------------------

/// An address object at `ptr`.
fn address(v: &Json, ptr: &str, p: &mut Problems) -> Option<Address> {
    let o = Obj::new(v, ptr, "an address", p)?;
    let country = o.opt_text("country", MAX_CODE, p).and_then(|c| {
        if c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()) {
            Some(c)
        } else {
            p.add(
                o.at("country"),
                codes::INVALID_FORMAT,
                "`country` must be an ISO 3166-1 alpha-2 code of two uppercase letters, like DE",
            );
            None
        }
    });
    let a = Address {
        line1: o.opt_text("line1", MAX_REF, p),
        line2: o.opt_text("line2", MAX_REF, p),
        city: o.opt_text("city", MAX_REF, p),
        region: o.opt_text("region", MAX_REF, p),
        postal_code: o.opt_text("postalCode", MAX_CODE, p),
        country,
    };
    o.unknown_fields(ADDRESS_FIELDS, false, p);
    Some(a)
}

/// Validate a customer.
///
/// `name` is required; `email` must be an e-mail address; optional `phone`, `contactName` and
/// `billingAddress`. Customers have no uniqueness rule, so `refs` and `self_id` are not used
/// today; they are part of the signature for rules to come.
pub fn validate_customer(
    body: &(impl Document + ?Sized),
    _refs: &dyn RefLookup,
    _self_id: Option<&str>,
) -> Validated<Customer> {
    validate_customer_doc(&body.doc(), _refs, _self_id)
}

/// [`validate_customer`] on a parsed document (one body of code whatever the caller's input type).
fn validate_customer_doc(
    body: &Json<'_>,
    _refs: &dyn RefLookup,
    _self_id: Option<&str>,
) -> Validated<Customer> {
    let mut p = Problems::default();
    let Some(o) = Obj::new(body, "", "a customer", &mut p) else {
        return Err(p.0);
    };
    let customer = Customer {
        meta: Meta::default(),
        name: o.req_text("name", MAX_TEXT, &mut p).unwrap_or_default(),
        email: o.opt_email("email", &mut p),
        phone: o.opt_text("phone", MAX_CODE, &mut p),
        contact_name: o.opt_text("contactName", MAX_TEXT, &mut p),
        billing_address: o
            .get("billingAddress")
            .and_then(|v| address(v, &o.at("billingAddress"), &mut p)),
    };
    o.unknown_fields(CUSTOMER_FIELDS, true, &mut p);
    p.finish(customer)
}

/// The fields of a vendor object at `prefix`.
fn vendor_at(body: &Json, prefix: &str, p: &mut Problems) -> Option<Vendor> {
    let o = Obj::new(body, prefix, "a vendor", p)?;
    let vendor = Vendor {
        meta: Meta::default(),
        name: o.req_text("name", MAX_TEXT, p).unwrap_or_default(),
        email: o.opt_email("email", p),
        phone: o.opt_text("phone", MAX_CODE, p),
        address: o
            .get("address")
            .and_then(|v| address(v, &o.at("address"), p)),
    };
    o.unknown_fields(VENDOR_FIELDS, true, p);
    Some(vendor)
}

/// Validate a vendor: `name` required; optional `email`, `phone`, `address`.
///
/// `prefix` is the JSON Pointer of the vendor object inside the body ("" at top level,
/// "/vendor" when nested in an expense).
pub fn validate_vendor(body: &(impl Document + ?Sized), prefix: &str) -> Validated<Vendor> {
    validate_vendor_doc(&body.doc(), prefix)
}

/// [`validate_vendor`] on a parsed document (one body of code whatever the caller's input type).
fn validate_vendor_doc(body: &Json<'_>, prefix: &str) -> Validated<Vendor> {
    let mut p = Problems::default();
    let vendor = vendor_at(body, prefix, &mut p);
    match vendor {
        Some(v) => p.finish(v),
        None => Err(p.0),
    }
}

/// Validate an account of the chart of accounts.
///
/// `code` (unique in the tenant: `duplicate`), `name`, `type` (one of `asset`, `liability`,
/// `equity`, `income`, `expense`: `invalid_value`); optional `description`, `active` (a
/// boolean, default true). `self_id` is the id of the account being updated, if any.
pub fn validate_account(
    body: &(impl Document + ?Sized),
    refs: &dyn RefLookup,
    self_id: Option<&str>,
) -> Validated<Account> {
    validate_account_doc(&body.doc(), refs, self_id)
}

/// [`validate_account`] on a parsed document (one body of code whatever the caller's input type).
fn validate_account_doc(
    body: &Json<'_>,
    refs: &dyn RefLookup,
    self_id: Option<&str>,
) -> Validated<Account> {
    let mut p = Problems::default();
    let Some(o) = Obj::new(body, "", "an account", &mut p) else {
        return Err(p.0);
    };
    let code = o.req_unique(
        "code",
        self_id,
        |c| refs.account_code_owner(c),
        "an account",
        &mut p,
    );
    let name = o.req_text("name", MAX_TEXT, &mut p);
    let account_type = match o.get("type") {
        None => {
            p.add(o.at("type"), codes::REQUIRED, "`type` is required");
            None
        }
        Some(Json::String(s)) => {
            let t = match &**s {
                "asset" => Some(AccountType::Asset),
                "liability" => Some(AccountType::Liability),
                "equity" => Some(AccountType::Equity),
                "income" => Some(AccountType::Income),
                "expense" => Some(AccountType::Expense),
                _ => None,
            };
            if t.is_none() {
                p.add(
                    o.at("type"),
                    codes::INVALID_VALUE,
                    format!(
                        "`type` must be one of asset, liability, equity, income, expense, not `{s}`"
                    ),
                );
            }
            t
        }
        Some(other) => {
            p.add(
                o.at("type"),
                codes::INVALID_TYPE,
                format!("`type` must be a string, not {}", type_name(other)),
            );
            None
        }
    };
    let description = o.opt_text("description", MAX_TEXT, &mut p);
    let active = match o.get("active") {
        None => true,
        Some(Json::Bool(b)) => *b,
        Some(other) => {
            p.add(
                o.at("active"),
                codes::INVALID_TYPE,
                format!("`active` must be a boolean, not {}", type_name(other)),
            );
            true
        }
    };
    o.unknown_fields(ACCOUNT_FIELDS, true, &mut p);
    p.finish(Account {
        meta: Meta::default(),
        code: code.unwrap_or_default(),
        name: name.unwrap_or_default(),
        account_type: account_type.unwrap_or_default(),
        description,
        active,
    })
}

// ---------------------------------------------------------------------------------------------
// Invoices and payments
// ---------------------------------------------------------------------------------------------

/// The required `lines` array of an invoice or expense: its elements, or `None` after reporting.
fn lines_array<'a>(o: &Obj<'a>, p: &mut Problems) -> Option<&'a Vec<Json<'a>>> {
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

/// The quantity of an invoice line: a JSON number > 0 with at most six decimal places.
fn quantity(o: &Obj<'_>, p: &mut Problems) -> Option<(Number, Decimal)> {
    let ptr = || o.at("quantity");
    let n = match o.get("quantity") {
        None => {
            p.add(ptr(), codes::REQUIRED, "`quantity` is required");
            return None;
        }
        Some(Json::Number(n)) => n,
        Some(other) => {
            p.add(
                ptr(),
                codes::INVALID_TYPE,
                format!("`quantity` must be a number, not {}", type_name(other)),
            );
            return None;
        }
    };
    match parse_decimal(&n.to_string()) {
        Ok(d) if d.mantissa > 0 => Some((n.clone(), d)),
        Ok(_) => {
            p.add(
                ptr(),
                codes::OUT_OF_RANGE,
                "`quantity` must be greater than 0",
            );
            None
        }
        Err(DecimalError::TooPrecise) => {
            p.add(
                ptr(),
                codes::INVALID_FORMAT,
                format!("`quantity` may have at most {MAX_QUANTITY_SCALE} decimal places ({n})"),
            );
            None
        }
        Err(DecimalError::TooLarge) => {
            p.add(
                ptr(),
                codes::OUT_OF_RANGE,
                format!("`quantity` is too large ({n})"),
            );
            None
        }
        Err(DecimalError::Syntax) => {
            p.add(
                ptr(),
                codes::INVALID_FORMAT,
                format!("`quantity` is not a decimal number ({n})"),
            );
            None
        }
    }
}

/// One invoice line; the computed amount is `None` when it could not be computed.
fn invoice_line(
    v: &Json,
    ptr: String,
    refs: &dyn RefLookup,
    p: &mut Problems,
) -> Option<(InvoiceLine, Option<i64>)> {
    let o = Obj::new(v, ptr, "an invoice line", p)?;
    let description = o.req_text("description", MAX_TEXT, p);
    let qty = quantity(&o, p);
    let unit_amount = o.req_int("unitAmount", p).filter(|u| {
        let ok = *u >= 0;
        if !ok {
            p.add(
                o.at("unitAmount"),
                codes::OUT_OF_RANGE,
                "`unitAmount` must be 0 or more",
            );
        }
        ok
    });
    let account_id = check_ref(&o, "accountId", "account", &|id| refs.account_exists(id), p);
    let tax_sent = o.get("taxAmount").is_some();
    let tax_amount = o.opt_int("taxAmount", p).filter(|t| {
        let ok = *t >= 0;
        if !ok {
            p.add(
                o.at("taxAmount"),
                codes::OUT_OF_RANGE,
                "`taxAmount` must be 0 or more",
            );
        }
        ok
    });
    let sent_amount = o.opt_int("amount", p);
    o.unknown_fields(INVOICE_LINE_FIELDS, false, p);

    let tax_usable = !tax_sent || tax_amount.is_some();
    let computed = match (&qty, unit_amount) {
        (Some((_, q)), Some(u)) if tax_usable => {
            let amount = line_amount(*q, u, tax_amount.unwrap_or(0));
            if amount.is_none() {
                p.add(
                    o.ptr.as_str(),
                    codes::OVERFLOW,
                    "the line amount (quantity x unitAmount + taxAmount) does not fit in a signed 64-bit integer",
                );
            }
            amount
        }
        _ => None,
    };
    check_computed(sent_amount, computed, &o, "amount", p);
    let line = InvoiceLine {
        description: description.unwrap_or_default(),
        quantity: qty.map(|(n, _)| n).unwrap_or_else(|| Number::from(0u8)),
        unit_amount: unit_amount.unwrap_or_default(),
        account_id,
        tax_amount,
        amount: computed.unwrap_or_default(),
    };
    Some((line, computed))
}

/// Validate an invoice and compute its `total`, `amountPaid`, `balance` and `status`.
///
/// `amount_paid`: what is already paid on this invoice (0 on create). `status` may be sent by
/// the client only as "void" (allowed only when `amount_paid == 0`, else `invalid_state` at
/// `/status`) or as the value the server would compute (else `mismatch`). The computed fields
/// `total`, `amountPaid`, `balance` and each line's `amount` may be sent but must equal the
/// computed value (else `mismatch` at their pointer; they are compared only when the server
/// could compute them). A line's amount is quantity x unitAmount rounded half to even to the
/// minor unit, plus taxAmount; an overflow is `overflow` at the line's pointer, an overflow of
/// the total or the balance is `overflow` at `/lines`, and a balance below zero (the total
/// lowered below what was paid) is `out_of_range` at `/lines`. `self_id` is the id of the
/// invoice being updated, if any (its own number is not a duplicate).
pub fn validate_invoice(
    body: &(impl Document + ?Sized),
    refs: &dyn RefLookup,
    self_id: Option<&str>,
    amount_paid: i64,
) -> Validated<Invoice> {
    validate_invoice_doc(&body.doc(), refs, self_id, amount_paid)
}

/// [`validate_invoice`] on a parsed document (one body of code whatever the caller's input type).
fn validate_invoice_doc(
    body: &Json<'_>,
    refs: &dyn RefLookup,
    self_id: Option<&str>,
    amount_paid: i64,
) -> Validated<Invoice> {
    let mut p = Problems::default();
    let Some(o) = Obj::new(body, "", "an invoice", &mut p) else {
        return Err(p.0);
    };
    let number = o.req_unique(
        "number",
        self_id,
        |n| refs.invoice_number_owner(n),
        "an invoice",
        &mut p,
    );
    let customer_id = o.req_text("customerId", MAX_REF, &mut p);
    if let Some(c) = &customer_id {
        if !refs.customer_exists(c) {
            p.add(
                o.at("customerId"),
                codes::NOT_FOUND,
                format!("no customer with id `{c}` exists"),
            );
        }
    }
    let issue = o.req_date("issueDate", &mut p);
    let due = o.req_date("dueDate", &mut p);
    if let (Some((_, i)), Some((_, d))) = (&issue, &due) {
        if d < i {
            p.add(
                o.at("dueDate"),
                codes::OUT_OF_RANGE,
                "`dueDate` must not be before `issueDate`",
            );
        }
    }
    let currency = o.req_currency("currency", &mut p);

    let mut lines = Vec::new();
    let mut all_computed = false;
    if let Some(items) = lines_array(&o, &mut p) {
        all_computed = true;
        let lines_ptr = o.at("lines");
        for (i, item) in items.iter().enumerate() {
            match invoice_line(item, element(&lines_ptr, i), refs, &mut p) {
                Some((line, computed)) => {
                    all_computed &= computed.is_some();
                    lines.push(line);
                }
                None => all_computed = false,
            }
        }
    }
    let memo = o.opt_text("memo", MAX_TEXT, &mut p);

    let mut total = None;
    let mut balance = None;
    if all_computed {
        total = checked_sum(lines.iter().map(|l| l.amount));
        match total {
            None => p.add(
                o.at("lines"),
                codes::OVERFLOW,
                "the invoice total does not fit in a signed 64-bit integer",
            ),
            Some(t) => match t.checked_sub(amount_paid) {
                None => p.add(
                    o.at("lines"),
                    codes::OVERFLOW,
                    "the invoice balance does not fit in a signed 64-bit integer",
                ),
                Some(b) if b < 0 => p.add(
                    o.at("lines"),
                    codes::OUT_OF_RANGE,
                    format!("the total {t} is below the amount already paid {amount_paid}"),
                ),
                Some(b) => balance = Some(b),
            },
        }
    }
    let sent_total = o.opt_int("total", &mut p);
    check_computed(sent_total, total, &o, "total", &mut p);
    let sent_paid = o.opt_int("amountPaid", &mut p);
    check_computed(sent_paid, Some(amount_paid), &o, "amountPaid", &mut p);
    let sent_balance = o.opt_int("balance", &mut p);
    check_computed(sent_balance, balance, &o, "balance", &mut p);

    let computed_status = balance.map(|b| {
        if amount_paid > 0 && b == 0 {
            InvoiceStatus::Paid
        } else {
            InvoiceStatus::Open
        }
    });
    let mut voided = false;
    match o.get("status") {
        None => {}
        Some(Json::String(s)) => {
            let sent = match &**s {
                "open" => Some(InvoiceStatus::Open),
                "paid" => Some(InvoiceStatus::Paid),
                "void" => Some(InvoiceStatus::Void),
                _ => None,
            };
            match sent {
                None => p.add(
                    o.at("status"),
                    codes::INVALID_VALUE,
                    format!("`status` must be one of open, paid, void, not `{s}`"),
                ),
                Some(InvoiceStatus::Void) => {
                    if amount_paid != 0 {
                        p.add(
                            o.at("status"),
                            codes::INVALID_STATE,
                            "an invoice with payments cannot be voided",
                        );
                    } else {
                        voided = true;
                    }
                }
                Some(st) => {
                    if let Some(c) = computed_status {
                        if c != st {
                            p.add(
                                o.at("status"),
                                codes::MISMATCH,
                                format!(
                                    "`status` is {s} but the server computes {}",
                                    status_name(c)
                                ),
                            );
                        }
                    }
                }
            }
        }
        Some(other) => p.add(
            o.at("status"),
            codes::INVALID_TYPE,
            format!("`status` must be a string, not {}", type_name(other)),
        ),
    }
    o.unknown_fields(INVOICE_FIELDS, true, &mut p);

    let status = if voided {
        InvoiceStatus::Void
    } else {
        computed_status.unwrap_or_default()
    };
    p.finish(Invoice {
        meta: Meta::default(),
        number: number.unwrap_or_default(),
        customer_id: customer_id.unwrap_or_default(),
        issue_date: issue.map(|(s, _)| s).unwrap_or_default(),
        due_date: due.map(|(s, _)| s).unwrap_or_default(),
        currency: currency.unwrap_or_default(),
        lines,
        memo,
        total: total.unwrap_or_default(),
        amount_paid,
        balance: balance.unwrap_or_default(),
        status,
    })
}

/// The JSON name of an invoice status.
fn status_name(s: InvoiceStatus) -> &'static str {
    match s {
        InvoiceStatus::Open => "open",
        InvoiceStatus::Paid => "paid",
        InvoiceStatus::Void => "void",
    }
}

/// Validate the body of `POST /api/invoices/{id}/payments` against the invoice.
///
/// `amount` is optional (omitted: the whole balance) and must be > 0 and not above the
/// invoice's balance (`out_of_range`); `date` is required; `reference` optional. `invoiceId`
/// and `currency` may be sent but must equal the invoice's (`mismatch`). A void invoice is
/// `invalid_state` at `""` (the whole request is wrong); an invoice with no balance left is
/// `invalid_state` at `/amount`. The result carries the invoice's id and currency.
pub fn validate_payment(body: &(impl Document + ?Sized), invoice: &Invoice) -> Validated<Payment> {
    validate_payment_doc(&body.doc(), invoice)
}

/// [`validate_payment`] on a parsed document (one body of code whatever the caller's input type).
fn validate_payment_doc(body: &Json<'_>, invoice: &Invoice) -> Validated<Payment> {
    let mut p = Problems::default();
    let Some(o) = Obj::new(body, "", "a payment", &mut p) else {
        return Err(p.0);
    };
    let mut payable = true;
    if invoice.status == InvoiceStatus::Void {
        p.add(
            "",
            codes::INVALID_STATE,
            "the invoice is void and cannot be paid",
        );
        payable = false;
    } else if invoice.balance <= 0 {
        p.add(
            o.at("amount"),
            codes::INVALID_STATE,
            "the invoice has no balance left to pay",
        );
        payable = false;
    }
    let amount = match o.get("amount") {
        None => invoice.balance,
        Some(_) => match o.opt_int("amount", &mut p) {
            Some(a) if a <= 0 => {
                p.add(
                    o.at("amount"),
                    codes::OUT_OF_RANGE,
                    "`amount` must be greater than 0",
                );
                a
            }
            Some(a) if payable && a > invoice.balance => {
                p.add(
                    o.at("amount"),
                    codes::OUT_OF_RANGE,
                    format!(
                        "`amount` {a} is above the invoice's balance {}",
                        invoice.balance
                    ),
                );
                a
            }
            Some(a) => a,
            None => 0,
        },
    };
    let date = o.req_date("date", &mut p);
    let reference = o.opt_text("reference", MAX_REF, &mut p);
    if let Some(id) = o.opt_text("invoiceId", MAX_REF, &mut p) {
        if id != invoice.meta.id {
            p.add(
                o.at("invoiceId"),
                codes::MISMATCH,
                format!(
                    "`invoiceId` must be the paid invoice's id `{}`",
                    invoice.meta.id
                ),
            );
        }
    }
    if let Some(c) = o.opt_text("currency", MAX_CODE, &mut p) {
        if c != invoice.currency {
            p.add(
                o.at("currency"),
                codes::MISMATCH,
                format!(
                    "`currency` must be the invoice's currency {}",
                    invoice.currency
                ),
            );
        }
    }
    o.unknown_fields(PAYMENT_FIELDS, true, &mut p);
    p.finish(Payment {
        meta: Meta::default(),
        invoice_id: invoice.meta.id.clone(),
        amount,
        currency: invoice.currency.clone(),
        date: date.map(|(s, _)| s).unwrap_or_default(),
        reference,
    })
}

// ---------------------------------------------------------------------------------------------
// Expenses
// ---------------------------------------------------------------------------------------------

/// One expense line.
fn expense_line(
    v: &Json,
    ptr: String,
    refs: &dyn RefLookup,
    p: &mut Problems,
) -> Option<ExpenseLine> {
    let o = Obj::new(v, ptr, "an expense line", p)?;
    let description = o.req_text("description", MAX_TEXT, p);
    let amount = o.req_int("amount", p).filter(|a| {
        let ok = *a > 0;
        if !ok {
            p.add(
                o.at("amount"),
                codes::OUT_OF_RANGE,
                "`amount` must be greater than 0",
            );
        }
        ok
    });
    let account_id = check_ref(&o, "accountId", "account", &|id| refs.account_exists(id), p);
    o.unknown_fields(EXPENSE_LINE_FIELDS, false, p);
    let amount = amount?;
    Some(ExpenseLine {
        description: description.unwrap_or_default(),
        amount,
        account_id,
    })
}

/// Validate an expense.
///
/// Exactly one of `vendorId` (must exist: `not_found`) or `vendor {...}` (a new vendor,
/// validated with [`validate_vendor`] at `/vendor`): neither is `required` at `/vendorId`, both
/// is `invalid_value` at `/vendor`. `date`, `currency`, `lines` (at least one: `description`,
/// `amount` > 0, optional `accountId` that must exist), optional `memo`. `total` is the checked
/// sum of the line amounts (`overflow` at `/lines`); a client-sent `total` must equal it
/// (`mismatch`). With a new vendor the expense's `vendor_id` is "" and the vendor is returned.
pub fn validate_expense(
    body: &(impl Document + ?Sized),
    refs: &dyn RefLookup,
) -> Validated<(Expense, Option<Vendor>)> {
    validate_expense_doc(&body.doc(), refs)
}

/// [`validate_expense`] on a parsed document (one body of code whatever the caller's input type).
fn validate_expense_doc(
    body: &Json<'_>,
    refs: &dyn RefLookup,
) -> Validated<(Expense, Option<Vendor>)> {
    let mut p = Problems::default();
    let Some(o) = Obj::new(body, "", "an expense", &mut p) else {
        return Err(p.0);
    };
    let mut vendor_id = None;
    let mut new_vendor = None;
    match (o.get("vendorId").is_some(), o.get("vendor")) {
        (false, None) => p.add(
            o.at("vendorId"),
            codes::REQUIRED,
            "either `vendorId` (an existing vendor) or `vendor` (a new one) is required",
        ),
        (true, nested) => {
            if nested.is_some() {
                p.add(
                    o.at("vendor"),
                    codes::INVALID_VALUE,
                    "send either `vendorId` or `vendor`, not both",
                );
            }
            vendor_id = check_ref(
                &o,
                "vendorId",
                "vendor",
                &|id| refs.vendor_exists(id),
                &mut p,
            );
        }
        (false, Some(v)) => new_vendor = vendor_at(v, &o.at("vendor"), &mut p),
    }
    let date = o.req_date("date", &mut p);
    let currency = o.req_currency("currency", &mut p);
    let mut lines = Vec::new();
    let mut complete = false;
    if let Some(items) = lines_array(&o, &mut p) {
        complete = true;
        let lines_ptr = o.at("lines");
        for (i, item) in items.iter().enumerate() {
            match expense_line(item, element(&lines_ptr, i), refs, &mut p) {
                Some(line) => lines.push(line),
                None => complete = false,
            }
        }
    }
    let memo = o.opt_text("memo", MAX_TEXT, &mut p);
    let total = if complete {
        let t = checked_sum(lines.iter().map(|l| l.amount));
        if t.is_none() {
            p.add(
                o.at("lines"),
                codes::OVERFLOW,
                "the expense total does not fit in a signed 64-bit integer",
            );
        }
        t
    } else {
        None
    };
    let sent_total = o.opt_int("total", &mut p);
    check_computed(sent_total, total, &o, "total", &mut p);
    o.unknown_fields(EXPENSE_FIELDS, true, &mut p);
    let expense = Expense {
        meta: Meta::default(),
        vendor_id: vendor_id.unwrap_or_default(),
        date: date.map(|(s, _)| s).unwrap_or_default(),
        currency: currency.unwrap_or_default(),
        lines,
        memo,
        total: total.unwrap_or_default(),
    };
    p.finish((expense, new_vendor))
}

// ---------------------------------------------------------------------------------------------
// Bank transactions
// ---------------------------------------------------------------------------------------------

/// One bank transaction at `ptr`.
fn bank_transaction(v: &Json, ptr: &str, p: &mut Problems) -> Option<BankTransaction> {
    let o = Obj::new(v, ptr, "a bank transaction", p)?;
    let bank_account = o.req_text("bankAccount", MAX_REF, p);
    let date = o.req_date("date", p);
    let amount = o.req_int("amount", p);
    let currency = o.req_currency("currency", p);
    let description = o.req_text("description", MAX_TEXT, p);
    let reference = o.opt_text("reference", MAX_REF, p);
    let external_id = o.opt_text("externalId", MAX_REF, p).filter(|e| {
        let ok = !e.trim().is_empty();
        if !ok {
            p.add(
                o.at("externalId"),
                codes::INVALID_FORMAT,
                "`externalId` must not be blank (omit it instead)",
            );
        }
        ok
    });
    o.unknown_fields(BANK_FIELDS, true, p);
    Some(BankTransaction {
        meta: Meta::default(),
        bank_account: bank_account.unwrap_or_default(),
        date: date.map(|(s, _)| s).unwrap_or_default(),
        amount: amount.unwrap_or_default(),
        currency: currency.unwrap_or_default(),
        description: description.unwrap_or_default(),
        reference,
        external_id,
    })
}

/// Validate one bank transaction object or an array of them.
///
/// An array holds at most `max_batch` items (more is `too_long` at `""`, and the items are not
/// examined); an empty array is `too_few` at `""`. For an array, pointers are prefixed with
/// `/<index>`. `externalId` is unique per `bankAccount`, against the stored transactions
/// (`refs.bank_external_id_owner`) and within the same array (`duplicate` at the later item's
/// `externalId`). Returns the list (one element for a single object) and whether the input was
/// an array.
pub fn validate_bank_transactions(
    body: &(impl Document + ?Sized),
    refs: &dyn RefLookup,
    max_batch: usize,
) -> Validated<(Vec<BankTransaction>, bool)> {
    validate_bank_transactions_doc(&body.doc(), refs, max_batch)
}

/// [`validate_bank_transactions`] on a parsed document (one body of code whatever the caller's input type).
fn validate_bank_transactions_doc(
    body: &Json<'_>,
    refs: &dyn RefLookup,
    max_batch: usize,
) -> Validated<(Vec<BankTransaction>, bool)> {
    let mut p = Problems::default();
    let (items, is_array): (Vec<(String, &Json)>, bool) = match body {
        Json::Array(items) => {
            if items.is_empty() {
                p.add("", codes::TOO_FEW, "the array holds no bank transaction");
                return Err(p.0);
            }
            if items.len() > max_batch {
                p.add(
                    "",
                    codes::TOO_LONG,
                    format!(
                        "{} bank transactions sent, at most {max_batch} are allowed in one request",
                        items.len()
                    ),
                );
                return Err(p.0);
            }
            let listed = items
                .iter()
                .enumerate()
                .map(|(i, v)| (element("", i), v))
                .collect();
            (listed, true)
        }
        Json::Object(_) => (vec![(String::new(), body)], false),
        other => {
            p.add(
                "",
                codes::INVALID_TYPE,
                format!(
                    "a bank transaction must be a JSON object or an array of them, not {}",
                    type_name(other)
                ),
            );
            return Err(p.0);
        }
    };
    let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut out = Vec::with_capacity(items.len());
    for (ptr, v) in items {
        let Some(tx) = bank_transaction(v, &ptr, &mut p) else {
            continue;
        };
        if let Some(ext) = &tx.external_id {
            if !tx.bank_account.is_empty() {
                let ext_ptr = child(&ptr, "externalId");
                if refs.bank_external_id_owner(&tx.bank_account, ext).is_some() {
                    p.add(
                        ext_ptr.clone(),
                        codes::DUPLICATE,
                        format!(
                            "a bank transaction with externalId `{ext}` already exists on bank account `{}`",
                            tx.bank_account
                        ),
                    );
                }
                let key = (tx.bank_account.clone(), ext.clone());
                match seen.get(&key) {
                    Some(first) => p.add(
                        ext_ptr,
                        codes::DUPLICATE,
                        format!("externalId `{ext}` repeats the one at {first} for the same bank account"),
                    ),
                    None => {
                        seen.insert(key, ext_ptr);
                    }
                }
            }
        }
        out.push(tx);
    }
    if p.is_empty() {
        Ok((out, is_array))
    } else {
        Err(p.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use quickcheck::{Arbitrary, Gen, QuickCheck};
    use serde_json::json;

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

    /// A tenant's stored state for the tests.
    struct Refs {
        customers: Vec<&'static str>,
        vendors: Vec<&'static str>,
        accounts: Vec<&'static str>,
        /// (number, invoice id)
        invoice_numbers: Vec<(&'static str, &'static str)>,
        /// (code, account id)
        account_codes: Vec<(&'static str, &'static str)>,
        /// (bank account, external id, transaction id)
        bank: Vec<(&'static str, &'static str, &'static str)>,
    }

    impl RefLookup for Refs {
        fn customer_exists(&self, id: &str) -> bool {
            self.customers.contains(&id)
        }
        fn vendor_exists(&self, id: &str) -> bool {
            self.vendors.contains(&id)
        }
        fn account_exists(&self, id: &str) -> bool {
            self.accounts.contains(&id)
        }
        fn invoice_number_owner(&self, number: &str) -> Option<String> {
            self.invoice_numbers
                .iter()
                .find(|(n, _)| *n == number)
                .map(|(_, id)| id.to_string())
        }
        fn account_code_owner(&self, code: &str) -> Option<String> {
            self.account_codes
                .iter()
                .find(|(c, _)| *c == code)
                .map(|(_, id)| id.to_string())
        }
        fn bank_external_id_owner(&self, bank_account: &str, external_id: &str) -> Option<String> {
            self.bank
                .iter()
                .find(|(b, e, _)| *b == bank_account && *e == external_id)
                .map(|(_, _, id)| id.to_string())
        }
    }

    fn refs() -> Refs {
        Refs {
            customers: vec!["c1"],
            vendors: vec!["v1"],
            accounts: vec!["a1", "a2"],
            invoice_numbers: vec![("INV-1", "inv1")],
            account_codes: vec![("4000", "acc1")],
            bank: vec![("DE89", "ext-1", "bt1")],
        }
    }

    /// (pointer, code) of every problem, in order.
    fn found(errors: &[FieldError]) -> Vec<(&str, &str)> {
        errors
            .iter()
            .map(|e| (e.pointer.as_str(), e.code.as_str()))
            .collect()
    }

    /// Assert that the result failed with exactly these (pointer, code) pairs, in any order.
    #[track_caller]
    fn assert_problems<T: std::fmt::Debug>(result: &Validated<T>, expected: &[(&str, &str)]) {
        let errors = match result {
            Ok(v) => panic!("expected problems {expected:?}, got Ok({v:?})"),
            Err(e) => e,
        };
        let mut got = found(errors);
        got.sort_unstable();
        let mut want = expected.to_vec();
        want.sort_unstable();
        assert_eq!(got, want, "all problems: {errors:#?}");
        assert!(errors.iter().all(|e| !e.message.is_empty()));
    }

    fn invoice_with(lines: Value) -> Value {
        json!({
            "number": "INV-2",
            "customerId": "c1",
            "issueDate": "2024-03-01",
            "dueDate": "2024-03-31",
            "currency": "EUR",
            "lines": lines,
        })
    }

    fn one_line(quantity: Value, unit_amount: i64) -> Value {
        invoice_with(json!([{"description": "x", "quantity": quantity, "unitAmount": unit_amount}]))
    }

    fn total_of(body: &Value) -> i64 {
        validate_invoice(body, &refs(), None, 0).unwrap().total
    }

    // ----- helpers -----------------------------------------------------------------------------

    #[test]
    fn pointer_tokens_are_escaped() {
        assert_eq!(pointer_token("plain"), "plain");
        assert_eq!(pointer_token("a/b"), "a~1b");
        assert_eq!(pointer_token("m~n"), "m~0n");
        assert_eq!(pointer_token("~1"), "~01");
        assert_eq!(pointer_token("/~"), "~1~0");
        assert_eq!(pointer_token(""), "");
    }

    #[test]
    fn unknown_fields_get_escaped_pointers() {
        let body = json!({"name": "Acme", "a/b": 1, "c~d": 2, "billingAddress": {"x/y": 1}});
        let r = validate_customer(&body, &refs(), None);
        assert_problems(
            &r,
            &[
                ("/a~1b", codes::UNKNOWN_FIELD),
                ("/c~0d", codes::UNKNOWN_FIELD),
                ("/billingAddress/x~1y", codes::UNKNOWN_FIELD),
            ],
        );
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

    #[test]
    fn decimal_parsing_is_exact() {
        let d = |s: &str| parse_decimal(s);
        let ok = |m: i128, s: u32| {
            Ok(Decimal {
                mantissa: m,
                scale: s,
            })
        };
        assert_eq!(d("1.15"), ok(115, 2));
        assert_eq!(d("1.500000"), ok(15, 1));
        assert_eq!(d("100"), ok(100, 0));
        assert_eq!(d("1e3"), ok(1000, 0));
        assert_eq!(d("1.5E+2"), ok(150, 0));
        assert_eq!(d("25e-1"), ok(25, 1));
        assert_eq!(d("0.000001"), ok(1, 6));
        assert_eq!(d("1e-6"), ok(1, 6));
        assert_eq!(d("-0.5"), ok(-5, 1));
        assert_eq!(d("0.0"), ok(0, 0));
        assert_eq!(d("0e-99999999999999999999"), ok(0, 0));
        assert_eq!(d("1e-7"), Err(DecimalError::TooPrecise));
        assert_eq!(d("0.1234567"), Err(DecimalError::TooPrecise));
        assert_eq!(d("1.2345670"), ok(123_4567, 6));
        assert_eq!(d("1e39"), Err(DecimalError::TooLarge));
        assert_eq!(d("1e99999999999999999999"), Err(DecimalError::TooLarge));
        assert_eq!(d("1.7976931348623157e308"), Err(DecimalError::TooLarge));
        for bad in [
            "", "-", "1.", ".5", "1e", "1e+", "abc", "1.2.3", "--1", "1e5x",
        ] {
            assert_eq!(d(bad), Err(DecimalError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn serde_json_number_text_is_what_the_parser_expects() {
        // The quantity is parsed from the Number's Display text: check its shapes.
        for (src, mantissa, scale) in [
            ("1.15", 115, 2),
            ("0.5", 5, 1),
            ("2.0", 2, 0),
            ("100000.0", 100_000, 0),
            ("1e-6", 1, 6),
            ("1.5e3", 1500, 0),
            ("3", 3, 0),
        ] {
            let v: Value = serde_json::from_str(src).unwrap();
            let Value::Number(n) = v else { panic!() };
            assert_eq!(
                parse_decimal(&n.to_string()),
                Ok(Decimal { mantissa, scale }),
                "{src} displays as {n}"
            );
        }
    }

    #[test]
    fn rounding_is_half_to_even() {
        assert_eq!(div_round_half_even(25, 10), Some(2));
        assert_eq!(div_round_half_even(35, 10), Some(4));
        assert_eq!(div_round_half_even(75, 10), Some(8));
        assert_eq!(div_round_half_even(26, 10), Some(3));
        assert_eq!(div_round_half_even(24, 10), Some(2));
        assert_eq!(div_round_half_even(-25, 10), Some(-2));
        assert_eq!(div_round_half_even(-35, 10), Some(-4));
        assert_eq!(div_round_half_even(1, 0), None);
    }

    #[test]
    fn merge_patch_rfc7396_examples() {
        // RFC 7396, appendix A.
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":"b","b":"c"}),
                json!({"a":null}),
                json!({"b":"c"}),
            ),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"a":"foo"}), json!(null), json!(null)),
            (json!({"a":"foo"}), json!("bar"), json!("bar")),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ];
        for (mut target, patch, want) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, want, "patch {patch}");
        }
        // The example of section 3.
        let mut doc = json!({
            "title": "Goodbye!",
            "author": {"givenName": "John", "familyName": "Doe"},
            "tags": ["example", "sample"],
            "content": "This will be unchanged"
        });
        merge_patch(
            &mut doc,
            &json!({
                "title": "Hello!",
                "phoneNumber": "+01-123-456-7890",
                "author": {"familyName": null},
                "tags": ["example"]
            }),
        );
        assert_eq!(
            doc,
            json!({
                "title": "Hello!",
                "author": {"givenName": "John"},
                "tags": ["example"],
                "content": "This will be unchanged",
                "phoneNumber": "+01-123-456-7890"
            })
        );
    }

    #[test]
    fn strip_removes_only_server_fields() {
        let mut v = json!({"id": "x", "version": 3, "createdAt": "t", "updatedAt": "t",
            "name": "n", "total": 5, "amountPaid": 1});
        strip_server_fields(&mut v);
        assert_eq!(v, json!({"name": "n", "total": 5, "amountPaid": 1}));
        let mut s = json!("not an object");
        strip_server_fields(&mut s);
        assert_eq!(s, json!("not an object"));
    }

    // ----- customers and vendors ---------------------------------------------------------------

    #[test]
    fn customer_valid_full() {
        let body = json!({
            "name": "Acme GmbH",
            "email": "billing@acme.example.com",
            "phone": "+49 30 1234",
            "contactName": "Ada",
            "billingAddress": {"line1": "Main St 1", "line2": null, "city": "Berlin",
                "region": "BE", "postalCode": "10115", "country": "DE"},
        });
        let c = validate_customer(&body, &refs(), None).unwrap();
        assert_eq!(c.name, "Acme GmbH");
        assert_eq!(c.email.as_deref(), Some("billing@acme.example.com"));
        assert_eq!(c.phone.as_deref(), Some("+49 30 1234"));
        assert_eq!(c.contact_name.as_deref(), Some("Ada"));
        let a = c.billing_address.unwrap();
        assert_eq!(a.line2, None);
        assert_eq!(a.country.as_deref(), Some("DE"));
        assert_eq!(c.meta, Meta::default());
    }

    #[test]
    fn server_fields_are_ignored_and_null_means_absent() {
        let body = json!({"id": "x", "version": 7, "createdAt": "2024-01-01T00:00:00Z",
            "updatedAt": 5, "name": "Acme", "email": null, "billingAddress": null});
        let c = validate_customer(&body, &refs(), None).unwrap();
        assert_eq!(c.email, None);
        assert_eq!(c.billing_address, None);
        // But not inside nested parts.
        let body = json!({"name": "Acme", "billingAddress": {"id": "a"}});
        assert_problems(
            &validate_customer(&body, &refs(), None),
            &[("/billingAddress/id", codes::UNKNOWN_FIELD)],
        );
    }

    #[test]
    fn non_object_bodies_are_one_invalid_type() {
        for body in [json!([]), json!("x"), json!(1), json!(null), json!(true)] {
            let r = validate_customer(&body, &refs(), None);
            assert_problems(&r, &[("", codes::INVALID_TYPE)]);
            assert_problems(&validate_vendor(&body, ""), &[("", codes::INVALID_TYPE)]);
            assert_problems(
                &validate_account(&body, &refs(), None),
                &[("", codes::INVALID_TYPE)],
            );
            assert_problems(
                &validate_invoice(&body, &refs(), None, 0),
                &[("", codes::INVALID_TYPE)],
            );
            assert_problems(
                &validate_payment(&body, &Invoice::default()),
                &[("", codes::INVALID_TYPE)],
            );
            assert_problems(
                &validate_expense(&body, &refs()),
                &[("", codes::INVALID_TYPE)],
            );
        }
    }

    #[test]
    fn customer_name_rules() {
        for (body, code) in [
            (json!({}), codes::REQUIRED),
            (json!({"name": null}), codes::REQUIRED),
            (json!({"name": ""}), codes::REQUIRED),
            (json!({"name": " \t\n"}), codes::REQUIRED),
            (json!({"name": 5}), codes::INVALID_TYPE),
            (json!({"name": "x".repeat(1001)}), codes::TOO_LONG),
        ] {
            assert_problems(&validate_customer(&body, &refs(), None), &[("/name", code)]);
        }
        // 1000 characters (not bytes) are fine.
        let body = json!({"name": "é".repeat(1000)});
        assert!(validate_customer(&body, &refs(), None).is_ok());
    }

    #[test]
    fn email_rules() {
        for good in [
            "a@b.co",
            "first.last+tag@sub.example.org",
            "x@xn--bcher-kva.example",
        ] {
            let body = json!({"name": "n", "email": good});
            assert!(validate_customer(&body, &refs(), None).is_ok(), "{good}");
        }
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@b",
            "a@@b.com",
            "a@b@c.com",
            "a b@c.com",
            "a@b .com",
            "a@.com",
            "a@b.",
            "a@b..com",
            "a\u{0}@b.com",
        ] {
            let body = json!({"name": "n", "email": bad});
            assert_problems(
                &validate_customer(&body, &refs(), None),
                &[("/email", codes::INVALID_FORMAT)],
            );
        }
        let long = format!("{}@example.com", "a".repeat(243));
        assert_eq!(long.len(), 255);
        let body = json!({"name": "n", "email": long});
        assert_problems(
            &validate_customer(&body, &refs(), None),
            &[("/email", codes::TOO_LONG)],
        );
        let body = json!({"name": "n", "email": 3});
        assert_problems(
            &validate_customer(&body, &refs(), None),
            &[("/email", codes::INVALID_TYPE)],
        );
    }

    #[test]
    fn customer_lengths_and_address() {
        let body = json!({
            "name": "n",
            "phone": "1".repeat(65),
            "contactName": "c".repeat(1001),
            "billingAddress": {"country": "de", "postalCode": "9".repeat(65), "city": 5},
        });
        assert_problems(
            &validate_customer(&body, &refs(), None),
            &[
                ("/phone", codes::TOO_LONG),
                ("/contactName", codes::TOO_LONG),
                ("/billingAddress/country", codes::INVALID_FORMAT),
                ("/billingAddress/postalCode", codes::TOO_LONG),
                ("/billingAddress/city", codes::INVALID_TYPE),
            ],
        );
        for country in ["DEU", "D", "d1", "ÄÖ"] {
            let body = json!({"name": "n", "billingAddress": {"country": country}});
            assert_problems(
                &validate_customer(&body, &refs(), None),
                &[("/billingAddress/country", codes::INVALID_FORMAT)],
            );
        }
        let body = json!({"name": "n", "billingAddress": "Main St"});
        assert_problems(
            &validate_customer(&body, &refs(), None),
            &[("/billingAddress", codes::INVALID_TYPE)],
        );
    }

    #[test]
    fn vendor_top_level_and_prefixed() {
        let v = validate_vendor(
            &json!({"name": "Supplies Ltd", "address": {"city": "Leeds"}}),
            "",
        )
        .unwrap();
        assert_eq!(v.name, "Supplies Ltd");
        assert_eq!(v.address.unwrap().city.as_deref(), Some("Leeds"));
        let body = json!({"email": "nope", "contactName": "x"});
        assert_problems(
            &validate_vendor(&body, "/vendor"),
            &[
                ("/vendor/name", codes::REQUIRED),
                ("/vendor/email", codes::INVALID_FORMAT),
                ("/vendor/contactName", codes::UNKNOWN_FIELD),
            ],
        );
        assert_problems(
            &validate_vendor(&json!(1), "/vendor"),
            &[("/vendor", codes::INVALID_TYPE)],
        );
    }

    // ----- accounts ----------------------------------------------------------------------------

    #[test]
    fn account_valid_and_default_active() {
        let a = validate_account(
            &json!({"code": "1200", "name": "Bank", "type": "asset"}),
            &refs(),
            None,
        )
        .unwrap();
        assert!(a.active);
        assert_eq!(a.account_type, AccountType::Asset);
        let a = validate_account(
            &json!({"code": "5000", "name": "Costs", "type": "expense", "active": false,
                "description": "all costs"}),
            &refs(),
            None,
        )
        .unwrap();
        assert!(!a.active);
        assert_eq!(a.account_type, AccountType::Expense);
        for (t, want) in [
            ("liability", AccountType::Liability),
            ("equity", AccountType::Equity),
            ("income", AccountType::Income),
        ] {
            let a = validate_account(&json!({"code": "9", "name": "n", "type": t}), &refs(), None)
                .unwrap();
            assert_eq!(a.account_type, want);
        }
    }

    #[test]
    fn account_problems() {
        let body = json!({"code": "4000", "name": "", "type": "Asset", "active": "yes", "x": 1});
        assert_problems(
            &validate_account(&body, &refs(), None),
            &[
                ("/code", codes::DUPLICATE),
                ("/name", codes::REQUIRED),
                ("/type", codes::INVALID_VALUE),
                ("/active", codes::INVALID_TYPE),
                ("/x", codes::UNKNOWN_FIELD),
            ],
        );
        assert_problems(
            &validate_account(
                &json!({"code": "c".repeat(65), "name": "n", "type": 1}),
                &refs(),
                None,
            ),
            &[("/code", codes::TOO_LONG), ("/type", codes::INVALID_TYPE)],
        );
        assert_problems(
            &validate_account(&json!({}), &refs(), None),
            &[
                ("/code", codes::REQUIRED),
                ("/name", codes::REQUIRED),
                ("/type", codes::REQUIRED),
            ],
        );
    }

    #[test]
    fn account_code_unique_except_itself() {
        let body = json!({"code": "4000", "name": "Sales", "type": "income"});
        assert!(validate_account(&body, &refs(), Some("acc1")).is_ok());
        assert_problems(
            &validate_account(&body, &refs(), Some("other")),
            &[("/code", codes::DUPLICATE)],
        );
    }

    // ----- invoices ----------------------------------------------------------------------------

    #[test]
    fn invoice_valid_computes_everything() {
        let body = invoice_with(json!([
            {"description": "Consulting", "quantity": 2, "unitAmount": 15000, "accountId": "a1",
                "taxAmount": 5700},
            {"description": "Travel", "quantity": 1.5, "unitAmount": 999},
        ]));
        let inv = validate_invoice(&body, &refs(), None, 0).unwrap();
        assert_eq!(inv.lines[0].amount, 35_700);
        assert_eq!(inv.lines[1].amount, 1498); // 1498.5 -> 1498 (even)
        assert_eq!(inv.lines[1].quantity.to_string(), "1.5");
        assert_eq!(inv.total, 37_198);
        assert_eq!(inv.amount_paid, 0);
        assert_eq!(inv.balance, 37_198);
        assert_eq!(inv.status, InvoiceStatus::Open);
        assert_eq!(inv.currency, "EUR");
        assert_eq!(inv.issue_date, "2024-03-01");
        assert_eq!(inv.lines[0].account_id.as_deref(), Some("a1"));
        assert_eq!(inv.lines[0].tax_amount, Some(5700));
        assert_eq!(inv.lines[1].tax_amount, None);
    }

    #[test]
    fn invoice_serialised_revalidates_to_itself() {
        let body = invoice_with(json!([
            {"description": "a", "quantity": 0.125, "unitAmount": 100, "taxAmount": 3},
        ]));
        let inv = validate_invoice(&body, &refs(), None, 0).unwrap();
        let mut again = serde_json::to_value(&inv).unwrap();
        again["id"] = json!("inv2");
        let inv2 = validate_invoice(&again, &refs(), Some("inv2"), 0).unwrap();
        assert_eq!(inv, inv2);
    }

    #[test]
    fn half_to_even_rounding_of_lines() {
        assert_eq!(total_of(&one_line(json!(0.5), 5)), 2); // 2.5 -> 2
        assert_eq!(total_of(&one_line(json!(1.5), 5)), 8); // 7.5 -> 8
        assert_eq!(total_of(&one_line(json!(0.125), 100)), 12); // 12.5 -> 12
        assert_eq!(total_of(&one_line(json!(0.375), 100)), 38); // 37.5 -> 38
        assert_eq!(total_of(&one_line(json!(0.333), 100)), 33); // 33.3 -> 33
        assert_eq!(total_of(&one_line(json!(0.336), 100)), 34); // 33.6 -> 34
        assert_eq!(total_of(&one_line(json!(0.000001), 1_500_000)), 2); // 1.5 -> 2
        assert_eq!(total_of(&one_line(json!(0.000001), 2_500_000)), 2); // 2.5 -> 2
    }

    #[test]
    fn decimal_quantities_are_exact() {
        // 1.15 is 1.149999... as a binary float; the decimal text gives 115 exactly.
        assert_eq!(total_of(&one_line(json!(1.15), 100)), 115);
        assert_eq!(total_of(&one_line(json!(0.1), 30)), 3);
        assert_eq!(total_of(&one_line(json!(2.675), 100)), 268); // 267.5 -> 268
        let body: Value = serde_json::from_str(
            r#"{"number":"N","customerId":"c1","issueDate":"2024-01-01","dueDate":"2024-01-01",
               "currency":"USD","lines":[{"description":"d","quantity":1.50000,"unitAmount":3}]}"#,
        )
        .unwrap();
        assert_eq!(total_of(&body), 4); // 4.5 -> 4
        let body: Value = serde_json::from_str(
            r#"{"number":"N","customerId":"c1","issueDate":"2024-01-01","dueDate":"2024-01-01",
               "currency":"USD","lines":[{"description":"d","quantity":3e2,"unitAmount":3}]}"#,
        )
        .unwrap();
        assert_eq!(total_of(&body), 900);
    }

    #[test]
    fn quantity_rules() {
        let at = "/lines/0/quantity";
        for (q, code) in [
            (json!(0), codes::OUT_OF_RANGE),
            (json!(0.0), codes::OUT_OF_RANGE),
            (json!(-1), codes::OUT_OF_RANGE),
            (json!(-0.5), codes::OUT_OF_RANGE),
            (json!(0.0000001), codes::INVALID_FORMAT),
            (json!(1.1234567), codes::INVALID_FORMAT),
            (json!(1e300), codes::OUT_OF_RANGE),
            (json!("1"), codes::INVALID_TYPE),
            (json!(null), codes::REQUIRED),
        ] {
            assert_problems(
                &validate_invoice(&one_line(q.clone(), 1), &refs(), None, 0),
                &[(at, code)],
            );
        }
        assert_eq!(total_of(&one_line(json!(1.123456), 1_000_000)), 1_123_456);
    }

    #[test]
    fn money_must_be_i64_integers() {
        for (u, code) in [
            (json!(1.5), codes::INVALID_TYPE),
            (json!(100.0), codes::INVALID_TYPE),
            (json!("100"), codes::INVALID_TYPE),
            (json!(true), codes::INVALID_TYPE),
            (json!(9_223_372_036_854_775_808u64), codes::OUT_OF_RANGE),
            (json!(1e20), codes::OUT_OF_RANGE),
            (json!(-1), codes::OUT_OF_RANGE),
        ] {
            let body = invoice_with(json!([{"description": "d", "quantity": 1, "unitAmount": u}]));
            assert_problems(
                &validate_invoice(&body, &refs(), None, 0),
                &[("/lines/0/unitAmount", code)],
            );
        }
        let body: Value = serde_json::from_str(
            r#"{"number":"N","customerId":"c1","issueDate":"2024-01-01","dueDate":"2024-01-01",
               "currency":"USD","lines":[{"description":"d","quantity":1,
               "unitAmount":123456789012345678901234567890}]}"#,
        )
        .unwrap();
        assert_problems(
            &validate_invoice(&body, &refs(), None, 0),
            &[("/lines/0/unitAmount", codes::OUT_OF_RANGE)],
        );
    }

    #[test]
    fn invoice_overflow_is_reported_not_a_panic() {
        let body = one_line(json!(2), i64::MAX);
        assert_problems(
            &validate_invoice(&body, &refs(), None, 0),
            &[("/lines/0", codes::OVERFLOW)],
        );
        let body = invoice_with(json!([
            {"description": "a", "quantity": 1, "unitAmount": i64::MAX},
            {"description": "b", "quantity": 1, "unitAmount": 1},
        ]));
        assert_problems(
            &validate_invoice(&body, &refs(), None, 0),
            &[("/lines", codes::OVERFLOW)],
        );
        let body = invoice_with(json!([
            {"description": "a", "quantity": 1, "unitAmount": i64::MAX, "taxAmount": 1},
        ]));
        assert_problems(
            &validate_invoice(&body, &refs(), None, 0),
            &[("/lines/0", codes::OVERFLOW)],
        );
        let body = one_line(json!(1e30), i64::MAX);
        assert_problems(
            &validate_invoice(&body, &refs(), None, 0),
            &[("/lines/0", codes::OVERFLOW)],
        );
        // Exactly i64::MAX is fine.
        assert_eq!(total_of(&one_line(json!(1), i64::MAX)), i64::MAX);
        assert_eq!(total_of(&one_line(json!(0.5), i64::MAX)), i64::MAX / 2 + 1);
    }

    #[test]
    fn invoice_reports_all_problems_at_once() {
        let body = json!({
            "number": "INV-1",
            "customerId": "nobody",
            "issueDate": "2024-03-10",
            "dueDate": "2024-03-01",
            "currency": "eur",
            "lines": [
                {"description": "", "quantity": 0, "unitAmount": -5, "accountId": "zz",
                    "taxAmount": -1, "colour": "red"},
                "not a line",
            ],
            "total": "12",
            "status": "draft",
            "extra": true,
        });
        let r = validate_invoice(&body, &refs(), None, 0);
        assert_problems(
            &r,
            &[
                ("/number", codes::DUPLICATE),
                ("/customerId", codes::NOT_FOUND),
                ("/dueDate", codes::OUT_OF_RANGE),
                ("/currency", codes::INVALID_FORMAT),
                ("/lines/0/description", codes::REQUIRED),
                ("/lines/0/quantity", codes::OUT_OF_RANGE),
                ("/lines/0/unitAmount", codes::OUT_OF_RANGE),
                ("/lines/0/accountId", codes::NOT_FOUND),
                ("/lines/0/taxAmount", codes::OUT_OF_RANGE),
                ("/lines/0/colour", codes::UNKNOWN_FIELD),
                ("/lines/1", codes::INVALID_TYPE),
                ("/total", codes::INVALID_TYPE),
                ("/status", codes::INVALID_VALUE),
                ("/extra", codes::UNKNOWN_FIELD),
            ],
        );
    }

    #[test]
    fn invoice_five_problems() {
        let body = json!({
            "customerId": "c1",
            "issueDate": "2024-02-30",
            "dueDate": "2024-13-01",
            "currency": "ABC",
            "lines": [],
        });
        assert_problems(
            &validate_invoice(&body, &refs(), None, 0),
            &[
                ("/number", codes::REQUIRED),
                ("/issueDate", codes::INVALID_VALUE),
                ("/dueDate", codes::INVALID_VALUE),
                ("/currency", codes::INVALID_VALUE),
                ("/lines", codes::TOO_FEW),
            ],
        );
    }

    #[test]
    fn invoice_required_fields() {
        assert_problems(
            &validate_invoice(&json!({}), &refs(), None, 0),
            &[
                ("/number", codes::REQUIRED),
                ("/customerId", codes::REQUIRED),
                ("/issueDate", codes::REQUIRED),
                ("/dueDate", codes::REQUIRED),
                ("/currency", codes::REQUIRED),
                ("/lines", codes::REQUIRED),
            ],
        );
        let mut body = one_line(json!(1), 1);
        body["lines"] = json!({"description": "x"});
        assert_problems(
            &validate_invoice(&body, &refs(), None, 0),
            &[("/lines", codes::INVALID_TYPE)],
        );
        let body = invoice_with(json!([{}]));
        assert_problems(
            &validate_invoice(&body, &refs(), None, 0),
            &[
                ("/lines/0/description", codes::REQUIRED),
                ("/lines/0/quantity", codes::REQUIRED),
                ("/lines/0/unitAmount", codes::REQUIRED),
            ],
        );
    }

    #[test]
    fn dates_must_be_real_and_well_formed() {
        for (d, code) in [
            ("2024-02-30", codes::INVALID_VALUE),
            ("2023-02-29", codes::INVALID_VALUE),
            ("2024-00-10", codes::INVALID_VALUE),
            ("2024-3-1", codes::INVALID_FORMAT),
            ("01.03.2024", codes::INVALID_FORMAT),
            ("2024-03-01T00:00:00Z", codes::INVALID_FORMAT),
            ("+024-03-01", codes::INVALID_FORMAT),
            ("２０２４-03-01", codes::INVALID_FORMAT),
            ("", codes::REQUIRED),
        ] {
            let mut body = one_line(json!(1), 1);
            body["issueDate"] = json!(d);
            body["dueDate"] = json!("2099-01-01");
            assert_problems(
                &validate_invoice(&body, &refs(), None, 0),
                &[("/issueDate", code)],
            );
        }
        let mut body = one_line(json!(1), 1);
        body["issueDate"] = json!("2024-02-29");
        body["dueDate"] = json!("2024-02-29");
        assert!(validate_invoice(&body, &refs(), None, 0).is_ok());
    }

    #[test]
    fn currency_rules() {
        for (c, code) in [
            (json!("usd"), codes::INVALID_FORMAT),
            (json!("US"), codes::INVALID_FORMAT),
            (json!("USDT"), codes::INVALID_FORMAT),
            (json!("ÜSD"), codes::INVALID_FORMAT),
            (json!("HRK"), codes::INVALID_VALUE),
            (json!("QQQ"), codes::INVALID_VALUE),
            (json!(978), codes::INVALID_TYPE),
        ] {
            let mut body = one_line(json!(1), 1);
            body["currency"] = c;
            assert_problems(
                &validate_invoice(&body, &refs(), None, 0),
                &[("/currency", code)],
            );
        }
    }

    #[test]
    fn invoice_number_unique_except_itself() {
        let mut body = one_line(json!(1), 1);
        body["number"] = json!("INV-1");
        assert!(validate_invoice(&body, &refs(), Some("inv1"), 0).is_ok());
        assert_problems(
            &validate_invoice(&body, &refs(), None, 0),
            &[("/number", codes::DUPLICATE)],
        );
        body["number"] = json!("N".repeat(65));
        assert_problems(
            &validate_invoice(&body, &refs(), None, 0),
            &[("/number", codes::TOO_LONG)],
        );
    }

    #[test]
    fn computed_fields_must_match() {
        let base = invoice_with(json!([
            {"description": "a", "quantity": 3, "unitAmount": 100, "taxAmount": 19, "amount": 319},
        ]));
        let mut body = base.clone();
        body["total"] = json!(319);
        body["amountPaid"] = json!(0);
        body["balance"] = json!(319);
        body["status"] = json!("open");
        assert!(validate_invoice(&body, &refs(), None, 0).is_ok());

        let mut body = base.clone();
        body["lines"][0]["amount"] = json!(300);
        body["total"] = json!(300);
        body["amountPaid"] = json!(5);
        body["balance"] = json!(1);
        body["status"] = json!("paid");
        assert_problems(
            &validate_invoice(&body, &refs(), None, 0),
            &[
                ("/lines/0/amount", codes::MISMATCH),
                ("/total", codes::MISMATCH),
                ("/amountPaid", codes::MISMATCH),
                ("/balance", codes::MISMATCH),
                ("/status", codes::MISMATCH),
            ],
        );
    }

    #[test]
    fn status_paid_void_and_balance() {
        let body = one_line(json!(1), 500);
        let inv = validate_invoice(&body, &refs(), Some("inv9"), 500).unwrap();
        assert_eq!(
            (inv.balance, inv.status, inv.amount_paid),
            (0, InvoiceStatus::Paid, 500)
        );
        let inv = validate_invoice(&body, &refs(), Some("inv9"), 200).unwrap();
        assert_eq!((inv.balance, inv.status), (300, InvoiceStatus::Open));
        // A zero invoice with nothing paid stays open.
        let inv = validate_invoice(&one_line(json!(1), 0), &refs(), None, 0).unwrap();
        assert_eq!((inv.total, inv.status), (0, InvoiceStatus::Open));

        let mut void = body.clone();
        void["status"] = json!("void");
        let inv = validate_invoice(&void, &refs(), None, 0).unwrap();
        assert_eq!((inv.status, inv.balance), (InvoiceStatus::Void, 500));
        assert_problems(
            &validate_invoice(&void, &refs(), Some("inv9"), 100),
            &[("/status", codes::INVALID_STATE)],
        );
        let mut st = body.clone();
        st["status"] = json!(1);
        assert_problems(
            &validate_invoice(&st, &refs(), None, 0),
            &[("/status", codes::INVALID_TYPE)],
        );
        // Lowering the total below what was paid.
        assert_problems(
            &validate_invoice(&body, &refs(), Some("inv9"), 501),
            &[("/lines", codes::OUT_OF_RANGE)],
        );
        let mut paid = body.clone();
        paid["status"] = json!("paid");
        assert!(validate_invoice(&paid, &refs(), Some("inv9"), 500).is_ok());
    }

    #[test]
    fn invoice_memo_and_line_description_lengths() {
        let mut body = invoice_with(json!([
            {"description": "d".repeat(1001), "quantity": 1, "unitAmount": 1, "accountId": 7},
        ]));
        body["memo"] = json!("m".repeat(1001));
        assert_problems(
            &validate_invoice(&body, &refs(), None, 0),
            &[
                ("/lines/0/description", codes::TOO_LONG),
                ("/lines/0/accountId", codes::INVALID_TYPE),
                ("/memo", codes::TOO_LONG),
            ],
        );
        body["memo"] = json!("fine");
        body["lines"][0]["description"] = json!("fine");
        body["lines"][0]["accountId"] = json!("a2");
        let inv = validate_invoice(&body, &refs(), None, 0).unwrap();
        assert_eq!(inv.memo.as_deref(), Some("fine"));
    }

    // ----- payments ----------------------------------------------------------------------------

    fn stored_invoice(total: i64, paid: i64, status: InvoiceStatus) -> Invoice {
        Invoice {
            meta: Meta {
                id: "inv1".into(),
                version: 1,
                ..Meta::default()
            },
            currency: "EUR".into(),
            total,
            amount_paid: paid,
            balance: total - paid,
            status,
            ..Invoice::default()
        }
    }

    #[test]
    fn payment_defaults_to_whole_balance() {
        let inv = stored_invoice(1000, 400, InvoiceStatus::Open);
        let p = validate_payment(&json!({"date": "2024-04-01", "id": "x"}), &inv).unwrap();
        assert_eq!(p.amount, 600);
        assert_eq!(p.invoice_id, "inv1");
        assert_eq!(p.currency, "EUR");
        assert_eq!(p.date, "2024-04-01");
        let p = validate_payment(
            &json!({"date": "2024-04-01", "amount": 600, "reference": "r",
                "invoiceId": "inv1", "currency": "EUR"}),
            &inv,
        )
        .unwrap();
        assert_eq!((p.amount, p.reference.as_deref()), (600, Some("r")));
    }

    #[test]
    fn payment_problems() {
        let inv = stored_invoice(1000, 400, InvoiceStatus::Open);
        assert_problems(
            &validate_payment(&json!({"amount": 601, "date": "2024-13-01"}), &inv),
            &[
                ("/amount", codes::OUT_OF_RANGE),
                ("/date", codes::INVALID_VALUE),
            ],
        );
        assert_problems(
            &validate_payment(&json!({"amount": 0}), &inv),
            &[("/amount", codes::OUT_OF_RANGE), ("/date", codes::REQUIRED)],
        );
        assert_problems(
            &validate_payment(&json!({"amount": -5, "date": "2024-01-01"}), &inv),
            &[("/amount", codes::OUT_OF_RANGE)],
        );
        assert_problems(
            &validate_payment(&json!({"amount": 1.5, "date": "2024-01-01"}), &inv),
            &[("/amount", codes::INVALID_TYPE)],
        );
        assert_problems(
            &validate_payment(
                &json!({"date": "2024-01-01", "invoiceId": "other", "currency": "USD",
                    "reference": "r".repeat(256), "note": 1}),
                &inv,
            ),
            &[
                ("/invoiceId", codes::MISMATCH),
                ("/currency", codes::MISMATCH),
                ("/reference", codes::TOO_LONG),
                ("/note", codes::UNKNOWN_FIELD),
            ],
        );
    }

    #[test]
    fn payment_of_void_or_settled_invoice_is_invalid_state() {
        let void = stored_invoice(1000, 0, InvoiceStatus::Void);
        assert_problems(
            &validate_payment(&json!({"date": "2024-01-01"}), &void),
            &[("", codes::INVALID_STATE)],
        );
        let paid = stored_invoice(1000, 1000, InvoiceStatus::Paid);
        assert_problems(
            &validate_payment(&json!({"date": "2024-01-01", "amount": 5}), &paid),
            &[("/amount", codes::INVALID_STATE)],
        );
        let zero = stored_invoice(0, 0, InvoiceStatus::Open);
        assert_problems(
            &validate_payment(&json!({"date": "2024-01-01"}), &zero),
            &[("/amount", codes::INVALID_STATE)],
        );
    }

    // ----- expenses ----------------------------------------------------------------------------

    fn expense_with(vendor: Value) -> Value {
        let mut body = json!({
            "date": "2024-05-05",
            "currency": "GBP",
            "lines": [
                {"description": "Paper", "amount": 1250, "accountId": "a1"},
                {"description": "Ink", "amount": 3000},
            ],
        });
        merge_patch(&mut body, &vendor);
        body
    }

    #[test]
    fn expense_with_existing_vendor() {
        let (e, v) = validate_expense(&expense_with(json!({"vendorId": "v1"})), &refs()).unwrap();
        assert!(v.is_none());
        assert_eq!(e.vendor_id, "v1");
        assert_eq!(e.total, 4250);
        assert_eq!(e.lines.len(), 2);
        assert_eq!(e.lines[0].account_id.as_deref(), Some("a1"));
    }

    #[test]
    fn expense_with_new_vendor() {
        let body = expense_with(json!({"vendor": {"name": "Paper Co", "email": "a@b.de"},
            "total": 4250, "memo": "office"}));
        let (e, v) = validate_expense(&body, &refs()).unwrap();
        assert_eq!(e.vendor_id, "");
        assert_eq!(e.memo.as_deref(), Some("office"));
        assert_eq!(v.unwrap().name, "Paper Co");
        // A null vendorId next to a vendor is "absent".
        let body = expense_with(json!({"vendor": {"name": "Paper Co"}}));
        let mut body2 = body.clone();
        body2["vendorId"] = Value::Null;
        assert!(validate_expense(&body2, &refs()).is_ok());
    }

    #[test]
    fn expense_vendor_choice() {
        assert_problems(
            &validate_expense(&expense_with(json!({})), &refs()),
            &[("/vendorId", codes::REQUIRED)],
        );
        assert_problems(
            &validate_expense(
                &expense_with(json!({"vendorId": "v1", "vendor": {"name": "x"}})),
                &refs(),
            ),
            &[("/vendor", codes::INVALID_VALUE)],
        );
        assert_problems(
            &validate_expense(&expense_with(json!({"vendorId": "v9"})), &refs()),
            &[("/vendorId", codes::NOT_FOUND)],
        );
        assert_problems(
            &validate_expense(
                &expense_with(json!({"vendor": {"name": " ", "email": "bad", "a/b": 1}})),
                &refs(),
            ),
            &[
                ("/vendor/name", codes::REQUIRED),
                ("/vendor/email", codes::INVALID_FORMAT),
                ("/vendor/a~1b", codes::UNKNOWN_FIELD),
            ],
        );
        assert_problems(
            &validate_expense(&expense_with(json!({"vendor": "Paper Co"})), &refs()),
            &[("/vendor", codes::INVALID_TYPE)],
        );
    }

    #[test]
    fn expense_lines_and_total() {
        let mut body = expense_with(json!({"vendorId": "v1", "total": 1}));
        body["lines"][0]["amount"] = json!(0);
        body["lines"][1]["accountId"] = json!("nope");
        body["lines"][1]["quantity"] = json!(2);
        assert_problems(
            &validate_expense(&body, &refs()),
            &[
                ("/lines/0/amount", codes::OUT_OF_RANGE),
                ("/lines/1/accountId", codes::NOT_FOUND),
                ("/lines/1/quantity", codes::UNKNOWN_FIELD),
            ],
        );
        let body = expense_with(json!({"vendorId": "v1", "total": 1}));
        assert_problems(
            &validate_expense(&body, &refs()),
            &[("/total", codes::MISMATCH)],
        );
        let mut body = expense_with(json!({"vendorId": "v1"}));
        body["lines"] = json!([
            {"description": "a", "amount": i64::MAX},
            {"description": "b", "amount": 1},
        ]);
        assert_problems(
            &validate_expense(&body, &refs()),
            &[("/lines", codes::OVERFLOW)],
        );
        body["lines"] = json!([]);
        assert_problems(
            &validate_expense(&body, &refs()),
            &[("/lines", codes::TOO_FEW)],
        );
        let body = json!({"vendorId": "v1"});
        assert_problems(
            &validate_expense(&body, &refs()),
            &[
                ("/date", codes::REQUIRED),
                ("/currency", codes::REQUIRED),
                ("/lines", codes::REQUIRED),
            ],
        );
    }

    // ----- bank transactions -------------------------------------------------------------------

    fn tx(ext: Option<&str>) -> Value {
        let mut v = json!({"bankAccount": "DE89", "date": "2024-06-01", "amount": -4599,
            "currency": "EUR", "description": "Card payment"});
        if let Some(e) = ext {
            v["externalId"] = json!(e);
        }
        v
    }

    #[test]
    fn bank_single_and_array() {
        let (list, is_array) = validate_bank_transactions(&tx(Some("ext-9")), &refs(), 10).unwrap();
        assert!(!is_array);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].amount, -4599);
        assert_eq!(list[0].external_id.as_deref(), Some("ext-9"));
        let body = json!([tx(Some("a")), tx(Some("b")), tx(None), tx(None)]);
        let (list, is_array) = validate_bank_transactions(&body, &refs(), 4).unwrap();
        assert!(is_array);
        assert_eq!(list.len(), 4);
        // The same externalId on another bank account is fine.
        let mut other = tx(Some("ext-1"));
        other["bankAccount"] = json!("GB33");
        assert!(validate_bank_transactions(&json!([other, tx(Some("ext-2"))]), &refs(), 5).is_ok());
    }

    #[test]
    fn bank_batch_limits_and_shapes() {
        assert_problems(
            &validate_bank_transactions(&json!([]), &refs(), 10),
            &[("", codes::TOO_FEW)],
        );
        let body = json!([tx(None), tx(None), tx(None)]);
        assert_problems(
            &validate_bank_transactions(&body, &refs(), 2),
            &[("", codes::TOO_LONG)],
        );
        assert_problems(
            &validate_bank_transactions(&json!("x"), &refs(), 2),
            &[("", codes::INVALID_TYPE)],
        );
        assert_problems(
            &validate_bank_transactions(&json!([tx(None), 5]), &refs(), 2),
            &[("/1", codes::INVALID_TYPE)],
        );
    }

    #[test]
    fn bank_problems_carry_the_index() {
        let mut bad = tx(Some(" "));
        bad["amount"] = json!(1.25);
        bad["currency"] = json!("XYZ");
        bad["bankAccount"] = json!("b".repeat(256));
        bad["reference"] = json!(1);
        bad["date"] = json!("2024-06-31");
        bad["memo"] = json!("x");
        let body = json!([tx(None), bad, {}]);
        assert_problems(
            &validate_bank_transactions(&body, &refs(), 10),
            &[
                ("/1/amount", codes::INVALID_TYPE),
                ("/1/currency", codes::INVALID_VALUE),
                ("/1/bankAccount", codes::TOO_LONG),
                ("/1/reference", codes::INVALID_TYPE),
                ("/1/date", codes::INVALID_VALUE),
                ("/1/memo", codes::UNKNOWN_FIELD),
                ("/1/externalId", codes::INVALID_FORMAT),
                ("/2/bankAccount", codes::REQUIRED),
                ("/2/date", codes::REQUIRED),
                ("/2/amount", codes::REQUIRED),
                ("/2/currency", codes::REQUIRED),
                ("/2/description", codes::REQUIRED),
            ],
        );
    }

    #[test]
    fn bank_external_id_unique_per_account() {
        assert_problems(
            &validate_bank_transactions(&tx(Some("ext-1")), &refs(), 10),
            &[("/externalId", codes::DUPLICATE)],
        );
        let body = json!([
            tx(Some("n1")),
            tx(Some("n2")),
            tx(Some("n1")),
            tx(Some("ext-1"))
        ]);
        let r = validate_bank_transactions(&body, &refs(), 10);
        assert_problems(
            &r,
            &[
                ("/2/externalId", codes::DUPLICATE),
                ("/3/externalId", codes::DUPLICATE),
            ],
        );
        let errors = r.unwrap_err();
        assert!(
            errors[0].message.contains("/0/externalId"),
            "{}",
            errors[0].message
        );
    }

    // ----- properties --------------------------------------------------------------------------

    /// Independent rounding: round half up with `(2n + d) / 2d`, then step back to the even
    /// neighbour on exact ties.
    fn reference_round(n: i128, d: i128) -> i128 {
        let up = (2 * n + d).div_euclid(2 * d);
        let tie = (2 * n).rem_euclid(2 * d) == d;
        if tie && up % 2 != 0 {
            up - 1
        } else {
            up
        }
    }

    /// Spread an arbitrary i64 over small, medium and huge non-negative magnitudes.
    fn magnitude(raw: i64, selector: u8) -> i64 {
        let v = raw.checked_abs().unwrap_or(i64::MAX);
        match selector % 4 {
            0 => v,
            1 => v >> 20,
            2 => v >> 40,
            _ => v % 1000,
        }
    }

    /// `(property holds, validation succeeded)` for one generated invoice.
    fn totals_case(lines: Vec<(i64, u64, u8, i64, u8)>) -> (bool, bool) {
        if lines.is_empty() {
            return (true, false);
        }
        let mut json_lines = Vec::new();
        let mut exact_lines = Vec::new();
        for (unit_raw, qty_raw, scale_raw, tax_raw, sel) in lines.into_iter().take(6) {
            let unit = magnitude(unit_raw, sel);
            let tax = magnitude(tax_raw, sel / 4);
            let qty_range =
                [10, 1_000, 1_000_000, 1_000_000_000_000_000][usize::from(sel / 16 % 4)];
            let mantissa = qty_raw % qty_range + 1;
            let scale = u32::from(scale_raw % 7);
            let divisor = 10u64.pow(scale);
            let text = if scale == 0 {
                mantissa.to_string()
            } else {
                format!(
                    "{}.{:0width$}",
                    mantissa / divisor,
                    mantissa % divisor,
                    width = scale as usize
                )
            };
            let quantity: Value = serde_json::from_str(&text).unwrap();
            json_lines.push(json!({"description": "p", "quantity": quantity,
                "unitAmount": unit, "taxAmount": tax}));
            let product = i128::from(mantissa) * i128::from(unit);
            exact_lines.push(reference_round(product, i128::from(divisor)) + i128::from(tax));
        }
        let exact_total: i128 = exact_lines.iter().sum();
        let fits = |x: i128| i64::try_from(x).is_ok();
        let representable = exact_lines.iter().all(|l| fits(*l)) && fits(exact_total);
        match validate_invoice(&invoice_with(Value::Array(json_lines)), &refs(), None, 0) {
            Ok(inv) => {
                let holds = representable
                    && i128::from(inv.total) == exact_total
                    && inv
                        .lines
                        .iter()
                        .zip(&exact_lines)
                        .all(|(l, e)| i128::from(l.amount) == *e);
                (holds, true)
            }
            Err(errors) => {
                let holds = !representable
                    && !errors.is_empty()
                    && errors.iter().all(|e| e.code == codes::OVERFLOW);
                (holds, false)
            }
        }
    }

    fn prop_totals_exact_or_overflow(lines: Vec<(i64, u64, u8, i64, u8)>) -> bool {
        totals_case(lines).0
    }

    #[test]
    fn totals_property_reaches_both_outcomes() {
        let mut g = Gen::new(10);
        let (mut ok, mut overflow) = (0, 0);
        for _ in 0..500 {
            let (holds, succeeded) = totals_case(Arbitrary::arbitrary(&mut g));
            assert!(holds);
            if succeeded {
                ok += 1;
            } else {
                overflow += 1;
            }
        }
        assert!(ok > 100 && overflow > 100, "ok {ok}, overflow {overflow}");
    }

    #[test]
    fn quickcheck_totals_never_overflow_silently() {
        QuickCheck::new()
            .tests(2000)
            .quickcheck(prop_totals_exact_or_overflow as fn(Vec<(i64, u64, u8, i64, u8)>) -> bool);
    }

    /// JSON-ish input biased towards the CDM's field names and edge values.
    #[derive(Debug, Clone)]
    struct AnyJson(Value);

    const KEYS: &[&str] = &[
        "name",
        "email",
        "phone",
        "contactName",
        "billingAddress",
        "address",
        "line1",
        "country",
        "code",
        "type",
        "active",
        "description",
        "number",
        "customerId",
        "issueDate",
        "dueDate",
        "currency",
        "lines",
        "quantity",
        "unitAmount",
        "accountId",
        "taxAmount",
        "amount",
        "total",
        "amountPaid",
        "balance",
        "status",
        "memo",
        "vendorId",
        "vendor",
        "date",
        "reference",
        "bankAccount",
        "externalId",
        "invoiceId",
        "id",
        "version",
        "a/b~c",
        "",
    ];
    const STRINGS: &[&str] = &[
        "",
        " ",
        "c1",
        "v1",
        "a1",
        "INV-1",
        "4000",
        "DE89",
        "ext-1",
        "EUR",
        "eur",
        "XXXX",
        "2024-02-29",
        "2023-02-29",
        "9999-12-31",
        "0000-01-01",
        "a@b.co",
        "@",
        "void",
        "paid",
        "open",
        "asset",
        "DE",
        "~/",
        "\u{0}",
        "é",
    ];

    fn any_number(g: &mut Gen) -> Value {
        match u8::arbitrary(g) % 8 {
            0 => json!(i64::arbitrary(g)),
            1 => json!(u64::arbitrary(g)),
            2 => json!(i64::arbitrary(g) % 1000),
            3 => serde_json::Number::from_f64(f64::arbitrary(g))
                .map(Value::Number)
                .unwrap_or(Value::Null),
            4 => json!(f64::from(i32::arbitrary(g) % 100_000) / 1000.0),
            5 => json!(i64::MAX),
            6 => json!(i64::MIN),
            _ => json!(1e-7),
        }
    }

    fn any_json(g: &mut Gen, depth: u32) -> Value {
        let pick = u8::arbitrary(g) % if depth == 0 { 5 } else { 8 };
        match pick {
            0 => Value::Null,
            1 => Value::Bool(bool::arbitrary(g)),
            2 => any_number(g),
            3 => json!(g.choose(STRINGS).copied().unwrap_or("")),
            4 => Value::String(String::arbitrary(g)),
            5 => {
                let n = usize::from(u8::arbitrary(g) % 4);
                Value::Array((0..n).map(|_| any_json(g, depth - 1)).collect())
            }
            _ => {
                let n = usize::from(u8::arbitrary(g) % 8);
                let mut map = Map::new();
                for _ in 0..n {
                    let key = if bool::arbitrary(g) {
                        g.choose(KEYS).copied().unwrap_or("").to_string()
                    } else {
                        String::arbitrary(g)
                    };
                    map.insert(key, any_json(g, depth - 1));
                }
                Value::Object(map)
            }
        }
    }

    impl Arbitrary for AnyJson {
        fn arbitrary(g: &mut Gen) -> Self {
            AnyJson(any_json(g, 4))
        }
    }

    fn prop_validators_never_panic(input: AnyJson, patch: AnyJson) -> bool {
        let r = refs();
        let v = &input.0;
        // Also patch the input into valid objects, so that deep checks are reached.
        let mut invoice = one_line(json!(1.5), 100);
        merge_patch(&mut invoice, v);
        let mut expense = expense_with(json!({"vendorId": "v1"}));
        merge_patch(&mut expense, v);
        let mut customer = json!({"name": "n"});
        merge_patch(&mut customer, v);
        let stored = stored_invoice(100, 10, InvoiceStatus::Open);
        for body in [v, &invoice, &expense, &customer] {
            let _ = validate_customer(body, &r, Some("c1"));
            let _ = validate_vendor(body, "/vendor");
            let _ = validate_account(body, &r, None);
            let _ = validate_invoice(body, &r, Some("inv1"), 7);
            let _ = validate_invoice(body, &r, None, i64::MAX);
            let _ = validate_payment(body, &stored);
            let _ = validate_expense(body, &r);
            let _ = validate_bank_transactions(body, &r, 3);
            let mut copy = body.clone();
            strip_server_fields(&mut copy);
            merge_patch(&mut copy, &patch.0);
        }
        let lines = invoice_with(json!([v.clone(), v.clone()]));
        let _ = validate_invoice(&lines, &r, None, 0);
        true
    }

    #[test]
    fn quickcheck_validators_never_panic() {
        QuickCheck::new()
            .tests(1000)
            .quickcheck(prop_validators_never_panic as fn(AnyJson, AnyJson) -> bool);
    }

    fn prop_merge_patch_idempotent(target: AnyJson, patch: AnyJson) -> bool {
        let mut once = target.0.clone();
        merge_patch(&mut once, &patch.0);
        let mut twice = once.clone();
        merge_patch(&mut twice, &patch.0);
        once == twice
    }

    #[test]
    fn quickcheck_merge_patch_is_idempotent() {
        QuickCheck::new()
            .tests(500)
            .quickcheck(prop_merge_patch_idempotent as fn(AnyJson, AnyJson) -> bool);
    }
}
