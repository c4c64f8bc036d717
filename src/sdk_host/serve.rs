//! The SDK host: `wecom-archive sdk-host --lib PATH`, started by a worker with one end of a
//! socket pair as its standard input. It loads the library, opens one handle when asked, and
//! answers requests one at a time until the socket closes. It never logs a request or an
//! answer (they carry secrets). If the library crashes, this process dies alone.

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
    while let Some((request, _)) = read_frame::<Request>(&mut input, Holds::Secrets)? {
        let (response, payload) = answer(&sdk, &mut handle, request);
        write_frame(&mut output, &response, &payload)?;
    }
    Ok(())
}

/// The response to `request`, and its payload (a media chunk's bytes).
fn answer(
    sdk: &std::sync::Arc<FinanceSdk>,
    handle: &mut Option<SdkHandle>,
    request: Request,
) -> (Response, Vec<u8>) {
    let failed = |err: crate::sdk::SdkError| (Response::Failed(WireError::from(err)), Vec::new());
    let answered = |response: Response| (response, Vec::new());
    match request {
        Request::Open { corpid, secret } => {
            let secret = SecretString::from(secret);
            match sdk.open_handle(&corpid, &secret) {
                Ok(opened) => {
                    *handle = Some(opened);
                    answered(Response::Opened)
                }
                Err(err) => failed(err),
            }
        }
        Request::GetChatData { seq, limit, net } => match handle {
            Some(handle) => match handle.get_chat_data(seq, limit, &net_options(net)) {
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
            Some(handle) => match handle.get_media_chunk(&sdkfileid, &index, &net_options(net)) {
                Ok(chunk) => (
                    Response::Chunk {
                        next_index: chunk.next_index,
                    },
                    chunk.data,
                ),
                Err(err) => failed(err),
            },
            None => not_open(),
        },
        // Stateless and thread-safe (docs/SDK.md section 2): the page's messages at once.
        Request::DecryptData { items } => answered(Response::Decrypted(
            items
                .into_par_iter()
                .map(|(key, message)| {
                    let key = Zeroizing::new(key.into_vec());
                    sdk.decrypt_data(&key, message.as_bytes())
                        .map(ByteBuf::from)
                        .map_err(WireError::from)
                })
                .collect(),
        )),
    }
}

fn not_open() -> (Response, Vec<u8>) {
    let refused = WireError::Refused("no handle is open".into());
    (Response::Failed(refused), Vec::new())
}

fn net_options(net: WireNet) -> NetOptions {
    NetOptions {
        proxy: net.proxy,
        proxy_password: net.proxy_password.map(SecretString::from),
        timeout_secs: net.timeout_secs,
    }
}
