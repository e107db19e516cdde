//! What the schema tests share: reading a schema that must be rejected, finding the diagnostic
//! expected at a pointer, and generating from a schema that must be accepted.

use serde_json::Value;
use vproto_codegen::{parse_schema, Diagnostics, Generated, Generator};

/// The diagnostics of a schema that must be rejected.
pub fn errors_of(schema: &Value) -> Diagnostics {
    parse_schema(&schema.to_string(), "test.json").expect_err("the schema should be rejected")
}

/// `schema` is rejected with, among others, an error at `pointer` whose message contains
/// `words` and that says how to fix it.
pub fn assert_error(schema: &Value, pointer: &str, words: &str) {
    let diagnostics = errors_of(schema);
    assert!(
        diagnostics.items.iter().any(|d| d.pointer == pointer && d.message.contains(words) && !d.hint.is_empty()),
        "expected an error at {pointer} containing {words:?}, got:\n{diagnostics}"
    );
}

/// Everything generated from `schema`, which must pass every check.
#[allow(dead_code)] // not every test file generates
pub fn generate(schema: &Value) -> Generated {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("schema.json");
    std::fs::write(&path, schema.to_string()).unwrap();
    Generator::new(&path).generate().unwrap_or_else(|diagnostics| panic!("{diagnostics}"))
}
