//! The registry of live SDK handles, which makes handle misuse crash the way it does with the
//! real library instead of corrupting memory.
//!
//! `NewSdk` gives out the address of a registered [`Sdk`]; every call looks the address up and
//! works on a shared reference counted copy, so the FFI never dereferences a handle pointer.
//! `DestroySdk` on an address that is not live (destroyed already, or never made) is the
//! real library's double free: the caller crashes it with SIGSEGV. Destroyed handles stay
//! allocated (a few dozen bytes each) so that their address is never handed out again and a
//! second `DestroySdk` is always caught.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::sdk::Sdk;

static LIVE: Mutex<BTreeMap<usize, Arc<Sdk>>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn live() -> MutexGuard<'static, BTreeMap<usize, Arc<Sdk>>> {
    LIVE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Makes a handle: its address (the C pointer) and itself.
pub(crate) fn create() -> (usize, Arc<Sdk>) {
    let sdk = Arc::new(Sdk::new(NEXT_ID.fetch_add(1, Ordering::Relaxed)));
    let address = Arc::as_ptr(&sdk) as usize;
    live().insert(address, Arc::clone(&sdk));
    (address, sdk)
}

/// The live handle at `address`.
pub(crate) fn get(address: usize) -> Option<Arc<Sdk>> {
    live().get(&address).cloned()
}

/// Unregisters the handle at `address`, keeping its memory so the address stays unique.
pub(crate) fn destroy(address: usize) -> Option<u64> {
    let sdk = live().remove(&address)?;
    let id = sdk.id;
    std::mem::forget(sdk);
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_live_until_destroyed_once() {
        let (a, sdk) = create();
        let (b, _) = create();
        assert_ne!(a, b);
        assert_eq!(get(a).unwrap().id, sdk.id);
        assert_eq!(destroy(a), Some(sdk.id));
        assert!(get(a).is_none());
        assert_eq!(destroy(a), None, "a second destroy is caught");
        assert_eq!(destroy(12345), None);
        assert!(get(b).is_some());
    }
}
