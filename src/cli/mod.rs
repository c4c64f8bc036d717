//! The command line.
//!
//! - `sdk check`, `fetch chatdata|media`: the SDK layer directly, without a broker, for
//!   operators checking a corp's setup and for debugging;
//! - `worker`, `topology apply`, `publish`, `dlq` (module `broker`): the service and its
//!   operation;
//! - `serve` (module `serve`): the HTTP gateway.
//!
//! Output goes to stdout ([`JsonLines`], module `output`), logs to stderr.

mod broker;
mod config;
mod credentials;
mod fetch;
mod output;
mod sdk_check;
mod serve;

pub use output::{claim_stdout, JsonLines};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{CorpConfig, LogFormat, NetConfig, SdkLibConfig};
use crate::sdk::NetOptions;
use crate::telemetry::logs::StrayOutput;
use credentials::KeyArg;

/// The parsed command line: the global log format and one subcommand; [`run`] runs it.
#[derive(Parser)]
#[command(
    name = "wecom-archive",
    version,
    about = "WeCom chat-archive Finance SDK worker and tools"
)]
pub struct Cli {
    /// How log lines are written on stderr: `text`, or `json` (one object per line).
    #[arg(
        long,
        global = true,
        env = "WECOM_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect the Finance SDK library and a corp's setup.
    #[command(subcommand)]
    Sdk(SdkCommand),
    /// Fetch chat data or media once, without a broker.
    #[command(subcommand)]
    Fetch(FetchCommand),
    /// Consume jobs from RabbitMQ and publish results, until SIGTERM.
    Worker(broker::WorkerCommand),
    /// Manage the broker's exchanges and queues.
    #[command(subcommand)]
    Topology(broker::TopologyCommand),
    /// Enqueue a job.
    #[command(subcommand)]
    Publish(broker::PublishCommand),
    /// Inspect, replay or purge dead-lettered jobs.
    #[command(subcommand)]
    Dlq(broker::DlqCommand),
    /// Answer HTTP requests as the seed service (FastAPI) did, plus a versioned API, until
    /// SIGTERM.
    Serve(serve::ServeCommand),
    /// Print the settings a command would run with (flags, `WECOM_*` variables, defaults).
    Config(config::ConfigArgs),
    /// Run the service end to end against a local broker and the SDK emulator.
    Demo(crate::demo::DemoArgs),
    /// Serve a worker's SDK calls on standard input (started by the worker, not by people).
    #[command(hide = true)]
    SdkHost(SdkHostArgs),
}

#[derive(Args)]
struct SdkHostArgs {
    /// Path of libWeWorkFinanceSdk_C.so.
    #[arg(long)]
    lib: PathBuf,
    /// Load the library and exit: the worker's check at start.
    #[arg(long)]
    probe: bool,
}

#[derive(Subcommand)]
enum SdkCommand {
    /// Load the library and report its functions; with credentials, pull one message.
    Check(sdk_check::CheckArgs),
}

#[derive(Subcommand)]
enum FetchCommand {
    /// Fetch and decrypt one page of chat messages; one JSON line per message or failure.
    #[command(mut_arg("corpid", |arg| arg.required(true)))]
    Chatdata(fetch::ChatdataArgs),
    /// Download one media file to a path; prints its size, md5 and sha256 as JSON.
    #[command(mut_arg("corpid", |arg| arg.required(true)))]
    Media(fetch::MediaArgs),
}

/// The library, the corp and the network, for the commands that call the SDK directly.
#[derive(Debug, Args)]
struct CorpArgs {
    #[command(flatten)]
    sdk: SdkLibConfig,
    #[command(flatten)]
    corp: CorpConfig,
    #[command(flatten)]
    net: NetConfig,
}

/// The SDK's network options: the proxy, its password read from its file, the call timeout.
fn net_options(net: &NetConfig) -> anyhow::Result<NetOptions> {
    Ok(NetOptions {
        proxy: net.proxy.clone(),
        proxy_password: net
            .proxy_password_file
            .as_deref()
            .map(credentials::read_secret_file)
            .transpose()?,
        timeout_secs: net.timeout,
    })
}

impl Cli {
    /// What becomes of output that is not a log line: an SDK host leaves it to its worker.
    pub fn stray_output(&self) -> StrayOutput {
        match self.command {
            Command::SdkHost(_) => StrayOutput::PassedOn,
            _ => StrayOutput::Logged,
        }
    }

    /// How the command's log lines are written.
    pub fn log_format(&self) -> LogFormat {
        self.log_format
    }

    /// The log filter when `RUST_LOG` sets none: the service's own lines at info and the
    /// libraries' at warn; for the demo, warnings only, so that its summary on stdout is not
    /// interleaved with the worker's lines.
    pub fn default_log_filter(&self) -> &'static str {
        // The AMQP client's own lines are off: it logs every failed connect and a clean
        // shutdown's close as errors, while the project's own lines say what happened to the
        // broker session once, with the client's error in them.
        match self.command {
            Command::Demo(_) => "warn,lapin=off",
            _ => "warn,wecom_archive=info,lapin=off",
        }
    }
}

/// Runs a parsed command line, its output on `out` (claimed with [`claim_stdout`] before
/// logging starts).
pub fn run(cli: Cli, mut out: JsonLines) -> anyhow::Result<ExitCode> {
    let code = match cli.command {
        Command::Sdk(SdkCommand::Check(args)) => sdk_check::run(&args, &mut out)?,
        Command::Fetch(FetchCommand::Chatdata(args)) => fetch::chatdata(&args, &mut out)?,
        Command::Fetch(FetchCommand::Media(args)) => fetch::media(&args, &mut out)?,
        Command::Worker(command) => broker::run_worker(command)?,
        Command::Topology(command) => broker::topology(command, &mut out)?,
        Command::Publish(command) => broker::publish(command, &mut out)?,
        Command::Dlq(command) => broker::dlq(command, &mut out)?,
        Command::Serve(command) => serve::run(command)?,
        Command::Config(args) => config::run(&args, &mut out)?,
        Command::Demo(args) => crate::demo::run(args, &mut out)?,
        Command::SdkHost(args) if args.probe => {
            crate::sdk::FinanceSdk::load(&args.lib)?;
            ExitCode::SUCCESS
        }
        Command::SdkHost(args) => {
            crate::sdk_host::serve::serve(&args.lib)?;
            ExitCode::SUCCESS
        }
    };
    out.flush()?;
    Ok(code)
}

/// `--key VER=PEMFILE`, repeatable.
#[derive(Debug, Args)]
struct KeyArgs {
    /// A private key for a publickey_ver, as VER=PEMFILE (PKCS#1 or PKCS#8); repeat per version.
    #[arg(long = "key", value_name = "VER=PEMFILE")]
    keys: Vec<KeyArg>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn every_flag_of_every_command_says_what_it_is_for() {
        let mut root = Cli::command();
        root.build();
        let mut undocumented = Vec::new();
        let mut commands = vec![(String::new(), root)];
        while let Some((path, command)) = commands.pop() {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                let documented = arg.get_help().is_some() || arg.get_long_help().is_some();
                if !documented && !arg.is_hide_set() && !["help", "version"].contains(&id) {
                    undocumented.push(format!("{path} --{id}"));
                }
            }
            for sub in command.get_subcommands() {
                commands.push((format!("{path} {}", sub.get_name()), sub.clone()));
            }
        }
        assert!(
            undocumented.is_empty(),
            "flags without help: {undocumented:#?}"
        );
    }
}
