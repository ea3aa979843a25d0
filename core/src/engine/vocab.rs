//! The vocabulary every handler shares: the unit of work a command is planned in ([`Ctx`]),
//! the result type of handlers ([`H`]) and the helpers that refuse a command.

use crate::cdm::{FieldCode, FieldError};
use crate::http::{validation_detail, ProblemKind};

use super::command::{CommandError, Problem};
use super::tx::Tx;

/// The result of a handler: its value, or why the command stops.
pub(crate) type H<T> = Result<T, CommandError>;

/// Refuse with a problem of `kind`.
pub(crate) fn fail<T>(kind: ProblemKind, detail: impl Into<String>) -> H<T> {
    Err(Problem::new(kind, detail).into())
}

/// Refuse with `422 validation-failed` listing every invalid field.
pub(crate) fn invalid<T>(errors: Vec<FieldError>) -> H<T> {
    let mut p = Problem::new(ProblemKind::ValidationFailed, validation_detail(&errors));
    p.errors = errors;
    Err(p.into())
}

/// One field error.
pub(crate) fn field_error(
    pointer: &str,
    code: FieldCode,
    message: impl Into<String>,
) -> FieldError {
    FieldError {
        pointer: pointer.to_string(),
        code,
        message: message.into(),
    }
}

/// What a command needs from the engine while it is planned.
pub(crate) struct Ctx<'a> {
    /// Reads see the writes made so far; the writes become the command's batch.
    pub tx: Tx<'a>,
    /// The host's time, Unix milliseconds.
    pub now: i64,
    /// The same as RFC 3339.
    pub now_str: String,
    /// The id of this request (`X-Request-ID`, stored with syncs).
    pub request_id: String,
    /// The idempotency slot the command holds until it is finished.
    pub in_flight: Option<String>,
}
