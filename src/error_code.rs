//! The codes a failure carries, in results and on the command line.
//!
//! SDK return codes (10000-10011) and archive-server `errcode`s (301042, ...) are reported as
//! they are, so they can be looked up in Tencent's documentation. Failures that are the
//! project's own have codes in 20000-29999, listed in [`ProjectCode`]; `docs/troubleshooting.md`
//! has a row for each, with what it means and what to do (a test checks that every code and its
//! name are there). Every code has a stable snake_case `name`.

use serde::Serialize;

use crate::sdk::{ErrorClass, SdkError};

/// The project's own failure codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectCode {
    /// An input was refused before the SDK saw it (NUL byte, bad limit, crashing input, ...).
    InputRefused = 20001,
    /// The SDK answered with a body that is not the documented JSON.
    MalformedSdkResponse = 20002,
    /// The SDK host process died (a signal, an abort) or hung during the call.
    SdkCrashed = 20003,
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
    /// The job is not valid JSON, or not valid against its schema.
    InvalidJob = 20301,
    /// The job names a corp alias the worker does not know.
    UnknownCorp = 20302,
    /// The job carries inline credentials and this worker refuses them.
    InlineCredentialsRefused = 20303,
    /// An inline private key is unusable (not PEM, wrong size, corrupt).
    InvalidPrivateKey = 20304,
    /// The job reached the broker's delivery limit unsettled: each delivery ended with its
    /// worker dying (an SDK abort) or losing the broker. It is not run again.
    DeliveryLimitReached = 20305,
    /// The job carries an attempt or progress header that no worker of this deployment signed
    /// for it.
    UntrustedHeader = 20306,
    /// The message is not valid AMQP though the broker took it (a property or header name that
    /// is not UTF-8, headers nested too deep).
    MalformedMessage = 20307,
    /// The HTTP gateway stopped waiting for the job's result; the job may still finish.
    JobTimedOut = 20401,
    /// The file is larger than the seed service's media endpoint answers here; `/v1/media`
    /// streams it.
    MediaTooLarge = 20402,
    /// The HTTP request lacks the gateway's bearer token.
    Unauthorized = 20403,
    /// The HTTP gateway cannot run the job now: it is stopping, or has no broker connection.
    GatewayUnavailable = 20404,
}

impl ProjectCode {
    /// Every code, in order.
    pub const ALL: [Self; 19] = [
        Self::InputRefused,
        Self::MalformedSdkResponse,
        Self::SdkCrashed,
        Self::NoPrivateKey,
        Self::RsaDecryptFailed,
        Self::RandomKeyNotBase64,
        Self::MessageNotJson,
        Self::MediaStoreIo,
        Self::InvalidJob,
        Self::UnknownCorp,
        Self::InlineCredentialsRefused,
        Self::InvalidPrivateKey,
        Self::DeliveryLimitReached,
        Self::UntrustedHeader,
        Self::MalformedMessage,
        Self::JobTimedOut,
        Self::MediaTooLarge,
        Self::Unauthorized,
        Self::GatewayUnavailable,
    ];

    /// The number on the wire, in 20000-29999.
    pub fn code(self) -> i64 {
        self as i64
    }

    /// The code's stable snake_case name on the wire (`invalid_job`, `unknown_corp`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::InputRefused => "input_refused",
            Self::MalformedSdkResponse => "malformed_sdk_response",
            Self::SdkCrashed => "sdk_crashed",
            Self::NoPrivateKey => "no_private_key",
            Self::RsaDecryptFailed => "rsa_decrypt_failed",
            Self::RandomKeyNotBase64 => "random_key_not_base64",
            Self::MessageNotJson => "message_not_json",
            Self::MediaStoreIo => "media_store_io",
            Self::InvalidJob => "invalid_job",
            Self::UnknownCorp => "unknown_corp",
            Self::InlineCredentialsRefused => "inline_credentials_refused",
            Self::InvalidPrivateKey => "invalid_private_key",
            Self::DeliveryLimitReached => "delivery_limit_reached",
            Self::UntrustedHeader => "untrusted_header",
            Self::MalformedMessage => "malformed_amqp_message",
            Self::JobTimedOut => "job_timed_out",
            Self::MediaTooLarge => "media_too_large",
            Self::Unauthorized => "unauthorized",
            Self::GatewayUnavailable => "gateway_unavailable",
        }
    }
}

/// A failure as reported to a caller: what went wrong and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorInfo {
    /// An SDK return code (10000-10011), an archive-server `errcode`, or a [`ProjectCode`].
    pub code: i64,
    /// The code's stable snake_case name (`sdk_network_error`, `server_errcode`, ...).
    pub name: &'static str,
    /// What happened, for people; never holds a secret.
    pub message: String,
    /// What can happen next: `transient`, `permanent` or `configuration`.
    pub class: ErrorClass,
    /// Whether trying again can help (the class is `transient`).
    pub retryable: bool,
}

impl ErrorInfo {
    /// A failure that is the project's own, under `code`.
    pub fn project(code: ProjectCode, class: ErrorClass, message: impl Into<String>) -> Self {
        Self::new(code.code(), code.name(), class, message.into())
    }

    /// An SDK error's code and name: the library's return code or the server's `errcode` as
    /// they are, or the project's code for what the binding itself refused or could not read.
    pub fn from_sdk(err: &SdkError, class: ErrorClass, message: String) -> Self {
        match err {
            SdkError::Code { code, .. } => {
                Self::new(code.raw().into(), code.name(), class, message)
            }
            SdkError::Server { errcode, .. } => {
                Self::new(*errcode, "server_errcode", class, message)
            }
            SdkError::MalformedResponse { .. } => {
                Self::project(ProjectCode::MalformedSdkResponse, class, message)
            }
            SdkError::Refused(_) => Self::project(ProjectCode::InputRefused, class, message),
            SdkError::Host { .. } => Self::project(ProjectCode::SdkCrashed, class, message),
        }
    }

    fn new(code: i64, name: &'static str, class: ErrorClass, message: String) -> Self {
        Self {
            code,
            name,
            message,
            class,
            retryable: class == ErrorClass::Transient,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_project_code_has_its_row_in_the_troubleshooting_page() {
        let page = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/troubleshooting.md");
        let page = std::fs::read_to_string(page).unwrap();
        for code in ProjectCode::ALL {
            let row = format!("| {} | `{}` |", code.code(), code.name());
            assert!(page.contains(&row), "docs/troubleshooting.md lacks {row}");
        }
        let mut numbers: Vec<i64> = ProjectCode::ALL.iter().map(|c| c.code()).collect();
        numbers.dedup();
        assert_eq!(
            numbers.len(),
            ProjectCode::ALL.len(),
            "ALL lists a code twice"
        );
    }
    use crate::sdk::{SdkCode, SdkOp};

    #[test]
    fn sdk_codes_and_server_errcodes_pass_through_unchanged() {
        let sdk = SdkError::Code {
            op: SdkOp::GetChatData,
            code: SdkCode::Network,
        };
        let info = ErrorInfo::from_sdk(&sdk, sdk.class(), sdk.to_string());
        assert_eq!((info.code, info.name), (10001, "sdk_network_error"));
        assert!(info.retryable);

        let server = SdkError::Server {
            errcode: 301052,
            errmsg: "expired".into(),
        };
        let info = ErrorInfo::from_sdk(&server, server.class(), server.to_string());
        assert_eq!(info.code, 301052);
        assert_eq!(info.class, ErrorClass::Configuration);
    }

    #[test]
    fn project_codes_stay_in_their_range() {
        for code in [
            ProjectCode::InputRefused,
            ProjectCode::MalformedSdkResponse,
            ProjectCode::SdkCrashed,
            ProjectCode::NoPrivateKey,
            ProjectCode::RsaDecryptFailed,
            ProjectCode::RandomKeyNotBase64,
            ProjectCode::MessageNotJson,
            ProjectCode::MediaStoreIo,
            ProjectCode::InvalidJob,
            ProjectCode::UnknownCorp,
            ProjectCode::InlineCredentialsRefused,
            ProjectCode::InvalidPrivateKey,
            ProjectCode::DeliveryLimitReached,
            ProjectCode::UntrustedHeader,
            ProjectCode::MalformedMessage,
            ProjectCode::JobTimedOut,
            ProjectCode::MediaTooLarge,
            ProjectCode::Unauthorized,
            ProjectCode::GatewayUnavailable,
        ] {
            assert!((20000..30000).contains(&code.code()), "{code:?}");
        }
    }
}
