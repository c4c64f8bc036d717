//! Whose job is it: a corp's id, secret and private keys, from the job or from the worker's corp
//! directory.
//!
//! Inline credentials (the seed service's way) travel in every job; an operator can turn them
//! off and keep credentials with the worker instead, in a directory of corps by alias whose
//! secrets and keys come from files or environment variables. A corp from the directory is
//! loaded once and shared; an inline one is built per job, its keys parsed once and then
//! served from a bounded cache ([`KeyCache`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::contract::CorpRef;
use super::key_cache::KeyCache;
use crate::keys::{KeyError, KeyRing};
use crate::redaction::serde_message;

/// A corp ready to work with.
#[derive(Debug)]
pub struct Corp {
    /// The corp's id, as the SDK and the results name it.
    pub corpid: String,
    /// The corp's chat-archive secret, for opening SDK handles.
    pub secret: SecretString,
    /// The private keys, by `publickey_ver`; an inline corp's are parsed for chat jobs only,
    /// and empty for a media job.
    pub keys: Arc<KeyRing>,
}

/// Why a job's corp could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum CorpError {
    /// The job names a corp alias that is not in the worker's corp directory.
    #[error("no corp named {0:?} in the worker's corp directory")]
    UnknownAlias(String),
    /// The job carries inline credentials and this worker is configured to refuse them.
    #[error("inline credentials are turned off on this worker; name a corp alias instead")]
    InlineRefused,
    /// The job gives neither a corp alias nor both `corpid` and `secret`.
    #[error("the job names neither a corp alias nor corpid and secret")]
    Missing,
    /// An inline private key is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Where a secret comes from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SecretSource {
    /// `{"file": "..."}`: the file's content, surrounding whitespace dropped.
    File(PathBuf),
    /// `{"env": "..."}`: the value of this environment variable, surrounding whitespace dropped.
    Env(String),
}

impl SecretSource {
    fn read(&self) -> anyhow::Result<SecretString> {
        let text = Zeroizing::new(match self {
            Self::File(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
            Self::Env(name) => std::env::var(name)
                .with_context(|| format!("environment variable {name} is not set"))?,
        });
        Ok(SecretString::from(text.trim().to_owned()))
    }
}

/// One entry of the corp directory file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CorpEntry {
    corpid: String,
    secret: SecretSource,
    /// Private keys by publickey_ver.
    #[serde(default)]
    keys: HashMap<u32, SecretSource>,
}

/// The corps a worker knows by alias, and whether jobs may bring their own credentials.
pub struct CorpDirectory {
    corps: HashMap<String, Arc<Corp>>,
    allow_inline: bool,
    inline_keys: KeyCache,
}

impl CorpDirectory {
    /// No aliases; inline credentials as `allow_inline` says, their key sets cached up to
    /// `key_sets` of them.
    pub fn inline_only(allow_inline: bool, key_sets: usize) -> Self {
        Self {
            corps: HashMap::new(),
            allow_inline,
            inline_keys: KeyCache::new(key_sets),
        }
    }

    /// Loads a JSON file `{"alias": {"corpid": "...", "secret": {"file": "..."} | {"env": "..."},
    /// "keys": {"1": {"file": "..."}}}}`.
    pub fn load(path: &Path, allow_inline: bool, key_sets: usize) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the corp directory {}", path.display()))?;
        // serde's message quotes what it found, which may be a secret or a key written inline
        // by mistake: only what was expected, and where, is said.
        let entries: HashMap<String, CorpEntry> = serde_json::from_str(&text).map_err(|err| {
            anyhow::anyhow!(
                "the corp directory {} is not valid: {} (a secret or key is given as \
                 {{\"file\": PATH}} or {{\"env\": NAME}}, never inline)",
                path.display(),
                serde_message(&err.to_string())
            )
        })?;
        let mut corps = HashMap::new();
        for (alias, entry) in entries {
            let secret = entry
                .secret
                .read()
                .with_context(|| format!("corp {alias}: secret"))?;
            let mut keys = KeyRing::new();
            for (version, source) in &entry.keys {
                let pem = source
                    .read()
                    .with_context(|| format!("corp {alias}: key {version}"))?;
                keys.insert_pem(*version, &pem)
                    .with_context(|| format!("corp {alias}"))?;
            }
            let corp = Corp {
                corpid: entry.corpid,
                secret,
                keys: Arc::new(keys),
            };
            corps.insert(alias, Arc::new(corp));
        }
        Ok(Self {
            corps,
            ..Self::inline_only(allow_inline, key_sets)
        })
    }

    /// How many inline key sets are cached.
    pub fn cached_key_sets(&self) -> usize {
        self.inline_keys.len()
    }

    /// The corp a job is for. Inline private keys are parsed only when `with_keys` (chat jobs).
    pub fn resolve(&self, corp: &CorpRef, with_keys: bool) -> Result<Arc<Corp>, CorpError> {
        if let Some(alias) = &corp.corp {
            return self
                .corps
                .get(alias)
                .cloned()
                .ok_or_else(|| CorpError::UnknownAlias(alias.clone()));
        }
        let (Some(corpid), Some(secret)) = (&corp.corpid, &corp.secret) else {
            return Err(CorpError::Missing);
        };
        if !self.allow_inline {
            return Err(CorpError::InlineRefused);
        }
        let keys = match &corp.private_keys {
            Some(keys) if with_keys => self.inline_keys.get_or_parse(keys)?,
            _ => Arc::new(KeyRing::new()),
        };
        Ok(Arc::new(Corp {
            corpid: corpid.clone(),
            secret: SecretString::from(secret.expose_secret().to_owned()),
            keys,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_code::ProjectCode;
    use crate::job::error::JobError;

    fn info(err: CorpError) -> crate::error_code::ErrorInfo {
        JobError::from(err).info()
    }

    fn inline(json: &str) -> CorpRef {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn inline_credentials_can_be_turned_off() {
        let job = inline(r#"{"corpid": "ww1", "secret": "s"}"#);
        assert!(CorpDirectory::inline_only(true, 4)
            .resolve(&job, true)
            .is_ok());
        let err = CorpDirectory::inline_only(false, 4)
            .resolve(&job, true)
            .unwrap_err();
        assert_eq!(info(err).code, ProjectCode::InlineCredentialsRefused.code());
    }

    #[test]
    fn aliases_come_from_the_directory_file_with_secrets_from_files_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "from-file\n").unwrap();
        let key = format!("{}/tests/fixtures/keys/v1.pem", env!("CARGO_MANIFEST_DIR"));
        let file = dir.path().join("corps.json");
        std::fs::write(
            &file,
            format!(r#"{{"acme": {{"corpid": "ww-acme", "secret": {{"file": "{}"}}, "keys": {{"1": {{"file": "{key}"}}}}}}}}"#, secret.display()),
        )
        .unwrap();
        let corps = CorpDirectory::load(&file, false, 4).unwrap();
        let acme = corps.resolve(&inline(r#"{"corp": "acme"}"#), true).unwrap();
        assert_eq!(acme.corpid, "ww-acme");
        assert_eq!(acme.secret.expose_secret(), "from-file");
        assert!(!acme.keys.is_empty());
        let err = corps
            .resolve(&inline(r#"{"corp": "other"}"#), true)
            .unwrap_err();
        assert_eq!(info(err).code, ProjectCode::UnknownCorp.code());
    }

    #[test]
    fn a_bad_inline_key_fails_the_job_with_its_version_and_no_key_material() {
        let job = inline(
            r#"{"corpid": "ww1", "secret": "s", "private_keys": [{"publickey_ver": 4, "private_key": "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----"}]}"#,
        );
        let err = CorpDirectory::inline_only(true, 4)
            .resolve(&job, true)
            .unwrap_err();
        let info = info(err);
        assert_eq!(info.code, ProjectCode::InvalidPrivateKey.code());
        assert!(info.message.contains("publickey_ver 4"), "{}", info.message);
        assert!(!info.message.contains("AAAA"));
        // Media jobs do not need the keys, so a bad one does not stop them.
        assert!(CorpDirectory::inline_only(true, 4)
            .resolve(&job, false)
            .is_ok());
    }
}
