//! Whether a door is ready for work, for `/readyz`: the worker is while it is connected to the
//! broker and consuming (not while it connects, reconnects or drains); the HTTP gateway is while
//! it can run jobs (in process: always; through the broker: while connected).

use std::sync::atomic::{AtomicBool, Ordering};

/// The door's readiness flag, shared between the door that sets it and `/readyz`; not ready
/// until first set.
#[derive(Debug, Default)]
pub struct Readiness {
    ready: AtomicBool,
}

impl Readiness {
    /// Marks the door ready or not, as its broker session or drain changes.
    pub fn set(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// What `/readyz` reports now.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}
