//! What operators see (issue 12): a real Prometheus scrapes a worker running ok, retried and
//! failing jobs, and its counters match them; `/readyz` follows the broker session and the
//! drain while `/healthz` stays up; a job's `traceparent` reaches its results, dead letters and
//! JSON log lines; and the scraped text holds no secret and no label a publisher chooses.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::BasicProperties;
use serde_json::{json, Value};

use common::broker::{Client, Vhost, Worker};
use common::http::{query_encode, request};
use common::{default_config, inline_job, Emulator, SECRET};

const WAIT: Duration = Duration::from_secs(60);

/// The worker's metrics address, from its log.
fn metrics_address(worker: &Worker) -> String {
    worker.logged_address("metrics and health on http://")
}

/// Debian's Prometheus, scraping `target` every second, its data in `dir`.
struct Prometheus {
    child: Child,
    address: String,
}

impl Prometheus {
    fn start(dir: &std::path::Path, target: &str) -> Self {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: wecom\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let address = format!("127.0.0.1:{}", common::free_port());
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus is installed (.ci/run installs Debian's package)");
        let prometheus = Self { child, address };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&prometheus.address).is_err()
            || request(&prometheus.address, "GET", "/-/ready", &[], b"").status != 200
        {
            assert!(Instant::now() < deadline, "prometheus never got ready");
            std::thread::sleep(Duration::from_millis(200));
        }
        prometheus
    }

    /// The instant vector of `promql`, as (labels, value) pairs.
    fn query(&self, promql: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let path = format!("/api/v1/query?query={}", query_encode(promql));
        let answer = request(&self.address, "GET", &path, &[], b"").json();
        assert_eq!(answer["status"], "success", "{answer}");
        answer["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|series| {
                let labels = serde_json::from_value(series["metric"].clone()).unwrap();
                let value = series["value"][1].as_str().unwrap().parse().unwrap();
                (labels, value)
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_counts_the_jobs_by_outcome_and_code() {
    let mut config = default_config();
    // The first GetChatData call fails once: that job is retried, then succeeds.
    config.corps[0].faults.get_chat_data.script = vec![10001];
    let (vhost, emulator) = (Vhost::new(), Emulator::with_config(&config));
    let worker = Worker::start(&vhost, &emulator, &["--metrics-listen", "127.0.0.1:0"]);
    let target = metrics_address(&worker);
    let prometheus = Prometheus::start(emulator.dir.path(), &target);
    let client = Client::connect(&vhost).await;
    for i in 0..6 {
        client
            .submit(
                "fetch-chatdata",
                &inline_job(json!({"job_id": format!("ok-{i}"), "limit": 5})),
            )
            .await;
    }
    for i in 0..2 {
        // Not JSON: its id is its message_id.
        let properties = BasicProperties::default().with_message_id(format!("bad-{i}").into());
        client
            .publish_job("fetch-chatdata", br#"{"seq": "#, properties)
            .await;
    }
    let results = client.take("chatdata-results", 8, WAIT).await;
    assert_eq!(results.len(), 8, "{}", worker.log_text());

    let expected: BTreeMap<(String, String), f64> = [
        (("ok".to_owned(), String::new()), 6.0),
        (("retried".to_owned(), "10001".to_owned()), 1.0),
        (("failed".to_owned(), "20301".to_owned()), 2.0),
    ]
    .into();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let counted: BTreeMap<(String, String), f64> = prometheus
            .query(r#"sum by (outcome, code) (wecom_archive_jobs_total{kind="fetch-chatdata"})"#)
            .into_iter()
            .map(|(labels, value)| {
                let label = |name: &str| labels.get(name).cloned().unwrap_or_default();
                ((label("outcome"), label("code")), value)
            })
            .collect();
        if counted == expected {
            break;
        }
        assert!(Instant::now() < deadline, "{counted:?} is not {expected:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let calls =
        prometheus.query(r#"sum(wecom_archive_sdk_calls_total{op="GetChatData",code="10001"})"#);
    assert_eq!(calls[0].1, 1.0);
    let decrypted = prometheus.query("wecom_archive_messages_decrypted_total");
    assert_eq!(decrypted[0].1, 30.0, "six pages of five");
    let connected = prometheus.query("wecom_archive_broker_connected");
    assert_eq!(connected[0].1, 1.0);

    // Nothing in the text a publisher chose or a secret: labels come from bounded sets.
    let text = String::from_utf8(request(&target, "GET", "/metrics", &[], b"").body).unwrap();
    for forbidden in [
        SECRET,
        common::CORPID,
        "ok-0",
        "bad-1",
        "private_key",
        "BEGIN",
    ] {
        assert!(!text.contains(forbidden), "{forbidden} in the metrics");
    }
    let allowed_labels = ["kind", "outcome", "code", "op", "corp", "le"];
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(labels) = line
            .split_once('{')
            .and_then(|(_, rest)| rest.split_once('}'))
        else {
            continue;
        };
        for pair in labels.0.split(',').filter(|p| !p.is_empty()) {
            let name = pair.split('=').next().unwrap();
            assert!(allowed_labels.contains(&name), "label {name} in {line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_follows_the_broker_session_and_the_drain_while_healthz_stays_up() {
    let mut config = default_config();
    config.corps[0].faults.get_chat_data.latency_ms = 4000;
    let (vhost, emulator) = (Vhost::new(), Emulator::with_config(&config));
    let worker = Worker::start(&vhost, &emulator, &["--metrics-listen", "127.0.0.1:0"]);
    let address = metrics_address(&worker);
    let status = |path: &str| request(&address, "GET", path, &[], b"").status;
    let wait_for = |path: &str, wanted: u16| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while status(path) != wanted {
            assert!(Instant::now() < deadline, "{path} never answered {wanted}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for("/readyz", 200);
    assert_eq!(status("/healthz"), 200);

    // A broker outage, as this worker sees it: its vhost is gone, then back.
    vhost.delete();
    wait_for("/readyz", 503);
    assert_eq!(status("/healthz"), 200);
    vhost.recreate();
    wait_for("/readyz", 200);

    // A drain: a slow job holds the worker after SIGTERM.
    let client = Client::connect(&vhost).await;
    client
        .submit(
            "fetch-chatdata",
            &inline_job(json!({"job_id": "slow", "limit": 5})),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&request(&address, "GET", "/metrics", &[], b"").body)
        .contains("wecom_archive_jobs_in_flight 1")
    {
        assert!(Instant::now() < deadline, "the slow job never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = worker.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    wait_for("/readyz", 503);
    assert_eq!(status("/healthz"), 200, "alive while draining");
    let results = client.take("chatdata-results", 1, WAIT).await;
    assert_eq!(results.len(), 1, "the drain finished the job");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_traceparent_reaches_results_dead_letters_and_log_lines() {
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let (vhost, emulator) = (Vhost::new(), Emulator::default_corp());
    let worker = Worker::start_with_env(&vhost, &emulator, &[], &[("WECOM_LOG_FORMAT", "json")]);
    let client = Client::connect(&vhost).await;
    let traced = || {
        let mut headers = FieldTable::default();
        headers.insert(
            "traceparent".into(),
            AMQPValue::LongString(LongString::from(format!("00-{TRACE}-00f067aa0ba902b7-01"))),
        );
        BasicProperties::default().with_headers(headers)
    };
    let ok = serde_json::to_vec(&inline_job(json!({"job_id": "traced-ok", "limit": 3}))).unwrap();
    client.publish_job("fetch-chatdata", &ok, traced()).await;
    client
        .publish_job(
            "fetch-chatdata",
            br#"{"job_id": "traced-bad", "limit": 0}"#,
            traced(),
        )
        .await;
    client
        .submit(
            "fetch-chatdata",
            &inline_job(json!({"job_id": "untraced", "limit": 3})),
        )
        .await;
    // A publisher's traceparent that is not one: a number, a table, a long near-miss.
    let near_miss = format!("00-{TRACE}-00f067aa0ba902b7-01-{}", "x".repeat(10_000));
    let hostile = [
        AMQPValue::LongLongInt(7),
        AMQPValue::FieldTable(FieldTable::default()),
        AMQPValue::LongString(LongString::from(near_miss)),
    ];
    for (n, value) in hostile.into_iter().enumerate() {
        let mut headers = FieldTable::default();
        headers.insert("traceparent".into(), value);
        let job = inline_job(json!({"job_id": format!("hostile-{n}"), "limit": 1}));
        let body = serde_json::to_vec(&job).unwrap();
        let props = BasicProperties::default().with_headers(headers);
        client.publish_job("fetch-chatdata", &body, props).await;
    }
    let results = client.take("chatdata-results", 6, WAIT).await;
    let dead = client.take("fetch-chatdata.dead", 1, WAIT).await;
    let trace_of = |properties: &BasicProperties| {
        let header = wecom_archive::broker::headers::error_text(
            properties.headers().as_ref(),
            "traceparent",
        )
        .expect("a traceparent");
        header.split('-').nth(1).unwrap().to_owned()
    };
    let by_job: BTreeMap<String, String> = results
        .iter()
        .map(|r| {
            (
                r.body["job_id"].as_str().unwrap().to_owned(),
                trace_of(&r.properties),
            )
        })
        .collect();
    assert_eq!(by_job["traced-ok"], TRACE);
    assert_eq!(by_job["traced-bad"], TRACE);
    assert_ne!(by_job["untraced"], TRACE);
    for n in 0..3 {
        // Each ran, and got a trace of its own.
        let trace = &by_job[&format!("hostile-{n}")];
        assert_eq!(trace.len(), 32);
        assert_ne!(trace, TRACE);
    }
    assert_eq!(
        by_job["untraced"].len(),
        32,
        "a job without one gets a new trace"
    );
    assert_eq!(trace_of(&dead[0].properties), TRACE);

    // Every JSON log line of the traced jobs carries the trace id in its span.
    worker.wait_for_log("job failed", Duration::from_secs(10));
    let lines: Vec<Value> = worker
        .log_text()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .filter(|line: &Value| {
            line["span"]["job_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("traced"))
        })
        .collect();
    assert!(lines.len() >= 2, "{}", worker.log_text());
    for line in lines {
        assert_eq!(line["span"]["trace_id"], TRACE, "{line}");
    }
}
