//! Loading a schema: JSON syntax, duplicate keys, shape (against the
//! meta-schema, with the jsonschema crate), then meaning (see [`crate::check`]).

use std::{fmt, path::Path};

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::{
    check,
    diagnostic::{escape_segment, Diagnostics},
    meta,
    model::Schema,
};

/// Reads and validates the schema file at `path`, reporting every problem at once.
pub fn load_schema(path: &Path) -> Result<Schema, Diagnostics> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| {
        let mut diagnostics = Diagnostics::new(&source);
        diagnostics.push("", format!("cannot read the schema file: {error}"), "check the path");
        diagnostics
    })?;
    parse_schema(&text, &source)
}

/// Validates schema text; `source` names it in errors.
pub fn parse_schema(text: &str, source: &str) -> Result<Schema, Diagnostics> {
    let mut diagnostics = Diagnostics::new(source);
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(error) => {
            diagnostics.push(
                "",
                format!("not valid JSON: {error} (line {}, column {})", error.line(), error.column()),
                "fix the JSON syntax",
            );
            return Err(diagnostics);
        }
    };
    for duplicate in duplicate_keys(text) {
        diagnostics.push(
            duplicate,
            "this key appears more than once in its object; JSON readers silently keep only one",
            "remove or rename one of the duplicates",
        );
    }
    let validator = meta::validator();
    for error in validator.iter_errors(&value) {
        diagnostics.push(
            error.instance_path().to_string(),
            format!("does not fit the schema language: {error}"),
            "see schema/meta.schema.json and docs/schema-language.md for the allowed shape",
        );
    }
    if !diagnostics.is_empty() {
        return Err(diagnostics);
    }
    let schema: Schema = match serde_json::from_value(value) {
        Ok(schema) => schema,
        Err(error) => {
            diagnostics.push("", format!("does not fit the schema language: {error}"), "see docs/schema-language.md");
            return Err(diagnostics);
        }
    };
    check::check(&schema, &mut diagnostics);
    if diagnostics.is_empty() {
        crate::examples::check_examples(&schema, &mut diagnostics);
    }
    diagnostics.into_result(schema)
}

/// JSON pointers of every key that appears twice in the same object.
fn duplicate_keys(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let _ = DuplicateScan { at: String::new(), found: &mut found }.deserialize(&mut deserializer);
    found
}

/// Walks a JSON document, recording the pointer of every repeated key.
struct DuplicateScan<'a> {
    at: String,
    found: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for DuplicateScan<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DuplicateScan<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let at = format!("{}/{}", self.at, escape_segment(&key));
            if !seen.insert(key) {
                self.found.push(at.clone());
            }
            map.next_value_seed(DuplicateScan { at, found: self.found })?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while seq.next_element_seed(DuplicateScan { at: format!("{}/{index}", self.at), found: self.found })?.is_some()
        {
            index += 1;
        }
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_duplicate_keys_with_their_pointer() {
        let found = duplicate_keys(r#"{"a": {"b": 1, "b": 2}, "c": [{"d": 1, "d": 1}]}"#);
        assert_eq!(found, vec!["/a/b".to_string(), "/c/0/d".to_string()]);
    }
}
