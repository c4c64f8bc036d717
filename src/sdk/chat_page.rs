//! The body `GetChatData` writes into its slice, and how to read it.
//!
//! Return code 0 only means the HTTP exchange worked: the server's verdict is the `errcode`
//! inside the body (301042 "IP not whitelisted", 301052 "subscription expired", ...). A body
//! that is not JSON at all (a proxy's error page) is an error, never a panic.

use serde::{Deserialize, Serialize};

use super::error::{SdkError, SdkOp};

/// One message as the archive server returns it, still encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedMessage {
    /// The message's position in the corp's archive; the next page starts after the
    /// largest one seen.
    pub seq: u64,
    /// The archive server's id of the message.
    pub msgid: String,
    /// The version of the corp's public key the random key was encrypted with; selects the
    /// private key to decrypt it.
    pub publickey_ver: u32,
    /// Base64 of the RSA PKCS#1 v1.5 ciphertext of the message's random key.
    pub encrypt_random_key: String,
    /// The message itself, encrypted with the random key; `DecryptData` opens it.
    pub encrypt_chat_msg: String,
}

#[derive(Deserialize)]
struct ChatBody {
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    #[serde(default)]
    chatdata: Vec<EncryptedMessage>,
}

pub(crate) fn parse_chat_body(body: &[u8]) -> Result<Vec<EncryptedMessage>, SdkError> {
    let body: ChatBody =
        serde_json::from_slice(body).map_err(|err| SdkError::MalformedResponse {
            op: SdkOp::GetChatData,
            reason: err.to_string(),
        })?;
    if body.errcode != 0 {
        return Err(SdkError::Server {
            errcode: body.errcode,
            errmsg: body.errmsg,
        });
    }
    Ok(body.chatdata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_successful_body_yields_its_messages() {
        let body =
            br#"{"errcode":0,"errmsg":"ok","chatdata":[{"seq":7,"msgid":"m7","publickey_ver":2,
            "encrypt_random_key":"rk","encrypt_chat_msg":"cm"}]}"#;
        let messages = parse_chat_body(body).unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].seq, 7);
        assert_eq!(messages[0].publickey_ver, 2);
    }

    #[test]
    fn a_server_errcode_is_an_error_with_its_code() {
        let body = br#"{"errcode":301042,"errmsg":"whiteip not match","chatdata":[]}"#;
        match parse_chat_body(body) {
            Err(SdkError::Server { errcode, .. }) => assert_eq!(errcode, 301042),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_body_that_is_not_json_is_a_malformed_response() {
        for body in [
            &b"<html>502 Bad Gateway</html>"[..],
            b"",
            b"{\"errcode\":0,",
        ] {
            assert!(matches!(
                parse_chat_body(body),
                Err(SdkError::MalformedResponse { .. })
            ));
        }
    }
}
