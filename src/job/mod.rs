//! The job core: what a job is, how it runs, what it produces. It does not know whether a job
//! came from AMQP or HTTP, nor where media is stored: transports ([`crate::worker`]) hand it
//! bytes and get back outputs, a retry, or a failure.
//!
//! - [`contract`]: the JSON shapes of jobs and results;
//! - [`parse`]: bytes to a validated [`Job`];
//! - [`corps`]: credentials, from a job or from the worker's corp directory;
//! - [`sdk_pool`]: SDK handles pooled per corp;
//! - [`run`]: executing a job;
//! - [`retry`]: the retry policy, a plain value.

pub mod contract;
pub mod corps;
pub mod parse;
pub mod retry;
pub mod run;
pub mod sdk_pool;

pub use contract::JobKind;
pub use parse::{parse, InvalidJob, Job};
