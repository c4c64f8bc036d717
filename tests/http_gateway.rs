//! `wecom-archive serve`, as the seed service's clients and new ones meet it: the old client's
//! own code path (Python `requests`) in both modes, the `/v1` shapes, bad bodies, the token.

mod common;

use std::process::Command;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::broker::{Client, Vhost, Worker};
use common::gateway::Gateway;
use common::schemas::assert_valid;
use common::{default_config, default_keys, expected_md5, inline_job, Emulator};
use md5::{Digest, Md5};
use serde_json::{json, Value};
use wecom_archive::decrypt::decrypt_message;
use wecom_archive::sdk::NetOptions;

/// A file of two chunks and a bit.
const MEDIA_SIZE: u64 = 1_100_000;

fn media_id() -> String {
    emulator::media_file_id(MEDIA_SIZE, 1, 1)
}

/// Runs `tests/gateway/old_client.py` against `gateway`; returns what it wrote.
fn run_old_client(gateway: &Gateway, emulator: &Emulator) -> Value {
    let dir = emulator.dir.path();
    // As the seed service's clients build it: unset fields sent as null.
    let chat = inline_job(json!({"seq": 0, "proxy": null, "paswd": null}));
    let media =
        inline_job(json!({"seq": 0, "sdkfileid": media_id(), "proxy": null, "paswd": null}));
    std::fs::write(dir.join("chat.json"), chat.to_string()).unwrap();
    std::fs::write(dir.join("media.json"), media.to_string()).unwrap();
    let out = dir.join("out.json");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gateway/old_client.py");
    let ran = Command::new("python3")
        .arg(script)
        .arg(&gateway.url)
        .arg(dir.join("chat.json"))
        .arg(dir.join("media.json"))
        .arg(&out)
        .output()
        .expect("python3 runs");
    assert!(
        ran.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&ran.stderr),
        gateway.log_text()
    );
    serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap()
}

/// The old shapes, field by field, against the page and file the library gives directly.
fn assert_old_shapes(answers: &Value, emulator: &Emulator) {
    assert_eq!(answers["hello"], json!({"Hello": "World"}));
    assert_eq!(answers["chat_status"], 200, "{}", answers["chat"]);
    let (sdk, mut handle) = emulator.handle();
    let page = handle
        .get_chat_data(0, 1000, &NetOptions::default())
        .unwrap();
    let keys = default_keys();
    let list = answers["chat"].as_array().expect("a list");
    assert_eq!(list.len(), 1000);
    let mut failed = 0;
    for (item, message) in list.iter().zip(&page) {
        let fields: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(item["seq"], message.seq);
        assert_eq!(item["msgid"], message.msgid.as_str());
        assert_eq!(item["publickey_ver"], message.publickey_ver);
        assert_eq!(
            item["encrypt_random_key"],
            message.encrypt_random_key.as_str()
        );
        assert_eq!(item["encrypt_chat_msg"], message.encrypt_chat_msg.as_str());
        match decrypt_message(&sdk, &keys, message) {
            Ok(decrypted) => {
                let expected: Value = serde_json::from_str(decrypted.message.get()).unwrap();
                assert_eq!(item["decrypted_chat_msg"], expected);
                let mut expected_fields = [
                    "seq",
                    "msgid",
                    "publickey_ver",
                    "encrypt_random_key",
                    "encrypt_chat_msg",
                    "decrypted_chat_msg",
                ];
                expected_fields.sort();
                assert_eq!(fields, expected_fields);
            }
            Err(error) => {
                failed += 1;
                assert_eq!(item["decrypted_chat_msg"], Value::Null);
                assert_eq!(item["error"]["code"], error.error.info().code);
            }
        }
    }
    assert!(failed < 1000, "the page decrypted");

    assert_eq!(answers["media_status"], 200, "{}", answers["media"]);
    let bytes = STANDARD
        .decode(answers["media"].as_str().expect("a JSON string"))
        .unwrap();
    assert_eq!(bytes.len() as u64, MEDIA_SIZE);
    let seed = default_config().corps[0].seed;
    assert_eq!(
        hex::encode(Md5::digest(&bytes)),
        expected_md5(seed, &media_id())
    );
}

#[test]
fn the_seed_services_client_gets_its_shapes_in_process() {
    let emulator = Emulator::default_corp();
    let gateway = Gateway::start(&emulator, &[], &[]);
    let answers = run_old_client(&gateway, &emulator);
    assert_old_shapes(&answers, &emulator);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seed_services_client_gets_the_same_through_the_broker() {
    let (vhost, emulator) = (Vhost::new(), Emulator::default_corp());
    let worker = Worker::start(&vhost, &emulator, &[]);
    let url = vhost.url();
    let gateway = Gateway::start(
        &emulator,
        &["--via-broker"],
        &[("WECOM_AMQP_URL", url.as_str())],
    );
    // The gateway connects in the background: wait until it has.
    common::service::wait_for_log(
        &gateway.log,
        "gateway connected to the broker",
        std::time::Duration::from_secs(20),
    );
    let answers = run_old_client(&gateway, &emulator);
    assert_old_shapes(&answers, &emulator);
    // The worker ran them (the gateway loads no library here), and sent their results to the
    // gateway only.
    let ran_by_worker = worker
        .log_text()
        .lines()
        .filter(|line| line.contains("job done") && line.contains("job_id=\"http-"))
        .count();
    assert_eq!(ran_by_worker, 2, "{}", worker.log_text());
    let client = Client::connect(&vhost).await;
    assert_eq!(client.depth("chatdata-results").await, 0);
    assert_eq!(client.depth("media-results").await, 0);
}

#[test]
fn v1_answers_the_workers_page_and_streams_media() {
    let emulator = Emulator::default_corp();
    let gateway = Gateway::start(&emulator, &["--compat-media-max-bytes", "1000000"], &[]);
    let chat = inline_job(json!({"job_id": "v1-page", "seq": 10, "limit": 50}));
    let answer = gateway.request("POST", "/v1/chatdata", &[], chat.to_string().as_bytes());
    answer.assert_status(200);
    let page = answer.json();
    assert_valid("chatdata-page.result", &page);
    assert_eq!(
        (page["seq"].clone(), page["next_seq"].clone()),
        (json!(10), json!(60))
    );
    assert_eq!(page["has_more"], true);
    assert_eq!(page["result_id"], "v1-page:page-1");

    let media = inline_job(json!({"sdkfileid": media_id()}));
    let answer = gateway.request("GET", "/v1/media", &[], media.to_string().as_bytes());
    answer.assert_status(200);
    assert_eq!(
        answer.header("content-length"),
        Some(MEDIA_SIZE.to_string().as_str())
    );
    let md5 = expected_md5(default_config().corps[0].seed, &media_id());
    assert_eq!(hex::encode(Md5::digest(&answer.body)), md5);
    assert_eq!(answer.header("x-wecom-md5"), Some(md5.as_str()));

    // Above the compatible endpoint's bound: a clear refusal, not a huge string.
    let answer = gateway.request(
        "GET",
        "/wecom/finance/mediadata",
        &[],
        media.to_string().as_bytes(),
    );
    assert_eq!(answer.status, 422);
    assert_eq!(answer.json()["error"]["code"], 20402);
    assert_eq!(answer.json()["error"]["name"], "media_too_large");

    // More than one page per request is refused, not cut short silently.
    let many = inline_job(json!({"seq": 0, "max_pages": 3}));
    let answer = gateway.request("POST", "/v1/chatdata", &[], many.to_string().as_bytes());
    assert_eq!(answer.status, 400);

    let openapi = gateway.request("GET", "/openapi.json", &[], b"").json();
    assert_eq!(openapi["openapi"], "3.1.0");
    for path in [
        "/wecom/finance/chatdata",
        "/wecom/finance/mediadata",
        "/v1/chatdata",
        "/v1/media",
    ] {
        assert!(openapi["paths"][path]["get"].is_object(), "{path}");
        assert!(openapi["paths"][path]["post"].is_object(), "{path}");
    }
    // The same telemetry as a worker's, on the gateway's own port.
    let metrics = String::from_utf8(gateway.request("GET", "/metrics", &[], b"").body).unwrap();
    assert!(
        metrics
            .contains(r#"wecom_archive_jobs_total{kind="fetch-chatdata",outcome="ok",code=""} 1"#),
        "{metrics}"
    );
    // Two requests for the file, each a download of its three chunks.
    assert!(
        metrics.contains("wecom_archive_media_chunks_total 6"),
        "{metrics}"
    );
    assert_eq!(gateway.request("GET", "/readyz", &[], b"").status, 200);
    assert_eq!(gateway.request("HEAD", "/v1/media", &[], b"").status, 405);
    let docs = gateway.request("GET", "/docs", &[], b"");
    assert!(String::from_utf8_lossy(&docs.body).contains("/openapi.json"));
}

#[test]
fn bad_bodies_get_a_4xx_with_a_code_and_the_server_stays_up() {
    let emulator = Emulator::default_corp();
    let mut gateway = Gateway::start(&emulator, &[], &[]);
    let weak_key = common::fixture("keys/rsa512.pem");
    let cases: Vec<(&str, Vec<u8>, u16, i64)> = vec![
        ("not JSON", b"{\"seq\": 0,".to_vec(), 400, 20301),
        ("not an object", b"[1, 2]".to_vec(), 400, 20301),
        (
            "a wrong type",
            inline_job(json!({"seq": "zero"})).to_string().into_bytes(),
            400,
            20301,
        ),
        (
            "an unknown field",
            inline_job(json!({"sequence": 0})).to_string().into_bytes(),
            400,
            20301,
        ),
        (
            "a 512-bit key",
            json!({"corpid": "ww1", "secret": "s",
                   "private_keys": [{"publickey_ver": 1, "private_key": weak_key}]})
            .to_string()
            .into_bytes(),
            400,
            20304,
        ),
        (
            "a NUL byte",
            inline_job(json!({"proxy": "http://a\u{0}b:1"}))
                .to_string()
                .into_bytes(),
            400,
            20001,
        ),
        ("an oversized body", vec![b' '; 300 * 1024], 413, 20301),
        ("no credentials", b"{\"seq\": 0}".to_vec(), 400, 20301),
    ];
    for (what, body, status, code) in cases {
        let answer = gateway.request("GET", "/wecom/finance/chatdata", &[], &body);
        assert_eq!(
            answer.status,
            status,
            "{what}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        let error = &answer.json()["error"];
        assert_eq!(error["code"], code, "{what}: {error}");
        for field in ["name", "class", "retryable", "message"] {
            assert!(!error[field].is_null(), "{what}: {field} in {error}");
        }
        assert!(gateway.is_running(), "{what}");
    }
    let hello = gateway.request("GET", "/", &[], b"");
    assert_eq!(hello.json(), json!({"Hello": "World"}));
}

#[test]
fn a_token_guards_the_job_endpoints() {
    let emulator = Emulator::default_corp();
    let token_file = emulator.dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let gateway = Gateway::start(
        &emulator,
        &["--token-file", token_file.to_str().unwrap()],
        &[],
    );
    let body = inline_job(json!({"seq": 0, "limit": 5})).to_string();
    for authorization in [None, Some("Bearer wrong"), Some("s3cret-token")] {
        let headers: Vec<(&str, &str)> = authorization
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        let answer = gateway.request("GET", "/wecom/finance/chatdata", &headers, body.as_bytes());
        assert_eq!(answer.status, 401, "{authorization:?}");
        assert_eq!(answer.json()["error"]["code"], 20403);
    }
    let answer = gateway.request(
        "GET",
        "/wecom/finance/chatdata",
        &[("Authorization", "Bearer s3cret-token")],
        body.as_bytes(),
    );
    answer.assert_status(200);
    assert_eq!(answer.json().as_array().unwrap().len(), 5);
    // The liveness answer needs no token, as the seed service's did not.
    assert_eq!(gateway.request("GET", "/", &[], b"").status, 200);
}

#[test]
fn a_corp_alias_works_and_inline_credentials_can_be_refused() {
    let emulator = Emulator::default_corp();
    let dir = emulator.dir.path();
    std::fs::write(dir.join("secret"), format!("{}\n", common::SECRET)).unwrap();
    let corps = json!({"acme": {"corpid": common::CORPID, "secret": {"file": dir.join("secret")},
        "keys": {"1": {"file": common::fixture_path("keys/v1.pem")},
                 "2": {"file": common::fixture_path("keys/v2.pem")}}}});
    let corps_file = dir.join("corps.json");
    std::fs::write(&corps_file, corps.to_string()).unwrap();
    let gateway = Gateway::start(
        &emulator,
        &[
            "--corps-file",
            corps_file.to_str().unwrap(),
            "--inline-credentials",
            "false",
        ],
        &[],
    );
    let by_alias = json!({"corp": "acme", "seq": 0, "limit": 4});
    let answer = gateway.request(
        "GET",
        "/wecom/finance/chatdata",
        &[],
        by_alias.to_string().as_bytes(),
    );
    answer.assert_status(200);
    assert_eq!(answer.json().as_array().unwrap().len(), 4);

    let inline = inline_job(json!({"seq": 0, "limit": 4}));
    let answer = gateway.request(
        "GET",
        "/wecom/finance/chatdata",
        &[],
        inline.to_string().as_bytes(),
    );
    assert_eq!(answer.status, 403);
    assert_eq!(answer.json()["error"]["name"], "inline_credentials_refused");

    let unknown = json!({"corp": "other"});
    let answer = gateway.request("GET", "/v1/chatdata", &[], unknown.to_string().as_bytes());
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json()["error"]["name"], "unknown_corp");
}

#[test]
fn a_job_that_outlasts_the_requests_patience_gets_504() {
    let mut config = default_config();
    config.corps[0].faults.get_chat_data.latency_ms = 3000;
    let emulator = Emulator::with_config(&config);
    let mut gateway = Gateway::start(&emulator, &["--job-timeout-secs", "1"], &[]);
    let started = std::time::Instant::now();
    let body = inline_job(json!({"seq": 0, "limit": 5}));
    let answer = gateway.request(
        "GET",
        "/wecom/finance/chatdata",
        &[],
        body.to_string().as_bytes(),
    );
    answer.assert_status(504);
    assert_eq!(answer.json()["error"]["name"], "job_timed_out");
    assert_eq!(answer.json()["error"]["retryable"], true);
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    assert!(gateway.is_running());
}

/// Reads what the server sends until it closes the connection, for at most `patience`; `None`
/// if the connection is still open then.
fn read_until_closed(stream: &mut std::net::TcpStream, patience: Duration) -> Option<Vec<u8>> {
    use std::io::Read;
    let deadline = std::time::Instant::now() + patience;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.checked_duration_since(std::time::Instant::now())?;
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Some(got),
            Err(_) => return None,
        }
    }
}

#[test]
fn slow_and_idle_clients_are_cut_off_and_cost_no_one_else() {
    use std::io::Write;
    let emulator = Emulator::default_corp();
    let gateway = Gateway::start(
        &emulator,
        &[],
        &[
            ("WECOM_HTTP_READ_TIMEOUT_SECS", "2"),
            ("WECOM_HTTP_MAX_CONNECTIONS", "3"),
        ],
    );
    let address = gateway.url.trim_start_matches("http://").to_owned();
    let connect = || std::net::TcpStream::connect(&address).unwrap();
    // Every connection the gateway serves at once, taken by a client that stalls: one sends
    // nothing, one half a request head, one half a body.
    let mut silent = connect();
    let mut slow_head = connect();
    slow_head
        .write_all(b"GET /wecom/finance/chatdata HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut slow_body = connect();
    slow_body
        .write_all(
            b"GET /wecom/finance/chatdata HTTP/1.1\r\nHost: x\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"seq\":",
        )
        .unwrap();
    // An honest client waits, unaccepted, while the stalled ones hold every slot...
    let (answered, answer) = std::sync::mpsc::channel();
    let honest = gateway.url.clone();
    std::thread::spawn(move || {
        let hello =
            common::http::request(honest.trim_start_matches("http://"), "GET", "/", &[], b"");
        let _ = answered.send(hello);
    });
    assert!(
        answer.recv_timeout(Duration::from_millis(500)).is_err(),
        "a fourth connection was served beside three"
    );
    // ...and is served once the read timeout has cut them off. The patience is far above the
    // timeout, so that a loaded machine does not fail the test; "never" fails it.
    let patience = Duration::from_secs(30);
    let hello = answer
        .recv_timeout(patience)
        .expect("the honest client is served");
    assert_eq!(hello.json(), json!({"Hello": "World"}));
    for (what, stream) in [("silent", &mut silent), ("slow head", &mut slow_head)] {
        let sent = read_until_closed(stream, patience);
        assert!(sent.is_some(), "{what}: still open after {patience:?}");
    }
    let sent = read_until_closed(&mut slow_body, patience).expect("slow body: closed");
    let sent = String::from_utf8_lossy(&sent);
    assert!(
        sent.starts_with("HTTP/1.1 400") && sent.contains("\"code\":20301"),
        "slow body: {sent}"
    );
}
