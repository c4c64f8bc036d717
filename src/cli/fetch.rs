//! `wecom-archive fetch chatdata` and `fetch media`: one SDK operation from the shell.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::credentials::{load_keys, read_secret_file};
use super::output::JsonLines;
use super::{net_options, CorpArgs, KeyArgs};
use crate::decrypt::{decrypt_page, DecryptedMessage, MessageError};
use crate::error_code::ErrorInfo;
use crate::job::error::JobError;
use crate::media::{download, ChunkRetry, MediaKey, PartialFile, Unfinished};
use crate::sdk::{FinanceSdk, SdkHandle};

#[derive(Debug, Args)]
pub struct ChatdataArgs {
    #[command(flatten)]
    corp: CorpArgs,
    #[command(flatten)]
    keys: KeyArgs,
    /// Fetch messages with a seq greater than this (0: the oldest retained).
    #[arg(long, default_value_t = 0)]
    seq: u64,
    /// Messages per page, 1 to 1000.
    #[arg(long, default_value_t = 1000)]
    limit: u32,
}

#[derive(Debug, Args)]
pub struct MediaArgs {
    #[command(flatten)]
    corp: CorpArgs,
    /// The message's sdkfileid.
    #[arg(long)]
    sdkfileid: String,
    /// Where to write the file (a .part and a .resume file sit beside it until it is whole).
    #[arg(long)]
    out: PathBuf,
    /// The message's md5sum: a mismatch fetches the file once more and is reported.
    #[arg(long)]
    md5: Option<String>,
}

/// One line of `fetch chatdata`'s output.
#[derive(Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum MessageLine<'a> {
    Ok(&'a DecryptedMessage),
    Failed(&'a MessageError),
}

#[derive(Serialize)]
struct FailureLine {
    status: &'static str,
    error: ErrorInfo,
}

fn open(corp: &CorpArgs) -> anyhow::Result<(std::sync::Arc<FinanceSdk>, SdkHandle)> {
    let (Some(corpid), Some(secret_file)) = (&corp.corp.corpid, &corp.corp.secret_file) else {
        anyhow::bail!("--corpid and --secret-file (WECOM_CORPID, WECOM_SECRET_FILE) are needed");
    };
    let sdk = FinanceSdk::load(&corp.sdk.lib)?;
    let secret = read_secret_file(secret_file)?;
    let handle = sdk.open_handle(corpid, &secret)?;
    Ok((sdk, handle))
}

pub fn chatdata(args: &ChatdataArgs, out: &mut JsonLines) -> anyhow::Result<ExitCode> {
    let keys = load_keys(&args.keys.keys)?;
    let net = net_options(&args.corp.net)?;
    let (sdk, mut handle) = open(&args.corp)?;
    let page = match handle.get_chat_data(args.seq, args.limit, &net) {
        Ok(page) => page,
        Err(err) => {
            out.line(&FailureLine {
                status: "failed",
                error: JobError::from(err).info(),
            })?;
            return Ok(ExitCode::FAILURE);
        }
    };
    let decrypted = decrypt_page(&sdk, &keys, &page);
    let mut lines: Vec<(u64, MessageLine)> = decrypted
        .messages
        .iter()
        .map(|m| (m.seq, MessageLine::Ok(m)))
        .chain(
            decrypted
                .errors
                .iter()
                .map(|e| (e.seq, MessageLine::Failed(e))),
        )
        .collect();
    lines.sort_by_key(|(seq, _)| *seq);
    for (_, line) in &lines {
        out.line(line)?;
    }
    // Where to go on, for a person paging by hand; stdout stays one JSON line per message.
    eprintln!(
        "{} messages, {} failed; next --seq {}{}",
        decrypted.messages.len(),
        decrypted.errors.len(),
        page.last().map_or(args.seq, |m| m.seq),
        if page.len() == args.limit as usize {
            " (more to fetch)"
        } else {
            " (caught up)"
        },
    );
    Ok(ExitCode::SUCCESS)
}

pub fn media(args: &MediaArgs, out: &mut JsonLines) -> anyhow::Result<ExitCode> {
    let net = net_options(&args.corp.net)?;
    let (_sdk, mut handle) = open(&args.corp)?;
    let key = MediaKey::new(&args.sdkfileid, None);
    let uncancelled = CancellationToken::new();
    let outcome = PartialFile::open(args.out.clone(), key.fingerprint())
        .map_err(Unfinished::from)
        .and_then(|partial| {
            let fetch = |index: &str| handle.get_media_chunk(&args.sdkfileid, index, &net);
            let retry = ChunkRetry::default();
            download(fetch, partial, args.md5.as_deref(), &retry, &uncancelled)
        });
    match outcome {
        Ok(report) => {
            out.line(&report)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(Unfinished::Failed(err)) => {
            out.line(&FailureLine {
                status: "failed",
                error: JobError::from(err).info(),
            })?;
            Ok(ExitCode::FAILURE)
        }
        Err(Unfinished::Cancelled) => anyhow::bail!("the download was cancelled"),
    }
}
