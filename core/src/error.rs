//! The one error type of the core.

/// Errors the core reports to its host.
///
/// The caller's mistakes (`InvalidInput`, `WrongState`, `UnknownWork`) are kept apart from
/// bad data from outside (`CorruptRow`) and from the host's storage failing (`Storage`).
/// Validation problems of API requests are not errors of this type: they are answers
/// (`422` problem documents) produced by [`crate::Engine::handle`].
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
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
    /// The host's storage failed to read.
    #[error("storage error: {0}")]
    Storage(String),
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
    /// A stable, machine-readable code for this error, used by the bindings.
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::InvalidInput(_) => "invalid_input",
            CoreError::WrongState(_) => "wrong_state",
            CoreError::UnknownWork(_) => "unknown_work",
            CoreError::Storage(_) => "storage",
            CoreError::CorruptRow { .. } => "corrupt_row",
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
            CoreError::Storage("x".into()),
            CoreError::CorruptRow {
                key: "k".into(),
                reason: "r".into(),
            },
        ];
        let codes: std::collections::BTreeSet<_> = all.iter().map(CoreError::code).collect();
        assert_eq!(codes.len(), all.len());
        assert_eq!(all[4].to_string(), "corrupt row k: r");
    }
}
