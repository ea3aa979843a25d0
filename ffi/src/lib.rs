//! writesync-ffi: the C ABI of writesync, for desktop apps in C, C++, C#, Swift, Python and
//! anything else that can call C.
//!
//! An opaque `writesync_engine` owns one engine and one SQLite file. Everything crosses the
//! boundary as UTF-8 JSON text: the request envelope `{method, path, headers, body}` goes in,
//! the answer `{status, headers, body}` comes out, exactly as in the WASM build; due work is the
//! array of `{id, kind, request}` items, and outcomes come back as `{id, status, headers, body}`
//! or `{id, error}`.
//!
//! Every function returns a [`writesync_result`] (`WRITESYNC_OK` = 0), catches panics, and
//! leaves a message for the calling thread that [`writesync_last_error_message`] copies out.
//! Strings the library returns are freed with [`writesync_string_free`]. The header
//! `include/writesync.h` is generated from this file by cbindgen (`cbindgen.toml`); the rules
//! written on each function here are the ones C callers read.
//!
//! The functions only translate: each decodes its arguments, calls one method of
//! [`writesync_core::Engine`] over a [`writesync_sqlite::SqliteStore`], and encodes the result.
//! `writesync_run_due` runs the host driver of every Rust host ([`writesync_host`]: its work
//! loop, transport and token broker client) over the engine (`run_due.rs`).
//!
//! The calling contract for a host that does its own networking:
//!
//! ```c
//! writesync_engine *e = NULL;
//! if (writesync_open("app.db", "{\"adminToken\":\"secret\"}", &e) != WRITESYNC_OK) { ... }
//! char *answer = NULL;
//! writesync_handle(e, request_json, now_ms(), &answer);   /* answer every request */
//! writesync_string_free(answer);
//! char *work = NULL;
//! writesync_due(e, now_ms(), &work);                      /* [{id, kind, request}, ...] */
//! /* perform each request, then for each item: */
//! writesync_report(e, "{\"id\":\"t.x.1\",\"status\":201,\"headers\":{},\"body\":\"\"}", now_ms());
//! writesync_string_free(work);
//! int64_t deadline;
//! writesync_next_deadline(e, &deadline);                  /* sleep until then, repeat */
//! writesync_close(e);
//! ```

#![warn(missing_docs)]

// Every export catches panics so that none unwinds into C; with panic=abort there would be
// nothing to catch and a bug would abort the host application instead of returning
// WRITESYNC_PANIC.
#[cfg(panic = "abort")]
compile_error!("writesync-ffi must be built with panic=unwind (its C functions catch panics)");

mod config;
mod error;
mod run_due;

use std::ffi::{c_char, CStr, CString};
use std::sync::{Arc, Mutex, MutexGuard};

use writesync_core::{ApiRequest, Engine, Outcome};
use writesync_sqlite::SqliteStore;

pub use error::writesync_result;
use error::*;

/// What `writesync_next_deadline` stores when nothing is owed: the largest `int64_t`, a time
/// that never comes.
pub const WRITESYNC_NO_DEADLINE: i64 = i64::MAX;

/// How many items `writesync_due` claims at most.
pub const WRITESYNC_DUE_DEFAULT_LIMIT: usize = 100;

/// The engine and its store, used by one call at a time.
struct State {
    engine: Engine,
    store: SqliteStore,
}

/// An engine over one SQLite file. Opaque: created by `writesync_open`, destroyed by
/// `writesync_close`, used only through pointers.
#[allow(non_camel_case_types)] // C naming: the type is `writesync_engine` in C.
pub struct writesync_engine {
    state: Mutex<State>,
    /// The host driver's performer (transport and token broker), made once per handle: it
    /// keeps the connection pool.
    performer: Arc<dyn writesync_host::driver::Perform>,
    driver: writesync_host::Driver,
}

impl writesync_engine {
    fn lock(&self) -> Result<MutexGuard<'_, State>, FfiError> {
        self.state.lock().map_err(|_| {
            FfiError::new(
                WRITESYNC_PANIC,
                "an earlier call panicked while using this engine; close it and open it again",
            )
        })
    }
}

/// Borrow a NUL-terminated UTF-8 string.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives the borrow.
unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, FfiError> {
    if p.is_null() {
        return Err(FfiError::invalid_argument(format!("{what} is NULL")));
    }
    // SAFETY: not NULL, and NUL-terminated by the caller's contract.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|e| {
        FfiError::new(
            WRITESYNC_INVALID_UTF8,
            format!("{what} is not valid UTF-8: {e}"),
        )
    })
}

/// Borrow the engine behind a handle.
///
/// # Safety
/// `p` is NULL or a live handle from `writesync_open`.
unsafe fn engine_arg<'a>(p: *const writesync_engine) -> Result<&'a writesync_engine, FfiError> {
    // SAFETY: a live handle by the caller's contract; NULL is checked by `as_ref`.
    unsafe { p.as_ref() }.ok_or_else(|| FfiError::invalid_argument("engine is NULL"))
}

/// Borrow an out-pointer, after setting it to `init` so that it is defined on every path.
///
/// # Safety
/// `p` is NULL or valid for a write of `T`.
unsafe fn out_arg<'a, T>(p: *mut T, init: T, what: &str) -> Result<&'a mut T, FfiError> {
    if p.is_null() {
        return Err(FfiError::invalid_argument(format!("{what} is NULL")));
    }
    // SAFETY: not NULL, and writable by the caller's contract.
    unsafe {
        p.write(init);
        Ok(&mut *p)
    }
}

/// Hand a string to the caller (freed with `writesync_string_free`).
fn give(s: String) -> Result<*mut c_char, FfiError> {
    CString::new(s)
        .map(CString::into_raw)
        .map_err(|_| FfiError::new(WRITESYNC_ENGINE_ERROR, "an answer contained a NUL byte"))
}

fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String, FfiError> {
    serde_json::to_string(v)
        .map_err(|e| FfiError::new(WRITESYNC_ENGINE_ERROR, format!("cannot encode: {e}")))
}

/// Open (creating if needed) the SQLite database at `db_path` and start an engine on it. The
/// engine's data layout in the file is migrated first (bounded steps, each its own
/// transaction; an interrupted migration resumes at the next open); a file of a newer or
/// unknown layout is WRITESYNC_STORAGE_ERROR and is left as it was.
///
/// - `db_path`: NUL-terminated UTF-8 path. Borrowed for the call only.
/// - `config_json`: NUL-terminated UTF-8 JSON object, borrowed for the call only. The fields
///   are the engine's (camelCase): `adminToken` (or `adminTokenSha256`), `seed` (64 hex digits,
///   or any text that is hashed; when absent the library draws 32 bytes from the operating
///   system), `pushRetrySchedule` and `webhookRetrySchedule` (seconds, fractions allowed),
///   `leaseMs`, `maxBodyBytes`, `maxBatch`, `idempotencyRetentionMs`, `deliveryRetentionMs`,
///   `syncRetentionMs`, `allowTargetCidrs` (restricted ranges pushes, webhooks and the token
///   broker may reach, e.g. `["127.0.0.0/8"]`); and, read only by `writesync_run_due`:
///   `outboundTimeoutMs` (overall time of one request, default 10000), `connectTimeoutMs`
///   (default 5000), `tokenUrl` (the token broker that answers the access-token requests of
///   provider connections; without it they fail), `senders` (requests sent at once, default 1:
///   on the calling thread) and `maxInFlightPerOrigin` (default 4). Pass `"{}"` for
///   all defaults. Unknown fields are WRITESYNC_INVALID_JSON.
/// - `engine_out`: receives the new handle, or NULL on failure. Free it with
///   `writesync_close`.
///
/// Use one engine per database file: two engines on one file are not coordinated.
///
/// # Safety
/// `db_path` and `config_json` are NULL or NUL-terminated strings; `engine_out` is NULL or
/// valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn writesync_open(
    db_path: *const c_char,
    config_json: *const c_char,
    engine_out: *mut *mut writesync_engine,
) -> writesync_result {
    guard(|| {
        // SAFETY: the caller's contract above.
        let out = unsafe { out_arg(engine_out, std::ptr::null_mut(), "engine_out")? };
        // SAFETY: the caller's contract above.
        let path = unsafe { str_arg(db_path, "db_path")? };
        // SAFETY: the caller's contract above.
        let config = config::parse(unsafe { str_arg(config_json, "config_json")? })?;
        let mut store = SqliteStore::open(path).map_err(|e| {
            FfiError::new(
                WRITESYNC_STORAGE_ERROR,
                format!("storage: cannot open {path}: {e}"),
            )
        })?;
        let mut engine = Engine::new(config.engine);
        // The engine's data layout in the file is brought up to date before the handle is
        // given out (bounded steps, each its own transaction; an interrupted one resumes).
        writesync_sqlite::migrate_layout(&mut engine, &mut store).map_err(|e| {
            FfiError::new(
                WRITESYNC_STORAGE_ERROR,
                format!("storage: cannot migrate the data layout of {path}: {e}"),
            )
        })?;
        let performer = writesync_host::Performer::new(
            &config.transport,
            writesync_host::TokenBroker::new(config.token_url),
        );
        let handle = Box::new(writesync_engine {
            state: Mutex::new(State { engine, store }),
            performer: Arc::new(performer),
            driver: writesync_host::Driver::new(config.driver),
        });
        *out = Box::into_raw(handle);
        Ok(())
    })
}

/// Close an engine: finish using the SQLite file and free the handle.
///
/// `engine` comes from `writesync_open` and is invalid afterwards. Closing a handle twice, or
/// while another thread is still inside a call on it, is undefined behaviour (the caller's
/// bug). NULL is reported as WRITESYNC_INVALID_ARGUMENT and otherwise ignored.
///
/// # Safety
/// `engine` is NULL or a live handle from `writesync_open` that no other thread is using.
#[no_mangle]
pub unsafe extern "C" fn writesync_close(engine: *mut writesync_engine) -> writesync_result {
    guard(|| {
        if engine.is_null() {
            return Err(FfiError::invalid_argument("engine is NULL"));
        }
        // SAFETY: a live handle made by `Box::into_raw` in `writesync_open`, given back once.
        drop(unsafe { Box::from_raw(engine) });
        Ok(())
    })
}

/// Answer one API request, exactly as the HTTP contract says (the same answers as the native
/// server and the WASM build).
///
/// - `request_json`: NUL-terminated UTF-8 JSON `{"method", "path", "headers": {name: value},
///   "body": "raw body text" | null}`, borrowed for the call only. Header names are matched
///   case-insensitively.
/// - `now_ms`: the current time, Unix milliseconds.
/// - `response_json_out`: receives `{"status": 201, "headers": {...}, "body": "text"}` (the body
///   as text, `""` when empty), or NULL on failure. Free it with `writesync_string_free`.
///
/// Failures of the request itself (bad credentials, validation, ...) are answers (4xx), not
/// errors: the call returns WRITESYNC_OK. A storage failure while committing is the answer
/// `503`.
///
/// # Safety
/// `engine` is NULL or a live handle; `request_json` is NULL or a NUL-terminated string;
/// `response_json_out` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn writesync_handle(
    engine: *const writesync_engine,
    request_json: *const c_char,
    now_ms: i64,
    response_json_out: *mut *mut c_char,
) -> writesync_result {
    guard(|| {
        // SAFETY: the caller's contract above.
        let out = unsafe { out_arg(response_json_out, std::ptr::null_mut(), "response_json_out")? };
        // SAFETY: the caller's contract above.
        let handle = unsafe { engine_arg(engine)? };
        // SAFETY: the caller's contract above.
        let text = unsafe { str_arg(request_json, "request_json")? };
        let request: ApiRequest =
            serde_json::from_str(text).map_err(|e| FfiError::invalid_json("request_json", e))?;
        let response = {
            let mut st = handle.lock()?;
            let State { engine, store } = &mut *st;
            engine.handle_with(&request, now_ms, store)
        };
        *out = give(to_json(&response)?)?;
        Ok(())
    })
}

/// Claim the pushes, webhook deliveries and token requests due at `now_ms`, at most `limit` of
/// them, for a host that performs them itself.
///
/// - `work_json_out`: receives a JSON array of `{"id", "kind": "push" | "webhook" | "token",
///   "request": {"method", "url", "headers", "body"}}` (empty when nothing is due), or NULL on
///   failure. Free it with `writesync_string_free`.
/// - A `token` item asks the host for a connection's access token: its request is
///   `{"method": "TOKEN", "url": "writesync:token"}` with the body `{"connectionId",
///   "accountId", "app", "reason"}`; answer it with status `200` and the body `{"accessToken",
///   "expiresAt"}` (Unix ms, optional), or any other status or an error when there is none.
///
/// Each item is leased (for `leaseMs`, default 2 minutes): perform its request and give the
/// outcome to `writesync_report` with the item's `id`. An item whose outcome never comes is due
/// again when its lease runs out. Send the `Idempotency-Key` header as given: a retry of the
/// same push carries the same key.
///
/// # Safety
/// `engine` is NULL or a live handle; `work_json_out` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn writesync_due_limit(
    engine: *const writesync_engine,
    now_ms: i64,
    limit: usize,
    work_json_out: *mut *mut c_char,
) -> writesync_result {
    guard(|| {
        // SAFETY: the caller's contract above.
        let out = unsafe { out_arg(work_json_out, std::ptr::null_mut(), "work_json_out")? };
        // SAFETY: the caller's contract above.
        let handle = unsafe { engine_arg(engine)? };
        let items = {
            let mut st = handle.lock()?;
            let State { engine, store } = &mut *st;
            engine.due_with(now_ms, limit, store)?
        };
        *out = give(to_json(&items)?)?;
        Ok(())
    })
}

/// `writesync_due_limit` with a limit of `WRITESYNC_DUE_DEFAULT_LIMIT` (100) items.
///
/// # Safety
/// `engine` is NULL or a live handle; `work_json_out` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn writesync_due(
    engine: *const writesync_engine,
    now_ms: i64,
    work_json_out: *mut *mut c_char,
) -> writesync_result {
    // SAFETY: the same contract.
    unsafe { writesync_due_limit(engine, now_ms, WRITESYNC_DUE_DEFAULT_LIMIT, work_json_out) }
}

/// Report what happened to a work item from `writesync_due`.
///
/// - `result_json`: NUL-terminated UTF-8 JSON, borrowed for the call only: the answer
///   `{"id": "<work item id>", "status": 503, "headers": {...}, "body": "start of the body"}`
///   (`headers` and `body` may be omitted; a host should read at most 64 KiB of the body), or,
///   when no answer came, `{"id": "...", "error": "what went wrong", "permanent": false}`
///   (`permanent: true` when retrying cannot help, e.g. a refused address: the push fails at
///   once).
/// - `now_ms`: the current time, Unix milliseconds (retries are scheduled from it).
///
/// An unknown id, or the id of an item that is no longer waiting for its outcome (its lease ran
/// out and it was handed out again), is WRITESYNC_ENGINE_ERROR with a message starting
/// `unknown_work: `.
///
/// # Safety
/// `engine` is NULL or a live handle; `result_json` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn writesync_report(
    engine: *const writesync_engine,
    result_json: *const c_char,
    now_ms: i64,
) -> writesync_result {
    guard(|| {
        // SAFETY: the caller's contract above.
        let handle = unsafe { engine_arg(engine)? };
        // SAFETY: the caller's contract above.
        let text = unsafe { str_arg(result_json, "result_json")? };
        let mut value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| FfiError::invalid_json("result_json", e))?;
        let id = match value.as_object_mut().map(|o| o.remove("id")) {
            Some(Some(serde_json::Value::String(id))) => id,
            _ => {
                return Err(FfiError::invalid_json(
                    "result_json",
                    "expected an object with a string \"id\"",
                ))
            }
        };
        let outcome: Outcome = serde_json::from_value(value).map_err(|_| {
            FfiError::invalid_json(
                "result_json",
                "expected {id, status, headers?, body?} or {id, error, permanent?}",
            )
        })?;
        let mut st = handle.lock()?;
        let State { engine, store } = &mut *st;
        engine.report_with(&id, &outcome, now_ms, store)?;
        Ok(())
    })
}

/// The earliest time at which work is due (a push, a delivery, a retry, or an expiring lease),
/// in Unix milliseconds, stored in `*deadline_ms_out`; WRITESYNC_NO_DEADLINE (INT64_MAX) when
/// nothing is owed. A host sleeps until then (or until it writes again) and calls
/// `writesync_due` or `writesync_run_due`.
///
/// # Safety
/// `engine` is NULL or a live handle; `deadline_ms_out` is NULL or valid for writing an
/// `int64_t`.
#[no_mangle]
pub unsafe extern "C" fn writesync_next_deadline(
    engine: *const writesync_engine,
    deadline_ms_out: *mut i64,
) -> writesync_result {
    guard(|| {
        // SAFETY: the caller's contract above.
        let out = unsafe { out_arg(deadline_ms_out, WRITESYNC_NO_DEADLINE, "deadline_ms_out")? };
        // SAFETY: the caller's contract above.
        let handle = unsafe { engine_arg(engine)? };
        let st = handle.lock()?;
        *out = st
            .engine
            .next_deadline(&st.store)?
            .unwrap_or(WRITESYNC_NO_DEADLINE);
        Ok(())
    })
}

/// Perform the pushes, webhook deliveries and access-token requests due at `now_ms` with the
/// built-in HTTP client, and report their outcomes; then go on with the work that those
/// outcomes make due (a dependent push, the webhook events), up to 2048 items per call.
/// Blocks until done; call `writesync_next_deadline` afterwards to know when to call again.
///
/// This is the host driver of `writesync serve` and of the Rust API, with the same defaults:
/// loopback, private, link-local and reserved addresses are refused unless `allowTargetCidrs`
/// allows them, checked when the name is resolved and again on the address actually
/// connected to (a refused push fails at once, with a `lastError` starting `refused address:`,
/// and is not retried); no proxy; redirects are not followed; `connectTimeoutMs` (default 5 s)
/// and `outboundTimeoutMs` (default 10 s) bound each request; at most 64 KiB of an answer is
/// read. Access-token requests are POSTed to `tokenUrl` (the item's
/// `{connectionId, accountId, app, reason}`), whose answer (`200 {"accessToken", "expiresAt"}`)
/// is the outcome; without `tokenUrl` they fail at once, and so do the pushes waiting for them.
/// Requests go out one at a time on the calling thread unless `senders` says more (then at
/// most `maxInFlightPerOrigin` to one origin). The engine is not locked while a request is on
/// the network: other threads' calls on the same engine proceed meanwhile.
///
/// Returns the first error of a claim or a report (WRITESYNC_STORAGE_ERROR when SQLite fails)
/// and stops; items claimed but not reported are due again when their lease runs out. A failed push or delivery is not an error
/// of this call, it is recorded in the sync or delivery; an outcome the engine no longer
/// expects (its lease ran out and it was handed out again) is ignored.
///
/// # Safety
/// `engine` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn writesync_run_due(
    engine: *const writesync_engine,
    now_ms: i64,
) -> writesync_result {
    guard(|| {
        // SAFETY: the caller's contract above.
        let handle = unsafe { engine_arg(engine)? };
        run_due::run(handle, now_ms)
    })
}

/// `writesync_prune` and `writesync_recover`: plan one batch with `plan`, apply it, and write
/// the number of rows it wrote to `*rows_out`.
///
/// # Safety
/// `engine` is NULL or a live handle; `rows_out` is NULL or valid for writing a `size_t`.
unsafe fn maintain(
    engine: *const writesync_engine,
    rows_out: *mut usize,
    what: &str,
    plan: impl FnOnce(
        &mut Engine,
        &SqliteStore,
    ) -> Result<writesync_core::Batch, writesync_core::CoreError>,
) -> writesync_result {
    guard(|| {
        // SAFETY: the caller's contract above.
        let out = unsafe { out_arg(rows_out, 0, what)? };
        // SAFETY: the caller's contract above.
        let handle = unsafe { engine_arg(engine)? };
        let mut st = handle.lock()?;
        let State { engine, store } = &mut *st;
        let batch = plan(engine, store)?;
        if !batch.ops.is_empty() {
            writesync_core::Storage::apply(store, &batch)?;
        }
        *out = batch.ops.len();
        Ok(())
    })
}

/// Remove what has outlived its retention: idempotency records older than
/// `idempotencyRetentionMs` and finished (delivered or failed) webhook deliveries older than
/// `deliveryRetentionMs`; nothing unfinished is removed. At most `limit` records of each kind
/// are removed per call; `*removed_out` receives the number of stored rows deleted (0 when
/// nothing was left to remove). Call it now and then, for example hourly, while it removes
/// something.
///
/// # Safety
/// `engine` is NULL or a live handle; `removed_out` is NULL or valid for writing a `size_t`.
#[no_mangle]
pub unsafe extern "C" fn writesync_prune(
    engine: *const writesync_engine,
    now_ms: i64,
    limit: usize,
    removed_out: *mut usize,
) -> writesync_result {
    // SAFETY: the caller's contract above.
    unsafe {
        maintain(engine, removed_out, "removed_out", |e, store| {
            e.prune(now_ms, limit, store)
        })
    }
}

/// Make every push, token request and webhook delivery that was handed out (`writesync_due`,
/// `writesync_run_due`) and not reported due again at `now_ms`, as if its lease had run out.
/// Call it once after `writesync_open` when this process is the only worker on the file: what
/// a crashed process had in flight is then sent again at once instead of when its lease
/// (120 s) runs out. Do not call it while another process or thread has items out: they would
/// be sent twice. A retried item keeps its `Idempotency-Key`; the lost attempt still counts.
/// `*written_out` receives the number of stored rows written (two per item made due).
///
/// # Safety
/// `engine` is NULL or a live handle; `written_out` is NULL or valid for writing a `size_t`.
#[no_mangle]
pub unsafe extern "C" fn writesync_recover(
    engine: *const writesync_engine,
    now_ms: i64,
    written_out: *mut usize,
) -> writesync_result {
    // SAFETY: the caller's contract above.
    unsafe {
        maintain(engine, written_out, "written_out", |e, store| {
            e.recover(now_ms, store)
        })
    }
}

/// Free a string returned by this library (`writesync_handle`, `writesync_due`, ...).
///
/// `s` must come from this library and is invalid afterwards; freeing it twice, or freeing a
/// string from anywhere else, is undefined behaviour. NULL is reported as
/// WRITESYNC_INVALID_ARGUMENT and otherwise ignored. Any thread may free any string.
///
/// # Safety
/// `s` is NULL or a string returned by this library and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn writesync_string_free(s: *mut c_char) -> writesync_result {
    guard(|| {
        if s.is_null() {
            return Err(FfiError::invalid_argument("string is NULL"));
        }
        // SAFETY: made by `CString::into_raw` in `give`, given back once.
        drop(unsafe { CString::from_raw(s) });
        Ok(())
    })
}

/// Copy the message of the last failed call on the calling thread into `buf`.
///
/// Every call that returns a code other than WRITESYNC_OK replaces the calling thread's
/// message; successful calls leave it as it was (like `errno`), and this function never
/// changes it. Before any failure the message is empty.
///
/// - `buf`, `len`: the destination and its size in bytes. At most `len - 1` bytes of the
///   message are copied (cut at a UTF-8 character boundary) and a NUL is written after them.
///   `buf` may be NULL when `len` is 0 (to ask for the length only).
/// - `out_len`: optional (may be NULL); receives the full length of the message in bytes,
///   without the NUL. When it is `>= len` the copy was cut: call again with a larger buffer.
///
/// Returns WRITESYNC_OK, or WRITESYNC_INVALID_ARGUMENT when `buf` is NULL and `len` is not 0.
///
/// # Safety
/// `buf` is NULL or valid for writing `len` bytes; `out_len` is NULL or valid for writing a
/// `size_t`.
#[no_mangle]
pub unsafe extern "C" fn writesync_last_error_message(
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> writesync_result {
    // Not `guard`: a failure here must not replace the message being read.
    let r = std::panic::catch_unwind(|| {
        if buf.is_null() && len != 0 {
            return WRITESYNC_INVALID_ARGUMENT;
        }
        let msg = last_error();
        {
            if !out_len.is_null() {
                // SAFETY: not NULL, and writable by the caller's contract.
                unsafe { out_len.write(msg.len()) };
            }
            if len > 0 {
                let mut n = msg.len().min(len - 1);
                while !msg.is_char_boundary(n) {
                    n -= 1;
                }
                // SAFETY: `buf` holds `len` > `n` bytes by the caller's contract; the source
                // is a Rust string that cannot overlap it.
                unsafe {
                    std::ptr::copy_nonoverlapping(msg.as_ptr(), buf.cast::<u8>(), n);
                    buf.add(n).write(0);
                }
            }
        }
        WRITESYNC_OK
    });
    r.unwrap_or(WRITESYNC_PANIC)
}

#[cfg(test)]
mod tests;
