//! The command line (`sdk check`, `fetch chatdata`, `fetch media`) run as a separate process
//! against the emulator, as an operator would.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{default_config, Emulator};

fn run(emulator: &Emulator, args: &[&str]) -> Output {
    let mut command = Command::new(common::cli());
    command.args(args).envs(emulator.env());
    command.output().expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn secret_file(emulator: &Emulator, secret: &str) -> String {
    let path = emulator.dir.path().join("secret");
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    path.to_string_lossy().into_owned()
}

fn lib() -> String {
    common::emulator_lib().to_string_lossy().into_owned()
}

fn key_args() -> Vec<String> {
    [1, 2]
        .iter()
        .flat_map(|v| {
            let path = common::fixture_path(&format!("keys/v{v}.pem"));
            ["--key".to_owned(), format!("{v}={}", path.display())]
        })
        .collect()
}

#[test]
fn sdk_check_lists_the_seventeen_symbols() {
    let emulator = Emulator::default_corp();
    let output = run(&emulator, &["sdk", "check", "--lib", &lib()]);
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(text.contains("symbols: all 17 resolved"), "{text}");
    assert!(text.contains("GetMediaData") && text.contains("IsMediaDataFinish"));
}

#[test]
fn sdk_check_names_a_missing_symbol() {
    let emulator = Emulator::default_corp();
    let not_the_sdk = common::some_other_library();
    let not_the_sdk = not_the_sdk.to_str().unwrap();
    let output = run(&emulator, &["sdk", "check", "--lib", not_the_sdk]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("lacks the symbol NewSdk"), "{stderr}");
}

#[test]
fn sdk_check_with_credentials_and_keys_pulls_and_decrypts_one_message() {
    let emulator = Emulator::default_corp();
    let secret = secret_file(&emulator, common::SECRET);
    let mut args = vec![
        "sdk",
        "check",
        "--lib",
        &lib(),
        "--corpid",
        common::CORPID,
        "--secret-file",
        &secret,
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    args.extend(key_args());
    let output = run(
        &emulator,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("GetChatData: ok, seq 1"), "{text}");
    assert!(text.contains("decrypt: ok"), "{text}");
    assert!(text.contains("verdict: OK"), "{text}");
}

#[test]
fn sdk_check_explains_a_wrong_secret_and_a_missing_whitelist_entry() {
    let emulator = Emulator::default_corp();
    let secret = secret_file(&emulator, "not-the-secret");
    let output = run(
        &emulator,
        &[
            "sdk",
            "check",
            "--lib",
            &lib(),
            "--corpid",
            common::CORPID,
            "--secret-file",
            &secret,
        ],
    );
    assert!(!output.status.success());
    let text = stdout(&output);
    assert!(
        text.contains("10001") && text.contains("check the secret"),
        "{text}"
    );
    assert!(
        !text.contains("not-the-secret"),
        "the secret must not be echoed"
    );
    // The library prints its own line on a token failure; it must land on stderr, not in ours.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("get access token failed"), "{stderr}");
    assert!(!text.contains("get access token failed"), "{text}");
    assert!(
        !stderr.contains("not-the-secret"),
        "the secret must not be logged"
    );

    let mut config = default_config();
    config.corps[0].whitelisted = false;
    let emulator = Emulator::with_config(&config);
    let secret = secret_file(&emulator, common::SECRET);
    let output = run(
        &emulator,
        &[
            "sdk",
            "check",
            "--lib",
            &lib(),
            "--corpid",
            common::CORPID,
            "--secret-file",
            &secret,
        ],
    );
    let text = stdout(&output);
    assert!(!output.status.success());
    assert!(
        text.contains("this machine's IP is not on the archive whitelist"),
        "{text}"
    );
}

#[test]
fn fetch_chatdata_prints_one_json_line_per_message() {
    let emulator = Emulator::default_corp();
    let secret = secret_file(&emulator, common::SECRET);
    let mut args: Vec<String> = [
        "fetch",
        "chatdata",
        "--lib",
        &lib(),
        "--corpid",
        common::CORPID,
        "--secret-file",
        &secret,
        "--seq",
        "10",
        "--limit",
        "50",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    args.extend(key_args());
    let output = run(
        &emulator,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 50);
    assert_eq!(lines[0]["seq"], 11);
    assert!(lines.iter().all(|l| l["status"] == "ok"));
    assert!(
        lines.iter().any(|l| l["publickey_ver"] == 1)
            && lines.iter().any(|l| l["publickey_ver"] == 2)
    );
    assert!(lines.iter().all(|l| l["message"]["msgid"] == l["msgid"]));
}

#[test]
fn fetch_chatdata_without_the_keys_reports_each_message_as_failed() {
    let emulator = Emulator::default_corp();
    let secret = secret_file(&emulator, common::SECRET);
    let output = run(
        &emulator,
        &[
            "fetch",
            "chatdata",
            "--lib",
            &lib(),
            "--corpid",
            common::CORPID,
            "--secret-file",
            &secret,
            "--limit",
            "5",
        ],
    );
    assert!(output.status.success());
    let text = stdout(&output);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert!(
        lines
            .iter()
            .all(|l| l["status"] == "failed" && l["error"]["code"] == 20101),
        "{text}"
    );
}

fn fetch_media(emulator: &Emulator, id: &str, out: &Path, md5: &str) -> std::process::Child {
    let secret = secret_file(emulator, common::SECRET);
    Command::new(common::cli())
        .args([
            "fetch",
            "media",
            "--lib",
            &lib(),
            "--corpid",
            common::CORPID,
            "--secret-file",
            &secret,
            "--sdkfileid",
            id,
            "--md5",
            md5,
            "--out",
        ])
        .arg(out)
        .envs(emulator.env())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn fetch_media_writes_the_file_and_reports_its_digests() {
    let emulator = Emulator::default_corp();
    let id = emulator::media_file_id(1_300_000, 1, 3);
    let md5 = common::expected_md5(default_config().corps[0].seed, &id);
    let out = emulator.dir.path().join("media/file.bin");
    let output = fetch_media(&emulator, &id, &out, &md5)
        .wait_with_output()
        .unwrap();
    assert!(output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["size"], 1_300_000);
    assert_eq!(report["md5"], md5.as_str());
    assert_eq!(report["md5_matched"], true);
    assert_eq!(report["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 1_300_000);
}

#[test]
fn a_killed_download_resumes_where_it_stopped() {
    let mut config = default_config();
    config.corps[0].faults.get_media_data.latency_ms = 40;
    let emulator = Emulator::with_config(&config);
    let chunks = 24;
    let id = emulator::media_file_id(chunks * 524_288 - 1000, 1, 4);
    let md5 = common::expected_md5(config.corps[0].seed, &id);
    let out = emulator.dir.path().join("big.bin");

    let mut first = fetch_media(&emulator, &id, &out, &md5);
    let deadline = Instant::now() + Duration::from_secs(30);
    while emulator.calls_of("GetMediaData").len() < 6 {
        assert!(Instant::now() < deadline, "the download did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    first.kill().unwrap(); // SIGKILL: no chance to clean up
    first.wait().unwrap();
    let before = emulator.calls_of("GetMediaData").len() as u64;
    assert!(before < chunks, "the first run must not have finished");
    assert!(
        !out.exists(),
        "an incomplete file never appears under its final name"
    );

    let output = fetch_media(&emulator, &id, &out, &md5)
        .wait_with_output()
        .unwrap();
    assert!(output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["md5_matched"], true);
    assert!(report["resumed_at"].as_u64().unwrap() > 0, "{report}");
    let total = emulator.calls_of("GetMediaData").len() as u64;
    let fetched_twice = total - chunks;
    assert!(
        fetched_twice <= 1,
        "{fetched_twice} chunks were fetched twice"
    );
}

/// The demo's summary on stdout is not interleaved with the worker's lines, and a log that is
/// not a terminal gets no colour codes.
#[test]
fn the_demo_prints_its_summary_alone_and_logs_without_colour() {
    let (vhost, emulator) = (common::broker::Vhost::new(), Emulator::default_corp());
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys");
    let output = Command::new(common::cli())
        .args(["demo", "--amqp-url", &vhost.url(), "--lib", &lib()])
        .arg("--keys-dir")
        .arg(&keys)
        .envs(emulator.env())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let (out, err) = (stdout(&output), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{out}\n{err}");
    assert!(out.contains("demo OK"), "{out}");
    assert!(!err.contains(" INFO "), "the worker's info lines: {err}");

    // A worker's log, written to a file, is plain text: here, its lines about a broker it
    // cannot reach.
    let log_path = emulator.dir.path().join("worker.log");
    let mut worker = Command::new(common::cli())
        .args([
            "worker",
            "--lib",
            &lib(),
            "--amqp-url",
            "amqp://127.0.0.1:1/%2f",
        ])
        .env("WECOM_MEDIA_DIR", emulator.dir.path().join("media"))
        .envs(emulator.env())
        .env_remove("RUST_LOG")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let log = loop {
        let log = std::fs::read_to_string(&log_path).unwrap();
        if log.contains("WARN") || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = worker.kill();
    let _ = worker.wait();
    assert!(log.contains("reconnecting"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in {log:?}");
}
