//! Provider connectors end to end: every golden request of `tests/vectors/connectors/` is
//! accepted by the fake provider that checks it the way the provider documents it, and
//! `writesync serve` (with `--token-url` at a fake token broker) pushes customers, vendors,
//! accounts, invoices, payments, expenses and bank transactions to fake QuickBooks, Xero,
//! HubSpot and Shopify APIs, asking for access tokens, renewing one after a `401`, honouring
//! rate limits and reporting the providers' own errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use writesync_core::cdm::ObjectType;
use writesync_core::connectors::{lookup, Answer, Operation, ProviderVerdict};
use writesync_demo::fake::providers::{FakeProvider, FakeTokenBroker, Provider, TokenBook};
use writesync_demo::fake::{FakeServer, Received};

const REALM: &str = "9130355377284276";
const TENANT: &str = "5b7c7a3e-1f1a-4a55-9d3c-2a1f0e6b8c01";

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/connectors")
}

/// The entities the golden requests refer to, held by each fake.
fn seed(p: &FakeProvider, case: &str) {
    match p.provider() {
        Provider::QuickBooks { .. } => {
            p.seed(
                "Customer",
                "58",
                json!({"Id": "58", "DisplayName": "Seeded customer"}),
            );
            p.seed(
                "Vendor",
                "41",
                json!({"Id": "41", "DisplayName": "Seeded vendor"}),
            );
            p.seed(
                "Account",
                "84",
                json!({"Id": "84", "Name": "Office supplies", "AccountType": "Expense"}),
            );
            p.seed(
                "Account",
                "35",
                json!({"Id": "35", "Name": "Checking", "AccountType": "Bank"}),
            );
            p.seed(
                "Account",
                "79",
                json!({"Id": "79", "Name": "Uncategorized", "AccountType": "Other Current Asset"}),
            );
            p.seed(
                "Invoice",
                "130",
                json!({"Id": "130", "DocNumber": "INV-1001"}),
            );
        }
        Provider::Xero { .. } => {
            p.seed(
                "Contacts",
                "565acaa9-e7f3-4fbf-80c3-16b081ddae10",
                json!({"Name": "Seeded contact"}),
            );
            p.seed(
                "Contacts",
                "9a1f3d4e-0b7c-4e5f-8a6b-1c2d3e4f5a6b",
                json!({"Name": "Seeded supplier"}),
            );
            if case != "xero_account_create" {
                p.seed(
                    "Accounts",
                    "ebd06280-af70-4bed-97c6-7451a454ad85",
                    json!({"Code": "6000", "Name": "Office supplies", "Type": "EXPENSE"}),
                );
            }
            p.seed(
                "Accounts",
                "00000000-0000-4000-8000-000000000090",
                json!({"Code": "090", "Name": "Business bank", "Type": "BANK"}),
            );
            p.seed(
                "Accounts",
                "00000000-0000-4000-8000-000000000429",
                json!({"Code": "429", "Name": "General expenses", "Type": "EXPENSE"}),
            );
            p.seed(
                "Invoices",
                "fee88eea-f2aa-4a71-a372-33d6d83d3c45",
                json!({"InvoiceNumber": "INV-1001", "Type": "ACCREC"}),
            );
        }
        Provider::HubSpot => p.seed(
            "companies",
            "512",
            json!({"id": "512", "properties": {"name": "Seeded"}}),
        ),
        Provider::Shopify => p.seed(
            "customers",
            "207119551",
            json!({"id": 207119551u64, "email": "other@example.com"}),
        ),
    }
}

/// Give a seeded entity the SyncToken a golden update names.
fn set_version(p: &FakeProvider, kind: &str, id: &str, version: u64) {
    let body = p.entity(kind, id).unwrap().body;
    p.seed_version(kind, id, body, version);
}

/// What a golden delete did at its fake: QuickBooks deactivated, Xero archived, HubSpot and
/// Shopify removed the entity.
fn deleted_the_providers_way(p: &FakeProvider, case: &str) {
    let (kind, id, field, value) = match case {
        "quickbooks_customer_delete" => ("Customer", "58", "Active", json!(false)),
        "quickbooks_account_delete" => ("Account", "84", "Active", json!(false)),
        "xero_customer_delete" => (
            "Contacts",
            "565acaa9-e7f3-4fbf-80c3-16b081ddae10",
            "ContactStatus",
            json!("ARCHIVED"),
        ),
        "xero_account_delete" => (
            "Accounts",
            "ebd06280-af70-4bed-97c6-7451a454ad85",
            "Status",
            json!("ARCHIVED"),
        ),
        "hubspot_customer_delete" => return assert!(p.entity("companies", "512").is_none()),
        "shopify_customer_delete" => return assert!(p.entity("customers", "207119551").is_none()),
        other => panic!("no delete check for {other}"),
    };
    assert_eq!(p.entity(kind, id).unwrap().body[field], value, "{case}");
}

#[test]
fn every_golden_request_is_accepted_by_its_fake_provider() {
    let agent = agent();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 20, "{paths:?}");
    for path in paths {
        let g: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = g["name"].as_str().unwrap();
        let req = &g["request"];
        let base = g["input"]["baseUrl"].as_str().unwrap();
        let op = match g["operation"].as_str().unwrap() {
            "update" => Operation::Update,
            "delete" => Operation::Delete,
            _ => Operation::Create,
        };
        let object_type = ObjectType::parse(g["objectType"].as_str().unwrap()).unwrap();
        // A provider's DELETE has no body (`null` in the file).
        let body = (!req["body"].is_null()).then(|| req["body"].to_string());
        let headers: Vec<(&str, &str)> = req["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
            .collect();
        if g["connector"] == "generic" {
            // The envelope goes to a fake source, which answers it like a receiver.
            let source = FakeServer::source("receiver").unwrap();
            let path = req["url"]
                .as_str()
                .unwrap()
                .strip_prefix(base)
                .unwrap_or("");
            let path = format!("/writesync/push{path}");
            let r = try_call(
                &agent,
                &source.url(""),
                req["method"].as_str().unwrap(),
                &path,
                &headers,
                body.as_deref(),
            )
            .unwrap();
            let got = &source.received()[0];
            assert_eq!(got.json(), req["body"], "{name}");
            assert_eq!(
                got.header("idempotency-key"),
                req["headers"]["Idempotency-Key"].as_str()
            );
            let h = r
                .headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect();
            let verdict = lookup("generic").unwrap().interpret(&Answer {
                object_type,
                operation: op,
                status: r.status,
                headers: &h,
                body: &r.text,
                now_ms: 0,
            });
            assert!(
                matches!(verdict, ProviderVerdict::Success { .. }),
                "{name}: {verdict:?}"
            );
            continue;
        }
        let tokens = TokenBook::new();
        tokens.issue(g["input"]["accessToken"].as_str().unwrap());
        let provider = match g["connector"].as_str().unwrap() {
            "quickbooks" => Provider::QuickBooks {
                realm: REALM.into(),
            },
            "xero" => Provider::Xero {
                tenant: TENANT.into(),
            },
            "hubspot" => Provider::HubSpot,
            "shopify" => Provider::Shopify,
            other => panic!("{other}"),
        };
        let fake = FakeProvider::start(provider, Arc::clone(&tokens)).unwrap();
        seed(&fake, name);
        if name == "quickbooks_customer_update" {
            set_version(&fake, "Customer", "58", 3);
        }
        if name == "quickbooks_invoice_void" {
            set_version(&fake, "Invoice", "130", 2);
        }
        if name == "quickbooks_customer_delete" {
            set_version(&fake, "Customer", "58", 3);
        }
        if name == "quickbooks_account_delete" {
            set_version(&fake, "Account", "84", 1);
        }
        let url = req["url"]
            .as_str()
            .unwrap()
            .replacen(base, &fake.base_url(), 1);
        let path_and_query = url.strip_prefix(&fake.base_url()).unwrap().to_string();
        let r = try_call(
            &agent,
            &fake.base_url(),
            req["method"].as_str().unwrap(),
            &path_and_query,
            &headers,
            body.as_deref(),
        )
        .unwrap();
        assert!(
            matches!(r.status, 200 | 201 | 204),
            "{name}: {} {}",
            r.status,
            r.text
        );
        // What the connector makes of the fake's answer: success with the provider's id.
        let connector = lookup(g["connector"].as_str().unwrap()).unwrap();
        let h = r
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        let verdict = connector.interpret(&Answer {
            object_type,
            operation: op,
            status: r.status,
            headers: &h,
            body: &r.text,
            now_ms: 0,
        });
        match verdict {
            ProviderVerdict::Success {
                remote_id: Some(_), ..
            } => {}
            // HubSpot's `204` and Shopify's `200 {}` to a delete name no id.
            ProviderVerdict::Success { .. } if op == Operation::Delete => {}
            other => panic!("{name}: {other:?} from {}", r.text),
        }
        if op == Operation::Delete {
            deleted_the_providers_way(&fake, name);
        }
        // The same request without its token is refused the provider's way, and is read so.
        let unauth: Vec<(&str, &str)> = headers
            .iter()
            .copied()
            .filter(|(k, _)| {
                !k.eq_ignore_ascii_case("authorization")
                    && !k.eq_ignore_ascii_case("x-shopify-access-token")
            })
            .collect();
        let r = try_call(
            &agent,
            &fake.base_url(),
            req["method"].as_str().unwrap(),
            &path_and_query,
            &unauth,
            body.as_deref(),
        )
        .unwrap();
        assert_eq!(r.status, 401, "{name}: {}", r.text);
        let verdict = connector.interpret(&Answer {
            object_type,
            operation: op,
            status: r.status,
            headers: &h,
            body: &r.text,
            now_ms: 0,
        });
        assert!(
            matches!(verdict, ProviderVerdict::Unauthorized { .. }),
            "{name}: {verdict:?}"
        );
    }
}

#[test]
fn fake_providers_refuse_what_their_apis_refuse() {
    let agent = agent();
    let tokens = TokenBook::new();
    tokens.issue("t1");
    let auth = [
        ("Authorization", "Bearer t1"),
        ("Accept", "application/json"),
    ];
    let qb = FakeProvider::start(
        Provider::QuickBooks {
            realm: REALM.into(),
        },
        Arc::clone(&tokens),
    )
    .unwrap();
    let call = |f: &FakeProvider, m: &str, p: &str, h: &[(&str, &str)], b: Value| {
        try_call(&agent, &f.base_url(), m, p, h, Some(&b.to_string())).unwrap()
    };
    let path = format!("/v3/company/{REALM}/customer");
    // No requestid, a requestid over 50 characters, no DisplayName, an unknown reference.
    let r = call(
        &qb,
        "POST",
        &format!("{path}?minorversion=75"),
        &auth,
        json!({"DisplayName": "A"}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["Fault"]["Error"][0]["element"], "requestid");
    let long = "x".repeat(51);
    let r = call(
        &qb,
        "POST",
        &format!("{path}?requestid={long}&minorversion=75"),
        &auth,
        json!({"DisplayName": "A"}),
    );
    assert_eq!(r.status, 400);
    let r = call(
        &qb,
        "POST",
        &format!("{path}?requestid=r1&minorversion=75"),
        &auth,
        json!({"CompanyName": "A"}),
    );
    assert_eq!(r.json()["Fault"]["Error"][0]["code"], "2020");
    let r = call(
        &qb,
        "POST",
        &format!("/v3/company/{REALM}/invoice?requestid=r2&minorversion=75"),
        &auth,
        json!({"CustomerRef": {"value": "999"}, "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 1.0, "SalesItemLineDetail": {}}]}),
    );
    assert_eq!(r.json()["Fault"]["Error"][0]["code"], "610");
    // A create replayed with its requestid gets the first answer, not a second customer.
    let a = call(
        &qb,
        "POST",
        &format!("{path}?requestid=r3&minorversion=75"),
        &auth,
        json!({"DisplayName": "Once"}),
    );
    let b = call(
        &qb,
        "POST",
        &format!("{path}?requestid=r3&minorversion=75"),
        &auth,
        json!({"DisplayName": "Once"}),
    );
    assert_eq!(a.text, b.text);
    assert_eq!(qb.entities("Customer").len(), 1);
    // A stale SyncToken.
    let r = call(
        &qb,
        "POST",
        &format!("{path}?requestid=r4&minorversion=75"),
        &auth,
        json!({"Id": "1", "SyncToken": "7", "sparse": true, "DisplayName": "Twice"}),
    );
    assert_eq!(r.json()["Fault"]["Error"][0]["code"], "5010");
    // Xero: the tenant header and the JSON Accept are required; rate limiting has Retry-After.
    let xero = FakeProvider::start(
        Provider::Xero {
            tenant: TENANT.into(),
        },
        Arc::clone(&tokens),
    )
    .unwrap();
    let r = call(
        &xero,
        "PUT",
        "/api.xro/2.0/Contacts",
        &auth,
        json!({"Contacts": [{"Name": "A"}]}),
    );
    assert_eq!(r.status, 403);
    let xh = [
        ("Authorization", "Bearer t1"),
        ("Accept", "application/json"),
        ("xero-tenant-id", TENANT),
    ];
    let r = call(
        &xero,
        "PUT",
        "/api.xro/2.0/Contacts",
        &xh,
        json!({"Contacts": [{"EmailAddress": "a@b.c"}]}),
    );
    assert_eq!(r.json()["Type"], "ValidationException");
    xero.rate_limit_next(1, Some("3"));
    let r = call(
        &xero,
        "PUT",
        "/api.xro/2.0/Contacts",
        &xh,
        json!({"Contacts": [{"Name": "A"}]}),
    );
    assert_eq!((r.status, r.header("retry-after")), (429, Some("3")));
    // HubSpot: unknown properties; Shopify: invalid phone.
    let hs = FakeProvider::start(Provider::HubSpot, Arc::clone(&tokens)).unwrap();
    let r = call(
        &hs,
        "POST",
        "/crm/v3/objects/companies",
        &auth,
        json!({"properties": {"fax": "1"}}),
    );
    assert_eq!(
        (r.status, r.json()["category"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );
    let shop = FakeProvider::start(Provider::Shopify, Arc::clone(&tokens)).unwrap();
    let r = call(
        &shop,
        "POST",
        "/admin/api/2025-07/customers.json",
        &[("X-Shopify-Access-Token", "t1")],
        json!({"customer": {"last_name": "A", "phone": "555"}}),
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["errors"]["phone"][0], "is invalid");
    // A token the broker never issued is refused.
    let r = call(
        &shop,
        "POST",
        "/admin/api/2025-07/customers.json",
        &[("X-Shopify-Access-Token", "nope")],
        json!({"customer": {"last_name": "A"}}),
    );
    assert_eq!(r.status, 401);
    fakes_take_deletes_and_bank_entries_the_providers_way(&agent, &qb, &xero, &hs, &shop);
}

/// The shapes of deletes, deposits and purchases the fakes refuse, as the providers do.
fn fakes_take_deletes_and_bank_entries_the_providers_way(
    agent: &ureq::Agent,
    qb: &FakeProvider,
    xero: &FakeProvider,
    hs: &FakeProvider,
    shop: &FakeProvider,
) {
    let call = |f: &FakeProvider, m: &str, p: &str, h: &[(&str, &str)], b: Option<Value>| {
        let body = b.map(|b| b.to_string());
        try_call(agent, &f.base_url(), m, p, h, body.as_deref()).unwrap()
    };
    let auth = [
        ("Authorization", "Bearer t1"),
        ("Accept", "application/json"),
    ];
    let qb_path =
        |e: &str, rid: &str| format!("/v3/company/{REALM}/{e}?requestid={rid}&minorversion=75");
    qb.seed(
        "Account",
        "35",
        json!({"Id": "35", "Name": "Checking", "AccountType": "Bank"}),
    );
    qb.seed(
        "Account",
        "84",
        json!({"Id": "84", "Name": "Supplies", "AccountType": "Expense"}),
    );
    let deposit = |to: &str, amount: f64| {
        json!({"DepositToAccountRef": {"value": to}, "TxnDate": "2026-11-21",
               "Line": [{"DetailType": "DepositLineDetail", "Amount": amount,
                         "DepositLineDetail": {"AccountRef": {"value": "84"}}}]})
    };
    // A deposit goes into a Bank account, with amounts of 0 or more; then it is accepted.
    let r = call(
        qb,
        "POST",
        &qb_path("deposit", "d1"),
        &auth,
        Some(deposit("84", 5.0)),
    );
    assert_eq!(
        r.json()["Fault"]["Error"][0]["element"],
        "DepositToAccountRef",
        "{}",
        r.text
    );
    let r = call(
        qb,
        "POST",
        &qb_path("deposit", "d2"),
        &auth,
        Some(deposit("35", -5.0)),
    );
    assert_eq!(
        r.json()["Fault"]["Error"][0]["element"],
        "Line",
        "{}",
        r.text
    );
    let r = call(
        qb,
        "POST",
        &qb_path("deposit", "d3"),
        &auth,
        Some(deposit("35", 5.0)),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json()["Deposit"]["Id"].is_string());
    // Deactivation applies to names lists; a deactivated customer can no longer be invoiced.
    let r = call(
        qb,
        "POST",
        &qb_path("customer", "c1"),
        &auth,
        Some(json!({"DisplayName": "Gone Ltd"})),
    );
    let id = r.json()["Customer"]["Id"].as_str().unwrap().to_string();
    let off = json!({"Id": id, "SyncToken": "0", "sparse": true, "Active": false});
    let r = call(qb, "POST", &qb_path("customer", "c2"), &auth, Some(off));
    assert_eq!(r.json()["Customer"]["Active"], false, "{}", r.text);
    qb.seed("Invoice", "130", json!({"Id": "130", "DocNumber": "INV-1"}));
    let void_by_active = json!({"Id": "130", "SyncToken": "0", "sparse": true, "Active": false});
    let r = call(
        qb,
        "POST",
        &qb_path("invoice", "c3"),
        &auth,
        Some(void_by_active),
    );
    assert_eq!(
        r.json()["Fault"]["Error"][0]["element"],
        "Active",
        "{}",
        r.text
    );
    let r = call(
        qb,
        "POST",
        &qb_path("invoice", "c4"),
        &auth,
        Some(
            json!({"CustomerRef": {"value": id}, "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 1.0, "SalesItemLineDetail": {}}]}),
        ),
    );
    assert_eq!(r.json()["Fault"]["Error"][0]["code"], "610");
    // Xero: ContactStatus only on an existing contact; an archived contact is not invoiced.
    let xh = [
        ("Authorization", "Bearer t1"),
        ("Accept", "application/json"),
        ("xero-tenant-id", TENANT),
    ];
    let r = call(
        xero,
        "PUT",
        "/api.xro/2.0/Contacts",
        &xh,
        Some(json!({"Contacts": [{"Name": "Archived at birth", "ContactStatus": "ARCHIVED"}]})),
    );
    assert_eq!(r.json()["Type"], "ValidationException");
    let r = call(
        xero,
        "PUT",
        "/api.xro/2.0/Contacts",
        &xh,
        Some(json!({"Contacts": [{"Name": "Old client"}]})),
    );
    let cid = r.json()["Contacts"][0]["ContactID"]
        .as_str()
        .unwrap()
        .to_string();
    let r = call(
        xero,
        "POST",
        &format!("/api.xro/2.0/Contacts/{cid}"),
        &xh,
        Some(json!({"Contacts": [{"ContactID": cid, "ContactStatus": "GONE"}]})),
    );
    assert_eq!(r.json()["Type"], "ValidationException");
    let r = call(
        xero,
        "POST",
        &format!("/api.xro/2.0/Contacts/{cid}"),
        &xh,
        Some(json!({"Contacts": [{"ContactID": cid, "ContactStatus": "ARCHIVED"}]})),
    );
    assert_eq!(
        r.json()["Contacts"][0]["ContactStatus"],
        "ARCHIVED",
        "{}",
        r.text
    );
    let r = call(
        xero,
        "PUT",
        "/api.xro/2.0/Invoices",
        &xh,
        Some(
            json!({"Invoices": [{"Type": "ACCREC", "Contact": {"ContactID": cid},
                                  "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": 1}]}]}),
        ),
    );
    assert!(r.text.contains("archived"), "{}", r.text);
    // An archived account is no longer coded to.
    let r = call(
        xero,
        "PUT",
        "/api.xro/2.0/Accounts",
        &xh,
        Some(json!({"Code": "777", "Name": "Old costs", "Type": "EXPENSE"})),
    );
    let aid = r.json()["Accounts"][0]["AccountID"]
        .as_str()
        .unwrap()
        .to_string();
    let r = call(
        xero,
        "POST",
        &format!("/api.xro/2.0/Accounts/{aid}"),
        &xh,
        Some(json!({"Accounts": [{"AccountID": aid, "Status": "ARCHIVED"}]})),
    );
    assert_eq!(r.json()["Accounts"][0]["Status"], "ARCHIVED", "{}", r.text);
    let r = call(
        xero,
        "PUT",
        "/api.xro/2.0/Contacts",
        &xh,
        Some(json!({"Contacts": [{"Name": "New client"}]})),
    );
    let live = r.json()["Contacts"][0]["ContactID"]
        .as_str()
        .unwrap()
        .to_string();
    let r = call(
        xero,
        "PUT",
        "/api.xro/2.0/Invoices",
        &xh,
        Some(
            json!({"Invoices": [{"Type": "ACCREC", "Status": "AUTHORISED", "Contact": {"ContactID": live},
                                  "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": 1, "AccountCode": "777"}]}]}),
        ),
    );
    assert!(r.text.contains("'777' is not a valid code"), "{}", r.text);
    // A bank transaction names a contact Xero holds.
    let r = call(
        xero,
        "PUT",
        "/api.xro/2.0/BankTransactions",
        &xh,
        Some(
            json!({"BankTransactions": [{"Type": "SPEND", "Contact": {"ContactID": "00000000-0000-4000-8000-00000000dead"},
                                          "LineItems": []}]}),
        ),
    );
    assert!(r.text.contains("does not exist"), "{}", r.text);
    // HubSpot: a DELETE has no body, and an unknown id is 404.
    hs.seed("companies", "512", json!({"id": "512", "properties": {}}));
    let r = call(
        hs,
        "DELETE",
        "/crm/v3/objects/companies/512",
        &auth,
        Some(json!({"x": 1})),
    );
    assert_eq!(r.status, 400);
    let r = call(hs, "DELETE", "/crm/v3/objects/companies/512", &auth, None);
    assert_eq!(r.status, 204);
    let r = call(hs, "DELETE", "/crm/v3/objects/companies/512", &auth, None);
    assert_eq!(r.status, 404);
    // Shopify likewise.
    let sh = [("X-Shopify-Access-Token", "t1")];
    shop.seed("customers", "7", json!({"id": 7}));
    let r = call(
        shop,
        "DELETE",
        "/admin/api/2025-07/customers/7.json",
        &sh,
        Some(json!({})),
    );
    assert_eq!(r.status, 406);
    let r = call(
        shop,
        "DELETE",
        "/admin/api/2025-07/customers/7.json",
        &sh,
        None,
    );
    assert_eq!((r.status, r.text.as_str()), (200, "{}"));
    let r = call(
        shop,
        "DELETE",
        "/admin/api/2025-07/customers/7.json",
        &sh,
        None,
    );
    assert_eq!(r.status, 404);
}

struct Rig {
    _dir: tempfile::TempDir,
    _srv: Server,
    c: Client,
    t: Tenant,
    broker: FakeTokenBroker,
    qb: FakeProvider,
    xero: FakeProvider,
    hs: FakeProvider,
    shop: FakeProvider,
}

fn rig() -> Rig {
    let tokens = TokenBook::new();
    let broker = FakeTokenBroker::start(Arc::clone(&tokens)).unwrap();
    let qb = FakeProvider::start(
        Provider::QuickBooks {
            realm: REALM.into(),
        },
        Arc::clone(&tokens),
    )
    .unwrap();
    let xero = FakeProvider::start(
        Provider::Xero {
            tenant: TENANT.into(),
        },
        Arc::clone(&tokens),
    )
    .unwrap();
    let hs = FakeProvider::start(Provider::HubSpot, Arc::clone(&tokens)).unwrap();
    let shop = FakeProvider::start(Provider::Shopify, Arc::clone(&tokens)).unwrap();
    // What the user's books already hold: the bank account expenses and payments go through.
    qb.seed(
        "Account",
        "35",
        json!({"Id": "35", "Name": "Checking", "AccountType": "Bank"}),
    );
    xero.seed(
        "Accounts",
        "00000000-0000-4000-8000-000000000090",
        json!({"Code": "090", "Name": "Business bank", "Type": "BANK"}),
    );
    xero.seed(
        "Accounts",
        "00000000-0000-4000-8000-000000000429",
        json!({"Code": "429", "Name": "General expenses", "Type": "EXPENSE"}),
    );
    let dir = tempfile::tempdir().unwrap();
    let url = broker.url();
    let mut args: Vec<&str> = [&FAST[..], &ALLOW_LOOPBACK[..]].concat();
    args.extend(["--token-url", url.as_str()]);
    let srv = Server::start(&dir.path().join("t.db"), &args);
    let c = Client::new(&srv);
    let t = c.tenant("acme.example.com");
    let connect = |body: Value| {
        let r = c.admin(
            "POST",
            &format!("/admin/accounts/{}/connections", t.id),
            Some(body),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        r.json()
    };
    let q = connect(
        json!({"app": "quickbooks", "type": "accounting", "connector": "quickbooks", "baseUrl": qb.base_url(),
                           "settings": {"realmId": REALM, "paymentAccountId": "35"}}),
    );
    assert_eq!(q["settings"]["realmId"], REALM);
    connect(
        json!({"app": "xero", "type": "accounting", "connector": "xero", "baseUrl": xero.base_url(),
                   "settings": {"tenantId": TENANT, "paymentAccountCode": "090", "bankLineAccountCode": "429",
                                "bankContactName": "Bank feed"}}),
    );
    connect(
        json!({"app": "hubspot", "type": "crm", "connector": "hubspot", "baseUrl": hs.base_url()}),
    );
    let s = connect(
        json!({"app": "shopify", "type": "commerce", "connector": "shopify", "baseUrl": shop.base_url(),
                           "settings": {"apiVersion": "2025-07"}}),
    );
    assert_eq!(s["objects"], json!(["customer"]));
    Rig {
        _dir: dir,
        _srv: srv,
        c,
        t,
        broker,
        qb,
        xero,
        hs,
        shop,
    }
}

fn target<'a>(sync: &'a Value, app: &str) -> &'a Value {
    sync["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["app"] == app)
        .unwrap_or_else(|| panic!("no {app} in {sync}"))
}

fn push(r: &Rig, method: &str, path: &str, sources: Option<&str>, body: Value) -> (Resp, Value) {
    let mut h = vec![("X-Sync-Data", "push")];
    if let Some(s) = sources {
        h.push(("X-Sync-Sources", s));
    }
    let resp = r.c.api(&r.t, method, path, &h, Some(body));
    assert!(
        matches!(resp.status, 200 | 201),
        "{method} {path}: {} {}",
        resp.status,
        resp.text
    );
    let sync = r.c.wait_sync(&r.t, resp.header("X-Sync-ID").unwrap());
    (resp, sync)
}

fn last(f: &FakeProvider) -> Received {
    f.received().last().cloned().unwrap()
}

#[test]
fn accounting_objects_reach_quickbooks_and_xero_in_their_own_shapes() {
    let r = rig();
    // A customer to every connection: each asks the broker for its token first.
    let (c, s) = push(
        &r,
        "POST",
        "/api/customers",
        None,
        json!({"name": "Acme Ltd", "email": "ap@acme.example.com", "phone": "+1 555 0100", "contactName": "Jo Bloggs",
               "billingAddress": {"line1": "1 Main St", "city": "Springfield", "region": "IL", "postalCode": "62701", "country": "US"}}),
    );
    assert_eq!(s["status"], "succeeded", "{s}");
    let customer = c.json()["id"].as_str().unwrap().to_string();
    let reasons: Vec<Value> = r.broker.received().iter().map(|x| x.json()).collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(reasons
        .iter()
        .all(|b| b["reason"] == "missing" && b["accountId"] == r.t.id.as_str()));
    let qb_customer = target(&s, "quickbooks")["remoteId"]
        .as_str()
        .unwrap()
        .to_string();
    let qc = r.qb.entity("Customer", &qb_customer).unwrap().body;
    assert_eq!(
        (
            qc["DisplayName"].as_str(),
            qc["GivenName"].as_str(),
            qc["FamilyName"].as_str()
        ),
        (Some("Acme Ltd"), Some("Jo"), Some("Bloggs"))
    );
    assert_eq!(qc["BillAddr"]["CountrySubDivisionCode"], "IL");
    let xero_contact = target(&s, "xero")["remoteId"].as_str().unwrap().to_string();
    assert_eq!(
        r.xero.entity("Contacts", &xero_contact).unwrap().body["EmailAddress"],
        "ap@acme.example.com"
    );
    let hs_company = target(&s, "hubspot")["remoteId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        r.hs.entity("companies", &hs_company).unwrap().body["properties"]["name"],
        "Acme Ltd"
    );
    let shop_id = target(&s, "shopify")["remoteId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        r.shop.entity("customers", &shop_id).unwrap().body["phone"],
        "+15550100"
    );
    let q = last(&r.qb);
    let key = q
        .path
        .split("requestid=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    assert!(key.len() <= 50);
    assert!(q
        .header("authorization")
        .unwrap()
        .starts_with("Bearer tok-quickbooks-"));

    // Chart of accounts: an income account to both, an expense account to quickbooks.
    let (a, s) = push(
        &r,
        "POST",
        "/api/accounts",
        Some("accounting"),
        json!({"code": "4000", "name": "Sales", "type": "income"}),
    );
    assert_eq!(s["status"], "succeeded", "{s}");
    let sales = a.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.qb.entity(
            "Account",
            target(&s, "quickbooks")["remoteId"].as_str().unwrap()
        )
        .unwrap()
        .body["AccountType"],
        "Income"
    );
    assert_eq!(
        r.xero
            .entity("Accounts", target(&s, "xero")["remoteId"].as_str().unwrap())
            .unwrap()
            .body["Type"],
        "REVENUE"
    );
    let (e, s) = push(
        &r,
        "POST",
        "/api/accounts",
        Some("quickbooks"),
        json!({"code": "6000", "name": "Office supplies", "type": "expense"}),
    );
    assert_eq!(s["status"], "succeeded", "{s}");
    let supplies = e.json()["id"].as_str().unwrap().to_string();

    // An invoice; QuickBooks throttles the first attempt.
    r.qb.rate_limit_next(1, None);
    let (inv, s) = push(
        &r,
        "POST",
        "/api/invoices",
        Some("accounting"),
        json!({"number": "INV-1001", "customerId": customer, "issueDate": "2026-11-01", "dueDate": "2026-11-30", "currency": "USD",
               "lines": [{"description": "Consulting", "quantity": 2, "unitAmount": 15000, "taxAmount": 2400, "accountId": sales}]}),
    );
    assert_eq!(s["status"], "succeeded", "{s}");
    assert_eq!(
        target(&s, "quickbooks")["attempts"],
        2,
        "the 429 was retried"
    );
    let invoice = inv.json()["id"].as_str().unwrap().to_string();
    let qi =
        r.qb.entity(
            "Invoice",
            target(&s, "quickbooks")["remoteId"].as_str().unwrap(),
        )
        .unwrap()
        .body;
    assert_eq!(qi["CustomerRef"]["value"], qb_customer.as_str());
    assert_eq!(qi["TotalAmt"], 324.0);
    let xi = r
        .xero
        .entity("Invoices", target(&s, "xero")["remoteId"].as_str().unwrap())
        .unwrap()
        .body;
    assert_eq!(xi["LineItems"][0]["AccountCode"], "4000");
    assert_eq!(xi["Contact"]["ContactID"], xero_contact.as_str());
    let throttled: Vec<Received> =
        r.qb.received()
            .into_iter()
            .filter(|x| x.path.contains("/invoice?"))
            .collect();
    assert_eq!(throttled.len(), 2);
    assert_eq!(
        throttled[0].path, throttled[1].path,
        "the same requestid on the retry"
    );

    // A payment of the invoice.
    let (_, s) = push(
        &r,
        "POST",
        &format!("/api/invoices/{invoice}/payments"),
        Some("accounting"),
        json!({"date": "2026-11-20", "reference": "WIRE-7"}),
    );
    assert_eq!(s["status"], "succeeded", "{s}");
    let qp =
        r.qb.entity(
            "Payment",
            target(&s, "quickbooks")["remoteId"].as_str().unwrap(),
        )
        .unwrap()
        .body;
    assert_eq!(qp["Line"][0]["LinkedTxn"][0]["TxnId"], qi["Id"]);
    assert_eq!(qp["TotalAmt"], 324.0);
    let xp = r
        .xero
        .entity("Payments", target(&s, "xero")["remoteId"].as_str().unwrap())
        .unwrap()
        .body;
    assert_eq!(xp["Account"]["Code"], "090");

    // An expense with a new vendor: quickbooks gets the vendor, then the Purchase.
    let (_, s) = push(
        &r,
        "POST",
        "/api/expenses",
        Some("quickbooks"),
        json!({"vendor": {"name": "Paper Supplies Co"}, "date": "2026-11-03", "currency": "USD",
               "lines": [{"description": "Printer paper", "amount": 4599, "accountId": supplies}]}),
    );
    assert_eq!(s["status"], "succeeded", "{s}");
    let purchase =
        r.qb.entity(
            "Purchase",
            target(&s, "quickbooks")["remoteId"].as_str().unwrap(),
        )
        .unwrap()
        .body;
    assert_eq!(purchase["AccountRef"]["value"], "35");
    assert_eq!(purchase["EntityRef"]["type"], "Vendor");
    assert_eq!(
        r.qb.entity("Vendor", purchase["EntityRef"]["value"].as_str().unwrap())
            .unwrap()
            .body["DisplayName"],
        "Paper Supplies Co"
    );
    // Without an account on a line, named explicitly: 422 before anything is stored.
    let bad = r.c.api(&r.t, "POST", "/api/expenses", &[("X-Sync-Data", "push"), ("X-Sync-Sources", "quickbooks")],
        Some(json!({"vendorId": purchase["EntityRef"]["value"], "date": "2026-11-04", "currency": "USD",
                    "lines": [{"description": "Toner", "amount": 1000}]})));
    assert_eq!(bad.status, 422, "{}", bad.text);

    // A bank transaction to xero.
    let (_, s) = push(
        &r,
        "POST",
        "/api/bank-transactions",
        Some("xero"),
        json!({"bankAccount": "090", "date": "2026-11-21", "amount": -4599, "currency": "USD", "description": "Paper Supplies Co", "reference": "tx-2"}),
    );
    assert_eq!(s["status"], "succeeded", "{s}");
    let bt = r
        .xero
        .entity(
            "BankTransactions",
            target(&s, "xero")["remoteId"].as_str().unwrap(),
        )
        .unwrap()
        .body;
    assert_eq!(
        (
            bt["Type"].as_str(),
            bt["LineItems"][0]["UnitAmount"].as_f64()
        ),
        (Some("SPEND"), Some(45.99))
    );

    // The QuickBooks token expires: the update is refused once, a new token is asked for
    // (reason unauthorized), and the update goes through with the SyncToken it needs.
    let before = r.broker.received().len();
    r.qb.expire_token_next();
    let (_, s) = push(
        &r,
        "PATCH",
        &format!("/api/customers/{customer}"),
        Some("quickbooks"),
        json!({"phone": "+1 555 0199"}),
    );
    assert_eq!(s["status"], "succeeded", "{s}");
    assert_eq!(
        target(&s, "quickbooks")["attempts"],
        1,
        "the 401 does not count"
    );
    let asked: Vec<Value> = r.broker.received()[before..]
        .iter()
        .map(|x| x.json())
        .collect();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["reason"], "unauthorized");
    assert_eq!(asked[0]["app"], "quickbooks");
    let updates: Vec<Value> =
        r.qb.received()
            .iter()
            .filter(|x| x.json()["Id"] == qb_customer.as_str())
            .map(|x| x.json())
            .collect();
    assert_eq!(updates.len(), 2);
    assert!(updates
        .iter()
        .all(|u| u["SyncToken"] == "0" && u["sparse"] == true));
    let qc = r.qb.entity("Customer", &qb_customer).unwrap();
    assert_eq!(
        (
            qc.version,
            qc.body["PrimaryPhone"]["FreeFormNumber"].as_str()
        ),
        (1, Some("+1 555 0199"))
    );
    // A second update sends the new SyncToken.
    let (_, s) = push(
        &r,
        "PATCH",
        &format!("/api/customers/{customer}"),
        Some("quickbooks"),
        json!({"phone": "+1 555 0200"}),
    );
    assert_eq!(s["status"], "succeeded", "{s}");
    assert_eq!(r.qb.entity("Customer", &qb_customer).unwrap().version, 2);
}

#[test]
fn crm_and_shop_connectors_report_provider_errors_and_rate_limits() {
    let r = rig();
    // Shopify throttles with a fractional Retry-After; the retry waits for it.
    r.shop.rate_limit_next(1, Some("1.0"));
    let (_, s) = push(
        &r,
        "POST",
        "/api/customers",
        Some("crm,shopify"),
        json!({"name": "Acme Ltd", "email": "ap@acme.example.com", "phone": "+44 20 7946 0000"}),
    );
    assert_eq!(s["status"], "succeeded", "{s}");
    let got = r.shop.received();
    assert_eq!(got.len(), 2);
    assert!(
        got[1].at_ms - got[0].at_ms >= 900,
        "Retry-After: 1.0 honoured"
    );
    assert_eq!(
        got[1]
            .header("x-shopify-access-token")
            .map(|t| t.starts_with("tok-shopify-")),
        Some(true)
    );
    // HubSpot throttles without Retry-After: the push retry schedule applies.
    r.hs.rate_limit_next(1, None);
    let (c, s) = push(
        &r,
        "POST",
        "/api/customers",
        Some("hubspot"),
        json!({"name": "Beta GmbH"}),
    );
    assert_eq!(s["status"], "succeeded", "{s}");
    assert_eq!(target(&s, "hubspot")["attempts"], 2);
    let beta = c.json()["id"].as_str().unwrap().to_string();
    let (_, s) = push(
        &r,
        "PATCH",
        &format!("/api/customers/{beta}"),
        Some("hubspot"),
        json!({"phone": "+49 30 1234567"}),
    );
    assert_eq!(s["status"], "succeeded", "{s}");
    let patch = last(&r.hs);
    assert_eq!(patch.method, "PATCH");
    assert_eq!(
        patch.json(),
        json!({"properties": {"name": "Beta GmbH", "phone": "+49 30 1234567"}})
    );
    // Shopify refuses a duplicate e-mail: the target fails with Shopify's own words.
    let (_, s) = push(
        &r,
        "POST",
        "/api/customers",
        Some("shopify"),
        json!({"name": "Acme Again", "email": "ap@acme.example.com"}),
    );
    assert_eq!(s["status"], "failed", "{s}");
    let t = target(&s, "shopify");
    assert_eq!(t["attempts"], 1);
    assert_eq!(t["lastError"], "HTTP 422: email has already been taken");
    // A phone Shopify cannot take: named, the write is refused; implied, shopify is skipped.
    let bad = r.c.api(
        &r.t,
        "POST",
        "/api/customers",
        &[("X-Sync-Data", "push"), ("X-Sync-Sources", "commerce")],
        Some(json!({"name": "Gamma", "phone": "555 0100"})),
    );
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(bad.json()["errors"][0]["pointer"], "/phone");
    assert!(bad.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .starts_with("shopify requires phone"));
    let before = r.shop.count();
    let (_, s) = push(
        &r,
        "POST",
        "/api/customers",
        None,
        json!({"name": "Gamma", "phone": "555 0100"}),
    );
    assert_eq!(s["status"], "partially_failed", "{s}");
    let t = target(&s, "shopify");
    assert_eq!(
        (t["status"].as_str(), t["attempts"].as_u64()),
        (Some("failed"), Some(0))
    );
    assert!(
        t["lastError"]
            .as_str()
            .unwrap()
            .contains("shopify requires phone in E.164 form"),
        "{t}"
    );
    assert_eq!(target(&s, "hubspot")["status"], "succeeded");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(r.shop.count(), before, "nothing was sent to shopify");
}

#[test]
fn a_broker_that_has_no_token_fails_the_pushes_with_its_reason() {
    let r = rig();
    r.broker.refuse_next(&[503, 404]);
    let (_, s) = push(
        &r,
        "POST",
        "/api/customers",
        Some("hubspot"),
        json!({"name": "Acme Ltd"}),
    );
    assert_eq!(s["status"], "failed", "{s}");
    let t = target(&s, "hubspot");
    assert_eq!(t["attempts"], 0);
    let err = t["lastError"].as_str().unwrap();
    assert!(
        err.starts_with("no access token for hubspot: HTTP 404"),
        "{err}"
    );
    assert_eq!(
        r.broker.received().len(),
        2,
        "the 503 was retried, the 404 was not"
    );
    assert_eq!(r.hs.count(), 0);
    // The next push asks again and goes through.
    let (_, s) = push(
        &r,
        "POST",
        "/api/customers",
        Some("hubspot"),
        json!({"name": "Beta"}),
    );
    assert_eq!(s["status"], "succeeded", "{s}");
}

/// A pushed DELETE through `writesync serve`: each provider does what it supports (QuickBooks
/// deactivates, Xero archives, HubSpot and Shopify delete, the last two with a bodiless
/// `DELETE`), and every target succeeds.
#[test]
fn deletes_reach_each_provider_the_way_it_supports() {
    let r = rig();
    let all = Some("quickbooks,xero,hubspot,shopify");
    let (c, s) = push(
        &r,
        "POST",
        "/api/customers",
        all,
        json!({"name": "Acme Ltd", "email": "ap@acme.example.com", "phone": "+44 20 7946 0000"}),
    );
    assert_eq!(s["status"], "succeeded", "{s}");
    let remote = |app: &str| target(&s, app)["remoteId"].as_str().unwrap().to_string();
    let (qb_id, xero_id, hs_id, shop_id) = (
        remote("quickbooks"),
        remote("xero"),
        remote("hubspot"),
        remote("shopify"),
    );
    let (a, s) = push(
        &r,
        "POST",
        "/api/accounts",
        Some("quickbooks,xero"),
        json!({"code": "6100", "name": "Postage", "type": "expense"}),
    );
    assert_eq!(s["status"], "succeeded", "{s}");
    let (qb_acct, xero_acct) = (
        target(&s, "quickbooks")["remoteId"]
            .as_str()
            .unwrap()
            .to_string(),
        target(&s, "xero")["remoteId"].as_str().unwrap().to_string(),
    );
    let delete = |path: String| {
        let resp =
            r.c.api(&r.t, "DELETE", &path, &[("X-Sync-Data", "push")], None);
        assert_eq!(resp.status, 204, "{path}: {}", resp.text);
        r.c.wait_sync(&r.t, resp.header("X-Sync-ID").unwrap())
    };
    let s = delete(format!(
        "/api/customers/{}",
        c.json()["id"].as_str().unwrap()
    ));
    assert_eq!(s["status"], "succeeded", "{s}");
    assert_eq!(s["targets"].as_array().unwrap().len(), 4, "{s}");
    assert_eq!(
        r.qb.entity("Customer", &qb_id).unwrap().body["Active"],
        false
    );
    assert_eq!(
        r.xero.entity("Contacts", &xero_id).unwrap().body["ContactStatus"],
        "ARCHIVED"
    );
    assert!(r.hs.entity("companies", &hs_id).is_none());
    assert!(r.shop.entity("customers", &shop_id).is_none());
    for (fake, path) in [
        (&r.hs, format!("/crm/v3/objects/companies/{hs_id}")),
        (
            &r.shop,
            format!("/admin/api/2025-07/customers/{shop_id}.json"),
        ),
    ] {
        let sent = last(fake);
        assert_eq!(
            (sent.method.as_str(), sent.path.as_str()),
            ("DELETE", path.as_str())
        );
        assert!(sent.body.is_empty() && sent.header("content-type").is_none());
    }
    let s = delete(format!(
        "/api/accounts/{}",
        a.json()["id"].as_str().unwrap()
    ));
    assert_eq!(s["status"], "succeeded", "{s}");
    assert_eq!(
        r.qb.entity("Account", &qb_acct).unwrap().body["Active"],
        false
    );
    assert_eq!(
        r.xero.entity("Accounts", &xero_acct).unwrap().body["Status"],
        "ARCHIVED"
    );
}
