//! Checks what the worker publishes against the JSON Schemas in `schemas/`, the contract its
//! consumers are written against. The serde types in `src/job/contract.rs` produce the messages
//! and nothing ties them to the schemas at compile time, so every message a test receives
//! should go through [`assert_valid`]: `assert_valid(schema_for(&message), &message)`.
//!
//! Schemas are read from the source tree at run time (not embedded), so editing one needs no
//! rebuild of the test binaries, and each is compiled once per test process.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex, PoisonError};

use jsonschema::Validator;
use serde_json::Value;

/// Past this, a violation or the message is cut in a panic message: a page of a thousand
/// messages or an inline file would bury the violations themselves.
const SHOW_CHARS: usize = 2000;

/// Compiled schemas by name. Leaked: a handful per test process, alive until it exits anyway.
static VALIDATORS: LazyLock<Mutex<HashMap<String, &'static Validator>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn schema_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("schemas/{name}.schema.json"))
}

fn validator(name: &str) -> &'static Validator {
    // A panic while compiling (a broken schema) poisons the lock; the other tests of the
    // process should still report their own failures, not a poisoned mutex.
    let mut validators = VALIDATORS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(validator) = validators.get(name).copied() {
        return validator;
    }
    let path = schema_path(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read the schema {}: {err}", path.display()));
    let schema: Value = serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("{} is not JSON: {err}", path.display()));
    let validator = jsonschema::validator_for(&schema)
        .unwrap_or_else(|err| panic!("{} is not a valid schema: {err}", path.display()));
    let validator: &'static Validator = Box::leak(Box::new(validator));
    validators.insert(name.to_owned(), validator);
    validator
}

fn cut(text: &str) -> String {
    match text.char_indices().nth(SHOW_CHARS) {
        Some((end, _)) => format!("{}... ({} bytes in all)", &text[..end], text.len()),
        None => text.to_owned(),
    }
}

/// Validates `message` against `schemas/<name>.schema.json`, panicking with every violation.
pub fn assert_valid(name: &str, message: &Value) {
    let violations: Vec<String> = validator(name)
        .iter_errors(message)
        .map(|error| {
            let at = error.instance_path().to_string();
            let at = if at.is_empty() { "/".to_owned() } else { at };
            cut(&format!(
                "at {at}: {error} (schema {})",
                error.schema_path()
            ))
        })
        .collect();
    if violations.is_empty() {
        return;
    }
    let mut report = format!(
        "{} violation(s) of schemas/{name}.schema.json:\n",
        violations.len()
    );
    for violation in &violations {
        let _ = writeln!(report, "  - {violation}");
    }
    let shown = serde_json::to_string_pretty(message).unwrap_or_else(|_| message.to_string());
    let _ = write!(report, "in the message:\n{}", cut(&shown));
    panic!("{report}");
}

/// The schema name for a published message: "chatdata-page.result", "media.result" or "failure", from its status/type.
pub fn schema_for(message: &Value) -> &'static str {
    let status = message.get("status").and_then(Value::as_str);
    let kind = message.get("type").and_then(Value::as_str);
    match (status, kind) {
        (Some("ok"), Some("chatdata-page")) => "chatdata-page.result",
        (Some("ok"), Some("media")) => "media.result",
        // The failure schema itself checks the type.
        (Some("failed"), _) => "failure",
        _ => panic!(
            "not a message the worker publishes (status {status:?}, type {kind:?}): {}",
            cut(&message.to_string())
        ),
    }
}
