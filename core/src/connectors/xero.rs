//! Xero Accounting API 2.0.
//!
//! Creates are `PUT {baseUrl}/api.xro/2.0/{Collection}`, updates
//! `POST {baseUrl}/api.xro/2.0/{Collection}/{id}`, with `Authorization: Bearer {token}`,
//! `xero-tenant-id: {tenantId}`, `Accept: application/json` and `Idempotency-Key` (the push's
//! key, at most 128 characters). Bodies wrap the entity in its collection
//! (`{"Contacts": [...]}`), except the creation of an account, which is the bare account.
//! Xero archives what other systems delete: a deleted customer or vendor is
//! `POST .../Contacts/{id}` with `ContactStatus: ARCHIVED`, a deleted account
//! `POST .../Accounts/{id}` with `Status: ARCHIVED`; a `404` to it counts as done. An expense
//! is a `SPEND` BankTransaction from the bank account of the `expenseBankAccountCode` setting
//! to the vendor's contact.
//! Answers list the entities with their ids (`ContactID`, `AccountID`, `InvoiceID`,
//! `PaymentID`, `BankTransactionID`); validation errors are `400`
//! `{"ErrorNumber", "Type": "ValidationException", "Message", "Elements": [{"ValidationErrors": [{"Message"}]}]}`;
//! throttling is `429` with `Retry-After`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::error::text_of;
use super::SourceError;
use super::{
    amount, bearer_headers, check_needs, copy_all, copy_present, decimal, encode, failure, i,
    is_uuid, join, list, max_chars, obj, one, put, put_str, s, split_name, string, text, truncate,
    Answer, Connector, ConnectorError, ConnectorKind, Needs, Obj, Operation, ProviderVerdict,
    PushInput, SettingSpec,
};
use crate::cdm::{codes, FieldError, ObjectType};
use crate::OutboundRequest;

/// The longest `Idempotency-Key` Xero accepts.
pub(crate) const MAX_IDEMPOTENCY_KEY: usize = 128;

const APP: ConnectorKind = ConnectorKind::Xero;

const OBJECTS: [ObjectType; 7] = [
    ObjectType::Customer,
    ObjectType::Vendor,
    ObjectType::Account,
    ObjectType::Invoice,
    ObjectType::Payment,
    ObjectType::BankTransaction,
    ObjectType::Expense,
];

const SETTINGS: [SettingSpec; 5] = [
    SettingSpec {
        name: "tenantId",
        required: true,
        description: "the Xero organisation (tenant) id sent as xero-tenant-id",
    },
    SettingSpec {
        name: "paymentAccountCode",
        required: false,
        description: "code of the Xero bank account payments are received into (Payment.Account.Code); needed to push payments",
    },
    SettingSpec {
        name: "bankLineAccountCode",
        required: false,
        description: "account code the line of a pushed bank transaction is coded to (LineItems[].AccountCode); needed to push bank transactions",
    },
    SettingSpec {
        name: "bankContactName",
        required: false,
        description: "contact name of pushed bank transactions (Contact.Name); needed to push bank transactions",
    },
    SettingSpec {
        name: "expenseBankAccountCode",
        required: false,
        description: "code of the Xero bank account expenses are paid from (a SPEND BankTransaction's BankAccount.Code); needed to push expenses",
    },
];

/// The lines of an AUTHORISED invoice and of a bank transaction need an `AccountCode`.
const INVOICE_LINE_ACCOUNTS: (&str, &str) = (
    "/lines/*/accountId",
    "an AUTHORISED invoice's LineItems need an AccountCode",
);
const SPEND_LINE_ACCOUNTS: (&str, &str) = (
    "/lines/*/accountId",
    "a SPEND bank transaction's LineItems need an AccountCode",
);

/// The Xero connector (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct Xero;

/// The collection and the id field of an object type (an expense is a SPEND bank
/// transaction).
fn collection(t: ObjectType) -> (&'static str, &'static str) {
    match t {
        ObjectType::Customer | ObjectType::Vendor => ("Contacts", "ContactID"),
        ObjectType::Account => ("Accounts", "AccountID"),
        ObjectType::Invoice => ("Invoices", "InvoiceID"),
        ObjectType::Payment => ("Payments", "PaymentID"),
        ObjectType::BankTransaction | ObjectType::Expense => {
            ("BankTransactions", "BankTransactionID")
        }
    }
}

/// `AccountCode` of line `n`: the `code` of the CDM account its `accountId` names (none
/// when the line names no account).
fn line_account(input: &PushInput<'_>, n: usize, line: &mut Obj) -> Result<(), ConnectorError> {
    if let Some(r) = input.reference(&format!("lines/{n}/accountId")) {
        match r.object.as_ref().and_then(|a| s(a, "code")) {
            Some(c) => put_str(line, "AccountCode", c),
            None => {
                return Err(ConnectorError::LineAccountNotStored {
                    id: r.id.clone(),
                    line: n,
                })
            }
        }
    }
    Ok(())
}

fn account_type(t: &str) -> &'static str {
    match t {
        "asset" => "CURRENT",
        "liability" => "CURRLIAB",
        "equity" => "EQUITY",
        "income" => "REVENUE",
        _ => "EXPENSE",
    }
}

/// Address members: (Xero key, CDM field).
const ADDRESS: &[(&str, &str)] = &[
    ("AddressLine1", "line1"),
    ("AddressLine2", "line2"),
    ("City", "city"),
    ("Region", "region"),
    ("PostalCode", "postalCode"),
    ("Country", "country"),
];

fn contact(o: &Value, address_key: &str) -> Obj {
    let mut m = Obj::new();
    copy_all(&mut m, o, &[("Name", "name")]);
    if let Some(c) = s(o, "contactName") {
        let (first, last) = split_name(c);
        if let Some(f) = first {
            put(&mut m, "FirstName", Value::String(f));
        }
        put(&mut m, "LastName", Value::String(last));
    }
    copy_present(&mut m, o, &[("EmailAddress", "email")]);
    if let Some(p) = s(o, "phone") {
        let phone = obj(&mut [("PhoneType", string("DEFAULT")), ("PhoneNumber", string(p))]);
        put(&mut m, "Phones", Value::Array(vec![phone]));
    }
    if let Some(a) = o.get(address_key).filter(|a| a.is_object()) {
        let mut addr = Obj::new();
        put_str(&mut addr, "AddressType", "POBOX");
        copy_present(&mut addr, a, ADDRESS);
        put(&mut m, "Addresses", Value::Array(vec![Value::Object(addr)]));
    }
    m
}

fn entity(input: &PushInput<'_>, o: &Value) -> Result<Obj, ConnectorError> {
    let currency = s(o, "currency").unwrap_or("USD");
    let m = match input.object_type {
        ObjectType::Customer => contact(o, "billingAddress"),
        ObjectType::Vendor => contact(o, "address"),
        ObjectType::Account => {
            let mut m = Obj::new();
            copy_all(&mut m, o, &[("Code", "code"), ("Name", "name")]);
            put_str(
                &mut m,
                "Type",
                account_type(s(o, "type").unwrap_or_default()),
            );
            copy_present(&mut m, o, &[("Description", "description")]);
            if input.operation == Operation::Update {
                let active = o.get("active").and_then(Value::as_bool).unwrap_or(true);
                put_str(&mut m, "Status", if active { "ACTIVE" } else { "ARCHIVED" });
            }
            m
        }
        ObjectType::Invoice => {
            let mut m = Obj::new();
            put_str(&mut m, "Type", "ACCREC");
            let customer = input.remote_of("customerId", APP)?;
            put(&mut m, "Contact", one("ContactID", Value::String(customer)));
            copy_all(
                &mut m,
                o,
                &[
                    ("InvoiceNumber", "number"),
                    ("Date", "issueDate"),
                    ("DueDate", "dueDate"),
                ],
            );
            put_str(&mut m, "CurrencyCode", currency);
            copy_present(&mut m, o, &[("Reference", "memo")]);
            put_str(&mut m, "Status", "AUTHORISED");
            put_str(&mut m, "LineAmountTypes", "Exclusive");
            let mut lines = Vec::new();
            for (n, l) in list(o, "lines").iter().enumerate() {
                let mut line = Obj::new();
                copy_all(&mut line, l, &[("Description", "description")]);
                let qty = l.get("quantity").cloned().unwrap_or(Value::from(1));
                put(&mut line, "Quantity", qty);
                put(&mut line, "UnitAmount", amount(l, "unitAmount", currency));
                line_account(input, n, &mut line)?;
                if let Some(t) = i(l, "taxAmount") {
                    put(&mut line, "TaxAmount", decimal(t, currency));
                }
                lines.push(Value::Object(line));
            }
            put(&mut m, "LineItems", Value::Array(lines));
            m
        }
        ObjectType::Payment => {
            let Some(code) = input.setting("paymentAccountCode") else {
                return Err(ConnectorError::MissingSetting {
                    setting: "paymentAccountCode",
                });
            };
            let mut m = Obj::new();
            let invoice = input.remote_of("invoiceId", APP)?;
            put(&mut m, "Invoice", one("InvoiceID", Value::String(invoice)));
            put(&mut m, "Account", one("Code", string(code)));
            copy_all(&mut m, o, &[("Date", "date")]);
            put(&mut m, "Amount", amount(o, "amount", currency));
            copy_present(&mut m, o, &[("Reference", "reference")]);
            m
        }
        ObjectType::BankTransaction => {
            let (Some(code), Some(contact)) = (
                input.setting("bankLineAccountCode"),
                input.setting("bankContactName"),
            ) else {
                return Err(ConnectorError::MissingSettings {
                    first: "bankLineAccountCode",
                    second: "bankContactName",
                });
            };
            let total = i(o, "amount").unwrap_or(0);
            let bank = s(o, "bankAccount").unwrap_or_default();
            let bank_key = if is_uuid(bank) { "AccountID" } else { "Code" };
            let mut m = Obj::new();
            put_str(&mut m, "Type", if total < 0 { "SPEND" } else { "RECEIVE" });
            put(&mut m, "Contact", one("Name", string(contact)));
            put(&mut m, "BankAccount", one(bank_key, string(bank)));
            copy_all(&mut m, o, &[("Date", "date")]);
            put_str(&mut m, "CurrencyCode", currency);
            copy_present(&mut m, o, &[("Reference", "reference")]);
            put_str(&mut m, "LineAmountTypes", "NoTax");
            let mut line = Obj::new();
            copy_all(&mut line, o, &[("Description", "description")]);
            put(&mut line, "Quantity", Value::from(1));
            put(
                &mut line,
                "UnitAmount",
                decimal(total.saturating_abs(), currency),
            );
            put_str(&mut line, "AccountCode", code);
            put(&mut m, "LineItems", Value::Array(vec![Value::Object(line)]));
            m
        }
        ObjectType::Expense => {
            // A SPEND bank transaction from the bank account of the setting, to the vendor.
            let Some(bank) = input.setting("expenseBankAccountCode") else {
                return Err(ConnectorError::MissingSetting {
                    setting: "expenseBankAccountCode",
                });
            };
            let mut m = Obj::new();
            put_str(&mut m, "Type", "SPEND");
            let vendor = input.remote_of("vendorId", APP)?;
            put(&mut m, "Contact", one("ContactID", Value::String(vendor)));
            put(&mut m, "BankAccount", one("Code", string(bank)));
            copy_all(&mut m, o, &[("Date", "date")]);
            put_str(&mut m, "CurrencyCode", currency);
            copy_present(&mut m, o, &[("Reference", "memo")]);
            put_str(&mut m, "LineAmountTypes", "NoTax");
            let mut lines = Vec::new();
            for (n, l) in list(o, "lines").iter().enumerate() {
                let mut line = Obj::new();
                copy_all(&mut line, l, &[("Description", "description")]);
                put(&mut line, "Quantity", Value::from(1));
                put(&mut line, "UnitAmount", amount(l, "amount", currency));
                line_account(input, n, &mut line)?;
                lines.push(Value::Object(line));
            }
            put(&mut m, "LineItems", Value::Array(lines));
            m
        }
    };
    Ok(m)
}

/// `{"<collection>": [entity]}`.
fn wrap(coll: &str, e: Value) -> Value {
    one(coll, Value::Array(vec![e]))
}

/// The text of a Xero error: every validation message, else `Message`, else `Detail`.
pub(crate) fn error_text(v: &Value) -> Option<String> {
    let mut messages = Vec::new();
    for e in super::list(v, "Elements") {
        for ve in super::list(e, "ValidationErrors") {
            if let Some(m) = s(ve, "Message") {
                messages.push(m.to_string());
            }
        }
        // Line items carry their own validation errors.
        for li in super::list(e, "LineItems") {
            for ve in super::list(li, "ValidationErrors") {
                if let Some(m) = s(ve, "Message") {
                    messages.push(m.to_string());
                }
            }
        }
    }
    if !messages.is_empty() {
        return Some(messages.join("; "));
    }
    s(v, "Message")
        .or_else(|| s(v, "Detail"))
        .or_else(|| s(v, "Title"))
        .map(str::to_string)
}

impl Connector for Xero {
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
        match settings.get("tenantId") {
            Some(t) if !is_uuid(t) => vec![FieldError {
                pointer: "/settings/tenantId".into(),
                code: codes::INVALID_FORMAT,
                message: "tenantId is the organisation's UUID".into(),
            }],
            _ => Vec::new(),
        }
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
                errors.extend(max_chars(APP, o, "name", 255, "Contact Name"));
            }
            ObjectType::Account => {
                errors.extend(max_chars(APP, o, "code", 10, "Account Code"));
                errors.extend(max_chars(APP, o, "name", 150, "Account Name"));
            }
            ObjectType::Invoice => {
                errors.extend(max_chars(APP, o, "number", 255, "InvoiceNumber"));
            }
            _ => {}
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
            ObjectType::Invoice => Needs {
                fields: &[INVOICE_LINE_ACCOUNTS],
                settings: &[],
            },
            ObjectType::Payment => Needs {
                fields: &[],
                settings: &["paymentAccountCode"],
            },
            ObjectType::BankTransaction => Needs {
                fields: &[],
                settings: &["bankLineAccountCode", "bankContactName"],
            },
            ObjectType::Expense => Needs {
                fields: &[SPEND_LINE_ACCOUNTS],
                settings: &["expenseBankAccountCode"],
            },
            _ => Needs::default(),
        }
    }

    fn ignores(
        &self,
        object_type: ObjectType,
        _settings: &BTreeMap<String, String>,
    ) -> &'static [&'static str] {
        match object_type {
            ObjectType::Invoice => &["/amountPaid", "/balance", "/lines/*/amount", "/total"],
            ObjectType::Payment => &["/currency"],
            ObjectType::Expense => &["/total"],
            ObjectType::BankTransaction => &["/externalId"],
            _ => &[],
        }
    }

    fn request(&self, input: &PushInput<'_>) -> Result<OutboundRequest, ConnectorError> {
        let (coll, id_field) = collection(input.object_type);
        let Some(tenant) = input.setting("tenantId") else {
            return Err(ConnectorError::MissingSetting {
                setting: "tenantId",
            });
        };
        let o = input.object_value();
        let void = input.object_type == ObjectType::Invoice
            && input.operation == Operation::Update
            && s(&o, "status") == Some("void");
        let (method, path, body) = match (input.operation, input.remote_id) {
            (Operation::Update, Some(id)) => {
                let mut e = if void {
                    let mut m = Obj::new();
                    put_str(&mut m, "Status", "VOIDED");
                    m
                } else {
                    entity(input, &o)?
                };
                put_str(&mut e, id_field, id);
                (
                    "POST",
                    format!("/api.xro/2.0/{coll}/{}", encode(id)),
                    wrap(coll, Value::Object(e)),
                )
            }
            (Operation::Update, None) => return Err(ConnectorError::NoRemoteId { connector: APP }),
            (Operation::Delete, _) => {
                let id = super::delete_target(input, APP, &super::DELETABLE)?;
                let status = if coll == "Contacts" {
                    "ContactStatus"
                } else {
                    "Status"
                };
                let e = obj(&mut [(id_field, string(id)), (status, string("ARCHIVED"))]);
                (
                    "POST",
                    format!("/api.xro/2.0/{coll}/{}", encode(id)),
                    wrap(coll, e),
                )
            }
            (Operation::Create, _) => {
                let e = Value::Object(entity(input, &o)?);
                let body = if input.object_type == ObjectType::Account {
                    e
                } else {
                    wrap(coll, e)
                };
                ("PUT", format!("/api.xro/2.0/{coll}"), body)
            }
        };
        let mut headers = bearer_headers(input.access_token);
        headers.insert("xero-tenant-id".into(), tenant.to_string());
        headers.insert(
            "Idempotency-Key".into(),
            truncate(input.idempotency_key, MAX_IDEMPOTENCY_KEY),
        );
        Ok(OutboundRequest {
            method: method.into(),
            url: join(input.url, &path),
            headers,
            body: text(&body),
        })
    }

    fn interpret(&self, answer: &Answer<'_>) -> ProviderVerdict {
        let v = answer.json();
        if matches!(answer.status, 200 | 201) {
            let (coll, id_field) = collection(answer.object_type);
            let first = v.get(coll).and_then(|c| c.get(0));
            return ProviderVerdict::Success {
                remote_id: first.and_then(|e| s(e, id_field)).map(str::to_string),
                version: None,
            };
        }
        if answer.delete_done() {
            return super::DELETED;
        }
        let text = match error_text(&v) {
            Some(t) => t,
            None if answer.status == 429 => match answer.header("X-Rate-Limit-Problem") {
                Some(p) => format!("rate limit exceeded ({p})"),
                None => "rate limit exceeded".into(),
            },
            None => String::new(),
        };
        failure(answer, &text)
    }

    /// `Type` (or `ErrorNumber`) as the code, the first validation message (of the element or
    /// of its line items, then `LineItems/{i}` as the field) or else `Message`/`Detail`.
    fn source_error(&self, answer: &Answer<'_>) -> SourceError {
        let v = answer.json();
        let mut message = None;
        let mut field = None;
        for e in super::list(&v, "Elements") {
            if let Some(m) = super::list(e, "ValidationErrors").first() {
                message = text_of(m.get("Message"));
            }
            for (i, li) in super::list(e, "LineItems").iter().enumerate() {
                if message.is_some() {
                    break;
                }
                if let Some(m) = super::list(li, "ValidationErrors").first() {
                    message = text_of(m.get("Message"));
                    field = Some(format!("LineItems/{i}"));
                }
            }
            if message.is_some() {
                break;
            }
        }
        SourceError {
            status: answer.status,
            code: text_of(v.get("Type")).or_else(|| text_of(v.get("ErrorNumber"))),
            message: message.or_else(|| {
                ["Message", "Detail", "Title"]
                    .iter()
                    .find_map(|k| text_of(v.get(*k)))
            }),
            field,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validation_errors_are_collected() {
        let v: Value = serde_json::from_str(
            r#"{"ErrorNumber":10,"Type":"ValidationException","Message":"A validation exception occurred","Elements":[{"ValidationErrors":[{"Message":"Account code '999' is not a valid code for this document."}],"LineItems":[{"ValidationErrors":[{"Message":"Description needs to be specified."}]}]}]}"#,
        )
        .unwrap();
        assert_eq!(
            error_text(&v).unwrap(),
            "Account code '999' is not a valid code for this document.; Description needs to be specified."
        );
        let v =
            json!({"Title": "Unauthorized", "Status": 401, "Detail": "AuthenticationUnsuccessful"});
        assert_eq!(error_text(&v).unwrap(), "AuthenticationUnsuccessful");
    }
}
