//! The Common Data Model: typed objects, their validation and the computed fields.
//!
//! Every validator reads a `serde_json::Value` (so that it can report *every* problem with a
//! JSON Pointer, not only the first one serde would stop at) and produces the typed object.
//! Server-managed fields (`id`, `version`, `createdAt`, `updatedAt`) are left empty/zero by the
//! validators; the engine fills them.

use serde::{Deserialize, Serialize};

/// The object types of the CDM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ObjectType {
    /// A customer.
    Customer,
    /// A vendor (supplier).
    Vendor,
    /// An account of the chart of accounts.
    Account,
    /// A sales invoice.
    Invoice,
    /// A payment against an invoice.
    Payment,
    /// An expense (purchase).
    Expense,
    /// A bank transaction.
    BankTransaction,
}

impl ObjectType {
    /// Every type, in a fixed order.
    pub const ALL: [ObjectType; 7] = [
        ObjectType::Customer,
        ObjectType::Vendor,
        ObjectType::Account,
        ObjectType::Invoice,
        ObjectType::Payment,
        ObjectType::Expense,
        ObjectType::BankTransaction,
    ];
    /// The name used in JSON (`objectType`, capability lists): `bankTransaction`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Customer => "customer",
            ObjectType::Vendor => "vendor",
            ObjectType::Account => "account",
            ObjectType::Invoice => "invoice",
            ObjectType::Payment => "payment",
            ObjectType::Expense => "expense",
            ObjectType::BankTransaction => "bankTransaction",
        }
    }
    /// Parse the JSON name.
    pub fn parse(s: &str) -> Option<ObjectType> {
        ObjectType::ALL.into_iter().find(|t| t.as_str() == s)
    }
    /// The collection segment of the data API path: `bank-transactions`, ...
    pub fn collection(self) -> &'static str {
        match self {
            ObjectType::Customer => "customers",
            ObjectType::Vendor => "vendors",
            ObjectType::Account => "accounts",
            ObjectType::Invoice => "invoices",
            ObjectType::Payment => "payments",
            ObjectType::Expense => "expenses",
            ObjectType::BankTransaction => "bank-transactions",
        }
    }
    /// Parse a collection segment.
    pub fn from_collection(s: &str) -> Option<ObjectType> {
        ObjectType::ALL.into_iter().find(|t| t.collection() == s)
    }
}

/// One validation problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// JSON Pointer (RFC 6901) into the request body; `""` for the whole body.
    pub pointer: String,
    /// Stable machine-readable code (see [`FieldCode`] and [`codes`]).
    pub code: FieldCode,
    /// Human-readable message.
    pub message: String,
}

/// The stable machine-readable code of a [`FieldError`].
///
/// It is written in JSON (the `code` of each entry of a `422` answer's `errors`) as the
/// snake_case name of its variant, e.g. `"required"` or `"invalid_type"`, which
/// [`FieldCode::as_str`] also gives; reading JSON accepts exactly those names. Clients match on
/// these strings, so a variant's name never changes; new variants may be added, hence
/// `#[non_exhaustive]`. The constants of [`codes`] name each variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FieldCode {
    /// `required`: a required field is missing (or null, or a blank string).
    Required,
    /// `invalid_type`: the value has the wrong JSON type.
    InvalidType,
    /// `invalid_format`: the value does not have the required format (date, e-mail,
    /// currency, ...).
    InvalidFormat,
    /// `invalid_value`: the value is not one of the allowed values.
    InvalidValue,
    /// `out_of_range`: a number is outside its allowed range.
    OutOfRange,
    /// `too_long`: a string or list is too long.
    TooLong,
    /// `too_few`: a list has too few entries.
    TooFew,
    /// `not_found`: a referenced object does not exist.
    NotFound,
    /// `duplicate`: a uniqueness rule is broken.
    Duplicate,
    /// `mismatch`: a client-sent computed value disagrees with the server's computation.
    Mismatch,
    /// `unknown_field`: a field the object does not have.
    UnknownField,
    /// `overflow`: arithmetic on money overflowed.
    Overflow,
    /// `invalid_state`: the operation is not allowed in the object's current state.
    InvalidState,
}

impl FieldCode {
    /// The code as written in JSON: `required`, `invalid_type`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            FieldCode::Required => "required",
            FieldCode::InvalidType => "invalid_type",
            FieldCode::InvalidFormat => "invalid_format",
            FieldCode::InvalidValue => "invalid_value",
            FieldCode::OutOfRange => "out_of_range",
            FieldCode::TooLong => "too_long",
            FieldCode::TooFew => "too_few",
            FieldCode::NotFound => "not_found",
            FieldCode::Duplicate => "duplicate",
            FieldCode::Mismatch => "mismatch",
            FieldCode::UnknownField => "unknown_field",
            FieldCode::Overflow => "overflow",
            FieldCode::InvalidState => "invalid_state",
        }
    }
}

/// Written as [`FieldCode::as_str`], so that the names exist once in the program (the wasm
/// module's size is budgeted); reading uses serde's `snake_case` names, the same strings, which
/// a unit test checks for every variant.
impl Serialize for FieldCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The stable validation error codes, one constant per [`FieldCode`] variant.
pub mod codes {
    use super::FieldCode;

    /// A required field is missing (or null).
    pub const REQUIRED: FieldCode = FieldCode::Required;
    /// The value has the wrong JSON type.
    pub const INVALID_TYPE: FieldCode = FieldCode::InvalidType;
    /// The value does not have the required format (date, e-mail, currency, ...).
    pub const INVALID_FORMAT: FieldCode = FieldCode::InvalidFormat;
    /// The value is not one of the allowed values.
    pub const INVALID_VALUE: FieldCode = FieldCode::InvalidValue;
    /// A number is outside its allowed range.
    pub const OUT_OF_RANGE: FieldCode = FieldCode::OutOfRange;
    /// A string or list is too long.
    pub const TOO_LONG: FieldCode = FieldCode::TooLong;
    /// A list has too few entries.
    pub const TOO_FEW: FieldCode = FieldCode::TooFew;
    /// A referenced object does not exist.
    pub const NOT_FOUND: FieldCode = FieldCode::NotFound;
    /// A uniqueness rule is broken.
    pub const DUPLICATE: FieldCode = FieldCode::Duplicate;
    /// A client-sent computed value disagrees with the server's computation.
    pub const MISMATCH: FieldCode = FieldCode::Mismatch;
    /// A field the object does not have.
    pub const UNKNOWN_FIELD: FieldCode = FieldCode::UnknownField;
    /// Arithmetic on money overflowed.
    pub const OVERFLOW: FieldCode = FieldCode::Overflow;
    /// The operation is not allowed in the object's current state.
    pub const INVALID_STATE: FieldCode = FieldCode::InvalidState;
}

/// What validation needs to know about stored state, supplied by the engine.
///
/// Uniqueness lookups answer the id of the object that holds the value, so that an update of
/// the holder itself is not a duplicate.
pub trait RefLookup {
    /// Whether a customer with this id exists in the tenant.
    fn customer_exists(&self, id: &str) -> bool;
    /// Whether a vendor with this id exists in the tenant.
    fn vendor_exists(&self, id: &str) -> bool;
    /// Whether an account (chart of accounts) with this id exists in the tenant.
    fn account_exists(&self, id: &str) -> bool;
    /// The id of the invoice with this `number`, if any.
    fn invoice_number_owner(&self, number: &str) -> Option<String>;
    /// The id of the account with this `code`, if any.
    fn account_code_owner(&self, code: &str) -> Option<String>;
    /// The id of the bank transaction with this `externalId` on `bank_account`, if any.
    fn bank_external_id_owner(&self, bank_account: &str, external_id: &str) -> Option<String>;
}

/// A postal address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    /// First line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line1: Option<String>,
    /// Second line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Region, state or province.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// Fields every stored object carries, filled by the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// Server-assigned id.
    pub id: String,
    /// 1 on create, +1 on each write.
    pub version: u64,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub updated_at: String,
}

/// A customer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    /// Server-managed fields.
    #[serde(flatten)]
    pub meta: Meta,
    /// Display name (required).
    pub name: String,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Contact person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_name: Option<String>,
    /// Billing address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_address: Option<Address>,
}

/// A vendor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vendor {
    /// Server-managed fields.
    #[serde(flatten)]
    pub meta: Meta,
    /// Display name (required).
    pub name: String,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

/// The type of a chart-of-accounts entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AccountType {
    /// Asset.
    #[default]
    Asset,
    /// Liability.
    Liability,
    /// Equity.
    Equity,
    /// Income.
    Income,
    /// Expense.
    Expense,
}

/// An entry of the chart of accounts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// Server-managed fields.
    #[serde(flatten)]
    pub meta: Meta,
    /// Code, unique in the tenant.
    pub code: String,
    /// Name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub account_type: AccountType,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether the account is active (default true).
    pub active: bool,
}

/// The status of an invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum InvoiceStatus {
    /// Balance outstanding.
    #[default]
    Open,
    /// Fully paid.
    Paid,
    /// Voided.
    Void,
}

/// A line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceLine {
    /// Description.
    pub description: String,
    /// Quantity, a decimal > 0, kept as the client wrote it (JSON number).
    pub quantity: serde_json::Number,
    /// Unit amount in minor units, >= 0.
    pub unit_amount: i64,
    /// Account (chart of accounts) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// Tax of the whole line in minor units, >= 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_amount: Option<i64>,
    /// quantity x unitAmount rounded half to even, plus taxAmount (computed).
    pub amount: i64,
}

impl Default for InvoiceLine {
    /// An empty line with quantity `0` (`serde_json::Number` has no `Default` of its own).
    fn default() -> Self {
        InvoiceLine {
            description: String::new(),
            quantity: serde_json::Number::from(0u8),
            unit_amount: 0,
            account_id: None,
            tax_amount: None,
            amount: 0,
        }
    }
}

/// A sales invoice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invoice {
    /// Server-managed fields.
    #[serde(flatten)]
    pub meta: Meta,
    /// Number, unique in the tenant.
    pub number: String,
    /// Customer id (must exist).
    pub customer_id: String,
    /// Issue date `YYYY-MM-DD`.
    pub issue_date: String,
    /// Due date `YYYY-MM-DD`, not before the issue date.
    pub due_date: String,
    /// ISO 4217 currency.
    pub currency: String,
    /// Lines (at least one).
    pub lines: Vec<InvoiceLine>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
    /// Sum of the line amounts (computed).
    pub total: i64,
    /// Sum of payments (computed).
    pub amount_paid: i64,
    /// total - amountPaid (computed).
    pub balance: i64,
    /// Status (computed; a client may set `void`).
    pub status: InvoiceStatus,
}

/// A payment of an invoice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    /// Server-managed fields.
    #[serde(flatten)]
    pub meta: Meta,
    /// The paid invoice.
    pub invoice_id: String,
    /// Amount in minor units, > 0, not above the invoice balance.
    pub amount: i64,
    /// The invoice's currency.
    pub currency: String,
    /// Payment date `YYYY-MM-DD`.
    pub date: String,
    /// Free reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// A line of an expense.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpenseLine {
    /// Description.
    pub description: String,
    /// Amount in minor units, > 0.
    pub amount: i64,
    /// Account (chart of accounts) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
}

/// An expense.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Expense {
    /// Server-managed fields.
    #[serde(flatten)]
    pub meta: Meta,
    /// The vendor (always set on a stored expense).
    pub vendor_id: String,
    /// Date `YYYY-MM-DD`.
    pub date: String,
    /// ISO 4217 currency.
    pub currency: String,
    /// Lines (at least one).
    pub lines: Vec<ExpenseLine>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
    /// Sum of the line amounts (computed).
    pub total: i64,
}

/// A bank transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BankTransaction {
    /// Server-managed fields.
    #[serde(flatten)]
    pub meta: Meta,
    /// The bank account (free identifier, e.g. an IBAN or the source's account id).
    pub bank_account: String,
    /// Date `YYYY-MM-DD`.
    pub date: String,
    /// Signed amount in minor units.
    pub amount: i64,
    /// ISO 4217 currency.
    pub currency: String,
    /// Description.
    pub description: String,
    /// Free reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Id at the bank, unique per bank account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_codes_are_written_as_todays_strings() {
        // Every code, with the string the HTTP contract (and every stored vector) uses for it.
        let all = [
            (codes::REQUIRED, "required"),
            (codes::INVALID_TYPE, "invalid_type"),
            (codes::INVALID_FORMAT, "invalid_format"),
            (codes::INVALID_VALUE, "invalid_value"),
            (codes::OUT_OF_RANGE, "out_of_range"),
            (codes::TOO_LONG, "too_long"),
            (codes::TOO_FEW, "too_few"),
            (codes::NOT_FOUND, "not_found"),
            (codes::DUPLICATE, "duplicate"),
            (codes::MISMATCH, "mismatch"),
            (codes::UNKNOWN_FIELD, "unknown_field"),
            (codes::OVERFLOW, "overflow"),
            (codes::INVALID_STATE, "invalid_state"),
        ];
        let distinct: std::collections::BTreeSet<FieldCode> = all.iter().map(|(c, _)| *c).collect();
        assert_eq!(distinct.len(), all.len());
        for (code, text) in all {
            assert_eq!(code.as_str(), text);
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::json!(text));
            let back: FieldCode = serde_json::from_value(serde_json::json!(text)).unwrap();
            assert_eq!(back, code);
        }
        // A field error is written exactly as before the code had a type of its own.
        let e = FieldError {
            pointer: "/lines/0/quantity".into(),
            code: codes::OUT_OF_RANGE,
            message: "m".into(),
        };
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(
            text,
            r#"{"pointer":"/lines/0/quantity","code":"out_of_range","message":"m"}"#
        );
        assert_eq!(serde_json::from_str::<FieldError>(&text).unwrap(), e);
        // Other spellings are not codes.
        for bad in [
            "Required",
            "REQUIRED",
            "invalidType",
            "invalid-type",
            "",
            "unknown",
        ] {
            assert!(
                serde_json::from_value::<FieldCode>(serde_json::json!(bad)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn object_types_round_trip_names_and_collections() {
        for t in ObjectType::ALL {
            assert_eq!(ObjectType::parse(t.as_str()), Some(t));
            assert_eq!(ObjectType::from_collection(t.collection()), Some(t));
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
        assert_eq!(ObjectType::parse("bank-transactions"), None);
        assert_eq!(ObjectType::from_collection("bankTransaction"), None);
    }

    #[test]
    fn stored_objects_serialize_camel_case_with_meta_flattened() {
        let c = Customer {
            meta: Meta {
                id: "c1".into(),
                version: 2,
                created_at: "a".into(),
                updated_at: "b".into(),
            },
            name: "Acme".into(),
            contact_name: Some("Jo".into()),
            ..Default::default()
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"id": "c1", "version": 2, "createdAt": "a", "updatedAt": "b",
                                         "name": "Acme", "contactName": "Jo"})
        );
        let back: Customer = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
    }
}
