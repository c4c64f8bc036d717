//! The RabbitMQ worker, a door of the job core: consumes `fetch-chatdata` and `fetch-media`
//! jobs, runs them with a built [`Core`], and publishes results, continuations, retries and dead
//! letters ([`handle`], over [`amqp_job`]).
//!
//! [`run`] is the entry, in the manner of mini-redis: it runs until `shutdown` fires, one broker
//! session after another ([`session`], in its phases; [`crate::broker::reconnect`] says when
//! the next starts; unacked jobs are redelivered by the broker). One connection consumes, another publishes, so that a blocked publisher (a full queue) cannot
//! stall the consumer's heartbeats. A semaphore bounds the jobs in flight; on shutdown the
//! worker stops consuming, releases what it prefetched but had not started, and gives the jobs
//! it runs the drain timeout to finish; then it cancels them (they stop at their next page or
//! chunk and are released to the broker) and returns. A lost session cancels its jobs the same
//! way. A failing publisher ends the session like a failing consumer.

pub mod amqp_job;
pub mod delivered;
pub mod handle;
pub mod liveness;
mod session;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::broker::reconnect::{Reconnect, SessionUp};
use crate::broker::signing::HeaderKey;
use crate::broker::Broker;
use crate::config::WorkerConfig;
use crate::job::Core;
use crate::telemetry::{Readiness, Telemetry};
use session::{BetweenSessions, Worker};

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
    let header_key = Arc::new(header_key(&broker, &config)?);
    tokio::spawn(Arc::clone(&core).maintain(shutdown.clone()));
    let readiness = Arc::new(Readiness::default());
    core.metrics().set_job_slots(config.concurrency.max(1));
    let endpoints_stop = CancellationToken::new();
    let _stop_endpoints_on_return = endpoints_stop.clone().drop_guard();
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
    let worker = Worker {
        broker,
        config,
        core,
        header_key,
        readiness,
    };
    let mut between = BetweenSessions::default();
    let mut reconnect = Reconnect::new("worker");
    loop {
        while between.winding_down.try_join_next().is_some() {}
        let mut up = SessionUp::default();
        let ended = session::run(&worker, &shutdown, &mut between, &mut up).await;
        worker.readiness.set(false);
        if !reconnect
            .again(ended, &up, worker.core.metrics(), &shutdown)
            .await
        {
            break;
        }
    }
    wind_down(between.winding_down).await;
    Ok(())
}

/// The key the worker's own headers are signed with: the file's, or one derived from the
/// broker's credentials.
fn header_key(broker: &Broker, config: &WorkerConfig) -> anyhow::Result<HeaderKey> {
    let explicit_key = config
        .header_key_file
        .as_deref()
        .map(crate::secret_file::read_secret_file)
        .transpose()?;
    let mut header_key = broker.header_key(explicit_key.as_ref());
    header_key.accept_unsigned = config.accept_unsigned_headers;
    Ok(header_key)
}

/// Sessions lost before the shutdown may still be closing; a frozen node may hold their acks
/// and nacks, so they get as long as a close takes, then are abandoned.
async fn wind_down(mut winding_down: JoinSet<()>) {
    let closed = async { while winding_down.join_next().await.is_some() {} };
    if tokio::time::timeout(WIND_DOWN_LIMIT, closed).await.is_err() {
        winding_down.abort_all();
    }
}
