//! `config_json`: the core's `ConfigJson` plus the few fields only this binding reads.

use std::time::Duration;

use serde_json::{Map, Value};
use writesync_core::{ConfigJson, EngineConfig};

use crate::error::{FfiError, WRITESYNC_ENGINE_ERROR};
use crate::transport::TransportConfig;

/// Overall time one push or delivery may take by default (resolve, connect, send, read).
pub(crate) const DEFAULT_OUTBOUND_TIMEOUT_MS: u64 = 30_000;
/// Time a connection may take to open by default.
pub(crate) const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;
/// The largest timeout accepted (10 minutes).
const MAX_TIMEOUT_MS: u64 = 600_000;

/// The parsed configuration.
#[derive(Debug)]
pub(crate) struct FfiConfig {
    pub(crate) engine: EngineConfig,
    pub(crate) transport: TransportConfig,
}

fn take_ms(obj: &mut Map<String, Value>, name: &str, default: u64) -> Result<u64, FfiError> {
    match obj.remove(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => match v.as_u64() {
            Some(ms) if (1..=MAX_TIMEOUT_MS).contains(&ms) => Ok(ms),
            _ => Err(FfiError::new(
                WRITESYNC_ENGINE_ERROR,
                format!(
                    "invalid_input: config: {name} must be an integer from 1 to {MAX_TIMEOUT_MS}"
                ),
            )),
        },
    }
}

/// 32 bytes from the operating system, for configurations that give no seed.
fn os_seed() -> Result<[u8; 32], FfiError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| {
        FfiError::new(
            WRITESYNC_ENGINE_ERROR,
            format!("invalid_input: no seed given and the OS gave no randomness: {e}"),
        )
    })?;
    Ok(seed)
}

/// Parse `config_json`: a JSON object with the fields of the core's `ConfigJson` (camelCase)
/// and, for this binding, `outboundTimeoutMs` and `connectTimeoutMs`.
pub(crate) fn parse(text: &str) -> Result<FfiConfig, FfiError> {
    let mut value: Value =
        serde_json::from_str(text).map_err(|e| FfiError::invalid_json("config_json", e))?;
    let Some(obj) = value.as_object_mut() else {
        return Err(FfiError::invalid_json(
            "config_json",
            "expected a JSON object",
        ));
    };
    let timeout = take_ms(obj, "outboundTimeoutMs", DEFAULT_OUTBOUND_TIMEOUT_MS)?;
    let connect = take_ms(obj, "connectTimeoutMs", DEFAULT_CONNECT_TIMEOUT_MS)?;
    let json: ConfigJson =
        serde_json::from_value(value).map_err(|e| FfiError::invalid_json("config_json", e))?;
    let default_seed = if json.seed.is_some() {
        [0u8; 32]
    } else {
        os_seed()?
    };
    let engine = json.into_config(default_seed)?;
    Ok(FfiConfig {
        transport: TransportConfig {
            policy: engine.target_policy.clone(),
            timeout: Duration::from_millis(timeout),
            connect_timeout: Duration::from_millis(connect.min(timeout)),
        },
        engine,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::WRITESYNC_INVALID_JSON;

    #[test]
    fn parses_core_and_binding_fields() {
        let c = parse(
            r#"{"adminToken":"t","seed":"s","pushRetrySchedule":[0.1],
                "outboundTimeoutMs":2000,"connectTimeoutMs":5000,
                "allowTargetCidrs":["127.0.0.0/8"]}"#,
        )
        .unwrap();
        assert_eq!(c.transport.timeout, Duration::from_millis(2000));
        assert_eq!(c.transport.connect_timeout, Duration::from_millis(2000));
        assert_eq!(c.transport.policy.allowed.len(), 1);
        assert_eq!(c.engine.push_retry.delays_ms(), &[100]);
    }

    #[test]
    fn seeds_from_the_os_when_none_is_given() {
        let a = parse("{}").unwrap().engine.seed;
        let b = parse("{}").unwrap().engine.seed;
        assert_ne!(a, b);
    }

    #[test]
    fn rejects_bad_configs_with_the_right_code() {
        assert_eq!(parse("[").unwrap_err().code, WRITESYNC_INVALID_JSON);
        assert_eq!(parse("[]").unwrap_err().code, WRITESYNC_INVALID_JSON);
        assert_eq!(
            parse(r#"{"nope":1}"#).unwrap_err().code,
            WRITESYNC_INVALID_JSON
        );
        let e = parse(r#"{"pushRetrySchedule":[-1]}"#).unwrap_err();
        assert_eq!(e.code, WRITESYNC_ENGINE_ERROR);
        assert!(e.message.starts_with("invalid_input: "), "{}", e.message);
        let e = parse(r#"{"outboundTimeoutMs":0}"#).unwrap_err();
        assert_eq!(e.code, WRITESYNC_ENGINE_ERROR);
    }
}
