//! A `fetch-media` job: one file streamed chunk by chunk into the store ([`crate::media`]), its
//! result handed to the sink. An interrupted run (a failure, its token) leaves the partial file
//! and its resume point for the next one.

use std::sync::Arc;
use std::time::Instant;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tokio_util::sync::CancellationToken;

use super::contract::{MediaFile, MediaJob};
use super::core::{in_blocking_thread, Core, JobMeta};
use super::error::JobError;
use super::fate::Stop;
use super::fetch_chatdata::{net_options, sdk_code};
use super::sdk_pool::discard;
use super::sink::OutputSink;
use crate::media::{download, MediaKey, MediaStore, Unfinished};
use crate::sdk::ErrorClass;

pub(super) async fn run<S>(
    core: &Arc<Core<S>>,
    job: MediaJob,
    meta: &JobMeta,
    sink: &mut impl OutputSink,
    cancel: &CancellationToken,
) -> Result<(), Stop>
where
    S: MediaStore + Send + Sync + 'static,
    S::Partial: Send + 'static,
{
    let corp = core.corps.resolve(&job.corp, false).map_err(Stop::failed)?;
    let handle = tokio::select! {
        handle = core.pools.get(&corp) => handle.map_err(Stop::failed)?,
        _ = cancel.cancelled() => return Err(Stop::Cancelled),
    };
    let net = net_options(job.net);
    let key = MediaKey::new(&job.sdkfileid, job.file_name.as_deref());
    let (task_core, sdkfileid, md5sum) =
        (Arc::clone(core), job.sdkfileid.clone(), job.md5sum.clone());
    let metrics = Arc::clone(core.metrics());
    let task_cancel = cancel.clone();
    let downloading = in_blocking_thread(move || {
        let mut handle = handle;
        let outcome = task_core
            .store
            .open_partial(&key)
            .map_err(Unfinished::from)
            .and_then(|partial| {
                let fetch = |index: &str| {
                    let started = Instant::now();
                    let chunk = handle.get_media_chunk(&sdkfileid, index, &net);
                    let took = started.elapsed();
                    metrics.sdk_call("GetMediaData", sdk_code(chunk.as_ref().err()), took);
                    if let Ok(chunk) = &chunk {
                        metrics.media_chunk(chunk.data.len());
                    }
                    chunk
                };
                download(
                    fetch,
                    partial,
                    md5sum.as_deref(),
                    &task_core.chunk_retry,
                    &task_cancel,
                )
            });
        // Decided here, not by the caller, which may have stopped waiting: a handle that saw a
        // transient error never goes back to its pool.
        match outcome {
            Err(Unfinished::Failed(err)) => {
                let error = JobError::from(err);
                if error.class() == ErrorClass::Transient {
                    discard(handle);
                }
                Err(Some(error))
            }
            Err(Unfinished::Cancelled) => Err(None),
            Ok(report) => Ok(report),
        }
    });
    // The download sees the token before its next chunk; a chunk under way is not waited for.
    let report = tokio::select! {
        done = downloading => done.map_err(|failed| failed.map_or(Stop::Cancelled, Stop::failed))?,
        _ = cancel.cancelled() => return Err(Stop::Cancelled),
    };
    if report.resumed_at.is_some() {
        core.metrics().media_resumed();
    }
    let data_base64 = if job.inline && report.size <= core.inline_max_bytes {
        let bytes = core
            .store
            .read_small(&report.location, core.inline_max_bytes)
            .map_err(|err| Stop::failed(JobError::StoreRead(err)))?;
        Some(STANDARD.encode(bytes))
    } else {
        None
    };
    let output = meta.media_output(
        &corp.corpid,
        MediaFile {
            sdkfileid: job.sdkfileid,
            msgid: job.msgid,
            file: report,
            data_base64,
        },
    );
    if cancel.is_cancelled() {
        return Err(Stop::Cancelled);
    }
    sink.emit(output, None).await?;
    Ok(())
}
