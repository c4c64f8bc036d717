//! Where every command's log lines go: stderr, as text (coloured at a terminal only) or, with
//! `--log-format json` (`WECOM_LOG_FORMAT=json`), one JSON object per line.
//!
//! In JSON mode nothing else may reach stderr as plain text, or a log collector gets lines it
//! cannot parse. So [`init`] keeps the real stderr for the log lines alone and points file
//! descriptors 1 and 2 at a pipe: whatever else is written there (the Finance SDK's own prints,
//! an SDK host's output, a panic's message) is read back line by line and logged as an event
//! of its own target ([`STRAY_OUTPUT`]), and a line that already is a JSON object (an SDK
//! host's own log line) is passed on as it is. The CLI's own stdout was claimed before
//! ([`crate::cli::JsonLines`]), so its output is not affected.
//!
//! Whatever `RUST_LOG` says, the AMQP client's lines that hold message bodies (job bodies,
//! credentials included) are never written: its trace lines (whole frames) and its warning
//! about a returned message (the publisher reports returns itself).

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Write};
use std::os::fd::AsFd;
use std::sync::Arc;

use tracing::{Level, Metadata};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogFormat;

/// The target of a line something other than the logger wrote to stdout or stderr.
pub const STRAY_OUTPUT: &str = "wecom_archive::stray_output";

/// How a process treats what is written to its stdout and stderr besides its log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrayOutput {
    /// In JSON mode, read back and logged as events (see the module's doc).
    Logged,
    /// Left as it is: an SDK host's, whose stdout and stderr are its worker's, which logs them.
    /// (A host is killed at once when its handle is discarded: lines it had yet to log itself
    /// would be lost.)
    PassedOn,
}

/// Sets the process's logger up; `default_filter` applies when `RUST_LOG` sets none.
pub fn init(format: LogFormat, default_filter: &str, stray: StrayOutput) -> io::Result<()> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let no_frames = filter_fn(|meta| !holds_message_bodies(meta));
    match format {
        LogFormat::Text => {
            // Colour only for a person at a terminal: a file or a container log gets plain text.
            let layer = fmt::layer()
                .with_writer(io::stderr)
                .with_ansi(io::stderr().is_terminal());
            tracing_subscriber::registry()
                .with(layer.with_filter(filter).with_filter(no_frames))
                .init();
        }
        LogFormat::Json => {
            let log_lines = Arc::new(File::from(io::stderr().as_fd().try_clone_to_owned()?));
            let layer = fmt::layer()
                .json()
                .with_current_span(true)
                .with_writer(Arc::clone(&log_lines));
            tracing_subscriber::registry()
                .with(layer.with_filter(filter).with_filter(no_frames))
                .init();
            if stray == StrayOutput::Logged {
                capture_stray_output(log_lines)?;
            }
        }
    }
    Ok(())
}

/// A fatal error, as the last line of a command: an event in JSON mode, `error: ...` in text.
pub fn fatal(format: LogFormat, error: &anyhow::Error) {
    match format {
        LogFormat::Json => tracing::error!("{error:#}"),
        LogFormat::Text => eprintln!("error: {error:#}"),
    }
}

/// Points stdout and stderr at a pipe whose lines become log events (see the module's doc).
fn capture_stray_output(log_lines: Arc<File>) -> io::Result<()> {
    let (reader, writer) = io::pipe()?;
    rustix::stdio::dup2_stderr(writer.as_fd())?;
    rustix::stdio::dup2_stdout(writer.as_fd())?;
    drop(writer);
    std::thread::Builder::new()
        .name("stray-output".to_owned())
        .stack_size(64 * 1024)
        .spawn(move || {
            // Bytes, not text: a line that is not UTF-8 must not stop the reading (a pipe
            // nobody reads would fail every later write to stderr).
            let mut reader = BufReader::new(reader);
            let mut line = Vec::new();
            while reader
                .read_until(b'\n', &mut line)
                .is_ok_and(|read| read > 0)
            {
                log_stray_line(&String::from_utf8_lossy(&line), &log_lines);
                line.clear();
            }
        })?;
    Ok(())
}

/// One line of stray output: passed on if it is a JSON object already, else logged.
fn log_stray_line(line: &str, log_lines: &File) {
    let line = line.trim_end();
    if line.is_empty() {
        return;
    }
    let is_object =
        line.starts_with('{') && serde_json::from_str::<serde::de::IgnoredAny>(line).is_ok();
    if is_object {
        let _ = (&*log_lines).write_all(format!("{line}\n").as_bytes());
    } else {
        tracing::info!(target: STRAY_OUTPUT, "{line}");
    }
}

/// A line of the AMQP client (or its protocol and promise crates) that may hold a message body.
fn holds_message_bodies(meta: &Metadata<'_>) -> bool {
    const AMQP_CLIENT: [&str; 3] = ["lapin", "amq_protocol", "pinky_swear"];
    let client = AMQP_CLIENT
        .iter()
        .any(|target| meta.target().starts_with(target));
    client && (*meta.level() == Level::TRACE || meta.target() == "lapin::returned_messages")
}
