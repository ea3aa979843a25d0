//! Why a connector cannot build the provider's request for a push.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cdm::ObjectType;

use super::ConnectorKind;

/// Why [`Connector::request`](super::Connector::request) cannot build a push: the push fails
/// for good (nothing is sent), and the engine records the error's text as the target's
/// `lastError`.
///
/// The text of every variant starts with `not sent: `. Those texts are part of the HTTP
/// contract's answers and of the shared vectors, so they do not change; new variants may be
/// added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectorError {
    /// The connector does not push objects of this type.
    #[error(
        "not sent: the {} connector does not push {}",
        .connector.as_str(),
        .object_type.as_str()
    )]
    UnsupportedObject {
        /// The connector.
        connector: ConnectorKind,
        /// The type of the pushed object.
        object_type: ObjectType,
    },
    /// The connector cannot delete (archive, deactivate) objects of this type at the source.
    #[error(
        "not sent: the {} connector does not delete {}",
        .connector.as_str(),
        .object_type.as_str()
    )]
    UnsupportedDelete {
        /// The connector.
        connector: ConnectorKind,
        /// The type of the deleted object.
        object_type: ObjectType,
    },
    /// The pushed object has no reference at `field`, which the provider requires.
    #[error("not sent: the object has no {field}")]
    MissingReference {
        /// Where the reference belongs in the object: `customerId`, `invoiceId`, `vendorId`,
        /// or `lines/{i}/accountId` for a line's account.
        field: String,
    },
    /// The object refers to one that the connection has not acknowledged with an id yet:
    /// it must be pushed first.
    #[error(
        "not sent: {} {id} (at {field}) has no {} id; push it to {} first",
        .object_type.as_str(),
        .connector.as_str(),
        .connector.as_str()
    )]
    ReferenceNotPushed {
        /// Where the reference is in the object (as in
        /// [`MissingReference`](ConnectorError::MissingReference)).
        field: String,
        /// The type of the referenced object.
        object_type: ObjectType,
        /// The referenced object's CDM id.
        id: String,
        /// The connector that has no id for it.
        connector: ConnectorKind,
    },
    /// The account a line refers to is not stored, so the value the provider takes for it
    /// (e.g. Xero's `AccountCode`) cannot be read.
    #[error("not sent: account {id} of line {line} is not stored")]
    LineAccountNotStored {
        /// The account's CDM id.
        id: String,
        /// The index of the line in `lines`.
        line: usize,
    },
    /// An update of an object the provider acknowledged without naming its id.
    #[error("not sent: {} did not name an id for this object", .connector.as_str())]
    NoRemoteId {
        /// The connector.
        connector: ConnectorKind,
    },
    /// An update needs the version the provider gave the object (QuickBooks' `SyncToken`),
    /// which is not known.
    #[error(
        "not sent: the {version} {} gave this object is unknown, so it cannot be updated",
        .connector.as_str()
    )]
    UnknownVersion {
        /// The connector.
        connector: ConnectorKind,
        /// The provider's name of the version (`SyncToken`).
        version: &'static str,
    },
    /// The connection lacks a setting this push needs.
    #[error("not sent: the connection has no {setting} setting")]
    MissingSetting {
        /// The setting's name in the connection's `settings`.
        setting: &'static str,
    },
    /// The connection lacks the setting that a field of the provider's object is filled
    /// from.
    #[error("not sent: the connection has no {setting} setting ({field})")]
    MissingSettingFor {
        /// The setting's name in the connection's `settings`.
        setting: &'static str,
        /// The provider's field it fills, e.g. `Purchase.AccountRef`.
        field: &'static str,
    },
    /// The connection lacks one or both of two settings this push needs together.
    #[error("not sent: the connection needs the {first} and {second} settings")]
    MissingSettings {
        /// The first setting's name.
        first: &'static str,
        /// The second setting's name.
        second: &'static str,
    },
}

/// A source's refusal of a push in structured form, as the sync view shows it in a target's
/// `error`: the answer's status and, where the source's body names them, its own error
/// `code`, `message` and the `field` it blames (`None`, shown as `null`, where unknown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceError {
    /// The HTTP status of the source's answer.
    pub status: u16,
    /// The source's own error code (`6240`, `VALIDATION_ERROR`, ...).
    pub code: Option<String>,
    /// The source's message.
    pub message: Option<String>,
    /// The field the source names (in its own spelling).
    pub field: Option<String>,
}

/// A member as text: a string as is, a number or boolean written out; empty strings, `null`
/// and other values count as absent.
pub(crate) fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(super::truncate(s, super::ERROR_TEXT_MAX)),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl SourceError {
    /// The structured error of a refusal with `status` whose body is `body`, the generic way:
    /// a JSON object with `code`, `message` and `field` (also under `error`, or spelled
    /// `errorCode`, `detail`, `pointer`); `error` itself may be the message.
    pub fn generic(status: u16, body: &Value) -> SourceError {
        let inner = body.get("error").filter(|e| e.is_object()).unwrap_or(body);
        let first = |keys: &[&str]| keys.iter().find_map(|k| text_of(inner.get(*k)));
        SourceError {
            status,
            code: first(&["code", "errorCode"]),
            message: first(&["message", "detail", "title"]).or_else(|| text_of(body.get("error"))),
            field: first(&["field", "pointer"]),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::value::RawValue;

    use super::*;
    use crate::connectors::{Operation, PushInput, Reference};

    /// Each variant reads exactly as the text the connectors returned before they had a type
    /// of their own (the text is stored as `lastError` and appears in the shared vectors).
    #[test]
    fn texts_are_the_contracts() {
        let cases = [
            (
                ConnectorError::UnsupportedObject {
                    connector: ConnectorKind::Hubspot,
                    object_type: ObjectType::BankTransaction,
                },
                "not sent: the hubspot connector does not push bankTransaction",
            ),
            (
                ConnectorError::MissingReference {
                    field: "lines/2/accountId".into(),
                },
                "not sent: the object has no lines/2/accountId",
            ),
            (
                ConnectorError::ReferenceNotPushed {
                    field: "customerId".into(),
                    object_type: ObjectType::Customer,
                    id: "c1".into(),
                    connector: ConnectorKind::Xero,
                },
                "not sent: customer c1 (at customerId) has no xero id; push it to xero first",
            ),
            (
                ConnectorError::LineAccountNotStored {
                    id: "a9".into(),
                    line: 3,
                },
                "not sent: account a9 of line 3 is not stored",
            ),
            (
                ConnectorError::NoRemoteId {
                    connector: ConnectorKind::Shopify,
                },
                "not sent: shopify did not name an id for this object",
            ),
            (
                ConnectorError::UnknownVersion {
                    connector: ConnectorKind::Quickbooks,
                    version: "SyncToken",
                },
                "not sent: the SyncToken quickbooks gave this object is unknown, so it cannot be updated",
            ),
            (
                ConnectorError::MissingSetting { setting: "realmId" },
                "not sent: the connection has no realmId setting",
            ),
            (
                ConnectorError::MissingSettingFor {
                    setting: "paymentAccountId",
                    field: "Purchase.AccountRef",
                },
                "not sent: the connection has no paymentAccountId setting (Purchase.AccountRef)",
            ),
            (
                ConnectorError::MissingSettings {
                    first: "bankLineAccountCode",
                    second: "bankContactName",
                },
                "not sent: the connection needs the bankLineAccountCode and bankContactName settings",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text, "{error:?}");
        }
    }

    /// One push through a connector's `request`: its error's text.
    fn refusal(
        connector: ConnectorKind,
        object_type: ObjectType,
        object: &str,
        remote: Option<(&str, Option<&str>)>,
        references: &[Reference],
        settings: &[(&str, &str)],
    ) -> String {
        let object = RawValue::from_string(object.to_string()).unwrap();
        let settings: BTreeMap<String, String> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let input = PushInput {
            object_type,
            object: &object,
            operation: if remote.is_some() {
                Operation::Update
            } else {
                Operation::Create
            },
            remote_id: remote.and_then(|(id, _)| (!id.is_empty()).then_some(id)),
            remote_version: remote.and_then(|(_, v)| v),
            references,
            idempotency_key: "k1",
            sync_id: "s1",
            tracking_id: None,
            url: "https://provider.example.com",
            settings: &settings,
            access_token: Some("t"),
        };
        match connector.connector().request(&input) {
            Ok(r) => panic!("{connector:?} sent {r:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn reference(field: &str, object_type: ObjectType, id: &str) -> Reference {
        Reference {
            field: field.into(),
            object_type,
            id: id.into(),
            remote_id: None,
            object: None,
        }
    }

    /// Every way a connector refuses to build a request, through the connectors themselves,
    /// with the text each gave when it returned a plain string.
    #[test]
    fn connectors_refuse_with_the_same_texts() {
        use ConnectorKind::{Hubspot, Quickbooks, Shopify, Xero};
        use ObjectType::{BankTransaction, Customer, Expense, Invoice, Payment, Vendor};
        let customer = r#"{"id":"c1","name":"Acme Ltd"}"#;
        let invoice = r#"{"id":"i1","customerId":"c1","currency":"EUR",
            "lines":[{"description":"x","quantity":1,"unitAmount":5,"amount":5,"accountId":"a9"}]}"#;
        let expense = r#"{"id":"e1","vendorId":"v1","currency":"EUR","lines":[]}"#;
        let qb = [("realmId", "123")];
        let xero = [("tenantId", "6f7594f2-f059-4d56-9e67-47ac9733bfe9")];
        let cases = [
            (
                refusal(Hubspot, Invoice, invoice, None, &[], &[]),
                "not sent: the hubspot connector does not push invoice",
            ),
            (
                refusal(Hubspot, Customer, customer, Some(("", None)), &[], &[]),
                "not sent: hubspot did not name an id for this object",
            ),
            (
                refusal(Shopify, Vendor, customer, None, &[], &[]),
                "not sent: the shopify connector does not push vendor",
            ),
            (
                refusal(Shopify, Customer, customer, Some(("", None)), &[], &[]),
                "not sent: shopify did not name an id for this object",
            ),
            (
                refusal(Quickbooks, BankTransaction, customer, None, &[], &qb),
                "not sent: the connection needs the bankAccountId and bankLineAccountId settings",
            ),
            (
                refusal(Quickbooks, Customer, customer, None, &[], &[]),
                "not sent: the connection has no realmId setting",
            ),
            (
                refusal(Quickbooks, Invoice, invoice, None, &[], &qb),
                "not sent: the object has no customerId",
            ),
            (
                refusal(
                    Quickbooks,
                    Invoice,
                    invoice,
                    None,
                    &[reference("customerId", Customer, "c1")],
                    &qb,
                ),
                "not sent: customer c1 (at customerId) has no quickbooks id; push it to quickbooks first",
            ),
            (
                refusal(Quickbooks, Expense, expense, None, &[], &qb),
                "not sent: the connection has no paymentAccountId setting (Purchase.AccountRef)",
            ),
            (
                refusal(Quickbooks, Customer, customer, Some(("", None)), &[], &qb),
                "not sent: quickbooks did not name an id for this object",
            ),
            (
                refusal(Quickbooks, Customer, customer, Some(("7", None)), &[], &qb),
                "not sent: the SyncToken quickbooks gave this object is unknown, so it cannot be updated",
            ),
            (
                refusal(Xero, Expense, expense, None, &[], &xero),
                "not sent: the connection has no expenseBankAccountCode setting",
            ),
            (
                refusal(Xero, Customer, customer, None, &[], &[]),
                "not sent: the connection has no tenantId setting",
            ),
            (
                refusal(Xero, Customer, customer, Some(("", None)), &[], &xero),
                "not sent: xero did not name an id for this object",
            ),
            (
                refusal(Xero, Payment, r#"{"id":"p1"}"#, None, &[], &xero),
                "not sent: the connection has no paymentAccountCode setting",
            ),
            (
                refusal(Xero, BankTransaction, r#"{"id":"b1"}"#, None, &[], &xero),
                "not sent: the connection needs the bankLineAccountCode and bankContactName settings",
            ),
            (
                refusal(
                    Xero,
                    Invoice,
                    invoice,
                    None,
                    &[
                        Reference {
                            remote_id: Some("X-C1".into()),
                            ..reference("customerId", Customer, "c1")
                        },
                        reference("lines/0/accountId", ObjectType::Account, "a9"),
                    ],
                    &xero,
                ),
                "not sent: account a9 of line 0 is not stored",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    /// A delete each connector cannot send: a type it does not delete, no remote id, no
    /// SyncToken for QuickBooks' deactivation.
    #[test]
    fn deletes_refuse_what_they_cannot_send() {
        let object = RawValue::from_string(r#"{"id":"x1","name":"Acme"}"#.into()).unwrap();
        let settings: BTreeMap<String, String> = [
            ("realmId", "123"),
            ("tenantId", "6f7594f2-f059-4d56-9e67-47ac9733bfe9"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let refuse = |c: ConnectorKind, t: ObjectType, remote: Option<&str>| {
            let input = PushInput {
                object_type: t,
                object: &object,
                operation: Operation::Delete,
                remote_id: remote,
                remote_version: None,
                references: &[],
                idempotency_key: "k1",
                sync_id: "s1",
                tracking_id: None,
                url: "https://provider.example.com",
                settings: &settings,
                access_token: Some("t"),
            };
            c.connector().request(&input).map(|r| r.url)
        };
        use ConnectorKind::*;
        use ObjectType::*;
        assert_eq!(
            refuse(Xero, Invoice, Some("i")).unwrap_err().to_string(),
            "not sent: the xero connector does not delete invoice"
        );
        assert_eq!(
            refuse(Quickbooks, Payment, Some("p")).unwrap_err(),
            ConnectorError::UnsupportedDelete {
                connector: Quickbooks,
                object_type: Payment
            }
        );
        assert_eq!(
            refuse(Quickbooks, Vendor, Some("41")).unwrap_err(),
            ConnectorError::UnknownVersion {
                connector: Quickbooks,
                version: "SyncToken"
            }
        );
        for c in [Quickbooks, Xero, Hubspot, Shopify] {
            assert_eq!(
                refuse(c, Customer, None).unwrap_err(),
                ConnectorError::NoRemoteId { connector: c }
            );
        }
        for c in [Hubspot, Shopify] {
            assert!(matches!(
                refuse(c, Vendor, Some("1")),
                Err(ConnectorError::UnsupportedObject { .. })
            ));
        }
        // The generic envelope carries any delete, with or without a remote id.
        assert!(refuse(Generic, Invoice, None).is_ok());
    }
}
