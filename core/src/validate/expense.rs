//! Expenses, with an existing vendor or a new one.

use crate::cdm::{codes, Expense, ExpenseLine, Meta, RefLookup, Vendor};
use crate::json::Json;

use super::decimal::checked_sum;
use super::fields::{
    check_computed, check_ref, lines_array, Document, Obj, Problems, Ptr, Validated, MAX_TEXT,
};
use super::party::vendor_at;

/// The fields of an expense besides [`SERVER_FIELDS`].
const EXPENSE_FIELDS: &[&str] = &[
    "vendorId", "vendor", "date", "currency", "lines", "memo", "total",
];
/// The fields of an expense line.
const EXPENSE_LINE_FIELDS: &[&str] = &["description", "amount", "accountId"];

/// One expense line.
fn expense_line(
    v: &Json,
    ptr: Ptr<'_>,
    refs: &dyn RefLookup,
    p: &mut Problems,
) -> Option<ExpenseLine> {
    let o = Obj::new(v, ptr, "an expense line", p)?;
    let description = o.req_text("description", MAX_TEXT, p);
    let amount = o.req_int("amount", p).filter(|a| {
        let ok = *a > 0;
        if !ok {
            p.add(
                o.at("amount"),
                codes::OUT_OF_RANGE,
                "`amount` must be greater than 0",
            );
        }
        ok
    });
    let account_id = check_ref(&o, "accountId", "account", &|id| refs.account_exists(id), p);
    o.unknown_fields(EXPENSE_LINE_FIELDS, false, p);
    let amount = amount?;
    Some(ExpenseLine {
        description: description.unwrap_or_default(),
        amount,
        account_id,
    })
}

/// Validate an expense.
///
/// Exactly one of `vendorId` (must exist: `not_found`) or `vendor {...}` (a new vendor,
/// validated with [`validate_vendor`](crate::validate::validate_vendor) at `/vendor`): neither is `required` at `/vendorId`, both
/// is `invalid_value` at `/vendor`. `date`, `currency`, `lines` (at least one: `description`,
/// `amount` > 0, optional `accountId` that must exist), optional `memo`. `total` is the checked
/// sum of the line amounts (`overflow` at `/lines`); a client-sent `total` must equal it
/// (`mismatch`). With a new vendor the expense's `vendor_id` is "" and the vendor is returned.
pub fn validate_expense(
    body: &(impl Document + ?Sized),
    refs: &dyn RefLookup,
) -> Validated<(Expense, Option<Vendor>)> {
    validate_expense_doc(&body.doc(), refs)
}

/// [`validate_expense`] on a parsed document (one body of code whatever the caller's input type).
fn validate_expense_doc(
    body: &Json<'_>,
    refs: &dyn RefLookup,
) -> Validated<(Expense, Option<Vendor>)> {
    let mut p = Problems::default();
    let Some(o) = Obj::new(body, "".into(), "an expense", &mut p) else {
        return Err(p.0);
    };
    let mut vendor_id = None;
    let mut new_vendor = None;
    match (o.get("vendorId").is_some(), o.get("vendor")) {
        (false, None) => p.add(
            o.at("vendorId"),
            codes::REQUIRED,
            "either `vendorId` (an existing vendor) or `vendor` (a new one) is required",
        ),
        (true, nested) => {
            if nested.is_some() {
                p.add(
                    o.at("vendor"),
                    codes::INVALID_VALUE,
                    "send either `vendorId` or `vendor`, not both",
                );
            }
            vendor_id = check_ref(
                &o,
                "vendorId",
                "vendor",
                &|id| refs.vendor_exists(id),
                &mut p,
            );
        }
        (false, Some(v)) => new_vendor = vendor_at(v, &o.at("vendor"), &mut p),
    }
    let date = o.req_date("date", &mut p);
    let currency = o.req_currency("currency", &mut p);
    let mut lines = Vec::new();
    let mut complete = false;
    if let Some(items) = lines_array(&o, &mut p) {
        lines.reserve(items.len());
        complete = true;
        for (i, item) in items.iter().enumerate() {
            match expense_line(item, o.item("lines", i), refs, &mut p) {
                Some(line) => lines.push(line),
                None => complete = false,
            }
        }
    }
    let memo = o.opt_text("memo", MAX_TEXT, &mut p);
    let total = if complete {
        let t = checked_sum(lines.iter().map(|l| l.amount));
        if t.is_none() {
            p.add(
                o.at("lines"),
                codes::OVERFLOW,
                "the expense total does not fit in a signed 64-bit integer",
            );
        }
        t
    } else {
        None
    };
    let sent_total = o.opt_int("total", &mut p);
    check_computed(sent_total, total, &o, "total", &mut p);
    o.unknown_fields(EXPENSE_FIELDS, true, &mut p);
    let expense = Expense {
        meta: Meta::default(),
        vendor_id: vendor_id.unwrap_or_default(),
        date: date.map(|(s, _)| s).unwrap_or_default(),
        currency: currency.unwrap_or_default(),
        lines,
        memo,
        total: total.unwrap_or_default(),
    };
    p.finish((expense, new_vendor))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::validate::test_support::*;
    use serde_json::{json, Value};

    #[test]
    fn expense_with_existing_vendor() {
        let (e, v) = validate_expense(&expense_with(json!({"vendorId": "v1"})), &refs()).unwrap();
        assert!(v.is_none());
        assert_eq!(e.vendor_id, "v1");
        assert_eq!(e.total, 4250);
        assert_eq!(e.lines.len(), 2);
        assert_eq!(e.lines[0].account_id.as_deref(), Some("a1"));
    }

    #[test]
    fn expense_with_new_vendor() {
        let body = expense_with(json!({"vendor": {"name": "Paper Co", "email": "a@b.de"},
            "total": 4250, "memo": "office"}));
        let (e, v) = validate_expense(&body, &refs()).unwrap();
        assert_eq!(e.vendor_id, "");
        assert_eq!(e.memo.as_deref(), Some("office"));
        assert_eq!(v.unwrap().name, "Paper Co");
        // A null vendorId next to a vendor is "absent".
        let body = expense_with(json!({"vendor": {"name": "Paper Co"}}));
        let mut body2 = body.clone();
        body2["vendorId"] = Value::Null;
        assert!(validate_expense(&body2, &refs()).is_ok());
    }

    #[test]
    fn expense_vendor_choice() {
        assert_problems(
            &validate_expense(&expense_with(json!({})), &refs()),
            &[("/vendorId", codes::REQUIRED)],
        );
        assert_problems(
            &validate_expense(
                &expense_with(json!({"vendorId": "v1", "vendor": {"name": "x"}})),
                &refs(),
            ),
            &[("/vendor", codes::INVALID_VALUE)],
        );
        assert_problems(
            &validate_expense(&expense_with(json!({"vendorId": "v9"})), &refs()),
            &[("/vendorId", codes::NOT_FOUND)],
        );
        assert_problems(
            &validate_expense(
                &expense_with(json!({"vendor": {"name": " ", "email": "bad", "a/b": 1}})),
                &refs(),
            ),
            &[
                ("/vendor/name", codes::REQUIRED),
                ("/vendor/email", codes::INVALID_FORMAT),
                ("/vendor/a~1b", codes::UNKNOWN_FIELD),
            ],
        );
        assert_problems(
            &validate_expense(&expense_with(json!({"vendor": "Paper Co"})), &refs()),
            &[("/vendor", codes::INVALID_TYPE)],
        );
    }

    #[test]
    fn expense_lines_and_total() {
        let mut body = expense_with(json!({"vendorId": "v1", "total": 1}));
        body["lines"][0]["amount"] = json!(0);
        body["lines"][1]["accountId"] = json!("nope");
        body["lines"][1]["quantity"] = json!(2);
        assert_problems(
            &validate_expense(&body, &refs()),
            &[
                ("/lines/0/amount", codes::OUT_OF_RANGE),
                ("/lines/1/accountId", codes::NOT_FOUND),
                ("/lines/1/quantity", codes::UNKNOWN_FIELD),
            ],
        );
        let body = expense_with(json!({"vendorId": "v1", "total": 1}));
        assert_problems(
            &validate_expense(&body, &refs()),
            &[("/total", codes::MISMATCH)],
        );
        let mut body = expense_with(json!({"vendorId": "v1"}));
        body["lines"] = json!([
            {"description": "a", "amount": i64::MAX},
            {"description": "b", "amount": 1},
        ]);
        assert_problems(
            &validate_expense(&body, &refs()),
            &[("/lines", codes::OVERFLOW)],
        );
        body["lines"] = json!([]);
        assert_problems(
            &validate_expense(&body, &refs()),
            &[("/lines", codes::TOO_FEW)],
        );
        let body = json!({"vendorId": "v1"});
        assert_problems(
            &validate_expense(&body, &refs()),
            &[
                ("/date", codes::REQUIRED),
                ("/currency", codes::REQUIRED),
                ("/lines", codes::REQUIRED),
            ],
        );
    }
}
