//! Errors from reading or converting wire data: each names the object, the
//! field path and what was wrong.

use std::fmt;

/// Where in a document a value sits, as `Object.field[3].field`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WirePath(String);

impl WirePath {
    /// The root of a document.
    pub fn root() -> Self {
        WirePath(String::new())
    }

    /// The path of a field below this one.
    pub fn field(&self, name: &str) -> Self {
        if self.0.is_empty() {
            WirePath(name.to_string())
        } else {
            WirePath(format!("{}.{name}", self.0))
        }
    }

    /// The path of an array element below this one.
    pub fn index(&self, index: usize) -> Self {
        WirePath(format!("{}[{index}]", self.0))
    }

    /// The path of a map entry below this one.
    pub fn key(&self, key: &str) -> Self {
        WirePath(format!("{}[{key:?}]", self.0))
    }
}

impl fmt::Display for WirePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("(top level)")
        } else {
            f.write_str(&self.0)
        }
    }
}

/// Why wire data could not be read or converted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The envelope names an object the schema does not have.
    #[error("{path}: unknown object `{name}`{expected}")]
    UnknownObject {
        /// Where.
        path: WirePath,
        /// The name received.
        name: String,
        /// What would have been accepted, as a sentence fragment.
        expected: String,
    },
    /// The data is newer than this side understands.
    #[error("{path}: {object} version {version} is newer than the highest supported version {max_supported}")]
    UnsupportedVersion {
        /// Where.
        path: WirePath,
        /// The object.
        object: String,
        /// The version received.
        version: String,
        /// The highest version this side reads.
        max_supported: String,
    },
    /// A version the object never had.
    #[error("{path}: {object} has no version {version} (its versions: {known})")]
    UnknownVersion {
        /// Where.
        path: WirePath,
        /// The object.
        object: String,
        /// The version asked for.
        version: String,
        /// The versions it has.
        known: String,
    },
    /// A required field is absent.
    #[error("{path}: required field `{field}` of {object} is missing")]
    MissingField {
        /// Where.
        path: WirePath,
        /// The object.
        object: String,
        /// The field.
        field: String,
    },
    /// A field the object does not have.
    #[error("{path}: {object} has no field `{field}`")]
    UnknownField {
        /// Where.
        path: WirePath,
        /// The object.
        object: String,
        /// The field.
        field: String,
    },
    /// A value of the wrong JSON type.
    #[error("{path}: expected {expected}, found {found}")]
    WrongType {
        /// Where.
        path: WirePath,
        /// The type wanted.
        expected: String,
        /// What was there.
        found: String,
    },
    /// A value of the right type that breaks a constraint.
    #[error("{path}: {why}")]
    InvalidValue {
        /// Where.
        path: WirePath,
        /// What is wrong with it.
        why: String,
    },
    /// The envelope itself is malformed.
    #[error("{path}: malformed versioned object envelope: {why}")]
    BadEnvelope {
        /// Where.
        path: WirePath,
        /// What is wrong.
        why: String,
    },
    /// A conversion that cannot be done.
    #[error("{path}: cannot convert: {why}")]
    Conversion {
        /// Where.
        path: WirePath,
        /// Why not.
        why: String,
    },
}

/// A short description of a JSON value's type, for error messages.
pub(crate) fn json_kind(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.chars().count() > 40 => "a string".into(),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}
