//! The phase `convert` of the layout migrations (`migrate.rs`, `migrate_v1.rs`): the rows of
//! layouts 2, 3 and 4 (and layout 1's uniqueness and wake-up entries) rewritten under layout
//! 5's keys, driven by one table. Its own module, so that neither migration imports the other's.

use super::tx::Tx;
use crate::cdm::ObjectType;
use crate::records::keys;
use crate::store::KvRead;
use crate::CoreError;

/// How layout 5 writes one `/`-separated segment of an older key.
#[derive(Clone, Copy)]
enum Seg {
    /// As it is.
    Keep,
    /// An object type, as it is.
    Type,
    /// An id, in the short form ([`keys::id_in_key`]).
    Short,
    /// An id already in the short form (layout 4), as it is once checked.
    ShortKept,
    /// An id that layout 3 wrote with every bit inverted (32 hex digits), in the short form,
    /// inverted.
    Inverted,
    /// Left out (the account of rows that name an object by its id alone).
    Drop,
    /// An object type, checked, and left out (the push chains of layout 5 name no type).
    DropType,
}

/// How layout 5 writes the value of an older row.
#[derive(Clone, Copy)]
enum Val {
    /// As it is.
    Same,
    /// A JSON string naming an id (an empty string stays empty).
    Id,
    /// A JSON list of ids.
    Ids,
    /// A JSON object whose keys are ids.
    Keys,
}

/// The families of layouts 2, 3 and 4 (and layout 1's `uniq/` and `due/`) that layout 5
/// writes differently: old prefix, new prefix, the segments of the rest of the key (the last
/// one takes what is left, `/` included), what follows them, the value. No old prefix is a
/// prefix of a layout-5 key, so the rows left under one are the rows still to convert.
const CONVERSIONS: [(&str, &str, &[Seg], &str, Val); 11] = {
    use Seg::*;
    [
        ("s/", "sy/", &[Short], "", Val::Same),
        ("sx/", "sa/", &[Short, Inverted], "", Val::Id),
        ("t/", "tk/", &[Short], "", Val::Id),
        (
            "c/",
            "sy/",
            &[Drop, DropType, Short],
            keys::CHAIN_SUFFIX,
            Val::Ids,
        ),
        (
            "ch/",
            "sy/",
            &[DropType, ShortKept],
            keys::CHAIN_SUFFIX,
            Val::Same,
        ),
        ("r/", "rm/", &[Drop, Type, Short], "", Val::Keys),
        ("v/", "ov/", &[Drop, Type, Short, Keep], "", Val::Same),
        (
            "ref/",
            "rf/",
            &[Drop, Type, Short, Type, Short],
            "",
            Val::Same,
        ),
        ("uniq/", "uq/", &[Short, Keep, Keep], "", Val::Id),
        ("due/", "du/", &[Keep, Keep, Short], "", Val::Id),
        ("hookdlv/", "wd/", &[Keep, Keep, Inverted], "", Val::Same),
    ]
};

/// The phase `convert`: rewrite up to `limit` of the rows left under the old prefixes of
/// [`CONVERSIONS`] under layout 5's keys, and remove them. Answers how many it rewrote and
/// whether none is left.
pub(super) fn convert(
    tx: &mut Tx<'_>,
    store: &dyn KvRead,
    limit: usize,
) -> Result<(usize, bool), CoreError> {
    let mut left = limit;
    for (old, new, segs, suffix, val) in CONVERSIONS {
        let rows = store.scan(old, 0, left)?;
        for (key, value) in &rows {
            let (Some(k), Some(v)) = (
                converted_key(&key[old.len()..], new, segs, suffix),
                converted_value(value, val),
            ) else {
                return Err(CoreError::CorruptRow {
                    key: key.clone(),
                    reason: "not a row of an older data layout".into(),
                });
            };
            tx.delete(key.clone());
            tx.put(k, v);
        }
        left -= rows.len();
        if left == 0 {
            return Ok((limit, false));
        }
    }
    Ok((limit - left, true))
}

/// The layout-5 key of an older key whose rest after its prefix is `rest`.
fn converted_key(rest: &str, new: &str, segs: &[Seg], suffix: &str) -> Option<String> {
    let mut parts = rest.splitn(segs.len(), '/');
    let mut out = new.to_string();
    for seg in segs {
        let part = parts.next()?;
        let text = match seg {
            Seg::Keep => part.to_string(),
            Seg::Type => ObjectType::parse(part)?.as_str().to_string(),
            Seg::Short => keys::id_in_key(part),
            Seg::ShortKept => {
                keys::id_from_key(part)?;
                part.to_string()
            }
            Seg::Inverted => keys::inverted_in_key(&uninverted(part)?),
            Seg::Drop => continue,
            Seg::DropType => {
                ObjectType::parse(part)?;
                continue;
            }
        };
        if out.len() > new.len() {
            out.push('/');
        }
        out.push_str(&text);
    }
    out.push_str(suffix);
    Some(out)
}

/// The layout-5 value of an older row's value.
fn converted_value(value: &str, val: Val) -> Option<String> {
    match val {
        Val::Same => Some(value.to_string()),
        Val::Id => match serde_json::from_str::<String>(value).ok()? {
            id if id.is_empty() => Some(value.to_string()),
            id => Some(keys::id_value(&id)),
        },
        Val::Ids => {
            let mut ids = serde_json::from_str::<Vec<String>>(value).ok()?;
            for id in &mut ids {
                *id = keys::id_in_key(id);
            }
            crate::json::to_text(&ids, 64).ok()
        }
        Val::Keys => {
            let serde_json::Value::Object(map) = serde_json::from_str(value).ok()? else {
                return None;
            };
            let mut short = serde_json::Map::new();
            for (id, v) in map {
                short.insert(keys::id_in_key(&id), v);
            }
            Some(serde_json::Value::Object(short).to_string())
        }
    }
}

/// The id that layout 3 wrote with every bit inverted (32 hex digits), or as `~{id}`.
fn uninverted(part: &str) -> Option<String> {
    if let Some(id) = part.strip_prefix('~') {
        return Some(id.to_string());
    }
    if part.len() != 32 {
        return None;
    }
    let n = u128::from_str_radix(part, 16).ok()?;
    Some(keys::uuid_text((!n).to_be_bytes()))
}
