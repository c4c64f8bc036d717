//! Memory shared with an SDK host for media chunks ([`crate::sdk_host`]): a few slots in one
//! `memfd` that the worker and the host both map. The host copies a chunk from the library's
//! buffer into the slot the worker lent it for that call, and the worker hashes and writes the
//! chunk from there, so a 512 KiB chunk is copied once, as with the library in process, instead
//! of crossing the socket twice.
//!
//! The rule that makes the sharing sound: a slot is the host's to write only while it answers
//! the request that lent it ([`Lent`]), and the worker's to read only from that answer until
//! the last [`SlotBytes`] of it is dropped; only then is it lent again. The host is this
//! binary, and writes a slot nowhere but in [`HostSlots::write`]. The library it loads may
//! write at random into the host's memory, so the host maps the slots read-only and makes the
//! lent slot writable only for the copy: a stray write elsewhere, or at another time, kills
//! the host, not the worker's chunk. The worker maps them read-only, and seals the memfd's
//! size, so that nothing can shrink it under the worker's reads (a `SIGBUS`). A [`HostSlots`]
//! and [`SlotBytes`] of the same memory belong in different processes; the unit test below,
//! which has both, keeps to the lending rule by hand.
//!
//! When no slot is free, or the chunk is larger than a slot, the chunk goes through the socket
//! as before.

use std::ffi::c_void;
use std::io;
use std::ops::Deref;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};

/// The library's media chunk size; a larger chunk goes through the socket.
pub const SLOT_BYTES: usize = 512 * 1024;

/// Slots per host: a download holds a few chunks at once (one per stage of its pipeline, and
/// one in each queue between them).
pub const SLOTS: usize = 6;

const MAPPING_BYTES: usize = SLOT_BYTES * SLOTS;

/// One `MAP_SHARED` mapping of the slots' memfd, unmapped on drop.
struct Mapping {
    start: NonNull<u8>,
}

// SAFETY: the mapping is plain memory owned by this struct; which thread maps, reads or
// unmaps it does not matter. Every read goes through a `SlotBytes` of a slot no one writes
// (module docs); every write through `HostSlots::write`, in the host, to a slot the worker
// lent and does not read.
unsafe impl Send for Mapping {}
// SAFETY: as for Send; `&Mapping` gives no access on its own.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the memfd read-only.
    fn new(fd: impl AsFd) -> io::Result<Self> {
        let size = rustix::fs::fstat(&fd)?.st_size;
        if usize::try_from(size).ok() != Some(MAPPING_BYTES) {
            return Err(io::Error::other("the shared slots have the wrong size"));
        }
        // SAFETY: a new mapping chosen by the kernel (null hint), of the memfd's whole length
        // (checked above), overlapping nothing of ours.
        let start = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                MAPPING_BYTES,
                ProtFlags::READ,
                MapFlags::SHARED,
                fd,
                0,
            )?
        };
        let start = NonNull::new(start.cast::<u8>()).ok_or(io::ErrorKind::InvalidData)?;
        Ok(Self { start })
    }

    /// The start of slot `index` (< [`SLOTS`]).
    fn slot(&self, index: usize) -> *mut u8 {
        assert!(index < SLOTS);
        // SAFETY: within the mapping, which is SLOTS slots long.
        unsafe { self.start.as_ptr().add(index * SLOT_BYTES) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once; no `SlotBytes` outlives it (each
        // holds an `Arc` of it).
        let _ = unsafe { rustix::mm::munmap(self.start.as_ptr().cast::<c_void>(), MAPPING_BYTES) };
    }
}

/// The worker's side: the mapping, and which slots are free to lend.
pub struct SharedSlots {
    mapping: Arc<Mapping>,
    free: Arc<Mutex<Vec<usize>>>,
}

impl SharedSlots {
    /// New slots, and the memfd to hand the host (it maps the same memory).
    pub fn create() -> io::Result<(Self, OwnedFd)> {
        let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
        let fd = rustix::fs::memfd_create("wecom-media-slots", flags)?;
        rustix::fs::ftruncate(&fd, MAPPING_BYTES as u64)?;
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
        let slots = Self {
            mapping: Arc::new(Mapping::new(&fd)?),
            free: Arc::new(Mutex::new((0..SLOTS).rev().collect())),
        };
        Ok((slots, fd))
    }

    /// A free slot for the host to write the next chunk into, if one is.
    pub fn lend(&self) -> Option<Lent> {
        let index = self.free.lock().expect("not poisoned").pop()?;
        Some(Lent {
            slot: Slot {
                mapping: Arc::clone(&self.mapping),
                free: Arc::clone(&self.free),
                index,
            },
        })
    }
}

/// A slot lent to the host for one call; back among the free ones when dropped unused.
pub struct Lent {
    slot: Slot,
}

impl Lent {
    /// The slot's number (below [`SLOTS`]), which the request tells the host to write into.
    pub fn index(&self) -> u32 {
        self.slot.index as u32
    }

    /// The first `len` bytes of the slot, which the host says it wrote; `None` for a length
    /// larger than a slot.
    pub fn filled(self, len: usize) -> Option<SlotBytes> {
        (len <= SLOT_BYTES).then_some(SlotBytes {
            slot: self.slot,
            len,
        })
    }
}

/// A slot index held by the worker; it returns to the free list on drop.
struct Slot {
    mapping: Arc<Mapping>,
    free: Arc<Mutex<Vec<usize>>>,
    index: usize,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.free.lock().expect("not poisoned").push(self.index);
    }
}

/// A chunk the host wrote into a slot: the worker reads it there until this is dropped.
pub struct SlotBytes {
    slot: Slot,
    len: usize,
}

impl Deref for SlotBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `len` <= SLOT_BYTES bytes of the slot, within the mapping this holds alive;
        // the slot is not lent again, so not written, until this is dropped (module docs).
        unsafe { std::slice::from_raw_parts(self.slot.mapping.slot(self.slot.index), self.len) }
    }
}

/// The host's side: the worker's slots, mapped from the memfd it sent.
pub struct HostSlots {
    mapping: Mapping,
}

impl HostSlots {
    /// Maps the memfd the worker sent (read-only until a write); fails if it is not the size
    /// of [`SLOTS`] slots.
    pub fn map(fd: OwnedFd) -> io::Result<Self> {
        Ok(Self {
            mapping: Mapping::new(fd)?,
        })
    }

    /// Copies `data` into slot `index`, if there is such a slot, `data` fits in it, and the
    /// slot can be made writable for the copy.
    pub fn write(&mut self, index: u32, data: &[u8]) -> bool {
        let index = index as usize;
        if index >= SLOTS || data.len() > SLOT_BYTES {
            return false;
        }
        let slot = self.mapping.slot(index);
        let protect = |flags| {
            // SAFETY: the slot is whole pages (SLOT_BYTES is a multiple of the page size, and
            // the mapping starts on a page) inside our mapping; no reference into it exists
            // in this process.
            unsafe { rustix::mm::mprotect(slot.cast::<c_void>(), SLOT_BYTES, flags) }
        };
        if protect(MprotectFlags::READ | MprotectFlags::WRITE).is_err() {
            return false;
        }
        // SAFETY: `data.len()` bytes fit in the slot, now writable; the worker lent this slot
        // for the call being answered and reads it only once answered (module docs), and
        // `data` (the library's buffer) is not in the mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), slot, data.len());
        }
        // Read-only again: nothing but this copy writes a slot.
        protect(MprotectFlags::READ).is_ok()
    }
}

/// A media chunk's bytes: its own, or in a slot shared with the SDK host that fetched it.
pub enum ChunkBytes {
    /// Copied out: from the library in process, or sent through the host's socket.
    Owned(Vec<u8>),
    /// Still in the shared slot the host wrote; the slot is freed when this is dropped.
    Shared(SlotBytes),
}

impl Deref for ChunkBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Self::Owned(bytes) => bytes,
            Self::Shared(bytes) => bytes,
        }
    }
}

impl AsRef<[u8]> for ChunkBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl From<Vec<u8>> for ChunkBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self::Owned(bytes)
    }
}

impl std::fmt::Debug for ChunkBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_host_writes_in_a_lent_slot_the_worker_reads_and_the_slot_comes_back() {
        let (slots, fd) = SharedSlots::create().unwrap();
        let mut host = HostSlots::map(fd).unwrap();
        let lent: Vec<Lent> = (0..SLOTS).map(|_| slots.lend().unwrap()).collect();
        assert!(slots.lend().is_none(), "every slot is lent");
        let mut held = Vec::new();
        for (n, lent) in lent.into_iter().enumerate() {
            let chunk = vec![n as u8; SLOT_BYTES - n];
            assert!(host.write(lent.index(), &chunk));
            let bytes = lent.filled(chunk.len()).unwrap();
            assert_eq!(&*bytes, &chunk[..]);
            held.push(bytes);
        }
        assert!(slots.lend().is_none(), "a slot read from is not lent again");
        drop(held.pop());
        let again = slots.lend().expect("a dropped chunk frees its slot");
        drop(again);
        assert!(
            slots.lend().is_some(),
            "a slot lent and not used comes back"
        );
        assert!(!host.write(SLOTS as u32, b"x"), "no such slot");
        assert!(
            !host.write(0, &vec![0; SLOT_BYTES + 1]),
            "too large for a slot"
        );
    }
}
