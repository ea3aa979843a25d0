//! Validators of the Common Data Model (section 3 of the HTTP contract).
//!
//! Every validator walks a `serde_json::Value` instead of deserialising it with serde, so that it
//! can report *every* problem of a body, each with a JSON Pointer (RFC 6901) into the body, a
//! stable code from [`codes`](crate::cdm::codes) and a message for people. A validator never
//! panics, whatever the input: money arithmetic is checked and an overflow is reported as
//! [`codes::OVERFLOW`](crate::cdm::codes::OVERFLOW).
//!
//! Rules common to every object:
//!
//! - A body that is not a JSON object (where one is required) gives a single `invalid_type` at
//!   the object's pointer.
//! - The server-managed fields [`SERVER_FIELDS`] are ignored on input (on top-level objects and
//!   on the nested `vendor` of an expense); any other field the object does not have is
//!   `unknown_field` at its pointer. Nested parts (lines, addresses) accept no server fields.
//! - `null` for an optional field means the field is absent; for a required field it is
//!   `required`.
//! - A required string that is empty after trimming whitespace is `required`. Strings are
//!   stored as sent (not trimmed). Lengths are counted in Unicode scalar values: see
//!   [`MAX_TEXT`], [`MAX_CODE`], [`MAX_REF`], [`MAX_EMAIL`]; a longer string is `too_long`.
//! - Money is a JSON integer in minor units that fits a signed 64-bit integer: a float or a
//!   string is `invalid_type`, an integer beyond the 64-bit range is `out_of_range`.
//! - Dates are `YYYY-MM-DD` (`invalid_format` otherwise) and must be real calendar dates
//!   (`invalid_value` for e.g. `2023-02-29`).
//! - Currencies are three uppercase ASCII letters (`invalid_format` otherwise) that are an active
//!   ISO 4217 code ([`ISO_4217_ACTIVE`]; `invalid_value` otherwise).
//!
//! The module is split along its seams and layered: each file imports only from files below it
//! in this table, never from one above it.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | this public surface, re-exported from the files below |
//! | `meta.rs` | the fields of each object type for `GET /api/meta/{type}`, tested against the validators |
//! | `party.rs`, `account.rs`, `invoice.rs`, `payment.rs`, `expense.rs`, `bank.rs` | one object validator each (an expense nests a vendor of `party.rs`) |
//! | `patch.rs` | JSON Pointer tokens, merge patch, server-field stripping |
//! | `test_support.rs` | (tests only) fixtures shared by the unit tests of the files above |
//! | `fields.rs` | the input [`Document`], problem collection, field readers, the limits and currencies |
//! | `decimal.rs` | exact decimal quantities and checked money arithmetic |

mod account;
mod bank;
mod decimal;
mod expense;
mod fields;
mod invoice;
pub mod meta;
mod party;
mod patch;
mod payment;
#[cfg(test)]
mod test_support;

pub use account::validate_account;
pub use bank::validate_bank_transactions;
pub use decimal::MAX_QUANTITY_SCALE;
pub use expense::validate_expense;
pub use fields::{
    Document, Validated, ISO_4217_ACTIVE, MAX_CODE, MAX_EMAIL, MAX_REF, MAX_TEXT, SERVER_FIELDS,
};
pub use invoice::validate_invoice;
pub use party::{validate_customer, validate_vendor};
pub use patch::{merge_patch, pointer_token, strip_server_fields};
pub use payment::validate_payment;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::cdm::{codes, Invoice, InvoiceStatus};
    use quickcheck::QuickCheck;
    use serde_json::json;

    #[test]
    fn non_object_bodies_are_one_invalid_type() {
        for body in [json!([]), json!("x"), json!(1), json!(null), json!(true)] {
            let r = validate_customer(&body, &refs(), None);
            assert_problems(&r, &[("", codes::INVALID_TYPE)]);
            assert_problems(&validate_vendor(&body, ""), &[("", codes::INVALID_TYPE)]);
            assert_problems(
                &validate_account(&body, &refs(), None),
                &[("", codes::INVALID_TYPE)],
            );
            assert_problems(
                &validate_invoice(&body, &refs(), None, 0),
                &[("", codes::INVALID_TYPE)],
            );
            assert_problems(
                &validate_payment(&body, &Invoice::default()),
                &[("", codes::INVALID_TYPE)],
            );
            assert_problems(
                &validate_expense(&body, &refs()),
                &[("", codes::INVALID_TYPE)],
            );
        }
    }

    fn prop_validators_never_panic(input: AnyJson, patch: AnyJson) -> bool {
        let r = refs();
        let v = &input.0;
        // Also patch the input into valid objects, so that deep checks are reached.
        let mut invoice = one_line(json!(1.5), 100);
        merge_patch(&mut invoice, v);
        let mut expense = expense_with(json!({"vendorId": "v1"}));
        merge_patch(&mut expense, v);
        let mut customer = json!({"name": "n"});
        merge_patch(&mut customer, v);
        let stored = stored_invoice(100, 10, InvoiceStatus::Open);
        for body in [v, &invoice, &expense, &customer] {
            let _ = validate_customer(body, &r, Some("c1"));
            let _ = validate_vendor(body, "/vendor");
            let _ = validate_account(body, &r, None);
            let _ = validate_invoice(body, &r, Some("inv1"), 7);
            let _ = validate_invoice(body, &r, None, i64::MAX);
            let _ = validate_payment(body, &stored);
            let _ = validate_expense(body, &r);
            let _ = validate_bank_transactions(body, &r, 3);
            let mut copy = body.clone();
            strip_server_fields(&mut copy);
            merge_patch(&mut copy, &patch.0);
        }
        let lines = invoice_with(json!([v.clone(), v.clone()]));
        let _ = validate_invoice(&lines, &r, None, 0);
        true
    }

    #[test]
    fn quickcheck_validators_never_panic() {
        QuickCheck::new()
            .tests(1000)
            .quickcheck(prop_validators_never_panic as fn(AnyJson, AnyJson) -> bool);
    }

    fn prop_merge_patch_idempotent(target: AnyJson, patch: AnyJson) -> bool {
        let mut once = target.0.clone();
        merge_patch(&mut once, &patch.0);
        let mut twice = once.clone();
        merge_patch(&mut twice, &patch.0);
        once == twice
    }

    #[test]
    fn quickcheck_merge_patch_is_idempotent() {
        QuickCheck::new()
            .tests(500)
            .quickcheck(prop_merge_patch_idempotent as fn(AnyJson, AnyJson) -> bool);
    }
}
