//! `DecryptData`: `wecom_sdk_format::decrypt_data` plus the faults of the corp whose tag opens
//! the message (see [`crate::corp::corp_tag`]); messages of no known corp get no faults.
//! NULL arguments and the NULL output slice are [`crate::ffi`]'s concern.

use wecom_sdk_format::{Crash, Failure};

use crate::call_log::CallRecord;
use crate::faults::{Fault, FaultOp};
use crate::outcome::Fail;
use crate::runtime::Runtime;

/// The plaintext, or the code or crash of the real library, or an injected fault (which replaces
/// a successful decryption only: faults come after the checks).
pub(crate) fn decrypt_data(
    rt: &Runtime,
    encrypt_key: &[u8],
    encrypt_msg: &[u8],
    rec: &mut CallRecord,
) -> Result<Vec<u8>, Fail> {
    let corp = rt.corp_by_tag(encrypt_msg);
    rec.corpid = corp.map(|c| c.config.corpid.clone());
    let plaintext = wecom_sdk_format::decrypt_data(encrypt_key, encrypt_msg).map_err(
        |failure| match failure {
            Failure::Code(code) => Fail::Code(code),
            Failure::Crash(crash) => Fail::Abort(abort_message(crash)),
        },
    )?;
    match corp.and_then(|c| c.fault(FaultOp::Decrypt, None)) {
        Some(Fault::Code(code)) => {
            rec.fault = true;
            Err(Fail::Code(code as i32))
        }
        Some(Fault::Abort | Fault::Segfault) => {
            unreachable!("validation keeps crashes to get_media_data")
        }
        None => Ok(plaintext),
    }
}

/// What the real library's abort looks like, and why.
fn abort_message(crash: Crash) -> String {
    let exception = match crash {
        Crash::MessageTooShort | Crash::SplitBeyondText => "std::out_of_range",
        Crash::KeyAllPadding | Crash::BodyAllPadding => "std::length_error",
    };
    format!("terminate called after throwing an instance of '{exception}' ({crash})")
}
