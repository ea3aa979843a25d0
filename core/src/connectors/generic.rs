//! The generic connector: `POST {pushUrl}` with the writesync envelope
//! `{syncId, operation, objectType, object, trackingId, remoteId?, references?}` and the
//! headers `Idempotency-Key`, `X-Sync-ID`, `X-Tracking-ID`. A `200`/`201` succeeds (its
//! optional `{"id": ...}` is the remote id); `408`, `429` and `5xx` are retried honouring
//! `Retry-After`; anything else fails the target with the status and the start of the body.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{
    Answer, Connector, ConnectorError, ConnectorKind, ProviderVerdict, PushInput, SettingSpec,
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
        let mut body = json!({
            "syncId": input.sync_id,
            "operation": input.operation.as_str(),
            "objectType": input.object_type,
            "object": input.object,
            "trackingId": input.tracking_id,
        });
        let mut references = Map::new();
        for r in input.references {
            if let Some(remote_id) = &r.remote_id {
                references.insert(r.field.clone(), Value::String(remote_id.clone()));
            }
        }
        if let Some(o) = body.as_object_mut() {
            if let Some(rid) = input.remote_id {
                o.insert("remoteId".into(), Value::String(rid.to_string()));
            }
            if !references.is_empty() {
                o.insert("references".into(), Value::Object(references));
            }
        }
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
