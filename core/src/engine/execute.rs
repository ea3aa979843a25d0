//! One command planned in one unit of work: the typed entry every host shares. The HTTP
//! adapter (`http_adapter.rs`) and [`Engine::execute`](crate::Engine::execute) both come here.

use super::admin;
use super::auth;
use super::command::{Command, CommandError, Reply};
use super::data;
use super::state::{Engine, NO_OPENAPI_DOCUMENT};
use super::tx::Tx;
use super::vocab::{fail, Ctx, H};
use crate::http::ProblemKind;
use crate::store::{Batch, KvRead};
use crate::util::time::rfc3339_millis;

/// A command planned against the host's storage: its result and the writes to commit before
/// the result is told to anyone.
#[derive(Debug)]
#[must_use = "the batch must be committed and the engine told with Engine::finish_executed"]
pub struct Executed {
    /// What the command answers.
    pub result: Result<Reply, CommandError>,
    /// The writes to commit atomically first; empty for reads and refusals.
    pub batch: Batch,
    /// The id of this request (`X-Request-ID`).
    pub request_id: String,
    /// The idempotency slot held until the engine is told the step is finished.
    pub(crate) in_flight: Option<String>,
}

/// Plan `run` in a fresh unit of work at `now`. A refusal writes nothing and holds nothing.
pub(crate) fn plan(
    engine: &mut Engine,
    now: i64,
    store: &dyn KvRead,
    run: impl FnOnce(&mut Engine, &mut Ctx<'_>) -> H<Reply>,
) -> Executed {
    let request_id = engine.new_id(now);
    if let Err(e) = engine.check_layout(store) {
        return Executed {
            result: Err(CommandError::Storage(e)),
            batch: Batch::default(),
            request_id,
            in_flight: None,
        };
    }
    let mut ctx = Ctx {
        tx: Tx::new(store),
        now,
        now_str: rfc3339_millis(now),
        request_id: request_id.clone(),
        in_flight: None,
    };
    let result = run(engine, &mut ctx);
    let in_flight = ctx.in_flight.take();
    match result {
        Ok(reply) => {
            let mut batch = ctx.tx.into_batch();
            if engine.mark_pending && !batch.is_empty() {
                batch.put(crate::records::keys::LAYOUT, super::migration::layout_row());
                engine.mark_pending = false;
            }
            Executed {
                result: Ok(reply),
                batch,
                request_id,
                in_flight,
            }
        }
        Err(e) => {
            if let Some(k) = &in_flight {
                engine.in_flight.remove(k);
            }
            Executed {
                result: Err(e),
                batch: Batch::default(),
                request_id,
                in_flight: None,
            }
        }
    }
}

/// Carry out a command: check who is calling, then hand it to its layer.
pub(crate) fn run(engine: &mut Engine, ctx: &mut Ctx<'_>, command: Command<'_>) -> H<Reply> {
    match command {
        Command::Health => Ok(Reply::json(200, &serde_json::json!({"status": "ok"}))),
        Command::OpenApi => match engine.openapi_json() {
            Some(doc) => Ok(Reply::text(200, doc.to_string())),
            None => fail(ProblemKind::NotFound, NO_OPENAPI_DOCUMENT),
        },
        Command::Admin { token, op } => {
            auth::admin(engine, token, ctx)?;
            admin::execute(engine, ctx, op)
        }
        Command::Data { credentials, op } => {
            let principal = auth::api(engine, credentials, ctx)?;
            data::execute(engine, ctx, &principal, op)
        }
    }
}
