//! Tests of message generation: determinism, coverage of every msgtype, consistency of media
//! fields with what `GetMediaData` serves.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::*;
use crate::file_id::FileId;
use crate::media::media_content;

fn corp() -> CorpConfig {
    CorpConfig {
        media_sizes: MediaSizes { min: 0, max: 4096 },
        ..CorpConfig::default()
    }
}

/// Parses a plaintext the lenient way a consumer must: raw control characters escaped first.
fn parse(plaintext: &[u8]) -> Value {
    let text = String::from_utf8(plaintext.to_vec()).unwrap();
    let escaped: String = text
        .chars()
        .map(|c| {
            if c.is_control() {
                format!("\\u{:04x}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect();
    serde_json::from_str(&escaped).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn messages(corp: &CorpConfig, seqs: std::ops::RangeInclusive<u64>) -> Vec<(Message, Value)> {
    let mix = Mix::new(corp);
    seqs.map(|seq| {
        let m = generate(corp, &mix, seq);
        let v = parse(&m.plaintext);
        (m, v)
    })
    .collect()
}

#[test]
fn same_seed_same_bytes_and_another_seed_other_bytes() {
    let a = corp();
    let b = CorpConfig { seed: 2, ..corp() };
    let mix = Mix::new(&a);
    for seq in [1, 2, 77, 4999] {
        assert_eq!(generate(&a, &mix, seq), generate(&a, &mix, seq));
        assert_eq!(
            message_plaintext(&a, seq),
            generate(&a, &mix, seq).plaintext
        );
        assert_ne!(message_plaintext(&a, seq), message_plaintext(&b, seq));
    }
}

#[test]
fn every_msgtype_appears_with_its_fields() {
    let all = messages(&corp(), 1..=1500);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (m, v) in &all {
        assert_eq!(v["msgid"].as_str(), Some(m.msgid.as_str()));
        let kind = if v["action"] == "switch" {
            assert!(v["time"].is_u64() && v["user"].is_string(), "{v}");
            "switch".to_owned()
        } else {
            let msgtype = v["msgtype"].as_str().unwrap().to_owned();
            for key in ["from", "tolist", "roomid", "msgtime"] {
                assert!(!v[key].is_null(), "{key} in {v}");
            }
            msgtype
        };
        *seen.entry(kind).or_default() += 1;
    }
    let expected: BTreeSet<&str> = DEFAULT_MSGTYPE_MIX.iter().map(|(name, _)| *name).collect();
    let got: BTreeSet<&str> = seen.keys().map(String::as_str).collect();
    assert_eq!(got, expected);
    let texts = seen["text"];
    assert!(
        (450..750).contains(&texts),
        "{texts} texts of 1500 at weight 40/91"
    );

    let object = |msgtype: &str| {
        all.iter()
            .map(|(_, v)| v)
            .find(|v| v["msgtype"] == msgtype)
            .unwrap()
            .clone()
    };
    assert_eq!(object("revoke")["action"], "recall");
    assert!(object("revoke")["revoke"]["pre_msgid"].is_string());
    assert!(object("agree")["agree"]["agree_time"].is_u64());
    assert!(object("meeting_voice_call")["voiceid"].is_string());
    assert!(object("meeting_voice_call")["meeting_voice_call"]["demofiledata"].is_array());
    assert!(object("voip_doc_share")["voipid"].is_string());
    assert!(object("markdown")["info"]["content"].is_string());
    assert!(object("news")["info"]["item"].is_array());
    assert!(object("sphfeed")["sphfeed"].is_object());
    let mixed = object("mixed");
    for item in mixed["mixed"]["item"].as_array().unwrap() {
        assert!(serde_json::from_str::<Value>(item["content"].as_str().unwrap()).is_ok());
    }
    let record = object("chatrecord");
    assert!(record["chatrecord"]["item"][0]["from_chatroom"].is_boolean());
}

#[test]
fn fields_keep_the_order_of_real_messages() {
    let text = messages(&corp(), 1..=50)
        .into_iter()
        .map(|(m, _)| String::from_utf8(m.plaintext).unwrap())
        .find(|t| t.contains(r#""msgtype":"text""#))
        .unwrap();
    let at = |key: &str| text.find(&format!("\"{key}\":")).unwrap();
    let order = [
        "msgid", "action", "from", "tolist", "roomid", "msgtime", "msgtype", "text",
    ];
    assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{text}");
}

#[test]
fn msgids_are_unique_and_some_are_external() {
    let ids: Vec<String> = (1..=3000).map(|seq| msgid(1, seq)).collect();
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ids.len());
    let external = ids.iter().filter(|id| id.ends_with("_external")).count();
    assert!((150..450).contains(&external), "{external}");
    assert!(ids.iter().any(|id| id.ends_with("_updown_stream")));
    let times: Vec<u64> = (1..=100).map(|seq| msgtime(1, seq)).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn some_texts_carry_raw_control_characters() {
    let only_text = CorpConfig {
        msgtype_mix: [("text".to_owned(), 1)].into(),
        ..corp()
    };
    let all = messages(&only_text, 1..=1000);
    assert!(all.iter().all(|(_, v)| v["msgtype"] == "text"));
    let raw = all
        .iter()
        .filter(|(m, _)| m.plaintext.iter().any(|&b| b < 0x20))
        .count();
    assert!((10..60).contains(&raw), "{raw} of 1000");
    for (m, _) in all
        .iter()
        .filter(|(m, _)| m.plaintext.iter().any(|&b| b < 0x20))
    {
        assert!(
            serde_json::from_slice::<Value>(&m.plaintext).is_err(),
            "not strict JSON"
        );
    }
}

/// Every `(sdkfileid, size field, md5sum)` in a message, nested JSON strings included.
fn media_fields(v: &Value, out: &mut Vec<(String, Option<u64>, Option<String>)>) {
    match v {
        Value::Object(map) => {
            if let Some(id) = map.get("sdkfileid").and_then(Value::as_str) {
                let size = ["filesize", "voice_size", "imagesize"]
                    .iter()
                    .find_map(|k| map.get(*k).and_then(Value::as_u64));
                let md5 = map.get("md5sum").and_then(Value::as_str).map(str::to_owned);
                out.push((id.to_owned(), size, md5));
            }
            map.values().for_each(|v| media_fields(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| media_fields(v, out)),
        Value::String(s) if s.starts_with('{') => {
            if let Ok(inner) = serde_json::from_str::<Value>(s) {
                media_fields(&inner, out);
            }
        }
        _ => {}
    }
}

#[test]
fn media_fields_match_the_served_bytes() {
    let mut found = Vec::new();
    for (_, v) in messages(&corp(), 1..=400) {
        media_fields(&v, &mut found);
    }
    assert!(found.len() > 50, "{}", found.len());
    let mut sizes = BTreeSet::new();
    for (id, size, md5) in found {
        let file = FileId::parse(id.as_bytes()).unwrap();
        assert!(file.size <= 4096);
        sizes.insert(file.size);
        if let Some(size) = size {
            assert_eq!(size, file.size);
        }
        if let Some(md5) = md5 {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut media_content(1, &id), &mut bytes).unwrap();
            assert_eq!(
                md5,
                format!("{:x}", <md5::Md5 as md5::Digest>::digest(&bytes))
            );
        }
    }
    assert!(sizes.len() > 20, "sizes vary");
}

#[test]
fn sizes_are_log_uniform_within_bounds() {
    let mut rng = seeding::rng("t", 1, &[]);
    let sizes: Vec<u64> = (0..4000)
        .map(|_| {
            sample_size(
                &mut rng,
                MediaSizes {
                    min: 0,
                    max: 1 << 20,
                },
            )
        })
        .collect();
    assert!(sizes.iter().all(|&s| s <= 1 << 20));
    let small = sizes.iter().filter(|&&s| s < 1024).count();
    let large = sizes.iter().filter(|&&s| s >= 1 << 19).count();
    assert!(small > 1500 && large > 100, "{small} small, {large} large");
    for (min, max) in [(5, 5), (0, 0), (100, 200), (u64::MAX - 1, u64::MAX)] {
        let s = sample_size(&mut rng, MediaSizes { min, max });
        assert!((min..=max).contains(&s), "{s} in {min}..={max}");
    }
}
