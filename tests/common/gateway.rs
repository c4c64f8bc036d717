//! The HTTP side of the harness: `wecom-archive serve` as a separate process on a port of its
//! own choosing, against an emulator, and (through the broker) a vhost.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("{err}: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

impl Gateway {
    /// One HTTP/1.1 request on a connection of its own, written by hand so that a test can send
    /// what a well-behaved client library would not.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        use std::io::{Read, Write};
        let address = self.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        // A server may answer (413) before it read the whole body, and close.
        let _ = stream.write_all(body);
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an HTTP answer has a head");
        let head = String::from_utf8(raw[..split].to_vec()).unwrap();
        let mut lines = head.lines();
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let mut body = raw[split + 4..].to_vec();
        if headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v == "chunked")
        {
            body = dechunk(&body);
        }
        Answer {
            status,
            headers,
            body,
        }
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).unwrap(), 16).unwrap();
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&raw[line_end + 2..line_end + 2 + size]);
        raw = &raw[line_end + 2 + size + 2..];
    }
}
