//! Hashing, constant-time comparison, HTTP authorization headers and Standard Webhooks
//! signatures.
//!
//! Secrets (API key secrets, the admin token) are stored only as SHA-256 hex digests and
//! checked with [`verify_secret`], which compares digests in constant time. Webhook signatures
//! follow the Standard Webhooks scheme: HMAC-SHA256 over `"{msg_id}.{timestamp}.{body}"`,
//! keyed with the base64-decoded part of a `whsec_...` secret, sent as `v1,<base64>`.
//!
//! Everything here is a pure function of its arguments: no clock, no randomness.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The prefix of a Standard Webhooks signing secret (`whsec_` + base64 of the key bytes).
pub const SIGNING_SECRET_PREFIX: &str = "whsec_";

/// The version tag of the signatures [`webhook_signature`] produces.
pub const SIGNATURE_VERSION: &str = "v1";

/// Errors of the signing helpers.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CryptoError {
    /// The signing secret, once its optional `whsec_` prefix is removed, is not standard
    /// base64.
    #[error("the signing secret is not `whsec_` followed by standard base64")]
    InvalidSigningSecret,
    /// The signing secret decodes to no key bytes at all.
    #[error("the signing secret decodes to an empty key")]
    EmptySigningKey,
}

/// Standard-alphabet base64 that accepts input with or without `=` padding.
///
/// Encoders differ on padding (a 24-byte key needs none, other lengths do), and a receiver
/// gains nothing from refusing either form.
const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The SHA-256 digest of `data` as 64 lowercase hexadecimal characters.
pub fn sha256_hex(data: &[u8]) -> String {
    String::from_utf8_lossy(&sha256_hex_bytes(data)).into_owned()
}

/// [`sha256_hex`] on the stack, as ASCII bytes.
fn sha256_hex_bytes(data: &[u8]) -> [u8; 64] {
    let digest = Sha256::digest(data);
    let mut out = [0u8; 64];
    for (pair, byte) in out.chunks_exact_mut(2).zip(digest) {
        pair[0] = HEX_DIGITS[usize::from(byte >> 4)];
        pair[1] = HEX_DIGITS[usize::from(byte & 0x0f)];
    }
    out
}

/// Compares two strings in time independent of where they differ.
///
/// Strings of different lengths compare unequal at once: the length is not treated as
/// secret. Callers compare fixed-length digests (see [`verify_secret`]), whose length is
/// public anyway.
pub fn ct_eq_str(a: &str, b: &str) -> bool {
    ct_eq_bytes(a.as_bytes(), b.as_bytes())
}

/// [`ct_eq_str`] on bytes.
fn ct_eq_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.ct_eq(b).into()
}

/// Whether `secret` hashes to `stored_hash_hex`, the lowercase hex digest that [`sha256_hex`]
/// produced when the secret was issued. The digests are compared in constant time.
pub fn verify_secret(secret: &str, stored_hash_hex: &str) -> bool {
    ct_eq_bytes(
        &sha256_hex_bytes(secret.as_bytes()),
        stored_hash_hex.as_bytes(),
    )
}

/// The value of an `Authorization` header for HTTP Basic authentication (RFC 7617):
/// `Basic <base64(username:password)>`, UTF-8, standard base64 with padding.
pub fn basic_auth_header(username: &str, password: &str) -> String {
    let mut credentials = String::with_capacity(username.len() + 1 + password.len());
    credentials.push_str(username);
    credentials.push(':');
    credentials.push_str(password);
    format!("Basic {}", STANDARD.encode(credentials))
}

/// Splits an `Authorization` value into its scheme and its credentials, both trimmed.
fn split_scheme(header_value: &str) -> Option<(&str, &str)> {
    let value = header_value.trim();
    let (scheme, rest) = value.split_once([' ', '\t'])?;
    Some((scheme, rest.trim()))
}

/// Parses an HTTP Basic `Authorization` value into `(username, password)`.
///
/// The scheme is matched case-insensitively; the credentials must be standard base64
/// (padding optional) of UTF-8 text containing a `:`. The text is split at the first `:`,
/// so a password may itself contain colons while a username may not. Anything else
/// (another scheme, bad base64, invalid UTF-8, no colon) is `None`.
pub fn parse_basic_auth(header_value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = split_scheme(header_value)?;
    if !scheme.eq_ignore_ascii_case("basic") || encoded.is_empty() {
        return None;
    }
    let decoded = LENIENT_STANDARD.decode(encoded).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (username, password) = text.split_once(':')?;
    Some((username.to_owned(), password.to_owned()))
}

/// Parses a `Bearer` `Authorization` value (RFC 6750) and returns the token.
///
/// The scheme is matched case-insensitively. The token must be non-empty and contain no
/// whitespace or control characters; otherwise the answer is `None`.
pub fn parse_bearer(header_value: &str) -> Option<&str> {
    let (scheme, token) = split_scheme(header_value)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return None;
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    Some(token)
}

/// Decodes a signing secret into its key bytes: an optional `whsec_` prefix, then standard
/// base64 (padding optional). Surrounding whitespace is ignored.
fn decode_signing_secret(secret: &str) -> Result<Vec<u8>, CryptoError> {
    let trimmed = secret.trim();
    let encoded = trimmed
        .strip_prefix(SIGNING_SECRET_PREFIX)
        .unwrap_or(trimmed);
    let key = LENIENT_STANDARD
        .decode(encoded)
        .map_err(|_| CryptoError::InvalidSigningSecret)?;
    if key.is_empty() {
        return Err(CryptoError::EmptySigningKey);
    }
    Ok(key)
}

/// Whether `secret` is usable as a Standard Webhooks signing secret: an optional `whsec_`
/// prefix followed by standard base64 of at least one key byte.
///
/// The Standard Webhooks specification recommends keys of 24 to 64 bytes; shorter ones are
/// accepted here so that test setups and keys imported from elsewhere keep working.
pub fn valid_signing_secret(secret: &str) -> bool {
    decode_signing_secret(secret).is_ok()
}

/// Standard base64 with padding (the form of the key part of a `whsec_` secret).
pub fn base64_standard(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// The Standard Webhooks `webhook-signature` value for one delivery attempt.
///
/// `secret` is `whsec_` + base64 of the key bytes (the prefix may be left out);
/// `msg_id` is the `webhook-id` header, `timestamp_secs` the `webhook-timestamp` header
/// (Unix seconds) and `body` the exact request body. The signed content is
/// `"{msg_id}.{timestamp_secs}.{body}"`, the MAC is HMAC-SHA256, and the answer is
/// `"v1,<standard base64 of the MAC>"`.
///
/// # Errors
///
/// [`CryptoError::InvalidSigningSecret`] when the secret is not base64 and
/// [`CryptoError::EmptySigningKey`] when it decodes to nothing.
pub fn webhook_signature(
    secret: &str,
    msg_id: &str,
    timestamp_secs: i64,
    body: &str,
) -> Result<String, CryptoError> {
    let key = decode_signing_secret(secret)?;
    // HMAC takes keys of any length; the error arm only exists because the API is generic.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key)
        .map_err(|_| CryptoError::InvalidSigningSecret)?;
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let tag = mac.finalize().into_bytes();
    Ok(format!("{SIGNATURE_VERSION},{}", STANDARD.encode(tag)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_matches_known_digests() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn ct_eq_str_compares_content_and_length() {
        assert!(ct_eq_str("", ""));
        assert!(ct_eq_str("abc", "abc"));
        assert!(!ct_eq_str("abc", "abd"));
        assert!(!ct_eq_str("abc", "abcd"));
        assert!(!ct_eq_str("abcd", "abc"));
    }

    #[test]
    fn verify_secret_accepts_only_the_hashed_secret() {
        let stored = sha256_hex(b"s3cret");
        assert!(verify_secret("s3cret", &stored));
        assert!(!verify_secret("s3cret ", &stored));
        assert!(!verify_secret("S3cret", &stored));
        assert!(!verify_secret("s3cret", ""));
        assert!(!verify_secret("s3cret", &stored.to_uppercase()));
    }

    #[test]
    fn basic_auth_header_is_rfc7617() {
        // RFC 7617, section 2.
        assert_eq!(
            basic_auth_header("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn basic_auth_round_trips() {
        let cases = [
            ("key_1", "secret"),
            ("", ""),
            ("user", "pa:ss:word"),
            ("ünïcödé", "päss"),
        ];
        for (user, pass) in cases {
            let header = basic_auth_header(user, pass);
            assert_eq!(
                parse_basic_auth(&header),
                Some((user.to_owned(), pass.to_owned()))
            );
        }
    }

    #[test]
    fn parse_basic_auth_is_lenient_on_scheme_case_spacing_and_padding() {
        let expected = Some(("Aladdin".to_owned(), "open sesame".to_owned()));
        assert_eq!(
            parse_basic_auth("basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            expected
        );
        assert_eq!(
            parse_basic_auth("BASIC QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            expected
        );
        assert_eq!(
            parse_basic_auth("  Basic   QWxhZGRpbjpvcGVuIHNlc2FtZQ==  "),
            expected
        );
        assert_eq!(
            parse_basic_auth("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ"),
            expected
        );
    }

    #[test]
    fn parse_basic_auth_rejects_malformed_values() {
        assert_eq!(parse_basic_auth(""), None);
        assert_eq!(parse_basic_auth("Basic"), None);
        assert_eq!(parse_basic_auth("Basic "), None);
        assert_eq!(
            parse_basic_auth("Bearer QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            None
        );
        assert_eq!(parse_basic_auth("BasicQWxhZGRpbjpvcGVuIHNlc2FtZQ=="), None);
        // Not base64.
        assert_eq!(parse_basic_auth("Basic !!!!"), None);
        // URL-safe alphabet is not the standard one.
        assert_eq!(parse_basic_auth("Basic _-__"), None);
        // Base64 of "nocolon".
        assert_eq!(parse_basic_auth("Basic bm9jb2xvbg=="), None);
        // Base64 of the bytes ff fe 3a 78: not UTF-8.
        assert_eq!(parse_basic_auth("Basic //46eA=="), None);
    }

    #[test]
    fn parse_bearer_extracts_the_token() {
        assert_eq!(parse_bearer("Bearer abc.def-123"), Some("abc.def-123"));
        assert_eq!(parse_bearer("bearer abc"), Some("abc"));
        assert_eq!(parse_bearer("  BEARER   abc  "), Some("abc"));
        assert_eq!(parse_bearer("Bearer"), None);
        assert_eq!(parse_bearer("Bearer "), None);
        assert_eq!(parse_bearer("Basic abc"), None);
        assert_eq!(parse_bearer("Bearer a b"), None);
        assert_eq!(parse_bearer("Bearer a\u{7f}b"), None);
        assert_eq!(parse_bearer(""), None);
    }

    // The published Standard Webhooks test vector (also used by the reference libraries).
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TIMESTAMP: i64 = 1_614_265_330;
    const VECTOR_BODY: &str = r#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn webhook_signature_reproduces_the_standard_webhooks_vector() {
        assert_eq!(
            webhook_signature(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY),
            Ok(VECTOR_SIGNATURE.to_owned())
        );
    }

    #[test]
    fn webhook_signature_prefix_is_optional() {
        let bare = VECTOR_SECRET.trim_start_matches(SIGNING_SECRET_PREFIX);
        assert_eq!(
            webhook_signature(bare, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY),
            Ok(VECTOR_SIGNATURE.to_owned())
        );
    }

    #[test]
    fn webhook_signature_matches_an_independent_computation() {
        // Computed separately with Python's hmac module:
        // hmac.new(b"0123456789abcdefghijklmn", b"msg_1.1700000000.{}", sha256),
        // then base64; the key is base64 "MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1u".
        assert_eq!(
            webhook_signature(
                "whsec_MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1u",
                "msg_1",
                1_700_000_000,
                "{}"
            ),
            Ok("v1,/K1l9UQlQFiC9vWSzcBzVntnxjzzMzUqATYiwF20DiY=".to_owned())
        );
    }

    #[test]
    fn webhook_signature_depends_on_every_input() {
        let base = webhook_signature(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY);
        let other_id = webhook_signature(VECTOR_SECRET, "msg_x", VECTOR_TIMESTAMP, VECTOR_BODY);
        let other_ts =
            webhook_signature(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP + 1, VECTOR_BODY);
        let other_body = webhook_signature(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, "{}");
        let other_key = webhook_signature("whsec_AAAA", VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY);
        for other in [other_id, other_ts, other_body, other_key] {
            assert!(other.is_ok());
            assert_ne!(other, base);
        }
    }

    #[test]
    fn signing_secret_validation() {
        assert!(valid_signing_secret(VECTOR_SECRET));
        assert!(valid_signing_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        assert!(valid_signing_secret("whsec_dGVzdA=="));
        assert!(valid_signing_secret("whsec_dGVzdA"));
        assert!(!valid_signing_secret(""));
        assert!(!valid_signing_secret("whsec_"));
        assert!(!valid_signing_secret("whsec_not base64!"));
        assert!(!valid_signing_secret("whsec_a"));
        assert_eq!(
            webhook_signature("whsec_", "m", 0, ""),
            Err(CryptoError::EmptySigningKey)
        );
        assert_eq!(
            webhook_signature("whsec_%%%", "m", 0, ""),
            Err(CryptoError::InvalidSigningSecret)
        );
    }

    #[test]
    fn negative_timestamps_are_signed_as_written() {
        // Not meaningful for real deliveries, but must not panic.
        assert!(webhook_signature(VECTOR_SECRET, "m", -1, "").is_ok());
        assert!(webhook_signature(VECTOR_SECRET, "m", i64::MIN, "").is_ok());
    }
}
