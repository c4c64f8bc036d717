//! The worker's configuration, from the command line or the environment (`WECOM_*`).
//!
//! None of these types derives `Debug`: the broker URL may hold a password.

use clap::Args;

use super::{at_least_one, BrokerConfig, TopologyConfig};

/// How the worker connects to the broker and how much it takes at once. What it runs jobs with
/// is the job core's configuration ([`super::CoreConfig`]).
#[derive(Clone, Args)]
pub struct WorkerConfig {
    /// Where the broker is and how to log in.
    #[command(flatten)]
    pub amqp: BrokerConfig,
    /// What the declared queues must agree on (the delivery limit).
    #[command(flatten)]
    pub topology: TopologyConfig,
    /// Unacknowledged deliveries the broker may push to this worker, per job queue.
    #[arg(long, env = "WECOM_PREFETCH", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub prefetch: u16,
    /// Jobs handled at once.
    #[arg(long, env = "WECOM_CONCURRENCY", default_value_t = 8,
          value_parser = at_least_one)]
    pub concurrency: usize,
    /// Pages of a multi-page chat job run per delivery; then a continuation of the job takes
    /// the rest over. More pages keep more calls ahead busy; a worker lost during a delivery
    /// costs (and publishes again) up to that many pages.
    #[arg(long, env = "WECOM_CHAT_PAGES_PER_DELIVERY", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub chat_pages_per_delivery: u32,
    /// Seconds a stopping worker waits for its running jobs; then they are released to the
    /// broker unfinished and the worker exits. Keep it below the supervisor's grace period.
    #[arg(long, env = "WECOM_DRAIN_TIMEOUT_SECS", default_value_t = 50)]
    pub drain_timeout_secs: u64,
    /// A file holding the key that signs the worker's own headers (attempt, progress), the same
    /// for every worker; by default a key derived from the broker user, password and vhost.
    #[arg(long, env = "WECOM_HEADER_KEY_FILE")]
    pub header_key_file: Option<std::path::PathBuf>,
    /// Take the worker's own headers without a signature (not with a wrong one), while jobs of a
    /// version that did not sign them are still queued.
    #[arg(long, env = "WECOM_ACCEPT_UNSIGNED_HEADERS")]
    pub accept_unsigned_headers: bool,
    /// Do not declare the topology at start (it is managed elsewhere).
    #[arg(long, env = "WECOM_NO_DECLARE")]
    pub no_declare: bool,
    /// Serve /metrics (Prometheus), /healthz and /readyz on this address (off when unset).
    #[arg(long, env = "WECOM_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}
