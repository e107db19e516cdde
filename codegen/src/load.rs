//! Loading a schema: JSON syntax, duplicate keys, shape (against the
//! meta-schema, with the jsonschema crate), then meaning (see [`crate::check`]).

use std::{
    fmt::{self, Write as _},
    path::Path,
};

use serde::{
    de::{DeserializeSeed, MapAccess, SeqAccess, Visitor},
    Deserialize,
};
use serde_json::{map::Entry, Map, Value};

use crate::{
    check,
    diagnostic::{push_segment, Diagnostics},
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
///
/// The text is parsed once, into a JSON value, noting repeated keys on the way. The shape check
/// and reading the value into the model both only read the value, so with more than one CPU they
/// run side by side, and the meaning checks run on another thread while the value is dropped.
pub fn parse_schema(text: &str, source: &str) -> Result<Schema, Diagnostics> {
    let mut diagnostics = Diagnostics::new(source);
    let (value, duplicates) = match parse_value(text) {
        Ok(parsed) => parsed,
        Err(error) => {
            diagnostics.push(
                "",
                format!("not valid JSON: {error} (line {}, column {})", error.line(), error.column()),
                "fix the JSON syntax",
            );
            return Err(diagnostics);
        }
    };
    let has_duplicates = !duplicates.is_empty();
    for duplicate in duplicates {
        diagnostics.push(
            duplicate,
            "this key appears more than once in its object; JSON readers silently keep only one",
            "remove or rename one of the duplicates",
        );
    }
    let validator = meta::validator();
    let parallel = std::thread::available_parallelism().is_ok_and(|cpus| cpus.get() > 1);
    // Reading the value into the model is wasted when the schema is already known to be
    // rejected; otherwise it is done while the shape is checked.
    let (valid, read) = if parallel && !has_duplicates {
        std::thread::scope(|scope| {
            let valid = scope.spawn(|| validator.is_valid(&value));
            let read = Schema::deserialize(&value).ok();
            (valid.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)), read)
        })
    } else {
        (validator.is_valid(&value), None)
    };
    if !valid {
        for error in validator.iter_errors(&value) {
            diagnostics.push(
                error.instance_path().to_string(),
                format!("does not fit the schema language: {error}"),
                "see schema/meta.schema.json and docs/schema-language.md for the allowed shape",
            );
        }
    }
    if !diagnostics.is_empty() {
        return Err(diagnostics);
    }
    let (schema, value) = match read {
        Some(schema) => (schema, Some(value)),
        // Read again from the owned value: its errors are the ones reported.
        None => match serde_json::from_value(value) {
            Ok(schema) => (schema, None),
            Err(error) => {
                diagnostics.push(
                    "",
                    format!("does not fit the schema language: {error}"),
                    "see docs/schema-language.md",
                );
                return Err(diagnostics);
            }
        },
    };
    match value {
        // Freeing the value's many small allocations takes about as long as the checks: the
        // checks run on another thread meanwhile (freeing is quicker on the thread that
        // allocated).
        Some(value) if parallel => std::thread::scope(|scope| {
            let (schema, diagnostics) = (&schema, &mut diagnostics);
            scope.spawn(move || check::check(schema, diagnostics));
            drop(value);
        }),
        _ => check::check(&schema, &mut diagnostics),
    }
    if diagnostics.is_empty() {
        crate::examples::check_examples(&schema, &mut diagnostics);
    }
    diagnostics.into_result(schema)
}

/// Parses JSON text into a value, as `serde_json::from_str` does (same value, same errors), and
/// returns with it the JSON pointers of every key that appears twice in the same object, in the
/// order of the text.
fn parse_value(text: &str) -> serde_json::Result<(Value, Vec<String>)> {
    let mut found = Vec::new();
    let mut at = String::new();
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = ValueSeed { at: &mut at, found: &mut found }.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok((value, found))
}

/// JSON pointers of every key that appears twice in the same object.
#[cfg(test)]
fn duplicate_keys(text: &str) -> Vec<String> {
    parse_value(text).map(|(_, found)| found).unwrap_or_default()
}

/// Reads one JSON value as `serde_json::Value` does, recording the pointer of every repeated key.
/// `at` is the pointer of the value, extended and restored around each member and element.
struct ValueSeed<'a> {
    at: &'a mut String,
    found: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let len = self.at.len();
            push_segment(self.at, &key);
            // As serde_json's own reader does, a repeated key keeps the last value.
            match map.entry(key) {
                Entry::Vacant(entry) => {
                    entry.insert(access.next_value_seed(ValueSeed { at: &mut *self.at, found: &mut *self.found })?);
                }
                Entry::Occupied(mut entry) => {
                    self.found.push(self.at.clone());
                    entry.insert(access.next_value_seed(ValueSeed { at: &mut *self.at, found: &mut *self.found })?);
                }
            }
            self.at.truncate(len);
        }
        Ok(Value::Object(map))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let len = self.at.len();
            write!(self.at, "/{}", items.len()).expect("writing to a String never fails");
            let item = access.next_element_seed(ValueSeed { at: &mut *self.at, found: &mut *self.found })?;
            self.at.truncate(len);
            match item {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }
    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }
    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }
    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.into()))
    }
    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
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
