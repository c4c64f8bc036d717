//! Consuming the job queues: each on a channel of its own, with an answer asked for in time.
//!
//! A `basic.consume` on a quorum queue is a call to the queue's leader. When that node has just
//! frozen, the broker holds the answer until the cluster has taken the node for down, elected
//! another leader, and its own call has timed out: 7 s seen on RabbitMQ 3.10 with
//! `net_ticktime` 6, while the same consume asked again a second later, of the new leader, is
//! answered at once. So a consume not answered within [`CONSUME_ANSWER`] is asked again on a
//! fresh channel. The first one is not given up: if the broker answers it later, its deliveries
//! join the others (a consumer left unread would sit on its prefetched jobs until the session
//! ends), so for that session the queue has two consumers and twice the prefetch; the
//! semaphore in [`crate::worker::run`] still bounds the jobs run at once.

use std::time::Duration;

use futures_util::stream::{self, BoxStream, SelectAll, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection};

use super::topology;
use crate::backoff::Backoff;
use crate::job::JobKind;

/// A delivery, or the end of a consumer (`None`: the broker cancelled it).
pub type Next = (JobKind, Option<lapin::Result<Delivery>>);

/// The job queues' consumers, merged.
pub type Deliveries = SelectAll<BoxStream<'static, Next>>;

/// How long the broker may take to answer a consume before it is asked again on another
/// channel (a healthy node answers within milliseconds). Short, because the cost of asking
/// again is one channel (and, if both are answered, one more consumer for the session), and
/// the cost of waiting is the whole backlog's: the stretch in which a consume is held ends
/// when the cluster has elected the new leader, and the next ask after it is answered.
pub const CONSUME_ANSWER: Duration = Duration::from_millis(500);

/// How long a drain waits for the broker to answer a consumer's cancel.
const CANCEL_ANSWER: Duration = Duration::from_secs(1);

/// A consumer asked for, answered or not yet: where to cancel it when the worker drains.
pub struct Consumed {
    channel: Channel,
    tag: ShortString,
}

impl Consumed {
    /// Stops the deliveries to this consumer (a drain); a broker that does not answer in time
    /// is not waited for.
    pub async fn cancel(&self) {
        let cancel = self
            .channel
            .basic_cancel(self.tag.clone(), BasicCancelOptions::default());
        let _ = tokio::time::timeout(CANCEL_ANSWER, cancel).await;
    }
}

/// A job queue consumed: which, and its deliveries (the answered consumer's and any late
/// one's).
pub struct Consuming {
    /// The job kind whose queue this is.
    pub kind: JobKind,
    /// One stream per consumer the broker answered: usually one, two if a late answer came.
    pub deliveries: Vec<BoxStream<'static, Next>>,
}

/// Every consumer a session asked for, answered or not: a drain cancels them all, so that a
/// consume the broker answers during the drain does not sit on prefetched jobs until the
/// connection closes.
pub type AskedConsumers = std::sync::Mutex<Vec<Consumed>>;

/// How long a consume is asked again every [`CONSUME_ANSWER`]: a cluster replaces a frozen
/// leader within this (8.5 s seen with `net_ticktime` 6), and the first ask after that is
/// answered, so a longer wait here would add itself to the failover.
const FAILOVER_WINDOW: Duration = Duration::from_secs(20);

/// The longest wait between two asks of one consume after [`FAILOVER_WINDOW`]: a queue
/// without a leader for long (its cluster lost the majority) is asked a few times a minute, a
/// channel each.
const LONGEST_CONSUME_WAIT: Duration = Duration::from_secs(15);

impl Consuming {
    /// Says that the broker answered: when a queue's leader fails over, the other job queue
    /// is consumed before this one.
    pub fn log(&self) {
        tracing::info!(
            queue = topology::job_queue(self.kind),
            "the broker answered the consume"
        );
    }
}

/// Consumes `kind`'s job queue with `prefetch` unacked deliveries per consumer, each consumer
/// noted in `asked` before it is asked for. Asks again every [`CONSUME_ANSWER`] for
/// `FAILOVER_WINDOW`, then after twice as long each time (up to `LONGEST_CONSUME_WAIT`),
/// until the broker answers one.
pub async fn consume(
    connection: &Connection,
    kind: JobKind,
    prefetch: u16,
    asked_consumers: &AskedConsumers,
) -> lapin::Result<Consuming> {
    let mut consuming = Consuming {
        kind,
        deliveries: Vec::new(),
    };
    let started = tokio::time::Instant::now();
    let mut wait = CONSUME_ANSWER;
    let mut waits = Backoff::new(CONSUME_ANSWER * 2, LONGEST_CONSUME_WAIT).pauses();
    loop {
        let channel = connection.create_channel().await?;
        // Per consumer (quorum queues refuse a channel-wide prefetch).
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        let tag: ShortString = format!("wecom-archive-{}-{}", kind.name(), uuid::Uuid::new_v4())
            .as_str()
            .into();
        asked_consumers
            .lock()
            .expect("not poisoned")
            .push(Consumed {
                channel: channel.clone(),
                tag: tag.clone(),
            });
        let mut asked = Box::pin(async move {
            channel
                .basic_consume(
                    topology::job_queue(kind).into(),
                    tag,
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
        });
        match tokio::time::timeout(wait, &mut asked).await {
            Ok(consumer) => {
                let ended = stream::once(async move { (kind, None) });
                consuming.deliveries.push(
                    consumer?
                        .map(move |delivery| (kind, Some(delivery)))
                        .chain(ended)
                        .boxed(),
                );
                return Ok(consuming);
            }
            Err(_) => {
                tracing::warn!(
                    queue = topology::job_queue(kind),
                    "the broker did not answer a consume within {wait:?}; asking again on another channel"
                );
                if started.elapsed() >= FAILOVER_WINDOW {
                    wait = waits.next_pause();
                }
                // Answered later, it delivers beside the next one; refused later, it delivers
                // nothing. Its end is not the queue's: the consumer that was answered says that.
                let late = stream::once(asked)
                    .filter_map(|consumer| std::future::ready(consumer.ok()))
                    .flatten()
                    .map(move |delivery| (kind, Some(delivery)));
                consuming.deliveries.push(late.boxed());
            }
        }
    }
}
