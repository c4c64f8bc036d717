//! The HTTP gateway's settings, from the command line or the environment (`WECOM_HTTP_*`).
//! Where jobs run is the job core's configuration ([`super::CoreConfig`]) or, through the
//! broker, the workers'.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// The settings of `wecom-archive serve` that are the gateway's own (the rest are the job
/// core's or the broker's).
#[derive(Clone, Args)]
pub struct GatewayConfig {
    /// Address to listen on. Loopback by default: anything else should set a token.
    #[arg(long, env = "WECOM_HTTP_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// A file holding a bearer token every job request must carry (`Authorization: Bearer ...`).
    #[arg(long, env = "WECOM_HTTP_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The largest file `/wecom/finance/mediadata` answers (as one base64 JSON string, which its
    /// callers hold in memory); larger ones get 20402. `/v1/media` streams any size.
    #[arg(
        long,
        env = "WECOM_HTTP_COMPAT_MEDIA_MAX_BYTES",
        default_value_t = 100 * 1024 * 1024
    )]
    pub compat_media_max_bytes: u64,
    /// Seconds a request waits for its job (retries of transient errors included) before it is
    /// answered 504 (20401).
    #[arg(long, env = "WECOM_HTTP_JOB_TIMEOUT_SECS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub job_timeout_secs: u64,
    /// Run the jobs on the workers, through the broker (`WECOM_AMQP_URL`), instead of in this
    /// process. Media files are then read from the workers' store: mount the same volume at the
    /// same `WECOM_MEDIA_DIR`.
    #[arg(long, env = "WECOM_HTTP_VIA_BROKER")]
    pub via_broker: bool,
    /// Connections served at once; more wait, unaccepted, until one ends.
    #[arg(long, env = "WECOM_HTTP_MAX_CONNECTIONS", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub max_connections: u32,
    /// Seconds a request's head may take to arrive (and a kept-alive connection may sit idle),
    /// and a request's body may go without sending anything: then the connection is closed, or
    /// the request answered 400 (20301).
    #[arg(long, env = "WECOM_HTTP_READ_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub read_timeout_secs: u64,
}

impl GatewayConfig {
    /// The accept loop's limits: connections at once and the read timeout.
    pub fn connection_limits(&self) -> crate::gateway::ConnectionLimits {
        crate::gateway::ConnectionLimits {
            max_connections: self.max_connections as usize,
            read_timeout: std::time::Duration::from_secs(self.read_timeout_secs),
        }
    }
}
