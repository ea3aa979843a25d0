//! durable_write: the cost of the engine on a durable write, against raw rusqlite.
//!
//! - `engine`: the same 1 KB invoice create with `X-Sync-Data: push` to 2 connections,
//!   through `NativeEngine::handle` on a file database (WAL + `synchronous=NORMAL`). Only the
//!   invoice number changes between writes (it must be unique).
//! - `raw_rusqlite_outbox`: the minimal rows of a transactional outbox write, inserted with
//!   plain rusqlite into the same table, same pragmas, one `BEGIN IMMEDIATE` transaction per
//!   write, cached statements: the stored object (the engine's own object row, taken from one
//!   write planned against a `MemoryStore`), one 200-byte task row per target (2) and one
//!   300-byte sync row (sizes count key plus value). This is the floor any outbox design pays;
//!   the engine also authenticates, validates, checks uniqueness and keeps its indexes.
//!
//! Both run in the same process, one after the other; the summary prints the median
//! writes/s of each over criterion's measurement samples and their ratio (target >= 0.7).
//! Then both again, alternating in 15 rounds of 400 writes each: the median, lowest and highest
//! of the rounds' ratios, which a change in the machine's load during the run moves much less.
//!
//! `cargo bench -p writesync-sqlite --bench durable_write -- --warm-up-time 1 --measurement-time 5`
// A benchmark whose setup fails should stop loudly: unwrap/expect are fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rusqlite::{params, Connection, TransactionBehavior};
use serde_json::{json, Value};
use writesync_core::util::crypto::basic_auth_header;
use writesync_core::{ApiRequest, Engine, EngineConfig, MemoryStore, Op};
use writesync_sqlite::{schema, NativeEngine, SqliteStore};

const ADMIN: &str = "bench-admin-token";
const T0: i64 = 1_790_000_000_000;
const BODY_BYTES: usize = 1024;

/// The invoice body, padded to exactly `BODY_BYTES` of JSON for a fixed-width number.
fn invoice(customer_id: &str, number: u64) -> String {
    let make = |pad: usize| {
        json!({
            "number": format!("INV-{number:010}"),
            "customerId": customer_id,
            "issueDate": "2026-11-01",
            "dueDate": "2026-11-30",
            "currency": "EUR",
            "lines": [
                {"description": format!("Consulting, November {}", "x".repeat(pad)), "quantity": 12, "unitAmount": 15000, "taxAmount": 37800},
                {"description": "Travel expenses, Lyon and Grenoble, train and hotel", "quantity": 1, "unitAmount": 48250},
                {"description": "Software licence, annual, 25 seats", "quantity": 25, "unitAmount": 9900, "taxAmount": 49500},
                {"description": "Support retainer", "quantity": 1, "unitAmount": 120000}
            ]
        })
        .to_string()
    };
    let base = make(0).len();
    make(BODY_BYTES.saturating_sub(base))
}

/// Account, key with write scope, write mode on, two connections that receive invoices, one
/// customer: through the engine API, on any storage.
struct Tenant {
    auth: String,
    customer_id: String,
}

fn setup(handle: &mut dyn FnMut(&ApiRequest) -> writesync_core::ApiResponse) -> Tenant {
    let admin = |method: &str, path: &str, body: Value| {
        ApiRequest::new(method, path)
            .header("Authorization", &format!("Bearer {ADMIN}"))
            .json(&body)
    };
    let a = handle(&admin(
        "POST",
        "/admin/accounts",
        json!({"domain": "bench.example.com", "writeEnabled": true}),
    ));
    assert_eq!(a.status, 201, "{}", a.body);
    let id = a.body_json()["id"].as_str().unwrap().to_string();
    let k = handle(&admin(
        "POST",
        &format!("/admin/accounts/{id}/api-keys"),
        json!({"scopes": ["api.read", "api.write"]}),
    ));
    let kb = k.body_json();
    let auth = basic_auth_header(kb["key"].as_str().unwrap(), kb["secret"].as_str().unwrap());
    for (app, kind) in [("quickbooks", "accounting"), ("shopify", "commerce")] {
        let r = handle(&admin(
            "POST",
            &format!("/admin/accounts/{id}/connections"),
            json!({"app": app, "type": kind, "pushUrl": format!("https://{app}.example.com/push")}),
        ));
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let c = handle(
        &ApiRequest::new("POST", "/api/customers")
            .header("Authorization", &auth)
            .json(&json!({"name": "Acme Ltd", "email": "ap@acme.example.com"})),
    );
    assert_eq!(c.status, 201, "{}", c.body);
    Tenant {
        auth,
        customer_id: c.body_json()["id"].as_str().unwrap().to_string(),
    }
}

fn write_request(t: &Tenant, number: u64) -> ApiRequest {
    let mut r = ApiRequest::new("POST", "/api/invoices")
        .header("Authorization", &t.auth)
        .header("Content-Type", "application/json")
        .header("X-Sync-Data", "push");
    r.body = Some(invoice(&t.customer_id, number));
    r
}

fn config() -> EngineConfig {
    EngineConfig::new([42; 32]).with_admin_token(ADMIN)
}

/// The operations one engine write commits, from a write planned against a MemoryStore.
fn one_write_batch() -> Vec<Op> {
    let mut engine = Engine::new(config());
    let mut mem = MemoryStore::new();
    let t = setup(&mut |r| engine.handle_with(r, T0, &mut mem));
    let step = engine.handle(&write_request(&t, 1), T0, &mem);
    assert_eq!(step.response.status, 201, "{}", step.response.body);
    assert_eq!(
        step.response.headers["X-Sync-Targets"],
        "quickbooks,shopify"
    );
    step.batch.ops
}

/// A row of exactly `total` bytes (key plus value): `key` and a JSON string value padded.
fn sized_row(key: &str, total: usize) -> Op {
    let pad = total.saturating_sub(key.len() + 2);
    Op::Put {
        key: key.to_string(),
        value: format!("\"{}\"", "x".repeat(pad)),
    }
}

/// The baseline's rows for one write: the engine's object row, one 200-byte task row per
/// target, one 300-byte sync row.
fn outbox_rows(engine_ops: &[Op], targets: usize) -> Vec<Op> {
    let object = engine_ops
        .iter()
        .find(|op| matches!(op, Op::Put { key, .. } if key.starts_with("obj/")))
        .cloned()
        .expect("the write stores its object");
    let mut rows = vec![object];
    for t in 0..targets {
        rows.push(sized_row(
            &format!("task/0000000000000000000000000000000{t}"),
            200,
        ));
    }
    rows.push(sized_row("sync/00000000000000000000000000000000", 300));
    rows
}

/// The template key made unique for write `i`, keeping its length.
fn unique_key(key: &str, op: usize, i: u64) -> String {
    let tail = format!("{:02}{:010}", op % 100, i % 10_000_000_000);
    let cut = key.len().saturating_sub(tail.len());
    format!("{}{tail}", &key[..cut])
}

fn raw_connection(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.pragma_update(None, "synchronous", "NORMAL").unwrap();
    c.pragma_update(None, "foreign_keys", true).unwrap();
    c.execute_batch(schema::schema_sql(schema::CURRENT_VERSION).unwrap())
        .unwrap();
    c
}

fn raw_write(c: &mut Connection, template: &[Op], i: u64) {
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .unwrap();
    {
        let mut put = tx
            .prepare_cached(
                "INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .unwrap();
        let mut delete = tx.prepare_cached("DELETE FROM kv WHERE key = ?1").unwrap();
        for (n, op) in template.iter().enumerate() {
            match op {
                Op::Put { key, value } => put.execute(params![unique_key(key, n, i), value]),
                Op::Delete { key } => delete.execute(params![unique_key(key, n, i)]),
            }
            .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// (iterations, elapsed) of every call of a routine; criterion's measurement samples are the
/// last `sample_size` calls (the first ones are its warm-up).
type Samples = RefCell<Vec<(u64, Duration)>>;

fn median_rate(samples: &Samples, sample_size: usize) -> f64 {
    let s = samples.borrow();
    let measured = &s[s.len().saturating_sub(sample_size)..];
    let mut rates: Vec<f64> = measured
        .iter()
        .filter(|(_, d)| !d.is_zero())
        .map(|(n, d)| *n as f64 / d.as_secs_f64())
        .collect();
    rates.sort_by(f64::total_cmp);
    rates.get(rates.len() / 2).copied().unwrap_or(0.0)
}

/// WAL frames (pages) one write appends, over `WAL_WRITES` writes after a checkpoint that
/// empties the log: what a commit costs in I/O, independent of the machine's speed. Fewer than
/// `wal_autocheckpoint` (1,000) pages are written, so no checkpoint restarts the log meanwhile.
const WAL_WRITES: u64 = 40;

fn wal_frames_per_write(db: &Path, mut write: impl FnMut()) -> f64 {
    let c = Connection::open(db).unwrap();
    let page: i64 = c
        .pragma_query_value(None, "page_size", |r| r.get(0))
        .unwrap();
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    })
    .unwrap();
    let wal = db.with_extension("db-wal");
    let before = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    for _ in 0..WAL_WRITES {
        write();
    }
    let after = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    // A WAL frame is a 24-byte header and one page; the log's own header is 32 bytes.
    let header = if before == 0 { 32 } else { 0 };
    (after - before - header) as f64 / (page as f64 + 24.0) / WAL_WRITES as f64
}

fn bench_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("writesync-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `n` engine writes (invoice numbers and clock going on from `next_number` and `now`); the
/// time they took, the requests built beforehand.
fn engine_writes(
    app: &mut NativeEngine,
    tenant: &Tenant,
    next_number: &mut u64,
    now: &mut i64,
    n: u64,
) -> Duration {
    let requests: Vec<ApiRequest> = (0..n)
        .map(|_| {
            *next_number += 1;
            write_request(tenant, *next_number)
        })
        .collect();
    let start = Instant::now();
    for r in &requests {
        *now += 1;
        let answer = app.handle(r, *now);
        assert_eq!(answer.status, 201, "{}", answer.body);
        black_box(answer);
    }
    start.elapsed()
}

/// `n` raw outbox writes (keys made unique from `next_raw` on); the time they took.
fn raw_writes(raw: &mut Connection, template: &[Op], next_raw: &mut u64, n: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        *next_raw += 1;
        raw_write(raw, template, *next_raw);
    }
    start.elapsed()
}

/// Rounds of the alternating measurement, and writes per side and round.
const ROUNDS: usize = 15;
const ROUND_WRITES: u64 = 400;

fn durable_write(c: &mut Criterion) {
    const SAMPLE_SIZE: usize = 100;
    let dir = bench_dir();
    let engine_ops = one_write_batch();
    let template = outbox_rows(&engine_ops, 2);
    let size = |ops: &[Op]| -> usize {
        ops.iter()
            .map(|op| match op {
                Op::Put { key, value } => key.len() + value.len(),
                Op::Delete { key } => key.len(),
            })
            .sum()
    };
    let (engine_rows, engine_bytes) = (engine_ops.len(), size(&engine_ops));
    let (rows, bytes) = (template.len(), size(&template));

    let engine_db = dir.join("engine.db");
    SqliteStore::remove_files(&engine_db).unwrap();
    let mut app = NativeEngine::open(&engine_db, config()).unwrap();
    let tenant = setup(&mut |r| app.handle(r, T0));
    let raw_db = dir.join("raw.db");
    SqliteStore::remove_files(&raw_db).unwrap();
    let mut raw = raw_connection(&raw_db);

    let engine_samples = Samples::default();
    let raw_samples = Samples::default();
    let mut next_number = 1u64;
    let mut next_raw = 0u64;
    let mut now = T0;

    let mut group = c.benchmark_group("durable_write");
    group.sample_size(SAMPLE_SIZE);
    group.throughput(Throughput::Elements(1));
    group.bench_function("engine_invoice_push_2_connections", |b| {
        b.iter_custom(|iters| {
            let elapsed = engine_writes(&mut app, &tenant, &mut next_number, &mut now, iters);
            engine_samples.borrow_mut().push((iters, elapsed));
            elapsed
        })
    });
    group.bench_function("raw_rusqlite_outbox", |b| {
        b.iter_custom(|iters| {
            let elapsed = raw_writes(&mut raw, &template, &mut next_raw, iters);
            raw_samples.borrow_mut().push((iters, elapsed));
            elapsed
        })
    });
    group.finish();

    let engine_rate = median_rate(&engine_samples, SAMPLE_SIZE);
    let raw_rate = median_rate(&raw_samples, SAMPLE_SIZE);
    println!();
    println!(
        "durable_write summary (WAL + synchronous=NORMAL, file in {})",
        dir.display()
    );
    println!(
        "  one write = {}-byte invoice body; the engine commits {engine_rows} kv rows, {engine_bytes} bytes of keys and values",
        invoice("00000000-0000-0000-0000-000000000000", 1).len()
    );
    println!("  the outbox baseline commits {rows} rows, {bytes} bytes (object, 2 x 200-byte task, 300-byte sync)");
    // A benchmark left out by a name filter has no samples: say so rather than print 0.
    let rate = |r: f64| {
        if r > 0.0 {
            format!("{r:>9.0} writes/s")
        } else {
            format!("{:>9} (left out by the filter)", "-")
        }
    };
    println!("  engine (NativeEngine::handle):  {}", rate(engine_rate));
    println!("  raw rusqlite, minimal outbox:   {}", rate(raw_rate));
    if engine_rate > 0.0 && raw_rate > 0.0 {
        let ratio = engine_rate / raw_rate;
        println!(
            "  ratio engine/raw:               {ratio:>9.2}  (target >= 0.70: {})",
            if ratio >= 0.7 { "met" } else { "NOT met" }
        );
    }
    // The same two, alternating in short rounds: a change of the machine's load (other
    // builds on a shared machine) then hits both sides of each round's ratio alike.
    let mut round_ratios = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let engine_time =
            engine_writes(&mut app, &tenant, &mut next_number, &mut now, ROUND_WRITES);
        let raw_time = raw_writes(&mut raw, &template, &mut next_raw, ROUND_WRITES);
        round_ratios.push(raw_time.as_secs_f64() / engine_time.as_secs_f64().max(1e-9));
    }
    round_ratios.sort_by(f64::total_cmp);
    println!(
        "  alternating rounds ({ROUNDS} x {ROUND_WRITES} writes each): ratio engine/raw median {:.2} (min {:.2}, max {:.2})",
        round_ratios[ROUNDS / 2],
        round_ratios[0],
        round_ratios[ROUNDS - 1]
    );
    let engine_frames = wal_frames_per_write(&engine_db, || {
        next_number += 1;
        now += 1;
        let answer = app.handle(&write_request(&tenant, next_number), now);
        assert_eq!(answer.status, 201, "{}", answer.body);
    });
    let raw_frames = wal_frames_per_write(&raw_db, || {
        next_raw += 1;
        raw_write(&mut raw, &template, next_raw);
    });
    println!(
        "  WAL pages per write (I/O):      engine {engine_frames:.1}, outbox baseline {raw_frames:.1}"
    );

    drop(app);
    drop(raw);
    let _ = SqliteStore::remove_files(&engine_db);
    let _ = SqliteStore::remove_files(&raw_db);
    let _ = std::fs::remove_dir(&dir);
}

criterion_group!(benches, durable_write);
criterion_main!(benches);
