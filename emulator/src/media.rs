//! Media files: their content, generated on the fly, and the chunk protocol of `GetMediaData`.
//!
//! Content: the bytes of a file are a ChaCha20 keystream keyed by SHA-256(corp seed, sdkfileid)
//! (see [`crate::seeding`]); byte `i` is byte `i % 4` (little-endian) of keystream word `i / 4`,
//! so any offset is reached with `set_word_pos` and a multi-GiB file costs no memory.
//!
//! Chunks. `docs/SDK.md` says indexes must have a length that is a multiple of 16 and also
//! that the last index ends at `TOTAL-1`; both hold when the ranges address the object the server
//! stores, the AES-CBC encryption of the file, whose length is `TOTAL = 16 * (size / 16 + 1)`
//! (PKCS#7 always pads, by 1 to 16 bytes). The SDK decrypts on its side, so the caller sees
//! plaintext. The emulator therefore serves a request `[S, E]` as follows:
//! - `S >= TOTAL`: 10002 (a server error);
//! - served end `= min(E, TOTAL - 1, S + 524287)` (the cap at one chunk is the emulator's: callers
//!   following the protocol never ask for more, and it bounds memory);
//! - data = the plaintext bytes `S .. min(served end + 1, size)`, so every non-final 512 KiB chunk
//!   carries exactly 524288 bytes and the final one may carry none (sizes 0 and 524288);
//! - finished (`is_finish = 1`, `outindexbuf = ""`) when the served end is `TOTAL - 1`, else
//!   `outindexbuf = Range:bytes=(end+1)-min(end+524288, TOTAL-1)`.

use std::io::{self, Read};

use md5::{Digest, Md5};
use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;
use wecom_sdk_format::media_index::{next_range, ByteRange, CHUNK_SIZE};

use crate::file_id::{FileId, InvalidFileId};
use crate::seeding;

/// The content of one media file, readable from any offset.
#[derive(Debug, Clone)]
pub struct MediaContent {
    rng: ChaCha20Rng,
    size: u64,
    pos: u64,
}

/// The content `GetMediaData` serves for `sdkfileid` in a corp with `seed`, as a reader: tests
/// use it to compute the expected MD5 or SHA-256 of a file of any size.
///
/// # Panics
///
/// If `sdkfileid` was not made by [`crate::media_file_id`] (the emulator serves no content for
/// it: `GetMediaData` gives 10005).
pub fn media_content(seed: u64, sdkfileid: &str) -> MediaContent {
    match FileId::parse(sdkfileid.as_bytes()) {
        Ok(id) => MediaContent::new(seed, sdkfileid, id.size),
        Err(InvalidFileId) => panic!("{sdkfileid:?} is not an sdkfileid of the emulator"),
    }
}

impl MediaContent {
    pub(crate) fn new(seed: u64, sdkfileid: &str, size: u64) -> MediaContent {
        MediaContent {
            rng: seeding::rng("media", seed, &[sdkfileid.as_bytes()]),
            size,
            pos: 0,
        }
    }

    /// The file's length in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Fills `buf` with the bytes at `offset`; the part of `buf` past the end is left alone.
    /// Returns how many bytes were filled.
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> usize {
        let n = self.size.saturating_sub(offset).min(buf.len() as u64) as usize;
        let buf = &mut buf[..n];
        if n == 0 {
            return 0;
        }
        self.rng.set_word_pos(u128::from(offset / 4));
        let skip = (offset % 4) as usize;
        let mut filled = 0;
        if skip != 0 {
            let word = self.rng.next_u32().to_le_bytes();
            filled = (4 - skip).min(n);
            buf[..filled].copy_from_slice(&word[skip..skip + filled]);
        }
        // Now word-aligned: fill_bytes takes whole words, so a run from an aligned start matches
        // the byte order above.
        self.rng.fill_bytes(&mut buf[filled..]);
        n
    }
}

impl Read for MediaContent {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.read_at(self.pos, buf);
        self.pos += n as u64;
        Ok(n)
    }
}

/// Hex MD5 of a file's content, streamed so that large files cost no memory.
pub(crate) fn md5_hex(mut content: MediaContent) -> String {
    let mut hash = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = content
            .read(&mut buf)
            .expect("generated content never fails");
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    format!("{:x}", hash.finalize())
}

/// What one `GetMediaData` call serves: plaintext offsets and the next index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChunkPlan {
    /// Plaintext bytes `start..end` (empty when `start >= end`).
    pub start: u64,
    pub end: u64,
    /// The range to ask for next; `None` when this was the last chunk.
    pub next: Option<ByteRange>,
}

/// The length of the stored, AES-encrypted object of a `size`-byte file.
pub(crate) fn encrypted_len(size: u64) -> u64 {
    (size / 16 + 1).saturating_mul(16)
}

/// Plans the answer to a request for `range` of a `size`-byte file; `None` is 10002 (the range
/// starts past the object).
pub(crate) fn plan_chunk(size: u64, range: ByteRange) -> Option<ChunkPlan> {
    let total = encrypted_len(size);
    if range.start >= total {
        return None;
    }
    let served_end = range
        .end
        .min(total - 1)
        .min(range.start.saturating_add(CHUNK_SIZE - 1));
    Some(ChunkPlan {
        start: range.start.min(size),
        end: served_end.saturating_add(1).min(size),
        next: next_range(served_end, total),
    })
}

/// The bytes a plan serves.
pub(crate) fn chunk_data(content: &mut MediaContent, plan: &ChunkPlan) -> Vec<u8> {
    let mut data = vec![0u8; plan.end.saturating_sub(plan.start) as usize];
    content.read_at(plan.start, &mut data);
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file_id::media_file_id;
    use wecom_sdk_format::media_index::first_range;

    /// Fetches a whole file the way a caller does, returning the data and the number of calls.
    fn fetch(size: u64) -> (Vec<u8>, usize) {
        let id = media_file_id(size, 1, 2);
        let mut content = media_content(7, &id);
        let (mut data, mut calls, mut range) = (Vec::new(), 0, first_range());
        loop {
            calls += 1;
            let plan = plan_chunk(size, range).expect("in range");
            let chunk = chunk_data(&mut content, &plan);
            if plan.next.is_some() {
                assert_eq!(chunk.len() as u64, CHUNK_SIZE, "non-final chunks are full");
            }
            data.extend(chunk);
            match plan.next {
                Some(next) => {
                    assert_eq!((next.end - next.start + 1) % 16, 0, "indexes stay valid");
                    range = next;
                }
                None => return (data, calls),
            }
        }
    }

    #[test]
    fn chunk_math_for_edge_sizes() {
        for (size, calls) in [
            (0, 1),
            (1, 1),
            (524_287, 1),
            (524_288, 2),
            (524_289, 2),
            (5 << 20, 11),
        ] {
            let (data, n) = fetch(size);
            assert_eq!(data.len() as u64, size, "size {size}");
            assert_eq!(n, calls, "size {size}");
            let mut whole = Vec::new();
            media_content(7, &media_file_id(size, 1, 2))
                .read_to_end(&mut whole)
                .unwrap();
            assert_eq!(data, whole, "size {size}");
        }
    }

    #[test]
    fn the_last_index_ends_at_the_encrypted_length() {
        let plan = plan_chunk(524_288, first_range()).unwrap();
        assert_eq!(
            plan.next,
            Some(ByteRange {
                start: 524_288,
                end: 524_303
            })
        );
        let last = plan_chunk(524_288, plan.next.unwrap()).unwrap();
        assert_eq!((last.start, last.end, last.next), (524_288, 524_288, None));
        assert_eq!(plan_chunk(0, first_range()).unwrap().next, None);
    }

    #[test]
    fn a_range_past_the_object_is_a_server_error() {
        assert_eq!(plan_chunk(10, ByteRange { start: 16, end: 31 }), None);
        assert!(plan_chunk(10, ByteRange { start: 0, end: 15 }).is_some());
    }

    #[test]
    fn content_is_the_same_from_any_offset_and_any_read_size() {
        let id = media_file_id(10_000, 1, 1);
        let mut whole = Vec::new();
        media_content(3, &id).read_to_end(&mut whole).unwrap();
        assert_eq!(whole.len(), 10_000);
        let mut content = media_content(3, &id);
        for (offset, len) in [(0, 1), (1, 3), (3, 5), (4097, 1000), (9_998, 10)] {
            let mut buf = vec![0u8; len];
            let n = content.read_at(offset, &mut buf);
            let end = (offset as usize + len).min(10_000);
            assert_eq!(&buf[..n], &whole[offset as usize..end], "{offset}+{len}");
        }
        let mut odd = Vec::new();
        let mut reader = media_content(3, &id);
        let mut buf = [0u8; 7];
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            odd.extend_from_slice(&buf[..n]);
        }
        assert_eq!(odd, whole);
    }

    #[test]
    fn content_depends_on_seed_and_id_and_far_offsets_are_cheap() {
        let id = media_file_id(8 << 30, 1, 1);
        let mut a = media_content(1, &id);
        let mut b = media_content(2, &id);
        let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
        a.read_at((8 << 30) - 32, &mut x);
        b.read_at((8 << 30) - 32, &mut y);
        assert_ne!(x, y);
        assert_eq!(a.read_at(8 << 30, &mut x), 0);
    }

    #[test]
    #[should_panic(expected = "not an sdkfileid of the emulator")]
    fn content_of_a_foreign_id_is_refused() {
        media_content(1, "garbage");
    }

    #[test]
    fn md5_is_of_the_served_bytes() {
        let id = media_file_id(3, 1, 1);
        let mut bytes = Vec::new();
        media_content(1, &id).read_to_end(&mut bytes).unwrap();
        assert_eq!(
            md5_hex(media_content(1, &id)),
            format!("{:x}", Md5::digest(&bytes))
        );
        assert_eq!(
            md5_hex(media_content(1, &media_file_id(0, 1, 1))),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
    }
}
