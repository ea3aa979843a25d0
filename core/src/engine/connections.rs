//! Connections: the source applications an account has connected, with their connector
//! and settings.

use serde_json::Value;

use super::command::{Body, Reply};
use super::fields::{reject_unknown, require_object, url_field};
use super::state::Engine;
use super::views::connection_json;
use super::vocab::{field_error, invalid, Ctx, H};
use crate::cdm::{codes, FieldError, ObjectType};
use crate::connectors::ConnectorKind;
use crate::records::*;
use crate::routing::{default_objects, valid_app_key, valid_app_type};

pub(crate) fn create_connection(
    engine: &mut Engine,
    body: Body<'_>,
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
) -> H<Reply> {
    let body = body.value()?;
    let obj = require_object(&body)?;
    let mut errors = Vec::new();
    reject_unknown(
        &body,
        &[
            "app",
            "type",
            "pushUrl",
            "objects",
            "connector",
            "baseUrl",
            "settings",
        ],
        &mut errors,
    );
    let app = match obj.get("app") {
        Some(Value::String(s)) if valid_app_key(s) => s.clone(),
        Some(Value::String(_)) => {
            errors.push(field_error(
                "/app",
                codes::INVALID_FORMAT,
                "app is a lowercase key of 1 to 64 characters a-z 0-9 _ -",
            ));
            String::new()
        }
        None | Some(Value::Null) => {
            errors.push(field_error("/app", codes::REQUIRED, "app is required"));
            String::new()
        }
        Some(_) => {
            errors.push(field_error(
                "/app",
                codes::INVALID_TYPE,
                "app must be a string",
            ));
            String::new()
        }
    };
    let app_type = match obj.get("type") {
        Some(Value::String(s)) if valid_app_type(s) => s.clone(),
        Some(Value::String(_)) => {
            errors.push(field_error(
                "/type",
                codes::INVALID_VALUE,
                "type is one of accounting, commerce, crm, banking, payroll",
            ));
            String::new()
        }
        None | Some(Value::Null) => {
            errors.push(field_error("/type", codes::REQUIRED, "type is required"));
            String::new()
        }
        Some(_) => {
            errors.push(field_error(
                "/type",
                codes::INVALID_TYPE,
                "type must be a string",
            ));
            String::new()
        }
    };
    let connector = match obj.get("connector") {
        None | Some(Value::Null) => ConnectorKind::Generic,
        Some(Value::String(s)) => match ConnectorKind::parse(s) {
            Some(k) => k,
            None => {
                errors.push(field_error(
                    "/connector",
                    codes::INVALID_VALUE,
                    "connector is one of generic, quickbooks, xero, hubspot, shopify",
                ));
                ConnectorKind::Generic
            }
        },
        Some(_) => {
            errors.push(field_error(
                "/connector",
                codes::INVALID_TYPE,
                "connector must be a string",
            ));
            ConnectorKind::Generic
        }
    };
    let (push_url, base_url) = if connector.is_generic() {
        if obj.get("baseUrl").is_some_and(|v| !v.is_null()) {
            errors.push(field_error(
                "/baseUrl",
                codes::INVALID_VALUE,
                "baseUrl is for provider connectors; the generic connector sends to pushUrl",
            ));
        }
        (Some(url_field(obj, "pushUrl", engine, &mut errors)), None)
    } else {
        if obj.get("pushUrl").is_some_and(|v| !v.is_null()) {
            errors.push(field_error(
                "/pushUrl",
                codes::INVALID_VALUE,
                format!(
                    "pushUrl is for the generic connector; the {} connector sends to baseUrl",
                    connector.as_str()
                ),
            ));
        }
        (None, Some(url_field(obj, "baseUrl", engine, &mut errors)))
    };
    let settings = connection_settings(obj, connector, &mut errors);
    let capable = connector.connector().objects();
    let objects = match obj.get("objects") {
        None | Some(Value::Null) => default_objects(&app_type)
            .into_iter()
            .filter(|t| capable.contains(t))
            .collect(),
        Some(Value::Array(list)) => {
            let mut out = Vec::new();
            for (i, v) in list.iter().enumerate() {
                match v.as_str().and_then(ObjectType::parse) {
                    Some(t) if !capable.contains(&t) => errors.push(field_error(
                        &format!("/objects/{i}"),
                        codes::INVALID_VALUE,
                        format!(
                            "the {} connector cannot push {}",
                            connector.as_str(),
                            t.as_str()
                        ),
                    )),
                    Some(t) => {
                        if !out.contains(&t) {
                            out.push(t)
                        }
                    }
                    None => errors.push(field_error(&format!("/objects/{i}"), codes::INVALID_VALUE, "an object type is one of customer, vendor, account, invoice, payment, expense, bankTransaction")),
                }
            }
            out
        }
        Some(_) => {
            errors.push(field_error(
                "/objects",
                codes::INVALID_TYPE,
                "objects must be an array",
            ));
            Vec::new()
        }
    };
    if !errors.is_empty() {
        return invalid(errors);
    }
    let id = engine.new_id(ctx.now);
    let rec = ConnectionRec {
        id: id.clone(),
        app,
        app_type,
        push_url,
        objects,
        created_at: ctx.now_str.clone(),
        connector,
        base_url,
        settings,
    };
    ctx.tx.put_json(keys::connection(&account.id, &id), &rec);
    Ok(Reply::json(201, &connection_json(&rec)))
}

/// The provider settings of a registration: an object of strings whose names the connector
/// takes, with the ones it requires.
fn connection_settings(
    obj: &serde_json::Map<String, Value>,
    connector: ConnectorKind,
    errors: &mut Vec<FieldError>,
) -> std::collections::BTreeMap<String, String> {
    let specs = connector.connector().settings();
    let mut out = std::collections::BTreeMap::new();
    match obj.get("settings") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let p = format!("/settings/{}", crate::validate::pointer_token(k));
                if !specs.iter().any(|s| s.name == k) {
                    errors.push(field_error(
                        &p,
                        codes::UNKNOWN_FIELD,
                        if specs.is_empty() {
                            format!("the {} connector takes no settings", connector.as_str())
                        } else {
                            format!(
                                "{k} is not a setting of the {} connector (it takes {})",
                                connector.as_str(),
                                specs.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
                            )
                        },
                    ));
                    continue;
                }
                match v {
                    Value::String(s)
                        if !s.trim().is_empty()
                            && s.len() <= 255
                            && !s.chars().any(char::is_control) =>
                    {
                        out.insert(k.clone(), s.clone());
                    }
                    Value::String(_) => errors.push(field_error(
                        &p,
                        codes::INVALID_FORMAT,
                        format!("{k} is 1 to 255 bytes without control characters"),
                    )),
                    _ => errors.push(field_error(
                        &p,
                        codes::INVALID_TYPE,
                        format!("{k} must be a string"),
                    )),
                }
            }
        }
        Some(_) => errors.push(field_error(
            "/settings",
            codes::INVALID_TYPE,
            "settings must be an object of strings",
        )),
    }
    for spec in specs.iter().filter(|s| s.required) {
        let present = obj
            .get("settings")
            .and_then(|s| s.get(spec.name))
            .is_some_and(|v| !v.is_null());
        if !present {
            errors.push(field_error(
                &format!("/settings/{}", spec.name),
                codes::REQUIRED,
                format!(
                    "the {} connector requires the setting {} ({})",
                    connector.as_str(),
                    spec.name,
                    spec.description
                ),
            ));
        }
    }
    errors.extend(connector.connector().check_settings(&out));
    out
}
