//! A worker that stops in the middle of a job, against the real broker and the emulator:
//! killed (SIGKILL) during the third delivery of a 10-page job (three pages per delivery), the
//! job goes on from page 7 on another worker; stopped (SIGTERM) while its job sits in a long SDK call, it exits within its drain
//! timeout and the job completes on another worker.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;

use common::broker::{assert_all_valid, Client, Vhost, Worker};
use common::{default_config, inline_job, Emulator};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_during_a_delivery_costs_that_deliverys_pages_only() {
    let mut config = default_config();
    // Long enough for the kill to land inside the calls for pages 7 to 9, short enough for a
    // quick test.
    config.corps[0].faults.get_chat_data.latency_ms = 1000;
    let (vhost, emulator) = (Vhost::new(), Emulator::with_config(&config));
    let three_pages = ["--chat-pages-per-delivery", "3"];
    let mut first = Worker::start(&vhost, &emulator, &three_pages);
    let client = Client::connect(&vhost).await;
    let job = inline_job(json!({"job_id": "catch-up", "limit": 10, "max_pages": 10}));
    client.submit("fetch-chatdata", &job).await;

    let mut results = client.take("chatdata-results", 6, WAIT).await;
    assert_eq!(results.len(), 6, "{}", first.log_text());
    // Page 6 is confirmed with its continuation, which is being taken up: pages 7 to 9 are
    // being fetched, all three at once (1 s).
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let _second = Worker::start(&vhost, &emulator, &three_pages);
    let mut pages: HashMap<String, usize> = HashMap::new();
    let deadline = Instant::now() + WAIT;
    while (1..=10).any(|n| !pages.contains_key(&format!("catch-up:page-{n}"))) {
        assert!(Instant::now() < deadline, "pages so far: {pages:?}");
        for result in results.drain(..) {
            *pages
                .entry(result.body["result_id"].as_str().unwrap().to_owned())
                .or_default() += 1;
            assert_all_valid(std::slice::from_ref(&result));
        }
        results = client
            .take("chatdata-results", 1, Duration::from_secs(1))
            .await;
    }
    // Anything more would be a duplicate: give it a moment to show up.
    for result in client
        .take("chatdata-results", 10, Duration::from_secs(2))
        .await
    {
        *pages
            .entry(result.body["result_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let killed_delivery = ["catch-up:page-7", "catch-up:page-8", "catch-up:page-9"];
    for (id, count) in &pages {
        assert!(
            *count == 1 || killed_delivery.contains(&id.as_str()),
            "only the pages of the delivery in flight may come twice: {pages:?}"
        );
    }

    let calls = emulator.calls_of("GetChatData");
    for seq in (0..60).step_by(10) {
        let at: Vec<_> = calls.iter().filter(|c| c.seq == Some(seq)).collect();
        assert_eq!(at.len(), 1, "page after seq {seq} fetched once: {at:?}");
    }
    for seq in [60, 70, 80] {
        let again = calls.iter().filter(|c| c.seq == Some(seq)).count();
        assert!(
            (1..=2).contains(&again),
            "page after {seq} fetched {again} times"
        );
    }
    assert_eq!(calls.iter().filter(|c| c.seq == Some(90)).count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_30_s_sdk_call_exits_within_the_drain_timeout() {
    let mut slow = default_config();
    slow.corps[0].faults.get_chat_data.latency_ms = 30_000;
    let (vhost, emulator) = (Vhost::new(), Emulator::with_config(&slow));
    let drain = Duration::from_secs(3);
    let first = Worker::start(
        &vhost,
        &emulator,
        &["--drain-timeout-secs", &drain.as_secs().to_string()],
    );
    let client = Client::connect(&vhost).await;
    let job = inline_job(json!({"job_id": "stuck", "limit": 10}));
    client.submit("fetch-chatdata", &job).await;
    let deadline = Instant::now() + WAIT;
    while client.depth("fetch-chatdata").await > 0 {
        assert!(Instant::now() < deadline, "the worker never took the job");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Inside the SDK call now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopping = Instant::now();
    let status = first.terminate();
    let took = stopping.elapsed();
    assert!(status.success(), "exits 0: {status:?}");
    assert!(
        took < drain + Duration::from_secs(5),
        "stopped in {took:?}, not after the 30 s call"
    );

    // Another worker, whose SDK answers at once, gets the job again and completes it.
    let fast = Emulator::for_children(Some(&default_config()));
    let second = Worker::start(&vhost, &fast, &[]);
    let results = client
        .take("chatdata-results", 2, Duration::from_secs(20))
        .await;
    assert_eq!(
        results.len(),
        1,
        "one result, no duplicate: {}",
        second.log_text()
    );
    assert_all_valid(&results);
    assert_eq!(results[0].body["result_id"], "stuck:page-1");
    assert_eq!(results[0].body["status"], "ok");
    assert_eq!(fast.calls_of("GetChatData").len(), 1);
}
