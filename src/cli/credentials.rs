//! Corp credentials from files and environment variables, never from plain arguments
//! (arguments show up in `ps` and shell history).

use std::fs;
use std::path::PathBuf;

use anyhow::Context;
use secrecy::SecretString;

use crate::keys::KeyRing;
pub use crate::secret_file::read_secret_file;

/// One `--key VER=PEMFILE` argument.
#[derive(Debug, Clone)]
pub struct KeyArg {
    pub version: u32,
    pub pem_file: PathBuf,
}

impl std::str::FromStr for KeyArg {
    type Err = String;

    fn from_str(arg: &str) -> Result<Self, String> {
        let (version, file) = arg
            .split_once('=')
            .ok_or_else(|| format!("expected VER=PEMFILE, got {arg:?}"))?;
        let version = version
            .parse()
            .map_err(|_| format!("the key version {version:?} is not a number"))?;
        Ok(Self {
            version,
            pem_file: PathBuf::from(file),
        })
    }
}

pub fn load_keys(args: &[KeyArg]) -> anyhow::Result<KeyRing> {
    let mut ring = KeyRing::new();
    for arg in args {
        let pem = fs::read_to_string(&arg.pem_file)
            .with_context(|| format!("cannot read the key file {}", arg.pem_file.display()))?;
        // `SecretString` wipes the PEM when dropped.
        ring.insert_pem(arg.version, &SecretString::from(pem))?;
    }
    Ok(ring)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_arguments_are_version_equals_file() {
        let arg: KeyArg = "3=/k/v3.pem".parse().unwrap();
        assert_eq!((arg.version, arg.pem_file.to_str()), (3, Some("/k/v3.pem")));
        assert!("v3.pem".parse::<KeyArg>().is_err());
        assert!("x=v3.pem".parse::<KeyArg>().is_err());
    }

    #[test]
    fn secret_files_are_trimmed_and_must_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        fs::write(&path, "s3cret\n").unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(read_secret_file(&path).unwrap().expose_secret(), "s3cret");
        fs::write(&path, "\n").unwrap();
        assert!(read_secret_file(&path).is_err());
    }
}
