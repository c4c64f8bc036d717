//! Why a job stopped: one typed error for the whole core ([`JobError`]), its class decided in
//! one exhaustive match ([`JobError::class`]), and its wire form ([`ErrorInfo`]) built from it in
//! one place ([`JobError::info`]), by the door that reports it.
//!
//! The class says what can happen next (retry or not); what does happen is decided by
//! [`super::fate::decide`], which also weighs the attempt number and the retry policy.

use crate::decrypt::MessageError;
use crate::error_code::{ErrorInfo, ProjectCode};
use crate::media::DownloadError;
use crate::sdk::{ErrorClass, SdkError};

use super::corps::CorpError;
use super::parse::InvalidJob;

/// Why a job failed: every error a run, or a door before it, can end a job with.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The body is not a valid job.
    #[error(transparent)]
    Invalid(#[from] InvalidJob),
    /// The job's credentials: an unknown alias, refused or missing inline ones, a bad key.
    #[error(transparent)]
    Corp(#[from] CorpError),
    /// An SDK call the job made failed (`GetChatData`, opening a handle).
    #[error(transparent)]
    Sdk(#[from] SdkError),
    /// A media download failed: a chunk, or the store.
    #[error(transparent)]
    Download(#[from] DownloadError),
    /// `DecryptData` refused this message's key with 10008; the official advice is to fetch
    /// the page again.
    #[error("message {} (seq {}): {}", .0.msgid, .0.seq, .0.error)]
    BadEncryptKey(MessageError),
    /// The stored file could not be read back for an inline result.
    #[error("cannot read the stored file back: {0}")]
    StoreRead(std::io::Error),
    /// The message is not valid AMQP though the broker took it: `what` says why (a property or
    /// header name that is not UTF-8, headers nested too deep).
    #[error("the message is not valid AMQP: {what}; it is not run")]
    MalformedMessage {
        /// What the AMQP parser had to repair, in words (`its message_id property is not
        /// UTF-8`, say).
        what: String,
    },
    /// The job carries one of the worker's own headers (its attempt or progress) that no worker
    /// of this deployment signed for it: a publisher set or copied it.
    #[error(
        "the job carries a {header} header that no worker of this deployment signed for it; \
         publish jobs without it (dlq replay removes what it must)"
    )]
    UntrustedHeader {
        /// The header's name ([`crate::broker::headers::ATTEMPT`] or
        /// [`crate::broker::headers::PROGRESS`]).
        header: &'static str,
    },
    /// The broker delivered the job this many times and no delivery was settled.
    #[error(
        "delivered {deliveries} times and never settled (its worker died, e.g. on an SDK abort, \
         lost the broker, or released it unstarted); not run again"
    )]
    DeliveryLimitReached {
        /// Deliveries the broker counted.
        deliveries: u32,
    },
}

impl JobError {
    /// Whether trying again can help: the one place a job-level error gets its class.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Invalid(_) => ErrorClass::Permanent,
            Self::Corp(err) => match err {
                // An operator must add the corp; no retry helps before that.
                CorpError::UnknownAlias(_) => ErrorClass::Configuration,
                CorpError::InlineRefused | CorpError::Missing | CorpError::Key(_) => {
                    ErrorClass::Permanent
                }
            },
            Self::Sdk(err) => err.class(),
            Self::BadEncryptKey(_) => ErrorClass::Transient,
            Self::Download(DownloadError::Sdk { source, .. }) => source.class(),
            // A full or failing disk may recover (a full one gave its partial file up).
            Self::Download(DownloadError::Store(_)) | Self::StoreRead(_) => ErrorClass::Transient,
            Self::MalformedMessage { .. }
            | Self::UntrustedHeader { .. }
            | Self::DeliveryLimitReached { .. } => ErrorClass::Permanent,
        }
    }

    /// The wire form, for failure results, dead-letter headers and HTTP answers.
    pub fn info(&self) -> ErrorInfo {
        let class = self.class();
        let message = self.to_string();
        let project = |code: ProjectCode| ErrorInfo::project(code, class, message.clone());
        match self {
            Self::Invalid(_) => project(ProjectCode::InvalidJob),
            Self::Corp(err) => project(match err {
                CorpError::UnknownAlias(_) => ProjectCode::UnknownCorp,
                CorpError::InlineRefused => ProjectCode::InlineCredentialsRefused,
                CorpError::Missing => ProjectCode::InvalidJob,
                CorpError::Key(_) => ProjectCode::InvalidPrivateKey,
            }),
            Self::Sdk(source) | Self::Download(DownloadError::Sdk { source, .. }) => {
                ErrorInfo::from_sdk(source, class, message)
            }
            Self::BadEncryptKey(bad) => ErrorInfo {
                message,
                ..bad.error.info()
            },
            Self::Download(DownloadError::Store(_)) | Self::StoreRead(_) => {
                project(ProjectCode::MediaStoreIo)
            }
            Self::MalformedMessage { .. } => project(ProjectCode::MalformedMessage),
            Self::UntrustedHeader { .. } => project(ProjectCode::UntrustedHeader),
            Self::DeliveryLimitReached { .. } => project(ProjectCode::DeliveryLimitReached),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyError, KeyProblem};
    use crate::sdk::{SdkCode, SdkOp};

    fn code(rc: i32) -> SdkError {
        SdkError::Code {
            op: SdkOp::GetChatData,
            code: SdkCode::from_raw(rc),
        }
    }

    #[test]
    fn each_error_has_its_code_and_class() {
        let cases: Vec<(JobError, i64, ErrorClass)> = vec![
            (JobError::Sdk(code(10001)), 10001, ErrorClass::Transient),
            (JobError::Sdk(code(10010)), 10010, ErrorClass::Permanent),
            (
                JobError::Corp(CorpError::UnknownAlias("x".into())),
                20302,
                ErrorClass::Configuration,
            ),
            (
                JobError::Corp(CorpError::InlineRefused),
                20303,
                ErrorClass::Permanent,
            ),
            (
                JobError::Corp(CorpError::Key(KeyError {
                    version: 3,
                    problem: KeyProblem::NotPem,
                })),
                20304,
                ErrorClass::Permanent,
            ),
            (
                JobError::BadEncryptKey(MessageError {
                    seq: 4,
                    msgid: "m".into(),
                    publickey_ver: 1,
                    error: code(10008).into(),
                    encrypted: None,
                }),
                10008,
                ErrorClass::Transient,
            ),
            (
                JobError::Download(DownloadError::Store(std::io::ErrorKind::StorageFull.into())),
                20201,
                ErrorClass::Transient,
            ),
            (
                JobError::DeliveryLimitReached { deliveries: 5 },
                20305,
                ErrorClass::Permanent,
            ),
        ];
        for (error, expected_code, expected_class) in cases {
            let info = error.info();
            assert_eq!(
                (info.code, info.class),
                (expected_code, expected_class),
                "{error}"
            );
            assert_eq!(info.retryable, expected_class == ErrorClass::Transient);
            assert_eq!(error.class(), expected_class);
        }
    }

    #[test]
    fn a_chunk_failure_names_its_index() {
        let error = JobError::Download(DownloadError::Sdk {
            index: "Range:bytes=16-31".into(),
            source: code(10002),
        });
        let info = error.info();
        assert_eq!((info.code, info.name), (10002, "sdk_data_parse_error"));
        assert!(
            info.message.contains("Range:bytes=16-31"),
            "{}",
            info.message
        );
    }
}
