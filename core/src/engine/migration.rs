//! What a layout migration step answers and records (`meta/migration`), shared by the
//! migrations of every older layout (`migrate.rs` for layout 2, `migrate_v1.rs` for layout 1)
//! so that neither imports the other's vocabulary.

use crate::records::layout::LAYOUT_VERSION;
use crate::store::Batch;

/// One step of [`Engine::migrate`](crate::Engine::migrate).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use = "the batch must be committed before the next step"]
pub struct MigrationStep {
    /// The rewrites of this step and its progress marker: commit them atomically.
    pub batch: Batch,
    /// Whether the store holds [`LAYOUT_VERSION`] once `batch` is committed.
    pub done: bool,
    /// The layout the store held when the migration started (`LAYOUT_VERSION` when there was
    /// nothing to do).
    pub from: u32,
}

/// The progress of a migration, under `meta/migration`: the layout it started from, the
/// phase under way and the offset reached in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Progress {
    pub(super) from: u32,
    pub(super) phase: String,
    pub(super) offset: usize,
}

impl Progress {
    pub(super) fn parse(text: &str) -> Option<Progress> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        Some(Progress {
            from: u32::try_from(v.get("from")?.as_u64()?).ok()?,
            phase: v.get("phase")?.as_str()?.to_string(),
            offset: usize::try_from(
                v.get("offset")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0),
            )
            .ok()?,
        })
    }
    pub(super) fn text(&self) -> String {
        serde_json::json!({"from": self.from, "phase": self.phase, "offset": self.offset})
            .to_string()
    }
}

/// The layout marker of the current layout (`meta/layout`).
pub(super) fn layout_row() -> String {
    format!("{{\"version\":{LAYOUT_VERSION}}}")
}
