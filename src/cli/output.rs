//! The CLI's own stdout, kept apart from the library's.
//!
//! The real Finance SDK prints to stdout on token failures, which would corrupt JSON lines a
//! script reads from us. Before the library is loaded, [`claim_stdout`] keeps a private copy
//! of stdout for our output and points file descriptor 1 at stderr, where the library's
//! chatter lands next to our logs.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::AsFd;

use serde::Serialize;

/// Writes one JSON document per line to the real stdout.
pub struct JsonLines {
    out: BufWriter<File>,
}

impl JsonLines {
    /// `value` as one line of JSON; buffered until [`JsonLines::flush`] or a
    /// [`JsonLines::text`].
    pub fn line(&mut self, value: &impl Serialize) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, value)?;
        self.out.write_all(b"\n")
    }

    /// A line for a person, shown at once.
    pub fn text(&mut self, text: &str) -> io::Result<()> {
        writeln!(self.out, "{text}")?;
        self.out.flush()
    }

    /// Writes out the lines buffered so far.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Takes stdout for the CLI's output and sends anything else written to fd 1 to stderr.
pub fn claim_stdout() -> io::Result<JsonLines> {
    let ours = io::stdout().as_fd().try_clone_to_owned()?;
    rustix::stdio::dup2_stdout(io::stderr().as_fd())?;
    Ok(JsonLines {
        out: BufWriter::new(File::from(ours)),
    })
}
