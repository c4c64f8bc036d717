//! Inline private keys, parsed once and kept by a digest of their PEMs.
//!
//! A job with inline credentials carries its corp's private keys in every message. Parsing and
//! checking an RSA key costs more than decrypting a small page with it, so the parsed key sets
//! are kept in a bounded LRU cache, keyed by a SHA-256 of the versions and PEMs (the cache
//! holds no PEM and no key in its keys). A key set falls out when `capacity` newer ones were
//! used after it; its keys are wiped on drop like every [`KeyRing`].

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use super::contract::InlineKey;
use crate::keys::{KeyError, KeyRing};

/// Parsed inline key sets, by a digest of their versions and PEMs; least recently used out.
pub struct KeyCache {
    /// `None` when the capacity is 0: every job parses its keys.
    sets: Option<Mutex<LruCache<[u8; 32], Arc<KeyRing>>>>,
}

impl KeyCache {
    /// A cache of up to `capacity` key sets; 0 keeps none, and every job parses its keys.
    pub fn new(capacity: usize) -> Self {
        Self {
            sets: NonZeroUsize::new(capacity).map(|cap| Mutex::new(LruCache::new(cap))),
        }
    }

    /// The key ring of `keys`, parsed now or earlier.
    pub fn get_or_parse(&self, keys: &[InlineKey]) -> Result<Arc<KeyRing>, KeyError> {
        let Some(sets) = &self.sets else {
            return parse(keys).map(Arc::new);
        };
        let digest = digest(keys);
        if let Some(ring) = sets.lock().expect("never poisoned").get(&digest) {
            return Ok(Arc::clone(ring));
        }
        // Parsed outside the lock: other jobs' lookups do not wait for RSA key checks.
        let ring = Arc::new(parse(keys)?);
        sets.lock()
            .expect("never poisoned")
            .put(digest, Arc::clone(&ring));
        Ok(ring)
    }

    /// How many key sets are cached.
    pub fn len(&self) -> usize {
        self.sets
            .as_ref()
            .map_or(0, |sets| sets.lock().expect("never poisoned").len())
    }

    /// Whether no key set is cached (always, at capacity 0).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn parse(keys: &[InlineKey]) -> Result<KeyRing, KeyError> {
    let mut ring = KeyRing::new();
    for key in keys {
        ring.insert_pem(key.publickey_ver, &key.private_key)?;
    }
    Ok(ring)
}

/// A digest of the versions and PEMs, each length-prefixed so that no two lists share one.
fn digest(keys: &[InlineKey]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for key in keys {
        let pem = key.private_key.expose_secret().as_bytes();
        hasher.update(key.publickey_ver.to_be_bytes());
        hasher.update((pem.len() as u64).to_be_bytes());
        hasher.update(pem);
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn key(version: u32, file: &str) -> InlineKey {
        let path = format!("{}/tests/fixtures/keys/{file}", env!("CARGO_MANIFEST_DIR"));
        InlineKey {
            publickey_ver: version,
            private_key: SecretString::from(std::fs::read_to_string(path).unwrap()),
        }
    }

    #[test]
    fn the_same_keys_are_parsed_once_and_the_cache_stays_bounded() {
        let cache = KeyCache::new(2);
        let a = [key(1, "v1.pem")];
        let first = cache.get_or_parse(&a).unwrap();
        let again = cache.get_or_parse(&a).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "served from the cache");
        cache.get_or_parse(&[key(2, "v1.pem")]).unwrap();
        cache.get_or_parse(&[key(1, "v2.pem")]).unwrap();
        assert_eq!(cache.len(), 2);
        let evicted = cache.get_or_parse(&a).unwrap();
        assert!(!Arc::ptr_eq(&first, &evicted), "the oldest set fell out");
    }

    #[test]
    fn a_version_number_is_part_of_the_key() {
        let cache = KeyCache::new(4);
        let one = cache.get_or_parse(&[key(1, "v1.pem")]).unwrap();
        let two = cache.get_or_parse(&[key(2, "v1.pem")]).unwrap();
        assert!(!Arc::ptr_eq(&one, &two));
    }

    #[test]
    fn bad_keys_are_not_cached_and_capacity_zero_caches_nothing() {
        let cache = KeyCache::new(4);
        let bad = InlineKey {
            publickey_ver: 1,
            private_key: SecretString::from("not a key".to_owned()),
        };
        assert!(cache.get_or_parse(&[bad]).is_err());
        assert!(cache.is_empty());
        let off = KeyCache::new(0);
        off.get_or_parse(&[key(1, "v1.pem")]).unwrap();
        assert_eq!(off.len(), 0);
    }
}
