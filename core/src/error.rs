//! The one error type of the core.

/// Errors the core reports to its host.
///
/// The caller's mistakes (`InvalidInput`, `WrongState`, `UnknownWork`) are kept apart from
/// bad data from outside (`CorruptRow`) and from the host's storage failing (`Storage`, which
/// keeps the host's own error as its [`source`](std::error::Error::source)).
/// Validation problems of API requests are not errors of this type: they are answers
/// (`422` problem documents) produced by [`crate::Engine::handle`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// The host passed an argument the core cannot use (a bad configuration, a malformed
    /// request envelope, an outcome of an unknown shape).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A call that is not allowed in the current state of the engine.
    #[error("wrong state: {0}")]
    WrongState(String),
    /// A work item id that the engine does not know or no longer waits for (unknown, not in
    /// progress, or an attempt whose lease ran out and was handed out again).
    #[error("unknown work item: {0}")]
    UnknownWork(String),
    /// The host's storage failed (to read, or to commit a batch). Build it with
    /// [`CoreError::storage`] or [`CoreError::storage_caused_by`].
    #[error("storage error: {message}")]
    Storage {
        /// What failed, as the host describes it; the error's text (and the `detail` of the
        /// `503` answer the engine gives) is `storage error: {message}`.
        message: String,
        /// The host's underlying error (e.g. SQLite's), when it has one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
    /// The store holds a data layout the engine cannot work on as it is: an older one that
    /// [`Engine::migrate`](crate::Engine::migrate) must bring up to date first, or a newer or
    /// unknown one, which this engine refuses.
    #[error("storage layout: {0}")]
    Layout(String),
    /// A stored row could not be decoded: the store holds data the core did not write.
    #[error("corrupt row {key}: {reason}")]
    CorruptRow {
        /// The key of the row.
        key: String,
        /// What was wrong with it.
        reason: String,
    },
}

impl CoreError {
    /// A storage failure known only by its description.
    pub fn storage(message: impl Into<String>) -> CoreError {
        CoreError::Storage {
            message: message.into(),
            source: None,
        }
    }

    /// A storage failure caused by the host's error `source`, described by `message`.
    pub fn storage_caused_by(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> CoreError {
        CoreError::Storage {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A stable, machine-readable code for this error, used by the bindings.
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::InvalidInput(_) => "invalid_input",
            CoreError::WrongState(_) => "wrong_state",
            CoreError::UnknownWork(_) => "unknown_work",
            CoreError::Storage { .. } => "storage",
            CoreError::CorruptRow { .. } => "corrupt_row",
            CoreError::Layout(_) => "layout",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_messages_say_what() {
        let all = [
            CoreError::InvalidInput("x".into()),
            CoreError::WrongState("x".into()),
            CoreError::UnknownWork("x".into()),
            CoreError::storage("x"),
            CoreError::CorruptRow {
                key: "k".into(),
                reason: "r".into(),
            },
            CoreError::Layout("x".into()),
        ];
        let codes: std::collections::BTreeSet<_> = all.iter().map(CoreError::code).collect();
        assert_eq!(codes.len(), all.len());
        assert_eq!(all[4].to_string(), "corrupt row k: r");
    }

    #[test]
    fn a_storage_error_reads_as_before_and_keeps_its_source() {
        use std::error::Error as _;
        let plain = CoreError::storage("sqlite: disk I/O error");
        assert_eq!(plain.to_string(), "storage error: sqlite: disk I/O error");
        assert!(plain.source().is_none());
        let io = std::io::Error::other("disk on fire");
        let caused = CoreError::storage_caused_by("sqlite: disk on fire", io);
        assert_eq!(caused.to_string(), "storage error: sqlite: disk on fire");
        assert_eq!(caused.code(), "storage");
        let source = caused.source().expect("the cause is kept");
        assert_eq!(source.to_string(), "disk on fire");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
    }
}
