//! writesync-core: the sans-I/O write-and-sync engine (crate docs completed below).
#![forbid(unsafe_code)]

pub mod cdm;
mod engine;
mod error;
pub mod http;
pub mod net;
pub mod records;
pub mod routing;
pub mod store;
pub mod util;
pub mod validate;

pub use engine::{
    ConfigJson, DueWork, Engine, EngineConfig, OutboundRequest, Outcome, Step, WorkItem, WorkKind,
};
pub use error::CoreError;
pub use http::{ApiRequest, ApiResponse};
pub use store::{Batch, KvRead, MemoryStore, Op, Storage};
