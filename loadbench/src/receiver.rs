//! The receiver of pushes (`POST /push`, the connection's `pushUrl`) and webhook deliveries
//! (`POST /hook`), answering `200` at once, and recording for each write (found by the
//! tracking id the writer gave it) when its push and its deliveries arrived.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use hyper::{Method, StatusCode};
use tokio::task::JoinHandle;

use crate::http::{answer, serve, Error};
use crate::stats::Clock;

/// The tracking id of write `index`, sent at `sent_us`: `lb-<index>-<sent_us>`.
pub(crate) fn tracking_id(index: usize, sent_us: u64) -> String {
    format!("lb-{index}-{sent_us}")
}

/// The write number and send time in a tracking id made by [`tracking_id`].
pub(crate) fn parse_tracking_id(id: &str) -> Option<(usize, u64)> {
    let mut parts = id.strip_prefix("lb-")?.splitn(2, '-');
    let index = parts.next()?.parse().ok()?;
    let sent = parts.next()?.parse().ok()?;
    Some((index, sent))
}

/// Arrivals of one kind (pushes, or webhook deliveries of one event).
#[derive(Debug, Default)]
pub(crate) struct Arrivals {
    seen: Vec<bool>,
    /// Distinct writes that arrived.
    pub distinct: usize,
    /// Every arrival, repeats included.
    pub total: usize,
    /// For each distinct write: arrival time minus the send time in its tracking id (µs).
    pub latencies_us: Vec<u64>,
    /// When the last distinct write arrived.
    pub last_us: u64,
}

impl Arrivals {
    fn with_room(writes: usize) -> Arrivals {
        Arrivals {
            seen: vec![false; writes],
            ..Arrivals::default()
        }
    }

    fn record(&mut self, index: usize, sent_us: u64, now_us: u64) {
        self.total += 1;
        if let Some(slot) = self.seen.get_mut(index) {
            if !*slot {
                *slot = true;
                self.distinct += 1;
                self.latencies_us.push(now_us.saturating_sub(sent_us));
                self.last_us = self.last_us.max(now_us);
            }
        }
    }
}

/// Everything the receiver recorded.
#[derive(Debug, Default)]
pub(crate) struct Record {
    /// Pushes (`POST /push`).
    pub pushes: Arrivals,
    /// Webhook deliveries of `api_push_update`.
    pub updates: Arrivals,
    /// Webhook deliveries of `api_push_complete`.
    pub completes: Arrivals,
    /// Requests that carried no tracking id of this run, or another event.
    pub unmatched: usize,
}

/// A running receiver on 127.0.0.1.
#[derive(Debug)]
pub(crate) struct Receiver {
    /// Its base URL, `http://127.0.0.1:<port>`.
    pub base: String,
    /// What it recorded so far.
    pub record: Arc<Mutex<Record>>,
    task: JoinHandle<()>,
}

impl Receiver {
    /// Start a receiver that expects the writes `0..writes`.
    pub(crate) async fn start(writes: usize, clock: Clock) -> Result<Receiver, Error> {
        let record = Arc::new(Mutex::new(Record {
            pushes: Arrivals::with_room(writes),
            updates: Arrivals::with_room(writes),
            completes: Arrivals::with_room(writes),
            unmatched: 0,
        }));
        let rec = Arc::clone(&record);
        let (addr, task) = serve(Arc::new(move |method: &Method, path: &str, body: Bytes| {
            let now = clock.us();
            let json: serde_json::Value =
                serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            let mut r = rec.lock().unwrap_or_else(PoisonError::into_inner);
            let push = path == "/push";
            let tracking = if push {
                json["trackingId"].as_str()
            } else {
                json["data"]["trackingId"].as_str()
            };
            let target = match (method == Method::POST, push, json["event"].as_str()) {
                (true, true, _) => Some(&mut r.pushes),
                (true, false, Some("api_push_update")) => Some(&mut r.updates),
                (true, false, Some("api_push_complete")) => Some(&mut r.completes),
                _ => None,
            };
            match (target, tracking.and_then(parse_tracking_id)) {
                (Some(a), Some((index, sent))) => a.record(index, sent, now),
                _ => r.unmatched += 1,
            }
            drop(r);
            if push {
                // The source's id for the object, kept by the server as the remote id.
                answer(
                    StatusCode::OK,
                    "application/json",
                    Bytes::from(format!("{{\"id\":\"rcv-{now}\"}}")),
                )
            } else {
                answer(StatusCode::OK, "text/plain", Bytes::from_static(b"ok"))
            }
        }))
        .await?;
        Ok(Receiver {
            base: format!("http://{addr}"),
            record,
            task,
        })
    }

    /// Look at the record.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&Record) -> T) -> T {
        f(&self.record.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_ids_round_trip() {
        assert_eq!(
            parse_tracking_id(&tracking_id(42, 123_456)),
            Some((42, 123_456))
        );
        assert_eq!(parse_tracking_id("trk-1-2"), None);
        assert_eq!(parse_tracking_id("lb-x-2"), None);
    }

    #[test]
    fn arrivals_count_each_write_once() {
        let mut a = Arrivals::with_room(3);
        a.record(1, 100, 250);
        a.record(1, 100, 400);
        a.record(2, 100, 300);
        a.record(7, 100, 300);
        assert_eq!((a.distinct, a.total, a.last_us), (2, 4, 300));
        assert_eq!(a.latencies_us, vec![150, 200]);
    }
}
