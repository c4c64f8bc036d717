//! The RabbitMQ worker: consumes `fetch-chatdata` and `fetch-media` jobs, runs them with the job
//! core ([`crate::job`]), publishes results, retries and dead letters ([`handle`]).
//!
//! [`run`] is the entry, in the manner of mini-redis: it runs until `shutdown` fires, through
//! broker restarts (reconnecting with backoff; unacked jobs are redelivered by the broker). One
//! connection consumes, another publishes, so that a blocked publisher (a full queue) cannot
//! stall the consumer's heartbeats. A semaphore bounds the jobs in flight; on shutdown the
//! worker stops consuming, finishes what it holds, and returns.

pub mod config;
pub mod handle;
pub mod headers;
pub mod publisher;
pub mod topology;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::stream::{SelectAll, StreamExt};
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, Consumer};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::job::corps::CorpDirectory;
use crate::job::run::JobContext;
use crate::job::sdk_pool::SdkPools;
use crate::job::JobKind;
use crate::media::{ChunkRetry, FsStore};
use crate::sdk::FinanceSdk;
pub use config::WorkerConfig;
use handle::{handle, Shared};
use publisher::Publisher;
use topology::TopologySpec;

/// Runs the worker until `shutdown` is cancelled.
pub async fn run(config: WorkerConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let sdk = FinanceSdk::load(&config.lib)?;
    let corps = match &config.corps_file {
        Some(path) => CorpDirectory::load(path, config.inline_credentials)?,
        None => CorpDirectory::inline_only(config.inline_credentials),
    };
    std::fs::create_dir_all(&config.media_dir).with_context(|| {
        format!(
            "cannot create the media directory {}",
            config.media_dir.display()
        )
    })?;
    let ctx = Arc::new(JobContext {
        pools: SdkPools::new(sdk, config.sdk_per_corp),
        corps,
        store: FsStore::new(&config.media_dir),
        inline_max_bytes: config.inline_max_bytes,
        chunk_retry: ChunkRetry::default(),
    });
    let mut pause = Duration::from_millis(500);
    loop {
        match session(&config, &ctx, &shutdown).await {
            Ok(()) => return Ok(()),
            Err(err) if shutdown.is_cancelled() => {
                tracing::info!(error = %err, "stopped");
                return Ok(());
            }
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "broker session ended; reconnecting in {pause:?}");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.cancelled() => return Ok(()),
                }
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
    }
}

pub fn topology_spec(config: &WorkerConfig) -> TopologySpec {
    TopologySpec {
        delivery_limit: config.delivery_limit,
        retry_delays: config.retry_policy().delays,
    }
}

pub async fn connect(url: &str, name: &str) -> anyhow::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(url, properties)
        .await
        .with_context(|| format!("cannot connect to the broker ({name})"))
}

/// One connected stretch: from connecting to a lost connection (Err) or a shutdown (Ok).
async fn session(
    config: &WorkerConfig,
    ctx: &Arc<JobContext<FsStore>>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let consumer_conn = connect(&config.amqp_url, "wecom-archive worker (consume)").await?;
    let publisher_conn = connect(&config.amqp_url, "wecom-archive worker (publish)").await?;
    let channel = consumer_conn.create_channel().await?;
    if !config.no_declare {
        topology::declare(&channel, &topology_spec(config)).await?;
    }
    channel
        .basic_qos(config.prefetch, BasicQosOptions::default())
        .await?;
    let shared = Arc::new(Shared {
        ctx: Arc::clone(ctx),
        publisher: Publisher::open(&publisher_conn).await?,
        policy: config.retry_policy(),
    });
    let mut consumers: SelectAll<_> = SelectAll::new();
    let mut tags = Vec::new();
    for kind in JobKind::ALL {
        let consumer: Consumer = channel
            .basic_consume(
                topology::job_queue(kind).into(),
                format!("wecom-archive-{}-{}", kind.name(), uuid::Uuid::new_v4())
                    .as_str()
                    .into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tags.push(consumer.tag());
        consumers.push(consumer.map(move |delivery| (kind, delivery)));
    }
    tracing::info!(
        prefetch = config.prefetch,
        concurrency = config.concurrency,
        "consuming"
    );
    let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let mut jobs = JoinSet::new();
    let ended = loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = shutdown.cancelled() => break Ok(()),
        };
        let next = tokio::select! {
            next = consumers.next() => next,
            _ = shutdown.cancelled() => break Ok(()),
        };
        match next {
            Some((kind, Ok(delivery))) => {
                let shared = Arc::clone(&shared);
                jobs.spawn(async move {
                    handle(delivery, kind, shared).await;
                    drop(permit);
                });
            }
            Some((_, Err(err))) => break Err(anyhow::Error::new(err).context("consuming failed")),
            None => break Err(anyhow::anyhow!("the broker cancelled the consumers")),
        }
        // Reap finished jobs so the set does not grow.
        while jobs.try_join_next().is_some() {}
    };
    if ended.is_ok() {
        tracing::info!(
            in_flight = jobs.len(),
            "shutting down: no new jobs, finishing the ones held"
        );
        for tag in tags {
            let _ = channel
                .basic_cancel(tag, BasicCancelOptions::default())
                .await;
        }
    }
    while jobs.join_next().await.is_some() {}
    let _ = publisher_conn.close(200, "worker stopping".into()).await;
    let _ = consumer_conn.close(200, "worker stopping".into()).await;
    ended
}
