//! Publishing with confirms: a message counts as published only when the broker confirmed it
//! and did not return it as unroutable (every publish is `mandatory`).
//!
//! A refused publish is tried again on a fresh channel. RabbitMQ keeps a quorum queue's
//! publisher state per channel, with the queue's leader as it was at the channel's first
//! publish to it; a channel that first published while that leader was frozen (before the
//! cluster elected another) keeps asking the frozen node and has its publishes refused until
//! the node is back (seen on 3.10: 11 s per try, `net_ticktime` + 5 s). A new channel starts
//! from the leader the cluster knows now.
//!
//! A publish on a young channel (opened in the last 20 s: a new session's, or a renewed one)
//! whose confirm has not come within a second is also sent on a fresh channel, each second,
//! until one copy is confirmed. A channel opened after a quorum queue's leader froze, whose
//! first publish to it went to that node before the cluster elected another, is held for
//! `net_ticktime` + 5 s before the refusal above (seen on 3.10: 7 s after the election); a
//! channel opened after the election publishes at once. A channel that has lived longer was
//! opened before the freeze, and its publishes follow the new leader. The price is a duplicate
//! (a result with the same `result_id`, or a continuation or retry that runs the rest of its
//! job twice) when a slow broker confirms more than one copy, only in a channel's first 20 s.
//! A connection the broker has blocked (a memory or disk alarm) is not asked again, since
//! every copy would wait there, nor is a publish once the worker is stopping.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;

/// Why a message was not published. [`PublishError::ends_session`] says which failures
/// take the broker session down with them.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The broker returned the `mandatory` message as unroutable: no queue is bound.
    #[error("the broker returned the message: no queue is bound for {exchange}/{routing_key}")]
    Returned {
        /// The exchange it was published to.
        exchange: String,
        /// The routing key no queue was bound for.
        routing_key: String,
    },
    /// The broker nacked the message: a queue is full, or a quorum queue has no leader.
    #[error("the broker refused the message (nack): a queue may be full")]
    Nacked,
    /// The connection or the channel failed.
    #[error("the broker connection failed: {0}")]
    Broker(#[from] lapin::Error),
    /// Given up without an answer: the worker is stopping or its session ended.
    #[error("gave up publishing: the worker is stopping or its broker session ended")]
    Stopped,
    /// No confirm came within the publisher's confirm timeout (carried here).
    #[error("the broker did not confirm within {0:?}: its node may be down or frozen")]
    ConfirmTimedOut(Duration),
}

impl PublishError {
    /// Whether the session that published is done for: its connection or channel failed, or
    /// its node does not answer.
    pub fn ends_session(&self) -> bool {
        matches!(self, Self::Broker(_) | Self::ConfirmTimedOut(_))
    }
}

/// How many times an unroutable message is tried again: a missing queue may be on its way
/// (another worker declaring the topology), but does not come back by waiting long.
const RETURNED_TRIES: u32 = 5;

/// The first pause after a refused publish, doubling up to [`MAX_REFUSED_PAUSE`].
const FIRST_REFUSED_PAUSE: Duration = Duration::from_millis(200);

/// The longest wait before a refused publish is tried again. A quorum queue refuses publishes
/// while its cluster elects a new leader (a node died or froze) as well as when it is full: a
/// longer wait would add itself to the broker's failover, and trying a refused publish every
/// few seconds costs the broker little.
const MAX_REFUSED_PAUSE: Duration = Duration::from_secs(2);

/// How long a publish waits for its confirm before it is also sent on a fresh channel, and
/// then between copies. Healthy quorum queues confirm in milliseconds; a cluster electing a new
/// leader is waited out to within this.
const REASK_AFTER: Duration = Duration::from_secs(1);

/// How young a channel must be for a publish on it to be sent again: a failover's length (the
/// cluster takes a frozen node for down and elects new leaders within about 10 s here).
const REASK_WINDOW: Duration = Duration::from_secs(20);

/// How long a publish already under way when `stop` fires may still wait for its confirm. Its
/// frames may have left: abandoning a continuation the broker then confirms would run the rest
/// of its job twice, so it gets a moment; a broker that does not answer in time does not hold a
/// stopping worker.
const CONFIRM_GRACE: Duration = Duration::from_secs(2);

/// A channel in confirm mode on the publisher connection, shared by its clones.
#[derive(Clone)]
pub struct Publisher {
    connection: Arc<Connection>,
    /// Where publishes go, and when it was opened; replaced after a refusal
    /// ([`Publisher::renew_channel`]) or for a copy ([`Publisher::fresh_channel`]).
    current: Arc<Mutex<(Channel, Instant)>>,
    /// How long a publish waits for its confirm ([`PublishError::ConfirmTimedOut`]).
    confirm_timeout: Duration,
}

async fn confirming_channel(connection: &Connection) -> lapin::Result<Channel> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

impl Publisher {
    /// Opens a confirm-mode channel on `connection`; each publish waits at most
    /// `confirm_timeout` for its confirm.
    pub async fn open(
        connection: &Arc<Connection>,
        confirm_timeout: Duration,
    ) -> lapin::Result<Self> {
        Ok(Self {
            current: Arc::new(Mutex::new((
                confirming_channel(connection).await?,
                Instant::now(),
            ))),
            connection: Arc::clone(connection),
            confirm_timeout,
        })
    }

    /// The channel publishes go to now.
    pub fn channel(&self) -> Channel {
        self.current().0
    }

    fn current(&self) -> (Channel, Instant) {
        self.current.lock().expect("never poisoned").clone()
    }

    /// Publishes one message and waits for its confirm.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        self.publish_on(self.channel(), exchange, routing_key, body, properties)
            .await
    }

    /// Replaces `refused_on` with a fresh channel, unless another publish already did. The old
    /// one closes when its last publish is done with it. A broker that does not open the
    /// channel within the confirm timeout ends the session, as a confirm that does not come.
    async fn renew_channel(&self, refused_on: &Channel) -> Result<(), PublishError> {
        // Jobs refused together (a full result queue) open one channel between them, not one
        // each: the first to get here renews it.
        if self.channel().id() != refused_on.id() {
            return Ok(());
        }
        let fresh =
            tokio::time::timeout(self.confirm_timeout, confirming_channel(&self.connection))
                .await
                .map_err(|_| PublishError::ConfirmTimedOut(self.confirm_timeout))??;
        let mut current = self.current.lock().expect("never poisoned");
        if current.0.id() == refused_on.id() {
            *current = (fresh, Instant::now());
        }
        Ok(())
    }

    /// A channel opened within the last [`REASK_AFTER`]: the current one if it is that young
    /// (another copy just opened it), else a new one that becomes current. Copies sent
    /// together share one.
    async fn fresh_channel(&self) -> Result<Channel, PublishError> {
        let (channel, opened) = self.current();
        if opened.elapsed() < REASK_AFTER {
            return Ok(channel);
        }
        self.renew_channel(&channel).await?;
        Ok(self.channel())
    }

    /// One copy of a publish: on `channel`, or on a fresh channel. Returns the channel it went
    /// out on with its outcome, so that a refusal renews that channel.
    async fn copy(
        &self,
        channel: Option<Channel>,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: &BasicProperties,
    ) -> (Option<Channel>, Result<(), PublishError>) {
        let channel = match channel {
            Some(channel) => channel,
            None => match self.fresh_channel().await {
                Ok(channel) => channel,
                Err(err) => return (None, Err(err)),
            },
        };
        let outcome = self
            .publish_on(
                channel.clone(),
                exchange,
                routing_key,
                body,
                properties.clone(),
            )
            .await;
        (Some(channel), outcome)
    }

    async fn publish_on(
        &self,
        channel: Channel,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        let confirmed = async {
            channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    body,
                    properties,
                )
                .await?
                .await
        };
        let confirm = tokio::time::timeout(self.confirm_timeout, confirmed)
            .await
            .map_err(|_| PublishError::ConfirmTimedOut(self.confirm_timeout))??;
        if !confirm.is_ack() {
            return Err(PublishError::Nacked);
        }
        match confirm.take_message() {
            None => Ok(()),
            Some(_) => Err(PublishError::Returned {
                exchange: exchange.to_owned(),
                routing_key: routing_key.to_owned(),
            }),
        }
    }

    /// Publishes on the current channel and, if that channel is younger than [`REASK_WINDOW`],
    /// again on a fresh channel each [`REASK_AFTER`] while no copy is confirmed (not on a
    /// connection the broker blocked, nor once `stop` fires). The first confirm wins. When
    /// every copy has failed, the failure returned is one that ends the session if any did,
    /// with the channel it came from; with none confirmed within the confirm timeout, the
    /// publish has timed out.
    async fn publish_asking_again(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: &BasicProperties,
        stop: &CancellationToken,
    ) -> Result<(), (PublishError, Option<Channel>)> {
        let (channel, opened) = self.current();
        let ask_again = opened.elapsed() < REASK_WINDOW;
        let mut copies = FuturesUnordered::new();
        copies.push(self.copy(Some(channel), exchange, routing_key, body, properties));
        let mut failure: Option<(PublishError, Option<Channel>)> = None;
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + REASK_AFTER, REASK_AFTER);
        let asking = async {
            loop {
                tokio::select! {
                    biased;
                    Some((channel, outcome)) = copies.next() => match outcome {
                        Ok(()) => return Ok(()),
                        Err(err) => {
                            let worse = failure
                                .as_ref()
                                .is_none_or(|(kept, _)| err.ends_session() || !kept.ends_session());
                            if worse {
                                failure = Some((err, channel));
                            }
                            if copies.is_empty() {
                                return Err(failure.take().expect("just kept"));
                            }
                        }
                    },
                    _ = ticks.tick(), if ask_again => {
                        if stop.is_cancelled() || self.connection.status().blocked() {
                            continue;
                        }
                        tracing::warn!(
                            exchange,
                            routing_key,
                            copies = copies.len() + 1,
                            "no publish confirm within {REASK_AFTER:?}; asked again on a fresh channel"
                        );
                        copies.push(self.copy(None, exchange, routing_key, body, properties));
                    }
                }
            }
        };
        tokio::time::timeout(self.confirm_timeout, asking)
            .await
            .map_err(|_| (PublishError::ConfirmTimedOut(self.confirm_timeout), None))?
    }

    /// Publishes until confirmed, waiting with backoff (up to `MAX_REFUSED_PAUSE`) while the
    /// broker refuses (a full result queue, say). Gives up when the connection fails, when
    /// `stop` fires, or after a few returns: the job is then released for redelivery.
    pub async fn publish_until_confirmed(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: &BasicProperties,
        stop: &CancellationToken,
    ) -> Result<(), PublishError> {
        let mut pauses = Backoff::new(FIRST_REFUSED_PAUSE, MAX_REFUSED_PAUSE).pauses();
        let mut returned = 0;
        loop {
            if stop.is_cancelled() {
                return Err(PublishError::Stopped);
            }
            let publish = self.publish_asking_again(exchange, routing_key, body, properties, stop);
            tokio::pin!(publish);
            let attempt = tokio::select! {
                biased;
                outcome = &mut publish => outcome,
                _ = stop.cancelled() => tokio::time::timeout(CONFIRM_GRACE, &mut publish)
                    .await
                    .map_err(|_| PublishError::Stopped)?,
            };
            let (err, refused_on) = match attempt {
                Ok(()) => return Ok(()),
                Err(failure) => failure,
            };
            match err {
                err if err.ends_session() || matches!(err, PublishError::Stopped) => {
                    return Err(err)
                }
                err @ PublishError::Returned { .. } if returned + 1 >= RETURNED_TRIES => {
                    return Err(err)
                }
                err => {
                    match (&err, &refused_on) {
                        (PublishError::Returned { .. }, _) => returned += 1,
                        (PublishError::Nacked, Some(channel)) => {
                            self.renew_channel(channel).await?;
                        }
                        _ => {}
                    }
                    let pause = pauses.next_pause();
                    tracing::warn!(error = %err, exchange, routing_key, "publish not confirmed; trying again in {pause:?}");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = stop.cancelled() => return Err(PublishError::Stopped),
                    }
                }
            }
        }
    }
}
