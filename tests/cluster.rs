//! The worker and broker nodes that refuse, die or freeze (issue 13): several URLs, tried in a
//! shuffled order, a publish confirm that never comes ending the session instead of holding
//! the worker, and publishes and consumes asked again past a frozen leader. The nodes of `common::cluster` are the test's own; the default node is untouched.

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
    use wecom_archive::broker::Publisher;

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

/// A session consumes each job queue as soon as the broker answers its consume: while the
/// cluster elects a new leader for `fetch-chatdata` (its node froze), the worker runs the
/// `fetch-media` jobs, whose leader lives, instead of waiting for both.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_queue_failing_over_does_not_hold_up_the_other_queues_jobs() {
    let cluster = Cluster::start(3);
    let apply = |node: usize| {
        let applied = std::process::Command::new(common::cli())
            .args(["topology", "apply"])
            .env("WECOM_AMQP_URL", cluster.url(node))
            .output()
            .unwrap();
        assert!(applied.status.success(), "{applied:?}");
    };
    // Every queue led by node 2 but `fetch-chatdata`, declared again through node 1.
    apply(2);
    let deleted = cluster.ctl(0, &["delete_queue", "fetch-chatdata"]);
    assert!(deleted.status.success(), "{deleted:?}");
    apply(1);
    assert_eq!(
        (
            cluster.leader_of(0, "fetch-chatdata"),
            cluster.leader_of(0, "fetch-media")
        ),
        (Some(1), Some(2))
    );

    let emulator = Emulator::default_corp();
    let client = Client::connect_url(&cluster.url(0)).await;
    let media = emulator::media_file_id(100_000, 1, 7);
    client
        .submit(
            "fetch-media",
            &inline_job(json!({"job_id": "media", "sdkfileid": media})),
        )
        .await;
    client
        .submit(
            "fetch-chatdata",
            &inline_job(json!({"job_id": "chat", "limit": 3})),
        )
        .await;
    cluster.freeze(1);
    // Node 0 takes new connections once it takes node 1 for down; the new leader of
    // `fetch-chatdata` is elected seconds after that.
    let worker = Worker::start_url(&cluster.url(0), &emulator, &["--no-declare"], &[]);
    let results = client.take("media-results", 1, WAIT).await;
    assert_eq!(results.len(), 1, "{}", worker.log_text());
    let results = client.take("chatdata-results", 1, WAIT).await;
    cluster.thaw(1);
    assert_eq!(results.len(), 1, "{}", worker.log_text());
    let log = worker.log_text();
    let line_of = |needle: [&str; 2]| {
        log.lines()
            .position(|line| needle.iter().all(|part| line.contains(part)))
    };
    let media_done = line_of(["job done", "job_id=\"media\""]);
    let chat_consumed = line_of(["answered the consume", "queue=\"fetch-chatdata\""]);
    assert!(
        media_done.is_some() && media_done < chat_consumed,
        "the media job ran before fetch-chatdata was consumed:\n{log}"
    );
}

/// A publish whose confirm does not come is asked again on a fresh channel: a channel whose
/// first publish to a quorum queue went to its frozen leader keeps asking that node, while a
/// channel opened after the cluster elected another leader publishes at once. The publish goes
/// through within moments of the election, not when the held channel gives up.
#[tokio::test(flavor = "multi_thread")]
async fn a_publish_held_by_a_frozen_leader_is_asked_again_on_a_fresh_channel() {
    use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
    use lapin::types::{AMQPValue, FieldTable};
    use tokio_util::sync::CancellationToken;
    use wecom_archive::broker::Publisher;

    let cluster = Cluster::start(3);
    let connect = |node: usize| {
        let url = cluster.url(node);
        async move {
            std::sync::Arc::new(
                lapin::Connection::connect(&url, Default::default())
                    .await
                    .unwrap(),
            )
        }
    };
    let mut quorum = FieldTable::default();
    quorum.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    connect(1)
        .await
        .create_channel()
        .await
        .unwrap()
        .queue_declare(
            "results".into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            quorum,
        )
        .await
        .unwrap();
    assert_eq!(cluster.leader_of(0, "results"), Some(1));
    let connection = connect(0).await;
    cluster.freeze(1);
    let frozen = Instant::now();

    // When a channel opened then first publishes through: the cluster's failover, seen from
    // here.
    let election = {
        let connection = std::sync::Arc::clone(&connection);
        tokio::spawn(async move {
            let mut probes = tokio::task::JoinSet::new();
            loop {
                let connection = std::sync::Arc::clone(&connection);
                probes.spawn(async move {
                    let opened = frozen.elapsed();
                    let channel = connection.create_channel().await.unwrap();
                    channel
                        .confirm_select(ConfirmSelectOptions::default())
                        .await
                        .unwrap();
                    let confirm = channel
                        .basic_publish(
                            "".into(),
                            "results".into(),
                            BasicPublishOptions::default(),
                            b"probe",
                            Default::default(),
                        )
                        .await
                        .unwrap()
                        .await
                        .unwrap();
                    (opened, confirm.is_ack())
                });
                tokio::select! {
                    Some(done) = probes.join_next() => {
                        if let (opened, true) = done.unwrap() {
                            return (opened, frozen.elapsed());
                        }
                    }
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
        })
    };
    let stop = CancellationToken::new();
    // Opened after the freeze, as a new session's publisher is after its node froze.
    let publisher = Publisher::open(&connection, Duration::from_secs(30))
        .await
        .unwrap();
    publisher
        .publish_until_confirmed("", "results", b"result", &Default::default(), &stop)
        .await
        .unwrap();
    let published = frozen.elapsed();
    let (probe_opened, probe_confirmed) = election.await.unwrap();
    cluster.thaw(1);
    assert!(
        probe_confirmed > Duration::from_secs(3),
        "the frozen leader held no publish: {probe_confirmed:?}"
    );
    // Held on its first channel, the publish went through 6-7 s after the election (refused
    // after `net_ticktime` + 5 s, then tried on a fresh channel); asked again every second, it
    // goes through within about a second of it.
    assert!(
        published < probe_confirmed + Duration::from_secs(3),
        "published after {published:?}; a channel opened after {probe_opened:?} published after \
         {probe_confirmed:?}"
    );
}
