//! The `wecom-archive` binary: reads the command line, claims stdout for the command's output,
//! sets up logging ([`wecom_archive::telemetry::logs`]) and hands the command to
//! [`wecom_archive::cli`]. Any failure exits 2 with one line saying why.
#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use wecom_archive::cli::{self, Cli};
use wecom_archive::config::LogFormat;
use wecom_archive::telemetry::logs;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return refused(&err),
    };
    let format = cli.log_format();
    // Before logging starts: in JSON mode, logging takes file descriptors 1 and 2 over.
    let out = cli::claim_stdout();
    let started = out.and_then(|out| {
        logs::init(format, cli.default_log_filter(), cli.stray_output())?;
        Ok(out)
    });
    let outcome = match started {
        Ok(out) => cli::run(cli, out),
        Err(err) => Err(err.into()),
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            logs::fatal(format, &err);
            ExitCode::from(2)
        }
    }
}

/// A command line clap refused (or `--help`, `--version`): its own text, or in JSON mode one
/// JSON object.
fn refused(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let asked = matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    );
    if asked || !json_asked() {
        err.exit();
    }
    let line = serde_json::json!({
        "level": "ERROR",
        "target": "wecom_archive",
        "fields": {"message": err.render().to_string().trim_end()},
    });
    eprintln!("{line}");
    ExitCode::from(2)
}

/// Whether the command line or the environment asked for JSON logs, read again with the
/// errors ignored: clap refused the command line as a whole.
fn json_asked() -> bool {
    let matches = Cli::command().ignore_errors(true).try_get_matches();
    let format = matches
        .ok()
        .and_then(|m| m.get_one::<LogFormat>("log_format").copied());
    format == Some(LogFormat::Json)
}
