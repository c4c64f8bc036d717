//! The SDK handle (`WeWorkFinanceSdk_t`) and the calls made on it: `Init`, `GetChatData`,
//! `GetMediaData`, each checking its inputs in the order the real library does
//! (`docs/SDK.md` sections 2, 3 and 5). [`crate::ffi`] turns C arguments into these calls and
//! their results back into C; bodies and chunks come from [`crate::chat`] and [`crate::media`].
//!
//! Like the real one, a handle stores the credentials at `Init` without checking them and
//! fetches its access token at its first network call (an unknown corpid or a wrong secret then
//! gives 10001, and a line on stdout, as the real library prints there on token failures).

use std::sync::Mutex;

use wecom_sdk_format::codes;
use wecom_sdk_format::media_index::{first_range, format_index, parse_index};

use crate::call_log::{CallRecord, Op};
use crate::chat;
use crate::corp::Corp;
use crate::faults::{Fault, FaultOp};
use crate::file_id::FileId;
use crate::media::{chunk_data, plan_chunk, MediaContent};
use crate::network::reach_proxy;
use crate::outcome::Fail;
use crate::runtime::Runtime;

/// One SDK handle.
#[derive(Debug)]
pub(crate) struct Sdk {
    /// Numbered from 1 in creation order, for the call log.
    pub id: u64,
    session: Mutex<Session>,
}

#[derive(Debug, Default)]
struct Session {
    corpid: Vec<u8>,
    secret: Vec<u8>,
    has_token: bool,
}

/// One chunk of a media file, as `GetMediaData` hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chunk {
    pub data: Vec<u8>,
    /// `outindexbuf`: empty when finished.
    pub next_index: String,
    pub is_finish: bool,
}

impl Sdk {
    pub(crate) fn new(id: u64) -> Sdk {
        Sdk {
            id,
            session: Mutex::new(Session::default()),
        }
    }

    /// `Init`: 10000 for a missing or empty corpid or secret, else stores them.
    pub(crate) fn init(&self, corpid: Option<&[u8]>, secret: Option<&[u8]>) -> i32 {
        match (corpid, secret) {
            (Some(corpid), Some(secret)) if !corpid.is_empty() && !secret.is_empty() => {
                *self.lock() = Session {
                    corpid: corpid.to_vec(),
                    secret: secret.to_vec(),
                    has_token: false,
                };
                codes::OK
            }
            _ => codes::BAD_PARAMETER,
        }
    }

    /// `GetChatData` after the NULL-handle check: the body for the output slice.
    pub(crate) fn get_chat_data(
        &self,
        rt: &Runtime,
        seq: u64,
        limit: u32,
        proxy: &[u8],
        timeout: i32,
        rec: &mut CallRecord,
    ) -> Result<Vec<u8>, Fail> {
        if !(1..=1000).contains(&limit) {
            return Err(Fail::Code(codes::BAD_PARAMETER));
        }
        let corp = self.connect(rt, proxy, timeout, rec)?;
        match corp.fault(FaultOp::Chat, None) {
            Some(Fault::Code(code)) if codes::is_sdk_code(code) => {
                rec.fault = true;
                return Err(Fail::Code(code as i32));
            }
            Some(Fault::Code(errcode)) => {
                rec.fault = true;
                return Ok(chat::error_body(errcode));
            }
            Some(Fault::Abort | Fault::Segfault) => {
                unreachable!("validation keeps crashes to get_media_data")
            }
            None => {}
        }
        if !corp.config.whitelisted {
            return Ok(chat::error_body(codes::SERVER_WHITEIP_NOT_MATCH));
        }
        let (body, count) = chat::chat_body(corp, seq, limit);
        rec.count = Some(count);
        Ok(body)
    }

    /// `GetMediaData` after the NULL-handle check.
    pub(crate) fn get_media_data(
        &self,
        rt: &Runtime,
        index: &[u8],
        sdkfileid: &[u8],
        proxy: &[u8],
        timeout: i32,
        rec: &mut CallRecord,
    ) -> Result<Chunk, Fail> {
        if sdkfileid.is_empty() {
            return Err(Fail::Code(codes::BAD_PARAMETER));
        }
        let range = std::str::from_utf8(index)
            .ok()
            .and_then(|index| parse_index(index).ok())
            .ok_or(Fail::Code(codes::BAD_PARAMETER))?
            .unwrap_or_else(first_range);
        let corp = self.connect(rt, proxy, timeout, rec)?;
        let id_text = String::from_utf8_lossy(sdkfileid);
        match corp.fault(FaultOp::Media, Some(&id_text)) {
            Some(Fault::Code(code)) => {
                rec.fault = true;
                return Err(Fail::Code(code as i32));
            }
            Some(Fault::Abort) => {
                rec.fault = true;
                return Err(Fail::Abort(format!("abort_on_sdkfileid {id_text}")));
            }
            Some(Fault::Segfault) => {
                rec.fault = true;
                return Err(Fail::Segv(format!("segfault_on_sdkfileid {id_text}")));
            }
            None => {}
        }
        let file =
            FileId::parse(sdkfileid).map_err(|_| Fail::Code(codes::BAD_FILEID_OR_KEY_INFO))?;
        if !corp.config.whitelisted {
            return Err(Fail::Code(codes::IP_NOT_WHITELISTED));
        }
        if file.seq < corp.config.media_expired_before_seq {
            return Err(Fail::Code(codes::DATA_EXPIRED));
        }
        let plan = plan_chunk(file.size, range).ok_or(Fail::Code(codes::DATA_PARSE_ERROR))?;
        let mut content = MediaContent::new(corp.config.seed, &id_text, file.size);
        let chunk = Chunk {
            data: chunk_data(&mut content, &plan),
            next_index: plan.next.map(format_index).unwrap_or_default(),
            is_finish: plan.next.is_none(),
        };
        rec.data_len = Some(chunk.data.len() as u64);
        rec.is_finish = Some(chunk.is_finish);
        Ok(chunk)
    }

    /// The network part every server call starts with: the proxy, then the access token.
    fn connect<'r>(
        &self,
        rt: &'r Runtime,
        proxy: &[u8],
        timeout: i32,
        rec: &mut CallRecord,
    ) -> Result<&'r Corp, Fail> {
        let mut session = self.lock();
        rec.corpid = Some(String::from_utf8_lossy(&session.corpid).into_owned());
        reach_proxy(proxy, timeout).map_err(|()| Fail::Code(codes::NETWORK_ERROR))?;
        let corp = rt
            .corp(&session.corpid)
            .filter(|corp| corp.config.secret.as_bytes() == session.secret);
        let Some(corp) = corp else {
            println!(
                "wecom emulator: get access token failed for corpid {:?} (unknown corpid or wrong secret)",
                String::from_utf8_lossy(&session.corpid)
            );
            return Err(Fail::Code(codes::NETWORK_ERROR));
        };
        if !session.has_token {
            session.has_token = true;
            let mut token = CallRecord::new(Op::GetToken);
            token.handle = Some(self.id);
            token.corpid = rec.corpid.clone();
            token.rc = 0;
            rt.log(&token);
        }
        Ok(corp)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Session> {
        // A panic while holding the lock aborts the process (see ffi), so poison never matters.
        self.session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests;
