//! Shared test support for writesync: the vector format, a recorder that writes vectors from
//! scenarios run against the real engine, and the replay that every Rust test uses.
//!
//! The format is documented in `tests/vectors/README.md`.

pub mod fuzzing;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use writesync_core::{
    ApiRequest, ApiResponse, ConfigJson, CoreError, Engine, KvRead, MemoryStore, Outcome, Storage,
    WorkItem,
};

/// One scenario file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vector {
    /// File stem.
    pub name: String,
    /// What it shows.
    pub description: String,
    /// Engine configuration (`ConfigJson`).
    pub config: Value,
    /// The steps.
    pub steps: Vec<Step>,
}

/// One step of a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Step {
    /// An API request and its expected answer.
    Request {
        /// Clock.
        now: i64,
        /// The request.
        request: ApiRequest,
        /// `{status, headers, body}` with `body` parsed when JSON.
        expect: Value,
    },
    /// Claim due work.
    Due {
        /// Clock.
        now: i64,
        /// Most items.
        limit: usize,
        /// `{items: [...]}`.
        expect: Value,
    },
    /// Report an outcome.
    Report {
        /// Clock.
        now: i64,
        /// Work item id.
        id: String,
        /// The outcome.
        outcome: Outcome,
        /// `{error: null | code}`.
        expect: Value,
    },
    /// The next deadline.
    Deadline {
        /// `{deadline: ms | null}`.
        expect: Value,
    },
}

/// The directory of the vector files.
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

/// A fresh engine for a vector's configuration.
pub fn engine_for(config: &Value) -> Result<Engine, CoreError> {
    let c = ConfigJson::parse(&config.to_string())?.into_config([0; 32])?;
    Ok(Engine::new(c))
}

/// The comparable form of an answer.
pub fn response_value(r: &ApiResponse) -> Value {
    let body = if r.body.is_empty() {
        Value::String(String::new())
    } else {
        serde_json::from_str(&r.body).unwrap_or_else(|_| Value::String(r.body.clone()))
    };
    serde_json::json!({"status": r.status, "headers": r.headers, "body": body})
}

/// The comparable form of due items (request bodies parsed).
pub fn items_value(items: &[WorkItem]) -> Value {
    let mut v = serde_json::to_value(items).unwrap_or(Value::Null);
    if let Some(list) = v.as_array_mut() {
        for item in list {
            if let Some(body) = item.pointer_mut("/request/body") {
                if let Some(text) = body.as_str() {
                    if let Ok(parsed) = serde_json::from_str::<Value>(text) {
                        *body = parsed;
                    }
                }
            }
        }
    }
    serde_json::json!({ "items": v })
}

/// Runs steps against an engine and a store, answering the comparable values.
pub struct Runner {
    /// The engine.
    pub engine: Engine,
    /// Its store.
    pub store: MemoryStore,
}

impl Runner {
    /// A runner for a configuration.
    pub fn new(config: &Value) -> Result<Runner, CoreError> {
        Ok(Runner {
            engine: engine_for(config)?,
            store: MemoryStore::new(),
        })
    }

    /// Perform one request.
    pub fn request(&mut self, now: i64, req: &ApiRequest) -> ApiResponse {
        self.engine.handle_with(req, now, &mut self.store)
    }

    /// Claim due work.
    pub fn due(&mut self, now: i64, limit: usize) -> Result<Vec<WorkItem>, CoreError> {
        self.engine.due_with(now, limit, &mut self.store)
    }

    /// Report an outcome; answers the comparable `{error}`.
    pub fn report(&mut self, now: i64, id: &str, outcome: &Outcome) -> Value {
        match self.engine.report_with(id, outcome, now, &mut self.store) {
            Ok(()) => serde_json::json!({"error": null}),
            Err(e) => serde_json::json!({"error": e.code()}),
        }
    }

    /// The next deadline.
    pub fn deadline(&self) -> Value {
        let d = self.engine.next_deadline(&self.store).ok().flatten();
        serde_json::json!({ "deadline": d })
    }

    /// Replay one step; `Err` describes a mismatch.
    pub fn replay(&mut self, index: usize, step: &Step) -> Result<(), String> {
        let (got, expect) = match step {
            Step::Request {
                now,
                request,
                expect,
            } => (response_value(&self.request(*now, request)), expect),
            Step::Due { now, limit, expect } => {
                let items = self
                    .due(*now, *limit)
                    .map_err(|e| format!("step {index}: {e}"))?;
                (items_value(&items), expect)
            }
            Step::Report {
                now,
                id,
                outcome,
                expect,
            } => (self.report(*now, id, outcome), expect),
            Step::Deadline { expect } => (self.deadline(), expect),
        };
        if &got == expect {
            Ok(())
        } else {
            Err(format!("step {index}: expected\n{expect:#}\ngot\n{got:#}"))
        }
    }
}

/// Replay a whole vector.
pub fn replay(v: &Vector) -> Result<(), String> {
    let mut r = Runner::new(&v.config).map_err(|e| e.to_string())?;
    for (i, s) in v.steps.iter().enumerate() {
        r.replay(i, s).map_err(|e| format!("{}: {e}", v.name))?;
    }
    // Every vector leaves the store readable: all stored values are JSON.
    for (k, val) in r.store.entries() {
        serde_json::from_str::<Value>(val).map_err(|e| format!("{}: row {k}: {e}", v.name))?;
    }
    Ok(())
}

/// Builds a vector by running a scenario against the real engine.
pub struct Recorder {
    vector: Vector,
    runner: Runner,
}

impl Recorder {
    /// Start a scenario.
    pub fn new(name: &str, description: &str, config: Value) -> Recorder {
        let runner = match Runner::new(&config) {
            Ok(r) => r,
            Err(e) => panic!("bad scenario config: {e}"),
        };
        Recorder {
            vector: Vector {
                name: name.into(),
                description: description.into(),
                config,
                steps: vec![],
            },
            runner,
        }
    }

    /// A request; answers the engine's answer.
    pub fn request(&mut self, now: i64, request: ApiRequest) -> ApiResponse {
        let r = self.runner.request(now, &request);
        self.vector.steps.push(Step::Request {
            now,
            request,
            expect: response_value(&r),
        });
        r
    }

    /// Claim due work.
    pub fn due(&mut self, now: i64, limit: usize) -> Vec<WorkItem> {
        let items = self.runner.due(now, limit).unwrap_or_default();
        self.vector.steps.push(Step::Due {
            now,
            limit,
            expect: items_value(&items),
        });
        items
    }

    /// Report an outcome.
    pub fn report(&mut self, now: i64, id: &str, outcome: Outcome) -> Value {
        let e = self.runner.report(now, id, &outcome);
        self.vector.steps.push(Step::Report {
            now,
            id: id.into(),
            outcome,
            expect: e.clone(),
        });
        e
    }

    /// The next deadline.
    pub fn deadline(&mut self) -> Option<i64> {
        let d = self.runner.deadline();
        self.vector.steps.push(Step::Deadline { expect: d.clone() });
        d["deadline"].as_i64()
    }

    /// Read-only access to the store (for assertions in scenarios).
    pub fn store(&self) -> &dyn KvRead {
        &self.runner.store
    }

    /// Mutable access to the store, for scenarios that inject a failure.
    pub fn store_mut(&mut self) -> &mut dyn Storage {
        &mut self.runner.store
    }

    /// The finished vector.
    pub fn finish(self) -> Vector {
        self.vector
    }
}
