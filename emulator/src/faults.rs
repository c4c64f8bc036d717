//! Fault injection: which calls of an operation fail, per the corp's [`OpFaults`]. Called by
//! [`crate::sdk`] and [`crate::decrypt`] once a call has passed its parameter checks.
//!
//! Calls are counted per corp and operation: within the process, or, when
//! `WECOM_EMULATOR_COUNTERS` names a file, across every process that names the same file (a
//! worker and its SDK hosts are many clients of one server, and a script of faults is the
//! server's). Call `n` takes `script[n]`, and after the script a draw from SHA-256(corp seed,
//! operation, n): the outcome depends on nothing else, so the same config and the same call
//! order give the same faults.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::{Faults, OpFaults};
use crate::seeding;

/// An operation with faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultOp {
    /// `GetChatData`.
    Chat,
    /// `GetMediaData`.
    Media,
    /// `DecryptData`.
    Decrypt,
}

impl FaultOp {
    fn index(self) -> usize {
        self as usize
    }

    fn label(self) -> &'static str {
        match self {
            FaultOp::Chat => "get_chat_data",
            FaultOp::Media => "get_media_data",
            FaultOp::Decrypt => "decrypt_data",
        }
    }

    fn plan(self, faults: &Faults) -> &OpFaults {
        match self {
            FaultOp::Chat => &faults.get_chat_data,
            FaultOp::Media => &faults.get_media_data,
            FaultOp::Decrypt => &faults.decrypt_data,
        }
    }
}

/// What a fault does to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Return this code (for `GetChatData`, a code that is not the SDK's is a body errcode).
    Code(i64),
    /// Abort the process.
    Abort,
    /// Touch invalid memory (SIGSEGV).
    Segfault,
}

/// The env naming a file of call counters shared across processes.
pub const COUNTERS_ENV: &str = "WECOM_EMULATOR_COUNTERS";

/// Call counters kept in a file, one 8-byte slot per corp and operation, each update under an
/// exclusive lock of the file (across processes) taken under a mutex (across this process's
/// threads: a file lock is held by the open file, so threads sharing it would not exclude each
/// other).
#[derive(Debug)]
pub(crate) struct SharedCounters {
    file: Mutex<File>,
}

impl SharedCounters {
    pub(crate) fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        Ok(Self {
            file: Mutex::new(file),
        })
    }

    /// The count of slot `slot` before this call, counting this call.
    fn next(&self, slot: usize) -> std::io::Result<u64> {
        let offset = slot as u64 * 8;
        let file = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        file.lock()?;
        let mut bytes = [0u8; 8];
        // A slot past the end of the file has not been counted yet.
        let read = file.read_at(&mut bytes, offset)?;
        let n = if read == 8 {
            u64::from_le_bytes(bytes)
        } else {
            0
        };
        file.write_at(&(n + 1).to_le_bytes(), offset)?;
        file.unlock()?;
        Ok(n)
    }
}

/// One corp's call counters.
#[derive(Debug, Default)]
pub(crate) struct FaultCounters {
    calls: [AtomicU64; 3],
    /// The shared file and this corp's first slot in it.
    shared: Option<(Arc<SharedCounters>, usize)>,
}

impl FaultCounters {
    /// Counters in `shared` (the corp's slots start at `corp_index` x 3), or in this process.
    pub(crate) fn new(shared: Option<Arc<SharedCounters>>, corp_index: usize) -> Self {
        Self {
            calls: Default::default(),
            shared: shared.map(|file| (file, corp_index * 3)),
        }
    }

    /// Counts a call of `op` and says whether it fails, after sleeping the configured latency.
    /// `sdkfileid` is the file a `GetMediaData` call asks for.
    pub(crate) fn next(
        &self,
        faults: &Faults,
        seed: u64,
        op: FaultOp,
        sdkfileid: Option<&str>,
    ) -> Option<Fault> {
        let plan = op.plan(faults);
        let crash = if sdkfileid.is_some_and(|id| plan.abort_on_sdkfileid.iter().any(|a| a == id)) {
            Some(Fault::Abort)
        } else if sdkfileid.is_some_and(|id| plan.segfault_on_sdkfileid.iter().any(|a| a == id)) {
            Some(Fault::Segfault)
        } else {
            None
        };
        // A crashing call is not counted: the faults of the calls after it stay where they were.
        let counted = crash.is_none()
            && (!plan.script.is_empty() || plan.probability > 0.0 || plan.jitter_ms > 0);
        let n = counted.then(|| self.count(op));
        let jitter = n.map_or(0, |n| jitter_ms(plan, seed, op, n));
        if plan.latency_ms + jitter > 0 {
            std::thread::sleep(Duration::from_millis(plan.latency_ms + jitter));
        }
        if crash.is_some() {
            return crash;
        }
        decide(plan, seed, op, n?).map(Fault::Code)
    }

    /// The number of this call of `op` (from 0), counted in the shared file when there is one.
    fn count(&self, op: FaultOp) -> u64 {
        match &self.shared {
            Some((file, first)) => file.next(first + op.index()).unwrap_or_else(|e| {
                eprintln!("wecom emulator: the counters file failed: {e}; stopping");
                std::process::abort()
            }),
            None => self.calls[op.index()].fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// The extra latency of call `n` of `op`: uniform in `0..=jitter_ms`.
fn jitter_ms(plan: &OpFaults, seed: u64, op: FaultOp, n: u64) -> u64 {
    if plan.jitter_ms == 0 {
        return 0;
    }
    let mut rng = seeding::rng("jitter", seed, &[op.label().as_bytes(), &n.to_le_bytes()]);
    seeding::below(&mut rng, plan.jitter_ms + 1)
}

/// The fault of call `n` of `op`: its scripted code, or a seeded draw after the script.
fn decide(plan: &OpFaults, seed: u64, op: FaultOp, n: u64) -> Option<i64> {
    if let Some(&code) = usize::try_from(n).ok().and_then(|i| plan.script.get(i)) {
        return (code != 0).then_some(code);
    }
    if plan.probability <= 0.0 || plan.codes.is_empty() {
        return None;
    }
    let key = seeding::key("fault", seed, &[op.label().as_bytes(), &n.to_le_bytes()]);
    let pick = u64::from_le_bytes(key[8..16].try_into().expect("8 bytes"));
    (seeding::fraction(&key) < plan.probability)
        .then(|| plan.codes[(pick % plan.codes.len() as u64) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(plan: OpFaults) -> Faults {
        Faults {
            get_media_data: plan,
            ..Faults::default()
        }
    }

    fn run(
        counters: &FaultCounters,
        faults: &Faults,
        seed: u64,
        calls: usize,
    ) -> Vec<Option<Fault>> {
        (0..calls)
            .map(|_| counters.next(faults, seed, FaultOp::Media, Some("id")))
            .collect()
    }

    #[test]
    fn counters_in_a_file_are_shared_by_whoever_opens_it() {
        let dir = std::env::temp_dir().join(format!("emu-counters-{}", std::process::id()));
        let f = faults(OpFaults {
            script: vec![10001, 10002, 0, 10003],
            ..OpFaults::default()
        });
        let shared = || Some(Arc::new(SharedCounters::open(&dir).unwrap()));
        let (one, two) = (
            FaultCounters::new(shared(), 1),
            FaultCounters::new(shared(), 1),
        );
        let got: Vec<_> = (0..4)
            .map(|n| {
                let counters = if n % 2 == 0 { &one } else { &two };
                counters.next(&f, 1, FaultOp::Media, Some("id"))
            })
            .collect();
        assert_eq!(
            got,
            [
                Some(Fault::Code(10001)),
                Some(Fault::Code(10002)),
                None,
                Some(Fault::Code(10003))
            ]
        );
        let other_corp = FaultCounters::new(shared(), 0);
        assert_eq!(
            other_corp.next(&f, 1, FaultOp::Media, Some("id")),
            Some(Fault::Code(10001))
        );
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn the_script_decides_the_first_calls() {
        let f = faults(OpFaults {
            script: vec![10001, 0, 10002],
            ..OpFaults::default()
        });
        let counters = FaultCounters::default();
        let got = run(&counters, &f, 1, 5);
        assert_eq!(
            got,
            [
                Some(Fault::Code(10001)),
                None,
                Some(Fault::Code(10002)),
                None,
                None
            ]
        );
        // Other operations count separately.
        assert_eq!(counters.next(&f, 1, FaultOp::Chat, None), None);
    }

    #[test]
    fn draws_are_deterministic_and_near_the_probability() {
        let f = faults(OpFaults {
            script: vec![0; 3],
            probability: 0.3,
            codes: vec![10001, 10003],
            ..OpFaults::default()
        });
        let a = run(&FaultCounters::default(), &f, 9, 2000);
        let b = run(&FaultCounters::default(), &f, 9, 2000);
        let c = run(&FaultCounters::default(), &f, 10, 2000);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a[..3].iter().all(Option::is_none), "scripted zeros win");
        let failed = a.iter().flatten().count();
        assert!((500..700).contains(&failed), "{failed} of 2000 at p = 0.3");
        for code in [10001, 10003] {
            assert!(a.contains(&Some(Fault::Code(code))));
        }
    }

    #[test]
    fn certain_and_impossible_faults() {
        let always = faults(OpFaults {
            probability: 1.0,
            codes: vec![10002],
            ..OpFaults::default()
        });
        assert!(run(&FaultCounters::default(), &always, 1, 100)
            .iter()
            .all(|f| *f == Some(Fault::Code(10002))));
        assert!(run(&FaultCounters::default(), &Faults::default(), 1, 100)
            .iter()
            .all(Option::is_none));
    }

    #[test]
    fn abort_on_sdkfileid_matches_exactly() {
        let f = faults(OpFaults {
            abort_on_sdkfileid: vec!["bad".into()],
            ..OpFaults::default()
        });
        let counters = FaultCounters::default();
        assert_eq!(
            counters.next(&f, 1, FaultOp::Media, Some("bad")),
            Some(Fault::Abort)
        );
        assert_eq!(counters.next(&f, 1, FaultOp::Media, Some("bad2")), None);
    }

    #[test]
    fn jitter_is_seeded_by_call_and_stays_within_its_bound() {
        let plan = OpFaults {
            jitter_ms: 40,
            ..OpFaults::default()
        };
        let draws: Vec<u64> = (0..200)
            .map(|n| jitter_ms(&plan, 7, FaultOp::Chat, n))
            .collect();
        assert!(draws.iter().all(|&ms| ms <= 40));
        let distinct: std::collections::BTreeSet<_> = draws.iter().collect();
        assert!(distinct.len() > 20, "jitter varies: {distinct:?}");
        assert_eq!(jitter_ms(&plan, 7, FaultOp::Chat, 3), draws[3]);
        assert_ne!(
            (0..20)
                .map(|n| jitter_ms(&plan, 8, FaultOp::Chat, n))
                .collect::<Vec<_>>(),
            draws[..20]
        );
        assert_eq!(jitter_ms(&OpFaults::default(), 7, FaultOp::Chat, 3), 0);
    }
}
