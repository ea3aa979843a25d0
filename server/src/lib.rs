//! writesync-server: the native host of the writesync engine.
//!
//! `writesync serve` answers the HTTP contract (`shared/spec/http-api.md`) from one
//! [`writesync_core::Engine`] over an SQLite file ([`writesync_sqlite::SqliteStore`]) and runs
//! the push and webhook workers in the same process.
//!
//! The host only translates: HTTP in and out ([`serve`]), the due work performed by the host
//! driver of every Rust host (`writesync-host`: its loop over the group commit in [`worker`],
//! its transport re-exported in [`transport`]), JSON-line logs ([`log`]). Every business rule
//! lives in the engine.
//!
//! The demo and the fake peers the end-to-end tests run against (fake source applications,
//! providers, token broker, webhook receivers) are in the `writesync-demo` crate, so that the
//! deployed binary carries none of them.
//!
//! | module | responsibility |
//! |---|---|
//! | [`serve`] | `serve`: startup, admin token, request translation, graceful shutdown |
//! | [`commit`] | group commit of write requests; reads on connections of their own |
//! | [`httpd`] | the bounded HTTP/1.1 server (hyper) that hands complete requests to a handler |
//! | [`worker`] | the host driver's loop over the group commit: claims, sends (at most N per origin), reports |
//! | [`transport`] | the host driver's transport: timeouts, bounded answers, no redirects, refused addresses |
//! | [`state`] | the writing engine and store behind one mutex, the clock, the wake-up signal |
//! | [`log`] | structured logs on stderr (JSON lines) |
#![forbid(unsafe_code)]

pub mod commit;
pub mod httpd;
pub mod log;
pub mod serve;
pub mod state;
pub mod transport;
pub mod worker;
