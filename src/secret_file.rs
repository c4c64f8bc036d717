//! Secrets read from files (the corp secret for the command line, the header key of the
//! worker), never from plain arguments, which show up in `ps` and shell history.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context};
use secrecy::SecretString;
use zeroize::Zeroizing;

/// Reads a secret from a file (surrounding whitespace dropped, so `echo s > file` works).
pub fn read_secret_file(path: &Path) -> anyhow::Result<SecretString> {
    let text = Zeroizing::new(
        fs::read_to_string(path)
            .with_context(|| format!("cannot read the secret file {}", path.display()))?,
    );
    let trimmed = text.trim();
    if trimmed.is_empty() {
        bail!("the secret file {} is empty", path.display());
    }
    Ok(SecretString::from(trimmed.to_owned()))
}
