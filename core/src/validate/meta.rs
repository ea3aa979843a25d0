//! The fields of each CDM object type as `GET /api/meta/{objectType}` describes them: one
//! table per type, checked against the validators by the tests below (every required field is
//! `required` when missing, every length limit is refused one character over, every listed
//! value accepted and others refused, every field known to its validator), so the table and
//! the rules cannot drift apart.

use serde::Serialize;

use crate::cdm::ObjectType;

use super::fields::{MAX_CODE, MAX_EMAIL, MAX_REF, MAX_TEXT};

/// One field of a CDM object type.
///
/// `type` is `string`, `email` (an e-mail address), `date` (`YYYY-MM-DD`), `currency` (an
/// active ISO 4217 code), `integer` (money in minor units), `number` (a decimal quantity),
/// `boolean`, `object` or `array`. A field under a list has `*` for the list's index
/// (`/lines/*/description`); a field under an object is required when that object is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldSpec {
    /// JSON Pointer of the field in the object.
    pub pointer: &'static str,
    /// Its type (see above).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Whether a write without it is `422` (`required`).
    pub required: bool,
    /// Its longest length in characters, for strings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// The values it takes, when they are a fixed list.
    #[serde(rename = "enum", skip_serializing_if = "Option::is_none")]
    pub values: Option<&'static [&'static str]>,
}

const fn f(pointer: &'static str, kind: &'static str, required: bool, max: usize) -> FieldSpec {
    FieldSpec {
        pointer,
        kind,
        required,
        max_length: if max == 0 { None } else { Some(max) },
        values: None,
    }
}

const fn one_of(
    pointer: &'static str,
    required: bool,
    values: &'static [&'static str],
) -> FieldSpec {
    FieldSpec {
        pointer,
        kind: "string",
        required,
        max_length: None,
        values: Some(values),
    }
}

/// An address's members under `$p` (`/billingAddress`, `/address`, `/vendor/address`).
macro_rules! address {
    ($p:literal) => {
        [
            f($p, "object", false, 0),
            f(concat!($p, "/line1"), "string", false, MAX_REF),
            f(concat!($p, "/line2"), "string", false, MAX_REF),
            f(concat!($p, "/city"), "string", false, MAX_REF),
            f(concat!($p, "/region"), "string", false, MAX_REF),
            f(concat!($p, "/postalCode"), "string", false, MAX_CODE),
            // ISO 3166-1 alpha-2.
            f(concat!($p, "/country"), "string", false, 2),
        ]
    };
}

const CUSTOMER_ADDRESS: [FieldSpec; 7] = address!("/billingAddress");
const VENDOR_ADDRESS: [FieldSpec; 7] = address!("/address");
const NEW_VENDOR_ADDRESS: [FieldSpec; 7] = address!("/vendor/address");

const CUSTOMER: [FieldSpec; 4] = [
    f("/name", "string", true, MAX_TEXT),
    f("/email", "email", false, MAX_EMAIL),
    f("/phone", "string", false, MAX_CODE),
    f("/contactName", "string", false, MAX_TEXT),
];

const VENDOR: [FieldSpec; 3] = [
    f("/name", "string", true, MAX_TEXT),
    f("/email", "email", false, MAX_EMAIL),
    f("/phone", "string", false, MAX_CODE),
];

const NEW_VENDOR: [FieldSpec; 4] = [
    f("/vendor", "object", false, 0),
    f("/vendor/name", "string", true, MAX_TEXT),
    f("/vendor/email", "email", false, MAX_EMAIL),
    f("/vendor/phone", "string", false, MAX_CODE),
];

const ACCOUNT: [FieldSpec; 5] = [
    f("/code", "string", true, MAX_CODE),
    f("/name", "string", true, MAX_TEXT),
    one_of(
        "/type",
        true,
        &["asset", "liability", "equity", "income", "expense"],
    ),
    f("/description", "string", false, MAX_TEXT),
    f("/active", "boolean", false, 0),
];

const INVOICE: [FieldSpec; 17] = [
    f("/number", "string", true, MAX_CODE),
    f("/customerId", "string", true, MAX_REF),
    f("/issueDate", "date", true, 0),
    f("/dueDate", "date", true, 0),
    f("/currency", "currency", true, 0),
    f("/lines", "array", true, 0),
    f("/lines/*/description", "string", true, MAX_TEXT),
    f("/lines/*/quantity", "number", true, 0),
    f("/lines/*/unitAmount", "integer", true, 0),
    f("/lines/*/accountId", "string", false, MAX_REF),
    f("/lines/*/taxAmount", "integer", false, 0),
    f("/lines/*/amount", "integer", false, 0),
    f("/memo", "string", false, MAX_TEXT),
    f("/total", "integer", false, 0),
    f("/amountPaid", "integer", false, 0),
    f("/balance", "integer", false, 0),
    one_of("/status", false, &["open", "paid", "void"]),
];

const PAYMENT: [FieldSpec; 5] = [
    f("/amount", "integer", false, 0),
    f("/date", "date", true, 0),
    f("/reference", "string", false, MAX_REF),
    f("/invoiceId", "string", false, MAX_REF),
    f("/currency", "currency", false, 0),
];

const EXPENSE: [FieldSpec; 9] = [
    // Required unless `vendor` (a new vendor) is sent instead.
    f("/vendorId", "string", false, MAX_REF),
    f("/date", "date", true, 0),
    f("/currency", "currency", true, 0),
    f("/lines", "array", true, 0),
    f("/lines/*/description", "string", true, MAX_TEXT),
    f("/lines/*/amount", "integer", true, 0),
    f("/lines/*/accountId", "string", false, MAX_REF),
    f("/memo", "string", false, MAX_TEXT),
    f("/total", "integer", false, 0),
];

const BANK_TRANSACTION: [FieldSpec; 7] = [
    f("/bankAccount", "string", true, MAX_REF),
    f("/date", "date", true, 0),
    f("/amount", "integer", true, 0),
    f("/currency", "currency", true, 0),
    f("/description", "string", true, MAX_TEXT),
    f("/reference", "string", false, MAX_REF),
    f("/externalId", "string", false, MAX_REF),
];

/// The fields of an object type, besides `id`, `version`, `createdAt` and `updatedAt`, which
/// every stored object carries. Parts: the object's own, then its nested objects'.
fn parts(t: ObjectType) -> [&'static [FieldSpec]; 3] {
    match t {
        ObjectType::Customer => [&CUSTOMER, &CUSTOMER_ADDRESS, &[]],
        ObjectType::Vendor => [&VENDOR, &VENDOR_ADDRESS, &[]],
        ObjectType::Account => [&ACCOUNT, &[], &[]],
        ObjectType::Invoice => [&INVOICE, &[], &[]],
        ObjectType::Payment => [&PAYMENT, &[], &[]],
        ObjectType::Expense => [&EXPENSE, &NEW_VENDOR, &NEW_VENDOR_ADDRESS],
        ObjectType::BankTransaction => [&BANK_TRANSACTION, &[], &[]],
    }
}

/// The fields of an object type (see [`FieldSpec`]), besides `id`, `version`, `createdAt`
/// and `updatedAt`, which every stored object carries.
pub fn fields(t: ObjectType) -> Vec<FieldSpec> {
    parts(t).concat()
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::test_support::{refs, stored_invoice};
    use super::super::{
        validate_account, validate_bank_transactions, validate_customer, validate_expense,
        validate_invoice, validate_vendor,
    };
    use super::*;
    use crate::cdm::{codes, FieldCode, FieldError, InvoiceStatus};
    use crate::validate::payment::validate_payment;

    /// A body with every field of the type set to a valid value.
    fn full(t: ObjectType) -> Value {
        let address = json!({"line1": "1 High St", "line2": "Floor 2", "city": "London",
                             "region": "Greater London", "postalCode": "EC1A 1AA", "country": "GB"});
        match t {
            ObjectType::Customer => json!({"name": "Acme", "email": "ap@acme.example.com",
                "phone": "+44 20 7946 0000", "contactName": "Jo Bloggs", "billingAddress": address}),
            ObjectType::Vendor => json!({"name": "Paper Co", "email": "b@paper.example.com",
                "phone": "+1 555 0100", "address": address}),
            ObjectType::Account => json!({"code": "6000", "name": "Supplies", "type": "expense",
                "description": "Paper", "active": true}),
            ObjectType::Invoice => json!({"number": "INV-9", "customerId": "c1",
                "issueDate": "2024-03-01", "dueDate": "2024-03-31", "currency": "EUR",
                "lines": [{"description": "x", "quantity": 2, "unitAmount": 500, "accountId": "a1",
                           "taxAmount": 100, "amount": 1100}],
                "memo": "m", "total": 1100, "amountPaid": 0, "balance": 1100, "status": "open"}),
            ObjectType::Payment => json!({"amount": 500, "date": "2024-03-05", "reference": "R1",
                "invoiceId": "inv1", "currency": "EUR"}),
            ObjectType::Expense => {
                json!({"vendorId": "v1", "date": "2024-05-05", "currency": "GBP",
                "lines": [{"description": "Paper", "amount": 1250, "accountId": "a1"}],
                "memo": "m", "total": 1250})
            }
            ObjectType::BankTransaction => json!({"bankAccount": "DE89", "date": "2024-05-05",
                "amount": -1250, "currency": "EUR", "description": "Paper", "reference": "r",
                "externalId": "ext-9"}),
        }
    }

    /// An expense with a new vendor (for the `/vendor/...` fields).
    fn with_new_vendor() -> Value {
        let mut body = full(ObjectType::Expense);
        let o = body.as_object_mut().unwrap();
        o.remove("vendorId");
        o.insert(
            "vendor".into(),
            json!({"name": "New Co", "email": "n@new.example.com", "phone": "1",
                   "address": full(ObjectType::Vendor)["address"].clone()}),
        );
        body
    }

    fn validate(t: ObjectType, body: &Value) -> Vec<FieldError> {
        let r = refs();
        let errors = |e: Option<Vec<FieldError>>| e.unwrap_or_default();
        match t {
            ObjectType::Customer => errors(validate_customer(body, &r, None).err()),
            ObjectType::Vendor => errors(validate_vendor(body, "").err()),
            ObjectType::Account => errors(validate_account(body, &r, None).err()),
            ObjectType::Invoice => errors(validate_invoice(body, &r, None, 0).err()),
            ObjectType::Payment => {
                let invoice = stored_invoice(1000, 0, InvoiceStatus::Open);
                errors(validate_payment(body, &invoice).err())
            }
            ObjectType::Expense => errors(validate_expense(body, &r).err()),
            ObjectType::BankTransaction => errors(validate_bank_transactions(body, &r, 10).err()),
        }
    }

    /// The pointer with `*` as element 0.
    fn concrete(pointer: &str) -> String {
        pointer.replace("/*/", "/0/")
    }

    /// The sample body a field is tested on.
    fn sample(t: ObjectType, pointer: &str) -> Value {
        if pointer.split('/').nth(1) == Some("vendor") {
            with_new_vendor()
        } else {
            full(t)
        }
    }

    fn set(body: &mut Value, pointer: &str, v: Option<Value>) {
        let p = concrete(pointer);
        let (parent, key) = p.rsplit_once('/').unwrap();
        let o = body.pointer_mut(parent).unwrap().as_object_mut().unwrap();
        match v {
            Some(v) => o.insert(key.to_string(), v),
            None => o.remove(key),
        };
    }

    fn has(errors: &[FieldError], pointer: &str, code: Option<FieldCode>) -> bool {
        let p = concrete(pointer);
        errors
            .iter()
            .any(|e| e.pointer == p && code.is_none_or(|c| e.code == c))
    }

    /// A string of `n` characters that is otherwise valid for the field.
    fn text_of(kind: &str, n: usize) -> Value {
        match kind {
            "email" => json!(format!("{}@example.com", "a".repeat(n.saturating_sub(12)))),
            _ => json!("A".repeat(n)),
        }
    }

    #[test]
    fn the_tables_say_what_the_validators_check() {
        for t in ObjectType::ALL {
            let specs = fields(t);
            assert!(
                validate(t, &full(t)).is_empty(),
                "{t:?}: the full sample is valid"
            );
            if t == ObjectType::Expense {
                assert!(validate(t, &with_new_vendor()).is_empty());
            }
            for spec in &specs {
                let at = format!("{t:?} {}", spec.pointer);
                let base = sample(t, spec.pointer);
                // Missing: `required` exactly when the table says so (`vendorId` is required
                // only without a new `vendor`).
                let mut body = base.clone();
                set(&mut body, spec.pointer, None);
                let errors = validate(t, &body);
                let required = has(&errors, spec.pointer, Some(codes::REQUIRED));
                if spec.pointer == "/vendorId" {
                    assert!(required && !spec.required, "{at}");
                } else {
                    assert_eq!(required, spec.required, "{at}: {errors:?}");
                }
                // The wrong JSON type: known to the validator, refused at the pointer.
                let wrong = match spec.kind {
                    "integer" | "number" | "boolean" => json!("7"),
                    _ => json!(7),
                };
                let mut body = base.clone();
                set(&mut body, spec.pointer, Some(wrong));
                let errors = validate(t, &body);
                assert!(
                    has(&errors, spec.pointer, Some(codes::INVALID_TYPE)),
                    "{at}: {errors:?}"
                );
                // The length limit: not too long at the limit, refused over it.
                if let Some(max) = spec.max_length {
                    let mut body = base.clone();
                    set(&mut body, spec.pointer, Some(text_of(spec.kind, max + 1)));
                    assert!(has(&validate(t, &body), spec.pointer, None), "{at} over");
                    let mut body = base.clone();
                    set(&mut body, spec.pointer, Some(text_of(spec.kind, max)));
                    let errors = validate(t, &body);
                    assert!(
                        !has(&errors, spec.pointer, Some(codes::TOO_LONG)),
                        "{at}: {errors:?}"
                    );
                }
                // Listed values are taken as values, others refused.
                if let Some(values) = spec.values {
                    for v in values {
                        let mut body = base.clone();
                        set(&mut body, spec.pointer, Some(json!(v)));
                        let errors = validate(t, &body);
                        assert!(
                            !has(&errors, spec.pointer, Some(codes::INVALID_VALUE)),
                            "{at} {v}: {errors:?}"
                        );
                    }
                    let mut body = base.clone();
                    set(&mut body, spec.pointer, Some(json!("bogus")));
                    assert!(
                        has(
                            &validate(t, &body),
                            spec.pointer,
                            Some(codes::INVALID_VALUE)
                        ),
                        "{at}"
                    );
                }
            }
            // And the other way: every member of the full samples is in the table.
            let mut samples = vec![full(t)];
            if t == ObjectType::Expense {
                samples.push(with_new_vendor());
            }
            for s in samples {
                for p in leaves(&s, String::new()) {
                    assert!(
                        specs.iter().any(|x| x.pointer == p),
                        "{t:?}: {p} is not in the table"
                    );
                }
            }
        }
    }

    /// Every member's pointer (list elements as `*`).
    fn leaves(v: &Value, at: String) -> Vec<String> {
        let mut out = Vec::new();
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let p = format!("{at}/{k}");
                    out.push(p.clone());
                    out.extend(leaves(x, p));
                }
            }
            Value::Array(items) => {
                for x in items {
                    out.extend(leaves(x, format!("{at}/*")));
                }
            }
            _ => {}
        }
        out.sort();
        out.dedup();
        out
    }

    /// What the connectors require and ignore names fields of these tables (a requirement is
    /// one the CDM does not already make), and the settings they need are theirs.
    #[test]
    fn connector_tables_name_cdm_fields() {
        let contacts: std::collections::BTreeMap<String, String> =
            [("customerObject".to_string(), "contacts".to_string())].into();
        for c in crate::connectors::registry() {
            for settings in [Default::default(), contacts.clone()] {
                for t in ObjectType::ALL {
                    let specs = fields(t);
                    let spec = |p: &str| specs.iter().find(|f| f.pointer == p).copied();
                    let needs = c.needs(t, &settings);
                    for (p, why) in needs.fields {
                        let f = spec(p).unwrap_or_else(|| panic!("{c:?} {t:?} needs {p}"));
                        assert!(!f.required && !why.is_empty(), "{c:?} {t:?} {p}");
                    }
                    for p in c.ignores(t, &settings) {
                        assert!(spec(p).is_some(), "{c:?} {t:?} ignores {p}");
                    }
                    for name in needs.settings {
                        assert!(c.settings().iter().any(|s| s.name == *name), "{name}");
                    }
                    if !c.objects().contains(&t) {
                        assert_eq!(needs, crate::connectors::Needs::default());
                    }
                }
            }
        }
    }

    #[test]
    fn fields_serialize_as_the_contract_names_them() {
        let v = serde_json::to_value(fields(ObjectType::Account)).unwrap();
        assert_eq!(
            v[0],
            json!({"pointer": "/code", "type": "string", "required": true, "maxLength": MAX_CODE})
        );
        assert_eq!(v[2]["enum"][0], "asset");
        assert!(v[4].get("maxLength").is_none() && v[4].get("enum").is_none());
    }
}
