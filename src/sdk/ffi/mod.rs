//! The only place in the crate that touches the C library, or memory shared with the process
//! that loads it, and so the only place with `unsafe`.
//!
//! - [`library`] opens `libWeWorkFinanceSdk_C.so` and resolves its 17 functions once into one
//!   struct that owns the library ([`FinanceSdk`](library::FinanceSdk)); a missing symbol
//!   fails the load.
//! - [`buffers`] owns the library's `Slice_t` and `MediaData_t` for the length of one call and
//!   frees them in `Drop`, after the bytes were copied out by length.
//! - [`handle`] is the `WeWorkFinanceSdk_t*` of one (corpid, secret): `Init` on creation,
//!   `DestroySdk` exactly once on drop, `GetChatData` and `GetMediaData` behind `&mut self`.
//! - [`probe`] returns the library's raw code for parameters the guards refuse, for
//!   conformance tests.
//! - [`shared_slots`] is the memory an SDK host writes media chunks into for the worker to
//!   read, instead of sending them through its socket.
//!
//! Every input is checked by [`super::guard`] before it is passed in; the facts this module
//! relies on are in `docs/SDK.md`, sections 2 and 6.
#![allow(unsafe_code)]

mod buffers;
pub mod handle;
pub mod library;
mod probe;
pub mod shared_slots;
