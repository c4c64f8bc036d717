//! The harness every integration test shares: where the built artefacts are, the fixture
//! keys, an emulator set up per test, and the real Finance SDK for conformance tests.
//!
//! Tests run under `cargo nextest`, one process per test, so a test may point the emulator
//! (which reads its configuration once per process) at its own configuration.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod broker;
pub mod cluster;
pub mod gateway;
pub mod http;
pub mod real_sdk;
pub mod schemas;
pub mod service;
pub mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use secrecy::SecretString;
use serde_json::{json, Value};
use wecom_archive::keys::KeyRing;
use wecom_archive::sdk::{FinanceSdk, SdkHandle};

/// The emulator's default corp.
pub const CORPID: &str = "ww-emulator";
pub const SECRET: &str = "emulator-secret";

/// A loopback port free a moment ago, for a server that cannot pick its own.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `target/<profile>`, where cargo left the emulator library and the binary.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    // target/<profile>/deps/<test binary>
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_owned()
}

/// The emulator library cargo built with this test binary. It is the copy in `deps/`: cargo
/// refreshes that one whenever it builds the emulator as a dependency, while the copy in
/// `target/<profile>/` is only refreshed by a build of the emulator package itself.
pub fn emulator_lib() -> PathBuf {
    let lib = target_dir().join("deps/libWeWorkFinanceSdk_C.so");
    assert!(lib.exists(), "{} is missing", lib.display());
    lib
}

/// The MD5 of the file the emulator serves for `sdkfileid` in a corp with `seed`.
pub fn expected_md5(seed: u64, sdkfileid: &str) -> String {
    use md5::{Digest, Md5};
    use std::io::Read;
    let mut content = emulator::media_content(seed, sdkfileid);
    let mut md5 = Md5::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = content.read(&mut buffer).unwrap();
        if n == 0 {
            return hex::encode(md5.finalize());
        }
        md5.update(&buffer[..n]);
    }
}

/// A shared library this process has loaded that is certainly not the Finance SDK.
pub fn some_other_library() -> PathBuf {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| path.contains("/libc.so"))
        .map(PathBuf::from)
        .expect("libc is mapped")
}

pub fn cli() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wecom-archive"))
}

pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).expect("fixture exists")
}

/// A job for the emulator's default corp with its credentials inline, plus the fields of `extra`.
pub fn inline_job(extra: Value) -> Value {
    let mut job = json!({
        "corpid": CORPID,
        "secret": SECRET,
        "private_keys": [
            {"publickey_ver": 1, "private_key": fixture("keys/v1.pem")},
            {"publickey_ver": 2, "private_key": fixture("keys/v2.pem")},
        ],
    });
    job.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    job
}

/// The private keys of the emulator's default corp, versions 1 and 2.
pub fn default_keys() -> KeyRing {
    let mut keys = KeyRing::new();
    for version in [1, 2] {
        let pem = fixture(&format!("keys/v{version}.pem"));
        keys.insert_pem(version, &SecretString::from(pem)).unwrap();
    }
    keys
}

/// One test's emulator: its configuration file and call log, in a temporary folder.
pub struct Emulator {
    pub dir: tempfile::TempDir,
    pub call_log: PathBuf,
    pub config_path: Option<PathBuf>,
}

impl Emulator {
    /// The built-in default corp, with a call log.
    pub fn default_corp() -> Self {
        Self::start(None)
    }

    /// The given configuration.
    pub fn with_config(config: &emulator::Config) -> Self {
        Self::start(Some(config))
    }

    fn start(config: Option<&emulator::Config>) -> Self {
        let emulator = Self::for_children(config);
        // One process per test (nextest): nothing else in this process reads the environment.
        for (key, value) in emulator.env() {
            std::env::set_var(key, value);
        }
        emulator
    }

    /// The given configuration (the default corp when `None`) for child processes only,
    /// started with [`Emulator::env`]; this process's environment is left alone. For the
    /// benchmarks, which make several emulators in one multi-threaded process.
    pub fn for_children(config: Option<&emulator::Config>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let call_log = dir.path().join("calls.jsonl");
        let config_path = config.map(|config| {
            let path = dir.path().join("emulator.json");
            std::fs::write(&path, serde_json::to_vec_pretty(config).unwrap()).unwrap();
            path
        });
        Self {
            dir,
            call_log,
            config_path,
        }
    }

    /// The environment a process needs to see this emulator. Its fault counters are shared
    /// by every process started with it (a worker and its SDK hosts), as a server's would be.
    pub fn env(&self) -> Vec<(&'static str, PathBuf)> {
        let mut env = vec![
            ("WECOM_EMULATOR_CALL_LOG", self.call_log.clone()),
            (emulator::COUNTERS_ENV, self.dir.path().join("counters")),
        ];
        if let Some(path) = &self.config_path {
            env.push(("WECOM_EMULATOR_CONFIG", path.clone()));
        }
        env
    }

    pub fn calls(&self) -> Vec<emulator::CallRecord> {
        emulator::read_call_log(&self.call_log)
    }

    pub fn calls_of(&self, op: &str) -> Vec<emulator::CallRecord> {
        self.calls()
            .into_iter()
            .filter(|call| call.op == op)
            .collect()
    }

    pub fn load(&self) -> Arc<FinanceSdk> {
        FinanceSdk::load(&emulator_lib()).unwrap()
    }

    pub fn handle(&self) -> (Arc<FinanceSdk>, SdkHandle) {
        let sdk = self.load();
        let handle = sdk
            .open_handle(CORPID, &SecretString::from(SECRET))
            .unwrap();
        (sdk, handle)
    }
}

/// A default-corp configuration with the fixture public keys, to adjust per test.
pub fn default_config() -> emulator::Config {
    let mut config = emulator::Config::default();
    if config.corps.is_empty() {
        config.corps.push(emulator::CorpConfig::default());
    }
    config
}
