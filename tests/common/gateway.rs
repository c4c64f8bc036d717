//! The HTTP side of the harness: `wecom-archive serve` as a separate process on a port of its
//! own choosing, against an emulator, and (through the broker) a vhost.

use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use super::http::Answer;
use super::{service, Emulator};

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
        let args: Vec<&str> = ["--listen", "127.0.0.1:0"]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        let (child, log) = service::spawn("serve", emulator, &args, env);
        let address =
            service::address_in_log(&log, "gateway listening on ", Duration::from_secs(20));
        Self {
            child,
            log,
            url: address,
        }
    }

    pub fn log_text(&self) -> String {
        service::log_text(&self.log)
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
