//! Shopify Admin REST API.
//!
//! A customer is created with `POST {baseUrl}/admin/api/{apiVersion}/customers.json` and
//! updated with `PUT {baseUrl}/admin/api/{apiVersion}/customers/{id}.json`, body
//! `{"customer": {...}}`, and deleted with `DELETE .../customers/{id}.json` (answered `200 {}`;
//! a `404` counts as done; Shopify refuses to delete a customer with orders), authenticated
//! with `X-Shopify-Access-Token: {token}`. The answer is
//! `{"customer": {"id": <number>, ...}}`; errors are `{"errors": "text"}` or
//! `{"errors": {"field": ["message", ...]}}` (`422` for validation); throttling is `429` with
//! `Retry-After` in (fractional) seconds.

use std::collections::BTreeMap;

use serde_json::Value;

use super::error::text_of;
use super::SourceError;
use super::{
    copy_present, encode, failure, join, one, put, put_str, requirement, s, split_name, string,
    text, Answer, Connector, ConnectorError, ConnectorKind, Obj, Operation, ProviderVerdict,
    PushInput, SettingSpec,
};
use crate::cdm::{codes, FieldError, ObjectType};
use crate::OutboundRequest;

/// The API version used when the connection names none.
pub(crate) const DEFAULT_API_VERSION: &str = "2025-07";

const APP: ConnectorKind = ConnectorKind::Shopify;

const OBJECTS: [ObjectType; 1] = [ObjectType::Customer];

const SETTINGS: [SettingSpec; 1] = [SettingSpec {
    name: "apiVersion",
    required: false,
    description: "the Admin API version in the path, YYYY-MM (default 2025-07)",
}];

/// The Shopify connector (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct Shopify;

/// A phone number in E.164 form (`+` and 7 to 15 digits) once blanks, dots, dashes and
/// parentheses are removed.
pub(crate) fn e164(phone: &str) -> Option<String> {
    let kept: String = phone
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')'))
        .collect();
    let digits = kept.strip_prefix('+')?;
    ((7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())).then_some(kept)
}

fn valid_version(v: &str) -> bool {
    let b = v.as_bytes();
    v.len() == 7
        && b[4] == b'-'
        && b.iter()
            .enumerate()
            .all(|(n, c)| n == 4 || c.is_ascii_digit())
}

/// Address members: (Shopify key, CDM field).
const ADDRESS: &[(&str, &str)] = &[
    ("address1", "line1"),
    ("address2", "line2"),
    ("city", "city"),
    ("province", "region"),
    ("zip", "postalCode"),
    ("country_code", "country"),
];

fn customer(o: &Value, with_addresses: bool) -> Obj {
    let mut m = Obj::new();
    let name = s(o, "name").unwrap_or_default();
    let (first, last) = split_name(s(o, "contactName").unwrap_or(name));
    if let Some(f) = first {
        put(&mut m, "first_name", Value::String(f));
    }
    put(&mut m, "last_name", Value::String(last));
    copy_present(&mut m, o, &[("email", "email")]);
    if let Some(p) = s(o, "phone").and_then(e164) {
        put(&mut m, "phone", Value::String(p));
    }
    if with_addresses {
        if let Some(a) = o.get("billingAddress").filter(|a| a.is_object()) {
            let mut addr = Obj::new();
            copy_present(&mut addr, a, ADDRESS);
            if s(o, "contactName").is_some() {
                put_str(&mut addr, "company", name);
            }
            put(&mut m, "addresses", Value::Array(vec![Value::Object(addr)]));
        }
    }
    m
}

/// The text of `{"errors": ...}`.
pub(crate) fn error_text(v: &Value) -> Option<String> {
    match v.get("errors")? {
        Value::String(s) => Some(s.clone()),
        Value::Object(fields) => {
            let parts: Vec<String> = fields
                .iter()
                .map(|(field, msgs)| {
                    let msgs = match msgs {
                        Value::Array(a) => a
                            .iter()
                            .map(|m| m.as_str().map(str::to_string).unwrap_or(m.to_string()))
                            .collect::<Vec<_>>()
                            .join(", "),
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    format!("{field} {msgs}")
                })
                .collect();
            Some(parts.join("; "))
        }
        other => Some(other.to_string()),
    }
}

impl Connector for Shopify {
    fn kind(&self) -> ConnectorKind {
        APP
    }

    fn objects(&self) -> &'static [ObjectType] {
        &OBJECTS
    }

    fn settings(&self) -> &'static [SettingSpec] {
        &SETTINGS
    }

    fn check_settings(&self, settings: &BTreeMap<String, String>) -> Vec<FieldError> {
        match settings.get("apiVersion") {
            Some(v) if !valid_version(v) => vec![FieldError {
                pointer: "/settings/apiVersion".into(),
                code: codes::INVALID_FORMAT,
                message: "apiVersion is YYYY-MM, like 2025-07".into(),
            }],
            _ => Vec::new(),
        }
    }

    fn check(
        &self,
        object_type: ObjectType,
        o: &Value,
        _settings: &BTreeMap<String, String>,
    ) -> Vec<FieldError> {
        if object_type != ObjectType::Customer {
            return Vec::new();
        }
        match s(o, "phone") {
            Some(p) if e164(p).is_none() => vec![requirement(
                APP,
                "/phone",
                codes::INVALID_FORMAT,
                "phone in E.164 form (+ and the country code, 7 to 15 digits)",
            )],
            _ => Vec::new(),
        }
    }

    fn request(&self, input: &PushInput<'_>) -> Result<OutboundRequest, ConnectorError> {
        if input.object_type != ObjectType::Customer {
            return Err(ConnectorError::UnsupportedObject {
                connector: APP,
                object_type: input.object_type,
            });
        }
        let version = input.setting("apiVersion").unwrap_or(DEFAULT_API_VERSION);
        let o = input.object_value();
        let mut headers = BTreeMap::new();
        headers.insert("Accept".to_string(), "application/json".to_string());
        headers.insert("Content-Type".to_string(), "application/json".to_string());
        if let Some(t) = input.access_token {
            headers.insert("X-Shopify-Access-Token".to_string(), t.to_string());
        }
        let (method, path, body) = match (input.operation, input.remote_id) {
            (Operation::Update, Some(id)) => {
                let mut c = customer(&o, false);
                let id_value = id.parse::<u64>().map(Value::from);
                put(&mut c, "id", id_value.unwrap_or_else(|_| string(id)));
                (
                    "PUT",
                    format!(
                        "/admin/api/{}/customers/{}.json",
                        encode(version),
                        encode(id)
                    ),
                    one("customer", Value::Object(c)),
                )
            }
            (Operation::Create, _) => (
                "POST",
                format!("/admin/api/{}/customers.json", encode(version)),
                one("customer", Value::Object(customer(&o, true))),
            ),
            (Operation::Delete, _) => {
                let id = super::delete_target(input, APP, &OBJECTS)?;
                let path = format!(
                    "/admin/api/{}/customers/{}.json",
                    encode(version),
                    encode(id)
                );
                return Ok(super::delete_request(join(input.url, &path), headers));
            }
            (Operation::Update, None) => return Err(ConnectorError::NoRemoteId { connector: APP }),
        };
        Ok(OutboundRequest {
            method: method.into(),
            url: join(input.url, &path),
            headers,
            body: text(&body),
        })
    }

    fn interpret(&self, answer: &Answer<'_>) -> ProviderVerdict {
        let v = answer.json();
        if matches!(answer.status, 200 | 201) {
            let id = match v.get("customer").and_then(|c| c.get("id")) {
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                _ => None,
            };
            return ProviderVerdict::Success {
                remote_id: id,
                version: None,
            };
        }
        if answer.delete_done() {
            return super::DELETED;
        }
        failure(answer, &error_text(&v).unwrap_or_default())
    }

    /// `errors` as Shopify writes it: a map of field to messages (the first field is the
    /// field, its messages the message), or a message alone. Shopify names no error code.
    fn source_error(&self, answer: &Answer<'_>) -> SourceError {
        let v = answer.json();
        let (field, message) = match v.get("errors") {
            Some(Value::Object(fields)) => match fields.iter().next() {
                Some((f, msgs)) => {
                    let text = match msgs {
                        Value::Array(a) => a
                            .iter()
                            .filter_map(|m| text_of(Some(m)))
                            .collect::<Vec<_>>()
                            .join(", "),
                        other => text_of(Some(other)).unwrap_or_default(),
                    };
                    (Some(f.clone()), (!text.is_empty()).then_some(text))
                }
                None => (None, None),
            },
            other => (None, text_of(other)),
        };
        SourceError {
            status: answer.status,
            code: None,
            message,
            field,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn phones_and_errors() {
        assert_eq!(e164("+44 20 7946 0000").as_deref(), Some("+442079460000"));
        assert_eq!(e164("+1 (555) 010-0199").as_deref(), Some("+15550100199"));
        assert_eq!(e164("555 0100"), None);
        assert!(valid_version("2025-07"));
        assert!(!valid_version("2025-7"));
        let v = json!({"errors": {"email": ["has already been taken"], "phone": ["is invalid"]}});
        assert_eq!(
            error_text(&v).unwrap(),
            "email has already been taken; phone is invalid"
        );
        assert_eq!(
            error_text(&json!({"errors": "Not Found"})).unwrap(),
            "Not Found"
        );
    }
}
