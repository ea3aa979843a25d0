//! Reading and writing syncs, push tasks, push chains, remote ids and kept object versions in
//! layout 2 (see `records/rows.rs` and `records/mod.rs`): one row per sync holds its tasks;
//! a task is found by its sync, from a due entry's value or from its pointer `t/{task}`.

use serde_json::{Map, Value};

use super::tx::Tx;
use crate::cdm::ObjectType;
use crate::records::rows::{successor_parts, version_of, SyncRow};
use crate::records::*;
use crate::store::KvRead;
use crate::CoreError;

/// The sync and tasks of the row under `key` (sync `sync_id`), decoded once per unit of work
/// and text.
fn decoded_at(
    tx: &Tx<'_>,
    key: &str,
    sync_id: &str,
) -> Result<Option<(SyncRec, Vec<TaskRec>)>, CoreError> {
    if let Some(hit) = tx.decoded_sync(key) {
        return Ok(Some(hit));
    }
    let Some(text) = tx.get(key)? else {
        return Ok(None);
    };
    let row = SyncRow::parse(&text).map_err(|reason| CoreError::CorruptRow {
        key: key.to_string(),
        reason,
    })?;
    let decoded = row.decode(sync_id);
    tx.remember_sync(key, &decoded);
    Ok(Some(decoded))
}

/// A sync.
pub(crate) fn get_sync(tx: &Tx<'_>, sync_id: &str) -> Result<Option<SyncRec>, CoreError> {
    Ok(get_sync_tasks(tx, sync_id)?.map(|(sync, _)| sync))
}

/// A sync and its tasks.
pub(crate) fn get_sync_tasks(
    tx: &Tx<'_>,
    sync_id: &str,
) -> Result<Option<(SyncRec, Vec<TaskRec>)>, CoreError> {
    decoded_at(tx, &keys::sync(sync_id), sync_id)
}

/// The id an index row names ([`keys::id_value`]): `None` when the row is absent, a
/// `corrupt_row` error when its value names no id.
pub(crate) fn get_id(tx: &Tx<'_>, key: String) -> Result<Option<String>, CoreError> {
    match tx.get(&key)? {
        None => Ok(None),
        Some(text) => keys::id_of_value(&text)
            .map(Some)
            .ok_or(CoreError::CorruptRow {
                key,
                reason: "the value names no id".into(),
            }),
    }
}

/// The sync of a task: `hint` when the caller knows it, else its pointer.
fn sync_of(tx: &Tx<'_>, task_id: &str, hint: Option<&str>) -> Result<Option<String>, CoreError> {
    match hint {
        Some(s) if !s.is_empty() => Ok(Some(s.to_string())),
        _ => get_id(tx, keys::task(task_id)),
    }
}

/// A task, by its id (and its sync when known).
pub(crate) fn get_task(
    tx: &Tx<'_>,
    task_id: &str,
    sync_hint: Option<&str>,
) -> Result<Option<TaskRec>, CoreError> {
    let Some(sync_id) = sync_of(tx, task_id, sync_hint)? else {
        return Ok(None);
    };
    let Some((_, tasks)) = get_sync_tasks(tx, &sync_id)? else {
        return Ok(None);
    };
    Ok(tasks.into_iter().find(|t| t.id == task_id))
}

/// A task named as `{sync}/{task}`.
pub(crate) fn get_task_ref(tx: &Tx<'_>, reference: &str) -> Result<Option<TaskRec>, CoreError> {
    let (sync, task) = successor_parts(reference, "");
    get_task(tx, task, Some(sync))
}

/// Store a new sync with its tasks, made at `created_ms` (what its `created_at` says).
pub(crate) fn put_new(tx: &mut Tx<'_>, sync: SyncRec, tasks: Vec<TaskRec>, created_ms: i64) {
    let key = keys::sync(&sync.id);
    tx.put(
        keys::account_sync(&sync.account_id, &sync.id),
        keys::id_value(&sync.id),
    );
    tx.put_json_sized(
        key,
        &SyncRow::encode_at(&sync, &tasks, Some(created_ms)),
        768,
    );
}

/// Store a changed task into its sync's row.
pub(crate) fn put_task(tx: &mut Tx<'_>, task: &TaskRec) -> Result<(), CoreError> {
    let key = keys::sync(&task.sync_id);
    let Some((sync, mut tasks)) = decoded_at(tx, &key, &task.sync_id)? else {
        return Err(CoreError::CorruptRow {
            key,
            reason: format!("task {} has no sync", task.id),
        });
    };
    match tasks.iter_mut().find(|t| t.id == task.id) {
        Some(t) => *t = task.clone(),
        None => {
            return Err(CoreError::CorruptRow {
                key,
                reason: format!("task {} is not in its sync", task.id),
            })
        }
    }
    tx.put_json(key, &SyncRow::encode(&sync, &tasks));
    Ok(())
}

/// Store a changed sync (its tasks stay as stored).
pub(crate) fn put_sync(tx: &mut Tx<'_>, sync: &SyncRec) -> Result<(), CoreError> {
    let key = keys::sync(&sync.id);
    let tasks = match decoded_at(tx, &key, &sync.id)? {
        Some((_, tasks)) => tasks,
        None => Vec::new(),
    };
    tx.put_json(key, &SyncRow::encode(sync, &tasks));
    Ok(())
}

/// The wake-up entry of a task at `ms`; its value names the task's sync.
pub(crate) fn put_due(tx: &mut Tx<'_>, ms: i64, task: &TaskRec) {
    tx.put(keys::due_task(ms, &task.id), keys::id_value(&task.sync_id));
}

/// The pointer from a handed-out task to its sync (its work id names only the task).
pub(crate) fn point(tx: &mut Tx<'_>, task: &TaskRec) -> Result<(), CoreError> {
    let key = keys::task(&task.id);
    if !tx.contains(&key)? {
        tx.put(key, keys::id_value(&task.sync_id));
    }
    Ok(())
}

/// The unfinished tasks of `object` in the syncs of its chain, oldest sync first.
fn chain_tasks(
    tx: &Tx<'_>,
    list: &[String],
    t: ObjectType,
    id: &str,
) -> Result<Vec<TaskRec>, CoreError> {
    let mut out = Vec::new();
    for s in list {
        if let Some((_, tasks)) = get_sync_tasks(tx, s)? {
            out.extend(tasks.into_iter().filter(|x| {
                x.object.object_type == t && x.object.id == id && !x.state.status().is_final()
            }));
        }
    }
    Ok(out)
}

/// The sync ids of a chain (stored in the form of [`keys::id_in_key`]).
fn chain_list(tx: &Tx<'_>, key: &str) -> Result<Vec<String>, CoreError> {
    let mut list = tx.get_json::<Vec<String>>(key)?.unwrap_or_default();
    for s in &mut list {
        *s = keys::id_from_key(s).ok_or_else(|| CoreError::CorruptRow {
            key: key.to_string(),
            reason: "a chain entry is not a sync id".into(),
        })?;
    }
    Ok(list)
}

/// Store the sync ids of a chain: a JSON list of their [`keys::id_value`]s.
fn put_chain<'a>(tx: &mut Tx<'_>, key: String, list: impl IntoIterator<Item = &'a str>) {
    let list = list.into_iter();
    // A short id's value is 24 bytes, and a comma.
    let mut text = String::with_capacity(2 + 25 * list.size_hint().0);
    text.push('[');
    for (i, s) in list.enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&keys::id_value(s));
    }
    text.push(']');
    tx.put(key, text);
}

/// The last push task planned for an object at a connection that has not finished yet.
pub(crate) fn chain_tail(
    tx: &Tx<'_>,
    connection: &str,
    t: ObjectType,
    id: &str,
) -> Result<Option<TaskRec>, CoreError> {
    let list = chain_list(tx, &keys::chain(id))?;
    Ok(chain_tasks(tx, &list, t, id)?
        .into_iter()
        .rev()
        .find(|x| x.connection_id == connection))
}

/// Record that `sync` has unfinished tasks of an object.
pub(crate) fn chain_add(tx: &mut Tx<'_>, id: &str, sync: &str) -> Result<(), CoreError> {
    let key = keys::chain(id);
    let mut list = chain_list(tx, &key)?;
    if !list.iter().any(|s| s == sync) {
        list.push(sync.to_string());
        put_chain(tx, key, list.iter().map(String::as_str));
    }
    Ok(())
}

/// Start the chain of an object this write created (it has none): `sync` is its first entry.
pub(crate) fn chain_start(tx: &mut Tx<'_>, id: &str, sync: &str) {
    put_chain(tx, keys::chain(id), [sync]);
}

/// After a task of an object finished: drop the syncs without unfinished tasks of it from its
/// chain, and the kept versions of it that no unfinished task sends any more.
pub(crate) fn chain_release(
    tx: &mut Tx<'_>,
    account: &str,
    t: ObjectType,
    id: &str,
) -> Result<(), CoreError> {
    let key = keys::chain(id);
    let list = chain_list(tx, &key)?;
    let open = chain_tasks(tx, &list, t, id)?;
    let kept: Vec<String> = list
        .iter()
        .filter(|s| open.iter().any(|x| &x.sync_id == *s))
        .cloned()
        .collect();
    if kept.is_empty() {
        tx.delete(key);
        // A deleted object's remote ids go with its last unfinished push.
        if !tx.contains(&keys::object(account, t, id))? {
            tx.delete(keys::remote(t, id));
        }
    } else if kept != list {
        put_chain(tx, key, kept.iter().map(String::as_str));
    }
    let prefix = keys::kept_versions(t, id);
    for (k, _) in tx.scan(&prefix, 0, usize::MAX)? {
        let needed = k[prefix.len()..]
            .parse::<u64>()
            .is_ok_and(|v| open.iter().any(|x| x.version == v));
        if !needed {
            tx.delete(k);
        }
    }
    Ok(())
}

/// Before an object is replaced: keep its stored version when an unfinished task still has
/// to send it.
pub(crate) fn keep_if_pushed(
    tx: &mut Tx<'_>,
    account: &str,
    t: ObjectType,
    id: &str,
) -> Result<(), CoreError> {
    let list = chain_list(tx, &keys::chain(id))?;
    if list.is_empty() {
        return Ok(());
    }
    let Some(text) = tx.get(&keys::object(account, t, id))? else {
        return Ok(());
    };
    let Some(version) = version_of(&text) else {
        return Ok(());
    };
    if chain_tasks(tx, &list, t, id)?
        .iter()
        .any(|x| x.version == version)
    {
        tx.put(keys::kept_version(t, id, version), text);
    }
    Ok(())
}

/// The object as the version a task pushes was stored.
pub(crate) fn pushed_body(tx: &Tx<'_>, task: &TaskRec) -> Result<Option<String>, CoreError> {
    let (a, t, id) = (&task.account_id, task.object.object_type, &task.object.id);
    if let Some(text) = tx.get(&keys::object(a, t, id))? {
        if version_of(&text) == Some(task.version) {
            return Ok(Some(text));
        }
    }
    tx.get(&keys::kept_version(t, id, task.version))
}

/// The remote ids of an object: `{connection: "id"}`, or `{connection: {"remoteId", "version"}}`
/// where the source also gave a version.
fn remotes(tx: &Tx<'_>, key: &str) -> Result<Map<String, Value>, CoreError> {
    match tx.get(key)? {
        None => Ok(Map::new()),
        Some(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(CoreError::CorruptRow {
                key: key.to_string(),
                reason: "not a JSON object".into(),
            }),
        },
    }
}

/// The id an object has at a connection.
pub(crate) fn get_remote(
    tx: &Tx<'_>,
    connection: &str,
    t: ObjectType,
    id: &str,
) -> Result<Option<RemoteRec>, CoreError> {
    let key = keys::remote(t, id);
    let map = remotes(tx, &key)?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    Ok(match map.get(&keys::id_in_key(connection)) {
        None => None,
        Some(Value::String(s)) => Some(RemoteRec {
            remote_id: Some(s.clone()),
            version: None,
        }),
        Some(Value::Object(o)) => Some(RemoteRec {
            remote_id: text(o.get("remoteId")),
            version: text(o.get("version")),
        }),
        Some(_) => {
            return Err(CoreError::CorruptRow {
                key,
                reason: format!("the entry of {connection} is neither an id nor a record"),
            })
        }
    })
}

/// Record the id an object has at a connection.
pub(crate) fn put_remote(
    tx: &mut Tx<'_>,
    connection: &str,
    t: ObjectType,
    id: &str,
    rec: RemoteRec,
) -> Result<(), CoreError> {
    let key = keys::remote(t, id);
    let mut map = remotes(tx, &key)?;
    let entry = match rec {
        RemoteRec {
            remote_id: Some(s),
            version: None,
        } => Value::String(s),
        RemoteRec { remote_id, version } => {
            let mut o = Map::new();
            o.insert(
                "remoteId".into(),
                remote_id.map_or(Value::Null, Value::String),
            );
            if let Some(v) = version {
                o.insert("version".into(), Value::String(v));
            }
            Value::Object(o)
        }
    };
    map.insert(keys::id_in_key(connection), entry);
    tx.put(key, Value::Object(map).to_string());
    Ok(())
}

/// After an object was deleted (and its delete push planned): keep its last version while an
/// unfinished push sends it, or drop its remote ids when no push of it is unfinished.
pub(crate) fn after_delete(
    tx: &mut Tx<'_>,
    t: ObjectType,
    id: &str,
    version: u64,
    text: String,
) -> Result<(), CoreError> {
    let list = chain_list(tx, &keys::chain(id))?;
    if list.is_empty() {
        tx.delete(keys::remote(t, id));
    } else if chain_tasks(tx, &list, t, id)?
        .iter()
        .any(|x| x.version == version)
    {
        tx.put(keys::kept_version(t, id, version), text);
    }
    Ok(())
}

/// Forget the id an object has at a connection (its delete push succeeded).
pub(crate) fn drop_remote(
    tx: &mut Tx<'_>,
    connection: &str,
    t: ObjectType,
    id: &str,
) -> Result<(), CoreError> {
    let key = keys::remote(t, id);
    let mut map = remotes(tx, &key)?;
    if map.remove(&keys::id_in_key(connection)).is_some() {
        if map.is_empty() {
            tx.delete(key);
        } else {
            tx.put(key, Value::Object(map).to_string());
        }
    }
    Ok(())
}

/// The connections where an object has a remote id.
pub(crate) fn remote_connections(
    tx: &Tx<'_>,
    t: ObjectType,
    id: &str,
) -> Result<Vec<String>, CoreError> {
    let key = keys::remote(t, id);
    let mut out = Vec::new();
    for (k, v) in remotes(tx, &key)? {
        let holds = match v {
            Value::String(_) => true,
            Value::Object(o) => o.get("remoteId").is_some_and(Value::is_string),
            _ => false,
        };
        if holds {
            out.push(keys::id_from_key(&k).ok_or_else(|| CoreError::CorruptRow {
                key: key.clone(),
                reason: format!("{k:?} is not a connection id"),
            })?);
        }
    }
    Ok(out)
}

/// The objects (customers, vendors, accounts) a stored object refers to, each once, with the
/// JSON Pointer of the first field that names it, read from an object's stored text (an
/// update's previous version, the migrations); the write path reads the same from the typed
/// object (`writes::Refers`). Only invoices and expenses refer to them.
pub(crate) fn references_of(t: ObjectType, text: &str) -> Refs {
    let mut out = Refs::new();
    if !matches!(t, ObjectType::Invoice | ObjectType::Expense) {
        return out;
    }
    // The borrowed parse (no owned tree): this reads the stored text of an update's previous
    // version and, in a migration, every object.
    let Ok(v) = crate::json::Json::parse(text) else {
        return out;
    };
    use crate::json::Json;
    add_ref(
        &mut out,
        ObjectType::Customer,
        v.get("customerId").and_then(Json::as_str),
        || "/customerId".into(),
    );
    add_ref(
        &mut out,
        ObjectType::Vendor,
        v.get("vendorId").and_then(Json::as_str),
        || "/vendorId".into(),
    );
    if let Some(Json::Array(lines)) = v.get("lines") {
        for (i, l) in lines.iter().enumerate() {
            add_ref(
                &mut out,
                ObjectType::Account,
                l.get("accountId").and_then(Json::as_str),
                || format!("/lines/{i}/accountId"),
            );
        }
    }
    out
}

/// The objects an object refers to: `(type, id, pointer of the referring field)`, each
/// referred object once (its first field).
pub(crate) type Refs = Vec<(ObjectType, String, String)>;

/// Add a reference to `out` unless the object is already there.
pub(crate) fn add_ref(
    out: &mut Refs,
    rt: ObjectType,
    id: Option<&str>,
    pointer: impl FnOnce() -> String,
) {
    if let Some(rid) = id {
        if !out.iter().any(|(ot, oid, _)| *ot == rt && oid == rid) {
            out.push((rt, rid.to_string(), pointer()));
        }
    }
}

/// Bring the reverse reference index of object `(t, id)` from its stored text `old` (`None`:
/// absent) to the references `new` (of the object as it is written; none for a delete).
pub(crate) fn set_references(
    tx: &mut Tx<'_>,
    t: ObjectType,
    id: &str,
    old: Option<&str>,
    new: Refs,
) {
    let old = old.map(|o| references_of(t, o)).unwrap_or_default();
    for (rt, rid, _) in &old {
        if !new.iter().any(|(nt, nid, _)| nt == rt && nid == rid) {
            tx.delete(keys::referrer(*rt, rid, t, id));
        }
    }
    for n @ (rt, rid, p) in &new {
        if !old.contains(n) {
            tx.put(keys::referrer(*rt, rid, t, id), json_string(p));
        }
    }
}

/// One object that refers to `(t, id)`: `(type, id, pointer)`.
pub(crate) fn first_referrer(
    tx: &Tx<'_>,
    t: ObjectType,
    id: &str,
) -> Result<Option<(ObjectType, String, String)>, CoreError> {
    let prefix = keys::referrers(t, id);
    let Some((k, v)) = tx.scan(&prefix, 0, 1)?.into_iter().next() else {
        return Ok(None);
    };
    let parsed = k[prefix.len()..]
        .split_once('/')
        .and_then(|(ty, rid)| Some((ObjectType::parse(ty)?, keys::id_from_key(rid)?)));
    match parsed {
        Some((rt, rid)) => {
            let pointer = serde_json::from_str::<String>(&v).unwrap_or_default();
            Ok(Some((rt, rid, pointer)))
        }
        None => Err(CoreError::CorruptRow {
            key: k,
            reason: "not a reference entry".into(),
        }),
    }
}

/// Index the references of up to `limit` stored objects from `offset` (in key order); answers
/// how many objects were read. Indexing an object twice writes the same entries.
pub(crate) fn index_references(
    tx: &mut Tx<'_>,
    store: &dyn KvRead,
    offset: usize,
    limit: usize,
) -> Result<usize, CoreError> {
    let rows = store.scan(keys::OBJECTS, offset, limit)?;
    for (k, text) in &rows {
        let mut parts = k[keys::OBJECTS.len()..].splitn(3, '/');
        if let (Some(_account), Some(ty), Some(id)) = (parts.next(), parts.next(), parts.next()) {
            if let Some(t) = ObjectType::parse(ty) {
                set_references(tx, t, id, None, references_of(t, text));
            }
        }
    }
    Ok(rows.len())
}
