//! Config files: JSON objects whose every value is read with the generated types, so a bad
//! config is refused with the path of the field at fault and what is wrong with it.

use std::path::Path;

use serde_json::{Map, Value};
use vproto_support::wire::{WirePath, WireValue};

/// Why a config was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The underlying error.
        reason: String,
    },
    /// The file is not JSON.
    #[error("config file {path} is not valid JSON: {reason}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message.
        reason: String,
    },
    /// A field is missing, unknown or holds a bad value.
    #[error("{}field `{field}`: {reason}", file.as_ref().map(|f| format!("config file {f}: ")).unwrap_or_default())]
    Field {
        /// The file, once known.
        file: Option<String>,
        /// The field, as `hardware[0].uuid`.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

impl ConfigError {
    /// An error about `field`.
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError::Field { file: None, field: field.into(), reason: reason.into() }
    }

    /// The error, naming the file it comes from.
    pub fn in_file(self, path: &Path) -> Self {
        match self {
            ConfigError::Field { file: None, field, reason } => {
                ConfigError::Field { file: Some(path.display().to_string()), field, reason }
            }
            other => other,
        }
    }
}

/// Reads a config file as JSON.
pub fn read_json(path: &Path) -> Result<Value, ConfigError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ConfigError::Read { path: shown.clone(), reason: e.to_string() })?;
    // Where the text stops being UTF-8, which `read_to_string` does not say.
    let text = std::str::from_utf8(&bytes).map_err(|e| ConfigError::Syntax {
        path: shown.clone(),
        reason: format!("invalid UTF-8 at byte {}", e.valid_up_to()),
    })?;
    serde_json::from_str(text).map_err(|e| ConfigError::Syntax { path: shown, reason: e.to_string() })
}

/// A JSON object of a config, read field by field; unknown fields are refused so a typo does
/// not silently fall back to a default.
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: WirePath,
}

impl<'a> Fields<'a> {
    /// The object `value` at `path`, whose fields must be among `known`.
    pub fn new(value: &'a Value, path: WirePath, known: &[&str]) -> Result<Self, ConfigError> {
        let map = value.as_object().ok_or_else(|| ConfigError::field(shown(&path), "expected a JSON object"))?;
        if let Some(unknown) = map.keys().find(|key| !known.contains(&key.as_str())) {
            return Err(ConfigError::field(
                shown(&path.field(unknown)),
                format!("unknown field (expected one of: {})", known.join(", ")),
            ));
        }
        Ok(Fields { map, path })
    }

    /// The path of field `name`.
    pub fn path(&self, name: &str) -> WirePath {
        self.path.field(name)
    }

    /// The raw value of `name`.
    pub fn raw(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name)
    }

    /// Field `name`, read with its wire type, or `None` when absent (or null).
    pub fn optional<T: WireValue>(&self, name: &str) -> Result<Option<T>, ConfigError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => T::from_wire(value, &self.path(name)).map(Some).map_err(wire_error),
        }
    }

    /// Field `name`, read with its wire type; absent is an error.
    pub fn required<T: WireValue>(&self, name: &str) -> Result<T, ConfigError> {
        self.optional(name)?.ok_or_else(|| ConfigError::field(shown(&self.path(name)), "missing required field"))
    }
}

/// A path as config errors show it: `hardware[0].uuid`, `(top level)` for the root.
pub fn shown(path: &WirePath) -> String {
    path.to_string()
}

/// A wire error (which names its path) as a config error.
pub fn wire_error(error: vproto_support::wire::WireError) -> ConfigError {
    let text = error.to_string();
    match text.split_once(": ") {
        Some((field, reason)) => ConfigError::field(field, reason),
        None => ConfigError::field("(top level)", text),
    }
}
