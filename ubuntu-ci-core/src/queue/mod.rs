//! Progress queues: named queues (`bsbuilder-1-exchange`) on which a worker publishes its
//! progress and whoever follows the request subscribes.
//!
//! A queue is an ordered log of JSON messages numbered from 1. A subscriber first receives
//! what was already published (from the start, or after the number it gives to resume),
//! then follows new messages as they come. A queue ends with its final message, a
//! [`ProgressMessage::Done`] (`{"state": "COMPLETED"}` or `{"state": "FAILED", "reason":
//! …}`): subscriptions end after it, and publishing more is a conflict. Finished queues are
//! kept for a while for late subscribers, then dropped, so memory stays bounded.
//! [`memory::MemoryQueues`] keeps queues in the process; a RabbitMQ backend implements the
//! same trait. [`conformance`] is the suite every backend runs.
//!
//! The messages a worker publishes are [`ProgressMessage`]s; `docs/progress.md` describes
//! them.

pub mod conformance;
pub mod memory;

use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The longest queue name, in bytes.
pub const MAX_QUEUE_NAME_LEN: usize = 200;

/// A queue's name: 1 to 200 of `a-z A-Z 0-9 . _ -`, starting with a letter or digit
/// (`bsbuilder-1-exchange`, as the seed names them).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct QueueName(String);

impl QueueName {
    /// Validates `name`.
    ///
    /// # Errors
    /// `InvalidInput` naming the broken rule.
    pub fn new(name: impl Into<String>) -> Result<QueueName> {
        let name = name.into();
        let ok = !name.is_empty()
            && name.len() <= MAX_QUEUE_NAME_LEN
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(QueueName(name))
        } else {
            Err(Error::invalid(format!(
                "invalid queue name {name:?}: 1 to {MAX_QUEUE_NAME_LEN} of a-z A-Z 0-9 . _ -, \
                 starting with a letter or digit"
            )))
        }
    }

    /// A new queue of a worker kind, as the seed names them: `<kind>-<8 hex digits>-exchange`
    /// (`bsbuilder-1a2b3c4d-exchange`).
    ///
    /// # Errors
    /// `InvalidInput` for a `kind` a queue name cannot start with.
    pub fn fresh(kind: &str) -> Result<QueueName> {
        QueueName::new(format!("{kind}-{:08x}-exchange", rand::random::<u32>()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for QueueName {
    type Error = Error;
    fn try_from(name: String) -> Result<QueueName> {
        QueueName::new(name)
    }
}

impl From<QueueName> for String {
    fn from(name: QueueName) -> String {
        name.0
    }
}

impl std::str::FromStr for QueueName {
    type Err = Error;
    fn from_str(text: &str) -> Result<QueueName> {
        QueueName::new(text)
    }
}

/// One message of a queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueMessage {
    /// Its number in the queue, from 1, without gaps.
    pub seq: u64,
    /// What was published.
    pub body: serde_json::Value,
}

impl QueueMessage {
    /// Whether this is a queue's final message (`state` COMPLETED or FAILED).
    pub fn is_final(&self) -> bool {
        is_final(&self.body)
    }
}

/// Whether `body` ends its queue: an object whose `state` is `COMPLETED` or `FAILED`.
pub fn is_final(body: &serde_json::Value) -> bool {
    matches!(
        body.get("state").and_then(serde_json::Value::as_str),
        Some("COMPLETED" | "FAILED")
    )
}

/// Messages of a subscription, in order.
pub type MessageStream = Pin<Box<dyn Stream<Item = Result<QueueMessage>> + Send>>;

/// Named progress queues.
///
/// Every call is safe from many tasks at once. Queues come into being when first published
/// to or subscribed to.
#[async_trait]
pub trait ProgressQueues: Send + Sync + fmt::Debug {
    /// Appends `body` (a JSON object) to `queue` and returns its number. A final message
    /// ([`is_final`]) finishes the queue.
    ///
    /// # Errors
    /// `InvalidInput` when `body` is not an object or is larger than the backend allows;
    /// `Conflict` when the queue is finished.
    async fn publish(&self, queue: &QueueName, body: serde_json::Value) -> Result<u64>;

    /// The messages of `queue` numbered above `after` (all when `None`): those already
    /// published, then new ones as they come. The stream ends after the final message; it
    /// also ends, with a `NotFound` error, if the queue was dropped for age meanwhile.
    ///
    /// # Errors
    /// `NotFound` when the queue finished and was dropped, so its messages are gone.
    async fn subscribe(&self, queue: &QueueName, after: Option<u64>) -> Result<MessageStream>;
}

/// What workers publish on progress queues.
///
/// Each variant has its own fields, so the JSON tells them apart without a tag:
///
/// - `{"phase": "build", "message": "building hello 2.10-3 in bookworm-amd64"}` — a new
///   phase of the work began;
/// - `{"test_request_id": "1", "message": "50%", "current": "1", "total": "2"}` — the test
///   runner started test `current` of `total` (the seed's test progress, numbers as
///   strings as the seed writes them);
/// - `{"log": ["line", …]}` — lines of a log, batched (a batch goes out when it holds
///   [`LOG_BATCH_LINES`] lines or has waited [`LOG_BATCH_MS`] milliseconds);
/// - `{"heartbeat": 120, "phase": "build"}` — the worker is alive, this many seconds into
///   a long phase that printed nothing lately;
/// - `{"state": "COMPLETED", …}` / `{"state": "FAILED", "reason": "…", …}` — the end, with
///   the worker's results beside `state` (the seed's completion message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ProgressMessage {
    /// The end of the work.
    Done(Done),
    /// Test `current` of `total` began.
    Tests {
        /// The test request.
        test_request_id: String,
        /// How far, for people (`50%`).
        message: String,
        /// Tests begun so far.
        current: String,
        /// Tests to run.
        total: String,
    },
    /// A phase began.
    Phase {
        /// Its name (`fetch`, `chroot`, `build`, `publish`, …).
        phase: String,
        /// What it is doing, for people.
        message: String,
    },
    /// Log lines.
    Log {
        /// The lines, without their line ends.
        log: Vec<String>,
    },
    /// Alive, `heartbeat` seconds into `phase`.
    Heartbeat {
        /// Seconds since the phase began.
        heartbeat: u64,
        /// The phase.
        phase: String,
    },
}

/// Lines per log batch.
pub const LOG_BATCH_LINES: usize = 200;
/// Longest a log line waits for its batch, in milliseconds.
pub const LOG_BATCH_MS: u64 = 500;

/// The final message of a queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    /// How it ended.
    pub state: DoneState,
    /// Why it failed (FAILED only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The worker's results (`url_list`, `artifacts`, …), beside `state`.
    #[serde(flatten)]
    pub results: serde_json::Map<String, serde_json::Value>,
}

impl Done {
    /// Notes the kind of the error that ended the work (`"error_kind": "invalid_input"`),
    /// when it was refused or broke rather than ran and failed: a frontend then reports
    /// it as that kind (a bad request is not a failed build).
    #[must_use]
    pub fn with_error_kind(mut self, kind: Option<crate::ErrorKind>) -> Done {
        if let Some(kind) = kind {
            self.results
                .insert("error_kind".into(), kind.as_str().into());
        }
        self
    }

    /// The kind noted by [`Done::with_error_kind`], if any.
    pub fn error_kind(&self) -> Option<crate::ErrorKind> {
        self.results
            .get("error_kind")
            .and_then(serde_json::Value::as_str)
            .map(crate::ErrorKind::from_wire)
    }
}

/// How work ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DoneState {
    /// It succeeded.
    Completed,
    /// It failed; `reason` says why.
    Failed,
}

impl Done {
    /// `{"state": "COMPLETED"}` with `results` beside it.
    pub fn completed(results: serde_json::Map<String, serde_json::Value>) -> Done {
        Done {
            state: DoneState::Completed,
            reason: None,
            results,
        }
    }

    /// `{"state": "FAILED", "reason": reason}`.
    pub fn failed(reason: impl Into<String>) -> Done {
        Done {
            state: DoneState::Failed,
            reason: Some(reason.into()),
            results: serde_json::Map::new(),
        }
    }
}

impl ProgressMessage {
    /// `{"state": "COMPLETED"}` with `results` beside it.
    pub fn completed(results: serde_json::Map<String, serde_json::Value>) -> ProgressMessage {
        ProgressMessage::Done(Done::completed(results))
    }

    /// `{"state": "FAILED", "reason": reason}`.
    pub fn failed(reason: impl Into<String>) -> ProgressMessage {
        ProgressMessage::Done(Done::failed(reason))
    }

    /// The message as published.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Reads a published message.
    ///
    /// # Errors
    /// `InvalidInput` when `body` is none of the shapes above.
    pub fn from_json(body: &serde_json::Value) -> Result<ProgressMessage> {
        serde_json::from_value(body.clone())
            .map_err(|e| Error::invalid(format!("not a progress message: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn queue_names_are_checked() {
        QueueName::new("bsbuilder-1-exchange").unwrap();
        QueueName::new("ticket.1_x").unwrap();
        for bad in ["", "-x", ".x", "a/b", "a b", "ä", &"x".repeat(201)] {
            assert!(QueueName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn progress_messages_have_the_documented_shapes() {
        let cases = [
            (
                ProgressMessage::Phase {
                    phase: "build".into(),
                    message: "building".into(),
                },
                json!({"phase": "build", "message": "building"}),
            ),
            (
                ProgressMessage::Tests {
                    test_request_id: "1".into(),
                    message: "10%".into(),
                    current: "1".into(),
                    total: "10".into(),
                },
                json!({"test_request_id": "1", "message": "10%", "current": "1", "total": "10"}),
            ),
            (
                ProgressMessage::Log {
                    log: vec!["a".into(), "b".into()],
                },
                json!({"log": ["a", "b"]}),
            ),
            (
                ProgressMessage::Heartbeat {
                    heartbeat: 60,
                    phase: "build".into(),
                },
                json!({"heartbeat": 60, "phase": "build"}),
            ),
            (
                ProgressMessage::completed(serde_json::Map::new()),
                json!({"state": "COMPLETED"}),
            ),
            (
                ProgressMessage::failed("no such build-dependency: libfoo-dev"),
                json!({"state": "FAILED", "reason": "no such build-dependency: libfoo-dev"}),
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(message.to_json(), expected);
            assert_eq!(ProgressMessage::from_json(&expected).unwrap(), message);
        }
        let with_results = json!({"state": "COMPLETED", "url_list": ["x"]});
        match ProgressMessage::from_json(&with_results).unwrap() {
            ProgressMessage::Done(done) => assert_eq!(done.results["url_list"], json!(["x"])),
            other => panic!("{other:?}"),
        }
        assert!(is_final(&with_results));
        assert!(!is_final(&json!({"phase": "x", "message": "y"})));
        assert!(ProgressMessage::from_json(&json!({"what": 1})).is_err());
    }
}
