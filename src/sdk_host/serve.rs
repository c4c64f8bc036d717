//! The SDK host: `wecom-archive sdk-host --lib PATH`, started by a worker with one end of a
//! socket pair as its standard input. It loads the library, opens one handle when asked, and
//! answers requests one at a time until the socket closes. It never logs a request or an
//! answer (they carry secrets). If the library crashes, this process dies alone.
//!
//! Media reads ahead: once a chunk is sent, the host fetches the next one (its index came with
//! the chunk) while the worker reads and hashes the one sent, and answers the worker's next
//! request from it when it asks for that index. A file streams at the pace of its slowest
//! stage, as in process, instead of paying a round trip per chunk. A read-ahead chunk the
//! worker does not ask for (its job was cancelled) is dropped.

use std::io::{BufReader, BufWriter};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

use rayon::prelude::*;
use secrecy::SecretString;
use serde_bytes::ByteBuf;
use zeroize::Zeroizing;

use super::protocol::{read_frame, write_frame, Holds, Request, Response, WireError, WireNet};
use crate::sdk::{FinanceSdk, NetOptions, SdkHandle};

/// Serves the worker on standard input until it closes the socket.
pub fn serve(lib: &Path) -> anyhow::Result<()> {
    let sdk = FinanceSdk::load(lib)?;
    let socket = UnixStream::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let mut input = BufReader::new(socket.try_clone()?);
    let mut output = BufWriter::new(socket);
    let mut handle: Option<SdkHandle> = None;
    let mut ahead: Option<ReadAhead> = None;
    while let Some((request, _)) = read_frame::<Request>(&mut input, Holds::Secrets)? {
        let (response, payload) = match ahead.take() {
            Some(chunk) if chunk.answers(&request) => chunk.answer,
            _ => answer(&sdk, &mut handle, &request),
        };
        write_frame(&mut output, &response, &payload)?;
        // The next chunk of the file, while the worker takes this one.
        if let (
            Request::GetMediaData { sdkfileid, net, .. },
            Response::Chunk {
                next_index: Some(next),
            },
            Some(handle),
        ) = (request, &response, handle.as_mut())
        {
            ahead = Some(ReadAhead {
                answer: media_chunk(handle, &sdkfileid, next, &net),
                sdkfileid,
                index: next.clone(),
                net,
            });
        }
    }
    Ok(())
}

/// The chunk after the one just sent, fetched before it is asked for.
struct ReadAhead {
    sdkfileid: String,
    index: String,
    net: WireNet,
    answer: (Response, Vec<u8>),
}

impl ReadAhead {
    /// Whether `request` asks for this very chunk, the same way.
    fn answers(&self, request: &Request) -> bool {
        matches!(request, Request::GetMediaData { sdkfileid, index, net }
            if *sdkfileid == self.sdkfileid && *index == self.index && *net == self.net)
    }
}

/// The response to `request`, and its payload (a media chunk's bytes).
fn answer(
    sdk: &std::sync::Arc<FinanceSdk>,
    handle: &mut Option<SdkHandle>,
    request: &Request,
) -> (Response, Vec<u8>) {
    let failed = |err: crate::sdk::SdkError| (Response::Failed(WireError::from(err)), Vec::new());
    let answered = |response: Response| (response, Vec::new());
    match request {
        Request::Open { corpid, secret } => {
            let secret = SecretString::from(secret.clone());
            match sdk.open_handle(corpid, &secret) {
                Ok(opened) => {
                    *handle = Some(opened);
                    answered(Response::Opened)
                }
                Err(err) => failed(err),
            }
        }
        Request::GetChatData { seq, limit, net } => match handle {
            Some(handle) => match handle.get_chat_data(*seq, *limit, &net_options(net)) {
                Ok(page) => answered(Response::Page(page)),
                Err(err) => failed(err),
            },
            None => not_open(),
        },
        Request::GetMediaData {
            sdkfileid,
            index,
            net,
        } => match handle {
            Some(handle) => media_chunk(handle, sdkfileid, index, net),
            None => not_open(),
        },
        // Stateless and thread-safe (docs/SDK.md section 2): the page's messages at once.
        Request::DecryptData { items } => answered(Response::Decrypted(
            items
                .par_iter()
                .map(|(key, message)| {
                    let key = Zeroizing::new(key.to_vec());
                    sdk.decrypt_data(&key, message.as_bytes())
                        .map(ByteBuf::from)
                        .map_err(WireError::from)
                })
                .collect(),
        )),
    }
}

/// `GetMediaData`: the chunk's next index in the response, its bytes as the payload.
fn media_chunk(
    handle: &mut SdkHandle,
    sdkfileid: &str,
    index: &str,
    net: &WireNet,
) -> (Response, Vec<u8>) {
    match handle.get_media_chunk(sdkfileid, index, &net_options(net)) {
        Ok(chunk) => (
            Response::Chunk {
                next_index: chunk.next_index,
            },
            chunk.data,
        ),
        Err(err) => (Response::Failed(WireError::from(err)), Vec::new()),
    }
}

fn not_open() -> (Response, Vec<u8>) {
    let refused = WireError::Refused("no handle is open".into());
    (Response::Failed(refused), Vec::new())
}

fn net_options(net: &WireNet) -> NetOptions {
    NetOptions {
        proxy: net.proxy.clone(),
        proxy_password: net.proxy_password.clone().map(SecretString::from),
        timeout_secs: net.timeout_secs,
    }
}
