//! The fault suite (issue 4): the real worker binary, as separate processes, against the real
//! broker and the emulator, under faults. Each scenario prints a figures line such as
//! `scenario=transient-faults jobs=200 ok=200 failed=0 dead=0 lost=0 duplicate_results=0` and
//! asserts `lost=0` plus its own expectations. "Lost" is a job that ended with neither a result
//! nor a dead letter.
//!
//! Short by default (CI); `WECOM_FAULT_JOBS=10000` runs the long form. Run this binary alone
//! (`scripts/test` does): scenarios kill workers and load the broker.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::broker::{Client, Vhost, Worker};
use common::cluster::Cluster;
use common::{default_config, Emulator, CORPID, SECRET};

/// How long a scenario waits for its jobs to end: generous, and growing with the count.
fn patience(jobs: usize) -> Duration {
    Duration::from_secs(180 + jobs as u64 / 4)
}

fn job_count(short: usize) -> usize {
    std::env::var("WECOM_FAULT_JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(short)
}

/// How the jobs of a scenario ended.
#[derive(Debug, Default)]
struct Tally {
    jobs: usize,
    ok: usize,
    failed: usize,
    dead: usize,
    lost: usize,
    duplicate_results: usize,
    max_attempts: u64,
}

impl Tally {
    fn print(&self, scenario: &str) {
        println!(
            "scenario={scenario} jobs={} ok={} failed={} dead={} lost={} duplicate_results={} max_attempts={}",
            self.jobs, self.ok, self.failed, self.dead, self.lost, self.duplicate_results, self.max_attempts
        );
    }
}

/// Everything read back so far: results by job id, result ids seen, dead-lettered job ids.
#[derive(Default)]
struct Collector {
    results: HashMap<String, Value>,
    result_ids: HashSet<String>,
    dead: HashSet<String>,
    duplicate_results: usize,
    max_attempts: u64,
}

impl Collector {
    /// Takes what the result and dead-letter queues hold now; returns how many messages.
    async fn poll(&mut self, client: &Client) -> usize {
        self.try_poll(client).await.unwrap()
    }

    /// As [`Collector::poll`], with the broker's errors (a node down) for the caller.
    async fn try_poll(&mut self, client: &Client) -> lapin::Result<usize> {
        let mut got = 0;
        for queue in ["chatdata-results", "media-results"] {
            for message in client
                .try_take(queue, 200, Duration::from_millis(50))
                .await?
            {
                got += 1;
                let result_id = message.body["result_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                if !self.result_ids.insert(result_id) {
                    self.duplicate_results += 1;
                }
                self.max_attempts = self
                    .max_attempts
                    .max(message.body["attempts"].as_u64().unwrap_or(0));
                let id = message.body["job_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                self.results.insert(id, message.body);
            }
        }
        for queue in ["fetch-chatdata.dead", "fetch-media.dead"] {
            for message in client
                .try_take(queue, 200, Duration::from_millis(50))
                .await?
            {
                got += 1;
                let body: Value = serde_json::from_slice(&message.raw).unwrap_or(Value::Null);
                self.dead
                    .insert(body["job_id"].as_str().unwrap_or_default().to_owned());
            }
        }
        Ok(got)
    }

    /// Up to ten of `jobs` that have not ended, for a failure message.
    fn missing<'a>(&self, jobs: &'a HashSet<String>) -> Vec<&'a str> {
        let mut missing: Vec<&str> = jobs
            .iter()
            .filter(|id| !self.ended(id))
            .map(String::as_str)
            .collect();
        missing.sort_unstable();
        missing.truncate(10);
        missing
    }

    fn ended(&self, id: &str) -> bool {
        self.results.get(id).is_some_and(|r| r["status"] == "ok") || self.dead.contains(id)
    }

    /// The errors of failed jobs, for the assertion messages.
    fn failures(&self) -> Vec<&Value> {
        self.results
            .values()
            .filter(|r| r["status"] != "ok")
            .map(|r| &r["error"])
            .collect()
    }

    fn tally(&self, jobs: &HashSet<String>) -> Tally {
        let mut tally = Tally {
            jobs: jobs.len(),
            duplicate_results: self.duplicate_results,
            max_attempts: self.max_attempts,
            ..Tally::default()
        };
        for id in jobs {
            match self.results.get(id).map(|r| r["status"] == "ok") {
                Some(true) => tally.ok += 1,
                Some(false) => tally.failed += 1,
                None => {}
            }
            if self.dead.contains(id) {
                tally.dead += 1;
            } else if !self.ended(id) {
                tally.lost += 1;
            }
        }
        tally
    }
}

/// Reads results and dead letters until every job has ended (or `timeout`), then tallies.
async fn collect(client: &Client, jobs: &HashSet<String>, timeout: Duration) -> Tally {
    collect_with(client, jobs, timeout).await.0
}

async fn collect_with(
    client: &Client,
    jobs: &HashSet<String>,
    timeout: Duration,
) -> (Tally, Collector) {
    let mut collector = Collector::default();
    let deadline = Instant::now() + timeout;
    while !jobs.iter().all(|id| collector.ended(id)) && Instant::now() < deadline {
        if collector.poll(client).await == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    (collector.tally(jobs), collector)
}

/// As [`collect_with`], reading through any of `urls` and connecting again (to the next) whenever
/// the broker fails the reader (its node went down, or a queue's leader did).
async fn collect_through_faults(
    urls: &[String],
    jobs: &HashSet<String>,
    timeout: Duration,
) -> (Tally, Collector) {
    let mut collector = Collector::default();
    let deadline = Instant::now() + timeout;
    let mut client = None;
    let mut next = urls.iter().cycle();
    while !jobs.iter().all(|id| collector.ended(id)) && Instant::now() < deadline {
        if client.is_none() {
            let url = next.next().expect("a URL");
            let connecting = Client::try_connect_url(url);
            client = tokio::time::timeout(Duration::from_secs(3), connecting)
                .await
                .ok()
                .and_then(Result::ok);
        }
        let polled = match &client {
            Some(reader) => collector.try_poll(reader).await,
            None => Ok(0),
        };
        match polled {
            Ok(0) => tokio::time::sleep(Duration::from_millis(200)).await,
            Ok(_) => {}
            Err(_) => {
                client = None;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    (collector.tally(jobs), collector)
}

fn chat_job(id: &str) -> Value {
    common::inline_job(json!({"job_id": id, "limit": 2}))
}

fn media_job(id: &str, sdkfileid: &str) -> Value {
    json!({"job_id": id, "corpid": CORPID, "secret": SECRET, "sdkfileid": sdkfileid})
}

/// `count` jobs named `<prefix>-<n>`: every `media_every`-th a media job of `media_size` bytes,
/// the others chat jobs.
fn mixed_jobs(
    prefix: &str,
    count: usize,
    media_every: usize,
    media_size: u64,
) -> Vec<(&'static str, Value)> {
    (0..count)
        .map(|n| {
            let id = format!("{prefix}-{n}");
            if n % media_every == 0 {
                let sdkfileid = emulator::media_file_id(media_size, 1, n as u64);
                ("fetch-media", media_job(&id, &sdkfileid))
            } else {
                ("fetch-chatdata", chat_job(&id))
            }
        })
        .collect()
}

async fn publish_all(client: &Client, jobs: &[(&str, Value)]) -> HashSet<String> {
    let mut ids = HashSet::new();
    for (kind, body) in jobs {
        ids.insert(body["job_id"].as_str().unwrap().to_owned());
        client.submit(kind, body).await;
    }
    ids
}

/// Scenario 3: 30% of SDK calls fail with a transient code; every job still ends ok, within
/// the attempts the policy allows.
#[tokio::test(flavor = "multi_thread")]
async fn transient_faults() {
    let mut config = default_config();
    let faults = &mut config.corps[0].faults;
    for op in [&mut faults.get_chat_data, &mut faults.get_media_data] {
        op.probability = 0.3;
        op.codes = vec![10001, 10002, 10003];
    }
    faults.decrypt_data.probability = 0.3;
    faults.decrypt_data.codes = vec![10008];
    let (vhost, emulator) = (Vhost::new(), Emulator::with_config(&config));
    // A chat attempt succeeds with p = 0.7 (GetChatData) x 0.49 (no 10008 in two messages), so
    // a job needs about a dozen attempts in the worst case of a few hundred: 30 leaves the chance
    // that one runs out below one in a million.
    let max_attempts = 30;
    let args = [
        "--max-attempts",
        "30",
        "--retry-delays",
        "1",
        "--concurrency",
        "16",
    ];
    let _workers: Vec<Worker> = (0..2)
        .map(|_| Worker::start(&vhost, &emulator, &args))
        .collect();
    let client = Client::connect(&vhost).await;
    let count = job_count(200);
    let jobs = mixed_jobs("t", count, 4, 600_000);
    let ids = publish_all(&client, &jobs).await;
    let (tally, collector) = collect_with(&client, &ids, patience(count)).await;
    tally.print("transient-faults");
    assert_eq!(tally.lost, 0, "{tally:?}");
    assert_eq!(
        tally.ok,
        count,
        "every job ends ok: {tally:?} {:?}",
        collector.failures()
    );
    assert!(tally.max_attempts <= max_attempts, "{tally:?}");
}

/// Scenario 2: a worker is SIGKILLed three times mid-run and restarted; nothing is lost, and
/// interrupted media downloads resume rather than restart.
#[tokio::test(flavor = "multi_thread")]
async fn worker_kills() {
    let mut config = default_config();
    config.corps[0].faults.get_media_data.latency_ms = 15;
    let (vhost, emulator) = (Vhost::new(), Emulator::with_config(&config));
    let steady = Worker::start(&vhost, &emulator, &[]);
    let mut victim = Worker::start(&vhost, &emulator, &[]);
    let client = Client::connect(&vhost).await;
    let count = job_count(120);
    let jobs = mixed_jobs("k", count, 3, 3_000_000);
    let ids = publish_all(&client, &jobs).await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        victim.child.kill().unwrap(); // SIGKILL
        victim.child.wait().unwrap();
        victim = Worker::start(&vhost, &emulator, &[]);
    }
    let tally = collect(&client, &ids, patience(count)).await;
    drop((steady, victim));
    let calls = emulator.calls_of("GetMediaData");
    let mut per_chunk: HashMap<(String, String), usize> = HashMap::new();
    for call in calls.iter().filter(|c| c.rc == 0) {
        *per_chunk
            .entry((
                call.sdkfileid.clone().unwrap_or_default(),
                call.index.clone().unwrap_or_default(),
            ))
            .or_default() += 1;
    }
    let fetched_twice: usize = per_chunk.values().map(|n| n - 1).sum();
    let restarted = per_chunk
        .iter()
        .filter(|((_, index), n)| index.is_empty() && **n > 1)
        .count();
    tally.print("worker-kills");
    println!("scenario=worker-kills media_chunks={} chunks_fetched_twice={fetched_twice} downloads_restarted={restarted}", per_chunk.len());
    assert_eq!(tally.lost, 0, "{tally:?}");
    assert_eq!(tally.ok, count, "{tally:?}");
    assert!(
        fetched_twice <= 3 * 16,
        "at most a few chunks per kill are fetched again: {fetched_twice}"
    );
}

/// Scenario 4: some jobs name a file on which the SDK aborts (SIGABRT) or touches invalid
/// memory (SIGSEGV). The library runs in SDK hosts (the default isolation), so a crash kills
/// one host: no worker dies, each poison job fails with 20003 `sdk_crashed` (naming the signal)
/// after its attempts and is dead-lettered, and every other job ends ok, with prefetch 8.
#[tokio::test(flavor = "multi_thread")]
async fn sdk_aborts() {
    let aborting: Vec<String> = (0..2)
        .map(|n| emulator::media_file_id(1000, 1, 900 + n))
        .collect();
    let segfaulting: Vec<String> = (0..2)
        .map(|n| emulator::media_file_id(1000, 1, 950 + n))
        .collect();
    let mut config = default_config();
    config.corps[0].faults.get_media_data.abort_on_sdkfileid = aborting.clone();
    config.corps[0].faults.get_media_data.segfault_on_sdkfileid = segfaulting.clone();
    let (vhost, emulator) = (Vhost::new(), Emulator::with_config(&config));
    let args = ["--prefetch", "8", "--concurrency", "4"];
    let mut workers: Vec<Worker> = (0..2)
        .map(|_| Worker::start(&vhost, &emulator, &args))
        .collect();
    let client = Client::connect(&vhost).await;
    let count = job_count(60);
    let mut jobs: Vec<(&str, Value)> = (0..count)
        .map(|n| ("fetch-chatdata", chat_job(&format!("a-{n}"))))
        .collect();
    let poison: Vec<&String> = aborting.iter().chain(&segfaulting).collect();
    for (n, id) in poison.iter().enumerate() {
        jobs.insert(
            n * count / poison.len(),
            ("fetch-media", media_job(&format!("poison-{n}"), id)),
        );
    }
    let ids = publish_all(&client, &jobs).await;
    let poison_ids: HashSet<String> = (0..poison.len()).map(|n| format!("poison-{n}")).collect();
    // The supervisor: restart whatever died, until every job has ended (nothing should die).
    let deadline = Instant::now() + patience(count);
    let mut restarts = 0;
    let mut collector = Collector::default();
    while Instant::now() < deadline && !ids.iter().all(|id| collector.ended(id)) {
        for worker in &mut workers {
            if worker.child.try_wait().unwrap().is_some() {
                *worker = Worker::start(&vhost, &emulator, &args);
                restarts += 1;
            }
        }
        if collector.poll(&client).await == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // A poison job's failure result is published before its dead letter, but a poll may read
    // the dead-letter queue after the result queue: wait for the results too.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline
        && !poison_ids
            .iter()
            .all(|id| collector.results.contains_key(id))
    {
        if collector.poll(&client).await == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let tally = collector.tally(&ids);
    tally.print("sdk-aborts");
    println!("scenario=sdk-aborts worker_restarts={restarts}");
    assert_eq!(tally.lost, 0, "{tally:?}");
    assert_eq!(tally.ok, count, "every other job ok: {tally:?}");
    assert_eq!(restarts, 0, "a crash costs an SDK host, not a worker");
    assert_eq!(
        tally.dead,
        poison_ids.len(),
        "each poison job is dead-lettered: {tally:?}"
    );
    for (n, id) in (0..poison.len()).map(|n| (n, format!("poison-{n}"))) {
        let failure = &collector.results[&id];
        assert_eq!(failure["error"]["name"], "sdk_crashed", "{failure}");
        let signal = if n < aborting.len() {
            "SIGABRT"
        } else {
            "SIGSEGV"
        };
        assert!(
            failure["error"]["message"]
                .as_str()
                .unwrap()
                .contains(signal),
            "{failure}"
        );
    }
}

fn rabbitmqctl(args: &[&str]) {
    let status = std::process::Command::new("rabbitmqctl")
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "rabbitmqctl {args:?}");
}

/// Scenario 6: the result queue refuses publishes for a while (a length limit with
/// reject-publish); the jobs stay unacked, and complete once it drains.
#[tokio::test(flavor = "multi_thread")]
async fn results_cannot_be_published() {
    let (vhost, emulator) = (Vhost::new(), Emulator::default_corp());
    let _worker = Worker::start(&vhost, &emulator, &[]);
    let limit = r#"{"max-length": 5, "overflow": "reject-publish"}"#;
    rabbitmqctl(&[
        "set_policy",
        "-p",
        &vhost.name,
        "--apply-to",
        "queues",
        "full-results",
        "^chatdata-results$",
        limit,
    ]);
    let client = Client::connect(&vhost).await;
    let count = job_count(40);
    let jobs: Vec<(&str, Value)> = (0..count)
        .map(|n| ("fetch-chatdata", chat_job(&format!("r-{n}"))))
        .collect();
    let ids = publish_all(&client, &jobs).await;
    // While the result queue is full, jobs wait unacked in the worker.
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.depth("chatdata-results").await < 5 {
        assert!(Instant::now() < deadline, "the result queue never filled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let waiting = client.depth("fetch-chatdata").await;
    // Quorum queues apply a length limit with a little lag: a few more may slip in.
    let held = client.depth("chatdata-results").await;
    assert!(held < 5 + 8, "the limit holds ({held} results queued)");
    assert!(held < count as u32, "not every job could publish");
    // Now the consumer catches up and keeps reading: everything completes.
    let tally = collect(&client, &ids, Duration::from_secs(120)).await;
    tally.print("results-refused");
    println!("scenario=results-refused jobs_still_queued_while_full={waiting}");
    assert_eq!(tally.lost, 0, "{tally:?}");
    assert_eq!(tally.ok, count, "{tally:?}");
}

/// Scenario 1: the broker is stopped and started twice while jobs flow, and all connections
/// are force-closed once; workers reconnect on their own and nothing is lost. The broker is a
/// node of the test's own: the machine's default node is never stopped.
#[tokio::test(flavor = "multi_thread")]
async fn broker_restarts() {
    let broker = Cluster::start(1);
    let url = broker.url(0);
    let mut config = default_config();
    config.corps[0].faults.get_chat_data.latency_ms = 20;
    let emulator = Emulator::with_config(&config);
    let _workers: Vec<Worker> = (0..2)
        .map(|_| Worker::start_url(&url, &emulator, &[], &[]))
        .collect();
    let count = job_count(300);
    let jobs: Vec<(&str, Value)> = (0..count)
        .map(|n| ("fetch-chatdata", chat_job(&format!("b-{n}"))))
        .collect();
    let ids = {
        let client = Client::connect_url(&url).await;
        publish_all(&client, &jobs).await
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    broker.ctl(0, &["close_all_connections", "fault suite: forced close"]);
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        broker.stop_node(0);
        tokio::time::sleep(Duration::from_secs(1)).await;
        broker.start_node(0);
    }
    let client = Client::connect_url(&url).await;
    let tally = collect(&client, &ids, patience(count)).await;
    tally.print("broker-restart");
    assert_eq!(tally.lost, 0, "{tally:?}");
    assert_eq!(tally.ok, count, "{tally:?}");
}

/// A small tmpfs, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs needs root");
        Self { dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// Scenario 5: the media store is a small tmpfs that fills up. Affected jobs are retried later
/// (the consumer moves stored files away, as an archiver would), and no partial or corrupt file
/// is ever reported as a result.
#[tokio::test(flavor = "multi_thread")]
async fn full_disk() {
    let store = Tmpfs::mount("3m");
    let (vhost, emulator) = (Vhost::new(), Emulator::default_corp());
    let media_dir = store.dir.path().to_str().unwrap().to_owned();
    let args = [
        "--media-dir",
        &media_dir,
        "--max-attempts",
        "20",
        "--retry-delays",
        "1",
    ];
    let _worker = Worker::start(&vhost, &emulator, &args);
    let client = Client::connect(&vhost).await;
    let seed = default_config().corps[0].seed;
    let count = job_count(12);
    let files: Vec<(String, String)> = (0..count)
        .map(|n| {
            let id = emulator::media_file_id(900_000, 1, 500 + n as u64);
            let md5 = common::expected_md5(seed, &id);
            (id, md5)
        })
        .collect();
    let jobs: Vec<(&str, Value)> = files
        .iter()
        .enumerate()
        .map(|(n, (id, md5))| {
            let mut job = media_job(&format!("d-{n}"), id);
            job["md5sum"] = json!(md5);
            ("fetch-media", job)
        })
        .collect();
    let ids = publish_all(&client, &jobs).await;
    let mut collector = Collector::default();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut moved = HashSet::new();
    while Instant::now() < deadline && !ids.iter().all(|id| collector.ended(id)) {
        collector.poll(&client).await;
        for result in collector.results.values().filter(|r| r["status"] == "ok") {
            let location = result["location"].as_str().unwrap().to_owned();
            if moved.insert(location.clone()) {
                // What the store reported must be whole and right, then it leaves the disk.
                let bytes = std::fs::read(&location).unwrap();
                assert_eq!(bytes.len(), 900_000, "{location}");
                use md5::{Digest, Md5};
                assert_eq!(
                    hex::encode(Md5::digest(&bytes)),
                    result["md5"].as_str().unwrap()
                );
                assert_eq!(result["md5_matched"], true);
                std::fs::remove_file(&location).unwrap();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tally = collector.tally(&ids);
    tally.print("full-disk");
    println!(
        "scenario=full-disk max_attempts_used={}",
        tally.max_attempts
    );
    assert_eq!(tally.lost, 0, "{tally:?}");
    assert_eq!(tally.ok, count, "{tally:?}");
    assert!(tally.max_attempts > 1, "the disk did fill up: {tally:?}");
}

/// The UTC time of day (seconds) of a log line.
fn time_of_day(line: &str) -> Option<f64> {
    let time = line.split('T').nth(1)?.split('Z').next()?;
    let mut parts = time.split(':');
    let (h, m, s): (f64, f64, f64) = (
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    );
    Some(h * 3600.0 + m * 60.0 + s)
}

/// The time of day now, as [`time_of_day`] reads log lines.
fn now_of_day() -> f64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    since_epoch.as_secs_f64() % 86_400.0
}

/// How long after `since` (a time of day) the worker ended its broker session.
fn left_session_after(worker: &Worker, since: f64) -> Option<Duration> {
    worker
        .log_text()
        .lines()
        .filter(|line| line.contains("broker session ended"))
        .filter_map(time_of_day)
        .find(|&at| at >= since)
        .map(|at| Duration::from_secs_f64(at - since))
}

/// The longest time between two jobs a worker finished, from the `job done` lines of its log
/// (their UTC time of day): how long it stalled while the backlog waited, and when (the time
/// of day of the last job before it).
fn longest_stall(worker: &Worker) -> (Duration, f64) {
    // Jobs finish side by side, so their lines are not quite in time order. (A run across
    // midnight UTC would show one false stall.)
    let mut done: Vec<f64> = worker
        .log_text()
        .lines()
        .filter(|line| line.contains("job done"))
        .filter_map(time_of_day)
        .collect();
    done.sort_by(f64::total_cmp);
    let (longest, from) = done
        .windows(2)
        .map(|pair| (pair[1] - pair[0], pair[0]))
        .fold(
            (0.0, 0.0),
            |best, gap| if gap.0 > best.0 { gap } else { best },
        );
    (Duration::from_secs_f64(longest), from)
}

/// Which of `faults` (name, time of day it began) caused a stall that began at `from`, and when
/// it began from there. A stall is timed from the last job done before it, and the fault
/// behind it may begin a little later: the last fault begun by [`FAULT_SLACK`] after `from`.
fn fault_behind(faults: &[(&'static str, f64)], from: f64) -> String {
    faults
        .iter()
        .rev()
        .find(|(_, began)| *began <= from + FAULT_SLACK)
        .map_or("before-any-fault".into(), |(name, began)| {
            format!("{name}, begun {:+.1}s into it", began - from)
        })
}

/// Longer than jobs of this scenario take (about a second), shorter than the time between
/// two faults.
const FAULT_SLACK: f64 = 3.0;

/// Scenario 7: a three-node cluster of the test's own, a backlog of jobs, two workers (one
/// given every node's URL, one given node 0's), and faults in turn: kill -9 of the job queues'
/// leader, a clean stop of the node the first worker uses, a partition that pauses a minority,
/// and the first worker's node frozen (SIGSTOP) for 30 s. Before the stop and the freeze the
/// first worker is moved off node 0 if it is there, so that they take out one worker's node.
/// Nothing is lost, every media file is whole, and the worker given every URL leaves the frozen
/// node within 10 s (its stall, which also holds the cluster's own recovery, is printed).
// A scenario reads top to bottom: its steps are its assertions.
#[allow(clippy::too_many_lines)]
#[tokio::test(flavor = "multi_thread")]
async fn cluster_node_faults() {
    let cluster = Cluster::start(3);
    let mut config = default_config();
    // Slow enough calls that the backlog outlasts the faults.
    config.corps[0].faults.get_chat_data.latency_ms = 400;
    let emulator = Emulator::with_config(&config);
    // The job queues are declared through node 1, so their leaders start there.
    let declared = std::process::Command::new(common::cli())
        .args(["topology", "apply", "--retry-delays", "1,2"])
        .env("WECOM_AMQP_URL", cluster.url(1))
        .output()
        .unwrap();
    assert!(declared.status.success(), "{declared:?}");
    assert_eq!(cluster.leader_of(0, "fetch-chatdata"), Some(1));
    let args = ["--retry-delays", "1,2", "--concurrency", "8"];
    let single = Worker::start_url(&cluster.url(0), &emulator, &args, &[]);
    let listed = Worker::start_url(&cluster.urls(), &emulator, &args, &[]);
    let client = Client::connect_url(&cluster.url(0)).await;
    let count = job_count(2500);
    let jobs = mixed_jobs("c", count, 50, 1_100_000);
    let ids = publish_all(&client, &jobs).await;
    drop(client);
    // The node the worker given every URL consumes through, as `asked` sees it.
    let listed_pid = listed.child.id();
    let node_of_listed = |asked: usize| {
        cluster.node_with_newest_connection(asked, listed_pid, "wecom-archive worker (consume)")
    };
    // A stop or a freeze of the node both workers use would stall the one given one URL for
    // as long as the node is out, whatever it did: first the worker given every URL is moved
    // off node 0 (its connections there closed, as an operator may, until it connects
    // elsewhere), so that each fault takes out one worker's node.
    let cluster = &cluster;
    let node_of_listed_off_node_0 = |asked: usize| async move {
        let mut moved = None;
        for _ in 0..20 {
            match node_of_listed(asked) {
                Some(node) if node != 0 => return (node, moved),
                Some(_) => {
                    moved.get_or_insert_with(now_of_day);
                    cluster.close_connections_to(0, listed_pid);
                }
                None => {}
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        panic!("the worker given every URL did not leave node 0");
    };
    let faults = async {
        let mut began = Vec::new();
        tokio::time::sleep(Duration::from_secs(5)).await;
        // The job queues' leader dies.
        began.push(("kill-leader", now_of_day()));
        cluster.kill(1);
        tokio::time::sleep(Duration::from_secs(10)).await;
        cluster.start_node(1);
        tokio::time::sleep(Duration::from_secs(5)).await;
        // A clean stop of the node the worker given every URL uses.
        let (stopped, moved) = node_of_listed_off_node_0(2).await;
        began.extend(moved.map(|at| ("move-off-node-0", at)));
        let asked = (stopped + 1) % 3;
        began.push(("stop-node", now_of_day()));
        cluster.stop_node(stopped);
        tokio::time::sleep(Duration::from_secs(10)).await;
        cluster.start_node(stopped);
        tokio::time::sleep(Duration::from_secs(5)).await;
        // Node 2 cut off from the others: the minority pauses, then recovers.
        let (n0, n1) = (&cluster.nodes[0].name, &cluster.nodes[1].name);
        let cut = format!("erlang:disconnect_node('{n0}'), erlang:disconnect_node('{n1}').");
        began.push(("partition", now_of_day()));
        cluster.ctl(2, &["eval", &cut]);
        tokio::time::sleep(Duration::from_secs(15)).await;
        // The node that worker uses now, frozen for 30 s.
        let (frozen, moved) = node_of_listed_off_node_0(asked).await;
        began.extend(moved.map(|at| ("move-off-node-0", at)));
        let frozen_at = now_of_day();
        began.push(("freeze", frozen_at));
        cluster.freeze(frozen);
        tokio::time::sleep(Duration::from_secs(30)).await;
        cluster.thaw(frozen);
        println!("scenario=cluster-faults stopped_node={stopped} frozen_node={frozen}");
        (frozen_at, began)
    };
    let urls: Vec<String> = (0..3).map(|node| cluster.url(node)).collect();
    let reading = collect_through_faults(&urls, &ids, patience(count));
    let ((tally, collector), (frozen_at, began)) = tokio::join!(reading, faults);
    tally.print("cluster-faults");
    let ((stall_listed, listed_from), (stall_single, single_from)) =
        (longest_stall(&listed), longest_stall(&single));
    let left_frozen = left_session_after(&listed, frozen_at);
    let asked_again = listed
        .log_text()
        .matches("did not answer a consume")
        .count();
    let publishes_asked_again = listed
        .log_text()
        .matches("asked again on a fresh channel")
        .count();
    println!(
        "scenario=cluster-faults longest_stall_s_worker_with_3_urls={:.1} (after {}) \
         longest_stall_s_worker_with_1_url={:.1} (after {}) left_frozen_node_after_s={:.1} \
         consumes_asked_again={asked_again} publishes_asked_again={publishes_asked_again}",
        stall_listed.as_secs_f64(),
        fault_behind(&began, listed_from),
        stall_single.as_secs_f64(),
        fault_behind(&began, single_from),
        left_frozen.map_or(f64::NAN, |d| d.as_secs_f64()),
    );
    if tally.lost > 0 {
        // Whether a worker finished each job it lost (its result was then confirmed by the
        // broker): tells a loss in the broker or the reader from one in the worker.
        let logs = [listed.log_text(), single.log_text()];
        let lost: Vec<String> = collector
            .missing(&ids)
            .into_iter()
            .map(|id| {
                let done = logs.iter().any(|log| {
                    log.lines().any(|line| {
                        line.contains("job done") && line.contains(&format!("job_id=\"{id}\""))
                    })
                });
                format!("{id} (done in a worker's log: {done})")
            })
            .collect();
        panic!("{tally:?}: lost {lost:?}");
    }
    assert_eq!(tally.ok, count, "{tally:?} {:?}", collector.failures());
    let whole = collector
        .results
        .values()
        .filter(|r| r["type"] == "media")
        .all(|r| r["size"] == 1_100_000 && r["chunks_fetched"].as_u64() >= Some(3));
    assert!(whole, "every media file whole");
    // What the worker controls: it leaves a frozen node within seconds. Its stall also holds
    // the cluster's own recovery, so it is printed, not asserted: when the frozen node led a
    // job queue, nothing is delivered from it until the other nodes take the node for down
    // (`net_ticktime`) and elect a new leader (8.5 s after the freeze seen here), and a stall
    // is that plus a job.
    let left = left_frozen.unwrap_or(Duration::MAX);
    if left > Duration::from_secs(10) {
        let log = listed.log_text();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains("job done") && !l.contains("DEBUG"))
            .collect();
        panic!(
            "the worker given every URL left its frozen node after {left:?} and stalled \
             {stall_listed:?}:\n{}",
            lines[lines.len().saturating_sub(40)..].join("\n")
        );
    }
}
