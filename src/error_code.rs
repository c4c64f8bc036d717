//! The codes a failure carries, in results and on the command line.
//!
//! SDK return codes (10000-10011) and archive-server `errcode`s (301042, ...) are reported as
//! they are, so they can be looked up in Tencent's documentation. Failures that are the
//! project's own have codes in 20000-29999, listed in [`ProjectCode`]; the README's table is
//! generated from the same names. Every code has a stable snake_case `name`.

use serde::Serialize;

use crate::sdk::{ErrorClass, SdkError};

/// The project's own failure codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectCode {
    /// An input was refused before the SDK saw it (NUL byte, bad limit, crashing input, ...).
    InputRefused = 20001,
    /// The SDK answered with a body that is not the documented JSON.
    MalformedSdkResponse = 20002,
    /// No private key is configured for the message's `publickey_ver`.
    NoPrivateKey = 20101,
    /// RSA decryption of `encrypt_random_key` failed (wrong key for the version, corrupt data).
    RsaDecryptFailed = 20102,
    /// `encrypt_random_key` is not base64.
    RandomKeyNotBase64 = 20103,
    /// The decrypted message is not JSON, even read leniently.
    MessageNotJson = 20104,
    /// Writing media to the store failed (disk full, permissions).
    MediaStoreIo = 20201,
}

impl ProjectCode {
    pub fn code(self) -> i64 {
        self as i64
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::InputRefused => "input_refused",
            Self::MalformedSdkResponse => "malformed_sdk_response",
            Self::NoPrivateKey => "no_private_key",
            Self::RsaDecryptFailed => "rsa_decrypt_failed",
            Self::RandomKeyNotBase64 => "random_key_not_base64",
            Self::MessageNotJson => "message_not_json",
            Self::MediaStoreIo => "media_store_io",
        }
    }
}

/// A failure as reported to a caller: what went wrong and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorInfo {
    pub code: i64,
    pub name: &'static str,
    pub message: String,
    pub class: ErrorClass,
}

impl ErrorInfo {
    pub fn project(code: ProjectCode, class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            code: code.code(),
            name: code.name(),
            message: message.into(),
            class,
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.class == ErrorClass::Transient
    }
}

impl From<&SdkError> for ErrorInfo {
    fn from(err: &SdkError) -> Self {
        let message = err.to_string();
        let class = err.class();
        match err {
            SdkError::Code { code, .. } => Self {
                code: code.raw().into(),
                name: code.name(),
                message,
                class,
            },
            SdkError::Server { errcode, .. } => Self {
                code: *errcode,
                name: "server_errcode",
                message,
                class,
            },
            SdkError::MalformedResponse { .. } => {
                Self::project(ProjectCode::MalformedSdkResponse, class, message)
            }
            SdkError::Refused(_) => Self::project(ProjectCode::InputRefused, class, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdk::{SdkCode, SdkOp};

    #[test]
    fn sdk_codes_and_server_errcodes_pass_through_unchanged() {
        let sdk = SdkError::Code {
            op: SdkOp::GetChatData,
            code: SdkCode::Network,
        };
        let info = ErrorInfo::from(&sdk);
        assert_eq!((info.code, info.name), (10001, "sdk_network_error"));
        assert!(info.is_retryable());

        let server = SdkError::Server {
            errcode: 301052,
            errmsg: "expired".into(),
        };
        let info = ErrorInfo::from(&server);
        assert_eq!(info.code, 301052);
        assert_eq!(info.class, ErrorClass::Configuration);
    }

    #[test]
    fn project_codes_stay_in_their_range() {
        for code in [
            ProjectCode::InputRefused,
            ProjectCode::MalformedSdkResponse,
            ProjectCode::NoPrivateKey,
            ProjectCode::RsaDecryptFailed,
            ProjectCode::RandomKeyNotBase64,
            ProjectCode::MessageNotJson,
            ProjectCode::MediaStoreIo,
        ] {
            assert!((20000..30000).contains(&code.code()), "{code:?}");
        }
    }
}
