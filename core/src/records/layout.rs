//! Which data layout a store holds (`meta/layout`), as far as the engine needs to know before
//! it reads anything else. The migration itself is the engine's (`engine/migrate.rs`).

use super::keys;
use crate::store::KvRead;
use crate::CoreError;

/// The data layout this engine reads and writes.
pub const LAYOUT_VERSION: u32 = 5;

/// Prefixes of the rows only layout 1 writes (`sync/`, `task/`, `chain/`, `remote/`): a store
/// holding any of them without `meta/layout` holds layout 1. Known to every build, also one
/// without the feature `layout1` that cannot read those rows.
pub const LAYOUT1_PREFIXES: [&str; 4] = ["sync/", "task/", "chain/", "remote/"];

/// Why a build without the feature `layout1` (the wasm package) refuses a layout-1 store.
pub const LAYOUT1_UNSUPPORTED: &str = "the store holds data layout 1, and this build of \
     writesync cannot migrate it (it migrates layouts 2 to 4 and reads layout 5 only): open \
     the store once with the native library (writesync-core with its default feature layout1, \
     or writesync-sqlite), the server or the C library, which migrate it to layout 5, then \
     open it here";

/// What a store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The current layout, recorded.
    Current,
    /// Nothing that differs between layouts, and no record of a layout.
    Unmarked,
    /// Layout 1, or a migration from it under way.
    One,
    /// Layout 2 (layout 3 without the reverse reference index `ref/` and the per-account
    /// sync index `sx/`), layout 3 (layout 4 with the longer keys of `engine/migrate.rs`) or
    /// layout 4 (layout 5 with the push chains under `ch/`, apart from the syncs), or a
    /// migration from one under way.
    Older(u32),
}

/// The layout `store` holds, or why the engine cannot read it.
pub fn layout_of(store: &dyn KvRead) -> Result<Layout, CoreError> {
    if let Some(text) = store.get(keys::LAYOUT)? {
        let version = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("version").and_then(serde_json::Value::as_u64));
        return match version {
            Some(v) if v == u64::from(LAYOUT_VERSION) => Ok(Layout::Current),
            Some(1) => Ok(Layout::One),
            Some(2) => Ok(Layout::Older(2)),
            Some(3) => Ok(Layout::Older(3)),
            Some(4) => Ok(Layout::Older(4)),
            Some(v) => Err(CoreError::Layout(format!(
                "the store holds data layout {v}, newer than layout {LAYOUT_VERSION} that this \
                 engine reads; use a newer writesync"
            ))),
            None => Err(CoreError::Layout(format!(
                "{} holds {text:?}, not a layout this engine knows (it reads layout \
                 {LAYOUT_VERSION})",
                keys::LAYOUT
            ))),
        };
    }
    if store.get(keys::MIGRATION)?.is_some() {
        return Ok(Layout::One);
    }
    for prefix in LAYOUT1_PREFIXES {
        if store.first_key(prefix)?.is_some() {
            return Ok(Layout::One);
        }
    }
    Ok(Layout::Unmarked)
}
