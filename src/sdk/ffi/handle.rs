//! One initialised SDK instance (`WeWorkFinanceSdk_t*`) for one (corpid, secret).
//!
//! A handle fetches and caches its own access token, so it should be kept and reused (many
//! handles mean many token calls against a rate limit), and it has no lock, so it must be used
//! by one thread at a time. Both are encoded in the type: calls take `&mut self`, and the
//! handle is `Send` but not `Sync`.

use std::ffi::{c_void, CStr, CString};
use std::ptr::NonNull;
use std::sync::Arc;

use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use super::buffers::{OwnedMediaData, OwnedSlice};
use super::library::FinanceSdk;
use super::shared_slots::ChunkBytes;
use crate::sdk::chat_page::{parse_chat_body, EncryptedMessage};
use crate::sdk::error::{check, SdkError, SdkOp};
use crate::sdk::guard;
use crate::sdk::net::NetOptions;

/// One chunk of a media file, as `GetMediaData` returned it.
#[derive(Debug)]
pub struct MediaChunk {
    /// The chunk's bytes (up to 512 KiB), in order after those of the previous chunk.
    pub data: ChunkBytes,
    /// The index to pass for the next chunk; `None` when this chunk was the last.
    pub next_index: Option<String>,
}

/// An initialised SDK instance for one (corpid, secret), destroyed on drop. It caches its own
/// access token, so keep and reuse it; it is `Send` but not `Sync`, and every call takes
/// `&mut self`.
pub struct SdkHandle {
    pub(super) raw: NonNull<c_void>,
    /// Keeps the library loaded for as long as the instance lives (`Drop` destroys it first).
    pub(super) sdk: Arc<FinanceSdk>,
}

// SAFETY: `SdkHandle` is Send: the SDK instance is a heap object with no affinity to the thread
// that created it (the official sample hands instances to worker threads), so moving the sole
// owner to another thread is sound. It is deliberately not Sync: the instance refreshes its
// token without a lock, so two threads must never call into it at once; `&mut self` on every
// call and the missing Sync impl (NonNull is !Sync) make that a compile error.
unsafe impl Send for SdkHandle {}

impl SdkHandle {
    pub(super) fn init(
        sdk: Arc<FinanceSdk>,
        corpid_c: &CStr,
        secret_c: &Zeroizing<CString>,
    ) -> Result<Self, SdkError> {
        // SAFETY: NewSdk takes nothing and never returns NULL (checked anyway).
        let raw = unsafe { (sdk.fns.NewSdk)() };
        let Some(raw) = NonNull::new(raw) else {
            return Err(SdkError::Code {
                op: SdkOp::Init,
                code: crate::sdk::error::SdkCode::System,
            });
        };
        // From here on `Drop` destroys the instance, whether or not Init succeeds.
        let handle = Self { raw, sdk };
        // SAFETY: `raw` is a live instance; both strings are NUL-terminated, non-empty and
        // outlive the call (the library copies them).
        let rc = unsafe {
            (handle.sdk.fns.Init)(handle.raw.as_ptr(), corpid_c.as_ptr(), secret_c.as_ptr())
        };
        check(SdkOp::Init, rc)?;
        Ok(handle)
    }

    /// The library this handle belongs to (for its stateless `DecryptData`).
    pub fn library(&self) -> &FinanceSdk {
        &self.sdk
    }

    /// One page of encrypted messages with `seq` greater than the one given.
    pub fn get_chat_data(
        &mut self,
        seq: u64,
        limit: u32,
        net: &NetOptions,
    ) -> Result<Vec<EncryptedMessage>, SdkError> {
        let limit = guard::limit(limit)?;
        let (proxy, password, timeout) = net_args(net)?;
        let out = OwnedSlice::new(&self.sdk.fns, SdkOp::GetChatData)?;
        // SAFETY: `raw` is live and used by this thread only (`&mut self`); the strings are
        // NUL-terminated and outlive the call; `out` is a fresh slice.
        let rc = unsafe {
            (self.sdk.fns.GetChatData)(
                self.raw.as_ptr(),
                seq,
                limit,
                proxy.as_ptr(),
                password.as_ptr(),
                timeout,
                out.as_ptr(),
            )
        };
        check(SdkOp::GetChatData, rc)?;
        parse_chat_body(&out.to_vec())
    }

    /// One chunk of the media file `sdkfileid`, starting at `index` ("" for the first chunk).
    pub fn get_media_chunk(
        &mut self,
        sdkfileid: &str,
        index: &str,
        net: &NetOptions,
    ) -> Result<MediaChunk, SdkError> {
        self.get_media_chunk_with(sdkfileid, index, net, |data, next_index| MediaChunk {
            data: data.to_vec().into(),
            next_index,
        })
    }

    /// As [`SdkHandle::get_media_chunk`], lending the chunk's bytes where the library keeps
    /// them to `use_chunk`, with the next index, instead of copying them out: an SDK host
    /// writes them to its socket from there.
    pub fn get_media_chunk_with<R>(
        &mut self,
        sdkfileid: &str,
        index: &str,
        net: &NetOptions,
        use_chunk: impl FnOnce(&[u8], Option<String>) -> R,
    ) -> Result<R, SdkError> {
        let fileid = guard::c_id("sdkfileid", sdkfileid)?;
        let index_c = guard::media_index(index)?;
        let (proxy, password, timeout) = net_args(net)?;
        let out = OwnedMediaData::new(&self.sdk.fns)?;
        // SAFETY: as in `get_chat_data`; `out` is a fresh MediaData_t.
        let rc = unsafe {
            (self.sdk.fns.GetMediaData)(
                self.raw.as_ptr(),
                index_c.as_ptr(),
                fileid.as_ptr(),
                proxy.as_ptr(),
                password.as_ptr(),
                timeout,
                out.as_ptr(),
            )
        };
        check(SdkOp::GetMediaData, rc)?;
        let next_index = if out.is_finished() {
            None
        } else {
            let next =
                String::from_utf8(out.next_index()).map_err(|_| SdkError::MalformedResponse {
                    op: SdkOp::GetMediaData,
                    reason: "the next index is not UTF-8".into(),
                })?;
            // A library that says "not finished" must say where to go on, or we would loop.
            guard::media_index(&next).map_err(|_| SdkError::MalformedResponse {
                op: SdkOp::GetMediaData,
                reason: format!("unfinished chunk with an unusable next index {next:?}"),
            })?;
            if next.is_empty() {
                return Err(SdkError::MalformedResponse {
                    op: SdkOp::GetMediaData,
                    reason: "unfinished chunk without a next index".into(),
                });
            }
            Some(next)
        };
        Ok(out.with_data(|data| use_chunk(data, next_index)))
    }
}

impl Drop for SdkHandle {
    fn drop(&mut self) {
        // SAFETY: `raw` came from NewSdk and this is the only place that destroys it, once
        // (destroying twice segfaults the real library).
        unsafe { (self.sdk.fns.DestroySdk)(self.raw.as_ptr()) }
    }
}

/// The proxy, proxy password (wiped after use) and timeout as the library takes them.
fn net_args(net: &NetOptions) -> Result<(CString, Zeroizing<CString>, i32), SdkError> {
    let proxy = guard::proxy(net.proxy.as_deref().unwrap_or(""))?;
    let password = net
        .proxy_password
        .as_ref()
        .map_or("", |p| p.expose_secret());
    let password = Zeroizing::new(guard::c_string("proxy password", password)?);
    let timeout = guard::timeout(net.timeout_secs)?;
    Ok((proxy, password, timeout))
}
