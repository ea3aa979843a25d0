//! Deleting customers, vendors and accounts (contract section 7 "Deleting"): answers,
//! references, preconditions, idempotency, and the delete push to the connections that hold
//! the object.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::{json, Value};
use writesync_core::cdm::ObjectType;
use writesync_core::records::keys;
use writesync_core::util::crypto::basic_auth_header;
use writesync_core::{Batch, MemoryStore, WorkItem, WorkKind};

fn create(w: &mut World, t: &Tenant, path: &str, body: Value) -> String {
    let r = w.api(t, "POST", path, Some(body));
    assert_eq!(r.status, 201, "{}", r.body);
    r.body_json()["id"].as_str().unwrap().to_string()
}

fn pushes(w: &mut World) -> Vec<WorkItem> {
    w.due()
        .into_iter()
        .filter(|i| i.kind == WorkKind::Push)
        .collect()
}

fn envelope(item: &WorkItem) -> Value {
    serde_json::from_str(&item.request.body).unwrap()
}

/// Every stored key that names `id` (as it is, or in the short form of the index keys),
/// except sync rows and webhook deliveries (the history kept for `GET /api/syncs` and the
/// deliveries list until their retention ends).
fn keys_naming(store: &MemoryStore, id: &str) -> Vec<String> {
    let short = keys::id_in_key(id);
    store
        .entries()
        .filter(|(k, _)| !k.starts_with(keys::SYNCS) && !k.starts_with("dlv/"))
        .filter(|(k, v)| k.contains(id) || v.contains(id) || k.contains(&short))
        .map(|(k, _)| k.clone())
        .collect()
}

fn sync(w: &mut World, t: &Tenant, id: &str) -> Value {
    w.api(t, "GET", &format!("/api/syncs/{id}"), None)
        .body_json()
}

#[test]
fn a_deleted_customer_is_gone_from_reads_and_lists() {
    let mut w = World::new();
    let t = w.tenant("acme.example.com", true);
    let keep = create(&mut w, &t, "/api/customers", json!({"name": "Keep"}));
    let id = create(&mut w, &t, "/api/customers", customer());
    let r = w.api(&t, "DELETE", &format!("/api/customers/{id}"), None);
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(r.body.is_empty());
    assert!(!r.headers.contains_key("X-Sync-ID"));
    assert!(r.headers.contains_key("X-Request-ID"));
    let g = w.api(&t, "GET", &format!("/api/customers/{id}"), None);
    assert_eq!(g.status, 404);
    let list = w.api(&t, "GET", "/api/customers", None).body_json();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![keep.as_str()]);
    // Nothing of it is left behind.
    assert_eq!(keys_naming(&w.store, &id), Vec::<String>::new());
    // A second delete and an unknown id are 404.
    let again = w.api(&t, "DELETE", &format!("/api/customers/{id}"), None);
    assert_eq!(again.status, 404);
    assert_eq!(again.body_json()["type"], "/problems/not-found");
    for path in [
        "/api/vendors/nope",
        "/api/accounts/nope",
        "/api/customers/a%2Fb",
    ] {
        assert_eq!(w.api(&t, "DELETE", path, None).status, 404, "{path}");
    }
    // Other objects cannot be deleted.
    let r = w.api(&t, "DELETE", "/api/invoices/x", None);
    assert_eq!(r.status, 405);
    assert_eq!(r.headers["Allow"], "GET, PUT");
    let r = w.api(&t, "DELETE", "/api/customers", None);
    assert_eq!(r.status, 405);
    // The allowed methods of a customer name DELETE.
    let r = w.api(
        &t,
        "PUT",
        &format!("/api/customers/{keep}"),
        Some(customer()),
    );
    assert_eq!(r.headers["Allow"], "GET, PATCH, DELETE");
}

#[test]
fn a_referred_object_is_a_conflict_naming_one_referrer() {
    let mut w = World::new();
    let t = w.tenant("acme.example.com", true);
    let cust = create(&mut w, &t, "/api/customers", customer());
    let vend = create(&mut w, &t, "/api/vendors", json!({"name": "Paper Co"}));
    let sales = create(
        &mut w,
        &t,
        "/api/accounts",
        json!({"code": "4000", "name": "Sales", "type": "income"}),
    );
    let office = create(
        &mut w,
        &t,
        "/api/accounts",
        json!({"code": "6100", "name": "Office", "type": "expense"}),
    );
    let mut inv = invoice(&cust, "INV-1");
    inv["lines"] = json!([
        {"description": "A", "quantity": 1, "unitAmount": 100},
        {"description": "B", "quantity": 1, "unitAmount": 100, "accountId": sales}
    ]);
    let inv_id = create(&mut w, &t, "/api/invoices", inv.clone());
    let exp = json!({"vendorId": vend, "date": "2026-11-02", "currency": "EUR",
                     "lines": [{"description": "Paper", "amount": 1200, "accountId": office}]});
    let exp_id = create(&mut w, &t, "/api/expenses", exp.clone());
    let cases = [
        (
            "customers",
            &cust,
            format!("invoice {inv_id}"),
            "/customerId",
        ),
        ("vendors", &vend, format!("expense {exp_id}"), "/vendorId"),
        (
            "accounts",
            &sales,
            format!("invoice {inv_id}"),
            "/lines/1/accountId",
        ),
        (
            "accounts",
            &office,
            format!("expense {exp_id}"),
            "/lines/0/accountId",
        ),
    ];
    for (coll, id, referrer, pointer) in &cases {
        let before = w.store.entries().count();
        let r = w.api(&t, "DELETE", &format!("/api/{coll}/{id}"), None);
        assert_eq!(r.status, 409, "{coll}: {}", r.body);
        let p = r.body_json();
        assert_eq!(p["type"], "/problems/conflict");
        let detail = p["detail"].as_str().unwrap();
        assert!(detail.contains(referrer.as_str()), "{detail}");
        assert!(detail.contains(pointer), "{detail}");
        assert_eq!(w.store.entries().count(), before, "a refused delete wrote");
        let g = w.api(&t, "GET", &format!("/api/{coll}/{id}"), None);
        assert_eq!(g.status, 200);
    }
    // A payment keeps the invoice (and so its customer) referred to.
    let pay = w.api(
        &t,
        "POST",
        &format!("/api/invoices/{inv_id}/payments"),
        Some(json!({"amount": 50, "date": "2026-11-03"})),
    );
    assert_eq!(pay.status, 201, "{}", pay.body);
    assert_eq!(
        w.api(&t, "DELETE", &format!("/api/customers/{cust}"), None)
            .status,
        409
    );
    // Once the invoice no longer names the account, the account can go.
    inv["lines"] = json!([{"description": "A", "quantity": 2, "unitAmount": 100}]);
    let r = w.api(&t, "PUT", &format!("/api/invoices/{inv_id}"), Some(inv));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = w.api(&t, "DELETE", &format!("/api/accounts/{sales}"), None);
    assert_eq!(r.status, 204, "{}", r.body);
    // An expense moved to another vendor frees the first one.
    let other = create(&mut w, &t, "/api/vendors", json!({"name": "Ink Co"}));
    let mut exp2 = exp;
    exp2["vendorId"] = json!(other);
    let r = w.api(&t, "PUT", &format!("/api/expenses/{exp_id}"), Some(exp2));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        w.api(&t, "DELETE", &format!("/api/vendors/{vend}"), None)
            .status,
        204
    );
    assert_eq!(
        w.api(&t, "DELETE", &format!("/api/vendors/{other}"), None)
            .status,
        409
    );
    // An expense with a new vendor refers to the vendor it created.
    let e3 = w.api(
        &t,
        "POST",
        "/api/expenses",
        Some(
            json!({"vendor": {"name": "New Co"}, "date": "2026-11-02", "currency": "EUR",
                    "lines": [{"description": "Ink", "amount": 300}]}),
        ),
    );
    let new_vendor = e3.body_json()["vendorId"].as_str().unwrap().to_string();
    let r = w.api(&t, "DELETE", &format!("/api/vendors/{new_vendor}"), None);
    assert_eq!(r.status, 409, "{}", r.body);
}

#[test]
fn a_deleted_account_releases_its_code() {
    let mut w = World::new();
    let t = w.tenant("acme.example.com", true);
    let body = json!({"code": "4000", "name": "Sales", "type": "income"});
    let a = create(&mut w, &t, "/api/accounts", body.clone());
    let dup = w.api(&t, "POST", "/api/accounts", Some(body.clone()));
    assert_eq!(dup.status, 422);
    assert_eq!(
        w.api(&t, "DELETE", &format!("/api/accounts/{a}"), None)
            .status,
        204
    );
    let b = create(&mut w, &t, "/api/accounts", body);
    assert_ne!(a, b);
    // The code belongs to the new account: another one still cannot take it.
    let dup = w.api(
        &t,
        "POST",
        "/api/accounts",
        Some(json!({"code": "4000", "name": "Other", "type": "income"})),
    );
    assert_eq!(dup.status, 422);
    assert_eq!(dup.body_json()["errors"][0]["pointer"], "/code");
}

#[test]
fn if_match_and_idempotency_work_as_for_other_writes() {
    let mut w = World::new();
    let t = w.tenant("acme.example.com", true);
    let id = create(&mut w, &t, "/api/customers", customer());
    let p = w.api(
        &t,
        "PATCH",
        &format!("/api/customers/{id}"),
        Some(json!({"phone": "+1 555"})),
    );
    assert_eq!(p.status, 200);
    let path = format!("/api/customers/{id}");
    let r = w.api_h(&t, "DELETE", &path, None, &[("If-Match", "\"1\"")]);
    assert_eq!(r.status, 412, "{}", r.body);
    assert!(r.body_json()["detail"].as_str().unwrap().contains('2'));
    assert_eq!(w.api(&t, "GET", &path, None).status, 200);
    let r = w.api_h(&t, "DELETE", &path, None, &[("If-Match", "x")]);
    assert_eq!(r.status, 400);
    let key = [("Idempotency-Key", "del-1"), ("If-Match", "2")];
    let first = w.api_h(&t, "DELETE", &path, None, &key);
    assert_eq!(first.status, 204, "{}", first.body);
    let stored = w.store.entries().count();
    let again = w.api_h(&t, "DELETE", &path, None, &key);
    assert_eq!(again.status, 204, "{}", again.body);
    assert!(again.body.is_empty());
    assert_eq!(again.headers["Idempotency-Replayed"], "true");
    assert_eq!(w.store.entries().count(), stored);
    // The same key on another request is refused.
    let other = create(&mut w, &t, "/api/customers", customer());
    let r = w.api_h(
        &t,
        "DELETE",
        &format!("/api/customers/{other}"),
        None,
        &[("Idempotency-Key", "del-1")],
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(
        w.api(&t, "GET", &format!("/api/customers/{other}"), None)
            .status,
        200
    );
}

#[test]
fn deleting_needs_write_scope_and_write_mode() {
    let mut w = World::new();
    let t = w.tenant("acme.example.com", true);
    let id = create(&mut w, &t, "/api/customers", customer());
    let path = format!("/api/customers/{id}");
    // No credentials: 401.
    let r = w.send(writesync_core::ApiRequest::new("DELETE", &path));
    assert_eq!(r.status, 401);
    // A read-only key: 403.
    let k = w.admin(
        "POST",
        &format!("/admin/accounts/{}/api-keys", t.id),
        Some(json!({"scopes": ["api.read"]})),
    );
    let kb = k.body_json();
    let reader = Tenant {
        id: t.id.clone(),
        auth: basic_auth_header(kb["key"].as_str().unwrap(), kb["secret"].as_str().unwrap()),
    };
    let r = w.api(&reader, "DELETE", &path, None);
    assert_eq!(r.status, 403, "{}", r.body);
    // Write mode off: 403.
    let off = w.admin(
        "PATCH",
        &format!("/admin/accounts/{}", t.id),
        Some(json!({"writeEnabled": false})),
    );
    assert_eq!(off.status, 200, "{}", off.body);
    let r = w.api(&t, "DELETE", &path, None);
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(w.api(&t, "GET", &path, None).status, 200);
}

#[test]
fn the_delete_is_pushed_only_where_the_object_has_a_remote_id() {
    let mut w = World::new();
    let t = w.tenant("acme.example.com", true);
    let qb = w.connect(&t, "quickbooks", "accounting");
    w.connect(&t, "xero", "accounting");
    let c = w.api_h(
        &t,
        "POST",
        "/api/customers",
        Some(customer()),
        &[("X-Sync-Data", "push")],
    );
    assert_eq!(c.headers["X-Sync-Targets"], "quickbooks,xero");
    let id = c.body_json()["id"].as_str().unwrap().to_string();
    let items = pushes(&mut w);
    assert_eq!(items.len(), 2);
    for it in &items {
        if it.request.url.contains("quickbooks") {
            w.report(&it.id, status(201, r#"{"id":"QB-7"}"#));
        } else {
            w.report(&it.id, status(400, "no thanks"));
        }
    }
    let path = format!("/api/customers/{id}");
    let r = w.api_h(
        &t,
        "DELETE",
        &path,
        None,
        &[("X-Sync-Data", "push"), ("X-Tracking-ID", "del-7")],
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.headers["X-Sync-Targets"], "quickbooks");
    assert_eq!(r.headers["X-Tracking-ID"], "del-7");
    let sync_id = r.headers["X-Sync-ID"].clone();
    // Gone from reads at once, although its push is owed.
    assert_eq!(w.api(&t, "GET", &path, None).status, 404);
    let s = sync(&mut w, &t, &sync_id);
    assert_eq!(s["operation"], "delete");
    assert_eq!(s["object"], json!({"type": "customer", "id": id}));
    assert_eq!(s["status"], "pending");
    let items = pushes(&mut w);
    assert_eq!(items.len(), 1);
    assert!(items[0].request.url.contains("quickbooks"));
    let b = envelope(&items[0]);
    assert_eq!(b["operation"], "delete");
    assert_eq!(b["objectType"], "customer");
    assert_eq!(b["remoteId"], "QB-7");
    assert_eq!(b["trackingId"], "del-7");
    assert_eq!(b["object"]["id"], id.as_str());
    assert_eq!(b["object"]["name"], "Acme Ltd");
    assert_eq!(b["object"]["version"], 1);
    assert_eq!(items[0].request.headers["X-Sync-ID"], sync_id);
    // A retryable failure keeps what the retry needs.
    w.report(&items[0].id, status(503, "busy"));
    assert!(!keys_naming(&w.store, &id).is_empty());
    w.advance();
    let items = pushes(&mut w);
    assert_eq!(items.len(), 1);
    assert_eq!(envelope(&items[0])["operation"], "delete");
    w.report(&items[0].id, status(200, "{}"));
    let s = sync(&mut w, &t, &sync_id);
    assert_eq!(s["status"], "succeeded", "{s}");
    assert_eq!(s["targets"].as_array().unwrap().len(), 1);
    // Its remote id, kept version and chain are gone; nothing names it any more.
    assert_eq!(keys_naming(&w.store, &id), Vec::<String>::new());
    let _ = qb;
}

#[test]
fn a_delete_without_holders_or_with_sources_matching_none_has_no_targets() {
    let mut w = World::new();
    let t = w.tenant("acme.example.com", true);
    w.connect(&t, "quickbooks", "accounting");
    w.connect(&t, "hubspot", "crm");
    let c = w.api_h(
        &t,
        "POST",
        "/api/customers",
        Some(customer()),
        &[("X-Sync-Data", "push")],
    );
    let id = c.body_json()["id"].as_str().unwrap().to_string();
    for it in pushes(&mut w) {
        w.report(&it.id, status(201, r#"{"id":"R-1"}"#));
    }
    // Narrowed to a connection without... none matches: no_targets, like other writes.
    let r = w.api_h(
        &t,
        "DELETE",
        &format!("/api/customers/{id}"),
        None,
        &[("X-Sync-Data", "push"), ("X-Sync-Sources", "commerce")],
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.headers["X-Sync-Targets"], "");
    let s = sync(&mut w, &t, &r.headers["X-Sync-ID"].clone());
    assert_eq!(s["status"], "no_targets");
    assert_eq!(s["operation"], "delete");
    assert!(pushes(&mut w).is_empty());
    assert_eq!(keys_naming(&w.store, &id), Vec::<String>::new());
    // An unknown source token is still 400.
    let other = create(&mut w, &t, "/api/customers", customer());
    let r = w.api_h(
        &t,
        "DELETE",
        &format!("/api/customers/{other}"),
        None,
        &[("X-Sync-Data", "push"), ("X-Sync-Sources", "nonsense")],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    // Never pushed anywhere: no target.
    let r = w.api_h(
        &t,
        "DELETE",
        &format!("/api/customers/{other}"),
        None,
        &[("X-Sync-Data", "push")],
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.headers["X-Sync-Targets"], "");
    assert!(pushes(&mut w).is_empty());
}

#[test]
fn the_delete_waits_for_an_earlier_failing_update_and_sends_the_last_version() {
    let mut w = World::new();
    let t = w.tenant("acme.example.com", true);
    w.connect(&t, "quickbooks", "accounting");
    let push = [("X-Sync-Data", "push")];
    let c = w.api_h(&t, "POST", "/api/customers", Some(customer()), &push);
    let id = c.body_json()["id"].as_str().unwrap().to_string();
    let created = pushes(&mut w);
    w.report(&created[0].id, status(201, r#"{"id":"QB-1"}"#));
    let path = format!("/api/customers/{id}");
    let u = w.api_h(&t, "PATCH", &path, Some(json!({"name": "Acme Two"})), &push);
    assert_eq!(u.status, 200);
    let update_sync = u.headers["X-Sync-ID"].clone();
    let upd = pushes(&mut w);
    assert_eq!(envelope(&upd[0])["operation"], "update");
    w.report(&upd[0].id, status(500, "down"));
    // The update is owed a retry; the delete is planned behind it.
    let d = w.api_h(&t, "DELETE", &path, None, &push);
    assert_eq!(d.status, 204, "{}", d.body);
    assert_eq!(d.headers["X-Sync-Targets"], "quickbooks");
    let delete_sync = d.headers["X-Sync-ID"].clone();
    assert!(
        pushes(&mut w).is_empty(),
        "the delete went before the update"
    );
    w.advance();
    let retry = pushes(&mut w);
    assert_eq!(retry.len(), 1);
    let b = envelope(&retry[0]);
    assert_eq!(b["operation"], "update");
    assert_eq!(b["object"]["name"], "Acme Two");
    // The update fails for good; the delete goes next, with the last stored version.
    w.report(&retry[0].id, status(422, "bad name"));
    assert_eq!(sync(&mut w, &t, &update_sync)["status"], "failed");
    let del = pushes(&mut w);
    assert_eq!(del.len(), 1);
    let b = envelope(&del[0]);
    assert_eq!(b["operation"], "delete");
    assert_eq!(b["remoteId"], "QB-1");
    assert_eq!(b["object"]["version"], 2);
    assert_eq!(b["object"]["name"], "Acme Two");
    w.report(&del[0].id, status(200, ""));
    assert_eq!(sync(&mut w, &t, &delete_sync)["status"], "succeeded");
    assert_eq!(keys_naming(&w.store, &id), Vec::<String>::new());
}

#[test]
fn a_failed_delete_push_leaves_nothing_behind() {
    let mut w = World::new();
    let t = w.tenant("acme.example.com", true);
    w.connect(&t, "quickbooks", "accounting");
    w.connect(&t, "xero", "accounting");
    let push = [("X-Sync-Data", "push")];
    let c = w.api_h(
        &t,
        "POST",
        "/api/vendors",
        Some(json!({"name": "V"})),
        &push,
    );
    let id = c.body_json()["id"].as_str().unwrap().to_string();
    for (n, it) in pushes(&mut w).into_iter().enumerate() {
        w.report(&it.id, status(201, &format!(r#"{{"id":"R-{n}"}}"#)));
    }
    let d = w.api_h(&t, "DELETE", &format!("/api/vendors/{id}"), None, &push);
    assert_eq!(d.headers["X-Sync-Targets"], "quickbooks,xero");
    let items = pushes(&mut w);
    assert_eq!(items.len(), 2);
    w.report(&items[0].id, status(200, ""));
    // While one push is owed, its remote id and the last version stay.
    assert!(w
        .store
        .entries()
        .any(|(k, _)| k == &keys::remote(ObjectType::Vendor, &id)));
    assert!(w
        .store
        .entries()
        .any(|(k, _)| k.starts_with(&keys::kept_versions(ObjectType::Vendor, &id))));
    w.report(&items[1].id, status(400, "refused"));
    let s = sync(&mut w, &t, &d.headers["X-Sync-ID"].clone());
    assert_eq!(s["status"], "partially_failed", "{s}");
    assert_eq!(keys_naming(&w.store, &id), Vec::<String>::new());
}

#[test]
fn a_store_without_the_reference_index_gets_it_when_migrated() {
    let mut w = World::new();
    let t = w.tenant("acme.example.com", true);
    let cust = create(&mut w, &t, "/api/customers", customer());
    create(&mut w, &t, "/api/invoices", invoice(&cust, "INV-9"));
    // As layout 1 left it: objects without reference entries and no layout marker.
    let mut b = Batch::new();
    for (k, _) in w.store.entries() {
        if k.starts_with("rf/") || k == "meta/layout" {
            b.delete(k.clone());
        }
    }
    assert!(!b.is_empty());
    w.store.apply_batch(&b);
    let mut steps = 0;
    loop {
        let step = w.engine.migrate(10, &w.store).unwrap();
        w.store.apply_batch(&step.batch);
        steps += 1;
        if step.done {
            break;
        }
        assert!(steps < 10, "the migration ends");
    }
    assert!(w.store.entries().any(|(k, _)| k.starts_with("rf/")));
    let r = w.api(&t, "DELETE", &format!("/api/customers/{cust}"), None);
    assert_eq!(r.status, 409, "{}", r.body);
}

#[test]
fn a_quickbooks_connection_deactivates_with_the_sync_token_it_gave() {
    let mut w = World::new();
    let t = w.tenant("acme.example.com", true);
    let r = w.admin(
        "POST",
        &format!("/admin/accounts/{}/connections", t.id),
        Some(
            json!({"app": "quickbooks", "type": "accounting", "connector": "quickbooks",
                    "baseUrl": "https://qbo.example.com", "settings": {"realmId": "123145"}}),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let push = [("X-Sync-Data", "push")];
    let c = w.api_h(&t, "POST", "/api/customers", Some(customer()), &push);
    let id = c.body_json()["id"].as_str().unwrap().to_string();
    let token = w
        .due()
        .into_iter()
        .find(|i| i.kind == WorkKind::Token)
        .unwrap();
    let answer = json!({"accessToken": "tok", "expiresAt": w.now + 3_600_000}).to_string();
    w.report(&token.id, status(200, &answer));
    let created = pushes(&mut w);
    assert_eq!(created.len(), 1);
    w.report(
        &created[0].id,
        status(200, r#"{"Customer":{"Id":"58","SyncToken":"3"}}"#),
    );
    w.webhook(&t, json!(["api_push_update"]));
    let d = w.api_h(&t, "DELETE", &format!("/api/customers/{id}"), None, &push);
    assert_eq!(d.status, 204, "{}", d.body);
    assert_eq!(d.headers["X-Sync-Targets"], "quickbooks");
    let del = pushes(&mut w);
    assert_eq!(del.len(), 1);
    let b = envelope(&del[0]);
    assert_eq!(del[0].request.method, "POST");
    assert!(del[0].request.url.contains("/v3/company/123145/customer"));
    assert_eq!(b["Active"], false);
    assert_eq!(b["Id"], "58");
    assert_eq!(b["SyncToken"], "3");
    w.report(
        &del[0].id,
        status(
            200,
            r#"{"Customer":{"Id":"58","SyncToken":"4","Active":false}}"#,
        ),
    );
    let s = sync(&mut w, &t, &d.headers["X-Sync-ID"].clone());
    assert_eq!(s["status"], "succeeded", "{s}");
    let hooks: Vec<Value> = w
        .due()
        .iter()
        .filter(|i| i.kind == WorkKind::Webhook)
        .map(envelope)
        .collect();
    assert_eq!(hooks.len(), 1);
    assert_eq!(
        hooks[0]["message"],
        "deletion of customer Acme Ltd pushed to quickbooks"
    );
    assert_eq!(hooks[0]["data"]["object"]["id"], id.as_str());
    assert_eq!(keys_naming(&w.store, &id), Vec::<String>::new());
}

#[test]
fn a_dry_run_delete_checks_everything_and_deletes_nothing() {
    let mut w = World::new();
    let t = w.tenant("acme.example.com", true);
    w.connect(&t, "quickbooks", "accounting");
    let push = [("X-Sync-Data", "push")];
    let c = w.api_h(&t, "POST", "/api/customers", Some(customer()), &push);
    let id = c.body_json()["id"].as_str().unwrap().to_string();
    for it in pushes(&mut w) {
        w.report(&it.id, status(201, r#"{"id":"QB-1"}"#));
    }
    let other = create(&mut w, &t, "/api/customers", customer());
    create(&mut w, &t, "/api/invoices", invoice(&other, "INV-1"));
    let before: Vec<(String, String)> = w
        .store
        .entries()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let r = w.api_h(
        &t,
        "DELETE",
        &format!("/api/customers/{id}?dryRun=true"),
        None,
        &[("X-Sync-Data", "push"), ("Idempotency-Key", "dry-1")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body_json(),
        json!({"valid": true, "object": null, "targets": ["quickbooks"]})
    );
    let r = w.api(
        &t,
        "DELETE",
        &format!("/api/customers/{other}?dryRun=true"),
        None,
    );
    assert_eq!(r.status, 409, "{}", r.body);
    let r = w.api_h(
        &t,
        "DELETE",
        &format!("/api/customers/{id}?dryRun=true"),
        None,
        &[("If-Match", "7")],
    );
    assert_eq!(r.status, 412, "{}", r.body);
    let after: Vec<(String, String)> = w
        .store
        .entries()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(before, after, "a dry run stored something");
    assert!(pushes(&mut w).is_empty());
    // The real delete afterwards behaves as if no dry run had happened.
    let r = w.api_h(
        &t,
        "DELETE",
        &format!("/api/customers/{id}"),
        None,
        &[("X-Sync-Data", "push"), ("Idempotency-Key", "dry-1")],
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.headers["X-Sync-Targets"], "quickbooks");
}
