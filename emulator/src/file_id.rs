//! The emulator's `sdkfileid`: opaque to callers, like the real one, and carrying everything
//! [`crate::media`] needs to serve the file without any state.
//!
//! Format: standard base64 (44 ASCII characters, no padding) of 33 bytes:
//!
//! ```text
//! version (1 byte, = 1) | size (u64 LE) | seq (u64 LE) | nonce (u64 LE) | check (8 bytes)
//! ```
//!
//! `size` is the file's length in bytes, `seq` the message that carries it (for expiry), `nonce`
//! tells apart files of one message, and `check` is the first 8 bytes of
//! SHA-256("wecom-emulator/sdkfileid" || the first 25 bytes), so garbage or an edited id gives
//! 10005 like a bad id on the real server.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

const VERSION: u8 = 1;
const PAYLOAD_LEN: usize = 25;
const ID_LEN: usize = PAYLOAD_LEN + 8;

/// What an emulated `sdkfileid` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    /// The file's length in bytes.
    pub size: u64,
    /// The seq of the message carrying the file.
    pub seq: u64,
    /// Tells apart files of one message.
    pub nonce: u64,
}

/// An `sdkfileid` the emulator did not mint (10005).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidFileId;

impl std::fmt::Display for InvalidFileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not an sdkfileid of the emulator")
    }
}

impl std::error::Error for InvalidFileId {}

/// The `sdkfileid` of a file of `size` bytes carried by message `seq`; tests use it to mint
/// files of any size (0 bytes to many GiB: content is generated on the fly).
pub fn media_file_id(size: u64, seq: u64, nonce: u64) -> String {
    FileId { size, seq, nonce }.encode()
}

impl FileId {
    /// The `sdkfileid` text.
    pub fn encode(&self) -> String {
        let mut raw = Vec::with_capacity(ID_LEN);
        raw.push(VERSION);
        raw.extend_from_slice(&self.size.to_le_bytes());
        raw.extend_from_slice(&self.seq.to_le_bytes());
        raw.extend_from_slice(&self.nonce.to_le_bytes());
        raw.extend_from_slice(&check(&raw));
        STANDARD.encode(raw)
    }

    /// Reads an `sdkfileid` back.
    pub fn parse(sdkfileid: &[u8]) -> Result<FileId, InvalidFileId> {
        let raw = STANDARD.decode(sdkfileid).map_err(|_| InvalidFileId)?;
        if raw.len() != ID_LEN
            || raw[0] != VERSION
            || raw[PAYLOAD_LEN..] != check(&raw[..PAYLOAD_LEN])
        {
            return Err(InvalidFileId);
        }
        let word = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().expect("8 bytes"));
        Ok(FileId {
            size: word(1),
            seq: word(9),
            nonce: word(17),
        })
    }
}

fn check(payload: &[u8]) -> [u8; 8] {
    let digest = Sha256::new()
        .chain_update(b"wecom-emulator/sdkfileid")
        .chain_update(payload)
        .finalize();
    digest[..8].try_into().expect("8 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_look_like_base64() {
        for (size, seq, nonce) in [
            (0, 0, 0),
            (1, 2, 3),
            (5 << 30, u64::MAX, 77),
            (u64::MAX, 1, u64::MAX),
        ] {
            let id = media_file_id(size, seq, nonce);
            assert_eq!(id.len(), 44);
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'));
            assert_eq!(
                FileId::parse(id.as_bytes()),
                Ok(FileId { size, seq, nonce })
            );
        }
        assert_ne!(media_file_id(1, 2, 3), media_file_id(1, 2, 4));
    }

    #[test]
    fn garbage_and_edited_ids_are_refused() {
        let id = media_file_id(1000, 5, 9);
        let mut edited = id.clone().into_bytes();
        edited[3] = if edited[3] == b'A' { b'B' } else { b'A' };
        for bad in [
            &b""[..],
            b"garbage",
            b"not base64 at all!",
            &edited,
            &id.as_bytes()[..40],
            format!("{id}AAAA").as_bytes(),
        ] {
            assert_eq!(
                FileId::parse(bad),
                Err(InvalidFileId),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
