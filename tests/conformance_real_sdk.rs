//! Conformance against the real `libWeWorkFinanceSdk_C.so`: the facts the binding and the
//! emulator rely on (`docs/SDK.md`), checked on the library itself, offline.
//!
//! `real_library_conforms` downloads and verifies the library, then runs the `netns_` tests of
//! this binary again inside `unshare -n` (loopback only): the real library never reaches
//! the internet. The inner tests are `#[ignore]`d so that they only ever run there.

mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;

use base64::Engine;
use rand::{RngCore, SeedableRng};
use secrecy::SecretString;
use wecom_archive::decrypt::{decrypt_page, decrypt_page_with, lenient_json};
use wecom_archive::sdk::guard::Refused;
use wecom_archive::sdk::{FinanceSdk, NetOptions, SdkError, SYMBOL_NAMES};
use wecom_archive::sdk_host::client::HostSpawner;
use wecom_sdk_format::decrypt::{check_layout, encrypt_data, Crash, Failure};

use common::real_sdk;

#[test]
fn real_library_conforms() {
    let output = real_sdk::run_in_netns("netns_");
    for test in [
        "netns_symbols_load_and_bad_parameters_give_10000",
        "netns_a_closed_proxy_gives_10001",
        "netns_real_decrypt_data_matches_the_emulator_on_a_thousand_messages",
        "netns_crashing_inputs_are_refused_and_the_process_survives",
        "netns_the_crash_table_holds_for_the_real_library_and_the_emulator",
        "netns_the_real_library_answers_through_an_sdk_host",
    ] {
        assert!(
            output.contains(&format!("test {test} ...")),
            "{test} did not run:\n{output}"
        );
    }
    assert!(
        output.contains("test result: ok. 6 passed; 0 failed"),
        "{output}"
    );
}

/// The real library in an SDK host process, as the worker runs it by default: codes, refusals
/// and `DecryptData` come back through the socket as they do in process.
#[test]
#[ignore = "runs inside a network namespace, started by real_library_conforms"]
fn netns_the_real_library_answers_through_an_sdk_host() {
    let spawner = HostSpawner {
        exe: common::cli(),
        lib: real_sdk::inner_lib(),
        call_timeout: std::time::Duration::from_secs(30),
    };
    spawner.probe().expect("a host loads the real library");
    let mut host = spawner
        .spawn("wwcorp", &SecretString::from("secret"))
        .unwrap();
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let closed_proxy = NetOptions {
        proxy: Some(format!("http://127.0.0.1:{port}")),
        proxy_password: None,
        timeout_secs: 2,
    };
    match host.get_chat_data(0, 10, &closed_proxy) {
        Err(SdkError::Code { code, .. }) => assert_eq!(code.raw(), 10001),
        other => panic!("expected 10001, got {other:?}"),
    }
    assert!(matches!(
        host.get_chat_data(0, 0, &NetOptions::default()),
        Err(SdkError::Refused(Refused::LimitOutOfRange(0)))
    ));

    // A page of emulator messages: the real DecryptData in the host decrypts it exactly as the
    // emulator's does in process.
    let emulator = FinanceSdk::load(&common::emulator_lib()).unwrap();
    let keys = common::default_keys();
    let mut handle = emulator
        .open_handle(common::CORPID, &SecretString::from(common::SECRET))
        .unwrap();
    let page = handle
        .get_chat_data(0, 200, &NetOptions::default())
        .unwrap();
    let in_process = decrypt_page(&emulator, &keys, &page);
    let hosted = decrypt_page_with(&keys, &page, |items| host.decrypt_batch(items)).unwrap();
    assert_eq!(hosted.messages.len(), in_process.messages.len());
    assert_eq!(hosted.errors.len(), in_process.errors.len());
    for (ours, theirs) in in_process.messages.iter().zip(&hosted.messages) {
        assert_eq!(ours.seq, theirs.seq);
        assert_eq!(ours.message.get(), theirs.message.get(), "seq {}", ours.seq);
    }
}

fn real() -> std::sync::Arc<FinanceSdk> {
    FinanceSdk::load(&real_sdk::inner_lib()).expect("the real library loads with all 17 symbols")
}

#[test]
#[ignore = "runs inside a network namespace, started by real_library_conforms"]
fn netns_symbols_load_and_bad_parameters_give_10000() {
    let sdk = real();
    assert_eq!(SYMBOL_NAMES.len(), 17);
    assert_eq!(sdk.probe_init("", "").unwrap(), 10000);
    assert_eq!(sdk.probe_init("wwcorp", "").unwrap(), 10000);
    assert_eq!(sdk.probe_init("", "secret").unwrap(), 10000);
    assert_eq!(
        sdk.probe_init("wwcorp", "secret").unwrap(),
        0,
        "Init checks nothing"
    );

    let mut handle = sdk
        .open_handle("wwcorp", &SecretString::from("secret"))
        .unwrap();
    assert_eq!(handle.probe_chat_data(0, 0, 1).unwrap(), 10000);
    assert_eq!(handle.probe_chat_data(0, 1001, 1).unwrap(), 10000);
    assert_eq!(handle.probe_media_data("", "", 1).unwrap(), 10000);
    for malformed in [
        "Range:bytes=0-14",
        "Range:bytes=9-0",
        "bytes=0-15",
        "garbage",
    ] {
        assert_eq!(
            handle
                .probe_media_data(malformed, "c29tZWZpbGVpZA==", 1)
                .unwrap(),
            10000,
            "{malformed}"
        );
    }
}

#[test]
#[ignore = "runs inside a network namespace, started by real_library_conforms"]
fn netns_a_closed_proxy_gives_10001() {
    let sdk = real();
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }; // closed again here
    let net = NetOptions {
        proxy: Some(format!("http://127.0.0.1:{port}")),
        proxy_password: None,
        timeout_secs: 2,
    };
    let mut handle = sdk
        .open_handle("wwcorp", &SecretString::from("secret"))
        .unwrap();
    match handle.get_chat_data(0, 10, &net) {
        Err(SdkError::Code { code, .. }) => assert_eq!(code.raw(), 10001),
        other => panic!("expected 10001, got {other:?}"),
    }
}

#[test]
#[ignore = "runs inside a network namespace, started by real_library_conforms"]
fn netns_real_decrypt_data_matches_the_emulator_on_a_thousand_messages() {
    let real = real();
    let emulator = FinanceSdk::load(&common::emulator_lib()).unwrap();
    let keys = common::default_keys();
    let mut handle = emulator
        .open_handle(common::CORPID, &SecretString::from(common::SECRET))
        .unwrap();
    let (mut seq, mut compared) = (0, 0);
    let (mut msgtypes, mut versions) = (BTreeSet::new(), BTreeSet::new());
    while compared < 1000 {
        let page = handle
            .get_chat_data(seq, 500, &NetOptions::default())
            .unwrap();
        assert!(
            !page.is_empty(),
            "the default corp holds fewer than 1000 messages"
        );
        for message in &page {
            let ciphertext = base64::engine::general_purpose::STANDARD
                .decode(&message.encrypt_random_key)
                .unwrap();
            let key = keys.decrypt(message.publickey_ver, &ciphertext).unwrap();
            let ours = emulator
                .decrypt_data(&key, message.encrypt_chat_msg.as_bytes())
                .unwrap();
            let theirs = real
                .decrypt_data(&key, message.encrypt_chat_msg.as_bytes())
                .unwrap();
            assert_eq!(
                ours, theirs,
                "seq {}: the real library decrypts differently",
                message.seq
            );
            let raw = lenient_json::parse(theirs).expect("plaintext is JSON");
            let json: serde_json::Value = serde_json::from_str(raw.get()).unwrap();
            let kind = json["msgtype"]
                .as_str()
                .or(json["action"].as_str())
                .unwrap_or("?");
            msgtypes.insert(kind.to_owned());
            versions.insert(message.publickey_ver);
            compared += 1;
        }
        seq = page.last().unwrap().seq;
    }
    assert_eq!(versions, BTreeSet::from([1, 2]));
    for kind in [
        "text",
        "image",
        "voice",
        "video",
        "file",
        "emotion",
        "revoke",
        "agree",
        "disagree",
        "mixed",
        "chatrecord",
        "meeting_voice_call",
        "voip_doc_share",
        "switch",
    ] {
        assert!(msgtypes.contains(kind), "no {kind} among {msgtypes:?}");
    }
    println!("compared {compared} messages: {msgtypes:?}");
}

#[test]
#[ignore = "runs inside a network namespace, started by real_library_conforms"]
fn netns_crashing_inputs_are_refused_and_the_process_survives() {
    let sdk = real();
    let long_msg = "A".repeat(200);
    let mut cases: Vec<(Vec<u8>, Vec<u8>, Crash)> = vec![
        (b"a2V5".to_vec(), Vec::new(), Crash::MessageTooShort),
        (
            b"a2V5".to_vec(),
            b"shortmsg1234".to_vec(),
            Crash::MessageTooShort,
        ),
        (
            b"=".to_vec(),
            long_msg.clone().into_bytes(),
            Crash::KeyAllPadding,
        ),
        (
            b"====".to_vec(),
            long_msg.into_bytes(),
            Crash::KeyAllPadding,
        ),
    ];
    cases.push(split_beyond_text());
    for (key, msg, crash) in cases {
        match sdk.decrypt_data(&key, &msg) {
            Err(SdkError::Refused(Refused::CrashingInput(found))) => assert_eq!(found, crash),
            other => panic!("{crash:?} was not refused: {other:?}"),
        }
    }
    // Inputs that only fail reach the library and come back as codes (section 6).
    match sdk.decrypt_data(b"a2V5", "M".repeat(30).as_bytes()) {
        Err(SdkError::Code { code, .. }) => assert_eq!(code.raw(), 10008),
        other => panic!("expected 10008, got {other:?}"),
    }
}

/// A valid key info whose split length runs past the text: a real message, cut short.
fn split_beyond_text() -> (Vec<u8>, Vec<u8>, Crash) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    loop {
        let mut k1 = [0u8; 16];
        rng.fill_bytes(&mut k1);
        let (key, msg) = encrypt_data(
            br#"{"msgtype":"text"}"#,
            "ABCDEFGHIJKLM",
            "0123456789abcdef0123456789abcdef",
            &hex::encode(k1),
            &mut rng,
        );
        let layout = check_layout(key.as_bytes(), msg.as_bytes()).unwrap();
        let (pre, split) = (
            layout.key_info.pre_len as usize,
            layout.key_info.s_len as usize,
        );
        let cut = 45 + pre + split - 1;
        if 2 * split < cut {
            let msg = msg.as_bytes()[..cut].to_vec();
            assert_eq!(
                check_layout(key.as_bytes(), &msg).unwrap_err(),
                Failure::Crash(Crash::SplitBeyondText)
            );
            return (key.into_bytes(), msg, Crash::SplitBeyondText);
        }
    }
}

/// Calls `DecryptData(key, msg, slice)` of `lib` in a child process, with no guard in front, and
/// returns the signal that killed the child (None when it returned a code). Python's ctypes
/// does the raw call, so no `unsafe` is needed here.
fn raw_decrypt_in_child(
    lib: &std::path::Path,
    key: &[u8],
    msg: &[u8],
    null_slice: bool,
) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    const SCRIPT: &str = "import ctypes, os, sys\n\
        lib = ctypes.CDLL(sys.argv[1], mode=os.RTLD_NOW | os.RTLD_LOCAL | os.RTLD_DEEPBIND)\n\
        lib.NewSlice.restype = ctypes.c_void_p\n\
        lib.DecryptData.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]\n\
        out = None if sys.argv[4] == 'null' else lib.NewSlice()\n\
        print(lib.DecryptData(bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3]), out))\n";
    let status = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(lib)
        .args([hex::encode(key), hex::encode(msg)])
        .arg(if null_slice { "null" } else { "slice" })
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    status.signal()
}

/// The crash table of section 6 (and the inferred `BodyAllPadding`), on the real library and on
/// the emulator alike: the guard refuses exactly what kills them.
#[test]
#[ignore = "runs inside a network namespace, started by real_library_conforms"]
fn netns_the_crash_table_holds_for_the_real_library_and_the_emulator() {
    const SIGABRT: i32 = 6;
    const SIGSEGV: i32 = 11;
    let real = real_sdk::inner_lib();
    let emulator = common::emulator_lib();
    let (key, msg, _) = split_beyond_text();
    let (valid_key, valid_msg) = valid_message();
    let long_msg = "A".repeat(200).into_bytes();
    type Case = (&'static str, Vec<u8>, Vec<u8>, bool, Option<i32>);
    let cases: Vec<Case> = vec![
        (
            "empty message",
            b"a2V5".to_vec(),
            Vec::new(),
            false,
            Some(SIGABRT),
        ),
        (
            "12-byte message",
            b"a2V5".to_vec(),
            b"shortmsg1234".to_vec(),
            false,
            Some(SIGABRT),
        ),
        (
            "key '='",
            b"=".to_vec(),
            long_msg.clone(),
            false,
            Some(SIGABRT),
        ),
        (
            "key '===='",
            b"====".to_vec(),
            long_msg.clone(),
            false,
            Some(SIGABRT),
        ),
        ("split beyond text", key, msg, false, Some(SIGABRT)),
        (
            "body all padding",
            valid_key.clone(),
            body_all_padding(&valid_key, &valid_msg),
            false,
            Some(SIGABRT),
        ),
        (
            "NULL slice on success",
            valid_key.clone(),
            valid_msg.clone(),
            true,
            Some(SIGSEGV),
        ),
        (
            "13-byte message: a code",
            b"a2V5".to_vec(),
            b"shortmsg12345".to_vec(),
            false,
            None,
        ),
        ("valid message: a code", valid_key, valid_msg, false, None),
    ];
    for (name, key, msg, null_slice, expected) in cases {
        for lib in [&real, &emulator] {
            let found = raw_decrypt_in_child(lib, &key, &msg, null_slice);
            assert_eq!(found, expected, "{name} on {}", lib.display());
        }
    }
}

/// A message the real library decrypts (built by the shared format code).
fn valid_message() -> (Vec<u8>, Vec<u8>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let (key, msg) = encrypt_data(
        br#"{"msgtype":"text","text":{"content":"hello"}}"#,
        "ABCDEFGHIJKLM",
        "0123456789abcdef0123456789abcdef",
        "fedcba9876543210fedcba9876543210",
        &mut rng,
    );
    (key.into_bytes(), msg.into_bytes())
}

/// `msg` with its body replaced by `=` signs, keeping every junk run and length in place.
fn body_all_padding(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let layout = check_layout(key, msg).unwrap();
    let (pre, split, end) = (
        layout.key_info.pre_len as usize,
        layout.key_info.s_len as usize,
        layout.key_info.end_len as usize,
    );
    let body_len = layout.body.len();
    let start = 45 + pre;
    let mut out = msg[..start].to_vec();
    out.extend(std::iter::repeat_n(b'=', split));
    out.extend_from_slice(&msg[start + split..start + 2 * split]);
    out.extend(std::iter::repeat_n(b'=', body_len - split));
    out.extend_from_slice(&msg[msg.len() - end..]);
    assert_eq!(
        check_layout(key, &out).unwrap_err(),
        Failure::Crash(Crash::BodyAllPadding)
    );
    out
}
