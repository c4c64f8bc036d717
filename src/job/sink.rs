//! Where a job's outputs go, as soon as each exists: a door hands the core a sink, the core
//! hands the sink each output (a chat page, a media result) with where the job goes on after
//! it, and waits until the sink has taken it before doing more work.
//!
//! So memory holds one page of a job whatever its number of pages, and a sink that cannot keep
//! up (a broker applying backpressure) slows the SDK work down instead of letting it pile up.
//! A sink may also take the rest of the job over ([`Flow::HandedOff`]): the AMQP worker
//! publishes a continuation of the job after each page, so that a crash costs one page.

use std::future::Future;

use super::contract::{ChatProgress, JobKind};

/// One result to deliver, serialized once.
#[derive(Debug)]
pub struct Output {
    /// The kind of job it comes from: which result queue it goes to, and its `type`.
    pub kind: JobKind,
    /// Its de-duplication key (the AMQP `message_id` of the result); `None` when the job had no
    /// id.
    pub result_id: Option<String>,
    /// The result message, JSON.
    pub body: Vec<u8>,
}

/// What the core does after the sink took an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on with the job.
    Continue,
    /// The sink saw to the rest of the job: stop here, successfully.
    HandedOff,
}

/// An output that was not delivered; the job is handed back undecided.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The door is stopping (a drain ran out of time, its broker session ended): the job is
    /// cancelled.
    #[error("the door is stopping")]
    Stopped,
    /// The output was refused or could not be delivered.
    #[error("the output was not delivered: {0}")]
    Refused(Box<dyn std::error::Error + Send + Sync>),
}

/// Takes a job's outputs, one at a time, for a door to deliver.
pub trait OutputSink: Send {
    /// The pages after which this sink takes a chat job over ([`Flow::HandedOff`]), if it does:
    /// the core fetches nothing for the pages after them.
    fn pages_before_handoff(&self) -> Option<u32> {
        None
    }

    /// Delivers `output`. `next` is where the job goes on after it: `None` when it is the job's
    /// last output. Returns once the output is safe (a broker confirmed it, say).
    fn emit(
        &mut self,
        output: Output,
        next: Option<ChatProgress>,
    ) -> impl Future<Output = Result<Flow, SinkError>> + Send;
}

/// Keeps every output in memory, and goes on to the end of every job: for tests of the core.
#[derive(Debug, Default)]
pub struct MemorySink {
    /// Every output emitted, in order, with where its job went on after it.
    pub outputs: Vec<(Output, Option<ChatProgress>)>,
}

impl OutputSink for MemorySink {
    async fn emit(
        &mut self,
        output: Output,
        next: Option<ChatProgress>,
    ) -> Result<Flow, SinkError> {
        self.outputs.push((output, next));
        Ok(Flow::Continue)
    }
}
