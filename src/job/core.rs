//! The job core, built once from its configuration ([`Core::build`], the composition root) and
//! driven by any door: [`Core::run`] takes a parsed job, what the door knows of it
//! ([`JobMeta`]), a sink for its outputs and a cancellation token, and says how the run ended.
//! What then happens to the job is [`super::fate::decide`]'s call.
//!
//! SDK calls and RSA run on blocking threads, so a door's async threads stay free (the broker's
//! heartbeats run there). A run stops at its next page or chunk once its token fires; an SDK
//! call already under way is not waited for: its blocking thread finishes it, returns the handle
//! to its pool (or discards it after a transient error) and drops the result.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::contract::ChatProgress;
use super::corps::CorpDirectory;
use super::fate::Stop;
use super::parse::Job;
use super::retry::RetryPolicy;
use super::sdk_handle::Backend;
use super::sdk_pool::SdkPools;
use super::sink::OutputSink;
use super::{fetch_chatdata, fetch_media};
use crate::config::{CoreConfig, Isolation};
use crate::media::{ChunkRetry, FsStore, MediaStore};
use crate::sdk::FinanceSdk;
use crate::sdk_host::client::HostSpawner;
use crate::telemetry::Metrics;

/// How often idle SDK pools are looked for.
const MAINTENANCE_TICK: Duration = Duration::from_secs(1);

/// Everything a job needs from the process it runs in.
pub struct Core<S = FsStore> {
    pub(super) pools: SdkPools,
    pub(super) corps: CorpDirectory,
    pub(super) store: S,
    /// Files up to this size may be returned inline (base64) when a job asks.
    pub(super) inline_max_bytes: u64,
    pub(super) chunk_retry: ChunkRetry,
    /// The gate a page passes to be decrypted; one permit. A page already spreads over every
    /// core, so pages decrypting side by side would gain nothing and would all finish late
    /// together; one at a time (in arrival order: the semaphore is fair), they finish one
    /// after another while the other jobs fetch and publish.
    pub(super) decrypting: Arc<Semaphore>,
    policy: RetryPolicy,
    /// `GetChatData` calls a chat job keeps out at once.
    pub(super) chat_pages_in_flight: usize,
    /// What the core records of its work; doors record theirs here too.
    metrics: Arc<Metrics>,
    isolation: Isolation,
}

/// What a door knows of a job besides its body.
#[derive(Debug, Clone, Default)]
pub struct JobMeta {
    /// The job's `job_id`, else the door's message id: what results are reported under.
    pub job_id: Option<String>,
    /// Echoed in every result.
    pub correlation_id: Option<String>,
    /// 1-based.
    pub attempt: u32,
    /// Where an earlier delivery of a multi-page chat job left off.
    pub progress: Option<ChatProgress>,
}

impl Core<FsStore> {
    /// Loads the library and the corp directory and opens the media store: everything that
    /// can be wrong with the configuration fails here, before a door opens.
    pub fn build(config: &CoreConfig) -> anyhow::Result<Arc<Self>> {
        let backend = match config.sdk_isolation {
            Isolation::InProcess => Backend::InProcess(FinanceSdk::load(&config.sdk.lib)?),
            Isolation::Process => {
                // This very binary, even if it was replaced on disk since it started.
                let exe = config
                    .sdk_host_exe
                    .clone()
                    .unwrap_or_else(|| "/proc/self/exe".into());
                let spawner = HostSpawner {
                    exe,
                    lib: config.sdk.lib.clone(),
                    call_timeout: Duration::from_secs(config.sdk_call_timeout_secs.max(1)),
                };
                // A library that does not load fails here, not in every job.
                spawner.probe()?;
                Backend::Hosts(spawner)
            }
        };
        let corps = match &config.corps_file {
            Some(path) => {
                CorpDirectory::load(path, config.inline_credentials, config.key_cache_sets)?
            }
            None => CorpDirectory::inline_only(config.inline_credentials, config.key_cache_sets),
        };
        let store = FsStore::new(&config.media_dir);
        store.check_writable()?;
        Ok(Arc::new(Self {
            pools: SdkPools::new(
                backend,
                config.sdk_per_corp,
                Duration::from_secs(config.sdk_pool_idle_secs),
            ),
            corps,
            store,
            inline_max_bytes: config.inline_max_bytes,
            chunk_retry: ChunkRetry::default(),
            decrypting: Arc::new(Semaphore::new(1)),
            policy: config.retry.policy(),
            chat_pages_in_flight: config
                .chat_pages_in_flight
                .clamp(1, config.sdk_per_corp.max(1)),
            metrics: Arc::new(Metrics::new()),
            isolation: config.sdk_isolation,
        }))
    }
}

impl<S> Core<S>
where
    S: MediaStore + Send + Sync + 'static,
    S::Partial: Send + 'static,
{
    /// Runs `job` until it is done, fails, or `cancel` fires, handing each output to `sink`.
    pub async fn run(
        self: &Arc<Self>,
        job: Job,
        meta: &JobMeta,
        sink: &mut impl OutputSink,
        cancel: &CancellationToken,
    ) -> Result<(), Stop> {
        match job {
            Job::Chatdata(job) => fetch_chatdata::run(self, job, meta, sink, cancel).await,
            Job::Media(job) => fetch_media::run(self, job, meta, sink, cancel).await,
        }
    }
}

impl<S> Core<S> {
    /// The retry policy, as configured: what a door passes to [`super::fate::decide`], and
    /// declares its delay queues from.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// What the core records of its work, shared with the doors that record theirs here.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Whether the library runs in this process, where a crash of it kills the process.
    pub fn sdk_in_process(&self) -> bool {
        self.isolation == Isolation::InProcess
    }

    /// Closes idle SDK pools every second until `shutdown` fires, and counts the open ones.
    pub async fn maintain(self: Arc<Self>, shutdown: CancellationToken)
    where
        S: Send + Sync + 'static,
    {
        let mut tick = tokio::time::interval(MAINTENANCE_TICK);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            // Closing pools ends SDK hosts, which may block for a moment.
            let core = Arc::clone(&self);
            let _ =
                tokio::task::spawn_blocking(move || core.pools.close_idle(Instant::now())).await;
            self.metrics.set_sdk_pools_open(self.open_pools());
        }
    }

    /// Corps with SDK handles open now.
    pub fn open_pools(&self) -> usize {
        self.pools.open_pools()
    }

    /// Inline private-key sets kept parsed now.
    pub fn cached_key_sets(&self) -> usize {
        self.corps.cached_key_sets()
    }
}

/// Runs `work` on a blocking thread, inside the current tracing span (so its log lines carry the
/// job id and corp like the rest).
pub(super) async fn in_blocking_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .expect("blocking work does not panic")
}
