//! `wecom-archive config <command> [flags]`: what that command would run with, one
//! `NAME=value  # source` line per setting ([`crate::config::effective`]), passwords in URLs as
//! `***`. The command is parsed exactly as it would be, environment included, and not run.

use std::process::ExitCode;

use clap::{Args, CommandFactory};

use super::output::JsonLines;
use super::Cli;
use crate::config::effective::settings;

#[derive(Args)]
pub struct ConfigArgs {
    /// The command and its flags, as it would be run: `worker`, `serve --via-broker`, ...
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

pub fn run(args: &ConfigArgs, out: &mut JsonLines) -> anyhow::Result<ExitCode> {
    let mut root = Cli::command();
    // Built, so that the global settings (the log format) are among each command's.
    root.build();
    let command_line = std::iter::once("wecom-archive".to_owned()).chain(args.command.clone());
    let matches = match root.clone().try_get_matches_from(command_line) {
        Ok(matches) => matches,
        Err(err) => {
            err.print()?;
            return Ok(ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2)));
        }
    };
    for setting in settings(&root, &matches) {
        out.text(&setting.to_string())?;
    }
    Ok(ExitCode::SUCCESS)
}
