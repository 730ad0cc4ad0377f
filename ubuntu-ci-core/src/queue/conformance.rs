//! The suite every [`ProgressQueues`] backend passes.

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;

use super::{ProgressQueues, QueueMessage, QueueName};
use crate::error::ErrorKind;

fn name(prefix: &str) -> QueueName {
    QueueName::new(format!("{prefix}-{:08x}", rand::random::<u32>())).expect("queue name")
}

async fn collect(
    queues: &dyn ProgressQueues,
    queue: &QueueName,
    after: Option<u64>,
) -> Vec<QueueMessage> {
    let stream = queues.subscribe(queue, after).await.expect("subscribe");
    tokio::time::timeout(
        Duration::from_secs(30),
        stream.map(|m| m.expect("message")).collect(),
    )
    .await
    .expect("the stream ends after the final message")
}

/// Runs every check; `make` builds an empty backend whose finished queues are dropped after
/// the given retention.
pub async fn run_all<Q, F>(make: F)
where
    Q: ProgressQueues + Clone + 'static,
    F: Fn(Duration) -> Q,
{
    let queues = make(Duration::from_secs(600));
    order_replay_and_end(&queues).await;
    resume_after_a_number(&queues).await;
    subscribers_before_the_first_message_get_everything(queues.clone()).await;
    a_finished_queue_takes_no_more(&queues).await;
    only_objects_are_messages(&queues).await;
    many_queues_at_once_keep_their_own_order(queues.clone()).await;
    finished_queues_are_dropped_after_their_retention(&make(Duration::from_millis(200))).await;
}

/// What was published comes first, in order; the stream follows and ends after the final
/// message; every subscriber gets all of it.
pub async fn order_replay_and_end<Q: ProgressQueues>(queues: &Q) {
    let q = name("order");
    for i in 1..=3 {
        let seq = queues
            .publish(&q, json!({ "log": [format!("line {i}")] }))
            .await
            .expect("publish");
        assert_eq!(seq, i, "numbers count from 1 without gaps");
    }
    let mut live = queues.subscribe(&q, None).await.expect("subscribe");
    for i in 1..=3 {
        let message = live.next().await.expect("replayed").expect("ok");
        assert_eq!(message.seq, i);
    }
    queues
        .publish(&q, json!({"phase": "build", "message": "m"}))
        .await
        .expect("publish");
    assert_eq!(live.next().await.expect("followed").expect("ok").seq, 4);
    queues
        .publish(&q, json!({"state": "COMPLETED"}))
        .await
        .expect("final");
    let last = live.next().await.expect("final message").expect("ok");
    assert!(last.is_final());
    assert!(
        live.next().await.is_none(),
        "the stream ends after the final message"
    );
    // A late subscriber within the retention gets the whole queue.
    let all = collect(queues, &q, None).await;
    assert_eq!(
        all.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
}

/// A subscriber resuming after a number gets only what follows it.
pub async fn resume_after_a_number<Q: ProgressQueues>(queues: &Q) {
    let q = name("resume");
    for i in 0..4 {
        queues
            .publish(&q, json!({ "i": i }))
            .await
            .expect("publish");
    }
    queues
        .publish(&q, json!({"state": "FAILED", "reason": "r"}))
        .await
        .expect("final");
    let rest = collect(queues, &q, Some(2)).await;
    assert_eq!(rest.iter().map(|m| m.seq).collect::<Vec<_>>(), [3, 4, 5]);
    assert!(
        collect(queues, &q, Some(5)).await.is_empty(),
        "nothing after the end"
    );
}

/// Subscribing to a queue nobody published to yet waits for its messages.
pub async fn subscribers_before_the_first_message_get_everything<Q>(queues: Q)
where
    Q: ProgressQueues + Clone + 'static,
{
    let q = name("early");
    let early = {
        let (queues, q) = (queues.clone(), q.clone());
        let stream = queues.subscribe(&q, None).await.expect("subscribe");
        tokio::spawn(async move {
            tokio::time::timeout(
                Duration::from_secs(30),
                stream.map(|m| m.expect("ok").seq).collect::<Vec<_>>(),
            )
            .await
            .expect("ends")
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 0..3 {
        queues
            .publish(&q, json!({ "i": i }))
            .await
            .expect("publish");
    }
    queues
        .publish(&q, json!({"state": "COMPLETED"}))
        .await
        .expect("final");
    assert_eq!(early.await.expect("task"), [1, 2, 3, 4]);
}

/// After its final message a queue refuses more, with a conflict.
pub async fn a_finished_queue_takes_no_more<Q: ProgressQueues>(queues: &Q) {
    let q = name("finished");
    queues
        .publish(&q, json!({"state": "COMPLETED"}))
        .await
        .expect("final");
    let err = queues
        .publish(&q, json!({"log": ["late"]}))
        .await
        .expect_err("finished");
    assert_eq!(err.kind(), ErrorKind::Conflict);
}

/// Messages are JSON objects.
pub async fn only_objects_are_messages<Q: ProgressQueues>(queues: &Q) {
    let q = name("objects");
    for bad in [json!([1]), json!("text"), json!(null)] {
        let err = queues.publish(&q, bad).await.expect_err("not an object");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
}

/// Twenty queues published to at once, each followed by two subscribers: every subscriber
/// sees its queue's messages, all of them, in order.
pub async fn many_queues_at_once_keep_their_own_order<Q>(queues: Q)
where
    Q: ProgressQueues + Clone + 'static,
{
    let mut tasks = Vec::new();
    for n in 0..20 {
        let q = name(&format!("many{n}"));
        for _ in 0..2 {
            let stream = queues.subscribe(&q, None).await.expect("subscribe");
            tasks.push(tokio::spawn(async move {
                let seqs: Vec<u64> = tokio::time::timeout(
                    Duration::from_secs(30),
                    stream.map(|m| m.expect("ok").seq).collect::<Vec<_>>(),
                )
                .await
                .expect("ends");
                assert_eq!(seqs, (1..=51).collect::<Vec<u64>>());
            }));
        }
        let queues = queues.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                queues
                    .publish(&q, json!({ "log": [format!("{i}")] }))
                    .await
                    .expect("publish");
                if i % 10 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            queues
                .publish(&q, json!({"state": "COMPLETED"}))
                .await
                .expect("final");
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
}

/// A finished queue is dropped after its retention: its messages are gone and subscribing
/// says so instead of waiting forever.
pub async fn finished_queues_are_dropped_after_their_retention<Q: ProgressQueues>(queues: &Q) {
    let q = name("retention");
    queues
        .publish(&q, json!({"log": ["x"]}))
        .await
        .expect("publish");
    queues
        .publish(&q, json!({"state": "COMPLETED"}))
        .await
        .expect("final");
    tokio::time::sleep(Duration::from_millis(500)).await;
    match queues.subscribe(&q, None).await {
        Err(err) => assert_eq!(err.kind(), ErrorKind::NotFound),
        Ok(stream) => {
            let first = tokio::time::timeout(Duration::from_secs(5), stream.into_future())
                .await
                .expect("answers")
                .0;
            let err = first.expect("an item").expect_err("dropped");
            assert_eq!(err.kind(), ErrorKind::NotFound);
        }
    }
}
