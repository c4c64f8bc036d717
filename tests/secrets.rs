//! No secret leaves the worker or the HTTP gateway (issue 4, security): with every log at trace level, the corp
//! secret, the private keys and the decrypted per-message keys appear in no log line, result,
//! failure or dead-letter listing, in any encoding: the text searched holds, besides itself,
//! every run in it that decodes as a list of byte values, hex or base64.

mod common;

use std::time::Duration;

use base64::Engine;
use serde_json::json;
use wecom_archive::sdk::NetOptions;

use common::broker::{Client, Vhost, Worker};
use common::gateway::Gateway;
use common::{default_config, Emulator, CORPID, SECRET};

/// Every run of `text` that reads as bytes written out (a `[115, 101, ...]` list of byte values,
/// hex, base64), decoded, one per line.
fn decoded_runs(text: &str) -> String {
    let mut decoded = Vec::new();
    // Byte lists: runs of digits, commas and spaces with at least 8 values, all below 256.
    for run in text.split(|c: char| !(c.is_ascii_digit() || c == ',' || c == ' ')) {
        let values: Vec<&str> = run.split(',').map(str::trim).collect();
        if values.len() >= 8 {
            let bytes: Vec<u8> = values.iter().filter_map(|v| v.parse().ok()).collect();
            decoded.push(bytes);
        }
    }
    for run in text.split(|c: char| !c.is_ascii_hexdigit()) {
        for start in 0..2.min(run.len()) {
            let even = &run[start..start + (run.len() - start) / 2 * 2];
            if even.len() >= 16 {
                decoded.extend(hex::decode(even).ok());
            }
        }
    }
    let engine = base64::engine::general_purpose::STANDARD_NO_PAD;
    for run in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '/')) {
        // A run may start anywhere in a base64 text: try each of the four alignments.
        for start in 0..4.min(run.len()) {
            let aligned = &run[start..];
            let whole = &aligned[..aligned.len() / 4 * 4];
            if whole.len() >= 16 {
                decoded.extend(engine.decode(whole).ok());
            }
        }
    }
    decoded
        .iter()
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_search_decodes_byte_lists_hex_and_base64() {
    let secret = "hunter2-hunter2";
    let as_list = format!("{:?}", secret.as_bytes());
    let as_hex = format!("frame=0x{} end", hex::encode(secret));
    let as_base64 = format!(
        "body: x{}",
        base64::engine::general_purpose::STANDARD.encode(format!("{{\"secret\": \"{secret}\"}}"))
    );
    for text in [as_list, as_hex, as_base64] {
        assert!(!text.contains(secret));
        assert!(decoded_runs(&text).contains(secret), "{text}");
    }
}

/// The decrypted random keys (`encrypt_key`s) of the first `count` messages.
fn decrypted_random_keys(emulator: &Emulator, count: u32) -> Vec<String> {
    let (_sdk, mut handle) = emulator.handle();
    let keys = common::default_keys();
    let page = handle
        .get_chat_data(0, count, &NetOptions::default())
        .unwrap();
    page.iter()
        .map(|m| {
            let ciphertext = base64::engine::general_purpose::STANDARD
                .decode(&m.encrypt_random_key)
                .unwrap();
            let key = keys.decrypt(m.publickey_ver, &ciphertext).unwrap();
            String::from_utf8(key.to_vec()).unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_appears_in_trace_logs_results_or_dead_letters() {
    let mut config = default_config();
    config.corps[0].faults.get_chat_data.script = vec![0, 10001];
    let (vhost, emulator) = (Vhost::new(), Emulator::with_config(&config));
    let random_keys = decrypted_random_keys(&emulator, 30);
    let proxy_password = "proxy-user:proxy-pa55word";

    // Trace everything, libraries included.
    let worker = Worker::start_with_env(&vhost, &emulator, &[], &[("RUST_LOG", "trace")]);
    let client = Client::connect(&vhost).await;
    let keys = json!([
        {"publickey_ver": 1, "private_key": common::fixture("keys/v1.pem")},
        {"publickey_ver": 2, "private_key": common::fixture("keys/v2.pem")},
    ]);
    let jobs = [
        (
            "fetch-chatdata",
            json!({"job_id": "s1", "corpid": CORPID, "secret": SECRET, "private_keys": keys, "limit": 30}),
        ),
        (
            "fetch-chatdata",
            json!({"job_id": "s2", "corpid": CORPID, "secret": SECRET, "private_keys": keys, "limit": 5, "paswd": proxy_password}),
        ),
        (
            "fetch-chatdata",
            json!({"job_id": "s3", "corpid": CORPID, "secret": SECRET, "private_keys": keys, "limit": 0}),
        ),
        (
            "fetch-chatdata",
            json!({"job_id": "s4", "corpid": CORPID, "secret": "wrong-but-still-secret", "limit": 5}),
        ),
        (
            "fetch-media",
            json!({"job_id": "s5", "corpid": CORPID, "secret": SECRET, "sdkfileid": emulator::media_file_id(700_000, 1, 3)}),
        ),
    ];
    for (kind, job) in &jobs {
        client.submit(kind, job).await;
    }
    let mut published = client
        .take("chatdata-results", 4, Duration::from_secs(60))
        .await;
    published.extend(
        client
            .take("media-results", 1, Duration::from_secs(30))
            .await,
    );
    assert_eq!(published.len(), 5, "{}", worker.log_text());

    let dlq_show = |kind: &str| {
        let output = std::process::Command::new(common::cli())
            .args(["dlq", "show", "--kind", kind])
            .env("WECOM_AMQP_URL", vhost.url())
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    let mut haystack = worker.log_text();
    // RUST_LOG=trace reaches the libraries: the AMQP client's debug lines are there (its trace
    // lines, whole frames, are never written).
    assert!(
        haystack.contains("DEBUG") && haystack.contains("lapin"),
        "the worker logged its libraries at trace level"
    );
    for message in &published {
        haystack.push_str(&String::from_utf8_lossy(&message.raw));
    }
    haystack.push_str(&dlq_show("chatdata"));
    haystack.push_str(&dlq_show("media"));
    let decoded = decoded_runs(&haystack);
    haystack.push_str(&decoded);
    assert!(
        haystack.contains("s3") && haystack.contains("s4"),
        "the failures were dead-lettered"
    );

    assert_no_secret_in(&haystack, random_keys, proxy_password);
}

/// Fails when `haystack` holds the corp secret (or the wrong one the jobs sent), a line of a
/// private key, the proxy password or a decrypted random key.
fn assert_no_secret_in(haystack: &str, random_keys: Vec<String>, proxy_password: &str) {
    let mut needles: Vec<String> = vec![
        SECRET.into(),
        "wrong-but-still-secret".into(),
        proxy_password.into(),
    ];
    for pem in ["keys/v1.pem", "keys/v2.pem"] {
        needles.extend(
            common::fixture(pem)
                .lines()
                .filter(|line| !line.starts_with("-----"))
                .map(str::to_owned),
        );
    }
    needles.extend(random_keys);
    let leaks: Vec<&String> = needles
        .iter()
        .filter(|n| haystack.contains(n.as_str()))
        .collect();
    assert!(
        leaks.is_empty(),
        "{} secret(s) leaked, e.g. {:?}",
        leaks.len(),
        leaks.first().map(|l| &l[..8.min(l.len())])
    );
}

#[test]
fn no_secret_appears_in_the_gateways_trace_logs_or_answers() {
    let mut config = default_config();
    config.corps[0].faults.get_chat_data.script = vec![0, 10001];
    let emulator = Emulator::with_config(&config);
    let random_keys = decrypted_random_keys(&emulator, 30);
    let proxy_password = "proxy-user:proxy-pa55word";
    let gateway = Gateway::start(&emulator, &[], &[("RUST_LOG", "trace")]);
    let keys = json!([
        {"publickey_ver": 1, "private_key": common::fixture("keys/v1.pem")},
        {"publickey_ver": 2, "private_key": common::fixture("keys/v2.pem")},
    ]);
    let requests = [
        (
            "/v1/chatdata",
            json!({"corpid": CORPID, "secret": SECRET, "private_keys": keys, "limit": 30}),
        ),
        (
            "/wecom/finance/chatdata",
            json!({"corpid": CORPID, "secret": SECRET, "private_keys": keys, "limit": 5, "paswd": proxy_password}),
        ),
        (
            "/wecom/finance/chatdata",
            json!({"corpid": CORPID, "secret": SECRET, "private_keys": keys, "limit": 0}),
        ),
        (
            "/v1/chatdata",
            json!({"corpid": CORPID, "secret": "wrong-but-still-secret", "limit": 5}),
        ),
        (
            "/wecom/finance/mediadata",
            json!({"corpid": CORPID, "secret": SECRET, "sdkfileid": emulator::media_file_id(700_000, 1, 3)}),
        ),
    ];
    let mut haystack = String::new();
    let mut statuses = Vec::new();
    for (path, body) in &requests {
        let answer = gateway.request("GET", path, &[], body.to_string().as_bytes());
        statuses.push(answer.status);
        haystack.push_str(&String::from_utf8_lossy(&answer.body));
    }
    // Two pages, a file, an invalid job and a refused secret: each answered.
    assert_eq!(statuses[..2], [200, 200]);
    assert_eq!(statuses[2], 400);
    assert!(statuses[3] >= 400, "{statuses:?}");
    assert_eq!(statuses[4], 200);
    let log = gateway.log_text();
    assert!(
        log.contains("job ended") && log.contains("refused"),
        "{log}"
    );
    haystack.push_str(&log);
    let decoded = decoded_runs(&haystack);
    haystack.push_str(&decoded);
    assert_no_secret_in(&haystack, random_keys, proxy_password);
}
