//! Progress queues in the process: for the embedded mode, where the workers and the lander
//! share one process.
//!
//! Memory is bounded three ways: a message is at most [`MemoryOptions::max_message_bytes`];
//! a queue keeps its last [`MemoryOptions::max_messages`] (older ones are dropped, and a
//! subscriber starting before them begins at the oldest kept); a finished queue is dropped
//! [`MemoryOptions::retention`] after its final message. The names of dropped queues are
//! remembered for twice as long, so a late subscriber gets `NotFound` rather than waiting
//! on a queue that will never speak. An unfinished queue that nobody published to or
//! followed for [`ABANDONED`] was abandoned by a dead worker and is dropped too.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::watch;

use super::{is_final, MessageStream, ProgressQueues, QueueMessage, QueueName};
use crate::error::{Error, Result};

/// An unfinished queue idle this long, with no subscriber, is dropped (workers send
/// heartbeats far more often).
pub const ABANDONED: Duration = Duration::from_secs(24 * 3600);

/// Bounds of the in-process queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryOptions {
    /// How long a finished queue stays for late subscribers.
    pub retention: Duration,
    /// Messages kept per queue.
    pub max_messages: usize,
    /// Largest message, as JSON text.
    pub max_message_bytes: usize,
    /// Bytes of messages (as JSON text) kept per queue: a build's log cannot take the
    /// memory of the process; older messages go first, and a subscriber that missed some
    /// is told how many.
    pub max_queue_bytes: usize,
}

impl Default for MemoryOptions {
    /// Ten minutes, 100,000 messages, 1 MiB a message, 8 MiB a queue.
    fn default() -> MemoryOptions {
        MemoryOptions {
            retention: Duration::from_secs(600),
            max_messages: 100_000,
            max_message_bytes: 1024 * 1024,
            max_queue_bytes: 8 * 1024 * 1024,
        }
    }
}

/// Queues in this process.
#[derive(Debug, Clone)]
pub struct MemoryQueues {
    inner: Arc<Mutex<Inner>>,
    options: MemoryOptions,
}

#[derive(Debug, Default)]
struct Inner {
    queues: HashMap<QueueName, Queue>,
    /// Dropped queues and when.
    dropped: HashMap<QueueName, Instant>,
    /// When the queues were last looked through for expired ones.
    purged_at: Option<Instant>,
}

#[derive(Debug)]
struct Queue {
    messages: VecDeque<QueueMessage>,
    /// The size of each message of `messages`, as JSON text.
    sizes: VecDeque<usize>,
    /// The sum of `sizes`.
    bytes: usize,
    last: u64,
    finished_at: Option<Instant>,
    touched_at: Instant,
    /// The last number, for subscribers waiting for more.
    changed: watch::Sender<u64>,
}

impl Queue {
    fn new() -> Queue {
        Queue {
            messages: VecDeque::new(),
            sizes: VecDeque::new(),
            bytes: 0,
            last: 0,
            finished_at: None,
            touched_at: Instant::now(),
            changed: watch::channel(0).0,
        }
    }
}

impl Default for MemoryQueues {
    fn default() -> MemoryQueues {
        MemoryQueues::new(MemoryOptions::default())
    }
}

impl MemoryQueues {
    /// Empty queues with `options`.
    pub fn new(options: MemoryOptions) -> MemoryQueues {
        MemoryQueues {
            inner: Arc::new(Mutex::new(Inner::default())),
            options,
        }
    }

    /// How many queues are held (finished ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.lock().map_or(0, |inner| inner.queues.len())
    }

    /// Whether no queue is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>> {
        self.inner
            .lock()
            .map_err(|_| Error::internal("the progress queues' lock is poisoned"))
    }
}

impl Inner {
    /// Drops finished queues past `retention`, and forgets dropped names after as long.
    /// Looks through every queue at most every quarter of `retention` (and every second):
    /// with thousands of queues, looking at each publish would cost more than the rest.
    fn purge(&mut self, retention: Duration) {
        let now = Instant::now();
        let every = (retention / 4).min(Duration::from_secs(1));
        if self
            .purged_at
            .is_some_and(|at| now.duration_since(at) < every)
        {
            return;
        }
        self.purged_at = Some(now);
        let expired: Vec<QueueName> = self
            .queues
            .iter()
            .filter(|(_, q)| {
                let expired = q
                    .finished_at
                    .is_some_and(|at| now.duration_since(at) >= retention);
                let abandoned = q.finished_at.is_none()
                    && q.changed.receiver_count() == 0
                    && now.duration_since(q.touched_at) >= ABANDONED;
                expired || abandoned
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in expired {
            self.queues.remove(&name);
            self.dropped.insert(name, now);
        }
        self.dropped
            .retain(|_, at| now.duration_since(*at) < retention.saturating_mul(2));
    }
}

#[async_trait]
impl ProgressQueues for MemoryQueues {
    async fn publish(&self, queue: &QueueName, body: serde_json::Value) -> Result<u64> {
        if !body.is_object() {
            return Err(Error::invalid("a progress message is a JSON object"));
        }
        let size = serde_json::to_string(&body)
            .map(|t| t.len())
            .unwrap_or(usize::MAX);
        if size > self.options.max_message_bytes {
            return Err(Error::invalid(format!(
                "a progress message is at most {} bytes; this one is {size}",
                self.options.max_message_bytes
            )));
        }
        let mut inner = self.lock()?;
        inner.purge(self.options.retention);
        inner.dropped.remove(queue);
        let entry = inner.queues.entry(queue.clone()).or_insert_with(Queue::new);
        if entry.finished_at.is_some() {
            return Err(Error::conflict(format!(
                "progress queue {queue} is finished; it takes no more messages"
            )));
        }
        let final_message = is_final(&body);
        entry.touched_at = Instant::now();
        entry.last += 1;
        let seq = entry.last;
        entry.messages.push_back(QueueMessage { seq, body });
        entry.sizes.push_back(size);
        entry.bytes += size;
        // The newest message always stays (it may be the final one).
        while entry.messages.len() > 1
            && (entry.messages.len() > self.options.max_messages.max(1)
                || entry.bytes > self.options.max_queue_bytes)
        {
            entry.messages.pop_front();
            entry.bytes -= entry.sizes.pop_front().unwrap_or(0);
        }
        if final_message {
            entry.finished_at = Some(Instant::now());
        }
        entry.changed.send_replace(seq);
        Ok(seq)
    }

    async fn subscribe(&self, queue: &QueueName, after: Option<u64>) -> Result<MessageStream> {
        let receiver = {
            let mut inner = self.lock()?;
            inner.purge(self.options.retention);
            if inner.dropped.contains_key(queue) {
                return Err(gone(queue));
            }
            inner
                .queues
                .entry(queue.clone())
                .or_insert_with(Queue::new)
                .changed
                .subscribe()
        };
        let state = Subscription {
            queues: self.clone(),
            queue: queue.clone(),
            cursor: after.unwrap_or(0),
            receiver,
            pending: VecDeque::new(),
            ended: false,
        };
        Ok(Box::pin(futures::stream::unfold(state, Subscription::next)))
    }
}

fn gone(queue: &QueueName) -> Error {
    Error::not_found(format!(
        "progress queue {queue} finished long ago and was dropped"
    ))
}

struct Subscription {
    queues: MemoryQueues,
    queue: QueueName,
    cursor: u64,
    receiver: watch::Receiver<u64>,
    pending: VecDeque<QueueMessage>,
    ended: bool,
}

enum Step {
    Ready,
    End,
    Wait,
    Gone,
}

impl Subscription {
    async fn next(mut self) -> Option<(Result<QueueMessage>, Subscription)> {
        loop {
            if let Some(message) = self.pending.pop_front() {
                self.cursor = message.seq;
                if message.is_final() {
                    self.ended = true;
                    self.pending.clear();
                }
                return Some((Ok(message), self));
            }
            if self.ended {
                return None;
            }
            match self.fill() {
                Step::Ready => continue,
                Step::End => return None,
                Step::Gone => {
                    self.ended = true;
                    let err = gone(&self.queue);
                    return Some((Err(err), self));
                }
                Step::Wait => {
                    if self.receiver.changed().await.is_err() {
                        // The queue was dropped: the next fill says so.
                        if matches!(self.fill(), Step::Ready) {
                            continue;
                        }
                        self.ended = true;
                        let err = gone(&self.queue);
                        return Some((Err(err), self));
                    }
                }
            }
        }
    }

    /// Takes the messages after the cursor into `pending`.
    fn fill(&mut self) -> Step {
        let Ok(inner) = self.queues.lock() else {
            return Step::Gone;
        };
        let Some(queue) = inner.queues.get(&self.queue) else {
            return Step::Gone;
        };
        self.receiver.borrow_and_update();
        // Messages this subscriber has not seen were dropped to bound the queue: say so,
        // as a log line in their place.
        if let Some(first) = queue.messages.front() {
            if first.seq > self.cursor + 1 {
                let missed = first.seq - self.cursor - 1;
                self.pending.push_back(QueueMessage {
                    seq: first.seq - 1,
                    body: serde_json::json!({"log": [format!(
                        "[ubuntu-ci: {missed} earlier progress message{} dropped: a queue \
                         keeps its latest {} MiB and {} messages]",
                        if missed == 1 { " was" } else { "s were" },
                        self.queues.options.max_queue_bytes / (1024 * 1024),
                        self.queues.options.max_messages
                    )]}),
                });
            }
        }
        self.pending.extend(
            queue
                .messages
                .iter()
                .filter(|m| m.seq > self.cursor)
                .cloned(),
        );
        if !self.pending.is_empty() {
            Step::Ready
        } else if queue.finished_at.is_some() {
            Step::End
        } else {
            Step::Wait
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_queues_pass_the_conformance_suite() {
        super::super::conformance::run_all(|retention| {
            MemoryQueues::new(MemoryOptions {
                retention,
                ..MemoryOptions::default()
            })
        })
        .await;
    }

    #[tokio::test]
    async fn a_queue_keeps_its_last_messages_only() {
        let queues = MemoryQueues::new(MemoryOptions {
            max_messages: 3,
            ..MemoryOptions::default()
        });
        let q = QueueName::new("q").unwrap();
        for i in 0..5 {
            queues
                .publish(&q, serde_json::json!({ "i": i }))
                .await
                .unwrap();
        }
        queues
            .publish(&q, serde_json::json!({"state": "COMPLETED"}))
            .await
            .unwrap();
        use futures::StreamExt;
        let messages: Vec<QueueMessage> = queues
            .subscribe(&q, None)
            .await
            .unwrap()
            .map(|m| m.unwrap())
            .collect()
            .await;
        let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
        // The three dropped are said, in their place, then the three kept.
        assert_eq!(seqs, [3, 4, 5, 6]);
        let said = messages[0].body["log"][0].as_str().unwrap();
        assert!(
            said.contains("3 earlier progress messages were dropped"),
            "{said}"
        );
        // One that read them all before sees no marker.
        let after: Vec<u64> = queues
            .subscribe(&q, Some(4))
            .await
            .unwrap()
            .map(|m| m.unwrap().seq)
            .collect()
            .await;
        assert_eq!(after, [5, 6]);
        let big = serde_json::json!({ "log": ["x".repeat(2 * 1024 * 1024)] });
        assert_eq!(
            queues
                .publish(&QueueName::new("big").unwrap(), big)
                .await
                .unwrap_err()
                .kind(),
            crate::ErrorKind::InvalidInput
        );
    }

    /// A queue is bounded by bytes too: a build's log of 100 MiB keeps its latest 1 MiB
    /// (here), and the final message always.
    #[tokio::test]
    async fn a_queue_keeps_its_latest_bytes_only() {
        use futures::StreamExt;
        let queues = MemoryQueues::new(MemoryOptions {
            max_queue_bytes: 1024 * 1024,
            ..MemoryOptions::default()
        });
        let q = QueueName::new("log").unwrap();
        let line = "y".repeat(1000);
        for _ in 0..100 {
            let batch: Vec<&str> = (0..1000).map(|_| line.as_str()).collect();
            queues
                .publish(&q, serde_json::json!({ "log": batch }))
                .await
                .unwrap();
        }
        queues
            .publish(&q, serde_json::json!({"state": "COMPLETED"}))
            .await
            .unwrap();
        let messages: Vec<QueueMessage> = queues
            .subscribe(&q, None)
            .await
            .unwrap()
            .map(|m| m.unwrap())
            .collect()
            .await;
        let kept: usize = messages
            .iter()
            .map(|m| serde_json::to_string(&m.body).unwrap().len())
            .sum();
        assert!(kept <= 1024 * 1024 + 4096, "{kept} bytes kept");
        assert!(messages[0].body["log"][0]
            .as_str()
            .unwrap()
            .contains("earlier progress messages were dropped"));
        assert_eq!(messages.last().unwrap().body["state"], "COMPLETED");
    }
}
