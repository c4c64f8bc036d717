//! Building the results a job publishes: a chat page, a media file, a failure. All three go
//! through `JobMeta::output`, so they carry the same envelope, built the same way.

use serde::Serialize;

use super::contract::{ChatPage, Envelope, Failure, JobKind, MediaFile, ResultMessage};
use super::core::JobMeta;
use super::error::JobError;
use super::sink::Output;

impl JobMeta {
    /// The result `body` of a job of `kind`, under `result_id` (the job id, or the job id with a
    /// suffix such as `:page-3`).
    fn output<B: Serialize>(
        &self,
        kind: JobKind,
        status: &'static str,
        suffix: Option<&str>,
        corpid: Option<String>,
        body: B,
    ) -> Output {
        let result_id = self
            .job_id
            .as_ref()
            .map(|id| format!("{id}{}", suffix.unwrap_or_default()));
        let message = ResultMessage {
            status,
            kind: kind.result_type(),
            envelope: Envelope {
                job_id: self.job_id.clone(),
                correlation_id: self.correlation_id.clone(),
                result_id: result_id.clone(),
                corpid,
                attempts: self.attempt,
            },
            body,
        };
        Output {
            kind,
            result_id,
            body: serde_json::to_vec(&message).expect("a result serializes"),
        }
    }

    /// Page `page.page` of a chat job.
    pub fn page_output(&self, corpid: &str, page: ChatPage) -> Output {
        let suffix = format!(":page-{}", page.page);
        self.output(
            JobKind::FetchChatdata,
            "ok",
            Some(&suffix),
            Some(corpid.to_owned()),
            page,
        )
    }

    /// The file of a media job.
    pub fn media_output(&self, corpid: &str, file: MediaFile) -> Output {
        self.output(
            JobKind::FetchMedia,
            "ok",
            None,
            Some(corpid.to_owned()),
            file,
        )
    }

    /// The failure of a job of `kind`, under its own result id (`<job_id>:failed`): a job
    /// replayed after a failure may still succeed, and a consumer dropping duplicates must not
    /// drop that success. `None` when the job has no id to report it under.
    pub fn failure_output(&self, kind: JobKind, error: &JobError) -> Option<Output> {
        self.job_id.as_ref()?;
        let failure = Failure {
            error: error.info(),
        };
        Some(self.output(kind, "failed", Some(":failed"), None, failure))
    }
}
