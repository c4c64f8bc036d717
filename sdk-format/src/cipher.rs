//! The SDK's `dec` helper and its inverse (`docs/SDK.md` section 4): a base64 text holding
//! `IV || AES-256-CBC(key, IV, plaintext)` with PKCS#7 padding. [`crate::decrypt`] applies it
//! twice, once to the key info and once to the message body.
//!
//! The key is the first 32 bytes of the key string, zero padded, because the SDK copies the
//! string into a fixed 32-byte buffer: keys shorter than 32 bytes (a short message, a short
//! `k1`) are legal and simply weak.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine as _;

use crate::base64_lenient;

type Decryptor = cbc::Decryptor<aes::Aes256>;
type Encryptor = cbc::Encryptor<aes::Aes256>;

/// Why `dec` gave no plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecError {
    /// The base64 text has more trailing `=` than data: the SDK aborts.
    Abort,
    /// Too short, not whole blocks, or bad padding: the SDK returns a code.
    Invalid,
}

/// The AES-256 key the SDK derives from a key string.
fn aes_key(key: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let n = key.len().min(32);
    out[..n].copy_from_slice(&key[..n]);
    out
}

/// Checks what the SDK checks before decrypting `text`, without decrypting it.
pub(crate) fn check(text: &[u8]) -> Result<(), DecError> {
    let len = base64_lenient::decoded_len(text).map_err(|_| DecError::Abort)?;
    if len < 32 || len % 16 != 0 {
        return Err(DecError::Invalid);
    }
    Ok(())
}

/// The SDK's `dec(key, text)`.
pub(crate) fn dec(key: &[u8], text: &[u8]) -> Result<Vec<u8>, DecError> {
    check(text)?;
    let raw = base64_lenient::decode(text).map_err(|_| DecError::Abort)?;
    let (iv, body) = raw.split_at(16);
    let iv: [u8; 16] = iv.try_into().expect("split at 16");
    Decryptor::new(&aes_key(key).into(), &iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(body)
        .map_err(|_| DecError::Invalid)
}

/// The inverse of [`dec`]: standard base64 of `iv || AES-256-CBC(key, iv, plaintext)`.
pub(crate) fn enc(key: &[u8], iv: [u8; 16], plaintext: &[u8]) -> String {
    let mut raw = iv.to_vec();
    raw.extend(
        Encryptor::new(&aes_key(key).into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plaintext),
    );
    base64::engine::general_purpose::STANDARD.encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enc_then_dec_round_trips_for_every_padding_length() {
        for len in 0..48 {
            let plaintext = vec![b'x'; len];
            let text = enc(b"short key", [7; 16], &plaintext);
            assert_eq!(dec(b"short key", text.as_bytes()), Ok(plaintext));
        }
    }

    #[test]
    fn key_is_zero_padded_and_cut_at_32_bytes() {
        let text = enc(b"k", [1; 16], b"hello");
        assert_eq!(dec(b"k\0\0", text.as_bytes()), Ok(b"hello".to_vec()));
        let long = [b'a'; 40];
        let text = enc(&long, [1; 16], b"hello");
        assert_eq!(dec(&long[..32], text.as_bytes()), Ok(b"hello".to_vec()));
    }

    #[test]
    fn wrong_key_or_shape_is_invalid() {
        let text = enc(b"right", [3; 16], b"some plaintext that is long enough");
        // A wrong key leaves bad padding in all but a tiny fraction of keys; this one is checked.
        assert_eq!(dec(b"wrong", text.as_bytes()), Err(DecError::Invalid));
        // 16 bytes: an IV and no block.
        assert_eq!(
            dec(b"k", b"AAAAAAAAAAAAAAAAAAAAAA=="),
            Err(DecError::Invalid)
        );
        // 33 bytes: not whole blocks.
        assert_eq!(dec(b"k", &[b'A'; 44]), Err(DecError::Invalid));
        assert_eq!(dec(b"k", b"===="), Err(DecError::Abort));
    }
}
