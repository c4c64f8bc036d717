//! The process-wide state of the emulator: the config, read once at the first SDK call, made
//! ready ([`Corp`]s with parsed keys and fault counters), and the open call log.
//!
//! A config that cannot be read or is invalid stops the process with a message on stderr: a
//! test must never run silently on the default corp because its config file had a typo.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::call_log::{CallLog, CallRecord, CALL_LOG_ENV};
use crate::config::{Config, ConfigError};
use crate::corp::Corp;
use crate::faults::{SharedCounters, COUNTERS_ENV};

/// Everything the SDK calls share.
#[derive(Debug)]
pub(crate) struct Runtime {
    pub corps: Vec<Corp>,
    log: Option<CallLog>,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The runtime of this process, loaded at the first call.
pub(crate) fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        let log_path = std::env::var_os(CALL_LOG_ENV).map(PathBuf::from);
        Config::from_env()
            .and_then(|config| Runtime::new(config, log_path))
            .unwrap_or_else(|e| {
                eprintln!("wecom emulator: {e}; stopping");
                std::process::abort()
            })
    })
}

impl Runtime {
    /// Prepares `config`; `log_path` (from the env) wins over the config's `call_log`.
    pub(crate) fn new(config: Config, log_path: Option<PathBuf>) -> Result<Runtime, ConfigError> {
        config.validate()?;
        let log = match log_path.or(config.call_log) {
            None => None,
            Some(path) => Some(CallLog::open(&path).map_err(|e| {
                ConfigError(format!("cannot open call log {}: {e}", path.display()))
            })?),
        };
        let shared = match std::env::var_os(COUNTERS_ENV) {
            None => None,
            Some(path) => Some(Arc::new(SharedCounters::open(Path::new(&path)).map_err(
                |e| ConfigError(format!("cannot open the counters file {path:?}: {e}")),
            )?)),
        };
        let corps = config
            .corps
            .into_iter()
            .enumerate()
            .map(|(index, corp)| Corp::new(corp, index, shared.clone()))
            .collect::<Result<_, _>>()?;
        Ok(Runtime { corps, log })
    }

    /// The corp with this corpid.
    pub(crate) fn corp(&self, corpid: &[u8]) -> Option<&Corp> {
        self.corps
            .iter()
            .find(|c| c.config.corpid.as_bytes() == corpid)
    }

    /// The corp whose tag opens `encrypt_msg`.
    pub(crate) fn corp_by_tag(&self, encrypt_msg: &[u8]) -> Option<&Corp> {
        let head = encrypt_msg.get(..13)?;
        self.corps.iter().find(|c| c.tag.as_bytes() == head)
    }

    /// Appends to the call log, if there is one.
    pub(crate) fn log(&self, record: &CallRecord) {
        if let Some(log) = &self.log {
            log.append(record);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CorpConfig;
    use crate::corp::corp_tag;

    #[test]
    fn corps_are_found_by_corpid_and_by_tag() {
        let other = CorpConfig {
            corpid: "ww-other".into(),
            ..CorpConfig::default()
        };
        let config = Config {
            corps: vec![CorpConfig::default(), other],
            call_log: None,
        };
        let rt = Runtime::new(config, None).unwrap();
        assert_eq!(rt.corp(b"ww-other").unwrap().config.corpid, "ww-other");
        assert!(rt.corp(b"ww-nobody").is_none());
        let msg = format!("{}rest of the message", corp_tag("ww-other"));
        assert_eq!(
            rt.corp_by_tag(msg.as_bytes()).unwrap().config.corpid,
            "ww-other"
        );
        assert!(rt.corp_by_tag(b"short").is_none());
        assert!(rt.corp_by_tag(b"0123456789012345").is_none());
    }

    #[test]
    fn an_unopenable_call_log_is_a_config_error() {
        let err = Runtime::new(Config::default(), Some("/nonexistent-dir/log".into())).unwrap_err();
        assert!(err.0.contains("call log"), "{err}");
    }
}
