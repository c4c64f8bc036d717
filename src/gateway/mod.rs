//! The HTTP door of the job core: a drop-in for the seed service (the FastAPI service in front of
//! the SDK that this project replaces), whose clients work unchanged when pointed here, and a
//! versioned API beside it. `wecom-archive serve` runs it ([`run`]).
//!
//! - [`config`]: its settings; [`routes`]: the endpoints; [`compat`]: the seed service's answer
//!   shapes; [`problem`]: failures as HTTP answers; [`media_body`]: stored files streamed;
//!   [`openapi`]: the API description and its docs page;
//! - [`runner`]: where jobs run, [`in_process`] (the job core here, the default) or
//!   [`via_broker`] (the workers, through RabbitMQ). Both hand back the result messages the
//!   worker publishes, so both answer the same.

pub mod compat;
pub mod config;
pub mod in_process;
pub mod media_body;
pub mod openapi;
pub mod problem;
pub mod routes;
pub mod runner;
pub mod via_broker;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::GatewayConfig;
pub use routes::Gateway;

/// Serves `gateway` on `listen` until `shutdown` fires; requests under way are then answered
/// (their jobs given up with 503) before it returns.
pub async fn run(
    gateway: Arc<Gateway>,
    listen: SocketAddr,
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
    axum::serve(listener, routes::router(gateway))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("the HTTP server failed")
}
