//! One broker session of the worker, from connecting to a lost connection (`Err`) or a
//! shutdown (`Ok`), in its phases as [`run`] calls them:
//!
//! 1. [`open`]: the two connections (one consumes, one publishes, so that a blocked publisher
//!    cannot stall the consumer's heartbeats), the topology when needed, the publisher;
//! 2. [`start_consuming`]: both job queues' consumes asked for, the session consuming from the
//!    first one answered;
//! 3. [`Serving::serve`]: each delivery run as a job once it holds a permit, health checked on
//!    every tick, late consumes joining when answered;
//! 4. [`Serving::drain`] on a shutdown: no new jobs, the prefetched ones released, the running
//!    ones given the drain timeout;
//! 5. [`close`]: the jobs left cancelled, the connections closed; a lost session closes in the
//!    background while the next one starts.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use lapin::message::Delivery;
use lapin::Channel;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::amqp_job::{AmqpJob, REQUEUE};
use super::delivered::Delivered;
use super::handle::{handle, DeliveryRules};
use super::liveness;
use crate::broker::consuming::{consume, AskedConsumers, Consuming, Deliveries, Next};
use crate::broker::reconnect::SessionUp;
use crate::broker::signing::HeaderKey;
use crate::broker::{topology, Broker, Publisher};
use crate::config::WorkerConfig;
use crate::job::{Core, JobKind};
use crate::telemetry::Readiness;

/// Connecting, declaring the topology, opening the channels of a session, and the first job
/// queue's consume answered (the other joins when answered, however late).
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a session checks its connections and asks the broker for its queues' depth
/// ([`liveness`]).
const HEALTH_TICK: Duration = Duration::from_secs(1);
/// Closing a session's connections.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(500);

/// What every session of a worker runs with, built once at start.
pub(super) struct Worker {
    pub broker: Broker,
    pub config: WorkerConfig,
    pub core: Arc<Core>,
    pub header_key: Arc<HeaderKey>,
    pub readiness: Arc<Readiness>,
}

/// What one session leaves the next: whether the topology was declared, and the lost sessions
/// still closing.
#[derive(Default)]
pub(super) struct BetweenSessions {
    declared: bool,
    /// A lost session's jobs and connections end here, while the next session starts: they
    /// wait on the failed node (a publish's confirm grace, a close), and need no permit, SDK
    /// call or CPU for it.
    pub winding_down: JoinSet<()>,
}

/// One session, phase after phase; `up` learns when it starts consuming.
pub(super) async fn run(
    worker: &Worker,
    shutdown: &CancellationToken,
    between: &mut BetweenSessions,
    up: &mut SessionUp,
) -> anyhow::Result<()> {
    let setup_due = tokio::time::Instant::now() + SETUP_TIMEOUT;
    // A node that froze mid-setup must not hold the worker.
    let Some(opened) =
        unless_stopped(shutdown, within_setup(setup_due, open(worker, between))).await
    else {
        return Ok(());
    };
    let opened = opened?;
    let asked_consumers = AskedConsumers::default();
    let starting = start_consuming(worker, &opened, &asked_consumers, setup_due);
    let Some(serving) = unless_stopped(shutdown, starting).await else {
        return Ok(());
    };
    let mut serving = serving?;
    tracing::info!(
        prefetch = worker.config.prefetch,
        concurrency = worker.config.concurrency,
        "consuming"
    );
    worker.readiness.set(true);
    worker.core.metrics().set_broker_connected(true);
    up.serving();
    let ended = serving.serve(worker, &opened, shutdown).await;
    // Draining, reconnecting or stopping: no longer ready for new jobs.
    worker.readiness.set(false);
    if ended.is_ok() {
        let drain_timeout = Duration::from_secs(worker.config.drain_timeout_secs);
        serving.drain(&asked_consumers, drain_timeout).await;
    }
    let (session, jobs) = serving.into_running();
    let Opened {
        consumer_conn,
        publisher_conn,
        channel,
        publisher,
    } = opened;
    drop(channel);
    let closing = close(session, jobs, consumer_conn, publisher_conn);
    if ended.is_ok() {
        closing.await;
    } else {
        // A node that failed the session is tried last next time, and the next session does
        // not wait for this one's close: a frozen node holds both for seconds.
        worker.broker.demote_last_node();
        between.winding_down.spawn(closing);
    }
    drop(publisher);
    ended
}

/// A session's connections, the channel its health is probed on, and its publisher.
struct Opened {
    consumer_conn: lapin::Connection,
    publisher_conn: Arc<lapin::Connection>,
    channel: Channel,
    publisher: Publisher,
}

/// Phase 1: connects, declares the topology if need be, and opens the publisher.
async fn open(worker: &Worker, between: &mut BetweenSessions) -> anyhow::Result<Opened> {
    let broker = &worker.broker;
    let consumer_conn = broker.connect("wecom-archive worker (consume)").await?;
    let publisher_conn = Arc::new(broker.connect("wecom-archive worker (publish)").await?);
    let channel = consumer_conn.create_channel().await?;
    // Declared at the first session; after that only when the queues are gone (a vhost made
    // anew): a declare waits for every node of a cluster, a frozen one included.
    let needed = !between.declared || !topology::job_queues_exist(&consumer_conn).await?;
    if !worker.config.no_declare && needed {
        let spec = worker.config.topology.spec(worker.core.policy());
        topology::declare(&channel, &spec).await?;
        between.declared = true;
    }
    let publisher = broker.publisher(&publisher_conn).await?;
    Ok(Opened {
        consumer_conn,
        publisher_conn,
        channel,
        publisher,
    })
}

/// Phase 2: each job queue is asked for on its own, and the session consumes from the first
/// one answered, within the setup's time; the others join when answered, however late. A
/// queue whose leader is failing over (its consume held until the cluster elects another)
/// does not hold up the other queue's jobs, nor end the session.
async fn start_consuming<'a>(
    worker: &Worker,
    opened: &'a Opened,
    asked_consumers: &'a AskedConsumers,
    setup_due: tokio::time::Instant,
) -> anyhow::Result<Serving<'a>> {
    let prefetch = worker.config.prefetch;
    let mut asking: FuturesUnordered<_> = JobKind::ALL
        .into_iter()
        .map(|kind| consume(&opened.consumer_conn, kind, prefetch, asked_consumers).boxed())
        .collect();
    let first = within_setup(setup_due, async {
        let first = asking.next().await;
        Ok(first.expect("there are job queues to consume")?)
    })
    .await?;
    let concurrency = worker.config.concurrency.max(1);
    let mut serving = Serving {
        asking,
        consumers: Deliveries::new(),
        consumed_kinds: Vec::new(),
        session: CancellationToken::new(),
        permits: Arc::new(Semaphore::new(concurrency)),
        concurrency,
        rules: DeliveryRules {
            delivery_limit: worker.config.topology.delivery_limit,
            pages_per_delivery: worker.config.chat_pages_per_delivery.max(1),
        },
        jobs: JoinSet::new(),
        last_delivery: Instant::now(),
    };
    serving.consume_from(first);
    Ok(serving)
}

/// A session that consumes: its consumers, asked and answered, and the jobs it runs.
struct Serving<'a> {
    /// Consumes asked for and not answered yet.
    asking: FuturesUnordered<BoxFuture<'a, lapin::Result<Consuming>>>,
    consumers: Deliveries,
    /// The queues whose consume was answered: the liveness probe counts their backlog only.
    consumed_kinds: Vec<JobKind>,
    /// Fired when the session is lost or a drain runs out of time: the jobs stop at their next
    /// page or chunk, and nothing more is published for them.
    session: CancellationToken,
    permits: Arc<Semaphore>,
    concurrency: usize,
    rules: DeliveryRules,
    jobs: JoinSet<()>,
    last_delivery: Instant,
}

/// What the serving loop does next.
enum Step {
    /// Boxed: a delivery is large, and the other steps are not.
    Run(JobKind, Box<Delivery>),
    Wait,
    End(anyhow::Result<()>),
}

impl Serving<'_> {
    /// Phase 3: runs deliveries as jobs until the session is lost (`Err`) or `shutdown` fires.
    async fn serve(
        &mut self,
        worker: &Worker,
        opened: &Opened,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut health = tokio::time::interval(HEALTH_TICK);
        loop {
            match self.next_step(opened, shutdown, &mut health).await {
                Step::Run(kind, delivery) => {
                    self.last_delivery = Instant::now();
                    let started = self.start_job(worker, opened, kind, *delivery, shutdown);
                    if let ControlFlow::Break(ended) = started.await {
                        return ended;
                    }
                }
                Step::Wait => {}
                Step::End(ended) => return ended,
            }
        }
    }

    /// Waits for a delivery, a late consume's answer, a health tick or the end. The loop holds
    /// no permit while it waits: a job waiting for every permit ([`Self::start_job`]) must be
    /// able to get them when the queues are quiet.
    async fn next_step(
        &mut self,
        opened: &Opened,
        shutdown: &CancellationToken,
        health: &mut tokio::time::Interval,
    ) -> Step {
        tokio::select! {
            next = self.consumers.next() => delivered(next),
            _ = shutdown.cancelled() => Step::End(Ok(())),
            _ = self.session.cancelled() => Step::End(Err(anyhow::anyhow!("publishing failed"))),
            answered = self.asking.next(), if !self.asking.is_empty() => {
                match answered.expect("polled only while a consume is asked") {
                    Ok(answered) => {
                        self.consume_from(answered);
                        Step::Wait
                    }
                    Err(err) => Step::End(Err(anyhow::Error::new(err).context("consuming failed"))),
                }
            }
            _ = health.tick() => {
                let slots_free = self.permits.available_permits() > 0;
                match check_health(opened, &self.consumed_kinds, self.last_delivery, slots_free).await {
                    Ok(()) => Step::Wait,
                    Err(err) => Step::End(Err(err)),
                }
            }
        }
    }

    fn consume_from(&mut self, answered: Consuming) {
        answered.log();
        self.consumers.extend(answered.deliveries);
        self.consumed_kinds.push(answered.kind);
    }

    /// Runs `delivery` as a job once it holds its permits; `Break` when the session ends
    /// instead.
    ///
    /// With the library in this process, a redelivered job may be one that killed a worker (the
    /// SDK aborts on some inputs): it runs alone, so it cannot take other jobs down with it
    /// again. It waits for every permit; the semaphore is fair, so the jobs after it wait for
    /// it, and nothing holds a permit while waiting for more (no deadlock). With SDK hosts an
    /// SDK crash costs a host, never the worker: a redelivery is then a lost broker node's or a
    /// stopped worker's, innocent, and runs beside the others, so a node failure does not slow
    /// every worker to one job at a time. A delivery at the limit is not run (only failed, see
    /// [`handle`]), so it needs no more than its own permit.
    async fn start_job(
        &mut self,
        worker: &Worker,
        opened: &Opened,
        kind: JobKind,
        delivery: Delivery,
        shutdown: &CancellationToken,
    ) -> ControlFlow<anyhow::Result<()>> {
        let delivered = Delivered::read(&delivery, kind, &worker.header_key);
        let may_have_crashed = delivered.redelivered && worker.core.sdk_in_process();
        let wanted = if may_have_crashed && !delivered.is_last(self.rules.delivery_limit) {
            self.concurrency as u32
        } else {
            1
        };
        let held = tokio::select! {
            held = Arc::clone(&self.permits).acquire_many_owned(wanted) => held.expect("the semaphore is never closed"),
            _ = shutdown.cancelled() => {
                let _ = delivery.nack(REQUEUE).await;
                return ControlFlow::Break(Ok(()));
            }
            _ = self.session.cancelled() => {
                return ControlFlow::Break(Err(anyhow::anyhow!("publishing failed")));
            }
        };
        let (core, cancel, rules) = (
            Arc::clone(&worker.core),
            self.session.child_token(),
            self.rules,
        );
        let job = AmqpJob {
            delivery,
            kind,
            delivered,
            publisher: opened.publisher.clone(),
            header_key: Arc::clone(&worker.header_key),
            session: self.session.clone(),
        };
        self.jobs.spawn(async move {
            handle(&core, job, rules, cancel).await;
            drop(held);
        });
        // Reap finished jobs so the set does not grow.
        while self.jobs.try_join_next().is_some() {}
        ControlFlow::Continue(())
    }

    /// Phase 4, on a shutdown: consumes still asked for are cancelled too (one answered now
    /// would prefetch jobs for nothing), the deliveries prefetched but not started are handed
    /// back, and the running jobs get `drain_timeout` to finish.
    async fn drain(&mut self, asked_consumers: &AskedConsumers, drain_timeout: Duration) {
        tracing::info!(
            in_flight = self.jobs.len(),
            "shutting down: no new jobs, finishing the ones held"
        );
        let asked = std::mem::take(&mut *asked_consumers.lock().expect("not poisoned"));
        for consumer in &asked {
            consumer.cancel().await;
        }
        release_prefetched(&mut self.consumers).await;
        let finished = async { while self.jobs.join_next().await.is_some() {} };
        if tokio::time::timeout(drain_timeout, finished).await.is_err() {
            tracing::warn!(
                in_flight = self.jobs.len(),
                "drain timed out; the remaining jobs are cancelled and released"
            );
        }
    }

    /// The session's token and its jobs; the consumers are dropped.
    fn into_running(self) -> (CancellationToken, JoinSet<()>) {
        (self.session, self.jobs)
    }
}

/// A closed connection normally ends the consumer stream; this catches one that went quietly
/// (the publisher's, or a close the client did not pass on), and a node that stopped answering
/// ([`liveness`]).
async fn check_health(
    opened: &Opened,
    consumed_kinds: &[JobKind],
    last_delivery: Instant,
    slots_free: bool,
) -> anyhow::Result<()> {
    if !opened.consumer_conn.status().connected() || !opened.publisher_conn.status().connected() {
        anyhow::bail!("a broker connection is closed");
    }
    liveness::probe(&opened.channel, consumed_kinds, last_delivery, slots_free).await
}

/// A consumer's next item as the serving loop's next step.
fn delivered(next: Option<Next>) -> Step {
    match next {
        Some((kind, Some(Ok(delivery)))) => Step::Run(kind, Box::new(delivery)),
        Some((_, Some(Err(err)))) => {
            Step::End(Err(anyhow::Error::new(err).context("consuming failed")))
        }
        Some((kind, None)) => Step::End(Err(anyhow::anyhow!(
            "the broker cancelled the {} consumer",
            kind.name()
        ))),
        None => Step::End(Err(anyhow::anyhow!("no consumer left"))),
    }
}

/// Phase 5, the end of a session, lost or drained: its jobs stop at their next page or chunk
/// and publish nothing more (their deliveries go back to the broker; an SDK call under way is
/// not waited for, and a publish under way gets its confirm grace), then its connections
/// close.
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

/// `future`'s outcome, or `None` once `shutdown` fires.
async fn unless_stopped<T>(
    shutdown: &CancellationToken,
    future: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        outcome = future => Some(outcome),
        _ = shutdown.cancelled() => None,
    }
}

/// `setup`, failed if the broker has not answered it by `due`.
async fn within_setup<T>(
    due: tokio::time::Instant,
    setup: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout_at(due, setup).await.map_err(|_| {
        anyhow::anyhow!("the broker did not answer the session's setup within {SETUP_TIMEOUT:?}")
    })?
}
