//! writesync-host: the one host driver of writesync, used by every Rust host (`writesync
//! serve`, the C API's `writesync_run_due`, applications over
//! [`NativeEngine`](writesync_sqlite::NativeEngine)).
//!
//! # Contract
//!
//! The engine is sans-I/O: it hands out due work ([`WorkItem`]s: pushes, webhook deliveries,
//! access-token requests) and takes back each [`Outcome`]. This crate is the host side,
//! written once:
//!
//! - [`transport`]: the outbound HTTP client: the target-address policy checked on the
//!   address actually connected to, connect and overall timeouts, answers read up to 64 KiB,
//!   no redirects, no proxy. The defaults (connect 5 s, overall 10 s) are those of every host.
//! - [`token`]: the token broker client: a token request is POSTed to the broker URL.
//! - [`Performer`]: sends one item: token requests to the broker, everything else through the
//!   transport.
//! - [`driver`]: the work loop: claim, send (several at once, at most
//!   [`driver::DEFAULT_PER_ORIGIN`] per origin), report, sleep until the next deadline, prune;
//!   stale reports are counted and ignored the same way everywhere.
//! - [`native`]: [`NativeEngine`](writesync_sqlite::NativeEngine) as a work source, and
//!   [`native::run_due`].
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use writesync_host::driver::{Driver, DriverConfig, Perform};
//! use writesync_host::{Performer, TokenBroker};
//! use writesync_host::transport::TransportConfig;
//!
//! // One performer (transport + broker) for the life of the host; it pools connections.
//! let performer: Arc<dyn Perform> = Arc::new(Performer::new(
//!     &TransportConfig::default(),
//!     TokenBroker::new(Some("https://broker.example.com/token".into())),
//! ));
//! let driver = Driver::new(DriverConfig::default());
//! // Then, when `next_deadline` is reached or after a pushing write:
//! //   driver.drain(&mut native_engine, &|| now_ms(), &performer)?;
//! // or, in a long-running host, on a thread of its own:
//! //   driver.serve(&mut source, &now_ms, &performer, &signal);
//! # let _ = (performer, driver);
//! ```
#![forbid(unsafe_code)]

pub mod driver;
pub mod native;
pub mod token;
pub mod transport;

pub use driver::{Driver, DriverConfig, RunStats};
pub use token::TokenBroker;
pub use transport::{Transport, TransportConfig};

use writesync_core::{Outcome, WorkItem, WorkKind};

/// Sends work items: token requests to the [`TokenBroker`], pushes and webhook deliveries
/// through the [`Transport`]. Cloning shares the connection pool.
#[derive(Debug, Clone)]
pub struct Performer {
    transport: Transport,
    broker: TokenBroker,
}

impl Performer {
    /// A performer with a transport of `config` and `broker`.
    pub fn new(config: &TransportConfig, broker: TokenBroker) -> Performer {
        Performer::with_transport(Transport::new(config), broker)
    }

    /// A performer over an existing transport.
    pub fn with_transport(transport: Transport, broker: TokenBroker) -> Performer {
        Performer { transport, broker }
    }

    /// The transport.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The token broker.
    pub fn broker(&self) -> &TokenBroker {
        &self.broker
    }

    /// The URL an item goes to: the broker's for a token request (empty without a broker),
    /// the item's own otherwise.
    pub fn url_of<'a>(&'a self, item: &'a WorkItem) -> &'a str {
        match item.kind {
            WorkKind::Token => self.broker.url().unwrap_or(""),
            WorkKind::Push | WorkKind::Webhook => &item.request.url,
        }
    }
}

impl driver::Perform for Performer {
    fn perform(&self, item: &WorkItem) -> Outcome {
        match item.kind {
            WorkKind::Token => self.broker.fetch(&self.transport, item),
            WorkKind::Push | WorkKind::Webhook => self.transport.send(&item.request),
        }
    }

    fn origin(&self, item: &WorkItem) -> String {
        driver::origin_of(self.url_of(item))
    }
}
