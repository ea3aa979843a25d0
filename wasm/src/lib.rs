//! writesync-wasm: the writesync core compiled to `wasm32-unknown-unknown` with wasm-bindgen.
//!
//! This crate only translates. [`RawEngine`] owns one [`Engine`] and a cache (`cache.rs`, the
//! core's `KvRead` over memory) of the JS host's storage (the core's storage seam is synchronous; a JS host may be
//! asynchronous). Each export decodes its JSON arguments, calls one core method, and encodes
//! the result as JSON text whose shapes are documented once, as TypeScript types, in
//! `wasm/index.d.ts`. Business rules live in `writesync-core` only.
//!
//! The calling contract of a write step, as the JS wrapper (`wasm/js/engine.js`) drives it:
//!
//! 1. `handle`, `due`, `report` or `prune` plans the step against the cache and answers a
//!    frame (see `Frame`: a JSON head, then the batch's keys and values verbatim) that carries
//!    the batch the host must apply atomically. When the batch is empty the step is already
//!    complete; otherwise it is *pending*.
//! 2. The host applies `ops` (possibly asynchronously).
//! 3. `commit` applies the same batch to the cache and releases the step; `abort` releases it
//!    without touching the cache (for `handle`, it answers the `503` problem to send instead).
//!
//! Only one step may be pending at a time; a second one is a `wrong_state` error. Errors are
//! thrown as JS `Error` objects with a `code` property (`CoreError::code`). The crate never
//! panics on any input; a trap (a bug) leaves the instance unusable, which the JS wrapper
//! turns into `engine_poisoned` errors.
// `unsafe` is denied everywhere but in the allocator (`alloc.rs`, wasm32 only), whose
// traits are unsafe by definition.
#![deny(unsafe_code)]

mod alloc;
mod cache;

use cache::Cache;
use serde::Serialize;
use wasm_bindgen::prelude::*;
use writesync_core::http::{problem, ProblemKind};
use writesync_core::{
    ApiRequest, Batch, ConfigJson, CoreError, Engine, KvRead, Op, Outcome, Step, WorkItem,
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
        let mut out = to_json(head)?;
        // Re-open the head object to append `ops` and `lens` after its own fields.
        if out.ends_with('}') {
            out.pop();
        }
        Ok(Frame {
            out,
            lens: Vec::new(),
            texts: String::new(),
            kinds: Vec::new(),
        })
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
    fn finish(self) -> Result<String, JsValue> {
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
        out.push_str("\"ops\":");
        out.push_str(&to_json(&kinds)?);
        out.push_str(",\"lens\":");
        out.push_str(&to_json(&lens)?);
        out.push_str("}\n");
        out.push_str(&texts);
        Ok(out)
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
    serde_json::to_string(value).map_err(|e| invalid(format!("cannot encode the answer: {e}")))
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

/// One engine over a cache of the host's storage. Use it through the JS wrapper.
#[wasm_bindgen]
#[derive(Debug)]
pub struct RawEngine {
    engine: Engine,
    cache: Cache,
    pending: Option<Pending>,
}

#[wasm_bindgen]
impl RawEngine {
    /// A new engine from the JSON configuration (`ConfigJson`). The binding requires `seed`:
    /// wasm has no OS randomness of its own, so the JS side draws it. `openapi_json` is the
    /// text of `core/openapi.json`, served at `GET /openapi.json`: the module is built without
    /// it (core feature `openapi` off) and the package ships it as `pkg/writesync_openapi.js`.
    #[wasm_bindgen(constructor)]
    pub fn new(config_json: &str, openapi_json: &str) -> Result<RawEngine, JsValue> {
        let config = ConfigJson::parse(config_json).map_err(|e| core_error(&e))?;
        if config.seed.is_none() {
            return Err(invalid(
                "config: seed is required (the JS wrapper draws one with crypto.getRandomValues)"
                    .into(),
            ));
        }
        let config = config.into_config([0; 32]).map_err(|e| core_error(&e))?;
        let mut engine = Engine::new(config);
        engine.set_openapi_json(openapi_json);
        Ok(RawEngine {
            cache: Cache::new(),
            engine,
            pending: None,
        })
    }

    /// Fill the cache with the host's entries: JSON `[[key, value], ...]`. Answers the number
    /// of entries the cache holds afterwards.
    pub fn load(&mut self, entries_json: &str) -> Result<u32, JsValue> {
        self.idle()?;
        let entries: Vec<(String, String)> =
            serde_json::from_str(entries_json).map_err(|e| invalid(format!("entries: {e}")))?;
        let mut batch = Batch::new();
        for (k, v) in entries {
            batch.put(k, v);
        }
        self.cache.apply(batch);
        Ok(u32::try_from(self.cache.len()).unwrap_or(u32::MAX))
    }

    /// Plan the answer to a request: its method, path, headers (a JSON object of strings) and
    /// body (text, if any). Answers a frame of the response and the batch.
    pub fn handle(
        &mut self,
        method: String,
        path: String,
        headers_json: &str,
        body: Option<String>,
        now: f64,
    ) -> Result<String, JsValue> {
        self.idle()?;
        let now = millis(now)?;
        let headers = serde_json::from_str(headers_json)
            .map_err(|e| invalid(format!("request headers: {e}")))?;
        let request = ApiRequest {
            method,
            path,
            headers,
            body,
        };
        let step = self.engine.handle(&request, now, &self.cache);
        let out = Frame::new(&HandleHead {
            status: step.response.status,
            headers: &step.response.headers,
        })
        .and_then(|mut f| {
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
        let work = self
            .engine
            .due(now, limit as usize, &self.cache)
            .map_err(|e| core_error(&e))?;
        let out = Frame::new(&DueHead { items: &work.items }).and_then(|mut f| {
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
        let batch = self
            .engine
            .report(id, &outcome, now, &self.cache)
            .map_err(|e| core_error(&e))?;
        let out = batch_frame(&batch.ops);
        if out.is_ok() {
            self.hold_batch(batch);
        }
        out
    }

    /// Plan the removal of expired records (at most `limit` of each kind). Answers a frame of
    /// the batch.
    pub fn prune(&mut self, now: f64, limit: u32) -> Result<String, JsValue> {
        self.idle()?;
        let now = millis(now)?;
        let batch = self
            .engine
            .prune(now, limit as usize, &self.cache)
            .map_err(|e| core_error(&e))?;
        let out = batch_frame(&batch.ops);
        if out.is_ok() {
            self.hold_batch(batch);
        }
        out
    }

    /// Make every leased push and delivery due again now (`Engine::recover`), for a host that
    /// is the only worker on its storage and has just started. Answers a frame of the batch.
    pub fn recover(&mut self, now: f64) -> Result<String, JsValue> {
        self.idle()?;
        let now = millis(now)?;
        let batch = self
            .engine
            .recover(now, &self.cache)
            .map_err(|e| core_error(&e))?;
        let out = batch_frame(&batch.ops);
        if out.is_ok() {
            self.hold_batch(batch);
        }
        out
    }

    /// One bounded step (at most `limit` rows) of bringing the stored data to the engine's
    /// layout (`Engine::migrate`). Answers a frame of `{done, from}` and the batch; commit or
    /// abort it like any other, and call again until `done`. A newer or unknown layout is a
    /// `layout` error and nothing is written.
    pub fn migrate(&mut self, limit: u32) -> Result<String, JsValue> {
        self.idle()?;
        let step = self
            .engine
            .migrate(limit as usize, &self.cache)
            .map_err(|e| core_error(&e))?;
        let out = Frame::new(&MigrateHead {
            done: step.done,
            from: step.from,
        })
        .and_then(|mut f| {
            f.ops(&step.batch.ops);
            f.finish()
        });
        if out.is_ok() {
            self.hold_batch(step.batch);
        }
        out
    }

    /// The host applied the pending batch: apply it to the cache and release the step.
    pub fn commit(&mut self) -> Result<(), JsValue> {
        match self.pending.take() {
            Some(Pending::Step(mut step)) => {
                let batch = std::mem::take(&mut step.batch);
                self.engine.finish(&step);
                self.cache.apply(batch);
            }
            Some(Pending::Batch(batch)) => self.cache.apply(batch),
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
                let mut r = problem(
                    ProblemKind::StorageUnavailable,
                    format!("storage error: {reason}"),
                );
                if let Some(id) = step.response.headers.get("X-Request-ID") {
                    r.set_header("X-Request-ID", id.clone());
                }
                to_json(&r).map(Some)
            }
            Some(Pending::Batch(_)) => Ok(None),
            None => Err(no_pending()),
        }
    }

    /// The earliest time `due` will have work, in Unix milliseconds; `undefined` when nothing
    /// is owed.
    #[wasm_bindgen(js_name = nextDeadline)]
    pub fn next_deadline(&self) -> Result<Option<f64>, JsValue> {
        self.engine
            .next_deadline(&self.cache)
            .map(|d| d.map(|ms| ms as f64))
            .map_err(|e| core_error(&e))
    }

    /// Number of entries in the cache (for tests and diagnostics).
    #[wasm_bindgen(js_name = cacheSize)]
    pub fn cache_size(&self) -> u32 {
        u32::try_from(self.cache.len()).unwrap_or(u32::MAX)
    }

    /// The cached value of `key` (for tests and diagnostics).
    #[wasm_bindgen(js_name = cacheGet)]
    pub fn cache_get(&self, key: &str) -> Result<Option<String>, JsValue> {
        self.cache.get(key).map_err(|e| core_error(&e))
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

    fn hold_step(&mut self, step: Step) {
        if step.batch.is_empty() {
            self.engine.finish(&step);
        } else {
            self.pending = Some(Pending::Step(step));
        }
    }

    fn hold_batch(&mut self, batch: Batch) {
        if !batch.is_empty() {
            self.pending = Some(Pending::Batch(batch));
        }
    }
}

/// The head of a migration step's frame.
#[derive(Serialize)]
struct MigrateHead {
    done: bool,
    from: u32,
}

fn batch_frame(ops: &[Op]) -> Result<String, JsValue> {
    let mut f = Frame::new(&serde_json::Map::new())?;
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
