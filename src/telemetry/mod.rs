//! What operators see of a running door: Prometheus [`metrics`], [`readiness`] for `/readyz`,
//! the [`endpoints`] that serve them with `/healthz`, and the W3C [`trace_context`] a job
//! carries through logs and everything it publishes.

pub mod endpoints;
pub mod logs;
pub mod metrics;
pub mod readiness;
pub mod trace_context;

pub use endpoints::Telemetry;
pub use metrics::Metrics;
pub use readiness::Readiness;
pub use trace_context::TraceContext;
