//! The job core's configuration, from the command line or the environment (`WECOM_*`): the
//! library, the corps, the media store, how much runs at once, the caches and the retry policy.
//! Every door (the AMQP worker, later others) takes it the same way.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{at_least_one, retry_delay, SdkLibConfig};
use crate::job::retry::RetryPolicy;

/// The job core's settings, the same for every door (the worker, the HTTP gateway, the demo).
#[derive(Clone, Args)]
pub struct CoreConfig {
    /// The Finance SDK library to load (`WECOM_SDK_LIB`).
    #[command(flatten)]
    pub sdk: SdkLibConfig,
    /// Where media files are stored.
    #[arg(
        long,
        env = "WECOM_MEDIA_DIR",
        default_value = "/var/lib/wecom-archive/media"
    )]
    pub media_dir: PathBuf,
    /// A JSON file of corps by alias (secrets and keys from files or environment variables).
    #[arg(long, env = "WECOM_CORPS_FILE")]
    pub corps_file: Option<PathBuf>,
    /// Whether jobs may carry their own credentials (corpid, secret, private_keys).
    #[arg(long, env = "WECOM_INLINE_CREDENTIALS", default_value_t = true, action = clap::ArgAction::Set)]
    pub inline_credentials: bool,
    /// Where the library runs: `process`, a process of its own per SDK handle (a crash costs one
    /// call), or `in-process`, loaded by the worker (a crash costs the worker and its jobs).
    #[arg(long, env = "WECOM_SDK_ISOLATION", value_enum, default_value_t = Isolation::Process)]
    pub sdk_isolation: Isolation,
    /// Seconds an SDK host may take to answer one network call (`GetChatData`, `GetMediaData`)
    /// before it is taken for hung and killed; keep it above twice the jobs' `timeout` (at most
    /// 300). Calls without network I/O get at most 60 s.
    #[arg(long, env = "WECOM_SDK_CALL_TIMEOUT_SECS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub sdk_call_timeout_secs: u64,
    /// The binary that runs SDK hosts (`wecom-archive sdk-host`); this one by default.
    #[arg(long, env = "WECOM_SDK_HOST_EXE", hide = true)]
    pub sdk_host_exe: Option<PathBuf>,
    /// SDK calls at once per corp (the size of each corp's handle pool).
    #[arg(long, env = "WECOM_SDK_PER_CORP", default_value_t = 4, value_parser = at_least_one)]
    pub sdk_per_corp: usize,
    /// `GetChatData` calls a chat job keeps out at once: the next page is asked for as soon as
    /// one is in, and pages further ahead are guessed (at most `WECOM_SDK_PER_CORP`; one less
    /// leaves a handle free for `DecryptData`). 1 asks for one page at a time.
    #[arg(long, env = "WECOM_CHAT_PAGES_IN_FLIGHT", default_value_t = 3,
          value_parser = at_least_one)]
    pub chat_pages_in_flight: usize,
    /// Seconds a corp's SDK handles stay open without a job before they are closed.
    #[arg(long, env = "WECOM_SDK_POOL_IDLE_SECS", default_value_t = 300)]
    pub sdk_pool_idle_secs: u64,
    /// Inline private-key sets kept parsed (least recently used first out); 0 parses every job's.
    #[arg(long, env = "WECOM_KEY_CACHE_SETS", default_value_t = 64)]
    pub key_cache_sets: usize,
    /// Files up to this many bytes may be returned inline (base64) when a job asks.
    #[arg(long, env = "WECOM_INLINE_MAX_BYTES", default_value_t = 1024 * 1024)]
    pub inline_max_bytes: u64,
    /// Attempts and retry delays.
    #[command(flatten)]
    pub retry: RetryConfig,
}

/// Where the Finance SDK library runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Isolation {
    /// A process of its own per SDK handle.
    Process,
    /// Loaded by the worker.
    InProcess,
}

/// The retry policy. The broker's delay queues are made from it too, so `topology apply` takes
/// the same settings as the worker.
#[derive(Clone, Args)]
pub struct RetryConfig {
    /// Attempts per job (per page of a chat job) before it is dead-lettered.
    #[arg(long, env = "WECOM_MAX_ATTEMPTS", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,
    /// Retry delays in seconds, comma-separated; the last repeats. A delay queue is declared for
    /// each (and for its jitter variants).
    #[arg(
        long,
        env = "WECOM_RETRY_DELAYS",
        value_delimiter = ',',
        value_parser = retry_delay,
        default_value = "5,30,120,600"
    )]
    pub retry_delays: Vec<u64>,
}

impl RetryConfig {
    /// The policy the jobs' fates follow: at least one attempt, the delays as given, the
    /// rest of [`RetryPolicy::default`].
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts.max(1),
            delays: self
                .retry_delays
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            ..RetryPolicy::default()
        }
    }
}
