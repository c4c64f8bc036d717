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

use crate::cli::JsonLines;
use crate::job::config::{Isolation, RetryArgs};
use crate::job::{Core, CoreConfig, JobKind};
use crate::worker::connection::Broker;
use crate::worker::publisher::Publisher;
use crate::worker::topology::{self, dead_queue, result_queue, JOBS_EXCHANGE};
use crate::worker::{self, AmqpArgs, TopologyArgs, WorkerConfig};

/// No `Debug`: the broker URL may hold a password.
#[derive(Args)]
pub struct DemoArgs {
    /// The broker. The demo declares its topology and reads results there, so give it a vhost
    /// of its own (`scripts/demo` does).
    #[command(flatten)]
    amqp: AmqpArgs,
    /// The emulator library.
    #[arg(long, default_value = "target/release/libWeWorkFinanceSdk_C.so")]
    lib: PathBuf,
    /// Where the test-only fixture keys v1 and v2 are (private `vN.pem`, public `vN.pub.pem`).
    #[arg(long, default_value = "tests/fixtures/keys")]
    keys_dir: PathBuf,
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

pub fn run(args: DemoArgs, out: &mut JsonLines) -> anyhow::Result<ExitCode> {
    let work = std::env::temp_dir().join(format!("wecom-demo-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&work)?;
    let config_path = work.join("emulator.json");
    std::fs::write(
        &config_path,
        serde_json::to_vec_pretty(&emulator_config(&args.keys_dir)?)?,
    )?;
    // Read by the emulator at its first call; set before any thread exists. The worker's SDK
    // hosts share the fault counters, as clients of one server would.
    std::env::set_var("WECOM_EMULATOR_CONFIG", &config_path);
    std::env::set_var("WECOM_EMULATOR_COUNTERS", work.join("emulator-counters"));
    let keys = json!([
        {"publickey_ver": 1, "private_key": read(&args.keys_dir.join("v1.pem"))?},
        {"publickey_ver": 2, "private_key": read(&args.keys_dir.join("v2.pem"))?},
    ]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(demo(&args, &work, keys, out));
    let _ = std::fs::remove_dir_all(&work);
    outcome
}

async fn demo(
    args: &DemoArgs,
    work: &Path,
    keys: Value,
    out: &mut JsonLines,
) -> anyhow::Result<ExitCode> {
    let core_config = CoreConfig {
        lib: args.lib.clone(),
        media_dir: work.join("media"),
        corps_file: None,
        inline_credentials: true,
        sdk_isolation: Isolation::Process,
        sdk_call_timeout_secs: 60,
        sdk_host_exe: None,
        sdk_per_corp: 4,
        chat_pages_in_flight: 3,
        sdk_pool_idle_secs: 300,
        key_cache_sets: 64,
        inline_max_bytes: 1024 * 1024,
        retry: RetryArgs {
            max_attempts: 3,
            retry_delays: vec![1, 2],
        },
    };
    let core = Core::build(&core_config)?;
    let config = WorkerConfig {
        amqp: args.amqp.clone(),
        topology: TopologyArgs { delivery_limit: 5 },
        prefetch: 8,
        concurrency: 8,
        chat_pages_per_delivery: 20,
        drain_timeout_secs: 50,
        header_key_file: None,
        accept_unsigned_headers: false,
        no_declare: false,
        metrics_listen: None,
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
        redact_url(&args.amqp.amqp_url)
    ))?;

    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let job = |id: &str, corpid: &str, secret: &str, extra: Value| {
        let mut body = json!({"job_id": format!("{id}-{run_id}"), "corpid": corpid, "secret": secret, "private_keys": keys});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let chat = job(
        "chat",
        "ww-emulator",
        "emulator-secret",
        json!({"seq": 0, "limit": 100, "max_pages": 2}),
    );
    let flaky = job("flaky", "ww-flaky", "flaky-secret", json!({"limit": 20}));
    let offlist = job(
        "offlist",
        "ww-offlist",
        "offlist-secret",
        json!({"limit": 20}),
    );
    for body in [&chat, &flaky, &offlist] {
        publish(&publisher, JobKind::FetchChatdata, body).await?;
    }

    let chat_id = chat["job_id"].as_str().unwrap_or_default().to_owned();
    let mut inbox = Inbox::default();
    let pages = inbox
        .wait_for(
            &channel,
            JobKind::FetchChatdata,
            &[format!("{chat_id}:page-1"), format!("{chat_id}:page-2")],
        )
        .await?;
    let mut media_jobs = Vec::new();
    for (n, page) in pages.iter().enumerate() {
        let messages = page["messages"].as_array().cloned().unwrap_or_default();
        let mut versions: HashMap<u64, usize> = HashMap::new();
        for m in &messages {
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
        media_jobs.extend(messages.iter().filter_map(media_of));
    }
    // The largest file (several chunks) and two others.
    media_jobs.sort_by_key(|(_, _, _, size)| std::cmp::Reverse(*size));
    media_jobs.truncate(3);
    if media_jobs.is_empty() {
        bail!("the chat pages named no media");
    }
    let mut media_ids = Vec::new();
    for (n, (msgtype, sdkfileid, md5sum, _)) in media_jobs.iter().enumerate() {
        let body = job(
            &format!("media{}", n + 1),
            "ww-emulator",
            "emulator-secret",
            json!({"sdkfileid": sdkfileid, "md5sum": md5sum, "msgtype": msgtype}),
        );
        media_ids.push(body["job_id"].as_str().unwrap_or_default().to_owned());
        publish(&publisher, JobKind::FetchMedia, &body).await?;
    }
    let media = inbox
        .wait_for(&channel, JobKind::FetchMedia, &media_ids)
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

    let flaky_id = flaky["job_id"].as_str().unwrap_or_default().to_owned();
    let retried = inbox
        .wait_for(
            &channel,
            JobKind::FetchChatdata,
            &[format!("{flaky_id}:page-1")],
        )
        .await?;
    out.text(&format!(
        "retried   {flaky_id}  {} after {} attempts (10001 and 10002 injected, retried with backoff)",
        retried[0]["status"].as_str().unwrap_or("?"),
        retried[0]["attempts"]
    ))?;
    let offlist_id = offlist["job_id"].as_str().unwrap_or_default().to_owned();
    let failed = inbox
        .wait_for(
            &channel,
            JobKind::FetchChatdata,
            &[format!("{offlist_id}:failed")],
        )
        .await?;
    let error = &failed[0]["error"];
    out.text(&format!(
        "failed    {offlist_id}  {} {} after {} attempt: {}",
        error["code"],
        error["name"].as_str().unwrap_or("?"),
        failed[0]["attempts"],
        error["message"].as_str().unwrap_or("?")
    ))?;
    let dead = dead_letter_count(&connection, &offlist_id).await?;
    out.text(&format!("dead      {dead} dead letter for {offlist_id} in {} (see: wecom-archive dlq list --kind chatdata)", dead_queue(JobKind::FetchChatdata)))?;

    shutdown.cancel();
    worker.await??;
    let _ = connection.close(200, "demo done".into()).await;
    let ok = pages.len() == 2
        && media
            .iter()
            .all(|m| m["status"] == "ok" && m["md5_matched"] == true)
        && media.iter().any(|m| m["chunks_fetched"].as_u64() > Some(1))
        && retried[0]["status"] == "ok"
        && retried[0]["attempts"] == 3
        && error["code"] == 301042
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

/// The broker URLs without their credentials.
fn redact_url(urls: &str) -> String {
    let redact = |url: &str| match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    };
    urls.split(',').map(redact).collect::<Vec<_>>().join(",")
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
