//! `DecryptData(encrypt_key, encrypt_msg)` of the Finance SDK, both directions
//! (`docs/SDK.md` sections 4 and 6).
//!
//! An `encrypt_chat_msg` `M` hides its AES key and its layout in itself:
//!
//! ```text
//! M  = junk(13) + K(32) + junk(pre_len) + B[..s_len] + junk(s_len) + B[s_len..] + junk(end_len)
//! B  = base64(IV  || AES-256-CBC(k1, IV,  json))
//! EK = base64(IV' || AES-256-CBC(K,  IV', SdkKeyInfo { k1, pre_len, end_len, s_len }))
//! ```
//!
//! [`check_layout`] does everything the SDK does before the body decryption, in the SDK's order,
//! and so tells which inputs give which code and which kill the process ([`Crash`]).
//! [`decrypt_data`] adds the body decryption. [`encrypt_data`] builds messages the real library
//! decrypts. NULL pointers (code 10000) are the FFI layer's concern. The AES and base64 details
//! live in `cipher` and [`crate::base64_lenient`].

use std::fmt;

use prost::Message as _;
use rand_core::RngCore;

use crate::cipher::{self, DecError};
use crate::codes;

/// Where `K` starts in `M`: after 13 junk bytes.
const KEY_START: usize = 13;
/// Where the layout's `pre_len` counts from: after the 13 junk bytes and the 32-byte `K`.
const KEY_END: usize = 45;

/// An input that makes the real library abort the process (an uncaught C++ exception).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crash {
    /// `M` is shorter than 13 bytes, empty included (`substr(13, 32)` throws).
    MessageTooShort,
    /// `encrypt_key` has more trailing `=` than decoded bytes (`=`, `====`).
    KeyAllPadding,
    /// A valid key info whose `s_len` lies beyond the text left after `pre_len`
    /// (`erase(s_len, s_len)` throws).
    SplitBeyondText,
    /// The body left after the layout has more trailing `=` than decoded bytes. Not in the
    /// measured table of section 6, but the body goes through the same base64 decoder as the key,
    /// which aborts on such input; a binding must refuse it just the same.
    BodyAllPadding,
}

impl fmt::Display for Crash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Crash::MessageTooShort => "encrypt_msg is shorter than 13 bytes",
            Crash::KeyAllPadding => "encrypt_key has more trailing '=' than data",
            Crash::SplitBeyondText => "the key info's s_len lies beyond the message",
            Crash::BodyAllPadding => "the message body has more trailing '=' than data",
        })
    }
}

/// Why `DecryptData` gives no plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The SDK returns this code: 10005, 10006 or 10008.
    Code(i32),
    /// The SDK aborts the process.
    Crash(Crash),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Code(code) => write!(f, "DecryptData returns {code}"),
            Failure::Crash(crash) => write!(f, "DecryptData aborts the process: {crash}"),
        }
    }
}

impl std::error::Error for Failure {}

/// The SDK's protobuf `SdkKeyInfo`, the plaintext of `encrypt_key`.
#[derive(Clone, PartialEq, Eq, ::prost::Message)]
pub struct KeyInfo {
    /// The body's AES key (first 32 bytes, zero padded).
    #[prost(string, tag = "1")]
    pub k1: String,
    /// Junk bytes between `K` and the body.
    #[prost(int32, tag = "2")]
    pub pre_len: i32,
    /// Junk bytes after the body.
    #[prost(int32, tag = "3")]
    pub end_len: i32,
    /// Where the body is split, and how much junk sits in the split.
    #[prost(int32, tag = "4")]
    pub s_len: i32,
}

/// What the body decryption needs: the outcome of every check before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The decrypted key info.
    pub key_info: KeyInfo,
    /// The body text `B` with the junk removed.
    pub body: Vec<u8>,
}

impl Layout {
    /// The final step of `DecryptData`: the body decrypted with `k1`, or 10006.
    pub fn decrypt(&self) -> Result<Vec<u8>, Failure> {
        cipher::dec(self.key_info.k1.as_bytes(), &self.body).map_err(|e| match e {
            DecError::Abort => Failure::Crash(Crash::BodyAllPadding),
            DecError::Invalid => Failure::Code(codes::DECRYPT_FAILED),
        })
    }
}

/// Everything `DecryptData` does before the final body decryption, in the SDK's order: the
/// key-info stage and every layout check. Cheap: one small AES decryption.
///
/// A `Crash` result means the real library would abort the process on this input.
pub fn check_layout(encrypt_key: &[u8], encrypt_msg: &[u8]) -> Result<Layout, Failure> {
    let m = encrypt_msg;
    if m.len() < KEY_START {
        return Err(Failure::Crash(Crash::MessageTooShort));
    }
    // `M.substr(13, 32)`: shorter when M is, which makes a wrong key and so 10008.
    let k = &m[KEY_START..m.len().min(KEY_END)];
    let info = cipher::dec(k, encrypt_key).map_err(|e| match e {
        DecError::Abort => Failure::Crash(Crash::KeyAllPadding),
        DecError::Invalid => Failure::Code(codes::BAD_ENCRYPT_KEY),
    })?;
    let bad_key_info = Failure::Code(codes::BAD_FILEID_OR_KEY_INFO);
    let key_info = KeyInfo::decode(info.as_slice()).map_err(|_| bad_key_info)?;

    // i64 holds every sum of two i32s, so these checks cannot overflow.
    let (s_len, pre_len, end_len) = (
        i64::from(key_info.s_len),
        i64::from(key_info.pre_len),
        i64::from(key_info.end_len),
    );
    let m_len = m.len() as i64;
    let start = pre_len + KEY_END as i64;
    if s_len <= 0 || 2 * s_len >= m_len || start < 0 || start > m_len {
        return Err(bad_key_info);
    }
    let x = &m[start as usize..];
    let s = s_len as usize;
    // `X.erase(s_len, s_len)`: throws when the position is past the end, clamps the count.
    if s > x.len() {
        return Err(Failure::Crash(Crash::SplitBeyondText));
    }
    let cut = s.min(x.len() - s);
    let mut body = Vec::with_capacity(x.len() - cut);
    body.extend_from_slice(&x[..s]);
    body.extend_from_slice(&x[s + cut..]);
    if end_len < 0 || end_len > body.len() as i64 {
        return Err(bad_key_info);
    }
    body.truncate(body.len() - end_len as usize);
    if cipher::check(&body) == Err(DecError::Abort) {
        return Err(Failure::Crash(Crash::BodyAllPadding));
    }
    Ok(Layout { key_info, body })
}

/// `DecryptData(encrypt_key, encrypt_msg)`: the message JSON, or the code or crash the real
/// library gives.
pub fn decrypt_data(encrypt_key: &[u8], encrypt_msg: &[u8]) -> Result<Vec<u8>, Failure> {
    check_layout(encrypt_key, encrypt_msg)?.decrypt()
}

/// The most junk [`encrypt_data`] puts before and after the body.
const MAX_EDGE_JUNK: u32 = 48;
/// The furthest into the body [`encrypt_data`] splits it (also the most junk in the split).
const MAX_SPLIT: usize = 96;

/// Builds `(encrypt_key, encrypt_msg)` for `plaintext`, as section 4 lays it out, such that the
/// real library's `DecryptData` returns `plaintext`.
///
/// `head` becomes the 13 leading junk bytes of the message (the emulator tags its corp there),
/// `key` is `K`, `k1` the body key. Junk lengths, junk bytes (base64 alphabet) and both IVs are
/// drawn from `rng`, so the same inputs and RNG state give the same output.
///
/// # Panics
///
/// If `head` is not 13 bytes, `key` not 32 bytes, or either holds a NUL, which would cut the C
/// string the real library receives.
pub fn encrypt_data<R: RngCore + ?Sized>(
    plaintext: &[u8],
    head: &str,
    key: &str,
    k1: &str,
    rng: &mut R,
) -> (String, String) {
    assert_eq!(head.len(), KEY_START, "head must be 13 bytes");
    assert_eq!(key.len(), KEY_END - KEY_START, "key must be 32 bytes");
    assert!(
        !head.contains('\0') && !key.contains('\0'),
        "head and key must not contain NUL"
    );

    let body = cipher::enc(k1.as_bytes(), iv(rng), plaintext);
    let pre_len = rng.next_u32() % (MAX_EDGE_JUNK + 1);
    let end_len = rng.next_u32() % (MAX_EDGE_JUNK + 1);
    // The body is at least 44 base64 bytes (IV and one block), so 1..=len always fits.
    let s_len = 1 + (rng.next_u32() as usize) % body.len().min(MAX_SPLIT);

    let mut msg = String::with_capacity(KEY_END + body.len() + 2 * MAX_SPLIT + 2 * 48);
    msg.push_str(head);
    msg.push_str(key);
    push_junk(&mut msg, pre_len as usize, rng);
    msg.push_str(&body[..s_len]);
    push_junk(&mut msg, s_len, rng);
    msg.push_str(&body[s_len..]);
    push_junk(&mut msg, end_len as usize, rng);

    let info = KeyInfo {
        k1: k1.to_owned(),
        pre_len: pre_len as i32,
        end_len: end_len as i32,
        s_len: s_len as i32,
    };
    let encrypt_key = cipher::enc(key.as_bytes(), iv(rng), &info.encode_to_vec());
    (encrypt_key, msg)
}

fn iv<R: RngCore + ?Sized>(rng: &mut R) -> [u8; 16] {
    let mut iv = [0u8; 16];
    rng.fill_bytes(&mut iv);
    iv
}

/// Appends `n` junk bytes from the base64 alphabet (no `=`), so the message looks like base64.
fn push_junk<R: RngCore + ?Sized>(out: &mut String, n: usize, rng: &mut R) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    out.extend((0..n).map(|_| char::from(ALPHABET[(rng.next_u32() % 64) as usize])));
}

#[cfg(test)]
mod tests;
