//! The core benchmark's case (`benches/plan_case`) planned `N` times in a plain loop, for a
//! count of instructions that does not depend on the machine's load:
//!
//! ```text
//! cargo build --release -p writesync-core --example plan_loop
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/plan.out target/release/examples/plan_loop 2000
//! ```
//!
//! The total of `callgrind_annotate /tmp/plan.out` less that of a run with `N` = 0 (the
//! setup), divided by `N`, is the instructions one plan takes; `scripts/plan-instructions.sh`
//! prints it. The criterion benchmark (`benches/core_throughput.rs`) times the same case.
// Example code: a failed unwrap is a failed setup.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../benches/plan_case/mod.rs"]
mod plan_case;

use std::hint::black_box;

fn main() {
    let n: u64 = match std::env::args().nth(1).map(|a| a.parse()) {
        Some(Ok(n)) => n,
        _ => {
            eprintln!("usage: plan_loop N   (plans the core benchmark's case N times)");
            std::process::exit(2);
        }
    };
    let (mut engine, store, req, _) = plan_case::setup();
    for _ in 0..n {
        let step = engine.handle(black_box(&req), plan_case::NOW, &store);
        engine.finish(&step);
        black_box(step.batch.ops.len());
    }
}
