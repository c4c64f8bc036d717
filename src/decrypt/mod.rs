//! Decrypting a page of chat messages: base64, RSA with the key of the message's
//! `publickey_ver` ([`crate::keys`]), `DecryptData` ([`crate::sdk`]), then lenient JSON.
//!
//! A message that fails at any step becomes its own [`MessageError`] with seq, msgid and a
//! typed [`MessageFailure`] (shown as a code on the wire); it never fails the page, so one bad message cannot block a corp's archive. Messages
//! are independent and RSA dominates the cost, so the page is spread over all cores (rayon);
//! order is kept.

pub mod lenient_json;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rayon::prelude::*;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use crate::error_code::{ErrorInfo, ProjectCode};
use crate::keys::{KeyRing, RsaFailure};
use crate::sdk::{EncryptedMessage, ErrorClass, FinanceSdk, SdkCode, SdkError};

/// A decrypted message. `message` is the plaintext JSON, kept verbatim.
#[derive(Debug, Serialize)]
pub struct DecryptedMessage {
    pub seq: u64,
    pub msgid: String,
    pub publickey_ver: u32,
    pub message: Box<RawValue>,
}

/// A message that could not be decrypted, and why.
#[derive(Debug, Serialize)]
pub struct MessageError {
    pub seq: u64,
    pub msgid: String,
    pub publickey_ver: u32,
    #[serde(serialize_with = "wire_form")]
    pub error: MessageFailure,
}

/// Why one message could not be decrypted.
#[derive(Debug, thiserror::Error)]
pub enum MessageFailure {
    #[error("encrypt_random_key is not base64")]
    RandomKeyNotBase64,
    #[error(transparent)]
    Rsa(#[from] RsaFailure),
    /// `DecryptData` failed.
    #[error(transparent)]
    Sdk(#[from] SdkError),
    #[error("the decrypted message is not JSON: {0}")]
    NotJson(String),
}

impl MessageFailure {
    /// Whether `DecryptData` refused the message's key with 10008, which the official advice
    /// answers by fetching the page again.
    pub fn is_bad_encrypt_key(&self) -> bool {
        matches!(
            self,
            Self::Sdk(SdkError::Code {
                code: SdkCode::InvalidEncryptKey,
                ..
            })
        )
    }

    /// The wire form of the failure, inside a page result.
    pub fn info(&self) -> ErrorInfo {
        let message = self.to_string();
        let project = |code: ProjectCode, class| ErrorInfo::project(code, class, message.clone());
        match self {
            Self::RandomKeyNotBase64 => {
                project(ProjectCode::RandomKeyNotBase64, ErrorClass::Permanent)
            }
            // An operator must add the key; no retry can help before that.
            Self::Rsa(RsaFailure::NoKey(_)) => {
                project(ProjectCode::NoPrivateKey, ErrorClass::Configuration)
            }
            Self::Rsa(RsaFailure::DecryptFailed(_)) => {
                project(ProjectCode::RsaDecryptFailed, ErrorClass::Permanent)
            }
            Self::Sdk(err) => ErrorInfo::from_sdk(err, err.class(), message),
            Self::NotJson(_) => project(ProjectCode::MessageNotJson, ErrorClass::Permanent),
        }
    }
}

fn wire_form<S: Serializer>(failure: &MessageFailure, serializer: S) -> Result<S::Ok, S::Error> {
    failure.info().serialize(serializer)
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
    let fail = |error: MessageFailure| MessageError {
        seq: message.seq,
        msgid: message.msgid.clone(),
        publickey_ver: message.publickey_ver,
        error,
    };
    let ciphertext = STANDARD
        .decode(&message.encrypt_random_key)
        .map_err(|_| fail(MessageFailure::RandomKeyNotBase64))?;
    let encrypt_key = keys
        .decrypt(message.publickey_ver, &ciphertext)
        .map_err(|err| fail(err.into()))?;
    let plaintext = sdk
        .decrypt_data(&encrypt_key, message.encrypt_chat_msg.as_bytes())
        .map_err(|err| fail(err.into()))?;
    let json = lenient_json::parse(plaintext)
        .map_err(|err| fail(MessageFailure::NotJson(err.to_string())))?;
    Ok(DecryptedMessage {
        seq: message.seq,
        msgid: message.msgid.clone(),
        publickey_ver: message.publickey_ver,
        message: json,
    })
}
