//! The fate of a delivered job, without a broker: the worker's handler runs against the real
//! job core (the emulator library, a media store in a temporary folder) and an in-memory
//! delivery that records what the handler published and how it settled the delivery.
//!
//! Each test is one outcome: ok, a page handed over to a continuation, retry, last attempt,
//! permanent, invalid, delivery limit, store failure, publish refused, cancelled. What needs the
//! broker itself (confirms, redelivery, reconnects) is in `tests/worker.rs`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use wecom_archive::broker::PublishError;
use wecom_archive::config::{CoreConfig, RetryConfig, SdkLibConfig};
use wecom_archive::error_code::ErrorInfo;
use wecom_archive::job::contract::ChatProgress;
use wecom_archive::job::sink::Output;
use wecom_archive::job::{Core, JobKind};
use wecom_archive::media::MediaKey;
use wecom_archive::telemetry::TraceContext;
use wecom_archive::worker::delivered::Delivered;
use wecom_archive::worker::handle::{handle, DeliveryRules};
use wecom_archive::worker::transport::JobTransport;

use common::{default_config, inline_job, Emulator};

const DELIVERY_LIMIT: u32 = 5;
/// One page per delivery, so a two-page job shows its continuation.
const RULES: DeliveryRules = DeliveryRules {
    delivery_limit: DELIVERY_LIMIT,
    pages_per_delivery: 1,
};
const MAX_ATTEMPTS: u32 = 3;

/// What the handler did with a delivery, in order.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    /// A result or failure: its `result_id` and body.
    Result(Option<String>, Value),
    Continuation(ChatProgress),
    Retry {
        attempt: u32,
        progress: Option<ChatProgress>,
    },
    DeadLetter {
        attempts: u32,
        code: i64,
    },
    Ack,
    Release,
}

/// A delivered job held in memory.
struct FakeDelivery {
    body: Vec<u8>,
    kind: JobKind,
    delivered: Delivered,
    events: Arc<Mutex<Vec<Event>>>,
    /// The broker refuses results (a full result queue).
    refuse_results: bool,
}

impl FakeDelivery {
    fn record(&self, event: Event) {
        self.events.lock().unwrap().push(event);
    }
}

impl JobTransport for FakeDelivery {
    fn body(&self) -> &[u8] {
        &self.body
    }

    fn kind(&self) -> JobKind {
        self.kind
    }

    fn delivered(&self) -> &Delivered {
        &self.delivered
    }

    async fn publish_result(&self, output: &Output) -> Result<(), PublishError> {
        if self.refuse_results {
            return Err(PublishError::Nacked);
        }
        let body = serde_json::from_slice(&output.body).unwrap();
        common::schemas::assert_valid(common::schemas::schema_for(&body), &body);
        self.record(Event::Result(output.result_id.clone(), body));
        Ok(())
    }

    async fn publish_continuation(&self, progress: ChatProgress) -> Result<(), PublishError> {
        self.record(Event::Continuation(progress));
        Ok(())
    }

    async fn publish_retry(
        &self,
        delay: Duration,
        attempt: u32,
        progress: Option<ChatProgress>,
    ) -> Result<(), PublishError> {
        assert!(delay <= Duration::from_secs(2), "a delay of the policy");
        self.record(Event::Retry { attempt, progress });
        Ok(())
    }

    async fn publish_dead_letter(
        &self,
        attempts: u32,
        error: &ErrorInfo,
    ) -> Result<(), PublishError> {
        self.record(Event::DeadLetter {
            attempts,
            code: error.code,
        });
        Ok(())
    }

    async fn ack(&self) {
        self.record(Event::Ack);
    }

    async fn release(&self) {
        self.record(Event::Release);
    }
}

/// The core, as the worker builds it, over the test's emulator.
fn core(emulator: &Emulator) -> Arc<Core> {
    core_with_call_timeout(emulator, 60)
}

fn core_with_call_timeout(emulator: &Emulator, call_timeout_secs: u64) -> Arc<Core> {
    Core::build(&CoreConfig {
        sdk: SdkLibConfig {
            lib: common::emulator_lib(),
        },
        media_dir: media_dir(emulator),
        sdk_call_timeout_secs: call_timeout_secs,
        sdk_host_exe: Some(common::cli()),
        sdk_per_corp: 2,
        key_cache_sets: 8,
        retry: RetryConfig {
            max_attempts: MAX_ATTEMPTS,
            retry_delays: vec![1, 2],
        },
        ..CoreConfig::default()
    })
    .unwrap()
}

fn media_dir(emulator: &Emulator) -> std::path::PathBuf {
    emulator.dir.path().join("media")
}

/// A first delivery of a job with `attempt` and `progress` headers as given.
fn delivered(attempt: u32, progress: Option<ChatProgress>) -> Delivered {
    Delivered {
        message_id: Some("message-1".into()),
        correlation_id: None,
        reply_to: None,
        reply_to_only: false,
        attempt,
        delivery_count: 0,
        progress,
        redelivered: false,
        untrusted: None,
        malformed: None,
        published_at: None,
        trace: TraceContext::continue_or_start(None),
    }
}

/// Runs the handler on `body` as a job of `kind`; returns what it did.
async fn fate_of(
    core: &Arc<Core>,
    kind: JobKind,
    body: &[u8],
    delivered: &Delivered,
    refuse_results: bool,
) -> Vec<Event> {
    fate_under(core, kind, body, delivered, refuse_results, RULES).await
}

/// [`fate_of`], under other rules.
async fn fate_under(
    core: &Arc<Core>,
    kind: JobKind,
    body: &[u8],
    delivered: &Delivered,
    refuse_results: bool,
    rules: DeliveryRules,
) -> Vec<Event> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let delivery = FakeDelivery {
        body: body.to_vec(),
        kind,
        delivered: delivered.clone(),
        events: Arc::clone(&events),
        refuse_results,
    };
    let cancel = CancellationToken::new();
    handle(core, delivery, rules, cancel).await;
    let events = events.lock().unwrap().clone();
    events
}

fn chat(job: &Value) -> Vec<u8> {
    serde_json::to_vec(job).unwrap()
}

/// `events` are a failure result under `<job_id>:failed`, a dead letter after `attempts` with
/// `code`, and the ack.
fn assert_failed(events: &[Event], job_id: &str, attempts: u32, code: i64) {
    assert_eq!(events.len(), 3, "{events:?}");
    let Event::Result(Some(id), failure) = &events[0] else {
        panic!("no failure result: {events:?}")
    };
    assert_eq!(*id, format!("{job_id}:failed"));
    assert_eq!(failure["error"]["code"], code);
    assert_eq!(
        events[1..],
        [Event::DeadLetter { attempts, code }, Event::Ack]
    );
}

fn result_id(event: &Event) -> Option<&str> {
    match event {
        Event::Result(id, _) => id.as_deref(),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_page_job_publishes_its_page_and_is_acked() {
    let emulator = Emulator::default_corp();
    let core = core(&emulator);
    let job = inline_job(json!({"job_id": "ok", "limit": 10}));
    let events = fate_of(
        &core,
        JobKind::FetchChatdata,
        &chat(&job),
        &delivered(1, None),
        false,
    )
    .await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(result_id(&events[0]), Some("ok:page-1"));
    assert_eq!(events[1], Event::Ack);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_publishes_its_share_of_pages_in_order_and_asks_for_none_beyond() {
    let emulator = Emulator::default_corp();
    let core = core(&emulator);
    let job = inline_job(json!({"job_id": "share", "limit": 10, "max_pages": 5}));
    let two_pages = DeliveryRules {
        pages_per_delivery: 2,
        ..RULES
    };
    let events = fate_under(
        &core,
        JobKind::FetchChatdata,
        &chat(&job),
        &delivered(1, None),
        false,
        two_pages,
    )
    .await;
    assert_eq!(events.len(), 4, "{events:?}");
    let pages: Vec<(u64, u64)> = events[..2]
        .iter()
        .map(|event| {
            let Event::Result(_, page) = event else {
                panic!("{events:?}")
            };
            (
                page["seq"].as_u64().unwrap(),
                page["next_seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(pages, [(0, 10), (10, 20)]);
    let next = ChatProgress {
        seq: 20,
        pages_done: 2,
    };
    assert_eq!(events[2..], [Event::Continuation(next), Event::Ack]);
    // Its two pages were asked for, and nothing for the continuation's.
    let mut asked: Vec<u64> = emulator
        .calls_of("GetChatData")
        .iter()
        .filter_map(|call| call.seq)
        .collect();
    asked.sort();
    assert_eq!(asked, [0, 10]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multi_page_job_publishes_one_page_and_hands_the_rest_to_a_continuation() {
    let emulator = Emulator::default_corp();
    let core = core(&emulator);
    let job = inline_job(json!({"job_id": "pages", "limit": 10, "max_pages": 3}));
    let first = fate_of(
        &core,
        JobKind::FetchChatdata,
        &chat(&job),
        &delivered(1, None),
        false,
    )
    .await;
    let next = ChatProgress {
        seq: 10,
        pages_done: 1,
    };
    assert_eq!(first.len(), 3, "{first:?}");
    assert_eq!(result_id(&first[0]), Some("pages:page-1"));
    assert_eq!(first[1..], [Event::Continuation(next), Event::Ack]);

    // The continuation's delivery goes on from there, to the last page, which ends the job.
    let second = fate_of(
        &core,
        JobKind::FetchChatdata,
        &chat(&job),
        &delivered(1, Some(next)),
        false,
    )
    .await;
    assert_eq!(result_id(&second[0]), Some("pages:page-2"));
    let Event::Result(_, page) = &second[0] else {
        unreachable!()
    };
    assert_eq!(
        (page["seq"].as_u64(), page["page"].as_u64()),
        (Some(10), Some(2))
    );
    let last = ChatProgress {
        seq: 20,
        pages_done: 2,
    };
    assert_eq!(second[1..], [Event::Continuation(last), Event::Ack]);
    let third = fate_of(
        &core,
        JobKind::FetchChatdata,
        &chat(&job),
        &delivered(1, Some(last)),
        false,
    )
    .await;
    assert_eq!(third.len(), 2, "no continuation after max_pages: {third:?}");
    assert_eq!(result_id(&third[0]), Some("pages:page-3"));
    assert_eq!(third[1], Event::Ack);
    assert_eq!(
        emulator.calls_of("GetChatData").len(),
        3,
        "each page fetched once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transient_error_is_retried_from_where_the_job_got() {
    let mut config = default_config();
    config.corps[0].faults.get_chat_data.script = vec![10001];
    let emulator = Emulator::with_config(&config);
    let core = core(&emulator);
    let job = inline_job(json!({"job_id": "flaky", "limit": 10, "max_pages": 5}));
    let at = ChatProgress {
        seq: 30,
        pages_done: 3,
    };
    let events = fate_of(
        &core,
        JobKind::FetchChatdata,
        &chat(&job),
        &delivered(1, Some(at)),
        false,
    )
    .await;
    assert_eq!(
        events,
        [
            Event::Retry {
                attempt: 2,
                progress: Some(at)
            },
            Event::Ack
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_attempt_publishes_a_failure_and_dead_letters_the_job() {
    let mut config = default_config();
    config.corps[0].faults.get_chat_data.script = vec![10002];
    let emulator = Emulator::with_config(&config);
    let core = core(&emulator);
    let job = inline_job(json!({"job_id": "tired", "limit": 10}));
    let events = fate_of(
        &core,
        JobKind::FetchChatdata,
        &chat(&job),
        &delivered(MAX_ATTEMPTS, None),
        false,
    )
    .await;
    assert_failed(&events, "tired", MAX_ATTEMPTS, 10002);
    let Event::Result(_, failure) = &events[0] else {
        unreachable!()
    };
    assert_eq!(failure["status"], "failed");
    assert_eq!(failure["attempts"], MAX_ATTEMPTS);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_permanent_error_fails_on_the_first_attempt() {
    let mut config = default_config();
    config.corps[0].whitelisted = false;
    let emulator = Emulator::with_config(&config);
    let core = core(&emulator);
    let job = inline_job(json!({"job_id": "offlist"}));
    let events = fate_of(
        &core,
        JobKind::FetchChatdata,
        &chat(&job),
        &delivered(1, None),
        false,
    )
    .await;
    assert_failed(&events, "offlist", 1, 301042);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_job_fails_under_its_message_id_and_is_dead_lettered() {
    let emulator = Emulator::default_corp();
    let core = core(&emulator);
    let events = fate_of(
        &core,
        JobKind::FetchChatdata,
        b"{\"seq\": ",
        &delivered(1, None),
        false,
    )
    .await;
    assert_failed(&events, "message-1", 1, 20301);
    // With no id at all there is nothing to report a failure under: only the dead letter.
    let anonymous = Delivered {
        message_id: None,
        ..delivered(1, None)
    };
    let events = fate_of(&core, JobKind::FetchMedia, b"[]", &anonymous, false).await;
    assert_eq!(
        events,
        [
            Event::DeadLetter {
                attempts: 1,
                code: 20301
            },
            Event::Ack
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_at_the_limit_is_failed_without_running() {
    let emulator = Emulator::default_corp();
    let core = core(&emulator);
    let job = inline_job(json!({"job_id": "poison"}));
    let at_limit = Delivered {
        delivery_count: DELIVERY_LIMIT,
        redelivered: true,
        ..delivered(1, None)
    };
    let events = fate_of(&core, JobKind::FetchChatdata, &chat(&job), &at_limit, false).await;
    assert_failed(&events, "poison", 1, 20305);
    assert!(emulator.calls().is_empty(), "the SDK was never called");
}

/// A store that cannot take the file (here its shard directory is a file; a full disk is the
/// same fate, and what the download does on one is in `src/media/download.rs`'s tests).
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_store_retries_the_job_later() {
    let emulator = Emulator::default_corp();
    let core = core(&emulator);
    let sdkfileid = emulator::media_file_id(3 * 512 * 1024, 1, 7);
    let key = MediaKey::new(&sdkfileid, None);
    let final_path = media_dir(&emulator).join(key.relative_path());
    std::fs::write(final_path.parent().unwrap(), b"not a directory").unwrap();
    let job = inline_job(json!({"job_id": "unstorable", "sdkfileid": sdkfileid}));
    let events = fate_of(
        &core,
        JobKind::FetchMedia,
        &chat(&job),
        &delivered(1, None),
        false,
    )
    .await;
    assert_eq!(
        events,
        [
            Event::Retry {
                attempt: 2,
                progress: None
            },
            Event::Ack
        ]
    );
    assert!(
        emulator.calls_of("GetMediaData").is_empty(),
        "no chunk fetched for nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_result_the_broker_refuses_releases_the_job_unsettled() {
    let emulator = Emulator::default_corp();
    let core = core(&emulator);
    let job = inline_job(json!({"job_id": "refused", "limit": 10, "max_pages": 2}));
    let events = fate_of(
        &core,
        JobKind::FetchChatdata,
        &chat(&job),
        &delivered(1, None),
        true,
    )
    .await;
    assert_eq!(events, [Event::Release], "no continuation, no ack");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_job_stops_without_waiting_for_its_sdk_call_and_is_released() {
    let mut config = default_config();
    config.corps[0].faults.get_chat_data.latency_ms = 5_000;
    let emulator = Emulator::with_config(&config);
    let core = core(&emulator);
    let job = inline_job(json!({"job_id": "slow"}));
    let events = Arc::new(Mutex::new(Vec::new()));
    let delivery = FakeDelivery {
        body: chat(&job),
        kind: JobKind::FetchChatdata,
        delivered: delivered(1, None),
        events: Arc::clone(&events),
        refuse_results: false,
    };
    let cancel = CancellationToken::new();
    let canceller = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        canceller.cancel();
    });
    let started = Instant::now();
    handle(&core, delivery, RULES, cancel).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "returned once cancelled, not after the 5 s call: {:?}",
        started.elapsed()
    );
    assert_eq!(*events.lock().unwrap(), [Event::Release]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_header_no_worker_signed_fails_the_job_unrun() {
    let emulator = Emulator::default_corp();
    let core = core(&emulator);
    let job = inline_job(json!({"job_id": "forged", "max_pages": 1}));
    let forged = Delivered {
        untrusted: Some("x-wecom-progress"),
        ..delivered(1, None)
    };
    let events = fate_of(&core, JobKind::FetchChatdata, &chat(&job), &forged, false).await;
    assert_failed(&events, "forged", 1, 20306);
    assert!(emulator.calls().is_empty(), "the SDK was never called");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reply_to_naming_one_of_the_workers_queues_fails_the_job_unrun() {
    let emulator = Emulator::default_corp();
    let core = core(&emulator);
    let job = inline_job(json!({"job_id": "loop"}));
    for queue in [
        "fetch-chatdata",
        "fetch-chatdata.dead",
        "wecom.retry.1000ms.fetch-media",
    ] {
        let looping = Delivered {
            reply_to: Some(queue.into()),
            ..delivered(1, None)
        };
        let events = fate_of(&core, JobKind::FetchChatdata, &chat(&job), &looping, false).await;
        assert_failed(&events, "loop", 1, 20301);
    }
    assert!(emulator.calls().is_empty(), "the SDK was never called");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_sdk_host_that_hangs_is_killed_after_the_call_timeout_and_the_job_retried() {
    let mut config = default_config();
    config.corps[0].faults.get_chat_data.latency_ms = 20_000;
    let emulator = Emulator::with_config(&config);
    let core = core_with_call_timeout(&emulator, 1);
    let job = inline_job(json!({"job_id": "hung", "limit": 10}));
    let started = Instant::now();
    let events = fate_of(
        &core,
        JobKind::FetchChatdata,
        &chat(&job),
        &delivered(1, None),
        false,
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the host was killed, not waited for: {:?}",
        started.elapsed()
    );
    let at_start = ChatProgress {
        seq: 0,
        pages_done: 0,
    };
    assert_eq!(
        events,
        [
            Event::Retry {
                attempt: 2,
                progress: Some(at_start)
            },
            Event::Ack
        ]
    );
    assert!(
        emulator.calls_of("GetChatData").is_empty(),
        "the call never finished: its host was killed"
    );
}
