//! Invoices: lines with exact decimal quantities, the computed amounts, totals, balance and
//! status.

use serde_json::Number;

use crate::cdm::{codes, Invoice, InvoiceLine, InvoiceStatus, Meta, RefLookup};
use crate::json::Json;

use super::decimal::{
    checked_sum, line_amount, parse_decimal, Decimal, DecimalError, MAX_QUANTITY_SCALE,
};
use super::fields::{
    check_computed, check_ref, lines_array, type_name, Document, Obj, Problems, Ptr, Validated,
    MAX_REF, MAX_TEXT,
};

/// The fields of an invoice besides [`SERVER_FIELDS`].
const INVOICE_FIELDS: &[&str] = &[
    "number",
    "customerId",
    "issueDate",
    "dueDate",
    "currency",
    "lines",
    "memo",
    "total",
    "amountPaid",
    "balance",
    "status",
];
/// The fields of an invoice line.
const INVOICE_LINE_FIELDS: &[&str] = &[
    "description",
    "quantity",
    "unitAmount",
    "accountId",
    "taxAmount",
    "amount",
];

/// The quantity of an invoice line: a JSON number > 0 with at most six decimal places.
fn quantity(o: &Obj<'_, '_>, p: &mut Problems) -> Option<(Number, Decimal)> {
    let ptr = || o.at("quantity");
    let n = match o.get("quantity") {
        None => {
            p.add(ptr(), codes::REQUIRED, "`quantity` is required");
            return None;
        }
        Some(Json::Number(n)) => n,
        Some(other) => {
            p.add(
                ptr(),
                codes::INVALID_TYPE,
                format!("`quantity` must be a number, not {}", type_name(other)),
            );
            return None;
        }
    };
    match parse_decimal(&n.to_string()) {
        Ok(d) if d.mantissa > 0 => Some((n.clone(), d)),
        Ok(_) => {
            p.add(
                ptr(),
                codes::OUT_OF_RANGE,
                "`quantity` must be greater than 0",
            );
            None
        }
        Err(DecimalError::TooPrecise) => {
            p.add(
                ptr(),
                codes::INVALID_FORMAT,
                format!("`quantity` may have at most {MAX_QUANTITY_SCALE} decimal places ({n})"),
            );
            None
        }
        Err(DecimalError::TooLarge) => {
            p.add(
                ptr(),
                codes::OUT_OF_RANGE,
                format!("`quantity` is too large ({n})"),
            );
            None
        }
        Err(DecimalError::Syntax) => {
            p.add(
                ptr(),
                codes::INVALID_FORMAT,
                format!("`quantity` is not a decimal number ({n})"),
            );
            None
        }
    }
}

/// One invoice line; the computed amount is `None` when it could not be computed.
fn invoice_line(
    v: &Json,
    ptr: Ptr<'_>,
    refs: &dyn RefLookup,
    p: &mut Problems,
) -> Option<(InvoiceLine, Option<i64>)> {
    let o = Obj::new(v, ptr, "an invoice line", p)?;
    let description = o.req_text("description", MAX_TEXT, p);
    let qty = quantity(&o, p);
    let unit_amount = o.req_int("unitAmount", p).filter(|u| {
        let ok = *u >= 0;
        if !ok {
            p.add(
                o.at("unitAmount"),
                codes::OUT_OF_RANGE,
                "`unitAmount` must be 0 or more",
            );
        }
        ok
    });
    let account_id = check_ref(&o, "accountId", "account", &|id| refs.account_exists(id), p);
    let tax_sent = o.get("taxAmount").is_some();
    let tax_amount = o.opt_int("taxAmount", p).filter(|t| {
        let ok = *t >= 0;
        if !ok {
            p.add(
                o.at("taxAmount"),
                codes::OUT_OF_RANGE,
                "`taxAmount` must be 0 or more",
            );
        }
        ok
    });
    let sent_amount = o.opt_int("amount", p);
    o.unknown_fields(INVOICE_LINE_FIELDS, false, p);

    let tax_usable = !tax_sent || tax_amount.is_some();
    let computed = match (&qty, unit_amount) {
        (Some((_, q)), Some(u)) if tax_usable => {
            let amount = line_amount(*q, u, tax_amount.unwrap_or(0));
            if amount.is_none() {
                p.add(
                    o.ptr.text(),
                    codes::OVERFLOW,
                    "the line amount (quantity x unitAmount + taxAmount) does not fit in a signed 64-bit integer",
                );
            }
            amount
        }
        _ => None,
    };
    check_computed(sent_amount, computed, &o, "amount", p);
    let line = InvoiceLine {
        description: description.unwrap_or_default(),
        quantity: qty.map(|(n, _)| n).unwrap_or_else(|| Number::from(0u8)),
        unit_amount: unit_amount.unwrap_or_default(),
        account_id,
        tax_amount,
        amount: computed.unwrap_or_default(),
    };
    Some((line, computed))
}

/// Validate an invoice and compute its `total`, `amountPaid`, `balance` and `status`.
///
/// `amount_paid`: what is already paid on this invoice (0 on create). `status` may be sent by
/// the client only as "void" (allowed only when `amount_paid == 0`, else `invalid_state` at
/// `/status`) or as the value the server would compute (else `mismatch`). The computed fields
/// `total`, `amountPaid`, `balance` and each line's `amount` may be sent but must equal the
/// computed value (else `mismatch` at their pointer; they are compared only when the server
/// could compute them). A line's amount is quantity x unitAmount rounded half to even to the
/// minor unit, plus taxAmount; an overflow is `overflow` at the line's pointer, an overflow of
/// the total or the balance is `overflow` at `/lines`, and a balance below zero (the total
/// lowered below what was paid) is `out_of_range` at `/lines`. `self_id` is the id of the
/// invoice being updated, if any (its own number is not a duplicate).
pub fn validate_invoice(
    body: &(impl Document + ?Sized),
    refs: &dyn RefLookup,
    self_id: Option<&str>,
    amount_paid: i64,
) -> Validated<Invoice> {
    validate_invoice_doc(&body.doc(), refs, self_id, amount_paid)
}

/// [`validate_invoice`] on a parsed document (one body of code whatever the caller's input type).
fn validate_invoice_doc(
    body: &Json<'_>,
    refs: &dyn RefLookup,
    self_id: Option<&str>,
    amount_paid: i64,
) -> Validated<Invoice> {
    let mut p = Problems::default();
    let Some(o) = Obj::new(body, "".into(), "an invoice", &mut p) else {
        return Err(p.0);
    };
    let number = o.req_unique(
        "number",
        self_id,
        |n| refs.invoice_number_owner(n),
        "an invoice",
        &mut p,
    );
    let customer_id = o.req_text("customerId", MAX_REF, &mut p);
    if let Some(c) = &customer_id {
        if !refs.customer_exists(c) {
            p.add(
                o.at("customerId"),
                codes::NOT_FOUND,
                format!("no customer with id `{c}` exists"),
            );
        }
    }
    let issue = o.req_date("issueDate", &mut p);
    let due = o.req_date("dueDate", &mut p);
    if let (Some((_, i)), Some((_, d))) = (&issue, &due) {
        if d < i {
            p.add(
                o.at("dueDate"),
                codes::OUT_OF_RANGE,
                "`dueDate` must not be before `issueDate`",
            );
        }
    }
    let currency = o.req_currency("currency", &mut p);

    let mut lines = Vec::new();
    let mut all_computed = false;
    if let Some(items) = lines_array(&o, &mut p) {
        lines.reserve(items.len());
        all_computed = true;
        for (i, item) in items.iter().enumerate() {
            match invoice_line(item, o.item("lines", i), refs, &mut p) {
                Some((line, computed)) => {
                    all_computed &= computed.is_some();
                    lines.push(line);
                }
                None => all_computed = false,
            }
        }
    }
    let memo = o.opt_text("memo", MAX_TEXT, &mut p);

    let mut total = None;
    let mut balance = None;
    if all_computed {
        total = checked_sum(lines.iter().map(|l| l.amount));
        match total {
            None => p.add(
                o.at("lines"),
                codes::OVERFLOW,
                "the invoice total does not fit in a signed 64-bit integer",
            ),
            Some(t) => match t.checked_sub(amount_paid) {
                None => p.add(
                    o.at("lines"),
                    codes::OVERFLOW,
                    "the invoice balance does not fit in a signed 64-bit integer",
                ),
                Some(b) if b < 0 => p.add(
                    o.at("lines"),
                    codes::OUT_OF_RANGE,
                    format!("the total {t} is below the amount already paid {amount_paid}"),
                ),
                Some(b) => balance = Some(b),
            },
        }
    }
    let sent_total = o.opt_int("total", &mut p);
    check_computed(sent_total, total, &o, "total", &mut p);
    let sent_paid = o.opt_int("amountPaid", &mut p);
    check_computed(sent_paid, Some(amount_paid), &o, "amountPaid", &mut p);
    let sent_balance = o.opt_int("balance", &mut p);
    check_computed(sent_balance, balance, &o, "balance", &mut p);

    let computed_status = balance.map(|b| {
        if amount_paid > 0 && b == 0 {
            InvoiceStatus::Paid
        } else {
            InvoiceStatus::Open
        }
    });
    let mut voided = false;
    match o.get("status") {
        None => {}
        Some(Json::String(s)) => {
            let sent = match &**s {
                "open" => Some(InvoiceStatus::Open),
                "paid" => Some(InvoiceStatus::Paid),
                "void" => Some(InvoiceStatus::Void),
                _ => None,
            };
            match sent {
                None => p.add(
                    o.at("status"),
                    codes::INVALID_VALUE,
                    format!("`status` must be one of open, paid, void, not `{s}`"),
                ),
                Some(InvoiceStatus::Void) => {
                    if amount_paid != 0 {
                        p.add(
                            o.at("status"),
                            codes::INVALID_STATE,
                            "an invoice with payments cannot be voided",
                        );
                    } else {
                        voided = true;
                    }
                }
                Some(st) => {
                    if let Some(c) = computed_status {
                        if c != st {
                            p.add(
                                o.at("status"),
                                codes::MISMATCH,
                                format!(
                                    "`status` is {s} but the server computes {}",
                                    status_name(c)
                                ),
                            );
                        }
                    }
                }
            }
        }
        Some(other) => p.add(
            o.at("status"),
            codes::INVALID_TYPE,
            format!("`status` must be a string, not {}", type_name(other)),
        ),
    }
    o.unknown_fields(INVOICE_FIELDS, true, &mut p);

    let status = if voided {
        InvoiceStatus::Void
    } else {
        computed_status.unwrap_or_default()
    };
    p.finish(Invoice {
        meta: Meta::default(),
        number: number.unwrap_or_default(),
        customer_id: customer_id.unwrap_or_default(),
        issue_date: issue.map(|(s, _)| s).unwrap_or_default(),
        due_date: due.map(|(s, _)| s).unwrap_or_default(),
        currency: currency.unwrap_or_default(),
        lines,
        memo,
        total: total.unwrap_or_default(),
        amount_paid,
        balance: balance.unwrap_or_default(),
        status,
    })
}

/// The JSON name of an invoice status.
fn status_name(s: InvoiceStatus) -> &'static str {
    match s {
        InvoiceStatus::Open => "open",
        InvoiceStatus::Paid => "paid",
        InvoiceStatus::Void => "void",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::validate::test_support::*;
    use quickcheck::{Arbitrary, Gen, QuickCheck};
    use serde_json::{json, Value};

    fn total_of(body: &Value) -> i64 {
        validate_invoice(body, &refs(), None, 0).unwrap().total
    }

    #[test]
    fn invoice_valid_computes_everything() {
        let body = invoice_with(json!([
            {"description": "Consulting", "quantity": 2, "unitAmount": 15000, "accountId": "a1",
                "taxAmount": 5700},
            {"description": "Travel", "quantity": 1.5, "unitAmount": 999},
        ]));
        let inv = validate_invoice(&body, &refs(), None, 0).unwrap();
        assert_eq!(inv.lines[0].amount, 35_700);
        assert_eq!(inv.lines[1].amount, 1498); // 1498.5 -> 1498 (even)
        assert_eq!(inv.lines[1].quantity.to_string(), "1.5");
        assert_eq!(inv.total, 37_198);
        assert_eq!(inv.amount_paid, 0);
        assert_eq!(inv.balance, 37_198);
        assert_eq!(inv.status, InvoiceStatus::Open);
        assert_eq!(inv.currency, "EUR");
        assert_eq!(inv.issue_date, "2024-03-01");
        assert_eq!(inv.lines[0].account_id.as_deref(), Some("a1"));
        assert_eq!(inv.lines[0].tax_amount, Some(5700));
        assert_eq!(inv.lines[1].tax_amount, None);
    }

    #[test]
    fn invoice_serialised_revalidates_to_itself() {
        let body = invoice_with(json!([
            {"description": "a", "quantity": 0.125, "unitAmount": 100, "taxAmount": 3},
        ]));
        let inv = validate_invoice(&body, &refs(), None, 0).unwrap();
        let mut again = serde_json::to_value(&inv).unwrap();
        again["id"] = json!("inv2");
        let inv2 = validate_invoice(&again, &refs(), Some("inv2"), 0).unwrap();
        assert_eq!(inv, inv2);
    }

    #[test]
    fn half_to_even_rounding_of_lines() {
        assert_eq!(total_of(&one_line(json!(0.5), 5)), 2); // 2.5 -> 2
        assert_eq!(total_of(&one_line(json!(1.5), 5)), 8); // 7.5 -> 8
        assert_eq!(total_of(&one_line(json!(0.125), 100)), 12); // 12.5 -> 12
        assert_eq!(total_of(&one_line(json!(0.375), 100)), 38); // 37.5 -> 38
        assert_eq!(total_of(&one_line(json!(0.333), 100)), 33); // 33.3 -> 33
        assert_eq!(total_of(&one_line(json!(0.336), 100)), 34); // 33.6 -> 34
        assert_eq!(total_of(&one_line(json!(0.000001), 1_500_000)), 2); // 1.5 -> 2
        assert_eq!(total_of(&one_line(json!(0.000001), 2_500_000)), 2); // 2.5 -> 2
    }

    #[test]
    fn decimal_quantities_are_exact() {
        // 1.15 is 1.149999... as a binary float; the decimal text gives 115 exactly.
        assert_eq!(total_of(&one_line(json!(1.15), 100)), 115);
        assert_eq!(total_of(&one_line(json!(0.1), 30)), 3);
        assert_eq!(total_of(&one_line(json!(2.675), 100)), 268); // 267.5 -> 268
        let body: Value = serde_json::from_str(
            r#"{"number":"N","customerId":"c1","issueDate":"2024-01-01","dueDate":"2024-01-01",
               "currency":"USD","lines":[{"description":"d","quantity":1.50000,"unitAmount":3}]}"#,
        )
        .unwrap();
        assert_eq!(total_of(&body), 4); // 4.5 -> 4
        let body: Value = serde_json::from_str(
            r#"{"number":"N","customerId":"c1","issueDate":"2024-01-01","dueDate":"2024-01-01",
               "currency":"USD","lines":[{"description":"d","quantity":3e2,"unitAmount":3}]}"#,
        )
        .unwrap();
        assert_eq!(total_of(&body), 900);
    }

    #[test]
    fn quantity_rules() {
        let at = "/lines/0/quantity";
        for (q, code) in [
            (json!(0), codes::OUT_OF_RANGE),
            (json!(0.0), codes::OUT_OF_RANGE),
            (json!(-1), codes::OUT_OF_RANGE),
            (json!(-0.5), codes::OUT_OF_RANGE),
            (json!(0.0000001), codes::INVALID_FORMAT),
            (json!(1.1234567), codes::INVALID_FORMAT),
            (json!(1e300), codes::OUT_OF_RANGE),
            (json!("1"), codes::INVALID_TYPE),
            (json!(null), codes::REQUIRED),
        ] {
            assert_problems(
                &validate_invoice(&one_line(q.clone(), 1), &refs(), None, 0),
                &[(at, code)],
            );
        }
        assert_eq!(total_of(&one_line(json!(1.123456), 1_000_000)), 1_123_456);
    }

    #[test]
    fn money_must_be_i64_integers() {
        for (u, code) in [
            (json!(1.5), codes::INVALID_TYPE),
            (json!(100.0), codes::INVALID_TYPE),
            (json!("100"), codes::INVALID_TYPE),
            (json!(true), codes::INVALID_TYPE),
            (json!(9_223_372_036_854_775_808u64), codes::OUT_OF_RANGE),
            (json!(1e20), codes::OUT_OF_RANGE),
            (json!(-1), codes::OUT_OF_RANGE),
        ] {
            let body = invoice_with(json!([{"description": "d", "quantity": 1, "unitAmount": u}]));
            assert_problems(
                &validate_invoice(&body, &refs(), None, 0),
                &[("/lines/0/unitAmount", code)],
            );
        }
        let body: Value = serde_json::from_str(
            r#"{"number":"N","customerId":"c1","issueDate":"2024-01-01","dueDate":"2024-01-01",
               "currency":"USD","lines":[{"description":"d","quantity":1,
               "unitAmount":123456789012345678901234567890}]}"#,
        )
        .unwrap();
        assert_problems(
            &validate_invoice(&body, &refs(), None, 0),
            &[("/lines/0/unitAmount", codes::OUT_OF_RANGE)],
        );
    }

    #[test]
    fn invoice_overflow_is_reported_not_a_panic() {
        let body = one_line(json!(2), i64::MAX);
        assert_problems(
            &validate_invoice(&body, &refs(), None, 0),
            &[("/lines/0", codes::OVERFLOW)],
        );
        let body = invoice_with(json!([
            {"description": "a", "quantity": 1, "unitAmount": i64::MAX},
            {"description": "b", "quantity": 1, "unitAmount": 1},
        ]));
        assert_problems(
            &validate_invoice(&body, &refs(), None, 0),
            &[("/lines", codes::OVERFLOW)],
        );
        let body = invoice_with(json!([
            {"description": "a", "quantity": 1, "unitAmount": i64::MAX, "taxAmount": 1},
        ]));
        assert_problems(
            &validate_invoice(&body, &refs(), None, 0),
            &[("/lines/0", codes::OVERFLOW)],
        );
        let body = one_line(json!(1e30), i64::MAX);
        assert_problems(
            &validate_invoice(&body, &refs(), None, 0),
            &[("/lines/0", codes::OVERFLOW)],
        );
        // Exactly i64::MAX is fine.
        assert_eq!(total_of(&one_line(json!(1), i64::MAX)), i64::MAX);
        assert_eq!(total_of(&one_line(json!(0.5), i64::MAX)), i64::MAX / 2 + 1);
    }

    #[test]
    fn invoice_reports_all_problems_at_once() {
        let body = json!({
            "number": "INV-1",
            "customerId": "nobody",
            "issueDate": "2024-03-10",
            "dueDate": "2024-03-01",
            "currency": "eur",
            "lines": [
                {"description": "", "quantity": 0, "unitAmount": -5, "accountId": "zz",
                    "taxAmount": -1, "colour": "red"},
                "not a line",
            ],
            "total": "12",
            "status": "draft",
            "extra": true,
        });
        let r = validate_invoice(&body, &refs(), None, 0);
        assert_problems(
            &r,
            &[
                ("/number", codes::DUPLICATE),
                ("/customerId", codes::NOT_FOUND),
                ("/dueDate", codes::OUT_OF_RANGE),
                ("/currency", codes::INVALID_FORMAT),
                ("/lines/0/description", codes::REQUIRED),
                ("/lines/0/quantity", codes::OUT_OF_RANGE),
                ("/lines/0/unitAmount", codes::OUT_OF_RANGE),
                ("/lines/0/accountId", codes::NOT_FOUND),
                ("/lines/0/taxAmount", codes::OUT_OF_RANGE),
                ("/lines/0/colour", codes::UNKNOWN_FIELD),
                ("/lines/1", codes::INVALID_TYPE),
                ("/total", codes::INVALID_TYPE),
                ("/status", codes::INVALID_VALUE),
                ("/extra", codes::UNKNOWN_FIELD),
            ],
        );
    }

    #[test]
    fn invoice_five_problems() {
        let body = json!({
            "customerId": "c1",
            "issueDate": "2024-02-30",
            "dueDate": "2024-13-01",
            "currency": "ABC",
            "lines": [],
        });
        assert_problems(
            &validate_invoice(&body, &refs(), None, 0),
            &[
                ("/number", codes::REQUIRED),
                ("/issueDate", codes::INVALID_VALUE),
                ("/dueDate", codes::INVALID_VALUE),
                ("/currency", codes::INVALID_VALUE),
                ("/lines", codes::TOO_FEW),
            ],
        );
    }

    #[test]
    fn invoice_required_fields() {
        assert_problems(
            &validate_invoice(&json!({}), &refs(), None, 0),
            &[
                ("/number", codes::REQUIRED),
                ("/customerId", codes::REQUIRED),
                ("/issueDate", codes::REQUIRED),
                ("/dueDate", codes::REQUIRED),
                ("/currency", codes::REQUIRED),
                ("/lines", codes::REQUIRED),
            ],
        );
        let mut body = one_line(json!(1), 1);
        body["lines"] = json!({"description": "x"});
        assert_problems(
            &validate_invoice(&body, &refs(), None, 0),
            &[("/lines", codes::INVALID_TYPE)],
        );
        let body = invoice_with(json!([{}]));
        assert_problems(
            &validate_invoice(&body, &refs(), None, 0),
            &[
                ("/lines/0/description", codes::REQUIRED),
                ("/lines/0/quantity", codes::REQUIRED),
                ("/lines/0/unitAmount", codes::REQUIRED),
            ],
        );
    }

    #[test]
    fn dates_must_be_real_and_well_formed() {
        for (d, code) in [
            ("2024-02-30", codes::INVALID_VALUE),
            ("2023-02-29", codes::INVALID_VALUE),
            ("2024-00-10", codes::INVALID_VALUE),
            ("2024-3-1", codes::INVALID_FORMAT),
            ("01.03.2024", codes::INVALID_FORMAT),
            ("2024-03-01T00:00:00Z", codes::INVALID_FORMAT),
            ("+024-03-01", codes::INVALID_FORMAT),
            ("２０２４-03-01", codes::INVALID_FORMAT),
            ("", codes::REQUIRED),
        ] {
            let mut body = one_line(json!(1), 1);
            body["issueDate"] = json!(d);
            body["dueDate"] = json!("2099-01-01");
            assert_problems(
                &validate_invoice(&body, &refs(), None, 0),
                &[("/issueDate", code)],
            );
        }
        let mut body = one_line(json!(1), 1);
        body["issueDate"] = json!("2024-02-29");
        body["dueDate"] = json!("2024-02-29");
        assert!(validate_invoice(&body, &refs(), None, 0).is_ok());
    }

    #[test]
    fn currency_rules() {
        for (c, code) in [
            (json!("usd"), codes::INVALID_FORMAT),
            (json!("US"), codes::INVALID_FORMAT),
            (json!("USDT"), codes::INVALID_FORMAT),
            (json!("ÜSD"), codes::INVALID_FORMAT),
            (json!("HRK"), codes::INVALID_VALUE),
            (json!("QQQ"), codes::INVALID_VALUE),
            (json!(978), codes::INVALID_TYPE),
        ] {
            let mut body = one_line(json!(1), 1);
            body["currency"] = c;
            assert_problems(
                &validate_invoice(&body, &refs(), None, 0),
                &[("/currency", code)],
            );
        }
    }

    #[test]
    fn invoice_number_unique_except_itself() {
        let mut body = one_line(json!(1), 1);
        body["number"] = json!("INV-1");
        assert!(validate_invoice(&body, &refs(), Some("inv1"), 0).is_ok());
        assert_problems(
            &validate_invoice(&body, &refs(), None, 0),
            &[("/number", codes::DUPLICATE)],
        );
        body["number"] = json!("N".repeat(65));
        assert_problems(
            &validate_invoice(&body, &refs(), None, 0),
            &[("/number", codes::TOO_LONG)],
        );
    }

    #[test]
    fn computed_fields_must_match() {
        let base = invoice_with(json!([
            {"description": "a", "quantity": 3, "unitAmount": 100, "taxAmount": 19, "amount": 319},
        ]));
        let mut body = base.clone();
        body["total"] = json!(319);
        body["amountPaid"] = json!(0);
        body["balance"] = json!(319);
        body["status"] = json!("open");
        assert!(validate_invoice(&body, &refs(), None, 0).is_ok());

        let mut body = base.clone();
        body["lines"][0]["amount"] = json!(300);
        body["total"] = json!(300);
        body["amountPaid"] = json!(5);
        body["balance"] = json!(1);
        body["status"] = json!("paid");
        assert_problems(
            &validate_invoice(&body, &refs(), None, 0),
            &[
                ("/lines/0/amount", codes::MISMATCH),
                ("/total", codes::MISMATCH),
                ("/amountPaid", codes::MISMATCH),
                ("/balance", codes::MISMATCH),
                ("/status", codes::MISMATCH),
            ],
        );
    }

    #[test]
    fn status_paid_void_and_balance() {
        let body = one_line(json!(1), 500);
        let inv = validate_invoice(&body, &refs(), Some("inv9"), 500).unwrap();
        assert_eq!(
            (inv.balance, inv.status, inv.amount_paid),
            (0, InvoiceStatus::Paid, 500)
        );
        let inv = validate_invoice(&body, &refs(), Some("inv9"), 200).unwrap();
        assert_eq!((inv.balance, inv.status), (300, InvoiceStatus::Open));
        // A zero invoice with nothing paid stays open.
        let inv = validate_invoice(&one_line(json!(1), 0), &refs(), None, 0).unwrap();
        assert_eq!((inv.total, inv.status), (0, InvoiceStatus::Open));

        let mut void = body.clone();
        void["status"] = json!("void");
        let inv = validate_invoice(&void, &refs(), None, 0).unwrap();
        assert_eq!((inv.status, inv.balance), (InvoiceStatus::Void, 500));
        assert_problems(
            &validate_invoice(&void, &refs(), Some("inv9"), 100),
            &[("/status", codes::INVALID_STATE)],
        );
        let mut st = body.clone();
        st["status"] = json!(1);
        assert_problems(
            &validate_invoice(&st, &refs(), None, 0),
            &[("/status", codes::INVALID_TYPE)],
        );
        // Lowering the total below what was paid.
        assert_problems(
            &validate_invoice(&body, &refs(), Some("inv9"), 501),
            &[("/lines", codes::OUT_OF_RANGE)],
        );
        let mut paid = body.clone();
        paid["status"] = json!("paid");
        assert!(validate_invoice(&paid, &refs(), Some("inv9"), 500).is_ok());
    }

    #[test]
    fn invoice_memo_and_line_description_lengths() {
        let mut body = invoice_with(json!([
            {"description": "d".repeat(1001), "quantity": 1, "unitAmount": 1, "accountId": 7},
        ]));
        body["memo"] = json!("m".repeat(1001));
        assert_problems(
            &validate_invoice(&body, &refs(), None, 0),
            &[
                ("/lines/0/description", codes::TOO_LONG),
                ("/lines/0/accountId", codes::INVALID_TYPE),
                ("/memo", codes::TOO_LONG),
            ],
        );
        body["memo"] = json!("fine");
        body["lines"][0]["description"] = json!("fine");
        body["lines"][0]["accountId"] = json!("a2");
        let inv = validate_invoice(&body, &refs(), None, 0).unwrap();
        assert_eq!(inv.memo.as_deref(), Some("fine"));
    }

    /// Independent rounding: round half up with `(2n + d) / 2d`, then step back to the even
    /// neighbour on exact ties.
    fn reference_round(n: i128, d: i128) -> i128 {
        let up = (2 * n + d).div_euclid(2 * d);
        let tie = (2 * n).rem_euclid(2 * d) == d;
        if tie && up % 2 != 0 {
            up - 1
        } else {
            up
        }
    }

    /// Spread an arbitrary i64 over small, medium and huge non-negative magnitudes.
    fn magnitude(raw: i64, selector: u8) -> i64 {
        let v = raw.checked_abs().unwrap_or(i64::MAX);
        match selector % 4 {
            0 => v,
            1 => v >> 20,
            2 => v >> 40,
            _ => v % 1000,
        }
    }

    /// `(property holds, validation succeeded)` for one generated invoice.
    fn totals_case(lines: Vec<(i64, u64, u8, i64, u8)>) -> (bool, bool) {
        if lines.is_empty() {
            return (true, false);
        }
        let mut json_lines = Vec::new();
        let mut exact_lines = Vec::new();
        for (unit_raw, qty_raw, scale_raw, tax_raw, sel) in lines.into_iter().take(6) {
            let unit = magnitude(unit_raw, sel);
            let tax = magnitude(tax_raw, sel / 4);
            let qty_range =
                [10, 1_000, 1_000_000, 1_000_000_000_000_000][usize::from(sel / 16 % 4)];
            let mantissa = qty_raw % qty_range + 1;
            let scale = u32::from(scale_raw % 7);
            let divisor = 10u64.pow(scale);
            let text = if scale == 0 {
                mantissa.to_string()
            } else {
                format!(
                    "{}.{:0width$}",
                    mantissa / divisor,
                    mantissa % divisor,
                    width = scale as usize
                )
            };
            let quantity: Value = serde_json::from_str(&text).unwrap();
            json_lines.push(json!({"description": "p", "quantity": quantity,
                "unitAmount": unit, "taxAmount": tax}));
            let product = i128::from(mantissa) * i128::from(unit);
            exact_lines.push(reference_round(product, i128::from(divisor)) + i128::from(tax));
        }
        let exact_total: i128 = exact_lines.iter().sum();
        let fits = |x: i128| i64::try_from(x).is_ok();
        let representable = exact_lines.iter().all(|l| fits(*l)) && fits(exact_total);
        match validate_invoice(&invoice_with(Value::Array(json_lines)), &refs(), None, 0) {
            Ok(inv) => {
                let holds = representable
                    && i128::from(inv.total) == exact_total
                    && inv
                        .lines
                        .iter()
                        .zip(&exact_lines)
                        .all(|(l, e)| i128::from(l.amount) == *e);
                (holds, true)
            }
            Err(errors) => {
                let holds = !representable
                    && !errors.is_empty()
                    && errors.iter().all(|e| e.code == codes::OVERFLOW);
                (holds, false)
            }
        }
    }

    fn prop_totals_exact_or_overflow(lines: Vec<(i64, u64, u8, i64, u8)>) -> bool {
        totals_case(lines).0
    }

    #[test]
    fn totals_property_reaches_both_outcomes() {
        let mut g = Gen::new(10);
        let (mut ok, mut overflow) = (0, 0);
        for _ in 0..500 {
            let (holds, succeeded) = totals_case(Arbitrary::arbitrary(&mut g));
            assert!(holds);
            if succeeded {
                ok += 1;
            } else {
                overflow += 1;
            }
        }
        assert!(ok > 100 && overflow > 100, "ok {ok}, overflow {overflow}");
    }

    #[test]
    fn quickcheck_totals_never_overflow_silently() {
        QuickCheck::new()
            .tests(2000)
            .quickcheck(prop_totals_exact_or_overflow as fn(Vec<(i64, u64, u8, i64, u8)>) -> bool);
    }
}
