//! Hostile and broken jobs (issue 4, scenario 7): every case in `tests/bad-input/` is published
//! to a running worker, which must answer each with a failure carrying a documented code (or,
//! for a bad key, a page whose messages carry it), dead-letter each failed job, and keep
//! working. `tests/bad-input/cases.json` lists the cases and what each must produce.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use lapin::BasicProperties;
use serde::Deserialize;
use serde_json::Value;

use common::broker::{assert_all_valid, Client, Vhost, Worker};
use common::Emulator;

#[derive(Deserialize)]
struct Case {
    file: String,
    kind: String,
    expect: String,
    code: Option<i64>,
}

fn cases() -> Vec<Case> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-input");
    serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap()
}

fn body(case: &Case) -> Vec<u8> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-input");
    let bytes = std::fs::read(dir.join(&case.file)).unwrap();
    // Cases that need a real file name the emulator serves get one minted here.
    let minted = emulator::media_file_id(1234, 1, 42);
    String::from_utf8(bytes.clone())
        .map(|text| text.replace("{{SDKFILEID}}", &minted).into_bytes())
        .unwrap_or(bytes)
}

// A scenario reads top to bottom: its steps are its assertions.
#[allow(clippy::too_many_lines)]
#[tokio::test(flavor = "multi_thread")]
async fn every_bad_input_gets_a_documented_answer_and_a_dead_letter_and_no_worker_dies() {
    let cases = cases();
    assert!(cases.len() >= 50, "the corpus has {} cases", cases.len());
    let (vhost, emulator) = (Vhost::new(), Emulator::default_corp());
    let mut worker = Worker::start(&vhost, &emulator, &[]);
    let client = Client::connect(&vhost).await;
    for case in &cases {
        let routing_key = format!("fetch-{}", case.kind);
        let props = BasicProperties::default().with_message_id(case.file.as_str().into());
        client.publish_job(&routing_key, &body(case), props).await;
    }
    let (chat, media) = cases
        .iter()
        .partition::<Vec<&Case>, _>(|c| c.kind == "chatdata");
    let mut results = client
        .take("chatdata-results", chat.len(), Duration::from_secs(60))
        .await;
    results.extend(
        client
            .take("media-results", media.len(), Duration::from_secs(60))
            .await,
    );
    assert_all_valid(&results);
    let by_job: HashMap<String, &Value> = results
        .iter()
        .map(|r| {
            (
                r.body["job_id"].as_str().unwrap_or_default().to_owned(),
                &r.body,
            )
        })
        .collect();

    let codes_page =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/troubleshooting.md");
    let codes_page = std::fs::read_to_string(codes_page).unwrap();
    let mut failures = 0;
    for case in &cases {
        let result = by_job
            .get(&case.file)
            .unwrap_or_else(|| panic!("{}: no answer", case.file));
        match case.expect.as_str() {
            "failure" => {
                failures += 1;
                assert_eq!(result["status"], "failed", "{}: {result}", case.file);
                let code = result["error"]["code"].as_i64().unwrap();
                assert_eq!(
                    Some(code),
                    case.code,
                    "{}: {}",
                    case.file,
                    result["error"]["message"]
                );
                let documented =
                    (10000..=10011).contains(&code) || codes_page.contains(&format!("| {code} |"));
                assert!(
                    documented,
                    "{}: code {code} is not in docs/troubleshooting.md's table",
                    case.file
                );
            }
            "page-errors" => {
                assert_eq!(result["status"], "ok", "{}", case.file);
                let errors = result["errors"].as_array().unwrap();
                assert!(
                    !errors.is_empty()
                        && errors
                            .iter()
                            .all(|e| e["error"]["code"].as_i64() == case.code)
                );
            }
            "stored-inside" => {
                let location = std::path::PathBuf::from(result["location"].as_str().unwrap());
                assert!(
                    location.starts_with(&worker.media_dir),
                    "{}: {location:?}",
                    case.file
                );
                assert!(!location.to_string_lossy().contains(".."));
            }
            other => panic!("unknown expectation {other}"),
        }
    }
    let failed_of = |kind: &str| {
        cases
            .iter()
            .filter(|c| c.kind == kind && c.expect == "failure")
            .count()
    };
    let wait = Duration::from_secs(20);
    let mut dead = client
        .take("fetch-chatdata.dead", failed_of("chatdata"), wait)
        .await;
    dead.extend(
        client
            .take("fetch-media.dead", failed_of("media"), wait)
            .await,
    );
    assert_eq!(dead.len(), failures, "every failed case is dead-lettered");
    let more = client
        .take("fetch-chatdata.dead", 1, Duration::from_secs(1))
        .await;
    assert!(more.is_empty(), "and only once");
    assert!(
        worker.child.try_wait().unwrap().is_none(),
        "the worker is still running"
    );

    // And it still does its job.
    let good = serde_json::json!({"job_id": "after-the-storm", "corpid": common::CORPID, "secret": common::SECRET, "limit": 1});
    client.submit("fetch-chatdata", &good).await;
    let after = client
        .take("chatdata-results", 1, Duration::from_secs(20))
        .await;
    assert_eq!(after[0].body["job_id"], "after-the-storm");
}
