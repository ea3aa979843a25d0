//! The host driver over a NativeEngine: `run_due` retries at the next deadline, performs the
//! webhooks a finished push causes, and leaves the store for retention as the engine expects.
// Helpers outside #[test] functions unwrap too (clippy.toml covers only the test functions):
// a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The sqlite-store tests' support: temporary databases and the native engine's test world.
#[path = "../../sqlite-store/tests/common/mod.rs"]
mod common;

use common::native_world::{admin, answer, push, world, World, HOUR, T0};

use serde_json::{json, Value};
use writesync_core::records::{SyncStatus, TargetStatus};
use writesync_core::{WorkItem, WorkKind};
use writesync_host::native::run_due;
use writesync_sqlite::WriteOptions;

const DAY: i64 = 24 * HOUR;

impl World {
    fn webhook(&mut self) -> String {
        let r = admin(
            &mut self.app,
            "POST",
            &format!("/admin/accounts/{}/webhooks", self.account),
            Some(json!({"url": "https://hooks.example.com/in", "events": ["*"]})),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        r.body_json()["id"].as_str().unwrap().to_string()
    }
    fn deliveries(&mut self, hook: &str) -> Vec<Value> {
        let r = admin(
            &mut self.app,
            "GET",
            &format!(
                "/admin/accounts/{}/webhooks/{hook}/deliveries",
                self.account
            ),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.body_json().as_array().unwrap().clone()
    }
}

#[test]
fn run_due_retries_at_the_next_deadline_and_performs_the_webhooks() {
    let mut w = world(true);
    w.connect("quickbooks", "accounting");
    w.connect("shopify", "commerce");
    let hook = w.webhook();
    let written = w.customer(
        &WriteOptions {
            push: true,
            tracking_id: Some("trk-9".into()),
            ..Default::default()
        },
        T0,
    );
    assert_eq!(written.targets, ["quickbooks", "shopify"]);
    let sync_id = written.sync_id.clone().unwrap();
    assert_eq!(w.app.next_deadline().unwrap(), Some(T0));

    // First round: shopify is busy.
    let mut sent = Vec::new();
    let mut t = |item: &WorkItem| {
        sent.push((item.kind, item.request.url.clone()));
        match item.kind {
            WorkKind::Push if item.request.url.contains("shopify") => answer(503, "busy"),
            WorkKind::Push => answer(201, r#"{"id":"QB-1"}"#),
            // These connections are generic: no token requests.
            WorkKind::Webhook | WorkKind::Token => answer(200, ""),
        }
    };
    let stats = run_due(&mut w.app, T0, &mut t).unwrap();
    assert_eq!((stats.pushes, stats.webhooks, stats.stale), (2, 1, 0));
    let s = w.app.sync_status(&w.creds, &sync_id, T0).unwrap();
    assert_eq!(s.status, SyncStatus::InProgress);
    assert_eq!(s.tracking_id.as_deref(), Some("trk-9"));
    let retry_at = w.app.next_deadline().unwrap().unwrap();
    assert!(retry_at > T0);
    // Nothing is due before the deadline.
    assert_eq!(run_due(&mut w.app, retry_at - 1, &mut t).unwrap().pushes, 0);
    assert_eq!(sent.len(), 3, "{sent:?}");

    // Second round: everything answers.
    let mut ok = |item: &WorkItem| match item.kind {
        WorkKind::Push => answer(201, r#"{"id":"SH-1"}"#),
        // These connections are generic: no token requests.
        WorkKind::Webhook | WorkKind::Token => answer(200, ""),
    };
    let stats = run_due(&mut w.app, retry_at, &mut ok).unwrap();
    assert_eq!((stats.pushes, stats.webhooks), (1, 2));
    let s = w.app.sync_status(&w.creds, &sync_id, retry_at).unwrap();
    assert_eq!(s.status, SyncStatus::Succeeded);
    assert!(s
        .targets
        .iter()
        .all(|t| t.status == TargetStatus::Succeeded));
    assert_eq!(s.targets[1].attempts, 2);
    assert_eq!(w.app.next_deadline().unwrap(), None);
    // Found by its tracking id; nothing failed, so nothing to retry.
    let filter = writesync_core::SyncFilter {
        tracking_id: Some("trk-9".into()),
        ..Default::default()
    };
    let found = w
        .app
        .find_syncs(&w.creds, filter, writesync_core::Page::default(), retry_at)
        .unwrap();
    assert_eq!(found, vec![s.clone()]);
    let e = w
        .app
        .retry_sync(&w.creds, &sync_id, Some(&["shopify"]), retry_at)
        .unwrap_err();
    assert_eq!(
        (e.status, e.problem_type.as_str()),
        (409, "/problems/nothing-to-retry")
    );
    let statuses: Vec<Value> = w
        .deliveries(&hook)
        .iter()
        .map(|d| d["status"].clone())
        .collect();
    assert_eq!(statuses, vec![json!("delivered"); 3]);
}

#[test]
fn retention_removes_finished_deliveries_and_never_unfinished_ones() {
    let mut w = world(true);
    w.connect("hubspot", "crm");
    let hook = w.webhook();
    // Sync 1: its push succeeds and its webhooks are delivered at T0.
    let one = w.customer(&push(), T0);
    let mut all_ok = |item: &WorkItem| match item.kind {
        WorkKind::Push => answer(201, "{}"),
        // These connections are generic: no token requests.
        WorkKind::Webhook | WorkKind::Token => answer(200, ""),
    };
    run_due(&mut w.app, T0, &mut all_ok).unwrap();
    assert_eq!(w.deliveries(&hook).len(), 2);
    // Sync 2, at T0 too: its push succeeds, its webhook endpoint fails, so its deliveries
    // stay pending (waiting for a retry nobody runs).
    let two = w.customer(&push(), T0);
    let mut hooks_down = |item: &WorkItem| match item.kind {
        WorkKind::Push => answer(201, "{}"),
        // These connections are generic: no token requests.
        WorkKind::Webhook | WorkKind::Token => answer(500, "down"),
    };
    run_due(&mut w.app, T0, &mut hooks_down).unwrap();
    let pending = |w: &mut World| {
        w.deliveries(&hook)
            .iter()
            .filter(|d| d["status"] == "pending")
            .count()
    };
    assert_eq!(pending(&mut w), 2);
    assert_eq!(w.deliveries(&hook).len(), 4);

    // Just inside the 7-day retention nothing goes.
    assert_eq!(w.app.prune(T0 + 7 * DAY - 1).unwrap(), 0);
    assert_eq!(w.deliveries(&hook).len(), 4);
    // At 7 days, the delivered ones go (record, index entry, retention entry each); the
    // pending ones, as old, stay.
    assert_eq!(w.app.prune(T0 + 7 * DAY).unwrap(), 6);
    let left = w.deliveries(&hook);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().all(|d| d["status"] == "pending"));
    // A much later prune still keeps them, and the sync they report on (a finished sync
    // goes after 30 days, with its deliveries, but not while a delivery is owed).
    w.app.prune(T0 + 365 * DAY).unwrap();
    assert_eq!(pending(&mut w), 2);
    let status = |w: &mut World, r: &writesync_sqlite::WriteResult, at: i64| {
        w.app
            .sync_status(&w.creds, r.sync_id.as_deref().unwrap(), at)
    };
    let gone = status(&mut w, &one, T0 + 365 * DAY).unwrap_err();
    assert_eq!(gone.status, 404);
    assert!(gone.detail.contains("expired"), "{}", gone.detail);
    let kept = status(&mut w, &two, T0 + 365 * DAY).unwrap();
    assert_eq!(kept.status, SyncStatus::Succeeded);
    // And the pending ones can still be delivered and then age out, with their sync.
    let late = T0 + 366 * DAY;
    let stats = run_due(&mut w.app, late, &mut all_ok).unwrap();
    assert_eq!(stats.webhooks, 2);
    w.app.prune(late + 7 * DAY).unwrap();
    assert!(w.deliveries(&hook).is_empty());
    assert_eq!(
        status(&mut w, &two, late + 7 * DAY).unwrap_err().status,
        404
    );
}
