//! The call log: one JSON line per SDK call, appended to a file, so that tests can count calls
//! made by any process that loaded the emulator (the archive worker, a crashed child, ...).
//!
//! The file comes from env `WECOM_EMULATOR_CALL_LOG` or else the config's `call_log`. Each line
//! is written with a single `write` on a file opened with `O_APPEND`, so lines of concurrent
//! threads and processes never interleave. A line is a [`CallRecord`]; fields that do not apply
//! are left out, and secrets are never written. A call that crashes the process is logged, with
//! a negative `rc` and `crash`, before it does.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The env naming the call log file; it wins over the config's `call_log`.
pub const CALL_LOG_ENV: &str = "WECOM_EMULATOR_CALL_LOG";

/// The SDK function a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    /// `NewSdk`.
    NewSdk,
    /// `Init`.
    Init,
    /// Not a function: a handle fetched its access token, at its first network call after
    /// `Init` (each handle does, which is why handles should be reused).
    GetToken,
    /// `GetChatData`.
    GetChatData,
    /// `GetMediaData`.
    GetMediaData,
    /// `DecryptData`.
    DecryptData,
    /// `DestroySdk`.
    DestroySdk,
}

impl Op {
    /// The name written in the log, e.g. `"GetMediaData"`.
    pub fn name(self) -> &'static str {
        match self {
            Op::NewSdk => "NewSdk",
            Op::Init => "Init",
            Op::GetToken => "GetToken",
            Op::GetChatData => "GetChatData",
            Op::GetMediaData => "GetMediaData",
            Op::DecryptData => "DecryptData",
            Op::DestroySdk => "DestroySdk",
        }
    }
}

/// So that tests can write `record.op == "GetMediaData"`.
impl PartialEq<&str> for Op {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

/// One line of the call log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The function called.
    pub op: Op,
    /// The calling process.
    pub pid: u32,
    /// The return code (0 for the void `DestroySdk`); when the call killed the process, minus
    /// the signal number (-6 SIGABRT, -11 SIGSEGV), as Python's subprocess reports signals.
    pub rc: i64,
    /// `SIGABRT` or `SIGSEGV` when the call crashed the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash: Option<String>,
    /// Whether `rc` (or an abort) was injected by the config's faults.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fault: bool,
    /// The handle, numbered from 1 in `NewSdk` order within the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<u64>,
    /// The corp: as given to `Init`, or as recognised by `DecryptData` from the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corpid: Option<String>,
    /// `GetChatData`: the seq asked after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// `GetChatData`: the limit asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// `GetChatData`: how many messages the body carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// `GetMediaData`: the sdkfileid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdkfileid: Option<String>,
    /// `GetMediaData`: the index given (`""` for the first chunk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// `GetMediaData`: bytes served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_len: Option<u64>,
    /// `GetMediaData`: whether that was the last chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_finish: Option<bool>,
}

impl CallRecord {
    /// A record of `op` by this process, with everything else empty.
    pub fn new(op: Op) -> CallRecord {
        CallRecord {
            op,
            pid: std::process::id(),
            rc: 0,
            crash: None,
            fault: false,
            handle: None,
            corpid: None,
            seq: None,
            limit: None,
            count: None,
            sdkfileid: None,
            index: None,
            data_len: None,
            is_finish: None,
        }
    }
}

/// The open call log file.
#[derive(Debug)]
pub(crate) struct CallLog {
    file: File,
}

impl CallLog {
    pub(crate) fn open(path: &Path) -> io::Result<CallLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(CallLog { file })
    }

    /// Appends one record as one line in one write. A failed write is reported on stderr and
    /// otherwise ignored: the log must not change what the SDK call returns.
    pub(crate) fn append(&self, record: &CallRecord) {
        let mut line = serde_json::to_vec(record).expect("a record always serialises");
        line.push(b'\n');
        if let Err(e) = (&self.file).write_all(&line) {
            eprintln!("wecom emulator: cannot append to the call log: {e}");
        }
    }
}

/// Reads a call log for a test. A missing file is an empty log (no call made one yet); a last
/// line without its newline is a write in progress and is skipped.
///
/// # Panics
///
/// If the file cannot be read or a complete line is not a record: a test should stop there.
pub fn read_call_log(path: impl AsRef<Path>) -> Vec<CallRecord> {
    let path = path.as_ref();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("cannot read call log {}: {e}", path.display()),
    };
    let complete = &text[..text.rfind('\n').map_or(0, |at| at + 1)];
    complete
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("bad call log line in {}: {e}: {line}", path.display()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_skip_what_does_not_apply() {
        let dir = std::env::temp_dir().join(format!("wecom-emu-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("calls.jsonl");
        let _ = std::fs::remove_file(&path);
        assert!(read_call_log(&path).is_empty());

        let log = CallLog::open(&path).unwrap();
        let mut media = CallRecord::new(Op::GetMediaData);
        media.rc = 0;
        media.sdkfileid = Some("id".into());
        media.index = Some(String::new());
        media.is_finish = Some(true);
        let mut crash = CallRecord::new(Op::DecryptData);
        crash.rc = -6;
        crash.crash = Some("SIGABRT".into());
        log.append(&media);
        log.append(&crash);
        // A write in progress from another process.
        (&log.file).write_all(b"{\"op\":\"Ini").unwrap();

        assert_eq!(read_call_log(&path), vec![media, crash]);
        let text = std::fs::read_to_string(&path).unwrap();
        let first = text.lines().next().unwrap();
        assert_eq!(Op::GetMediaData, "GetMediaData");
        assert!(
            first.starts_with(r#"{"op":"GetMediaData","pid":"#),
            "{first}"
        );
        assert!(
            !first.contains("seq") && !first.contains("fault"),
            "{first}"
        );
        assert!(text
            .lines()
            .nth(1)
            .unwrap()
            .contains(r#""rc":-6,"crash":"SIGABRT""#));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
