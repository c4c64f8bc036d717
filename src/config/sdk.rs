//! The Finance SDK library, and one corp for the commands that call the SDK directly
//! (`sdk check`, `fetch`): `WECOM_SDK_LIB`, `WECOM_CORPID`, `WECOM_SECRET_FILE`, `WECOM_PROXY`
//! and `WECOM_PROXY_PASSWORD_FILE`. The worker and the gateway take their corps from the corps
//! file or the jobs ([`super::CoreConfig`]).

use std::path::PathBuf;

use clap::Args;

/// The library every command that calls the SDK loads.
#[derive(Debug, Clone, Args)]
pub struct SdkLibConfig {
    /// Path of libWeWorkFinanceSdk_C.so (the image's mount point by default).
    #[arg(
        long,
        env = "WECOM_SDK_LIB",
        default_value = "/opt/wecom/libWeWorkFinanceSdk_C.so"
    )]
    pub lib: PathBuf,
}

/// One corp's credentials. Both or neither: `fetch` needs them, `sdk check` pulls one message
/// when given them.
#[derive(Debug, Clone, Args)]
pub struct CorpConfig {
    /// The corp's id (`ww...`).
    #[arg(long, env = "WECOM_CORPID", requires = "secret_file")]
    pub corpid: Option<String>,
    /// A file holding the corp's chat-archive secret.
    #[arg(long, env = "WECOM_SECRET_FILE", requires = "corpid")]
    pub secret_file: Option<PathBuf>,
}

/// How the SDK reaches WeCom's servers.
#[derive(Debug, Clone, Args)]
pub struct NetConfig {
    /// Proxy, http://host:port or socks5://host:port.
    #[arg(long, env = "WECOM_PROXY")]
    pub proxy: Option<String>,
    /// A file holding the proxy's user:password.
    #[arg(long, env = "WECOM_PROXY_PASSWORD_FILE")]
    pub proxy_password_file: Option<PathBuf>,
    /// Seconds per SDK call.
    #[arg(long, default_value_t = 5)]
    pub timeout: i32,
}
