//! Jobs run by the job core in this process: the gateway is then the whole service, as the seed
//! service's one container was. The job's fate is [`crate::job::fate::decide`]'s, as on the
//! broker; a retry waits here, in the request, as long as the request may wait.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::problem::Problem;
use super::runner::HttpJob;
use crate::job::contract::ChatProgress;
use crate::job::fate::{decide, Fate};
use crate::job::sink::{Flow, Output, OutputSink, SinkError};
use crate::job::{parse, Core, JobMeta};

/// Runs each request's job on the job core of this process, retries included.
pub struct InProcess {
    /// The job core (SDK pools, keys, media store) the jobs run on.
    pub core: Arc<Core>,
    /// How long a request may wait for its job, retries included.
    pub patience: Duration,
}

/// Keeps the job's output: a gateway job (one page, one file) has one.
#[derive(Default)]
struct Kept(Option<Output>);

impl OutputSink for Kept {
    async fn emit(&mut self, output: Output, _: Option<ChatProgress>) -> Result<Flow, SinkError> {
        self.0 = Some(output);
        Ok(Flow::Continue)
    }
}

impl InProcess {
    /// Runs `job` until it succeeds or fails for good, retrying transient failures while the
    /// request's patience lasts: its result message, or its failure result. `Err` when it
    /// timed out or the gateway is stopping.
    pub async fn run(&self, job: &HttpJob, cancel: &CancellationToken) -> Result<Vec<u8>, Problem> {
        let deadline = Instant::now() + self.patience;
        let timed_out = || Problem::timed_out(self.patience.as_secs());
        let stopping = || Problem::unavailable("the gateway is stopping");
        // The run stops when the request ends however it ends (answered, timed out, or its
        // client gone): a download in its blocking thread sees the token, not the dropped future.
        let cancel = cancel.child_token();
        let _stop_when_done = cancel.clone().drop_guard();
        let metrics = self.core.metrics();
        let mut meta = JobMeta {
            job_id: Some(job.job_id.clone()),
            correlation_id: Some(job.correlation_id.clone()),
            ..JobMeta::default()
        };
        loop {
            meta.attempt += 1;
            // Validated when the request came in; parsed again per attempt, as a redelivery is.
            let parsed = parse(job.kind, &job.body).map_err(Problem::invalid)?;
            let mut kept = Kept::default();
            let started = std::time::Instant::now();
            let running = self.core.run(parsed, &meta, &mut kept, &cancel);
            let ended = tokio::time::timeout_at(deadline, running)
                .await
                .map_err(|_| timed_out())?;
            let fate = decide(ended, meta.attempt, self.core.policy(), rand::random());
            metrics.job_fate(job.kind, &fate, started.elapsed());
            let failed = match fate {
                Fate::Done => {
                    return kept
                        .0
                        .map(|output| output.body)
                        .ok_or_else(|| Problem::unreadable_result("the job produced none"))
                }
                Fate::Retry {
                    error,
                    delay,
                    progress,
                } => {
                    if Instant::now() + delay < deadline {
                        tracing::info!(job_id = %job.job_id, error = %error, ?delay, "retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = cancel.cancelled() => return Err(stopping()),
                        }
                        meta.progress = progress;
                        continue;
                    }
                    // No time for another attempt: the caller may try again later itself.
                    error
                }
                Fate::Fail { error } => error,
                Fate::Release { .. } => return Err(stopping()),
            };
            let failure = meta
                .failure_output(job.kind, &failed)
                .expect("a gateway job has an id");
            return Ok(failure.body);
        }
    }
}
