//! What the worker and an SDK host say to each other over their socket: first one byte that
//! carries the memfd of the worker's shared slots ([`crate::sdk::shared_slots`]), if it has
//! them; then one request, then one response, in turn. A frame is a message (4-byte
//! big-endian length, then postcard) followed by a payload of raw bytes (4-byte length, then
//! the bytes). A media chunk is written into the slot its request lent, or, when there was
//! none, travels as the payload, so that its 512 KiB are never encoded.
//!
//! Secrets travel here (the corp secret, the proxy password, the messages' decrypted keys): the
//! socket is a private pair between the two processes, and neither side logs a message.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::sdk::{EncryptedMessage, SdkCode, SdkError, SdkOp};

/// A frame larger than this is refused (a media chunk is 512 KiB; a page of 1,000 messages a
/// few MiB).
const MAX_FRAME: u32 = 64 << 20;

/// What the worker asks of its host, one request at a time; the host answers each with one
/// [`Response`].
#[derive(Serialize, Deserialize)]
pub enum Request {
    /// `NewSdk` + `Init`: the host's one handle.
    Open {
        /// The corp the handle is for.
        corpid: String,
        /// The corp's chat-archive secret, in clear (the socket is private to the pair).
        secret: String,
    },
    /// `GetChatData` on the open handle; answered with [`Response::Page`].
    GetChatData {
        /// Fetch the messages after this `seq` (0 for the corp's first).
        seq: u64,
        /// At most this many messages (1..=1000).
        limit: u32,
        /// Proxy and timeout for the call.
        net: WireNet,
    },
    /// `GetMediaData` on the open handle: one chunk, answered with [`Response::Chunk`].
    GetMediaData {
        /// The media file's id, from the decrypted message.
        sdkfileid: String,
        /// Where the chunk starts: "" for the first, then the previous chunk's `next_index`.
        index: String,
        /// Proxy and timeout for the call.
        net: WireNet,
        /// The shared slot to put the chunk in, if the worker has one free.
        slot: Option<u32>,
    },
    /// `DecryptData` for each (decrypted random key, `encrypt_chat_msg`) of a page.
    DecryptData {
        /// The page's messages; answered in the same order by [`Response::Decrypted`].
        items: Vec<(ByteBuf, String)>,
    },
}

/// [`crate::sdk::NetOptions`] on the wire.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireNet {
    /// The proxy address, without credentials.
    pub proxy: Option<String>,
    /// The proxy's `user:pass`, in clear.
    pub proxy_password: Option<String>,
    /// The call's timeout in seconds (1..=300).
    pub timeout_secs: i32,
}

/// The host's answer to one [`Request`]; any request may instead get [`Response::Failed`].
#[derive(Serialize, Deserialize)]
pub enum Response {
    /// The handle of [`Request::Open`] is ready.
    Opened,
    /// The messages of a `GetChatData` page, still encrypted.
    Page(Vec<EncryptedMessage>),
    /// The chunk's bytes are in the lent slot (`in_slot`: how many), or else the frame's
    /// payload.
    Chunk {
        /// The index of the next chunk; `None` when this was the last.
        next_index: Option<String>,
        /// How many bytes were written to the lent slot; `None` when they are the payload.
        in_slot: Option<u32>,
    },
    /// One result per item of [`Request::DecryptData`], in its order: the plaintext, or why
    /// that message failed.
    Decrypted(Vec<Result<ByteBuf, WireError>>),
    /// The call failed as a whole (or no handle was open).
    Failed(WireError),
}

/// [`SdkError`] on the wire.
#[derive(Debug, Serialize, Deserialize)]
pub enum WireError {
    /// [`SdkError::Code`]: the library returned a non-zero code.
    Code {
        /// The function that returned it.
        op: SdkOp,
        /// The code, as the library returned it.
        raw: i32,
    },
    /// [`SdkError::Server`]: the archive server's `errcode` in a `GetChatData` body.
    Server {
        /// The server's non-zero `errcode`.
        errcode: i64,
        /// The server's `errmsg`, verbatim.
        errmsg: String,
    },
    /// [`SdkError::MalformedResponse`]; also carries a host-side [`SdkError::Host`] as text.
    Malformed {
        /// The function whose output did not parse.
        op: SdkOp,
        /// What was wrong, for the log.
        reason: String,
    },
    /// An input the host's guards refused; the worker's own guards refuse them first, so this
    /// only reaches a worker and a host of different versions.
    Refused(String),
}

impl From<SdkError> for WireError {
    fn from(err: SdkError) -> Self {
        match err {
            SdkError::Code { op, code } => Self::Code {
                op,
                raw: code.raw(),
            },
            SdkError::Server { errcode, errmsg } => Self::Server { errcode, errmsg },
            SdkError::MalformedResponse { op, reason } => Self::Malformed { op, reason },
            SdkError::Refused(refused) => Self::Refused(refused.to_string()),
            SdkError::Host { op, failure } => Self::Malformed {
                op,
                reason: failure.to_string(),
            },
        }
    }
}

impl WireError {
    /// Back to an [`SdkError`] on the worker's side; `op` is the call the worker made, used
    /// where the wire error names none. A refusal becomes a malformed response.
    pub fn into_sdk_error(self, op: SdkOp) -> SdkError {
        match self {
            Self::Code { op, raw } => SdkError::Code {
                op,
                code: SdkCode::from_raw(raw),
            },
            Self::Server { errcode, errmsg } => SdkError::Server { errcode, errmsg },
            Self::Malformed { op, reason } => SdkError::MalformedResponse { op, reason },
            Self::Refused(reason) => SdkError::MalformedResponse {
                op,
                reason: format!("the SDK host refused the input: {reason}"),
            },
        }
    }
}

/// Sends the socket's first byte, with the shared slots' memfd when there is one.
pub fn send_slots(socket: &UnixStream, slots: Option<&OwnedFd>) -> io::Result<()> {
    let fds = slots.map(|fd| [fd.as_fd()]);
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if let Some(fds) = &fds {
        control.push(SendAncillaryMessage::ScmRights(fds));
    }
    rustix::net::sendmsg(
        socket,
        &[IoSlice::new(&[1])],
        &mut control,
        SendFlags::empty(),
    )?;
    Ok(())
}

/// Receives the socket's first byte, and the shared slots' memfd if it came with it.
pub fn receive_slots(socket: &UnixStream) -> io::Result<Option<OwnedFd>> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let received = rustix::net::recvmsg(
        socket,
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    if received.bytes != 1 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let fd = control.drain().find_map(|message| match message {
        RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
        _ => None,
    });
    Ok(fd)
}

/// Whether a frame read may hold a secret (a request: the corp secret, a proxy password,
/// messages' keys) and is wiped once decoded; responses hold none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    /// A [`Request`], read by the host: the frame's bytes are wiped after decoding.
    Secrets,
    /// A [`Response`], read by the worker: nothing to wipe.
    NoSecret,
}

/// Writes one message and its payload (empty for all but a media chunk) as a frame.
pub fn write_frame(
    out: &mut impl Write,
    message: &impl Serialize,
    payload: &[u8],
) -> io::Result<()> {
    let bytes = zeroize::Zeroizing::new(postcard::to_stdvec(message).map_err(io::Error::other)?);
    for part in [&bytes[..], payload] {
        let len = u32::try_from(part.len())
            .ok()
            .filter(|len| *len <= MAX_FRAME)
            .ok_or_else(|| io::Error::other("a frame over 64 MiB"))?;
        out.write_all(&len.to_be_bytes())?;
        out.write_all(part)?;
    }
    out.flush()
}

/// Reads one frame: its message and payload; `Ok(None)` when the other side closed the socket
/// between frames.
pub fn read_frame<T: for<'de> Deserialize<'de>>(
    input: &mut impl Read,
    holds: Holds,
) -> io::Result<Option<(T, Vec<u8>)>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err),
    }
    let mut bytes = read_part(input, len)?;
    let message = postcard::from_bytes(&bytes).map_err(io::Error::other);
    if holds == Holds::Secrets {
        zeroize::Zeroize::zeroize(&mut bytes);
    }
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let payload = read_part(input, len)?;
    Ok(Some((message?, payload)))
}

fn read_part(input: &mut impl Read, len: [u8; 4]) -> io::Result<Vec<u8>> {
    let len = u32::from_be_bytes(len);
    if len > MAX_FRAME {
        return Err(io::Error::other("a frame over 64 MiB"));
    }
    // Read into spare capacity: a media chunk is not zeroed first only to be overwritten.
    let mut bytes = Vec::with_capacity(len as usize);
    input.take(u64::from(len)).read_to_end(&mut bytes)?;
    if bytes.len() != len as usize {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_a_closed_socket_reads_as_none() {
        let mut wire = Vec::new();
        let request = Request::GetMediaData {
            sdkfileid: "id".into(),
            index: "Range:bytes=0-15".into(),
            net: WireNet {
                proxy: None,
                proxy_password: None,
                timeout_secs: 5,
            },
            slot: Some(2),
        };
        write_frame(&mut wire, &request, &[]).unwrap();
        let failed = Response::Failed(WireError::Code {
            op: SdkOp::GetMediaData,
            raw: 10001,
        });
        write_frame(&mut wire, &failed, &[]).unwrap();
        let chunk = Response::Chunk {
            next_index: None,
            in_slot: None,
        };
        write_frame(&mut wire, &chunk, &[7u8; 1000]).unwrap();
        let mut input = &wire[..];
        assert!(matches!(
            read_frame::<Request>(&mut input, Holds::Secrets).unwrap(),
            Some((Request::GetMediaData { index, slot: Some(2), .. }, payload))
                if index == "Range:bytes=0-15" && payload.is_empty()
        ));
        let Some((Response::Failed(error), _)) =
            read_frame::<Response>(&mut input, Holds::NoSecret).unwrap()
        else {
            panic!()
        };
        assert!(matches!(
            error.into_sdk_error(SdkOp::GetMediaData),
            SdkError::Code {
                code: SdkCode::Network,
                ..
            }
        ));
        let Some((
            Response::Chunk {
                next_index: None,
                in_slot: None,
            },
            payload,
        )) = read_frame::<Response>(&mut input, Holds::NoSecret).unwrap()
        else {
            panic!()
        };
        assert_eq!(payload, [7u8; 1000]);
        assert!(read_frame::<Request>(&mut input, Holds::Secrets)
            .unwrap()
            .is_none());
    }

    #[test]
    fn an_oversized_frame_is_refused_before_it_is_read() {
        let mut input = &(MAX_FRAME + 1).to_be_bytes()[..];
        assert!(read_frame::<Request>(&mut input, Holds::Secrets).is_err());
    }
}
