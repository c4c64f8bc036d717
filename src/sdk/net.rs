//! How the SDK reaches WeCom's archive server: an optional proxy and a timeout.

use secrecy::SecretString;

/// Network options of `GetChatData` and `GetMediaData`.
#[derive(Debug, Clone)]
pub struct NetOptions {
    /// `http://host:port` or `socks5://host:port`.
    pub proxy: Option<String>,
    /// `user:pass` for the proxy.
    pub proxy_password: Option<SecretString>,
    /// Seconds; the official sample uses 5.
    pub timeout_secs: i32,
}

impl Default for NetOptions {
    fn default() -> Self {
        Self {
            proxy: None,
            proxy_password: None,
            timeout_secs: 5,
        }
    }
}
