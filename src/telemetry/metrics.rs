//! The service's Prometheus metrics, in one registry: what jobs did, what the SDK did for them,
//! and the state of the doors. Recording is a few atomic operations; the text is made only when
//! scraped ([`Metrics::encode`]).
//!
//! Every label takes values from a bounded set: job kinds, outcomes, SDK operations, error
//! codes, and corp aliases from the corp directory (never a corpid, a job id or anything else a
//! publisher chooses freely).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::job::fate::Fate;
use crate::job::JobKind;

/// How a job's attempt ended, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Every output delivered.
    Ok,
    /// Failed, to be tried again later.
    Retried,
    /// Failed for good: a failure result and a dead letter.
    Failed,
    /// Handed back unsettled (the door stopped, an output could not be delivered).
    Released,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Retried => "retried",
            Self::Failed => "failed",
            Self::Released => "released",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    kind: &'static str,
    outcome: &'static str,
    /// The error code; empty for `ok` and `released`.
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SdkCallLabels {
    op: &'static str,
    /// 0 for success, else the SDK's return code, the server's errcode or the project's code.
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CorpLabel {
    corp: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The process's metrics (names prefixed `wecom_archive_`), shared by every job and door.
/// Methods record one event or set one gauge.
pub struct Metrics {
    registry: Registry,
    jobs: Family<JobLabels, Counter>,
    job_duration: HistogramFamily<KindLabel>,
    job_queued: HistogramFamily<KindLabel>,
    jobs_in_flight: Gauge,
    job_slots: Gauge,
    sdk_calls: Family<SdkCallLabels, Counter>,
    sdk_call_duration: HistogramFamily<OpLabel>,
    sdk_pools_open: Gauge,
    messages_decrypted: Counter,
    message_errors: Family<CodeLabel, Counter>,
    media_bytes: Counter,
    media_chunks: Counter,
    media_resumes: Counter,
    broker_connected: Gauge,
    broker_reconnects: Counter,
    corp_last_seq: Family<CorpLabel, Gauge>,
    corp_newest_message: Family<CorpLabel, Gauge>,
}

fn job_seconds() -> Histogram {
    // 5 ms to about 11 minutes.
    Histogram::new(exponential_buckets(0.005, 2.0, 18))
}

fn call_seconds() -> Histogram {
    // 1 ms to about 2 minutes.
    Histogram::new(exponential_buckets(0.001, 2.0, 18))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric registered, at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("wecom_archive");
        let metrics = Self {
            jobs: Family::default(),
            job_duration: Family::new_with_constructor(job_seconds),
            job_queued: Family::new_with_constructor(job_seconds),
            jobs_in_flight: Gauge::default(),
            job_slots: Gauge::default(),
            sdk_calls: Family::default(),
            sdk_call_duration: Family::new_with_constructor(call_seconds),
            sdk_pools_open: Gauge::default(),
            messages_decrypted: Counter::default(),
            message_errors: Family::default(),
            media_bytes: Counter::default(),
            media_chunks: Counter::default(),
            media_resumes: Counter::default(),
            broker_connected: Gauge::default(),
            broker_reconnects: Counter::default(),
            corp_last_seq: Family::default(),
            corp_newest_message: Family::default(),
            registry: Registry::default(),
        };
        metrics.register_jobs_and_sdk_calls(&mut registry);
        metrics.register_media_broker_and_corps(&mut registry);
        Self {
            registry,
            ..metrics
        }
    }

    /// The job and SDK call series, under the registry's prefix.
    fn register_jobs_and_sdk_calls(&self, r: &mut Registry) {
        r.register(
            "jobs",
            "Job attempts by kind, how they ended (ok, retried, failed: failure result and dead letter, released) and error code",
            self.jobs.clone(),
        );
        r.register(
            "job_duration_seconds",
            "Time an attempt of a job ran, from its start to its fate",
            self.job_duration.clone(),
        );
        r.register(
            "job_queued_seconds",
            "Time from a job's AMQP timestamp (set by its publisher) to its start",
            self.job_queued.clone(),
        );
        r.register(
            "jobs_in_flight",
            "Jobs running now",
            self.jobs_in_flight.clone(),
        );
        r.register(
            "job_slots",
            "Jobs this process runs at once at most (WECOM_CONCURRENCY)",
            self.job_slots.clone(),
        );
        r.register(
            "sdk_calls",
            "GetChatData and GetMediaData calls by return code (0: success)",
            self.sdk_calls.clone(),
        );
        r.register(
            "sdk_call_duration_seconds",
            "Time a GetChatData or GetMediaData call took",
            self.sdk_call_duration.clone(),
        );
        r.register(
            "sdk_pools_open",
            "Corps with SDK handles open",
            self.sdk_pools_open.clone(),
        );
        r.register(
            "messages_decrypted",
            "Chat messages decrypted",
            self.messages_decrypted.clone(),
        );
        r.register(
            "message_errors",
            "Chat messages that could not be decrypted, by error code",
            self.message_errors.clone(),
        );
    }

    /// The media, broker and per-corp series, under the registry's prefix.
    fn register_media_broker_and_corps(&self, r: &mut Registry) {
        r.register(
            "media_bytes",
            "Media bytes fetched from the SDK",
            self.media_bytes.clone(),
        );
        r.register(
            "media_chunks",
            "Media chunks fetched from the SDK",
            self.media_chunks.clone(),
        );
        r.register(
            "media_resumes",
            "Media downloads that resumed an interrupted one",
            self.media_resumes.clone(),
        );
        r.register(
            "broker_connected",
            "1 while connected to the broker and consuming (or, for the HTTP gateway through the broker, connected)",
            self.broker_connected.clone(),
        );
        r.register(
            "broker_reconnects",
            "Broker sessions lost and started again",
            self.broker_reconnects.clone(),
        );
        r.register(
            "corp_last_seq",
            "The last seq of a page archived, by corp alias of the corp directory",
            self.corp_last_seq.clone(),
        );
        r.register(
            "corp_newest_message_timestamp_seconds",
            "The msgtime of the newest message archived, by corp alias of the corp directory",
            self.corp_newest_message.clone(),
        );
    }

    /// An attempt of a job of `kind` ended as `outcome`, with error `code` if it failed, after
    /// running for `ran`.
    fn job_ended(&self, kind: JobKind, outcome: Outcome, code: Option<i64>, ran: Duration) {
        let labels = JobLabels {
            kind: kind.name(),
            outcome: outcome.name(),
            code: code.map(|c| c.to_string()).unwrap_or_default(),
        };
        self.jobs.get_or_create(&labels).inc();
        self.job_duration
            .get_or_create(&KindLabel { kind: kind.name() })
            .observe(ran.as_secs_f64());
    }

    /// An attempt of a job of `kind` that ran for `ran` got its `fate`.
    pub fn job_fate(&self, kind: JobKind, fate: &Fate, ran: Duration) {
        let (outcome, code) = match fate {
            Fate::Done => (Outcome::Ok, None),
            Fate::Retry { error, .. } => (Outcome::Retried, Some(error.info().code)),
            Fate::Fail { error } => (Outcome::Failed, Some(error.info().code)),
            Fate::Release { .. } => (Outcome::Released, None),
        };
        self.job_ended(kind, outcome, code, ran);
    }

    /// A job of `kind` starts after waiting `queued` since it was published.
    pub fn job_queued(&self, kind: JobKind, queued: Duration) {
        self.job_queued
            .get_or_create(&KindLabel { kind: kind.name() })
            .observe(queued.as_secs_f64());
    }

    /// A job starts (`1`) or ends (`-1`).
    pub fn jobs_in_flight(&self, change: i64) {
        self.jobs_in_flight.inc_by(change);
    }

    /// How many jobs this process runs at once at most (`WECOM_CONCURRENCY`).
    pub fn set_job_slots(&self, slots: usize) {
        self.job_slots.set(slots as i64);
    }

    /// An SDK call `op` returned `code` (0: success) after `took`.
    pub fn sdk_call(&self, op: &'static str, code: i64, took: Duration) {
        self.sdk_calls
            .get_or_create(&SdkCallLabels {
                op,
                code: code.to_string(),
            })
            .inc();
        self.sdk_call_duration
            .get_or_create(&OpLabel { op })
            .observe(took.as_secs_f64());
    }

    /// How many corps have SDK handles open now.
    pub fn set_sdk_pools_open(&self, pools: usize) {
        self.sdk_pools_open.set(pools as i64);
    }

    /// A page decrypted: `decrypted` messages, and the codes of those that failed.
    pub fn page_decrypted(&self, decrypted: usize, error_codes: impl Iterator<Item = i64>) {
        self.messages_decrypted.inc_by(decrypted as u64);
        for code in error_codes {
            self.message_errors
                .get_or_create(&CodeLabel {
                    code: code.to_string(),
                })
                .inc();
        }
    }

    /// A media chunk of `bytes` fetched.
    pub fn media_chunk(&self, bytes: usize) {
        self.media_chunks.inc();
        self.media_bytes.inc_by(bytes as u64);
    }

    /// A media download resumed an interrupted one instead of starting over.
    pub fn media_resumed(&self) {
        self.media_resumes.inc();
    }

    /// Whether the door is connected to the broker (and, for the worker, consuming).
    pub fn set_broker_connected(&self, connected: bool) {
        self.broker_connected.set(i64::from(connected));
    }

    /// A broker session was lost and a new one is being started.
    pub fn broker_reconnecting(&self) {
        self.broker_reconnects.inc();
    }

    /// A page of the corp with directory alias `corp` archived up to `seq`; its newest message
    /// was sent at `msgtime_ms` (milliseconds since the epoch), if known.
    pub fn corp_progress(&self, corp: &str, seq: u64, msgtime_ms: Option<u64>) {
        let label = CorpLabel {
            corp: corp.to_owned(),
        };
        self.corp_last_seq
            .get_or_create(&label)
            .set(i64::try_from(seq).unwrap_or(i64::MAX));
        if let Some(ms) = msgtime_ms {
            self.corp_newest_message
                .get_or_create(&label)
                .set(i64::try_from(ms / 1000).unwrap_or(i64::MAX));
        }
    }

    /// The metrics in Prometheus' text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String does not fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_every_metric_with_its_labels() {
        let metrics = Metrics::new();
        metrics.job_ended(
            JobKind::FetchChatdata,
            Outcome::Ok,
            None,
            Duration::from_millis(30),
        );
        metrics.job_ended(
            JobKind::FetchMedia,
            Outcome::Failed,
            Some(10010),
            Duration::from_millis(5),
        );
        metrics.sdk_call("GetChatData", 10001, Duration::from_millis(2));
        metrics.page_decrypted(3, [20101].into_iter());
        metrics.corp_progress("acme", 42, Some(1_700_000_000_123));
        let text = metrics.encode();
        for line in [
            r#"wecom_archive_jobs_total{kind="fetch-chatdata",outcome="ok",code=""} 1"#,
            r#"wecom_archive_jobs_total{kind="fetch-media",outcome="failed",code="10010"} 1"#,
            r#"wecom_archive_sdk_calls_total{op="GetChatData",code="10001"} 1"#,
            r#"wecom_archive_messages_decrypted_total 3"#,
            r#"wecom_archive_message_errors_total{code="20101"} 1"#,
            r#"wecom_archive_corp_last_seq{corp="acme"} 42"#,
            r#"wecom_archive_corp_newest_message_timestamp_seconds{corp="acme"} 1700000000"#,
            r#"wecom_archive_job_duration_seconds_count{kind="fetch-chatdata"} 1"#,
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
