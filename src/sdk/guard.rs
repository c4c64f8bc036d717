//! Checks run on every input before it reaches the C library.
//!
//! The library is a closed binary that aborts the whole process on some inputs (section 6 of
//! `docs/SDK.md`) and reads C strings, which cannot carry a NUL. Everything the
//! binding passes in goes through here first, so a bad job becomes a [`Refused`] error instead
//! of a dead worker. The DecryptData layout rules live in `wecom-sdk-format`, shared with the
//! emulator, so the guard and the emulator's crashes follow one description of the format.
//!
//! A refusal names the field, never its value: a secret or a proxy password may be the field.

use std::ffi::CString;

use wecom_sdk_format::decrypt::{check_layout, Crash, Failure};
use wecom_sdk_format::media_index::parse_index;

/// `GetChatData` accepts 1..=1000 messages per call.
pub const LIMIT_RANGE: std::ops::RangeInclusive<u32> = 1..=1000;

/// Seconds an SDK call may take. libcurl reads 0 as "no timeout", which could hang a worker.
pub const TIMEOUT_RANGE: std::ops::RangeInclusive<i32> = 1..=300;

/// Real sdkfileids are a few hundred characters; anything far longer is not one.
pub const MAX_ID_LEN: usize = 8 * 1024;

/// An input the binding would not pass to the library. Always permanent: the same input is
/// refused again. It names the field, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// A string holds a NUL byte, where C would silently cut it short.
    #[error("{field} contains a NUL byte")]
    InteriorNul {
        /// The field's name (`corpid`, `sdkfileid`, `encrypt_key`, ...).
        field: &'static str,
    },
    /// An identifier that must be present is the empty string.
    #[error("{field} is empty")]
    Empty {
        /// The field's name.
        field: &'static str,
    },
    /// An identifier is longer than any real one (see [`MAX_ID_LEN`]).
    #[error("{field} is longer than {max} bytes")]
    TooLong {
        /// The field's name.
        field: &'static str,
        /// The limit it exceeded, in bytes.
        max: usize,
    },
    /// Text that goes into a URL or a log (the proxy address) holds a control character.
    #[error("{field} contains a control character")]
    ControlCharacter {
        /// The field's name.
        field: &'static str,
    },
    /// A `GetChatData` limit outside [`LIMIT_RANGE`]; carries the limit asked for.
    #[error("limit {0} is outside 1..=1000")]
    LimitOutOfRange(u32),
    /// A timeout outside [`TIMEOUT_RANGE`]; carries the seconds asked for.
    #[error("timeout {0} is outside 1..=300 seconds")]
    TimeoutOutOfRange(i32),
    /// The proxy address holds `user:pass@`; credentials go in the proxy password, which is
    /// kept secret, while the address may be logged.
    #[error("the proxy holds credentials; pass them as the proxy password instead")]
    ProxyCredentials,
    /// A media index that is neither empty nor `Range:bytes=START-END` with a length that is a
    /// multiple of 16.
    #[error("the media index is not of the form Range:bytes=START-END with a length that is a multiple of 16")]
    MalformedMediaIndex,
    /// A `DecryptData` input known to make the library abort the whole process; carries which
    /// of the documented crashes it would trigger.
    #[error("DecryptData would abort the process on this input: {0}")]
    CrashingInput(Crash),
}

/// A C string for `field`, refused when it holds a NUL byte (C would silently cut it there).
pub fn c_string(field: &'static str, value: &str) -> Result<CString, Refused> {
    CString::new(value).map_err(|_| Refused::InteriorNul { field })
}

/// A C string for an identifier: not empty, not absurdly long, no NUL.
pub fn c_id(field: &'static str, value: &str) -> Result<CString, Refused> {
    if value.is_empty() {
        return Err(Refused::Empty { field });
    }
    if value.len() > MAX_ID_LEN {
        return Err(Refused::TooLong {
            field,
            max: MAX_ID_LEN,
        });
    }
    c_string(field, value)
}

/// A proxy address: empty (none) or printable text; a control character is never part of one.
/// Credentials (`user:pass@`) belong in the proxy password, which is kept secret; the address
/// is not, and would show up in logs.
pub fn proxy(value: &str) -> Result<CString, Refused> {
    if value.chars().any(char::is_control) {
        return Err(Refused::ControlCharacter { field: "proxy" });
    }
    if value.contains('@') {
        return Err(Refused::ProxyCredentials);
    }
    c_string("proxy", value)
}

/// A `GetChatData` message count, refused outside [`LIMIT_RANGE`].
pub fn limit(limit: u32) -> Result<u32, Refused> {
    if LIMIT_RANGE.contains(&limit) {
        Ok(limit)
    } else {
        Err(Refused::LimitOutOfRange(limit))
    }
}

/// An SDK call's timeout in seconds, refused outside [`TIMEOUT_RANGE`] (0 would mean "never").
pub fn timeout(seconds: i32) -> Result<i32, Refused> {
    if TIMEOUT_RANGE.contains(&seconds) {
        Ok(seconds)
    } else {
        Err(Refused::TimeoutOutOfRange(seconds))
    }
}

/// A media index as the library wants it: empty (the first chunk) or a well-formed range.
pub fn media_index(index: &str) -> Result<CString, Refused> {
    parse_index(index).map_err(|_| Refused::MalformedMediaIndex)?;
    c_string("media index", index)
}

/// Refuses the DecryptData inputs that abort the real library. Inputs that merely fail
/// (with 10005, 10006, 10008) are left for the library to answer: it is the authority on them.
pub fn decrypt_inputs(
    encrypt_key: &[u8],
    encrypt_msg: &[u8],
) -> Result<(CString, CString), Refused> {
    match check_layout(encrypt_key, encrypt_msg) {
        Err(Failure::Crash(crash)) => return Err(Refused::CrashingInput(crash)),
        Ok(_) | Err(Failure::Code(_)) => {}
    }
    let key = CString::new(encrypt_key).map_err(|_| Refused::InteriorNul {
        field: "encrypt_key",
    })?;
    let msg = CString::new(encrypt_msg).map_err(|_| Refused::InteriorNul {
        field: "encrypt_chat_msg",
    })?;
    Ok((key, msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_be_present_short_and_nul_free() {
        assert_eq!(c_id("corpid", ""), Err(Refused::Empty { field: "corpid" }));
        assert_eq!(
            c_id("corpid", "a\0b"),
            Err(Refused::InteriorNul { field: "corpid" })
        );
        assert!(matches!(
            c_id("sdkfileid", &"x".repeat(MAX_ID_LEN + 1)),
            Err(Refused::TooLong { .. })
        ));
        assert_eq!(c_id("corpid", "ww1").unwrap().as_bytes(), b"ww1");
    }

    #[test]
    fn proxies_with_control_characters_are_refused() {
        assert!(proxy("").is_ok());
        assert!(proxy("http://127.0.0.1:3128").is_ok());
        for bad in [
            "http://a\r\nX-Evil: 1",
            "socks5://h:1\u{7f}",
            "h\0",
            "http://u:p@h:1",
        ] {
            assert!(proxy(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn limit_is_one_to_one_thousand() {
        assert_eq!(limit(0), Err(Refused::LimitOutOfRange(0)));
        assert_eq!(limit(1001), Err(Refused::LimitOutOfRange(1001)));
        assert_eq!(limit(1), Ok(1));
        assert_eq!(limit(1000), Ok(1000));
    }

    #[test]
    fn timeouts_are_one_to_three_hundred_seconds() {
        assert_eq!(timeout(0), Err(Refused::TimeoutOutOfRange(0)));
        assert_eq!(timeout(-5), Err(Refused::TimeoutOutOfRange(-5)));
        assert_eq!(timeout(301), Err(Refused::TimeoutOutOfRange(301)));
        assert_eq!(timeout(5), Ok(5));
    }

    #[test]
    fn refusals_never_echo_the_value() {
        let err = c_string("secret", "hunter2\0").unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn media_index_accepts_empty_and_well_formed_ranges_only() {
        assert!(media_index("").is_ok());
        assert!(media_index("Range:bytes=0-524287").is_ok());
        for bad in [
            "Range:bytes=5-1",
            "Range:bytes=0-14",
            "bytes=0-15",
            "Range:bytes=a-b",
        ] {
            assert_eq!(media_index(bad), Err(Refused::MalformedMediaIndex), "{bad}");
        }
    }

    #[test]
    fn the_documented_crashing_decrypt_inputs_are_refused() {
        let short = decrypt_inputs(b"a2V5", b"123456789012").unwrap_err();
        assert!(matches!(short, Refused::CrashingInput(_)));
        assert!(matches!(
            decrypt_inputs(b"a2V5", b"").unwrap_err(),
            Refused::CrashingInput(_)
        ));
        let long_msg = "m".repeat(100);
        for ek in ["=", "===="] {
            assert!(matches!(
                decrypt_inputs(ek.as_bytes(), long_msg.as_bytes()).unwrap_err(),
                Refused::CrashingInput(_)
            ));
        }
    }

    #[test]
    fn decrypt_inputs_that_only_fail_reach_the_library() {
        // 13..=44 characters: the library answers 10008, it does not crash.
        assert!(decrypt_inputs(b"a2V5", "m".repeat(20).as_bytes()).is_ok());
    }
}
