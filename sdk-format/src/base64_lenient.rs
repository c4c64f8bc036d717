//! The base64 decoder inside the Finance SDK, reproduced exactly (`docs/SDK.md` section 4),
//! because its quirks decide return codes and crashes of `DecryptData`.
//!
//! It is not a validating decoder: every group of four input bytes yields three output bytes,
//! bytes outside the standard alphabet (including `=`) count as zero, a trailing 1-3 bytes are
//! ignored, and the output is then cut to `3 * (n / 4)` minus the number of trailing `=` of the
//! whole input. When that number is negative the library's `std::string` throws and the process
//! aborts; [`NegativeLength`] names that case. `cipher` builds on this decoder.

use std::fmt;

/// The input has more trailing `=` than decoded bytes (`=`, `====`, ...): the real library
/// aborts the process on such input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NegativeLength;

impl fmt::Display for NegativeLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("more trailing '=' than decoded bytes (the SDK aborts)")
    }
}

impl std::error::Error for NegativeLength {}

/// The 6-bit value of each byte; bytes outside the alphabet are 0, as in the SDK.
const SEXTETS: [u8; 256] = {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < alphabet.len() {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// The length [`decode`] gives for `text`, without decoding it.
pub fn decoded_len(text: &[u8]) -> Result<usize, NegativeLength> {
    let padding = text.iter().rev().take_while(|&&b| b == b'=').count();
    (3 * (text.len() / 4))
        .checked_sub(padding)
        .ok_or(NegativeLength)
}

/// Decodes `text` the way the SDK does.
pub fn decode(text: &[u8]) -> Result<Vec<u8>, NegativeLength> {
    let len = decoded_len(text)?;
    let mut out = Vec::with_capacity(3 * (text.len() / 4));
    for group in text.chunks_exact(4) {
        let word = group
            .iter()
            .fold(0u32, |acc, &b| (acc << 6) | u32::from(SEXTETS[b as usize]));
        out.extend_from_slice(&word.to_be_bytes()[1..]);
    }
    out.truncate(len);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    #[test]
    fn standard_base64_decodes_as_usual() {
        for len in 0..64 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
            assert_eq!(decode(text.as_bytes()).unwrap(), bytes, "len {len}");
        }
    }

    #[test]
    fn foreign_bytes_count_as_zero() {
        // "A" is 0 too, so "!!!!" decodes like "AAAA".
        assert_eq!(decode(b"!!!!").unwrap(), vec![0, 0, 0]);
        assert_eq!(decode(b"A=AA").unwrap(), vec![0, 0, 0]);
        assert_eq!(decode(b"/\x80//").unwrap(), vec![0xfc, 0x0f, 0xff]);
    }

    #[test]
    fn trailing_partial_group_is_ignored() {
        assert_eq!(decode(b"QUJD").unwrap(), b"ABC");
        assert_eq!(decode(b"QUJDR").unwrap(), b"ABC");
        assert_eq!(decode(b"QUJDRE").unwrap(), b"ABC");
        assert_eq!(decode(b"QUJDREV").unwrap(), b"ABC");
        assert_eq!(decode(b"").unwrap(), b"");
        assert_eq!(decode(b"QU").unwrap(), b"");
    }

    #[test]
    fn trailing_padding_of_the_whole_input_shortens_the_output() {
        // The '=' in the ignored tail still counts.
        assert_eq!(decode(b"QUJD=").unwrap(), b"AB");
        assert_eq!(decode(b"QUJDRA==").unwrap(), b"ABCD");
        assert_eq!(decoded_len(b"QUJDRA==="), Ok(3));
    }

    #[test]
    fn more_padding_than_data_is_the_abort_case() {
        assert_eq!(decode(b"="), Err(NegativeLength));
        assert_eq!(decode(b"===="), Err(NegativeLength));
        assert_eq!(decode(b"A======="), Err(NegativeLength));
        assert_eq!(decoded_len(b"AAA==="), Ok(0));
        assert_eq!(decode(b"==="), Err(NegativeLength));
        assert_eq!(decode(b"AA=="), Ok(vec![0]));
    }
}
