//! The Finance SDK in a process of its own. The library is closed and crashes on some inputs
//! and, in the field, on some server answers; in the worker's address space a crash takes every
//! job the worker holds with it. With process isolation (the default) the worker never loads
//! the library: each SDK handle lives in an SDK host, a child process (the same binary, the
//! hidden `sdk-host` subcommand) that serves one call at a time over a socket pair, and a host
//! that dies or hangs costs the one call it was serving.
//!
//! - [`protocol`]: the frames on the socket;
//! - [`serve`]: the host's loop;
//! - [`client`]: the worker's side, [`client::HostProcess`], pooled per corp by
//!   [`crate::job::sdk_pool`].

pub mod client;
pub mod protocol;
pub mod serve;
