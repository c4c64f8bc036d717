//! The chunk loop of `GetMediaData` (`docs/SDK.md` section 5).
//!
//! Start with an empty index, write each chunk as it arrives, pass the returned index back,
//! stop when the library says the file is finished. Memory holds a few chunks (one per stage
//! of `stream`) whatever the file size. A chunk failing with a transient code is retried at the
//! same index, a bounded number of times (the official advice: never restart the file); if it
//! still fails, the partial file and its resume point stay, and the next attempt continues from
//! there.
//!
//! A cancelled download stops before its next chunk, keeping the partial file and its resume
//! point: the job goes back to the broker and its next delivery continues from there.
//!
//! When the store is full, the partial file is dropped (not kept for a resume): partial files
//! of several downloads could otherwise fill the disk between them and none would finish.
//!
//! MD5 and SHA-256 are computed while streaming. The message's `md5sum` is occasionally empty or
//! wrong in real data, so a mismatch is not silently accepted: the file is fetched once more
//! from the start, and the report says whether the second copy matched.

use std::io;
use std::panic::resume_unwind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use md5::Md5;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use wecom_sdk_format::media_index::parse_index;

use super::partial::PartialMedia;
use crate::backoff::Backoff;
use crate::sdk::{ChunkBytes, ErrorClass, MediaChunk, SdkError, SdkOp};

/// How often, and how patiently, one chunk is retried after a transient failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRetry {
    /// Calls per chunk, the first included.
    pub attempts: u32,
    /// Delay before the second call; it doubles for each further one, up to `max_delay`.
    pub first_delay: Duration,
    /// The longest delay between two calls.
    pub max_delay: Duration,
}

impl Default for ChunkRetry {
    fn default() -> Self {
        Self {
            attempts: 5,
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl ChunkRetry {
    /// The pause after failed call number `attempt` (1-based).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        Backoff::new(self.first_delay, self.max_delay).delay_after(attempt)
    }
}

/// A finished download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MediaReport {
    /// Where the store put the file.
    pub location: String,
    /// The file's size, in bytes.
    pub size: u64,
    /// MD5 of the stored bytes, lowercase hex.
    pub md5: String,
    /// SHA-256 of the stored bytes, lowercase hex.
    pub sha256: String,
    /// Whether `md5` equals the expected `md5sum`; absent when none was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub md5_matched: Option<bool>,
    /// `GetMediaData` calls that returned a chunk, over every pass.
    pub chunks_fetched: u64,
    /// The byte offset an earlier, interrupted attempt had reached, if this one resumed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_at: Option<u64>,
}

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// A `GetMediaData` call failed (after any retries at the same index), or the library
    /// answered with a next index that does not move forward.
    #[error("GetMediaData failed at index {index:?}: {source}")]
    Sdk {
        /// The index of the chunk asked for ("" for the first).
        index: String,
        /// The call's error.
        source: SdkError,
    },
    /// Opening, writing, reading back or committing the file in the store failed.
    #[error("the media store failed: {0}")]
    Store(#[from] io::Error),
}

/// Why a download did not finish.
#[derive(Debug, thiserror::Error)]
pub enum Unfinished {
    /// The download failed; the partial file is kept, unless the store was full.
    #[error(transparent)]
    Failed(#[from] DownloadError),
    /// Stopped by its cancellation token before the next chunk; the partial file is kept.
    #[error("cancelled")]
    Cancelled,
}

impl From<io::Error> for Unfinished {
    fn from(err: io::Error) -> Self {
        Self::Failed(DownloadError::Store(err))
    }
}

/// Downloads one file into `partial` with `fetch(index)` (one `GetMediaData` call), then
/// commits it to the store. Checks `cancel` before each chunk.
pub fn download<P: PartialMedia + Send>(
    mut fetch: impl FnMut(&str) -> Result<MediaChunk, SdkError>,
    mut partial: P,
    expected_md5: Option<&str>,
    retry: &ChunkRetry,
    cancel: &CancellationToken,
) -> Result<MediaReport, Unfinished> {
    let expected = expected_md5
        .map(str::trim)
        .filter(|md5| !md5.is_empty())
        .map(str::to_ascii_lowercase);
    let resumed_at = partial.resume_point().map(|point| point.bytes);
    let passes = (|| {
        let mut pass = stream(&mut fetch, &mut partial, retry, cancel)?;
        let mut chunks_fetched = pass.chunks;
        if expected.as_ref().is_some_and(|md5| *md5 != pass.md5) {
            partial.restart()?;
            pass = stream(&mut fetch, &mut partial, retry, cancel)?;
            chunks_fetched += pass.chunks;
        }
        Ok((pass, chunks_fetched))
    })();
    let (pass, chunks_fetched) = match passes {
        Ok(done) => done,
        Err(Unfinished::Failed(DownloadError::Store(err)))
            if err.kind() == io::ErrorKind::StorageFull =>
        {
            // Keeping this partial file would hold space other downloads need to finish; on a
            // full disk, giving it up is what lets the retries get through one by one.
            let _ = partial.restart();
            return Err(DownloadError::Store(err).into());
        }
        Err(err) => return Err(err),
    };
    let location = partial.commit()?;
    Ok(MediaReport {
        location,
        size: pass.size,
        md5_matched: expected.map(|md5| md5 == pass.md5),
        md5: pass.md5,
        sha256: pass.sha256,
        chunks_fetched,
        resumed_at,
    })
}

struct Pass {
    size: u64,
    md5: String,
    sha256: String,
    chunks: u64,
}

/// Streams from the partial's resume point (or the start) to the last chunk.
///
/// Three stages run at once, so that a file streams at the pace of its slowest stage rather
/// than of all of them added up: this thread fetches chunk n+1 while one helper hashes chunk n
/// with MD5 and another hashes it with SHA-256 and writes it. Queues of one chunk between them
/// keep memory at a few chunks whatever the file size.
fn stream<P: PartialMedia + Send>(
    fetch: &mut impl FnMut(&str) -> Result<MediaChunk, SdkError>,
    partial: &mut P,
    retry: &ChunkRetry,
    cancel: &CancellationToken,
) -> Result<Pass, Unfinished> {
    let mut md5 = Md5::new();
    let mut sha256 = Sha256::new();
    let (index, size) = match partial.resume_point() {
        Some(point) => {
            partial.replay(&mut |bytes| {
                md5.update(bytes);
                sha256.update(bytes);
            })?;
            (point.next_index, point.bytes)
        }
        None => (String::new(), 0),
    };
    // Raised when the store fails, so that no further chunk is fetched for nothing (a full disk
    // would otherwise cost one more round of calls, retries included).
    let store_failed = &AtomicBool::new(false);
    thread::scope(|scope| {
        let (to_md5, md5_queue) = sync_channel::<Arc<ChunkBytes>>(1);
        let (to_store, store_queue) = sync_channel::<(Arc<ChunkBytes>, Option<String>)>(1);
        let md5_stage = scope.spawn(move || {
            for data in md5_queue {
                md5.update(&*data);
            }
            md5
        });
        let store_stage = scope.spawn(move || -> io::Result<Sha256> {
            for (data, next) in store_queue {
                sha256.update(&*data);
                if let Err(err) = partial.append(&data, next.as_deref()) {
                    store_failed.store(true, Ordering::Relaxed);
                    return Err(err);
                }
            }
            Ok(sha256)
        });
        let stages = Stages {
            to_md5,
            to_store,
            store_failed,
        };
        let fetched = fetch_all(fetch, retry, cancel, index, stages);
        let md5 = md5_stage
            .join()
            .unwrap_or_else(|panic| resume_unwind(panic));
        let stored = store_stage
            .join()
            .unwrap_or_else(|panic| resume_unwind(panic));
        // A store error wins: a full disk is handled apart from a failing chunk.
        let sha256 = stored?;
        let (chunks, fetched_bytes) = fetched?;
        Ok(Pass {
            size: size + fetched_bytes,
            md5: hex::encode(md5.finalize()),
            sha256: hex::encode(sha256.finalize()),
            chunks,
        })
    })
}

/// The queues to the hashing and storing stages, and the store's failure flag.
struct Stages<'a> {
    to_md5: SyncSender<Arc<ChunkBytes>>,
    to_store: SyncSender<(Arc<ChunkBytes>, Option<String>)>,
    store_failed: &'a AtomicBool,
}

/// Fetches chunk after chunk from `index` and hands each to the stages, until the last chunk,
/// a failure, or a failed store (then `Ok`: the store's error is the one reported). Returns
/// the chunks and bytes fetched; the stages' queues close when it returns.
fn fetch_all(
    fetch: &mut impl FnMut(&str) -> Result<MediaChunk, SdkError>,
    retry: &ChunkRetry,
    cancel: &CancellationToken,
    mut index: String,
    stages: Stages<'_>,
) -> Result<(u64, u64), Unfinished> {
    let (mut chunks, mut bytes) = (0, 0);
    loop {
        if stages.store_failed.load(Ordering::Relaxed) {
            return Ok((chunks, bytes));
        }
        if cancel.is_cancelled() {
            return Err(Unfinished::Cancelled);
        }
        let chunk = fetch_chunk(fetch, &index, retry)?;
        if let Some(next) = &chunk.next_index {
            // Checked before anything is written: a library that does not move forward
            // would otherwise grow the file for ever.
            if !moves_forward(&index, next) {
                return Err(DownloadError::Sdk {
                    source: SdkError::MalformedResponse {
                        op: SdkOp::GetMediaData,
                        reason: format!("the next index {next:?} does not move past {index:?}"),
                    },
                    index,
                }
                .into());
            }
        }
        chunks += 1;
        bytes += chunk.data.len() as u64;
        let data = Arc::new(chunk.data);
        // The store stage hangs up only when it failed; its error is reported by the caller.
        if stages
            .to_store
            .send((Arc::clone(&data), chunk.next_index.clone()))
            .is_err()
        {
            return Ok((chunks, bytes));
        }
        stages
            .to_md5
            .send(data)
            .expect("the MD5 stage runs until its queue closes");
        match chunk.next_index {
            Some(next) => index = next,
            None => return Ok((chunks, bytes)),
        }
    }
}

/// Whether `next` starts after the start of `current` ("" is the very beginning).
fn moves_forward(current: &str, next: &str) -> bool {
    let start = |index: &str| match parse_index(index) {
        Ok(Some(range)) => Some(range.start),
        Ok(None) => Some(0),
        Err(_) => None,
    };
    match (start(current), start(next)) {
        (Some(current), Some(next)) => next > current,
        _ => false,
    }
}

fn fetch_chunk(
    fetch: &mut impl FnMut(&str) -> Result<MediaChunk, SdkError>,
    index: &str,
    retry: &ChunkRetry,
) -> Result<MediaChunk, DownloadError> {
    let mut attempt = 1;
    loop {
        match fetch(index) {
            Ok(chunk) => return Ok(chunk),
            // Not an SDK host's death or hang: its SDK handle is gone, the job retries afresh.
            Err(err)
                if err.class() == ErrorClass::Transient
                    && !matches!(err, SdkError::Host { .. })
                    && attempt < retry.attempts =>
            {
                tracing::debug!(index, attempt, error = %err, "chunk failed; retrying the same index");
                thread::sleep(retry.delay_after(attempt));
                attempt += 1;
            }
            Err(source) => {
                return Err(DownloadError::Sdk {
                    index: index.to_owned(),
                    source,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_code::{ErrorInfo, ProjectCode};
    use crate::job::error::JobError;
    use crate::media::partial::ResumePoint;
    use crate::sdk::SdkCode;

    /// A token nobody cancels.
    fn go() -> CancellationToken {
        CancellationToken::new()
    }

    /// The wire form of a failed download.
    fn info(err: Unfinished) -> ErrorInfo {
        match err {
            Unfinished::Failed(err) => JobError::from(err).info(),
            Unfinished::Cancelled => panic!("the download was not cancelled"),
        }
    }

    /// An in-memory store, for the loop's logic.
    #[derive(Default)]
    struct MemoryPartial {
        bytes: Vec<u8>,
        resume: Option<ResumePoint>,
        committed: bool,
        /// Bytes the "disk" holds; appending past it fails as a full disk would.
        capacity: Option<usize>,
    }

    impl PartialMedia for &mut MemoryPartial {
        fn resume_point(&self) -> Option<ResumePoint> {
            self.resume.clone()
        }
        fn replay(&mut self, sink: &mut dyn FnMut(&[u8])) -> io::Result<()> {
            sink(&self.bytes);
            Ok(())
        }
        fn append(&mut self, data: &[u8], next: Option<&str>) -> io::Result<()> {
            if self
                .capacity
                .is_some_and(|cap| self.bytes.len() + data.len() > cap)
            {
                return Err(io::ErrorKind::StorageFull.into());
            }
            self.bytes.extend_from_slice(data);
            self.resume = next.map(|next| ResumePoint {
                next_index: next.into(),
                bytes: self.bytes.len() as u64,
            });
            Ok(())
        }
        fn restart(&mut self) -> io::Result<()> {
            self.bytes.clear();
            self.resume = None;
            Ok(())
        }
        fn commit(self) -> io::Result<String> {
            self.committed = true;
            Ok("memory".into())
        }
    }

    /// The index of chunk `n` (16 bytes of the encrypted object each).
    fn idx(n: usize) -> String {
        if n == 0 {
            return String::new();
        }
        format!("Range:bytes={}-{}", n * 16, n * 16 + 15)
    }

    /// A file of `chunks` chunks of 4 bytes each, chunk `n` filled with `n`.
    fn server(chunks: usize) -> impl Fn(&str) -> Result<MediaChunk, SdkError> {
        move |index: &str| {
            let n = (0..chunks)
                .find(|&n| idx(n) == index)
                .expect("a known index");
            Ok(MediaChunk {
                data: vec![n as u8; 4].into(),
                next_index: (n + 1 < chunks).then(|| idx(n + 1)),
            })
        }
    }

    fn quick() -> ChunkRetry {
        ChunkRetry {
            attempts: 3,
            first_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        }
    }

    fn failure(code: i32) -> SdkError {
        SdkError::Code {
            op: SdkOp::GetMediaData,
            code: SdkCode::from_raw(code),
        }
    }

    #[test]
    fn chunks_are_appended_in_order_and_hashed() {
        let mut store = MemoryPartial::default();
        let report = download(server(3), &mut store, None, &quick(), &go()).unwrap();
        assert_eq!(store.bytes, [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
        assert!(store.committed);
        assert_eq!(report.size, 12);
        assert_eq!(report.md5, hex::encode(Md5::digest(&store.bytes)));
        assert_eq!(report.sha256, hex::encode(Sha256::digest(&store.bytes)));
        assert_eq!((report.chunks_fetched, report.md5_matched), (3, None));
    }

    #[test]
    fn a_transient_failure_is_retried_at_the_same_index() {
        let serve = server(3);
        let mut calls = Vec::new();
        let mut failed_once = false;
        let fetch = |index: &str| {
            calls.push(index.to_owned());
            if index == idx(1) && !failed_once {
                failed_once = true;
                return Err(failure(10002));
            }
            serve(index)
        };
        let mut store = MemoryPartial::default();
        download(fetch, &mut store, None, &quick(), &go()).unwrap();
        assert_eq!(calls, [idx(0), idx(1), idx(1), idx(2)]);
    }

    #[test]
    fn exhausted_retries_keep_the_resume_point_and_the_next_attempt_continues() {
        let serve = server(3);
        let mut store = MemoryPartial::default();
        let broken = |index: &str| {
            if index == idx(2) {
                Err(failure(10001))
            } else {
                serve(index)
            }
        };
        let err = download(broken, &mut store, None, &quick(), &go()).unwrap_err();
        assert!(info(err).retryable);
        assert!(!store.committed);
        assert_eq!(store.resume.as_ref().unwrap().next_index, idx(2));

        let mut calls = Vec::new();
        let counting = |index: &str| {
            calls.push(index.to_owned());
            serve(index)
        };
        let report = download(counting, &mut store, None, &quick(), &go()).unwrap();
        assert_eq!(calls, [idx(2)]);
        assert_eq!(report.resumed_at, Some(8));
        assert_eq!(
            report.md5,
            hex::encode(Md5::digest([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]))
        );
    }

    #[test]
    fn a_permanent_failure_is_not_retried() {
        let mut calls = 0;
        let fetch = |_: &str| {
            calls += 1;
            Err(failure(10010))
        };
        let mut store = MemoryPartial::default();
        let err = download(fetch, &mut store, None, &quick(), &go()).unwrap_err();
        assert_eq!(calls, 1);
        assert_eq!(info(err).code, 10010);
    }

    #[test]
    fn an_md5_mismatch_fetches_the_file_once_more_and_reports_it() {
        let mut calls = 0;
        let serve = server(2);
        let fetch = |index: &str| {
            calls += 1;
            serve(index)
        };
        let mut store = MemoryPartial::default();
        let report = download(
            fetch,
            &mut store,
            Some("00000000000000000000000000000000"),
            &quick(),
            &go(),
        )
        .unwrap();
        assert_eq!(calls, 4, "two passes of two chunks");
        assert_eq!(report.md5_matched, Some(false));
        assert_eq!(store.bytes.len(), 8, "the second pass replaced the first");

        let good = report.md5.to_ascii_uppercase();
        let mut store = MemoryPartial::default();
        let report = download(server(2), &mut store, Some(&good), &quick(), &go()).unwrap();
        assert_eq!((report.md5_matched, report.chunks_fetched), (Some(true), 2));
    }

    #[test]
    fn a_library_that_does_not_move_forward_is_stopped_before_writing() {
        let fetch = |index: &str| {
            Ok(MediaChunk {
                data: vec![1; 4].into(),
                next_index: Some(if index.is_empty() {
                    idx(1)
                } else {
                    index.to_owned()
                }),
            })
        };
        let mut store = MemoryPartial::default();
        let err = download(fetch, &mut store, None, &quick(), &go()).unwrap_err();
        assert_eq!(info(err).class, ErrorClass::Permanent);
        assert_eq!(store.bytes.len(), 4, "only the first chunk was written");
    }

    #[test]
    fn a_full_store_gives_the_partial_file_up_and_says_retry_later() {
        let mut store = MemoryPartial {
            capacity: Some(6),
            ..MemoryPartial::default()
        };
        let err = download(server(3), &mut store, None, &quick(), &go()).unwrap_err();
        let info = info(err);
        assert_eq!(info.code, ProjectCode::MediaStoreIo.code());
        assert!(info.retryable);
        assert!(
            store.bytes.is_empty() && store.resume.is_none(),
            "its space is given back"
        );
        assert!(!store.committed);
    }

    #[test]
    fn a_cancelled_download_stops_before_its_next_chunk_and_keeps_its_resume_point() {
        let serve = server(3);
        let cancel = CancellationToken::new();
        let fetch = |index: &str| {
            // Cancelled while the first chunk is being fetched.
            cancel.cancel();
            serve(index)
        };
        let mut store = MemoryPartial::default();
        let err = download(fetch, &mut store, None, &quick(), &cancel).unwrap_err();
        assert!(matches!(err, Unfinished::Cancelled), "{err:?}");
        assert!(!store.committed);
        assert_eq!(store.bytes.len(), 4, "the chunk in flight is kept");
        assert_eq!(store.resume.as_ref().unwrap().next_index, idx(1));
    }

    #[test]
    fn retry_delays_double_up_to_the_cap() {
        let retry = ChunkRetry {
            attempts: 10,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
        };
        let delays: Vec<_> = (1..=5).map(|a| retry.delay_after(a).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
    }
}
