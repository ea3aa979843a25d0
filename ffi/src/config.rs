//! `config_json`: the core's `ConfigJson` plus the few fields only this binding reads (the
//! host driver's settings for `writesync_run_due`).

use std::time::Duration;

use serde_json::{Map, Value};
use writesync_core::{ConfigJson, EngineConfig};
use writesync_host::driver::{DriverConfig, DEFAULT_PER_ORIGIN};
use writesync_host::transport::{
    TransportConfig, DEFAULT_CONNECT_TIMEOUT, DEFAULT_OVERALL_TIMEOUT, MAX_ANSWER_BYTES,
};

use crate::error::{FfiError, WRITESYNC_ENGINE_ERROR};

/// The largest timeout accepted (10 minutes).
const MAX_TIMEOUT_MS: u64 = 600_000;
/// The most senders accepted.
const MAX_SENDERS: u64 = 64;
/// The most items one `writesync_run_due` call claims (a bound on the time one call takes).
pub(crate) const RUN_DUE_MAX_ITEMS: usize = 2048;

/// The parsed configuration.
#[derive(Debug)]
pub(crate) struct FfiConfig {
    pub(crate) engine: EngineConfig,
    pub(crate) transport: TransportConfig,
    pub(crate) token_url: Option<String>,
    pub(crate) driver: DriverConfig,
}

fn invalid(message: String) -> FfiError {
    FfiError::new(
        WRITESYNC_ENGINE_ERROR,
        format!("invalid_input: config: {message}"),
    )
}

fn take_int(
    obj: &mut Map<String, Value>,
    name: &str,
    max: u64,
    default: u64,
) -> Result<u64, FfiError> {
    match obj.remove(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => match v.as_u64() {
            Some(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(invalid(format!(
                "{name} must be an integer from 1 to {max}"
            ))),
        },
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn take_token_url(obj: &mut Map<String, Value>) -> Result<Option<String>, FfiError> {
    match obj.remove("tokenUrl") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => match url::Url::parse(&s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(Some(s)),
            _ => Err(invalid(
                "tokenUrl must be an http or https URL with a host".into(),
            )),
        },
        Some(_) => Err(invalid("tokenUrl must be a string".into())),
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
/// and, for this binding, `outboundTimeoutMs`, `connectTimeoutMs`, `tokenUrl`, `senders` and
/// `maxInFlightPerOrigin`.
pub(crate) fn parse(text: &str) -> Result<FfiConfig, FfiError> {
    let mut value: Value =
        serde_json::from_str(text).map_err(|e| FfiError::invalid_json("config_json", e))?;
    let Some(obj) = value.as_object_mut() else {
        return Err(FfiError::invalid_json(
            "config_json",
            "expected a JSON object",
        ));
    };
    let timeout = take_int(
        obj,
        "outboundTimeoutMs",
        MAX_TIMEOUT_MS,
        millis(DEFAULT_OVERALL_TIMEOUT),
    )?;
    let connect = take_int(
        obj,
        "connectTimeoutMs",
        MAX_TIMEOUT_MS,
        millis(DEFAULT_CONNECT_TIMEOUT),
    )?;
    let token_url = take_token_url(obj)?;
    // One sender (the calling thread) unless asked: a C host decides about threads.
    let senders = take_int(obj, "senders", MAX_SENDERS, 1)?;
    let per_origin = take_int(obj, "maxInFlightPerOrigin", 1024, DEFAULT_PER_ORIGIN as u64)?;
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
            overall_timeout: Duration::from_millis(timeout),
            connect_timeout: Duration::from_millis(connect.min(timeout)),
            max_answer_bytes: MAX_ANSWER_BYTES,
        },
        token_url,
        driver: DriverConfig {
            senders: usize::try_from(senders).unwrap_or(1),
            per_origin: usize::try_from(per_origin).unwrap_or(DEFAULT_PER_ORIGIN),
            max_items: RUN_DUE_MAX_ITEMS,
            ..DriverConfig::default()
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
                "allowTargetCidrs":["127.0.0.0/8"],"tokenUrl":"http://127.0.0.1:9/token",
                "senders":4,"maxInFlightPerOrigin":2}"#,
        )
        .unwrap();
        assert_eq!(c.transport.overall_timeout, Duration::from_millis(2000));
        assert_eq!(c.transport.connect_timeout, Duration::from_millis(2000));
        assert_eq!(c.transport.policy.allowed.len(), 1);
        assert_eq!(c.token_url.as_deref(), Some("http://127.0.0.1:9/token"));
        assert_eq!((c.driver.senders, c.driver.per_origin), (4, 2));
        assert_eq!(c.engine.push_retry.delays_ms(), &[100]);
    }

    #[test]
    fn defaults_are_the_host_drivers() {
        let c = parse("{}").unwrap();
        assert_eq!(c.transport.overall_timeout, DEFAULT_OVERALL_TIMEOUT);
        assert_eq!(c.transport.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(c.transport.max_answer_bytes, MAX_ANSWER_BYTES);
        assert_eq!(c.token_url, None);
        assert_eq!(
            (c.driver.senders, c.driver.per_origin),
            (1, DEFAULT_PER_ORIGIN)
        );
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
        for bad in [
            r#"{"outboundTimeoutMs":0}"#,
            r#"{"tokenUrl":"ftp://x/"}"#,
            r#"{"tokenUrl":"not a url"}"#,
            r#"{"tokenUrl":7}"#,
            r#"{"senders":0}"#,
            r#"{"senders":65}"#,
            r#"{"maxInFlightPerOrigin":0}"#,
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.code, WRITESYNC_ENGINE_ERROR, "{bad}");
            assert!(
                e.message.starts_with("invalid_input: config: "),
                "{bad}: {}",
                e.message
            );
        }
    }
}
