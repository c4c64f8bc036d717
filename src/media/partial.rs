//! The contract between the download loop and a media store.

use std::io;

use sha2::{Digest, Sha256};
use wecom_sdk_format::media_index::parse_index;

/// Where an interrupted download continues: the index of the next chunk and the bytes kept.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResumePoint {
    /// The index to ask `GetMediaData` for next, as the library returned it.
    pub next_index: String,
    /// Bytes of the file already written, from its start.
    pub bytes: u64,
}

impl ResumePoint {
    /// Whether `next_index` is one the library accepts: a record that is not would make every
    /// later attempt fail the same way, so such a record is not trusted.
    pub fn is_usable(&self) -> bool {
        matches!(parse_index(&self.next_index), Ok(Some(_)))
    }
}

/// A file being written. Appends are durable enough to resume from after a crash.
pub trait PartialMedia {
    /// Where an earlier attempt stopped, if one did.
    fn resume_point(&self) -> Option<ResumePoint>;
    /// Feeds the bytes kept so far to `sink`, in order (to rebuild the digests on resume).
    fn replay(&mut self, sink: &mut dyn FnMut(&[u8])) -> io::Result<()>;
    /// Appends one chunk and records that the next chunk is `next_index` (None: it was the last).
    fn append(&mut self, data: &[u8], next_index: Option<&str>) -> io::Result<()>;
    /// Drops everything written so far: the next append starts a fresh file.
    fn restart(&mut self) -> io::Result<()>;
    /// Makes the complete file visible under its final name; returns where it is.
    fn commit(self) -> io::Result<String>;
}

/// A store hands out partial files by key.
pub trait MediaStore {
    /// A file being written into this store.
    type Partial: PartialMedia;
    /// The partial file of `key`, continuing an earlier attempt's when one left a usable
    /// resume point for the same file; a fresh one otherwise.
    fn open_partial(&self, key: &MediaKey) -> io::Result<Self::Partial>;
    /// The bytes of a committed file at `location`, refused when larger than `max` bytes.
    fn read_small(&self, location: &str, max: u64) -> io::Result<Vec<u8>>;
}

/// The name of a media file in a store, derived only from values that cannot escape it.
///
/// `sdkfileid` is an untrusted string of a few hundred characters: its SHA-256 names the file.
/// A file extension from a job is kept when it is short and alphanumeric, and dropped otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaKey {
    digest: String,
    extension: Option<String>,
}

impl MediaKey {
    /// The key of the file `sdkfileid`, with the extension of `file_name_hint` when it is 1 to
    /// 10 ASCII letters and digits (lowercased).
    pub fn new(sdkfileid: &str, file_name_hint: Option<&str>) -> Self {
        let digest = hex::encode(Sha256::digest(sdkfileid.as_bytes()));
        let extension = file_name_hint
            .and_then(|name| name.rsplit_once('.'))
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .filter(|ext| {
                (1..=10).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric())
            });
        Self { digest, extension }
    }

    /// Identifies the file's content (the SHA-256 of its sdkfileid): a partial download is only
    /// ever resumed for the same file.
    pub fn fingerprint(&self) -> &str {
        &self.digest
    }

    /// The path relative to the store's root: `ab/abcdef…[.ext]`, two levels to keep folders small.
    pub fn relative_path(&self) -> String {
        let name = match &self.extension {
            Some(ext) => format!("{}.{ext}", self.digest),
            None => self.digest.clone(),
        };
        format!("{}/{name}", &self.digest[..2])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_names_cannot_escape_the_store() {
        for hint in [
            "../../etc/passwd",
            "a/../../b.sh",
            "x.tar.gz/..",
            "evil.\u{0}sh",
            "a.ABCDEFGHIJK",
        ] {
            let path = MediaKey::new("../../etc/shadow", Some(hint)).relative_path();
            assert!(!path.contains(".."), "{path}");
            assert_eq!(path.matches('/').count(), 1, "{path}");
            assert!(
                path.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'.'),
                "{path}"
            );
        }
    }

    #[test]
    fn a_plain_extension_is_kept_in_lower_case() {
        let key = MediaKey::new("id", Some("Report.PDF"));
        assert!(key.relative_path().ends_with(".pdf"));
        assert_eq!(MediaKey::new("id", None).relative_path().len(), 2 + 1 + 64);
    }
}
