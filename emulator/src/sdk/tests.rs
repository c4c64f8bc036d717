//! Tests of [`super::Sdk`] against runtimes built from configs in the test, without the global
//! runtime or the FFI.

use std::net::TcpListener;

use wecom_sdk_format::codes;

use super::*;
use crate::call_log::read_call_log;
use crate::config::{Config, CorpConfig, MediaSizes, OpFaults};
use crate::file_id::media_file_id;

fn corp() -> CorpConfig {
    CorpConfig {
        message_count: 20,
        media_sizes: MediaSizes { min: 0, max: 1024 },
        ..CorpConfig::default()
    }
}

fn runtime(corp: CorpConfig) -> Runtime {
    Runtime::new(
        Config {
            corps: vec![corp],
            call_log: None,
        },
        None,
    )
    .unwrap()
}

fn handle() -> Sdk {
    let sdk = Sdk::new(1);
    assert_eq!(sdk.init(Some(b"ww-emulator"), Some(b"emulator-secret")), 0);
    sdk
}

fn rec() -> CallRecord {
    CallRecord::new(Op::GetChatData)
}

fn closed_proxy() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

fn chat(sdk: &Sdk, rt: &Runtime, seq: u64, limit: u32) -> Result<serde_json::Value, Fail> {
    sdk.get_chat_data(rt, seq, limit, b"", 5, &mut rec())
        .map(|body| serde_json::from_slice(&body).unwrap())
}

fn media(sdk: &Sdk, rt: &Runtime, index: &str, id: &str) -> Result<Chunk, Fail> {
    sdk.get_media_data(rt, index.as_bytes(), id.as_bytes(), b"", 5, &mut rec())
}

#[test]
fn init_needs_both_strings_and_checks_nothing_else() {
    let sdk = Sdk::new(1);
    for (corpid, secret) in [
        (None, Some(&b"s"[..])),
        (Some(&b"c"[..]), None),
        (Some(b""), Some(b"s")),
        (Some(b"c"), Some(b"")),
    ] {
        assert_eq!(sdk.init(corpid, secret), codes::BAD_PARAMETER);
    }
    assert_eq!(sdk.init(Some(b"nobody"), Some(b"wrong")), codes::OK);
}

#[test]
fn get_chat_data_checks_limit_then_proxy_then_token() {
    let rt = runtime(corp());
    let sdk = handle();
    let proxy = closed_proxy();
    for limit in [0, 1001] {
        let got = sdk.get_chat_data(&rt, 0, limit, proxy.as_bytes(), 1, &mut rec());
        assert_eq!(got, Err(Fail::Code(codes::BAD_PARAMETER)), "limit {limit}");
    }
    let got = sdk.get_chat_data(&rt, 0, 10, proxy.as_bytes(), 1, &mut rec());
    assert_eq!(got, Err(Fail::Code(codes::NETWORK_ERROR)));

    for (corpid, secret) in [
        (&b"ww-emulator"[..], &b"wrong"[..]),
        (b"nobody", b"emulator-secret"),
    ] {
        let bad = Sdk::new(2);
        bad.init(Some(corpid), Some(secret));
        assert_eq!(
            chat(&bad, &rt, 0, 10),
            Err(Fail::Code(codes::NETWORK_ERROR))
        );
    }
    assert_eq!(
        chat(&Sdk::new(3), &rt, 0, 10),
        Err(Fail::Code(codes::NETWORK_ERROR)),
        "no Init"
    );

    let body = chat(&sdk, &rt, 0, 1000).unwrap();
    assert_eq!(body["chatdata"].as_array().unwrap().len(), 20);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = format!("socks5://{}", listener.local_addr().unwrap());
    assert!(sdk
        .get_chat_data(&rt, 0, 1, open.as_bytes(), 1, &mut rec())
        .is_ok());
}

#[test]
fn a_corp_off_the_whitelist_gets_an_error_body() {
    let rt = runtime(CorpConfig {
        whitelisted: false,
        ..corp()
    });
    let body = chat(&handle(), &rt, 0, 10).unwrap();
    assert_eq!(body["errcode"], 301042);
    assert_eq!(body["chatdata"].as_array().unwrap().len(), 0);
    let id = media_file_id(10, 1, 1);
    assert_eq!(
        media(&handle(), &rt, "", &id),
        Err(Fail::Code(codes::IP_NOT_WHITELISTED))
    );
}

#[test]
fn chat_faults_give_codes_or_error_bodies() {
    let mut config = corp();
    config.faults.get_chat_data = OpFaults {
        script: vec![10001, 301052, 0],
        ..OpFaults::default()
    };
    let rt = runtime(config);
    let sdk = handle();
    let mut first = rec();
    assert_eq!(
        sdk.get_chat_data(&rt, 0, 10, b"", 5, &mut first),
        Err(Fail::Code(10001))
    );
    assert!(first.fault);
    assert_eq!(chat(&sdk, &rt, 0, 10).unwrap()["errcode"], 301052);
    assert_eq!(chat(&sdk, &rt, 0, 10).unwrap()["errcode"], 0);
    // Parameter errors do not count as calls.
    let mut config = corp();
    config.faults.get_chat_data.script = vec![10003];
    let rt = runtime(config);
    assert_eq!(chat(&sdk, &rt, 0, 0), Err(Fail::Code(codes::BAD_PARAMETER)));
    assert_eq!(chat(&sdk, &rt, 0, 10), Err(Fail::Code(10003)));
}

#[test]
fn get_media_data_checks_in_the_documented_order() {
    let mut config = corp();
    config.media_expired_before_seq = 5;
    let rt = runtime(config);
    let sdk = handle();
    let id = media_file_id(100, 5, 1);
    assert_eq!(
        media(&sdk, &rt, "", ""),
        Err(Fail::Code(codes::BAD_PARAMETER))
    );
    let wrong = Sdk::new(2);
    wrong.init(Some(b"ww-emulator"), Some(b"wrong"));
    assert_eq!(
        media(&wrong, &rt, "Range:bytes=0-14", &id),
        Err(Fail::Code(codes::BAD_PARAMETER))
    );
    assert_eq!(
        media(&wrong, &rt, "", &id),
        Err(Fail::Code(codes::NETWORK_ERROR))
    );
    assert_eq!(
        media(&sdk, &rt, "", "garbage"),
        Err(Fail::Code(codes::BAD_FILEID_OR_KEY_INFO))
    );
    let old = media_file_id(100, 4, 1);
    assert_eq!(
        media(&sdk, &rt, "", &old),
        Err(Fail::Code(codes::DATA_EXPIRED))
    );
    assert_eq!(
        media(&sdk, &rt, "Range:bytes=112-127", &id),
        Err(Fail::Code(codes::DATA_PARSE_ERROR)),
        "100 bytes encrypt to 112"
    );
    let chunk = media(&sdk, &rt, "", &id).unwrap();
    assert_eq!(
        (chunk.data.len(), chunk.next_index.as_str(), chunk.is_finish),
        (100, "", true)
    );
}

#[test]
fn a_large_file_is_served_in_chunks_that_add_up() {
    let rt = runtime(corp());
    let sdk = handle();
    let size = 1_300_000;
    let id = media_file_id(size, 1, 9);
    let mut expected = Vec::new();
    std::io::Read::read_to_end(&mut crate::media::media_content(1, &id), &mut expected).unwrap();
    let (mut got, mut index, mut calls) = (Vec::new(), String::new(), 0);
    loop {
        let chunk = media(&sdk, &rt, &index, &id).unwrap();
        calls += 1;
        got.extend(chunk.data);
        if chunk.is_finish {
            break;
        }
        index = chunk.next_index;
    }
    assert_eq!(calls, 3);
    assert_eq!(got, expected);
}

#[test]
fn media_faults_and_aborts_come_after_the_parameter_checks() {
    let id = media_file_id(10, 1, 1);
    let mut config = corp();
    config.faults.get_media_data = OpFaults {
        script: vec![10002],
        abort_on_sdkfileid: vec![id.clone()],
        ..OpFaults::default()
    };
    let rt = runtime(config);
    let sdk = handle();
    assert_eq!(
        media(&sdk, &rt, "bad", &id),
        Err(Fail::Code(codes::BAD_PARAMETER))
    );
    assert!(matches!(media(&sdk, &rt, "", &id), Err(Fail::Abort(_))));
    assert_eq!(media(&sdk, &rt, "", "garbage"), Err(Fail::Code(10002)));
    assert_eq!(
        media(&sdk, &rt, "", "garbage"),
        Err(Fail::Code(codes::BAD_FILEID_OR_KEY_INFO))
    );
}

#[test]
fn each_handle_fetches_its_token_once() {
    let dir = std::env::temp_dir().join(format!("wecom-emu-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("calls.jsonl");
    let _ = std::fs::remove_file(&path);
    let rt = Runtime::new(
        Config {
            corps: vec![corp()],
            call_log: Some(path.clone()),
        },
        None,
    )
    .unwrap();
    let (a, b) = (handle(), Sdk::new(2));
    b.init(Some(b"ww-emulator"), Some(b"emulator-secret"));
    for _ in 0..3 {
        chat(&a, &rt, 0, 1).unwrap();
    }
    chat(&b, &rt, 0, 1).unwrap();
    let tokens: Vec<_> = read_call_log(&path)
        .into_iter()
        .filter(|r| r.op == Op::GetToken)
        .map(|r| (r.handle, r.corpid))
        .collect();
    let corpid = Some("ww-emulator".to_owned());
    assert_eq!(tokens, [(Some(1), corpid.clone()), (Some(2), corpid)]);
    std::fs::remove_dir_all(&dir).unwrap();
}
