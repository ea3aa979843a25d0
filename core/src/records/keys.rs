//! Key builders.
//!
//! Layouts 4 and 5 write the ids in the keys of objects' versions, references, uniqueness entries,
//! syncs, tasks, push chains, remote ids and the wake-up index in a short form ([`id_in_key`]):
//! a UUID as 22 symbols of base64 over an alphabet in ASCII order, which sorts as the UUID
//! does. The index rows that name an id in their value name it in the same form. The object
//! rows (`obj/`) and the records of accounts, keys, connections, webhooks and deliveries keep
//! their ids as they are.

use base64::alphabet::Alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

use std::cell::RefCell;
use std::rc::Rc;

use crate::cdm::ObjectType;

/// base64's 64 symbols in ASCII order (`-`, digits, upper case, `_`, lower case): encoded
/// UUIDs of one length sort as their bytes do, and no symbol is the key separator `/`.
const ORDERED: Alphabet =
    match Alphabet::new("-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz") {
        Ok(a) => a,
        Err(_) => panic!("the ordered alphabet has 64 distinct printable symbols"),
    };

/// Unpadded base64 over [`ORDERED`]; decoding refuses padding and stray trailing bits, so each
/// UUID has exactly one short form.
const SHORT: GeneralPurpose = GeneralPurpose::new(
    &ORDERED,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// The 16 bytes of a UUID in its canonical text (lowercase, hyphenated), else `None`. Every
/// key the engine builds names ids, so this is read by the `uuid` crate's parser, without
/// allocating.
fn canonical_uuid(id: &str) -> Option<[u8; 16]> {
    let b = id.as_bytes();
    // At 36 characters the parser takes only the hyphenated form; it takes upper case too.
    // (A fold, not `any`: it has no early exit, so the compiler checks many bytes at once.)
    if b.len() != 36 || b.iter().fold(false, |up, c| up | c.is_ascii_uppercase()) {
        return None;
    }
    uuid::Uuid::try_parse_ascii(b)
        .ok()
        .map(uuid::Uuid::into_bytes)
}

/// 22 symbols of [`SHORT`] for 16 bytes.
fn short(bytes: &[u8; 16]) -> Rc<str> {
    Rc::from(std::str::from_utf8(&short_symbols(bytes)).unwrap_or_default())
}

/// 22 symbols of [`SHORT`] for 16 bytes, on the stack (ASCII).
fn short_symbols(bytes: &[u8; 16]) -> [u8; 22] {
    let mut out = [b'-'; 22];
    // 16 bytes are always 22 unpadded symbols, so the buffer always fits.
    let _ = SHORT.encode_slice(bytes, &mut out);
    out
}

/// The last ids converted on this thread ([`uuid_forms`]): one write names the same few ids
/// in many keys (its account's in most of them, its own, its sync's and tasks' in several),
/// and a conversion (parse, encode) costs far more than a look here. Direct-mapped by the last
/// characters of the text, which are random in the engine's ids: [`MEMO_SLOTS`] entries of
/// the text, the bytes and a shared short form (about 3.5 KB per thread at most); a miss
/// only costs the conversion.
const MEMO_SLOTS: usize = 32;

/// One remembered conversion: the canonical text, its 16 bytes and their 22 symbols.
type MemoEntry = Option<([u8; 36], [u8; 16], Rc<str>)>;

std::thread_local! {
    static MEMO: RefCell<[MemoEntry; MEMO_SLOTS]> =
        const { RefCell::new([const { None }; MEMO_SLOTS]) };
}

/// The bytes and short form of a UUID in its canonical text, else `None` (remembered, see
/// [`MEMO_SLOTS`]).
fn uuid_forms(id: &str) -> Option<([u8; 16], Rc<str>)> {
    // The canonical text has 36 characters; as an array it compares without a call.
    let b: &[u8; 36] = id.as_bytes().try_into().ok()?;
    let [.., x, y, z] = b;
    let slot = (usize::from(*x) * 7 + usize::from(*y) * 3 + usize::from(*z)) % MEMO_SLOTS;
    MEMO.with_borrow_mut(|m| {
        let entry = m.get_mut(slot)?;
        if let Some((text, bytes, short)) = entry {
            if text == b {
                return Some((*bytes, short.clone()));
            }
        }
        let bytes = canonical_uuid(id)?;
        let short = short(&bytes);
        *entry = Some((*b, bytes, short.clone()));
        Some((bytes, short))
    })
}

/// An id as [`id_in_key`] writes it: the short form of a UUID (shared with the memo), or any
/// other text.
enum KeyId {
    Short(Rc<str>),
    /// `~` and an id that is no UUID (none of the engine's own), or an inverted short form.
    Text(String),
}

impl KeyId {
    fn as_str(&self) -> &str {
        match self {
            KeyId::Short(s) => s,
            KeyId::Text(s) => s,
        }
    }
}

/// [`id_in_key`], shared with the memo.
fn key_id(id: &str) -> KeyId {
    match uuid_forms(id) {
        Some((_, s)) => KeyId::Short(s),
        None => KeyId::Text(concat(&["~", id])),
    }
}

/// [`inverted_in_key`].
fn inverted_key_id(id: &str) -> KeyId {
    match uuid_forms(id) {
        Some((bytes, _)) => {
            KeyId::Text(String::from_utf8_lossy(&short_symbols(&bytes.map(|b| !b))).into_owned())
        }
        None => KeyId::Text(concat(&["~", id])),
    }
}

/// The 16 bytes that 22 symbols of [`SHORT`] encode.
fn short_bytes(part: &str) -> Option<[u8; 16]> {
    let mut bytes = [0u8; 16];
    match (part.len(), SHORT.decode_slice(part, &mut bytes)) {
        (22, Ok(16)) => Some(bytes),
        _ => None,
    }
}

/// A UUID's canonical text.
pub(crate) fn uuid_text(bytes: [u8; 16]) -> String {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::from_bytes(bytes)
        .hyphenated()
        .encode_lower(&mut text)
        .to_string()
}

/// An id as layouts 4 and 5 write it in a key: a UUID in its canonical text as 22 symbols of
/// unpadded base64 over `-0-9A-Z_a-z` (base64's 64 symbols in ASCII order); any other id (none
/// of the engine's own) as `~{id}`, which sorts after every short UUID.
pub fn id_in_key(id: &str) -> String {
    match key_id(id) {
        KeyId::Text(s) => s,
        KeyId::Short(s) => s.to_string(),
    }
}

/// The id that [`id_in_key`] wrote as `part`, or `None` when `part` is not such a form.
pub fn id_from_key(part: &str) -> Option<String> {
    if let Some(rest) = part.strip_prefix('~') {
        return Some(rest.to_string());
    }
    short_bytes(part).map(uuid_text)
}

/// An id as an index row's value names it: [`id_in_key`] as a JSON string.
pub fn id_value(id: &str) -> String {
    match key_id(id) {
        // Base64 symbols need no escaping.
        KeyId::Short(s) => concat(&["\"", &s, "\""]),
        KeyId::Text(s) => super::json_string(&s),
    }
}

/// The id an index row's value names ([`id_value`]), or `None` when `text` is not one.
pub fn id_of_value(text: &str) -> Option<String> {
    serde_json::from_str::<String>(text)
        .ok()
        .and_then(|s| id_from_key(&s))
}

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
/// A unique value (the value is the [`id_value`] of the object holding it).
pub fn unique(account: &str, rule: &str, value: &str) -> String {
    concat(&["uq/", key_id(account).as_str(), "/", rule, "/", value])
}
/// Prefix of the objects that refer to one object (reverse reference index). Object ids are
/// drawn by the engine and unique in a store, so the index (like the chains, remote ids and
/// kept versions below) names no account: it is read only for an object already found under
/// its account.
pub fn referrers(t: ObjectType, id: &str) -> String {
    concat(&["rf/", t.as_str(), "/", key_id(id).as_str(), "/"])
}
/// Reverse reference entry: object `(rt, rid)` refers to `(t, id)` (the value is the JSON
/// Pointer of the first field that does).
pub fn referrer(t: ObjectType, id: &str, rt: ObjectType, rid: &str) -> String {
    concat(&[
        "rf/",
        t.as_str(),
        "/",
        key_id(id).as_str(),
        "/",
        rt.as_str(),
        "/",
        key_id(rid).as_str(),
    ])
}
/// Prefix of the syncs (their ids are time-ordered, so a scan lists the oldest first), and of
/// the push chains among them ([`chain`], [`is_chain`]).
pub const SYNCS: &str = "sy/";
/// A sync and its push tasks ([`super::rows::SyncRow`]).
pub fn sync(id: &str) -> String {
    concat(&["sy/", key_id(id).as_str()])
}
/// Prefix of the task pointers.
pub const TASKS: &str = "tk/";
/// The sync of a push task that was handed out (its value is the sync's [`id_value`]).
pub fn task(id: &str) -> String {
    concat(&["tk/", key_id(id).as_str()])
}
/// What ends the key of a push chain under [`SYNCS`] (after the object's id).
pub const CHAIN_SUFFIX: &str = "/c";
/// The syncs with unfinished push tasks of one object (a JSON list of the sync ids in the
/// form of [`id_in_key`], oldest first). It sits among the syncs, under the object's id: ids
/// are drawn in time order, so the chain a create starts is the neighbour of the row of the
/// sync it starts with, and the write touches one page of the key index for both.
pub fn chain(id: &str) -> String {
    concat(&["sy/", key_id(id).as_str(), CHAIN_SUFFIX])
}
/// Whether a key under [`SYNCS`] is a push chain ([`chain`]), not a sync.
pub fn is_chain(key: &str) -> bool {
    key.ends_with(CHAIN_SUFFIX)
}
/// The remote ids of one object, by connection (the connection ids in the form of
/// [`id_in_key`]).
pub fn remote(t: ObjectType, id: &str) -> String {
    concat(&["rm/", t.as_str(), "/", key_id(id).as_str()])
}
/// Prefix of the kept versions of one object.
pub fn kept_versions(t: ObjectType, id: &str) -> String {
    concat(&["ov/", t.as_str(), "/", key_id(id).as_str(), "/"])
}
/// A version of an object that an unfinished push task still sends, kept after a later write
/// replaced it (the value is the object as that version was stored).
pub fn kept_version(t: ObjectType, id: &str, version: u64) -> String {
    let mut k = kept_versions(t, id);
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
/// time-ordered id with every bit inverted, in the short form of [`id_in_key`], so that an
/// ascending scan lists the newest first (the value is the delivery id).
pub fn webhook_delivery(account: &str, webhook: &str, id: &str) -> String {
    concat(&[
        "wd/",
        account,
        "/",
        webhook,
        "/",
        inverted_key_id(id).as_str(),
    ])
}
/// A UUID with every bit inverted, in the short form of [`id_in_key`] (an ascending scan lists
/// the newest first); any other id as `~{id}` (after every inverted one).
pub(crate) fn inverted_in_key(id: &str) -> String {
    match inverted_key_id(id) {
        KeyId::Text(s) => s,
        KeyId::Short(s) => s.to_string(),
    }
}
/// The id that [`account_sync`] wrote, every bit inverted, as its last segment `part`.
pub fn id_from_inverted(part: &str) -> Option<String> {
    if part.starts_with('~') {
        return id_from_key(part);
    }
    short_bytes(part).map(|b| uuid_text(b.map(|x| !x)))
}
/// Index entry of a sync under its account (the value is the sync's [`id_value`]). The last
/// segment is the sync's time-ordered id inverted ([`id_from_inverted`] reads it), so an
/// ascending scan lists the newest first.
pub fn account_sync(account: &str, id: &str) -> String {
    concat(&[
        "sa/",
        key_id(account).as_str(),
        "/",
        inverted_key_id(id).as_str(),
    ])
}
/// Prefix of the sync index of an account.
pub fn account_syncs(account: &str) -> String {
    concat(&["sa/", key_id(account).as_str(), "/"])
}
/// Prefix of the deliveries of a subscription.
pub fn webhook_deliveries(account: &str, webhook: &str) -> String {
    concat(&["wd/", account, "/", webhook, "/"])
}
/// Prefix of the wake-up index.
pub const DUE: &str = "du/";
/// Wake-up entry of a task (the value is its sync's [`id_value`]).
pub fn due_task(at_ms: i64, id: &str) -> String {
    timed("du/", at_ms, &["t/", key_id(id).as_str()])
}
/// Wake-up entry of a delivery.
pub fn due_delivery(at_ms: i64, id: &str) -> String {
    timed("du/", at_ms, &["d/", key_id(id).as_str()])
}
/// Wake-up entry of the token request of a connection.
pub fn due_token(at_ms: i64, connection: &str) -> String {
    timed("du/", at_ms, &["k/", key_id(connection).as_str()])
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
