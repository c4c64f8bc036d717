//! The message contract: jobs in, results and failures out, as JSON.
//!
//! `schemas/*.json` describe the same shapes. A job is validated against its schema before it is
//! deserialized here (so unknown fields and wrong types are refused with the schema's words),
//! and tests validate every message the worker publishes against the result schemas. A job is
//! the same whether it came from AMQP or (later) HTTP: its type comes from where it was sent
//! (the routing key or the endpoint), an optional `type` field must agree with it.
//!
//! The seed service's request body is a valid job as it is:
//! `{"seq", "corpid", "secret", "private_keys": [{"publickey_ver", "private_key"}],
//! "proxy", "paswd"}` (plus `"sdkfileid"` for media). Secrets deserialize into `SecretString`,
//! so `Debug` never shows them, and no result type has a field that could carry one.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::decrypt::{DecryptedMessage, MessageError};
use crate::error_code::ErrorInfo;
use crate::media::MediaReport;

/// The two kinds of job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
pub enum JobKind {
    /// `fetch-chatdata` (`chatdata` on the command line): pages of chat messages, decrypted.
    #[serde(rename = "fetch-chatdata")]
    #[value(name = "chatdata", alias = "fetch-chatdata")]
    FetchChatdata,
    /// `fetch-media` (`media` on the command line): one media file, into the media store.
    #[serde(rename = "fetch-media")]
    #[value(name = "media", alias = "fetch-media")]
    FetchMedia,
}

impl JobKind {
    /// Every kind: each has its own job queue, result queue, delay and dead-letter queues.
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
    /// The version of the corp's public key this private key belongs to; a message names the
    /// version its random key was encrypted for.
    pub publickey_ver: u32,
    /// PKCS#1 or PKCS#8 PEM, unencrypted, 1024 to 4096 bits.
    pub private_key: SecretString,
}

/// Who the job is for: a corp alias the worker knows, or inline credentials.
#[derive(Debug, Deserialize)]
pub struct CorpRef {
    /// An alias from the worker's corp directory.
    #[serde(default)]
    pub corp: Option<String>,
    /// Inline credentials: the corp's id, given with `secret` and instead of `corp`.
    #[serde(default)]
    pub corpid: Option<String>,
    /// Inline credentials: the corp's chat-archive secret, given with `corpid`.
    #[serde(default)]
    pub secret: Option<SecretString>,
    /// Inline credentials: the corp's private keys, needed to decrypt chat messages; accepted
    /// and unused by media jobs.
    #[serde(default)]
    pub private_keys: Option<Vec<InlineKey>>,
}

/// How the SDK reaches the archive server for this job.
#[derive(Debug, Default, Deserialize)]
pub struct NetRef {
    /// The proxy the SDK goes through (`http://host:port`, `socks5://host:port`); absent or
    /// empty for none.
    #[serde(default)]
    pub proxy: Option<String>,
    /// The proxy's `user:password`. The seed service's spelling; `proxy_password` is accepted
    /// too, not both.
    #[serde(default, alias = "proxy_password")]
    pub paswd: Option<SecretString>,
    /// Seconds per SDK call, 1 to 300; 5 when absent.
    #[serde(default)]
    pub timeout: Option<i32>,
}

/// `fetch-chatdata`: up to `max_pages` pages of messages after `seq`, one result per page.
#[derive(Debug, Deserialize)]
pub struct ChatdataJob {
    /// The publisher's id for the job, echoed in every result; 1 to 200 printable ASCII
    /// characters. The AMQP `message_id` stands in when absent.
    #[serde(default)]
    pub job_id: Option<String>,
    /// The `type` field: optional, and when given it must be `fetch-chatdata`.
    #[serde(default, rename = "type")]
    pub kind: Option<JobKind>,
    /// Whose archive: a corp alias or inline credentials (fields at the top level).
    #[serde(flatten)]
    pub corp: CorpRef,
    /// Proxy and timeout for the SDK calls (fields at the top level).
    #[serde(flatten)]
    pub net: NetRef,
    /// Fetch the messages after this seq; 0 (the default) starts at the oldest retained.
    #[serde(default)]
    pub seq: u64,
    /// Messages per page, and the `limit` of each `GetChatData` call: 1 to 1000; default
    /// 1000.
    #[serde(default = "default_limit")]
    pub limit: u32,
    /// Pages at most, 1 to 100; default 1. The job ends earlier when the archive has no more.
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
    /// The publisher's id for the job, echoed in its result; 1 to 200 printable ASCII
    /// characters. The AMQP `message_id` stands in when absent.
    #[serde(default)]
    pub job_id: Option<String>,
    /// The `type` field: optional, and when given it must be `fetch-media`.
    #[serde(default, rename = "type")]
    pub kind: Option<JobKind>,
    /// Whose archive: a corp alias or inline credentials (fields at the top level).
    #[serde(flatten)]
    pub corp: CorpRef,
    /// Proxy and timeout for the SDK calls (fields at the top level).
    #[serde(flatten)]
    pub net: NetRef,
    /// The file's id, from the media message (required); also names the stored file, by its
    /// SHA-256.
    pub sdkfileid: String,
    /// The message's `md5sum`: a mismatch fetches the file once more, and the result says
    /// whether it matched.
    #[serde(default)]
    pub md5sum: Option<String>,
    /// The message's file size in bytes; accepted, not used.
    #[serde(default)]
    pub filesize: Option<u64>,
    /// The message the file belongs to, echoed in the result.
    #[serde(default)]
    pub msgid: Option<String>,
    /// The message's `msgtype` (`image`, `file`, ...); accepted, not used.
    #[serde(default)]
    pub msgtype: Option<String>,
    /// The file's name; only a short alphanumeric extension of it is kept, for the stored
    /// name.
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
    /// The seq the next page is fetched after.
    pub seq: u64,
    /// Pages already published, counted against `max_pages`.
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
    /// The id of the corp the job ran for (an alias resolved); `null` in a failure.
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
    /// Its fields at the top level of the result.
    #[serde(flatten)]
    pub envelope: Envelope,
    /// The fields particular to the result ([`ChatPage`], [`MediaFile`], [`Failure`]), at the
    /// top level too.
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
    /// The page's decrypted messages, in seq order.
    pub messages: Vec<DecryptedMessage>,
    /// The page's messages that could not be decrypted, in seq order, each with why.
    pub errors: Vec<MessageError>,
}

/// The file of a `fetch-media` job.
#[derive(Debug, Serialize)]
pub struct MediaFile {
    /// The job's `sdkfileid`, echoed.
    pub sdkfileid: String,
    /// The job's `msgid`, echoed; absent when it had none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msgid: Option<String>,
    /// Where the file is, its size and digests, at the top level of the result.
    #[serde(flatten)]
    pub file: MediaReport,
    /// The file's bytes, base64, when the job asked and the file is small enough.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_base64: Option<String>,
}

/// Why a job ended without a result.
#[derive(Debug, Serialize)]
pub struct Failure {
    /// What went wrong: its code, name, message and class.
    pub error: ErrorInfo,
}
