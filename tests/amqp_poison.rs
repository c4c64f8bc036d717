//! Messages RabbitMQ accepts although AMQP does not allow them (a `message_id` that is not
//! UTF-8, a header name that is not UTF-8, headers nested 10,000 deep), published with pika
//! (`tests/poison/publish.py`) among innocent jobs to a running worker: the worker keeps its
//! connection and its life, every innocent job ends ok on its first delivery, each poison ends
//! with a failure (20307) and a dead letter, and `dlq list/show/replay` handle the poison (the
//! dead letter keeps what could be read; replayed, the job runs).

mod common;

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use common::broker::{assert_all_valid, Client, Vhost, Worker};
use common::{inline_job, Emulator};

const WAIT: Duration = Duration::from_secs(60);
const POISONS: [&str; 3] = ["message_id", "header_name", "nesting"];

#[tokio::test(flavor = "multi_thread")]
async fn poison_messages_cost_neither_the_connection_nor_an_innocent_job() {
    let (vhost, emulator) = (Vhost::new(), Emulator::default_corp());
    let mut worker = Worker::start(&vhost, &emulator, &["--prefetch", "8"]);
    let client = Client::connect(&vhost).await;

    let mut jobs = Vec::new();
    for n in 0..20 {
        let job = inline_job(json!({"job_id": format!("innocent-{n}"), "seq": n * 5, "limit": 5}));
        jobs.push(json!({"kind": "fetch-chatdata", "body": job.to_string(), "poison": null}));
        if n % 7 == 3 {
            let poison = POISONS[n as usize / 7];
            let job = inline_job(json!({"job_id": format!("poison-{poison}"), "limit": 5}));
            jobs.push(json!({"kind": "fetch-chatdata", "body": job.to_string(), "poison": poison}));
        }
    }
    let jobs_file = emulator.dir.path().join("jobs.json");
    std::fs::write(&jobs_file, serde_json::to_vec(&jobs).unwrap()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/poison/publish.py");
    let published = Command::new("python3")
        .arg(script)
        .arg(vhost.url())
        .arg(&jobs_file)
        .output()
        .expect("python3 runs");
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );

    let results = client.take("chatdata-results", 23, WAIT).await;
    assert_eq!(results.len(), 23, "{}", worker.log_text());
    assert_all_valid(&results);
    let by_id = |id: &str| -> &Value {
        &results
            .iter()
            .find(|r| r.body["job_id"] == id)
            .unwrap_or_else(|| panic!("no result for {id}"))
            .body
    };
    for n in 0..20 {
        let result = by_id(&format!("innocent-{n}"));
        assert_eq!(
            (result["status"].as_str(), result["attempts"].as_u64()),
            (Some("ok"), Some(1)),
            "{result}"
        );
    }
    for poison in POISONS {
        let failure = by_id(&format!("poison-{poison}"));
        assert_eq!(failure["error"]["code"], 20307, "{failure}");
        assert_eq!(failure["error"]["name"], "malformed_amqp_message");
    }
    let calls = emulator.calls_of("GetChatData");
    assert_eq!(calls.len(), 20, "each innocent job ran once, no poison ran");
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "the worker is alive"
    );
    let log = worker.log_text();
    assert!(
        !log.contains("reconnecting") && !log.contains("session ended"),
        "the worker never lost its connection:\n{log}"
    );

    // Operators see the poison, and can put it back.
    let list = vhost.cli(&["dlq", "list", "--kind", "chatdata"]);
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert_eq!(listed.matches("20307").count(), 3, "{listed}");
    let show = vhost.cli(&["dlq", "show", "--kind", "chatdata"]);
    assert!(show.status.success());
    let shown = String::from_utf8_lossy(&show.stdout);
    for poison in POISONS {
        assert!(shown.contains(&format!("poison-{poison}")), "{shown}");
    }
    let replay = vhost.cli(&["dlq", "replay", "--kind", "chatdata", "--code", "20307"]);
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    // A dead letter holds the message as far as it could be read: not the repaired property,
    // not the publisher's malformed headers. Replayed, each job runs.
    let again = client.take("chatdata-results", 3, WAIT).await;
    assert_eq!(again.len(), 3);
    assert!(
        again.iter().all(|r| r.body["status"] == "ok"),
        "{:?}",
        again.iter().map(|r| &r.body["error"]).collect::<Vec<_>>()
    );
    assert!(worker.child.try_wait().unwrap().is_none());
}
