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
    /// The signal name for the call log, or `None` for a code.
    pub(crate) fn signal(&self) -> Option<&'static str> {
        match self {
            Fail::Code(_) => None,
            Fail::Abort(_) => Some("SIGABRT"),
            Fail::Segv(_) => Some("SIGSEGV"),
        }
    }
}
