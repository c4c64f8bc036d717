//! Hostile input beyond the body's JSON, against the real broker, the worker binary and the
//! emulator: the project's own headers set by a publisher, a publisher's delivery count, a
//! `reply_to` naming the worker's own queues, media names that try to reach working files,
//! and the bodies where a lenient reader and a strict one used to disagree. Each poison ends
//! with a documented code and a dead letter; every innocent job ends ok.

mod common;

use std::time::Duration;

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;
use md5::{Digest, Md5};
use serde_json::{json, Value};

use common::broker::{assert_all_valid, Client, Vhost, Worker};
use common::{expected_md5, fixture, inline_job, Emulator, CORPID, SECRET};

const WAIT: Duration = Duration::from_secs(30);

fn with_headers(pairs: &[(&str, AMQPValue)]) -> BasicProperties {
    let mut table = FieldTable::default();
    for (key, value) in pairs {
        table.insert(ShortString::from(*key), value.clone());
    }
    BasicProperties::default().with_headers(table)
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

async fn publish(client: &Client, kind: &str, job: &Value, properties: BasicProperties) {
    client
        .publish_job(kind, &serde_json::to_vec(job).unwrap(), properties)
        .await;
}

/// The results of `count` jobs, by job id.
async fn results_by_id(client: &Client, queue: &str, count: usize) -> Vec<(String, Value)> {
    let results = client.take(queue, count, WAIT).await;
    assert_all_valid(&results);
    results
        .into_iter()
        .map(|r| (r.body["job_id"].as_str().unwrap_or("-").to_owned(), r.body))
        .collect()
}

fn code_of(results: &[(String, Value)], job_id: &str) -> Value {
    let (_, body) = results
        .iter()
        .find(|(id, _)| id == job_id)
        .unwrap_or_else(|| panic!("no result for {job_id}: {results:?}"));
    if body["status"] == "ok" {
        json!("ok")
    } else {
        body["error"]["code"].clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_progress_attempt_and_delivery_count_headers_steer_nothing() {
    let (vhost, emulator) = (Vhost::new(), Emulator::default_corp());
    let worker = Worker::start(&vhost, &emulator, &[]);
    let client = Client::connect(&vhost).await;
    let cases = [
        (
            "skip-all",
            with_headers(&[("x-wecom-progress", text(r#"{"seq":0,"pages_done":5}"#))]),
        ),
        (
            "skip-range",
            with_headers(&[("x-wecom-progress", text(r#"{"seq":4990,"pages_done":0}"#))]),
        ),
        (
            "last-attempt",
            with_headers(&[("x-wecom-attempt", AMQPValue::LongLongInt(4_294_967_295))]),
        ),
        (
            "bad-signature",
            with_headers(&[
                ("x-wecom-attempt", AMQPValue::LongLongInt(2)),
                ("x-wecom-attempt-mac", text("00ff")),
            ]),
        ),
        (
            "delivery-count",
            with_headers(&[("x-delivery-count", AMQPValue::LongLongInt(99))]),
        ),
    ];
    for (id, properties) in &cases {
        let job = inline_job(json!({"job_id": id, "limit": 5}));
        publish(&client, "fetch-chatdata", &job, properties.clone()).await;
    }
    let results = results_by_id(&client, "chatdata-results", cases.len()).await;
    for id in ["skip-all", "skip-range", "last-attempt", "bad-signature"] {
        assert_eq!(code_of(&results, id), json!(20306), "{id}");
    }
    // The broker's count is read on redeliveries only: on a first delivery it is the publisher's.
    assert_eq!(code_of(&results, "delivery-count"), json!("ok"));
    let (_, ok) = results
        .iter()
        .find(|(id, _)| id == "delivery-count")
        .unwrap();
    assert_eq!(
        (ok["seq"].as_u64(), ok["page"].as_u64()),
        (Some(0), Some(1))
    );
    let dead = client.take("fetch-chatdata.dead", 4, WAIT).await;
    assert_eq!(dead.len(), 4, "{}", worker.log_text());
    assert!(emulator
        .calls_of("GetChatData")
        .iter()
        .all(|call| call.seq == Some(0)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reply_to_naming_the_workers_own_queues_fails_into_the_result_queue_only() {
    let (vhost, emulator) = (Vhost::new(), Emulator::default_corp());
    let _worker = Worker::start(&vhost, &emulator, &[]);
    let client = Client::connect(&vhost).await;
    let queues = ["fetch-chatdata", "fetch-chatdata.dead", "media-results"];
    for queue in queues {
        let job = inline_job(json!({"job_id": format!("reply-{queue}"), "limit": 5}));
        let properties = BasicProperties::default().with_reply_to(queue.into());
        publish(&client, "fetch-chatdata", &job, properties).await;
    }
    let results = results_by_id(&client, "chatdata-results", queues.len()).await;
    for queue in queues {
        assert_eq!(code_of(&results, &format!("reply-{queue}")), json!(20301));
    }
    let dead = client.take("fetch-chatdata.dead", 3, WAIT).await;
    assert_eq!(dead.len(), 3);
    // Nothing was copied into the queues it named.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(client.depth("fetch-chatdata").await, 0);
    assert_eq!(client.depth("fetch-chatdata.dead").await, 0);
    assert_eq!(client.depth("media-results").await, 0);
    assert!(emulator.calls_of("GetChatData").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_media_name_cannot_reach_another_downloads_working_files() {
    let (vhost, emulator) = (Vhost::new(), Emulator::default_corp());
    let _worker = Worker::start(&vhost, &emulator, &[]);
    let client = Client::connect(&vhost).await;
    let sdkfileid = emulator::media_file_id(700_000, 1, 5);
    let md5 = expected_md5(1, &sdkfileid);
    for (id, name) in [
        ("named-part", Some("evidence.part")),
        ("named-resume", Some("evidence.resume")),
    ] {
        let job = json!({"job_id": id, "corpid": CORPID, "secret": SECRET, "sdkfileid": sdkfileid, "file_name": name});
        client.submit("fetch-media", &job).await;
    }
    let named = results_by_id(&client, "media-results", 2).await;
    let plain =
        json!({"job_id": "plain", "corpid": CORPID, "secret": SECRET, "sdkfileid": sdkfileid});
    client.submit("fetch-media", &plain).await;
    let plain = results_by_id(&client, "media-results", 1).await;
    assert_eq!(plain[0].1["md5"], json!(md5));
    for (id, result) in named {
        let location = result["location"].as_str().unwrap();
        let bytes = std::fs::read(location).unwrap_or_else(|e| panic!("{id}: {location}: {e}"));
        assert_eq!(hex::encode(Md5::digest(&bytes)), md5, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_a_lenient_client_writes_are_jobs_and_keys_as_openssl_reads_them_work() {
    let (vhost, emulator) = (Vhost::new(), Emulator::default_corp());
    let _worker = Worker::start(&vhost, &emulator, &[]);
    let client = Client::connect(&vhost).await;
    let float_limit = serde_json::to_string(&inline_job(json!({"job_id": "floats"})))
        .unwrap()
        .replacen('{', r#"{"limit": 5e0, "seq": 10.0, "#, 1);
    // The seed service's client sends unset fields as null; its model took them as absent.
    let nulls = inline_job(
        json!({"job_id": "nulls", "limit": 5, "proxy": null, "paswd": null, "seq": null}),
    );
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend(serde_json::to_vec(&inline_job(json!({"job_id": "bom", "limit": 5}))).unwrap());
    let padded_key = json!({
        "job_id": "key-whitespace", "corpid": CORPID, "secret": SECRET, "limit": 5,
        "private_keys": [
            {"publickey_ver": 1, "private_key": format!("{}\n\n  \t\n", fixture("keys/v1.pem"))},
            {"publickey_ver": 2, "private_key": fixture("keys/v2.pem").replace('\n', "\r\n")},
        ],
    });
    let encrypted_key = inline_job(json!({"job_id": "key-encrypted", "limit": 5}));
    let mut encrypted_key = encrypted_key;
    encrypted_key["private_keys"][0]["private_key"] = json!(
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n"
    );
    for body in [
        float_limit.into_bytes(),
        bom,
        serde_json::to_vec(&padded_key).unwrap(),
        serde_json::to_vec(&encrypted_key).unwrap(),
        serde_json::to_vec(&nulls).unwrap(),
    ] {
        client
            .publish_job("fetch-chatdata", &body, BasicProperties::default())
            .await;
    }
    let results = results_by_id(&client, "chatdata-results", 5).await;
    for id in ["floats", "bom", "key-whitespace", "nulls"] {
        assert_eq!(code_of(&results, id), json!("ok"), "{id}");
    }
    let (_, floats) = results.iter().find(|(id, _)| id == "floats").unwrap();
    assert_eq!(
        (
            floats["seq"].as_u64(),
            floats["messages"].as_array().map(Vec::len)
        ),
        (Some(10), Some(5))
    );
    let (_, key_whitespace) = results
        .iter()
        .find(|(id, _)| id == "key-whitespace")
        .unwrap();
    assert_eq!(key_whitespace["errors"], json!([]), "both keys decrypt");
    assert_eq!(code_of(&results, "key-encrypted"), json!(20304));
    let (_, encrypted) = results
        .iter()
        .find(|(id, _)| id == "key-encrypted")
        .unwrap();
    assert!(encrypted["error"]["message"]
        .as_str()
        .unwrap()
        .contains("decrypt it first"));
}
