//! Every setting of every command, declared once. Each `WECOM_*` variable is a field of one of
//! the structs here, with its flag, its default, its unit (in its name: `_secs`, `_bytes`) and
//! its meaning (the doc comment, which is also the flag's `--help` text); a command flattens
//! the structs it needs. `wecom-archive config <command>` prints what a command would run with
//! ([`effective`]).
//!
//! - [`BrokerConfig`], [`TopologyConfig`]: the broker and what the worker and `topology apply`
//!   agree on;
//! - [`CoreConfig`], [`RetryConfig`]: the job core (the SDK, the corps, the media store, the
//!   pools and the retry policy), the same for every door;
//! - [`WorkerConfig`]: how much the worker takes at once, and its endpoints;
//! - [`GatewayConfig`]: the HTTP door;
//! - [`SdkLibConfig`], [`CorpConfig`], [`NetConfig`]: the SDK library, and one corp for the
//!   commands that call the SDK directly;
//! - [`LogFormat`]: how every command logs.
//!
//! Every struct's [`Default`] is its declared defaults ([`defaults`]), so code and tests write
//! only what differs. Durations and limits that are not settings sit at the top of the module
//! they steer, each with the reason for its value.

mod broker;
mod checks;
mod core;
pub mod effective;
mod gateway;
mod log;
mod sdk;
mod worker;

pub use self::core::{CoreConfig, Isolation, RetryConfig};
pub use broker::{BrokerConfig, TopologyConfig};
pub use checks::MAX_RETRY_DELAY_SECS;
use checks::{at_least_one, retry_delay};
pub use gateway::GatewayConfig;
pub use log::LogFormat;
pub use sdk::{CorpConfig, NetConfig, SdkLibConfig};
pub use worker::WorkerConfig;

use clap::{Args, Command, FromArgMatches};

/// `T` with every setting at its declared default, as a command given no flag and no
/// environment would have it.
///
/// ```
/// use wecom_archive::config::{defaults, WorkerConfig};
///
/// let worker: WorkerConfig = defaults();
/// assert_eq!(worker.prefetch, 8);
/// ```
pub fn defaults<T: Args + FromArgMatches>() -> T {
    // The environment is not read: a default must not depend on where it is asked for.
    let command = T::augment_args(Command::new("defaults")).mut_args(|arg| arg.env(None));
    let matches = command
        .try_get_matches_from(["defaults"])
        .expect("every setting has a default or is optional");
    T::from_arg_matches(&matches).expect("the defaults parse")
}

/// `Default` as the declared defaults, for each settings struct.
macro_rules! default_is_declared {
    ($($settings:ty),* $(,)?) => {
        $(impl Default for $settings {
            fn default() -> Self {
                defaults()
            }
        })*
    };
}

default_is_declared!(
    BrokerConfig,
    TopologyConfig,
    CoreConfig,
    RetryConfig,
    WorkerConfig,
    GatewayConfig,
    SdkLibConfig,
    CorpConfig,
    NetConfig,
);

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn every_setting_of_every_command_is_in_the_configuration_reference() {
        let mut root = crate::cli::Cli::command();
        root.build();
        let mut variables = std::collections::BTreeSet::new();
        let mut commands = vec![root];
        while let Some(command) = commands.pop() {
            variables.extend(
                command
                    .get_arguments()
                    .filter_map(|arg| arg.get_env())
                    .map(|env| env.to_string_lossy().into_owned()),
            );
            commands.extend(command.get_subcommands().cloned());
        }
        assert!(
            variables.len() >= 30,
            "the walk found too few: {variables:?}"
        );
        let page = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
        let page = std::fs::read_to_string(page).unwrap();
        let missing: Vec<_> = variables
            .iter()
            .filter(|variable| !page.contains(&format!("`{variable}`")))
            .collect();
        assert!(
            missing.is_empty(),
            "not in docs/configuration.md: {missing:?}"
        );
    }

    #[test]
    fn defaults_are_the_declared_ones_whatever_the_environment() {
        // One process per test (nextest): setting a variable here touches no other test.
        std::env::set_var("WECOM_PREFETCH", "3");
        let worker = WorkerConfig::default();
        assert_eq!(worker.prefetch, 8);
        assert_eq!(worker.topology.delivery_limit, 5);
        assert_eq!(
            worker.amqp.amqp_url,
            "amqp://guest:guest@127.0.0.1:5672/%2f"
        );
        let core = CoreConfig::default();
        assert_eq!(core.sdk_per_corp, 4);
        assert_eq!(core.retry.retry_delays, [5, 30, 120, 600]);
        assert_eq!(GatewayConfig::default().job_timeout_secs, 120);
        assert!(CorpConfig::default().corpid.is_none());
        assert_eq!(NetConfig::default().timeout, 5);
    }
}
