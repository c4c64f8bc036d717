//! Where the gateway's jobs run: [`InProcess`], the job core in this process, or [`ViaBroker`],
//! the workers through RabbitMQ. Either hands back the job's one result message exactly as the
//! worker publishes it (a page, a media file, or a failure), so the two answer the same.

use tokio_util::sync::CancellationToken;

use super::in_process::InProcess;
use super::problem::Problem;
use super::via_broker::ViaBroker;
use crate::job::JobKind;

/// A request's job: one page of chat, or one media file.
#[derive(Debug)]
pub struct HttpJob {
    /// The endpoint's job kind (chat or media).
    pub kind: JobKind,
    /// The job as JSON, validated.
    pub body: Vec<u8>,
    /// The id its results carry: the body's `job_id`, else one the gateway made.
    pub job_id: String,
    /// Made by the gateway for each request: its results carry it (as the broker's echo the
    /// job's), and through the broker it matches them to the request.
    pub correlation_id: String,
}

/// Where the gateway's jobs run, chosen at start (`--via-broker`).
pub enum Runner {
    /// On the job core of this process (the default).
    InProcess(InProcess),
    /// On the workers, published through RabbitMQ.
    ViaBroker(ViaBroker),
}

impl Runner {
    /// The job's result message: its output, or its failure. `Err` when the gateway could not
    /// see the job to an end (it is stopping, lost its broker, or stopped waiting).
    pub async fn run(&self, job: &HttpJob, cancel: &CancellationToken) -> Result<Vec<u8>, Problem> {
        match self {
            Self::InProcess(runner) => runner.run(job, cancel).await,
            Self::ViaBroker(runner) => runner.run(job, cancel).await,
        }
    }
}
