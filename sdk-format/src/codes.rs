//! Return codes of the Finance SDK (`docs/SDK.md` section 7) and the server `errcode`s that
//! appear inside a `GetChatData` body. Used by [`crate::decrypt`], the emulator and the binding.
//!
//! The obsolete codes 10004 and 10007 are left out: nothing returns them any more.

/// Success.
pub const OK: i32 = 0;
/// Bad parameter: NULL or empty ids, `limit` outside 1..=1000, malformed media index.
pub const BAD_PARAMETER: i32 = 10000;
/// Network error or access-token failure (a wrong secret gives this too).
pub const NETWORK_ERROR: i32 = 10001;
/// Data parse failure or media server error.
pub const DATA_PARSE_ERROR: i32 = 10002;
/// System failure, or empty media content.
pub const SYSTEM_ERROR: i32 = 10003;
/// Bad `sdkfileid`, or bad key info inside `DecryptData`.
pub const BAD_FILEID_OR_KEY_INFO: i32 = 10005;
/// Decryption failed (wrong key or corrupt data).
pub const DECRYPT_FAILED: i32 = 10006;
/// Bad `encrypt_key` given to `DecryptData`.
pub const BAD_ENCRYPT_KEY: i32 = 10008;
/// The caller's IP is not on the archive whitelist (media).
pub const IP_NOT_WHITELISTED: i32 = 10009;
/// The data has expired (media older than the retention window).
pub const DATA_EXPIRED: i32 = 10010;
/// TLS certificate error.
pub const TLS_CERTIFICATE_ERROR: i32 = 10011;

/// Server `errcode` in a `GetChatData` body: the caller's IP is not on the whitelist.
pub const SERVER_WHITEIP_NOT_MATCH: i64 = 301042;
/// Server `errcode` behind media code [`DATA_EXPIRED`].
pub const SERVER_MEDIA_EXPIRED: i64 = 301048;
/// Server `errcode` in a `GetChatData` body: the archive subscription has expired.
pub const SERVER_SUBSCRIPTION_EXPIRED: i64 = 301052;

/// Whether `code` is one of the SDK's own return codes (0 or 10000..=10011) rather than a
/// server `errcode`.
pub fn is_sdk_code(code: i64) -> bool {
    code == 0 || (10000..=10011).contains(&code)
}
