//! The demo (`writesync-demo`): the main use cases, end to end, on real HTTP over 127.0.0.1.
//!
//! It starts the server on a temporary database and a free loopback port, a fake QuickBooks
//! Online API and a fake HubSpot CRM API (reached through the `quickbooks` and `hubspot`
//! connectors, in their own request shapes), a fake token broker that gives the server the
//! access tokens of both, and a webhook receiver, then walks through: a customer pushed to
//! both, an invoice pushed only to accounting (`X-Sync-Sources`) while QuickBooks throttles,
//! an expense with a new vendor (refused up front when a line lacks the account QuickBooks
//! needs), a payment that marks the invoice paid, a bank-transaction preload without push, a
//! validation error, an update after QuickBooks expired the access token, a dry run (valid and
//! refused, compared with the real write), a push QuickBooks refuses that is found by its
//! tracking id and retried once the cause is fixed, and a customer deleted with the deletion
//! pushed to QuickBooks (deactivated there) next to one whose invoice keeps it. Each step
//! prints the request, the answer, the sync, what each application received and each webhook
//! with its attempts, and checks what the contract says should happen. The demo succeeds only
//! when every check passed.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use writesync_core::net::Cidr;
use writesync_core::util::crypto::{basic_auth_header, webhook_signature};
use writesync_core::util::schedule::RetrySchedule;
use writesync_server::log;
use writesync_server::serve::{self, ServeConfig};
use writesync_server::state::{hex, random_bytes};

use crate::fake::providers::{FakeProvider, FakeTokenBroker, Provider, TokenBook};
use crate::fake::{FakeServer, Received};

const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const HOOK_USER: &str = "hooks";
const HOOK_PASSWORD: &str = "demo-password";
const WAIT: Duration = Duration::from_secs(15);
/// The QuickBooks company of the demo.
const REALM: &str = "9130355377284276";
/// The QuickBooks id of the bank account the demo's expenses are paid from (already in the
/// company's books).
const CHECKING: &str = "35";

/// Run the demo; `verbose` also prints the server's log lines. Returns whether every check
/// passed.
pub fn run(verbose: bool) -> bool {
    log::set_enabled(verbose);
    let started = Instant::now();
    let mut demo = match Demo::start() {
        Ok(d) => d,
        Err(e) => {
            println!("FAIL: the demo could not start: {e}");
            return false;
        }
    };
    if let Err(e) = demo.walk() {
        demo.fail(format!("the walk-through stopped: {e}"));
    }
    let passed = demo.checks - demo.failures.len();
    println!();
    if demo.failures.is_empty() {
        println!(
            "demo: all {} checks passed in {:.1} s",
            demo.checks,
            started.elapsed().as_secs_f64()
        );
    } else {
        println!(
            "demo: FAIL: {} of {} checks failed ({} passed):",
            demo.failures.len(),
            demo.checks,
            passed
        );
        for f in &demo.failures {
            println!("FAIL: {f}");
        }
    }
    let ok = demo.failures.is_empty();
    demo.stop();
    ok
}

/// An answer of the server.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    text: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

struct Demo {
    _dir: tempfile::TempDir,
    server: Option<serve::RunningServer>,
    accounting: FakeProvider,
    crm: FakeProvider,
    broker: FakeTokenBroker,
    hooks: FakeServer,
    /// The customer's id at QuickBooks.
    qb_customer: String,
    agent: ureq::Agent,
    base: String,
    admin: String,
    auth: String,
    account: String,
    webhook: String,
    checks: usize,
    failures: Vec<String>,
}

fn short(s: &str) -> String {
    if s.chars().count() > 120 {
        let cut: String = s.chars().take(117).collect();
        format!("{cut}...")
    } else {
        s.to_string()
    }
}

impl Demo {
    fn start() -> Result<Demo, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let tokens = TokenBook::new();
        let broker = FakeTokenBroker::start(std::sync::Arc::clone(&tokens))
            .map_err(|e| format!("fake token broker: {e}"))?;
        let accounting = FakeProvider::start(
            Provider::QuickBooks {
                realm: REALM.into(),
            },
            std::sync::Arc::clone(&tokens),
        )
        .map_err(|e| format!("fake QuickBooks: {e}"))?;
        accounting.seed(
            "Account",
            CHECKING,
            json!({"Id": CHECKING, "Name": "Checking", "AccountType": "Bank"}),
        );
        let crm = FakeProvider::start(Provider::HubSpot, tokens)
            .map_err(|e| format!("fake HubSpot: {e}"))?;
        let hooks = FakeServer::webhook_receiver("hooks")
            .map_err(|e| format!("fake webhook receiver: {e}"))?;
        let admin = format!("wsa_{}", hex(&random_bytes::<16>()?));
        let schedule = |s: &str| RetrySchedule::from_secs_list(s).map_err(|e| e.to_string());
        let cfg = ServeConfig {
            db: dir.path().join("demo.db"),
            listen: "127.0.0.1:0".into(),
            admin_token: Some(admin.clone()),
            push_retry: Some(schedule("0.05,0.1,0.2")?),
            webhook_retry: Some(schedule("0.05,0.1,0.2")?),
            allow_target_cidrs: vec![Cidr::parse("127.0.0.0/8")?],
            lease_ms: 5_000,
            outbound_timeout: Duration::from_secs(5),
            token_url: Some(broker.url()),
            ..ServeConfig::default()
        };
        let server = serve::start(&cfg).map_err(|e| e.to_string())?;
        let base = format!("http://{}", server.addr());
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .new_agent();
        println!("writesync-demo");
        println!("  server            {base}  (database in a temporary directory)");
        println!(
            "  quickbooks        {}  (fake QuickBooks Online API, company {REALM}; connector quickbooks)",
            accounting.base_url()
        );
        println!(
            "  hubspot           {}  (fake HubSpot CRM API; connector hubspot)",
            crm.base_url()
        );
        println!(
            "  token broker      {}  (the host's: gives writesync the access tokens)",
            broker.url()
        );
        println!(
            "  webhook receiver  {}  (answers 503 to its first delivery, then 200)",
            hooks.url("/hooks")
        );
        println!("  retry schedules   push 0.05,0.1,0.2 s; webhook 0.05,0.1,0.2 s");
        Ok(Demo {
            _dir: dir,
            server: Some(server),
            accounting,
            crm,
            broker,
            hooks,
            qb_customer: String::new(),
            agent,
            base,
            admin,
            auth: String::new(),
            account: String::new(),
            webhook: String::new(),
            checks: 0,
            failures: Vec::new(),
        })
    }

    fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }

    fn fail(&mut self, what: String) {
        println!("  FAIL  {what}");
        self.failures.push(what);
    }

    fn check(&mut self, ok: bool, what: impl Into<String>) -> bool {
        let what = what.into();
        self.checks += 1;
        if ok {
            println!("  ok    {what}");
        } else {
            self.failures.push(what.clone());
            println!("  FAIL  {what}");
        }
        ok
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        let mut b = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(a) = auth {
            b = b.header("Authorization", a);
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let text = body.map(Value::to_string).unwrap_or_default();
        if body.is_some() {
            b = b.header("Content-Type", "application/json");
        }
        let req = b.body(text).map_err(|e| e.to_string())?;
        let mut resp = self
            .agent
            .run(req)
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("{method} {path}: {e}"))?;
        Ok(Answer {
            status,
            headers,
            text,
        })
    }

    fn admin_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Answer, String> {
        let bearer = format!("Bearer {}", self.admin);
        self.send(method, path, Some(&bearer), &[], body.as_ref())
    }

    /// A data API call, printed as the demo's story.
    fn api(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Answer, String> {
        let mut line = format!("  -> {method} {path}");
        for (k, v) in headers {
            line.push_str(&format!("  {k}: {v}"));
        }
        println!("{line}");
        if let Some(b) = &body {
            println!("     {}", short(&b.to_string()));
        }
        let auth = self.auth.clone();
        let a = self.send(method, path, Some(&auth), headers, body.as_ref())?;
        let mut line = format!("  <- {}", a.status);
        for h in ["X-Sync-ID", "X-Sync-Targets", "Idempotency-Replayed"] {
            if let Some(v) = a.header(h) {
                line.push_str(&format!("  {h}: {v}"));
            }
        }
        println!("{line}");
        println!("     {}", short(&a.text));
        Ok(a)
    }

    fn get(&self, path: &str) -> Result<Answer, String> {
        let auth = self.auth.clone();
        self.send("GET", path, Some(&auth), &[], None)
    }

    fn walk(&mut self) -> Result<(), String> {
        self.setup()?;
        let customer = self.customer_to_both()?;
        let invoice = self.invoice_to_accounting(&customer)?;
        self.expense_with_new_vendor()?;
        self.payment(&invoice)?;
        self.bank_preload()?;
        self.validation_error()?;
        self.token_renewal(&customer)?;
        self.dry_run()?;
        self.refused_and_retried(&customer)?;
        self.delete_pushed(&customer)?;
        Ok(())
    }

    fn setup(&mut self) -> Result<(), String> {
        println!();
        println!("== 0. Setup through the admin API ==");
        let a = self.admin_call(
            "POST",
            "/admin/accounts",
            Some(json!({"domain": "acme.example.com"})),
        )?;
        self.check(
            a.status == 201 && a.json()["writeEnabled"] == false,
            format!(
                "account acme.example.com created, read-only at first (HTTP {})",
                a.status
            ),
        );
        self.account = a.json()["id"].as_str().unwrap_or_default().to_string();
        let acct = self.account.clone();
        let k = self.admin_call(
            "POST",
            &format!("/admin/accounts/{acct}/api-keys"),
            Some(json!({"scopes": ["api.read", "api.write"], "name": "demo"})),
        )?;
        let kb = k.json();
        self.check(
            k.status == 201,
            format!("API key {} issued", kb["key"].as_str().unwrap_or("?")),
        );
        self.auth = basic_auth_header(
            kb["key"].as_str().unwrap_or_default(),
            kb["secret"].as_str().unwrap_or_default(),
        );
        let r = self.api(
            "POST",
            "/api/customers",
            &[],
            Some(json!({"name": "Too Early Ltd"})),
        )?;
        self.check(
            r.status == 403 && r.json()["type"] == "/problems/write-mode-disabled",
            "a write before write mode is enabled is 403 write-mode-disabled",
        );
        let p = self.admin_call(
            "PATCH",
            &format!("/admin/accounts/{acct}"),
            Some(json!({"writeEnabled": true})),
        )?;
        self.check(p.status == 200, "write mode enabled");
        for body in [
            json!({"app": "quickbooks", "type": "accounting", "connector": "quickbooks",
                   "baseUrl": self.accounting.base_url(),
                   "settings": {"realmId": REALM, "paymentAccountId": CHECKING}}),
            json!({"app": "hubspot", "type": "crm", "connector": "hubspot",
                   "baseUrl": self.crm.base_url()}),
        ] {
            let c = self.admin_call(
                "POST",
                &format!("/admin/accounts/{acct}/connections"),
                Some(body.clone()),
            )?;
            let cj = c.json();
            self.check(
                c.status == 201 && cj["connector"] == body["connector"],
                format!(
                    "connection {} ({}) registered with the {} connector; receives {}",
                    body["app"].as_str().unwrap_or("?"),
                    body["type"].as_str().unwrap_or("?"),
                    cj["connector"].as_str().unwrap_or("?"),
                    cj["objects"]
                ),
            );
        }
        let w = self.admin_call(
            "POST",
            &format!("/admin/accounts/{acct}/webhooks"),
            Some(json!({"url": self.hooks.url("/hooks"), "events": ["*"],
                        "username": HOOK_USER, "password": HOOK_PASSWORD,
                        "signingSecret": SIGNING_SECRET})),
        )?;
        self.webhook = w.json()["id"].as_str().unwrap_or_default().to_string();
        self.check(
            w.status == 201,
            "webhook subscription for every event, with Basic auth and a signing secret",
        );
        // The receiver's first delivery fails, to show a retry.
        self.hooks.fail_next(1, 503);
        Ok(())
    }

    /// Wait until the sync is final; print and return it.
    fn wait_sync(&mut self, sync_id: &str) -> Result<Value, String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.get(&format!("/api/syncs/{sync_id}"))?.json();
            let status = s["status"].as_str().unwrap_or("").to_string();
            if matches!(
                status.as_str(),
                "succeeded" | "partially_failed" | "failed" | "no_targets"
            ) {
                let targets: Vec<String> = s["targets"]
                    .as_array()
                    .map(|ts| {
                        ts.iter()
                            .map(|t| {
                                format!(
                                    "{} {} (remoteId {}, {} attempt(s))",
                                    t["app"].as_str().unwrap_or("?"),
                                    t["status"].as_str().unwrap_or("?"),
                                    t["remoteId"].as_str().unwrap_or("-"),
                                    t["attempts"]
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                println!("     sync {status}: {}", targets.join("; "));
                return Ok(s);
            }
            if Instant::now() > deadline {
                return Err(format!("sync {sync_id} did not finish in time ({status})"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The requests a fake provider received since `from` (its count before the write),
    /// printed.
    fn pushes_since(&self, fake: &FakeProvider, from: usize) -> Vec<Received> {
        let got: Vec<Received> = fake.received().into_iter().skip(from).collect();
        let name = fake.provider().key();
        if got.is_empty() {
            println!("     {name} received nothing");
        }
        for r in &got {
            let path = r.path.split('?').next().unwrap_or("");
            println!(
                "     {name} received {} {path}: {} -> answered {}",
                r.method,
                short(&r.body),
                r.answered
            );
        }
        got
    }

    /// The token requests the broker received since `from`, printed.
    fn tokens_since(&self, from: usize) -> Vec<Value> {
        let got: Vec<Value> = self
            .broker
            .received()
            .iter()
            .skip(from)
            .map(Received::json)
            .collect();
        for t in &got {
            println!(
                "     token broker asked for a {} token (reason {})",
                t["app"].as_str().unwrap_or("?"),
                t["reason"].as_str().unwrap_or("?")
            );
        }
        got
    }

    /// Wait until every delivery of the sync is final (`expected` of them), print them with
    /// their attempts and check their headers.
    fn webhooks_for(&mut self, sync_id: &str, expected: usize) -> Result<(), String> {
        let deadline = Instant::now() + WAIT;
        let path = format!(
            "/admin/accounts/{}/webhooks/{}/deliveries",
            self.account, self.webhook
        );
        let list = loop {
            let all = self.admin_call("GET", &path, None)?.json();
            let mine: Vec<Value> = all
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|d| d["syncId"] == sync_id)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let done = mine.len() >= expected && mine.iter().all(|d| d["status"] != "pending");
            if done {
                break mine;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the webhooks of sync {sync_id} did not finish in time"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let received = self.hooks.received();
        let mut all_ok = true;
        for d in list.iter().rev() {
            let id = d["id"].as_str().unwrap_or("");
            let copies: Vec<&Received> = received
                .iter()
                .filter(|r| r.header("webhook-id") == Some(id))
                .collect();
            let answers: Vec<String> = copies.iter().map(|r| r.answered.to_string()).collect();
            let data = copies.last().map(|r| r.json()).unwrap_or(Value::Null);
            let what = match d["event"].as_str() {
                Some("api_push_update") => format!(
                    "api_push_update  {} {}",
                    data["data"]["app"].as_str().unwrap_or("?"),
                    data["data"]["status"].as_str().unwrap_or("?")
                ),
                Some(e) => format!("{e} {}", data["data"]["status"].as_str().unwrap_or("?")),
                None => "?".into(),
            };
            println!(
                "     webhook {what}: {} after {} attempt(s) (answers {})",
                d["status"].as_str().unwrap_or("?"),
                d["attempts"],
                answers.join(", ")
            );
            all_ok &= d["status"] == "delivered" && !copies.is_empty();
            for r in &copies {
                let ts = r
                    .header("webhook-timestamp")
                    .and_then(|t| t.parse::<i64>().ok())
                    .unwrap_or(0);
                let expected_sig = webhook_signature(SIGNING_SECRET, id, ts, &r.body).ok();
                let sig_ok = r
                    .header("webhook-signature")
                    .is_some_and(|s| Some(s.to_string()) == expected_sig);
                let auth_ok = r.header("authorization")
                    == Some(basic_auth_header(HOOK_USER, HOOK_PASSWORD).as_str());
                all_ok &= sig_ok && auth_ok && r.header("x-sync-id") == Some(sync_id);
            }
        }
        self.check(
            list.len() == expected && all_ok,
            format!(
                "{expected} webhooks delivered for this sync, each with Basic auth, X-Sync-ID and a valid signature"
            ),
        );
        Ok(())
    }

    fn customer_to_both(&mut self) -> Result<String, String> {
        println!();
        println!("== 1. A customer, pushed to every connected application in its own API ==");
        let (qb0, hs0, tk0) = (
            self.accounting.count(),
            self.crm.count(),
            self.broker.received().len(),
        );
        let r = self.api(
            "POST",
            "/api/customers",
            &[("X-Sync-Data", "push"), ("X-Tracking-ID", "demo-customer")],
            Some(json!({"name": "Acme Ltd", "email": "ap@acme.example.com", "contactName": "Jo Bloggs",
                        "billingAddress": {"line1": "1 Main St", "city": "Springfield",
                                           "region": "IL", "postalCode": "12345", "country": "US"}})),
        )?;
        let customer = r.json()["id"].as_str().unwrap_or_default().to_string();
        let sync = r.header("X-Sync-ID").unwrap_or_default().to_string();
        let mut targets: Vec<&str> = r
            .header("X-Sync-Targets")
            .unwrap_or("")
            .split(',')
            .collect();
        targets.sort_unstable();
        self.check(
            r.status == 201 && !sync.is_empty() && targets == ["hubspot", "quickbooks"],
            "201 with X-Sync-ID, targets quickbooks and hubspot",
        );
        let s = self.wait_sync(&sync)?;
        let asked = self.tokens_since(tk0);
        let qb = self.pushes_since(&self.accounting, qb0);
        let hs = self.pushes_since(&self.crm, hs0);
        self.check(
            s["status"] == "succeeded" && s["trackingId"] == "demo-customer",
            "the sync succeeded and carries the tracking id",
        );
        self.check(
            asked.len() == 2 && asked.iter().all(|t| t["reason"] == "missing"),
            "writesync asked the host's broker once per connection for an access token",
        );
        let qb_ok = qb.len() == 1
            && qb[0]
                .path
                .starts_with(&format!("/v3/company/{REALM}/customer?requestid="))
            && qb[0].json()["DisplayName"] == "Acme Ltd"
            && qb[0].json()["GivenName"] == "Jo"
            && qb[0]
                .header("authorization")
                .is_some_and(|a| a.starts_with("Bearer tok-quickbooks-"));
        self.check(
            qb_ok,
            "QuickBooks received a Customer (DisplayName, GivenName, BillAddr) with requestid and its bearer token",
        );
        let hs_ok = hs.len() == 1
            && hs[0].path == "/crm/v3/objects/companies"
            && hs[0].json()["properties"]["name"] == "Acme Ltd"
            && hs[0].json()["properties"]["state"] == "IL";
        self.check(hs_ok, "HubSpot received a company with its properties");
        self.qb_customer = target_of(&s, "quickbooks")["remoteId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.check(
            !self.qb_customer.is_empty()
                && self
                    .accounting
                    .entity("Customer", &self.qb_customer)
                    .is_some(),
            format!(
                "the sync shows QuickBooks' id of the customer ({})",
                self.qb_customer
            ),
        );
        self.webhooks_for(&sync, 3)?;
        Ok(customer)
    }

    fn invoice_to_accounting(&mut self, customer: &str) -> Result<String, String> {
        println!();
        println!("== 2. An invoice, pushed only to accounting (X-Sync-Sources: accounting); QuickBooks throttles once ==");
        let (qb0, hs0) = (self.accounting.count(), self.crm.count());
        self.accounting.rate_limit_next(1, None);
        let r = self.api(
            "POST",
            "/api/invoices",
            &[
                ("X-Sync-Data", "push"),
                ("X-Sync-Sources", "accounting"),
                ("X-Tracking-ID", "demo-invoice"),
            ],
            Some(json!({"number": "INV-1001", "customerId": customer,
                        "issueDate": "2026-11-01", "dueDate": "2026-11-30", "currency": "EUR",
                        "lines": [{"description": "Consulting", "quantity": 2,
                                   "unitAmount": 15000, "taxAmount": 6300}]})),
        )?;
        let inv = r.json();
        let id = inv["id"].as_str().unwrap_or_default().to_string();
        let sync = r.header("X-Sync-ID").unwrap_or_default().to_string();
        self.check(
            r.status == 201
                && inv["total"] == 36300
                && inv["balance"] == 36300
                && inv["status"] == "open",
            "201; the server computed total 36300 (2 x 15000 + 6300 tax), balance 36300, status open",
        );
        self.check(
            r.header("X-Sync-Targets") == Some("quickbooks"),
            "the only target is quickbooks",
        );
        let s = self.wait_sync(&sync)?;
        let qb = self.pushes_since(&self.accounting, qb0);
        self.pushes_since(&self.crm, hs0);
        let retried = qb.len() == 2
            && qb[0].answered == 429
            && qb[1].answered == 200
            && qb[0].path == qb[1].path;
        self.check(
            retried && target_of(&s, "quickbooks")["attempts"] == 2,
            "QuickBooks answered 429 ThrottleExceeded; the retry carried the same requestid and succeeded",
        );
        let body = qb.last().map(Received::json).unwrap_or(Value::Null);
        self.check(
            s["status"] == "succeeded"
                && body["CustomerRef"]["value"] == self.qb_customer.as_str()
                && body["Line"][0]["Amount"] == 300.0
                && body["TxnTaxDetail"]["TotalTax"] == 63.0,
            "QuickBooks received an Invoice whose CustomerRef is QuickBooks' own customer id, amounts in EUR",
        );
        self.check(self.crm.count() == hs0, "hubspot received nothing");
        self.webhooks_for(&sync, 2)?;
        Ok(id)
    }

    fn expense_with_new_vendor(&mut self) -> Result<(), String> {
        println!();
        println!("== 3. An expense with a new vendor ==");
        let expense = |account: Option<&str>| {
            let mut line = json!({"description": "Printer paper", "amount": 4599});
            if let Some(a) = account {
                line["accountId"] = json!(a);
            }
            json!({"vendor": {"name": "Paper Supplies Co", "email": "billing@paper.example.com"},
                   "date": "2026-11-03", "currency": "EUR", "lines": [line]})
        };
        let r = self.api(
            "POST",
            "/api/expenses",
            &[("X-Sync-Data", "push"), ("X-Sync-Sources", "quickbooks")],
            Some(expense(None)),
        )?;
        let e = &r.json()["errors"][0];
        self.check(
            r.status == 422
                && e["pointer"] == "/lines/0/accountId"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("quickbooks requires")),
            "without an account on its line, an expense named for quickbooks is refused at once (422, not a failed push)",
        );
        let qb0 = self.accounting.count();
        let a = self.api(
            "POST",
            "/api/accounts",
            &[("X-Sync-Data", "push"), ("X-Sync-Sources", "quickbooks")],
            Some(json!({"code": "6000", "name": "Office supplies", "type": "expense"})),
        )?;
        let account = a.json()["id"].as_str().unwrap_or_default().to_string();
        let s = self.wait_sync(a.header("X-Sync-ID").unwrap_or_default())?;
        self.pushes_since(&self.accounting, qb0);
        self.check(
            s["status"] == "succeeded",
            "the expense account is pushed to QuickBooks' chart of accounts",
        );
        let (qb0, hs0) = (self.accounting.count(), self.crm.count());
        let r = self.api(
            "POST",
            "/api/expenses",
            &[("X-Sync-Data", "push")],
            Some(expense(Some(&account))),
        )?;
        let exp = r.json();
        let vendor = exp["vendorId"].as_str().unwrap_or_default().to_string();
        let sync = r.header("X-Sync-ID").unwrap_or_default().to_string();
        let v = self.get(&format!("/api/vendors/{vendor}"))?;
        self.check(
            r.status == 201
                && !vendor.is_empty()
                && v.status == 200
                && v.json()["name"] == "Paper Supplies Co",
            "201; the expense carries vendorId and the new vendor is stored",
        );
        let s = self.wait_sync(&sync)?;
        let qb = self.pushes_since(&self.accounting, qb0);
        self.pushes_since(&self.crm, hs0);
        let order: Vec<String> = qb
            .iter()
            .map(|p| {
                p.path
                    .split('?')
                    .next()
                    .unwrap_or("")
                    .rsplit('/')
                    .next()
                    .unwrap_or("?")
                    .to_string()
            })
            .collect();
        self.check(
            s["status"] == "succeeded" && order == ["vendor", "purchase"],
            format!("QuickBooks received the Vendor first, then the Purchase ({order:?})"),
        );
        let purchase = qb.get(1).map(Received::json).unwrap_or(Value::Null);
        let vendor_id = self
            .accounting
            .entities("Vendor")
            .into_iter()
            .find(|(_, e)| e.body["DisplayName"] == "Paper Supplies Co")
            .map(|(id, _)| id)
            .unwrap_or_default();
        self.check(
            purchase["EntityRef"]["value"] == vendor_id.as_str()
                && purchase["AccountRef"]["value"] == CHECKING
                && purchase["Line"][0]["AccountBasedExpenseLineDetail"]["AccountRef"]["value"].is_string(),
            "the Purchase names the vendor and the expense account by QuickBooks' ids, paid from the Checking account",
        );
        self.check(self.crm.count() == hs0, "hubspot (a CRM) received nothing");
        self.webhooks_for(&sync, 2)?;
        Ok(())
    }

    fn payment(&mut self, invoice: &str) -> Result<(), String> {
        println!();
        println!("== 4. A payment that marks the invoice paid ==");
        let qb0 = self.accounting.count();
        let r = self.api(
            "POST",
            &format!("/api/invoices/{invoice}/payments"),
            &[("X-Sync-Data", "push"), ("X-Sync-Sources", "quickbooks")],
            Some(json!({"amount": 36300, "date": "2026-11-20", "reference": "WIRE-7"})),
        )?;
        let p = r.json();
        let sync = r.header("X-Sync-ID").unwrap_or_default().to_string();
        self.check(
            r.status == 201 && p["invoiceId"] == invoice && p["amount"] == 36300,
            "201 with the payment",
        );
        let inv = self.get(&format!("/api/invoices/{invoice}"))?.json();
        println!(
            "     invoice now: status {}, amountPaid {}, balance {}, version {}",
            inv["status"], inv["amountPaid"], inv["balance"], inv["version"]
        );
        self.check(
            inv["status"] == "paid" && inv["balance"] == 0 && inv["amountPaid"] == 36300,
            "the invoice is paid with balance 0",
        );
        let s = self.wait_sync(&sync)?;
        let qb = self.pushes_since(&self.accounting, qb0);
        let body = qb.first().map(Received::json).unwrap_or(Value::Null);
        let qb_invoice = self
            .accounting
            .entities("Invoice")
            .into_iter()
            .find(|(_, e)| e.body["DocNumber"] == "INV-1001")
            .map(|(id, _)| id)
            .unwrap_or_default();
        self.check(
            s["status"] == "succeeded"
                && qb.len() == 1
                && body["TotalAmt"] == 363.0
                && body["CustomerRef"]["value"] == self.qb_customer.as_str()
                && body["Line"][0]["LinkedTxn"][0]["TxnId"] == qb_invoice.as_str(),
            "QuickBooks received a Payment of 363.00 linked to its invoice",
        );
        self.webhooks_for(&sync, 2)?;
        Ok(())
    }

    fn bank_preload(&mut self) -> Result<(), String> {
        println!();
        println!("== 5. A bank-transaction preload, without push ==");
        let before = (
            self.accounting.count(),
            self.crm.count(),
            self.hooks.count(),
        );
        let batch = json!([
            {"bankAccount": "DE89370400440532013000", "date": "2026-11-20", "amount": 36300,
             "currency": "EUR", "description": "Acme Ltd INV-1001", "externalId": "tx-1"},
            {"bankAccount": "DE89370400440532013000", "date": "2026-11-21", "amount": -4599,
             "currency": "EUR", "description": "Paper Supplies Co", "externalId": "tx-2"},
            {"bankAccount": "DE89370400440532013000", "date": "2026-11-22", "amount": -1200,
             "currency": "EUR", "description": "Bank fee", "externalId": "tx-3"}
        ]);
        let r = self.api(
            "POST",
            "/api/bank-transactions",
            &[("Idempotency-Key", "preload-2026-11")],
            Some(batch.clone()),
        )?;
        let n = r.json().as_array().map_or(0, Vec::len);
        self.check(
            r.status == 201 && n == 3 && r.header("X-Sync-ID").is_none(),
            "201 with 3 stored transactions and no X-Sync-ID: nothing is pushed",
        );
        let again = self.api(
            "POST",
            "/api/bank-transactions",
            &[("Idempotency-Key", "preload-2026-11")],
            Some(batch),
        )?;
        self.check(
            again.status == 201
                && again.header("Idempotency-Replayed") == Some("true")
                && again.text == r.text,
            "re-sending the preload with its Idempotency-Key replays the first answer",
        );
        let list = self.get("/api/bank-transactions")?.json();
        let stored = list.as_array().map_or(0, Vec::len);
        self.check(
            stored == 3,
            format!("{stored} bank transactions stored, not 6"),
        );
        // Nothing is owed: the worker has nothing to send. Give it a moment to prove it.
        std::thread::sleep(Duration::from_millis(300));
        let after = (
            self.accounting.count(),
            self.crm.count(),
            self.hooks.count(),
        );
        self.check(
            after == before,
            "no application and no webhook received anything",
        );
        Ok(())
    }

    fn validation_error(&mut self) -> Result<(), String> {
        println!();
        println!("== 6. A validation error ==");
        let before = (
            self.accounting.count(),
            self.crm.count(),
            self.hooks.count(),
        );
        let r = self.api(
            "POST",
            "/api/invoices",
            &[("X-Sync-Data", "push")],
            Some(
                json!({"number": "INV-1001", "customerId": "no-such-customer",
                        "issueDate": "2026-12-10", "dueDate": "2026-12-01", "currency": "EURO",
                        "lines": [{"description": "Widget", "quantity": 0, "unitAmount": -5}]}),
            ),
        )?;
        let p = r.json();
        let errors = p["errors"].as_array().cloned().unwrap_or_default();
        for e in &errors {
            println!(
                "     {}  {}: {}",
                e["pointer"].as_str().unwrap_or("?"),
                e["code"].as_str().unwrap_or("?"),
                e["message"].as_str().unwrap_or("?")
            );
        }
        let content_type = r.header("Content-Type").unwrap_or("").to_string();
        self.check(
            r.status == 422
                && content_type.starts_with("application/problem+json")
                && errors.len() >= 5,
            format!(
                "422 problem+json listing every problem ({} errors), not only the first",
                errors.len()
            ),
        );
        let invoices = self.get("/api/invoices")?.json();
        let count = invoices.as_array().map_or(0, Vec::len);
        self.check(
            r.header("X-Sync-ID").is_none() && count == 1,
            "nothing was stored and no sync was created",
        );
        std::thread::sleep(Duration::from_millis(200));
        let after = (
            self.accounting.count(),
            self.crm.count(),
            self.hooks.count(),
        );
        self.check(
            after == before,
            "nothing was pushed and no webhook was sent",
        );
        Ok(())
    }

    fn token_renewal(&mut self, customer: &str) -> Result<(), String> {
        println!();
        println!("== 7. QuickBooks expires the access token; an update asks for a new one ==");
        self.accounting.expire_token_next();
        let (qb0, tk0) = (self.accounting.count(), self.broker.received().len());
        let r = self.api(
            "PATCH",
            &format!("/api/customers/{customer}"),
            &[("X-Sync-Data", "push"), ("X-Sync-Sources", "quickbooks")],
            Some(json!({"phone": "+1 217 555 0100"})),
        )?;
        let s = self.wait_sync(r.header("X-Sync-ID").unwrap_or_default())?;
        let asked = self.tokens_since(tk0);
        let qb = self.pushes_since(&self.accounting, qb0);
        self.check(
            qb.len() == 2 && qb[0].answered == 401 && qb[1].answered == 200,
            "QuickBooks refused the first attempt (401 AuthenticationFailed) and accepted the second",
        );
        self.check(
            asked.len() == 1 && asked[0]["reason"] == "unauthorized",
            "writesync asked the broker once for a new token (reason unauthorized)",
        );
        let body = qb.last().map(Received::json).unwrap_or(Value::Null);
        let entity = self.accounting.entity("Customer", &self.qb_customer);
        self.check(
            s["status"] == "succeeded"
                && target_of(&s, "quickbooks")["attempts"] == 1
                && body["Id"] == self.qb_customer.as_str()
                && body["SyncToken"] == "0"
                && body["sparse"] == true
                && entity.is_some_and(|e| e.version == 1),
            "a sparse update with the SyncToken QuickBooks gave; the refused attempt did not count",
        );
        Ok(())
    }

    /// How many syncs the account has (the demo makes fewer than one page).
    fn sync_count(&self) -> Result<usize, String> {
        let a = self.get("/api/syncs?pageSize=200")?;
        match a.json().as_array() {
            Some(list) if a.status == 200 => Ok(list.len()),
            _ => Err(format!("GET /api/syncs answered {}: {}", a.status, a.text)),
        }
    }

    fn dry_run(&mut self) -> Result<(), String> {
        println!();
        println!("== 8. A dry run: every check, nothing stored, nothing pushed ==");
        let before = (
            self.accounting.count(),
            self.crm.count(),
            self.hooks.count(),
        );
        let syncs0 = self.sync_count()?;
        let r = self.api(
            "POST",
            "/api/customers?dryRun=true",
            &[("X-Sync-Data", "push")],
            Some(json!({"name": "Dry Run Inc", "email": "ap@dry.example.com"})),
        )?;
        let b = r.json();
        let mut targets: Vec<&str> = b["targets"]
            .as_array()
            .map(|ts| ts.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        targets.sort_unstable();
        self.check(
            r.status == 200
                && b["valid"] == true
                && b["object"]["name"] == "Dry Run Inc"
                && b["object"].get("id").is_none()
                && targets == ["hubspot", "quickbooks"]
                && r.header("X-Sync-ID").is_none(),
            format!(
                "200 {{valid, object, targets}}: the customer as it would be stored (no id), targets {targets:?}, no X-Sync-ID"
            ),
        );
        let listed = self.get("/api/customers")?.json();
        let stored = listed
            .as_array()
            .is_some_and(|a| a.iter().any(|c| c["name"] == "Dry Run Inc"));
        let syncs = self.sync_count()?;
        self.check(
            !stored && syncs == syncs0,
            format!("the customer is not in the list and no sync was created ({syncs} syncs before and after)"),
        );
        // A refused dry run answers exactly what the real write answers: an invoice with
        // every kind of mistake, and an expense whose line lacks the account its target
        // (quickbooks) requires.
        let bad = [
            (
                "/api/invoices",
                "an invalid invoice",
                json!({"number": "INV-1001", "customerId": "no-such-customer",
                       "issueDate": "2026-12-10", "dueDate": "2026-12-01", "currency": "EURO",
                       "lines": [{"description": "Widget", "quantity": 0, "unitAmount": -5}]}),
                None,
            ),
            (
                "/api/expenses",
                "an expense for quickbooks without its line's account",
                json!({"vendor": {"name": "Dry Vendor"}, "date": "2026-12-01", "currency": "EUR",
                       "lines": [{"description": "Toner", "amount": 2500}]}),
                Some("/lines/0/accountId"),
            ),
        ];
        let headers = [("X-Sync-Data", "push"), ("X-Sync-Sources", "quickbooks")];
        for (path, what, body, only) in bad {
            let dry = self.api(
                "POST",
                &format!("{path}?dryRun=true"),
                &headers,
                Some(body.clone()),
            )?;
            let real = self.api("POST", path, &headers, Some(body))?;
            let errors = dry.json()["errors"].clone();
            let pointers: Vec<&str> = errors
                .as_array()
                .map(|es| es.iter().filter_map(|e| e["pointer"].as_str()).collect())
                .unwrap_or_default();
            let expected = match only {
                Some(p) => pointers == [p],
                None => pointers.len() >= 5,
            };
            self.check(
                dry.status == 422
                    && real.status == 422
                    && expected
                    && errors == real.json()["errors"]
                    && dry.json()["type"] == real.json()["type"],
                format!(
                    "the dry run of {what} answers the real write's 422, pointers {pointers:?}"
                ),
            );
        }
        let vendors = self.get("/api/vendors")?.json();
        let expenses = self.get("/api/expenses")?.json();
        let invoices = self.get("/api/invoices")?.json();
        self.check(
            vendors
                .as_array()
                .is_some_and(|a| a.iter().all(|v| v["name"] != "Dry Vendor"))
                && expenses.as_array().map_or(0, Vec::len) == 1
                && invoices.as_array().map_or(0, Vec::len) == 1,
            "none of them stored anything (still 1 invoice, 1 expense, no Dry Vendor)",
        );
        std::thread::sleep(Duration::from_millis(100));
        let after = (
            self.accounting.count(),
            self.crm.count(),
            self.hooks.count(),
        );
        self.check(
            after == before,
            "QuickBooks, HubSpot and the webhook receiver received nothing",
        );
        Ok(())
    }

    fn refused_and_retried(&mut self, customer: &str) -> Result<(), String> {
        println!();
        println!("== 9. QuickBooks refuses a push; the sync is found, the cause fixed, the push retried ==");
        let message = "You can't create or modify a transaction dated before the closing date of the books (2026-11-30)";
        println!("     (QuickBooks' books are closed until 2026-11-30: it refuses earlier dates)");
        self.accounting.refuse(Some(("TxnDate", message)));
        let qb0 = self.accounting.count();
        let r = self.api(
            "POST",
            "/api/invoices",
            &[
                ("X-Sync-Data", "push"),
                ("X-Sync-Sources", "quickbooks"),
                ("X-Tracking-ID", "demo-closed-books"),
            ],
            Some(json!({"number": "INV-1002", "customerId": customer,
                        "issueDate": "2026-11-28", "dueDate": "2026-12-28", "currency": "EUR",
                        "lines": [{"description": "Support", "quantity": 1, "unitAmount": 50000}]})),
        )?;
        let sync = r.header("X-Sync-ID").unwrap_or_default().to_string();
        self.check(
            r.status == 201 && !sync.is_empty(),
            "201 with X-Sync-ID: the invoice is stored; its push is asynchronous",
        );
        let s = self.wait_sync(&sync)?;
        let first = self.pushes_since(&self.accounting, qb0);
        let t = target_of(&s, "quickbooks");
        let e = &t["error"];
        println!("     target error: {e}");
        self.check(
            s["status"] == "failed"
                && t["status"] == "failed"
                && t["attempts"] == 1
                && first.len() == 1
                && first[0].answered == 400,
            "QuickBooks answered 400 ValidationFault: not retryable, so the target failed after 1 attempt",
        );
        self.check(
            e["status"] == 400
                && e["code"] == "6000"
                && e["field"] == "TxnDate"
                && e["message"].as_str().is_some_and(|m| {
                    m.starts_with("A business validation error") && m.contains("closing date")
                }),
            "the target's error is structured from QuickBooks' Fault: status 400, code 6000, its message, field TxnDate",
        );
        let found = self.api("GET", "/api/syncs?trackingId=demo-closed-books", &[], None)?;
        let f = found.json();
        let failed = self.get("/api/syncs?status=failed&app=quickbooks")?.json();
        self.check(
            found.status == 200
                && f.as_array().map_or(0, Vec::len) == 1
                && f[0]["id"] == sync.as_str()
                && failed
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x["id"] == sync.as_str())),
            "GET /api/syncs?trackingId= finds the sync (and ?status=failed&app=quickbooks lists it)",
        );
        println!("     (the accountant reopens November in QuickBooks)");
        self.accounting.refuse(None);
        let qb1 = self.accounting.count();
        let a = self.api(
            "POST",
            &format!("/api/syncs/{sync}/retry"),
            &[],
            Some(json!({"apps": ["quickbooks"]})),
        )?;
        self.check(
            a.status == 202 && target_of(&a.json(), "quickbooks")["status"] == "pending",
            "202: the failed target is pending again",
        );
        let s = self.wait_sync(&sync)?;
        let second = self.pushes_since(&self.accounting, qb1);
        let key = |r: &Received| {
            r.path
                .split_once("requestid=")
                .map(|(_, k)| k.split('&').next().unwrap_or("").to_string())
                .unwrap_or_default()
        };
        let (k1, k2) = (
            first.first().map(key).unwrap_or_default(),
            second.first().map(key).unwrap_or_default(),
        );
        println!("     requestid of the first attempt {k1}, of the retry {k2}");
        self.check(
            s["status"] == "succeeded"
                && target_of(&s, "quickbooks")["attempts"] == 2
                && target_of(&s, "quickbooks")["error"].is_null()
                && second.len() == 1
                && second[0].answered == 200,
            "the retried push succeeded (attempts 2) and the error is gone",
        );
        self.check(
            !k1.is_empty() && k1 == k2 && second[0].json() == first[0].json(),
            "the retry carried the first attempt's idempotency key (QuickBooks' requestid) and the same Invoice",
        );
        let held = self
            .accounting
            .entities("Invoice")
            .into_iter()
            .filter(|(_, e)| e.body["DocNumber"] == "INV-1002")
            .count();
        self.check(held == 1, "QuickBooks holds INV-1002 once");
        Ok(())
    }

    fn delete_pushed(&mut self, customer: &str) -> Result<(), String> {
        println!();
        println!(
            "== 10. A customer deleted, the deletion pushed to QuickBooks (deactivated there) =="
        );
        let qb0 = self.accounting.count();
        let r = self.api(
            "POST",
            "/api/customers",
            &[("X-Sync-Data", "push"), ("X-Sync-Sources", "quickbooks")],
            Some(json!({"name": "Short Lived LLC", "email": "ap@short.example.com"})),
        )?;
        let id = r.json()["id"].as_str().unwrap_or_default().to_string();
        let s = self.wait_sync(r.header("X-Sync-ID").unwrap_or_default())?;
        self.pushes_since(&self.accounting, qb0);
        let remote = target_of(&s, "quickbooks")["remoteId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.check(
            r.status == 201 && s["status"] == "succeeded" && !remote.is_empty(),
            format!("the customer is pushed to QuickBooks only (its id there: {remote})"),
        );
        let (qb0, hs0) = (self.accounting.count(), self.crm.count());
        let d = self.api(
            "DELETE",
            &format!("/api/customers/{id}"),
            &[("X-Sync-Data", "push")],
            None,
        )?;
        let sync = d.header("X-Sync-ID").unwrap_or_default().to_string();
        self.check(
            d.status == 204
                && d.text.is_empty()
                && !sync.is_empty()
                && d.header("X-Sync-Targets") == Some("quickbooks"),
            "204 with X-Sync-ID; the only target is quickbooks, the one connection holding it",
        );
        let gone = self.get(&format!("/api/customers/{id}"))?;
        let listed = self.get("/api/customers")?.json();
        self.check(
            gone.status == 404
                && listed
                    .as_array()
                    .is_some_and(|a| a.iter().all(|c| c["id"] != id.as_str())),
            "the customer is gone from reads (404) and from the list",
        );
        let s = self.wait_sync(&sync)?;
        let qb = self.pushes_since(&self.accounting, qb0);
        self.pushes_since(&self.crm, hs0);
        let body = qb.first().map(Received::json).unwrap_or(Value::Null);
        let entity = self.accounting.entity("Customer", &remote);
        self.check(
            s["status"] == "succeeded"
                && qb.len() == 1
                && qb[0].path.contains("/customer?")
                && body
                    == json!({"Id": remote, "SyncToken": "0", "sparse": true, "Active": false})
                && entity.is_some_and(|e| e.body["Active"] == false),
            "QuickBooks received the sparse update {Id, SyncToken, sparse, Active: false}: the customer is inactive there",
        );
        self.check(self.crm.count() == hs0, "hubspot received nothing");
        let (qb0, hs0) = (self.accounting.count(), self.crm.count());
        let c = self.api(
            "DELETE",
            &format!("/api/customers/{customer}"),
            &[("X-Sync-Data", "push")],
            None,
        )?;
        let invoice = self
            .get("/api/invoices")?
            .json()
            .as_array()
            .and_then(|a| a.iter().find(|i| i["customerId"] == customer).cloned())
            .unwrap_or(Value::Null);
        let inv_id = invoice["id"].as_str().unwrap_or("?");
        let still = self.get(&format!("/api/customers/{customer}"))?;
        self.check(
            c.status == 409
                && c.json()["type"] == "/problems/conflict"
                && c.json()["detail"]
                    .as_str()
                    .is_some_and(|t| t.contains(&format!("invoice {inv_id}")))
                && c.header("X-Sync-ID").is_none()
                && still.status == 200,
            format!("deleting Acme Ltd, which invoice {inv_id} refers to, is 409 naming it; Acme Ltd stays"),
        );
        std::thread::sleep(Duration::from_millis(100));
        self.check(
            (self.accounting.count(), self.crm.count()) == (qb0, hs0),
            "nothing was pushed for the refused delete",
        );
        Ok(())
    }
}

/// The target of `app` in a sync.
fn target_of<'a>(sync: &'a Value, app: &str) -> &'a Value {
    sync["targets"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["app"] == app))
        .unwrap_or(&Value::Null)
}
