//! The `writesync` command: `writesync serve`, the native server. (The demo is a binary of its
//! own, `writesync-demo`.)
//!
//! Usage errors print a message and exit with status 2; a server that cannot start (database,
//! address) logs the reason and exits with status 1.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use writesync_core::net::Cidr;
use writesync_core::util::schedule::RetrySchedule;
use writesync_server::log;
use writesync_server::serve::{self, ServeConfig};

/// writesync: a write-and-sync engine for a Common Data Model, with push to source
/// applications and webhooks.
#[derive(Debug, Parser)]
#[command(name = "writesync", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API on an SQLite file and run the push and webhook workers.
    Serve(Box<ServeArgs>),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The SQLite database file (created when missing).
    #[arg(long, value_name = "PATH", default_value = serve::DEFAULT_DB)]
    db: PathBuf,

    /// Address to listen on (`127.0.0.1:0` picks a free port; the bound address is logged).
    #[arg(long, value_name = "ADDR", default_value = serve::DEFAULT_LISTEN)]
    listen: String,

    /// The admin API's bearer token. When neither this nor WRITESYNC_ADMIN_TOKEN is set, the
    /// stored token hash is used; on the first start a token is generated and printed once.
    #[arg(long, value_name = "TOKEN", env = "WRITESYNC_ADMIN_TOKEN", hide_env_values = true,
          value_parser = parse_token)]
    admin_token: Option<String>,

    /// Delays between push retries: comma-separated seconds, fractions allowed; one retry per
    /// entry [default: 1,4,16,64,256].
    #[arg(long, value_name = "SECONDS,...", value_parser = parse_schedule)]
    push_retry_schedule: Option<RetrySchedule>,

    /// Delays between webhook retries (3 retries; the last delay repeats when the list is
    /// shorter) [default: 5,60,600].
    #[arg(long, value_name = "SECONDS,...", value_parser = parse_schedule)]
    webhook_retry_schedule: Option<RetrySchedule>,

    /// Allow pushes and webhooks to a restricted range (loopback, private, link-local, ...).
    /// Repeatable.
    #[arg(long = "allow-target-cidr", value_name = "CIDR", value_parser = Cidr::parse)]
    allow_target_cidr: Vec<Cidr>,

    /// Largest request body in bytes; larger ones are 413 [default: 1048576].
    #[arg(long, value_name = "N", value_parser = parse_body_limit)]
    max_body_bytes: Option<usize>,

    /// How long a push or delivery being sent is leased before it is due again. (Work a killed
    /// server had in flight is resumed at once when it restarts.) [default: 120].
    #[arg(long, value_name = "S", value_parser = parse_lease)]
    lease_seconds: Option<f64>,

    /// How long idempotency records are kept, in hours (at least 24) [default: 24].
    #[arg(long, value_name = "H", value_parser = parse_retention)]
    idempotency_retention_hours: Option<f64>,

    /// How long a finished sync (every target succeeded or failed) is kept, with its push
    /// tasks and webhook deliveries, in days (at least 1) [default: 30].
    #[arg(long, value_name = "D", value_parser = parse_sync_retention)]
    sync_retention_days: Option<f64>,

    /// Overall timeout of one push or webhook request, in seconds [default: 10].
    #[arg(long, value_name = "S", value_parser = parse_timeout)]
    outbound_timeout_seconds: Option<f64>,

    /// Most pushes, webhook deliveries and token requests in flight to one origin (scheme,
    /// host and port) at once, so that a slow or hanging target never holds every sender;
    /// further items for it wait while other origins' items are sent [default: 4].
    #[arg(long, value_name = "N", value_parser = parse_per_origin)]
    max_in_flight_per_origin: Option<usize>,

    /// Threads that send pushes, webhook deliveries and token requests; each keeps up to 8
    /// claimed items waiting. More senders keep more slow targets busy at once [default: 8].
    #[arg(long, value_name = "N", value_parser = parse_senders)]
    senders: Option<usize>,

    /// Most inbound connections open at once; further ones wait in the listen backlog. At start
    /// the soft open-file limit is raised (up to the hard limit) to fit them; when the hard
    /// limit is too low the bound is lowered, with a warning [default: 16384].
    #[arg(long, value_name = "N", value_parser = parse_connections)]
    max_connections: Option<usize>,

    /// Most inbound connections open at once from one IPv4 address or IPv6 /64 network; one
    /// more is closed as soon as it is accepted. Raise it behind a reverse proxy, whose
    /// connections all come from one address [default: 256].
    #[arg(long, value_name = "N", value_parser = parse_connections)]
    max_connections_per_ip: Option<usize>,

    /// Time allowed to send a request head, and the longest a keep-alive connection may stay
    /// idle between requests; past it the connection is closed [default: 10].
    #[arg(long, value_name = "S", value_parser = parse_header_timeout)]
    header_timeout_seconds: Option<f64>,

    /// The token broker of provider connections (QuickBooks, Xero, HubSpot, Shopify): the
    /// access-token requests of the engine are POSTed there as JSON
    /// `{connectionId, accountId, app, reason}` and it answers
    /// `{"accessToken": "...", "expiresAt": <Unix ms>}`. It keeps the refresh tokens.
    #[arg(long, value_name = "URL", env = "WRITESYNC_TOKEN_URL", value_parser = parse_token_url)]
    token_url: Option<String>,

    /// Most write requests committed together in one SQLite transaction (group commit); each
    /// is answered only once its transaction committed [default: 64].
    #[arg(long, value_name = "N", value_parser = parse_commit_batch)]
    commit_batch: Option<usize>,

    /// Longest a group commit waits under load for as many write requests as its last batch
    /// had, in milliseconds (0: never wait; a lone write is never kept waiting) [default: 2].
    #[arg(long, value_name = "MS", value_parser = parse_commit_wait)]
    commit_wait_ms: Option<u64>,

    /// Reader engines answering GET and HEAD, each on its own read connection, so that reads
    /// never wait for writes (0: reads go through the writer) [default: 4].
    #[arg(long, value_name = "N", value_parser = parse_readers)]
    readers: Option<usize>,

    /// Least severity of the log lines written on stderr: debug, info, warn or error.
    #[arg(long, value_name = "LEVEL", env = "WRITESYNC_LOG", default_value = "info",
          value_parser = parse_level)]
    log_level: log::Level,
}

fn parse_token(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("the admin token must not be empty".into());
    }
    if !s.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err("the admin token must be visible ASCII without spaces".into());
    }
    Ok(s.to_string())
}

fn parse_token_url(s: &str) -> Result<String, String> {
    match s.split_once("://") {
        Some(("http" | "https", rest)) if !rest.is_empty() => Ok(s.to_string()),
        _ => Err("the token URL must be an http or https URL".into()),
    }
}

fn parse_level(s: &str) -> Result<log::Level, String> {
    log::Level::parse(s).ok_or_else(|| "the log level is debug, info, warn or error".to_string())
}

fn parse_schedule(s: &str) -> Result<RetrySchedule, String> {
    RetrySchedule::from_secs_list(s).map_err(|e| e.to_string())
}

fn parse_secs(s: &str, min: f64, max: f64, what: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= min && v <= max => Ok(v),
        _ => Err(format!("{what} must be a number from {min} to {max}")),
    }
}

fn parse_lease(s: &str) -> Result<f64, String> {
    parse_secs(s, 0.1, 86_400.0, "the lease (seconds)")
}

fn parse_retention(s: &str) -> Result<f64, String> {
    parse_secs(s, 24.0, 24.0 * 365.0, "the idempotency retention (hours)")
}

fn parse_sync_retention(s: &str) -> Result<f64, String> {
    parse_secs(s, 1.0, 3650.0, "the sync retention (days)")
}

fn parse_timeout(s: &str) -> Result<f64, String> {
    parse_secs(s, 0.1, 600.0, "the outbound timeout (seconds)")
}

fn parse_header_timeout(s: &str) -> Result<f64, String> {
    parse_secs(s, 0.1, 600.0, "the header timeout (seconds)")
}

/// `s` as a number within `range`, or `error`.
fn bounded<T: std::str::FromStr + PartialOrd>(
    s: &str,
    range: std::ops::RangeInclusive<T>,
    error: &str,
) -> Result<T, String> {
    match s.trim().parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(error.into()),
    }
}

fn parse_connections(s: &str) -> Result<usize, String> {
    bounded(
        s,
        1..=1 << 20,
        "the number of connections must be from 1 to 1048576",
    )
}

fn parse_commit_batch(s: &str) -> Result<usize, String> {
    bounded(
        s,
        1..=4096,
        "the commit batch must be a number of requests from 1 to 4096",
    )
}

fn parse_commit_wait(s: &str) -> Result<u64, String> {
    bounded(
        s,
        0..=1000,
        "the commit wait must be a number of milliseconds from 0 to 1000",
    )
}

fn parse_per_origin(s: &str) -> Result<usize, String> {
    bounded(
        s,
        1..=1024,
        "the most items in flight per origin must be from 1 to 1024",
    )
}

fn parse_senders(s: &str) -> Result<usize, String> {
    bounded(s, 1..=256, "the number of senders must be from 1 to 256")
}

fn parse_readers(s: &str) -> Result<usize, String> {
    bounded(s, 0..=256, "the number of readers must be from 0 to 256")
}

fn parse_body_limit(s: &str) -> Result<usize, String> {
    bounded(
        s,
        1..=1 << 30,
        "the body limit must be a number of bytes from 1 to 1073741824",
    )
}

fn serve_config(a: ServeArgs) -> ServeConfig {
    let mut c = ServeConfig {
        db: a.db,
        listen: a.listen,
        admin_token: a.admin_token,
        push_retry: a.push_retry_schedule,
        webhook_retry: a.webhook_retry_schedule,
        allow_target_cidrs: a.allow_target_cidr,
        token_url: a.token_url,
        ..ServeConfig::default()
    };
    if let Some(n) = a.max_body_bytes {
        c.max_body_bytes = n;
    }
    if let Some(n) = a.max_in_flight_per_origin {
        c.per_origin = n;
    }
    if let Some(n) = a.senders {
        c.senders = n;
    }
    if let Some(s) = a.lease_seconds {
        c.lease_ms = (s * 1000.0).round() as u64;
    }
    if let Some(h) = a.idempotency_retention_hours {
        c.idempotency_retention_ms = (h * 3_600_000.0).round() as u64;
    }
    if let Some(d) = a.sync_retention_days {
        c.sync_retention_ms = (d * 86_400_000.0).round() as u64;
    }
    if let Some(s) = a.outbound_timeout_seconds {
        c.outbound_timeout = Duration::from_secs_f64(s);
    }
    if let Some(n) = a.max_connections {
        c.max_connections = n;
    }
    if let Some(n) = a.max_connections_per_ip {
        c.max_connections_per_ip = n;
    }
    if let Some(s) = a.header_timeout_seconds {
        c.header_timeout = Duration::from_secs_f64(s);
    }
    if let Some(n) = a.commit_batch {
        c.group_commit.max_batch = n;
    }
    if let Some(ms) = a.commit_wait_ms {
        c.group_commit.max_wait = Duration::from_millis(ms);
    }
    if let Some(n) = a.readers {
        c.readers = n;
    }
    c
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            log::set_min_level(args.log_level);
            match serve::run(&serve_config(*args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    log::error(&e.to_string(), &[]);
                    ExitCode::from(1)
                }
            }
        }
    }
}
