//! `wecom-archive demo`: the service's main job, end to end, against a local broker and the SDK
//! emulator. It starts a worker in this process, publishes sample jobs like Odoo would, and
//! prints what came back:
//! - a chat job of two pages over two key versions;
//! - media named in those messages, a multi-chunk file among them;
//! - a job that meets injected transient errors (10001, 10002) and succeeds on its third attempt;
//! - a job that fails for good (IP not whitelisted, 301042) and lands in the dead-letter queue.
//!
//! The emulator's corps for this are written to a temporary configuration file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::{BasicProperties, Channel};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::broker::topology::{self, dead_queue, result_queue, JOBS_EXCHANGE};
use crate::broker::{Broker, Publisher};
use crate::cli::JsonLines;
use crate::config::{BrokerConfig, CoreConfig, RetryConfig, SdkLibConfig, WorkerConfig};
use crate::job::{Core, JobKind};
use crate::redaction::url_without_password;
use crate::worker;

/// No `Debug`: the broker URL may hold a password.
#[derive(Args)]
pub struct DemoArgs {
    /// The broker. The demo declares its topology and reads results there, so give it a vhost
    /// of its own (`scripts/demo` does).
    #[command(flatten)]
    amqp: BrokerConfig,
    /// The emulator library; by default libWeWorkFinanceSdk_C.so beside this binary, where
    /// `cargo build` puts it.
    #[arg(long)]
    lib: Option<PathBuf>,
    /// Where the test-only fixture keys v1 and v2 are (private `vN.pem`, public `vN.pub.pem`);
    /// by default the checkout's tests/fixtures/keys, found from this binary in its
    /// `target/<profile>/` folder.
    #[arg(long)]
    keys_dir: Option<PathBuf>,
}

/// The demo's files: given, or found from where this binary is, so that the demo runs from any
/// directory.
struct DemoFiles {
    lib: PathBuf,
    keys_dir: PathBuf,
}

impl DemoFiles {
    fn find(args: &DemoArgs) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find this binary's path")?;
        let beside = exe.parent().unwrap_or(Path::new("."));
        let lib = args
            .lib
            .clone()
            .unwrap_or_else(|| beside.join("libWeWorkFinanceSdk_C.so"));
        if !lib.is_file() {
            bail!(
                "the emulator library is not at {}: build it (`cargo build --release`) or pass --lib",
                lib.display()
            );
        }
        // target/<profile>/wecom-archive, so the checkout is two folders up.
        let checkout_keys = beside.join("../../tests/fixtures/keys");
        let keys_dir = match &args.keys_dir {
            Some(dir) => dir.clone(),
            None if checkout_keys.is_dir() => checkout_keys,
            None => bail!(
                "the test keys are not at {}: pass --keys-dir (the checkout's tests/fixtures/keys)",
                checkout_keys.display()
            ),
        };
        Ok(Self { lib, keys_dir })
    }
}

const WAIT: Duration = Duration::from_secs(60);

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The emulator's corps: a healthy one, a flaky one, one off the whitelist.
fn emulator_config(keys_dir: &Path) -> anyhow::Result<Value> {
    let public = json!({
        "1": read(&keys_dir.join("v1.pub.pem"))?,
        "2": read(&keys_dir.join("v2.pub.pem"))?,
    });
    Ok(json!({"corps": [
        {"corpid": "ww-emulator", "secret": "emulator-secret", "public_keys": public,
         "media_sizes": {"min": 2000, "max": 3_000_000}},
        {"corpid": "ww-flaky", "secret": "flaky-secret", "public_keys": public, "seed": 2,
         "faults": {"get_chat_data": {"script": [10001, 10002]}}},
        {"corpid": "ww-offlist", "secret": "offlist-secret", "public_keys": public, "seed": 3,
         "whitelisted": false},
    ]}))
}

/// Runs the demo, printing each step to `out`; the exit code says whether every sample came
/// back as expected. Its temporary files are removed at the end.
pub fn run(args: DemoArgs, out: &mut JsonLines) -> anyhow::Result<ExitCode> {
    let files = DemoFiles::find(&args)?;
    let work = std::env::temp_dir().join(format!("wecom-demo-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&work)?;
    let config_path = work.join("emulator.json");
    std::fs::write(
        &config_path,
        serde_json::to_vec_pretty(&emulator_config(&files.keys_dir)?)?,
    )?;
    // Read by the emulator at its first call; set before the runtime's threads exist. The worker's SDK
    // hosts share the fault counters, as clients of one server would.
    std::env::set_var("WECOM_EMULATOR_CONFIG", &config_path);
    std::env::set_var("WECOM_EMULATOR_COUNTERS", work.join("emulator-counters"));
    let keys = json!([
        {"publickey_ver": 1, "private_key": read(&files.keys_dir.join("v1.pem"))?},
        {"publickey_ver": 2, "private_key": read(&files.keys_dir.join("v2.pem"))?},
    ]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(demo(&args, &files, &work, keys, out));
    let _ = std::fs::remove_dir_all(&work);
    outcome
}

async fn demo(
    args: &DemoArgs,
    files: &DemoFiles,
    work: &Path,
    keys: Value,
    out: &mut JsonLines,
) -> anyhow::Result<ExitCode> {
    let core_config = CoreConfig {
        sdk: SdkLibConfig {
            lib: files.lib.clone(),
        },
        media_dir: work.join("media"),
        sdk_call_timeout_secs: 60,
        retry: RetryConfig {
            max_attempts: 3,
            retry_delays: vec![1, 2],
        },
        ..CoreConfig::default()
    };
    let core = Core::build(&core_config)?;
    let config = WorkerConfig {
        amqp: args.amqp.clone(),
        ..WorkerConfig::default()
    };
    let broker = Broker::from_args(&args.amqp)?;
    let connection = std::sync::Arc::new(broker.connect("wecom-archive demo").await?);
    let channel = connection.create_channel().await?;
    // Declared here as the worker will (same settings, idempotent), so the demo publishes
    // without waiting for the worker to get there first.
    topology::declare(&channel, &config.topology.spec(core.policy())).await?;
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(worker::run(core, config, shutdown.clone()));
    let publisher = broker.publisher(&connection).await?;
    out.text(&format!(
        "demo: a worker is running against {}",
        url_without_password(&args.amqp.amqp_url)
    ))?;
    let mut samples = Samples {
        publisher,
        channel,
        inbox: Inbox::default(),
        keys,
        run_id: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
    };
    let chat_jobs = samples.publish_chat_jobs().await?;
    let pages = samples.show_pages(&chat_jobs.chat, out).await?;
    let media = samples.show_media(&pages, out).await?;
    let retried = samples.show_retried(&chat_jobs.flaky, out).await?;
    let failed = samples.show_failed(&chat_jobs.offlist, out).await?;
    let dead = dead_letter_count(&connection, &chat_jobs.offlist).await?;
    out.text(&format!(
        "dead      {dead} dead letter for {} in {} (see: wecom-archive dlq list --kind chatdata)",
        chat_jobs.offlist,
        dead_queue(JobKind::FetchChatdata)
    ))?;

    shutdown.cancel();
    worker.await??;
    let _ = connection.close(200, "demo done".into()).await;
    let ok = pages.len() == 2
        && media
            .iter()
            .all(|m| m["status"] == "ok" && m["md5_matched"] == true)
        && media.iter().any(|m| m["chunks_fetched"].as_u64() > Some(1))
        && retried["status"] == "ok"
        && retried["attempts"] == 3
        && failed["error"]["code"] == 301042
        && dead == 1;
    out.text(if ok {
        "demo OK"
    } else {
        "demo FAILED: see above"
    })?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The sample jobs' publisher, and their results read back.
struct Samples {
    publisher: Publisher,
    channel: Channel,
    inbox: Inbox,
    /// The test-only private keys every sample job carries inline.
    keys: Value,
    /// Makes this run's job ids its own in a shared vhost.
    run_id: String,
}

/// The job ids of the three chat jobs.
struct ChatJobs {
    chat: String,
    flaky: String,
    offlist: String,
}

impl Samples {
    /// A job body for `corpid`, with inline credentials and `extra` fields.
    fn job(&self, id: &str, corpid: &str, secret: &str, extra: Value) -> Value {
        let mut body = json!({"job_id": format!("{id}-{}", self.run_id), "corpid": corpid,
                              "secret": secret, "private_keys": self.keys});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body
    }

    /// Publishes a healthy two-page job, a flaky one and one off the whitelist, at once.
    async fn publish_chat_jobs(&self) -> anyhow::Result<ChatJobs> {
        let chat = self.job(
            "chat",
            "ww-emulator",
            "emulator-secret",
            json!({"seq": 0, "limit": 100, "max_pages": 2}),
        );
        let flaky = self.job("flaky", "ww-flaky", "flaky-secret", json!({"limit": 20}));
        let offlist = self.job(
            "offlist",
            "ww-offlist",
            "offlist-secret",
            json!({"limit": 20}),
        );
        for body in [&chat, &flaky, &offlist] {
            publish(&self.publisher, JobKind::FetchChatdata, body).await?;
        }
        let id = |body: &Value| body["job_id"].as_str().unwrap_or_default().to_owned();
        Ok(ChatJobs {
            chat: id(&chat),
            flaky: id(&flaky),
            offlist: id(&offlist),
        })
    }

    /// The healthy chat job's two pages, a line each.
    async fn show_pages(
        &mut self,
        chat_id: &str,
        out: &mut JsonLines,
    ) -> anyhow::Result<Vec<Value>> {
        let ids = [format!("{chat_id}:page-1"), format!("{chat_id}:page-2")];
        let pages = self.results(JobKind::FetchChatdata, &ids).await?;
        for (n, page) in pages.iter().enumerate() {
            let messages = page["messages"].as_array().map_or(&[][..], Vec::as_slice);
            let mut versions: HashMap<u64, usize> = HashMap::new();
            for m in messages {
                *versions
                    .entry(m["publickey_ver"].as_u64().unwrap_or(0))
                    .or_default() += 1;
            }
            out.text(&format!(
                "chat      {chat_id}  page {}: {} messages (publickey_ver 1: {}, 2: {}), {} errors, next_seq {}",
                n + 1,
                messages.len(),
                versions.get(&1).unwrap_or(&0),
                versions.get(&2).unwrap_or(&0),
                page["errors"].as_array().map_or(0, Vec::len),
                page["next_seq"]
            ))?;
        }
        Ok(pages.into())
    }

    /// Media jobs for the largest file the pages name (several chunks) and two others, and
    /// their results, a line each.
    async fn show_media(
        &mut self,
        pages: &[Value],
        out: &mut JsonLines,
    ) -> anyhow::Result<Vec<Value>> {
        let mut media_jobs: Vec<_> = pages
            .iter()
            .flat_map(|page| page["messages"].as_array().map_or(&[][..], Vec::as_slice))
            .filter_map(media_of)
            .collect();
        media_jobs.sort_by_key(|(_, _, _, size)| std::cmp::Reverse(*size));
        media_jobs.truncate(3);
        if media_jobs.is_empty() {
            bail!("the chat pages named no media");
        }
        let mut media_ids = Vec::new();
        for (n, (msgtype, sdkfileid, md5sum, _)) in media_jobs.iter().enumerate() {
            let body = self.job(
                &format!("media{}", n + 1),
                "ww-emulator",
                "emulator-secret",
                json!({"sdkfileid": sdkfileid, "md5sum": md5sum, "msgtype": msgtype}),
            );
            media_ids.push(body["job_id"].as_str().unwrap_or_default().to_owned());
            publish(&self.publisher, JobKind::FetchMedia, &body).await?;
        }
        let media = self
            .inbox
            .wait_for(&self.channel, JobKind::FetchMedia, &media_ids)
            .await?;
        for result in &media {
            out.text(&format!(
                "media     {}  {} bytes in {} chunk(s), md5 {}, stored at {}",
                result["job_id"].as_str().unwrap_or("?"),
                result["size"],
                result["chunks_fetched"],
                if result["md5_matched"] == true {
                    "matched"
                } else {
                    "DID NOT MATCH"
                },
                result["location"].as_str().unwrap_or("?"),
            ))?;
        }
        Ok(media)
    }

    /// The flaky job's page, retried through its injected transient errors.
    async fn show_retried(&mut self, flaky_id: &str, out: &mut JsonLines) -> anyhow::Result<Value> {
        let [retried] = self
            .results(JobKind::FetchChatdata, &[format!("{flaky_id}:page-1")])
            .await?;
        out.text(&format!(
            "retried   {flaky_id}  {} after {} attempts (10001 and 10002 injected, retried with backoff)",
            retried["status"].as_str().unwrap_or("?"),
            retried["attempts"]
        ))?;
        Ok(retried)
    }

    /// The failure of the job off the whitelist.
    async fn show_failed(
        &mut self,
        offlist_id: &str,
        out: &mut JsonLines,
    ) -> anyhow::Result<Value> {
        let [failed] = self
            .results(JobKind::FetchChatdata, &[format!("{offlist_id}:failed")])
            .await?;
        let error = &failed["error"];
        out.text(&format!(
            "failed    {offlist_id}  {} {} after {} attempt: {}",
            error["code"],
            error["name"].as_str().unwrap_or("?"),
            failed["attempts"],
            error["message"].as_str().unwrap_or("?")
        ))?;
        Ok(failed)
    }

    /// The results of `ids`, in their order.
    async fn results<const N: usize>(
        &mut self,
        kind: JobKind,
        ids: &[String; N],
    ) -> anyhow::Result<[Value; N]> {
        let results = self.inbox.wait_for(&self.channel, kind, ids).await?;
        Ok(results.try_into().expect("one result per id"))
    }
}

/// (msgtype, sdkfileid, md5sum, size) of a decrypted message that names a media file.
fn media_of(message: &Value) -> Option<(String, String, String, u64)> {
    let body = &message["message"];
    let msgtype = body["msgtype"].as_str()?;
    let media = &body[msgtype];
    let size = ["filesize", "voice_size", "imagesize"]
        .iter()
        .find_map(|k| media[*k].as_u64())?;
    Some((
        msgtype.to_owned(),
        media["sdkfileid"].as_str()?.to_owned(),
        media["md5sum"].as_str()?.to_owned(),
        size,
    ))
}

async fn publish(publisher: &Publisher, kind: JobKind, body: &Value) -> anyhow::Result<()> {
    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2);
    publisher
        .publish(
            JOBS_EXCHANGE,
            kind.name(),
            &serde_json::to_vec(body)?,
            properties,
        )
        .await?;
    Ok(())
}

/// Results read so far, by result_id; results of other runs in the same vhost are skipped.
#[derive(Default)]
struct Inbox {
    seen: HashMap<String, Value>,
}

impl Inbox {
    async fn wait_for(
        &mut self,
        channel: &Channel,
        kind: JobKind,
        ids: &[String],
    ) -> anyhow::Result<Vec<Value>> {
        let deadline = Instant::now() + WAIT;
        while !ids.iter().all(|id| self.seen.contains_key(id)) {
            if Instant::now() > deadline {
                bail!("timed out waiting for {ids:?}");
            }
            match channel
                .basic_get(result_queue(kind).into(), BasicGetOptions::default())
                .await?
            {
                Some(message) => {
                    message.delivery.ack(BasicAckOptions::default()).await?;
                    let body: Value = serde_json::from_slice(&message.delivery.data)?;
                    if let Some(id) = body["result_id"].as_str() {
                        self.seen.insert(id.to_owned(), body);
                    }
                }
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        Ok(ids.iter().map(|id| self.seen[id].clone()).collect())
    }
}

/// The dead letters of `job_id`, waiting briefly: the dead copy follows the failure result.
async fn dead_letter_count(connection: &lapin::Connection, job_id: &str) -> anyhow::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // A channel per look: the letters it reads are held until it closes, then go back.
        let channel = connection.create_channel().await?;
        let letters = crate::dlq::list(
            &channel,
            JobKind::FetchChatdata,
            &crate::dlq::Filter::default(),
        )
        .await?;
        let _ = channel.close(200, "looked".into()).await;
        let count = letters
            .iter()
            .filter(|l| l.job_id.as_deref() == Some(job_id))
            .count();
        if count > 0 || Instant::now() > deadline {
            return Ok(count);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
