//! Jobs run by the workers: the gateway publishes each request's job to the jobs exchange with
//! its own reply queue as `reply_to` (and `x-wecom-reply-to-only`, so its results go nowhere
//! else) and waits for the result carrying the request's `correlation_id`. The SDK work stays on
//! the scaled workers, with their retries, delivery limit and dead letters.
//!
//! The reply queue is exclusive to the gateway's connection. A session ends when its connection
//! or either channel fails (a publish to a missing exchange closes the publishing channel):
//! the requests waiting on it are answered 503 (their jobs may still run; their results then go
//! to the result queues, the reply queue being gone) and the gateway connects again
//! ([`crate::broker::reconnect`]). A session starts only once
//! the jobs exchange exists (the workers declare it), and it is ready (`/readyz`) while it lasts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ExchangeKind};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::problem::Problem;
use super::runner::HttpJob;
use crate::broker::headers::REPLY_TO_ONLY;
use crate::broker::reconnect::{Reconnect, SessionUp};
use crate::broker::topology::JOBS_EXCHANGE;
use crate::broker::{Broker, Publisher};
use crate::telemetry::{Metrics, Readiness};

/// Runs each request's job on the workers: publishes it with the gateway's reply queue and
/// waits there for its result.
pub struct ViaBroker {
    shared: Arc<Shared>,
    patience: Duration,
}

/// What the requests and the connection task share.
struct Shared {
    /// The broker session in use, while there is one.
    session: Mutex<Option<BrokerSession>>,
    /// Requests waiting for a result, by their correlation id.
    waiting: Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>,
    readiness: Arc<Readiness>,
    metrics: Arc<Metrics>,
}

#[derive(Clone)]
struct BrokerSession {
    publisher: Publisher,
    reply_queue: String,
    /// Ends the session: fired by a request whose publish failed on the channel.
    lost: CancellationToken,
}

impl ViaBroker {
    /// Starts connecting to `broker` (and connecting again whenever the session is lost) until
    /// `shutdown` fires.
    pub fn start(
        broker: Broker,
        patience: Duration,
        readiness: Arc<Readiness>,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        let shared = Arc::new(Shared {
            session: Mutex::new(None),
            waiting: Mutex::new(HashMap::new()),
            readiness,
            metrics,
        });
        tokio::spawn(stay_connected(broker, Arc::clone(&shared), shutdown));
        Self { shared, patience }
    }

    /// Publishes `job` and waits for its result message, the publish included, at most the
    /// gateway's patience. `Err` (503 or 504) without a broker session, when the publish
    /// fails, the session is lost, the wait runs out, or `cancel` fires.
    pub async fn run(&self, job: &HttpJob, cancel: &CancellationToken) -> Result<Vec<u8>, Problem> {
        // Publishing counts against the request's time too (a broker under a resource alarm
        // does not confirm at all).
        let deadline = Instant::now() + self.patience;
        let timed_out = || Problem::timed_out(self.patience.as_secs());
        let session = self.shared.session.lock().expect("not poisoned").clone();
        let session = session.ok_or_else(|| Problem::unavailable("no broker connection"))?;
        let (sender, result) = oneshot::channel();
        // Registered before the job is published: its result cannot come first.
        let waiting = Waiting::new(&self.shared, &job.correlation_id, sender);
        let mut headers = FieldTable::default();
        headers.insert(REPLY_TO_ONLY.into(), AMQPValue::Boolean(true));
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(job.job_id.as_str().into())
            .with_correlation_id(job.correlation_id.as_str().into())
            .with_reply_to(session.reply_queue.as_str().into())
            .with_headers(headers);
        let stop_publishing = cancel.child_token();
        let publishing = session.publisher.publish_until_confirmed(
            JOBS_EXCHANGE,
            job.kind.name(),
            &job.body,
            &properties,
            &stop_publishing,
        );
        let published = tokio::time::timeout_at(deadline, publishing).await;
        stop_publishing.cancel();
        match published {
            Err(_) => return Err(timed_out()),
            Ok(Err(err)) => {
                if err.ends_session() {
                    session.lost.cancel();
                }
                return Err(Problem::unavailable(format!(
                    "the job was not published: {err}"
                )));
            }
            Ok(Ok(())) => {}
        }
        let answer = tokio::select! {
            answer = result => answer.map_err(|_| {
                Problem::unavailable("the broker connection was lost while the job ran")
            }),
            _ = tokio::time::sleep_until(deadline) => Err(timed_out()),
            _ = cancel.cancelled() => Err(Problem::unavailable("the gateway is stopping")),
        };
        drop(waiting);
        answer
    }
}

/// A request's place among the waiting ones, given up when the request ends however it ends
/// (answered, timed out, or dropped with its connection).
struct Waiting<'a> {
    shared: &'a Shared,
    correlation_id: &'a str,
}

impl<'a> Waiting<'a> {
    fn new(shared: &'a Shared, correlation_id: &'a str, sender: oneshot::Sender<Vec<u8>>) -> Self {
        let mut waiting = shared.waiting.lock().expect("not poisoned");
        waiting.insert(correlation_id.to_owned(), sender);
        Self {
            shared,
            correlation_id,
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut waiting = self.shared.waiting.lock().expect("not poisoned");
        waiting.remove(self.correlation_id);
    }
}

async fn stay_connected(broker: Broker, shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut reconnect = Reconnect::new("gateway");
    loop {
        let mut up = SessionUp::default();
        let ended = serve_session(&broker, &shared, &shutdown, &mut up).await;
        shared.readiness.set(false);
        // Requests waiting on the lost reply queue are answered now, not at their timeout.
        *shared.session.lock().expect("not poisoned") = None;
        shared.waiting.lock().expect("not poisoned").clear();
        if !reconnect
            .again(ended, &up, &shared.metrics, &shutdown)
            .await
        {
            return;
        }
    }
}

/// One broker session: a reply queue and its consumer, and a publisher; hands results to the
/// requests waiting for them until the session fails (`Err`) or `shutdown` fires (`Ok`).
/// `up` learns when it gets as far as serving.
async fn serve_session(
    broker: &Broker,
    shared: &Shared,
    shutdown: &CancellationToken,
    up: &mut SessionUp,
) -> anyhow::Result<()> {
    let connection = std::sync::Arc::new(broker.connect("wecom-archive gateway").await?);
    let publisher = broker.publisher(&connection).await?;
    let channel = connection.create_channel().await?;
    // The workers declare the topology: until the exchange exists, every job would be lost to
    // a closed channel.
    channel
        .exchange_declare(
            JOBS_EXCHANGE.into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                passive: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|err| {
            anyhow::anyhow!("the jobs exchange is not there yet (no worker has declared it): {err}")
        })?;
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let reply_queue = queue.name().as_str().to_owned();
    let mut results = channel
        .basic_consume(
            reply_queue.as_str().into(),
            "wecom-archive-gateway".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let lost = CancellationToken::new();
    *shared.session.lock().expect("not poisoned") = Some(BrokerSession {
        publisher,
        reply_queue,
        lost: lost.clone(),
    });
    up.serving();
    shared.readiness.set(true);
    shared.metrics.set_broker_connected(true);
    tracing::info!("gateway connected to the broker");
    let mut health = tokio::time::interval(Duration::from_secs(2));
    loop {
        let delivery = tokio::select! {
            delivery = results.next() => delivery,
            _ = shutdown.cancelled() => return Ok(()),
            _ = lost.cancelled() => anyhow::bail!("publishing failed on the channel"),
            _ = health.tick() => {
                if !connection.status().connected() {
                    anyhow::bail!("the broker connection is closed");
                }
                continue;
            }
        };
        let delivery = match delivery {
            Some(delivery) => delivery?,
            None => anyhow::bail!("the reply queue's consumer was cancelled"),
        };
        let correlation_id = delivery.properties.correlation_id().as_ref();
        let waiter = correlation_id.and_then(|id| {
            let mut waiting = shared.waiting.lock().expect("not poisoned");
            waiting.remove(id.as_str())
        });
        match waiter {
            // A gateway job has one result: its page, its file, or its failure.
            Some(waiter) => {
                let _ = waiter.send(delivery.data);
            }
            None => tracing::debug!("a result no request waits for any more"),
        }
    }
}
