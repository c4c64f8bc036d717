//! The HTTP side of the harness: `wecom-archive serve` as a separate process on a port of its
//! own choosing, against an emulator, and (through the broker) a vhost.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::http::Answer;
use super::Emulator;

pub struct Gateway {
    pub child: Child,
    pub log: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Gateway {
    /// Starts the gateway with `args` (jobs in process unless they say `--via-broker`), the
    /// worker's media folder of `emulator`, and waits until it listens.
    pub fn start(emulator: &Emulator, args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = emulator
            .dir
            .path()
            .join(format!("gateway-{}.log", uuid::Uuid::new_v4()));
        let child = Command::new(super::cli())
            .arg("serve")
            .arg("--lib")
            .arg(super::emulator_lib())
            .args(["--listen", "127.0.0.1:0"])
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
            .expect("the gateway starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        let url = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let address = text
                .lines()
                .find_map(|line| line.split("gateway listening on ").nth(1));
            if let Some(address) = address {
                break address.trim().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "the gateway never listened:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Self { child, log, url }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    /// One HTTP/1.1 request to the gateway ([`super::http::request`]).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        super::http::request(
            self.url.trim_start_matches("http://"),
            method,
            path,
            headers,
            body,
        )
    }
}
