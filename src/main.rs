//! The `wecom-archive` binary: sets up logging and hands the command line to
//! [`wecom_archive::cli`].
#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use tracing::{Level, Metadata};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{fmt, EnvFilter};

fn main() -> ExitCode {
    init_logging();
    match wecom_archive::cli::run(wecom_archive::cli::Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Logs go to stderr, as text or (`WECOM_LOG_FORMAT=json`) one JSON object per line; the level
/// comes from `RUST_LOG` (default: info for the worker's own lines, warn for libraries).
/// Whatever it says, the AMQP client's lines that hold message bodies (job bodies, credentials
/// included) are never written: its trace lines (whole frames) and its warning about a returned
/// message (the publisher reports returns itself).
fn init_logging() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,wecom_archive=info"));
    let no_frames = filter_fn(|meta| !holds_message_bodies(meta));
    let layer = fmt::layer().with_writer(std::io::stderr);
    if std::env::var("WECOM_LOG_FORMAT").is_ok_and(|f| f == "json") {
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
