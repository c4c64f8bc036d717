//! A `fetch-chatdata` job: up to `max_pages` pages after `seq`, fetched (`GetChatData`) several
//! at once as [`super::catchup`] plans, each decrypted ([`crate::decrypt`]) and handed to the
//! sink in order while the calls for the next ones are out.
//!
//! A run starts where the job's progress says (an earlier delivery's pages are not fetched
//! again) and stops at the sink's word (a continuation took the rest over), at the last page,
//! at a failure (with the progress of the pages published, for the retry), or when its token
//! fires.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use super::catchup::{Catchup, Next, PlannedPage, Sequenced};

use super::contract::{ChatPage, ChatProgress, ChatdataJob, JobKind, NetRef};
use super::core::{in_blocking_thread, Core, JobMeta};
use super::corps::Corp;
use super::error::JobError;
use super::fate::Stop;
use super::parse::InvalidJob;
use super::sdk_pool::discard;
use super::sink::{Flow, Output, OutputSink};
use crate::decrypt::DecryptedPage;
use crate::error_code::ErrorInfo;
use crate::sdk::{EncryptedMessage, ErrorClass, NetOptions, SdkError};

pub(super) fn net_options(net: NetRef) -> NetOptions {
    NetOptions {
        proxy: net.proxy.filter(|p| !p.is_empty()),
        proxy_password: net.paswd,
        timeout_secs: net.timeout.unwrap_or(5),
    }
}

pub(super) async fn run<S>(
    core: &Arc<Core<S>>,
    job: ChatdataJob,
    meta: &JobMeta,
    sink: &mut impl OutputSink,
    cancel: &CancellationToken,
) -> Result<(), Stop>
where
    S: Send + Sync + 'static,
{
    let corp = core.corps.resolve(&job.corp, true).map_err(Stop::failed)?;
    let start = meta.progress.unwrap_or(ChatProgress {
        seq: job.seq,
        pages_done: 0,
    });
    if start.pages_done >= job.max_pages {
        // Only a hand-made progress header gets here: acking such a job would end it with no
        // result at all.
        return Err(Stop::failed(InvalidJob {
            kind: JobKind::FetchChatdata,
            job_id: meta.job_id.clone(),
            reason: format!(
                "its progress says {} pages are done, but max_pages is {}",
                start.pages_done, job.max_pages
            ),
        }));
    }
    let handoff_after = sink.pages_before_handoff();
    let mut run = ChatRun {
        plan: Catchup::new(
            start.seq,
            job.limit,
            core.chat_pages_in_flight,
            job.max_pages - start.pages_done,
            handoff_after,
        ),
        calls: Calls {
            core: Arc::clone(core),
            corp: Arc::clone(&corp),
            net: Arc::new(net_options(job.net)),
            limit: job.limit,
            out: JoinSet::new(),
        },
        core,
        corp,
        meta,
        alias: job.corp.corp,
        max_pages: job.max_pages,
        include_encrypted: job.include_encrypted,
        pages_before_handoff: handoff_after.map(|pages| start.pages_done + pages),
        published: start,
        upcoming: None,
        // The official advice for 10008 is to fetch the page again: it is, while the policy
        // allows another attempt; on the last one, the page is delivered with those messages
        // as errors.
        may_retry: core.policy().allows_retry_after(meta.attempt),
    };
    loop {
        let Some(current) = run.next_page(cancel).await? else {
            return Ok(());
        };
        let page = run.decrypted(current, cancel).await?;
        // A failure the plan reports while this page is out waits until it is, so that the
        // retry goes on after it.
        let failure = run.decrypt_the_next_meanwhile(&page);
        if cancel.is_cancelled() {
            return Err(Stop::Cancelled);
        }
        // Not raced with the token: a publish given up half way could still be confirmed.
        let flow = run
            .calls
            .answer_while(&mut run.plan, sink.emit(page.output, page.next))
            .await?;
        run.published = page.done;
        if flow == Flow::HandedOff || page.next.is_none() {
            return Ok(());
        }
        if let Some(err) = failure {
            return Err(run.failed(err.into()));
        }
    }
}

/// One run of a chat job: its plan and calls, the pages published so far, and the next page
/// decrypting while one is published.
struct ChatRun<'a, S> {
    core: &'a Arc<Core<S>>,
    corp: Arc<Corp>,
    meta: &'a JobMeta,
    /// The corp's alias in the directory, for its metrics.
    alias: Option<String>,
    max_pages: u32,
    include_encrypted: bool,
    /// After how many pages done (counting earlier deliveries') the door takes the job over.
    pages_before_handoff: Option<u32>,
    plan: Catchup<EncryptedMessage, SdkError>,
    calls: Calls<S>,
    published: ChatProgress,
    /// The next page, decrypting while this one is published.
    upcoming: Option<Decrypting>,
    may_retry: bool,
}

/// A page decrypted and ready to publish: its output, the progress it leaves the job at, and
/// the progress its continuation starts from, if the job goes on.
struct PageOut {
    output: Output,
    done: ChatProgress,
    next: Option<ChatProgress>,
}

impl<S: Send + Sync + 'static> ChatRun<'_, S> {
    /// The job stops on `error`, with the progress of the pages published, for the retry.
    fn failed(&self, error: JobError) -> Stop {
        Stop::Failed {
            error,
            progress: Some(self.published),
        }
    }

    /// The page to publish next: the one decrypting already, or the plan's next once its call
    /// is answered; `None` when the plan is done.
    async fn next_page(&mut self, cancel: &CancellationToken) -> Result<Option<Decrypting>, Stop> {
        if let Some(decrypting) = self.upcoming.take() {
            return Ok(Some(decrypting));
        }
        loop {
            match self.plan.next() {
                Next::Page(page) => {
                    return Ok(Some(Decrypting::start(self.core, &self.corp, page)))
                }
                Next::Done => return Ok(None),
                Next::Failed(err) => return Err(self.failed(err.into())),
                Next::Wait => {
                    self.calls.make(&mut self.plan);
                    tokio::select! {
                        answer = self.calls.answer() => self.plan.answered(answer.0, answer.1),
                        _ = cancel.cancelled() => return Err(Stop::Cancelled),
                    }
                }
            }
        }
    }

    /// `current` decrypted (answering calls meanwhile) and made into the page's output.
    async fn decrypted(
        &mut self,
        current: Decrypting,
        cancel: &CancellationToken,
    ) -> Result<PageOut, Stop> {
        let Decrypting {
            seq,
            next_seq,
            has_more,
            page,
            task,
        } = current;
        let mut decrypted = tokio::select! {
            decrypted = self.calls.answer_while(&mut self.plan, joined(task)) => decrypted.map_err(|err| self.failed(err.into()))?,
            _ = cancel.cancelled() => return Err(Stop::Cancelled),
        };
        let bad_key = decrypted
            .errors
            .iter()
            .position(|e| e.error.is_bad_encrypt_key());
        if let (Some(at), true) = (bad_key, self.may_retry) {
            let bad = decrypted.errors.swap_remove(at);
            return Err(self.failed(JobError::BadEncryptKey(bad)));
        }
        if self.include_encrypted {
            // The decryption is done with the page (its blocking thread let go of it): the
            // ciphertext moves into the results rather than being copied.
            let page = Arc::try_unwrap(page).unwrap_or_else(|shared| shared.as_ref().clone());
            decrypted.attach_ciphertext(page);
        } else {
            // Not kept while the page is published: the next one is decrypting meanwhile.
            drop(page);
        }
        record_page(self.core, self.alias.as_deref(), next_seq, &decrypted);
        let pages_done = self.published.pages_done + 1;
        let chat_page = ChatPage {
            page: pages_done,
            seq,
            next_seq,
            has_more,
            messages: decrypted.messages,
            errors: decrypted.errors,
        };
        let done = ChatProgress {
            seq: next_seq,
            pages_done,
        };
        Ok(PageOut {
            output: self.meta.page_output(&self.corp.corpid, chat_page),
            done,
            next: (has_more && pages_done < self.max_pages).then_some(done),
        })
    }

    /// Starts decrypting the page after `page`, if it is in, while `page` is published; not
    /// when the door takes the job over after `page`. A failure the plan reports meanwhile is
    /// handed back.
    fn decrypt_the_next_meanwhile(&mut self, page: &PageOut) -> Option<SdkError> {
        if page.next.is_none() || self.pages_before_handoff == Some(page.done.pages_done) {
            return None;
        }
        match self.plan.next() {
            Next::Page(next) => {
                self.upcoming = Some(Decrypting::start(self.core, &self.corp, next));
                None
            }
            Next::Failed(err) => Some(err),
            // The plan says so again when the next page is asked for.
            Next::Wait | Next::Done => None,
        }
    }
}

/// A page being decrypted on a task of its own (stopped if dropped), with what its result
/// says of it.
struct Decrypting {
    seq: u64,
    next_seq: u64,
    has_more: bool,
    page: Arc<Vec<EncryptedMessage>>,
    task: AbortOnDropHandle<Result<DecryptedPage, SdkError>>,
}

/// What a task returned; its panic, if it panicked.
async fn joined<T>(task: AbortOnDropHandle<T>) -> T {
    match task.await {
        Ok(done) => done,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => unreachable!("the task is only aborted when its handle is dropped: {err}"),
    }
}

impl Decrypting {
    fn start<S: Send + Sync + 'static>(
        core: &Arc<Core<S>>,
        corp: &Arc<Corp>,
        page: PlannedPage<EncryptedMessage>,
    ) -> Self {
        let messages = Arc::new(page.messages);
        let (core, corp, shared) = (Arc::clone(core), Arc::clone(corp), Arc::clone(&messages));
        let decrypting = async move { decrypt(&core, &corp, &shared).await };
        let task = tokio::spawn(decrypting.instrument(tracing::Span::current()));
        Self {
            seq: page.seq,
            next_seq: page.next_seq,
            has_more: page.has_more,
            page: messages,
            task: AbortOnDropHandle::new(task),
        }
    }
}

/// The `GetChatData` calls of one run, each on a task of its own so that it goes on while the
/// run decrypts and publishes. Dropping them stops waiting for them: a call under way finishes
/// on its blocking thread and its handle goes back to the pool.
struct Calls<S> {
    core: Arc<Core<S>>,
    corp: Arc<Corp>,
    net: Arc<NetOptions>,
    limit: u32,
    out: JoinSet<(u64, Result<Vec<EncryptedMessage>, SdkError>)>,
}

impl<S: Send + Sync + 'static> Calls<S> {
    /// Makes the calls the plan wants now.
    fn make(&mut self, plan: &mut Catchup<EncryptedMessage, SdkError>) {
        for start in plan.calls_to_make() {
            let (core, corp, net) = (
                Arc::clone(&self.core),
                Arc::clone(&self.corp),
                Arc::clone(&self.net),
            );
            let limit = self.limit;
            let call = async move { (start, fetch_page(&core, &corp, start, limit, &net).await) };
            self.out.spawn(call.instrument(tracing::Span::current()));
        }
    }

    /// The next answer. Only awaited with a call out (the plan waits for one).
    async fn answer(&mut self) -> (u64, Result<Vec<EncryptedMessage>, SdkError>) {
        match self.out.join_next().await {
            Some(Ok(answer)) => answer,
            Some(Err(err)) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            other => unreachable!("the plan waits only with a call out: {other:?}"),
        }
    }

    /// Runs `work`, meanwhile taking the answers in and making the calls they make possible.
    async fn answer_while<T>(
        &mut self,
        plan: &mut Catchup<EncryptedMessage, SdkError>,
        work: impl Future<Output = T>,
    ) -> T {
        tokio::pin!(work);
        loop {
            self.make(plan);
            tokio::select! {
                done = &mut work => return done,
                answer = self.answer(), if !self.out.is_empty() => plan.answered(answer.0, answer.1),
            }
        }
    }
}

impl Sequenced for EncryptedMessage {
    fn seq(&self) -> u64 {
        self.seq
    }
}

async fn fetch_page<S>(
    core: &Arc<Core<S>>,
    corp: &Corp,
    seq: u64,
    limit: u32,
    net: &Arc<NetOptions>,
) -> Result<Vec<EncryptedMessage>, SdkError> {
    let mut handle = core.pools.get(corp).await?;
    let (net, metrics) = (Arc::clone(net), Arc::clone(core.metrics()));
    in_blocking_thread(move || {
        let started = Instant::now();
        let page = handle.get_chat_data(seq, limit, &net);
        metrics.sdk_call(
            "GetChatData",
            sdk_code(page.as_ref().err()),
            started.elapsed(),
        );
        // Decided here, not by the caller, which may have stopped waiting: a handle that saw a
        // transient error never goes back to its pool.
        if page
            .as_ref()
            .is_err_and(|err| err.class() == ErrorClass::Transient)
        {
            discard(handle);
        }
        page
    })
    .await
}

/// The code an SDK call is counted under: 0 for success.
pub(super) fn sdk_code(error: Option<&SdkError>) -> i64 {
    error.map_or(0, |err| {
        ErrorInfo::from_sdk(err, err.class(), String::new()).code
    })
}

/// Counts a page's messages and errors, and, for a corp of the directory (named by its alias),
/// how far its archive is.
fn record_page<S>(core: &Core<S>, alias: Option<&str>, next_seq: u64, page: &DecryptedPage) {
    let metrics = core.metrics();
    let codes = page.errors.iter().map(|e| e.error.info().code);
    metrics.page_decrypted(page.messages.len(), codes);
    if let Some(alias) = alias {
        metrics.corp_progress(alias, next_seq, newest_msgtime(page));
    }
}

/// The `msgtime` (ms) of the page's last decrypted message, if it has one.
fn newest_msgtime(page: &DecryptedPage) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Sent {
        msgtime: Option<u64>,
    }
    let last = page.messages.last()?;
    serde_json::from_str::<Sent>(last.message.get())
        .ok()?
        .msgtime
}

/// Decrypts a page on a blocking thread, one page at a time (see [`Core`]'s gate), with an SDK
/// handle of the corp (`DecryptData` runs where its library is). The turn and the handle go
/// with the work: a caller that stops waiting does not let the next page in early, and a
/// handle whose host died is discarded.
async fn decrypt<S>(
    core: &Arc<Core<S>>,
    corp: &Arc<Corp>,
    page: &Arc<Vec<EncryptedMessage>>,
) -> Result<DecryptedPage, SdkError> {
    // The handle first: waiting for one of this corp's must not hold every corp's turn.
    let mut handle = core.pools.get(corp).await?;
    let turn = Arc::clone(&core.decrypting)
        .acquire_owned()
        .await
        .expect("never closed");
    let (corp, page) = (Arc::clone(corp), Arc::clone(page));
    in_blocking_thread(move || {
        let decrypted = handle.decrypt_page(&corp.keys, &page);
        if decrypted.is_err() {
            discard(handle);
        }
        drop(turn);
        decrypted
    })
    .await
}
