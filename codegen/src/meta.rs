//! The meta-schema: the JSON Schema of the schema language, derived from
//! [`crate::model`] with schemars so it always matches what the loader reads.

use std::sync::OnceLock;

use crate::model::Schema;

/// The meta-schema as pretty JSON text, as written to `schema/meta.schema.json`.
pub fn meta_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&meta_schema()).expect("a JSON value always serializes");
    text.push('\n');
    text
}

/// The meta-schema as a JSON value.
pub fn meta_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(Schema).to_value();
    if let Some(object) = schema.as_object_mut() {
        object.insert("$id".into(), "https://vproto.dev/schema/meta.schema.json".into());
    }
    schema
}

/// A compiled validator for the meta-schema, built once.
pub fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&meta_schema())
            .expect("the meta-schema derived from the model is a valid JSON Schema")
    })
}
