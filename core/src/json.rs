//! A JSON document that borrows its strings from the request body.
//!
//! The validators walk a document instead of deserialising into the CDM types directly, so that
//! they can report every problem with its pointer (see `validate`). `serde_json::Value` would
//! do, but it allocates every key and every string; this document is parsed by the same
//! `serde_json` deserializer (same syntax errors, same numbers, same depth limit) and keeps
//! strings without escapes as slices of the body. Objects behave as `serde_json`'s default
//! `Value` map does: members sorted by key, a repeated key keeps its last value.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Number, Value};

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as `serde_json` represents it.
    Number(Number),
    /// A string.
    String(Cow<'a, str>),
    /// An array.
    Array(Vec<Json<'a>>),
    /// An object.
    Object(JsonObject<'a>),
}

/// The members of an object as written. A repeated key keeps its last value; [`JsonObject::iter`]
/// and [`JsonObject::keys`] list the members in key order, each key once.
#[derive(Debug, Clone, Default)]
pub struct JsonObject<'a> {
    members: Vec<(Cow<'a, str>, Json<'a>)>,
}

impl PartialEq for JsonObject<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl<'a> JsonObject<'a> {
    /// The value of a member (the last one, when the key is repeated).
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        // Objects of the CDM are small and their keys mostly differ in length: a scan compares
        // few bytes.
        self.members
            .iter()
            .rev()
            .find(|(k, _)| k.len() == key.len() && k.as_ref() == key)
            .map(|(_, v)| v)
    }

    /// Whether every key satisfies `f` (in no particular order; repeated keys may be seen twice).
    pub fn all_keys(&self, mut f: impl FnMut(&str) -> bool) -> bool {
        self.members.iter().all(|(k, _)| f(k))
    }

    /// The keys, in order, each once.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(k, _)| k)
    }

    /// The members in key order, each key once with its last value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Json<'a>)> {
        let mut order: Vec<usize> = (0..self.members.len()).collect();
        // Stable: the members of a repeated key stay in document order.
        order.sort_by(|a, b| self.key(*a).cmp(self.key(*b)));
        let mut unique: Vec<usize> = Vec::with_capacity(order.len());
        for i in order {
            match unique.last_mut() {
                Some(last) if self.key(*last) == self.key(i) => *last = i,
                _ => unique.push(i),
            }
        }
        unique
            .into_iter()
            .filter_map(|i| self.members.get(i))
            .map(|(k, v)| (k.as_ref(), v))
    }

    fn key(&self, i: usize) -> &str {
        self.members.get(i).map_or("", |(k, _)| k.as_ref())
    }

    /// Number of distinct keys.
    pub fn len(&self) -> usize {
        self.keys().count()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

impl<'a> Json<'a> {
    /// Parse JSON text; errors are `serde_json`'s, as for `serde_json::from_str::<Value>`.
    pub fn parse(text: &'a str) -> Result<Json<'a>, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// A document that borrows from a `serde_json::Value`.
    pub fn from_value(v: &'a Value) -> Json<'a> {
        match v {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(n.clone()),
            Value::String(s) => Json::String(Cow::Borrowed(s)),
            Value::Array(a) => Json::Array(a.iter().map(Json::from_value).collect()),
            // A Value map is already sorted and unique.
            Value::Object(m) => Json::Object(JsonObject {
                members: m
                    .iter()
                    .map(|(k, v)| (Cow::Borrowed(k.as_str()), Json::from_value(v)))
                    .collect(),
            }),
        }
    }

    /// The same document as a `serde_json::Value`.
    pub fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::Number(n.clone()),
            Json::String(s) => Value::String(s.to_string()),
            Json::Array(a) => Value::Array(a.iter().map(Json::to_value).collect()),
            Json::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.to_string(), v.to_value()))
                    .collect(),
            ),
        }
    }

    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    /// The members of an object.
    pub fn as_object(&self) -> Option<&JsonObject<'a>> {
        match self {
            Json::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The text of a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        self.as_object().and_then(|o| o.get(key))
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Self::Value, E> {
        // As serde_json's Value: a non-finite float (not produced by its parser) is null.
        Ok(Number::from_f64(n).map_or(Json::Null, Json::Number))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Owned(s.to_string())))
    }
    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Owned(s)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Json::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0).clamp(8, 64));
        while let Some(k) = map.next_key_seed(KeySeed)? {
            let v: Json<'de> = map.next_value()?;
            members.push((k, v));
        }
        Ok(Json::Object(JsonObject { members }))
    }
}

/// An object key, borrowed when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(s))
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s))
    }
    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Self::Value, E> {
        Err(de::Error::invalid_type(de::Unexpected::Bytes(b), &self))
    }
}

/// `value` as JSON text, as `serde_json::to_string` writes it, into a buffer of `size_hint`
/// bytes to start with. The engine's stored rows and typed answers and the wasm binding's
/// frames are serialized here, so that serde_json is instantiated for one writer only (a
/// `serde_json::Value` still prints through its `Display`).
pub fn to_text<T: serde::Serialize + ?Sized>(
    value: &T,
    size_hint: usize,
) -> Result<String, serde_json::Error> {
    let mut buf = Text(Vec::with_capacity(size_hint));
    serde_json::to_writer(&mut buf, value)?;
    // serde_json writes UTF-8 only; the check keeps this free of `unsafe`.
    String::from_utf8(buf.0).map_err(serde::ser::Error::custom)
}

/// The buffer [`to_text`] serializes into. serde_json writes most of a document in pieces of
/// one to a few bytes (quotes, colons, commas, short numbers). On wasm32 these are pushed byte
/// by byte: through `Vec::extend_from_slice` each was a `memory.copy`, which V8 runs as a call
/// out of the module (about 900 of them per pushing write in node; README of the wasm
/// package). Natively the copy is cheaper than the loop (5,000 instructions more per plan of
/// the core benchmark with the loop), so there it is the plain copy.
struct Text(Vec<u8>);

impl Text {
    fn put(&mut self, bytes: &[u8]) {
        if cfg!(target_arch = "wasm32") && bytes.len() <= 8 {
            let mut i = 0;
            while i < bytes.len() {
                self.0.push(bytes[i]);
                i += 1;
            }
        } else {
            self.0.extend_from_slice(bytes);
        }
    }
}

impl std::io::Write for Text {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.put(bytes);
        Ok(bytes.len())
    }
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.put(bytes);
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn to_text_writes_what_to_string_writes() {
        let long = "y".repeat(5000);
        let values = [
            serde_json::json!(null),
            serde_json::json!("é \" \\ \n \u{1} 😀"),
            serde_json::json!({"a": [1, -2.5, 1e300, true], "": {}, "k\"ey": [[], [null]]}),
            serde_json::json!({"long": long, "n": u64::MAX, "m": i64::MIN}),
        ];
        for v in &values {
            for hint in [0, 3, 4096] {
                assert_eq!(to_text(v, hint).unwrap(), serde_json::to_string(v).unwrap());
            }
        }
        assert_eq!(to_text("ab", 0).unwrap(), "\"ab\"");
    }

    fn same_as_value(text: &str) {
        let v: Result<Value, _> = serde_json::from_str(text);
        let j = Json::parse(text);
        match (v, j) {
            (Ok(v), Ok(j)) => {
                assert_eq!(j.to_value(), v, "{text}");
                assert_eq!(Json::from_value(&v), j, "{text}");
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{text}"),
            (a, b) => panic!("{text}: Value {a:?}, Json {b:?}"),
        }
    }

    #[test]
    fn parses_like_serde_json_value() {
        for text in [
            "null",
            "true",
            "0",
            "-1",
            "18446744073709551615",
            "-9223372036854775808",
            "1.5",
            "1e400",
            "-0.0",
            "\"a\\nb\\u00e9\\ud83d\\ude00\"",
            "\"\\ud800\"",
            "[]",
            "[1,[2,[3]]]",
            r#"{"b":1,"a":2,"b":3}"#,
            r#"{"a\/b":1,"a/b":2}"#,
            r#"{"z":{"y":[{"x":null}]},"é":"ü"}"#,
            "{",
            "[1,]",
            "{\"a\":1}x",
            "",
            "  ",
            "01",
            "\"\u{1}\"",
            &"[".repeat(200),
            &format!("{}1{}", "[".repeat(120), "]".repeat(120)),
        ] {
            same_as_value(text);
        }
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let text = r#"{"plain":"abc","esc":"a\"b"}"#;
        let j = Json::parse(text).unwrap();
        let o = j.as_object().unwrap();
        assert!(matches!(
            o.get("plain"),
            Some(Json::String(Cow::Borrowed("abc")))
        ));
        assert!(matches!(o.get("esc"), Some(Json::String(Cow::Owned(_)))));
        assert_eq!(o.keys().collect::<Vec<_>>(), ["esc", "plain"]);
    }

    #[test]
    fn members_are_found_in_small_and_large_objects() {
        for n in [1usize, 5, 16, 17, 40] {
            let text = format!(
                "{{{}}}",
                (0..n)
                    .rev()
                    .map(|i| format!("\"k{i}\":{i}"))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let j = Json::parse(&text).unwrap();
            for i in 0..n {
                assert_eq!(
                    j.get(&format!("k{i}")),
                    Some(&Json::Number(i.into())),
                    "{n}"
                );
            }
            assert_eq!(j.get("k"), None);
            assert_eq!(j.get(&format!("k{n}")), None);
        }
    }

    #[test]
    fn repeated_keys_keep_the_last_value() {
        let j = Json::parse(r#"{"a":1,"b":2,"a":3,"a":4}"#).unwrap();
        assert_eq!(j.get("a"), Some(&Json::Number(4.into())));
        assert_eq!(j.as_object().unwrap().len(), 2);
    }

    /// JSON text with nested values and keys drawn from a small set, so that objects often
    /// repeat a key (also spelled with an escape).
    fn any_text(g: &mut quickcheck::Gen, depth: u32) -> String {
        use quickcheck::Arbitrary;
        let kinds = if depth == 0 { 4 } else { 6 };
        match u8::arbitrary(g) % kinds {
            0 => "null".into(),
            1 => bool::arbitrary(g).to_string(),
            2 => match u8::arbitrary(g) % 3 {
                0 => i64::arbitrary(g).to_string(),
                1 => u64::arbitrary(g).to_string(),
                _ => {
                    let f = f64::arbitrary(g);
                    serde_json::to_string(&if f.is_finite() { f } else { 0.5 }).unwrap()
                }
            },
            3 => serde_json::to_string(&String::arbitrary(g)).unwrap(),
            4 => {
                let n = usize::arbitrary(g) % 4;
                let items: Vec<String> = (0..n).map(|_| any_text(g, depth - 1)).collect();
                format!("[{}]", items.join(","))
            }
            _ => {
                let keys = ["a", "b", "ab", r"\u0061", "é", r"a\/b", "a/b", ""];
                let n = usize::arbitrary(g) % 6;
                let members: Vec<String> = (0..n)
                    .map(|_| {
                        let k = keys[usize::arbitrary(g) % keys.len()];
                        format!("\"{k}\":{}", any_text(g, depth - 1))
                    })
                    .collect();
                format!("{{{}}}", members.join(","))
            }
        }
    }

    #[test]
    fn generated_documents_read_as_value_reads_them() {
        let mut g = quickcheck::Gen::new(20);
        for _ in 0..3000 {
            let text = any_text(&mut g, 4);
            same_as_value(&text);
            let v: Value = serde_json::from_str(&text).unwrap();
            let j = Json::parse(&text).unwrap();
            if let (Some(vo), Some(jo)) = (v.as_object(), j.as_object()) {
                for k in ["a", "b", "ab", "é", "a/b", "", "zz"] {
                    assert_eq!(
                        jo.get(k).map(Json::to_value),
                        vo.get(k).cloned(),
                        "{text} {k}"
                    );
                }
                assert_eq!(jo.len(), vo.len());
            }
        }
    }

    quickcheck::quickcheck! {
        fn any_text_parses_as_value_does(s: String) -> bool {
            let v: Result<Value, _> = serde_json::from_str(&s);
            match (v, Json::parse(&s)) {
                (Ok(v), Ok(j)) => j.to_value() == v,
                (Err(a), Err(b)) => a.to_string() == b.to_string(),
                _ => false,
            }
        }
    }
}
