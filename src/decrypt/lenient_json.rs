//! Reading a decrypted message as JSON, tolerating raw control characters inside strings.
//!
//! WeCom's plaintext sometimes carries raw control characters (a literal tab or U+0001 typed
//! into a chat) inside JSON strings, which strict JSON forbids. Such a byte is rewritten as
//! its `\u00XX` escape; everything else must be valid JSON. The fast path (already strict
//! JSON) costs one validation pass and no copy.

use serde_json::value::RawValue;

/// The message as a validated JSON object, kept as text so it is serialized once, verbatim,
/// later. Every WeCom message is an object; anything else is refused.
pub fn parse(plaintext: Vec<u8>) -> Result<Box<RawValue>, serde_json::Error> {
    let text = String::from_utf8(plaintext).map_err(|err| {
        serde::de::Error::custom(format!(
            "not UTF-8 at byte {}",
            err.utf8_error().valid_up_to()
        ))
    })?;
    let raw = if text.bytes().any(|b| b < 0x20) {
        RawValue::from_string(escape_controls_in_strings(&text))?
    } else {
        RawValue::from_string(text)?
    };
    if !raw.get().trim_start().starts_with('{') {
        return Err(serde::de::Error::custom("not a JSON object"));
    }
    Ok(raw)
}

fn escape_controls_in_strings(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut in_string = false;
    let mut escaped = false;
    for ch in text.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_string = false;
            } else if (ch as u32) < 0x20 {
                out.push_str(&format!("\\u{:04x}", ch as u32));
                continue;
            }
        } else if ch == '"' {
            in_string = true;
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_json_passes_through_untouched() {
        let raw = parse(br#"{"msgtype":"text","text":{"content":"hi\n"}}"#.to_vec()).unwrap();
        assert_eq!(raw.get(), r#"{"msgtype":"text","text":{"content":"hi\n"}}"#);
    }

    #[test]
    fn raw_control_characters_inside_strings_become_escapes() {
        let raw = parse(b"{\"text\":{\"content\":\"a\tb\x01c\nd\"}}".to_vec()).unwrap();
        let value: serde_json::Value = serde_json::from_str(raw.get()).unwrap();
        assert_eq!(value["text"]["content"], "a\tb\u{1}c\nd");
    }

    #[test]
    fn whitespace_between_tokens_is_left_alone() {
        let raw = parse(b"{\n\t\"a\": \"x\\\"\ty\"\n}".to_vec()).unwrap();
        let value: serde_json::Value = serde_json::from_str(raw.get()).unwrap();
        assert_eq!(value["a"], "x\"\ty");
    }

    #[test]
    fn broken_json_and_invalid_utf8_are_errors() {
        assert!(parse(b"{\"a\":".to_vec()).is_err());
        assert!(parse(b"\xff\xfe".to_vec()).is_err());
        assert!(parse(Vec::new()).is_err());
        assert!(parse(b"\"text\"".to_vec()).is_err());
        assert!(parse(b"[1]".to_vec()).is_err());
    }
}
