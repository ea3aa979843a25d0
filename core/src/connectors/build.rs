//! Building provider JSON: small out-of-line helpers that every connector's request
//! builder shares (one copy each in the wasm module, instead of the same code inlined in
//! each builder).

use serde_json::Value;

use super::{decimal, i, s};

/// A provider JSON object under construction (keys are sorted: serde_json's map is a BTreeMap).
pub(crate) type Obj = serde_json::Map<String, Value>;

/// `m[key] = v`.
#[inline(never)]
pub(crate) fn put(m: &mut Obj, key: &str, v: Value) {
    m.insert(key.to_string(), v);
}

/// A JSON string.
#[inline(never)]
pub(crate) fn string(v: &str) -> Value {
    Value::String(v.to_string())
}

/// `m[key] = "v"`.
pub(crate) fn put_str(m: &mut Obj, key: &str, v: &str) {
    put(m, key, string(v));
}

/// A JSON object of `(key, value)` pairs (the values are moved out of the slice).
#[inline(never)]
pub(crate) fn obj(pairs: &mut [(&str, Value)]) -> Value {
    let mut m = Obj::new();
    for (k, v) in pairs.iter_mut() {
        put(&mut m, k, v.take());
    }
    Value::Object(m)
}

/// `{key: v}`.
#[inline(never)]
pub(crate) fn one(key: &str, v: Value) -> Value {
    let mut m = Obj::new();
    put(&mut m, key, v);
    Value::Object(m)
}

/// Copy string members of `o` as `(provider key, CDM field)`; an absent member is `""`.
#[inline(never)]
pub(crate) fn copy_all(m: &mut Obj, o: &Value, fields: &[(&str, &str)]) {
    for (to, from) in fields {
        put_str(m, to, s(o, from).unwrap_or_default());
    }
}

/// Copy the string members of `o` that are present, as `(provider key, CDM field)`.
#[inline(never)]
pub(crate) fn copy_present(m: &mut Obj, o: &Value, fields: &[(&str, &str)]) {
    for (to, from) in fields {
        if let Some(v) = s(o, from) {
            put_str(m, to, v);
        }
    }
}

/// An amount member in minor units (0 when absent) as the provider's decimal.
#[inline(never)]
pub(crate) fn amount(o: &Value, key: &str, currency: &str) -> Value {
    decimal(i(o, key).unwrap_or(0), currency)
}

/// The JSON text of a value (`null` never happens for the values built here).
pub(crate) fn text(v: &Value) -> String {
    v.to_string()
}
