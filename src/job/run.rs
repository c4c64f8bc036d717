//! Running one job: the SDK calls, decryption and storage a job needs, and what came of them.
//!
//! The caller (a transport) says which attempt this is and whether it is the last; the job
//! says what it produced ([`JobOutcome`]): outputs to publish, and whether it is done, should be
//! retried (with the progress made, so a multi-page job does not redo its pages), or failed.
//! SDK calls and RSA run on blocking threads: the async threads carry the broker's heartbeats.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::contract::{
    ChatPageResult, ChatdataJob, Envelope, JobKind, MediaJob, MediaResult, NetRef,
};
use super::corps::{Corp, CorpDirectory};
use super::parse::Job;
use super::sdk_pool::{discard, SdkPools};
use crate::decrypt::decrypt_page;
use crate::error_code::{ErrorInfo, ProjectCode};
use crate::media::{download, ChunkRetry, DownloadError, MediaKey, MediaStore};
use crate::sdk::{EncryptedMessage, ErrorClass, NetOptions, SdkCode, SdkError};

/// What a job needs from the process it runs in.
pub struct JobContext<S> {
    pub pools: SdkPools,
    pub corps: CorpDirectory,
    pub store: S,
    /// Files up to this size may be returned inline (base64) when a job asks.
    pub inline_max_bytes: u64,
    pub chunk_retry: ChunkRetry,
    /// The gate a page passes to be decrypted; one permit. A page already spreads over every
    /// core, so pages decrypting side by side would gain nothing and would all finish late
    /// together; one at a time (in arrival order: the semaphore is fair), they finish one
    /// after another while the other jobs fetch and publish.
    pub decrypting: Semaphore,
}

/// Where a job comes from, as the transport knows it.
#[derive(Debug, Clone, Default)]
pub struct JobMeta {
    /// The transport's message id, used as job id when the job has none.
    pub message_id: Option<String>,
    pub correlation_id: Option<String>,
    /// 1-based.
    pub attempt: u32,
    /// Whether the retry policy allows no attempt after this one.
    pub last_attempt: bool,
    /// Progress of earlier attempts of a multi-page chat job.
    pub progress: Option<ChatProgress>,
}

/// How far a multi-page chat job got: the seq to go on after, and the pages already published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatProgress {
    pub seq: u64,
    pub pages_done: u32,
}

/// One result to publish, serialized once.
#[derive(Debug)]
pub struct Output {
    pub kind: JobKind,
    pub result_id: Option<String>,
    pub body: Vec<u8>,
}

#[derive(Debug)]
pub enum JobOutcome {
    /// Every output is produced.
    Done(Vec<Output>),
    /// The outputs so far should be published, and the job tried again from `progress`.
    Retry {
        outputs: Vec<Output>,
        progress: Option<ChatProgress>,
        error: ErrorInfo,
    },
    /// The job cannot succeed; the outputs so far are still worth publishing.
    Failed {
        outputs: Vec<Output>,
        error: ErrorInfo,
    },
}

impl JobOutcome {
    fn from_error(
        outputs: Vec<Output>,
        progress: Option<ChatProgress>,
        error: ErrorInfo,
        meta: &JobMeta,
    ) -> Self {
        if error.retryable && !meta.last_attempt {
            Self::Retry {
                outputs,
                progress,
                error,
            }
        } else {
            Self::Failed { outputs, error }
        }
    }
}

/// The job id a result echoes: the job's own, else the transport's message id.
pub fn job_id(job_id: Option<&str>, meta: &JobMeta) -> Option<String> {
    job_id
        .map(str::to_owned)
        .or_else(|| meta.message_id.clone())
}

pub fn envelope(
    job_id: Option<String>,
    corpid: Option<String>,
    meta: &JobMeta,
    result_id: Option<String>,
) -> Envelope {
    Envelope {
        job_id,
        correlation_id: meta.correlation_id.clone(),
        result_id,
        corpid,
        attempts: meta.attempt,
    }
}

/// Runs `job`.
pub async fn run<S: MediaStore + Send + Sync + 'static>(
    job: Job,
    meta: &JobMeta,
    ctx: &Arc<JobContext<S>>,
) -> JobOutcome
where
    S::Partial: Send + 'static,
{
    match job {
        Job::Chatdata(job) => run_chatdata(job, meta, ctx).await,
        Job::Media(job) => run_media(job, meta, ctx).await,
    }
}

/// Runs `work` on a blocking thread, inside the current tracing span (so its log lines carry the
/// job id and corp like the rest).
async fn in_blocking_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .expect("blocking work does not panic")
}

fn net_options(net: NetRef) -> NetOptions {
    NetOptions {
        proxy: net.proxy.filter(|p| !p.is_empty()),
        proxy_password: net.paswd,
        timeout_secs: net.timeout.unwrap_or(5),
    }
}

async fn run_chatdata<S>(job: ChatdataJob, meta: &JobMeta, ctx: &Arc<JobContext<S>>) -> JobOutcome {
    let id = job_id(job.job_id.as_deref(), meta);
    let corp = match ctx.corps.resolve(&job.corp, true) {
        Ok(corp) => corp,
        Err(err) => {
            return JobOutcome::Failed {
                outputs: Vec::new(),
                error: err.info(),
            }
        }
    };
    let net = Arc::new(net_options(job.net));
    let progress = meta.progress.unwrap_or(ChatProgress {
        seq: job.seq,
        pages_done: 0,
    });
    let mut outputs = Vec::new();
    let (mut seq, mut pages_done) = (progress.seq, progress.pages_done);
    while pages_done < job.max_pages {
        let here = Some(ChatProgress { seq, pages_done });
        let page = match fetch_page(ctx, &corp, seq, job.limit, &net).await {
            Ok(page) => page,
            Err(err) => return JobOutcome::from_error(outputs, here, ErrorInfo::from(&err), meta),
        };
        let page = Arc::new(page);
        let decrypted = {
            let (sdk, corp, page) = (
                Arc::clone(ctx.pools.sdk()),
                Arc::clone(&corp),
                Arc::clone(&page),
            );
            let _turn = ctx.decrypting.acquire().await.expect("never closed");
            in_blocking_thread(move || decrypt_page(&sdk, &corp.keys, &page)).await
        };
        // The official advice for 10008 is to retry: the whole page goes round again, unless
        // this is the last attempt, when the page is published with those messages as errors.
        let bad_key = decrypted
            .errors
            .iter()
            .find(|e| e.error.code == i64::from(SdkCode::InvalidEncryptKey.raw()));
        if let (Some(bad), false) = (bad_key, meta.last_attempt) {
            let error = bad.error.clone();
            return JobOutcome::Retry {
                outputs,
                progress: here,
                error,
            };
        }
        let has_more = page.len() == job.limit as usize;
        let next_seq = page.last().map_or(seq, |m| m.seq);
        pages_done += 1;
        let result_id = id.as_ref().map(|id| format!("{id}:page-{pages_done}"));
        let result = ChatPageResult {
            status: "ok",
            kind: JobKind::FetchChatdata.result_type(),
            envelope: envelope(
                id.clone(),
                Some(corp.corpid.clone()),
                meta,
                result_id.clone(),
            ),
            page: pages_done,
            seq,
            next_seq,
            has_more,
            messages: decrypted.messages,
            errors: decrypted.errors,
        };
        outputs.push(Output {
            kind: JobKind::FetchChatdata,
            result_id,
            body: serde_json::to_vec(&result).expect("a result serializes"),
        });
        if !has_more {
            break;
        }
        seq = next_seq;
    }
    JobOutcome::Done(outputs)
}

async fn fetch_page<S>(
    ctx: &Arc<JobContext<S>>,
    corp: &Corp,
    seq: u64,
    limit: u32,
    net: &Arc<NetOptions>,
) -> Result<Vec<EncryptedMessage>, SdkError> {
    let mut handle = ctx.pools.get(corp).await?;
    let net = Arc::clone(net);
    let (handle, page) = in_blocking_thread(move || {
        let page = handle.get_chat_data(seq, limit, &net);
        (handle, page)
    })
    .await;
    if page
        .as_ref()
        .is_err_and(|err| err.class() == ErrorClass::Transient)
    {
        discard(handle);
    }
    page
}

async fn run_media<S>(job: MediaJob, meta: &JobMeta, ctx: &Arc<JobContext<S>>) -> JobOutcome
where
    S: MediaStore + Send + Sync + 'static,
    S::Partial: Send + 'static,
{
    let id = job_id(job.job_id.as_deref(), meta);
    let corp = match ctx.corps.resolve(&job.corp, false) {
        Ok(corp) => corp,
        Err(err) => {
            return JobOutcome::Failed {
                outputs: Vec::new(),
                error: err.info(),
            }
        }
    };
    let handle = match ctx.pools.get(&corp).await {
        Ok(handle) => handle,
        Err(err) => return JobOutcome::from_error(Vec::new(), None, ErrorInfo::from(&err), meta),
    };
    let net = net_options(job.net);
    let key = MediaKey::new(&job.sdkfileid, job.file_name.as_deref());
    let task_ctx = Arc::clone(ctx);
    let sdkfileid = job.sdkfileid.clone();
    let md5sum = job.md5sum.clone();
    let (handle, outcome) = in_blocking_thread(move || {
        let mut handle = handle;
        let outcome = task_ctx
            .store
            .open_partial(&key)
            .map_err(DownloadError::from)
            .and_then(|partial| {
                let fetch = |index: &str| handle.get_media_chunk(&sdkfileid, index, &net);
                download(fetch, partial, md5sum.as_deref(), &task_ctx.chunk_retry)
            });
        (handle, outcome)
    })
    .await;
    let report = match outcome {
        Ok(report) => report,
        Err(err) => {
            let info = err.info();
            if info.retryable {
                discard(handle);
            }
            return JobOutcome::from_error(Vec::new(), None, info, meta);
        }
    };
    drop(handle);
    let data_base64 = if job.inline && report.size <= ctx.inline_max_bytes {
        match ctx.store.read_small(&report.location, ctx.inline_max_bytes) {
            Ok(bytes) => Some(STANDARD.encode(bytes)),
            Err(err) => {
                let error = ErrorInfo::project(
                    ProjectCode::MediaStoreIo,
                    ErrorClass::Transient,
                    format!("cannot read the stored file back: {err}"),
                );
                return JobOutcome::from_error(Vec::new(), None, error, meta);
            }
        }
    } else {
        None
    };
    let result = MediaResult {
        status: "ok",
        kind: JobKind::FetchMedia.result_type(),
        envelope: envelope(id.clone(), Some(corp.corpid.clone()), meta, id.clone()),
        sdkfileid: job.sdkfileid,
        msgid: job.msgid,
        file: report,
        data_base64,
    };
    JobOutcome::Done(vec![Output {
        kind: JobKind::FetchMedia,
        result_id: id,
        body: serde_json::to_vec(&result).expect("a result serializes"),
    }])
}
