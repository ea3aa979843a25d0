//! writesync-demo: the demo of writesync and the fake peers it runs against.
//!
//! None of this is part of the `writesync` binary that is deployed: the server crate
//! (`writesync-server`) holds only the product, and uses this crate as a dev-dependency for its
//! end-to-end tests.
//!
//! | module | responsibility |
//! |---|---|
//! | [`fake`] | fake source applications and webhook receivers on 127.0.0.1 that record what they got and answer from a script |
//! | [`fake::providers`] | fake QuickBooks, Xero, HubSpot and Shopify APIs that check requests as the providers document them, and a fake token broker |
//! | [`demo`] | the walk-through run by the `writesync-demo` binary: an in-process server on a temporary database, the fakes, the main use cases and their checks |
#![forbid(unsafe_code)]

pub mod demo;
pub mod fake;
