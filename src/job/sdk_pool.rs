//! SDK handles (in process, or in an SDK host), pooled per (corpid, secret).
//!
//! A handle fetches its own access token, so handles are kept and reused rather than made per
//! job (many handles mean many token calls against a rate limit); a handle has no lock, so each
//! is used by one thread at a time, which the pool guarantees by lending it out. The pool's size
//! is the limit on concurrent SDK calls per corp. A handle that saw a transient error is not
//! returned to the pool: the next job gets a fresh one with a fresh token.
//!
//! Pools do not live for ever: one whose corp has had no job for `idle` is closed by
//! [`SdkPools::close_idle`] (its handles destroyed, its copy of the secret dropped), so that
//! jobs with inline credentials of many corps, or a rotated secret, leave no handles behind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, Object, Pool, RecycleResult};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::corps::Corp;
use super::sdk_handle::{Backend, Handle};
use crate::sdk::SdkError;

/// Makes SDK handles for one corp.
pub struct HandleMaker {
    backend: Arc<Backend>,
    corpid: String,
    secret: SecretString,
}

impl managed::Manager for HandleMaker {
    type Type = Handle;
    type Error = SdkError;

    async fn create(&self) -> Result<Handle, SdkError> {
        let (backend, corpid, secret) = (
            Arc::clone(&self.backend),
            self.corpid.clone(),
            self.secret.clone(),
        );
        // Starting an SDK host blocks for a process start and a round trip.
        tokio::task::spawn_blocking(move || backend.open(&corpid, &secret))
            .await
            .expect("opening a handle does not panic")
    }

    async fn recycle(&self, handle: &mut Handle, _: &Metrics) -> RecycleResult<SdkError> {
        // A host that died while idle (killed, out of memory) is not lent again.
        if handle.is_alive() {
            Ok(())
        } else {
            Err(managed::RecycleError::message("the SDK host is gone"))
        }
    }
}

/// A handle lent by the pool; dropping it returns it.
pub type PooledHandle = Object<HandleMaker>;

/// One pool per corp, created on first use, closed after `idle` without use.
pub struct SdkPools {
    backend: Arc<Backend>,
    per_corp: usize,
    idle: Duration,
    // Keyed by corpid and a digest of the secret: the map never holds a secret in its keys.
    pools: Mutex<HashMap<(String, String), CorpPool>>,
}

struct CorpPool {
    pool: Pool<HandleMaker>,
    last_used: Instant,
}

impl SdkPools {
    /// No pools yet; each corp's will lend up to `per_corp` handles (at least 1) made by
    /// `backend`, and close after `idle` without use.
    pub fn new(backend: Backend, per_corp: usize, idle: Duration) -> Self {
        Self {
            backend: Arc::new(backend),
            per_corp: per_corp.max(1),
            idle,
            pools: Mutex::new(HashMap::new()),
        }
    }

    /// A handle for `corp`, waiting while `per_corp` of them are busy.
    pub async fn get(&self, corp: &Corp) -> Result<PooledHandle, SdkError> {
        let pool = self.pool_for(corp);
        pool.get().await.map_err(|err| match err {
            managed::PoolError::Backend(err) => err,
            other => unreachable!("the pool has no timeouts and is never closed: {other}"),
        })
    }

    fn pool_for(&self, corp: &Corp) -> Pool<HandleMaker> {
        let digest = hex::encode(Sha256::digest(corp.secret.expose_secret().as_bytes()));
        let mut pools = self.pools.lock().expect("the pool map is never poisoned");
        let entry = pools
            .entry((corp.corpid.clone(), digest))
            .or_insert_with(|| {
                let maker = HandleMaker {
                    backend: Arc::clone(&self.backend),
                    corpid: corp.corpid.clone(),
                    secret: corp.secret.clone(),
                };
                let pool = Pool::builder(maker)
                    .max_size(self.per_corp)
                    .build()
                    .expect("a pool without timeouts needs no runtime");
                CorpPool {
                    pool,
                    last_used: Instant::now(),
                }
            });
        entry.last_used = Instant::now();
        entry.pool.clone()
    }

    /// Closes the pools that had no handle out, and no job waiting for one, for `idle`. A pool in
    /// use counts as used now. A job still holding a pool it got before keeps it until it is done.
    pub fn close_idle(&self, now: Instant) {
        let mut closed = Vec::new();
        let mut pools = self.pools.lock().expect("the pool map is never poisoned");
        pools.retain(|(corpid, _), corp_pool| {
            let status = corp_pool.pool.status();
            if status.available < status.size || status.waiting > 0 {
                corp_pool.last_used = now;
                return true;
            }
            let keep = now.saturating_duration_since(corp_pool.last_used) < self.idle;
            if !keep {
                tracing::debug!(corpid, handles = status.size, "closing an idle SDK pool");
                closed.push(corp_pool.pool.clone());
            }
            keep
        });
        // Dropped outside the lock: ending an SDK host takes a moment.
        drop(pools);
        drop(closed);
    }

    /// How many corps have a pool now.
    pub fn open_pools(&self) -> usize {
        self.pools
            .lock()
            .expect("the pool map is never poisoned")
            .len()
    }
}

/// Drops a handle instead of returning it to its pool.
pub fn discard(handle: PooledHandle) {
    drop(Object::take(handle));
}
