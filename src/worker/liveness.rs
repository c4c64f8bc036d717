//! Whether a broker session still works, beyond "the connection says it is connected": a node
//! that froze keeps its TCP connections open and says nothing, and a consumer can stop
//! receiving while its queue fills. Every health tick the worker asks the broker for the depth
//! of the job queues it consumes, over the consuming channel: no answer within
//! [`PROBE_TIMEOUT`] ends the session, and so do messages waiting there while this worker has
//! free slots and has received nothing for [`QUIET_WITH_BACKLOG`].

use std::time::{Duration, Instant};

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::Channel;

use crate::broker::topology;
use crate::job::JobKind;

/// How long the broker may take to answer the probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a consumer with free slots may receive nothing while its queues hold jobs.
pub const QUIET_WITH_BACKLOG: Duration = Duration::from_secs(15);

/// Asks the broker how many jobs wait in the queues the session consumes (`kinds`: a queue
/// whose consume is still asked for is not yet expected to deliver); `Err` when the session
/// should end.
pub async fn probe(
    channel: &Channel,
    kinds: &[JobKind],
    last_delivery: Instant,
    slots_free: bool,
) -> anyhow::Result<()> {
    let mut waiting = 0;
    for &kind in kinds {
        let declared = channel.queue_declare(
            topology::job_queue(kind).into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        );
        let queue = tokio::time::timeout(PROBE_TIMEOUT, declared)
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "the broker did not answer within {PROBE_TIMEOUT:?}: its node may be frozen"
                )
            })??;
        waiting += queue.message_count();
    }
    if waiting > 0 && slots_free && last_delivery.elapsed() > QUIET_WITH_BACKLOG {
        anyhow::bail!(
            "{waiting} jobs wait, slots are free, and nothing was delivered for {:?}: the \
             consumer is stuck",
            last_delivery.elapsed()
        );
    }
    Ok(())
}
