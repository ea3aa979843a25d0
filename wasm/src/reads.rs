//! The engine's reads of the JS host's storage, on demand: the core's [`KvRead`] seam over the
//! bounded cache (`cache.rs`) and [`HostReader`], the JS wrapper's reader of the host
//! (`Reader` in `wasm/js/engine.js`): one call across the boundary per read the cache cannot
//! answer. A scan's rows come back as one JSON text (see [`rows`]).
//!
//! An asynchronous host cannot be read from inside a step. Its reader answers what it has
//! already fetched for the step, and answers every other read as absent (a point read) or empty
//! (a scan) while recording it; at the end of the run [`HostReader::missed`] says whether it
//! recorded any. Such a run is discarded by the caller (`lib.rs`); the wrapper fetches what was
//! missed and the step runs again, until a run misses nothing. Each discarded run adds at
//! least one read to what is fetched, and the core is deterministic given its reads, so this
//! ends. What a run read goes to the cache only if the run is kept ([`Reads::finish`]).

use std::cell::RefCell;

use wasm_bindgen::prelude::*;
use writesync_core::{CoreError, KvRead};

use crate::cache::{Cache, Rows, ScanArgs, Value};

#[wasm_bindgen]
extern "C" {
    /// The JS wrapper's reader of the host. Its methods throw a string that says what failed
    /// when the host fails or answers something that is not an answer.
    pub type HostReader;

    /// The host's value of `key`.
    #[wasm_bindgen(method, catch)]
    fn get(this: &HostReader, key: &str) -> Result<Option<String>, JsValue>;

    /// The host's scan, as JSON for [`rows`].
    #[wasm_bindgen(method, catch)]
    fn scan(this: &HostReader, prefix: &str, offset: u32, limit: u32) -> Result<String, JsValue>;

    /// Whether this run answered reads of an asynchronous host that were not fetched yet.
    #[wasm_bindgen(method)]
    pub(crate) fn missed(this: &HostReader) -> bool;
}

fn clamp(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// What a run read from the host (point reads, scans) and its first failed read.
pub(crate) type Learned = (Vec<(String, Value)>, Vec<(ScanArgs, Rows)>, Option<String>);

/// The reads of one run of a step.
pub(crate) struct Reads<'a> {
    pub(crate) host: &'a HostReader,
    cache: &'a Cache,
    /// Point reads answered by the host in this run.
    learned: RefCell<Vec<(String, Value)>>,
    /// Scans answered by the host in this run.
    scanned: RefCell<Vec<(ScanArgs, Rows)>>,
    /// The first read of this run that failed.
    pub(crate) failed: RefCell<Option<String>>,
}

impl<'a> Reads<'a> {
    pub(crate) fn new(host: &'a HostReader, cache: &'a Cache) -> Reads<'a> {
        Reads {
            host,
            cache,
            learned: RefCell::default(),
            scanned: RefCell::default(),
            failed: RefCell::default(),
        }
    }

    fn fail(&self, message: String) -> CoreError {
        self.failed
            .borrow_mut()
            .get_or_insert_with(|| message.clone());
        CoreError::storage(message)
    }

    /// What the run read from the host, and its first failed read.
    pub(crate) fn finish(self) -> Learned {
        (
            self.learned.into_inner(),
            self.scanned.into_inner(),
            self.failed.into_inner(),
        )
    }
}

fn thrown(e: &JsValue) -> String {
    e.as_string()
        .unwrap_or_else(|| "the host's reader threw".to_string())
}

/// A scan's rows as the JS reader hands them over: JSON `[[key, value], ...]`.
fn rows(text: &str) -> Result<Rows, serde_json::Error> {
    serde_json::from_str(text)
}

impl KvRead for Reads<'_> {
    fn get(&self, key: &str) -> Result<Option<String>, CoreError> {
        if let Some(v) = self.cache.get(key) {
            return Ok(v.clone());
        }
        if let Some((_, v)) = self.learned.borrow().iter().find(|(k, _)| k == key) {
            return Ok(v.clone());
        }
        let v = self.host.get(key).map_err(|e| self.fail(thrown(&e)))?;
        self.learned.borrow_mut().push((key.to_string(), v.clone()));
        Ok(v)
    }

    fn scan(&self, prefix: &str, offset: usize, limit: usize) -> Result<Rows, CoreError> {
        let (offset, limit) = (clamp(offset), clamp(limit));
        if let Some(rows) = self.cache.scan(prefix, offset, limit) {
            return Ok(rows.clone());
        }
        let text = self
            .host
            .scan(prefix, offset, limit)
            .map_err(|e| self.fail(thrown(&e)))?;
        let rows = rows(&text).map_err(|e| self.fail(format!("host.scan: {e}")))?;
        self.scanned
            .borrow_mut()
            .push(((prefix.to_string(), offset, limit), rows.clone()));
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rows_are_json_pairs() {
        assert_eq!(
            rows(r#"[["a","é"],["😀","{\"x\":1}"]]"#).unwrap(),
            vec![
                ("a".to_string(), "é".to_string()),
                ("😀".to_string(), "{\"x\":1}".to_string()),
            ]
        );
        for bad in ["", "[", "[[\"a\"]]", "[[\"a\",1]]", "{}"] {
            assert!(rows(bad).is_err(), "{bad:?}");
        }
    }
}
