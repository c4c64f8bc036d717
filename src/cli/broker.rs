//! The broker commands: `worker`, `topology apply`, `publish chatdata|media`, `dlq ...`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use super::credentials::{read_secret_file, KeyArg};
use super::output::JsonLines;
use crate::broker::topology::{self, JOBS_EXCHANGE};
use crate::broker::Broker;
use crate::config::RetryConfig;
use crate::config::{BrokerConfig, CoreConfig, TopologyConfig, WorkerConfig};
use crate::dlq::{self, Filter};
use crate::job::Core;
use crate::job::JobKind;
use crate::worker;

/// `wecom-archive worker`: the job core's settings and the worker's.
#[derive(Args)]
pub struct WorkerCommand {
    #[command(flatten)]
    core: CoreConfig,
    #[command(flatten)]
    worker: WorkerConfig,
}

#[derive(Subcommand)]
pub enum TopologyCommand {
    /// Declare exchanges and queues (idempotent).
    Apply {
        #[command(flatten)]
        amqp: BrokerConfig,
        #[command(flatten)]
        retry: RetryConfig,
        #[command(flatten)]
        topology: TopologyConfig,
    },
}

/// Credentials for a job: a corp alias, or inline ones read from files.
#[derive(Args)]
pub struct JobCorpArgs {
    /// A corp alias the workers know.
    #[arg(long, conflicts_with_all = ["corpid", "secret_file"])]
    corp: Option<String>,
    /// The corp's id, sent inline in the job with --secret-file.
    #[arg(long, requires = "secret_file")]
    corpid: Option<String>,
    /// File holding the secret, sent inline in the job.
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// VER=PEMFILE, sent inline in the job; repeatable.
    #[arg(long = "key", value_name = "VER=PEMFILE")]
    keys: Vec<KeyArg>,
    /// An id echoed in the results (default: a new UUID).
    #[arg(long)]
    job_id: Option<String>,
    /// Also send the results to this queue.
    #[arg(long)]
    reply_to: Option<String>,
}

#[derive(Subcommand)]
pub enum PublishCommand {
    /// Enqueue a fetch-chatdata job.
    Chatdata {
        #[command(flatten)]
        amqp: BrokerConfig,
        #[command(flatten)]
        corp: JobCorpArgs,
        /// Fetch messages with a seq greater than this (0: the oldest retained).
        #[arg(long, default_value_t = 0)]
        seq: u64,
        /// Messages per page, 1 to 1000.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
        /// Pages to fetch, each published as a result as it comes.
        #[arg(long, default_value_t = 1)]
        max_pages: u32,
    },
    /// Enqueue a fetch-media job.
    Media {
        #[command(flatten)]
        amqp: BrokerConfig,
        #[command(flatten)]
        corp: JobCorpArgs,
        /// The message's sdkfileid.
        #[arg(long)]
        sdkfileid: String,
        /// The message's md5sum: the stored file is checked against it.
        #[arg(long)]
        md5sum: Option<String>,
        /// The message's file name: the stored file keeps its extension.
        #[arg(long)]
        file_name: Option<String>,
    },
}

#[derive(Args)]
pub struct DlqArgs {
    #[command(flatten)]
    amqp: BrokerConfig,
    /// Which dead-letter queue.
    #[arg(long, value_enum)]
    kind: JobKind,
    /// Only dead letters with this error code.
    #[arg(long)]
    code: Option<i64>,
    /// Only the dead letter of this job id (as `list` shows it).
    #[arg(long)]
    job_id: Option<String>,
    /// At most this many.
    #[arg(long)]
    count: Option<usize>,
}

#[derive(Subcommand)]
pub enum DlqCommand {
    /// One line per dead letter: job id, error, attempts.
    List(DlqArgs),
    /// Dead letters in full (credentials redacted).
    Show(DlqArgs),
    /// Republish dead letters as fresh jobs, then remove them.
    Replay {
        #[command(flatten)]
        args: DlqArgs,
        /// Only print which dead letters would be replayed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove dead letters.
    Purge {
        #[command(flatten)]
        args: DlqArgs,
        /// Only print which dead letters would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// How long a one-shot broker command (`topology apply`, `publish`, `dlq`) may take. Its work
/// is a few round trips (a dead-letter queue of thousands takes seconds); one that hears no
/// more from the broker, or whose connection died under it, must not hang an operator's shell
/// or a script for ever.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs a one-shot broker command within [`COMMAND_TIMEOUT`]. What it held unacked (dead
/// letters being read) goes back to its queue when the process ends and its connection closes.
fn one_shot<T>(
    command: &str,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    runtime()?.block_on(async {
        tokio::time::timeout(COMMAND_TIMEOUT, work)
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "{command}: the broker did not finish the command within {COMMAND_TIMEOUT:?}; \
                     dead letters it held go back to their queue"
                )
            })?
            .map_err(topology_explained)
    })
}

/// The broker's `NOT_FOUND` for an exchange or queue of the topology, as one line that says
/// what to do; any other error as it is.
fn topology_explained(err: anyhow::Error) -> anyhow::Error {
    let missing = err
        .chain()
        .any(|cause| cause.to_string().contains("NOT_FOUND"));
    if !missing {
        return err;
    }
    anyhow::anyhow!(
        "an exchange or queue of the topology ({JOBS_EXCHANGE}, the job, result or dead-letter \
         queues) is missing in this vhost: the topology is not declared; declare it with \
         `wecom-archive topology apply` (with the workers' settings) or start a worker"
    )
}

/// How long the process waits, once the worker returned, for SDK calls still under way in
/// cancelled jobs: not at all, their jobs are already back in the broker.
pub(super) const ABANDON_SDK_CALLS: Duration = Duration::ZERO;

/// Runs the worker until SIGTERM or SIGINT.
pub fn run_worker(command: WorkerCommand) -> anyhow::Result<ExitCode> {
    let WorkerCommand { core, worker } = command;
    let core = Core::build(&core)?;
    let runtime = runtime()?;
    let ran =
        runtime.block_on(async move { worker::run(core, worker, cancelled_on_signal()).await });
    // Dropping the runtime would wait for every blocking thread, an SDK call of a cancelled job
    // included (up to its timeout); the drain timeout must bound the stop instead.
    runtime.shutdown_timeout(ABANDON_SDK_CALLS);
    ran.map(|()| ExitCode::SUCCESS)
}

/// A token cancelled at the first SIGTERM or SIGINT: a service's `shutdown`. Call it inside
/// the runtime, before anything that could wait for a signal.
pub(super) fn cancelled_on_signal() -> CancellationToken {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler installs");
    let mut int = signal(SignalKind::interrupt()).expect("a SIGINT handler installs");
    let shutdown = CancellationToken::new();
    let cancel = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("signal received: stopping");
        cancel.cancel();
    });
    shutdown
}

pub fn topology(command: TopologyCommand, out: &mut JsonLines) -> anyhow::Result<ExitCode> {
    let TopologyCommand::Apply {
        amqp,
        retry,
        topology,
    } = command;
    one_shot("topology apply", async {
        let connection = Broker::from_args(&amqp)?
            .connect("wecom-archive topology")
            .await?;
        let channel = connection.create_channel().await?;
        topology::declare(&channel, &topology.spec(&retry.policy())).await?;
        connection.close(200, "done".into()).await?;
        out.text("topology declared")?;
        Ok(ExitCode::SUCCESS)
    })
}

fn job_body(corp: &JobCorpArgs, fields: Map<String, Value>) -> anyhow::Result<(String, Value)> {
    let job_id = corp
        .job_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut body = fields;
    body.insert("job_id".into(), json!(job_id));
    if let Some(alias) = &corp.corp {
        body.insert("corp".into(), json!(alias));
    } else if let (Some(corpid), Some(secret_file)) = (&corp.corpid, &corp.secret_file) {
        use secrecy::ExposeSecret;
        body.insert("corpid".into(), json!(corpid));
        body.insert(
            "secret".into(),
            json!(read_secret_file(secret_file)?.expose_secret()),
        );
        let mut keys = Vec::new();
        for key in &corp.keys {
            let pem = std::fs::read_to_string(&key.pem_file)?;
            keys.push(json!({"publickey_ver": key.version, "private_key": pem}));
        }
        if !keys.is_empty() {
            body.insert("private_keys".into(), Value::Array(keys));
        }
    } else {
        anyhow::bail!(
            "name a corp alias (--corp) or inline credentials (--corpid and --secret-file)"
        );
    }
    Ok((job_id, Value::Object(body)))
}

pub fn publish(command: PublishCommand, out: &mut JsonLines) -> anyhow::Result<ExitCode> {
    let (amqp, kind, corp, fields) = match command {
        PublishCommand::Chatdata {
            amqp,
            corp,
            seq,
            limit,
            max_pages,
        } => {
            let fields = json!({"seq": seq, "limit": limit, "max_pages": max_pages});
            (amqp, JobKind::FetchChatdata, corp, fields)
        }
        PublishCommand::Media {
            amqp,
            corp,
            sdkfileid,
            md5sum,
            file_name,
        } => {
            let mut fields = json!({"sdkfileid": sdkfileid});
            if let Some(md5sum) = md5sum {
                fields["md5sum"] = json!(md5sum);
            }
            if let Some(name) = file_name {
                fields["file_name"] = json!(name);
            }
            (amqp, JobKind::FetchMedia, corp, fields)
        }
    };
    let Value::Object(fields) = fields else {
        unreachable!("built as an object")
    };
    let (job_id, body) = job_body(&corp, fields)?;
    one_shot("publish", async {
        let broker = Broker::from_args(&amqp)?;
        let connection = std::sync::Arc::new(broker.connect("wecom-archive publish").await?);
        let publisher = broker.publisher(&connection).await?;
        let mut properties = lapin::BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(job_id.as_str().into());
        if let Some(queue) = &corp.reply_to {
            properties = properties.with_reply_to(queue.as_str().into());
        }
        let bytes = serde_json::to_vec(&body)?;
        publisher
            .publish(JOBS_EXCHANGE, kind.name(), &bytes, properties)
            .await?;
        connection.close(200, "done".into()).await?;
        out.line(&json!({"published": kind.name(), "job_id": job_id}))?;
        Ok(ExitCode::SUCCESS)
    })
}

pub fn dlq(command: DlqCommand, out: &mut JsonLines) -> anyhow::Result<ExitCode> {
    one_shot("dlq", async {
        let (args, action) = match &command {
            DlqCommand::List(args) => (args, "list"),
            DlqCommand::Show(args) => (args, "show"),
            DlqCommand::Replay { args, .. } => (args, "replay"),
            DlqCommand::Purge { args, .. } => (args, "purge"),
        };
        let kind = args.kind;
        let filter = Filter {
            code: args.code,
            job_id: args.job_id.clone(),
            count: args.count,
        };
        let broker = Broker::from_args(&args.amqp)?;
        let connection = std::sync::Arc::new(broker.connect("wecom-archive dlq").await?);
        let channel = connection.create_channel().await?;
        let letters = match &command {
            DlqCommand::List(_) | DlqCommand::Show(_) => dlq::list(&channel, kind, &filter).await?,
            DlqCommand::Replay { dry_run, .. } => {
                let publisher = broker.publisher(&connection).await?;
                dlq::replay(&channel, &publisher, kind, &filter, *dry_run).await?
            }
            DlqCommand::Purge { dry_run, .. } => {
                dlq::purge(&channel, kind, &filter, *dry_run).await?
            }
        };
        for letter in &letters {
            if matches!(command, DlqCommand::Show(_)) {
                out.line(letter)?;
            } else {
                out.line(&json!({
                    "position": letter.position,
                    "job_id": letter.job_id,
                    "error_code": letter.error_code,
                    "error_name": letter.error_name,
                    "attempts": letter.attempts,
                }))?;
            }
        }
        let dry = matches!(
            command,
            DlqCommand::Replay { dry_run: true, .. } | DlqCommand::Purge { dry_run: true, .. }
        );
        eprintln!(
            "{action}{}: {} dead letter(s) of {}",
            if dry { " (dry run)" } else { "" },
            letters.len(),
            kind.name()
        );
        // The dead letters this command did not consume are back in their queue by now, and
        // everything it did is confirmed, so a failing close changes nothing.
        if let Err(err) = connection.close(200, "done".into()).await {
            tracing::debug!(error = %err, "closing the connection");
        }
        Ok(ExitCode::SUCCESS)
    })
}
