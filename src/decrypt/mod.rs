//! Decrypting a page of chat messages: base64, RSA with the key of the message's
//! `publickey_ver` ([`crate::keys`]), `DecryptData` ([`crate::sdk`]), then lenient JSON.
//!
//! A message that fails at any step becomes its own [`MessageError`] with seq, msgid and a
//! typed [`MessageFailure`] (shown as a code on the wire); it never fails the page, so one bad
//! message cannot block a corp's archive. Messages are independent and RSA dominates the cost,
//! so the page is spread over all cores (rayon); order is kept.

pub mod lenient_json;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rayon::prelude::*;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use crate::error_code::{ErrorInfo, ProjectCode};
use crate::keys::{KeyRing, RsaFailure};
use crate::sdk::{EncryptedMessage, ErrorClass, FinanceSdk, SdkCode, SdkError};
use zeroize::Zeroizing;

/// A decrypted message. `message` is the plaintext JSON, kept verbatim.
#[derive(Debug, Serialize)]
pub struct DecryptedMessage {
    /// The message's place in the corp's archive.
    pub seq: u64,
    /// WeCom's id of the message.
    pub msgid: String,
    /// The version of the corp's public key the message's random key was encrypted with.
    pub publickey_ver: u32,
    /// The decrypted JSON (`msgtype`, `from`, `tolist`, ...): its shape is WeCom's.
    pub message: Box<RawValue>,
    /// The message as the archive gave it, when the job asked for it (`include_encrypted`).
    #[serde(flatten)]
    pub encrypted: Option<Box<Ciphertext>>,
}

/// A message's `encrypt_random_key` and `encrypt_chat_msg`, as `GetChatData` returned them:
/// what the seed service's answers carried beside the decrypted message.
#[derive(Debug, Clone, Serialize)]
pub struct Ciphertext {
    /// The message's random key, RSA-encrypted for its `publickey_ver`, base64.
    pub encrypt_random_key: String,
    /// The message, encrypted with its random key by the archive; `DecryptData` opens it.
    pub encrypt_chat_msg: String,
}

impl From<EncryptedMessage> for Ciphertext {
    fn from(message: EncryptedMessage) -> Self {
        Self {
            encrypt_random_key: message.encrypt_random_key,
            encrypt_chat_msg: message.encrypt_chat_msg,
        }
    }
}

/// A message that could not be decrypted, and why.
#[derive(Debug, Serialize)]
pub struct MessageError {
    /// The message's place in the corp's archive.
    pub seq: u64,
    /// WeCom's id of the message.
    pub msgid: String,
    /// The version of the corp's public key the message's random key was encrypted with.
    pub publickey_ver: u32,
    /// Why; on the wire, its [`ErrorInfo`].
    #[serde(serialize_with = "wire_form")]
    pub error: MessageFailure,
    /// The message as the archive gave it, when the job asked for it (`include_encrypted`).
    #[serde(flatten)]
    pub encrypted: Option<Box<Ciphertext>>,
}

/// Why one message could not be decrypted.
#[derive(Debug, thiserror::Error)]
pub enum MessageFailure {
    /// The message's `encrypt_random_key` is not base64.
    #[error("encrypt_random_key is not base64")]
    RandomKeyNotBase64,
    /// No private key for the message's `publickey_ver`, or RSA decryption with it failed.
    #[error(transparent)]
    Rsa(#[from] RsaFailure),
    /// `DecryptData` failed.
    #[error(transparent)]
    Sdk(#[from] SdkError),
    /// The decrypted message is not JSON, even read leniently; holds the parser's complaint.
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

/// A page decrypted: each of its messages in one of the two lists, both in the page's order.
#[derive(Debug, Default, Serialize)]
pub struct DecryptedPage {
    /// The messages that decrypted.
    pub messages: Vec<DecryptedMessage>,
    /// The messages that did not, each with why.
    pub errors: Vec<MessageError>,
}

impl DecryptedPage {
    /// Gives every message and error of the page its ciphertext, moved out of `page`, the page
    /// it was decrypted from. Both lists keep the page's order, so one walk pairs them.
    pub fn attach_ciphertext(&mut self, page: Vec<EncryptedMessage>) {
        let mut messages = self.messages.iter_mut().peekable();
        let mut errors = self.errors.iter_mut().peekable();
        for source in page {
            let is = |seq: u64, msgid: &str| seq == source.seq && msgid == source.msgid;
            if let Some(message) = messages.next_if(|m| is(m.seq, &m.msgid)) {
                message.encrypted = Some(Box::new(source.into()));
            } else if let Some(error) = errors.next_if(|e| is(e.seq, &e.msgid)) {
                error.encrypted = Some(Box::new(source.into()));
            }
        }
    }
}

/// Decrypts every message of a page with the library in this process, in parallel, keeping
/// their order.
pub fn decrypt_page(sdk: &FinanceSdk, keys: &KeyRing, page: &[EncryptedMessage]) -> DecryptedPage {
    let in_process = |items: &[(Zeroizing<Vec<u8>>, &str)]| {
        Ok(items
            .par_iter()
            .map(|(key, message)| sdk.decrypt_data(key, message.as_bytes()))
            .collect())
    };
    decrypt_page_with(keys, page, in_process).expect("the library in process answers every message")
}

/// The (decrypted random key, `encrypt_chat_msg`) of each message whose RSA step passed, to be
/// answered by `DecryptData`, one result per item; or an error of the whole batch.
pub type DecryptBatch<'a> = &'a [(Zeroizing<Vec<u8>>, &'a str)];

/// Decrypts every message of a page: RSA here, in parallel; `DecryptData` by `decrypt_data`, in
/// one batch (the library in this process, or in an SDK host); then the JSON, in parallel. The
/// page fails only when the batch as a whole does (its SDK host died).
pub fn decrypt_page_with(
    keys: &KeyRing,
    page: &[EncryptedMessage],
    decrypt_data: impl FnOnce(DecryptBatch<'_>) -> Result<Vec<Result<Vec<u8>, SdkError>>, SdkError>,
) -> Result<DecryptedPage, SdkError> {
    let unsealed: Vec<Result<Zeroizing<Vec<u8>>, MessageFailure>> = page
        .par_iter()
        .map(|message| unseal(keys, message))
        .collect();
    // The keys move into the batch; each message keeps its failure, or its place in the batch.
    let mut items = Vec::with_capacity(page.len());
    let mut failures = Vec::with_capacity(page.len());
    for (key, message) in unsealed.into_iter().zip(page) {
        match key {
            Ok(key) => {
                items.push((key, message.encrypt_chat_msg.as_str()));
                failures.push(None);
            }
            Err(failure) => failures.push(Some(failure)),
        }
    }
    let mut answers = decrypt_data(&items)?.into_iter();
    let plaintexts: Vec<Result<Vec<u8>, MessageFailure>> = failures
        .into_iter()
        .map(|failure| match failure {
            Some(failure) => Err(failure),
            None => answers
                .next()
                .unwrap_or_else(|| Err(missing_answer()))
                .map_err(MessageFailure::from),
        })
        .collect();
    let outcomes: Vec<Result<DecryptedMessage, MessageError>> = plaintexts
        .into_par_iter()
        .zip(page)
        .map(|(plaintext, message)| {
            plaintext
                .and_then(|plaintext| finish(message, plaintext))
                .map_err(|error| failed(message, error))
        })
        .collect();
    let mut decrypted = DecryptedPage::default();
    for outcome in outcomes {
        match outcome {
            Ok(message) => decrypted.messages.push(message),
            Err(error) => decrypted.errors.push(error),
        }
    }
    Ok(decrypted)
}

fn missing_answer() -> SdkError {
    SdkError::MalformedResponse {
        op: crate::sdk::SdkOp::DecryptData,
        reason: "no answer for this message".into(),
    }
}

/// Decrypts one message with the library in this process.
pub fn decrypt_message(
    sdk: &FinanceSdk,
    keys: &KeyRing,
    message: &EncryptedMessage,
) -> Result<DecryptedMessage, MessageError> {
    unseal(keys, message)
        .and_then(|key| {
            sdk.decrypt_data(&key, message.encrypt_chat_msg.as_bytes())
                .map_err(MessageFailure::from)
        })
        .and_then(|plaintext| finish(message, plaintext))
        .map_err(|error| failed(message, error))
}

fn failed(message: &EncryptedMessage, error: MessageFailure) -> MessageError {
    MessageError {
        seq: message.seq,
        msgid: message.msgid.clone(),
        publickey_ver: message.publickey_ver,
        error,
        encrypted: None,
    }
}

/// The message's `encrypt_key`: its random key, base64-decoded and RSA-decrypted.
fn unseal(
    keys: &KeyRing,
    message: &EncryptedMessage,
) -> Result<Zeroizing<Vec<u8>>, MessageFailure> {
    let ciphertext = STANDARD
        .decode(&message.encrypt_random_key)
        .map_err(|_| MessageFailure::RandomKeyNotBase64)?;
    Ok(keys.decrypt(message.publickey_ver, &ciphertext)?)
}

/// The decrypted message from `DecryptData`'s plaintext.
fn finish(
    message: &EncryptedMessage,
    plaintext: Vec<u8>,
) -> Result<DecryptedMessage, MessageFailure> {
    let json =
        lenient_json::parse(plaintext).map_err(|err| MessageFailure::NotJson(err.to_string()))?;
    Ok(DecryptedMessage {
        seq: message.seq,
        msgid: message.msgid.clone(),
        publickey_ver: message.publickey_ver,
        message: json,
        encrypted: None,
    })
}
