//! wecom-archive: the WeCom chat-archive Finance SDK as a reliable worker.
//!
//! A job (`fetch-chatdata`, `fetch-media`) comes through a door (the RabbitMQ [`worker`] or
//! the HTTP [`gateway`]), runs in the [`job`] core, which calls the SDK and decides the job's
//! fate, and its results go back through the door.
//!
//! # Layout
//!
//! From the C library up:
//! - [`sdk`]: the safe binding to `libWeWorkFinanceSdk_C.so` (the only `unsafe` code), its
//!   error codes and the crash guards of its inputs;
//! - [`sdk_host`]: the library in a child process of its own, one per SDK handle, so that a
//!   crash costs one call;
//! - [`keys`]: the corp's RSA private keys by `publickey_ver`; [`decrypt`]: a page of encrypted
//!   messages to JSON, message by message;
//! - [`media`]: a media file streamed chunk by chunk into a store, resumably;
//! - [`job`]: the job core: the contract, parsing, the corps, the SDK handle pools, running a
//!   job, its errors, the retry policy and its fate;
//! - [`broker`]: RabbitMQ as this project uses it: connections, confirmed publishes,
//!   consuming, the topology, the project's headers, reconnecting;
//! - [`worker`]: the AMQP door: broker sessions, deliveries run as jobs, fates carried out;
//! - [`gateway`]: the HTTP door (`serve`), in process or through the broker;
//! - [`dlq`]: dead letters listed, shown, replayed and purged;
//! - [`telemetry`]: metrics, readiness and the trace context;
//! - [`config`]: every setting of every command, declared once;
//! - [`cli`]: the command line; [`demo`]: the service end to end against the emulator;
//! - [`error_code`]: the codes failures carry; [`backoff`]: the one doubling pause;
//!   [`secret_file`]: secrets read from files; [`redaction`]: text about a secret without it.
//!
//! The words these modules share (job, page, continuation, fate, door, SDK handle, SDK host,
//! broker session) are defined in `docs/GLOSSARY.md`.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod backoff;
pub mod broker;
pub mod cli;
pub mod config;
pub mod decrypt;
pub mod demo;
pub mod dlq;
pub mod error_code;
pub mod gateway;
pub mod job;
pub mod keys;
pub mod media;
pub mod redaction;
pub mod sdk;
pub mod sdk_host;
pub mod secret_file;
pub mod telemetry;
pub mod worker;
