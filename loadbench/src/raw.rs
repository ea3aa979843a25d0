//! The raw SQLite baseline of plain writes: rusqlite inserting the rows that plain writes
//! commit, in transactions of as many writes as the server's group commit put in one, with the
//! store's settings (WAL, `synchronous=NORMAL`) and table. No HTTP, no engine, no reads: what
//! the disk and SQLite alone allow for the same rows.
//!
//! The rows are the engine's own: before the timed part, `writesync-core`'s engine plans the
//! same `POST /api/customers` requests the writers send (same body, `Idempotency-Key` and
//! `X-Tracking-ID`) against an in-memory store, and the rows of each write's batch are kept.

use std::time::Instant;

use rusqlite::{params, Connection, TransactionBehavior};
use serde_json::json;
use writesync_core::util::crypto::basic_auth_header;
use writesync_core::{ApiRequest, Batch, Engine, EngineConfig, MemoryStore, Op};

use crate::http::Error;
use crate::receiver::tracking_id;

const ADMIN: &str = "loadbench-raw-baseline-admin";
/// A fixed clock for the planning (the rows' times do not change their size).
const NOW_MS: i64 = 1_780_000_000_000;

/// What one write commits: its puts and deletes, in the engine's order.
pub(crate) struct WriteRows {
    ops: Vec<Op>,
}

/// What the baseline measured.
#[derive(Debug, Clone)]
pub(crate) struct RawRun {
    pub writes: usize,
    pub rows: usize,
    pub bytes: usize,
    pub per_transaction: usize,
    pub secs: f64,
}

impl RawRun {
    pub(crate) fn writes_per_sec(&self) -> f64 {
        self.writes as f64 / self.secs.max(1e-9)
    }
}

fn committed(engine: &mut Engine, store: &mut MemoryStore, r: &ApiRequest) -> (u16, Batch) {
    let step = engine.handle(r, NOW_MS, &*store);
    store.apply_batch(&step.batch);
    engine.finish(&step);
    (step.response.status, step.batch)
}

/// The rows of `writes` plain customer writes, as the engine plans them (untimed).
pub(crate) fn plain_rows(writes: usize) -> Result<Vec<WriteRows>, Error> {
    let mut engine = Engine::new(EngineConfig::new([7; 32]).with_admin_token(ADMIN));
    let mut store = MemoryStore::new();
    let admin = |method: &str, path: &str, body: serde_json::Value| {
        ApiRequest::new(method, path)
            .header("authorization", &format!("Bearer {ADMIN}"))
            .json(&body)
    };
    let (status, _) = committed(
        &mut engine,
        &mut store,
        &admin(
            "POST",
            "/admin/accounts",
            json!({"domain": "load.example.com", "writeEnabled": true}),
        ),
    );
    if status != 201 {
        return Err(format!("raw baseline: the account was answered {status}").into());
    }
    let account = store
        .entries()
        .find_map(|(_, v)| {
            let v: serde_json::Value = serde_json::from_str(v).ok()?;
            (v["domain"] == "load.example.com").then(|| v["id"].as_str().map(String::from))?
        })
        .ok_or("raw baseline: the account is not stored")?;
    let key_step = engine.handle(
        &admin(
            "POST",
            &format!("/admin/accounts/{account}/api-keys"),
            json!({"scopes": ["api.read", "api.write"], "name": "loadbench"}),
        ),
        NOW_MS,
        &store,
    );
    store.apply_batch(&key_step.batch);
    engine.finish(&key_step);
    let kb = key_step.response.body_json();
    let auth = basic_auth_header(
        kb["key"].as_str().ok_or("raw baseline: no key")?,
        kb["secret"].as_str().ok_or("raw baseline: no secret")?,
    );
    let mut out = Vec::with_capacity(writes);
    for i in 0..writes {
        let r = ApiRequest::new("POST", "/api/customers")
            .header("authorization", &auth)
            .header("idempotency-key", &format!("load-{i}"))
            .header("x-tracking-id", &tracking_id(i, 1_000_000 + i as u64))
            .json(&json!({"name": format!("Load customer {i}"), "email": "ap@load.example.com"}));
        let (status, batch) = committed(&mut engine, &mut store, &r);
        if status != 201 {
            return Err(format!("raw baseline: write {i} was answered {status}").into());
        }
        out.push(WriteRows { ops: batch.ops });
    }
    Ok(out)
}

/// Insert `rows` into a fresh database in `dir`, `per_transaction` writes per transaction;
/// only the inserting is timed.
pub(crate) fn insert(
    dir: &std::path::Path,
    rows: &[WriteRows],
    per_transaction: usize,
) -> Result<RawRun, Error> {
    let per_transaction = per_transaction.max(1);
    let mut conn = Connection::open(dir.join("raw.db"))?;
    // The store's settings (sqlite-store/src/store.rs `configure`) and its table.
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("raw baseline: journal mode {mode}, not WAL").into());
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let schema = writesync_sqlite::schema::schema_sql(writesync_sqlite::schema::CURRENT_VERSION)
        .ok_or("raw baseline: no schema SQL")?;
    conn.execute_batch(schema)?;
    // The store's own statements.
    const PUT: &str = "INSERT INTO kv (key, value) VALUES (?1, ?2) \
                       ON CONFLICT (key) DO UPDATE SET value = excluded.value";
    const DELETE: &str = "DELETE FROM kv WHERE key = ?1";
    let (mut count, mut bytes) = (0, 0);
    let started = Instant::now();
    for chunk in rows.chunks(per_transaction) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut put = tx.prepare_cached(PUT)?;
            let mut delete = tx.prepare_cached(DELETE)?;
            for w in chunk {
                for op in &w.ops {
                    match op {
                        Op::Put { key, value } => {
                            put.execute(params![key, value])?;
                            bytes += key.len() + value.len();
                        }
                        Op::Delete { key } => {
                            delete.execute(params![key])?;
                        }
                    }
                    count += 1;
                }
            }
        }
        tx.commit()?;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(RawRun {
        writes: rows.len(),
        rows: count,
        bytes,
        per_transaction,
        secs,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_rows_are_what_the_engine_stores_for_each_write() {
        let rows = plain_rows(3).unwrap();
        assert_eq!(rows.len(), 3);
        for (i, w) in rows.iter().enumerate() {
            let name = format!("Load customer {i}");
            assert!(w
                .ops
                .iter()
                .any(|op| matches!(op, Op::Put { value, .. } if value.contains(&name))));
        }
        let dir = tempfile::tempdir().unwrap();
        let run = insert(dir.path(), &rows, 2).unwrap();
        assert_eq!(run.writes, 3);
        assert_eq!(run.rows, rows.iter().map(|w| w.ops.len()).sum::<usize>());
        let conn = Connection::open(dir.path().join("raw.db")).unwrap();
        let stored: i64 = conn
            .query_row("SELECT count(*) FROM kv", [], |r| r.get(0))
            .unwrap();
        assert_eq!(usize::try_from(stored).unwrap(), run.rows);
    }
}
