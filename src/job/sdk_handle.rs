//! Where SDK calls run: the library in this process, or an SDK host per handle
//! ([`crate::sdk_host`]). A [`Handle`] makes the same calls either way; the pools and the job
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

/// One SDK handle of one corp, used by one thread at a time: the library's own handle in this
/// process, or an SDK host process that holds one.
pub enum Handle {
    /// The library's handle, called in this process.
    InProcess(SdkHandle),
    /// An SDK host process holding the handle, called over its socket.
    Host(HostProcess),
}

impl Backend {
    /// A new handle for `corpid`. Opening one in process only stores the strings; starting a
    /// host takes a process start and a round trip.
    pub fn open(&self, corpid: &str, secret: &SecretString) -> Result<Handle, SdkError> {
        match self {
            Self::InProcess(sdk) => sdk.open_handle(corpid, secret).map(Handle::InProcess),
            Self::Hosts(spawner) => spawner.spawn(corpid, secret).map(Handle::Host),
        }
    }
}

impl Handle {
    /// Whether the handle can take calls: a host may have died while idle in its pool.
    pub fn is_alive(&mut self) -> bool {
        match self {
            Self::InProcess(_) => true,
            Self::Host(host) => host.is_alive(),
        }
    }

    /// `GetChatData`: up to `limit` encrypted messages with a `seq` greater than `seq`.
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

    /// `GetMediaData`: the chunk of the file `sdkfileid` at `index` ("" for the first one).
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

    /// Decrypts a page: RSA in this process either way; `DecryptData` where the handle's
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
