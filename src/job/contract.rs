//! The message contract: jobs in, results and failures out, as JSON.
//!
//! `schemas/*.json` describe the same shapes. A job is validated against its schema before it is
//! deserialized here (so unknown fields and wrong types are refused with the schema's words),
//! and tests validate every message the worker publishes against the result schemas. A job is the same
//! whether it came from AMQP or (later) HTTP: its type comes from where it was sent (the
//! routing key or the endpoint), an optional `type` field must agree with it.
//!
//! The seed service's request body is a valid job as it is:
//! `{"seq", "corpid", "secret", "private_keys": [{"publickey_ver", "private_key"}], "proxy", "paswd"}`
//! (plus `"sdkfileid"` for media). Secrets deserialize into `SecretString`, so `Debug` never shows
//! them, and no result type has a field that could carry one.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::decrypt::{DecryptedMessage, MessageError};
use crate::error_code::ErrorInfo;
use crate::media::MediaReport;

/// The two kinds of job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
pub enum JobKind {
    #[serde(rename = "fetch-chatdata")]
    #[value(name = "chatdata", alias = "fetch-chatdata")]
    FetchChatdata,
    #[serde(rename = "fetch-media")]
    #[value(name = "media", alias = "fetch-media")]
    FetchMedia,
}

impl JobKind {
    pub const ALL: [JobKind; 2] = [JobKind::FetchChatdata, JobKind::FetchMedia];

    /// The name used as routing key, queue name and `type` field.
    pub fn name(self) -> &'static str {
        match self {
            Self::FetchChatdata => "fetch-chatdata",
            Self::FetchMedia => "fetch-media",
        }
    }

    /// The `type` of the results this kind of job produces.
    pub fn result_type(self) -> &'static str {
        match self {
            Self::FetchChatdata => "chatdata-page",
            Self::FetchMedia => "media",
        }
    }
}

/// One private key of a corp, inline in a job.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InlineKey {
    pub publickey_ver: u32,
    pub private_key: SecretString,
}

/// Who the job is for: a corp alias the worker knows, or inline credentials.
#[derive(Debug, Deserialize)]
pub struct CorpRef {
    /// An alias from the worker's corp directory.
    #[serde(default)]
    pub corp: Option<String>,
    #[serde(default)]
    pub corpid: Option<String>,
    #[serde(default)]
    pub secret: Option<SecretString>,
    #[serde(default)]
    pub private_keys: Option<Vec<InlineKey>>,
}

/// How the SDK reaches the archive server for this job.
#[derive(Debug, Default, Deserialize)]
pub struct NetRef {
    #[serde(default)]
    pub proxy: Option<String>,
    /// The seed service's spelling; `proxy_password` is accepted too.
    #[serde(default, alias = "proxy_password")]
    pub paswd: Option<SecretString>,
    /// Seconds per SDK call.
    #[serde(default)]
    pub timeout: Option<i32>,
}

/// `fetch-chatdata`: up to `max_pages` pages of messages after `seq`, one result per page.
#[derive(Debug, Deserialize)]
pub struct ChatdataJob {
    #[serde(default)]
    pub job_id: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<JobKind>,
    #[serde(flatten)]
    pub corp: CorpRef,
    #[serde(flatten)]
    pub net: NetRef,
    #[serde(default)]
    pub seq: u64,
    #[serde(default = "default_limit")]
    pub limit: u32,
    #[serde(default = "default_max_pages")]
    pub max_pages: u32,
    /// Keep each message's `encrypt_random_key` and `encrypt_chat_msg` in the page, beside
    /// the decrypted message (the seed service's answers carried them).
    #[serde(default)]
    pub include_encrypted: bool,
}

/// `fetch-media`: one media file into the store.
#[derive(Debug, Deserialize)]
pub struct MediaJob {
    #[serde(default)]
    pub job_id: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<JobKind>,
    #[serde(flatten)]
    pub corp: CorpRef,
    #[serde(flatten)]
    pub net: NetRef,
    pub sdkfileid: String,
    #[serde(default)]
    pub md5sum: Option<String>,
    #[serde(default)]
    pub filesize: Option<u64>,
    #[serde(default)]
    pub msgid: Option<String>,
    #[serde(default)]
    pub msgtype: Option<String>,
    #[serde(default)]
    pub file_name: Option<String>,
    /// Return the bytes inline (base64) when the file is at most the worker's inline limit.
    #[serde(default)]
    pub inline: bool,
    /// The seed service's `seq` field, accepted and ignored for media.
    #[serde(default)]
    pub seq: Option<u64>,
}

fn default_limit() -> u32 {
    1000
}

fn default_max_pages() -> u32 {
    1
}

/// How far a multi-page chat job got: the seq to go on after, and the pages already published.
/// Carried by a job's continuation and retry copies (the `x-wecom-progress` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatProgress {
    pub seq: u64,
    pub pages_done: u32,
}

/// Where a result belongs: what a consumer needs to match it to its job and drop duplicates.
#[derive(Debug, Clone, Serialize)]
pub struct Envelope {
    /// The job's id (its `job_id`, else the AMQP `message_id`).
    pub job_id: Option<String>,
    /// The AMQP `correlation_id` of the job, echoed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Unique per result of a job (`job_id`, `job_id:page-N`): the de-duplication key.
    pub result_id: Option<String>,
    pub corpid: Option<String>,
    /// Which attempt produced this result (1 = the first).
    pub attempts: u32,
}

/// Every result: its status and type, the envelope, then what is particular to it.
#[derive(Debug, Serialize)]
pub struct ResultMessage<B> {
    /// `ok` or `failed`.
    pub status: &'static str,
    /// The job kind's [`JobKind::result_type`].
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(flatten)]
    pub envelope: Envelope,
    #[serde(flatten)]
    pub body: B,
}

/// One page of a `fetch-chatdata` job.
#[derive(Debug, Serialize)]
pub struct ChatPage {
    /// 1-based page number within the job.
    pub page: u32,
    /// The `seq` this page was fetched after.
    pub seq: u64,
    /// The seq to ask after next time (the last message's, or `seq` when the page was empty).
    pub next_seq: u64,
    /// Whether the archive holds more messages after `next_seq`.
    pub has_more: bool,
    pub messages: Vec<DecryptedMessage>,
    pub errors: Vec<MessageError>,
}

/// The file of a `fetch-media` job.
#[derive(Debug, Serialize)]
pub struct MediaFile {
    pub sdkfileid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msgid: Option<String>,
    #[serde(flatten)]
    pub file: MediaReport,
    /// The file's bytes, base64, when the job asked and the file is small enough.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_base64: Option<String>,
}

/// Why a job ended without a result.
#[derive(Debug, Serialize)]
pub struct Failure {
    pub error: ErrorInfo,
}
