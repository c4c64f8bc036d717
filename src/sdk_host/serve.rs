//! The SDK host: `wecom-archive sdk-host --lib PATH`, started by a worker with one end of a
//! socket pair as its standard input. It loads the library, opens one handle when asked, and
//! answers requests one at a time until the socket closes. It never logs a request or an
//! answer (they carry secrets). If the library crashes, this process dies alone. A media
//! chunk goes into the slot of shared memory its request lent, when it came with one
//! ([`crate::sdk::shared_slots`]), and through the socket otherwise.
//!
//! It never calls the library unasked (no read-ahead): a crash or a hang is always the call of
//! the job that asked. Nor does it leave a core dump (it holds the corp secret and messages'
//! keys), and it exits when its worker is gone, even while the library holds it in a call.

use std::io::{self, BufReader, BufWriter, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

use rayon::prelude::*;
use secrecy::SecretString;
use serde_bytes::ByteBuf;
use zeroize::Zeroizing;

use super::protocol::{
    read_frame, receive_slots, write_frame, Holds, Request, Response, WireError, WireNet,
};
use crate::sdk::shared_slots::HostSlots;
use crate::sdk::{FinanceSdk, NetOptions, SdkHandle};

/// Serves the worker on standard input until it closes the socket.
pub fn serve(lib: &Path) -> anyhow::Result<()> {
    forbid_core_dumps()?;
    exit_with_parent();
    let sdk = FinanceSdk::load(lib)?;
    let socket = UnixStream::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    // Slots that cannot be mapped leave the chunks to the socket.
    let mut slots = receive_slots(&socket)?.and_then(|fd| HostSlots::map(fd).ok());
    let mut input = BufReader::new(socket.try_clone()?);
    let mut output = BufWriter::new(socket);
    let mut handle: Option<SdkHandle> = None;
    while let Some((request, _)) = read_frame::<Request>(&mut input, Holds::Secrets)? {
        match (&request, handle.as_mut()) {
            (
                Request::GetMediaData {
                    sdkfileid,
                    index,
                    net,
                    slot,
                },
                Some(open),
            ) => {
                let slot = slots.as_mut().zip(*slot);
                send_media_chunk(open, sdkfileid, index, net, slot, &mut output)?;
            }
            _ => write_frame(&mut output, &answer(&sdk, &mut handle, &request), &[])?,
        }
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

/// The response to `request`, which has no payload (a media chunk with a handle open is
/// [`send_media_chunk`]'s).
fn answer(
    sdk: &std::sync::Arc<FinanceSdk>,
    handle: &mut Option<SdkHandle>,
    request: &Request,
) -> Response {
    let failed = |err: crate::sdk::SdkError| Response::Failed(WireError::from(err));
    match request {
        Request::Open { corpid, secret } => {
            let secret = SecretString::from(secret.clone());
            match sdk.open_handle(corpid, &secret) {
                Ok(opened) => {
                    *handle = Some(opened);
                    Response::Opened
                }
                Err(err) => failed(err),
            }
        }
        Request::GetChatData { seq, limit, net } => match handle {
            Some(handle) => match handle.get_chat_data(*seq, *limit, &net_options(net)) {
                Ok(page) => Response::Page(page),
                Err(err) => failed(err),
            },
            None => not_open(),
        },
        Request::GetMediaData { .. } => not_open(),
        // Stateless and thread-safe (docs/SDK.md section 2): the page's messages at once.
        Request::DecryptData { items } => Response::Decrypted(
            items
                .par_iter()
                .map(|(key, message)| {
                    let key = Zeroizing::new(key.to_vec());
                    sdk.decrypt_data(&key, message.as_bytes())
                        .map(ByteBuf::from)
                        .map_err(WireError::from)
                })
                .collect(),
        ),
    }
}

/// `GetMediaData`: the chunk's next index in the response, its bytes copied from the
/// library's own buffer into the lent slot, or else written from there as the payload.
fn send_media_chunk(
    handle: &mut SdkHandle,
    sdkfileid: &str,
    index: &str,
    net: &WireNet,
    slot: Option<(&mut HostSlots, u32)>,
    output: &mut impl Write,
) -> io::Result<()> {
    let sent = handle.get_media_chunk_with(sdkfileid, index, &net_options(net), |data, next| {
        let in_slot = match slot {
            Some((slots, slot)) => slots.write(slot, data).then_some(data.len() as u32),
            None => None,
        };
        let response = Response::Chunk {
            next_index: next,
            in_slot,
        };
        let payload = if in_slot.is_some() { &[][..] } else { data };
        write_frame(output, &response, payload)
    });
    match sent {
        Ok(written) => written,
        Err(err) => write_frame(output, &Response::Failed(WireError::from(err)), &[]),
    }
}

fn not_open() -> Response {
    Response::Failed(WireError::Refused("no handle is open".into()))
}

fn net_options(net: &WireNet) -> NetOptions {
    NetOptions {
        proxy: net.proxy.clone(),
        proxy_password: net.proxy_password.clone().map(SecretString::from),
        timeout_secs: net.timeout_secs,
    }
}
