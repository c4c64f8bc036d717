//! Media download: a file fetched chunk by chunk with `GetMediaData`, streamed into a store.
//!
//! - [`download`](mod@download): the chunk loop (`docs/SDK.md` section 5): retries a failing
//!   chunk at the same index, hashes (MD5, SHA-256) as it goes, checks `md5sum`, resumes where
//!   an earlier attempt stopped.
//! - [`partial`]: what a store must offer the loop ([`PartialMedia`]): a resume point, appending
//!   a chunk durably with its next index, replaying the bytes so far, and committing.
//! - [`fs_store`]: the filesystem store: a partial file plus a resume record beside it, renamed
//!   into place only when complete (write, fsync, rename).
//!
//! The loop does not know where bytes go: another store (S3-compatible, say) implements
//! [`PartialMedia`] and [`MediaStore`] beside the filesystem one.

pub mod download;
pub mod fs_store;
pub mod partial;

pub use download::{download, ChunkRetry, DownloadError, MediaReport, Unfinished};
pub use fs_store::{FsStore, PartialFile};
pub use partial::{MediaKey, MediaStore, PartialMedia, ResumePoint};
