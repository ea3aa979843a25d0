//! writesync-server: the native host of the writesync engine.
//!
//! `writesync serve` answers the HTTP contract (`shared/spec/http-api.md`) from one
//! [`writesync_core::Engine`] over an SQLite file ([`writesync_sqlite::SqliteStore`]) and runs
//! the push and webhook workers in the same process. `writesync demo` starts such a server
//! on a temporary database next to fake source applications and a webhook receiver, and walks
//! through the main use cases.
//!
//! The host only translates: HTTP in and out ([`serve`]), outbound HTTP with the address
//! policy ([`transport`]), the loop that claims due work and reports outcomes ([`worker`]),
//! JSON-line logs ([`log`]). Every business rule lives in the engine.
//!
//! | module | responsibility |
//! |---|---|
//! | [`serve`] | `serve`: startup, admin token, request translation, graceful shutdown |
//! | [`httpd`] | the bounded HTTP/1.1 server (hyper) that hands complete requests to a handler |
//! | [`worker`] | claims due pushes and deliveries, sends them on a small pool, reports |
//! | [`transport`] | ureq agent: timeouts, bounded answers, no redirects, refused addresses |
//! | [`state`] | the engine and store behind one mutex, the clock, the wake-up signal |
//! | [`log`] | structured logs on stderr (JSON lines) |
//! | [`fake`] | fake source applications and webhook receivers (demo and tests) |
//! | [`demo`] | `writesync demo` |
#![forbid(unsafe_code)]

pub mod demo;
pub mod fake;
pub mod httpd;
pub mod log;
pub mod serve;
pub mod state;
pub mod transport;
pub mod worker;
