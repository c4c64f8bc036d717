//! The chunk index of `GetMediaData` (`docs/SDK.md` section 5): the `indexbuf` a caller
//! passes in and the `outindexbuf` it gets back, `Range:bytes=START-END` with END inclusive.
//!
//! The binding parses indexes with [`parse_index`] to refuse what the real library rejects with
//! 10000; the emulator uses the same function, and [`next_range`] to compute `outindexbuf`.

use std::fmt;

/// The size of a media chunk: 512 KiB.
pub const CHUNK_SIZE: u64 = 524_288;

const PREFIX: &str = "Range:bytes=";

/// An inclusive byte range `start..=end` of a media object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte, inclusive.
    pub end: u64,
}

/// An `indexbuf` the real library rejects with 10000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedIndex;

impl fmt::Display for MalformedIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "media index is not Range:bytes=START-END with a length that is a multiple of 16",
        )
    }
}

impl std::error::Error for MalformedIndex {}

/// The range an empty index stands for: the first chunk, `Range:bytes=0-524287`.
pub fn first_range() -> ByteRange {
    ByteRange {
        start: 0,
        end: CHUNK_SIZE - 1,
    }
}

/// Parses an `indexbuf`: `""` is the first chunk (`None`); otherwise it must be
/// `Range:bytes=START-END` in decimal digits with `END >= START` and `END - START + 1` a multiple
/// of 16.
pub fn parse_index(index: &str) -> Result<Option<ByteRange>, MalformedIndex> {
    if index.is_empty() {
        return Ok(None);
    }
    let (start, end) = index
        .strip_prefix(PREFIX)
        .and_then(|range| range.split_once('-'))
        .ok_or(MalformedIndex)?;
    let (start, end) = (number(start)?, number(end)?);
    if end < start || (u128::from(end - start) + 1) % 16 != 0 {
        return Err(MalformedIndex);
    }
    Ok(Some(ByteRange { start, end }))
}

/// A non-empty run of ASCII digits that fits a `u64` (`u64::from_str` would also take a `+`).
fn number(digits: &str) -> Result<u64, MalformedIndex> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MalformedIndex);
    }
    digits.parse().map_err(|_| MalformedIndex)
}

/// Formats a range as an index: `Range:bytes=START-END`.
pub fn format_index(range: ByteRange) -> String {
    format!("{PREFIX}{}-{}", range.start, range.end)
}

/// The range after a chunk that ended at `served_end`, for an object of `total` bytes: the next
/// 512 KiB, cut at the object's end; `None` when `served_end` was the last byte.
pub fn next_range(served_end: u64, total: u64) -> Option<ByteRange> {
    let last = total.checked_sub(1)?;
    (served_end < last).then(|| ByteRange {
        start: served_end + 1,
        end: served_end.saturating_add(CHUNK_SIZE).min(last),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: u64, end: u64) -> Option<ByteRange> {
        Some(ByteRange { start, end })
    }

    #[test]
    fn empty_index_is_the_first_chunk() {
        assert_eq!(parse_index(""), Ok(None));
        assert_eq!(format_index(first_range()), "Range:bytes=0-524287");
    }

    #[test]
    fn well_formed_indexes_parse() {
        assert_eq!(parse_index("Range:bytes=0-524287"), Ok(range(0, 524_287)));
        assert_eq!(
            parse_index("Range:bytes=524288-524303"),
            Ok(range(524_288, 524_303))
        );
        assert_eq!(parse_index("Range:bytes=5-20"), Ok(range(5, 20)));
        assert_eq!(parse_index("Range:bytes=007-022"), Ok(range(7, 22)));
        let max = format!("Range:bytes=0-{}", u64::MAX);
        assert_eq!(parse_index(&max), Ok(range(0, u64::MAX)));
    }

    #[test]
    fn malformed_indexes_are_rejected() {
        for index in [
            "Range:bytes=0-0",
            "Range:bytes=0-14",
            "Range:bytes=16-0",
            "Range:bytes=-15",
            "Range:bytes=0-",
            "Range:bytes=0",
            "Range:bytes=+0-15",
            "Range:bytes= 0-15",
            "Range:bytes=0-15 ",
            "Range:bytes=0-15-31",
            "range:bytes=0-15",
            "Range: bytes=0-15",
            "bytes=0-15",
            "0-15",
            "Range:bytes=0-99999999999999999999",
            "garbage",
        ] {
            assert_eq!(parse_index(index), Err(MalformedIndex), "{index:?}");
        }
    }

    #[test]
    fn formatted_ranges_parse_back() {
        for r in [
            first_range(),
            ByteRange {
                start: 524_288,
                end: 1_048_575,
            },
        ] {
            assert_eq!(parse_index(&format_index(r)), Ok(Some(r)));
        }
    }

    #[test]
    fn next_range_walks_the_object_in_chunks() {
        assert_eq!(next_range(524_287, 524_288), None);
        assert_eq!(next_range(524_287, 524_304), range(524_288, 524_303));
        assert_eq!(next_range(524_287, 2_000_000), range(524_288, 1_048_575));
        assert_eq!(next_range(15, 16), None);
        assert_eq!(next_range(0, 0), None);
    }
}
