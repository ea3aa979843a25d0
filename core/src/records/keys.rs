//! Key builders.

use crate::cdm::ObjectType;

/// The parts joined, in one allocation of the exact size (keys are built on every write,
/// where `format!` costs a measurable share).
fn concat(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        s.push_str(p);
    }
    s
}

/// `{prefix}{ms:016}/{middle}{rest...}`: a time-ordered index key; negative times count as 0.
fn timed(prefix: &str, at_ms: i64, rest: &[&str]) -> String {
    let mut digits = [b'0'; 20];
    let mut n = at_ms.max(0).unsigned_abs();
    let mut i = digits.len();
    while n > 0 {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    // At least 16 digits, zero-padded, as `{:016}` writes them.
    let start = i.min(digits.len() - 16);
    let num = std::str::from_utf8(&digits[start..]).unwrap_or("0000000000000000");
    let mut s = String::with_capacity(
        prefix.len() + num.len() + 1 + rest.iter().map(|p| p.len()).sum::<usize>(),
    );
    s.push_str(prefix);
    s.push_str(num);
    s.push('/');
    for p in rest {
        s.push_str(p);
    }
    s
}

/// Stored admin token hash.
pub const ADMIN: &str = "meta/admin";
/// An account.
pub fn account(id: &str) -> String {
    concat(&["acct/", id])
}
/// Domain uniqueness.
pub fn account_domain(domain: &str) -> String {
    concat(&["acctdom/", domain])
}
/// An API key.
pub fn api_key(key: &str) -> String {
    concat(&["key/", key])
}
/// A connection.
pub fn connection(account: &str, id: &str) -> String {
    concat(&["conn/", account, "/", id])
}
/// Prefix of an account's connections.
pub fn connections(account: &str) -> String {
    concat(&["conn/", account, "/"])
}
/// A webhook subscription.
pub fn webhook(account: &str, id: &str) -> String {
    concat(&["hook/", account, "/", id])
}
/// Prefix of an account's webhook subscriptions.
pub fn webhooks(account: &str) -> String {
    concat(&["hook/", account, "/"])
}
/// A CDM object.
pub fn object(account: &str, t: ObjectType, id: &str) -> String {
    concat(&["obj/", account, "/", t.as_str(), "/", id])
}
/// Prefix of every stored object.
pub const OBJECTS: &str = "obj/";
/// Prefix of an account's objects of one type.
pub fn objects(account: &str, t: ObjectType) -> String {
    concat(&["obj/", account, "/", t.as_str(), "/"])
}
/// A unique value.
pub fn unique(account: &str, rule: &str, value: &str) -> String {
    concat(&["uniq/", account, "/", rule, "/", value])
}
/// Prefix of the objects that refer to one object (reverse reference index).
pub fn referrers(account: &str, t: ObjectType, id: &str) -> String {
    concat(&["ref/", account, "/", t.as_str(), "/", id, "/"])
}
/// Reverse reference entry: object `(rt, rid)` refers to `(t, id)` (the value is the JSON
/// Pointer of the first field that does).
pub fn referrer(account: &str, t: ObjectType, id: &str, rt: ObjectType, rid: &str) -> String {
    concat(&[
        "ref/",
        account,
        "/",
        t.as_str(),
        "/",
        id,
        "/",
        rt.as_str(),
        "/",
        rid,
    ])
}
/// Prefix of the syncs (their ids are time-ordered, so a scan lists the oldest first).
pub const SYNCS: &str = "s/";
/// A sync and its push tasks ([`super::rows::SyncRow`]).
pub fn sync(id: &str) -> String {
    concat(&["s/", id])
}
/// Prefix of the task pointers.
pub const TASKS: &str = "t/";
/// The sync of a push task that was handed out (its value is the sync id).
pub fn task(id: &str) -> String {
    concat(&["t/", id])
}
/// The syncs with unfinished push tasks of one object (a JSON list of sync ids, oldest first).
pub fn chain(account: &str, t: ObjectType, id: &str) -> String {
    concat(&["c/", account, "/", t.as_str(), "/", id])
}
/// The remote ids of one object, by connection.
pub fn remote(account: &str, t: ObjectType, id: &str) -> String {
    concat(&["r/", account, "/", t.as_str(), "/", id])
}
/// Prefix of the kept versions of one object.
pub fn kept_versions(account: &str, t: ObjectType, id: &str) -> String {
    concat(&["v/", account, "/", t.as_str(), "/", id, "/"])
}
/// A version of an object that an unfinished push task still sends, kept after a later write
/// replaced it (the value is the object as that version was stored).
pub fn kept_version(account: &str, t: ObjectType, id: &str, version: u64) -> String {
    let mut k = kept_versions(account, t, id);
    k.push_str(&format!("{version:020}"));
    k
}
/// The layout version of the stored data (`{"version": n}`).
pub const LAYOUT: &str = "meta/layout";
/// The progress of a layout migration.
pub const MIGRATION: &str = "meta/migration";
/// A webhook delivery.
pub fn delivery(id: &str) -> String {
    concat(&["dlv/", id])
}
/// Index entry of a delivery under its subscription. The last segment is the delivery's
/// time-ordered id with every bit inverted, so that an ascending scan lists the newest
/// first (the value is the delivery id).
pub fn webhook_delivery(account: &str, webhook: &str, id: &str) -> String {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    match u128::from_str_radix(&hex, 16) {
        Ok(n) if hex.len() == 32 => format!("hookdlv/{account}/{webhook}/{:032x}", !n),
        _ => concat(&["hookdlv/", account, "/", webhook, "/~", id]),
    }
}
/// Prefix of the deliveries of a subscription.
pub fn webhook_deliveries(account: &str, webhook: &str) -> String {
    concat(&["hookdlv/", account, "/", webhook, "/"])
}
/// Prefix of the wake-up index.
pub const DUE: &str = "due/";
/// Wake-up entry of a task.
pub fn due_task(at_ms: i64, id: &str) -> String {
    timed("due/", at_ms, &["t/", id])
}
/// Wake-up entry of a delivery.
pub fn due_delivery(at_ms: i64, id: &str) -> String {
    timed("due/", at_ms, &["d/", id])
}
/// Wake-up entry of the token request of a connection.
pub fn due_token(at_ms: i64, connection: &str) -> String {
    timed("due/", at_ms, &["k/", connection])
}
/// The access token of a connection.
pub fn token(connection: &str) -> String {
    concat(&["token/", connection])
}
/// The open token request of a connection.
pub fn token_request(connection: &str) -> String {
    concat(&["tokreq/", connection])
}
/// An idempotency record.
pub fn idempotency(account: &str, key: &str) -> String {
    concat(&["idem/", account, "/", key])
}
/// Prefix of the idempotency retention index.
pub const IDEM_EXPIRY: &str = "idemexp/";
/// Retention entry of an idempotency record.
pub fn idempotency_expiry(at_ms: i64, account: &str, key: &str) -> String {
    timed("idemexp/", at_ms, &[account, "/", key])
}
/// Prefix of the finished-delivery retention index.
pub const DELIVERY_EXPIRY: &str = "dlvexp/";
/// Retention entry of a finished delivery.
pub fn delivery_expiry(at_ms: i64, id: &str) -> String {
    timed("dlvexp/", at_ms, &[id])
}
