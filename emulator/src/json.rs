//! A tiny JSON value with ordered objects, for the message plaintexts of [`crate::messages`].
//!
//! `serde_json::Value` orders keys alphabetically or by insertion depending on a cargo feature
//! that any crate in a build can switch on; the emulator promises the same bytes for the same
//! config in every build, and real messages keep their fields in a fixed, non-alphabetical
//! order (`msgid`, `action`, `from`, ...). So objects here are plain lists of fields.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// A JSON value whose objects keep their fields in the order given.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Str(String),
    Int(i64),
    Bool(bool),
    Arr(Vec<Json>),
    Obj(Vec<(&'static str, Json)>),
}

impl Json {
    /// Compact JSON text.
    pub(crate) fn to_text(&self) -> String {
        serde_json::to_string(self).expect("a Json value always serialises")
    }
}

/// An object from `(key, value)` pairs, in that order.
pub(crate) fn obj<const N: usize>(fields: [(&'static str, Json); N]) -> Json {
    Json::Obj(fields.into())
}

impl From<&str> for Json {
    fn from(s: &str) -> Json {
        Json::Str(s.to_owned())
    }
}

impl From<String> for Json {
    fn from(s: String) -> Json {
        Json::Str(s)
    }
}

impl From<u64> for Json {
    fn from(n: u64) -> Json {
        Json::Int(i64::try_from(n).expect("emulated numbers fit i64"))
    }
}

impl From<bool> for Json {
    fn from(b: bool) -> Json {
        Json::Bool(b)
    }
}

impl From<Vec<Json>> for Json {
    fn from(items: Vec<Json>) -> Json {
        Json::Arr(items)
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Str(v) => s.serialize_str(v),
            Json::Int(v) => s.serialize_i64(*v),
            Json::Bool(v) => s.serialize_bool(*v),
            Json::Arr(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Obj(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (key, value) in fields {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_keep_their_order_and_strings_are_escaped() {
        let value = obj([
            ("z", 1u64.into()),
            ("a", vec![Json::from(true), "q\"\u{1}".into()].into()),
        ]);
        assert_eq!(value.to_text(), r#"{"z":1,"a":[true,"q\"\u0001"]}"#);
    }
}
