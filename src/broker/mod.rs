//! RabbitMQ as this project uses it: every door that talks to the broker (the worker, the HTTP
//! gateway through the broker, `dlq`, `publish`, `topology`, the demo) goes through here.
//!
//! - [`Broker`] ([`connection`]): the node URLs, TLS and heartbeats, connecting to one node of a
//!   cluster after another;
//! - [`Publisher`] ([`publisher`]): publishes that count only once confirmed, asked again on a
//!   fresh channel when a channel is the problem;
//! - [`consuming`]: a job queue's consume, asked again when a node does not answer;
//! - [`topology`]: the exchanges and queues, their names, and declaring them;
//! - [`headers`] and [`signing`]: the project's own AMQP headers, the steering ones signed;
//! - [`malformed`]: what the patched AMQP parser had to repair in a message;
//! - [`properties`]: the properties a job keeps when it is published again;
//! - [`reconnect`]: when a door starts its next broker session after one ended: one policy,
//!   with one [`crate::backoff`], for the worker and the gateway.

pub mod connection;
pub mod consuming;
pub mod headers;
pub mod malformed;
pub mod properties;
pub mod publisher;
pub mod reconnect;
pub mod signing;
pub mod topology;

pub use connection::Broker;
pub use publisher::{PublishError, Publisher};
