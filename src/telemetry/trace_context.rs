//! W3C trace context (`traceparent`): a job published with one keeps its trace id through the
//! worker, into its log span and onto every result, retry copy, continuation and dead letter
//! it produces; a job without one gets a new trace id. Only the header's own format is trusted:
//! `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, ids not all zero.

use rand::RngCore;

/// The header's name, on AMQP messages as on HTTP requests.
pub const TRACEPARENT: &str = "traceparent";

/// A job's place in a W3C trace: the trace it belongs to and its own span in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lower-case hex digits.
    pub trace_id: String,
    /// This job's span: the parent of what it publishes. 16 lower-case hex digits.
    pub span_id: String,
    /// Whether the trace is sampled (the flags' low bit).
    pub sampled: bool,
}

impl TraceContext {
    /// A new span of the trace `header` names, or of a new trace when it names none (absent or
    /// not in the format).
    pub fn continue_or_start(header: Option<&str>) -> Self {
        let span_id = random_hex::<8>();
        match header.and_then(parse) {
            Some((trace_id, sampled)) => Self {
                trace_id,
                span_id,
                sampled,
            },
            None => Self {
                trace_id: random_hex::<16>(),
                span_id,
                sampled: true,
            },
        }
    }

    /// The `traceparent` of what this job publishes: its trace, with its span as the parent.
    pub fn header(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

/// The trace id and sampled flag of a well-formed `traceparent`.
fn parse(header: &str) -> Option<(String, bool)> {
    let mut parts = header.trim().split('-');
    let (version, trace_id, parent_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let valid = hex(version, 2)
        && version != "ff"
        && (version != "00" || parts.next().is_none())
        && hex(trace_id, 32)
        && hex(parent_id, 16)
        && hex(flags, 2)
        && trace_id.bytes().any(|b| b != b'0')
        && parent_id.bytes().any(|b| b != b'0');
    let flags = u8::from_str_radix(flags, 16).ok()?;
    valid.then(|| (trace_id.to_owned(), flags & 1 == 1))
}

fn random_hex<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    loop {
        rand::thread_rng().fill_bytes(&mut bytes);
        if bytes.iter().any(|b| *b != 0) {
            return hex::encode(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIVEN: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_header_keeps_its_trace_with_a_new_span() {
        let context = TraceContext::continue_or_start(Some(GIVEN));
        assert_eq!(context.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(context.span_id, "00f067aa0ba902b7");
        let header = context.header();
        assert!(header.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(header.ends_with("-01"));
        assert_eq!(parse(&header).map(|(id, _)| id), Some(context.trace_id));
    }

    #[test]
    fn anything_else_starts_a_new_trace() {
        let zeros = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
        let upper = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01";
        let extra = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xx";
        for header in [
            None,
            Some(""),
            Some("garbage"),
            Some(zeros),
            Some(upper),
            Some(extra),
        ] {
            let context = TraceContext::continue_or_start(header);
            assert_ne!(
                context.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736",
                "{header:?}"
            );
            assert_eq!(context.trace_id.len(), 32);
            assert!(parse(&context.header()).is_some());
        }
    }
}
