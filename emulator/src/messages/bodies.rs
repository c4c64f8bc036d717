//! The msgtype-specific part of each generated message (the table of `docs/SDK.md`
//! section 8): the object under the msgtype's key, plus the top-level ids some types carry.
//! The envelope around it is built by [`super::generate`].

use super::{Gen, Media};
use crate::json::{obj, Json};

/// What a msgtype adds to the envelope.
pub(crate) struct Body {
    pub action: &'static str,
    /// Whether the sender is an external contact (agree / disagree come from them).
    pub from_external: bool,
    /// Fields after `msgtype`, in order.
    pub fields: Vec<(&'static str, Json)>,
}

fn send(fields: Vec<(&'static str, Json)>) -> Body {
    Body {
        action: "send",
        from_external: false,
        fields,
    }
}

/// The body of a message of `msgtype` (never `switch`, whose record has no envelope).
pub(crate) fn body(gen: &mut Gen, msgtype: &'static str) -> Body {
    match msgtype {
        "text" => send(vec![(
            "text",
            obj([("content", gen.words(30, true).into())]),
        )]),
        "image" => {
            let m = gen.media();
            send(vec![("image", media_obj(&m, "filesize", []))])
        }
        "voice" => {
            let m = gen.media();
            let extra = [("play_length", gen.range(1, 60).into())];
            send(vec![("voice", media_obj(&m, "voice_size", extra))])
        }
        "video" => {
            let m = gen.media();
            let extra = [("play_length", gen.range(1, 300).into())];
            send(vec![("video", media_obj(&m, "filesize", extra))])
        }
        "file" => send(vec![("file", file(gen))]),
        "emotion" => {
            let m = gen.media();
            let emotion = obj([
                ("type", gen.range(1, 2).into()),
                ("width", gen.range(64, 480).into()),
                ("height", gen.range(64, 480).into()),
                ("imagesize", m.size.into()),
                ("md5sum", m.md5sum.into()),
                ("sdkfileid", m.sdkfileid.into()),
            ]);
            send(vec![("emotion", emotion)])
        }
        "revoke" => Body {
            action: "recall",
            from_external: false,
            fields: vec![("revoke", obj([("pre_msgid", gen.earlier_msgid().into())]))],
        },
        "agree" | "disagree" => {
            let time_key = if msgtype == "agree" {
                "agree_time"
            } else {
                "disagree_time"
            };
            let decision = obj([
                ("userid", gen.external_user().into()),
                (time_key, gen.time_near().into()),
            ]);
            Body {
                action: "send",
                from_external: true,
                fields: vec![(msgtype, decision)],
            }
        }
        "mixed" => send(vec![("mixed", mixed(gen))]),
        "chatrecord" => send(vec![("chatrecord", chatrecord(gen))]),
        "meeting_voice_call" => {
            let m = gen.media();
            let call = obj([
                ("endtime", (gen.time_near() / 1000).into()),
                ("sdkfileid", m.sdkfileid.into()),
                (
                    "demofiledata",
                    vec![obj([
                        ("filename", "slides.pptx".into()),
                        ("demooperator", gen.internal_user().into()),
                        ("starttime", (gen.time_near() / 1000).into()),
                        ("endtime", (gen.time_near() / 1000).into()),
                    ])]
                    .into(),
                ),
                (
                    "sharescreendata",
                    vec![obj([
                        ("share", gen.internal_user().into()),
                        ("starttime", (gen.time_near() / 1000).into()),
                        ("endtime", (gen.time_near() / 1000).into()),
                    ])]
                    .into(),
                ),
            ]);
            send(vec![
                ("voiceid", gen.hex_id("gr").into()),
                ("meeting_voice_call", call),
            ])
        }
        "voip_doc_share" => {
            let m = gen.media();
            let share = obj([
                ("filename", "shared.docx".into()),
                ("md5sum", m.md5sum.into()),
                ("filesize", m.size.into()),
                ("sdkfileid", m.sdkfileid.into()),
            ]);
            send(vec![
                ("voipid", gen.hex_id("gr").into()),
                ("voip_doc_share", share),
            ])
        }
        other => send(vec![pass_through(gen, other)]),
    }
}

/// `{md5sum, <size_key>, ...extra, sdkfileid}`.
fn media_obj<const N: usize>(
    m: &Media,
    size_key: &'static str,
    extra: [(&'static str, Json); N],
) -> Json {
    let mut fields = vec![
        ("md5sum", Json::from(m.md5sum.as_str())),
        (size_key, m.size.into()),
    ];
    fields.extend(extra);
    fields.push(("sdkfileid", m.sdkfileid.as_str().into()));
    Json::Obj(fields)
}

fn file(gen: &mut Gen) -> Json {
    let m = gen.media();
    let ext = *crate::seeding::pick(&mut gen.rng, &["pdf", "docx", "xlsx", "zip", "txt"]);
    obj([
        ("md5sum", m.md5sum.into()),
        ("filename", format!("{}.{ext}", gen.words(3, false)).into()),
        ("fileext", ext.into()),
        ("filesize", m.size.into()),
        ("sdkfileid", m.sdkfileid.into()),
    ])
}

/// `item[]` of `{type, content}` where content is a JSON string, as in real mixed messages.
fn mixed(gen: &mut Gen) -> Json {
    let items = (0..gen.range(2, 4))
        .map(|_| {
            if gen.chance(50) {
                let m = gen.media();
                obj([
                    ("type", "image".into()),
                    ("content", media_obj(&m, "filesize", []).to_text().into()),
                ])
            } else {
                let content = obj([("content", gen.words(10, false).into())]);
                obj([
                    ("type", "text".into()),
                    ("content", content.to_text().into()),
                ])
            }
        })
        .collect::<Vec<_>>();
    obj([("item", items.into())])
}

/// A forwarded chat record: `title` and `item[]` whose content is a JSON string.
fn chatrecord(gen: &mut Gen) -> Json {
    let items = (0..gen.range(1, 4))
        .map(|_| {
            let (kind, content) = if gen.chance(40) {
                let m = gen.media();
                ("ChatRecordImage", media_obj(&m, "filesize", []))
            } else {
                (
                    "ChatRecordText",
                    obj([("content", gen.words(10, false).into())]),
                )
            };
            obj([
                ("type", kind.into()),
                ("msgtime", (gen.time_near() / 1000).into()),
                ("content", content.to_text().into()),
                ("from_chatroom", gen.chance(50).into()),
            ])
        })
        .collect::<Vec<_>>();
    obj([("title", "群聊的聊天记录".into()), ("item", items.into())])
}

/// A msgtype the archive stores without interpreting it: a plausible object under its key
/// (`info` for markdown and news, as in real data).
fn pass_through(gen: &mut Gen, msgtype: &'static str) -> (&'static str, Json) {
    let title: Json = gen.words(5, false).into();
    let value = match msgtype {
        "card" => obj([
            ("corpname", "Emulated Corp".into()),
            ("userid", gen.internal_user().into()),
        ]),
        "location" => obj([
            ("longitude", Json::Str("113.3".into())),
            ("latitude", Json::Str("23.1".into())),
            ("address", "Guangzhou".into()),
            ("title", title),
            ("zoom", 15u64.into()),
        ]),
        "link" => obj([
            ("title", title),
            ("description", gen.words(8, false).into()),
            ("link_url", "https://example.com/article".into()),
            ("image_url", "https://example.com/cover.png".into()),
        ]),
        "weapp" => obj([
            ("title", title),
            ("description", gen.words(8, false).into()),
            ("username", "gh_emulator@app".into()),
            ("displayname", "Emulated App".into()),
        ]),
        "todo" => obj([("title", title), ("content", gen.words(8, false).into())]),
        "vote" => obj([
            ("votetitle", title),
            ("voteitem", vec![Json::from("yes"), "no".into()].into()),
            ("votetype", 101u64.into()),
            ("voteid", gen.hex_id("").into()),
        ]),
        "collect" => obj([
            ("room_name", "project room".into()),
            ("creator", gen.internal_user().into()),
            ("create_time", "2023-11-14 10:00:00".into()),
            ("title", title),
            (
                "details",
                vec![obj([
                    ("id", 1u64.into()),
                    ("ques", "name".into()),
                    ("type", "Text".into()),
                ])]
                .into(),
            ),
        ]),
        "redpacket" | "external_redpacket" => obj([
            ("type", 1u64.into()),
            ("wish", title),
            ("totalcnt", gen.range(1, 10).into()),
            ("totalamount", gen.range(100, 20_000).into()),
        ]),
        "meeting" => obj([
            ("topic", title),
            ("starttime", (gen.time_near() / 1000).into()),
            ("endtime", (gen.time_near() / 1000).into()),
            ("address", "Room 3".into()),
            ("remarks", gen.words(5, false).into()),
            ("meetingtype", 102u64.into()),
            ("meetingid", gen.range(1, 1 << 40).into()),
            ("status", 1u64.into()),
        ]),
        "docmsg" => obj([
            ("title", title),
            ("link_url", "https://doc.example.com/d/1".into()),
            ("doc_creator", gen.internal_user().into()),
        ]),
        "markdown" => {
            return (
                "info",
                obj([("content", format!("**{}**", gen.words(5, false)).into())]),
            )
        }
        "news" => {
            let item = obj([
                ("title", title),
                ("description", gen.words(8, false).into()),
                ("url", "https://example.com/news".into()),
                ("picurl", "https://example.com/news.png".into()),
            ]);
            return ("info", obj([("item", vec![item].into())]));
        }
        "calendar" => obj([
            ("title", title),
            ("creatorname", gen.internal_user().into()),
            ("attendeename", vec![Json::from(gen.internal_user())].into()),
            ("starttime", (gen.time_near() / 1000).into()),
            ("endtime", (gen.time_near() / 1000).into()),
            ("place", "Room 5".into()),
            ("remarks", gen.words(5, false).into()),
        ]),
        // sphfeed and any later pass-through name.
        _ => obj([
            ("feed_type", 4u64.into()),
            ("sph_name", "Emulated Channel".into()),
            ("feed_desc", title),
        ]),
    };
    (msgtype, value)
}
