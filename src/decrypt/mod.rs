//! Decrypting a page of chat messages: base64, RSA with the key of the message's
//! `publickey_ver` ([`crate::keys`]), `DecryptData` ([`crate::sdk`]), then lenient JSON.
//!
//! A message that fails at any step becomes its own [`MessageError`] with seq, msgid and a
//! code; it never fails the page, so one bad message cannot block a corp's archive. Messages
//! are independent and RSA dominates the cost, so the page is spread over all cores (rayon);
//! order is kept.

pub mod lenient_json;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::error_code::{ErrorInfo, ProjectCode};
use crate::keys::{KeyRing, RsaFailure};
use crate::sdk::{EncryptedMessage, ErrorClass, FinanceSdk};

/// A decrypted message. `message` is the plaintext JSON, kept verbatim.
#[derive(Debug, Serialize)]
pub struct DecryptedMessage {
    pub seq: u64,
    pub msgid: String,
    pub publickey_ver: u32,
    pub message: Box<RawValue>,
}

/// A message that could not be decrypted, and why.
#[derive(Debug, Clone, Serialize)]
pub struct MessageError {
    pub seq: u64,
    pub msgid: String,
    pub publickey_ver: u32,
    pub error: ErrorInfo,
}

#[derive(Debug, Default, Serialize)]
pub struct DecryptedPage {
    pub messages: Vec<DecryptedMessage>,
    pub errors: Vec<MessageError>,
}

/// Decrypts every message of a page, in parallel, keeping their order.
pub fn decrypt_page(sdk: &FinanceSdk, keys: &KeyRing, page: &[EncryptedMessage]) -> DecryptedPage {
    let outcomes: Vec<Result<DecryptedMessage, MessageError>> = page
        .par_iter()
        .map(|message| decrypt_message(sdk, keys, message))
        .collect();
    let mut decrypted = DecryptedPage::default();
    for outcome in outcomes {
        match outcome {
            Ok(message) => decrypted.messages.push(message),
            Err(error) => decrypted.errors.push(error),
        }
    }
    decrypted
}

/// Decrypts one message.
pub fn decrypt_message(
    sdk: &FinanceSdk,
    keys: &KeyRing,
    message: &EncryptedMessage,
) -> Result<DecryptedMessage, MessageError> {
    let fail = |error: ErrorInfo| MessageError {
        seq: message.seq,
        msgid: message.msgid.clone(),
        publickey_ver: message.publickey_ver,
        error,
    };
    let ciphertext = STANDARD.decode(&message.encrypt_random_key).map_err(|_| {
        fail(ErrorInfo::project(
            ProjectCode::RandomKeyNotBase64,
            ErrorClass::Permanent,
            "encrypt_random_key is not base64",
        ))
    })?;
    let encrypt_key = keys
        .decrypt(message.publickey_ver, &ciphertext)
        .map_err(|err| fail(rsa_failure(err)))?;
    let plaintext = sdk
        .decrypt_data(&encrypt_key, message.encrypt_chat_msg.as_bytes())
        .map_err(|err| fail(ErrorInfo::from(&err)))?;
    let json = lenient_json::parse(plaintext).map_err(|err| {
        fail(ErrorInfo::project(
            ProjectCode::MessageNotJson,
            ErrorClass::Permanent,
            format!("the decrypted message is not JSON: {err}"),
        ))
    })?;
    Ok(DecryptedMessage {
        seq: message.seq,
        msgid: message.msgid.clone(),
        publickey_ver: message.publickey_ver,
        message: json,
    })
}

fn rsa_failure(err: RsaFailure) -> ErrorInfo {
    let (code, class) = match err {
        // An operator must add the key; no retry can help before that.
        RsaFailure::NoKey(_) => (ProjectCode::NoPrivateKey, ErrorClass::Configuration),
        RsaFailure::DecryptFailed(_) => (ProjectCode::RsaDecryptFailed, ErrorClass::Permanent),
    };
    ErrorInfo::project(code, class, err.to_string())
}
