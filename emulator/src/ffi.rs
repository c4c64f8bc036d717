//! The C ABI of `libWeWorkFinanceSdk_C.so` (`docs/SDK.md` section 2): 17 functions and two
//! structs, with the real library's memory rules. The only unsafe code of the emulator.
//!
//! This module only moves data across the boundary: C strings in, buffers out, and the outcome
//! of a call turned into a return code, a call-log line ([`crate::call_log`]) and, where the
//! real library dies, a real SIGABRT or SIGSEGV. The calls themselves are `sdk` and
//! `decrypt`; handles are looked up in `handles`, never dereferenced.
//!
//! Memory, as in the real library: output buffers are allocated here (`malloc`) and freed only
//! by `FreeSlice`/`FreeMediaData`; text buffers are `len + 1` bytes with a NUL, media data is
//! `data_len` bytes; a failed call leaves its output struct untouched; writing into a struct
//! that already holds a buffer leaks the old one. A panic never unwinds into C: it aborts.

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use wecom_sdk_format::codes;

use crate::call_log::{CallRecord, Op};
use crate::handles;
use crate::outcome::Fail;
use crate::runtime::{runtime, Runtime};
use crate::sdk::{Chunk, Sdk};

/// `typedef struct { char* buf; int len; } Slice_t;`
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct Slice_t {
    /// `len + 1` bytes, NUL-terminated, or NULL.
    pub buf: *mut c_char,
    /// Bytes in `buf`, without the NUL.
    pub len: c_int,
}

/// `typedef struct { char* outindexbuf; int out_len; char* data; int data_len; int is_finish; } MediaData_t;`
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct MediaData_t {
    /// The index of the next chunk, NUL-terminated; `""` after the last.
    pub outindexbuf: *mut c_char,
    /// Bytes in `outindexbuf`, without the NUL.
    pub out_len: c_int,
    /// The chunk, binary, `data_len` bytes, no terminator.
    pub data: *mut c_char,
    /// Bytes in `data`.
    pub data_len: c_int,
    /// 1 after the last chunk.
    pub is_finish: c_int,
}

/// The opaque SDK handle. Its address names a handle in the registry; it is never read.
#[allow(non_camel_case_types)]
pub struct WeWorkFinanceSdk_t {
    _opaque: [u8; 0],
}

/// What accessors return for NULL or empty buffers: a static, never-written `""`.
static EMPTY: [c_char; 1] = [0];

fn empty() -> *mut c_char {
    EMPTY.as_ptr().cast_mut()
}

/// Runs an SDK call, aborting instead of unwinding into C on a panic.
fn guard<T>(name: &str, call: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|_| {
        eprintln!("wecom emulator: {name} panicked; aborting rather than unwinding into C");
        std::process::abort()
    })
}

/// Logs a finished call and returns its code, or crashes the process as the real library would.
fn conclude(rt: &Runtime, mut rec: CallRecord, result: Result<(), Fail>) -> c_int {
    let (rc, crash) = result.as_ref().err().map_or((0, None), Fail::logged);
    (rec.rc, rec.crash) = (rc, crash.map(str::to_owned));
    rt.log(&rec);
    match result {
        Ok(()) => codes::OK,
        Err(Fail::Code(code)) => code,
        Err(Fail::Abort(why)) => {
            eprintln!("wecom emulator: {why}");
            std::process::abort()
        }
        Err(Fail::Segv(why)) => {
            eprintln!("wecom emulator: segmentation fault: {why}");
            // SAFETY: raising a signal and setting its default action touch no memory of ours.
            // The first raise lets a handler the process installed run, as a real fault would;
            // if that handler returns (Rust's own only checks for stack overflow), the default
            // action kills the process.
            unsafe {
                libc::raise(libc::SIGSEGV);
                libc::signal(libc::SIGSEGV, libc::SIG_DFL);
                libc::raise(libc::SIGSEGV);
            }
            std::process::abort()
        }
    }
}

/// The bytes of a C string argument; `None` for NULL.
///
/// # Safety
///
/// `p` is NULL or points to a NUL-terminated string that outlives the call.
unsafe fn arg<'a>(p: *const c_char) -> Option<&'a [u8]> {
    // SAFETY: the caller's contract.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_bytes())
}

/// The live handle behind `sdk`: 10000 for NULL; a crash for a destroyed or unknown handle
/// (use after free in the real library).
fn handle(sdk: *mut WeWorkFinanceSdk_t, rec: &mut CallRecord) -> Result<Arc<Sdk>, Fail> {
    if sdk.is_null() {
        return Err(Fail::Code(codes::BAD_PARAMETER));
    }
    let sdk = handles::get(sdk as usize)
        .ok_or_else(|| Fail::Segv("the SDK handle was destroyed or never made".into()))?;
    rec.handle = Some(sdk.id);
    Ok(sdk)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn c_len(len: usize) -> c_int {
    c_int::try_from(len).expect("outputs stay below 2 GiB")
}

/// A `malloc`ed copy of `bytes`, NUL-terminated when `nul`. Never NULL.
fn alloc(bytes: &[u8], nul: bool) -> *mut c_char {
    let size = bytes.len() + usize::from(nul);
    // SAFETY: malloc has no preconditions; at least 1 byte so that 0 is not special.
    let p = unsafe { libc::malloc(size.max(1)) }.cast::<u8>();
    if p.is_null() {
        eprintln!("wecom emulator: out of memory");
        std::process::abort();
    }
    // SAFETY: `p` holds `size` bytes; `bytes` is a distinct allocation.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
        if nul {
            *p.add(bytes.len()) = 0;
        }
    }
    p.cast()
}

/// Writes `bytes` into the caller's slice. A NULL slice is where the real library writes
/// through NULL.
///
/// # Safety
///
/// `out` is NULL or points to a `Slice_t`.
unsafe fn deliver_slice(out: *mut Slice_t, bytes: &[u8]) -> Result<(), Fail> {
    // SAFETY: the caller's contract.
    let Some(out) = (unsafe { out.as_mut() }) else {
        return Err(Fail::Segv("the output Slice_t is NULL".into()));
    };
    out.buf = alloc(bytes, true);
    out.len = c_len(bytes.len());
    Ok(())
}

/// Writes a chunk into the caller's media data.
///
/// # Safety
///
/// `out` is NULL or points to a `MediaData_t`.
unsafe fn deliver_media(out: *mut MediaData_t, chunk: &Chunk) -> Result<(), Fail> {
    // SAFETY: the caller's contract.
    let Some(out) = (unsafe { out.as_mut() }) else {
        return Err(Fail::Segv("the output MediaData_t is NULL".into()));
    };
    out.outindexbuf = alloc(chunk.next_index.as_bytes(), true);
    out.out_len = c_len(chunk.next_index.len());
    out.data = alloc(&chunk.data, false);
    out.data_len = c_len(chunk.data.len());
    out.is_finish = c_int::from(chunk.is_finish);
    Ok(())
}

/// `WeWorkFinanceSdk_t* NewSdk()`: never NULL.
///
/// # Safety
///
/// None beyond the C ABI; `unsafe` for symmetry with the other exports. The first call of a
/// process reads the config and aborts on a bad one.
#[no_mangle]
pub unsafe extern "C" fn NewSdk() -> *mut WeWorkFinanceSdk_t {
    guard("NewSdk", || {
        let rt = runtime();
        let (address, sdk) = handles::create();
        let mut rec = CallRecord::new(Op::NewSdk);
        rec.handle = Some(sdk.id);
        conclude(rt, rec, Ok(()));
        address as *mut WeWorkFinanceSdk_t
    })
}

/// `int Init(WeWorkFinanceSdk_t*, const char* corpid, const char* secret)`: 10000 when any is
/// NULL or empty, else 0; credentials are checked at the first network call.
///
/// # Safety
///
/// `sdk` is NULL or from `NewSdk`; the strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn Init(
    sdk: *mut WeWorkFinanceSdk_t,
    corpid: *const c_char,
    secret: *const c_char,
) -> c_int {
    guard("Init", || {
        let rt = runtime();
        let mut rec = CallRecord::new(Op::Init);
        // SAFETY: the caller's contract.
        let (corpid, secret) = unsafe { (arg(corpid), arg(secret)) };
        rec.corpid = corpid.map(text);
        let result = handle(sdk, &mut rec).and_then(|sdk| match sdk.init(corpid, secret) {
            codes::OK => Ok(()),
            code => Err(Fail::Code(code)),
        });
        conclude(rt, rec, result)
    })
}

/// `int GetChatData(sdk, unsigned long long seq, unsigned int limit, const char* proxy,
/// const char* passwd, int timeout, Slice_t* out)`.
///
/// # Safety
///
/// `sdk` is NULL or from `NewSdk`; strings are NULL or NUL-terminated; `out` is NULL or a
/// `Slice_t` (NULL crashes on success, as in the real library).
#[no_mangle]
pub unsafe extern "C" fn GetChatData(
    sdk: *mut WeWorkFinanceSdk_t,
    seq: c_ulonglong,
    limit: c_uint,
    proxy: *const c_char,
    _passwd: *const c_char, // the proxy's credentials: never read, never logged
    timeout: c_int,
    out: *mut Slice_t,
) -> c_int {
    guard("GetChatData", || {
        let rt = runtime();
        let mut rec = CallRecord::new(Op::GetChatData);
        rec.seq = Some(seq);
        rec.limit = Some(limit);
        // SAFETY: the caller's contract.
        let proxy = unsafe { arg(proxy) }.unwrap_or_default();
        let result = handle(sdk, &mut rec)
            .and_then(|sdk| sdk.get_chat_data(rt, seq, limit, proxy, timeout, &mut rec))
            // SAFETY: the caller's contract.
            .and_then(|body| unsafe { deliver_slice(out, &body) });
        conclude(rt, rec, result)
    })
}

/// `int DecryptData(const char* encrypt_key, const char* encrypt_msg, Slice_t* out)`.
///
/// # Safety
///
/// Strings are NULL or NUL-terminated; `out` is NULL or a `Slice_t` (NULL crashes on success,
/// as in the real library).
#[no_mangle]
pub unsafe extern "C" fn DecryptData(
    encrypt_key: *const c_char,
    encrypt_msg: *const c_char,
    out: *mut Slice_t,
) -> c_int {
    guard("DecryptData", || {
        let rt = runtime();
        let mut rec = CallRecord::new(Op::DecryptData);
        // SAFETY: the caller's contract.
        let (key, msg) = unsafe { (arg(encrypt_key), arg(encrypt_msg)) };
        let result = match (key, msg) {
            (Some(key), Some(msg)) => crate::decrypt::decrypt_data(rt, key, msg, &mut rec)
                // SAFETY: the caller's contract.
                .and_then(|plaintext| unsafe { deliver_slice(out, &plaintext) }),
            _ => Err(Fail::Code(codes::BAD_PARAMETER)),
        };
        conclude(rt, rec, result)
    })
}

/// `int GetMediaData(sdk, const char* indexbuf, const char* sdkfileid, const char* proxy,
/// const char* passwd, int timeout, MediaData_t* out)`.
///
/// # Safety
///
/// `sdk` is NULL or from `NewSdk`; strings are NULL or NUL-terminated; `out` is NULL or a
/// `MediaData_t` (NULL crashes on success).
#[no_mangle]
pub unsafe extern "C" fn GetMediaData(
    sdk: *mut WeWorkFinanceSdk_t,
    indexbuf: *const c_char,
    sdkfileid: *const c_char,
    proxy: *const c_char,
    _passwd: *const c_char, // the proxy's credentials: never read, never logged
    timeout: c_int,
    out: *mut MediaData_t,
) -> c_int {
    guard("GetMediaData", || {
        let rt = runtime();
        let mut rec = CallRecord::new(Op::GetMediaData);
        // SAFETY: the caller's contract.
        let (index, fileid, proxy) = unsafe { (arg(indexbuf), arg(sdkfileid), arg(proxy)) };
        let (index, fileid) = (index.unwrap_or_default(), fileid.unwrap_or_default());
        rec.index = Some(text(index));
        rec.sdkfileid = Some(text(fileid));
        let proxy = proxy.unwrap_or_default();
        let result = handle(sdk, &mut rec)
            .and_then(|sdk| sdk.get_media_data(rt, index, fileid, proxy, timeout, &mut rec))
            // SAFETY: the caller's contract.
            .and_then(|chunk| unsafe { deliver_media(out, &chunk) });
        conclude(rt, rec, result)
    })
}

/// `void DestroySdk(WeWorkFinanceSdk_t*)`: NULL is a no-op; a second destroy crashes.
///
/// # Safety
///
/// `sdk` is NULL or from `NewSdk`.
#[no_mangle]
pub unsafe extern "C" fn DestroySdk(sdk: *mut WeWorkFinanceSdk_t) {
    guard("DestroySdk", || {
        let rt = runtime();
        let mut rec = CallRecord::new(Op::DestroySdk);
        let result = if sdk.is_null() {
            Ok(())
        } else {
            match handles::destroy(sdk as usize) {
                Some(id) => {
                    rec.handle = Some(id);
                    Ok(())
                }
                None => Err(Fail::Segv(
                    "DestroySdk of a handle destroyed already (double free)".into(),
                )),
            }
        };
        conclude(rt, rec, result);
    });
}

/// `Slice_t* NewSlice()`: `{NULL, 0}`.
///
/// # Safety
///
/// None; free the result with `FreeSlice`.
#[no_mangle]
pub unsafe extern "C" fn NewSlice() -> *mut Slice_t {
    Box::into_raw(Box::new(Slice_t {
        buf: std::ptr::null_mut(),
        len: 0,
    }))
}

/// `void FreeSlice(Slice_t*)`: frees the slice and its buffer; NULL is a no-op.
///
/// # Safety
///
/// `slice` is NULL or from `NewSlice`, not freed before; its `buf` is NULL or ours.
#[no_mangle]
pub unsafe extern "C" fn FreeSlice(slice: *mut Slice_t) {
    if slice.is_null() {
        return;
    }
    // SAFETY: the caller's contract: the slice came from Box::into_raw in NewSlice.
    let slice = unsafe { Box::from_raw(slice) };
    // SAFETY: buf is NULL or was malloc'ed by `alloc`.
    unsafe { libc::free(slice.buf.cast()) };
}

/// `char* GetContentFromSlice(Slice_t*)`: never NULL.
///
/// # Safety
///
/// `slice` is NULL or a live `Slice_t`.
#[no_mangle]
pub unsafe extern "C" fn GetContentFromSlice(slice: *mut Slice_t) -> *mut c_char {
    // SAFETY: the caller's contract.
    match unsafe { slice.as_ref() } {
        Some(s) if !s.buf.is_null() && s.len > 0 => s.buf,
        _ => empty(),
    }
}

/// `int GetSliceLen(Slice_t*)`: 0 for NULL.
///
/// # Safety
///
/// `slice` is NULL or a live `Slice_t`.
#[no_mangle]
pub unsafe extern "C" fn GetSliceLen(slice: *mut Slice_t) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { slice.as_ref() }.map_or(0, |s| s.len)
}

/// `MediaData_t* NewMediaData()`: all zeros.
///
/// # Safety
///
/// None; free the result with `FreeMediaData`.
#[no_mangle]
pub unsafe extern "C" fn NewMediaData() -> *mut MediaData_t {
    Box::into_raw(Box::new(MediaData_t {
        outindexbuf: std::ptr::null_mut(),
        out_len: 0,
        data: std::ptr::null_mut(),
        data_len: 0,
        is_finish: 0,
    }))
}

/// `void FreeMediaData(MediaData_t*)`: frees it and its buffers; NULL is a no-op.
///
/// # Safety
///
/// `media` is NULL or from `NewMediaData`, not freed before; its buffers are NULL or ours.
#[no_mangle]
pub unsafe extern "C" fn FreeMediaData(media: *mut MediaData_t) {
    if media.is_null() {
        return;
    }
    // SAFETY: the caller's contract: it came from Box::into_raw in NewMediaData.
    let media = unsafe { Box::from_raw(media) };
    // SAFETY: both buffers are NULL or were malloc'ed by `alloc`.
    unsafe {
        libc::free(media.outindexbuf.cast());
        libc::free(media.data.cast());
    }
}

/// `char* GetOutIndexBuf(MediaData_t*)`: never NULL.
///
/// # Safety
///
/// `media` is NULL or a live `MediaData_t`.
#[no_mangle]
pub unsafe extern "C" fn GetOutIndexBuf(media: *mut MediaData_t) -> *mut c_char {
    // SAFETY: the caller's contract.
    match unsafe { media.as_ref() } {
        Some(m) if !m.outindexbuf.is_null() && m.out_len > 0 => m.outindexbuf,
        _ => empty(),
    }
}

/// `char* GetData(MediaData_t*)`: never NULL.
///
/// # Safety
///
/// `media` is NULL or a live `MediaData_t`.
#[no_mangle]
pub unsafe extern "C" fn GetData(media: *mut MediaData_t) -> *mut c_char {
    // SAFETY: the caller's contract.
    match unsafe { media.as_ref() } {
        Some(m) if !m.data.is_null() && m.data_len > 0 => m.data,
        _ => empty(),
    }
}

/// `int GetIndexLen(MediaData_t*)`: 0 for NULL.
///
/// # Safety
///
/// `media` is NULL or a live `MediaData_t`.
#[no_mangle]
pub unsafe extern "C" fn GetIndexLen(media: *mut MediaData_t) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { media.as_ref() }.map_or(0, |m| m.out_len)
}

/// `int GetDataLen(MediaData_t*)`: 0 for NULL.
///
/// # Safety
///
/// `media` is NULL or a live `MediaData_t`.
#[no_mangle]
pub unsafe extern "C" fn GetDataLen(media: *mut MediaData_t) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { media.as_ref() }.map_or(0, |m| m.data_len)
}

/// `int IsMediaDataFinish(MediaData_t*)`: 1 for NULL.
///
/// # Safety
///
/// `media` is NULL or a live `MediaData_t`.
#[no_mangle]
pub unsafe extern "C" fn IsMediaDataFinish(media: *mut MediaData_t) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { media.as_ref() }.map_or(1, |m| m.is_finish)
}

#[cfg(test)]
mod tests;
