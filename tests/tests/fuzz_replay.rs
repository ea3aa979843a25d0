//! Every input the fuzzers ever crashed on (`tests/vectors/crashers/<target>/`) is replayed
//! here, and each target's body runs on a few hundred seeded random inputs so that the harness
//! itself is tested without nightly.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use writesync_tests::fuzzing::{fuzz_engine, fuzz_request, fuzz_validators};
use writesync_tests::vectors_dir;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 3] = [
    ("request", fuzz_request),
    ("validators", fuzz_validators),
    ("engine", fuzz_engine),
];

#[test]
fn saved_crashers_do_not_crash_any_more() {
    let mut replayed = 0;
    for (name, target) in TARGETS {
        let dir = vectors_dir().join("crashers").join(name);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
            {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            target(&data);
            replayed += 1;
        }
    }
    eprintln!("replayed {replayed} saved crash inputs");
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
