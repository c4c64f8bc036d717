//! wecom-archive: the WeCom chat-archive Finance SDK as a reliable worker.
//!
//! Layers, from the C library up:
//! - [`sdk`]: the safe binding to `libWeWorkFinanceSdk_C.so` (the only `unsafe` code).
//! - [`keys`]: the corp's RSA private keys by `publickey_ver`.
//! - [`decrypt`]: a page of encrypted messages to JSON, message by message.
//! - [`media`]: streaming a media file, chunk by chunk, into a store, resumably.
//! - [`error_code`]: the codes failures carry.
//! - [`cli`]: the command line (`wecom-archive sdk check`, `fetch chatdata`, `fetch media`).
#![deny(unsafe_code)]

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
pub mod sdk;
pub mod sdk_host;
pub mod secret_file;
pub mod telemetry;
pub mod worker;
