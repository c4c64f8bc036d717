//! The corp's RSA private keys, by `publickey_ver`, and the one RSA operation done with them.
//!
//! Every chat message costs one RSA PKCS#1 v1.5 private-key operation, so that operation sets
//! the service's throughput ceiling. Keys of 2048 bits and more run on aws-lc-rs, which matches
//! `openssl speed`; the pure-Rust `rsa` crate parses the PEM (PKCS#1 or PKCS#8) and serves the
//! 1024-bit keys that some Odoo modules generate and that aws-lc-rs refuses.
//!
//! Key material never leaves this module: errors name the version and the reason, `Debug`
//! shows only the versions, and everything is wiped on drop (`rsa` keys zeroize themselves,
//! AWS-LC cleanses what it frees, the PEM and DER copies are `Zeroizing`).

use std::collections::BTreeMap;
use std::fmt;

use aws_lc_rs::rsa::{Pkcs1PrivateDecryptingKey, PrivateDecryptingKey};
use rand::rngs::OsRng;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Encrypt, RsaPrivateKey};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// Accepted RSA modulus sizes, in bits.
pub const KEY_BITS: std::ops::RangeInclusive<usize> = 1024..=4096;

/// aws-lc-rs takes RSA decryption keys from 2048 bits up.
const AWS_LC_MIN_BITS: usize = 2048;

/// A private key that cannot be used, named by its version; it holds no key material.
#[derive(Debug, thiserror::Error)]
#[error("the private key for publickey_ver {version} is unusable: {problem}")]
pub struct KeyError {
    /// The key's `publickey_ver`.
    pub version: u32,
    /// What is wrong with it.
    pub problem: KeyProblem,
}

/// What is wrong with a private key's PEM.
#[derive(Debug, thiserror::Error)]
pub enum KeyProblem {
    /// No `RSA PRIVATE KEY` or `PRIVATE KEY` PEM block, or one without its end line.
    #[error("not a PEM private key (expected BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY)")]
    NotPem,
    /// The key is encrypted (PKCS#8 `ENCRYPTED PRIVATE KEY`, or a traditional PEM with
    /// `Proc-Type` headers); it must be decrypted first.
    #[error(
        "the PEM key is encrypted (ENCRYPTED PRIVATE KEY, or Proc-Type: 4,ENCRYPTED); decrypt it \
         first, e.g. openssl pkey -in key.pem -out plain.pem"
    )]
    Encrypted,
    /// The block does not decode as an RSA private key; holds the parser's complaint.
    #[error("the PEM does not decode as an RSA private key ({0})")]
    Malformed(String),
    /// The modulus size in bits is outside [`KEY_BITS`].
    #[error("{0}-bit keys are not supported (1024 to 4096 bits)")]
    UnsupportedSize(usize),
    /// The key's numbers do not fit together (a corrupt or hand-edited key).
    #[error("the key fails its consistency check")]
    Inconsistent,
}

/// Why the RSA step of one message failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RsaFailure {
    /// No key is configured for this `publickey_ver`.
    #[error("no private key for publickey_ver {0}")]
    NoKey(u32),
    /// Decrypting with the key of this `publickey_ver` failed: the wrong key, or corrupt data.
    #[error("RSA decryption of encrypt_random_key failed (wrong key for publickey_ver {0}, or corrupt data)")]
    DecryptFailed(u32),
}

enum PrivateKey {
    AwsLc(Pkcs1PrivateDecryptingKey),
    RustCrypto(Box<RsaPrivateKey>),
}

/// The private keys of one corp, by `publickey_ver`. Old versions stay usable after rotation.
#[derive(Default)]
pub struct KeyRing {
    keys: BTreeMap<u32, PrivateKey>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// An empty ring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the key of `version` from a PKCS#1 or PKCS#8 PEM.
    pub fn insert_pem(&mut self, version: u32, pem: &SecretString) -> Result<(), KeyError> {
        let key =
            parse_pem(pem.expose_secret()).map_err(|problem| KeyError { version, problem })?;
        self.keys.insert(version, key);
        Ok(())
    }

    /// Whether the ring holds no key (an inline corp of a media job has none).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The RSA PKCS#1 v1.5 private-key operation: the plaintext (the message's `encrypt_key`).
    pub fn decrypt(
        &self,
        version: u32,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, RsaFailure> {
        let key = self.keys.get(&version).ok_or(RsaFailure::NoKey(version))?;
        let failed = RsaFailure::DecryptFailed(version);
        match key {
            PrivateKey::AwsLc(key) => {
                let mut out = Zeroizing::new(vec![0u8; key.min_output_size()]);
                let len = key.decrypt(ciphertext, &mut out).map_err(|_| failed)?.len();
                out.truncate(len);
                Ok(out)
            }
            // Blinded: the `rsa` crate's unblinded path leaks timing (RUSTSEC-2023-0071).
            PrivateKey::RustCrypto(key) => key
                .decrypt_blinded(&mut OsRng, Pkcs1v15Encrypt, ciphertext)
                .map(Zeroizing::new)
                .map_err(|_| failed),
        }
    }
}

/// What a PEM block holds, by its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PemKind {
    Pkcs1,
    Pkcs8,
}

/// The key's PEM block in the canonical form the parsers take (its label, the base64 in lines of
/// 64, `\n` endings), read as leniently as OpenSSL reads an unencrypted key: text before or
/// after the block, `\r\n` or trailing whitespace, base64 on one line or wrapped at any width.
/// An encrypted key, PKCS#8 or traditional (`Proc-Type: 4,ENCRYPTED`), is named as such.
fn canonical_pem(pem: &str) -> Result<(PemKind, Zeroizing<String>), KeyProblem> {
    const LABELS: [(&str, Option<PemKind>); 3] = [
        ("RSA PRIVATE KEY", Some(PemKind::Pkcs1)),
        ("PRIVATE KEY", Some(PemKind::Pkcs8)),
        ("ENCRYPTED PRIVATE KEY", None),
    ];
    let (label, kind, start) = LABELS
        .iter()
        .find_map(|(label, kind)| {
            let begin = format!("-----BEGIN {label}-----");
            pem.find(&begin).map(|at| (*label, *kind, at + begin.len()))
        })
        .ok_or(KeyProblem::NotPem)?;
    let Some(kind) = kind else {
        return Err(KeyProblem::Encrypted);
    };
    let end = format!("-----END {label}-----");
    let body = pem[start..]
        .find(&end)
        .map(|at| &pem[start..start + at])
        .ok_or(KeyProblem::NotPem)?;
    // RFC 1421 headers (`Proc-Type: 4,ENCRYPTED`, `DEK-Info: ...`) only come with encryption.
    if body.contains(':') {
        return Err(KeyProblem::Encrypted);
    }
    // Sized up front: a growing buffer would leave copies of the key behind, unwiped.
    let mut base64 = Zeroizing::new(String::with_capacity(body.len()));
    base64.extend(body.chars().filter(|c| !c.is_ascii_whitespace()));
    let lines = base64.len() / 64 + 1;
    let mut canonical = Zeroizing::new(String::with_capacity(base64.len() + lines + 2 * 64));
    canonical.push_str(&format!("-----BEGIN {label}-----\n"));
    for line in base64.as_bytes().chunks(64) {
        canonical.push_str(std::str::from_utf8(line).map_err(|_| KeyProblem::NotPem)?);
        canonical.push('\n');
    }
    canonical.push_str(&format!("-----END {label}-----\n"));
    Ok((kind, canonical))
}

fn parse_pem(pem: &str) -> Result<PrivateKey, KeyProblem> {
    let malformed = |err: &dyn fmt::Display| KeyProblem::Malformed(err.to_string());
    let (kind, pem) = canonical_pem(pem)?;
    let key = match kind {
        PemKind::Pkcs1 => RsaPrivateKey::from_pkcs1_pem(&pem).map_err(|e| malformed(&e))?,
        PemKind::Pkcs8 => RsaPrivateKey::from_pkcs8_pem(&pem).map_err(|e| malformed(&e))?,
    };
    let bits = key.n().bits();
    if !KEY_BITS.contains(&bits) {
        return Err(KeyProblem::UnsupportedSize(bits));
    }
    key.validate().map_err(|_| KeyProblem::Inconsistent)?;
    if bits < AWS_LC_MIN_BITS {
        return Ok(PrivateKey::RustCrypto(Box::new(key)));
    }
    let der = key.to_pkcs8_der().map_err(|e| malformed(&e))?;
    let key = PrivateDecryptingKey::from_pkcs8(der.as_bytes())
        .map_err(|e| malformed(&e))
        .and_then(|key| Pkcs1PrivateDecryptingKey::new(key).map_err(|e| malformed(&e)))?;
    Ok(PrivateKey::AwsLc(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::DecodePublicKey;
    use rsa::RsaPublicKey;

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path).unwrap()
    }

    fn encrypt_for(pub_pem_file: &str, plaintext: &[u8]) -> Vec<u8> {
        let public = RsaPublicKey::from_public_key_pem(&fixture(pub_pem_file)).unwrap();
        public
            .encrypt(&mut OsRng, Pkcs1v15Encrypt, plaintext)
            .unwrap()
    }

    #[test]
    fn pkcs1_pkcs8_and_every_supported_size_decrypt() {
        let cases = [
            (1, "v1.pem", "v1.pub.pem"),
            (2, "v2.pem", "v2.pub.pem"),
            (3, "rsa1024.pem", "rsa1024.pub.pem"),
            (4, "rsa4096.pem", "rsa4096.pub.pem"),
        ];
        let mut ring = KeyRing::new();
        for (version, private, _) in cases {
            ring.insert_pem(version, &fixture(private).into()).unwrap();
        }
        for (version, _, public) in cases {
            let ciphertext = encrypt_for(public, b"the random key of a message");
            let plain = ring.decrypt(version, &ciphertext).unwrap();
            assert_eq!(
                &plain[..],
                b"the random key of a message",
                "version {version}"
            );
        }
    }

    #[test]
    fn the_wrong_version_or_a_missing_one_is_a_per_message_failure() {
        let mut ring = KeyRing::new();
        ring.insert_pem(1, &fixture("v1.pem").into()).unwrap();
        ring.insert_pem(2, &fixture("v2.pem").into()).unwrap();
        let for_v1 = encrypt_for("v1.pub.pem", b"k");
        assert_eq!(ring.decrypt(2, &for_v1), Err(RsaFailure::DecryptFailed(2)));
        assert_eq!(ring.decrypt(9, &for_v1), Err(RsaFailure::NoKey(9)));
    }

    #[test]
    fn bad_keys_name_the_version_and_the_reason_but_never_the_key() {
        let small = fixture("rsa512.pem");
        let mut ring = KeyRing::new();
        let err = ring.insert_pem(7, &small.clone().into()).unwrap_err();
        assert!(matches!(err.problem, KeyProblem::UnsupportedSize(512)));
        let message = err.to_string();
        assert!(message.contains("publickey_ver 7"), "{message}");

        let mut garbled = fixture("v1.pem");
        garbled.replace_range(100..140, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        let err = ring.insert_pem(8, &garbled.clone().into()).unwrap_err();
        let message = format!("{err} {err:?}");
        for line in garbled.lines().filter(|l| !l.starts_with("-----")) {
            assert!(
                !message.contains(line),
                "error leaks key material: {message}"
            );
        }
        assert!(matches!(
            ring.insert_pem(9, &"not a key".to_string().into())
                .unwrap_err()
                .problem,
            KeyProblem::NotPem
        ));
        assert!(ring.is_empty());
    }

    #[test]
    fn pem_is_read_as_leniently_as_openssl_reads_it() {
        let pem = fixture("v1.pem");
        let base64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let variants = [
            format!("{pem}\n\n   \t\n"),
            pem.replace('\n', "\r\n"),
            format!("Bag Attributes\n    friendlyName: key\n{pem}"),
            format!("-----BEGIN RSA PRIVATE KEY-----\n{base64}\n-----END RSA PRIVATE KEY-----"),
            format!(
                "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----\n",
                base64
                    .as_bytes()
                    .chunks(76)
                    .map(|c| std::str::from_utf8(c).unwrap())
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        ];
        for (n, variant) in variants.iter().enumerate() {
            let mut ring = KeyRing::new();
            ring.insert_pem(1, &variant.clone().into())
                .unwrap_or_else(|err| panic!("variant {n}: {err}"));
        }
    }

    #[test]
    fn encrypted_keys_of_either_kind_are_named_as_such() {
        let traditional = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
            DEK-Info: AES-128-CBC,0123456789ABCDEF0123456789ABCDEF\n\nAAAA\n\
            -----END RSA PRIVATE KEY-----\n";
        let pkcs8 =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        for pem in [traditional, pkcs8] {
            let err = KeyRing::new()
                .insert_pem(3, &pem.to_string().into())
                .unwrap_err();
            assert!(matches!(err.problem, KeyProblem::Encrypted), "{err}");
            assert!(err.to_string().contains("decrypt it first"), "{err}");
        }
    }

    #[test]
    fn debug_shows_versions_only() {
        let mut ring = KeyRing::new();
        ring.insert_pem(1, &fixture("v1.pem").into()).unwrap();
        let shown = format!("{ring:?}");
        assert_eq!(shown, "KeyRing { versions: [1], .. }");
    }
}
