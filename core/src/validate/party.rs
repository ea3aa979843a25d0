//! Customers and vendors, with their postal addresses.

use crate::cdm::{codes, Address, Customer, Meta, RefLookup, Vendor};
use crate::json::Json;

use super::fields::{Document, Obj, Problems, Validated, MAX_CODE, MAX_REF, MAX_TEXT};

/// The fields of a customer besides [`SERVER_FIELDS`].
const CUSTOMER_FIELDS: &[&str] = &["name", "email", "phone", "contactName", "billingAddress"];
/// The fields of a vendor besides [`SERVER_FIELDS`].
const VENDOR_FIELDS: &[&str] = &["name", "email", "phone", "address"];
/// The fields of an address.
const ADDRESS_FIELDS: &[&str] = &["line1", "line2", "city", "region", "postalCode", "country"];

/// An address object at `ptr`.
fn address(v: &Json, ptr: &str, p: &mut Problems) -> Option<Address> {
    let o = Obj::new(v, ptr.into(), "an address", p)?;
    let country = o.opt_text("country", MAX_CODE, p).and_then(|c| {
        if c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()) {
            Some(c)
        } else {
            p.add(
                o.at("country"),
                codes::INVALID_FORMAT,
                "`country` must be an ISO 3166-1 alpha-2 code of two uppercase letters, like DE",
            );
            None
        }
    });
    let a = Address {
        line1: o.opt_text("line1", MAX_REF, p),
        line2: o.opt_text("line2", MAX_REF, p),
        city: o.opt_text("city", MAX_REF, p),
        region: o.opt_text("region", MAX_REF, p),
        postal_code: o.opt_text("postalCode", MAX_CODE, p),
        country,
    };
    o.unknown_fields(ADDRESS_FIELDS, false, p);
    Some(a)
}

/// Validate a customer.
///
/// `name` is required; `email` must be an e-mail address; optional `phone`, `contactName` and
/// `billingAddress`. Customers have no uniqueness rule, so `refs` and `self_id` are not used
/// today; they are part of the signature for rules to come.
pub fn validate_customer(
    body: &(impl Document + ?Sized),
    _refs: &dyn RefLookup,
    _self_id: Option<&str>,
) -> Validated<Customer> {
    validate_customer_doc(&body.doc(), _refs, _self_id)
}

/// [`validate_customer`] on a parsed document (one body of code whatever the caller's input type).
fn validate_customer_doc(
    body: &Json<'_>,
    _refs: &dyn RefLookup,
    _self_id: Option<&str>,
) -> Validated<Customer> {
    let mut p = Problems::default();
    let Some(o) = Obj::new(body, "".into(), "a customer", &mut p) else {
        return Err(p.0);
    };
    let customer = Customer {
        meta: Meta::default(),
        name: o.req_text("name", MAX_TEXT, &mut p).unwrap_or_default(),
        email: o.opt_email("email", &mut p),
        phone: o.opt_text("phone", MAX_CODE, &mut p),
        contact_name: o.opt_text("contactName", MAX_TEXT, &mut p),
        billing_address: o
            .get("billingAddress")
            .and_then(|v| address(v, &o.at("billingAddress"), &mut p)),
    };
    o.unknown_fields(CUSTOMER_FIELDS, true, &mut p);
    p.finish(customer)
}

/// The fields of a vendor object at `prefix`.
pub(super) fn vendor_at(body: &Json, prefix: &str, p: &mut Problems) -> Option<Vendor> {
    let o = Obj::new(body, prefix.into(), "a vendor", p)?;
    let vendor = Vendor {
        meta: Meta::default(),
        name: o.req_text("name", MAX_TEXT, p).unwrap_or_default(),
        email: o.opt_email("email", p),
        phone: o.opt_text("phone", MAX_CODE, p),
        address: o
            .get("address")
            .and_then(|v| address(v, &o.at("address"), p)),
    };
    o.unknown_fields(VENDOR_FIELDS, true, p);
    Some(vendor)
}

/// Validate a vendor: `name` required; optional `email`, `phone`, `address`.
///
/// `prefix` is the JSON Pointer of the vendor object inside the body ("" at top level,
/// "/vendor" when nested in an expense).
pub fn validate_vendor(body: &(impl Document + ?Sized), prefix: &str) -> Validated<Vendor> {
    validate_vendor_doc(&body.doc(), prefix)
}

/// [`validate_vendor`] on a parsed document (one body of code whatever the caller's input type).
fn validate_vendor_doc(body: &Json<'_>, prefix: &str) -> Validated<Vendor> {
    let mut p = Problems::default();
    let vendor = vendor_at(body, prefix, &mut p);
    match vendor {
        Some(v) => p.finish(v),
        None => Err(p.0),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::validate::test_support::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_get_escaped_pointers() {
        let body = json!({"name": "Acme", "a/b": 1, "c~d": 2, "billingAddress": {"x/y": 1}});
        let r = validate_customer(&body, &refs(), None);
        assert_problems(
            &r,
            &[
                ("/a~1b", codes::UNKNOWN_FIELD),
                ("/c~0d", codes::UNKNOWN_FIELD),
                ("/billingAddress/x~1y", codes::UNKNOWN_FIELD),
            ],
        );
    }

    #[test]
    fn customer_valid_full() {
        let body = json!({
            "name": "Acme GmbH",
            "email": "billing@acme.example.com",
            "phone": "+49 30 1234",
            "contactName": "Ada",
            "billingAddress": {"line1": "Main St 1", "line2": null, "city": "Berlin",
                "region": "BE", "postalCode": "10115", "country": "DE"},
        });
        let c = validate_customer(&body, &refs(), None).unwrap();
        assert_eq!(c.name, "Acme GmbH");
        assert_eq!(c.email.as_deref(), Some("billing@acme.example.com"));
        assert_eq!(c.phone.as_deref(), Some("+49 30 1234"));
        assert_eq!(c.contact_name.as_deref(), Some("Ada"));
        let a = c.billing_address.unwrap();
        assert_eq!(a.line2, None);
        assert_eq!(a.country.as_deref(), Some("DE"));
        assert_eq!(c.meta, Meta::default());
    }

    #[test]
    fn server_fields_are_ignored_and_null_means_absent() {
        let body = json!({"id": "x", "version": 7, "createdAt": "2024-01-01T00:00:00Z",
            "updatedAt": 5, "name": "Acme", "email": null, "billingAddress": null});
        let c = validate_customer(&body, &refs(), None).unwrap();
        assert_eq!(c.email, None);
        assert_eq!(c.billing_address, None);
        // But not inside nested parts.
        let body = json!({"name": "Acme", "billingAddress": {"id": "a"}});
        assert_problems(
            &validate_customer(&body, &refs(), None),
            &[("/billingAddress/id", codes::UNKNOWN_FIELD)],
        );
    }

    #[test]
    fn customer_name_rules() {
        for (body, code) in [
            (json!({}), codes::REQUIRED),
            (json!({"name": null}), codes::REQUIRED),
            (json!({"name": ""}), codes::REQUIRED),
            (json!({"name": " \t\n"}), codes::REQUIRED),
            (json!({"name": 5}), codes::INVALID_TYPE),
            (json!({"name": "x".repeat(1001)}), codes::TOO_LONG),
        ] {
            assert_problems(&validate_customer(&body, &refs(), None), &[("/name", code)]);
        }
        // 1000 characters (not bytes) are fine.
        let body = json!({"name": "é".repeat(1000)});
        assert!(validate_customer(&body, &refs(), None).is_ok());
    }

    #[test]
    fn email_rules() {
        for good in [
            "a@b.co",
            "first.last+tag@sub.example.org",
            "x@xn--bcher-kva.example",
        ] {
            let body = json!({"name": "n", "email": good});
            assert!(validate_customer(&body, &refs(), None).is_ok(), "{good}");
        }
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@b",
            "a@@b.com",
            "a@b@c.com",
            "a b@c.com",
            "a@b .com",
            "a@.com",
            "a@b.",
            "a@b..com",
            "a\u{0}@b.com",
        ] {
            let body = json!({"name": "n", "email": bad});
            assert_problems(
                &validate_customer(&body, &refs(), None),
                &[("/email", codes::INVALID_FORMAT)],
            );
        }
        let long = format!("{}@example.com", "a".repeat(243));
        assert_eq!(long.len(), 255);
        let body = json!({"name": "n", "email": long});
        assert_problems(
            &validate_customer(&body, &refs(), None),
            &[("/email", codes::TOO_LONG)],
        );
        let body = json!({"name": "n", "email": 3});
        assert_problems(
            &validate_customer(&body, &refs(), None),
            &[("/email", codes::INVALID_TYPE)],
        );
    }

    #[test]
    fn customer_lengths_and_address() {
        let body = json!({
            "name": "n",
            "phone": "1".repeat(65),
            "contactName": "c".repeat(1001),
            "billingAddress": {"country": "de", "postalCode": "9".repeat(65), "city": 5},
        });
        assert_problems(
            &validate_customer(&body, &refs(), None),
            &[
                ("/phone", codes::TOO_LONG),
                ("/contactName", codes::TOO_LONG),
                ("/billingAddress/country", codes::INVALID_FORMAT),
                ("/billingAddress/postalCode", codes::TOO_LONG),
                ("/billingAddress/city", codes::INVALID_TYPE),
            ],
        );
        for country in ["DEU", "D", "d1", "ÄÖ"] {
            let body = json!({"name": "n", "billingAddress": {"country": country}});
            assert_problems(
                &validate_customer(&body, &refs(), None),
                &[("/billingAddress/country", codes::INVALID_FORMAT)],
            );
        }
        let body = json!({"name": "n", "billingAddress": "Main St"});
        assert_problems(
            &validate_customer(&body, &refs(), None),
            &[("/billingAddress", codes::INVALID_TYPE)],
        );
    }

    #[test]
    fn vendor_top_level_and_prefixed() {
        let v = validate_vendor(
            &json!({"name": "Supplies Ltd", "address": {"city": "Leeds"}}),
            "",
        )
        .unwrap();
        assert_eq!(v.name, "Supplies Ltd");
        assert_eq!(v.address.unwrap().city.as_deref(), Some("Leeds"));
        let body = json!({"email": "nope", "contactName": "x"});
        assert_problems(
            &validate_vendor(&body, "/vendor"),
            &[
                ("/vendor/name", codes::REQUIRED),
                ("/vendor/email", codes::INVALID_FORMAT),
                ("/vendor/contactName", codes::UNKNOWN_FIELD),
            ],
        );
        assert_problems(
            &validate_vendor(&json!(1), "/vendor"),
            &[("/vendor", codes::INVALID_TYPE)],
        );
    }
}
