//! The one error type of the SDK layer, and `check`, which turns a C return code into it.
//!
//! Three kinds of failure are kept apart because callers act on them differently:
//! a return code from the library ([`SdkCode`], raw value kept for codes we do not know),
//! an `errcode` inside an otherwise successful `GetChatData` body (a server-side refusal such
//! as 301042, "IP not whitelisted"), and an input the binding refused before calling the
//! library ([`Refused`]). [`SdkError::class`] says what should happen to the job next, following
//! section 7 of `docs/SDK.md`; the retry policy (a later layer) builds on it.

use std::fmt;

use super::guard::Refused;

/// A return code of the Finance SDK. Known codes are named; any other keeps its raw value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SdkCode {
    /// 10000: bad parameter (empty ids, limit, index).
    InvalidParameter,
    /// 10001: network error or token failure (a wrong secret looks the same).
    Network,
    /// 10002: data parse failure, or a media server error.
    DataParse,
    /// 10003: system failure, or empty media content.
    System,
    /// 10004: obsolete.
    Obsolete10004,
    /// 10005: bad sdkfileid or bad key info.
    InvalidFileId,
    /// 10006: decryption failed (wrong key version or corrupt data).
    DecryptFailed,
    /// 10007: obsolete (no private key for the version).
    Obsolete10007,
    /// 10008: bad encrypt_key.
    InvalidEncryptKey,
    /// 10009: the caller's IP is not on the archive whitelist.
    IpNotWhitelisted,
    /// 10010: the data has expired.
    DataExpired,
    /// 10011: TLS certificate error.
    TlsCertificate,
    /// A code the documentation does not list.
    Unknown(i32),
}

impl SdkCode {
    /// The code for a raw return value; values outside 10000..=10011 become
    /// [`SdkCode::Unknown`]. 0 (success) is not a code: see [`check`].
    pub fn from_raw(rc: i32) -> Self {
        match rc {
            10000 => Self::InvalidParameter,
            10001 => Self::Network,
            10002 => Self::DataParse,
            10003 => Self::System,
            10004 => Self::Obsolete10004,
            10005 => Self::InvalidFileId,
            10006 => Self::DecryptFailed,
            10007 => Self::Obsolete10007,
            10008 => Self::InvalidEncryptKey,
            10009 => Self::IpNotWhitelisted,
            10010 => Self::DataExpired,
            10011 => Self::TlsCertificate,
            other => Self::Unknown(other),
        }
    }

    /// The numeric value the library returned; the inverse of [`SdkCode::from_raw`].
    pub fn raw(self) -> i32 {
        match self {
            Self::InvalidParameter => 10000,
            Self::Network => 10001,
            Self::DataParse => 10002,
            Self::System => 10003,
            Self::Obsolete10004 => 10004,
            Self::InvalidFileId => 10005,
            Self::DecryptFailed => 10006,
            Self::Obsolete10007 => 10007,
            Self::InvalidEncryptKey => 10008,
            Self::IpNotWhitelisted => 10009,
            Self::DataExpired => 10010,
            Self::TlsCertificate => 10011,
            Self::Unknown(rc) => rc,
        }
    }

    /// A stable snake_case name, for results and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::InvalidParameter => "sdk_invalid_parameter",
            Self::Network => "sdk_network_error",
            Self::DataParse => "sdk_data_parse_error",
            Self::System => "sdk_system_error",
            Self::Obsolete10004 | Self::Obsolete10007 => "sdk_obsolete_code",
            Self::InvalidFileId => "sdk_invalid_fileid",
            Self::DecryptFailed => "sdk_decrypt_failed",
            Self::InvalidEncryptKey => "sdk_invalid_encrypt_key",
            Self::IpNotWhitelisted => "sdk_ip_not_whitelisted",
            Self::DataExpired => "sdk_data_expired",
            Self::TlsCertificate => "sdk_tls_certificate_error",
            Self::Unknown(_) => "sdk_unknown_error",
        }
    }

    /// `docs/SDK.md` section 7. 10008 is transient by the official table ("retry"); a caller
    /// that keeps seeing it gives up when its attempts run out.
    pub fn class(self) -> ErrorClass {
        match self {
            Self::Network | Self::DataParse | Self::System | Self::InvalidEncryptKey => {
                ErrorClass::Transient
            }
            Self::IpNotWhitelisted | Self::TlsCertificate => ErrorClass::Configuration,
            Self::InvalidParameter
            | Self::Obsolete10004
            | Self::InvalidFileId
            | Self::DecryptFailed
            | Self::Obsolete10007
            | Self::DataExpired
            | Self::Unknown(_) => ErrorClass::Permanent,
        }
    }
}

impl fmt::Display for SdkCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Self::InvalidParameter => "bad parameter",
            Self::Network => "network error or token failure (check the secret and the proxy)",
            Self::DataParse => "data parse failure or media server error",
            Self::System => "system failure or empty media content",
            Self::Obsolete10004 | Self::Obsolete10007 => "obsolete return code",
            Self::InvalidFileId => "bad sdkfileid or key info",
            Self::DecryptFailed => "decryption failed (wrong key version or corrupt data)",
            Self::InvalidEncryptKey => "bad encrypt_key",
            Self::IpNotWhitelisted => "this machine's IP is not on the archive whitelist",
            Self::DataExpired => "data expired (older than the retention window)",
            Self::TlsCertificate => "TLS certificate error",
            Self::Unknown(_) => "undocumented return code",
        };
        write!(f, "{} ({what})", self.raw())
    }
}

/// What should happen to work that failed with an error of this class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Retry later, with backoff: the same call may succeed.
    Transient,
    /// Give up: the same call will fail the same way (the job itself is wrong).
    Permanent,
    /// Give up and tell an operator: the corp's setup is wrong (whitelist, subscription, TLS).
    Configuration,
}

/// The SDK function a failure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SdkOp {
    /// `Init`: storing the corp's credentials in a new handle.
    Init,
    /// `GetChatData`: fetching a page of encrypted chat records.
    GetChatData,
    /// `GetMediaData`: fetching one chunk of a media file.
    GetMediaData,
    /// `DecryptData`: decrypting one chat record with its random key.
    DecryptData,
}

impl fmt::Display for SdkOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Init => "Init",
            Self::GetChatData => "GetChatData",
            Self::GetMediaData => "GetMediaData",
            Self::DecryptData => "DecryptData",
        })
    }
}

/// Any failure of an SDK call, whether the library, the archive server, the binding's input
/// checks or the SDK host process caused it. [`SdkError::class`] says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// The library returned a non-zero code.
    #[error("{op} returned {code}")]
    Code {
        /// The function that returned it.
        op: SdkOp,
        /// The code it returned.
        code: SdkCode,
    },
    /// `GetChatData` succeeded but the body carries a server `errcode`.
    #[error("the archive server refused the request: errcode {errcode}: {}", server_errcode_meaning(*errcode, errmsg))]
    Server {
        /// The server's non-zero `errcode` (301042: IP not whitelisted, 301052: subscription
        /// expired, ...).
        errcode: i64,
        /// The server's `errmsg`, verbatim.
        errmsg: String,
    },
    /// The body was not the JSON the documentation describes (a proxy's error page, say).
    #[error("{op} returned a body that is not the documented JSON: {reason}")]
    MalformedResponse {
        /// The function whose output did not parse.
        op: SdkOp,
        /// What was wrong with it, for the log; never the body itself.
        reason: String,
    },
    /// The binding refused the input before the library saw it.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The SDK host process serving the call died or hung (the library runs in a process of its
    /// own, see `crate::sdk_host`).
    #[error("{op}: {failure}")]
    Host {
        /// The function the host was running.
        op: SdkOp,
        /// How the host failed.
        failure: HostFailure,
    },
}

/// How an SDK host process failed a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostFailure {
    /// It died during the call: `how` names the signal or the exit status.
    #[error("the SDK host process died during the call ({how})")]
    Died {
        /// The signal or exit status, as text (`killed by signal 6 (SIGABRT)`, say).
        how: String,
    },
    /// It did not answer in time and was killed.
    #[error("the SDK host process did not answer within {secs} s and was killed")]
    Hung {
        /// The deadline that passed, in seconds.
        secs: u64,
    },
    /// It could not be started or reached.
    #[error("the SDK host process could not be used: {reason}")]
    Unusable {
        /// Why: a failed spawn or socket, or an answer that breaks the protocol.
        reason: String,
    },
}

impl SdkError {
    /// What should happen to the job: [`SdkCode::class`] for a library code; a server
    /// `errcode` is a configuration problem; a refused input is permanent; a dead or hung
    /// host is transient; an unparseable body is transient for `GetChatData` (most likely a
    /// proxy answering) and permanent otherwise.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Code { code, .. } => code.class(),
            Self::Server { .. } => ErrorClass::Configuration,
            // A chat body that is not JSON is most likely a proxy or gateway answering in place
            // of the archive server; a media answer that breaks the chunk protocol is not going
            // to change on a retry.
            Self::MalformedResponse { op, .. } => match op {
                SdkOp::GetChatData => ErrorClass::Transient,
                _ => ErrorClass::Permanent,
            },
            Self::Refused(_) => ErrorClass::Permanent,
            // A crash or a hang may be the input (the job then fails after its attempts) or
            // the moment; only this call's job is charged.
            Self::Host { .. } => ErrorClass::Transient,
        }
    }
}

fn server_errcode_meaning(errcode: i64, errmsg: &str) -> String {
    match errcode {
        301042 => format!("this machine's IP is not on the archive whitelist ({errmsg})"),
        301052 => format!("the chat-archive subscription has expired ({errmsg})"),
        _ => errmsg.to_owned(),
    }
}

/// Turns a C return code into a result: 0 is success, anything else an [`SdkError::Code`].
pub fn check(op: SdkOp, rc: i32) -> Result<(), SdkError> {
    match rc {
        0 => Ok(()),
        rc => Err(SdkError::Code {
            op,
            code: SdkCode::from_raw(rc),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_code_round_trips_and_unknown_codes_keep_their_value() {
        for rc in 10000..=10011 {
            let code = SdkCode::from_raw(rc);
            assert!(!matches!(code, SdkCode::Unknown(_)), "{rc} is documented");
            assert_eq!(code.raw(), rc);
        }
        assert_eq!(SdkCode::from_raw(42), SdkCode::Unknown(42));
        assert_eq!(SdkCode::Unknown(-1).raw(), -1);
    }

    #[test]
    fn classes_follow_section_7() {
        for rc in [10001, 10002, 10003, 10008] {
            assert_eq!(SdkCode::from_raw(rc).class(), ErrorClass::Transient, "{rc}");
        }
        for rc in [10000, 10004, 10005, 10006, 10007, 10010, 99999] {
            assert_eq!(SdkCode::from_raw(rc).class(), ErrorClass::Permanent, "{rc}");
        }
        for rc in [10009, 10011] {
            assert_eq!(
                SdkCode::from_raw(rc).class(),
                ErrorClass::Configuration,
                "{rc}"
            );
        }
        let server = SdkError::Server {
            errcode: 301042,
            errmsg: "whiteip not match".into(),
        };
        assert_eq!(server.class(), ErrorClass::Configuration);
        assert!(server.to_string().contains("not on the archive whitelist"));
    }

    #[test]
    fn check_passes_zero_and_keeps_the_raw_code_otherwise() {
        assert!(check(SdkOp::Init, 0).is_ok());
        match check(SdkOp::GetChatData, 10001) {
            Err(SdkError::Code { op, code }) => {
                assert_eq!(op, SdkOp::GetChatData);
                assert_eq!(code.raw(), 10001);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
