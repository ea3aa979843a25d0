//! HubSpot CRM API v3.
//!
//! A customer is a company (`POST {baseUrl}/crm/v3/objects/companies`) or, with the setting
//! `customerObject: contacts`, a contact (`POST {baseUrl}/crm/v3/objects/contacts`); an
//! update is `PATCH .../{id}`, a delete `DELETE .../{id}` (HubSpot archives the object;
//! `204`, and a `404` counts as done). Bodies are `{"properties": {...}}` with string values; the
//! answer is the object with its `id`. Errors are
//! `{"status": "error", "message", "correlationId", "category"}`; throttling is `429` with
//! `errorType: RATE_LIMIT`. HubSpot takes no idempotency key: a contact create retried after
//! a lost answer is refused with `409` `Contact already exists. Existing ID: N`, which this
//! connector reads as success with that id (so contacts need an e-mail address).

use std::collections::BTreeMap;

use serde_json::Value;

use super::error::text_of;
use super::SourceError;
use super::{
    bearer_headers, check_needs, encode, failure, join, one, s, split_name, text, Answer,
    Connector, ConnectorError, ConnectorKind, Needs, Obj, Operation, ProviderVerdict, PushInput,
    SettingSpec,
};
use crate::cdm::{codes, FieldError, ObjectType};
use crate::OutboundRequest;

const APP: ConnectorKind = ConnectorKind::Hubspot;

const OBJECTS: [ObjectType; 1] = [ObjectType::Customer];

const SETTINGS: [SettingSpec; 1] = [SettingSpec {
    name: "customerObject",
    required: false,
    description: "the HubSpot object a customer becomes: companies (default) or contacts",
}];

/// The HubSpot connector (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct HubSpot;

fn contacts(settings: &BTreeMap<String, String>) -> bool {
    settings.get("customerObject").map(String::as_str) == Some("contacts")
}

fn properties(o: &Value, as_contact: bool) -> Obj {
    let mut p = Obj::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v {
            p.insert(k.to_string(), Value::String(v.to_string()));
        }
    };
    let name = s(o, "name");
    if as_contact {
        let (first, last) = split_name(s(o, "contactName").or(name).unwrap_or_default());
        put("firstname", first.as_deref());
        put("lastname", Some(&last));
        put("email", s(o, "email"));
        if s(o, "contactName").is_some() {
            put("company", name);
        }
    } else {
        put("name", name);
    }
    put("phone", s(o, "phone"));
    if let Some(a) = o.get("billingAddress") {
        put("address", s(a, "line1"));
        if !as_contact {
            put("address2", s(a, "line2"));
        }
        put("city", s(a, "city"));
        put("state", s(a, "region"));
        put("zip", s(a, "postalCode"));
        put("country", s(a, "country"));
    }
    p
}

/// The `Existing ID` of a `409` conflict on a contact create.
fn existing_id(message: &str) -> Option<String> {
    let rest = message.split("Existing ID:").nth(1)?.trim();
    let id: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (!id.is_empty()).then_some(id)
}

impl Connector for HubSpot {
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
        match settings.get("customerObject").map(String::as_str) {
            None | Some("companies" | "contacts") => Vec::new(),
            Some(_) => vec![FieldError {
                pointer: "/settings/customerObject".into(),
                code: codes::INVALID_VALUE,
                message: "customerObject is companies or contacts".into(),
            }],
        }
    }

    fn check(
        &self,
        object_type: ObjectType,
        o: &Value,
        settings: &BTreeMap<String, String>,
    ) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let needs = self.needs(object_type, settings);
        check_needs(APP, object_type, needs, o, settings, &mut errors);
        errors
    }

    fn needs(&self, object_type: ObjectType, settings: &BTreeMap<String, String>) -> Needs {
        if object_type == ObjectType::Customer && contacts(settings) {
            return Needs {
                fields: &[(
                    "/email",
                    "HubSpot identifies contacts by e-mail: a customer pushed as a contact needs one",
                )],
                settings: &[],
            };
        }
        Needs::default()
    }

    fn ignores(
        &self,
        object_type: ObjectType,
        settings: &BTreeMap<String, String>,
    ) -> &'static [&'static str] {
        match (object_type, contacts(settings)) {
            (ObjectType::Customer, true) => &["/billingAddress/line2"],
            (ObjectType::Customer, false) => &["/contactName", "/email"],
            _ => &[],
        }
    }

    fn request(&self, input: &PushInput<'_>) -> Result<OutboundRequest, ConnectorError> {
        if input.object_type != ObjectType::Customer {
            return Err(ConnectorError::UnsupportedObject {
                connector: APP,
                object_type: input.object_type,
            });
        }
        let as_contact = contacts(input.settings);
        let object = if as_contact { "contacts" } else { "companies" };
        if input.operation == Operation::Delete {
            let id = super::delete_target(input, APP, &OBJECTS)?;
            return Ok(super::delete_request(
                join(
                    input.url,
                    &format!("/crm/v3/objects/{object}/{}", encode(id)),
                ),
                bearer_headers(input.access_token),
            ));
        }
        let props = properties(&input.object_value(), as_contact);
        let body = one("properties", Value::Object(props));
        let (method, path) = match (input.operation, input.remote_id) {
            (Operation::Update, Some(id)) => {
                ("PATCH", format!("/crm/v3/objects/{object}/{}", encode(id)))
            }
            (Operation::Create, _) => ("POST", format!("/crm/v3/objects/{object}")),
            _ => return Err(ConnectorError::NoRemoteId { connector: APP }),
        };
        Ok(OutboundRequest {
            method: method.into(),
            url: join(input.url, &path),
            headers: bearer_headers(input.access_token),
            body: text(&body),
        })
    }

    fn interpret(&self, answer: &Answer<'_>) -> ProviderVerdict {
        let v = answer.json();
        let id = |v: &Value| match v.get("id") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        if matches!(answer.status, 200 | 201) {
            return ProviderVerdict::Success {
                remote_id: id(&v),
                version: None,
            };
        }
        if answer.delete_done() {
            return super::DELETED;
        }
        let message = s(&v, "message").unwrap_or_default();
        if answer.status == 409 && answer.operation == Operation::Create {
            if let Some(existing) = existing_id(message) {
                return ProviderVerdict::Success {
                    remote_id: Some(existing),
                    version: None,
                };
            }
        }
        let text = match s(&v, "category").or_else(|| s(&v, "errorType")) {
            Some(c) if !message.is_empty() => format!("{message} ({c})"),
            _ => message.to_string(),
        };
        failure(answer, &text)
    }

    /// `category` (or `errorType`) as the code, `message`, and the first property an entry
    /// of `errors` names in `context.propertyName` (else `name`).
    fn source_error(&self, answer: &Answer<'_>) -> SourceError {
        let v = answer.json();
        let field = super::list(&v, "errors").iter().find_map(|e| {
            let ctx = e.get("context");
            text_of(
                ctx.and_then(|c| c.get("propertyName"))
                    .and_then(|p| p.get(0)),
            )
            .or_else(|| text_of(e.get("name")))
        });
        SourceError {
            status: answer.status,
            code: text_of(v.get("category")).or_else(|| text_of(v.get("errorType"))),
            message: text_of(v.get("message")),
            field,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_ids_are_read() {
        assert_eq!(
            existing_id("Contact already exists. Existing ID: 12345"),
            Some("12345".into())
        );
        assert_eq!(existing_id("Contact already exists."), None);
    }
}
