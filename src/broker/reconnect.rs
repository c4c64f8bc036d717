//! The one loop that keeps a broker session up, for every door that holds one: the worker's
//! (consume and publish) and the HTTP gateway's (publish, and a reply queue) ask [`Reconnect`]
//! after each session whether to start another, and when.
//!
//! A session that served for [`STEADY`] is followed by a new one at once: its node failed, and
//! another node (the failed one is tried last, see [`super::Broker::demote_last_node`]) can take
//! over now. After sessions that failed to start or ended soon, the pause follows
//! [`RECONNECT_BACKOFF`], so a broker that keeps failing is not hammered.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::backoff::{Backoff, Pauses};
use crate::telemetry::Metrics;

/// The pause before connecting again after a session that did not get steady.
pub const RECONNECT_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(500), Duration::from_secs(30));

/// How long a session must have served to count as steady: then the next one starts at once.
pub const STEADY: Duration = Duration::from_secs(10);

/// Since when the running session serves (the worker consumes, the gateway's reply queue is
/// read); the session says so through [`SessionUp::serving`].
#[derive(Debug, Default)]
pub struct SessionUp(Option<Instant>);

impl SessionUp {
    /// The session serves from now on.
    pub fn serving(&mut self) {
        self.0 = Some(Instant::now());
    }

    fn served_for(&self) -> Option<Duration> {
        self.0.map(|since| since.elapsed())
    }
}

/// What a door's session loop asks after each session: whether to start another, and when.
///
/// ```no_run
/// # async fn session(up: &mut wecom_archive::broker::reconnect::SessionUp) -> anyhow::Result<()> { Ok(()) }
/// # async fn door(metrics: &wecom_archive::telemetry::Metrics, shutdown: &tokio_util::sync::CancellationToken) {
/// use wecom_archive::broker::reconnect::{Reconnect, SessionUp};
///
/// let mut reconnect = Reconnect::new("gateway");
/// loop {
///     let mut up = SessionUp::default();
///     let ended = session(&mut up).await;
///     if !reconnect.again(ended, &up, metrics, shutdown).await {
///         break;
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Reconnect {
    door: &'static str,
    pauses: Pauses,
}

impl Reconnect {
    /// The loop of `door` (named in the log lines).
    pub fn new(door: &'static str) -> Self {
        Self {
            door,
            pauses: RECONNECT_BACKOFF.pauses(),
        }
    }

    /// After a session `ended`: `false` when the door stops (the session ended with `Ok`, or
    /// `shutdown` fired); else `true` once the pause before the next session is over.
    pub async fn again(
        &mut self,
        ended: anyhow::Result<()>,
        up: &SessionUp,
        metrics: &Metrics,
        shutdown: &CancellationToken,
    ) -> bool {
        metrics.set_broker_connected(false);
        let door = self.door;
        let err = match ended {
            Ok(()) => return false,
            Err(err) if shutdown.is_cancelled() => {
                tracing::info!(door, error = %format!("{err:#}"), "stopped");
                return false;
            }
            Err(err) => err,
        };
        metrics.broker_reconnecting();
        let pause = pause_after(&mut self.pauses, up.served_for());
        tracing::warn!(door, error = %format!("{err:#}"), "broker session ended; reconnecting in {pause:?}");
        tokio::select! {
            _ = tokio::time::sleep(pause) => true,
            _ = shutdown.cancelled() => false,
        }
    }
}

/// The pause after a session that served for `served_for` (`None`: it never served).
fn pause_after(pauses: &mut Pauses, served_for: Option<Duration>) -> Duration {
    if served_for.is_some_and(|served| served >= STEADY) {
        pauses.reset();
        return Duration::ZERO;
    }
    pauses.next_pause()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_session_is_followed_at_once_and_failing_ones_back_off() {
        let mut pauses = RECONNECT_BACKOFF.pauses();
        let secs = |s: u64| Some(Duration::from_secs(s));
        assert_eq!(pause_after(&mut pauses, secs(60)), Duration::ZERO);
        let got: Vec<Duration> = [None, secs(1), None, None, None, None, None, None]
            .into_iter()
            .map(|served| pause_after(&mut pauses, served))
            .collect();
        let expected = [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000];
        assert_eq!(got, expected.map(Duration::from_millis));
        // Steady again: at once, and the backoff starts over.
        assert_eq!(pause_after(&mut pauses, secs(10)), Duration::ZERO);
        assert_eq!(pause_after(&mut pauses, None), RECONNECT_BACKOFF.first);
    }
}
