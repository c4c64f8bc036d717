//! Text about a value that may be a secret, without the value: a parser's complaint about a
//! configuration file, and a URL that carries a password. Every error and log line that
//! describes such a value goes through here (the corps file's errors, `wecom-archive config`,
//! the demo's banner).

/// A serde (or serde_json) error message with the value it quotes left out: `invalid type:
/// string "…", expected …` keeps the kind of what was found, what was expected, and where
/// (line and column), but not the text that was found, which may be a secret or a whole
/// private key.
///
/// serde quotes a found value without escaping it (`unknown variant `…``), so a value may hold
/// quotes, `, expected` or ` at line ` itself: the message is cut from its end, where serde's
/// own words are (the location, then what was expected), and everything from the first quote
/// of what is left is dropped.
///
/// ```
/// use wecom_archive::redaction::serde_message;
///
/// let message = r#"unknown variant `s3cr3t`, expected `file` or `env` at line 3 column 20"#;
/// assert_eq!(
///     serde_message(message),
///     "unknown variant (not shown), expected `file` or `env` at line 3 column 20"
/// );
/// ```
pub fn serde_message(message: &str) -> String {
    let (message, location) = match message.rfind(" at line ") {
        Some(at) => message.split_at(at),
        None => (message, ""),
    };
    let (found, expected) = match message.rfind(", expected") {
        Some(at) => message.split_at(at),
        None => (message, ""),
    };
    let found = match found.find(['"', '`']) {
        Some(quote) => format!("{}(not shown)", &found[..quote]),
        None => found.to_owned(),
    };
    format!("{found}{expected}{location}")
}

/// `value` with the password of any `scheme://user:password@host` in it replaced by `***` (a
/// comma-separated list of URLs included).
///
/// ```
/// use wecom_archive::redaction::url_without_password;
///
/// assert_eq!(
///     url_without_password("amqp://guest:s3cr3t@127.0.0.1:5672/%2f"),
///     "amqp://guest:***@127.0.0.1:5672/%2f"
/// );
/// ```
pub fn url_without_password(value: &str) -> String {
    value
        .split(',')
        .map(|part| {
            let Some(scheme_end) = part.find("://") else {
                return part.to_owned();
            };
            let authority_start = scheme_end + 3;
            // The password may hold '/', '?' or '#' (percent-encoding is not always done):
            // the authority ends at the last '@' before the path.
            let Some(at) = part[authority_start..]
                .rfind('@')
                .map(|at| authority_start + at)
            else {
                return part.to_owned();
            };
            let userinfo = &part[authority_start..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &part[..authority_start],
                    &userinfo[..colon],
                    &part[at..]
                ),
                None => part.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serde_message_keeps_the_kind_and_the_expectation_but_never_the_value() {
        let cases = [
            (
                r#"invalid type: string "-----BEGIN PRIVATE KEY-----\nMIIE\"x", expected struct SecretSource at line 1 column 80"#,
                "invalid type: string (not shown), expected struct SecretSource at line 1 column 80",
            ),
            (
                "invalid type: integer `12345`, expected a string at line 2 column 9",
                "invalid type: integer (not shown), expected a string at line 2 column 9",
            ),
            (
                "invalid type: map, expected a string at line 2 column 9",
                "invalid type: map, expected a string at line 2 column 9",
            ),
            (
                "expected value at line 1 column 1",
                "expected value at line 1 column 1",
            ),
            // A value holding serde's own words and quotes.
            (
                "unknown variant `a`b, expected c at line 9 column 9`, expected `file` or `env` at line 1 column 30",
                "unknown variant (not shown), expected `file` or `env` at line 1 column 30",
            ),
            (
                "missing field `corpid` at line 4 column 1",
                "missing field (not shown) at line 4 column 1",
            ),
        ];
        for (message, redacted) in cases {
            assert_eq!(serde_message(message), redacted);
        }
    }

    #[test]
    fn passwords_in_urls_are_hidden_and_the_rest_kept() {
        assert_eq!(
            url_without_password("amqps://u:p@a:5671/v,amqps://u:p@b:5671/v"),
            "amqps://u:***@a:5671/v,amqps://u:***@b:5671/v"
        );
        assert_eq!(
            url_without_password("http://proxy:3128"),
            "http://proxy:3128"
        );
        assert_eq!(
            url_without_password("socks5://me:p:w@d@proxy:1080/x"),
            "socks5://me:***@proxy:1080/x"
        );
        assert_eq!(
            url_without_password("amqp://me:pa/ss@host/vhost"),
            "amqp://me:***@host/vhost"
        );
        assert_eq!(url_without_password("/var/lib/media"), "/var/lib/media");
    }
}
