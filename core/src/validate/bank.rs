//! Bank transactions, one or a batch of them.

use std::collections::BTreeMap;

use crate::cdm::{codes, BankTransaction, Meta, RefLookup};
use crate::json::Json;

use super::fields::{
    child, element, type_name, Document, Obj, Problems, Validated, MAX_REF, MAX_TEXT,
};

/// The fields of a bank transaction besides [`SERVER_FIELDS`].
const BANK_FIELDS: &[&str] = &[
    "bankAccount",
    "date",
    "amount",
    "currency",
    "description",
    "reference",
    "externalId",
];

/// One bank transaction at `ptr`.
fn bank_transaction(v: &Json, ptr: &str, p: &mut Problems) -> Option<BankTransaction> {
    let o = Obj::new(v, ptr.into(), "a bank transaction", p)?;
    let bank_account = o.req_text("bankAccount", MAX_REF, p);
    let date = o.req_date("date", p);
    let amount = o.req_int("amount", p);
    let currency = o.req_currency("currency", p);
    let description = o.req_text("description", MAX_TEXT, p);
    let reference = o.opt_text("reference", MAX_REF, p);
    let external_id = o.opt_text("externalId", MAX_REF, p).filter(|e| {
        let ok = !e.trim().is_empty();
        if !ok {
            p.add(
                o.at("externalId"),
                codes::INVALID_FORMAT,
                "`externalId` must not be blank (omit it instead)",
            );
        }
        ok
    });
    o.unknown_fields(BANK_FIELDS, true, p);
    Some(BankTransaction {
        meta: Meta::default(),
        bank_account: bank_account.unwrap_or_default(),
        date: date.map(|(s, _)| s).unwrap_or_default(),
        amount: amount.unwrap_or_default(),
        currency: currency.unwrap_or_default(),
        description: description.unwrap_or_default(),
        reference,
        external_id,
    })
}

/// Validate one bank transaction object or an array of them.
///
/// An array holds at most `max_batch` items (more is `too_long` at `""`, and the items are not
/// examined); an empty array is `too_few` at `""`. For an array, pointers are prefixed with
/// `/<index>`. `externalId` is unique per `bankAccount`, against the stored transactions
/// (`refs.bank_external_id_owner`) and within the same array (`duplicate` at the later item's
/// `externalId`). Returns the list (one element for a single object) and whether the input was
/// an array.
pub fn validate_bank_transactions(
    body: &(impl Document + ?Sized),
    refs: &dyn RefLookup,
    max_batch: usize,
) -> Validated<(Vec<BankTransaction>, bool)> {
    validate_bank_transactions_doc(&body.doc(), refs, max_batch)
}

/// [`validate_bank_transactions`] on a parsed document (one body of code whatever the caller's input type).
fn validate_bank_transactions_doc(
    body: &Json<'_>,
    refs: &dyn RefLookup,
    max_batch: usize,
) -> Validated<(Vec<BankTransaction>, bool)> {
    let mut p = Problems::default();
    let (items, is_array): (Vec<(String, &Json)>, bool) = match body {
        Json::Array(items) => {
            if items.is_empty() {
                p.add("", codes::TOO_FEW, "the array holds no bank transaction");
                return Err(p.0);
            }
            if items.len() > max_batch {
                p.add(
                    "",
                    codes::TOO_LONG,
                    format!(
                        "{} bank transactions sent, at most {max_batch} are allowed in one request",
                        items.len()
                    ),
                );
                return Err(p.0);
            }
            let listed = items
                .iter()
                .enumerate()
                .map(|(i, v)| (element("", i), v))
                .collect();
            (listed, true)
        }
        Json::Object(_) => (vec![(String::new(), body)], false),
        other => {
            p.add(
                "",
                codes::INVALID_TYPE,
                format!(
                    "a bank transaction must be a JSON object or an array of them, not {}",
                    type_name(other)
                ),
            );
            return Err(p.0);
        }
    };
    let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut out = Vec::with_capacity(items.len());
    for (ptr, v) in items {
        let Some(tx) = bank_transaction(v, &ptr, &mut p) else {
            continue;
        };
        if let Some(ext) = &tx.external_id {
            if !tx.bank_account.is_empty() {
                let ext_ptr = child(&ptr, "externalId");
                if refs.bank_external_id_owner(&tx.bank_account, ext).is_some() {
                    p.add(
                        ext_ptr.clone(),
                        codes::DUPLICATE,
                        format!(
                            "a bank transaction with externalId `{ext}` already exists on bank account `{}`",
                            tx.bank_account
                        ),
                    );
                }
                let key = (tx.bank_account.clone(), ext.clone());
                match seen.get(&key) {
                    Some(first) => p.add(
                        ext_ptr,
                        codes::DUPLICATE,
                        format!("externalId `{ext}` repeats the one at {first} for the same bank account"),
                    ),
                    None => {
                        seen.insert(key, ext_ptr);
                    }
                }
            }
        }
        out.push(tx);
    }
    if p.is_empty() {
        Ok((out, is_array))
    } else {
        Err(p.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::validate::test_support::*;
    use serde_json::{json, Value};

    fn tx(ext: Option<&str>) -> Value {
        let mut v = json!({"bankAccount": "DE89", "date": "2024-06-01", "amount": -4599,
            "currency": "EUR", "description": "Card payment"});
        if let Some(e) = ext {
            v["externalId"] = json!(e);
        }
        v
    }

    #[test]
    fn bank_single_and_array() {
        let (list, is_array) = validate_bank_transactions(&tx(Some("ext-9")), &refs(), 10).unwrap();
        assert!(!is_array);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].amount, -4599);
        assert_eq!(list[0].external_id.as_deref(), Some("ext-9"));
        let body = json!([tx(Some("a")), tx(Some("b")), tx(None), tx(None)]);
        let (list, is_array) = validate_bank_transactions(&body, &refs(), 4).unwrap();
        assert!(is_array);
        assert_eq!(list.len(), 4);
        // The same externalId on another bank account is fine.
        let mut other = tx(Some("ext-1"));
        other["bankAccount"] = json!("GB33");
        assert!(validate_bank_transactions(&json!([other, tx(Some("ext-2"))]), &refs(), 5).is_ok());
    }

    #[test]
    fn bank_batch_limits_and_shapes() {
        assert_problems(
            &validate_bank_transactions(&json!([]), &refs(), 10),
            &[("", codes::TOO_FEW)],
        );
        let body = json!([tx(None), tx(None), tx(None)]);
        assert_problems(
            &validate_bank_transactions(&body, &refs(), 2),
            &[("", codes::TOO_LONG)],
        );
        assert_problems(
            &validate_bank_transactions(&json!("x"), &refs(), 2),
            &[("", codes::INVALID_TYPE)],
        );
        assert_problems(
            &validate_bank_transactions(&json!([tx(None), 5]), &refs(), 2),
            &[("/1", codes::INVALID_TYPE)],
        );
    }

    #[test]
    fn bank_problems_carry_the_index() {
        let mut bad = tx(Some(" "));
        bad["amount"] = json!(1.25);
        bad["currency"] = json!("XYZ");
        bad["bankAccount"] = json!("b".repeat(256));
        bad["reference"] = json!(1);
        bad["date"] = json!("2024-06-31");
        bad["memo"] = json!("x");
        let body = json!([tx(None), bad, {}]);
        assert_problems(
            &validate_bank_transactions(&body, &refs(), 10),
            &[
                ("/1/amount", codes::INVALID_TYPE),
                ("/1/currency", codes::INVALID_VALUE),
                ("/1/bankAccount", codes::TOO_LONG),
                ("/1/reference", codes::INVALID_TYPE),
                ("/1/date", codes::INVALID_VALUE),
                ("/1/memo", codes::UNKNOWN_FIELD),
                ("/1/externalId", codes::INVALID_FORMAT),
                ("/2/bankAccount", codes::REQUIRED),
                ("/2/date", codes::REQUIRED),
                ("/2/amount", codes::REQUIRED),
                ("/2/currency", codes::REQUIRED),
                ("/2/description", codes::REQUIRED),
            ],
        );
    }

    #[test]
    fn bank_external_id_unique_per_account() {
        assert_problems(
            &validate_bank_transactions(&tx(Some("ext-1")), &refs(), 10),
            &[("/externalId", codes::DUPLICATE)],
        );
        let body = json!([
            tx(Some("n1")),
            tx(Some("n2")),
            tx(Some("n1")),
            tx(Some("ext-1"))
        ]);
        let r = validate_bank_transactions(&body, &refs(), 10);
        assert_problems(
            &r,
            &[
                ("/2/externalId", codes::DUPLICATE),
                ("/3/externalId", codes::DUPLICATE),
            ],
        );
        let errors = r.unwrap_err();
        assert!(
            errors[0].message.contains("/0/externalId"),
            "{}",
            errors[0].message
        );
    }
}
