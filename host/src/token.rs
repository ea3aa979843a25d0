//! The token broker client: the access-token requests of provider connections
//! ([`WorkKind::Token`](writesync_core::WorkKind::Token)) are answered by the operator's
//! broker (`--token-url`, `tokenUrl` in the C API's configuration).
//!
//! The item's JSON body `{connectionId, accountId, app, reason}` is POSTed to the broker URL
//! through the same [`Transport`] as every push (the same address policy, timeouts and
//! answer bound), and the broker's answer (`200 {"accessToken", "expiresAt"}`, or anything
//! else, which the engine reads as a refusal) is the item's outcome as is. The broker holds
//! the refresh tokens; writesync never sees one. Without a broker a token request fails at
//! once ([`NO_BROKER`], permanent) and the pushes waiting for it fail with that reason.

use std::collections::BTreeMap;

use writesync_core::{OutboundRequest, Outcome, WorkItem};

use crate::transport::Transport;

/// The error of a token request when no broker is configured.
pub const NO_BROKER: &str =
    "no token source: configure a token broker (writesync serve --token-url, tokenUrl in the C API)";

/// Where token requests go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenBroker {
    url: Option<String>,
}

impl TokenBroker {
    /// A broker at `url` (an `http` or `https` URL), or none.
    pub fn new(url: Option<String>) -> TokenBroker {
        TokenBroker { url }
    }

    /// The broker's URL, if one is configured.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// The request that asks the broker for the token of `item`, or `None` without a broker.
    pub fn request(&self, item: &WorkItem) -> Option<OutboundRequest> {
        let url = self.url.as_ref()?;
        let mut headers = BTreeMap::new();
        headers.insert("Content-Type".to_string(), "application/json".to_string());
        headers.insert("Accept".to_string(), "application/json".to_string());
        Some(OutboundRequest {
            method: "POST".into(),
            url: url.clone(),
            headers,
            body: item.request.body.clone(),
        })
    }

    /// Ask the broker for the access token of a token request.
    pub fn fetch(&self, transport: &Transport, item: &WorkItem) -> Outcome {
        match self.request(item) {
            Some(req) => transport.send(&req),
            None => Outcome::Error {
                error: NO_BROKER.into(),
                permanent: true,
            },
        }
    }
}
