//! An operator's first day, run as processes: a setting, file or folder that cannot work stops
//! a command at once (exit 2) with a line naming it; no secret or key text appears in any
//! output when a secret-bearing field is given the wrong type (corps file, job over HTTP,
//! environment); and in JSON mode every line a worker writes to stderr is a JSON object, the
//! SDK's own prints and a fatal error included.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::broker::{Client, Vhost, Worker};
use common::gateway::Gateway;
use common::Emulator;

/// A broker nobody listens at: a command that got past its start-up checks would keep trying
/// it, and the test would see it still running.
const NO_BROKER: &str = "amqp://guest:guest@127.0.0.1:1/%2f";

/// What a command that must refuse to start printed.
struct Refused {
    code: Option<i32>,
    output: String,
}

/// Runs `wecom-archive <args>` with `env` and the emulator's settings, and waits for it to exit
/// by itself: a start-up check answers in seconds, so 20 s means it did not stop at all.
fn refused_at_start(emulator: &Emulator, args: &[&str], env: &[(&str, &str)]) -> Refused {
    refused_as(None, emulator, args, env)
}

/// As [`refused_at_start`], run by `setpriv` as the user and group `uid` when given.
fn refused_as(
    uid: Option<u32>,
    emulator: &Emulator,
    args: &[&str],
    env: &[(&str, &str)],
) -> Refused {
    let logs = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (logs.path().join("out"), logs.path().join("err"));
    let mut command = match uid {
        Some(uid) => {
            let mut command = Command::new("setpriv");
            command
                .args([format!("--reuid={uid}"), format!("--regid={uid}")])
                .args(["--clear-groups", "--"])
                .arg(common::cli());
            command
        }
        None => Command::new(common::cli()),
    };
    let mut child = command
        .args(args)
        .env("WECOM_AMQP_URL", NO_BROKER)
        .env("WECOM_MEDIA_DIR", emulator.dir.path().join("media"))
        .env("WECOM_SDK_LIB", common::emulator_lib())
        .env_remove("RUST_LOG")
        .envs(emulator.env())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{args:?} {env:?} did not stop at start:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output =
        std::fs::read_to_string(&out_path).unwrap() + &std::fs::read_to_string(&err_path).unwrap();
    Refused {
        code: status.code(),
        output,
    }
}

fn assert_refused_naming(refused: &Refused, what: &str, case: &str) {
    assert_eq!(refused.code, Some(2), "{case}: {}", refused.output);
    assert!(
        refused.output.contains(what),
        "{case}: the output does not name {what:?}:\n{}",
        refused.output
    );
}

#[test]
fn values_that_cannot_work_are_refused_at_start_naming_the_setting() {
    let emulator = Emulator::default_corp();
    /// What it is, the command line, its environment, and the flag the refusal must name.
    type Case<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 7] = [
        (
            "prefetch 0 (unlimited in AMQP)",
            &["worker", "--prefetch", "0"],
            &[],
            "--prefetch",
        ),
        (
            "concurrency 0",
            &["worker"],
            &[("WECOM_CONCURRENCY", "0")],
            "--concurrency",
        ),
        (
            "no attempt at all",
            &["worker"],
            &[("WECOM_MAX_ATTEMPTS", "0")],
            "--max-attempts",
        ),
        (
            "a retry delay past the broker's TTL",
            &["worker"],
            &[("WECOM_RETRY_DELAYS", "5,99999999999")],
            "--retry-delays",
        ),
        (
            "an unknown log format",
            &["worker"],
            &[("WECOM_LOG_FORMAT", "jsn")],
            "--log-format",
        ),
        (
            "SDK handles 0",
            &["serve"],
            &[("WECOM_SDK_PER_CORP", "0")],
            "--sdk-per-corp",
        ),
        (
            "topology apply with attempts 0",
            &["topology", "apply"],
            &[("WECOM_MAX_ATTEMPTS", "0")],
            "--max-attempts",
        ),
    ];
    for (case, args, env, flag) in cases {
        assert_refused_naming(&refused_at_start(&emulator, args, env), flag, case);
    }
}

#[test]
fn a_library_corps_file_or_media_store_that_cannot_work_stops_the_command_naming_its_path() {
    let emulator = Emulator::default_corp();
    let dir = emulator.dir.path();
    let missing_lib = dir.join("nowhere/libWeWorkFinanceSdk_C.so");
    let missing_lib = missing_lib.to_str().unwrap();
    for command in ["worker", "serve"] {
        let refused = refused_at_start(&emulator, &[command], &[("WECOM_SDK_LIB", missing_lib)]);
        assert_refused_naming(&refused, missing_lib, "a library that is not there");
    }
    let missing_corps = dir.join("corps.json");
    let refused = refused_at_start(
        &emulator,
        &["worker"],
        &[("WECOM_CORPS_FILE", missing_corps.to_str().unwrap())],
    );
    assert_refused_naming(&refused, missing_corps.to_str().unwrap(), "no corps file");

    // A media folder that cannot be made: its parent is a file.
    let file = dir.join("a-file");
    std::fs::write(&file, "").unwrap();
    let media = file.join("media");
    for command in ["worker", "serve"] {
        let refused = refused_at_start(
            &emulator,
            &[command],
            &[("WECOM_MEDIA_DIR", media.to_str().unwrap())],
        );
        assert_refused_naming(&refused, media.to_str().unwrap(), "media under a file");
        assert!(
            refused.output.contains("Not a directory"),
            "{}",
            refused.output
        );
    }
}

/// A volume owned by root while the worker runs as another user, as an image's non-root user
/// meets a bind mount: the store is found unwritable at start, not job by job.
#[test]
fn a_media_store_the_worker_user_cannot_write_stops_it_at_start() {
    let emulator = Emulator::default_corp();
    let shared = tempfile::tempdir().unwrap();
    let media = shared.path().join("media");
    std::fs::create_dir(&media).unwrap();
    for path in [shared.path(), &media] {
        set_mode(path, 0o755);
    }
    let refused = refused_as(
        Some(65534),
        &emulator,
        &["worker"],
        &[("WECOM_MEDIA_DIR", media.to_str().unwrap())],
    );
    assert_refused_naming(&refused, media.to_str().unwrap(), "a root-owned store");
    assert!(
        refused.output.contains("Permission denied"),
        "{}",
        refused.output
    );
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The texts planted in the wrong-typed fields: none may appear in any output.
const PLANTED: [&str; 3] = [
    "PLANTED-SECRET-7f3a",
    "PLANTED-KEY-91c2",
    "PLANTED-PASSWORD-5d0e",
];

fn assert_nothing_planted_in(text: &str, case: &str) {
    for planted in PLANTED {
        assert!(
            !text.contains(planted),
            "{case}: {planted} in the output:\n{text}"
        );
    }
}

#[test]
fn a_corps_file_with_a_secret_or_key_of_the_wrong_type_is_refused_without_quoting_it() {
    let emulator = Emulator::default_corp();
    let key = "-----BEGIN PRIVATE KEY-----\nPLANTED-KEY-91c2\n-----END PRIVATE KEY-----";
    let corps_files = [
        json!({"acme": {"corpid": "ww1", "secret": "PLANTED-SECRET-7f3a"}}),
        json!({"acme": {"corpid": "ww1", "secret": {"file": "/run/secret"}, "keys": {"1": key}}}),
        json!({"acme": {"corpid": "ww1", "secret": {"value": "PLANTED-SECRET-7f3a"}}}),
        json!({"acme": {"corpid": "ww1", "secret": ["PLANTED-SECRET-7f3a"]}}),
        json!({"acme": {"corpid": "ww1", "secret": {"env": ["PLANTED-SECRET-7f3a"]}}}),
        json!({"PLANTED-KEY-91c2": 1}),
    ];
    let path = emulator.dir.path().join("corps.json");
    for (n, corps) in corps_files.iter().enumerate() {
        std::fs::write(&path, serde_json::to_vec_pretty(corps).unwrap()).unwrap();
        for command in ["worker", "serve"] {
            let refused = refused_at_start(
                &emulator,
                &[command],
                &[("WECOM_CORPS_FILE", path.to_str().unwrap())],
            );
            let case = format!("corps file {n}, {command}");
            assert_refused_naming(&refused, path.to_str().unwrap(), &case);
            assert_nothing_planted_in(&refused.output, &case);
        }
    }
}

#[test]
fn a_broker_url_that_does_not_parse_is_refused_without_its_password() {
    let emulator = Emulator::default_corp();
    for url in [
        "amqp://guest:PLANTED-PASSWORD-5d0e@127.0.0.1:notaport/%2f",
        "amqp://guest:PLANTED-PASSWORD-5d0e@127.0.0.1:1/%2f,https://x:PLANTED-PASSWORD-5d0e@y",
    ] {
        for args in [
            &["worker"][..],
            &["dlq", "list", "--kind", "fetch-chatdata"][..],
        ] {
            let refused = refused_at_start(&emulator, args, &[("WECOM_AMQP_URL", url)]);
            let case = format!("{args:?} with {url}");
            assert_eq!(refused.code, Some(2), "{case}: {}", refused.output);
            assert_nothing_planted_in(&refused.output, &case);
        }
    }
}

#[test]
fn a_job_with_secrets_of_the_wrong_type_is_answered_400_without_quoting_them() {
    let emulator = Emulator::default_corp();
    let gateway = Gateway::start(&emulator, &[], &[]);
    let key = "-----BEGIN PRIVATE KEY-----\nPLANTED-KEY-91c2\n-----END PRIVATE KEY-----";
    let bodies = [
        json!({"corpid": "ww1", "secret": {"value": "PLANTED-SECRET-7f3a"}}),
        json!({"corpid": "ww1", "secret": ["PLANTED-SECRET-7f3a"]}),
        json!({"corpid": "ww1", "secret": "s", "private_keys": key}),
        json!({"corpid": "ww1", "secret": "s", "private_keys": [{"publickey_ver": 1, "private_key": [key]}]}),
        json!({"corpid": "ww1", "secret": "s", "private_keys": [{"publickey_ver": "PLANTED-KEY-91c2", "private_key": key}]}),
        json!({"corpid": "ww1", "secret": "s", "paswd": {"p": "PLANTED-PASSWORD-5d0e"}}),
        json!({"corpid": "ww1", "secret": "s", "proxy": ["http://u:PLANTED-PASSWORD-5d0e@proxy:3128"]}),
    ];
    for (n, body) in bodies.iter().enumerate() {
        for path in ["/v1/chatdata", "/wecom/finance/chatdata"] {
            let answer = gateway.request(
                "POST",
                path,
                &[("Content-Type", "application/json")],
                body.to_string().as_bytes(),
            );
            let case = format!("body {n} to {path}");
            assert!(
                (400..500).contains(&answer.status),
                "{case}: {}",
                answer.status
            );
            assert_nothing_planted_in(&String::from_utf8_lossy(&answer.body), &case);
        }
    }
    assert_nothing_planted_in(&gateway.log_text(), "the gateway's log");
}

/// Every line of `log` parsed as a JSON object; panics naming the first that is not.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| match serde_json::from_str::<Value>(line) {
            Ok(value) if value.is_object() => value,
            _ => panic!("not a JSON object on stderr: {line:?}\nin:\n{log}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn in_json_mode_every_stderr_line_is_a_json_object_the_sdks_prints_included() {
    let (vhost, emulator) = (Vhost::new(), Emulator::default_corp());
    let worker = Worker::start_with_env(
        &vhost,
        &emulator,
        &[],
        &[
            ("WECOM_LOG_FORMAT", "json"),
            ("WECOM_MAX_ATTEMPTS", "3"),
            ("WECOM_RETRY_DELAYS", "1"),
        ],
    );
    let client = Client::connect(&vhost).await;
    // A wrong secret: the SDK prints a line of its own (as the real library does on a token
    // failure) at each attempt; the job is retried twice and fails.
    let job = common::inline_job(
        json!({"job_id": "wrong-secret", "secret": "not-the-secret", "limit": 5}),
    );
    client.submit("fetch-chatdata", &job).await;
    let failed = client
        .take("chatdata-results", 1, Duration::from_secs(60))
        .await;
    assert_eq!(failed[0].body["status"], "failed", "{:?}", failed[0].body);
    // Read once the worker has exited: a line being written is not a line yet.
    let log_path = worker.log.clone();
    worker.terminate();
    let log = std::fs::read_to_string(log_path).unwrap();
    let lines = json_lines(&log);
    let sdk_print = lines.iter().any(|line| {
        line["target"] == "wecom_archive::stray_output"
            && line["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("get access token failed"))
    });
    assert!(
        sdk_print,
        "the SDK's own print is not among the events:\n{log}"
    );
    // The second 10001 in a row is a warning that says what to check.
    let warned = lines.iter().any(|line| {
        let fields = &line["fields"];
        line["level"] == "WARN"
            && fields["message"]
                .as_str()
                .is_some_and(|m| m.contains("failed again"))
            && fields["code"] == 10001
            && fields["reason"]
                .as_str()
                .is_some_and(|r| r.contains("check the secret"))
    });
    assert!(warned, "no warning with the reason:\n{log}");

    // A fatal error, and a command line clap refuses, are JSON objects too.
    for (args, env) in [
        (
            &["worker"][..],
            &[("WECOM_SDK_LIB", "/nowhere/libWeWorkFinanceSdk_C.so")][..],
        ),
        (&["worker", "--prefetch", "0"][..], &[][..]),
    ] {
        let mut env = env.to_vec();
        env.push(("WECOM_LOG_FORMAT", "json"));
        let refused = refused_at_start(&emulator, args, &env);
        assert_eq!(refused.code, Some(2), "{}", refused.output);
        let lines = json_lines(&refused.output);
        assert_eq!(
            lines.last().unwrap()["level"],
            "ERROR",
            "{}",
            refused.output
        );
    }
}

#[test]
fn the_demo_runs_from_any_directory() {
    let (vhost, emulator) = (Vhost::new(), Emulator::default_corp());
    let elsewhere = tempfile::tempdir().unwrap();
    // The debug build's binary finds the emulator beside it and the keys in its checkout.
    let output = Command::new(common::cli())
        .args(["demo", "--amqp-url", &vhost.url()])
        .current_dir(elsewhere.path())
        .envs(emulator.env())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("demo OK"), "{text}");
}
