//! Who is calling: the admin token, API keys and their scopes, write mode.

use std::sync::Arc;

use super::command::{Credentials, Problem};
use super::state::Engine;
use super::vocab::{fail, Ctx, H};
use crate::http::ProblemKind;
use crate::records::*;
use crate::util::crypto::{ct_eq_str, sha256_hex, verify_secret};

/// Scope needed for writes.
pub const SCOPE_WRITE: &str = "api.write";
/// Scope for reads.
pub const SCOPE_READ: &str = "api.read";

/// A caller whose API key and secret were verified: the key and its account.
pub(crate) struct Principal {
    pub account: Arc<AccountRec>,
    pub key: Arc<ApiKeyRec>,
}

/// `401` asking for `scheme`.
pub(crate) fn unauthorized<T>(scheme: &'static str, detail: &str) -> H<T> {
    let mut p = Problem::new(ProblemKind::Unauthorized, detail);
    p.challenge = Some(scheme);
    Err(p.into())
}

/// Check the admin token.
pub(crate) fn admin(engine: &Engine, token: Option<&str>, ctx: &Ctx<'_>) -> H<()> {
    let Some(token) = token else {
        return unauthorized(
            "Bearer",
            "the admin API needs Authorization: Bearer <token>",
        );
    };
    let expected = match &engine.config.admin_token_sha256 {
        Some(h) => Some(h.clone()),
        None => ctx
            .tx
            .get_json::<AdminRec>(keys::ADMIN)?
            .map(|r| r.token_sha256),
    };
    match expected {
        Some(h) if verify_secret(token, &h) => Ok(()),
        _ => unauthorized("Bearer", "the admin token is not valid"),
    }
}

/// Check an API key and its secret; answers the key and its account.
pub(crate) fn api(
    engine: &mut Engine,
    credentials: Option<Credentials<'_>>,
    ctx: &Ctx<'_>,
) -> H<Principal> {
    let Some(Credentials {
        key: user,
        secret: pass,
    }) = credentials
    else {
        return unauthorized("Basic", "the data API needs HTTP Basic credentials");
    };
    // Every failure below is answered the same way, so that keys cannot be probed.
    let bad = || unauthorized("Basic", "the API key or secret is not valid");
    if user.is_empty() || user.len() > 128 || user.contains('/') {
        return bad();
    }
    let key_key = keys::api_key(user);
    let key: Arc<ApiKeyRec> = match ctx.tx.get(&key_key)? {
        Some(raw) => engine.cache.decode(&key_key, raw)?,
        None => {
            // Spend the same hashing work as a known key.
            let _ = ct_eq_str(&sha256_hex(pass.as_bytes()), &sha256_hex(b"-"));
            return bad();
        }
    };
    if !verify_secret(pass, &key.secret_sha256) {
        return bad();
    }
    let account_key = keys::account(&key.account_id);
    let account: Arc<AccountRec> = match ctx.tx.get(&account_key)? {
        Some(raw) => engine.cache.decode(&account_key, raw)?,
        None => return bad(),
    };
    Ok(Principal { account, key })
}

fn has_scope(key: &ApiKeyRec, scope: &str) -> bool {
    key.scopes.iter().any(|s| s == scope)
}

/// May this caller read (`write: false`) or write? A write also needs write mode on.
pub(crate) fn authorize(principal: &Principal, write: bool) -> H<()> {
    let key = &principal.key;
    if !write {
        if !has_scope(key, SCOPE_READ) && !has_scope(key, SCOPE_WRITE) {
            return fail(
                ProblemKind::MissingScope,
                "reading needs an API key with api.read",
            );
        }
        return Ok(());
    }
    if !has_scope(key, SCOPE_WRITE) {
        return fail(
            ProblemKind::MissingScope,
            "writing needs an API key with the api.write scope",
        );
    }
    if !principal.account.write_enabled {
        return fail(
            ProblemKind::WriteModeDisabled,
            "write mode is not enabled for this account; an administrator must enable it (PATCH /admin/accounts/{id} with writeEnabled: true)",
        );
    }
    Ok(())
}
