//! Outbound HTTP for pushes, webhook deliveries and token requests: the host driver's one
//! transport ([`writesync_host::transport`]), re-exported here for the server's callers. The
//! target-address policy is checked in the resolver and again on the address actually
//! connected to; connect 5 s and overall 10 s by default (`--outbound-timeout-seconds`); answers
//! read up to 64 KiB; no redirects, no proxy.

pub use writesync_host::transport::{
    RefusedAddress, Transport, TransportConfig, DEFAULT_CONNECT_TIMEOUT, DEFAULT_OVERALL_TIMEOUT,
    MAX_ANSWER_BYTES,
};
