//! The archive sealed once, at load, for corps configured with `sealed_at_load`.
//!
//! The real server stores its archive sealed: `GetChatData` reads stored entries. The emulator
//! by default generates and seals each entry when asked (a public-key RSA operation and the
//! message's layout, about 0.1 ms of CPU per message), so a catch-up through it pays the
//! server's sealing on the caller's own cores. A corp sealed at load pays that when the
//! emulator loads (in each process that loads it), and a benchmark can then measure the caller
//! apart from it. The entries are the same bytes either way. Used by [`crate::corp`] and
//! [`crate::chat`].

use std::collections::HashMap;

use crate::chat::Entry;

/// Entries by seq: every message of the archive, for benchmarks (it holds the archive in
/// memory, about 1 KiB per message).
#[derive(Debug)]
pub(crate) struct SealedStore {
    entries: HashMap<u64, Entry>,
}

impl SealedStore {
    pub(crate) fn new(entries: impl Iterator<Item = Entry>) -> Self {
        Self {
            entries: entries.map(|entry| (entry.seq, entry)).collect(),
        }
    }

    /// The stored entry of `seq`, if the archive holds it.
    pub(crate) fn get(&self, seq: u64) -> Option<&Entry> {
        self.entries.get(&seq)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}
