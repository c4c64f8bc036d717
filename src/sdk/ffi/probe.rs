//! Unguarded calls, for conformance checks: the library's own return code for parameters the
//! guards would refuse.
//!
//! The binding refuses empty ids, a bad `limit` and a malformed media index before the library
//! sees them; a conformance test still has to show that the library answers them the way
//! `docs/SDK.md` says (sections 3 and 5: 10000). Only parameters that the notes show to be
//! answered with a code, never with a crash, can be passed here: strings (without NUL, which C
//! cannot carry) and numbers.
//! The inputs that abort the library stay behind [`crate::sdk::guard`].

use std::ffi::CString;
use std::sync::Arc;

use super::buffers::{OwnedMediaData, OwnedSlice};
use super::handle::SdkHandle;
use super::library::FinanceSdk;
use crate::sdk::error::{SdkError, SdkOp};
use crate::sdk::guard::{self, Refused};

impl FinanceSdk {
    /// `NewSdk` + `Init(corpid, secret)` + `DestroySdk`: Init's return code.
    pub fn probe_init(self: &Arc<Self>, corpid: &str, secret: &str) -> Result<i32, Refused> {
        let corpid = guard::c_string("corpid", corpid)?;
        let secret = guard::c_string("secret", secret)?;
        match SdkHandle::init(Arc::clone(self), &corpid, &secret.into()) {
            Ok(_handle) => Ok(0),
            Err(SdkError::Code { code, .. }) => Ok(code.raw()),
            Err(other) => unreachable!("Init reports codes only: {other}"),
        }
    }
}

impl SdkHandle {
    /// `GetChatData(seq, limit)` without proxy, with `timeout` seconds: its return code.
    pub fn probe_chat_data(&mut self, seq: u64, limit: u32, timeout: i32) -> Result<i32, SdkError> {
        let empty = CString::default();
        let out = OwnedSlice::new(&self.sdk.fns, SdkOp::GetChatData)?;
        // SAFETY: `raw` is live and ours; empty strings are valid C strings; `out` is fresh.
        // Any limit is answered with a code (10000 outside 1..=1000), per section 3.
        Ok(unsafe {
            (self.sdk.fns.GetChatData)(
                self.raw.as_ptr(),
                seq,
                limit,
                empty.as_ptr(),
                empty.as_ptr(),
                timeout,
                out.as_ptr(),
            )
        })
    }

    /// `GetMediaData(index, sdkfileid)` without proxy: its return code.
    pub fn probe_media_data(
        &mut self,
        index: &str,
        sdkfileid: &str,
        timeout: i32,
    ) -> Result<i32, SdkError> {
        let index = guard::c_string("media index", index)?;
        let sdkfileid = guard::c_string("sdkfileid", sdkfileid)?;
        let empty = CString::default();
        let out = OwnedMediaData::new(&self.sdk.fns)?;
        // SAFETY: as above; any index string and any sdkfileid are answered with a code
        // (10000 for empty or malformed ones, then 10001/10005), per section 5.
        Ok(unsafe {
            (self.sdk.fns.GetMediaData)(
                self.raw.as_ptr(),
                index.as_ptr(),
                sdkfileid.as_ptr(),
                empty.as_ptr(),
                empty.as_ptr(),
                timeout,
                out.as_ptr(),
            )
        })
    }
}
