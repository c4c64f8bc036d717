//! Benchmark of the SDK layer (not a test: it prints figures and asserts nothing about time).
//!
//! - decrypt: messages per second on one core (RSA, DecryptData, JSON) and the RSA step alone,
//!   each as a ratio to `openssl speed rsa2048` private operations per second on one core,
//!   measured in the same run. Target: RSA >= 0.9x.
//! - media: peak RSS of a process streaming a 1 GiB emulated file to disk (target <= 64 MiB), and
//!   its rate against the disk's write-plus-MD5 rate measured in the same run (target >= 0.8).
//!
//! `cargo bench --bench sdk` runs the full form; `BENCH_QUICK=1` a short one (CI keeps it
//! working). Figures go to stdout, one `key=value` line per workload.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use secrecy::SecretString;
use wecom_archive::decrypt::decrypt_message;
use wecom_archive::media::{download, ChunkRetry, MediaKey, PartialFile};
use wecom_archive::sdk::{EncryptedMessage, FinanceSdk, NetOptions};

#[path = "../tests/common/mod.rs"]
mod common;

use common::{CORPID, SECRET};

mod support;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--media-child") {
        media_child(args[pos + 1].parse().unwrap(), Path::new(&args[pos + 2]));
        return;
    }
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let openssl = support::openssl_rsa2048_private_ops();
    println!("reference openssl_speed_rsa2048_private_ops_per_s={openssl:.0}");
    decrypt_bench(openssl, if quick { 300 } else { 3000 });
    media_bench(if quick { 64 << 20 } else { 1 << 30 });
}

fn emulator() -> Arc<FinanceSdk> {
    FinanceSdk::load(&common::emulator_lib()).unwrap()
}

fn messages(sdk: &Arc<FinanceSdk>, count: usize) -> Vec<EncryptedMessage> {
    let mut handle = sdk
        .open_handle(CORPID, &SecretString::from(SECRET))
        .unwrap();
    let mut all = Vec::with_capacity(count);
    while all.len() < count {
        let seq = all.last().map_or(0, |m: &EncryptedMessage| m.seq);
        let page = handle
            .get_chat_data(seq, 1000, &NetOptions::default())
            .unwrap();
        assert!(
            !page.is_empty(),
            "the emulator's default corp holds fewer than {count} messages"
        );
        all.extend(page);
    }
    all.truncate(count);
    all
}

fn decrypt_bench(openssl: f64, count: usize) {
    let sdk = emulator();
    let keys = common::default_keys();
    let messages = messages(&sdk, count);
    let ciphertexts: Vec<(u32, Vec<u8>)> = messages
        .iter()
        .map(|m| {
            let ct = base64::engine::general_purpose::STANDARD
                .decode(&m.encrypt_random_key)
                .unwrap();
            (m.publickey_ver, ct)
        })
        .collect();

    // Warm up (CPU feature detection, first-touch allocations), then time on one core.
    for (version, ciphertext) in ciphertexts.iter().take(50) {
        keys.decrypt(*version, ciphertext).unwrap();
    }
    let start = Instant::now();
    for (version, ciphertext) in &ciphertexts {
        keys.decrypt(*version, ciphertext).unwrap();
    }
    let rsa_rate = count as f64 / start.elapsed().as_secs_f64();

    let start = Instant::now();
    for message in &messages {
        decrypt_message(&sdk, &keys, message).unwrap();
    }
    let message_rate = count as f64 / start.elapsed().as_secs_f64();
    println!(
        "workload=decrypt messages={count} rsa_ops_per_s_per_core={rsa_rate:.0} rsa_ratio_to_openssl={:.2} \
         messages_per_s_per_core={message_rate:.0} message_ratio_to_openssl={:.2} (target rsa_ratio >= 0.90)",
        rsa_rate / openssl,
        message_rate / openssl,
    );
}

fn media_bench(size: u64) {
    let dir = tempfile::tempdir_in(common::target_dir()).unwrap();
    let out = dir.path().join("media.bin");
    let start = Instant::now();
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--media-child", &size.to_string()])
        .arg(&out)
        .output()
        .unwrap();
    let elapsed = start.elapsed();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let peak_kib: u64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap();
    let rate = size as f64 / elapsed.as_secs_f64();
    let reference = support::disk_write_md5_rate(dir.path(), size);
    println!(
        "workload=media file_bytes={size} seconds={:.2} mb_per_s={:.0} disk_write_md5_mb_per_s={:.0} \
         ratio_to_disk={:.2} peak_rss_mib={:.1} (targets ratio >= 0.80, peak <= 64)",
        elapsed.as_secs_f64(),
        rate / 1e6,
        reference / 1e6,
        rate / reference,
        support::mib(peak_kib),
    );
}

/// In a fresh process: download `size` bytes from the emulator to `out`, then print the
/// process's peak resident set (VmHWM, KiB).
fn media_child(size: u64, out: &Path) {
    let sdk = emulator();
    let mut handle = sdk
        .open_handle(CORPID, &SecretString::from(SECRET))
        .unwrap();
    let id = emulator::media_file_id(size, 1, 1);
    let net = NetOptions::default();
    let partial =
        PartialFile::open(out.to_owned(), MediaKey::new(&id, None).fingerprint()).unwrap();
    let retry = ChunkRetry {
        attempts: 1,
        first_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };
    let report = download(
        |index| handle.get_media_chunk(&id, index, &net),
        partial,
        None,
        &retry,
        &tokio_util::sync::CancellationToken::new(),
    )
    .unwrap();
    assert_eq!(report.size, size);
    println!("{}", support::memory_kib(std::process::id(), "VmHWM:"));
}
