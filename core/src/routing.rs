//! Routing of pushes: which connections a write is pushed to.
//!
//! Routing is a pure function of the object type written, the `X-Sync-Sources` header and the
//! account's connections:
//!
//! 1. [`parse_sync_sources`] turns the header into a [`SourceFilter`], refusing unknown
//!    tokens (the host answers `400`). Without the header the filter is [`SourceFilter::All`].
//! 2. [`select_targets`] keeps, in their given order, the connections that can receive the
//!    object type and that the filter lets through. An empty answer is not an error: the sync
//!    is created with status `no_targets`.
//!
//! This module also holds the built-in catalogue of well-known app keys ([`CATALOGUE`]) and
//! the capability table that gives a connection its object types when it names none
//! ([`default_objects`]).
//!
//! The module is internal: hosts reach it through the commands. The test
//! `sources_narrow_the_targets` shows both steps on two connections.

use crate::cdm::ObjectType;

/// The application types a connection may have.
pub(crate) const APP_TYPES: [&str; 5] = ["accounting", "commerce", "crm", "banking", "payroll"];

/// The built-in catalogue of well-known app keys, each with its usual application type.
///
/// A connection may use any other valid key too (see [`valid_app_key`]); the catalogue makes
/// its keys acceptable in `X-Sync-Sources` even for an account that has not connected them.
pub(crate) const CATALOGUE: &[(&str, &str)] = &[
    ("quickbooks", "accounting"),
    ("xero", "accounting"),
    ("sage", "accounting"),
    ("freshbooks", "accounting"),
    ("netsuite", "accounting"),
    ("zoho_books", "accounting"),
    ("exact", "accounting"),
    ("dynamics365", "accounting"),
    ("shopify", "commerce"),
    ("woocommerce", "commerce"),
    ("magento", "commerce"),
    ("bigcommerce", "commerce"),
    ("stripe", "commerce"),
    ("hubspot", "crm"),
    ("salesforce", "crm"),
    ("pipedrive", "crm"),
    ("zoho_crm", "crm"),
    ("plaid", "banking"),
    ("tink", "banking"),
    ("gocardless", "banking"),
    ("gusto", "payroll"),
    ("adp", "payroll"),
];

/// Why an `X-Sync-Sources` value was refused. Each is the client's mistake: `400`.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum RoutingError {
    /// The header is present but blank.
    #[error("X-Sync-Sources is empty; name at least one app key or application type")]
    EmptySources,
    /// A token between commas is blank (as in `a,,b` or a trailing comma).
    #[error("X-Sync-Sources has an empty entry at position {position}")]
    EmptyToken {
        /// The 0-based position of the blank token.
        position: usize,
    },
    /// A token is neither a catalogue app key, nor the app of one of the account's
    /// connections, nor an application type.
    #[error(
        "X-Sync-Sources names `{token}`, which is neither a known app key nor an application type"
    )]
    UnknownSource {
        /// The offending token, trimmed and lowercased.
        token: String,
    },
}

/// The application type the catalogue gives a well-known app key, if it lists the key.
pub(crate) fn catalogue_app_type(app: &str) -> Option<&'static str> {
    CATALOGUE
        .iter()
        .find(|(key, _)| *key == app)
        .map(|&(_, app_type)| app_type)
}

/// The object types a connection of `app_type` receives when its registration names none.
///
/// - `accounting`: customer, vendor, invoice, payment, expense, account, bankTransaction
/// - `commerce`: customer, invoice, payment
/// - `crm`: customer
/// - `banking`: bankTransaction
/// - `payroll`: none (the CDM has no payroll objects yet)
///
/// An unknown type receives nothing.
pub(crate) fn default_objects(app_type: &str) -> Vec<ObjectType> {
    match app_type {
        "accounting" => vec![
            ObjectType::Customer,
            ObjectType::Vendor,
            ObjectType::Invoice,
            ObjectType::Payment,
            ObjectType::Expense,
            ObjectType::Account,
            ObjectType::BankTransaction,
        ],
        "commerce" => vec![
            ObjectType::Customer,
            ObjectType::Invoice,
            ObjectType::Payment,
        ],
        "crm" => vec![ObjectType::Customer],
        "banking" => vec![ObjectType::BankTransaction],
        _ => Vec::new(),
    }
}

/// Whether `s` is a valid app key: 1 to 64 characters from lowercase `a-z`, `0-9`, `_`, `-`.
pub(crate) fn valid_app_key(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Whether `s` is one of [`APP_TYPES`] (exactly, in lowercase).
pub(crate) fn valid_app_type(s: &str) -> bool {
    APP_TYPES.contains(&s)
}

/// What routing needs to know about one connection, borrowed from the caller's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectionRef<'a> {
    /// The connection's id.
    pub id: &'a str,
    /// Its app key (`quickbooks`, ...).
    pub app: &'a str,
    /// Its application type (`accounting`, ...).
    pub app_type: &'a str,
    /// The object types it can receive.
    pub objects: &'a [ObjectType],
}

/// Which connections a write may be pushed to, from `X-Sync-Sources`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SourceFilter {
    /// No `X-Sync-Sources` header: every capable connection.
    All,
    /// Only connections whose app or type is one of these tokens (lowercase, trimmed,
    /// without duplicates, in the order first given).
    Tokens(Vec<String>),
}

impl SourceFilter {
    /// Whether a connection with this app key and type passes the filter. Comparison ignores
    /// ASCII case.
    pub(crate) fn allows(&self, app: &str, app_type: &str) -> bool {
        match self {
            SourceFilter::All => true,
            SourceFilter::Tokens(tokens) => tokens
                .iter()
                .any(|t| t.eq_ignore_ascii_case(app) || t.eq_ignore_ascii_case(app_type)),
        }
    }
}

/// Parses an `X-Sync-Sources` value such as `"quickbooks, CRM"`.
///
/// The value is split on commas; blanks around each token are ignored and tokens are
/// lowercased. Each token must be a [`CATALOGUE`] app key, one of `connected_apps` (the apps
/// of the account's connections, compared ignoring ASCII case) or one of [`APP_TYPES`].
/// Repeated tokens are kept once.
///
/// # Errors
///
/// [`RoutingError::EmptySources`] for a blank value, [`RoutingError::EmptyToken`] for a blank
/// token and [`RoutingError::UnknownSource`] for the first unknown token. The host answers
/// each with `400`.
pub(crate) fn parse_sync_sources(
    header: &str,
    connected_apps: &[&str],
) -> Result<SourceFilter, RoutingError> {
    if header.trim().is_empty() {
        return Err(RoutingError::EmptySources);
    }
    let mut tokens: Vec<String> = Vec::new();
    for (position, raw) in header.split(',').enumerate() {
        let token = raw.trim().to_ascii_lowercase();
        if token.is_empty() {
            return Err(RoutingError::EmptyToken { position });
        }
        let known = catalogue_app_type(&token).is_some()
            || valid_app_type(&token)
            || connected_apps
                .iter()
                .any(|app| app.eq_ignore_ascii_case(&token));
        if !known {
            return Err(RoutingError::UnknownSource { token });
        }
        if !tokens.contains(&token) {
            tokens.push(token);
        }
    }
    Ok(SourceFilter::Tokens(tokens))
}

/// The connections a write of `object` is pushed to: those whose `objects` contain the type
/// and that `filter` lets through, in the order given.
pub(crate) fn select_targets<'a>(
    object: ObjectType,
    connections: &[ConnectionRef<'a>],
    filter: &SourceFilter,
) -> Vec<ConnectionRef<'a>> {
    connections
        .iter()
        .filter(|c| c.objects.contains(&object) && filter.allows(c.app, c.app_type))
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{Arbitrary, Gen, QuickCheck};

    #[test]
    fn sources_narrow_the_targets() -> Result<(), RoutingError> {
        let accounting = [ObjectType::Customer, ObjectType::Invoice];
        let crm = [ObjectType::Customer];
        let connections = [
            ConnectionRef {
                id: "c1",
                app: "xero",
                app_type: "accounting",
                objects: &accounting,
            },
            ConnectionRef {
                id: "c2",
                app: "hubspot",
                app_type: "crm",
                objects: &crm,
            },
        ];
        let filter = parse_sync_sources(" CRM , xero", &["xero", "hubspot"])?;
        let targets = select_targets(ObjectType::Invoice, &connections, &filter);
        assert_eq!(targets.iter().map(|c| c.id).collect::<Vec<_>>(), ["c1"]);
        Ok(())
    }
    use std::collections::HashSet;

    #[test]
    fn catalogue_is_consistent() {
        let mut seen = HashSet::new();
        for &(app, app_type) in CATALOGUE {
            assert!(valid_app_key(app), "{app}");
            assert!(valid_app_type(app_type), "{app_type}");
            assert!(seen.insert(app), "duplicate {app}");
            // A key that is also a type would make `X-Sync-Sources` ambiguous.
            assert!(!valid_app_type(app));
        }
        assert_eq!(CATALOGUE.len(), 22);
        assert_eq!(catalogue_app_type("quickbooks"), Some("accounting"));
        assert_eq!(catalogue_app_type("stripe"), Some("commerce"));
        assert_eq!(catalogue_app_type("zoho_crm"), Some("crm"));
        assert_eq!(catalogue_app_type("gocardless"), Some("banking"));
        assert_eq!(catalogue_app_type("adp"), Some("payroll"));
        assert_eq!(catalogue_app_type("QuickBooks"), None);
        assert_eq!(catalogue_app_type("acme"), None);
    }

    #[test]
    fn capability_table() {
        use ObjectType::*;
        assert_eq!(
            default_objects("accounting"),
            vec![
                Customer,
                Vendor,
                Invoice,
                Payment,
                Expense,
                Account,
                BankTransaction
            ]
        );
        assert_eq!(
            default_objects("commerce"),
            vec![Customer, Invoice, Payment]
        );
        assert_eq!(default_objects("crm"), vec![Customer]);
        assert_eq!(default_objects("banking"), vec![BankTransaction]);
        assert_eq!(default_objects("payroll"), vec![]);
        assert_eq!(default_objects("Accounting"), vec![]);
        assert_eq!(default_objects("erp"), vec![]);
    }

    #[test]
    fn app_key_and_type_validation() {
        for good in ["quickbooks", "a", "zoho_books", "my-app-2", &"x".repeat(64)] {
            assert!(valid_app_key(good), "{good}");
        }
        for bad in [
            "",
            "QuickBooks",
            "my app",
            "a.b",
            "é",
            "a/b",
            &"x".repeat(65),
        ] {
            assert!(!valid_app_key(bad), "{bad}");
        }
        for t in APP_TYPES {
            assert!(valid_app_type(t));
        }
        assert!(!valid_app_type("CRM"));
        assert!(!valid_app_type(""));
        assert!(!valid_app_type("erp"));
    }

    fn tokens(list: &[&str]) -> SourceFilter {
        SourceFilter::Tokens(list.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn parses_sources_case_and_blank_insensitively() {
        assert_eq!(
            parse_sync_sources(" QuickBooks ,crm,\tXero ", &[]),
            Ok(tokens(&["quickbooks", "crm", "xero"]))
        );
        assert_eq!(
            parse_sync_sources("acme-erp", &["acme-erp"]),
            Ok(tokens(&["acme-erp"]))
        );
        assert_eq!(
            parse_sync_sources("ACME-ERP", &["acme-erp"]),
            Ok(tokens(&["acme-erp"]))
        );
        assert_eq!(
            parse_sync_sources("xero, XERO,accounting", &[]),
            Ok(tokens(&["xero", "accounting"]))
        );
        assert_eq!(parse_sync_sources("payroll", &[]), Ok(tokens(&["payroll"])));
    }

    #[test]
    fn refuses_empty_and_unknown_sources() {
        assert_eq!(parse_sync_sources("", &[]), Err(RoutingError::EmptySources));
        assert_eq!(
            parse_sync_sources(" \t ", &[]),
            Err(RoutingError::EmptySources)
        );
        assert_eq!(
            parse_sync_sources("xero,,crm", &[]),
            Err(RoutingError::EmptyToken { position: 1 })
        );
        assert_eq!(
            parse_sync_sources("xero,", &[]),
            Err(RoutingError::EmptyToken { position: 1 })
        );
        assert_eq!(
            parse_sync_sources(",", &[]),
            Err(RoutingError::EmptyToken { position: 0 })
        );
        assert_eq!(
            parse_sync_sources("xero, Acme-ERP", &["other"]),
            Err(RoutingError::UnknownSource {
                token: "acme-erp".to_owned()
            })
        );
        assert_eq!(
            parse_sync_sources("quick books", &[]),
            Err(RoutingError::UnknownSource {
                token: "quick books".to_owned()
            })
        );
        assert_eq!(
            parse_sync_sources("*", &[]),
            Err(RoutingError::UnknownSource {
                token: "*".to_owned()
            })
        );
        let message = parse_sync_sources("nope", &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(message.contains("`nope`"), "{message}");
    }

    #[test]
    fn selects_capable_connections_in_order() {
        use ObjectType::*;
        let accounting = default_objects("accounting");
        let commerce = default_objects("commerce");
        let crm = default_objects("crm");
        let none: Vec<ObjectType> = Vec::new();
        let conns = [
            ConnectionRef {
                id: "1",
                app: "xero",
                app_type: "accounting",
                objects: &accounting,
            },
            ConnectionRef {
                id: "2",
                app: "hubspot",
                app_type: "crm",
                objects: &crm,
            },
            ConnectionRef {
                id: "3",
                app: "shopify",
                app_type: "commerce",
                objects: &commerce,
            },
            ConnectionRef {
                id: "4",
                app: "quickbooks",
                app_type: "accounting",
                objects: &accounting,
            },
            ConnectionRef {
                id: "5",
                app: "gusto",
                app_type: "payroll",
                objects: &none,
            },
        ];
        let ids = |object, filter: &SourceFilter| -> Vec<&str> {
            select_targets(object, &conns, filter)
                .iter()
                .map(|c| c.id)
                .collect()
        };
        assert_eq!(ids(Customer, &SourceFilter::All), ["1", "2", "3", "4"]);
        assert_eq!(ids(Invoice, &SourceFilter::All), ["1", "3", "4"]);
        assert_eq!(ids(Vendor, &SourceFilter::All), ["1", "4"]);
        assert_eq!(ids(Customer, &tokens(&["crm", "quickbooks"])), ["2", "4"]);
        assert_eq!(ids(Invoice, &tokens(&["crm"])), Vec::<&str>::new());
        assert_eq!(ids(Invoice, &tokens(&["stripe"])), Vec::<&str>::new());
        assert_eq!(ids(Customer, &tokens(&["payroll"])), Vec::<&str>::new());
        assert_eq!(select_targets(Customer, &[], &SourceFilter::All), vec![]);
    }

    #[test]
    fn filter_matches_stored_values_ignoring_case() {
        let f = tokens(&["xero"]);
        assert!(f.allows("Xero", "accounting"));
        assert!(!f.allows("sage", "accounting"));
        assert!(tokens(&["crm"]).allows("acme", "CRM"));
        assert!(SourceFilter::All.allows("", ""));
        assert!(!tokens(&[]).allows("xero", "accounting"));
    }

    // --- Property: routing selects exactly the capable connections the filter lets through.

    const APPS: [&str; 8] = [
        "quickbooks",
        "xero",
        "shopify",
        "hubspot",
        "plaid",
        "gusto",
        "acme",
        "acme-erp",
    ];

    #[derive(Debug, Clone)]
    struct ArbConnection {
        id: String,
        app: &'static str,
        app_type: &'static str,
        objects: Vec<ObjectType>,
    }

    impl Arbitrary for ArbConnection {
        fn arbitrary(g: &mut Gen) -> Self {
            let mask = u8::arbitrary(g);
            let objects = ObjectType::ALL
                .into_iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, t)| t)
                .collect();
            ArbConnection {
                id: format!("c{}", u16::arbitrary(g)),
                app: g.choose(&APPS).copied().unwrap_or("xero"),
                app_type: g.choose(&APP_TYPES).copied().unwrap_or("crm"),
                objects,
            }
        }
    }

    #[derive(Debug, Clone)]
    struct Case {
        connections: Vec<ArbConnection>,
        object: ObjectType,
        filter: SourceFilter,
    }

    impl Arbitrary for Case {
        fn arbitrary(g: &mut Gen) -> Self {
            let connections = Vec::<ArbConnection>::arbitrary(g);
            let object = g
                .choose(&ObjectType::ALL)
                .copied()
                .unwrap_or(ObjectType::Customer);
            let filter = if bool::arbitrary(g) {
                SourceFilter::All
            } else {
                let pool: Vec<&str> = APPS.iter().chain(APP_TYPES.iter()).copied().collect();
                let count = usize::arbitrary(g) % 4;
                let picked: Vec<String> = (0..count)
                    .filter_map(|_| g.choose(&pool).map(|s| (*s).to_owned()))
                    .collect();
                SourceFilter::Tokens(picked)
            };
            Case {
                connections,
                object,
                filter,
            }
        }
    }

    fn routing_is_exact(case: Case) -> bool {
        let refs: Vec<ConnectionRef<'_>> = case
            .connections
            .iter()
            .map(|c| ConnectionRef {
                id: &c.id,
                app: c.app,
                app_type: c.app_type,
                objects: &c.objects,
            })
            .collect();
        let selected = select_targets(case.object, &refs, &case.filter);

        // Independent statement of who qualifies.
        let allowed: Option<HashSet<&str>> = match &case.filter {
            SourceFilter::All => None,
            SourceFilter::Tokens(t) => Some(t.iter().map(String::as_str).collect()),
        };
        let qualifies = |c: &ConnectionRef<'_>| {
            let capable = c.objects.contains(&case.object);
            let passes = allowed
                .as_ref()
                .is_none_or(|set| set.contains(c.app) || set.contains(c.app_type));
            capable && passes
        };

        // Nothing selected that cannot take the object or is excluded by the filter.
        let sound = selected.iter().all(&qualifies);
        // Every qualifying connection selected, in the original order (a subsequence of the
        // input of exactly the qualifying length).
        let expected: Vec<ConnectionRef<'_>> =
            refs.iter().filter(|c| qualifies(c)).copied().collect();
        sound && selected == expected
    }

    #[test]
    fn quickcheck_routing_is_exact() {
        QuickCheck::new()
            .tests(2000)
            .quickcheck(routing_is_exact as fn(Case) -> bool);
    }

    fn parsing_ignores_case_and_blanks(picks: Vec<(u8, bool, u8)>) -> bool {
        // Build a header from known tokens with random case and padding; it must parse to the
        // lowercase tokens, deduplicated in first-seen order.
        let pool: Vec<&str> = APPS.iter().chain(APP_TYPES.iter()).copied().collect();
        let mut parts = Vec::new();
        let mut expected: Vec<String> = Vec::new();
        for (i, upper, pad) in picks.iter().take(6) {
            let token = pool[usize::from(*i) % pool.len()];
            let cased = if *upper {
                token.to_ascii_uppercase()
            } else {
                token.to_owned()
            };
            let blanks = " ".repeat(usize::from(pad % 3));
            parts.push(format!("{blanks}{cased}{blanks}"));
            if !expected.iter().any(|e| e == token) {
                expected.push(token.to_owned());
            }
        }
        let header = parts.join(",");
        let result = parse_sync_sources(&header, &["acme", "acme-erp"]);
        if expected.is_empty() {
            result == Err(RoutingError::EmptySources)
        } else {
            result == Ok(SourceFilter::Tokens(expected))
        }
    }

    #[test]
    fn quickcheck_parsing_ignores_case_and_blanks() {
        QuickCheck::new()
            .tests(1000)
            .quickcheck(parsing_ignores_case_and_blanks as fn(Vec<(u8, bool, u8)>) -> bool);
    }

    fn parsing_never_panics(header: String, apps: Vec<String>) -> bool {
        let apps: Vec<&str> = apps.iter().map(String::as_str).collect();
        match parse_sync_sources(&header, &apps) {
            Ok(SourceFilter::Tokens(t)) => !t.is_empty(),
            Ok(SourceFilter::All) => false,
            Err(_) => true,
        }
    }

    #[test]
    fn quickcheck_parsing_never_panics() {
        QuickCheck::new()
            .tests(1000)
            .quickcheck(parsing_never_panics as fn(String, Vec<String>) -> bool);
    }
}
