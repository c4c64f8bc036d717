//! One of our binaries run as a service for a test (`worker`, `serve`): against the test's
//! emulator, with short retries, its stderr in a log file the test reads. [`super::broker`]'s
//! `Worker` and [`super::gateway`]'s `Gateway` start theirs here.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Emulator;

/// Starts `wecom-archive <subcommand> --lib <emulator> <args>`; `env` comes last, so it
/// overrides the defaults (short retries, the emulator's media folder, debug logs).
pub fn spawn(
    subcommand: &str,
    emulator: &Emulator,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Child, PathBuf) {
    let log = emulator
        .dir
        .path()
        .join(format!("{subcommand}-{}.log", uuid::Uuid::new_v4()));
    let child = Command::new(super::cli())
        .arg(subcommand)
        .arg("--lib")
        .arg(super::emulator_lib())
        .args(args)
        .env("WECOM_RETRY_DELAYS", "1,2")
        .env("WECOM_MAX_ATTEMPTS", "3")
        .env("WECOM_MEDIA_DIR", emulator.dir.path().join("media"))
        .env("RUST_LOG", "wecom_archive=debug")
        .envs(emulator.env())
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap_or_else(|err| panic!("`{subcommand}` does not start: {err}"));
    (child, log)
}

pub fn log_text(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Waits until the log holds `needle`.
pub fn wait_for_log(log: &Path, needle: &str, timeout: Duration) {
    address_in_log(log, needle, timeout);
}

/// Waits until a line of the log holds `prefix`; returns what follows it on that line (an
/// address the service logged when it started listening, say).
pub fn address_in_log(log: &Path, prefix: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = log_text(log);
        if let Some(rest) = text.lines().find_map(|line| line.split(prefix).nth(1)) {
            return rest.trim().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "{} never logged {prefix:?}:\n{text}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
