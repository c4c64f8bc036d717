//! The worker binary against the real broker (a vhost per test) and the emulator: results,
//! retries, failures, dead letters, replay, reply_to, and a drain on SIGTERM. Every message the
//! worker publishes is checked against `schemas/`.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use base64::Engine;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::BasicProperties;
use serde_json::{json, Value};

use common::broker::{assert_all_valid, Client, Vhost, Worker};
use common::{default_config, inline_job, Emulator, CORPID, SECRET};

const WAIT: Duration = Duration::from_secs(30);

fn bytes(job: &Value) -> Vec<u8> {
    serde_json::to_vec(job).unwrap()
}

fn dead_letter_code(props: &BasicProperties) -> Option<i64> {
    wecom_archive::broker::headers::error_code(props.headers().as_ref())
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_pages_across_two_key_versions_arrive_in_order() {
    let (vhost, emulator) = (Vhost::new(), Emulator::default_corp());
    let _worker = Worker::start(&vhost, &emulator, &[]);
    let client = Client::connect(&vhost).await;
    let job = inline_job(json!({"job_id": "chat-1", "seq": 0, "limit": 40, "max_pages": 3}));
    let props = BasicProperties::default().with_correlation_id("corr-1".into());
    client
        .publish_job("fetch-chatdata", &bytes(&job), props)
        .await;

    let results = client.take("chatdata-results", 3, WAIT).await;
    assert_eq!(results.len(), 3);
    assert_all_valid(&results);
    let pages: Vec<&Value> = results.iter().map(|r| &r.body).collect();
    for (n, page) in pages.iter().enumerate() {
        assert_eq!(page["status"], "ok");
        assert_eq!(page["job_id"], "chat-1");
        assert_eq!(page["correlation_id"], "corr-1");
        assert_eq!(page["page"], n + 1);
        assert_eq!(page["messages"].as_array().unwrap().len(), 40);
        assert!(page["errors"].as_array().unwrap().is_empty());
    }
    assert_eq!(
        pages[1]["seq"], pages[0]["next_seq"],
        "pages follow each other"
    );
    let ids: BTreeSet<&str> = pages
        .iter()
        .map(|p| p["result_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "each page has its own result_id");
    let versions: BTreeSet<u64> = pages
        .iter()
        .flat_map(|p| p["messages"].as_array().unwrap().iter())
        .map(|m| m["publickey_ver"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, BTreeSet::from([1, 2]));
    assert_eq!(client.depth("fetch-chatdata.dead").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_with_undecryptable_messages_carries_them_as_error_items() {
    let (vhost, emulator) = (Vhost::new(), Emulator::default_corp());
    let _worker = Worker::start(&vhost, &emulator, &[]);
    let client = Client::connect(&vhost).await;
    let mut job = inline_job(json!({"job_id": "chat-2", "limit": 30}));
    job["private_keys"].as_array_mut().unwrap().truncate(1);
    client.submit("fetch-chatdata", &job).await;
    let results = client.take("chatdata-results", 1, WAIT).await;
    assert_all_valid(&results);
    let page = &results[0].body;
    let errors = page["errors"].as_array().unwrap();
    assert!(!errors.is_empty());
    assert!(errors
        .iter()
        .all(|e| e["error"]["code"] == 20101 && e["publickey_ver"] == 2));
    assert_eq!(
        errors.len() + page["messages"].as_array().unwrap().len(),
        30
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn media_single_and_multi_chunk_land_in_the_store() {
    let (vhost, emulator) = (Vhost::new(), Emulator::default_corp());
    let worker = Worker::start(&vhost, &emulator, &[]);
    let client = Client::connect(&vhost).await;
    let seed = default_config().corps[0].seed;
    let small = emulator::media_file_id(3000, 1, 1);
    let large = emulator::media_file_id(1_600_000, 1, 2);
    for (id, job_id, inline) in [(&small, "m-small", true), (&large, "m-large", false)] {
        let job = json!({"job_id": job_id, "corpid": CORPID, "secret": SECRET, "sdkfileid": id,
            "md5sum": common::expected_md5(seed, id), "file_name": "photo.JPG", "inline": inline});
        client.submit("fetch-media", &job).await;
    }
    let results = client.take("media-results", 2, WAIT).await;
    assert_eq!(results.len(), 2);
    assert_all_valid(&results);
    let by_id: HashMap<&str, &Value> = results
        .iter()
        .map(|r| (r.body["job_id"].as_str().unwrap(), &r.body))
        .collect();
    let small_result = by_id["m-small"];
    assert_eq!(
        (
            small_result["size"].as_u64(),
            small_result["md5_matched"].as_bool()
        ),
        (Some(3000), Some(true))
    );
    let inline = base64::engine::general_purpose::STANDARD
        .decode(small_result["data_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(inline.len(), 3000);
    let large_result = by_id["m-large"];
    assert_eq!(large_result["size"], 1_600_000);
    assert_eq!(large_result["chunks_fetched"], 4);
    assert!(large_result.get("data_base64").is_none());
    let location = std::path::PathBuf::from(large_result["location"].as_str().unwrap());
    assert!(location.starts_with(&worker.media_dir), "{location:?}");
    assert!(location.to_str().unwrap().ends_with(".jpg"));
    assert_eq!(std::fs::metadata(&location).unwrap().len(), 1_600_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_errors_are_retried_until_the_job_succeeds() {
    let mut config = default_config();
    config.corps[0].faults.get_chat_data.script = vec![10001, 10002];
    let (vhost, emulator) = (Vhost::new(), Emulator::with_config(&config));
    let _worker = Worker::start(&vhost, &emulator, &[]);
    let client = Client::connect(&vhost).await;
    let job = inline_job(json!({"job_id": "retry-ok", "limit": 5}));
    client.submit("fetch-chatdata", &job).await;
    let results = client.take("chatdata-results", 1, WAIT).await;
    assert_all_valid(&results);
    assert_eq!(results[0].body["status"], "ok");
    assert_eq!(results[0].body["attempts"], 3);
    assert_eq!(emulator.calls_of("GetChatData").len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn exhausted_retries_publish_a_failure_and_dead_letter_the_job() {
    let mut config = default_config();
    config.corps[0].faults.get_chat_data.script = vec![10001; 10];
    let (vhost, emulator) = (Vhost::new(), Emulator::with_config(&config));
    let _worker = Worker::start(&vhost, &emulator, &[]);
    let client = Client::connect(&vhost).await;
    let job = inline_job(json!({"job_id": "retry-exhausted", "limit": 5}));
    client.submit("fetch-chatdata", &job).await;
    let results = client.take("chatdata-results", 1, WAIT).await;
    assert_all_valid(&results);
    let failure = &results[0].body;
    assert_eq!(
        (failure["status"].as_str(), failure["attempts"].as_u64()),
        (Some("failed"), Some(3))
    );
    assert_eq!(failure["error"]["code"], 10001);
    assert_eq!(failure["error"]["retryable"], true);
    let dead = client.take("fetch-chatdata.dead", 1, WAIT).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead_letter_code(&dead[0].properties), Some(10001));
    assert_eq!(
        dead[0].raw,
        bytes(&job),
        "the dead letter is the job as published"
    );
    let text = serde_json::to_string(failure).unwrap();
    assert!(
        !text.contains(SECRET) && !text.contains("PRIVATE KEY"),
        "no secret in results"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_permanent_error_fails_at_once() {
    let mut config = default_config();
    config.corps[0].whitelisted = false;
    let (vhost, emulator) = (Vhost::new(), Emulator::with_config(&config));
    let _worker = Worker::start(&vhost, &emulator, &[]);
    let client = Client::connect(&vhost).await;
    let job = inline_job(json!({"job_id": "off-whitelist"}));
    client.submit("fetch-chatdata", &job).await;
    let results = client.take("chatdata-results", 1, WAIT).await;
    assert_all_valid(&results);
    assert_eq!(results[0].body["error"]["code"], 301042);
    assert_eq!(results[0].body["error"]["class"], "configuration");
    assert_eq!(results[0].body["attempts"], 1);
    assert_eq!(client.take("fetch-chatdata.dead", 1, WAIT).await.len(), 1);
    assert_eq!(emulator.calls_of("GetChatData").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_jobs_get_a_failure_when_they_have_an_id_and_are_dead_lettered_always() {
    let (vhost, emulator) = (Vhost::new(), Emulator::default_corp());
    let _worker = Worker::start(&vhost, &emulator, &[]);
    let client = Client::connect(&vhost).await;
    let with_id = BasicProperties::default().with_message_id("bad-1".into());
    client
        .publish_job("fetch-chatdata", b"{not json", with_id)
        .await;
    client
        .publish_job(
            "fetch-chatdata",
            br#"{"corp": "x", "limit": 0}"#,
            BasicProperties::default(),
        )
        .await;
    let dead = client.take("fetch-chatdata.dead", 2, WAIT).await;
    assert_eq!(dead.len(), 2);
    assert!(dead
        .iter()
        .all(|d| dead_letter_code(&d.properties) == Some(20301)));
    let results = client
        .take("chatdata-results", 2, Duration::from_secs(2))
        .await;
    assert_eq!(
        results.len(),
        1,
        "only the job with an id gets a failure result"
    );
    assert_all_valid(&results);
    assert_eq!(results[0].body["job_id"], "bad-1");
    assert_eq!(results[0].body["error"]["name"], "invalid_job");
}

#[tokio::test(flavor = "multi_thread")]
async fn reply_to_gets_a_copy_of_the_result() {
    let (vhost, emulator) = (Vhost::new(), Emulator::default_corp());
    let _worker = Worker::start(&vhost, &emulator, &[]);
    let client = Client::connect(&vhost).await;
    client
        .channel
        .queue_declare(
            "odoo-replies".into(),
            lapin::options::QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
    let job = inline_job(json!({"job_id": "rt-1", "limit": 3}));
    let props = BasicProperties::default().with_reply_to(ShortString::from("odoo-replies"));
    client
        .publish_job("fetch-chatdata", &bytes(&job), props)
        .await;
    let reply = client.take("odoo-replies", 1, WAIT).await;
    assert_eq!(reply.len(), 1);
    assert_all_valid(&reply);
    assert_eq!(reply[0].body["job_id"], "rt-1");
    assert_eq!(client.take("chatdata-results", 1, WAIT).await.len(), 1);
}

/// `x-wecom-reply-to-only`: the results go to `reply_to` alone while that queue is there, and to
/// the result queue when it is gone (never nowhere); a header that is not boolean true is not
/// taken for it.
#[tokio::test(flavor = "multi_thread")]
async fn reply_to_only_results_are_never_dropped() {
    let (vhost, emulator) = (Vhost::new(), Emulator::default_corp());
    let _worker = Worker::start(&vhost, &emulator, &[]);
    let client = Client::connect(&vhost).await;
    let declare = lapin::options::QueueDeclareOptions::default();
    client
        .channel
        .queue_declare("waiting".into(), declare, Default::default())
        .await
        .unwrap();
    let only = |reply_to: &str, value: AMQPValue| {
        let mut headers = FieldTable::default();
        headers.insert("x-wecom-reply-to-only".into(), value);
        BasicProperties::default()
            .with_reply_to(reply_to.into())
            .with_headers(headers)
    };
    let jobs = [
        ("to-waiting", only("waiting", AMQPValue::Boolean(true))),
        ("to-gone", only("gone", AMQPValue::Boolean(true))),
        (
            "not-boolean",
            only("waiting", AMQPValue::LongString("true".into())),
        ),
    ];
    for (id, props) in jobs {
        let job = inline_job(json!({"job_id": id, "limit": 2}));
        client
            .publish_job("fetch-chatdata", &bytes(&job), props)
            .await;
    }
    let mut waiting: Vec<String> = client
        .take("waiting", 2, WAIT)
        .await
        .iter()
        .map(|r| r.body["job_id"].as_str().unwrap().to_owned())
        .collect();
    waiting.sort();
    assert_eq!(waiting, ["not-boolean", "to-waiting"]);
    let mut results: Vec<String> = client
        .take("chatdata-results", 2, WAIT)
        .await
        .iter()
        .map(|r| r.body["job_id"].as_str().unwrap().to_owned())
        .collect();
    results.sort();
    assert_eq!(results, ["not-boolean", "to-gone"]);
    assert!(client
        .take("chatdata-results", 1, Duration::from_secs(1))
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seed_services_request_body_is_a_job() {
    let (vhost, emulator) = (Vhost::new(), Emulator::default_corp());
    let _worker = Worker::start(&vhost, &emulator, &[]);
    let client = Client::connect(&vhost).await;
    let seed = json!({"seq": 0, "corpid": CORPID, "secret": SECRET,
        "private_keys": [{"publickey_ver": 1, "private_key": common::fixture("keys/v1.pem")},
                         {"publickey_ver": 2, "private_key": common::fixture("keys/v2.pem")}],
        "proxy": "", "paswd": ""});
    let props = BasicProperties::default().with_message_id("seed-1".into());
    client
        .publish_job("fetch-chatdata", &bytes(&seed), props.clone())
        .await;
    let media = emulator::media_file_id(500, 1, 7);
    let mut seed_media = seed.clone();
    seed_media["sdkfileid"] = json!(media);
    client
        .publish_job(
            "fetch-media",
            &bytes(&seed_media),
            props.with_message_id("seed-2".into()),
        )
        .await;
    let page = client.take("chatdata-results", 1, WAIT).await;
    let file = client.take("media-results", 1, WAIT).await;
    assert_all_valid(&page);
    assert_all_valid(&file);
    assert_eq!(
        (
            page[0].body["job_id"].as_str(),
            page[0].body["status"].as_str()
        ),
        (Some("seed-1"), Some("ok"))
    );
    assert_eq!(
        page[0].body["messages"].as_array().unwrap().len(),
        1000,
        "the default limit"
    );
    assert_eq!(
        (
            file[0].body["job_id"].as_str(),
            file[0].body["size"].as_u64()
        ),
        (Some("seed-2"), Some(500))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_replayed_after_the_cause_is_fixed_succeeds() {
    let (vhost, emulator) = (Vhost::new(), Emulator::default_corp());
    let strict = Worker::start(&vhost, &emulator, &["--inline-credentials", "false"]);
    let client = Client::connect(&vhost).await;
    let job = inline_job(json!({"job_id": "replay-1", "limit": 2}));
    client.submit("fetch-chatdata", &job).await;
    let failure = client.take("chatdata-results", 1, WAIT).await;
    assert_eq!(
        failure[0].body["error"]["name"],
        "inline_credentials_refused"
    );
    assert!(strict.terminate().success());
    let dead_depth = client.depth("fetch-chatdata.dead").await;
    assert_eq!(dead_depth, 1);

    let listed = vhost.cli(&["dlq", "list", "--kind", "chatdata"]);
    let line: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(
        (line["job_id"].as_str(), line["error_code"].as_i64()),
        (Some("replay-1"), Some(20303))
    );
    let shown =
        String::from_utf8(vhost.cli(&["dlq", "show", "--kind", "chatdata"]).stdout).unwrap();
    assert!(
        !shown.contains(SECRET) && !shown.contains("PRIVATE KEY"),
        "{shown}"
    );
    let dry = vhost.cli(&["dlq", "replay", "--kind", "chatdata", "--dry-run"]);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert_eq!(
        client.depth("fetch-chatdata.dead").await,
        1,
        "a dry run changes nothing"
    );

    let _lenient = Worker::start(&vhost, &emulator, &[]);
    let replayed = vhost.cli(&["dlq", "replay", "--kind", "chatdata", "--code", "20303"]);
    assert!(
        replayed.status.success(),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    let results = client.take("chatdata-results", 1, WAIT).await;
    assert_all_valid(&results);
    assert_eq!(
        (
            results[0].body["status"].as_str(),
            results[0].body["attempts"].as_u64()
        ),
        (Some("ok"), Some(1))
    );
    assert_eq!(client.depth("fetch-chatdata.dead").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_run_drains_without_losing_or_duplicating() {
    let mut config = default_config();
    config.corps[0].faults.get_chat_data.latency_ms = 300;
    let (vhost, emulator) = (Vhost::new(), Emulator::with_config(&config));
    let worker = Worker::start(
        &vhost,
        &emulator,
        &["--concurrency", "3", "--prefetch", "3"],
    );
    let client = Client::connect(&vhost).await;
    let jobs = 12;
    for n in 0..jobs {
        let job = inline_job(json!({"job_id": format!("drain-{n}"), "limit": 2}));
        client.submit("fetch-chatdata", &job).await;
    }
    worker.wait_for_log("job done", WAIT);
    let status = worker.terminate();
    assert!(
        status.success(),
        "the worker exits 0 on SIGTERM: {status:?}"
    );
    let before = client.depth("chatdata-results").await;
    assert!(
        before < jobs,
        "SIGTERM came mid-run ({before} of {jobs} done)"
    );

    let _second = Worker::start(&vhost, &emulator, &[]);
    let results = client.take("chatdata-results", jobs as usize, WAIT).await;
    // Anything more would be a duplicate: give it a moment to show up.
    let extra = client
        .take("chatdata-results", 1, Duration::from_secs(2))
        .await;
    assert!(extra.is_empty(), "a job was answered twice");
    assert_all_valid(&results);
    let ids: Vec<&str> = results
        .iter()
        .map(|r| r.body["job_id"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), jobs as usize, "every job ended with a result");
    assert_eq!(ids.len(), jobs as usize, "no job was answered twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_reconnects_after_the_broker_drops_its_connections() {
    let (vhost, emulator) = (Vhost::new(), Emulator::default_corp());
    let worker = Worker::start(&vhost, &emulator, &[]);
    let status = std::process::Command::new("rabbitmqctl")
        .args([
            "close_all_connections",
            "--vhost",
            &vhost.name,
            "test: broker went away",
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    worker.wait_for_log("reconnecting", WAIT);
    // The worker's consumer comes back on its own; the test's client reconnects too.
    let client = Client::connect(&vhost).await;
    let job = inline_job(json!({"job_id": "after-reconnect", "limit": 2}));
    client.submit("fetch-chatdata", &job).await;
    let results = client.take("chatdata-results", 1, WAIT).await;
    assert_eq!(results.len(), 1, "{}", worker.log_text());
    assert_eq!(results[0].body["job_id"], "after-reconnect");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_hit_by_10008_is_retried_whole_and_published_with_error_items_on_the_last_attempt() {
    let mut config = default_config();
    // Ten DecryptData calls per attempt; the first of each attempt fails with 10008.
    let mut script = Vec::new();
    for _ in 0..3 {
        script.push(10008);
        script.extend([0; 9]);
    }
    config.corps[0].faults.decrypt_data.script = script;
    let (vhost, emulator) = (Vhost::new(), Emulator::with_config(&config));
    let _worker = Worker::start(&vhost, &emulator, &[]);
    let client = Client::connect(&vhost).await;
    let job = inline_job(json!({"job_id": "bad-key", "limit": 10}));
    client.submit("fetch-chatdata", &job).await;
    let results = client.take("chatdata-results", 1, WAIT).await;
    assert_all_valid(&results);
    let page = &results[0].body;
    assert_eq!(
        (page["status"].as_str(), page["attempts"].as_u64()),
        (Some("ok"), Some(3))
    );
    let errors = page["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{page}");
    assert_eq!(errors[0]["error"]["code"], 10008);
    assert_eq!(page["messages"].as_array().unwrap().len(), 9);
    assert_eq!(
        emulator.calls_of("GetChatData").len(),
        3,
        "the page was fetched once per attempt"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_media_failure_is_a_media_typed_failure_and_a_dead_letter() {
    let mut config = default_config();
    config.corps[0].media_expired_before_seq = 10;
    let (vhost, emulator) = (Vhost::new(), Emulator::with_config(&config));
    let _worker = Worker::start(&vhost, &emulator, &[]);
    let client = Client::connect(&vhost).await;
    let job = json!({"job_id": "expired", "corpid": CORPID, "secret": SECRET,
        "sdkfileid": emulator::media_file_id(100, 1, 1)});
    client.submit("fetch-media", &job).await;
    let results = client.take("media-results", 1, WAIT).await;
    assert_all_valid(&results);
    let failure = &results[0].body;
    assert_eq!(
        (failure["type"].as_str(), failure["error"]["code"].as_i64()),
        (Some("media"), Some(10010))
    );
    assert_eq!(failure["result_id"], "expired:failed");
    let dead = client.take("fetch-media.dead", 1, WAIT).await;
    assert_eq!(dead_letter_code(&dead[0].properties), Some(10010));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corp_alias_from_the_worker_directory_needs_no_credentials_in_the_job() {
    let (vhost, emulator) = (Vhost::new(), Emulator::default_corp());
    let dir = emulator.dir.path();
    std::fs::write(dir.join("secret"), format!("{SECRET}\n")).unwrap();
    let corps = json!({"acme": {"corpid": CORPID, "secret": {"file": dir.join("secret")},
        "keys": {"1": {"file": common::fixture_path("keys/v1.pem")},
                 "2": {"file": common::fixture_path("keys/v2.pem")}}}});
    let corps_file = dir.join("corps.json");
    std::fs::write(&corps_file, corps.to_string()).unwrap();
    let args = [
        "--corps-file",
        corps_file.to_str().unwrap(),
        "--inline-credentials",
        "false",
    ];
    let _worker = Worker::start(&vhost, &emulator, &args);
    let client = Client::connect(&vhost).await;
    let by_alias = br#"{"job_id": "by-alias", "corp": "acme", "limit": 4}"#;
    client
        .publish_job("fetch-chatdata", by_alias, BasicProperties::default())
        .await;
    let unknown = br#"{"job_id": "unknown", "corp": "other"}"#;
    client
        .publish_job("fetch-chatdata", unknown, BasicProperties::default())
        .await;
    let results = client.take("chatdata-results", 2, WAIT).await;
    assert_all_valid(&results);
    let by_id: HashMap<&str, &Value> = results
        .iter()
        .map(|r| (r.body["job_id"].as_str().unwrap(), &r.body))
        .collect();
    assert_eq!(by_id["by-alias"]["messages"].as_array().unwrap().len(), 4);
    assert_eq!(by_id["unknown"]["error"]["name"], "unknown_corp");
}

#[tokio::test(flavor = "multi_thread")]
async fn topology_apply_is_idempotent_and_publish_enqueues_a_job() {
    let (vhost, emulator) = (Vhost::new(), Emulator::default_corp());
    for _ in 0..2 {
        let applied = vhost.cli(&[
            "topology",
            "apply",
            "--retry-delays",
            "1,2",
            "--max-attempts",
            "3",
        ]);
        assert!(
            applied.status.success(),
            "{}",
            String::from_utf8_lossy(&applied.stderr)
        );
    }
    let secret = emulator.dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let key = format!("1={}", common::fixture_path("keys/v1.pem").display());
    let published = vhost.cli(&[
        "publish",
        "chatdata",
        "--corpid",
        CORPID,
        "--secret-file",
        secret.to_str().unwrap(),
        "--key",
        &key,
        "--limit",
        "3",
        "--job-id",
        "from-cli",
    ]);
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let client = Client::connect(&vhost).await;
    assert_eq!(client.depth("fetch-chatdata").await, 1);
    let _worker = Worker::start(&vhost, &emulator, &["--no-declare"]);
    let results = client.take("chatdata-results", 1, WAIT).await;
    assert_all_valid(&results);
    assert_eq!(results[0].body["job_id"], "from-cli");
}
