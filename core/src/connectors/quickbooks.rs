//! QuickBooks Online Accounting API v3.
//!
//! Every push is `POST {baseUrl}/v3/company/{realmId}/{entity}?requestid={key}&minorversion={n}`
//! with `Authorization: Bearer {token}`, `Accept: application/json` and a JSON entity body.
//! `requestid` is the push's idempotency key (at most 50 characters), so QuickBooks answers a
//! retried push with the first result instead of creating the entity twice. An update is a
//! sparse update (`"sparse": true`) that carries the entity's `Id` and the `SyncToken`
//! QuickBooks returned last; voiding an invoice is `?operation=void` with `Id` and `SyncToken`.
//! QuickBooks keeps names lists: a deleted customer, vendor or account is deactivated, a
//! sparse update `{"Id", "SyncToken", "sparse": true, "Active": false}`; an `Object Not Found`
//! fault (code 610) or a `404` to it counts as done. A bank transaction is a `deposit` into
//! the bank account of the `bankAccountId` setting (`amount` ≥ 0) or a `purchase` out of it
//! (`amount` < 0), one line coded to the `bankLineAccountId` setting.
//! Answers are `{"<Entity>": {"Id", "SyncToken", ...}, "time"}`; errors are
//! `{"Fault": {"Error": [{"Message", "Detail", "code", "element"}], "type"}}` (an answer `200`
//! may carry a `Fault` too).

use std::collections::BTreeMap;

use serde_json::Value;

use super::error::text_of;
use super::SourceError;
use super::{
    amount, bearer_headers, check_needs, copy_all, copy_present, decimal, encode, failure, i, join,
    list, max_chars, obj, one, put, put_str, requirement, s, split_name, string, text, truncate,
    Answer, Connector, ConnectorError, ConnectorKind, Needs, Obj, Operation, ProviderVerdict,
    PushInput, SettingSpec,
};
use crate::cdm::{codes, FieldError, ObjectType};
use crate::OutboundRequest;

/// The `minorversion` sent when the connection names none.
pub(crate) const DEFAULT_MINOR_VERSION: &str = "75";
/// The longest `requestid` QuickBooks accepts.
pub(crate) const MAX_REQUEST_ID: usize = 50;

const APP: ConnectorKind = ConnectorKind::Quickbooks;

const OBJECTS: [ObjectType; 7] = [
    ObjectType::Customer,
    ObjectType::Vendor,
    ObjectType::Account,
    ObjectType::Invoice,
    ObjectType::Payment,
    ObjectType::Expense,
    ObjectType::BankTransaction,
];

const SETTINGS: [SettingSpec; 7] = [
    SettingSpec {
        name: "realmId",
        required: true,
        description: "the QuickBooks company id (realm id) in the API path",
    },
    SettingSpec {
        name: "minorVersion",
        required: false,
        description: "the `minorversion` query parameter (default 75)",
    },
    SettingSpec {
        name: "paymentAccountId",
        required: false,
        description: "QuickBooks id of the bank or credit-card account expenses are paid from (Purchase.AccountRef); needed to push expenses",
    },
    SettingSpec {
        name: "paymentType",
        required: false,
        description: "Purchase.PaymentType of pushed expenses: Cash (default), Check or CreditCard",
    },
    SettingSpec {
        name: "itemId",
        required: false,
        description: "QuickBooks item id set as ItemRef on invoice lines (default: none, QuickBooks applies its default item)",
    },
    SettingSpec {
        name: "bankAccountId",
        required: false,
        description: "QuickBooks id of the bank account bank transactions are booked to (Deposit.DepositToAccountRef, Purchase.AccountRef); needed to push bank transactions",
    },
    SettingSpec {
        name: "bankLineAccountId",
        required: false,
        description: "QuickBooks id of the account the line of a pushed bank transaction is coded to (DepositLineDetail / AccountBasedExpenseLineDetail AccountRef); needed to push bank transactions",
    },
];

/// What QuickBooks requires beyond the CDM, per object type.
const EXPENSE_NEEDS: Needs = Needs {
    fields: &[(
        "/lines/*/accountId",
        "AccountBasedExpenseLineDetail.AccountRef",
    )],
    settings: &["paymentAccountId"],
};
const BANK_NEEDS: Needs = Needs {
    fields: &[],
    settings: &["bankAccountId", "bankLineAccountId"],
};

/// The QuickBooks Online connector (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct QuickBooks;

/// The API path segment and the answer's key of an object type's entity; a bank transaction
/// is a Deposit, or a Purchase when money leaves the account (`spend`).
fn entity(t: ObjectType, spend: bool) -> (&'static str, &'static str) {
    match t {
        ObjectType::Customer => ("customer", "Customer"),
        ObjectType::Vendor => ("vendor", "Vendor"),
        ObjectType::Account => ("account", "Account"),
        ObjectType::Invoice => ("invoice", "Invoice"),
        ObjectType::Payment => ("payment", "Payment"),
        ObjectType::BankTransaction if !spend => ("deposit", "Deposit"),
        ObjectType::Expense | ObjectType::BankTransaction => ("purchase", "Purchase"),
    }
}

fn account_type(t: &str) -> &'static str {
    match t {
        "asset" => "Other Current Asset",
        "liability" => "Other Current Liability",
        "equity" => "Equity",
        "income" => "Income",
        _ => "Expense",
    }
}

/// Address members: (QuickBooks key, CDM field).
const ADDRESS: &[(&str, &str)] = &[
    ("Line1", "line1"),
    ("Line2", "line2"),
    ("City", "city"),
    ("CountrySubDivisionCode", "region"),
    ("PostalCode", "postalCode"),
    ("Country", "country"),
];

fn party(o: &Value, address_key: &str) -> Obj {
    let mut m = Obj::new();
    let name = s(o, "name").unwrap_or_default();
    put_str(&mut m, "DisplayName", name);
    if let Some(contact) = s(o, "contactName") {
        put_str(&mut m, "CompanyName", name);
        let (given, family) = split_name(contact);
        if let Some(g) = given {
            put(&mut m, "GivenName", Value::String(g));
        }
        put(&mut m, "FamilyName", Value::String(family));
    }
    if let Some(e) = s(o, "email") {
        put(&mut m, "PrimaryEmailAddr", one("Address", string(e)));
    }
    if let Some(p) = s(o, "phone") {
        put(&mut m, "PrimaryPhone", one("FreeFormNumber", string(p)));
    }
    if let Some(a) = o.get(address_key).filter(|a| a.is_object()) {
        let mut addr = Obj::new();
        copy_present(&mut addr, a, ADDRESS);
        put(&mut m, "BillAddr", Value::Object(addr));
    }
    m
}

/// `{"value": id}`.
fn reference(value: String) -> Value {
    one("value", Value::String(value))
}

fn body(input: &PushInput<'_>, o: &Value) -> Result<Obj, ConnectorError> {
    let currency = s(o, "currency").unwrap_or("USD");
    let mut m = match input.object_type {
        ObjectType::Customer => party(o, "billingAddress"),
        ObjectType::Vendor => party(o, "address"),
        ObjectType::Account => {
            let mut m = Obj::new();
            copy_all(&mut m, o, &[("Name", "name"), ("AcctNum", "code")]);
            put_str(
                &mut m,
                "AccountType",
                account_type(s(o, "type").unwrap_or_default()),
            );
            copy_present(&mut m, o, &[("Description", "description")]);
            let active = o.get("active").and_then(Value::as_bool).unwrap_or(true);
            put(&mut m, "Active", Value::Bool(active));
            m
        }
        ObjectType::Invoice => {
            let mut m = Obj::new();
            put(
                &mut m,
                "CustomerRef",
                reference(input.remote_of("customerId", APP)?),
            );
            copy_all(
                &mut m,
                o,
                &[
                    ("DocNumber", "number"),
                    ("TxnDate", "issueDate"),
                    ("DueDate", "dueDate"),
                ],
            );
            put(&mut m, "CurrencyRef", reference(currency.into()));
            copy_present(&mut m, o, &[("PrivateNote", "memo")]);
            let mut tax = 0i64;
            let mut lines = Vec::new();
            for l in list(o, "lines") {
                let line_tax = i(l, "taxAmount").unwrap_or(0);
                tax = tax.saturating_add(line_tax);
                let net = i(l, "amount").unwrap_or(0).saturating_sub(line_tax);
                let mut detail = Obj::new();
                let qty = l.get("quantity").cloned().unwrap_or(Value::from(1));
                put(&mut detail, "Qty", qty);
                put(&mut detail, "UnitPrice", amount(l, "unitAmount", currency));
                if let Some(item) = input.setting("itemId") {
                    put(&mut detail, "ItemRef", reference(item.into()));
                }
                lines.push(obj(&mut [
                    ("DetailType", string("SalesItemLineDetail")),
                    ("Amount", decimal(net, currency)),
                    (
                        "Description",
                        string(s(l, "description").unwrap_or_default()),
                    ),
                    ("SalesItemLineDetail", Value::Object(detail)),
                ]));
            }
            put(&mut m, "Line", Value::Array(lines));
            if tax > 0 {
                let total = one("TotalTax", decimal(tax, currency));
                put(&mut m, "TxnTaxDetail", total);
            }
            m
        }
        ObjectType::Payment => {
            let mut m = Obj::new();
            let total = amount(o, "amount", currency);
            put(
                &mut m,
                "CustomerRef",
                reference(input.remote_of("customerId", APP)?),
            );
            put(&mut m, "TotalAmt", total.clone());
            copy_all(&mut m, o, &[("TxnDate", "date")]);
            put(&mut m, "CurrencyRef", reference(currency.into()));
            copy_present(&mut m, o, &[("PaymentRefNum", "reference")]);
            let linked = obj(&mut [
                ("TxnId", Value::String(input.remote_of("invoiceId", APP)?)),
                ("TxnType", string("Invoice")),
            ]);
            let line = obj(&mut [("Amount", total), ("LinkedTxn", Value::Array(vec![linked]))]);
            put(&mut m, "Line", Value::Array(vec![line]));
            m
        }
        ObjectType::Expense => {
            let mut m = Obj::new();
            let Some(paid_from) = input.setting("paymentAccountId") else {
                return Err(ConnectorError::MissingSettingFor {
                    setting: "paymentAccountId",
                    field: "Purchase.AccountRef",
                });
            };
            put_str(
                &mut m,
                "PaymentType",
                input.setting("paymentType").unwrap_or("Cash"),
            );
            put(&mut m, "AccountRef", reference(paid_from.into()));
            let vendor = obj(&mut [
                ("value", Value::String(input.remote_of("vendorId", APP)?)),
                ("type", string("Vendor")),
            ]);
            put(&mut m, "EntityRef", vendor);
            copy_all(&mut m, o, &[("TxnDate", "date")]);
            put(&mut m, "CurrencyRef", reference(currency.into()));
            copy_present(&mut m, o, &[("PrivateNote", "memo")]);
            let mut lines = Vec::new();
            for (n, l) in list(o, "lines").iter().enumerate() {
                let account = input.remote_of(&format!("lines/{n}/accountId"), APP)?;
                let detail = one("AccountRef", reference(account));
                lines.push(obj(&mut [
                    ("DetailType", string("AccountBasedExpenseLineDetail")),
                    ("Amount", amount(l, "amount", currency)),
                    (
                        "Description",
                        string(s(l, "description").unwrap_or_default()),
                    ),
                    ("AccountBasedExpenseLineDetail", detail),
                ]));
            }
            put(&mut m, "Line", Value::Array(lines));
            m
        }
        ObjectType::BankTransaction => {
            let (Some(bank), Some(coded_to)) = (
                input.setting("bankAccountId"),
                input.setting("bankLineAccountId"),
            ) else {
                return Err(ConnectorError::MissingSettings {
                    first: "bankAccountId",
                    second: "bankLineAccountId",
                });
            };
            let total = i(o, "amount").unwrap_or(0);
            let mut m = Obj::new();
            let (bank_key, detail) = if total < 0 {
                put_str(&mut m, "PaymentType", "Cash");
                ("AccountRef", "AccountBasedExpenseLineDetail")
            } else {
                ("DepositToAccountRef", "DepositLineDetail")
            };
            put(&mut m, bank_key, reference(bank.into()));
            copy_all(&mut m, o, &[("TxnDate", "date")]);
            put(&mut m, "CurrencyRef", reference(currency.into()));
            copy_present(&mut m, o, &[("PrivateNote", "reference")]);
            let line = obj(&mut [
                ("DetailType", string(detail)),
                ("Amount", decimal(total.saturating_abs(), currency)),
                (
                    "Description",
                    string(s(o, "description").unwrap_or_default()),
                ),
                (detail, one("AccountRef", reference(coded_to.into()))),
            ]);
            put(&mut m, "Line", Value::Array(vec![line]));
            m
        }
    };
    if input.operation == Operation::Update {
        let (id, token) = identity(input)?;
        put(&mut m, "Id", Value::String(id));
        put(&mut m, "SyncToken", Value::String(token));
        put(&mut m, "sparse", Value::Bool(true));
    }
    Ok(m)
}

/// The remote id and SyncToken an update needs.
fn identity(input: &PushInput<'_>) -> Result<(String, String), ConnectorError> {
    let Some(id) = input.remote_id else {
        return Err(ConnectorError::NoRemoteId { connector: APP });
    };
    let Some(token) = input.remote_version else {
        return Err(ConnectorError::UnknownVersion {
            connector: APP,
            version: "SyncToken",
        });
    };
    Ok((id.to_string(), token.to_string()))
}

/// The text of a `Fault` (or the lower-case `fault` of authentication errors).
pub(crate) fn fault_text(v: &Value) -> Option<String> {
    let fault = v.get("Fault").or_else(|| v.get("fault"))?;
    let errors = fault.get("Error").or_else(|| fault.get("error"))?;
    let parts: Vec<String> = errors
        .as_array()?
        .iter()
        .map(|e| {
            let get = |a: &str, b: &str| {
                e.get(a)
                    .or_else(|| e.get(b))
                    .map(|x| match x {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .unwrap_or_default()
            };
            let mut t = get("Message", "message");
            let detail = get("Detail", "detail");
            if !detail.is_empty() {
                t.push_str(": ");
                t.push_str(&detail);
            }
            let code = get("code", "Code");
            if !code.is_empty() {
                t.push_str(&format!(" (code {code})"));
            }
            t
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn id_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Connector for QuickBooks {
    fn kind(&self) -> ConnectorKind {
        APP
    }

    fn objects(&self) -> &'static [ObjectType] {
        &OBJECTS
    }

    fn settings(&self) -> &'static [SettingSpec] {
        &SETTINGS
    }

    fn check_settings(&self, settings: &BTreeMap<String, String>) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let digits =
            |v: &str| !v.is_empty() && v.len() <= 32 && v.bytes().all(|b| b.is_ascii_digit());
        for name in ["realmId", "minorVersion"] {
            if let Some(v) = settings.get(name) {
                if !digits(v) {
                    errors.push(FieldError {
                        pointer: format!("/settings/{name}"),
                        code: codes::INVALID_FORMAT,
                        message: format!("{name} is a number (digits only)"),
                    });
                }
            }
        }
        if let Some(t) = settings.get("paymentType") {
            if !matches!(t.as_str(), "Cash" | "Check" | "CreditCard") {
                errors.push(FieldError {
                    pointer: "/settings/paymentType".into(),
                    code: codes::INVALID_VALUE,
                    message: "paymentType is Cash, Check or CreditCard".into(),
                });
            }
        }
        errors
    }

    fn check(
        &self,
        object_type: ObjectType,
        o: &Value,
        settings: &BTreeMap<String, String>,
    ) -> Vec<FieldError> {
        let mut errors = Vec::new();
        match object_type {
            ObjectType::Customer | ObjectType::Vendor => {
                errors.extend(max_chars(APP, o, "name", 500, "DisplayName"));
                if s(o, "name").is_some_and(|n| n.contains(':')) {
                    errors.push(requirement(
                        APP,
                        "/name",
                        codes::INVALID_VALUE,
                        "name (DisplayName) without ':'",
                    ));
                }
            }
            ObjectType::Account => {
                errors.extend(max_chars(APP, o, "name", 100, "Name"));
                if s(o, "name").is_some_and(|n| n.contains(':') || n.contains('"')) {
                    errors.push(requirement(
                        APP,
                        "/name",
                        codes::INVALID_VALUE,
                        "name (Name) without ':' or '\"'",
                    ));
                }
            }
            ObjectType::Invoice => {
                errors.extend(max_chars(APP, o, "number", 21, "DocNumber"));
            }
            ObjectType::Payment => {
                errors.extend(max_chars(APP, o, "reference", 21, "PaymentRefNum"));
            }
            ObjectType::Expense | ObjectType::BankTransaction => {}
        }
        check_needs(
            APP,
            object_type,
            self.needs(object_type, settings),
            o,
            settings,
            &mut errors,
        );
        errors
    }

    fn needs(&self, object_type: ObjectType, _settings: &BTreeMap<String, String>) -> Needs {
        match object_type {
            ObjectType::Expense => EXPENSE_NEEDS,
            ObjectType::BankTransaction => BANK_NEEDS,
            _ => Needs::default(),
        }
    }

    fn ignores(
        &self,
        object_type: ObjectType,
        _settings: &BTreeMap<String, String>,
    ) -> &'static [&'static str] {
        match object_type {
            ObjectType::Invoice => &["/lines/*/accountId", "/amountPaid", "/balance", "/total"],
            ObjectType::Expense => &["/total"],
            ObjectType::BankTransaction => &["/bankAccount", "/externalId"],
            _ => &[],
        }
    }

    fn request(&self, input: &PushInput<'_>) -> Result<OutboundRequest, ConnectorError> {
        let o = input.object_value();
        let (path, _) = entity(input.object_type, i(&o, "amount").is_some_and(|a| a < 0));
        let Some(realm) = input.setting("realmId") else {
            return Err(ConnectorError::MissingSetting { setting: "realmId" });
        };
        let minor = input
            .setting("minorVersion")
            .unwrap_or(DEFAULT_MINOR_VERSION);
        let request_id = truncate(input.idempotency_key, MAX_REQUEST_ID);
        let void = input.object_type == ObjectType::Invoice
            && input.operation == Operation::Update
            && s(&o, "status") == Some("void");
        let (query, body) = if input.operation == Operation::Delete {
            super::delete_target(input, APP, &super::DELETABLE)?;
            let (id, token) = identity(input)?;
            (
                format!("requestid={}", encode(&request_id)),
                obj(&mut [
                    ("Active", Value::Bool(false)),
                    ("Id", Value::String(id)),
                    ("SyncToken", Value::String(token)),
                    ("sparse", Value::Bool(true)),
                ]),
            )
        } else if void {
            let (id, token) = identity(input)?;
            (
                format!("operation=void&requestid={}", encode(&request_id)),
                obj(&mut [
                    ("Id", Value::String(id)),
                    ("SyncToken", Value::String(token)),
                ]),
            )
        } else {
            (
                format!("requestid={}", encode(&request_id)),
                Value::Object(body(input, &o)?),
            )
        };
        Ok(OutboundRequest {
            method: "POST".into(),
            url: join(
                input.url,
                &format!(
                    "/v3/company/{}/{path}?{query}&minorversion={}",
                    encode(realm),
                    encode(minor)
                ),
            ),
            headers: bearer_headers(input.access_token),
            body: text(&body),
        })
    }

    fn interpret(&self, answer: &Answer<'_>) -> ProviderVerdict {
        let v = answer.json();
        if matches!(answer.status, 200 | 201) {
            if let Some(f) = fault_text(&v) {
                return ProviderVerdict::Permanent {
                    error: format!("HTTP {}: {}", answer.status, truncate(&f, 300)),
                };
            }
            let key = entity(answer.object_type, false).1;
            // A bank transaction is answered as a Deposit or a Purchase.
            let bank = answer.object_type == ObjectType::BankTransaction;
            let e = v.get(key).or(if bank { v.get("Purchase") } else { None });
            return ProviderVerdict::Success {
                remote_id: id_text(e.and_then(|e| e.get("Id"))),
                version: id_text(e.and_then(|e| e.get("SyncToken"))),
            };
        }
        let text = fault_text(&v).unwrap_or_default();
        if answer.delete_done()
            || (answer.operation == Operation::Delete && text.contains("(code 610)"))
        {
            return super::DELETED;
        }
        failure(answer, &text)
    }

    /// The first error of `Fault.Error` (either spelling): its `code`, `Message` with its
    /// `Detail`, and its `element`.
    fn source_error(&self, answer: &Answer<'_>) -> SourceError {
        let v = answer.json();
        let first = v
            .get("Fault")
            .or_else(|| v.get("fault"))
            .and_then(|f| f.get("Error").or_else(|| f.get("error")))
            .and_then(|e| e.get(0));
        let Some(e) = first else {
            return SourceError::generic(answer.status, &v);
        };
        let get = |a: &str, b: &str| text_of(e.get(a).or_else(|| e.get(b)));
        let message = match (get("Message", "message"), get("Detail", "detail")) {
            (Some(m), Some(d)) => Some(format!("{m}: {d}")),
            (m, d) => m.or(d),
        };
        SourceError {
            status: answer.status,
            code: get("code", "Code"),
            message,
            field: get("element", "Element"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn faults_read_both_spellings() {
        let v: Value = serde_json::from_str(
            r#"{"Fault":{"Error":[{"Message":"Duplicate Name Exists Error","Detail":"The name supplied already exists.","code":"6240","element":""}],"type":"ValidationFault"},"time":"x"}"#,
        )
        .unwrap();
        assert_eq!(
            fault_text(&v).unwrap(),
            "Duplicate Name Exists Error: The name supplied already exists. (code 6240)"
        );
        let v: Value = serde_json::from_str(
            r#"{"fault":{"error":[{"message":"message=AuthenticationFailed; errorCode=003200; statusCode=401","detail":"Token expired","code":"3200"}],"type":"AUTHENTICATION"}}"#,
        )
        .unwrap();
        assert!(fault_text(&v).unwrap().contains("AuthenticationFailed"));
        assert_eq!(fault_text(&json!({"Customer": {}})), None);
    }
}
