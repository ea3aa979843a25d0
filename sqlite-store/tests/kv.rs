//! Key-value semantics of SqliteStore: identical to MemoryStore, atomic, durable.
// Helpers outside #[test] functions unwrap too (clippy.toml covers only the test functions):
// a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::time::Duration;

use common::TempDb;
use quickcheck::{Arbitrary, Gen, QuickCheck};
use writesync_core::{Batch, CoreError, KvRead, MemoryStore, Storage};
use writesync_sqlite::{SqliteStore, StoreOptions, Synchronous};

/// Keys chosen to break naive implementations: LIKE wildcards, separators, multi-byte UTF-8,
/// the surrogate gap, the last code point, embedded NUL, prefixes of each other.
const KEYS: &[&str] = &[
    "",
    "a",
    "a/",
    "a/1",
    "a/10",
    "a/2",
    "a%",
    "a%b",
    "a_",
    "a_b",
    "aB",
    "ab",
    "a\u{10FFFF}",
    "a\u{10FFFF}x",
    "a\u{10FFFF}\u{10FFFF}",
    "b",
    "x",
    "x\0",
    "x\0y",
    "é",
    "é/x",
    "日本/語",
    "🦀/🦀",
    "\u{7F}",
    "\u{80}",
    "\u{D7FF}",
    "\u{D7FF}z",
    "\u{E000}",
    "\u{FFFD}",
    "\u{FFFF}",
    "\u{10000}",
    "\u{10FFFF}",
    "\u{10FFFF}\u{10FFFF}",
    "%",
    "_",
    "/",
    "//",
    "due/0000000000000001/t/1",
    "due/0000000000000002/d/2",
];

fn all(s: &dyn KvRead) -> Vec<(String, String)> {
    s.scan("", 0, usize::MAX).unwrap()
}

fn filled() -> (TempDb, SqliteStore, MemoryStore) {
    let db = TempDb::new("kv");
    let mut sql = SqliteStore::open(db.path()).unwrap();
    let mut mem = MemoryStore::new();
    let mut b = Batch::new();
    for (i, k) in KEYS.iter().enumerate() {
        b.put(*k, format!("{{\"i\":{i},\"k\":{}}}", serde_json::json!(k)));
    }
    sql.apply(&b).unwrap();
    mem.apply(&b).unwrap();
    (db, sql, mem)
}

fn prefixes() -> Vec<String> {
    let mut out: Vec<String> = vec![
        "zzz".into(),
        "\u{D7FF}".into(),
        "\u{E000}".into(),
        "a\u{10FFFF}".into(),
        "\u{10FFFF}".into(),
        "\u{10FFFF}\u{10FFFF}\u{10FFFF}".into(),
        "c".into(),
    ];
    for k in KEYS {
        let chars: Vec<char> = k.chars().collect();
        for n in 0..=chars.len() {
            out.push(chars[..n].iter().collect());
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn get_and_scan_match_memory_store() {
    let (_db, sql, mem) = filled();
    assert_eq!(all(&sql), all(&mem));
    for k in KEYS
        .iter()
        .copied()
        .chain(["nope", "a/3", "x\0z", "\u{10FFFF}x"])
    {
        assert_eq!(sql.get(k).unwrap(), mem.get(k).unwrap(), "get {k:?}");
    }
    let counts = [0, 1, 2, 3, 7, 100, usize::MAX];
    for p in prefixes() {
        assert_eq!(
            sql.first_key(&p).unwrap(),
            mem.first_key(&p).unwrap(),
            "first {p:?}"
        );
        for offset in counts {
            for limit in counts {
                assert_eq!(
                    sql.scan(&p, offset, limit).unwrap(),
                    mem.scan(&p, offset, limit).unwrap(),
                    "scan {p:?} offset {offset} limit {limit}"
                );
            }
        }
    }
    // Spot checks of what "matching" means.
    let keys = |v: Vec<(String, String)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(
        keys(sql.scan("a/", 0, 10).unwrap()),
        ["a/", "a/1", "a/10", "a/2"]
    );
    assert_eq!(keys(sql.scan("a%", 0, 10).unwrap()), ["a%", "a%b"]);
    assert_eq!(keys(sql.scan("a_", 0, 10).unwrap()), ["a_", "a_b"]);
    assert_eq!(
        keys(sql.scan("a\u{10FFFF}", 0, 10).unwrap()),
        ["a\u{10FFFF}", "a\u{10FFFF}x", "a\u{10FFFF}\u{10FFFF}"]
    );
    assert_eq!(
        keys(sql.scan("\u{10FFFF}", 1, 10).unwrap()),
        ["\u{10FFFF}\u{10FFFF}"]
    );
    assert_eq!(keys(sql.scan("x\0", 0, 10).unwrap()), ["x\0", "x\0y"]);
}

#[test]
fn puts_replace_and_deletes_remove() {
    let db = TempDb::new("replace");
    let mut s = SqliteStore::open(db.path()).unwrap();
    let mut b = Batch::new();
    b.put("k", "1");
    b.put("k", "2");
    b.delete("gone");
    b.put("gone", "x");
    b.delete("gone");
    s.apply(&b).unwrap();
    assert_eq!(s.get("k").unwrap().as_deref(), Some("2"));
    assert_eq!(s.get("gone").unwrap(), None);
    s.apply(&Batch::new()).unwrap();
    assert_eq!(all(&s).len(), 1);
}

#[derive(Clone, Debug)]
struct Key(String);

impl Arbitrary for Key {
    fn arbitrary(g: &mut Gen) -> Self {
        const ALPHABET: &[char] = &[
            'a',
            'b',
            '/',
            '%',
            '_',
            'é',
            '\0',
            '\u{7F}',
            '\u{D7FF}',
            '\u{E000}',
            '\u{FFFF}',
            '\u{10FFFF}',
        ];
        let len = usize::arbitrary(g) % 5;
        Key((0..len)
            .map(|_| *g.choose(ALPHABET).unwrap_or(&'a'))
            .collect())
    }
}

#[derive(Clone, Debug)]
enum TestOp {
    Put(Key, u8),
    Delete(Key),
}

impl Arbitrary for TestOp {
    fn arbitrary(g: &mut Gen) -> Self {
        if u8::arbitrary(g) % 4 == 0 {
            TestOp::Delete(Key::arbitrary(g))
        } else {
            TestOp::Put(Key::arbitrary(g), u8::arbitrary(g))
        }
    }
}

thread_local! {
    /// One database for every quickcheck case (emptied between cases): creating a file per
    /// case would spend the test's time in fsyncs.
    static QC_STORE: std::cell::RefCell<Option<(TempDb, SqliteStore)>> =
        const { std::cell::RefCell::new(None) };
}

fn same_after_random_batches(batches: Vec<Vec<TestOp>>, probes: Vec<(Key, u8, u8)>) -> bool {
    QC_STORE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let (_, sql) = slot.get_or_insert_with(|| {
            let db = TempDb::new("qc");
            let store = SqliteStore::open(db.path()).unwrap();
            (db, store)
        });
        let mut clear = Batch::new();
        for (k, _) in all(sql) {
            clear.delete(k);
        }
        sql.apply(&clear).unwrap();
        same_contents(sql, batches, probes)
    })
}

fn same_contents(
    sql: &mut SqliteStore,
    batches: Vec<Vec<TestOp>>,
    probes: Vec<(Key, u8, u8)>,
) -> bool {
    let mut mem = MemoryStore::new();
    for ops in batches {
        let mut b = Batch::new();
        for op in ops {
            match op {
                TestOp::Put(k, v) => b.put(k.0, format!("\"{v}\"")),
                TestOp::Delete(k) => b.delete(k.0),
            }
        }
        sql.apply(&b).unwrap();
        mem.apply(&b).unwrap();
    }
    if all(sql) != all(&mem) {
        return false;
    }
    probes.into_iter().all(|(p, offset, limit)| {
        let (o, l) = (usize::from(offset % 8), usize::from(limit % 8));
        sql.scan(&p.0, o, l).unwrap() == mem.scan(&p.0, o, l).unwrap()
            && sql.first_key(&p.0).unwrap() == mem.first_key(&p.0).unwrap()
            && sql.get(&p.0).unwrap() == mem.get(&p.0).unwrap()
    })
}

#[test]
fn random_batches_leave_the_same_contents_as_memory() {
    QuickCheck::new()
        .tests(100)
        .rng(Gen::new(20))
        .quickcheck(same_after_random_batches as fn(Vec<Vec<TestOp>>, Vec<(Key, u8, u8)>) -> bool);
}

#[test]
fn a_batch_failing_midway_leaves_nothing() {
    let db = TempDb::new("atomic");
    let mut s = SqliteStore::open(db.path()).unwrap();
    let mut first = Batch::new();
    first.put("keep", "1");
    s.apply(&first).unwrap();
    // Another connection adds a trigger that makes the 4th operation fail.
    let other = refuse_boom(db.path());
    let mut b = Batch::new();
    b.put("a", "1");
    b.delete("keep");
    b.put("b", "2");
    b.put("boom", "3");
    b.put("c", "4");
    let err = s.apply(&b).unwrap_err();
    assert!(
        matches!(&err, CoreError::Storage { message, .. } if message.contains("boom refused")),
        "{err}"
    );
    assert_eq!(all(&s), vec![("keep".to_string(), "1".to_string())]);
    // The transaction is gone, not left open: the store keeps working, and another
    // connection sees the same.
    let mut ok = Batch::new();
    ok.put("z", "9");
    s.apply(&ok).unwrap();
    let n: i64 = other
        .query_row("SELECT count(*) FROM kv", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
    drop(s);
    let s = SqliteStore::open(db.path()).unwrap();
    assert_eq!(s.get("a").unwrap(), None);
    assert_eq!(s.get("keep").unwrap().as_deref(), Some("1"));
}

/// A second connection to the file, after installing a trigger that makes SQLite refuse any
/// insert of the key `boom` ("boom refused"): a write that fails midway, on demand.
fn refuse_boom(path: &std::path::Path) -> rusqlite::Connection {
    let other = rusqlite::Connection::open(path).unwrap();
    other
        .execute_batch(
            "CREATE TRIGGER fail_on_boom BEFORE INSERT ON kv WHEN NEW.key = 'boom'
             BEGIN SELECT RAISE(ABORT, 'boom refused'); END;",
        )
        .unwrap();
    other
}

#[test]
fn a_sqlite_failure_keeps_sqlites_error_as_the_source() {
    use std::error::Error as _;
    let db = TempDb::new("source");
    let mut s = SqliteStore::open(db.path()).unwrap();
    refuse_boom(db.path());
    let mut b = Batch::new();
    b.put("boom", "1");
    let err = s.apply(&b).unwrap_err();
    // The text is the one the engine has always reported (and put in 503 details) ...
    let CoreError::Storage { message, .. } = &err else {
        panic!("not a storage error: {err:?}");
    };
    assert_eq!(err.to_string(), format!("storage error: {message}"));
    // ... and SQLite's own error is kept behind it, for hosts that look.
    let source = err.source().expect("a SQLite failure has a source");
    let sqlite = source
        .downcast_ref::<rusqlite::Error>()
        .expect("the source is rusqlite's error");
    assert!(
        matches!(
            sqlite.sqlite_error_code(),
            Some(rusqlite::ErrorCode::ConstraintViolation)
        ),
        "{sqlite:?}"
    );
    assert_eq!(*message, format!("sqlite: {sqlite}"));
    assert!(message.contains("boom refused"), "{message}");
}

#[test]
fn a_batch_refused_by_a_busy_database_leaves_nothing_and_later_succeeds() {
    let db = TempDb::new("busy");
    let opts = StoreOptions::default().with_busy_timeout(Duration::from_millis(20));
    let mut s = SqliteStore::open_with(db.path(), &opts).unwrap();
    let other = rusqlite::Connection::open(db.path()).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut b = Batch::new();
    b.put("a", "1");
    b.put("b", "2");
    let err = s.apply(&b).unwrap_err();
    assert!(matches!(err, CoreError::Storage { .. }));
    // Readers are not blocked by the writer (WAL).
    assert_eq!(s.get("a").unwrap(), None);
    other.execute_batch("ROLLBACK").unwrap();
    s.apply(&b).unwrap();
    assert_eq!(all(&s).len(), 2);
}

#[test]
fn committed_batches_survive_close_and_reopen() {
    for sync in [Synchronous::Normal, Synchronous::Full] {
        let db = TempDb::new("durable");
        let opts = StoreOptions::default().with_synchronous(sync);
        let mut expected = MemoryStore::new();
        {
            let mut s = SqliteStore::open_with(db.path(), &opts).unwrap();
            for i in 0..20 {
                let mut b = Batch::new();
                b.put(format!("k/{i:02}"), format!("{{\"n\":{i}}}"));
                if i % 3 == 0 {
                    b.delete(format!("k/{:02}", i / 2));
                }
                s.apply(&b).unwrap();
                expected.apply(&b).unwrap();
            }
        }
        let s = SqliteStore::open_with(db.path(), &opts).unwrap();
        assert_eq!(all(&s), all(&expected));
    }
}

const CRASH_ENV: &str = "WRITESYNC_SQLITE_CRASH_DB";
const CRASH_COMMITS: usize = 200;

/// Run only as the child of `a_killed_process_loses_no_committed_transaction`: commit, then
/// die by SIGKILL without closing anything.
#[test]
#[ignore = "run by a_killed_process_loses_no_committed_transaction"]
fn crash_child_commits_then_dies() {
    let Ok(path) = std::env::var(CRASH_ENV) else {
        return;
    };
    let mut s = SqliteStore::open(&path).unwrap();
    for i in 0..CRASH_COMMITS {
        let mut b = Batch::new();
        b.put(format!("k/{i:04}"), "\"v\"");
        s.apply(&b).unwrap();
    }
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    std::process::abort();
}

#[test]
fn a_killed_process_loses_no_committed_transaction() {
    let db = TempDb::new("crash");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "crash_child_commits_then_dies",
            "--test-threads=1",
        ])
        .env(CRASH_ENV, db.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child must have been killed");
    let mut wal = db.path().as_os_str().to_owned();
    wal.push("-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert!(
        wal_len > 0,
        "the commits are in the WAL, not yet checkpointed"
    );
    let s = SqliteStore::open(db.path()).unwrap();
    let rows = all(&s);
    assert_eq!(rows.len(), CRASH_COMMITS);
    assert_eq!(rows.last().map(|(k, _)| k.as_str()), Some("k/0199"));
}

#[test]
fn a_unit_of_work_commits_its_batches_together_or_not_at_all() {
    let db = TempDb::new("unit");
    let mut s = SqliteStore::open(db.path()).unwrap();
    let batch = |k: &str| {
        let mut b = Batch::new();
        b.put(k, "1");
        b
    };
    {
        let mut unit = s.begin_write().unwrap();
        unit.apply(&batch("a")).unwrap();
        assert_eq!(unit.get("a").unwrap().as_deref(), Some("1"));
        unit.apply(&batch("b")).unwrap();
        // Dropped without commit.
    }
    assert!(all(&s).is_empty());

    let other = refuse_boom(db.path());
    let mut unit = s.begin_write().unwrap();
    unit.apply(&batch("a")).unwrap();
    let mut bad = batch("c");
    bad.put("boom", "2");
    assert!(unit.apply(&bad).is_err());
    // The failed batch left nothing of itself; the unit goes on.
    assert_eq!(unit.get("c").unwrap(), None);
    assert_eq!(unit.scan("", 0, 10).unwrap().len(), 1);
    unit.apply(&batch("b")).unwrap();
    unit.commit().unwrap();
    let keys: Vec<String> = all(&s).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["a", "b"]);

    // A read unit sees one snapshot even while another connection commits.
    let read = s.begin_read().unwrap();
    assert_eq!(read.scan("", 0, 10).unwrap().len(), 2);
    other
        .execute("INSERT INTO kv (key, value) VALUES ('d', '1')", [])
        .unwrap();
    assert_eq!(read.scan("", 0, 10).unwrap().len(), 2);
    read.commit().unwrap();
    assert_eq!(all(&s).len(), 3);
}

#[test]
fn a_single_write_unit_whose_batch_fails_midway_commits_nothing() {
    let db = TempDb::new("single");
    let mut s = SqliteStore::open(db.path()).unwrap();
    refuse_boom(db.path());
    let mut bad = Batch::new();
    bad.put("a", "1");
    bad.put("boom", "2");
    bad.put("c", "3");
    let mut unit = s.begin_single_write().unwrap();
    let e = unit.apply(&bad).unwrap_err();
    assert!(e.to_string().contains("boom refused"), "{e}");
    // The unit is spoilt: a later batch is refused, and commit rolls back.
    let mut later = Batch::new();
    later.put("d", "4");
    let e = unit.apply(&later).unwrap_err();
    assert!(e.to_string().contains("failed midway"), "{e}");
    let e = unit.commit().unwrap_err();
    assert!(e.to_string().contains("nothing committed"), "{e}");
    assert!(all(&s).is_empty(), "{:?}", all(&s));

    // The store stays usable, and a good single-write unit commits.
    let mut good = Batch::new();
    good.put("a", "1");
    good.put("b", "2");
    let mut unit = s.begin_single_write().unwrap();
    unit.apply(&good).unwrap();
    assert_eq!(unit.get("b").unwrap().as_deref(), Some("2"));
    unit.commit().unwrap();
    let keys: Vec<String> = all(&s).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["a", "b"]);
}
