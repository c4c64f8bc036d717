//! `wecom-archive config <command> [flags]`: the settings a command would run with, read as the
//! command reads them (flags, then `WECOM_*` variables, then defaults), one line each, so an
//! operator can see what a container actually runs with. A password in a URL is shown as
//! `***`; the secrets themselves live in files, whose paths are shown.

use clap::parser::ValueSource;
use clap::{ArgMatches, Command};

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
                    .map(|value| without_password(&value.to_string_lossy()))
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

/// `value` with the password of any `scheme://user:password@host` in it replaced by `***`
/// (a comma-separated list of URLs included).
pub fn without_password(value: &str) -> String {
    value
        .split(',')
        .map(|part| {
            let Some(scheme_end) = part.find("://") else {
                return part.to_owned();
            };
            let authority_start = scheme_end + 3;
            let authority_end = part[authority_start..]
                .find(['/', '?', '#'])
                .map_or(part.len(), |end| authority_start + end);
            let authority = &part[authority_start..authority_end];
            match (authority.rfind('@'), authority.find(':')) {
                (Some(at), Some(colon)) if colon < at => format!(
                    "{}{}:***{}",
                    &part[..authority_start],
                    &authority[..colon],
                    &part[authority_start + at..]
                ),
                _ => part.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_hidden_and_the_rest_kept() {
        assert_eq!(
            without_password("amqp://guest:s3cr3t@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            without_password("amqps://u:p@a:5671/v,amqps://u:p@b:5671/v"),
            "amqps://u:***@a:5671/v,amqps://u:***@b:5671/v"
        );
        assert_eq!(without_password("http://proxy:3128"), "http://proxy:3128");
        assert_eq!(
            without_password("socks5://me:p:w@d@proxy:1080"),
            "socks5://me:***@proxy:1080"
        );
        assert_eq!(without_password("/var/lib/media"), "/var/lib/media");
    }
}
