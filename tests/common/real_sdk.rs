//! The real Finance SDK, for conformance tests: downloaded at run time from the PyPI wheel named
//! in `docs/SDK.md`, checked against its sha256, kept in the git-ignored
//! `.real-sdk/`. It is never committed, and only ever loaded inside a network namespace with
//! nothing but loopback (see [`run_in_netns`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

const WHEEL: &str = "pywecomarchive==0.1.0";
const MEMBER: &str = "pywecomarchive/lib/linux/x86_64/libWeWorkFinanceSdk_C.so";
pub const SHA256: &str = "79ced4de6b18d5e96a21cd06f325794dc8957f8925120538d56d4ce827d3dfd0";

/// The environment variable through which the outer test hands the library to the inner ones.
pub const ENV: &str = "WECOM_REAL_SDK";

fn sha256_of(path: &Path) -> Option<String> {
    std::fs::read(path)
        .ok()
        .map(|bytes| hex::encode(Sha256::digest(bytes)))
}

/// The verified library, downloaded once into `.real-sdk/`.
pub fn fetch() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(".real-sdk");
    let lib = dir.join("libWeWorkFinanceSdk_C.so");
    if sha256_of(&lib).as_deref() == Some(SHA256) {
        return lib;
    }
    let wheels = dir.join("wheel");
    let status = Command::new("python3")
        .args(["-m", "pip", "download", "--quiet", "--no-deps", WHEEL, "-d"])
        .arg(&wheels)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "pip download {WHEEL} failed");
    let extract = format!(
        "import glob, shutil, sys, zipfile\n\
         wheel = glob.glob(sys.argv[1] + '/pywecomarchive-0.1.0-*.whl')[0]\n\
         with zipfile.ZipFile(wheel) as z, z.open('{MEMBER}') as src, open(sys.argv[2], 'wb') as dst:\n    \
         shutil.copyfileobj(src, dst)\n"
    );
    let status = Command::new("python3")
        .args(["-c", &extract])
        .arg(&wheels)
        .arg(&lib)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "cannot extract {MEMBER}");
    let found = sha256_of(&lib);
    assert_eq!(
        found.as_deref(),
        Some(SHA256),
        "the real library's sha256 differs: refusing it"
    );
    lib
}

/// Runs this test binary's ignored tests whose names start with `prefix`, inside a new network
/// namespace where only loopback is up, with the real library in [`ENV`]. Returns their output
/// after asserting they passed.
pub fn run_in_netns(prefix: &str) -> String {
    let lib = fetch();
    let exe = std::env::current_exe().unwrap();
    let output = Command::new("unshare")
        .args(["-n", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
        .arg(&exe)
        .args(["--ignored", "--test-threads=1", "--nocapture", prefix])
        .env(ENV, &lib)
        .output()
        .expect("unshare runs (root is needed for a network namespace)");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "the tests inside the namespace failed:\n{text}"
    );
    assert!(
        !text.contains("running 0 tests"),
        "no test matched {prefix}:\n{text}"
    );
    text
}

/// Inside the namespace: the path of the verified library, after checking that loopback is
/// the only network this process can reach.
pub fn inner_lib() -> PathBuf {
    let lib = PathBuf::from(std::env::var_os(ENV).expect("run through run_in_netns"));
    let devices = std::fs::read_to_string("/proc/net/dev").unwrap();
    let interfaces: Vec<&str> = devices
        .lines()
        .skip(2)
        .filter_map(|line| line.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(
        interfaces,
        ["lo"],
        "the real library must run with loopback only"
    );
    assert_eq!(sha256_of(&lib).as_deref(), Some(SHA256));
    lib
}
