//! Tests of the C ABI, called in-process as C would call it, against the default corp. The
//! crashing cases run in a child process (this test binary again) and check its signal.

use std::ffi::CString;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand_core::SeedableRng;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::{Pkcs1v15Encrypt, RsaPrivateKey};

use super::*;
use crate::call_log::read_call_log;
use crate::config::CorpConfig;
use crate::file_id::media_file_id;
use crate::media::media_content;
use crate::messages::message_plaintext;

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// The bytes of a slice, checking its NUL terminator.
unsafe fn slice_bytes(slice: *mut Slice_t) -> Vec<u8> {
    let len = unsafe { GetSliceLen(slice) } as usize;
    let buf = unsafe { GetContentFromSlice(slice) }.cast::<u8>();
    let bytes = unsafe { std::slice::from_raw_parts(buf, len + 1) };
    assert_eq!(bytes[len], 0, "slice buffers are NUL-terminated");
    bytes[..len].to_vec()
}

/// A session handle on the default corp.
fn session() -> *mut WeWorkFinanceSdk_t {
    let sdk = unsafe { NewSdk() };
    assert!(!sdk.is_null());
    let rc = unsafe {
        Init(
            sdk,
            c("ww-emulator").as_ptr(),
            c("emulator-secret").as_ptr(),
        )
    };
    assert_eq!(rc, 0);
    sdk
}

#[test]
fn empty_structs_and_null_accessors() {
    unsafe {
        let slice = NewSlice();
        assert!((*slice).buf.is_null() && (*slice).len == 0);
        assert_eq!(*GetContentFromSlice(slice), 0);
        assert_eq!(*GetContentFromSlice(std::ptr::null_mut()), 0);
        assert_eq!(GetSliceLen(std::ptr::null_mut()), 0);
        FreeSlice(slice);
        FreeSlice(std::ptr::null_mut());

        let media = NewMediaData();
        let m = &*media;
        assert!(m.outindexbuf.is_null() && m.data.is_null());
        assert_eq!((m.out_len, m.data_len, m.is_finish), (0, 0, 0));
        assert_eq!(IsMediaDataFinish(media), 0);
        assert_eq!(IsMediaDataFinish(std::ptr::null_mut()), 1);
        for null in [
            GetOutIndexBuf(std::ptr::null_mut()),
            GetData(std::ptr::null_mut()),
            GetData(media),
        ] {
            assert!(!null.is_null());
            assert_eq!(*null, 0);
        }
        assert_eq!(GetIndexLen(std::ptr::null_mut()), 0);
        assert_eq!(GetDataLen(std::ptr::null_mut()), 0);
        FreeMediaData(media);
        FreeMediaData(std::ptr::null_mut());
        DestroySdk(std::ptr::null_mut());
    }
}

#[test]
fn parameter_errors_leave_the_output_untouched() {
    unsafe {
        let sdk = NewSdk();
        let slice = NewSlice();
        assert_eq!(Init(sdk, std::ptr::null(), c("s").as_ptr()), 10000);
        assert_eq!(Init(sdk, c("").as_ptr(), c("s").as_ptr()), 10000);
        assert_eq!(
            Init(std::ptr::null_mut(), c("c").as_ptr(), c("s").as_ptr()),
            10000
        );
        let null = std::ptr::null();
        assert_eq!(
            GetChatData(std::ptr::null_mut(), 0, 10, null, null, 5, slice),
            10000
        );
        assert_eq!(
            Init(sdk, c("ww-emulator").as_ptr(), c("wrong").as_ptr()),
            0,
            "unchecked"
        );
        assert_eq!(GetChatData(sdk, 0, 0, null, null, 5, slice), 10000);
        assert_eq!(
            GetChatData(sdk, 0, 10, null, null, 5, slice),
            10001,
            "wrong secret"
        );
        assert_eq!(DecryptData(null, c("m").as_ptr(), slice), 10000);
        assert_eq!(DecryptData(c("k").as_ptr(), null, slice), 10000);
        assert!((*slice).buf.is_null() && (*slice).len == 0);

        let media = NewMediaData();
        let id = c(&media_file_id(10, 1, 1));
        assert_eq!(GetMediaData(sdk, null, null, null, null, 5, media), 10000);
        assert_eq!(
            GetMediaData(
                sdk,
                c("Range:bytes=0-1").as_ptr(),
                id.as_ptr(),
                null,
                null,
                5,
                media
            ),
            10000
        );
        assert_eq!(
            GetMediaData(sdk, null, id.as_ptr(), null, null, 5, media),
            10001
        );
        assert!((*media).data.is_null() && (*media).outindexbuf.is_null());
        FreeSlice(slice);
        FreeMediaData(media);
        DestroySdk(sdk);
    }
}

#[test]
fn messages_fetched_through_the_abi_decrypt_to_the_generated_plaintext() {
    let corp = CorpConfig::default();
    let keys = [
        RsaPrivateKey::from_pkcs1_pem(include_str!("../../../tests/fixtures/keys/v1.pem")).unwrap(),
        rsa::pkcs8::DecodePrivateKey::from_pkcs8_pem(include_str!(
            "../../../tests/fixtures/keys/v2.pem"
        ))
        .unwrap(),
    ];
    unsafe {
        let sdk = session();
        let slice = NewSlice();
        let null = std::ptr::null();
        assert_eq!(GetChatData(sdk, 3, 4, null, null, 5, slice), 0);
        let body: serde_json::Value = serde_json::from_slice(&slice_bytes(slice)).unwrap();
        FreeSlice(slice);
        let entries = body["chatdata"].as_array().unwrap();
        assert_eq!(entries.len(), 4);
        for (entry, seq) in entries.iter().zip(4..) {
            assert_eq!(entry["seq"], seq);
            let version = entry["publickey_ver"].as_u64().unwrap() as usize;
            let sealed = STANDARD
                .decode(entry["encrypt_random_key"].as_str().unwrap())
                .unwrap();
            let ek = keys[version - 1].decrypt(Pkcs1v15Encrypt, &sealed).unwrap();
            let msg = c(entry["encrypt_chat_msg"].as_str().unwrap());
            let out = NewSlice();
            assert_eq!(
                DecryptData(CString::new(ek).unwrap().as_ptr(), msg.as_ptr(), out),
                0
            );
            assert_eq!(slice_bytes(out), message_plaintext(&corp, seq));
            FreeSlice(out);
        }
        DestroySdk(sdk);
    }
}

#[test]
fn a_file_fetched_chunk_by_chunk_matches_its_content() {
    let size = 600_000;
    let id = media_file_id(size, 1, 3);
    let mut expected = Vec::new();
    media_content(1, &id).read_to_end(&mut expected).unwrap();
    let id = c(&id);
    let null = std::ptr::null();
    unsafe {
        let sdk = session();
        let (mut got, mut index) = (Vec::new(), c(""));
        loop {
            let media = NewMediaData();
            assert_eq!(
                GetMediaData(sdk, index.as_ptr(), id.as_ptr(), null, null, 5, media),
                0
            );
            let len = GetDataLen(media) as usize;
            got.extend_from_slice(std::slice::from_raw_parts(GetData(media).cast::<u8>(), len));
            let next = CStr::from_ptr(GetOutIndexBuf(media)).to_owned();
            assert_eq!(GetIndexLen(media) as usize, next.as_bytes().len());
            let finished = IsMediaDataFinish(media) == 1;
            FreeMediaData(media);
            if finished {
                assert!(next.as_bytes().is_empty());
                break;
            }
            assert_eq!(next.to_str().unwrap(), "Range:bytes=524288-600015");
            index = next;
        }
        assert_eq!(got, expected);
        let media = NewMediaData();
        assert_eq!(
            GetMediaData(sdk, null, c("garbage").as_ptr(), null, null, 5, media),
            10005
        );
        assert!((*media).data.is_null());
        FreeMediaData(media);
        DestroySdk(sdk);
    }
}

/// The env that tells [`crash_child`] which crash to perform.
const CRASH_CASE: &str = "WECOM_EMULATOR_TEST_CRASH";

#[test]
#[ignore = "the child of crashes_kill_the_process_like_the_real_library"]
fn crash_child() {
    let case = std::env::var(CRASH_CASE).expect("run by the parent test");
    let null = std::ptr::null();
    let long = c("0123456789abcdefghijklmnopqrstuvwxyz0123456789");
    unsafe {
        match case.as_str() {
            "short message" => DecryptData(c("key").as_ptr(), c("short").as_ptr(), NewSlice()),
            "key of padding" => DecryptData(c("====").as_ptr(), long.as_ptr(), NewSlice()),
            "null output" => {
                let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
                let k = "0123456789abcdefghijklmnopqrstuv";
                let (ek, msg) =
                    wecom_sdk_format::encrypt_data(b"{}", "1234567890123", k, "k1", &mut rng);
                DecryptData(c(&ek).as_ptr(), c(&msg).as_ptr(), std::ptr::null_mut())
            }
            "double destroy" => {
                let sdk = NewSdk();
                DestroySdk(sdk);
                DestroySdk(sdk);
                0
            }
            "bad config" => {
                NewSdk();
                0
            }
            "use after destroy" => {
                let sdk = session();
                DestroySdk(sdk);
                GetChatData(sdk, 0, 1, null, null, 5, NewSlice())
            }
            other => panic!("unknown case {other}"),
        };
    }
    unreachable!("the case {case} should have killed the process");
}

/// Runs [`crash_child`] on `case` with a call log in `dir` (and `config`, if any, as the
/// config file) and returns its signal, stderr and call log.
fn run_crash_child(
    dir: &std::path::Path,
    case: &str,
    config: Option<&str>,
) -> (Option<i32>, String, Vec<crate::CallRecord>) {
    let stem = case.replace(' ', "-");
    let log = dir.join(format!("{stem}.jsonl"));
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "--exact",
            "ffi::tests::crash_child",
            "--ignored",
            "--nocapture",
        ])
        .env(CRASH_CASE, case)
        .env(crate::call_log::CALL_LOG_ENV, &log)
        .env_remove(crate::config::CONFIG_ENV);
    if let Some(text) = config {
        let path = dir.join(format!("{stem}.json"));
        std::fs::write(&path, text).unwrap();
        child.env(crate::config::CONFIG_ENV, path);
    }
    let out = child.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.signal(), stderr, read_call_log(&log))
}

#[test]
fn crashes_kill_the_process_like_the_real_library() {
    let dir = std::env::temp_dir().join(format!("wecom-emu-crash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (case, signal, op) in [
        ("short message", libc::SIGABRT, Op::DecryptData),
        ("key of padding", libc::SIGABRT, Op::DecryptData),
        ("null output", libc::SIGSEGV, Op::DecryptData),
        ("double destroy", libc::SIGSEGV, Op::DestroySdk),
        ("use after destroy", libc::SIGSEGV, Op::GetChatData),
    ] {
        let (got, stderr, mut log) = run_crash_child(&dir, case, None);
        assert_eq!(got, Some(signal), "{case}: {stderr}");
        let last = log.pop().expect("the crashing call is logged");
        let name = if signal == libc::SIGABRT {
            "SIGABRT"
        } else {
            "SIGSEGV"
        };
        assert_eq!(
            (last.op, last.rc, last.crash.as_deref()),
            (op, -i64::from(signal), Some(name)),
            "{case}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_config_stops_the_process_at_the_first_call() {
    let dir = std::env::temp_dir().join(format!("wecom-emu-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = r#"{"corps":[{"corpid":"x","secrte":"typo"}]}"#;
    let (got, stderr, log) = run_crash_child(&dir, "bad config", Some(bad));
    assert_eq!(got, Some(libc::SIGABRT), "{stderr}");
    assert!(
        stderr.contains("invalid emulator config") && stderr.contains("secrte"),
        "{stderr}"
    );
    assert!(log.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
