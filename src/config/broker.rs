//! The broker's settings, from the command line or the environment (`WECOM_AMQP_*`, and the
//! topology's `WECOM_DELIVERY_LIMIT`).
//!
//! None of these types derives `Debug`: the broker URL may hold a password.

use std::path::PathBuf;

use clap::Args;

use crate::broker::topology::TopologySpec;
use crate::job::retry::RetryPolicy;

/// The broker a command talks to ([`crate::broker::Broker`] reads the files).
#[derive(Clone, Args)]
pub struct BrokerConfig {
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
    #[arg(long, env = "WECOM_AMQP_CONFIRM_TIMEOUT_SECS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..))]
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
pub struct TopologyConfig {
    /// Unsettled deliveries of one job (its worker died, lost the broker, or released it
    /// unstarted) the job queues allow. A job runs at most this many times: the delivery the
    /// broker counts as the last one is failed (20305) and dead-lettered instead of run.
    #[arg(long, env = "WECOM_DELIVERY_LIMIT", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub delivery_limit: u32,
}

impl TopologyConfig {
    /// The topology to declare with these settings and `policy`'s retry delays (jitter
    /// variants included).
    pub fn spec(&self, policy: &RetryPolicy) -> TopologySpec {
        TopologySpec {
            delivery_limit: self.delivery_limit,
            retry_delays: policy.all_delays(),
        }
    }
}
