//! The gateway's accept loop: a permit before each connection, HTTP/1.1 served by hyper with a
//! read timeout on every request's head and body, and a graceful stop. Used by [`super::run`];
//! the limits are settings ([`crate::config::GatewayConfig`]).
//!
//! Why not `axum::serve`: it sets no timer and no limit. A client that opens connections and
//! sends nothing, or trickles a request's head or body, would hold a task and a file descriptor
//! each for as long as it liked (slowloris), until the process ran out of descriptors and every
//! client was refused.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// How much of a client's time and of this process one connection may take.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections served at once; the next waits in the kernel's backlog until one ends.
    pub max_connections: usize,
    /// How long a request's head may take to arrive (counted from the end of the previous
    /// answer on a kept-alive connection, so an idle connection is closed after it too), and
    /// how long its body may go without sending anything. Past it the connection is closed,
    /// or the request answered 400 (20301).
    pub read_timeout: Duration,
}

/// How long, after an accept failed (out of file descriptors, say), before the next accept.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` within `limits` until `shutdown` fires; the answers under way
/// then get `drain` to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
    drain: Duration,
) {
    let router = router.layer(RequestBodyTimeoutLayer::new(limits.read_timeout));
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout);
    loop {
        // The permit comes first: at the limit, connections wait unaccepted.
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => {
                permit.expect("the semaphore is never closed")
            }
            () = shutdown.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client that went away or timed out is nothing to log above debug.
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "HTTP connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("answers still under way after {drain:?}: stopping without them");
    }
}
