//! Accounts of the chart of accounts.

use crate::cdm::{codes, Account, AccountType, Meta, RefLookup};
use crate::json::Json;

use super::fields::{type_name, Document, Obj, Problems, Validated, MAX_TEXT};

/// The fields of an account besides [`SERVER_FIELDS`].
const ACCOUNT_FIELDS: &[&str] = &["code", "name", "type", "description", "active"];

/// Validate an account of the chart of accounts.
///
/// `code` (unique in the tenant: `duplicate`), `name`, `type` (one of `asset`, `liability`,
/// `equity`, `income`, `expense`: `invalid_value`); optional `description`, `active` (a
/// boolean, default true). `self_id` is the id of the account being updated, if any.
pub fn validate_account(
    body: &(impl Document + ?Sized),
    refs: &dyn RefLookup,
    self_id: Option<&str>,
) -> Validated<Account> {
    validate_account_doc(&body.doc(), refs, self_id)
}

/// [`validate_account`] on a parsed document (one body of code whatever the caller's input type).
fn validate_account_doc(
    body: &Json<'_>,
    refs: &dyn RefLookup,
    self_id: Option<&str>,
) -> Validated<Account> {
    let mut p = Problems::default();
    let Some(o) = Obj::new(body, "".into(), "an account", &mut p) else {
        return Err(p.0);
    };
    let code = o.req_unique(
        "code",
        self_id,
        |c| refs.account_code_owner(c),
        "an account",
        &mut p,
    );
    let name = o.req_text("name", MAX_TEXT, &mut p);
    let account_type = match o.get("type") {
        None => {
            p.add(o.at("type"), codes::REQUIRED, "`type` is required");
            None
        }
        Some(Json::String(s)) => {
            let t = match &**s {
                "asset" => Some(AccountType::Asset),
                "liability" => Some(AccountType::Liability),
                "equity" => Some(AccountType::Equity),
                "income" => Some(AccountType::Income),
                "expense" => Some(AccountType::Expense),
                _ => None,
            };
            if t.is_none() {
                p.add(
                    o.at("type"),
                    codes::INVALID_VALUE,
                    format!(
                        "`type` must be one of asset, liability, equity, income, expense, not `{s}`"
                    ),
                );
            }
            t
        }
        Some(other) => {
            p.add(
                o.at("type"),
                codes::INVALID_TYPE,
                format!("`type` must be a string, not {}", type_name(other)),
            );
            None
        }
    };
    let description = o.opt_text("description", MAX_TEXT, &mut p);
    let active = match o.get("active") {
        None => true,
        Some(Json::Bool(b)) => *b,
        Some(other) => {
            p.add(
                o.at("active"),
                codes::INVALID_TYPE,
                format!("`active` must be a boolean, not {}", type_name(other)),
            );
            true
        }
    };
    o.unknown_fields(ACCOUNT_FIELDS, true, &mut p);
    p.finish(Account {
        meta: Meta::default(),
        code: code.unwrap_or_default(),
        name: name.unwrap_or_default(),
        account_type: account_type.unwrap_or_default(),
        description,
        active,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::validate::test_support::*;
    use serde_json::json;

    #[test]
    fn account_valid_and_default_active() {
        let a = validate_account(
            &json!({"code": "1200", "name": "Bank", "type": "asset"}),
            &refs(),
            None,
        )
        .unwrap();
        assert!(a.active);
        assert_eq!(a.account_type, AccountType::Asset);
        let a = validate_account(
            &json!({"code": "5000", "name": "Costs", "type": "expense", "active": false,
                "description": "all costs"}),
            &refs(),
            None,
        )
        .unwrap();
        assert!(!a.active);
        assert_eq!(a.account_type, AccountType::Expense);
        for (t, want) in [
            ("liability", AccountType::Liability),
            ("equity", AccountType::Equity),
            ("income", AccountType::Income),
        ] {
            let a = validate_account(&json!({"code": "9", "name": "n", "type": t}), &refs(), None)
                .unwrap();
            assert_eq!(a.account_type, want);
        }
    }

    #[test]
    fn account_problems() {
        let body = json!({"code": "4000", "name": "", "type": "Asset", "active": "yes", "x": 1});
        assert_problems(
            &validate_account(&body, &refs(), None),
            &[
                ("/code", codes::DUPLICATE),
                ("/name", codes::REQUIRED),
                ("/type", codes::INVALID_VALUE),
                ("/active", codes::INVALID_TYPE),
                ("/x", codes::UNKNOWN_FIELD),
            ],
        );
        assert_problems(
            &validate_account(
                &json!({"code": "c".repeat(65), "name": "n", "type": 1}),
                &refs(),
                None,
            ),
            &[("/code", codes::TOO_LONG), ("/type", codes::INVALID_TYPE)],
        );
        assert_problems(
            &validate_account(&json!({}), &refs(), None),
            &[
                ("/code", codes::REQUIRED),
                ("/name", codes::REQUIRED),
                ("/type", codes::REQUIRED),
            ],
        );
    }

    #[test]
    fn account_code_unique_except_itself() {
        let body = json!({"code": "4000", "name": "Sales", "type": "income"});
        assert!(validate_account(&body, &refs(), Some("acc1")).is_ok());
        assert_problems(
            &validate_account(&body, &refs(), Some("other")),
            &[("/code", codes::DUPLICATE)],
        );
    }
}
