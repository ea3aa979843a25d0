//! Payments of an invoice.

use crate::cdm::{codes, Invoice, InvoiceStatus, Meta, Payment};
use crate::json::Json;

use super::fields::{Document, Obj, Problems, Validated, MAX_CODE, MAX_REF};

/// The fields of a payment body besides [`SERVER_FIELDS`].
const PAYMENT_FIELDS: &[&str] = &["amount", "date", "reference", "invoiceId", "currency"];

/// Validate the body of `POST /api/invoices/{id}/payments` against the invoice.
///
/// `amount` is optional (omitted: the whole balance) and must be > 0 and not above the
/// invoice's balance (`out_of_range`); `date` is required; `reference` optional. `invoiceId`
/// and `currency` may be sent but must equal the invoice's (`mismatch`). A void invoice is
/// `invalid_state` at `""` (the whole request is wrong); an invoice with no balance left is
/// `invalid_state` at `/amount`. The result carries the invoice's id and currency.
pub fn validate_payment(body: &(impl Document + ?Sized), invoice: &Invoice) -> Validated<Payment> {
    validate_payment_doc(&body.doc(), invoice)
}

/// [`validate_payment`] on a parsed document (one body of code whatever the caller's input type).
fn validate_payment_doc(body: &Json<'_>, invoice: &Invoice) -> Validated<Payment> {
    let mut p = Problems::default();
    let Some(o) = Obj::new(body, "".into(), "a payment", &mut p) else {
        return Err(p.0);
    };
    let mut payable = true;
    if invoice.status == InvoiceStatus::Void {
        p.add(
            "",
            codes::INVALID_STATE,
            "the invoice is void and cannot be paid",
        );
        payable = false;
    } else if invoice.balance <= 0 {
        p.add(
            o.at("amount"),
            codes::INVALID_STATE,
            "the invoice has no balance left to pay",
        );
        payable = false;
    }
    let amount = match o.get("amount") {
        None => invoice.balance,
        Some(_) => match o.opt_int("amount", &mut p) {
            Some(a) if a <= 0 => {
                p.add(
                    o.at("amount"),
                    codes::OUT_OF_RANGE,
                    "`amount` must be greater than 0",
                );
                a
            }
            Some(a) if payable && a > invoice.balance => {
                p.add(
                    o.at("amount"),
                    codes::OUT_OF_RANGE,
                    format!(
                        "`amount` {a} is above the invoice's balance {}",
                        invoice.balance
                    ),
                );
                a
            }
            Some(a) => a,
            None => 0,
        },
    };
    let date = o.req_date("date", &mut p);
    let reference = o.opt_text("reference", MAX_REF, &mut p);
    if let Some(id) = o.opt_text("invoiceId", MAX_REF, &mut p) {
        if id != invoice.meta.id {
            p.add(
                o.at("invoiceId"),
                codes::MISMATCH,
                format!(
                    "`invoiceId` must be the paid invoice's id `{}`",
                    invoice.meta.id
                ),
            );
        }
    }
    if let Some(c) = o.opt_text("currency", MAX_CODE, &mut p) {
        if c != invoice.currency {
            p.add(
                o.at("currency"),
                codes::MISMATCH,
                format!(
                    "`currency` must be the invoice's currency {}",
                    invoice.currency
                ),
            );
        }
    }
    o.unknown_fields(PAYMENT_FIELDS, true, &mut p);
    p.finish(Payment {
        meta: Meta::default(),
        invoice_id: invoice.meta.id.clone(),
        amount,
        currency: invoice.currency.clone(),
        date: date.map(|(s, _)| s).unwrap_or_default(),
        reference,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::validate::test_support::*;
    use serde_json::json;

    #[test]
    fn payment_defaults_to_whole_balance() {
        let inv = stored_invoice(1000, 400, InvoiceStatus::Open);
        let p = validate_payment(&json!({"date": "2024-04-01", "id": "x"}), &inv).unwrap();
        assert_eq!(p.amount, 600);
        assert_eq!(p.invoice_id, "inv1");
        assert_eq!(p.currency, "EUR");
        assert_eq!(p.date, "2024-04-01");
        let p = validate_payment(
            &json!({"date": "2024-04-01", "amount": 600, "reference": "r",
                "invoiceId": "inv1", "currency": "EUR"}),
            &inv,
        )
        .unwrap();
        assert_eq!((p.amount, p.reference.as_deref()), (600, Some("r")));
    }

    #[test]
    fn payment_problems() {
        let inv = stored_invoice(1000, 400, InvoiceStatus::Open);
        assert_problems(
            &validate_payment(&json!({"amount": 601, "date": "2024-13-01"}), &inv),
            &[
                ("/amount", codes::OUT_OF_RANGE),
                ("/date", codes::INVALID_VALUE),
            ],
        );
        assert_problems(
            &validate_payment(&json!({"amount": 0}), &inv),
            &[("/amount", codes::OUT_OF_RANGE), ("/date", codes::REQUIRED)],
        );
        assert_problems(
            &validate_payment(&json!({"amount": -5, "date": "2024-01-01"}), &inv),
            &[("/amount", codes::OUT_OF_RANGE)],
        );
        assert_problems(
            &validate_payment(&json!({"amount": 1.5, "date": "2024-01-01"}), &inv),
            &[("/amount", codes::INVALID_TYPE)],
        );
        assert_problems(
            &validate_payment(
                &json!({"date": "2024-01-01", "invoiceId": "other", "currency": "USD",
                    "reference": "r".repeat(256), "note": 1}),
                &inv,
            ),
            &[
                ("/invoiceId", codes::MISMATCH),
                ("/currency", codes::MISMATCH),
                ("/reference", codes::TOO_LONG),
                ("/note", codes::UNKNOWN_FIELD),
            ],
        );
    }

    #[test]
    fn payment_of_void_or_settled_invoice_is_invalid_state() {
        let void = stored_invoice(1000, 0, InvoiceStatus::Void);
        assert_problems(
            &validate_payment(&json!({"date": "2024-01-01"}), &void),
            &[("", codes::INVALID_STATE)],
        );
        let paid = stored_invoice(1000, 1000, InvoiceStatus::Paid);
        assert_problems(
            &validate_payment(&json!({"date": "2024-01-01", "amount": 5}), &paid),
            &[("/amount", codes::INVALID_STATE)],
        );
        let zero = stored_invoice(0, 0, InvoiceStatus::Open);
        assert_problems(
            &validate_payment(&json!({"date": "2024-01-01"}), &zero),
            &[("/amount", codes::INVALID_STATE)],
        );
    }
}
