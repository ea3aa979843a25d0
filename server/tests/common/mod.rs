//! Test harness: spawn `writesync serve` on a temporary database and a free loopback port,
//! talk to it over HTTP, and wait with bounded deadlines.

// Helpers shared by the test binaries through `mod common;`: `pub` is their API there.
#![allow(unreachable_pub)]
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use writesync_core::util::crypto::basic_auth_header;

pub const ADMIN: &str = "test-admin-token-0123456789";
pub const DEADLINE: Duration = Duration::from_secs(20);
/// Short schedules so that tests need not wait.
pub const FAST: [&str; 4] = [
    "--push-retry-schedule",
    "0.05,0.05,0.05",
    "--webhook-retry-schedule",
    "0.05",
];
pub const ALLOW_LOOPBACK: [&str; 2] = ["--allow-target-cidr", "127.0.0.0/8"];

/// A running `writesync serve` child process.
pub struct Server {
    child: Child,
    pub addr: String,
    pub base: String,
    pub db: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
    stdout: Arc<Mutex<Vec<String>>>,
    /// The threads copying stderr and stdout; each ends when its pipe closes.
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn lines_into(
    r: impl Read + Send + 'static,
    sink: Arc<Mutex<Vec<String>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            match line {
                Ok(l) => sink.lock().unwrap().push(l),
                Err(_) => break,
            }
        }
    })
}

impl Server {
    /// Start with the test admin token and `args`.
    pub fn start(db: &Path, args: &[&str]) -> Server {
        let mut all = vec!["--admin-token", ADMIN];
        all.extend_from_slice(args);
        Server::spawn(db, &all, &[])
    }

    /// Start with exactly `args` (plus `--db` and `--listen`) and extra environment.
    pub fn spawn(db: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_writesync"));
        cmd.arg("serve")
            .arg("--db")
            .arg(db)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(args)
            .env_remove("WRITESYNC_ADMIN_TOKEN")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("ALL_PROXY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn writesync");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            lines_into(child.stderr.take().unwrap(), Arc::clone(&logs)),
            lines_into(child.stdout.take().unwrap(), Arc::clone(&stdout)),
        ];
        let deadline = Instant::now() + DEADLINE;
        let addr = loop {
            let found = logs.lock().unwrap().iter().find_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                (v["msg"] == "listening").then(|| v["addr"].as_str().unwrap().to_string())
            });
            if let Some(a) = found {
                break a;
            }
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "writesync exited with {st} before listening: {:?}",
                    logs.lock().unwrap()
                );
            }
            assert!(Instant::now() < deadline, "writesync did not start");
            std::thread::sleep(Duration::from_millis(10));
        };
        Server {
            child,
            base: format!("http://{addr}"),
            addr,
            db: db.to_path_buf(),
            logs,
            stdout,
            readers,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM.
    pub fn terminate(&self) {
        let st = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Wait for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                // Its last lines may still be in the pipes: let the readers drain them, so
                // that `logs()` after an exit holds everything the process wrote.
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The stderr lines so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// The stdout lines so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent()
}

/// One request; `Err` when no answer came (connection refused, reset, timeout).
pub fn try_call(
    agent: &ureq::Agent,
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<Resp, String> {
    let mut b = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"));
    let mut has_ct = false;
    for (k, v) in headers {
        has_ct |= k.eq_ignore_ascii_case("content-type");
        b = b.header(*k, *v);
    }
    if body.is_some() && !has_ct {
        b = b.header("Content-Type", "application/json");
    }
    let req = b
        .body(body.unwrap_or("").as_bytes().to_vec())
        .map_err(|e| e.to_string())?;
    let mut resp = agent.run(req).map_err(|e| e.to_string())?;
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
        .map_err(|e| e.to_string())?;
    Ok(Resp {
        status,
        headers,
        text,
    })
}

/// A client of one server.
pub struct Client {
    pub agent: ureq::Agent,
    pub base: String,
}

impl Client {
    pub fn new(srv: &Server) -> Client {
        Client {
            agent: agent(),
            base: srv.base.clone(),
        }
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Resp {
        try_call(&self.agent, &self.base, method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        let bearer = format!("Bearer {ADMIN}");
        let text = body.map(|b| b.to_string());
        self.call(method, path, &[("Authorization", &bearer)], text.as_deref())
    }

    pub fn api(
        &self,
        t: &Tenant,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Resp {
        let mut h = vec![("Authorization", t.auth.as_str())];
        h.extend_from_slice(headers);
        let text = body.map(|b| b.to_string());
        self.call(method, path, &h, text.as_deref())
    }

    /// A tenant with a key of the given scopes.
    pub fn tenant_with(&self, domain: &str, write_enabled: bool, scopes: &[&str]) -> Tenant {
        let a = self.admin(
            "POST",
            "/admin/accounts",
            Some(json!({"domain": domain, "writeEnabled": write_enabled})),
        );
        assert_eq!(a.status, 201, "{}", a.text);
        let id = a.json()["id"].as_str().unwrap().to_string();
        let k = self.admin(
            "POST",
            &format!("/admin/accounts/{id}/api-keys"),
            Some(json!({ "scopes": scopes })),
        );
        assert_eq!(k.status, 201, "{}", k.text);
        let kb = k.json();
        Tenant {
            id,
            key: kb["key"].as_str().unwrap().to_string(),
            secret: kb["secret"].as_str().unwrap().to_string(),
            auth: basic_auth_header(kb["key"].as_str().unwrap(), kb["secret"].as_str().unwrap()),
        }
    }

    /// A write-enabled tenant with a read/write key.
    pub fn tenant(&self, domain: &str) -> Tenant {
        self.tenant_with(domain, true, &["api.read", "api.write"])
    }

    pub fn connect(&self, t: &Tenant, app: &str, kind: &str, url: &str) -> String {
        let r = self.admin(
            "POST",
            &format!("/admin/accounts/{}/connections", t.id),
            Some(json!({"app": app, "type": kind, "pushUrl": url})),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        r.json()["id"].as_str().unwrap().to_string()
    }

    pub fn webhook(&self, t: &Tenant, body: Value) -> String {
        let r = self.admin(
            "POST",
            &format!("/admin/accounts/{}/webhooks", t.id),
            Some(body),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        r.json()["id"].as_str().unwrap().to_string()
    }

    pub fn deliveries(&self, t: &Tenant, hook: &str) -> Vec<Value> {
        let r = self.admin(
            "GET",
            &format!("/admin/accounts/{}/webhooks/{hook}/deliveries", t.id),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.text);
        r.json().as_array().unwrap().clone()
    }

    /// Poll the sync until it is final.
    pub fn wait_sync(&self, t: &Tenant, sync: &str) -> Value {
        poll(DEADLINE, || {
            let s = self.api(t, "GET", &format!("/api/syncs/{sync}"), &[], None);
            assert_eq!(s.status, 200, "{}", s.text);
            let v = s.json();
            is_final(&v).then_some(v)
        })
    }
}

pub fn is_final(sync: &Value) -> bool {
    matches!(
        sync["status"].as_str(),
        Some("succeeded" | "partially_failed" | "failed" | "no_targets")
    )
}

pub struct Tenant {
    pub id: String,
    pub key: String,
    pub secret: String,
    pub auth: String,
}

/// Poll `f` until it returns `Some`, at most `timeout`.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "condition not reached in {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Send raw bytes and read the answer until the server closes or `timeout`.
pub fn raw(addr: &str, bytes: &[u8], timeout: Duration) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw answer.
pub fn raw_status(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The body of a raw answer (after the blank line).
pub fn raw_body(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

pub fn customer(name: &str) -> Value {
    json!({"name": name, "email": "ap@acme.example.com"})
}
