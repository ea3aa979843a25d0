//! Fixtures shared by the validators' unit tests: a tenant's stored state, assertions on the
//! problems found, bodies to start from and arbitrary JSON for the properties.

use quickcheck::{Arbitrary, Gen};
use serde_json::{json, Map, Value};

use crate::cdm::{FieldCode, FieldError, Invoice, InvoiceStatus, Meta, RefLookup};

use super::fields::Validated;
use super::patch::merge_patch;

/// A tenant's stored state for the tests.
pub(super) struct Refs {
    customers: Vec<&'static str>,
    vendors: Vec<&'static str>,
    accounts: Vec<&'static str>,
    /// (number, invoice id)
    invoice_numbers: Vec<(&'static str, &'static str)>,
    /// (code, account id)
    account_codes: Vec<(&'static str, &'static str)>,
    /// (bank account, external id, transaction id)
    bank: Vec<(&'static str, &'static str, &'static str)>,
}

impl RefLookup for Refs {
    fn customer_exists(&self, id: &str) -> bool {
        self.customers.contains(&id)
    }
    fn vendor_exists(&self, id: &str) -> bool {
        self.vendors.contains(&id)
    }
    fn account_exists(&self, id: &str) -> bool {
        self.accounts.contains(&id)
    }
    fn invoice_number_owner(&self, number: &str) -> Option<String> {
        self.invoice_numbers
            .iter()
            .find(|(n, _)| *n == number)
            .map(|(_, id)| id.to_string())
    }
    fn account_code_owner(&self, code: &str) -> Option<String> {
        self.account_codes
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, id)| id.to_string())
    }
    fn bank_external_id_owner(&self, bank_account: &str, external_id: &str) -> Option<String> {
        self.bank
            .iter()
            .find(|(b, e, _)| *b == bank_account && *e == external_id)
            .map(|(_, _, id)| id.to_string())
    }
}

pub(super) fn refs() -> Refs {
    Refs {
        customers: vec!["c1"],
        vendors: vec!["v1"],
        accounts: vec!["a1", "a2"],
        invoice_numbers: vec![("INV-1", "inv1")],
        account_codes: vec![("4000", "acc1")],
        bank: vec![("DE89", "ext-1", "bt1")],
    }
}

/// (pointer, code) of every problem, in order.
pub(super) fn found(errors: &[FieldError]) -> Vec<(&str, FieldCode)> {
    errors
        .iter()
        .map(|e| (e.pointer.as_str(), e.code))
        .collect()
}

/// Assert that the result failed with exactly these (pointer, code) pairs, in any order.
#[track_caller]
pub(super) fn assert_problems<T: std::fmt::Debug>(
    result: &Validated<T>,
    expected: &[(&str, FieldCode)],
) {
    let errors = match result {
        Ok(v) => panic!("expected problems {expected:?}, got Ok({v:?})"),
        Err(e) => e,
    };
    let mut got = found(errors);
    got.sort_unstable();
    let mut want = expected.to_vec();
    want.sort_unstable();
    assert_eq!(got, want, "all problems: {errors:#?}");
    assert!(errors.iter().all(|e| !e.message.is_empty()));
}

pub(super) fn invoice_with(lines: Value) -> Value {
    json!({
        "number": "INV-2",
        "customerId": "c1",
        "issueDate": "2024-03-01",
        "dueDate": "2024-03-31",
        "currency": "EUR",
        "lines": lines,
    })
}

pub(super) fn one_line(quantity: Value, unit_amount: i64) -> Value {
    invoice_with(json!([{"description": "x", "quantity": quantity, "unitAmount": unit_amount}]))
}

pub(super) fn stored_invoice(total: i64, paid: i64, status: InvoiceStatus) -> Invoice {
    Invoice {
        meta: Meta {
            id: "inv1".into(),
            version: 1,
            ..Meta::default()
        },
        currency: "EUR".into(),
        total,
        amount_paid: paid,
        balance: total - paid,
        status,
        ..Invoice::default()
    }
}

pub(super) fn expense_with(vendor: Value) -> Value {
    let mut body = json!({
        "date": "2024-05-05",
        "currency": "GBP",
        "lines": [
            {"description": "Paper", "amount": 1250, "accountId": "a1"},
            {"description": "Ink", "amount": 3000},
        ],
    });
    merge_patch(&mut body, &vendor);
    body
}

/// JSON-ish input biased towards the CDM's field names and edge values.
#[derive(Debug, Clone)]
pub(super) struct AnyJson(pub(super) Value);

pub(super) const KEYS: &[&str] = &[
    "name",
    "email",
    "phone",
    "contactName",
    "billingAddress",
    "address",
    "line1",
    "country",
    "code",
    "type",
    "active",
    "description",
    "number",
    "customerId",
    "issueDate",
    "dueDate",
    "currency",
    "lines",
    "quantity",
    "unitAmount",
    "accountId",
    "taxAmount",
    "amount",
    "total",
    "amountPaid",
    "balance",
    "status",
    "memo",
    "vendorId",
    "vendor",
    "date",
    "reference",
    "bankAccount",
    "externalId",
    "invoiceId",
    "id",
    "version",
    "a/b~c",
    "",
];

pub(super) const STRINGS: &[&str] = &[
    "",
    " ",
    "c1",
    "v1",
    "a1",
    "INV-1",
    "4000",
    "DE89",
    "ext-1",
    "EUR",
    "eur",
    "XXXX",
    "2024-02-29",
    "2023-02-29",
    "9999-12-31",
    "0000-01-01",
    "a@b.co",
    "@",
    "void",
    "paid",
    "open",
    "asset",
    "DE",
    "~/",
    "\u{0}",
    "é",
];

pub(super) fn any_number(g: &mut Gen) -> Value {
    match u8::arbitrary(g) % 8 {
        0 => json!(i64::arbitrary(g)),
        1 => json!(u64::arbitrary(g)),
        2 => json!(i64::arbitrary(g) % 1000),
        3 => serde_json::Number::from_f64(f64::arbitrary(g))
            .map(Value::Number)
            .unwrap_or(Value::Null),
        4 => json!(f64::from(i32::arbitrary(g) % 100_000) / 1000.0),
        5 => json!(i64::MAX),
        6 => json!(i64::MIN),
        _ => json!(1e-7),
    }
}

pub(super) fn any_json(g: &mut Gen, depth: u32) -> Value {
    let pick = u8::arbitrary(g) % if depth == 0 { 5 } else { 8 };
    match pick {
        0 => Value::Null,
        1 => Value::Bool(bool::arbitrary(g)),
        2 => any_number(g),
        3 => json!(g.choose(STRINGS).copied().unwrap_or("")),
        4 => Value::String(String::arbitrary(g)),
        5 => {
            let n = usize::from(u8::arbitrary(g) % 4);
            Value::Array((0..n).map(|_| any_json(g, depth - 1)).collect())
        }
        _ => {
            let n = usize::from(u8::arbitrary(g) % 8);
            let mut map = Map::new();
            for _ in 0..n {
                let key = if bool::arbitrary(g) {
                    g.choose(KEYS).copied().unwrap_or("").to_string()
                } else {
                    String::arbitrary(g)
                };
                map.insert(key, any_json(g, depth - 1));
            }
            Value::Object(map)
        }
    }
}

impl Arbitrary for AnyJson {
    fn arbitrary(g: &mut Gen) -> Self {
        AnyJson(any_json(g, 4))
    }
}
