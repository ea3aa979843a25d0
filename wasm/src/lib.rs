//! writesync-wasm: the writesync core compiled to `wasm32-unknown-unknown` with wasm-bindgen.
//!
//! This crate only translates. [`RawEngine`] owns one [`Engine`], reads the JS host's storage
//! on demand through the core's `KvRead` seam (`reads.rs`: through a JS reader object, one
//! boundary crossing per read the cache cannot answer; for an asynchronous host, by discarded
//! runs and "need" answers), and keeps a bounded cache of what it read (`cache.rs`). Each
//! export decodes its JSON
//! arguments, calls one core method, and encodes the result as JSON text whose shapes are
//! documented once, as TypeScript types, in `wasm/index.d.ts`. Business rules live in
//! `writesync-core` only.
//!
//! The calling contract of a write step, as the JS wrapper (`wasm/js/engine.js`) drives it:
//!
//! 1. `handle`, `due`, `report`, `prune`, `recover` or `nextDeadline` plans the step. With an
//!    asynchronous host, a run may miss reads (the JS reader records them): it is then
//!    discarded (the engine's generator, id clock and idempotency slots are as before the
//!    run, nothing it read is cached, no step is pending) and answers nothing useful; the
//!    wrapper, which knows from its reader that the run missed reads, fetches them and runs
//!    the same step again, until a run misses nothing. A read that fails makes the step a `503` storage problem (`handle`) or a
//!    `host_error` (the others), with nothing planned kept.
//! 2. The step answers a frame (see `Frame`: a JSON head, then the batch's keys and values
//!    verbatim) that carries the batch the host must apply atomically. When the batch is
//!    empty the step is already complete; otherwise it is *pending*.
//! 3. The host applies `ops` (possibly asynchronously).
//! 4. `commit` applies the same batch to the cache and releases the step; `abort` releases it
//!    without touching the cache (for `handle`, it answers the `503` problem to send instead).
//!
//! Only one step may be pending at a time; a second one is a `wrong_state` error. Errors are
//! thrown as JS `Error` objects with a `code` property (`CoreError::code`). The crate never
//! panics on any input; a trap (a bug) leaves the instance unusable, which the JS wrapper
//! turns into `engine_poisoned` errors.
// `unsafe` is denied everywhere but in the allocator (`alloc.rs`, wasm32 only), whose
// traits are unsafe by definition, and in `mem.rs`, whose `memcmp` takes raw pointers.
#![deny(unsafe_code)]

mod alloc;
mod cache;
mod mem;
mod reads;

use cache::Cache;
use reads::{HostReader, Reads};
use std::fmt::Write as _;

use serde::Serialize;
use wasm_bindgen::prelude::*;
use writesync_core::http::{problem, ProblemKind};
use writesync_core::{
    ApiRequest, ApiResponse, Batch, ConfigJson, CoreError, Engine, KvRead, Op, Outcome, Step,
    WorkItem,
};

/// The largest integer a JS number holds exactly.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// A step whose batch the host is applying.
#[derive(Debug)]
enum Pending {
    /// An API request: finish the step after the commit (or the abort).
    Step(Step),
    /// Leases, outcomes or pruning: only the batch.
    Batch(Batch),
}

/// The answer of `handle`, before its frame: the response without its body.
#[derive(Serialize)]
struct HandleHead<'a> {
    status: u16,
    headers: &'a std::collections::BTreeMap<String, String>,
}

/// The answer of `due`, before its frame.
#[derive(Serialize)]
struct DueHead<'a> {
    items: &'a [WorkItem],
}

/// A frame: `head` (JSON) on the first line, then the texts that would be costly to escape as
/// JSON (the stored values are JSON text already) concatenated verbatim. The head's last
/// field, `lens`, lists their lengths in UTF-16 code units, the unit JS strings count in.
///
/// Answers of `handle`: head `{status, headers, lens}`, texts `body`, then for each operation
/// of the batch `key` and, for a put, `value`. `ops` in the head gives each operation's kind
/// (1 put, 0 delete). Answers of `due`, `report` and `prune` are the same without the body.
struct Frame {
    out: String,
    lens: Vec<usize>,
    texts: String,
    kinds: Vec<u8>,
}

fn utf16_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().map(char::len_utf16).sum()
    }
}

impl Frame {
    fn new<T: Serialize>(head: &T) -> Result<Frame, JsValue> {
        to_json(head).map(Frame::of)
    }
    /// A frame whose head starts as the JSON object `head`.
    fn of(mut head: String) -> Frame {
        // Re-open the head object to append `ops` and `lens` after its own fields.
        if head.ends_with('}') {
            head.pop();
        }
        Frame {
            out: head,
            lens: Vec::new(),
            texts: String::new(),
            kinds: Vec::new(),
        }
    }
    fn text(&mut self, s: &str) {
        self.lens.push(utf16_len(s));
        self.texts.push_str(s);
    }
    fn ops(&mut self, ops: &[Op]) {
        // One allocation for every text of the batch.
        let total: usize = ops
            .iter()
            .map(|op| match op {
                Op::Put { key, value } => key.len() + value.len(),
                Op::Delete { key } => key.len(),
            })
            .sum();
        self.texts.reserve(total);
        self.lens.reserve(ops.len() * 2);
        self.kinds.reserve(ops.len());
        for op in ops {
            match op {
                Op::Put { key, value } => {
                    self.kinds.push(1);
                    self.text(key);
                    self.text(value);
                }
                Op::Delete { key } => {
                    self.kinds.push(0);
                    self.text(key);
                }
            }
        }
    }
    fn finish(self) -> String {
        let Frame {
            mut out,
            lens,
            texts,
            kinds,
        } = self;
        // The head's lists take at most 2 and 11 bytes an element.
        out.reserve(32 + kinds.len() * 2 + lens.len() * 11 + texts.len());
        if !out.ends_with('{') {
            out.push(',');
        }
        // Both lists by hand: numbers only, and no serde_json instance for either list type.
        out.push_str("\"ops\":[");
        for (i, k) in kinds.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push(if *k == 1 { '1' } else { '0' });
        }
        out.push_str("],\"lens\":[");
        for (i, n) in lens.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // Writing to a String cannot fail.
            let _ = write!(out, "{n}");
        }
        out.push_str("]}\n");
        out.push_str(&texts);
        out
    }
}

/// A JS `Error` carrying `code` and `message`.
fn js_error(code: &str, message: &str) -> JsValue {
    let e = js_sys::Error::new(message);
    // Setting a property on a fresh Error object cannot fail.
    let _ = js_sys::Reflect::set(&e, &JsValue::from_str("code"), &JsValue::from_str(code));
    e.into()
}

fn core_error(e: &CoreError) -> JsValue {
    js_error(e.code(), &e.to_string())
}

fn invalid(message: String) -> JsValue {
    core_error(&CoreError::InvalidInput(message))
}

fn to_json<T: Serialize>(value: &T) -> Result<String, JsValue> {
    writesync_core::json::to_text(value, 128)
        .map_err(|e| invalid(format!("cannot encode the answer: {e}")))
}

/// Unix milliseconds from a JS number (an integer within the safe range).
fn millis(now: f64) -> Result<i64, JsValue> {
    if now.is_finite() && now.fract() == 0.0 && now.abs() <= MAX_SAFE_INTEGER {
        Ok(now as i64)
    } else {
        Err(invalid(format!(
            "now must be an integer number of milliseconds, got {now}"
        )))
    }
}

/// One engine reading the JS host's storage on demand. Use it through the JS wrapper.
#[wasm_bindgen]
pub struct RawEngine {
    engine: Engine,
    host: HostReader,
    /// Whether the host is asynchronous: runs may then miss reads and be discarded.
    is_async: bool,
    /// The OpenAPI document as the JS string it was given, until a request may need it (see
    /// [`RawEngine::new`]).
    openapi_json: Option<JsValue>,
    cache: Cache,
    pending: Option<Pending>,
}

impl std::fmt::Debug for RawEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawEngine")
            .field("engine", &self.engine)
            .field("is_async", &self.is_async)
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

/// A run of a step: the first read that failed, or `Err` when the run was discarded.
type Ran = Result<Option<String>, ()>;

#[wasm_bindgen]
impl RawEngine {
    /// A new engine from the JSON configuration (`ConfigJson`). The binding requires `seed`:
    /// wasm has no OS randomness of its own, so the JS side draws it. `openapi_json` is the
    /// text of `core/openapi.json` (a JS string), served at `GET /openapi.json`: the module is
    /// built without it (core feature `openapi` off) and the package ships it as
    /// `pkg/writesync_openapi.js`. It stays a JS value until the first request whose path names
    /// `openapi.json`: copying its 300 KB into linear memory at every `createEngine` took about
    /// 3 ms of a first cold start in node, for a document most engines never serve.
    /// `host` reads the host (see `reads.rs`); `is_async` says whether it is asynchronous.
    #[wasm_bindgen(constructor)]
    pub fn new(
        config_json: &str,
        openapi_json: JsValue,
        host: HostReader,
        is_async: bool,
    ) -> Result<RawEngine, JsValue> {
        if !openapi_json.is_string() {
            return Err(invalid("the OpenAPI document must be a string".into()));
        }
        let config = ConfigJson::parse(config_json).map_err(|e| core_error(&e))?;
        if config.seed.is_none() {
            return Err(invalid(
                "config: seed is required (the JS wrapper draws one with crypto.getRandomValues)"
                    .into(),
            ));
        }
        let config = config.into_config([0; 32]).map_err(|e| core_error(&e))?;
        let engine = Engine::new(config);
        Ok(RawEngine {
            engine,
            host,
            is_async,
            openapi_json: Some(openapi_json),
            cache: Cache::default(),
            pending: None,
        })
    }

    /// Plan the answer to a request: its method, path, headers (a JSON object of strings, as
    /// UTF-8 bytes) and body (UTF-8 bytes, if any). Answers a frame of the response and the
    /// batch.
    ///
    /// Headers and body come as bytes, which the wrapper encodes with `TextEncoder`: a string
    /// argument is copied into linear memory by wasm-bindgen's glue one UTF-16 unit at a time
    /// in JS, which for a 1.4 KB body was about 7 % of the instructions of a pushing write in
    /// node (README "Size and speed").
    pub fn handle(
        &mut self,
        method: String,
        path: String,
        headers_json: &[u8],
        body: Option<Vec<u8>>,
        now: f64,
    ) -> Result<String, JsValue> {
        self.idle()?;
        let now = millis(now)?;
        let headers = std::str::from_utf8(headers_json)
            .map_err(|e| invalid(format!("request headers: not UTF-8: {e}")))
            .and_then(|text| {
                serde_json::from_str(text).map_err(|e| invalid(format!("request headers: {e}")))
            })?;
        let body = match body.map(String::from_utf8).transpose() {
            Ok(body) => body,
            Err(e) => return Err(invalid(format!("request body: not UTF-8: {e}"))),
        };
        // The core routes `GET /openapi.json` by the path's first segment, decoded.
        if self.openapi_json.is_some()
            && writesync_core::http::first_segment(&path).as_deref() == Some("openapi.json")
        {
            if let Some(doc) = self.openapi_json.take().and_then(|d| d.as_string()) {
                self.engine.set_openapi_json(doc);
            }
        }
        let request = ApiRequest {
            method,
            path,
            headers,
            body,
        };
        let mut out = None;
        let ran = self.run(&mut |e, r| out = Some(e.handle(&request, now, r)));
        let step = planned(out)?;
        let failed = match ran {
            Ok(failed) => failed,
            Err(()) => {
                self.engine.finish(&step);
                return Ok(String::new());
            }
        };
        if let Some(message) = failed {
            // A read failed: nothing of the step is kept, whatever the core planned.
            self.engine.finish(&step);
            let r = storage_problem(&message, &step.response);
            let mut f = Frame::new(&HandleHead {
                status: r.status,
                headers: &r.headers,
            })?;
            f.text(&r.body);
            return Ok(f.finish());
        }
        let out = Frame::new(&HandleHead {
            status: step.response.status,
            headers: &step.response.headers,
        })
        .map(|mut f| {
            f.text(&step.response.body);
            f.ops(&step.batch.ops);
            f.finish()
        });
        match out {
            Ok(_) => self.hold_step(step),
            Err(_) => self.engine.finish(&step),
        }
        out
    }

    /// Claim up to `limit` due work items. Answers a frame of `{items}` and the lease batch.
    pub fn due(&mut self, now: f64, limit: u32) -> Result<String, JsValue> {
        self.idle()?;
        let now = millis(now)?;
        let mut out = None;
        let ran = self.run(&mut |e, r| out = Some(e.due(now, limit as usize, r)));
        let work = match ran {
            Ok(failed) => checked(planned(out)?, failed)?,
            Err(()) => return Ok(String::new()),
        };
        let out = Frame::new(&DueHead { items: &work.items }).map(|mut f| {
            f.ops(&work.batch.ops);
            f.finish()
        });
        if out.is_ok() {
            self.hold_batch(work.batch);
        }
        out
    }

    /// Take the outcome (`Outcome` JSON) of work item `id`. Answers a frame of the batch.
    pub fn report(&mut self, id: &str, outcome_json: &str, now: f64) -> Result<String, JsValue> {
        self.idle()?;
        let now = millis(now)?;
        let outcome: Outcome =
            serde_json::from_str(outcome_json).map_err(|e| invalid(format!("outcome: {e}")))?;
        let mut out = None;
        match self.run(&mut |e, r| out = Some(e.report(id, &outcome, now, r))) {
            Ok(failed) => checked(planned(out)?, failed).and_then(|b| self.batch_step(b)),
            Err(()) => Ok(String::new()),
        }
    }

    /// Plan the removal of expired records (at most `limit` of each kind). Answers a frame of
    /// the batch.
    pub fn prune(&mut self, now: f64, limit: u32) -> Result<String, JsValue> {
        self.idle()?;
        let now = millis(now)?;
        let mut out = None;
        match self.run(&mut |e, r| out = Some(e.prune(now, limit as usize, r))) {
            Ok(failed) => checked(planned(out)?, failed).and_then(|b| self.batch_step(b)),
            Err(()) => Ok(String::new()),
        }
    }

    /// Make every leased push and delivery due again now (`Engine::recover`), for a host that
    /// is the only worker on its storage and has just started. Answers a frame of the batch.
    pub fn recover(&mut self, now: f64) -> Result<String, JsValue> {
        self.idle()?;
        let now = millis(now)?;
        let mut out = None;
        match self.run(&mut |e, r| out = Some(e.recover(now, r))) {
            Ok(failed) => checked(planned(out)?, failed).and_then(|b| self.batch_step(b)),
            Err(()) => Ok(String::new()),
        }
    }

    /// One bounded step (at most `limit` rows) of bringing the stored data to the engine's
    /// layout (`Engine::migrate`). Answers a frame of `{done, from}` and the batch; commit or
    /// abort it like any other, and call again until `done`. A newer or unknown layout is a
    /// `layout` error and nothing is written; so is layout 1, which this module (built without
    /// the core's feature `layout1`) cannot migrate.
    pub fn migrate(&mut self, limit: u32) -> Result<String, JsValue> {
        self.idle()?;
        let mut out = None;
        let step = match self.run(&mut |e, r| out = Some(e.migrate(limit as usize, r))) {
            Ok(failed) => checked(planned(out)?, failed)?,
            Err(()) => return Ok(String::new()),
        };
        // The head `{done, from}` by hand: two plain values.
        let mut f = Frame::of(format!("{{\"done\":{},\"from\":{}}}", step.done, step.from));
        f.ops(&step.batch.ops);
        let out = f.finish();
        self.hold_batch(step.batch);
        Ok(out)
    }

    /// The host applied the pending batch: apply it to the cache and release the step.
    pub fn commit(&mut self) -> Result<(), JsValue> {
        match self.pending.take() {
            Some(Pending::Step(step)) => {
                self.engine.finish(&step);
                self.cache.apply(&step.batch);
            }
            Some(Pending::Batch(batch)) => self.cache.apply(&batch),
            None => return Err(no_pending()),
        }
        Ok(())
    }

    /// The host failed to apply the pending batch: release the step, leave the cache as it
    /// was. For a request, answers the `503` problem (`ApiResponse` JSON) to send instead.
    pub fn abort(&mut self, reason: &str) -> Result<Option<String>, JsValue> {
        match self.pending.take() {
            Some(Pending::Step(step)) => {
                self.engine.finish(&step);
                to_json(&storage_problem(reason, &step.response)).map(Some)
            }
            Some(Pending::Batch(_)) => Ok(None),
            None => Err(no_pending()),
        }
    }

    /// The earliest time `due` will have work, in Unix milliseconds; `undefined` when nothing
    /// is owed (or when the run was discarded).
    #[wasm_bindgen(js_name = nextDeadline)]
    pub fn next_deadline(&mut self) -> Result<Option<f64>, JsValue> {
        let mut out = None;
        match self.run(&mut |e, r| out = Some(e.next_deadline(r))) {
            Ok(failed) => Ok(checked(planned(out)?, failed)?.map(|ms| ms as f64)),
            Err(()) => Ok(None),
        }
    }

    /// The cache's point entries, bytes, and scan results: `[entries, bytes, scans]` (for
    /// tests and diagnostics).
    #[wasm_bindgen(js_name = cacheStats)]
    pub fn cache_stats(&self) -> Vec<u32> {
        self.cache
            .stats()
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
            .to_vec()
    }
}

impl RawEngine {
    fn idle(&self) -> Result<(), JsValue> {
        if self.pending.is_some() {
            return Err(core_error(&CoreError::WrongState(
                "a step is waiting for commit or abort".into(),
            )));
        }
        Ok(())
    }

    /// Run `plan` against the cache and the host; answers the first read that failed. A run of
    /// an asynchronous host that missed reads is discarded: the engine's generator and id
    /// clock are put back (the caller releases the step), nothing it read is cached, and it
    /// answers `Err`. Otherwise what the run read from the host goes to the cache.
    fn run(&mut self, plan: &mut dyn FnMut(&mut Engine, &dyn KvRead)) -> Ran {
        let reads = Reads::new(&self.host, &self.cache);
        let is_async = self.is_async;
        let kept = self.engine.tentatively(|engine| {
            plan(engine, &reads);
            let keep = !(is_async && reads.host.missed());
            (keep, keep)
        });
        let (learned, scanned, failed) = reads.finish();
        if !kept {
            return Err(());
        }
        for (k, v) in learned {
            self.cache.put(&k, v);
        }
        for (args, rows) in scanned {
            self.cache.put_scan(args, rows);
        }
        Ok(failed)
    }

    fn hold_step(&mut self, step: Step) {
        if step.batch.is_empty() {
            self.engine.finish(&step);
        } else {
            self.pending = Some(Pending::Step(step));
        }
    }

    fn batch_step(&mut self, batch: Batch) -> Result<String, JsValue> {
        let out = batch_frame(&batch.ops);
        self.hold_batch(batch);
        Ok(out)
    }

    fn hold_batch(&mut self, batch: Batch) {
        if !batch.is_empty() {
            self.pending = Some(Pending::Batch(batch));
        }
    }
}

/// What `plan` made in a run (it runs exactly once in every run).
fn planned<T>(out: Option<T>) -> Result<T, JsValue> {
    out.ok_or_else(|| js_error("engine_panic", "a run ended without planning its step"))
}

/// The result of a run of `due`, `report`, `prune`, `recover` or `nextDeadline`: a failed read
/// is a `host_error`, whatever the core made of it (nothing it planned is kept).
fn checked<T>(out: Result<T, CoreError>, failed: Option<String>) -> Result<T, JsValue> {
    if let Some(message) = failed {
        return Err(js_error("host_error", &format!("storage error: {message}")));
    }
    out.map_err(|e| core_error(&e))
}

/// The `503` problem of a storage failure, with the request id of `planned`.
fn storage_problem(reason: &str, planned: &ApiResponse) -> ApiResponse {
    let mut r = problem(
        ProblemKind::StorageUnavailable,
        format!("storage error: {reason}"),
    );
    if let Some(id) = planned.headers.get("X-Request-ID") {
        r.set_header("X-Request-ID", id.clone());
    }
    r
}

fn batch_frame(ops: &[Op]) -> String {
    let mut f = Frame::of("{}".into());
    f.ops(ops);
    f.finish()
}

fn no_pending() -> JsValue {
    core_error(&CoreError::WrongState("no step is pending".into()))
}

/// Trap on purpose. Exists only so that the JS tests can check that a trap poisons the
/// engines of the instance instead of leaving them half-updated; never call it otherwise.
#[wasm_bindgen(js_name = "__trapForTests")]
pub fn trap_for_tests() {
    std::process::abort()
}
