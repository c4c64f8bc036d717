//! How an emulated SDK call ends when it does not succeed: a return code, or one of the two
//! ways the real library kills the process. The operations ([`crate::sdk`],
//! [`crate::decrypt`]) return it; [`crate::ffi`] logs it and then returns the code or crashes.

/// A call that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fail {
    /// The call returns this code and leaves its output alone.
    Code(i32),
    /// The real library aborts here (an uncaught C++ exception): SIGABRT.
    Abort(String),
    /// The real library touches invalid memory here: SIGSEGV.
    Segv(String),
}

impl Fail {
    /// The call log's `rc` and `crash`: the code, or minus the signal number and its name.
    pub(crate) fn logged(&self) -> (i64, Option<&'static str>) {
        match self {
            Fail::Code(code) => (i64::from(*code), None),
            Fail::Abort(_) => (-i64::from(libc::SIGABRT), Some("SIGABRT")),
            Fail::Segv(_) => (-i64::from(libc::SIGSEGV), Some("SIGSEGV")),
        }
    }
}
