//! SDK handles, pooled per (corpid, secret).
//!
//! A handle fetches its own access token, so handles are kept and reused rather than made per
//! job (many handles mean many token calls against a rate limit); a handle has no lock, so each
//! is used by one thread at a time, which the pool guarantees by lending it out. The pool's size
//! is the limit on concurrent SDK calls per corp. A handle that saw a transient error is not
//! returned to the pool: the next job gets a fresh one with a fresh token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use deadpool::managed::{self, Metrics, Object, Pool, RecycleResult};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::corps::Corp;
use crate::sdk::{FinanceSdk, SdkError, SdkHandle};

/// Makes handles for one corp.
pub struct HandleMaker {
    sdk: Arc<FinanceSdk>,
    corpid: String,
    secret: SecretString,
}

impl managed::Manager for HandleMaker {
    type Type = SdkHandle;
    type Error = SdkError;

    async fn create(&self) -> Result<SdkHandle, SdkError> {
        // NewSdk + Init only store the strings: cheap enough for an async thread.
        self.sdk.open_handle(&self.corpid, &self.secret)
    }

    async fn recycle(&self, _: &mut SdkHandle, _: &Metrics) -> RecycleResult<SdkError> {
        Ok(())
    }
}

/// A handle lent by the pool; dropping it returns it.
pub type PooledHandle = Object<HandleMaker>;

/// One pool per corp, created on first use.
pub struct SdkPools {
    sdk: Arc<FinanceSdk>,
    per_corp: usize,
    // Keyed by corpid and a digest of the secret: the map never holds a secret in its keys.
    pools: Mutex<HashMap<(String, String), Pool<HandleMaker>>>,
}

impl SdkPools {
    pub fn new(sdk: Arc<FinanceSdk>, per_corp: usize) -> Self {
        Self {
            sdk,
            per_corp: per_corp.max(1),
            pools: Mutex::new(HashMap::new()),
        }
    }

    pub fn sdk(&self) -> &Arc<FinanceSdk> {
        &self.sdk
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
        pools
            .entry((corp.corpid.clone(), digest))
            .or_insert_with(|| {
                let maker = HandleMaker {
                    sdk: Arc::clone(&self.sdk),
                    corpid: corp.corpid.clone(),
                    secret: corp.secret.clone(),
                };
                Pool::builder(maker)
                    .max_size(self.per_corp)
                    .build()
                    .expect("a pool without timeouts needs no runtime")
            })
            .clone()
    }
}

/// Drops a handle instead of returning it to its pool.
pub fn discard(handle: PooledHandle) {
    drop(Object::take(handle));
}
