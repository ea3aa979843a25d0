//! Result codes, the per-thread error message, and the panic guard around every export.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use writesync_core::CoreError;

/// The result of every `writesync_*` function.
///
/// `WRITESYNC_OK` (0) is success; any other value is a failure whose text
/// `writesync_last_error_message` gives on the same thread.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum writesync_result {
    /// Success.
    WRITESYNC_OK = 0,
    /// A required pointer was NULL, or an argument had a value the call cannot use (an
    /// unknown work item id is WRITESYNC_ENGINE_ERROR instead).
    WRITESYNC_INVALID_ARGUMENT = 1,
    /// A string argument was not valid UTF-8.
    WRITESYNC_INVALID_UTF8 = 2,
    /// A JSON argument was not JSON, or not of the shape the call takes.
    WRITESYNC_INVALID_JSON = 3,
    /// The SQLite file could not be opened, read or written, or holds rows the engine did not
    /// write. The message starts with `storage: ` or `corrupt_row: `.
    WRITESYNC_STORAGE_ERROR = 4,
    /// The engine refused the call: a bad configuration value (`invalid_input: `), an unknown
    /// or stale work item id (`unknown_work: `), a call in the wrong state (`wrong_state: `).
    /// The message starts with that code.
    WRITESYNC_ENGINE_ERROR = 5,
    /// A bug: the library panicked. The panic was caught; when it happened while the engine
    /// was at work, every later call on that engine answers WRITESYNC_PANIC: close it (and
    /// open the file again).
    WRITESYNC_PANIC = 6,
}

pub(crate) use writesync_result::*;

/// A failure on its way to the caller: its code and its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FfiError {
    pub(crate) code: writesync_result,
    pub(crate) message: String,
}

impl FfiError {
    pub(crate) fn new(code: writesync_result, message: impl Into<String>) -> FfiError {
        FfiError {
            code,
            message: message.into(),
        }
    }
    pub(crate) fn invalid_argument(message: impl Into<String>) -> FfiError {
        FfiError::new(WRITESYNC_INVALID_ARGUMENT, message)
    }
    pub(crate) fn invalid_json(what: &str, e: impl std::fmt::Display) -> FfiError {
        FfiError::new(WRITESYNC_INVALID_JSON, format!("{what}: {e}"))
    }
}

/// The message (the code is the caller's to read).
impl std::fmt::Display for FfiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<CoreError> for FfiError {
    /// Storage failures and corrupt rows are storage errors; every other engine error is an
    /// engine error. The message starts with the engine's stable code (`unknown_work: ...`).
    fn from(e: CoreError) -> FfiError {
        let code = match e {
            CoreError::Storage { .. } | CoreError::CorruptRow { .. } => WRITESYNC_STORAGE_ERROR,
            _ => WRITESYNC_ENGINE_ERROR,
        };
        FfiError::new(code, format!("{}: {e}", e.code()))
    }
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Replace this thread's message.
pub(crate) fn set_last_error(message: String) {
    // `try_with`: during thread teardown the slot may be gone; the code still tells the caller.
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut s) = slot.try_borrow_mut() {
            *s = message;
        }
    });
}

/// A copy of this thread's message.
pub(crate) fn last_error() -> String {
    LAST_ERROR
        .try_with(|slot| slot.try_borrow().map(|s| s.clone()).unwrap_or_default())
        .unwrap_or_default()
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// The body of every export: catch panics, turn the outcome into a code, and record the
/// message of a failure for this thread (a success leaves the message as it was, like
/// `errno`).
pub(crate) fn guard(f: impl FnOnce() -> Result<(), FfiError>) -> writesync_result {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => WRITESYNC_OK,
        Ok(Err(e)) => {
            set_last_error(e.message);
            e.code
        }
        Err(payload) => {
            set_last_error(format!(
                "panic (a bug in writesync): {}",
                panic_text(payload.as_ref())
            ));
            WRITESYNC_PANIC
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_maps_results_and_panics() {
        assert_eq!(guard(|| Ok(())), WRITESYNC_OK);
        assert_eq!(
            guard(|| Err(FfiError::invalid_argument("x is NULL"))),
            WRITESYNC_INVALID_ARGUMENT
        );
        assert_eq!(last_error(), "x is NULL");
        // Success leaves the message alone.
        assert_eq!(guard(|| Ok(())), WRITESYNC_OK);
        assert_eq!(last_error(), "x is NULL");
        assert_eq!(guard(|| panic!("boom")), WRITESYNC_PANIC);
        assert!(last_error().contains("boom"));
    }

    #[test]
    fn core_errors_carry_their_code() {
        let e = FfiError::from(CoreError::UnknownWork("t.x.1".into()));
        assert_eq!(e.code, WRITESYNC_ENGINE_ERROR);
        assert!(e.message.starts_with("unknown_work: "), "{}", e.message);
        let e = FfiError::from(CoreError::storage("disk"));
        assert_eq!(e.code, WRITESYNC_STORAGE_ERROR);
        assert!(e.message.starts_with("storage: "), "{}", e.message);
    }
}
