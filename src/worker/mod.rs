//! The RabbitMQ worker, a door of the job core: consumes `fetch-chatdata` and `fetch-media`
//! jobs, runs them with a built [`Core`], and publishes results, continuations, retries and dead
//! letters ([`handle`], over [`amqp_job`]).
//!
//! [`run`] is the entry, in the manner of mini-redis: it runs until `shutdown` fires, through
//! broker restarts (reconnecting with backoff; unacked jobs are redelivered by the broker). One
//! connection consumes, another publishes, so that a blocked publisher (a full queue) cannot
//! stall the consumer's heartbeats. A semaphore bounds the jobs in flight; on shutdown the
//! worker stops consuming, releases what it prefetched but had not started, and gives the jobs
//! it runs the drain timeout to finish; then it cancels them (they stop at their next page or
//! chunk and are released to the broker) and returns. A lost session cancels its jobs the same
//! way. A failing publisher ends the session like a failing consumer.

pub mod amqp_job;
pub mod config;
pub mod connection;
pub mod consuming;
pub mod delivered;
pub mod handle;
pub mod headers;
pub mod liveness;
pub mod malformed;
pub mod publisher;
pub mod signing;
pub mod topology;
pub mod transport;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::job::{Core, JobKind};
use crate::telemetry::{Readiness, Telemetry};
use amqp_job::{AmqpJob, REQUEUE};
pub use config::{AmqpArgs, TopologyArgs, WorkerConfig};
use connection::Broker;
use consuming::{consume, AskedConsumers, Deliveries};
use delivered::Delivered;
use handle::{handle, DeliveryRules};
use signing::HeaderKey;

/// Connecting, declaring the topology, opening the channels of a session, and the first job
/// queue's consume answered (the other joins when answered, however late).
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a session checks its connections and asks the broker for its queues' depth
/// ([`liveness`]).
const HEALTH_TICK: Duration = Duration::from_secs(1);
/// Closing a session's connections.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a stopping worker waits for its lost sessions to close: a publish's confirm grace
/// and a close, with room to spare.
const WIND_DOWN_LIMIT: Duration = Duration::from_secs(5);

/// Runs the worker with `core` until `shutdown` is cancelled.
pub async fn run(
    core: Arc<Core>,
    config: WorkerConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let broker = Broker::from_args(&config.amqp)?;
    let explicit_key = config
        .header_key_file
        .as_deref()
        .map(crate::secret_file::read_secret_file)
        .transpose()?;
    let mut header_key = broker.header_key(explicit_key.as_ref());
    header_key.accept_unsigned = config.accept_unsigned_headers;
    let header_key = Arc::new(header_key);
    tokio::spawn(Arc::clone(&core).maintain(shutdown.clone()));
    let readiness = Arc::new(Readiness::default());
    let endpoints_stop = CancellationToken::new();
    let _stop_endpoints_on_return = endpoints_stop.clone().drop_guard();
    core.metrics().set_job_slots(config.concurrency.max(1));
    if let Some(listen) = config.metrics_listen {
        let telemetry = Telemetry {
            metrics: Arc::clone(core.metrics()),
            readiness: Arc::clone(&readiness),
        };
        let listener = crate::telemetry::endpoints::bind(listen).await?;
        // Up until the worker returns, draining included: a probe must see it alive.
        tokio::spawn(crate::telemetry::endpoints::serve(
            telemetry,
            listener,
            endpoints_stop.clone(),
        ));
    }
    let mut between = BetweenSessions {
        backoff: Backoff::default(),
        declared: false,
        consuming_since: None,
        winding_down: JoinSet::new(),
    };
    loop {
        while between.winding_down.try_join_next().is_some() {}
        let ended = session(
            &broker,
            &config,
            &core,
            &header_key,
            &readiness,
            &shutdown,
            &mut between,
        )
        .await;
        readiness.set(false);
        core.metrics().set_broker_connected(false);
        match ended {
            Ok(()) => break,
            Err(err) if shutdown.is_cancelled() => {
                tracing::info!(error = %err, "stopped");
                break;
            }
            Err(err) => {
                core.metrics().broker_reconnecting();
                let consumed_for = between.consuming_since.take().map(|since| since.elapsed());
                let pause = between.backoff.after_session(consumed_for);
                tracing::warn!(error = %format!("{err:#}"), "broker session ended; reconnecting in {pause:?}");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
        }
    }
    // Sessions lost before the shutdown may still be closing; a frozen node may hold their
    // acks and nacks, so they get as long as a close takes, then are abandoned.
    let closed = async { while between.winding_down.join_next().await.is_some() {} };
    if tokio::time::timeout(WIND_DOWN_LIMIT, closed).await.is_err() {
        between.winding_down.abort_all();
    }
    Ok(())
}

/// What one broker session leaves the next: the pause before reconnecting, whether the
/// topology was declared, since when the last one consumed, and the lost sessions still
/// closing.
struct BetweenSessions {
    backoff: Backoff,
    declared: bool,
    consuming_since: Option<Instant>,
    /// A lost session's jobs and connections end here, while the next session starts: they
    /// wait on the failed node (a publish's confirm grace, a close), and need no permit, SDK
    /// call or CPU for it.
    winding_down: JoinSet<()>,
}

/// One connected stretch: from connecting to a lost connection (Err) or a shutdown (Ok).
async fn session(
    broker: &Broker,
    config: &WorkerConfig,
    core: &Arc<Core>,
    header_key: &Arc<HeaderKey>,
    readiness: &Readiness,
    shutdown: &CancellationToken,
    between: &mut BetweenSessions,
) -> anyhow::Result<()> {
    let setup = async {
        let consumer_conn = broker.connect("wecom-archive worker (consume)").await?;
        let publisher_conn = Arc::new(broker.connect("wecom-archive worker (publish)").await?);
        let channel = consumer_conn.create_channel().await?;
        // Declared at the first session; after that only when the queues are gone (a vhost
        // made anew): a declare waits for every node of a cluster, a frozen one included.
        let needed = !between.declared || !topology::job_queues_exist(&consumer_conn).await?;
        if !config.no_declare && needed {
            topology::declare(&channel, &config.topology.spec(core.policy())).await?;
            between.declared = true;
        }
        let publisher = broker.publisher(&publisher_conn).await?;
        anyhow::Ok((consumer_conn, publisher_conn, channel, publisher))
    };
    // A node that froze mid-setup must not hold the worker.
    let setup_due = tokio::time::Instant::now() + SETUP_TIMEOUT;
    let not_answered = || {
        anyhow::anyhow!("the broker did not answer the session's setup within {SETUP_TIMEOUT:?}")
    };
    let (consumer_conn, publisher_conn, channel, publisher) = tokio::select! {
        setup = tokio::time::timeout_at(setup_due, setup) => setup.map_err(|_| not_answered())??,
        _ = shutdown.cancelled() => return Ok(()),
    };
    // Each job queue is asked for on its own, and the session consumes from the first one
    // answered, within the setup's time; the others join when answered, however late. A queue
    // whose leader is failing over (its consume held until the cluster elects another) does
    // not hold up the other queue's jobs, nor end the session.
    let asked_consumers = AskedConsumers::default();
    let mut asking: FuturesUnordered<_> = JobKind::ALL
        .into_iter()
        .map(|kind| consume(&consumer_conn, kind, config.prefetch, &asked_consumers))
        .collect();
    let mut consumers = Deliveries::new();
    // The queues whose consume was answered: the liveness probe counts their backlog only.
    let mut consumed_kinds = Vec::new();
    let first = tokio::select! {
        first = tokio::time::timeout_at(setup_due, asking.next()) => first.map_err(|_| not_answered())?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    let first = first.expect("there are job queues to consume")?;
    first.log();
    consumers.extend(first.deliveries);
    consumed_kinds.push(first.kind);
    // Fired when the session is lost or a drain runs out of time: the jobs stop at their next
    // page or chunk, and nothing more is published for them.
    let session = CancellationToken::new();
    let delivery_limit = config.topology.delivery_limit;
    let rules = DeliveryRules {
        delivery_limit,
        pages_per_delivery: config.chat_pages_per_delivery.max(1),
    };
    tracing::info!(
        prefetch = config.prefetch,
        concurrency = config.concurrency,
        "consuming"
    );
    readiness.set(true);
    core.metrics().set_broker_connected(true);
    between.consuming_since = Some(Instant::now());
    let concurrency = config.concurrency.max(1);
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut health = tokio::time::interval(HEALTH_TICK);
    let mut last_delivery = Instant::now();
    let mut jobs = JoinSet::new();
    let ended = loop {
        // The loop holds no permit while it waits for a delivery: a job waiting for every
        // permit (below) must be able to get them when the queues are quiet.
        let next = tokio::select! {
            next = consumers.next() => next,
            _ = shutdown.cancelled() => break Ok(()),
            _ = session.cancelled() => break Err(anyhow::anyhow!("publishing failed")),
            answered = asking.next(), if !asking.is_empty() => {
                match answered.expect("polled only while a consume is asked") {
                    Ok(answered) => {
                        answered.log();
                        consumers.extend(answered.deliveries);
                        consumed_kinds.push(answered.kind);
                    }
                    Err(err) => break Err(anyhow::Error::new(err).context("consuming failed")),
                }
                continue;
            }
            // A closed connection normally ends the consumer stream; this catches one that
            // went quietly (the publisher's, or a close the client did not pass on).
            _ = health.tick() => {
                if !consumer_conn.status().connected() || !publisher_conn.status().connected() {
                    break Err(anyhow::anyhow!("a broker connection is closed"));
                }
                let slots_free = permits.available_permits() > 0;
                if let Err(err) = liveness::probe(&channel, &consumed_kinds, last_delivery, slots_free).await {
                    break Err(err);
                }
                continue;
            }
        };
        last_delivery = Instant::now();
        let (kind, delivery) = match next {
            Some((kind, Some(Ok(delivery)))) => (kind, delivery),
            Some((_, Some(Err(err)))) => {
                break Err(anyhow::Error::new(err).context("consuming failed"))
            }
            Some((kind, None)) => {
                break Err(anyhow::anyhow!(
                    "the broker cancelled the {} consumer",
                    kind.name()
                ))
            }
            None => break Err(anyhow::anyhow!("no consumer left")),
        };
        // With the library in this process, a redelivered job may be one that killed a worker
        // (the SDK aborts on some inputs): it runs alone, so it cannot take other jobs down with
        // it again. It waits for every permit; the semaphore is fair, so the jobs after it wait
        // for it, and nothing holds a permit while waiting for more (no deadlock). With SDK
        // hosts an SDK crash costs a host, never the worker: a redelivery is then a lost
        // broker node's or a stopped worker's, innocent, and runs beside the others, so a node
        // failure does not slow every worker to one job at a time. A delivery at the limit is
        // not run (only failed, see `handle`), so it needs no more than its own permit.
        let delivered = Delivered::read(&delivery, kind, header_key);
        let may_have_crashed = delivered.redelivered && core.sdk_in_process();
        let wanted = if may_have_crashed && !delivered.is_last(delivery_limit) {
            concurrency as u32
        } else {
            1
        };
        let held = tokio::select! {
            held = Arc::clone(&permits).acquire_many_owned(wanted) => held.expect("the semaphore is never closed"),
            _ = shutdown.cancelled() => {
                let _ = delivery.nack(REQUEUE).await;
                break Ok(());
            }
            _ = session.cancelled() => break Err(anyhow::anyhow!("publishing failed")),
        };
        let (core, cancel) = (Arc::clone(core), session.child_token());
        let job = AmqpJob {
            delivery,
            kind,
            delivered,
            publisher: publisher.clone(),
            header_key: Arc::clone(header_key),
            session: session.clone(),
        };
        jobs.spawn(async move {
            handle(&core, job, rules, cancel).await;
            drop(held);
        });
        // Reap finished jobs so the set does not grow.
        while jobs.try_join_next().is_some() {}
    };
    // Draining, reconnecting or stopping: no longer ready for new jobs.
    readiness.set(false);
    if ended.is_ok() {
        tracing::info!(
            in_flight = jobs.len(),
            "shutting down: no new jobs, finishing the ones held"
        );
        // Consumes still asked for are cancelled too: one answered now would prefetch jobs
        // for nothing.
        let asked = std::mem::take(&mut *asked_consumers.lock().expect("not poisoned"));
        for consumer in &asked {
            consumer.cancel().await;
        }
        release_prefetched(&mut consumers).await;
        let drain_timeout = Duration::from_secs(config.drain_timeout_secs);
        if tokio::time::timeout(drain_timeout, async {
            while jobs.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tracing::warn!(
                in_flight = jobs.len(),
                "drain timed out; the remaining jobs are cancelled and released"
            );
        }
    }
    drop((asking, consumers, channel));
    let closing = close(session, jobs, consumer_conn, publisher_conn);
    if ended.is_ok() {
        closing.await;
    } else {
        // A node that failed the session is tried last next time, and the next session does
        // not wait for this one's close: a frozen node holds both for seconds.
        broker.demote_last_node();
        between.winding_down.spawn(closing);
    }
    ended
}

/// The end of a session, lost or drained: its jobs stop at their next page or chunk and
/// publish nothing more (their deliveries go back to the broker; an SDK call under way is not
/// waited for, and a publish under way gets its confirm grace), then its connections close.
async fn close(
    session: CancellationToken,
    mut jobs: JoinSet<()>,
    consumer_conn: lapin::Connection,
    publisher_conn: Arc<lapin::Connection>,
) {
    session.cancel();
    while jobs.join_next().await.is_some() {}
    // A frozen node does not answer a close either.
    let closing = futures_util::future::join(
        publisher_conn.close(200, "worker stopping".into()),
        consumer_conn.close(200, "worker stopping".into()),
    );
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, closing).await;
}

/// The pause before reconnecting. A session that consumed for [`Backoff::STEADY`] is followed
/// by a reconnect at once: its node failed, and another node (the failed one is tried last) can
/// take the jobs now. After sessions that failed to start or ended soon, the pause starts at
/// [`Backoff::FIRST`] and doubles up to [`Backoff::LONGEST`], so a broker that keeps failing is
/// not hammered.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: Self::FIRST }
    }
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(500);
    const LONGEST: Duration = Duration::from_secs(30);
    const STEADY: Duration = Duration::from_secs(10);

    /// The pause after a session that consumed for `consumed_for` (`None`: it never started).
    fn after_session(&mut self, consumed_for: Option<Duration>) -> Duration {
        if consumed_for.is_some_and(|ran| ran >= Self::STEADY) {
            self.next = Self::FIRST;
            return Duration::ZERO;
        }
        let pause = self.next;
        self.next = (pause * 2).min(Self::LONGEST);
        pause
    }
}

/// Hands back the deliveries prefetched but not started, so another worker takes them now
/// rather than when this one's connection closes.
async fn release_prefetched(consumers: &mut Deliveries) {
    while let Ok(Some((_, Some(delivery)))) =
        tokio::time::timeout(Duration::from_secs(1), consumers.next()).await
    {
        if let Ok(delivery) = delivery {
            let _ = delivery.nack(REQUEUE).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_session_is_followed_at_once_and_failing_ones_back_off() {
        let mut backoff = Backoff::default();
        let secs = |s: u64| Some(Duration::from_secs(s));
        assert_eq!(backoff.after_session(secs(60)), Duration::ZERO);
        let pauses: Vec<Duration> = [None, secs(1), None, None, None, None, None, None]
            .into_iter()
            .map(|ran| backoff.after_session(ran))
            .collect();
        let expected = [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000];
        assert_eq!(pauses, expected.map(Duration::from_millis));
        // Steady again: at once, and the backoff starts over.
        assert_eq!(backoff.after_session(secs(10)), Duration::ZERO);
        assert_eq!(backoff.after_session(None), Backoff::FIRST);
    }
}
