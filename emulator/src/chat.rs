//! `GetChatData` bodies: generated messages ([`crate::messages`]) sealed the way the real
//! server seals them (`docs/SDK.md` sections 3 and 4).
//!
//! Per message, from a ChaCha20 stream keyed by (seed, seq): a random 32-byte `K` and `k1`
//! (base64 alphabet), the layout of `wecom_sdk_format::encrypt_data` with the corp tag as the
//! 13 leading bytes, a key version, and the RSA PKCS#1 v1.5 padding of `encrypt_random_key`
//! (sealed by [`crate::rsa_seal`]).
//! So the same config gives the same body, byte for byte.

use std::borrow::Cow;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand_chacha::ChaCha20Rng;
use serde::Serialize;
use wecom_sdk_format::codes;

use crate::config::CorpConfig;
use crate::corp::Corp;
use crate::messages;
use crate::seeding::{self, pick};

#[derive(Serialize)]
struct Body<'a> {
    errcode: i64,
    errmsg: &'a str,
    chatdata: Vec<Cow<'a, Entry>>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Entry {
    pub seq: u64,
    msgid: String,
    publickey_ver: u32,
    encrypt_random_key: String,
    encrypt_chat_msg: String,
}

/// The success body: messages with seq greater than `seq`, ascending, at most `limit`, fewer
/// when the corp's `short_page_probability` cuts this answer short. Returns the body and the
/// number of messages in it.
pub(crate) fn chat_body(corp: &Corp, seq: u64, limit: u32) -> (Vec<u8>, u64) {
    let config = &corp.config;
    let first = seq.saturating_add(1);
    let take = answer_size(config, seq, limit);
    let chatdata: Vec<Cow<Entry>> = (first..=config.message_count)
        .filter(|&seq| holds_seq(config, seq))
        .take(take)
        .map(|seq| entry(corp, seq))
        .collect();
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

/// Whether the archive of `corp` holds a message at `seq` (in `1..=message_count`, and not
/// one of the gaps its `seq_gap_probability` draws).
pub fn holds_seq(corp: &CorpConfig, seq: u64) -> bool {
    if !(1..=corp.message_count).contains(&seq) {
        return false;
    }
    corp.seq_gap_probability <= 0.0
        || seeding::fraction(&seeding::key("gap", corp.seed, &[&seq.to_le_bytes()]))
            >= corp.seq_gap_probability
}

/// How many messages an answer to `GetChatData(seq, limit)` may hold: `limit`, or, for an
/// answer the corp's `short_page_probability` cuts short, 1 to `limit - 1`.
fn answer_size(corp: &CorpConfig, seq: u64, limit: u32) -> usize {
    let limit = u64::from(limit);
    if corp.short_page_probability <= 0.0 || limit < 2 {
        return limit as usize;
    }
    let mut rng = seeding::rng(
        "short",
        corp.seed,
        &[&seq.to_le_bytes(), &limit.to_le_bytes()],
    );
    let mut key = [0; 32];
    rand_core::RngCore::fill_bytes(&mut rng, &mut key);
    if seeding::fraction(&key) >= corp.short_page_probability {
        return limit as usize;
    }
    (1 + seeding::below(&mut rng, limit - 1)) as usize
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

/// The entry of `seq`: stored, if the corp's archive was sealed at load, else sealed now.
fn entry(corp: &Corp, seq: u64) -> Cow<'_, Entry> {
    match corp.sealed.as_ref().and_then(|store| store.get(seq)) {
        Some(stored) => Cow::Borrowed(stored),
        None => Cow::Owned(seal_entry(corp, seq)),
    }
}

/// Every entry of the archive of `corp`, sealed now: what [`crate::sealed_store`] stores.
pub(crate) fn seal_archive(corp: &Corp) -> impl Iterator<Item = Entry> + '_ {
    (1..=corp.config.message_count)
        .filter(|&seq| holds_seq(&corp.config, seq))
        .map(|seq| seal_entry(corp, seq))
}

fn seal_entry(corp: &Corp, seq: u64) -> Entry {
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
    use crate::config::MediaSizes;
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
    fn a_corp_sealed_at_load_serves_the_same_bytes_from_its_store() {
        let config = CorpConfig {
            seq_gap_probability: 0.3,
            ..small_corp().config
        };
        let sealed = corp_with(CorpConfig {
            sealed_at_load: true,
            ..config.clone()
        });
        let held = (0..=31).filter(|&s| holds_seq(&config, s)).count();
        assert_eq!(sealed.sealed.as_ref().unwrap().len(), held);
        for (seq, limit) in [(0, 100), (5, 10), (29, 10)] {
            assert_eq!(
                chat_body(&sealed, seq, limit),
                chat_body(&corp_with(config.clone()), seq, limit)
            );
        }
        assert!(small_corp().sealed.is_none());
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

    fn seqs_of(body: &[u8]) -> Vec<u64> {
        let body: Value = serde_json::from_slice(body).unwrap();
        body["chatdata"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect()
    }

    fn corp_with(config: CorpConfig) -> Corp {
        Corp::new(config, 0, None).unwrap()
    }

    #[test]
    fn gaps_leave_seqs_out_of_every_answer_and_nothing_else() {
        let config = CorpConfig {
            message_count: 400,
            seq_gap_probability: 0.3,
            media_sizes: MediaSizes { min: 0, max: 16 },
            ..CorpConfig::default()
        };
        let held: Vec<u64> = (0..=401).filter(|&s| holds_seq(&config, s)).collect();
        assert!(
            (220..=340).contains(&held.len()),
            "{} of 400 held",
            held.len()
        );
        assert!(!holds_seq(&config, 0) && !holds_seq(&config, 401));
        let corp = corp_with(config);
        let (body, count) = chat_body(&corp, 0, 1000);
        assert_eq!(seqs_of(&body), held);
        assert_eq!(count, held.len() as u64);
        // An answer after a seq holds the next `limit` held seqs, whether that seq is held or not.
        for after in [0, 17, 18, 19, 200] {
            let expected: Vec<u64> = held
                .iter()
                .copied()
                .filter(|&s| s > after)
                .take(10)
                .collect();
            assert_eq!(seqs_of(&chat_body(&corp, after, 10).0), expected);
        }
    }

    #[test]
    fn short_answers_hold_fewer_than_the_limit_and_the_same_for_the_same_call() {
        let corp = corp_with(CorpConfig {
            message_count: 3000,
            short_page_probability: 0.5,
            media_sizes: MediaSizes { min: 0, max: 16 },
            ..CorpConfig::default()
        });
        let sizes: Vec<u64> = (0..60).map(|s| chat_body(&corp, s * 40, 20).1).collect();
        let short = sizes.iter().filter(|&&n| n < 20).count();
        assert!((15..=45).contains(&short), "{short} of 60 short: {sizes:?}");
        assert!(sizes.iter().all(|&n| (1..=20).contains(&n)));
        assert_eq!(chat_body(&corp, 40, 20), chat_body(&corp, 40, 20));
        // Short or not, an answer is the next messages in order.
        let seqs = seqs_of(&chat_body(&corp, 40, 20).0);
        assert_eq!(seqs, (41..41 + seqs.len() as u64).collect::<Vec<_>>());
        // One message asked, one message given.
        assert!((0..50).all(|s| chat_body(&corp, s, 1).1 == 1));
    }
}
