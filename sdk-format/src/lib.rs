//! The wire formats of the WeCom chat-archive Finance SDK (`libWeWorkFinanceSdk_C.so`), as
//! described in `docs/SDK.md`, with no I/O and no unsafe code.
//!
//! Two users share this crate, so that both agree with the real library byte for byte:
//! - the production binding, which checks its inputs with [`decrypt::check_layout`] and
//!   [`media_index::parse_index`] to refuse what would crash the real library before calling it;
//! - the emulator crate, which implements `DecryptData` and `GetMediaData` with the same code and
//!   builds its messages with [`decrypt::encrypt_data`].
//!
//! Modules: [`base64_lenient`] (the library's own base64 decoder), `cipher` (AES-256-CBC helper
//! both directions use), [`decrypt`] (the `DecryptData` layout, both directions), [`media_index`]
//! (the `Range:bytes=` chunk index of `GetMediaData`) and [`codes`] (return codes).

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod base64_lenient;
mod cipher;
pub mod codes;
pub mod decrypt;
pub mod media_index;

pub use decrypt::{check_layout, decrypt_data, encrypt_data, Crash, Failure, KeyInfo, Layout};
pub use media_index::{
    first_range, format_index, next_range, parse_index, ByteRange, MalformedIndex, CHUNK_SIZE,
};
