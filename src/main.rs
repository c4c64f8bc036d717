//! The `wecom-archive` binary: sets up logging and hands the command line to
//! [`wecom_archive::cli`].
#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

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
fn init_logging() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,wecom_archive=info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    if std::env::var("WECOM_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().with_current_span(true).init();
    } else {
        builder.init();
    }
}
