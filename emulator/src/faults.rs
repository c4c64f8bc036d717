//! Fault injection: which calls of an operation fail, per the corp's [`OpFaults`]. Called by
//! [`crate::sdk`] and [`crate::decrypt`] once a call has passed its parameter checks.
//!
//! Calls are counted per corp and operation within the process. Call `n` takes `script[n]`, and
//! after the script a draw from SHA-256(corp seed, operation, n): the outcome depends on nothing
//! else, so the same config and the same call order give the same faults.

use std::sync::atomic::{AtomicU64, Ordering};
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
}

/// One corp's call counters.
#[derive(Debug, Default)]
pub(crate) struct FaultCounters {
    calls: [AtomicU64; 3],
}

impl FaultCounters {
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
        if plan.latency_ms > 0 {
            std::thread::sleep(Duration::from_millis(plan.latency_ms));
        }
        if sdkfileid.is_some_and(|id| plan.abort_on_sdkfileid.iter().any(|a| a == id)) {
            return Some(Fault::Abort);
        }
        let n = self.calls[op.index()].fetch_add(1, Ordering::Relaxed);
        decide(plan, seed, op, n).map(Fault::Code)
    }
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
    let word = |at: usize| u64::from_le_bytes(key[at..at + 8].try_into().expect("8 bytes"));
    // 53 random bits make an exact f64 in [0, 1).
    let draw = (word(0) >> 11) as f64 / (1u64 << 53) as f64;
    (draw < plan.probability).then(|| plan.codes[(word(8) % plan.codes.len() as u64) as usize])
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
}
