//! Messages the broker accepted but AMQP does not allow: short strings (properties, header
//! names) that are not UTF-8, and header tables nested without end. The AMQP parser reads them
//! anyway (the patched `amq-protocol-types`, see `patches/README.md`): bad bytes become U+FFFD,
//! and tables nested 64 levels deep are not descended into. So a poison message costs neither
//! the connection nor the process; here the worker finds what the parser had to repair, and
//! fails the job (20307) instead of running it.

use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::BasicProperties;

/// Header tables and arrays nested deeper than this are refused; the parser stops at 64.
pub const MAX_HEADER_DEPTH: usize = 32;

/// A publisher's headers larger than this (encoded) are not copied onto what the worker
/// republishes (retry copy, continuation, dead letter): with the worker's own headers added,
/// the content header could pass the broker's frame size, and the broker would close the
/// connection instead of taking the message.
pub const MAX_KEPT_HEADER_BYTES: usize = 32 * 1024;

/// What the parser had to repair in a message's properties, if anything.
pub fn malformed(properties: &BasicProperties) -> Option<String> {
    let short_strings: [(&str, &Option<ShortString>); 10] = [
        ("content_type", properties.content_type()),
        ("content_encoding", properties.content_encoding()),
        ("correlation_id", properties.correlation_id()),
        ("reply_to", properties.reply_to()),
        ("expiration", properties.expiration()),
        ("message_id", properties.message_id()),
        ("type", properties.kind()),
        ("user_id", properties.user_id()),
        ("app_id", properties.app_id()),
        ("cluster_id", properties.cluster_id()),
    ];
    for (name, value) in short_strings {
        if value.as_ref().is_some_and(repaired) {
            return Some(format!("its {name} property is not UTF-8"));
        }
    }
    properties
        .headers()
        .as_ref()
        .and_then(|headers| malformed_table(headers, 1))
}

/// Whether the parser replaced bytes of `text` that were not UTF-8.
pub fn repaired(text: &ShortString) -> bool {
    text.as_str().contains(char::REPLACEMENT_CHARACTER)
}

fn malformed_table(table: &FieldTable, depth: usize) -> Option<String> {
    if depth > MAX_HEADER_DEPTH {
        return Some(format!(
            "its headers nest deeper than {MAX_HEADER_DEPTH} levels"
        ));
    }
    table.inner().iter().find_map(|(name, value)| {
        if repaired(name) {
            Some("a header name is not UTF-8".to_owned())
        } else {
            malformed_value(value, depth)
        }
    })
}

fn malformed_value(value: &AMQPValue, depth: usize) -> Option<String> {
    match value {
        AMQPValue::ShortString(text) if repaired(text) => {
            Some("a header value is not UTF-8".to_owned())
        }
        AMQPValue::FieldTable(table) => malformed_table(table, depth + 1),
        AMQPValue::FieldArray(_) if depth + 1 > MAX_HEADER_DEPTH => Some(format!(
            "its headers nest deeper than {MAX_HEADER_DEPTH} levels"
        )),
        AMQPValue::FieldArray(array) => array
            .as_slice()
            .iter()
            .find_map(|item| malformed_value(item, depth + 1)),
        _ => None,
    }
}

/// Whether `table`, encoded, would take more than [`MAX_KEPT_HEADER_BYTES`].
pub fn oversized(table: &FieldTable) -> bool {
    table_len(table) > MAX_KEPT_HEADER_BYTES
}

/// The encoded size of a table: its length prefix, and each name and tagged value.
fn table_len(table: &FieldTable) -> usize {
    4 + table
        .inner()
        .iter()
        .map(|(name, value)| 1 + name.as_str().len() + 1 + value_len(value))
        .sum::<usize>()
}

fn value_len(value: &AMQPValue) -> usize {
    match value {
        AMQPValue::Boolean(_) | AMQPValue::ShortShortInt(_) | AMQPValue::ShortShortUInt(_) => 1,
        AMQPValue::ShortInt(_) | AMQPValue::ShortUInt(_) => 2,
        AMQPValue::LongInt(_) | AMQPValue::LongUInt(_) | AMQPValue::Float(_) => 4,
        AMQPValue::DecimalValue(_) => 5,
        AMQPValue::LongLongInt(_) | AMQPValue::Double(_) | AMQPValue::Timestamp(_) => 8,
        AMQPValue::ShortString(text) => 1 + text.as_str().len(),
        AMQPValue::LongString(text) => 4 + text.as_bytes().len(),
        AMQPValue::ByteArray(bytes) => 4 + bytes.as_slice().len(),
        AMQPValue::FieldArray(array) => {
            4 + array
                .as_slice()
                .iter()
                .map(|v| 1 + value_len(v))
                .sum::<usize>()
        }
        AMQPValue::FieldTable(table) => table_len(table),
        AMQPValue::Void => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> FieldTable {
        let mut table = FieldTable::default();
        for _ in 1..levels {
            let mut outer = FieldTable::default();
            outer.insert("n".into(), AMQPValue::FieldTable(table));
            table = outer;
        }
        table
    }

    #[test]
    fn a_repaired_property_header_name_or_value_is_found() {
        let id = BasicProperties::default().with_message_id("\u{fffd}\u{fffd}-a".into());
        assert!(malformed(&id).unwrap().contains("message_id"));
        let mut names = FieldTable::default();
        names.insert("\u{fffd}(".into(), AMQPValue::Void);
        let names = BasicProperties::default().with_headers(names);
        assert!(malformed(&names).unwrap().contains("header name"));
        let mut values = FieldTable::default();
        let mut inner = FieldTable::default();
        inner.insert("k".into(), AMQPValue::ShortString("x\u{fffd}".into()));
        values.insert("t".into(), AMQPValue::FieldTable(inner));
        let values = BasicProperties::default().with_headers(values);
        assert!(malformed(&values).unwrap().contains("header value"));
    }

    #[test]
    fn large_header_tables_are_found_by_their_encoded_size() {
        let mut table = FieldTable::default();
        table.insert(
            "small".into(),
            AMQPValue::LongString("x".repeat(100).into()),
        );
        assert!(!oversized(&table));
        for n in 0..40 {
            let name = format!("k{n}");
            table.insert(
                name.as_str().into(),
                AMQPValue::LongString("x".repeat(1000).into()),
            );
        }
        assert!(oversized(&table), "40 values of 1,000 bytes");
    }

    #[test]
    fn headers_nested_beyond_the_limit_are_found_and_ordinary_ones_pass() {
        let deep = BasicProperties::default().with_headers(nested(MAX_HEADER_DEPTH + 1));
        assert!(malformed(&deep).unwrap().contains("nest deeper"));
        let fine = BasicProperties::default()
            .with_headers(nested(MAX_HEADER_DEPTH))
            .with_message_id("job-1".into())
            .with_reply_to("odoo-replies".into());
        assert_eq!(malformed(&fine), None);
        assert_eq!(malformed(&BasicProperties::default()), None);
    }
}
