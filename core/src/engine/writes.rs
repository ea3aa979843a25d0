//! The data API's writes: create, update (merge patch or replace), payments and expenses with
//! a new vendor; validation against stored state, uniqueness, versions.

use std::cell::RefCell;

use serde::Serialize;
use serde_json::Value;

use super::command::IfMatch;
use super::plan::{line_accounts, ConnectorRefs, PushItem, PushPlan};
use super::reads::load_object;
use super::state::Engine;
use super::stored;
use super::tx::Tx;
use super::vocab::{fail, field_error, invalid, Ctx, H};
use crate::cdm::*;
use crate::http::ProblemKind;
use crate::json::Json;
use crate::records::*;
use crate::validate::{self, merge_patch, strip_server_fields, Document};
use crate::CoreError;

/// Uniqueness rules.
const UNIQ_INVOICE_NUMBER: &str = "invoice-number";
pub(super) const UNIQ_ACCOUNT_CODE: &str = "account-code";
const UNIQ_BANK_EXTERNAL_ID: &str = "bank-external-id";

fn bank_uniq_value(bank_account: &str, external_id: &str) -> String {
    crate::json::to_text(&[bank_account, external_id], 64).unwrap_or_default()
}

/// Lookups of stored state for the validators; the first storage error is kept and
/// reported after validation.
struct Refs<'a, 'b> {
    tx: &'a Tx<'b>,
    account: &'a str,
    error: RefCell<Option<CoreError>>,
    /// Objects already found to exist (an invoice's lines often name one account many times).
    found: RefCell<Vec<(ObjectType, String)>>,
}

impl Refs<'_, '_> {
    fn keep<T>(&self, r: Result<T, CoreError>, fallback: T) -> T {
        match r {
            Ok(v) => v,
            Err(e) => {
                self.error.borrow_mut().get_or_insert(e);
                fallback
            }
        }
    }
    fn exists(&self, t: ObjectType, id: &str) -> bool {
        if id.is_empty() || id.contains('/') {
            return false;
        }
        if self
            .found
            .borrow()
            .iter()
            .any(|(ft, fid)| *ft == t && fid == id)
        {
            return true;
        }
        let r = self.tx.contains(&keys::object(self.account, t, id));
        let exists = self.keep(r, false);
        if exists {
            self.found.borrow_mut().push((t, id.to_string()));
        }
        exists
    }
    fn owner(&self, rule: &str, value: &str) -> Option<String> {
        let r = stored::get_id(self.tx, keys::unique(self.account, rule, value));
        self.keep(r, None)
    }
    fn check(self) -> Result<(), CoreError> {
        match self.error.into_inner() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl RefLookup for Refs<'_, '_> {
    fn customer_exists(&self, id: &str) -> bool {
        self.exists(ObjectType::Customer, id)
    }
    fn vendor_exists(&self, id: &str) -> bool {
        self.exists(ObjectType::Vendor, id)
    }
    fn account_exists(&self, id: &str) -> bool {
        self.exists(ObjectType::Account, id)
    }
    fn invoice_number_owner(&self, number: &str) -> Option<String> {
        self.owner(UNIQ_INVOICE_NUMBER, number)
    }
    fn account_code_owner(&self, code: &str) -> Option<String> {
        self.owner(UNIQ_ACCOUNT_CODE, code)
    }
    fn bank_external_id_owner(&self, bank_account: &str, external_id: &str) -> Option<String> {
        self.owner(
            UNIQ_BANK_EXTERNAL_ID,
            &bank_uniq_value(bank_account, external_id),
        )
    }
}

/// Run a validator with lookups, turning storage errors into a stop.
fn with_refs<T>(
    ctx: &Ctx<'_>,
    account: &AccountRec,
    f: impl FnOnce(&Refs<'_, '_>) -> validate::Validated<T>,
) -> H<T> {
    let refs = Refs {
        tx: &ctx.tx,
        account: &account.id,
        error: RefCell::new(None),
        found: RefCell::new(Vec::new()),
    };
    let out = f(&refs);
    refs.check()?;
    match out {
        Ok(v) => Ok(v),
        Err(errors) => invalid(errors),
    }
}

/// The result of a write handler.
pub(crate) struct Written {
    pub status: u16,
    /// JSON text of the answer.
    pub body: String,
    pub etag: Option<u64>,
    pub push: PushPlan,
}

fn new_meta(engine: &mut Engine, ctx: &Ctx<'_>) -> Meta {
    Meta {
        id: engine.new_id(ctx.now),
        version: 1,
        created_at: ctx.now_str.clone(),
        updated_at: ctx.now_str.clone(),
    }
}

/// The objects a CDM object refers to, for the reverse reference index: read from the typed
/// object as it is written (no parse of its text on the write path).
trait Refers {
    fn refs(&self) -> stored::Refs {
        stored::Refs::new()
    }
}
impl Refers for Customer {}
impl Refers for Vendor {}
impl Refers for Account {}
impl Refers for Payment {}
impl Refers for BankTransaction {}
impl Refers for Invoice {
    fn refs(&self) -> stored::Refs {
        let mut out = stored::Refs::new();
        let customer = Some(self.customer_id.as_str());
        stored::add_ref(&mut out, ObjectType::Customer, customer, || {
            "/customerId".into()
        });
        for (i, l) in self.lines.iter().enumerate() {
            stored::add_ref(
                &mut out,
                ObjectType::Account,
                l.account_id.as_deref(),
                || format!("/lines/{i}/accountId"),
            );
        }
        out
    }
}
impl Refers for Expense {
    fn refs(&self) -> stored::Refs {
        let mut out = stored::Refs::new();
        let vendor = Some(self.vendor_id.as_str());
        stored::add_ref(&mut out, ObjectType::Vendor, vendor, || "/vendorId".into());
        for (i, l) in self.lines.iter().enumerate() {
            stored::add_ref(
                &mut out,
                ObjectType::Account,
                l.account_id.as_deref(),
                || format!("/lines/{i}/accountId"),
            );
        }
        out
    }
}

/// Serialize an object once: the same text is stored, answered and pushed.
fn store<T: Serialize + Refers>(
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
    t: ObjectType,
    id: &str,
    obj: &T,
    version: u64,
) -> H<Stored> {
    // Sized for a typical object up front: growing the buffer from serde_json's 128 bytes
    // copies a 1 KB invoice four times.
    let text = super::tx::json_text(obj, STORED_CAPACITY);
    store_raw(ctx, account, t, id, text, version, obj.refs())
}

/// [`store`] past the one step that depends on the type: one copy for every object type.
#[inline(never)]
fn store_raw(
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
    t: ObjectType,
    id: &str,
    text: String,
    version: u64,
    refs: stored::Refs,
) -> H<Stored> {
    // Version 1 is a create (`new_meta`; an update counts on from the stored version): its id
    // was just drawn, so nothing is stored under it and no push of it is unfinished, and the
    // two reads below would only find nothing.
    let created = version == 1;
    // The version it replaces stays stored while an unfinished push still sends it.
    if !created {
        stored::keep_if_pushed(&mut ctx.tx, &account.id, t, id)?;
    }
    let key = keys::object(&account.id, t, id);
    if matches!(t, ObjectType::Invoice | ObjectType::Expense) {
        let old = if created { None } else { ctx.tx.get(&key)? };
        stored::set_references(&mut ctx.tx, t, id, old.as_deref(), refs);
    }
    ctx.tx.put(key, text.clone());
    Ok(Stored { text, version })
}

/// An object as stored: its JSON text and version.
struct Stored {
    text: String,
    version: u64,
}

/// The capacity the JSON text of an object is serialized into (see [`store`]).
const STORED_CAPACITY: usize = 2048;

fn set_unique(
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
    rule: &str,
    old: Option<&str>,
    new: &str,
    id: &str,
) {
    if let Some(o) = old {
        if o != new {
            ctx.tx.delete(keys::unique(&account.id, rule, o));
        }
    }
    ctx.tx
        .put(keys::unique(&account.id, rule, new), keys::id_value(id));
}

pub(super) fn label(t: ObjectType, name: &str) -> String {
    format!("{} {name}", t.as_str())
}

fn single(
    t: ObjectType,
    id: &str,
    label: String,
    stored: &Stored,
    operation: &'static str,
    references: Vec<(String, ObjectType, String)>,
) -> PushPlan {
    PushPlan {
        route_type: t,
        operation,
        label,
        items: vec![PushItem {
            object: ObjectRef {
                object_type: t,
                id: id.to_string(),
            },
            body: None,
            version: stored.version,
            references,
            requires_previous: false,
            connector_references: ConnectorRefs::None,
            pointer: String::new(),
        }],
    }
}

pub(crate) fn create(
    engine: &mut Engine,
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
    t: ObjectType,
    body: &Json<'_>,
) -> H<Written> {
    match t {
        ObjectType::Customer => {
            let mut c = with_refs(ctx, account, |r| validate::validate_customer(body, r, None))?;
            c.meta = new_meta(engine, ctx);
            let v = store(ctx, account, t, &c.meta.id, &c, c.meta.version)?;
            let push = single(t, &c.meta.id, label(t, &c.name), &v, "create", vec![]);
            Ok(Written {
                status: 201,
                etag: Some(1),
                push,
                body: v.text,
            })
        }
        ObjectType::Vendor => {
            let mut c = match validate::validate_vendor(body, "") {
                Ok(c) => c,
                Err(e) => return invalid(e),
            };
            c.meta = new_meta(engine, ctx);
            let v = store(ctx, account, t, &c.meta.id, &c, c.meta.version)?;
            let push = single(t, &c.meta.id, label(t, &c.name), &v, "create", vec![]);
            Ok(Written {
                status: 201,
                etag: Some(1),
                push,
                body: v.text,
            })
        }
        ObjectType::Account => {
            let mut a = with_refs(ctx, account, |r| validate::validate_account(body, r, None))?;
            a.meta = new_meta(engine, ctx);
            set_unique(ctx, account, UNIQ_ACCOUNT_CODE, None, &a.code, &a.meta.id);
            let v = store(ctx, account, t, &a.meta.id, &a, a.meta.version)?;
            let push = single(t, &a.meta.id, label(t, &a.code), &v, "create", vec![]);
            Ok(Written {
                status: 201,
                etag: Some(1),
                push,
                body: v.text,
            })
        }
        ObjectType::Invoice => {
            let mut inv = with_refs(ctx, account, |r| {
                validate::validate_invoice(body, r, None, 0)
            })?;
            inv.meta = new_meta(engine, ctx);
            set_unique(
                ctx,
                account,
                UNIQ_INVOICE_NUMBER,
                None,
                &inv.number,
                &inv.meta.id,
            );
            let v = store(ctx, account, t, &inv.meta.id, &inv, inv.meta.version)?;
            let refs = vec![(
                "customerId".to_string(),
                ObjectType::Customer,
                inv.customer_id.clone(),
            )];
            let mut push = single(t, &inv.meta.id, label(t, &inv.number), &v, "create", refs);
            if let Some(item) = push.items.first_mut() {
                // The invoice is stored; its lines' account ids move into the push.
                item.connector_references = ConnectorRefs::LineAccounts(
                    inv.lines.into_iter().map(|l| l.account_id).collect(),
                );
            }
            Ok(Written {
                status: 201,
                etag: Some(1),
                push,
                body: v.text,
            })
        }
        ObjectType::Expense => write_expense(engine, ctx, account, body, None),
        ObjectType::BankTransaction => {
            let max = engine.config.max_batch;
            let (list, is_array) = with_refs(ctx, account, |r| {
                validate::validate_bank_transactions(body, r, max)
            })?;
            let mut stored = Vec::with_capacity(list.len());
            let mut names = Vec::with_capacity(list.len());
            let mut items = Vec::with_capacity(list.len());
            for mut b in list {
                b.meta = new_meta(engine, ctx);
                if let Some(x) = &b.external_id {
                    let value = bank_uniq_value(&b.bank_account, x);
                    set_unique(
                        ctx,
                        account,
                        UNIQ_BANK_EXTERNAL_ID,
                        None,
                        &value,
                        &b.meta.id,
                    );
                }
                let v = store(ctx, account, t, &b.meta.id, &b, b.meta.version)?;
                items.push(PushItem {
                    object: ObjectRef {
                        object_type: t,
                        id: b.meta.id.clone(),
                    },
                    body: Some(v.text.clone()),
                    version: v.version,
                    references: vec![],
                    requires_previous: false,
                    connector_references: ConnectorRefs::None,
                    pointer: if is_array {
                        format!("/{}", items.len())
                    } else {
                        String::new()
                    },
                });
                names.push(b.external_id.clone().unwrap_or_else(|| b.meta.id.clone()));
                stored.push(v.text);
            }
            let label = match names.as_slice() {
                [one] => label(t, one),
                many => format!("{} bank transactions", many.len()),
            };
            let push = PushPlan {
                route_type: t,
                operation: "create",
                items,
                label,
            };
            let (body, etag) = if is_array {
                (format!("[{}]", stored.join(",")), None)
            } else {
                (
                    stored.into_iter().next().unwrap_or_else(|| "null".into()),
                    Some(1),
                )
            };
            Ok(Written {
                status: 201,
                etag,
                push,
                body,
            })
        }
        ObjectType::Payment => fail(
            ProblemKind::NotFound,
            "payments are created with POST /api/invoices/{id}/payments",
        ),
    }
}

fn write_expense(
    engine: &mut Engine,
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
    body: &(impl Document + ?Sized),
    existing: Option<Meta>,
) -> H<Written> {
    let (mut exp, new_vendor) = with_refs(ctx, account, |r| validate::validate_expense(body, r))?;
    let mut items = Vec::new();
    if let Some(mut vendor) = new_vendor {
        vendor.meta = new_meta(engine, ctx);
        exp.vendor_id = vendor.meta.id.clone();
        let vv = store(
            ctx,
            account,
            ObjectType::Vendor,
            &vendor.meta.id,
            &vendor,
            vendor.meta.version,
        )?;
        items.push(PushItem {
            object: ObjectRef {
                object_type: ObjectType::Vendor,
                id: vendor.meta.id.clone(),
            },
            body: Some(vv.text.clone()),
            version: vv.version,
            references: vec![],
            requires_previous: false,
            connector_references: ConnectorRefs::None,
            pointer: "/vendor".to_string(),
        });
    }
    let (status, operation) = match existing {
        Some(meta) => {
            exp.meta = meta;
            (200, "update")
        }
        None => {
            exp.meta = new_meta(engine, ctx);
            (201, "create")
        }
    };
    let v = store(
        ctx,
        account,
        ObjectType::Expense,
        &exp.meta.id,
        &exp,
        exp.meta.version,
    )?;
    let requires_previous = !items.is_empty();
    items.push(PushItem {
        object: ObjectRef {
            object_type: ObjectType::Expense,
            id: exp.meta.id.clone(),
        },
        body: None,
        version: v.version,
        references: vec![(
            "vendorId".to_string(),
            ObjectType::Vendor,
            exp.vendor_id.clone(),
        )],
        requires_previous,
        connector_references: line_accounts(exp.lines.iter().map(|l| l.account_id.as_ref())),
        pointer: String::new(),
    });
    let push = PushPlan {
        route_type: ObjectType::Expense,
        operation,
        items,
        label: label(ObjectType::Expense, &exp.meta.id),
    };
    Ok(Written {
        status,
        etag: Some(exp.meta.version),
        push,
        body: v.text,
    })
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn update(
    engine: &mut Engine,
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
    t: ObjectType,
    id: &str,
    body: &Value,
    if_match: Option<IfMatch>,
    patch: bool,
) -> H<Written> {
    let stored = load_object(ctx, account, t, id)?;
    let old: Meta = serde_json::from_value(stored.clone()).map_err(|e| CoreError::CorruptRow {
        key: keys::object(&account.id, t, id),
        reason: e.to_string(),
    })?;
    if let Some(IfMatch::Version(v)) = if_match {
        if v != old.version {
            return fail(
                ProblemKind::PreconditionFailed,
                format!(
                    "If-Match names version {v}; the stored version is {}",
                    old.version
                ),
            );
        }
    }
    let input = if patch {
        let mut merged = stored.clone();
        merge_patch(&mut merged, body);
        if let Some(Value::String(sent)) = body.get("id") {
            if sent != id {
                return invalid(vec![field_error(
                    "/id",
                    codes::MISMATCH,
                    "id does not match the path",
                )]);
            }
        }
        strip_server_fields(&mut merged);
        merged
    } else {
        if let Some(sent) = body.get("id") {
            if sent.as_str() != Some(id) {
                return invalid(vec![field_error(
                    "/id",
                    codes::MISMATCH,
                    "id does not match the path",
                )]);
            }
        }
        let mut b = body.clone();
        strip_server_fields(&mut b);
        b
    };
    let meta = Meta {
        id: id.to_string(),
        version: old.version.saturating_add(1),
        created_at: old.created_at.clone(),
        updated_at: ctx.now_str.clone(),
    };
    let version = meta.version;
    let written = |v: Stored, name: &str, refs| Written {
        status: 200,
        etag: Some(version),
        push: single(t, id, label(t, name), &v, "update", refs),
        body: v.text,
    };
    match t {
        ObjectType::Customer => {
            let mut c = with_refs(ctx, account, |r| {
                validate::validate_customer(&input, r, Some(id))
            })?;
            c.meta = meta;
            Ok(written(
                store(ctx, account, t, id, &c, c.meta.version)?,
                &c.name,
                vec![],
            ))
        }
        ObjectType::Vendor => {
            let mut c = match validate::validate_vendor(&input, "") {
                Ok(c) => c,
                Err(e) => return invalid(e),
            };
            c.meta = meta;
            Ok(written(
                store(ctx, account, t, id, &c, c.meta.version)?,
                &c.name,
                vec![],
            ))
        }
        ObjectType::Account => {
            let mut a = with_refs(ctx, account, |r| {
                validate::validate_account(&input, r, Some(id))
            })?;
            a.meta = meta;
            let old_code = stored
                .get("code")
                .and_then(Value::as_str)
                .map(str::to_string);
            set_unique(
                ctx,
                account,
                UNIQ_ACCOUNT_CODE,
                old_code.as_deref(),
                &a.code,
                id,
            );
            Ok(written(
                store(ctx, account, t, id, &a, a.meta.version)?,
                &a.code,
                vec![],
            ))
        }
        ObjectType::Invoice => {
            if stored.get("status").and_then(Value::as_str) == Some("void") {
                return invalid(vec![field_error(
                    "/status",
                    codes::INVALID_STATE,
                    "a void invoice cannot be changed",
                )]);
            }
            let paid = stored
                .get("amountPaid")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let mut inv = with_refs(ctx, account, |r| {
                validate::validate_invoice(&input, r, Some(id), paid)
            })?;
            inv.meta = meta;
            let old_number = stored
                .get("number")
                .and_then(Value::as_str)
                .map(str::to_string);
            set_unique(
                ctx,
                account,
                UNIQ_INVOICE_NUMBER,
                old_number.as_deref(),
                &inv.number,
                id,
            );
            let refs = vec![(
                "customerId".to_string(),
                ObjectType::Customer,
                inv.customer_id.clone(),
            )];
            let accounts = line_accounts(inv.lines.iter().map(|l| l.account_id.as_ref()));
            let mut w = written(
                store(ctx, account, t, id, &inv, inv.meta.version)?,
                &inv.number,
                refs,
            );
            for item in &mut w.push.items {
                item.connector_references = accounts.clone();
            }
            Ok(w)
        }
        ObjectType::Expense => write_expense(engine, ctx, account, &input, Some(meta)),
        _ => fail(ProblemKind::NotFound, "this object cannot be updated"),
    }
}

pub(crate) fn create_payment(
    engine: &mut Engine,
    ctx: &mut Ctx<'_>,
    account: &AccountRec,
    invoice_id: &str,
    body: &Json<'_>,
) -> H<Written> {
    let stored = load_object(ctx, account, ObjectType::Invoice, invoice_id)?;
    let key = keys::object(&account.id, ObjectType::Invoice, invoice_id);
    let mut invoice: Invoice =
        serde_json::from_value(stored).map_err(|e| CoreError::CorruptRow {
            key: key.clone(),
            reason: e.to_string(),
        })?;
    let mut payment = match validate::validate_payment(body, &invoice) {
        Ok(p) => p,
        Err(e) => return invalid(e),
    };
    let (paid, balance) = match (
        invoice.amount_paid.checked_add(payment.amount),
        invoice.balance.checked_sub(payment.amount),
    ) {
        (Some(p), Some(b)) if b >= 0 => (p, b),
        _ => {
            return invalid(vec![field_error(
                "/amount",
                codes::OUT_OF_RANGE,
                "amount is above the invoice's balance",
            )])
        }
    };
    payment.meta = new_meta(engine, ctx);
    invoice.amount_paid = paid;
    invoice.balance = balance;
    if balance == 0 {
        invoice.status = InvoiceStatus::Paid;
    }
    invoice.meta.version = invoice.meta.version.saturating_add(1);
    invoice.meta.updated_at = ctx.now_str.clone();
    store(
        ctx,
        account,
        ObjectType::Invoice,
        invoice_id,
        &invoice,
        invoice.meta.version,
    )?;
    let v = store(
        ctx,
        account,
        ObjectType::Payment,
        &payment.meta.id,
        &payment,
        payment.meta.version,
    )?;
    let refs = vec![(
        "invoiceId".to_string(),
        ObjectType::Invoice,
        invoice_id.to_string(),
    )];
    let mut push = single(
        ObjectType::Payment,
        &payment.meta.id,
        format!("payment of invoice {}", invoice.number),
        &v,
        "create",
        refs,
    );
    for item in &mut push.items {
        item.connector_references = ConnectorRefs::Listed(vec![(
            "customerId".to_string(),
            ObjectType::Customer,
            invoice.customer_id.clone(),
        )]);
    }
    Ok(Written {
        status: 201,
        etag: Some(1),
        push,
        body: v.text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The write path reads references from the typed object, an update's previous version
    /// and the migrations from stored text: both must give the same entries, or an update
    /// would leave stale ones behind.
    #[test]
    fn typed_references_are_those_read_from_the_stored_text() {
        let line = |account: Option<&str>| InvoiceLine {
            account_id: account.map(str::to_string),
            ..InvoiceLine::default()
        };
        let inv = Invoice {
            customer_id: "c1".into(),
            lines: vec![
                line(Some("a1")),
                line(None),
                line(Some("a2")),
                line(Some("a1")),
            ],
            ..Invoice::default()
        };
        let exp = Expense {
            vendor_id: "v1".into(),
            lines: vec![ExpenseLine {
                account_id: Some("a3".into()),
                ..ExpenseLine::default()
            }],
            ..Expense::default()
        };
        assert_eq!(inv.refs().len(), 3);
        assert_eq!(
            inv.refs(),
            stored::references_of(ObjectType::Invoice, &serde_json::to_string(&inv).unwrap())
        );
        assert_eq!(
            exp.refs(),
            stored::references_of(ObjectType::Expense, &serde_json::to_string(&exp).unwrap())
        );
        assert!(Customer::default().refs().is_empty());
    }
}
