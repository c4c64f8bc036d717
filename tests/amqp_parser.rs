//! The AMQP parser as the worker links it (the patched `amq-protocol-types`, see
//! `patches/README.md`): a content-header frame that the broker relays although AMQP does not
//! allow it still parses, on a thread with the stack of lapin's I/O thread.

use amq_protocol::frame::{parse_frame, AMQPFrame};
use lapin::types::parsing::{parse_short_string, MAX_NESTING_DEPTH};
use lapin::types::{AMQPValue, FieldTable};

/// A field table nested `levels` deep, each level `{"a": <next>}`, as AMQP encodes it.
fn nested_table(levels: usize) -> Vec<u8> {
    let mut table = vec![0, 0, 0, 0];
    for _ in 1..levels {
        let mut outer = ((table.len() + 3) as u32).to_be_bytes().to_vec();
        outer.extend_from_slice(&[1, b'a', b'F']);
        outer.extend_from_slice(&table);
        table = outer;
    }
    table
}

fn depth(table: &FieldTable) -> usize {
    1 + table
        .inner()
        .values()
        .map(|value| match value {
            AMQPValue::FieldTable(inner) => depth(inner),
            _ => 0,
        })
        .max()
        .unwrap_or(0)
}

/// A content-header frame of a basic message: `headers` (raw) and a `message_id` (raw).
fn content_header_frame(headers: &[u8], message_id: &[u8]) -> Vec<u8> {
    let mut payload = vec![0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8];
    let flags: u16 = (1 << 13) | (1 << (15 - 8)); // headers, message-id
    payload.extend_from_slice(&flags.to_be_bytes());
    payload.extend_from_slice(headers);
    payload.push(message_id.len() as u8);
    payload.extend_from_slice(message_id);
    let mut frame = vec![2, 0, 1];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    frame.push(0xCE);
    frame
}

#[test]
fn short_strings_that_are_not_utf8_are_read_lossily_within_255_bytes() {
    let (_, text) = parse_short_string(&[4u8, 0xff, 0xfe, 0x2d, 0x61][..]).unwrap();
    assert_eq!(text.as_str(), "\u{fffd}\u{fffd}-a");
    let mut all_bad = vec![255u8];
    all_bad.extend([0xffu8; 255]);
    let (_, text) = parse_short_string(&all_bad[..]).unwrap();
    assert!(text.as_str().len() <= 255, "it can be sent again");
    assert!(text.as_str().chars().all(|c| c == '\u{fffd}'));
}

#[test]
fn a_poison_content_header_parses_on_the_io_threads_stack() {
    // headers = {"\xc3(": void, "n": <a table 10,000 deep>}, message_id = ff fe 2d 61
    let mut entries = vec![2, 0xc3, 0x28, b'V', 1, b'n', b'F'];
    entries.extend_from_slice(&nested_table(10_000));
    let mut headers = (entries.len() as u32).to_be_bytes().to_vec();
    headers.extend_from_slice(&entries);
    let frame = content_header_frame(&headers, &[0xff, 0xfe, 0x2d, 0x61]);
    assert!(
        frame.len() > 50_000 && frame.len() < 131_072,
        "under the frame limit"
    );
    // lapin's I/O thread has the default stack of a spawned thread: 2 MiB.
    let parsed = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || match parse_frame(&frame[..]) {
            Ok((rest, AMQPFrame::Header(_, header))) => {
                assert!(rest.is_empty());
                let properties = header.properties;
                let headers = properties.headers().clone().unwrap();
                let names: Vec<String> = headers
                    .inner()
                    .keys()
                    .map(|k| k.as_str().to_owned())
                    .collect();
                let nested = match headers.inner().get("n") {
                    Some(AMQPValue::FieldTable(table)) => depth(table),
                    other => panic!("{other:?}"),
                };
                (
                    properties.message_id().clone().unwrap().to_string(),
                    names,
                    nested,
                )
            }
            other => panic!("the frame did not parse: {other:?}"),
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
    let (message_id, names, nested) = parsed;
    assert_eq!(message_id, "\u{fffd}\u{fffd}-a");
    assert!(names.contains(&"\u{fffd}(".to_owned()), "{names:?}");
    // The headers table is the first level; "n" and the 62 tables under it make 64.
    assert_eq!(
        nested + 1,
        MAX_NESTING_DEPTH,
        "not descended past the limit"
    );
}
