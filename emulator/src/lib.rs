//! A faithful, deterministic emulator of the WeCom chat-archive Finance SDK,
//! `libWeWorkFinanceSdk_C.so`, for tests and demos. `cargo build` leaves
//! `libWeWorkFinanceSdk_C.so` with the real library's 17 C functions ([`ffi`]), return codes,
//! memory rules and crashes (`docs/SDK.md`), serving a generated archive instead of
//! Tencent's servers. The rlib side gives tests what they need to check results: the config
//! types ([`config`]), the call log ([`call_log`]), media ids and content, message plaintexts.
//!
//! Map of the crate: [`config`] (what the archive holds), `runtime` (the config made ready, once
//! per process), `corp` (one corp: keys, tag, fault counters), `messages` (generated
//! plaintexts), `chat` (sealed `GetChatData` bodies) with `rsa_seal`, `file_id` and `media`
//! (sdkfileids, content, chunks), `faults`, `network` (proxy reachability), `sdk` (the handle
//! and its calls), `decrypt` (`DecryptData`), `handles` (the live-handle registry), `outcome`,
//! `seeding`, `json`, and [`ffi`], the only unsafe code. The wire formats shared with the
//! production binding come from `wecom_sdk_format`.
//!
//! Same config, same bytes: every random choice is seeded from the config.

#![deny(unsafe_code)]
#![warn(missing_docs)]
// The library must be named like the real one, WeWorkFinanceSdk_C, and so must the C functions.
#![allow(non_snake_case)]

pub mod call_log;
mod chat;
pub mod config;
mod corp;
mod decrypt;
mod faults;
#[allow(unsafe_code)]
pub mod ffi;
mod file_id;
mod handles;
mod json;
mod media;
mod messages;
mod network;
mod outcome;
mod rsa_seal;
mod runtime;
mod sdk;
mod sealed_store;
mod seeding;

pub use call_log::{read_call_log, CallRecord, Op, CALL_LOG_ENV};
pub use chat::holds_seq;
pub use config::{
    Config, ConfigError, CorpConfig, Faults, MediaSizes, OpFaults, CONFIG_ENV, DEFAULT_MSGTYPE_MIX,
};
pub use corp::corp_tag;
pub use faults::COUNTERS_ENV;
pub use file_id::{media_file_id, FileId, InvalidFileId};
pub use media::{media_content, MediaContent};
pub use messages::message_plaintext;
