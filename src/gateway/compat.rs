//! The seed service's answer shapes, built from the job core's results (so both modes, in
//! process and through the broker, answer the same).
//!
//! A chat page becomes the seed service's list: one item per message, in seq order, with
//! `seq`, `msgid`, `publickey_ver`, `encrypt_random_key`, `encrypt_chat_msg` and
//! `decrypted_chat_msg` (the decrypted message object). A message that could not be decrypted
//! is an item too, where the seed service failed the whole page: its `decrypted_chat_msg` is
//! `null` and an extra `error` field says why (the same object as in the worker's pages).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The part of a chat page result the list is built from.
#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow)]
    messages: Vec<Item<'a>>,
    #[serde(borrow)]
    errors: Vec<Item<'a>>,
}

/// A message or an error item of a page (asked with `include_encrypted`).
#[derive(Deserialize)]
struct Item<'a> {
    seq: u64,
    msgid: String,
    publickey_ver: u32,
    #[serde(default)]
    encrypt_random_key: String,
    #[serde(default)]
    encrypt_chat_msg: String,
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

/// One item of the seed service's list.
#[derive(Serialize)]
struct CompatMessage<'a> {
    seq: u64,
    msgid: &'a str,
    publickey_ver: u32,
    encrypt_random_key: &'a str,
    encrypt_chat_msg: &'a str,
    decrypted_chat_msg: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a RawValue>,
}

impl<'a> From<&'a Item<'a>> for CompatMessage<'a> {
    fn from(item: &'a Item<'a>) -> Self {
        Self {
            seq: item.seq,
            msgid: &item.msgid,
            publickey_ver: item.publickey_ver,
            encrypt_random_key: &item.encrypt_random_key,
            encrypt_chat_msg: &item.encrypt_chat_msg,
            decrypted_chat_msg: item.message,
            error: item.error,
        }
    }
}

/// The seed service's list from a chat page `result`.
pub fn chat_list(result: &[u8]) -> serde_json::Result<Vec<u8>> {
    let page: Page<'_> = serde_json::from_slice(result)?;
    let mut items: Vec<&Item<'_>> = page.messages.iter().chain(&page.errors).collect();
    items.sort_by_key(|item| item.seq);
    let list: Vec<CompatMessage<'_>> = items.into_iter().map(CompatMessage::from).collect();
    serde_json::to_vec(&list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn messages_and_errors_make_one_list_in_seq_order() {
        let error = json!({"code": 20101, "name": "no_private_key", "message": "m",
                           "class": "configuration", "retryable": false});
        let page = json!({
            "status": "ok", "type": "chatdata-page", "page": 1, "seq": 0, "next_seq": 3,
            "has_more": false,
            "messages": [
                {"seq": 1, "msgid": "a", "publickey_ver": 1, "message": {"msgtype": "text"},
                 "encrypt_random_key": "k1", "encrypt_chat_msg": "c1"},
                {"seq": 3, "msgid": "c", "publickey_ver": 1, "message": {"msgtype": "image"},
                 "encrypt_random_key": "k3", "encrypt_chat_msg": "c3"}
            ],
            "errors": [
                {"seq": 2, "msgid": "b", "publickey_ver": 9, "error": error,
                 "encrypt_random_key": "k2", "encrypt_chat_msg": "c2"}
            ]
        });
        let list: Value =
            serde_json::from_slice(&chat_list(&serde_json::to_vec(&page).unwrap()).unwrap())
                .unwrap();
        assert_eq!(
            list,
            json!([
                {"seq": 1, "msgid": "a", "publickey_ver": 1, "encrypt_random_key": "k1",
                 "encrypt_chat_msg": "c1", "decrypted_chat_msg": {"msgtype": "text"}},
                {"seq": 2, "msgid": "b", "publickey_ver": 9, "encrypt_random_key": "k2",
                 "encrypt_chat_msg": "c2", "decrypted_chat_msg": null, "error": error},
                {"seq": 3, "msgid": "c", "publickey_ver": 1, "encrypt_random_key": "k3",
                 "encrypt_chat_msg": "c3", "decrypted_chat_msg": {"msgtype": "image"}}
            ])
        );
    }
}
