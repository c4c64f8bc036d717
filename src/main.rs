//! The `wecom-archive` binary: sets up logging and hands the command line to
//! [`wecom_archive::cli`].
#![deny(unsafe_code)]

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing::{Level, Metadata};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{fmt, EnvFilter};
use wecom_archive::config::LogFormat;

fn main() -> ExitCode {
    let cli = wecom_archive::cli::Cli::parse();
    init_logging(cli.log_format(), cli.default_log_filter());
    match wecom_archive::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Logs go to stderr, as text (coloured at a terminal only) or (`WECOM_LOG_FORMAT=json`) one
/// JSON object per line; the level comes from `RUST_LOG`, else the command's default
/// (`default_filter`).
/// Whatever it says, the AMQP client's lines that hold message bodies (job bodies, credentials
/// included) are never written: its trace lines (whole frames) and its warning about a returned
/// message (the publisher reports returns itself).
fn init_logging(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let no_frames = filter_fn(|meta| !holds_message_bodies(meta));
    // Colour only for a person at a terminal: a file or a container log gets plain text.
    let layer = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if format == LogFormat::Json {
        let layer = layer.json().with_current_span(true);
        tracing_subscriber::registry()
            .with(layer.with_filter(filter).with_filter(no_frames))
            .init();
    } else {
        tracing_subscriber::registry()
            .with(layer.with_filter(filter).with_filter(no_frames))
            .init();
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
