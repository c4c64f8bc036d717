//! Deterministic randomness: every random choice of the emulator comes from a ChaCha20 stream
//! keyed by a SHA-256 of a label, the corp seed and the parts that identify the thing drawn
//! (a message seq, an sdkfileid, a call number). Same config, same bytes; and any one thing can
//! be regenerated alone, which is what lets [`crate::messages`] and [`crate::media`] serve any
//! seq or byte offset without state.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

/// The 32-byte key for `label`, `seed` and `parts`. Parts are length-prefixed so that no two
/// different lists of parts give the same key.
pub(crate) fn key(label: &str, seed: u64, parts: &[&[u8]]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(b"wecom-emulator/");
    hash.update(label.as_bytes());
    hash.update([0]);
    hash.update(seed.to_le_bytes());
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

/// A ChaCha20 stream for `label`, `seed` and `parts`.
pub(crate) fn rng(label: &str, seed: u64, parts: &[&[u8]]) -> ChaCha20Rng {
    ChaCha20Rng::from_seed(key(label, seed, parts))
}

/// A fraction in `[0, 1)` from the first 8 bytes of `key`: 53 random bits make an exact f64.
pub(crate) fn fraction(key: &[u8; 32]) -> f64 {
    let word = u64::from_le_bytes(key[..8].try_into().expect("8 bytes"));
    (word >> 11) as f64 / (1u64 << 53) as f64
}

/// A number in `0..n` (`n > 0`); the modulo bias is below 2^-40 for the small `n` used here.
pub(crate) fn below(rng: &mut impl RngCore, n: u64) -> u64 {
    rng.next_u64() % n
}

/// `true` with probability `percent`/100.
pub(crate) fn chance(rng: &mut impl RngCore, percent: u64) -> bool {
    below(rng, 100) < percent
}

/// One element of a non-empty slice.
pub(crate) fn pick<'a, T>(rng: &mut impl RngCore, items: &'a [T]) -> &'a T {
    &items[below(rng, items.len() as u64) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_same_stream_and_parts_are_not_concatenated() {
        assert_eq!(key("m", 1, &[b"ab"]), key("m", 1, &[b"ab"]));
        assert_ne!(key("m", 1, &[b"ab"]), key("m", 2, &[b"ab"]));
        assert_ne!(key("m", 1, &[b"ab"]), key("n", 1, &[b"ab"]));
        assert_ne!(key("m", 1, &[b"ab"]), key("m", 1, &[b"a", b"b"]));
        let (mut a, mut b) = (rng("x", 3, &[]), rng("x", 3, &[]));
        assert_eq!(a.next_u64(), b.next_u64());
    }
}
