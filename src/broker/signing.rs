//! The worker's own headers, signed. A job's progress (`x-wecom-progress`) says which messages
//! it fetches, and its attempt count (`x-wecom-attempt`) when it gives up; anyone who can publish
//! a job can set both. So a worker trusts them only when a worker of the same deployment wrote
//! them for this very job: each comes with an HMAC-SHA256 (`...-mac`) over what it is, the job
//! kind, the SHA-256 of the job's body and the value.
//!
//! The key is `WECOM_HEADER_KEY_FILE`'s content or, when none is given, one derived from the
//! broker user, password and vhost, which every worker of a deployment shares. Give the file
//! when publishers use the workers' broker credentials.

use aws_lc_rs::hmac;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::job::JobKind;

/// The key of the deployment's header signatures. No `Debug`: it is a secret.
pub struct HeaderKey {
    key: hmac::Key,
    /// Whether a header with no signature at all is taken as it is (for the time of an upgrade
    /// from a version that did not sign, `WECOM_ACCEPT_UNSIGNED_HEADERS`); a wrong signature
    /// never is.
    pub accept_unsigned: bool,
}

impl HeaderKey {
    /// The key from `explicit`, else derived from the broker identity.
    pub fn new(explicit: Option<&SecretString>, user: &str, password: &str, vhost: &str) -> Self {
        let material = match explicit {
            Some(key) => format!("explicit\0{}", key.expose_secret()),
            None => format!("broker\0{user}\0{password}\0{vhost}"),
        };
        let derive = hmac::Key::new(hmac::HMAC_SHA256, b"wecom-archive header key");
        let key = hmac::sign(&derive, zeroize::Zeroizing::new(material).as_bytes());
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
            accept_unsigned: false,
        }
    }

    /// The signer for one job.
    pub fn for_job(&self, kind: JobKind, body: &[u8]) -> JobSigner<'_> {
        JobSigner {
            key: self,
            kind,
            body_digest: Sha256::digest(body).into(),
        }
    }
}

/// Signs and checks the headers of one job.
pub struct JobSigner<'a> {
    /// The deployment's key, and whether unsigned headers are accepted.
    pub key: &'a HeaderKey,
    kind: JobKind,
    body_digest: [u8; 32],
}

impl JobSigner<'_> {
    fn message(&self, header: &str, value: &str) -> Vec<u8> {
        let mut message = Vec::with_capacity(header.len() + value.len() + 64);
        for part in [
            header.as_bytes(),
            self.kind.name().as_bytes(),
            &self.body_digest,
            value.as_bytes(),
        ] {
            message.extend_from_slice(&(part.len() as u64).to_be_bytes());
            message.extend_from_slice(part);
        }
        message
    }

    /// The signature of `header` carrying `value`, hex.
    pub fn sign(&self, header: &str, value: &str) -> String {
        hex::encode(hmac::sign(&self.key.key, &self.message(header, value)))
    }

    /// Whether `mac` is the signature of `header` carrying `value`.
    pub fn verify(&self, header: &str, value: &str, mac: &str) -> bool {
        hex::decode(mac).is_ok_and(|tag| {
            hmac::verify(&self.key.key, &self.message(header, value), &tag).is_ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> HeaderKey {
        HeaderKey::new(None, "guest", "guest", "/")
    }

    #[test]
    fn a_signature_holds_for_its_header_value_job_and_key_only() {
        let key = key();
        let signer = key.for_job(JobKind::FetchChatdata, b"{\"corp\":\"a\"}");
        let mac = signer.sign("x-wecom-attempt", "3");
        assert!(signer.verify("x-wecom-attempt", "3", &mac));
        assert!(
            !signer.verify("x-wecom-attempt", "4", &mac),
            "another value"
        );
        assert!(
            !signer.verify("x-wecom-progress", "3", &mac),
            "another header"
        );
        assert!(!signer.verify("x-wecom-attempt", "3", "zz"), "not hex");
        let other_body = key.for_job(JobKind::FetchChatdata, b"{\"corp\":\"b\"}");
        assert!(
            !other_body.verify("x-wecom-attempt", "3", &mac),
            "another job"
        );
        let other_kind = key.for_job(JobKind::FetchMedia, b"{\"corp\":\"a\"}");
        assert!(
            !other_kind.verify("x-wecom-attempt", "3", &mac),
            "another kind"
        );
        let other_key = HeaderKey::new(None, "guest", "other", "/");
        let signer = other_key.for_job(JobKind::FetchChatdata, b"{\"corp\":\"a\"}");
        assert!(
            !signer.verify("x-wecom-attempt", "3", &mac),
            "another deployment"
        );
        let explicit = HeaderKey::new(Some(&SecretString::from("k")), "guest", "guest", "/");
        let signer = explicit.for_job(JobKind::FetchChatdata, b"{\"corp\":\"a\"}");
        assert!(
            !signer.verify("x-wecom-attempt", "3", &mac),
            "an explicit key wins"
        );
    }
}
