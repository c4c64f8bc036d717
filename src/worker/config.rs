//! The worker's configuration, from the command line or the environment (`WECOM_*`).
//!
//! None of these types derives `Debug`: the broker URL may hold a password.

use std::path::PathBuf;

use clap::Args;

use super::topology::TopologySpec;
use crate::job::retry::RetryPolicy;

/// The broker a command talks to ([`super::connection::Broker`] reads the files).
#[derive(Clone, Args)]
pub struct AmqpArgs {
    /// The broker, amqp:// or amqps://; a cluster's nodes comma-separated (same user and
    /// vhost), tried in a shuffled order at every connect.
    #[arg(
        long,
        env = "WECOM_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// Seconds between AMQP heartbeats (a URL's own `?heartbeat=` wins): a dead or frozen node
    /// is noticed after about twice this.
    #[arg(long, env = "WECOM_AMQP_HEARTBEAT_SECS", default_value_t = 5)]
    pub amqp_heartbeat_secs: u16,
    /// Seconds a publish may wait for the broker's confirm; then the session ends (its jobs are
    /// released to the broker) and the worker connects again, to another node if need be.
    #[arg(long, env = "WECOM_AMQP_CONFIRM_TIMEOUT_SECS", default_value_t = 15)]
    pub amqp_confirm_timeout_secs: u64,
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

/// What the worker and `topology apply` must agree on besides the retry policy (whose delays
/// make the delay queues): the broker refuses to declare a queue again with other arguments
/// than it has.
#[derive(Clone, Args)]
pub struct TopologyArgs {
    /// Unsettled deliveries of one job (its worker died, lost the broker, or released it
    /// unstarted) the job queues allow. A job runs at most this many times: the delivery the
    /// broker counts as the last one is failed (20305) and dead-lettered instead of run.
    #[arg(long, env = "WECOM_DELIVERY_LIMIT", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub delivery_limit: u32,
}

impl TopologyArgs {
    pub fn spec(&self, policy: &RetryPolicy) -> TopologySpec {
        TopologySpec {
            delivery_limit: self.delivery_limit,
            retry_delays: policy.all_delays(),
        }
    }
}

/// How the worker connects to the broker and how much it takes at once. What it runs jobs with
/// is the job core's configuration ([`crate::job::CoreConfig`]).
#[derive(Clone, Args)]
pub struct WorkerConfig {
    #[command(flatten)]
    pub amqp: AmqpArgs,
    #[command(flatten)]
    pub topology: TopologyArgs,
    /// Unacknowledged deliveries the broker may push to this worker, per job queue.
    #[arg(long, env = "WECOM_PREFETCH", default_value_t = 8)]
    pub prefetch: u16,
    /// Jobs handled at once.
    #[arg(long, env = "WECOM_CONCURRENCY", default_value_t = 8)]
    pub concurrency: usize,
    /// Pages of a multi-page chat job run per delivery; then a continuation of the job takes
    /// the rest over. More pages keep more calls ahead busy; a worker lost during a delivery
    /// costs (and publishes again) up to that many pages.
    #[arg(long, env = "WECOM_CHAT_PAGES_PER_DELIVERY", default_value_t = 20)]
    pub chat_pages_per_delivery: u32,
    /// Seconds a stopping worker waits for its running jobs; then they are released to the
    /// broker unfinished and the worker exits. Keep it below the supervisor's grace period.
    #[arg(long, env = "WECOM_DRAIN_TIMEOUT_SECS", default_value_t = 50)]
    pub drain_timeout_secs: u64,
    /// A file holding the key that signs the worker's own headers (attempt, progress), the same
    /// for every worker; by default a key derived from the broker user, password and vhost.
    #[arg(long, env = "WECOM_HEADER_KEY_FILE")]
    pub header_key_file: Option<PathBuf>,
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
