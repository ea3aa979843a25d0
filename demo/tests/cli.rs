//! The `writesync-demo` binary: the whole walk-through passes in one run, and its command
//! line answers `--help` and refuses what it does not know.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn help_and_usage_errors() {
    let h = Command::new(env!("CARGO_BIN_EXE_writesync-demo"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(h.status.success());
    let out = String::from_utf8_lossy(&h.stdout);
    assert!(out.contains("--verbose"), "{out}");
    let bad = Command::new(env!("CARGO_BIN_EXE_writesync-demo"))
        .arg("--no-such-flag")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn the_demo_passes() {
    let o = Command::new(env!("CARGO_BIN_EXE_writesync-demo"))
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("demo: all ") && last.contains("checks passed"),
        "{last}"
    );
    for step in [
        "customer",
        "accounting",
        "new vendor",
        "paid",
        "preload",
        "validation",
        "dry run",
        "retried",
        "deleted",
    ] {
        assert!(out.contains(step), "{step} missing from the demo");
    }
}
