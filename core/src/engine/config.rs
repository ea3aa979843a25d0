//! Engine configuration, and its JSON form used by the WASM and C bindings.

use serde::{Deserialize, Serialize};

use crate::net::{Cidr, TargetPolicy};
use crate::util::crypto::sha256_hex;
use crate::util::schedule::{default_push_schedule, default_webhook_schedule, RetrySchedule};
use crate::CoreError;

/// Default body limit: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default maximum number of bank transactions in one preload.
pub const DEFAULT_MAX_BATCH: usize = 1000;
/// Default idempotency retention: 24 hours.
pub const DEFAULT_IDEMPOTENCY_RETENTION_MS: u64 = 24 * 3600 * 1000;
/// Default retention of finished deliveries: 7 days.
pub const DEFAULT_DELIVERY_RETENTION_MS: u64 = 7 * 24 * 3600 * 1000;
/// Default retention of finished syncs (with their tasks and deliveries): 30 days.
pub const DEFAULT_SYNC_RETENTION_MS: u64 = 30 * 24 * 3600 * 1000;
/// Default lease of a handed-out push or delivery: 2 minutes.
pub const DEFAULT_LEASE_MS: u64 = 120_000;

/// How an engine behaves. Every field but the seed has a documented default
/// ([`EngineConfig::new`]). There is deliberately no `Default`: an engine's ids and API-key
/// secrets come from its seed, so a host must choose one (fresh OS randomness in production).
///
/// ```compile_fail
/// // No all-zero seed by accident: the only way to it is the named test constructor.
/// let config = writesync_core::EngineConfig::default();
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// SHA-256 (lowercase hex) of the admin token. When `None`, the engine reads the hash
    /// stored under `meta/admin`; when neither exists every admin call is `401`.
    pub admin_token_sha256: Option<String>,
    /// Seed of the generator of ids, secrets and jitter (ChaCha20).
    pub seed: [u8; 32],
    /// Delays between push retries; one retry per entry.
    pub push_retry: RetrySchedule,
    /// Delays between webhook retries; 3 retries, the last delay repeating.
    pub webhook_retry: RetrySchedule,
    /// How long a handed-out work item is leased before it is due again.
    pub lease_ms: u64,
    /// Request bodies larger than this are `413`.
    pub max_body_bytes: usize,
    /// Largest bank-transaction preload.
    pub max_batch: usize,
    /// How long idempotency records are kept.
    pub idempotency_retention_ms: u64,
    /// How long finished (delivered or failed) deliveries are kept.
    pub delivery_retention_ms: u64,
    /// How long a sync is kept after it was created, once every target of it finished; then
    /// it is pruned with its tasks and their webhook deliveries. `GET /api/syncs/{id}` of a
    /// sync older than this answers `404` saying it expired.
    pub sync_retention_ms: u64,
    /// Which restricted addresses URLs may name.
    pub target_policy: TargetPolicy,
}

impl EngineConfig {
    /// The documented defaults with this seed. Production hosts pass fresh OS randomness
    /// (`writesync_sqlite::os_seeded_config`, the server, the wasm and C bindings do);
    /// recorded scenarios pass a fixed seed to replay byte for byte.
    pub fn new(seed: [u8; 32]) -> Self {
        EngineConfig {
            admin_token_sha256: None,
            seed,
            push_retry: default_push_schedule(),
            webhook_retry: default_webhook_schedule(),
            lease_ms: DEFAULT_LEASE_MS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_batch: DEFAULT_MAX_BATCH,
            idempotency_retention_ms: DEFAULT_IDEMPOTENCY_RETENTION_MS,
            delivery_retention_ms: DEFAULT_DELIVERY_RETENTION_MS,
            sync_retention_ms: DEFAULT_SYNC_RETENTION_MS,
            target_policy: TargetPolicy::default(),
        }
    }

    /// The defaults with an all-zero seed, so every id and API-key secret is predictable.
    /// Only for tests, benchmarks and examples; never for an engine that serves anyone.
    pub fn zero_seed_for_tests() -> Self {
        EngineConfig::new([0u8; 32])
    }

    /// Set the admin token (only its hash is kept).
    pub fn with_admin_token(mut self, token: &str) -> Self {
        self.admin_token_sha256 = Some(sha256_hex(token.as_bytes()));
        self
    }
    /// Set the seed.
    pub fn with_seed(mut self, seed: [u8; 32]) -> Self {
        self.seed = seed;
        self
    }
}

/// The JSON form of the configuration (camelCase), as the bindings take it.
///
/// ```json
/// {"adminToken": "...", "seed": "64 hex digits or any string (hashed)",
///  "pushRetrySchedule": [1, 4, 16], "webhookRetrySchedule": [5, 60],
///  "leaseMs": 120000, "maxBodyBytes": 1048576, "maxBatch": 1000,
///  "idempotencyRetentionMs": 86400000, "deliveryRetentionMs": 604800000,
///  "syncRetentionMs": 2592000000, "allowTargetCidrs": ["127.0.0.0/8"]}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigJson {
    /// The admin token in clear (hashed at once).
    pub admin_token: Option<String>,
    /// Or its SHA-256 hex.
    pub admin_token_sha256: Option<String>,
    /// 64 hex digits, or any other string whose SHA-256 becomes the seed.
    pub seed: Option<String>,
    /// Seconds, fractions allowed.
    pub push_retry_schedule: Option<Vec<f64>>,
    /// Seconds, fractions allowed.
    pub webhook_retry_schedule: Option<Vec<f64>>,
    /// Lease in ms.
    pub lease_ms: Option<u64>,
    /// Body limit in bytes.
    pub max_body_bytes: Option<usize>,
    /// Preload limit.
    pub max_batch: Option<usize>,
    /// Idempotency retention in ms.
    pub idempotency_retention_ms: Option<u64>,
    /// Delivery retention in ms.
    pub delivery_retention_ms: Option<u64>,
    /// Retention of finished syncs in ms.
    pub sync_retention_ms: Option<u64>,
    /// Restricted ranges allowed as targets.
    pub allow_target_cidrs: Option<Vec<String>>,
}

fn schedule_from_secs(list: &[f64], what: &str) -> Result<RetrySchedule, CoreError> {
    let mut ms = Vec::with_capacity(list.len());
    for s in list {
        if !s.is_finite() || *s < 0.0 || *s > 86_400.0 {
            return Err(CoreError::InvalidInput(format!(
                "{what}: every delay must be between 0 and 86400 seconds"
            )));
        }
        ms.push((s * 1000.0).round() as u64);
    }
    RetrySchedule::from_millis(ms).map_err(|e| CoreError::InvalidInput(format!("{what}: {e}")))
}

impl ConfigJson {
    /// Parse JSON text.
    pub fn parse(text: &str) -> Result<ConfigJson, CoreError> {
        serde_json::from_str(text).map_err(|e| CoreError::InvalidInput(format!("config: {e}")))
    }

    /// Build the configuration; `default_seed` is used when no seed is given.
    pub fn into_config(self, default_seed: [u8; 32]) -> Result<EngineConfig, CoreError> {
        let mut c = EngineConfig::new(default_seed);
        if self.admin_token.is_some() && self.admin_token_sha256.is_some() {
            return Err(CoreError::InvalidInput(
                "config: give adminToken or adminTokenSha256, not both".into(),
            ));
        }
        if let Some(t) = self.admin_token {
            if t.is_empty() {
                return Err(CoreError::InvalidInput(
                    "config: adminToken is empty".into(),
                ));
            }
            c.admin_token_sha256 = Some(sha256_hex(t.as_bytes()));
        }
        if let Some(h) = self.admin_token_sha256 {
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(CoreError::InvalidInput(
                    "config: adminTokenSha256 must be 64 hex digits".into(),
                ));
            }
            c.admin_token_sha256 = Some(h.to_ascii_lowercase());
        }
        if let Some(s) = self.seed {
            c.seed = seed_from_text(&s);
        }
        if let Some(p) = self.push_retry_schedule {
            c.push_retry = schedule_from_secs(&p, "pushRetrySchedule")?;
        }
        if let Some(p) = self.webhook_retry_schedule {
            c.webhook_retry = schedule_from_secs(&p, "webhookRetrySchedule")?;
        }
        if let Some(v) = self.lease_ms {
            c.lease_ms = v.max(1);
        }
        if let Some(v) = self.max_body_bytes {
            c.max_body_bytes = v;
        }
        if let Some(v) = self.max_batch {
            c.max_batch = v.max(1);
        }
        if let Some(v) = self.idempotency_retention_ms {
            c.idempotency_retention_ms = v;
        }
        if let Some(v) = self.delivery_retention_ms {
            c.delivery_retention_ms = v;
        }
        if let Some(v) = self.sync_retention_ms {
            c.sync_retention_ms = v;
        }
        if let Some(list) = self.allow_target_cidrs {
            for s in list {
                let cidr =
                    Cidr::parse(&s).map_err(|e| CoreError::InvalidInput(format!("config: {e}")))?;
                c.target_policy.allowed.push(cidr);
            }
        }
        Ok(c)
    }
}

/// 64 hex digits become the seed's bytes; any other text is hashed into one.
pub(crate) fn seed_from_text(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let hex = std::str::from_utf8(chunk).unwrap_or("00");
            out[i] = u8::from_str_radix(hex, 16).unwrap_or(0);
        }
        return out;
    }
    let h = sha256_hex(s.as_bytes());
    seed_from_text(&h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_config_round() {
        let c = ConfigJson::parse(
            r#"{"adminToken":"t","seed":"abc","pushRetrySchedule":[0.05,0.1],"allowTargetCidrs":["127.0.0.0/8"]}"#,
        )
        .unwrap()
        .into_config([0; 32])
        .unwrap();
        assert_eq!(
            c.admin_token_sha256.as_deref(),
            Some(sha256_hex(b"t").as_str())
        );
        assert_eq!(c.push_retry.delays_ms(), &[50, 100]);
        assert_eq!(c.target_policy.allowed.len(), 1);
        assert_ne!(c.seed, [0; 32]);
        assert_eq!(c.sync_retention_ms, DEFAULT_SYNC_RETENTION_MS);
        let kept = ConfigJson::parse(r#"{"syncRetentionMs":5000}"#)
            .unwrap()
            .into_config([0; 32])
            .unwrap();
        assert_eq!(kept.sync_retention_ms, 5000);
        assert!(ConfigJson::parse(r#"{"nope":1}"#).is_err());
        let both = format!(
            r#"{{"adminToken":"t","adminTokenSha256":"{}"}}"#,
            "0".repeat(64)
        );
        assert!(ConfigJson::parse(&both)
            .unwrap()
            .into_config([0; 32])
            .is_err());
        assert!(ConfigJson::parse(r#"{"pushRetrySchedule":[-1]}"#)
            .unwrap()
            .into_config([0; 32])
            .is_err());
        assert!(ConfigJson::parse(r#"{"allowTargetCidrs":["x"]}"#)
            .unwrap()
            .into_config([0; 32])
            .is_err());
    }

    #[test]
    fn hex_seed_is_taken_verbatim() {
        let s = seed_from_text(&"01".repeat(32));
        assert_eq!(s, [1u8; 32]);
    }
}
