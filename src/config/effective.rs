//! `wecom-archive config <command> [flags]`: the settings a command would run with, read as the
//! command reads them (flags, then `WECOM_*` variables, then defaults), one line each, so an
//! operator can see what a container actually runs with. A password in a URL is shown as
//! `***`; the secrets themselves live in files, whose paths are shown.

use clap::parser::ValueSource;
use clap::{ArgMatches, Command};

use crate::redaction::url_without_password;

/// One setting as a command would run with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The variable that sets it (`WECOM_PREFETCH`), or its flag (`--count`) when it has none.
    pub name: String,
    /// Its value, with any URL's password as `***`; `None` when unset.
    pub value: Option<String>,
    /// Where the value came from: `flag`, `env`, `default`, or `unset`.
    pub source: &'static str,
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = self.value.as_deref().unwrap_or("");
        write!(f, "{}={value}  # {}", self.name, self.source)
    }
}

/// The settings of the command that `matches` (parsed with `root`) names, deepest subcommand
/// first found, in the order they are declared.
pub fn settings(root: &Command, matches: &ArgMatches) -> Vec<Setting> {
    let (mut command, mut matches) = (root, matches);
    while let Some((name, sub_matches)) = matches.subcommand() {
        command = command
            .find_subcommand(name)
            .expect("a parsed subcommand is declared");
        matches = sub_matches;
    }
    command
        .get_arguments()
        .filter(|arg| !matches!(arg.get_id().as_str(), "help" | "version"))
        .map(|arg| {
            let id = arg.get_id().as_str();
            let name = match arg.get_env() {
                Some(env) => env.to_string_lossy().into_owned(),
                None => format!("--{}", arg.get_long().unwrap_or(id)),
            };
            let value = matches.get_raw(id).map(|values| {
                let values: Vec<String> = values
                    .map(|value| url_without_password(&value.to_string_lossy()))
                    .collect();
                values.join(",")
            });
            let source = match matches.value_source(id) {
                Some(ValueSource::CommandLine) => "flag",
                Some(ValueSource::EnvVariable) => "env",
                Some(ValueSource::DefaultValue) => "default",
                _ => "unset",
            };
            Setting {
                name,
                value,
                source,
            }
        })
        .collect()
}
