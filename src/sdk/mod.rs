//! The SDK layer: a safe binding to `libWeWorkFinanceSdk_C.so`.
//!
//! - `ffi` (private; its public types are re-exported here): loading the library, the SDK
//!   handle and the C buffers; all of the crate's `unsafe` is there.
//! - [`guard`]: the checks every input passes before the library sees it.
//! - [`error`]: the one error type, with the raw code kept and a retry class.
//! - [`chat_page`]: reading `GetChatData`'s body.
//! - [`net`]: proxy and timeout options.
//!
//! Decrypting messages (RSA, then `DecryptData`) is in [`crate::decrypt`]; downloading media
//! chunk by chunk is in [`crate::media`].

pub mod chat_page;
pub mod error;
mod ffi;
pub mod guard;
pub mod net;

pub use chat_page::EncryptedMessage;
pub use error::{check, ErrorClass, HostFailure, SdkCode, SdkError, SdkOp};
pub use ffi::handle::{MediaChunk, SdkHandle};
pub use ffi::library::{FinanceSdk, LoadError, SYMBOL_NAMES};
pub use ffi::shared_slots::{self, ChunkBytes};
pub use net::NetOptions;
