//! The generic connector: `POST {pushUrl}` with the writesync envelope
//! `{syncId, operation, objectType, object, trackingId, remoteId?, references?}` and the
//! headers `Idempotency-Key`, `X-Sync-ID`, `X-Tracking-ID`. A delete sends the same envelope
//! with `operation: "delete"` and the object's last stored version. A `200`/`201` succeeds (its
//! optional `{"id": ...}` is the remote id), and so do a `204` and a `404` to a delete (the
//! receiver no longer has the object); `408`, `429` and `5xx` are retried honouring
//! `Retry-After`; anything else fails the target with the status and the start of the body.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    put, put_str, string, Answer, Connector, ConnectorError, ConnectorKind, Obj, ProviderVerdict,
    PushInput, SettingSpec,
};
use crate::cdm::{FieldError, ObjectType};
use crate::util::schedule::parse_retry_after;
use crate::OutboundRequest;

/// How much of an answer body the generic connector keeps in `lastError`.
pub(crate) const ERROR_BODY_PREFIX: usize = 200;

/// The generic connector (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct Generic;

impl Connector for Generic {
    fn kind(&self) -> ConnectorKind {
        ConnectorKind::Generic
    }

    fn objects(&self) -> &'static [ObjectType] {
        &ObjectType::ALL
    }

    fn settings(&self) -> &'static [SettingSpec] {
        &[]
    }

    fn needs_token(&self) -> bool {
        false
    }

    fn check(
        &self,
        _object_type: ObjectType,
        _object: &Value,
        _settings: &BTreeMap<String, String>,
    ) -> Vec<FieldError> {
        Vec::new()
    }

    fn request(&self, input: &PushInput<'_>) -> Result<OutboundRequest, ConnectorError> {
        let mut body = Obj::new();
        put_str(&mut body, "syncId", input.sync_id);
        put_str(&mut body, "operation", input.operation.as_str());
        put_str(&mut body, "objectType", input.object_type.as_str());
        // The stored text parsed, as serializing the raw value into a `Value` does.
        put(&mut body, "object", input.object_value());
        let tracking = input.tracking_id.map_or(Value::Null, string);
        put(&mut body, "trackingId", tracking);
        if let Some(rid) = input.remote_id {
            put_str(&mut body, "remoteId", rid);
        }
        let mut references = Obj::new();
        for r in input.references {
            if let Some(remote_id) = &r.remote_id {
                put_str(&mut references, &r.field, remote_id);
            }
        }
        if !references.is_empty() {
            put(&mut body, "references", Value::Object(references));
        }
        let body = Value::Object(body);
        let mut headers = BTreeMap::new();
        headers.insert("Content-Type".to_string(), "application/json".to_string());
        headers.insert(
            "Idempotency-Key".to_string(),
            input.idempotency_key.to_string(),
        );
        headers.insert("X-Sync-ID".to_string(), input.sync_id.to_string());
        if let Some(t) = input.tracking_id {
            headers.insert("X-Tracking-ID".to_string(), t.to_string());
        }
        Ok(OutboundRequest {
            method: "POST".into(),
            url: input.url.to_string(),
            headers,
            body: body.to_string(),
        })
    }

    fn interpret(&self, answer: &Answer<'_>) -> ProviderVerdict {
        let status = answer.status;
        match status {
            200 | 201 => {
                let id = serde_json::from_str::<Value>(answer.body)
                    .ok()
                    .and_then(|v| match v.get("id") {
                        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                        Some(Value::Number(n)) => Some(n.to_string()),
                        _ => None,
                    });
                ProviderVerdict::Success {
                    remote_id: id,
                    version: None,
                }
            }
            _ if answer.delete_done() => super::DELETED,
            408 | 429 | 500..=599 => ProviderVerdict::Retryable {
                error: format!(
                    "HTTP {status}: {}",
                    super::truncate(answer.body, ERROR_BODY_PREFIX)
                ),
                retry_after_ms: answer
                    .header("Retry-After")
                    .and_then(|v| parse_retry_after(v, answer.now_ms)),
            },
            _ => ProviderVerdict::Permanent {
                error: format!(
                    "HTTP {status}: {}",
                    super::truncate(answer.body, ERROR_BODY_PREFIX)
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::{Operation, Reference};
    use serde_json::value::RawValue;
    use serde_json::{json, Map};

    /// The body is the same text as serializing the documented fields with `json!`.
    #[test]
    fn body_is_the_documented_object() {
        let object =
            RawValue::from_string(r#"{"name":"Ada","amount":12.5,"n":[1,2]}"#.into()).unwrap();
        let settings = BTreeMap::new();
        let refs = [
            Reference {
                field: "customerId".into(),
                object_type: ObjectType::Customer,
                id: "c1".into(),
                remote_id: Some("r-1".into()),
                object: None,
            },
            Reference {
                field: "lines/0/accountId".into(),
                object_type: ObjectType::Account,
                id: "a1".into(),
                remote_id: None,
                object: None,
            },
        ];
        for (tracking, remote, references) in [
            (None, None, &refs[1..]),
            (Some("t-1"), Some("rid"), &refs[..]),
        ] {
            let input = PushInput {
                object_type: ObjectType::BankTransaction,
                object: &object,
                operation: Operation::Update,
                remote_id: remote,
                remote_version: None,
                references,
                idempotency_key: "k",
                sync_id: "s-1",
                tracking_id: tracking,
                url: "http://127.0.0.1:1/push",
                settings: &settings,
                access_token: None,
            };
            let mut expected = json!({
                "syncId": "s-1",
                "operation": Operation::Update.as_str(),
                "objectType": ObjectType::BankTransaction,
                "object": &object,
                "trackingId": tracking,
            });
            let mut expected_refs = Map::new();
            for r in references {
                if let Some(id) = &r.remote_id {
                    expected_refs.insert(r.field.clone(), json!(id));
                }
            }
            let m = expected.as_object_mut().unwrap();
            if let Some(rid) = remote {
                m.insert("remoteId".into(), json!(rid));
            }
            if !expected_refs.is_empty() {
                m.insert("references".into(), Value::Object(expected_refs));
            }
            let sent = Generic.request(&input).unwrap();
            assert_eq!(sent.body, expected.to_string());
        }
    }
}
