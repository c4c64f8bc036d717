//! `GetChatData` bodies: generated messages ([`crate::messages`]) sealed the way the real
//! server seals them (`docs/SDK.md` sections 3 and 4).
//!
//! Per message, from a ChaCha20 stream keyed by (seed, seq): a random 32-byte `K` and `k1`
//! (base64 alphabet), the layout of `wecom_sdk_format::encrypt_data` with the corp tag as the
//! 13 leading bytes, a key version, and the RSA PKCS#1 v1.5 padding of `encrypt_random_key`
//! (sealed by [`crate::rsa_seal`]).
//! So the same config gives the same body, byte for byte.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand_chacha::ChaCha20Rng;
use serde::Serialize;
use wecom_sdk_format::codes;

use crate::corp::Corp;
use crate::messages;
use crate::seeding::{self, pick};

#[derive(Serialize)]
struct Body<'a> {
    errcode: i64,
    errmsg: &'a str,
    chatdata: Vec<Entry>,
}

#[derive(Serialize)]
struct Entry {
    seq: u64,
    msgid: String,
    publickey_ver: u32,
    encrypt_random_key: String,
    encrypt_chat_msg: String,
}

/// The success body: messages with seq greater than `seq`, ascending, at most `limit`.
/// Returns the body and the number of messages in it.
pub(crate) fn chat_body(corp: &Corp, seq: u64, limit: u32) -> (Vec<u8>, u64) {
    let first = seq.saturating_add(1);
    let last = seq
        .saturating_add(u64::from(limit))
        .min(corp.config.message_count);
    let chatdata: Vec<Entry> = (first..=last).map(|seq| entry(corp, seq)).collect();
    let count = chatdata.len() as u64;
    let body = Body {
        errcode: 0,
        errmsg: "ok",
        chatdata,
    };
    (
        serde_json::to_vec(&body).expect("a body always serialises"),
        count,
    )
}

/// A body carrying a server error, as the real server answers with return code 0.
pub(crate) fn error_body(errcode: i64) -> Vec<u8> {
    let errmsg = match errcode {
        codes::SERVER_WHITEIP_NOT_MATCH => {
            "not allow to access from your ip, whiteip not match (emulated)"
        }
        codes::SERVER_SUBSCRIPTION_EXPIRED => "chat archive subscription expired (emulated)",
        _ => "emulated server error",
    };
    let body = Body {
        errcode,
        errmsg,
        chatdata: Vec::new(),
    };
    serde_json::to_vec(&body).expect("a body always serialises")
}

fn entry(corp: &Corp, seq: u64) -> Entry {
    let message = messages::generate(&corp.config, &corp.mix, seq);
    let mut rng = seeding::rng("seal", corp.config.seed, &[&seq.to_le_bytes()]);
    let key = key_text(&mut rng);
    let k1 = key_text(&mut rng);
    let (encrypt_key, encrypt_chat_msg) =
        wecom_sdk_format::encrypt_data(&message.plaintext, &corp.tag, &key, &k1, &mut rng);
    // Keys of at least 1024 bits (checked at load) carry the 88-byte encrypt_key.
    let (version, sealer) = pick(&mut rng, &corp.keys);
    let sealed = sealer.seal(&mut rng, encrypt_key.as_bytes());
    Entry {
        seq,
        msgid: message.msgid,
        publickey_ver: *version,
        encrypt_random_key: STANDARD.encode(sealed),
        encrypt_chat_msg,
    }
}

/// 32 characters of the base64 alphabet, like the keys of real messages.
fn key_text(rng: &mut ChaCha20Rng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..32).map(|_| char::from(*pick(rng, ALPHABET))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CorpConfig, MediaSizes};
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::{Pkcs1v15Encrypt, RsaPrivateKey};
    use serde_json::Value;

    fn small_corp() -> Corp {
        Corp::new(
            CorpConfig {
                message_count: 30,
                media_sizes: MediaSizes { min: 0, max: 2048 },
                ..CorpConfig::default()
            },
            0,
            None,
        )
        .unwrap()
    }

    fn private_key(version: u64) -> RsaPrivateKey {
        let pem = match version {
            1 => include_str!("../../tests/fixtures/keys/v1.pem"),
            _ => include_str!("../../tests/fixtures/keys/v2.pem"),
        };
        RsaPrivateKey::from_pkcs1_pem(pem)
            .or_else(|_| rsa::pkcs8::DecodePrivateKey::from_pkcs8_pem(pem))
            .unwrap()
    }

    #[test]
    fn bodies_page_through_the_archive_and_decrypt_to_the_messages() {
        let corp = small_corp();
        let (body, count) = chat_body(&corp, 25, 10);
        assert_eq!(count, 5);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (body["errcode"].as_i64(), body["errmsg"].as_str()),
            (Some(0), Some("ok"))
        );
        let entries = body["chatdata"].as_array().unwrap();
        let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, [26, 27, 28, 29, 30]);
        for e in entries {
            let version = e["publickey_ver"].as_u64().unwrap();
            let sealed = STANDARD
                .decode(e["encrypt_random_key"].as_str().unwrap())
                .unwrap();
            let ek = private_key(version)
                .decrypt(Pkcs1v15Encrypt, &sealed)
                .unwrap();
            let msg = e["encrypt_chat_msg"].as_str().unwrap();
            assert!(msg.starts_with(&corp.tag));
            let plaintext = wecom_sdk_format::decrypt_data(&ek, msg.as_bytes()).unwrap();
            let seq = e["seq"].as_u64().unwrap();
            assert_eq!(plaintext, messages::message_plaintext(&corp.config, seq));
            let text = String::from_utf8(plaintext).unwrap();
            assert!(text.contains(e["msgid"].as_str().unwrap()));
        }
    }

    #[test]
    fn bodies_are_deterministic_and_stop_at_the_end() {
        let corp = small_corp();
        assert_eq!(chat_body(&corp, 0, 7), chat_body(&small_corp(), 0, 7));
        assert_eq!(chat_body(&corp, 30, 100).1, 0);
        assert_eq!(chat_body(&corp, u64::MAX, 1000).1, 0);
        let (first, _) = chat_body(&corp, 0, 3);
        let (second, _) = chat_body(&corp, 1, 2);
        let entries = |b: &[u8]| serde_json::from_slice::<Value>(b).unwrap()["chatdata"].clone();
        assert_eq!(
            entries(&first)[1],
            entries(&second)[0],
            "re-reading a seq gives the same entry"
        );
    }

    #[test]
    fn both_key_versions_are_used() {
        let (body, _) = chat_body(&small_corp(), 0, 30);
        let body: Value = serde_json::from_slice(&body).unwrap();
        let versions: std::collections::BTreeSet<u64> = body["chatdata"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["publickey_ver"].as_u64().unwrap())
            .collect();
        assert_eq!(versions.into_iter().collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn error_bodies_carry_the_errcode_and_no_messages() {
        let body: Value = serde_json::from_slice(&error_body(301042)).unwrap();
        assert_eq!(body["errcode"], 301042);
        assert!(body["errmsg"]
            .as_str()
            .unwrap()
            .contains("whiteip not match"));
        assert_eq!(body["chatdata"], Value::Array(vec![]));
    }
}
