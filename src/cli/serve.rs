//! `wecom-archive serve`: the HTTP gateway ([`crate::gateway`]), running jobs in this process
//! (the default) or on the workers through the broker (`--via-broker`), until SIGTERM or SIGINT.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::broker::{cancelled_on_signal, runtime, ABANDON_SDK_CALLS};
use super::credentials::read_secret_file;
use crate::broker::Broker;
use crate::config::{BrokerConfig, CoreConfig, GatewayConfig};
use crate::gateway::in_process::InProcess;
use crate::gateway::runner::Runner;
use crate::gateway::via_broker::ViaBroker;
use crate::gateway::{self, Gateway};
use crate::job::Core;
use crate::telemetry::{Metrics, Readiness, Telemetry};

#[derive(Args)]
pub struct ServeCommand {
    #[command(flatten)]
    gateway: GatewayConfig,
    /// The job core's settings, for jobs run in this process; through the broker only
    /// `--media-dir` (the store shared with the workers) is used.
    #[command(flatten)]
    core: CoreConfig,
    /// The broker, for `--via-broker`.
    #[command(flatten)]
    amqp: BrokerConfig,
}

/// Where the gateway's jobs run, built before the runtime starts.
enum Jobs {
    InProcess(Arc<Core>),
    ViaBroker(Broker),
}

pub fn run(command: ServeCommand) -> anyhow::Result<ExitCode> {
    let ServeCommand {
        gateway: config,
        core,
        amqp,
    } = command;
    let token = config
        .token_file
        .as_deref()
        .map(read_secret_file)
        .transpose()?;
    let patience = Duration::from_secs(config.job_timeout_secs.max(1));
    // Everything that can be wrong with the configuration fails here, before the port opens.
    let jobs = if config.via_broker {
        Jobs::ViaBroker(Broker::from_args(&amqp)?)
    } else {
        Jobs::InProcess(Core::build(&core)?)
    };
    let runtime = runtime()?;
    let ran = runtime.block_on(async move {
        let shutdown = cancelled_on_signal();
        let readiness = Arc::new(Readiness::default());
        let (runner, metrics) = match jobs {
            Jobs::InProcess(core) => {
                tokio::spawn(Arc::clone(&core).maintain(shutdown.clone()));
                // The job core here is ready as soon as it is built.
                readiness.set(true);
                let metrics = Arc::clone(core.metrics());
                (Runner::InProcess(InProcess { core, patience }), metrics)
            }
            Jobs::ViaBroker(broker) => {
                let metrics = Arc::new(Metrics::new());
                let runner = ViaBroker::start(
                    broker,
                    patience,
                    Arc::clone(&readiness),
                    Arc::clone(&metrics),
                    shutdown.clone(),
                );
                (Runner::ViaBroker(runner), metrics)
            }
        };
        let gateway = Arc::new(Gateway {
            runner,
            media_root: core.media_dir.clone(),
            compat_media_max_bytes: config.compat_media_max_bytes,
            token,
            shutdown: shutdown.clone(),
            telemetry: Telemetry { metrics, readiness },
        });
        gateway::run(gateway, config.listen, config.connection_limits(), shutdown).await
    });
    runtime.shutdown_timeout(ABANDON_SDK_CALLS);
    ran.map(|()| ExitCode::SUCCESS)
}
