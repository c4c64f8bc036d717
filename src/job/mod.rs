//! The job core: what a job is, how it runs, what it produces, and what happens to it next. It
//! does not know whether a job came from AMQP or HTTP, nor where media is stored: a door hands
//! it a parsed job and a sink, and carries out the fate it decides.
//!
//! - [`CoreConfig`](crate::config::CoreConfig): the core's settings; [`core`]: the [`Core`],
//!   built once from them, and [`Core::run`];
//! - [`contract`]: the JSON shapes of jobs and results; [`parse`](mod@parse): bytes to a
//!   validated [`Job`];
//!   [`results`]: building the results;
//! - [`corps`]: credentials, from a job or the corp directory; [`key_cache`]: inline keys
//!   parsed once; [`sdk_handle`]: an SDK handle in process or in an SDK host; [`sdk_pool`]:
//!   handles pooled per corp, closed when idle;
//! - `fetch_chatdata`, `fetch_media`: running each kind of job; `catchup`: which calls a chat
//!   job makes, several at once, and how their answers become pages;
//! - [`sink`]: where outputs go as soon as they exist;
//! - [`error`]: the one typed job error; [`retry`]: the retry policy, a plain value;
//!   [`fate`]: the one decision of what happens to a job next.

mod catchup;
pub mod contract;
pub mod core;
pub mod corps;
pub mod error;
pub mod fate;
mod fetch_chatdata;
mod fetch_media;
pub mod key_cache;
pub mod parse;
pub mod results;
pub mod retry;
pub mod sdk_handle;
pub mod sdk_pool;
pub mod sink;

pub use self::core::{Core, JobMeta};
pub use contract::JobKind;
pub use parse::{parse, InvalidJob, Job};
