//! The API description served at `/openapi.json`, and the page that shows it at `/docs` (as the
//! seed service's FastAPI did). The request and result schemas are the very files the worker
//! validates against (`schemas/`), put in at start, so the description cannot drift from them.

use serde_json::Value;

const DOCUMENT: &str = include_str!("openapi.json");

/// The `/docs` page: Swagger UI, which the browser loads from a CDN.
pub const DOCS_PAGE: &str = include_str!("docs.html");

const SCHEMAS: [(&str, &str); 5] = [
    (
        "fetch-chatdata.job",
        include_str!("../../schemas/fetch-chatdata.job.schema.json"),
    ),
    (
        "fetch-media.job",
        include_str!("../../schemas/fetch-media.job.schema.json"),
    ),
    (
        "chatdata-page.result",
        include_str!("../../schemas/chatdata-page.result.schema.json"),
    ),
    (
        "media.result",
        include_str!("../../schemas/media.result.schema.json"),
    ),
    (
        "failure.result",
        include_str!("../../schemas/failure.schema.json"),
    ),
];

/// The paths that take a job, on GET (as the seed service's clients send it) and POST alike.
pub const JOB_PATHS: [&str; 4] = [
    "/wecom/finance/chatdata",
    "/wecom/finance/mediadata",
    "/v1/chatdata",
    "/v1/media",
];

/// The OpenAPI 3.1 document.
pub fn document() -> Value {
    let mut document: Value = serde_json::from_str(DOCUMENT).expect("openapi.json is JSON");
    for path in JOB_PATHS {
        let item = &mut document["paths"][path];
        item["post"] = item["get"].clone();
    }
    let schemas = document["components"]["schemas"]
        .as_object_mut()
        .expect("openapi.json has components.schemas");
    for (name, text) in SCHEMAS {
        let mut schema: Value = serde_json::from_str(text).expect("the schemas are JSON");
        if let Some(fields) = schema.as_object_mut() {
            // Identity belongs to the files; inside the document they are components.
            fields.remove("$id");
            fields.remove("$schema");
        }
        schemas.insert(name.to_owned(), schema);
    }
    document
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_resolves() {
        let document = document();
        let mut references = Vec::new();
        collect_references(&document, &mut references);
        assert!(references.len() > 10);
        for reference in references {
            let pointer = reference.strip_prefix('#').expect("a local reference");
            assert!(document.pointer(pointer).is_some(), "{reference}");
        }
    }

    fn collect_references(value: &Value, into: &mut Vec<String>) {
        match value {
            Value::Object(fields) => {
                if let Some(Value::String(reference)) = fields.get("$ref") {
                    into.push(reference.clone());
                }
                fields.values().for_each(|v| collect_references(v, into));
            }
            Value::Array(items) => items.iter().for_each(|v| collect_references(v, into)),
            _ => {}
        }
    }
}
