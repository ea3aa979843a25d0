//! Every input the fuzzers ever crashed on, and a minimized corpus that covers the parsers
//! (`fuzz/crashers/<target>/`, see `fuzz/crashers/README.md`), is replayed here through the
//! same target bodies the fuzzers run; a target whose folder is missing or nearly empty fails
//! the test, so the replay cannot silently replay nothing. Each target's body also runs on a
//! few hundred seeded random inputs so that the harness itself is tested without nightly.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use writesync_tests::fuzzing::{fuzz_engine, fuzz_request, fuzz_validators};

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 3] = [
    ("request", fuzz_request),
    ("validators", fuzz_validators),
    ("engine", fuzz_engine),
];

/// Fewer files than this in a target's folder means the corpus was lost or never committed.
const MIN_FILES_PER_TARGET: usize = 5;

/// `fuzz/crashers/` at the root of the repository.
fn crashers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fuzz")
        .join("crashers")
}

/// The input files of one target's folder (dot files such as `.keep` are not inputs), sorted.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e} (the crash corpus is missing)", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn saved_crashers_do_not_crash_any_more() {
    let root = crashers_dir();
    let mut failed = Vec::new();
    let mut counts = Vec::new();
    for (name, target) in TARGETS {
        let files = inputs(&root.join(name));
        for path in &files {
            let data = std::fs::read(path).unwrap();
            if catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
                failed.push(path.display().to_string());
            }
        }
        counts.push((name, files.len()));
    }
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    eprintln!("replayed {total} saved inputs: {counts:?}");
    assert!(failed.is_empty(), "these saved inputs crash: {failed:#?}");
    for (name, n) in counts {
        assert!(
            n >= MIN_FILES_PER_TARGET,
            "fuzz/crashers/{name}/ holds {n} inputs, fewer than {MIN_FILES_PER_TARGET}"
        );
    }
}

/// xorshift64*: deterministic bytes for the smoke runs.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

#[test]
fn targets_survive_seeded_random_inputs() {
    for (i, (_, target)) in TARGETS.iter().enumerate() {
        let runs = if i == 2 { 40 } else { 200 };
        for seed in 0..runs {
            target(&bytes(
                seed + 1000 * i as u64,
                64 + (seed as usize * 37) % 2000,
            ));
        }
    }
}
