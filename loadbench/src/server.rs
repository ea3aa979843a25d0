//! The `writesync serve` process under test: started on a fresh database in a temporary
//! directory and a free 127.0.0.1 port, its JSON log written to a file there (as an
//! operator's would be), set up through the admin API, and measured through `/proc`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::http::{Conn, Error};
use crate::stats;

/// The admin token the benchmark starts the server with.
const ADMIN_TOKEN: &str = "loadbench-admin-token-0123456789";

/// A running `writesync serve`.
#[derive(Debug)]
pub(crate) struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Server {
    /// Start `bin serve` on a fresh database, with `extra` arguments; pushes and webhooks may
    /// go to 127.0.0.0/8.
    pub(crate) async fn start(bin: &Path, extra: &[String]) -> Result<Server, Error> {
        let dir = tempfile::tempdir()?;
        let log = std::fs::File::create(dir.path().join("serve.log"))?;
        let child = Command::new(bin)
            .arg("serve")
            .arg("--db")
            .arg(dir.path().join("load.db"))
            .args(["--listen", "127.0.0.1:0", "--admin-token", ADMIN_TOKEN])
            .args(["--allow-target-cidr", "127.0.0.0/8"])
            .args(extra)
            .env_remove("WRITESYNC_ADMIN_TOKEN")
            .env_remove("WRITESYNC_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(addr) = server.log_lines().iter().find_map(|v| {
                (v["msg"] == "listening").then(|| v["addr"].as_str()?.parse().ok())?
            }) {
                server.addr = addr;
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                return Err(format!("writesync exited with {status} before listening").into());
            }
            if Instant::now() > deadline {
                return Err("writesync did not start listening within 20 s".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Its process id, as `/proc` names it.
    pub(crate) fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// User plus system CPU ticks so far.
    pub(crate) fn cpu_ticks(&self) -> Result<u64, Error> {
        Ok(stats::cpu_ticks(&self.pid())?)
    }

    /// Peak resident set size so far, in KiB.
    pub(crate) fn peak_rss_kib(&self) -> Result<u64, Error> {
        Ok(stats::peak_rss_kib(&self.pid())?)
    }

    /// Stop it as an operator would (`SIGTERM`, through `kill`: a graceful shutdown that
    /// finishes what is in flight) and wait up to `grace` for it to exit; then its log is
    /// complete. Whether it exited by itself.
    pub(crate) async fn stop(&mut self, grace: Duration) -> Result<bool, Error> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run kill: {e}"))?;
        if !sent.success() {
            return Err(format!("kill -TERM {} failed: {sent}", self.pid()).into());
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(false)
    }

    /// The JSON lines of its log so far.
    pub(crate) fn log_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("serve.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Create a write-enabled account with an `api.read`+`api.write` key; with `push_url`
    /// a connection (`loadsink`, type accounting) that receives customers there; with
    /// `hook_url` a webhook subscribed to every event. The key's `Authorization` value.
    pub(crate) async fn tenant(
        &self,
        domain: &str,
        push_url: Option<&str>,
        hook_url: Option<&str>,
    ) -> Result<String, Error> {
        let admin = format!("Bearer {ADMIN_TOKEN}");
        let mut c = Conn::open(self.addr).await?;
        let account = created(
            c.json(
                Method::POST,
                "/admin/accounts",
                &admin,
                Some(json!({"domain": domain, "writeEnabled": true})),
            )
            .await?,
        )?;
        let id = account["id"].as_str().ok_or("account without id")?;
        let key = created(
            c.json(
                Method::POST,
                &format!("/admin/accounts/{id}/api-keys"),
                &admin,
                Some(json!({"scopes": ["api.read", "api.write"], "name": "loadbench"})),
            )
            .await?,
        )?;
        if let Some(url) = push_url {
            created(
                c.json(
                    Method::POST,
                    &format!("/admin/accounts/{id}/connections"),
                    &admin,
                    Some(json!({"app": "loadsink", "type": "accounting", "pushUrl": url})),
                )
                .await?,
            )?;
        }
        if let Some(url) = hook_url {
            created(
                c.json(
                    Method::POST,
                    &format!("/admin/accounts/{id}/webhooks"),
                    &admin,
                    Some(json!({"url": url, "events": ["*"]})),
                )
                .await?,
            )?;
        }
        let (k, s) = (
            key["key"].as_str().ok_or("key without key")?,
            key["secret"].as_str().ok_or("key without secret")?,
        );
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{k}:{s}"));
        Ok(format!("Basic {basic}"))
    }
}

fn created((status, body): (StatusCode, Value)) -> Result<Value, Error> {
    if status == StatusCode::CREATED {
        Ok(body)
    } else {
        Err(format!("admin call answered {status}: {body}").into())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Measured already; the database is thrown away with the directory.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
