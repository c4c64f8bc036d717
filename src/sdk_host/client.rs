//! The worker's side of an SDK host: [`HostProcess`] starts one (the same binary, `sdk-host`),
//! opens its handle for one corp, and makes the calls a [`crate::sdk::SdkHandle`] would make, one
//! at a time. The worker's own guards check every input first, exactly as for the library in
//! process, so a refused input keeps its code and a known crashing input never leaves the
//! worker.
//!
//! A call whose host dies (a signal, an abort, an exit) fails with [`HostFailure::Died`], naming
//! the signal; one that gets no answer within the call timeout kills its host and fails with
//! [`HostFailure::Hung`]. Either way the host is done with: the pool discards it (the error is
//! transient) and the next call of that corp starts another. One call at a time per host means
//! a crash is charged to exactly the job whose call caused it.
//!
//! Each host gets a few slots of memory shared with the worker
//! ([`crate::sdk::shared_slots`]): a media call lends it a free one, and the chunk the host
//! copies there is hashed and written by the worker where it lies, so that a large download
//! costs no more CPU than with the library in process. With every slot held, a chunk comes
//! through the socket.

use std::io::{self, BufReader, BufWriter};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_bytes::ByteBuf;
use zeroize::Zeroizing;

use super::protocol::{read_frame, send_slots, write_frame, Holds, Request, Response, WireNet};
use crate::sdk::guard;
use crate::sdk::shared_slots::{Lent, SharedSlots};
use crate::sdk::{
    ChunkBytes, EncryptedMessage, HostFailure, MediaChunk, NetOptions, SdkError, SdkOp,
};

/// Socket buffer size each way: a media chunk (512 KiB) and its frame.
const SOCKET_BUFFER: usize = 1 << 20;

/// How to start hosts: the binary, the library, and how long a call may take.
#[derive(Debug, Clone)]
pub struct HostSpawner {
    /// The `wecom-archive` binary (this process's own, normally).
    pub exe: PathBuf,
    /// The Finance SDK (`libWeWorkFinanceSdk_C.so`) each host loads with `--lib`.
    pub lib: PathBuf,
    /// A network call (`GetChatData`, `GetMediaData`) not answered within this is taken for a
    /// hang: its host is killed.
    pub call_timeout: Duration,
}

/// A running SDK host with a handle open for one corp.
pub struct HostProcess {
    child: Child,
    input: BufReader<UnixStream>,
    output: BufWriter<UnixStream>,
    call_timeout: Duration,
    /// A call failed on the host itself: it is dead or killed.
    dead: bool,
    /// Memory the host writes media chunks into; `None` if it could not be made (the chunks
    /// then come through the socket).
    slots: Option<SharedSlots>,
}

/// The longest an `Init` or a page's `DecryptData` (no network I/O) may take.
const LOCAL_CALL_TIMEOUT: Duration = Duration::from_secs(60);

impl HostSpawner {
    /// Checks that a host can load the library (and exits at once).
    pub fn probe(&self) -> anyhow::Result<()> {
        let output = Command::new(&self.exe)
            .args(["sdk-host", "--probe", "--lib"])
            .arg(&self.lib)
            .output()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", self.exe.display()))?;
        if !output.status.success() {
            anyhow::bail!(
                "an SDK host cannot load {}: {}",
                self.lib.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    /// Starts a host and opens its handle for `corpid` with `secret`.
    pub fn spawn(&self, corpid: &str, secret: &SecretString) -> Result<HostProcess, SdkError> {
        let unusable = |reason: String| SdkError::Host {
            op: SdkOp::Init,
            failure: HostFailure::Unusable { reason },
        };
        // The same checks as in process, before anything leaves the worker.
        guard::c_id("corpid", corpid)?;
        guard::c_id("secret", secret.expose_secret())?;
        let (ours, theirs) = UnixStream::pair().map_err(|e| unusable(e.to_string()))?;
        // Room for a whole 512 KiB chunk in flight: the host writes it in one go instead of in
        // turns with the worker's reads.
        for end in [&ours, &theirs] {
            rustix::net::sockopt::set_socket_send_buffer_size(end, SOCKET_BUFFER)
                .and_then(|()| {
                    rustix::net::sockopt::set_socket_recv_buffer_size(end, SOCKET_BUFFER)
                })
                .map_err(|e| unusable(e.to_string()))?;
        }
        // Everything that can fail is done before the host starts: a started one is always
        // owned by a HostProcess, whose Drop ends and reaps it.
        let (slots, slots_fd) = match SharedSlots::create() {
            Ok((slots, fd)) => (Some(slots), Some(fd)),
            Err(_) => (None, None),
        };
        // The socket's first byte, read by the host once it runs; never blocks (an empty
        // socket). The worker's copy of the memfd closes at the end of this function.
        send_slots(&ours, slots_fd.as_ref()).map_err(|e| unusable(e.to_string()))?;
        let reader = ours.try_clone().map_err(|e| unusable(e.to_string()))?;
        let chatter = io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| unusable(e.to_string()))?;
        let child = Command::new(&self.exe)
            .arg("sdk-host")
            .arg("--lib")
            .arg(&self.lib)
            // Not the worker's environment: it holds the broker URL, password included.
            .env_clear()
            .envs(std::env::vars_os().filter(|(name, _)| passed_to_hosts(name)))
            .envs(
                std::env::var_os(TUNABLES)
                    .is_none()
                    .then_some((TUNABLES, HOST_MALLOC)),
            )
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            // The library's own chatter on stdout lands in the worker's log stream.
            .stdout(Stdio::from(chatter))
            .spawn()
            .map_err(|e| unusable(format!("cannot start {}: {e}", self.exe.display())))?;
        let mut host = HostProcess {
            child,
            input: BufReader::new(reader),
            output: BufWriter::new(ours),
            call_timeout: self.call_timeout,
            dead: false,
            slots,
        };
        let open = Request::Open {
            corpid: corpid.to_owned(),
            secret: secret.expose_secret().to_owned(),
        };
        match host.call(SdkOp::Init, &open)?.0 {
            Response::Opened => Ok(host),
            Response::Failed(err) => Err(err.into_sdk_error(SdkOp::Init)),
            other => Err(unexpected(SdkOp::Init, other)),
        }
    }
}

/// glibc's settings, which a host takes from the worker's environment when it has them.
const TUNABLES: &str = "GLIBC_TUNABLES";

/// A host's malloc, unless the worker's environment says otherwise: media chunks (512 KiB, in
/// the library and in the host) from the heap, not from a fresh mapping each, and freed memory
/// kept for the next chunk rather than handed back to the kernel. Otherwise every chunk costs
/// its pages faulted in again (a tenth of the host's time on a large file).
const HOST_MALLOC: &str =
    "glibc.malloc.mmap_threshold=4194304:glibc.malloc.trim_threshold=33554432";

/// The environment variables a host gets: what the library's process needs and the logs', and
/// the emulator's settings in tests. Never the worker's broker or key settings.
fn passed_to_hosts(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    [
        "PATH",
        "LD_LIBRARY_PATH",
        "TMPDIR",
        "RUST_LOG",
        "RUST_BACKTRACE",
        "WECOM_LOG_FORMAT",
        "MALLOC_ARENA_MAX",
        TUNABLES,
    ]
    .contains(&name.as_ref())
        || name.starts_with("WECOM_EMULATOR_")
}

impl HostProcess {
    /// Sends `request` and waits for the answer, within the call timeout (a network call's), or
    /// within at most [`LOCAL_CALL_TIMEOUT`] for a call that does no network I/O.
    fn call(&mut self, op: SdkOp, request: &Request) -> Result<(Response, Vec<u8>), SdkError> {
        let timeout = match op {
            SdkOp::GetChatData | SdkOp::GetMediaData => self.call_timeout,
            SdkOp::Init | SdkOp::DecryptData => self.call_timeout.min(LOCAL_CALL_TIMEOUT),
        };
        let stream = self.output.get_ref();
        let timed = stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)));
        let answered = timed
            .and_then(|()| write_frame(&mut self.output, request, &[]))
            .and_then(|()| read_frame::<Response>(&mut self.input, Holds::NoSecret));
        let failure = match answered {
            Ok(Some(answer)) => return Ok(answer),
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                let _ = self.child.kill();
                let _ = self.child.wait();
                HostFailure::Hung {
                    secs: timeout.as_secs(),
                }
            }
            // The socket closed or broke, or the answer made no sense: the host is done with.
            Ok(None) | Err(_) => HostFailure::Died { how: self.death() },
        };
        self.dead = true;
        Err(SdkError::Host { op, failure })
    }

    /// Whether the host is still there to take calls (a pool asks before lending it again).
    pub fn is_alive(&mut self) -> bool {
        !self.dead && matches!(self.child.try_wait(), Ok(None))
    }

    /// How the host ended. One still running (it answered nonsense) is killed first, so that
    /// the wait returns; killing one already dead changes nothing.
    fn death(&mut self) -> String {
        let _ = self.child.kill();
        match self.child.wait() {
            Ok(status) => match status.signal() {
                Some(signal) => format!("killed by signal {signal}{}", signal_name(signal)),
                None => format!("exited with status {}", status.code().unwrap_or(-1)),
            },
            Err(err) => format!("its status is unknown: {err}"),
        }
    }

    /// `GetChatData`, as [`crate::sdk::SdkHandle::get_chat_data`].
    pub fn get_chat_data(
        &mut self,
        seq: u64,
        limit: u32,
        net: &NetOptions,
    ) -> Result<Vec<EncryptedMessage>, SdkError> {
        guard::limit(limit)?;
        let request = Request::GetChatData {
            seq,
            limit,
            net: wire_net(net)?,
        };
        match self.call(SdkOp::GetChatData, &request)?.0 {
            Response::Page(page) => Ok(page),
            Response::Failed(err) => Err(err.into_sdk_error(SdkOp::GetChatData)),
            other => Err(unexpected(SdkOp::GetChatData, other)),
        }
    }

    /// `GetMediaData`, as [`crate::sdk::SdkHandle::get_media_chunk`].
    pub fn get_media_chunk(
        &mut self,
        sdkfileid: &str,
        index: &str,
        net: &NetOptions,
    ) -> Result<MediaChunk, SdkError> {
        guard::c_id("sdkfileid", sdkfileid)?;
        guard::media_index(index)?;
        let lent = self.slots.as_ref().and_then(SharedSlots::lend);
        let request = Request::GetMediaData {
            sdkfileid: sdkfileid.to_owned(),
            index: index.to_owned(),
            net: wire_net(net)?,
            slot: lent.as_ref().map(Lent::index),
        };
        match self.call(SdkOp::GetMediaData, &request)? {
            (
                Response::Chunk {
                    next_index,
                    in_slot: Some(len),
                },
                _,
            ) => match lent.and_then(|lent| lent.filled(len as usize)) {
                Some(data) => Ok(MediaChunk {
                    data: ChunkBytes::Shared(data),
                    next_index,
                }),
                None => {
                    self.dead = true;
                    Err(SdkError::Host {
                        op: SdkOp::GetMediaData,
                        failure: HostFailure::Unusable {
                            reason: "it answered with a slot it was not lent, or more bytes than \
                                     a slot holds"
                                .into(),
                        },
                    })
                }
            },
            (
                Response::Chunk {
                    next_index,
                    in_slot: None,
                },
                data,
            ) => Ok(MediaChunk {
                data: data.into(),
                next_index,
            }),
            (Response::Failed(err), _) => Err(err.into_sdk_error(SdkOp::GetMediaData)),
            (other, _) => Err(unexpected(SdkOp::GetMediaData, other)),
        }
    }

    /// `DecryptData` for each (decrypted random key, `encrypt_chat_msg`) of a page, in one call.
    /// Inputs the guard refuses (those known to crash the library) never leave the worker.
    pub fn decrypt_batch(
        &mut self,
        items: &[(Zeroizing<Vec<u8>>, &str)],
    ) -> Result<Vec<Result<Vec<u8>, SdkError>>, SdkError> {
        let mut results: Vec<Option<Result<Vec<u8>, SdkError>>> = Vec::with_capacity(items.len());
        let mut sent = Vec::new();
        for (key, message) in items {
            match guard::decrypt_inputs(key, message.as_bytes()) {
                Ok(_) => {
                    results.push(None);
                    sent.push((ByteBuf::from(key.to_vec()), (*message).to_owned()));
                }
                Err(refused) => results.push(Some(Err(refused.into()))),
            }
        }
        let answers = match self
            .call(SdkOp::DecryptData, &Request::DecryptData { items: sent })?
            .0
        {
            Response::Decrypted(answers) => answers,
            Response::Failed(err) => return Err(err.into_sdk_error(SdkOp::DecryptData)),
            other => return Err(unexpected(SdkOp::DecryptData, other)),
        };
        let mut answers = answers.into_iter();
        results
            .into_iter()
            .map(|result| match result {
                Some(refused) => Ok(refused),
                None => match answers.next() {
                    Some(answer) => Ok(answer
                        .map(ByteBuf::into_vec)
                        .map_err(|err| err.into_sdk_error(SdkOp::DecryptData))),
                    None => Err(unexpected_count()),
                },
            })
            .collect()
    }
}

/// How long a host whose socket was closed may take to destroy its handle and exit.
const EXIT_GRACE: Duration = Duration::from_secs(1);

impl Drop for HostProcess {
    fn drop(&mut self) {
        // Closing the socket ends an idle host's loop: it destroys its handle and exits at once.
        // One still busy in a call (or stuck) is killed after a moment.
        let _ = self.output.get_ref().shutdown(std::net::Shutdown::Both);
        let deadline = std::time::Instant::now() + EXIT_GRACE;
        while std::time::Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wire_net(net: &NetOptions) -> Result<WireNet, SdkError> {
    guard::proxy(net.proxy.as_deref().unwrap_or(""))?;
    let password = net
        .proxy_password
        .as_ref()
        .map(|p| p.expose_secret().to_owned());
    guard::c_string("proxy password", password.as_deref().unwrap_or(""))?;
    guard::timeout(net.timeout_secs)?;
    Ok(WireNet {
        proxy: net.proxy.clone(),
        proxy_password: password,
        timeout_secs: net.timeout_secs,
    })
}

fn unexpected(op: SdkOp, _answer: Response) -> SdkError {
    SdkError::Host {
        op,
        failure: HostFailure::Unusable {
            reason: "it answered another request".into(),
        },
    }
}

fn unexpected_count() -> SdkError {
    SdkError::Host {
        op: SdkOp::DecryptData,
        failure: HostFailure::Unusable {
            reason: "it answered fewer messages than it was sent".into(),
        },
    }
}

/// ` (SIGABRT)` for the signals a crashing library raises.
fn signal_name(signal: i32) -> &'static str {
    match signal {
        4 => " (SIGILL)",
        6 => " (SIGABRT)",
        7 => " (SIGBUS)",
        8 => " (SIGFPE)",
        9 => " (SIGKILL)",
        11 => " (SIGSEGV)",
        _ => "",
    }
}
