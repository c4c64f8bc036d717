//! `/metrics` (Prometheus' text format), `/healthz` (the process lives and its runtime answers)
//! and `/readyz` (the door is ready for work), as routes: the worker serves them on a listener
//! of their own ([`serve`], `WECOM_METRICS_LISTEN`), the HTTP gateway beside its endpoints.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use super::readiness::Readiness;

/// What the routes read.
#[derive(Clone)]
pub struct Telemetry {
    /// The registry `/metrics` encodes.
    pub metrics: Arc<Metrics>,
    /// The flag `/readyz` answers from (200 when set, 503 otherwise).
    pub readiness: Arc<Readiness>,
}

/// The three routes, for any router.
pub fn routes<S>(telemetry: Telemetry) -> Router<S> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(telemetry)
}

async fn metrics(State(telemetry): State<Telemetry>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        telemetry.metrics.encode(),
    )
}

async fn ready(State(telemetry): State<Telemetry>) -> impl IntoResponse {
    if telemetry.readiness.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// The listener for [`serve`], bound at start so that a taken port stops the command at once.
pub async fn bind(listen: SocketAddr) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} for metrics"))?;
    tracing::info!("metrics and health on http://{}", listener.local_addr()?);
    Ok(listener)
}

/// Serves the routes on `listener` until `shutdown` fires.
pub async fn serve(telemetry: Telemetry, listener: TcpListener, shutdown: CancellationToken) {
    let served = axum::serve(listener, routes(telemetry))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    if let Err(err) = served {
        tracing::error!(error = %err, "the metrics server failed");
    }
}
