//! What the benchmarks share: the references each ratio is taken against, measured in the same
//! run on the same machine, and a process's memory as the kernel counts it.
#![allow(dead_code)] // each benchmark binary uses a different part

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use md5::{Digest, Md5};

/// `openssl speed rsa2048` on one core: private-key (sign) operations per second.
pub fn openssl_rsa2048_private_ops() -> f64 {
    openssl_speed_rsa2048(3).wait_for_rate()
}

/// `openssl speed rsa2048` run on every one of `cores` at once for `seconds`: private-key
/// operations per second, all cores together. What the cores can do while all of them work
/// (each does less than it does alone), as a worker decrypting on every core does.
pub fn openssl_rsa2048_private_ops_on_all(cores: usize, seconds: u32) -> f64 {
    let runs: Vec<OpensslSpeed> = (0..cores).map(|_| openssl_speed_rsa2048(seconds)).collect();
    runs.into_iter().map(OpensslSpeed::wait_for_rate).sum()
}

struct OpensslSpeed(std::process::Child);

fn openssl_speed_rsa2048(seconds: u32) -> OpensslSpeed {
    let child = Command::new("openssl")
        .args(["speed", "-seconds", &seconds.to_string(), "rsa2048"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl is installed");
    OpensslSpeed(child)
}

impl OpensslSpeed {
    fn wait_for_rate(self) -> f64 {
        let output = self.0.wait_with_output().expect("openssl runs");
        let text = String::from_utf8_lossy(&output.stdout);
        let line = text
            .lines()
            .find(|l| l.starts_with("rsa 2048 bits"))
            .unwrap_or_else(|| panic!("unexpected openssl output:\n{text}"));
        // rsa 2048 bits 0.000369s 0.000022s   2712.1  44798.0
        line.split_whitespace().nth(5).unwrap().parse().unwrap()
    }
}

/// Bytes per second at which this machine writes `size` bytes to a new file in `dir` while
/// hashing them with MD5, then fsyncs it: what a media download must do at the least, in the
/// same 512 KiB pieces.
pub fn disk_write_md5_rate(dir: &Path, size: u64) -> f64 {
    let path = dir.join("reference.bin");
    let chunk: Vec<u8> = (0..512 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let start = Instant::now();
    let mut file = std::fs::File::create(&path).unwrap();
    let mut md5 = Md5::new();
    let mut written = 0;
    while written < size {
        let n = chunk.len().min((size - written) as usize);
        md5.update(&chunk[..n]);
        file.write_all(&chunk[..n]).unwrap();
        written += n as u64;
    }
    file.sync_all().unwrap();
    std::hint::black_box(md5.finalize());
    let rate = size as f64 / start.elapsed().as_secs_f64();
    std::fs::remove_file(&path).unwrap();
    rate
}

/// A field of `/proc/<pid>/status` in KiB: `VmRSS` (now) or `VmHWM` (peak).
pub fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// [`memory_kib`] of `pid` plus that of each of its children (a worker's SDK hosts).
pub fn tree_memory_kib(pid: u32, field: &str) -> u64 {
    memory_kib(pid, field)
        + children(pid)
            .iter()
            .map(|&child| memory_kib(child, field))
            .sum::<u64>()
}

/// The processes `pid` started that are running now (a worker's SDK hosts).
pub fn children(pid: u32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|child| child.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// The CPU time (user plus system) a process has used, in seconds: its own, not its children's.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // The kernel's clock tick for these fields (USER_HZ) is 100 on Linux.
    ticks as f64 / 100.0
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
