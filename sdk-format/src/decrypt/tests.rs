//! Tests of [`super`]: round trips through `encrypt_data`, and every code and crash of
//! `DecryptData` built by hand with `cipher::enc`.

use prost::Message as _;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

const K: &str = "0123456789abcdefghijklmnopqrstuv";
const HEAD: &str = "HEADHEADHEAD1";

fn ascii(rng: &mut ChaCha8Rng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(b'!' + (rng.next_u32() % 94) as u8))
        .collect()
}

/// An `encrypt_key` holding `info` under `K`.
fn key_for(info: &KeyInfo) -> String {
    cipher::enc(K.as_bytes(), [9; 16], &info.encode_to_vec())
}

fn info(pre_len: i32, s_len: i32, end_len: i32) -> KeyInfo {
    KeyInfo {
        k1: "body key".into(),
        pre_len,
        end_len,
        s_len,
    }
}

/// `HEAD + K + tail`.
fn msg(tail: &str) -> String {
    format!("{HEAD}{K}{tail}")
}

fn code(code: i32) -> Result<Vec<u8>, Failure> {
    Err(Failure::Code(code))
}

fn crash(crash: Crash) -> Result<Vec<u8>, Failure> {
    Err(Failure::Crash(crash))
}

#[test]
fn random_messages_round_trip() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for round in 0..500 {
        let mut plaintext = vec![0u8; (rng.next_u32() % 3000) as usize];
        rng.fill_bytes(&mut plaintext);
        let head = ascii(&mut rng, 13);
        let key = ascii(&mut rng, 32);
        let k1_len = (rng.next_u32() % 48) as usize;
        let k1 = ascii(&mut rng, k1_len);
        let (ek, m) = encrypt_data(&plaintext, &head, &key, &k1, &mut rng);
        assert!(m.starts_with(&format!("{head}{key}")), "round {round}");
        let layout = check_layout(ek.as_bytes(), m.as_bytes()).expect("layout");
        assert_eq!(layout.key_info.k1, k1, "round {round}");
        assert_eq!(layout.decrypt(), Ok(plaintext), "round {round}");
    }
}

#[test]
fn same_rng_state_gives_same_message() {
    let build = || encrypt_data(b"{}", HEAD, K, "k1", &mut ChaCha8Rng::seed_from_u64(5));
    assert_eq!(build(), build());
    let other = encrypt_data(b"{}", HEAD, K, "k1", &mut ChaCha8Rng::seed_from_u64(6));
    assert_ne!(build(), other);
}

#[test]
fn a_message_shorter_than_13_bytes_aborts() {
    let ek = key_for(&info(0, 1, 0));
    for m in ["", "123456789012"] {
        assert_eq!(
            decrypt_data(ek.as_bytes(), m.as_bytes()),
            crash(Crash::MessageTooShort)
        );
    }
    // Even when the key is all padding: the message is looked at first.
    assert_eq!(decrypt_data(b"=", b"short"), crash(Crash::MessageTooShort));
}

#[test]
fn a_key_of_only_padding_aborts() {
    let m = msg("whatever follows");
    for ek in ["=", "====", "A======="] {
        assert_eq!(
            decrypt_data(ek.as_bytes(), m.as_bytes()),
            crash(Crash::KeyAllPadding),
            "{ek}"
        );
    }
}

#[test]
fn a_split_beyond_the_remaining_text_aborts() {
    // 100 bytes after K; pre_len 90 leaves 10; s_len 20 passes 2*s_len < len(M) but not erase.
    let m = msg(&"A".repeat(100));
    let ek = key_for(&info(90, 20, 0));
    assert_eq!(
        decrypt_data(ek.as_bytes(), m.as_bytes()),
        crash(Crash::SplitBeyondText)
    );
    // At exactly the end, erase removes nothing and does not throw.
    let ek = key_for(&info(90, 10, 0));
    assert_eq!(
        decrypt_data(ek.as_bytes(), m.as_bytes()),
        code(codes::DECRYPT_FAILED)
    );
}

#[test]
fn a_body_of_only_padding_aborts() {
    let m = msg("====");
    let ek = key_for(&info(0, 4, 0));
    assert_eq!(
        decrypt_data(ek.as_bytes(), m.as_bytes()),
        crash(Crash::BodyAllPadding)
    );
    assert_eq!(
        check_layout(ek.as_bytes(), m.as_bytes()),
        Err(Failure::Crash(Crash::BodyAllPadding))
    );
}

#[test]
fn messages_of_13_to_44_bytes_give_10008() {
    let (ek, m) = encrypt_data(b"{}", HEAD, K, "k1", &mut ChaCha8Rng::seed_from_u64(2));
    for len in 13..45 {
        assert_eq!(
            decrypt_data(ek.as_bytes(), &m.as_bytes()[..len]),
            code(codes::BAD_ENCRYPT_KEY),
            "len {len}"
        );
    }
}

#[test]
fn bad_encrypt_keys_give_10008() {
    let (ek, m) = encrypt_data(b"{}", HEAD, K, "k1", &mut ChaCha8Rng::seed_from_u64(3));
    let m = m.as_bytes();
    assert_eq!(decrypt_data(b"", m), code(codes::BAD_ENCRYPT_KEY));
    assert_eq!(
        decrypt_data(b"not base64 at all!", m),
        code(codes::BAD_ENCRYPT_KEY)
    );
    let other_k = cipher::enc(b"another key", [1; 16], &info(0, 1, 0).encode_to_vec());
    assert_eq!(
        decrypt_data(other_k.as_bytes(), m),
        code(codes::BAD_ENCRYPT_KEY)
    );
    assert_eq!(
        decrypt_data(&ek.as_bytes()[..ek.len() - 4], m),
        code(codes::BAD_ENCRYPT_KEY)
    );
}

#[test]
fn random_megabytes_give_10008() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut ek = vec![0u8; 1 << 20];
    let mut m = vec![0u8; 1 << 20];
    rng.fill_bytes(&mut ek);
    rng.fill_bytes(&mut m);
    assert_eq!(decrypt_data(&ek, &m), code(codes::BAD_ENCRYPT_KEY));
}

#[test]
fn bad_key_info_gives_10005() {
    let m = msg(&"A".repeat(100));
    let cases = [
        (
            "not protobuf",
            cipher::enc(K.as_bytes(), [2; 16], &[0xff; 7]),
        ),
        ("s_len 0", key_for(&info(0, 0, 0))),
        ("s_len negative", key_for(&info(0, -3, 0))),
        ("2*s_len > len(M)", key_for(&info(0, 73, 0))),
        (
            "s_len overflowing i32 twice",
            key_for(&info(0, i32::MAX, 0)),
        ),
        ("pre_len before K", key_for(&info(-46, 1, 0))),
        ("pre_len past the end", key_for(&info(101, 1, 0))),
        ("end_len negative", key_for(&info(0, 1, -1))),
        ("end_len beyond the body", key_for(&info(0, 1, 100))),
    ];
    for (what, ek) in cases {
        assert_eq!(
            decrypt_data(ek.as_bytes(), m.as_bytes()),
            code(codes::BAD_FILEID_OR_KEY_INFO),
            "{what}"
        );
    }
    // The limits themselves pass the checks and reach the body decryption.
    for (pre_len, s_len, end_len) in [(-45, 1, 0), (99, 1, 0), (0, 72, 0), (0, 1, 99)] {
        let ek = key_for(&info(pre_len, s_len, end_len));
        assert_eq!(
            decrypt_data(ek.as_bytes(), m.as_bytes()),
            code(codes::DECRYPT_FAILED),
            "{pre_len} {s_len} {end_len}"
        );
    }
}

#[test]
fn a_truncated_message_gives_10006() {
    let plaintext = vec![b'x'; 600];
    let (ek, m) = encrypt_data(&plaintext, HEAD, K, "k1", &mut ChaCha8Rng::seed_from_u64(7));
    for cut in 1..=40 {
        assert_eq!(
            decrypt_data(ek.as_bytes(), &m.as_bytes()[..m.len() - cut]),
            code(codes::DECRYPT_FAILED),
            "cut {cut}"
        );
    }
}

#[test]
fn a_wrong_body_key_gives_10006() {
    let (ek, m) = encrypt_data(b"{}", HEAD, K, "right", &mut ChaCha8Rng::seed_from_u64(8));
    let mut layout = check_layout(ek.as_bytes(), m.as_bytes()).unwrap();
    assert_eq!(layout.decrypt(), Ok(b"{}".to_vec()));
    layout.key_info.k1 = "wrong".into();
    assert_eq!(layout.decrypt(), code(codes::DECRYPT_FAILED));
}
