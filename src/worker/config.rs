//! The worker's configuration, from the command line or the environment (`WECOM_*`).
//!
//! None of these types derives `Debug`: the broker URL may hold a password.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::topology::TopologySpec;
use crate::job::retry::RetryPolicy;

/// The broker a command talks to ([`super::connection::Broker`] reads the files).
#[derive(Clone, Args)]
pub struct AmqpArgs {
    /// The broker, amqp:// or amqps://.
    #[arg(
        long,
        env = "WECOM_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// PEM certificates trusted for an amqps:// broker, besides the system's.
    #[arg(long, env = "WECOM_AMQP_CA_FILE")]
    pub amqp_ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) shown to an amqps:// broker that asks for one.
    #[arg(long, env = "WECOM_AMQP_CLIENT_CERT", requires = "amqp_client_key")]
    pub amqp_client_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the client certificate.
    #[arg(long, env = "WECOM_AMQP_CLIENT_KEY", requires = "amqp_client_cert")]
    pub amqp_client_key: Option<PathBuf>,
}

/// What the worker and `topology apply` must agree on: the broker refuses to declare a queue
/// again with other arguments than it has.
#[derive(Clone, Args)]
pub struct TopologyArgs {
    /// Attempts per job before it is dead-lettered.
    #[arg(long, env = "WECOM_MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: u32,
    /// Retry delays in seconds, comma-separated; the last repeats. A delay queue is declared for
    /// each (and for its jitter variants).
    #[arg(
        long,
        env = "WECOM_RETRY_DELAYS",
        value_delimiter = ',',
        default_value = "5,30,120,600"
    )]
    pub retry_delays: Vec<u64>,
    /// Unsettled deliveries of one job (its worker died, lost the broker, or released it
    /// unstarted) the job queues allow. A job runs at most this many times: the delivery the
    /// broker counts as the last one is failed (20305) and dead-lettered instead of run.
    #[arg(long, env = "WECOM_DELIVERY_LIMIT", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub delivery_limit: u32,
}

impl TopologyArgs {
    pub fn retry_policy(&self) -> RetryPolicy {
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

    pub fn spec(&self) -> TopologySpec {
        TopologySpec {
            delivery_limit: self.delivery_limit,
            retry_delays: self.retry_policy().all_delays(),
        }
    }
}

/// How the worker connects, how much it does at once, and where things are.
#[derive(Clone, Args)]
pub struct WorkerConfig {
    #[command(flatten)]
    pub amqp: AmqpArgs,
    #[command(flatten)]
    pub topology: TopologyArgs,
    /// Path of libWeWorkFinanceSdk_C.so.
    #[arg(long, env = "WECOM_SDK_LIB")]
    pub lib: PathBuf,
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
    /// Unacknowledged deliveries the broker may push to this worker, per job queue.
    #[arg(long, env = "WECOM_PREFETCH", default_value_t = 8)]
    pub prefetch: u16,
    /// Jobs handled at once.
    #[arg(long, env = "WECOM_CONCURRENCY", default_value_t = 8)]
    pub concurrency: usize,
    /// SDK calls at once per corp (the size of each corp's handle pool).
    #[arg(long, env = "WECOM_SDK_PER_CORP", default_value_t = 4)]
    pub sdk_per_corp: usize,
    /// Files up to this many bytes may be returned inline (base64) when a job asks.
    #[arg(long, env = "WECOM_INLINE_MAX_BYTES", default_value_t = 1024 * 1024)]
    pub inline_max_bytes: u64,
    /// Do not declare the topology at start (it is managed elsewhere).
    #[arg(long, env = "WECOM_NO_DECLARE")]
    pub no_declare: bool,
}
