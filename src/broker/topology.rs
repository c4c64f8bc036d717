//! The broker topology: names, and declaring it idempotently.
//!
//! - jobs: exchange `wecom.jobs` (direct) → quorum queues `fetch-chatdata` and `fetch-media`,
//!   each with an explicit delivery limit (a job that keeps killing or stalling workers is
//!   failed and dead-lettered on the last delivery it allows, see [`crate::worker::handle`]) and
//!   at-least-once dead-lettering;
//! - dead letters: exchange `wecom.dead` (direct) → quorum queues `fetch-chatdata.dead` and
//!   `fetch-media.dead`, which operators inspect and replay;
//! - retries: per delay and job kind, a quorum queue `wecom.retry.<ms>ms.<kind>` whose messages
//!   expire after the delay and dead-letter back to `wecom.jobs` under the kind's routing key.
//!   One TTL per queue, so a short delay never waits behind a long one; no plugin needed;
//! - results: exchange `wecom.results` (direct) → quorum queues `chatdata-results` and
//!   `media-results`.
//!
//! Made for RabbitMQ 3.10-3.13 (at-least-once dead-lettering and message TTL on quorum queues
//! arrived in 3.10). 4.x declares it too (it defaults the delivery limit to 20: we set ours
//! explicitly), but counts deliveries otherwise (`x-acquired-count`), so the last-delivery
//! failure of [`crate::worker::handle`] is untested there.
//! Attempts are counted in our own header, not in `x-death`, whose shape changed in 3.13.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use crate::job::JobKind;

/// The direct exchange jobs are published to; the routing key is the job kind's queue.
pub const JOBS_EXCHANGE: &str = "wecom.jobs";
/// The direct exchange the job queues dead-letter into, bound to the `.dead` queues.
pub const DEAD_EXCHANGE: &str = "wecom.dead";
/// The direct exchange results and failures are published to (see [`result_routing_key`]).
pub const RESULTS_EXCHANGE: &str = "wecom.results";

/// The queue a job kind is consumed from (also its routing key).
pub fn job_queue(kind: JobKind) -> &'static str {
    kind.name()
}

/// The dead-letter queue of a job kind.
pub fn dead_queue(kind: JobKind) -> String {
    format!("{}.dead", kind.name())
}

/// The queue the results (and failures) of a job kind go to.
pub fn result_queue(kind: JobKind) -> &'static str {
    match kind {
        JobKind::FetchChatdata => "chatdata-results",
        JobKind::FetchMedia => "media-results",
    }
}

/// The routing key on [`RESULTS_EXCHANGE`] of a job kind's results (its result type,
/// `chatdata-page` or `media`), to which [`result_queue`] is bound.
pub fn result_routing_key(kind: JobKind) -> &'static str {
    kind.result_type()
}

/// The delay queue for `delay` and `kind`.
pub fn retry_queue(delay: Duration, kind: JobKind) -> String {
    format!("wecom.retry.{}ms.{}", delay.as_millis(), kind.name())
}

/// Whether `queue` is one of the worker's own: a job, dead-letter, result or retry queue. A job
/// may not name one as its `reply_to`: a result copied there would be taken for a job, a dead
/// letter or a result of another job.
pub fn is_own_queue(queue: &str) -> bool {
    JobKind::ALL.iter().any(|&kind| {
        queue == job_queue(kind) || queue == dead_queue(kind) || queue == result_queue(kind)
    }) || queue.starts_with("wecom.retry.")
}

/// What the topology needs to know from the configuration.
#[derive(Debug, Clone)]
pub struct TopologySpec {
    /// Unsettled deliveries of one job the job queues allow (`x-delivery-limit`).
    pub delivery_limit: u32,
    /// Every retry delay (jitter variants included), one queue each per job kind.
    pub retry_delays: Vec<Duration>,
}

fn arguments(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in pairs {
        table.insert(ShortString::from(*key), value.clone());
    }
    table
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

async fn quorum_queue(
    channel: &Channel,
    name: &str,
    extra: &[(&str, AMQPValue)],
) -> lapin::Result<()> {
    let mut pairs = vec![("x-queue-type", text("quorum"))];
    pairs.extend_from_slice(extra);
    channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            arguments(&pairs),
        )
        .await
        .map(|_| ())
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str) -> lapin::Result<()> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

/// Whether the job queues are there, asked on a channel of its own (a passive declare of a
/// missing queue closes its channel). A read: unlike a declare, it does not wait for every
/// node of a cluster, so a reconnecting worker is not held by a node that froze.
pub async fn job_queues_exist(connection: &lapin::Connection) -> lapin::Result<bool> {
    let channel = connection.create_channel().await?;
    for kind in JobKind::ALL {
        let passive = lapin::options::QueueDeclareOptions {
            passive: true,
            ..lapin::options::QueueDeclareOptions::default()
        };
        let checked = channel
            .queue_declare(job_queue(kind).into(), passive, FieldTable::default())
            .await;
        if checked.is_err() {
            return Ok(false);
        }
    }
    let _ = channel.close(200, "checked".into()).await;
    Ok(true)
}

/// Declares everything; declaring again with the same spec changes nothing.
pub async fn declare(channel: &Channel, spec: &TopologySpec) -> lapin::Result<()> {
    for exchange in [JOBS_EXCHANGE, DEAD_EXCHANGE, RESULTS_EXCHANGE] {
        channel
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
    }
    // At-least-once dead-lettering needs reject-publish overflow on the source queue.
    let at_least_once = [
        ("x-dead-letter-strategy", text("at-least-once")),
        ("x-overflow", text("reject-publish")),
    ];
    for kind in JobKind::ALL {
        let dead = dead_queue(kind);
        quorum_queue(channel, &dead, &[]).await?;
        bind(channel, &dead, DEAD_EXCHANGE, kind.name()).await?;

        let mut job_args = vec![
            (
                "x-delivery-limit",
                AMQPValue::LongLongInt(spec.delivery_limit.into()),
            ),
            ("x-dead-letter-exchange", text(DEAD_EXCHANGE)),
        ];
        job_args.extend_from_slice(&at_least_once);
        quorum_queue(channel, job_queue(kind), &job_args).await?;
        bind(channel, job_queue(kind), JOBS_EXCHANGE, kind.name()).await?;

        for delay in &spec.retry_delays {
            let mut retry_args = vec![
                (
                    "x-message-ttl",
                    AMQPValue::LongLongInt(delay.as_millis() as i64),
                ),
                ("x-dead-letter-exchange", text(JOBS_EXCHANGE)),
                ("x-dead-letter-routing-key", text(kind.name())),
            ];
            retry_args.extend_from_slice(&at_least_once);
            quorum_queue(channel, &retry_queue(*delay, kind), &retry_args).await?;
        }

        quorum_queue(channel, result_queue(kind), &[]).await?;
        bind(
            channel,
            result_queue(kind),
            RESULTS_EXCHANGE,
            result_routing_key(kind),
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workers_own_queues_are_recognised() {
        for own in [
            "fetch-chatdata",
            "fetch-media.dead",
            "chatdata-results",
            "media-results",
            "wecom.retry.5000ms.fetch-media",
        ] {
            assert!(is_own_queue(own), "{own}");
        }
        for other in ["odoo-replies", "amq.gen-XYZ", "fetch-chatdata-replies", ""] {
            assert!(!is_own_queue(other), "{other}");
        }
    }
}
