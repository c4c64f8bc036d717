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

use super::protocol::{read_frame, write_frame, Request, Response, WireError, WireNet};
use crate::sdk::{FinanceSdk, NetOptions, SdkHandle};

/// Serves the worker on standard input until it closes the socket.
pub fn serve(lib: &Path) -> anyhow::Result<()> {
    let sdk = FinanceSdk::load(lib)?;
    let socket = UnixStream::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let mut input = BufReader::new(socket.try_clone()?);
    let mut output = BufWriter::new(socket);
    let mut handle: Option<SdkHandle> = None;
    while let Some(request) = read_frame::<Request>(&mut input)? {
        let response = answer(&sdk, &mut handle, request);
        write_frame(&mut output, &response)?;
    }
    Ok(())
}

fn answer(
    sdk: &std::sync::Arc<FinanceSdk>,
    handle: &mut Option<SdkHandle>,
    request: Request,
) -> Response {
    let failed = |err: crate::sdk::SdkError| Response::Failed(WireError::from(err));
    match request {
        Request::Open { corpid, secret } => {
            let secret = SecretString::from(secret);
            match sdk.open_handle(&corpid, &secret) {
                Ok(opened) => {
                    *handle = Some(opened);
                    Response::Opened
                }
                Err(err) => failed(err),
            }
        }
        Request::GetChatData { seq, limit, net } => match handle {
            Some(handle) => match handle.get_chat_data(seq, limit, &net_options(net)) {
                Ok(page) => Response::Page(page),
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
                Ok(chunk) => Response::Chunk {
                    data: ByteBuf::from(chunk.data),
                    next_index: chunk.next_index,
                },
                Err(err) => failed(err),
            },
            None => not_open(),
        },
        // Stateless and thread-safe (docs/SDK.md section 2): the page's messages at once.
        Request::DecryptData { items } => Response::Decrypted(
            items
                .into_par_iter()
                .map(|(key, message)| {
                    let key = Zeroizing::new(key.into_vec());
                    sdk.decrypt_data(&key, message.as_bytes())
                        .map(ByteBuf::from)
                        .map_err(WireError::from)
                })
                .collect(),
        ),
    }
}

fn not_open() -> Response {
    Response::Failed(WireError::Refused("no handle is open".into()))
}

fn net_options(net: WireNet) -> NetOptions {
    NetOptions {
        proxy: net.proxy,
        proxy_password: net.proxy_password.map(SecretString::from),
        timeout_secs: net.timeout_secs,
    }
}
