//! `loadbench`: how fast `writesync serve` accepts writes and delivers what they cause.
//!
//! For each case and size it starts the release `writesync` binary on a fresh database in a
//! temporary directory and a free 127.0.0.1 port, sets up an account, an API key and (per
//! case) a connection whose `pushUrl` and a webhook (`["*"]`) whose `url` point at this
//! process's receiver, sends a 200-write warm-up, then sends `POST /api/customers` from
//! keep-alive HTTP/1.1 clients in a closed loop, and waits until every push and delivery the
//! writes caused has arrived (or a deadline). Each write carries
//! `X-Tracking-ID: lb-<n>-<µs sent>`; the server hands it back in the push envelope's
//! `trackingId` and the webhook's `data.trackingId`, so the receiver knows how long each
//! write took to reach it.
//!
//! It reports, per case: writes answered per second (accept rate), the answer latency,
//! pushes and deliveries received per second until all arrived (delivered rate), the
//! send-to-arrival latency (p50/p90/p99), the server's CPU time per write (user + system
//! from `/proc/<pid>/stat`, from the first measured write until the last arrival), its peak
//! RSS (`VmHWM`), its CPU per write by thread, the writes per transaction of its group commit
//! (from its `group commit totals` log line once stopped with `SIGTERM`), and this process's
//! own CPU per write. Beside each plain case, the raw SQLite baseline (`raw.rs`); then the
//! ratios #14 asks for. Then the ceilings of this process:
//! its writers against a server that answers `201` at once, and its receiver under a blast of
//! push envelopes, so that it is clear which side limits the figures.
//!
//! Traffic goes to 127.0.0.1 only; every case stops by itself (`--write-timeout-seconds`,
//! `--drain-timeout-seconds`). See `docs/load.md` for figures and how to run it.
#![forbid(unsafe_code)]

mod http;
mod raw;
mod receiver;
mod server;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, StatusCode};
use serde_json::json;

use crate::http::{answer, run_writers, serve, Error, Headers, Plan, Run};
use crate::raw::RawRun;
use crate::receiver::{tracking_id, Arrivals, Receiver};
use crate::server::Server;
use crate::stats::{
    clock_ticks_per_second, cpu_ticks, ms, thousands, thread_cpu_ticks, Clock, Quantiles,
};

/// Writes sent before each measured run (not measured, never pushing): connections, page
/// cache and WAL warm up.
const WARMUP_WRITES: usize = 200;

/// Load benchmark of `writesync serve` on 127.0.0.1.
#[derive(Debug, Parser)]
#[command(name = "loadbench", about, long_about = None)]
struct Args {
    /// The `writesync` binary [default: `writesync` next to this program, i.e. the one
    /// `cargo build --release -p writesync-server` puts in the same target directory].
    #[arg(long, value_name = "PATH")]
    server: Option<PathBuf>,

    /// Cases to run, in order: plain (CDM only), push (one connection), push+webhook.
    #[arg(long, value_delimiter = ',', default_value = "plain,push,push+webhook")]
    cases: Vec<Case>,

    /// Writes per run; each case runs once per size.
    #[arg(long, value_delimiter = ',', default_value = "5000,20000")]
    writes: Vec<usize>,

    /// Concurrent keep-alive clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,

    /// Longest write phase of one run; no write is started after it.
    #[arg(long, default_value_t = 300.0)]
    write_timeout_seconds: f64,

    /// Longest wait after the last answer for the pushes and deliveries to arrive.
    #[arg(long, default_value_t = 300.0)]
    drain_timeout_seconds: f64,

    /// Skip the ceilings of the writers and the receiver.
    #[arg(long)]
    no_ceilings: bool,

    /// The host name of the receiver in the push and webhook URLs; its port is always the
    /// receiver's on 127.0.0.1. `localhost` measures the sender's name lookups; a name
    /// resolving outside 127.0.0.0/8 is refused by the server's policy.
    #[arg(long, default_value = "127.0.0.1")]
    target_host: String,

    /// One more argument for `writesync serve` (repeatable), e.g.
    /// `--server-arg=--commit-wait-ms --server-arg=0`, to measure a setting.
    #[arg(long = "server-arg", value_name = "ARG", allow_hyphen_values = true)]
    server_args: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Case {
    /// Writes to the CDM only.
    Plain,
    /// Pushing writes (`X-Sync-Data: push`) to one connection.
    Push,
    /// Pushing writes to one connection, and a webhook subscribed to every event.
    #[value(name = "push+webhook")]
    PushWebhook,
}

impl Case {
    fn label(self) -> &'static str {
        match self {
            Case::Plain => "plain writes",
            Case::Push => "pushing writes, 1 connection",
            Case::PushWebhook => "pushing writes, 1 connection + 1 webhook",
        }
    }
    fn pushes(self) -> bool {
        self != Case::Plain
    }
    fn webhook(self) -> bool {
        self == Case::PushWebhook
    }
}

/// How the arrivals of one kind went.
#[derive(Debug, Clone)]
struct Delivery {
    expected: usize,
    delivered: usize,
    repeats: usize,
    at_last_answer: usize,
    /// From the first measured write to the last arrival (all arrived) or to the deadline.
    secs: f64,
    latency: Option<Quantiles>,
}

impl Delivery {
    fn rate(&self) -> f64 {
        self.delivered as f64 / self.secs.max(1e-9)
    }
}

#[derive(Debug, Clone)]
struct Outcome {
    case: Case,
    writes: usize,
    answered_ok: usize,
    failed: usize,
    problems: Vec<String>,
    write_secs: f64,
    answer_latency: Option<Quantiles>,
    pushes: Option<Delivery>,
    hooks: Option<Delivery>,
    server_cpu_secs: f64,
    /// From the first measured write until the last arrival (or the last answer when
    /// nothing is pushed): the span the CPU time was measured over.
    measured_secs: f64,
    server_rss_mib: f64,
    bench_cpu_secs: f64,
    load_before: String,
    load_after: String,
    log_warns: usize,
    log_errors: usize,
    unmatched: usize,
    /// Server CPU seconds by thread name over the measured span.
    threads: Vec<(String, f64)>,
    /// Write requests per transaction of the group commit (warm-up included), from the
    /// server's `group commit totals` log line at shutdown.
    batch_mean: Option<f64>,
    /// The raw SQLite baseline run beside a plain case.
    raw: Option<RawRun>,
}

impl Outcome {
    fn accept_rate(&self) -> f64 {
        self.answered_ok as f64 / self.write_secs.max(1e-9)
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "?".into())
}

fn header(name: &'static str, value: &str) -> Result<(HeaderName, HeaderValue), Error> {
    Ok((HeaderName::from_static(name), HeaderValue::from_str(value)?))
}

/// `POST /api/customers` with `auth`; pushing when `push`; tracking ids when `track`.
fn customer_plan(auth: &str, push: bool, track: bool, key_prefix: &str) -> Result<Plan, Error> {
    let mut headers: Headers = vec![
        (AUTHORIZATION, HeaderValue::from_str(auth)?),
        (CONTENT_TYPE, HeaderValue::from_static("application/json")),
    ];
    if push {
        headers.push(header("x-sync-data", "push")?);
    }
    let prefix = key_prefix.to_string();
    Ok(Plan {
        method: Method::POST,
        path: "/api/customers".into(),
        headers,
        expect: StatusCode::CREATED,
        make: Box::new(move |i, sent_us| {
            let mut h = Vec::with_capacity(2);
            if let Ok(v) = HeaderValue::from_str(&format!("{prefix}-{i}")) {
                h.push((HeaderName::from_static("idempotency-key"), v));
            }
            if track {
                if let Ok(v) = HeaderValue::from_str(&tracking_id(i, sent_us)) {
                    h.push((HeaderName::from_static("x-tracking-id"), v));
                }
            }
            let body =
                json!({"name": format!("Load customer {i}"), "email": "ap@load.example.com"});
            (h, Bytes::from(body.to_string()))
        }),
    })
}

fn delivery(
    a: &Arrivals,
    expected: usize,
    at_last_answer: usize,
    start_us: u64,
    now_us: u64,
) -> Delivery {
    let end = if a.distinct >= expected {
        a.last_us
    } else {
        now_us
    };
    Delivery {
        expected,
        delivered: a.distinct,
        repeats: a.total - a.distinct,
        at_last_answer,
        secs: end.saturating_sub(start_us) as f64 / 1e6,
        latency: Quantiles::of_us(a.latencies_us.clone()),
    }
}

async fn run_case(
    args: &Args,
    bin: &std::path::Path,
    case: Case,
    writes: usize,
    clock: Clock,
    ticks: u64,
) -> Result<Outcome, Error> {
    let load_before = loadavg();
    let receiver = Receiver::start(writes, clock).await?;
    let srv = Server::start(bin, &args.server_args).await?;
    let base = receiver.base.replacen("127.0.0.1", &args.target_host, 1);
    let push_url = format!("{base}/push");
    let hook_url = format!("{base}/hook");
    let auth = srv
        .tenant(
            "load.example.com",
            case.pushes().then_some(push_url.as_str()),
            case.webhook().then_some(hook_url.as_str()),
        )
        .await?;
    let write_deadline = Instant::now() + Duration::from_secs_f64(args.write_timeout_seconds);
    let warm = run_writers(
        srv.addr,
        args.clients,
        WARMUP_WRITES,
        Arc::new(customer_plan(&auth, false, false, "warm")?),
        clock,
        write_deadline,
    )
    .await;
    if warm.ok() != WARMUP_WRITES {
        return Err(format!("warm-up failed: {:?}", warm.problems).into());
    }

    let cpu_before = srv.cpu_ticks()?;
    let threads_before = thread_cpu_ticks(&srv.pid())?;
    let bench_before = cpu_ticks("self")?;
    let plan = Arc::new(customer_plan(&auth, case.pushes(), true, "load")?);
    let run: Run = run_writers(srv.addr, args.clients, writes, plan, clock, write_deadline).await;
    let (first_us, last_answer_us) = run.span_us().ok_or("no write was answered")?;
    let ok = run.ok();
    let (pushes_then, hooks_then) =
        receiver.with(|r| (r.pushes.distinct, r.updates.distinct + r.completes.distinct));

    // Wait until every push and delivery the answered writes caused has arrived.
    let drain_deadline = Instant::now() + Duration::from_secs_f64(args.drain_timeout_seconds);
    let expected_hooks = if case.webhook() { 2 * ok } else { 0 };
    loop {
        let done = receiver.with(|r| {
            (!case.pushes() || r.pushes.distinct >= ok)
                && r.updates.distinct + r.completes.distinct >= expected_hooks
        });
        if done || Instant::now() > drain_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let now_us = clock.us();
    let server_cpu = srv.cpu_ticks()?.saturating_sub(cpu_before);
    let threads_after = thread_cpu_ticks(&srv.pid())?;
    let bench_cpu = cpu_ticks("self")?.saturating_sub(bench_before);
    let rss = srv.peak_rss_kib()?;
    let mut threads: Vec<(String, f64)> = threads_after
        .iter()
        .map(|(name, &t)| {
            let before = threads_before.get(name).copied().unwrap_or(0);
            (name.clone(), t.saturating_sub(before) as f64 / ticks as f64)
        })
        .filter(|(_, secs)| *secs > 0.0)
        .collect();
    threads.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut srv = srv;
    if !srv.stop(Duration::from_secs(30)).await? {
        eprintln!("  the server did not stop within 30 s of SIGTERM");
    }
    let logs = srv.log_lines();
    let totals = logs
        .iter()
        .rev()
        .find(|v| v["msg"] == "group commit totals");
    if let Some(t) = totals {
        eprintln!(
            "  group commit: {} transactions ({} with requests, {} requests), {} outcomes, \
             {} claims handing out {} items",
            t["transactions"],
            t["transactionsWithRequests"],
            t["requests"],
            t["outcomes"],
            t["claims"],
            t["claimed"]
        );
    }
    let batch_mean = totals.and_then(|v| v["meanRequestsPerTransaction"].as_f64());
    let level = |l: &str| logs.iter().filter(|v| v["level"] == l).count();

    let (pushes, hooks) = receiver.with(|r| {
        let pushes = case
            .pushes()
            .then(|| delivery(&r.pushes, ok, pushes_then, first_us, now_us));
        let hooks = case.webhook().then(|| {
            // Both events together; the latency is the write's completion event's.
            let mut both = delivery(&r.completes, ok, hooks_then, first_us, now_us);
            both.expected = expected_hooks;
            both.delivered = r.updates.distinct + r.completes.distinct;
            both.repeats += r.updates.total - r.updates.distinct;
            let last = r.updates.last_us.max(r.completes.last_us);
            let end = if both.delivered >= expected_hooks {
                last
            } else {
                now_us
            };
            both.secs = end.saturating_sub(first_us) as f64 / 1e6;
            both
        });
        (pushes, hooks)
    });
    let answer_latency = Quantiles::of_us(
        run.samples
            .iter()
            .map(|s| s.answered_us - s.sent_us)
            .collect(),
    );
    Ok(Outcome {
        case,
        writes,
        answered_ok: ok,
        failed: run.failed + (run.samples.len() - ok),
        problems: run.problems.clone(),
        write_secs: last_answer_us.saturating_sub(first_us) as f64 / 1e6,
        answer_latency,
        pushes,
        hooks,
        server_cpu_secs: server_cpu as f64 / ticks as f64,
        measured_secs: now_us.saturating_sub(first_us) as f64 / 1e6,
        server_rss_mib: rss as f64 / 1024.0,
        bench_cpu_secs: bench_cpu as f64 / ticks as f64,
        load_before,
        load_after: loadavg(),
        log_warns: level("warn"),
        log_errors: level("error"),
        unmatched: receiver.with(|r| r.unmatched),
        threads,
        batch_mean,
        raw: None,
    })
}

/// The raw SQLite baseline for `writes` plain writes in transactions of `per_transaction`
/// writes, in a temporary directory of its own.
fn raw_baseline(writes: usize, per_transaction: usize) -> Result<RawRun, Error> {
    let rows = raw::plain_rows(writes)?;
    let dir = tempfile::tempdir()?;
    raw::insert(dir.path(), &rows, per_transaction)
}

/// The writers against a server that answers `201` at once: requests per second.
async fn writers_ceiling(
    args: &Args,
    requests: usize,
    clock: Clock,
    ticks: u64,
) -> Result<String, Error> {
    let (addr, task) = serve(Arc::new(|_: &Method, _: &str, _body: Bytes| {
        answer(
            StatusCode::CREATED,
            "application/json",
            Bytes::from_static(b"{\"id\":\"x\"}"),
        )
    }))
    .await?;
    let plan = Arc::new(customer_plan(
        "Basic bG9hZDpiZW5jaA==",
        true,
        true,
        "ceiling",
    )?);
    let before = cpu_ticks("self")?;
    let deadline = Instant::now() + Duration::from_secs_f64(args.write_timeout_seconds);
    let run = run_writers(addr, args.clients, requests, plan, clock, deadline).await;
    let cpu = cpu_ticks("self")?.saturating_sub(before) as f64 / ticks as f64;
    task.abort();
    let (first, last) = run.span_us().ok_or("no answer")?;
    let secs = last.saturating_sub(first) as f64 / 1e6;
    Ok(format!(
        "| writers against a server answering 201 at once (same process) | {} requests, {} clients | **{} requests/s** | {} ms CPU per request (writers and that server together) |",
        thousands(run.ok() as u64),
        args.clients,
        thousands((run.ok() as f64 / secs) as u64),
        ms(cpu * 1000.0 / run.ok().max(1) as f64),
    ))
}

/// A blast of push envelopes at the receiver: pushes recorded per second.
async fn receiver_ceiling(
    args: &Args,
    requests: usize,
    clock: Clock,
    ticks: u64,
) -> Result<String, Error> {
    let receiver = Receiver::start(requests, clock).await?;
    let addr = receiver.base.trim_start_matches("http://").parse()?;
    let plan = Arc::new(Plan {
        method: Method::POST,
        path: "/push".into(),
        headers: vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        expect: StatusCode::OK,
        make: Box::new(|i, sent_us| {
            let tracking = tracking_id(i, sent_us);
            let body = json!({
                "syncId": format!("sync-{i}"), "operation": "create", "objectType": "customer",
                "object": {"id": format!("cust-{i}"), "name": format!("Load customer {i}"),
                           "email": "ap@load.example.com", "version": 1,
                           "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"},
                "trackingId": tracking,
            });
            let mut h = Vec::new();
            if let Ok(v) = HeaderValue::from_str(&tracking) {
                h.push((HeaderName::from_static("x-tracking-id"), v));
            }
            (h, Bytes::from(body.to_string()))
        }),
    });
    let before = cpu_ticks("self")?;
    let deadline = Instant::now() + Duration::from_secs_f64(args.write_timeout_seconds);
    let run = run_writers(addr, args.clients, requests, plan, clock, deadline).await;
    let cpu = cpu_ticks("self")?.saturating_sub(before) as f64 / ticks as f64;
    let recorded = receiver.with(|r| r.pushes.distinct);
    let (first, last) = run.span_us().ok_or("no answer")?;
    let secs = last.saturating_sub(first) as f64 / 1e6;
    Ok(format!(
        "| receiver under a blast of push envelopes (from the writers) | {} pushes recorded, {} clients | **{} pushes/s** | {} ms CPU per push (receiver and writers together) |",
        thousands(recorded as u64),
        args.clients,
        thousands((recorded as f64 / secs) as u64),
        ms(cpu * 1000.0 / recorded.max(1) as f64),
    ))
}

/// Svix's end-to-end figure on a comparable machine (messages per second), which #14 asks to
/// be stated beside ours.
const SVIX_PER_SEC: f64 = 370.0;

/// Where the server's CPU went, by thread, and the targets of #14 against the plain rate of the
/// same size in the same run.
fn print_analysis(outcomes: &[Outcome]) {
    println!("\n### Server CPU per write by thread (ms; measured span as above)\n");
    println!(
        "| case | writes | group commit: writes per transaction | threads (ms of CPU per write) |"
    );
    println!("|---|---:|---:|---|");
    for o in outcomes {
        let per = |secs: f64| ms(secs * 1000.0 / o.answered_ok.max(1) as f64);
        let list: Vec<String> = o
            .threads
            .iter()
            .filter(|(_, secs)| *secs * 1000.0 / o.answered_ok.max(1) as f64 >= 0.005)
            .map(|(name, secs)| format!("{name} {}", per(*secs)))
            .collect();
        println!(
            "| {} | {} | {} | {} |",
            o.case.label(),
            thousands(o.writes as u64),
            o.batch_mean.map_or("?".into(), |m| format!("{m:.1}")),
            list.join(", ")
        );
    }
    let plain_of = |writes: usize| {
        outcomes
            .iter()
            .find(|o| o.case == Case::Plain && o.writes == writes)
    };
    let raws: Vec<&Outcome> = outcomes.iter().filter(|o| o.raw.is_some()).collect();
    if !raws.is_empty() {
        println!(
            "\n### Plain writes against raw SQLite (same rows, same transaction size, same run)\n"
        );
        println!("| writes | writes per transaction | raw rusqlite writes/s (rows/s, MB/s) | plain writes accepted/s | plain ÷ raw |");
        println!("|---:|---:|---:|---:|---:|");
        for o in raws {
            let Some(r) = &o.raw else { continue };
            println!(
                "| {} | {} | {} ({} rows/s, {:.1} MB/s) | {} | **{:.2}** |",
                thousands(o.writes as u64),
                r.per_transaction,
                thousands(r.writes_per_sec() as u64),
                thousands((r.rows as f64 / r.secs.max(1e-9)) as u64),
                r.bytes as f64 / r.secs.max(1e-9) / 1e6,
                thousands(o.accept_rate() as u64),
                o.accept_rate() / r.writes_per_sec().max(1e-9),
            );
        }
    }
    println!("\n### Targets of #14 (ratios to the plain accept rate of the same size, same run)\n");
    println!("| writes | plain accepted/s | pushing: delivered pushes/s (÷ plain; target 0.8) | pushing: write → push p99 ms (target 50) | push+webhook: writes fully delivered/s (÷ plain; target 0.6) | ÷ Svix 370/s (pushing; push+webhook) |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let mut sizes: Vec<usize> = outcomes.iter().map(|o| o.writes).collect();
    sizes.dedup();
    for writes in sizes {
        let Some(plain) = plain_of(writes) else {
            continue;
        };
        let base = plain.accept_rate().max(1e-9);
        let of = |case: Case| {
            outcomes
                .iter()
                .find(|o| o.case == case && o.writes == writes)
        };
        let push = of(Case::Push).and_then(|o| o.pushes.clone());
        let full = of(Case::PushWebhook).and_then(fully_delivered_rate);
        let show = |rate: Option<f64>| {
            rate.map_or("-".into(), |r| {
                format!("{} ({:.2})", thousands(r as u64), r / base)
            })
        };
        let svix =
            |rate: Option<f64>| rate.map_or("-".into(), |r| format!("{:.1}x", r / SVIX_PER_SEC));
        println!(
            "| {} | {} | {} | {} | {} | {}; {} |",
            thousands(writes as u64),
            thousands(base as u64),
            show(
                push.as_ref()
                    .filter(|p| p.delivered >= p.expected)
                    .map(Delivery::rate)
            ),
            push.as_ref()
                .and_then(|p| p.latency)
                .map_or("-".into(), |q| ms(q.p99)),
            show(full),
            svix(
                push.as_ref()
                    .filter(|p| p.delivered >= p.expected)
                    .map(Delivery::rate)
            ),
            svix(full),
        );
    }
}

/// Writes per second until everything they caused had arrived; `None` when not all did.
fn fully_delivered_rate(o: &Outcome) -> Option<f64> {
    let complete = o.pushes.as_ref().is_none_or(|p| p.delivered >= p.expected)
        && o.hooks.as_ref().is_none_or(|h| h.delivered >= h.expected);
    complete.then(|| o.answered_ok as f64 / o.measured_secs.max(1e-9))
}

fn print_tables(outcomes: &[Outcome], clients: usize) {
    println!("\n### Accepting writes ({clients} keep-alive clients)\n");
    println!("| case | writes | accepted writes/s | answer p50 / p90 / p99 ms | server CPU per write | server CPU busy (cores) | server peak RSS | loadbench CPU per write | load avg before → after |");
    println!("|---|---:|---:|---|---:|---:|---:|---:|---|");
    for o in outcomes {
        println!(
            "| {} | {} | **{}** | {} | {} ms | {:.2} | {:.0} MiB | {} ms | {} → {} |",
            o.case.label(),
            thousands(o.writes as u64),
            thousands(o.accept_rate() as u64),
            Quantiles::show(o.answer_latency),
            ms(o.server_cpu_secs * 1000.0 / o.answered_ok.max(1) as f64),
            o.server_cpu_secs / o.measured_secs.max(1e-9),
            o.server_rss_mib,
            ms(o.bench_cpu_secs * 1000.0 / o.answered_ok.max(1) as f64),
            o.load_before,
            o.load_after,
        );
    }
    let pushing: Vec<&Outcome> = outcomes.iter().filter(|o| o.pushes.is_some()).collect();
    if pushing.is_empty() {
        return;
    }
    println!("\n### Delivering (until every push and delivery arrived)\n");
    println!("| case | writes | pushes arrived when the last write was answered | all pushes arrived after | delivered pushes/s | write sent → push arrived p50 / p90 / p99 ms | webhook deliveries/s (2 per write) | write sent → api_push_complete arrived p50 / p90 / p99 ms | writes fully delivered/s |");
    println!("|---|---:|---:|---:|---:|---|---:|---|---:|");
    for o in pushing {
        let Some(p) = &o.pushes else { continue };
        let all = |d: &Delivery| {
            if d.delivered >= d.expected {
                format!("{:.1} s", d.secs)
            } else {
                format!(
                    "not all: {} of {} in {:.0} s",
                    d.delivered, d.expected, d.secs
                )
            }
        };
        let (hook_rate, hook_latency) = match &o.hooks {
            Some(h) => (
                format!("{} ({})", thousands(h.rate() as u64), all(h)),
                Quantiles::show(h.latency),
            ),
            None => ("-".into(), "-".into()),
        };
        // Everything the writes caused had arrived: writes per second end to end.
        let end_to_end = fully_delivered_rate(o).map_or("-".into(), |r| thousands(r as u64));
        println!(
            "| {} | {} | {} | {} | **{}** | {} | {} | {} | {} |",
            o.case.label(),
            thousands(o.writes as u64),
            thousands(p.at_last_answer as u64),
            all(p),
            thousands(p.rate() as u64),
            Quantiles::show(p.latency),
            hook_rate,
            hook_latency,
            end_to_end,
        );
    }
}

async fn run(args: Args) -> Result<bool, Error> {
    let bin = match &args.server {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or("no directory of this program")?
            .join("writesync"),
    };
    if !bin.is_file() {
        return Err(format!(
            "no writesync binary at {}: build it with `cargo build --release -p writesync-server` \
             or pass --server PATH",
            bin.display()
        )
        .into());
    }
    let clock = Clock::start();
    let ticks = clock_ticks_per_second();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "loadbench: {} against {}, {cores} cores, {ticks} clock ticks/s, load average {} at start",
        args.cases
            .iter()
            .map(|c| c.label())
            .collect::<Vec<_>>()
            .join("; "),
        bin.display(),
        loadavg()
    );
    let mut outcomes = Vec::new();
    let mut clean = true;
    for &writes in &args.writes {
        for &case in &args.cases {
            eprintln!("running: {}, {writes} writes ...", case.label());
            let mut o = run_case(&args, &bin, case, writes, clock, ticks).await?;
            if case == Case::Plain {
                // In transactions as full as the group commit's (rounded to whole writes).
                let per = o.batch_mean.map_or(1, |m| m.round().max(1.0) as usize);
                eprintln!(
                    "running: raw SQLite baseline, {writes} writes, {per} per transaction ..."
                );
                let raw = raw_baseline(writes, per)?;
                eprintln!(
                    "  {} writes/s ({} rows, {:.1} s)",
                    thousands(raw.writes_per_sec() as u64),
                    thousands(raw.rows as u64),
                    raw.secs
                );
                o.raw = Some(raw);
            }
            let incomplete = o.pushes.as_ref().is_some_and(|d| d.delivered < d.expected)
                || o.hooks.as_ref().is_some_and(|d| d.delivered < d.expected);
            if o.failed > 0 || incomplete || o.log_errors > 0 {
                clean = false;
                eprintln!(
                    "  NOT CLEAN: {} writes failed, first problems {:?}; incomplete deliveries: \
                     {incomplete}; {} error lines in the server log",
                    o.failed, o.problems, o.log_errors
                );
            }
            let repeats = o.pushes.as_ref().map_or(0, |d| d.repeats)
                + o.hooks.as_ref().map_or(0, |d| d.repeats);
            eprintln!(
                "  {} writes/s accepted in {:.1} s; {repeats} repeated arrivals; {} requests \
                 the receiver could not match to a write; {} warn lines",
                thousands(o.accept_rate() as u64),
                o.write_secs,
                o.unmatched,
                o.log_warns
            );
            outcomes.push(o);
        }
    }
    print_tables(&outcomes, args.clients);
    print_analysis(&outcomes);
    if !args.no_ceilings {
        let n = args.writes.iter().copied().max().unwrap_or(20_000);
        println!("\n### Ceilings of the load side\n");
        println!("| what | size | rate | CPU |");
        println!("|---|---|---:|---|");
        println!("{}", writers_ceiling(&args, n, clock, ticks).await?);
        println!("{}", receiver_ceiling(&args, n, clock, ticks).await?);
    }
    println!("\nload average at the end: {}", loadavg());
    Ok(clean)
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadbench: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("loadbench: some runs were not clean (see above)");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("loadbench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
