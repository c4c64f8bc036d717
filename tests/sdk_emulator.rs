//! The binding against the emulator, through the real shared library: return codes, paging,
//! per-message failures, media of every edge size, retries and resume, refused inputs.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use wecom_archive::decrypt::decrypt_page;
use wecom_archive::keys::KeyRing;
use wecom_archive::media::{
    download, ChunkRetry, DownloadError, FsStore, MediaKey, MediaStore, Unfinished,
};
use wecom_archive::sdk::guard::Refused;
use wecom_archive::sdk::{ErrorClass, NetOptions, SdkError, SdkHandle};

use common::{default_config, Emulator};

const CHUNK: u64 = 524_288;

fn quick_retry(attempts: u32) -> ChunkRetry {
    ChunkRetry {
        attempts,
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(1),
    }
}

fn code_of(result: Result<impl std::fmt::Debug, SdkError>) -> i64 {
    match result {
        Err(SdkError::Code { code, .. }) => code.raw().into(),
        Err(SdkError::Server { errcode, .. }) => errcode,
        other => panic!("expected an SDK code, got {other:?}"),
    }
}

fn fetch_into_store(
    handle: &mut SdkHandle,
    store: &FsStore,
    sdkfileid: &str,
    md5: Option<&str>,
    retry: &ChunkRetry,
) -> Result<wecom_archive::media::MediaReport, wecom_archive::media::Unfinished> {
    let partial = store.open_partial(&MediaKey::new(sdkfileid, None)).unwrap();
    let net = NetOptions::default();
    download(
        |index| handle.get_media_chunk(sdkfileid, index, &net),
        partial,
        md5,
        retry,
        &CancellationToken::new(),
    )
}

#[test]
fn paging_by_seq_reaches_the_end_in_order() {
    let mut config = default_config();
    config.corps[0].message_count = 2500;
    let emulator = Emulator::with_config(&config);
    let (_sdk, mut handle) = emulator.handle();
    let mut seq = 0;
    let mut seen = Vec::new();
    loop {
        let page = handle
            .get_chat_data(seq, 1000, &NetOptions::default())
            .unwrap();
        seen.extend(page.iter().map(|m| m.seq));
        if page.len() < 1000 {
            break;
        }
        seq = page.last().unwrap().seq;
    }
    assert_eq!(seen, (1..=2500).collect::<Vec<u64>>());
    // Any seq may be re-read, and a seq past the end gives an empty page.
    let again = handle
        .get_chat_data(1200, 3, &NetOptions::default())
        .unwrap();
    assert_eq!(
        again.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1201, 1202, 1203]
    );
    assert!(handle
        .get_chat_data(2500, 10, &NetOptions::default())
        .unwrap()
        .is_empty());
    assert_eq!(emulator.calls_of("GetChatData").len(), 5);
}

#[test]
fn a_wrong_secret_passes_init_and_fails_with_10001() {
    let emulator = Emulator::default_corp();
    let sdk = emulator.load();
    let mut handle = sdk
        .open_handle(common::CORPID, &SecretString::from("wrong"))
        .unwrap();
    assert_eq!(
        code_of(handle.get_chat_data(0, 10, &NetOptions::default())),
        10001
    );
}

#[test]
fn a_corp_off_the_whitelist_gets_301042_and_media_10009() {
    let mut config = default_config();
    config.corps[0].whitelisted = false;
    let emulator = Emulator::with_config(&config);
    let (_sdk, mut handle) = emulator.handle();
    let err = handle
        .get_chat_data(0, 10, &NetOptions::default())
        .unwrap_err();
    assert!(
        err.to_string().contains("not on the archive whitelist"),
        "{err}"
    );
    assert_eq!(code_of(Err::<(), _>(err)), 301042);
    let id = emulator::media_file_id(10, 1, 1);
    assert_eq!(
        code_of(handle.get_media_chunk(&id, "", &NetOptions::default())),
        10009
    );
}

#[test]
fn the_library_answers_bad_parameters_with_10000() {
    let emulator = Emulator::default_corp();
    let (sdk, mut handle) = emulator.handle();
    assert_eq!(sdk.probe_init("", common::SECRET).unwrap(), 10000);
    assert_eq!(sdk.probe_init(common::CORPID, "").unwrap(), 10000);
    assert_eq!(handle.probe_chat_data(0, 0, 1).unwrap(), 10000);
    assert_eq!(handle.probe_chat_data(0, 1001, 1).unwrap(), 10000);
    assert_eq!(handle.probe_media_data("", "", 1).unwrap(), 10000);
    assert_eq!(
        handle.probe_media_data("Range:bytes=0-14", "x", 1).unwrap(),
        10000
    );
    assert_eq!(
        handle.probe_media_data("", "not-an-sdkfileid", 1).unwrap(),
        10005
    );
}

#[test]
fn the_binding_refuses_what_the_guards_forbid_before_any_call() {
    let emulator = Emulator::default_corp();
    let (sdk, mut handle) = emulator.handle();
    let net = NetOptions::default();
    let refused = |r: Result<_, SdkError>| matches!(r, Err(SdkError::Refused(_)));
    assert!(refused(handle.get_chat_data(0, 0, &net).map(|_| ())));
    assert!(refused(handle.get_chat_data(0, 1001, &net).map(|_| ())));
    assert!(refused(handle.get_media_chunk("", "", &net).map(|_| ())));
    assert!(refused(
        handle
            .get_media_chunk("id", "Range:bytes=1-0", &net)
            .map(|_| ())
    ));
    assert!(refused(
        handle.get_media_chunk("i\0d", "", &net).map(|_| ())
    ));
    let proxy = NetOptions {
        proxy: Some("http://127.0.0.1:1\r\nHost: x".into()),
        ..NetOptions::default()
    };
    assert!(refused(handle.get_chat_data(0, 10, &proxy).map(|_| ())));
    assert!(matches!(
        sdk.open_handle("", &SecretString::from("s")),
        Err(SdkError::Refused(Refused::Empty { field: "corpid" }))
    ));
    // The emulator aborts on these like the real library; the binding never lets them through.
    for (key, msg) in [
        (&b"a2V5"[..], &b""[..]),
        (b"=", &[b'A'; 100][..]),
        (b"====", &[b'A'; 100][..]),
    ] {
        assert!(matches!(
            sdk.decrypt_data(key, msg),
            Err(SdkError::Refused(Refused::CrashingInput(_)))
        ));
    }
    assert_eq!(
        emulator.calls_of("Init").len(),
        1,
        "only the handle opened above"
    );
    assert!(emulator.calls_of("GetChatData").is_empty());
    assert!(emulator.calls_of("GetMediaData").is_empty());
    assert!(emulator.calls_of("DecryptData").is_empty());
}

#[test]
fn scripted_faults_come_first_and_are_counted() {
    let mut config = default_config();
    config.corps[0].faults.get_chat_data.script = vec![10001, 10002];
    let emulator = Emulator::with_config(&config);
    let (_sdk, mut handle) = emulator.handle();
    let net = NetOptions::default();
    assert_eq!(code_of(handle.get_chat_data(0, 5, &net)), 10001);
    assert_eq!(code_of(handle.get_chat_data(0, 5, &net)), 10002);
    assert_eq!(handle.get_chat_data(0, 5, &net).unwrap().len(), 5);
    let rcs: Vec<i64> = emulator
        .calls_of("GetChatData")
        .iter()
        .map(|c| c.rc)
        .collect();
    assert_eq!(rcs, [10001, 10002, 0]);
}

#[test]
fn a_page_decrypts_across_two_key_versions() {
    let emulator = Emulator::default_corp();
    let (sdk, mut handle) = emulator.handle();
    let page = handle
        .get_chat_data(0, 300, &NetOptions::default())
        .unwrap();
    let decrypted = decrypt_page(&sdk, &common::default_keys(), &page);
    assert!(
        decrypted.errors.is_empty(),
        "{:?}",
        decrypted.errors.first()
    );
    assert_eq!(decrypted.messages.len(), 300);
    let seqs: Vec<u64> = decrypted.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=300).collect::<Vec<_>>(), "order is kept");
    let versions: BTreeSet<u32> = decrypted.messages.iter().map(|m| m.publickey_ver).collect();
    assert_eq!(versions, BTreeSet::from([1, 2]));
    for message in &decrypted.messages {
        let json: serde_json::Value = serde_json::from_str(message.message.get()).unwrap();
        assert_eq!(json["msgid"], message.msgid.as_str());
    }
}

#[test]
fn undecryptable_messages_become_error_items_and_never_fail_the_page() {
    let mut config = default_config();
    config.corps[0].faults.decrypt_data.script = vec![0, 10008];
    let emulator = Emulator::with_config(&config);
    let (sdk, mut handle) = emulator.handle();
    let page = handle.get_chat_data(0, 40, &NetOptions::default()).unwrap();
    let mut only_v1 = KeyRing::new();
    only_v1
        .insert_pem(1, &SecretString::from(common::fixture("keys/v1.pem")))
        .unwrap();
    let decrypted = decrypt_page(&sdk, &only_v1, &page);
    let v2 = page.iter().filter(|m| m.publickey_ver == 2).count();
    assert!(v2 > 0);
    assert_eq!(decrypted.messages.len() + decrypted.errors.len(), 40);
    let codes: Vec<i64> = decrypted
        .errors
        .iter()
        .map(|e| e.error.info().code)
        .collect();
    assert_eq!(
        codes.iter().filter(|&&c| c == 20101).count(),
        v2,
        "no key for v2"
    );
    assert_eq!(
        codes.iter().filter(|&&c| c == 10008).count(),
        1,
        "the scripted 10008"
    );
    let failed = decrypted
        .errors
        .iter()
        .find(|e| e.error.info().code == 20101)
        .unwrap();
    let original = page.iter().find(|m| m.seq == failed.seq).unwrap();
    assert_eq!(
        (failed.msgid.as_str(), failed.publickey_ver),
        (original.msgid.as_str(), 2)
    );
}

#[test]
fn media_of_every_edge_size_streams_whole() {
    let emulator = Emulator::default_corp();
    let (_sdk, mut handle) = emulator.handle();
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path());
    let seed = default_config().corps[0].seed;
    for (nonce, size) in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * 1024 * 1024]
        .into_iter()
        .enumerate()
    {
        let id = emulator::media_file_id(size, 1, nonce as u64);
        let md5 = common::expected_md5(seed, &id);
        let report =
            fetch_into_store(&mut handle, &store, &id, Some(&md5), &quick_retry(1)).unwrap();
        assert_eq!(report.size, size, "size {size}");
        assert_eq!(report.md5_matched, Some(true), "size {size}");
        assert_eq!(std::fs::metadata(&report.location).unwrap().len(), size);
        // Ranges run over the encrypted object (size rounded up to the next 16).
        let chunks = (16 * (size / 16 + 1)).div_ceil(CHUNK);
        assert_eq!(report.chunks_fetched, chunks, "size {size}");
    }
}

#[test]
fn media_named_in_a_message_matches_its_md5sum() {
    let emulator = Emulator::default_corp();
    let (sdk, mut handle) = emulator.handle();
    let page = handle
        .get_chat_data(0, 200, &NetOptions::default())
        .unwrap();
    let decrypted = decrypt_page(&sdk, &common::default_keys(), &page);
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path());
    let mut checked = 0;
    for message in &decrypted.messages {
        let json: serde_json::Value = serde_json::from_str(message.message.get()).unwrap();
        let Some(kind) = json["msgtype"].as_str() else {
            continue;
        };
        let media = &json[kind];
        let (Some(id), Some(md5)) = (media["sdkfileid"].as_str(), media["md5sum"].as_str()) else {
            continue;
        };
        let size = media["filesize"]
            .as_u64()
            .or(media["voice_size"].as_u64())
            .or(media["imagesize"].as_u64());
        let report = fetch_into_store(&mut handle, &store, id, Some(md5), &quick_retry(1)).unwrap();
        assert_eq!(report.md5_matched, Some(true), "{kind} seq {}", message.seq);
        if let Some(size) = size {
            assert_eq!(report.size, size, "{kind} seq {}", message.seq);
        }
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} media messages among 200");
}

#[test]
fn expired_and_garbled_media_fail_for_good() {
    let mut config = default_config();
    config.corps[0].media_expired_before_seq = 100;
    let emulator = Emulator::with_config(&config);
    let (_sdk, mut handle) = emulator.handle();
    let net = NetOptions::default();
    let old = emulator::media_file_id(10, 50, 1);
    assert_eq!(code_of(handle.get_media_chunk(&old, "", &net)), 10010);
    let fresh = emulator::media_file_id(10, 150, 1);
    assert!(handle.get_media_chunk(&fresh, "", &net).is_ok());
    let mut garbled = fresh.clone();
    garbled.replace_range(5..9, "ZZZZ");
    assert_eq!(code_of(handle.get_media_chunk(&garbled, "", &net)), 10005);
}

#[test]
fn a_failing_chunk_is_retried_in_place_and_a_later_attempt_resumes() {
    let mut config = default_config();
    // Chunk 1 and 2 pass; chunk 3 fails three times (more than this retry allows), then passes.
    config.corps[0].faults.get_media_data.script = vec![0, 0, 10002, 10003, 10002];
    let emulator = Emulator::with_config(&config);
    let (_sdk, mut handle) = emulator.handle();
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path());
    let id = emulator::media_file_id(4 * CHUNK + 100, 1, 9);
    let md5 = common::expected_md5(config.corps[0].seed, &id);

    let err = fetch_into_store(&mut handle, &store, &id, Some(&md5), &quick_retry(2)).unwrap_err();
    let Unfinished::Failed(DownloadError::Sdk { source, .. }) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(source.class(), ErrorClass::Transient, "{err}");
    let report = fetch_into_store(&mut handle, &store, &id, Some(&md5), &quick_retry(2)).unwrap();
    assert_eq!(report.resumed_at, Some(2 * CHUNK));
    assert_eq!(report.md5_matched, Some(true));

    let indexes: Vec<String> = emulator
        .calls_of("GetMediaData")
        .iter()
        .map(|c| c.index.clone().unwrap_or_default())
        .collect();
    let third = format!("Range:bytes={}-{}", 2 * CHUNK, 3 * CHUNK - 1);
    assert_eq!(indexes[0], "", "the first attempt starts at the beginning");
    assert_eq!(
        indexes.iter().filter(|i| i.is_empty()).count(),
        1,
        "never restarted"
    );
    assert_eq!(
        indexes.iter().filter(|i| **i == third).count(),
        4,
        "3 failures, then success"
    );
}
