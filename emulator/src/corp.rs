//! A configured corp made ready to serve: its parsed public keys, its msgtype table, the tag
//! that marks its messages, and its fault counters. Built by [`crate::runtime`] from a
//! [`CorpConfig`]; used by [`crate::chat`], [`crate::sdk`] and [`crate::decrypt`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::RsaPublicKey;
use std::sync::Arc;

use crate::chat;
use crate::config::{ConfigError, CorpConfig};
use crate::faults::{Fault, FaultCounters, FaultOp, SharedCounters};
use crate::messages::Mix;
use crate::rsa_seal::Sealer;
use crate::sealed_store::SealedStore;
use crate::seeding;

/// The smallest RSA key that can carry an `encrypt_key` (88 bytes) in PKCS#1 v1.5.
const MIN_KEY_BITS: usize = 1024;

/// A corp ready to serve.
#[derive(Debug)]
pub(crate) struct Corp {
    pub config: CorpConfig,
    /// The 13 bytes every message of this corp starts with (see [`corp_tag`]).
    pub tag: String,
    /// Public keys by `publickey_ver`, ascending, ready to seal.
    pub keys: Vec<(u32, Sealer)>,
    pub mix: Mix,
    /// The archive sealed at load, when the config asks for it.
    pub sealed: Option<SealedStore>,
    counters: FaultCounters,
}

/// The 13 junk bytes that open every `encrypt_chat_msg` of `corpid`. `DecryptData` has no
/// handle, so this is how the emulator knows whose faults apply to a message. The real library
/// ignores these bytes, so a tagged message stays a valid one.
pub fn corp_tag(corpid: &str) -> String {
    let key = seeding::key("tag", 0, &[corpid.as_bytes()]);
    STANDARD.encode(key)[..13].to_owned()
}

impl Corp {
    /// `shared` counts faults across processes; the corp's slots there are by `index`.
    pub(crate) fn new(
        config: CorpConfig,
        index: usize,
        shared: Option<Arc<SharedCounters>>,
    ) -> Result<Corp, ConfigError> {
        let keys = config
            .public_keys
            .iter()
            .map(|(&version, pem)| {
                parse_public_key(pem)
                    .map(|key| (version, Sealer::new(&key)))
                    .map_err(|e| {
                        ConfigError(format!(
                            "corp {:?}: public key {version}: {e}",
                            config.corpid
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;
        let mut corp = Corp {
            tag: corp_tag(&config.corpid),
            keys,
            mix: Mix::new(&config),
            sealed: None,
            counters: FaultCounters::new(shared, index),
            config,
        };
        if corp.config.sealed_at_load {
            corp.sealed = Some(SealedStore::new(chat::seal_archive(&corp)));
        }
        Ok(corp)
    }

    /// Counts a call of `op` and says whether a fault replaces its answer.
    pub(crate) fn fault(&self, op: FaultOp, sdkfileid: Option<&str>) -> Option<Fault> {
        self.counters
            .next(&self.config.faults, self.config.seed, op, sdkfileid)
    }
}

/// A PEM public key, SPKI (`BEGIN PUBLIC KEY`) or PKCS#1 (`BEGIN RSA PUBLIC KEY`).
fn parse_public_key(pem: &str) -> Result<RsaPublicKey, String> {
    let key = RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
        .map_err(|e| format!("not an RSA public key in PEM: {e}"))?;
    let bits = key.size() * 8;
    if bits < MIN_KEY_BITS {
        return Err(format!(
            "{bits} bits; at least {MIN_KEY_BITS} are needed to carry encrypt_key"
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPublicKey};
    use rsa::pkcs8::LineEnding;

    #[test]
    fn the_default_corp_loads_with_both_key_versions() {
        let corp = Corp::new(CorpConfig::default(), 0, None).unwrap();
        assert_eq!(
            corp.keys.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(corp.tag.len(), 13);
    }

    #[test]
    fn pkcs1_keys_are_accepted_and_small_or_bad_keys_refused() {
        let mut config = CorpConfig::default();
        let spki = config.public_keys[&1].clone();
        let key = RsaPublicKey::from_public_key_pem(&spki).unwrap();
        let pkcs1 = key.to_pkcs1_pem(LineEnding::LF).unwrap();
        assert!(pkcs1.starts_with("-----BEGIN RSA PUBLIC KEY-----"));
        config.public_keys.insert(3, pkcs1);
        assert!(Corp::new(config.clone(), 0, None).is_ok());

        config.public_keys.insert(4, "garbage".into());
        let err = Corp::new(config, 0, None).unwrap_err();
        assert!(err.0.contains("public key 4"), "{err}");

        let private = include_str!("../../tests/fixtures/keys/rsa512.pem");
        let small = rsa::RsaPrivateKey::from_pkcs1_pem(private)
            .unwrap()
            .to_public_key();
        let mut config = CorpConfig {
            public_keys: [(1, small.to_pkcs1_pem(LineEnding::LF).unwrap())].into(),
            ..CorpConfig::default()
        };
        let err = Corp::new(config.clone(), 0, None).unwrap_err();
        assert!(err.0.contains("512 bits"), "{err}");
        config.public_keys = [(
            1,
            include_str!("../../tests/fixtures/keys/rsa1024.pub.pem").into(),
        )]
        .into();
        assert!(Corp::new(config, 0, None).is_ok());
    }

    #[test]
    fn tags_differ_between_corps_and_use_the_base64_alphabet() {
        assert_ne!(corp_tag("a"), corp_tag("b"));
        assert_eq!(corp_tag("a"), corp_tag("a"));
        assert!(corp_tag("a")
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'));
    }
}
