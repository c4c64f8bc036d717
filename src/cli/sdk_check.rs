//! `wecom-archive sdk check`: is this library usable, and does this corp's setup work?
//!
//! Loading resolves all 17 functions (a missing one fails the load, by name). With credentials
//! it pulls one message and says in words what the outcome means, since the raw codes
//! (10001, 301042, ...) tell an operator little.

use std::process::ExitCode;

use clap::Args;

use super::credentials::{load_keys, read_secret_file};
use super::output::JsonLines;
use super::{net_options, CorpArgs, KeyArgs};
use crate::decrypt::decrypt_message;
use crate::sdk::{ErrorClass, FinanceSdk, SdkError, SYMBOL_NAMES};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The library; with the corp, one message is pulled too.
    #[command(flatten)]
    corp: CorpArgs,
    #[command(flatten)]
    keys: KeyArgs,
}

pub fn run(args: &CheckArgs, out: &mut JsonLines) -> anyhow::Result<ExitCode> {
    let sdk = FinanceSdk::load(&args.corp.sdk.lib)?;
    out.text(&format!("library: {}", sdk.path().display()))?;
    out.text(&format!(
        "symbols: all {} resolved: {}",
        SYMBOL_NAMES.len(),
        SYMBOL_NAMES.join(" ")
    ))?;
    let (Some(corpid), Some(secret_file)) = (&args.corp.corp.corpid, &args.corp.corp.secret_file)
    else {
        out.text("corp: not checked (pass --corpid and --secret-file to pull one message)")?;
        return Ok(ExitCode::SUCCESS);
    };
    let secret = read_secret_file(secret_file)?;
    let keys = load_keys(&args.keys.keys)?;
    let net = net_options(&args.corp.net)?;

    let mut handle = match sdk.open_handle(corpid, &secret) {
        Ok(handle) => handle,
        Err(err) => return verdict(out, &format!("Init failed: {err}"), Some(&err)),
    };
    let page = match handle.get_chat_data(0, 1, &net) {
        Ok(page) => page,
        Err(err) => return verdict(out, &format!("GetChatData failed: {err}"), Some(&err)),
    };
    let Some(message) = page.first() else {
        out.text("GetChatData: ok, but no message is retained (a new corp, or all older than the retention window)")?;
        return verdict(out, "credentials and network work", None);
    };
    out.text(&format!(
        "GetChatData: ok, seq {} msgid {} publickey_ver {}",
        message.seq, message.msgid, message.publickey_ver
    ))?;
    if keys.is_empty() {
        out.text("decrypt: not checked (pass --key VER=PEMFILE)")?;
        return verdict(out, "credentials and network work", None);
    }
    match decrypt_message(&sdk, &keys, message) {
        Ok(_) => {
            out.text("decrypt: ok")?;
            verdict(out, "credentials, network and keys work", None)
        }
        Err(failure) => {
            let info = failure.error.info();
            out.text(&format!(
                "decrypt: failed with {} ({}): {}",
                info.code, info.name, info.message
            ))?;
            out.text("verdict: FAILED: the keys do not decrypt this corp's messages")?;
            Ok(ExitCode::FAILURE)
        }
    }
}

fn verdict(out: &mut JsonLines, summary: &str, err: Option<&SdkError>) -> anyhow::Result<ExitCode> {
    let Some(err) = err else {
        out.text(&format!("verdict: OK: {summary}"))?;
        return Ok(ExitCode::SUCCESS);
    };
    out.text(summary)?;
    let advice = match err.class() {
        ErrorClass::Transient => {
            "this may pass on a retry; if it persists, check the secret, the proxy and the network"
        }
        ErrorClass::Configuration => {
            "the corp's setup must be fixed before anything can be archived"
        }
        ErrorClass::Permanent => "the request itself is wrong",
    };
    out.text(&format!("verdict: FAILED: {advice}"))?;
    Ok(ExitCode::FAILURE)
}
