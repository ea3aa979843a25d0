//! The data API's reads: stored objects, lists of them, syncs, and what an object type is
//! made of and what each connection requires of it (`GET /api/meta/{objectType}`).

use serde::Serialize;
use serde_json::Value;

use super::command::{DataOp, Page, Reply, SyncFilter};
use super::plan::connections_and_filter;
use super::state::{id_time_ms, Engine};
use super::stored;
use super::views::sync_json;
use super::vocab::{fail, Ctx, H};
use crate::cdm::ObjectType;
use crate::connectors::{has_setting, ConnectorKind, Needs};
use crate::http::ProblemKind;
use crate::records::*;
use crate::routing::{parse_sync_sources, SourceFilter};
use crate::util::time::parse_rfc3339_millis;
use crate::validate::meta::{fields, FieldSpec};

/// The answer of `GET /api/meta/{objectType}` (`MetaAnswer` in the OpenAPI document).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MetaAnswer<'a> {
    object_type: ObjectType,
    fields: Vec<FieldSpec>,
    connections: Vec<MetaConnection<'a>>,
}

/// One connection in a [`MetaAnswer`].
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MetaConnection<'a> {
    id: &'a str,
    app: &'a str,
    #[serde(rename = "type")]
    app_type: &'a str,
    connector: ConnectorKind,
    /// Whether the connection receives the type.
    receives: bool,
    /// The fields its connector requires beyond the CDM (the table its write-time check reads).
    requires: Vec<&'static str>,
    /// The CDM fields its connector does not carry.
    ignores: &'static [&'static str],
    /// The settings its connector needs for the type that the connection lacks: a write
    /// naming it is `422` at `""` until they are set.
    missing_settings: Vec<&'static str>,
}

/// `GET /api/meta/{objectType}`: the type's fields, and for each of the account's connections
/// (narrowed by `sources` as `X-Sync-Sources` narrows targets; a bad list is `400`) whether it
/// receives the type, what its connector requires and what it does not carry.
pub(crate) fn meta(
    engine: &mut Engine,
    ctx: &Ctx<'_>,
    account: &AccountRec,
    object: ObjectType,
    sources: Option<&str>,
) -> H<Reply> {
    let (connections, _) = connections_and_filter(engine, ctx, account, None)?;
    let filter = match sources {
        None => SourceFilter::All,
        Some(list) => {
            let apps: Vec<&str> = connections.iter().map(|c| c.app.as_str()).collect();
            match parse_sync_sources(list, &apps) {
                Ok(f) => f,
                Err(e) => return fail(ProblemKind::InvalidQuery, format!("sources: {e}")),
            }
        }
    };
    let connections = connections
        .iter()
        .filter(|c| filter.allows(&c.app, &c.app_type))
        .map(|c| {
            let connector = c.connector.connector();
            let receives = c.objects.contains(&object);
            let (needs, ignores) = if receives {
                (
                    connector.needs(object, &c.settings),
                    connector.ignores(object, &c.settings),
                )
            } else {
                (Needs::default(), &[][..])
            };
            MetaConnection {
                id: &c.id,
                app: &c.app,
                app_type: &c.app_type,
                connector: c.connector,
                receives,
                requires: needs.fields.iter().map(|(p, _)| *p).collect(),
                ignores,
                missing_settings: needs
                    .settings
                    .iter()
                    .copied()
                    .filter(|s| !has_setting(&c.settings, s))
                    .collect(),
            }
        })
        .collect();
    let answer = MetaAnswer {
        object_type: object,
        fields: fields(object),
        connections,
    };
    Ok(Reply::text(
        200,
        crate::json::to_text(&answer, 256).unwrap_or_default(),
    ))
}

/// Carry out a read (the caller may read).
pub(crate) fn execute(
    ctx: &Ctx<'_>,
    account: &AccountRec,
    op: &DataOp<'_>,
    sync_retention_ms: u64,
) -> H<Reply> {
    match *op {
        DataOp::GetSync { id } => match stored::get_sync(&ctx.tx, id)? {
            Some(s) if s.account_id == account.id => Ok(Reply::json(200, &sync_json(&s))),
            Some(_) => fail(ProblemKind::NotFound, "no such sync"),
            None => match id_time_ms(id) {
                // The id says when the sync was made: past the window, a finished sync is
                // pruned (an unfinished one never is, so it would have been found).
                Some(ms) if ms <= ctx.now.saturating_sub(clamp_ms(sync_retention_ms)) => fail(
                    ProblemKind::NotFound,
                    format!(
                        "sync {id} expired: a finished sync is kept for {} after it was made",
                        describe_ms(sync_retention_ms)
                    ),
                ),
                _ => fail(ProblemKind::NotFound, "no such sync"),
            },
        },
        DataOp::ListSyncs { ref filter, page } => list_syncs(ctx, account, filter, page),
        DataOp::List { object, page } => {
            let rows = ctx.tx.scan(
                &keys::objects(&account.id, object),
                page.offset(),
                page.size,
            )?;
            let mut out =
                String::with_capacity(rows.iter().map(|(_, v)| v.len() + 1).sum::<usize>() + 2);
            out.push('[');
            for (i, (_, v)) in rows.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(v);
            }
            out.push(']');
            Ok(Reply::text(200, out))
        }
        DataOp::Get { object, id } => {
            let v = load_object(ctx, account, object, id)?;
            let version = v.get("version").and_then(Value::as_u64).unwrap_or(0);
            let mut reply = Reply::json(200, &v);
            reply.etag = Some(version);
            Ok(reply)
        }
        _ => fail(ProblemKind::NotFound, "no such route"),
    }
}

/// How many index entries of an account's syncs one filtered `GET /api/syncs` examines at
/// most (and so how many sync rows it reads at most).
pub(crate) const MAX_SYNC_SCAN: usize = 10_000;

/// Index entries read per scan of the sync index.
const SYNC_SCAN_CHUNK: usize = 200;

/// A page of the account's syncs, newest first (in id order: ids are time-ordered and never
/// go back), through the index `sx/{account}/...`. Without filters the page is read
/// straight from the index. With filters the index is walked newest first from `until`
/// ([`seek_until`]), each sync read and tested, and the walk ends at the first id made before
/// `since` (an id's time is never before its sync's `createdAt`, so nothing after it can
/// match); at most [`MAX_SYNC_SCAN`]
/// entries are examined, after which a page that is still not full is `400` asking for a
/// narrower range.
fn list_syncs(ctx: &Ctx<'_>, account: &AccountRec, f: &SyncFilter, page: Page) -> H<Reply> {
    let prefix = keys::account_syncs(&account.id);
    let filtered = f.reads_rows() || f.since_ms.is_some() || f.until_ms.is_some();
    let (mut skip, mut out) = (page.offset(), Vec::new());
    let start = match f.until_ms {
        Some(until) => seek_until(ctx, &prefix, until)?,
        None => 0,
    };
    let mut examined = 0usize;
    'scan: loop {
        let (offset, limit) = if filtered {
            (start + examined, SYNC_SCAN_CHUNK)
        } else {
            (skip, page.size)
        };
        let chunk = ctx.tx.scan(&prefix, offset, limit)?;
        let full = chunk.len() == limit;
        for (_, v) in chunk {
            if out.len() == page.size {
                break 'scan;
            }
            if filtered && examined == MAX_SYNC_SCAN {
                return fail(
                    ProblemKind::InvalidQuery,
                    format!("the filters are tested on at most {MAX_SYNC_SCAN} syncs per request and that was not enough for this page; narrow the range with since and until"),
                );
            }
            examined += 1;
            let id = keys::id_of_value(&v).unwrap_or_default();
            // An id's time is never before its sync's creation (ids are made monotonic), and
            // the index is in id order: past `since` nothing older can match.
            if id_time_ms(&id).is_some_and(|ms| f.since_ms.is_some_and(|s| ms < s)) {
                break 'scan;
            }
            let Some(sync) = stored::get_sync(&ctx.tx, &id)? else {
                continue;
            };
            if !sync_matches(&sync, f) {
                continue;
            }
            if filtered && skip > 0 {
                skip -= 1;
                continue;
            }
            out.push(sync_json(&sync));
        }
        if !filtered || !full {
            break;
        }
    }
    Ok(Reply::json(200, &Value::Array(out)))
}

/// The offset in the index of the first sync whose id was made at or before `until`: ids are
/// in time order, so an exponential then binary search over offsets finds it in about
/// 2 log2(n) one-entry reads. (An id's time is its sync's `createdAt` unless the host's clock
/// went back, when ids keep the last time: such a sync may be passed over by `until`.)
fn seek_until(ctx: &Ctx<'_>, prefix: &str, until: i64) -> H<usize> {
    let newer = |offset: usize| -> H<bool> {
        Ok(ctx
            .tx
            .scan(prefix, offset, 1)?
            .first()
            .is_some_and(|(_, v)| {
                let id = keys::id_of_value(v).unwrap_or_default();
                id_time_ms(&id).is_some_and(|ms| ms > until)
            }))
    };
    let (mut lo, mut step) = (0usize, 1usize);
    let mut hi = loop {
        let probe = lo.saturating_add(step - 1);
        if !newer(probe)? {
            break probe;
        }
        lo = probe + 1;
        step = step.saturating_mul(2);
    };
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if newer(mid)? {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// Whether a sync passes every filter.
fn sync_matches(s: &SyncRec, f: &SyncFilter) -> bool {
    let created = parse_rfc3339_millis(&s.created_at);
    let objects = || s.objects.iter().chain(std::iter::once(&s.object));
    f.tracking_id
        .as_ref()
        .is_none_or(|t| s.tracking_id.as_ref() == Some(t))
        && f.status.is_none_or(|st| s.status == st)
        && f.object_type
            .is_none_or(|t| objects().any(|o| o.object_type == t))
        && f.object_id
            .as_ref()
            .is_none_or(|id| objects().any(|o| &o.id == id))
        && f.app
            .as_ref()
            .is_none_or(|a| s.targets.iter().any(|t| t.app.eq_ignore_ascii_case(a)))
        && f.since_ms
            .is_none_or(|since| created.is_some_and(|c| c >= since))
        && f.until_ms
            .is_none_or(|until| created.is_some_and(|c| c <= until))
}

/// A stored object as JSON (`404` when there is none).
pub(crate) fn load_object(
    ctx: &Ctx<'_>,
    account: &AccountRec,
    t: ObjectType,
    id: &str,
) -> H<Value> {
    if !id.contains('/') {
        if let Some(v) = ctx
            .tx
            .get_json::<Value>(&keys::object(&account.id, t, id))?
        {
            return Ok(v);
        }
    }
    fail(
        ProblemKind::NotFound,
        format!("no {} with id {id}", t.as_str()),
    )
}

fn clamp_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// `30 days`, or `1500 ms` when not a whole number of days.
fn describe_ms(ms: u64) -> String {
    const DAY: u64 = 86_400_000;
    match ms / DAY {
        n if n > 0 && ms.is_multiple_of(DAY) => format!("{n} day{}", if n == 1 { "" } else { "s" }),
        _ => format!("{ms} ms"),
    }
}
