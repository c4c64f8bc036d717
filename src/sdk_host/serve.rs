//! The SDK host: `wecom-archive sdk-host --lib PATH`, started by a worker with one end of a
//! socket pair as its standard input. It loads the library, opens one handle when asked, and
//! answers requests one at a time until the socket closes. It never logs a request or an
//! answer (they carry secrets). If the library crashes, this process dies alone.
//!
//! It never calls the library unasked (no read-ahead): a crash or a hang is always the call of
//! the job that asked. Nor does it leave a core dump (it holds the corp secret and messages'
//! keys), and it exits when its worker is gone, even while the library holds it in a call.

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
    forbid_core_dumps()?;
    exit_with_parent();
    let sdk = FinanceSdk::load(lib)?;
    let socket = UnixStream::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let mut input = BufReader::new(socket.try_clone()?);
    let mut output = BufWriter::new(socket);
    let mut handle: Option<SdkHandle> = None;
    while let Some((request, _)) = read_frame::<Request>(&mut input, Holds::Secrets)? {
        let (response, payload) = answer(&sdk, &mut handle, &request);
        write_frame(&mut output, &response, &payload)?;
    }
    Ok(())
}

/// No core file, and no ptrace by others: a dump would hold the corp secret, the proxy
/// password and the messages' keys.
fn forbid_core_dumps() -> anyhow::Result<()> {
    use rustix::process::{set_dumpable_behavior, setrlimit, DumpableBehavior, Resource, Rlimit};
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )?;
    set_dumpable_behavior(DumpableBehavior::NotDumpable)?;
    Ok(())
}

/// Exits the process once its parent (the worker) is gone: a socket close is not seen while
/// the library holds the host in a call that does not return.
fn exit_with_parent() {
    let parent = rustix::process::getppid();
    std::thread::spawn(move || loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        if rustix::process::getppid() != parent {
            std::process::exit(3);
        }
    });
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
