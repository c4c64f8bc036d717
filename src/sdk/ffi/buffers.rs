//! RAII owners of the library's output buffers, one fresh pair per call.
//!
//! The library allocates the inner buffers with `new[]` and frees them in `FreeSlice` /
//! `FreeMediaData`; reusing an output struct leaks its previous buffer. So every call gets a
//! new one, the bytes are copied out by length (media data is binary, with no terminator), and
//! `Drop` hands the struct back to the library.

use std::ffi::{c_char, c_int, c_void};
use std::ptr::NonNull;

use super::library::Symbols;
use crate::sdk::error::{SdkCode, SdkError, SdkOp};

/// A `Slice_t*` from `NewSlice`, freed with `FreeSlice`.
pub(super) struct OwnedSlice<'lib> {
    fns: &'lib Symbols,
    raw: NonNull<c_void>,
}

impl<'lib> OwnedSlice<'lib> {
    pub(super) fn new(fns: &'lib Symbols, op: SdkOp) -> Result<Self, SdkError> {
        // SAFETY: NewSlice takes no argument and returns a heap `Slice_t` or NULL.
        let raw = unsafe { (fns.NewSlice)() };
        let raw = NonNull::new(raw).ok_or(out_of_memory(op))?;
        Ok(Self { fns, raw })
    }

    pub(super) fn as_ptr(&self) -> *mut c_void {
        self.raw.as_ptr()
    }

    /// The slice's bytes, copied out by its length.
    pub(super) fn to_vec(&self) -> Vec<u8> {
        // SAFETY: `raw` is a live Slice_t; the accessors never return NULL and the buffer holds
        // at least `len` bytes (it is `len + 1`, NUL-terminated, after a successful call).
        unsafe {
            let len = (self.fns.GetSliceLen)(self.as_ptr());
            copy_out((self.fns.GetContentFromSlice)(self.as_ptr()), len)
        }
    }
}

impl Drop for OwnedSlice<'_> {
    fn drop(&mut self) {
        // SAFETY: `raw` came from NewSlice and is freed exactly once, here.
        unsafe { (self.fns.FreeSlice)(self.as_ptr()) }
    }
}

/// A `MediaData_t*` from `NewMediaData`, freed with `FreeMediaData`.
pub(super) struct OwnedMediaData<'lib> {
    fns: &'lib Symbols,
    raw: NonNull<c_void>,
}

impl<'lib> OwnedMediaData<'lib> {
    pub(super) fn new(fns: &'lib Symbols) -> Result<Self, SdkError> {
        // SAFETY: NewMediaData takes no argument and returns a zeroed heap `MediaData_t` or NULL.
        let raw = unsafe { (fns.NewMediaData)() };
        let raw = NonNull::new(raw).ok_or(out_of_memory(SdkOp::GetMediaData))?;
        Ok(Self { fns, raw })
    }

    pub(super) fn as_ptr(&self) -> *mut c_void {
        self.raw.as_ptr()
    }

    /// Lends the chunk's `data_len` bytes, where the library keeps them, to `use_bytes`.
    pub(super) fn with_data<R>(&self, use_bytes: impl FnOnce(&[u8]) -> R) -> R {
        // SAFETY: `raw` is live while `self` is borrowed (FreeMediaData runs only in `drop`);
        // GetData never returns NULL and points at `data_len` bytes that the MediaData owns; the
        // library writes them only inside GetMediaData, which has returned, and the slice cannot
        // outlive this borrow of `self`.
        let bytes = unsafe {
            let len = (self.fns.GetDataLen)(self.as_ptr());
            lend((self.fns.GetData)(self.as_ptr()), len)
        };
        use_bytes(bytes)
    }

    /// The index of the next chunk (empty after the last one), copied out by its length.
    pub(super) fn next_index(&self) -> Vec<u8> {
        // SAFETY: as for `data`; `outindexbuf` holds `out_len` bytes plus a NUL.
        unsafe {
            let len = (self.fns.GetIndexLen)(self.as_ptr());
            copy_out((self.fns.GetOutIndexBuf)(self.as_ptr()), len)
        }
    }

    pub(super) fn is_finished(&self) -> bool {
        // SAFETY: `raw` is live.
        unsafe { (self.fns.IsMediaDataFinish)(self.as_ptr()) != 0 }
    }
}

impl Drop for OwnedMediaData<'_> {
    fn drop(&mut self) {
        // SAFETY: `raw` came from NewMediaData and is freed exactly once, here.
        unsafe { (self.fns.FreeMediaData)(self.as_ptr()) }
    }
}

/// # Safety
/// `ptr` must be valid for reads of `len` bytes when `len > 0`.
unsafe fn copy_out(ptr: *const c_char, len: c_int) -> Vec<u8> {
    lend(ptr, len).to_vec()
}

/// The `len` bytes at `ptr` (none when `len` is not positive or `ptr` is NULL).
///
/// # Safety
/// `ptr` must be valid for reads of `len` bytes when `len > 0`, and those bytes must neither
/// change nor be freed for `'a`.
unsafe fn lend<'a>(ptr: *const c_char, len: c_int) -> &'a [u8] {
    match usize::try_from(len) {
        Ok(len) if len > 0 && !ptr.is_null() => std::slice::from_raw_parts(ptr.cast::<u8>(), len),
        _ => &[],
    }
}

fn out_of_memory(op: SdkOp) -> SdkError {
    SdkError::Code {
        op,
        code: SdkCode::System,
    }
}
