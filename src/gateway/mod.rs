//! The HTTP door of the job core: a drop-in for the seed service (the FastAPI service in front of
//! the SDK that this project replaces), whose clients work unchanged when pointed here, and a
//! versioned API beside it. `wecom-archive serve` runs it ([`run`]).
//!
//! - [`GatewayConfig`](crate::config::GatewayConfig): its settings; [`connections`]: the
//!   accept loop and its limits; [`routes`]: the endpoints; [`auth`]: the optional token;
//!   [`request`]: a body made a job; [`compat`]: the seed service's answer shapes; [`problem`]:
//!   failures as HTTP answers; [`media_body`]: stored files streamed; [`openapi`]: the API
//!   description and its docs page;
//! - [`runner`]: where jobs run, [`in_process`] (the job core here, the default) or
//!   [`via_broker`] (the workers, through RabbitMQ). Both hand back the result messages the
//!   worker publishes, so both answer the same.

pub mod auth;
pub mod compat;
pub mod connections;
pub mod in_process;
pub mod media_body;
pub mod openapi;
pub mod problem;
pub mod request;
pub mod routes;
pub mod runner;
pub mod via_broker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use connections::ConnectionLimits;
pub use routes::Gateway;

/// How long a stopping gateway waits for the answers under way (their jobs are given up with
/// 503 at once; a long media stream may still be sending).
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `gateway` on `listen` within `limits` until `shutdown` fires; answers under way then
/// get `DRAIN` (10 s) to finish.
pub async fn run(
    gateway: Arc<Gateway>,
    listen: SocketAddr,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
    if !address.ip().is_loopback() && gateway.token.is_none() {
        tracing::warn!(%address, "listening beyond loopback without a token: anyone who reaches this address can run jobs (set WECOM_HTTP_TOKEN_FILE)");
    }
    tracing::info!("gateway listening on http://{address}");
    connections::serve(listener, routes::router(gateway), limits, shutdown, DRAIN).await;
    Ok(())
}
