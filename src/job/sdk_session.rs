//! Where SDK calls run: the library in this process, or an SDK host per handle
//! ([`crate::sdk_host`]). A [`Session`] makes the same calls either way; the pools and the job
//! code do not tell them apart.

use std::sync::Arc;

use secrecy::SecretString;

use crate::decrypt::{decrypt_page, decrypt_page_with, DecryptedPage};
use crate::keys::KeyRing;
use crate::sdk::{EncryptedMessage, FinanceSdk, MediaChunk, NetOptions, SdkError, SdkHandle};
use crate::sdk_host::client::{HostProcess, HostSpawner};

/// How SDK calls are made.
pub enum Backend {
    /// The library loaded in this process.
    InProcess(Arc<FinanceSdk>),
    /// One SDK host process per handle.
    Hosts(HostSpawner),
}

/// One SDK handle for one corp, used by one thread at a time.
pub enum Session {
    InProcess(SdkHandle),
    Host(HostProcess),
}

impl Backend {
    /// A new session for `corpid`. Opening one in process only stores the strings; starting a
    /// host takes a process start and a round trip.
    pub fn open(&self, corpid: &str, secret: &SecretString) -> Result<Session, SdkError> {
        match self {
            Self::InProcess(sdk) => sdk.open_handle(corpid, secret).map(Session::InProcess),
            Self::Hosts(spawner) => spawner.spawn(corpid, secret).map(Session::Host),
        }
    }
}

impl Session {
    /// Whether the session can take calls: a host may have died while idle in its pool.
    pub fn is_alive(&mut self) -> bool {
        match self {
            Self::InProcess(_) => true,
            Self::Host(host) => host.is_alive(),
        }
    }

    pub fn get_chat_data(
        &mut self,
        seq: u64,
        limit: u32,
        net: &NetOptions,
    ) -> Result<Vec<EncryptedMessage>, SdkError> {
        match self {
            Self::InProcess(handle) => handle.get_chat_data(seq, limit, net),
            Self::Host(host) => host.get_chat_data(seq, limit, net),
        }
    }

    pub fn get_media_chunk(
        &mut self,
        sdkfileid: &str,
        index: &str,
        net: &NetOptions,
    ) -> Result<MediaChunk, SdkError> {
        match self {
            Self::InProcess(handle) => handle.get_media_chunk(sdkfileid, index, net),
            Self::Host(host) => host.get_media_chunk(sdkfileid, index, net),
        }
    }

    /// Decrypts a page: RSA in this process either way; `DecryptData` where the session's
    /// library is. Fails only when the host died or hung during the batch.
    pub fn decrypt_page(
        &mut self,
        keys: &KeyRing,
        page: &[EncryptedMessage],
    ) -> Result<DecryptedPage, SdkError> {
        match self {
            Self::InProcess(handle) => Ok(decrypt_page(handle.library(), keys, page)),
            Self::Host(host) => decrypt_page_with(keys, page, |items| host.decrypt_batch(items)),
        }
    }
}
