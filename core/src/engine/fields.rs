//! Reading the bodies of admin calls: unknown members, objects, URLs.

use serde_json::Value;

use super::state::Engine;
use super::vocab::{field_error, invalid, H};
use crate::cdm::{codes, FieldError};

pub(crate) fn reject_unknown(body: &Value, allowed: &[&str], errors: &mut Vec<FieldError>) {
    if let Some(obj) = body.as_object() {
        for k in obj.keys() {
            if !allowed.contains(&k.as_str()) {
                errors.push(field_error(
                    &format!("/{}", crate::validate::pointer_token(k)),
                    codes::UNKNOWN_FIELD,
                    format!("{k} is not a field of this call"),
                ));
            }
        }
    }
}

pub(crate) fn require_object(body: &Value) -> H<&serde_json::Map<String, Value>> {
    match body.as_object() {
        Some(o) => Ok(o),
        None => invalid(vec![field_error(
            "",
            codes::INVALID_TYPE,
            "the body must be a JSON object",
        )]),
    }
}

pub(crate) fn url_field(
    obj: &serde_json::Map<String, Value>,
    name: &str,
    engine: &Engine,
    errors: &mut Vec<FieldError>,
) -> String {
    let p = format!("/{name}");
    match obj.get(name) {
        Some(Value::String(s)) => {
            if s.len() > 2048 {
                errors.push(field_error(
                    &p,
                    codes::TOO_LONG,
                    "a URL is at most 2048 characters",
                ));
            } else {
                match engine.config.target_policy.check_url(s) {
                    // The URL is stored as parsed, so what was checked is what is used.
                    Ok(normalized) => return normalized,
                    Err(why) => errors.push(field_error(&p, codes::INVALID_VALUE, why)),
                }
            }
            s.clone()
        }
        None | Some(Value::Null) => {
            errors.push(field_error(
                &p,
                codes::REQUIRED,
                format!("{name} is required"),
            ));
            String::new()
        }
        Some(_) => {
            errors.push(field_error(
                &p,
                codes::INVALID_TYPE,
                format!("{name} must be a string"),
            ));
            String::new()
        }
    }
}
