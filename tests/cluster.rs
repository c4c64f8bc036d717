//! The worker and broker nodes that refuse, die or freeze (issue 13): several URLs, tried in a
//! shuffled order, and a publish confirm that never comes ending the session instead of holding
//! the worker. The nodes of `common::cluster` are the test's own; the default node is untouched.

mod common;

use std::time::{Duration, Instant};

use serde_json::json;

use common::broker::{Client, Vhost, Worker};
use common::cluster::Cluster;
use common::{default_config, inline_job, Emulator};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_given_three_urls_two_of_which_refuse_consumes_from_the_third() {
    let (vhost, emulator) = (Vhost::new(), Emulator::default_corp());
    // Ports 1 and 2 of the loopback refuse at once.
    let urls = [
        vhost.url().replace(":5672/", ":1/"),
        vhost.url(),
        vhost.url().replace(":5672/", ":2/"),
    ]
    .join(",");
    let started = Instant::now();
    let worker = Worker::start_with_env(&vhost, &emulator, &[], &[("WECOM_AMQP_URL", &urls)]);
    let to_consuming = started.elapsed();
    let client = Client::connect(&vhost).await;
    client
        .submit(
            "fetch-chatdata",
            &inline_job(json!({"job_id": "listed", "limit": 3})),
        )
        .await;
    let results = client.take("chatdata-results", 1, WAIT).await;
    assert_eq!(results.len(), 1, "{}", worker.log_text());
    // Refused nodes cost no backoff: the worker was consuming as soon as a worker started
    // against the one URL is (well under the first reconnect pause of a failed session).
    assert!(
        !worker.log_text().contains("reconnecting"),
        "a refusing node ended a session: {}",
        worker.log_text()
    );
    assert!(to_consuming < Duration::from_secs(10), "{to_consuming:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_confirm_that_never_comes_ends_the_session_and_the_job_is_released_not_lost() {
    let cluster = Cluster::start(1);
    let mut config = default_config();
    // The SDK call takes 2 s: time to freeze the node before the page is published.
    config.corps[0].faults.get_chat_data.latency_ms = 2000;
    let (vhost, emulator) = (Vhost::new(), Emulator::with_config(&config));
    let url = cluster.url(0);
    let worker = Worker::start_with_env(
        &vhost,
        &emulator,
        &[],
        &[
            ("WECOM_AMQP_URL", &url),
            ("WECOM_AMQP_CONFIRM_TIMEOUT_SECS", "3"),
            // Heartbeats slower than the confirm timeout, so that the timeout is what acts.
            ("WECOM_AMQP_HEARTBEAT_SECS", "30"),
        ],
    );
    let client = Client::connect_url(&url).await;
    client
        .submit(
            "fetch-chatdata",
            &inline_job(json!({"job_id": "frozen", "limit": 3})),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.freeze(0);
    let frozen_at = Instant::now();
    worker.wait_for_log("did not confirm within 3s", Duration::from_secs(20));
    worker.wait_for_log("broker session ended", Duration::from_secs(10));
    let left_after = frozen_at.elapsed();
    cluster.thaw(0);
    // The job was not acked: the broker delivers it again, and it completes.
    let results = client.take("chatdata-results", 1, WAIT).await;
    assert_eq!(results.len(), 1, "{}", worker.log_text());
    assert_eq!(results[0].body["job_id"], "frozen");
    // The SDK call (2 s), then the confirm timeout (3 s), then the session's end.
    assert!(left_after < Duration::from_secs(10), "{left_after:?}");
}

/// A refused publish is tried again on a fresh channel (a quorum queue's publisher state lives
/// in the channel, and keeps a frozen leader first until the node is back), and goes through
/// once the queue takes it. Refused here by a full queue (`reject-publish`).
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_publish_is_tried_again_on_a_fresh_channel() {
    use lapin::options::{BasicGetOptions, QueueDeclareOptions};
    use lapin::types::{AMQPValue, FieldTable};
    use tokio_util::sync::CancellationToken;
    use wecom_archive::worker::publisher::Publisher;

    let vhost = Vhost::new();
    let connection = std::sync::Arc::new(
        lapin::Connection::connect(&vhost.url(), Default::default())
            .await
            .unwrap(),
    );
    let mut one_message = FieldTable::default();
    one_message.insert("x-max-length".into(), AMQPValue::LongInt(1));
    one_message.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_declare("full".into(), QueueDeclareOptions::default(), one_message)
        .await
        .unwrap();
    let publisher = Publisher::open(&connection, Duration::from_secs(5))
        .await
        .unwrap();
    let first = publisher.channel().id();
    let properties = lapin::BasicProperties::default();
    let stop = CancellationToken::new();
    publisher
        .publish_until_confirmed("", "full", b"one", &properties, &stop)
        .await
        .unwrap();
    let second = {
        let publisher = publisher.clone();
        tokio::spawn(async move {
            let stop = CancellationToken::new();
            publisher
                .publish_until_confirmed("", "full", b"two", &properties, &stop)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!second.is_finished(), "the full queue refused the second");
    let taken = channel
        .basic_get("full".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the first message");
    assert_eq!(taken.delivery.data, b"one");
    let published = tokio::time::timeout(WAIT, second).await.unwrap().unwrap();
    assert!(published.is_ok(), "{published:?}");
    assert_ne!(
        publisher.channel().id(),
        first,
        "a refusal renews the channel"
    );
}
