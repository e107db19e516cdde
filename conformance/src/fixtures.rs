//! Fixtures (`--fixtures FILE`): param values a user gives for the valid calls of a method, so
//! the suite calls an implementation with data it really has (a network it serves, a device it
//! knows) instead of the schema's examples or generated values, which such an implementation
//! may rightly answer with a declared error every time.
//!
//! The file is a JSON object keyed by method name (`service.method`); each value is an object
//! of param values keyed by param name:
//!
//! ```json
//! {"network.create_port": {"network_id": "0f3d2c1b-9a8e-4d7c-8b6a-5e4f3a2b1c0d"}}
//! ```
//!
//! Every method and param must be in the description, and every value valid against its
//! param's schema; a file that breaks one of these rules is refused as a whole, with the
//! method, the param and why.

use std::{collections::BTreeMap, path::Path};

use serde_json::{Map, Value};

use crate::description::Description;

/// Why a fixtures file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// The file could not be read.
    #[error("cannot read it: {0}")]
    Read(#[source] std::io::Error),
    /// The text is not JSON.
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// The document is not an object keyed by method name.
    #[error("expected a JSON object keyed by method name, got {found}")]
    NotAnObject {
        /// The JSON type found instead.
        found: &'static str,
    },
    /// A key names no method of the description.
    #[error("`{method}` is not a method of the description (its methods: {known})")]
    UnknownMethod {
        /// The key.
        method: String,
        /// The description's methods, comma-separated.
        known: String,
    },
    /// A method's value is not an object keyed by param name.
    #[error("`{method}`: expected an object of param values keyed by param name, got {found}")]
    ParamsNotAnObject {
        /// The method.
        method: String,
        /// The JSON type found instead.
        found: &'static str,
    },
    /// A param name the method does not declare.
    #[error("`{method}`: `{param}` is not one of its params ({known})")]
    UnknownParam {
        /// The method.
        method: String,
        /// The param name given.
        param: String,
        /// The method's params, comma-separated (or "it takes none").
        known: String,
    },
    /// A value that does not fit its param's schema.
    #[error("`{method}` param `{param}`: {value} does not fit the param's schema: {}", .violations.join("; "))]
    InvalidValue {
        /// The method.
        method: String,
        /// The param.
        param: String,
        /// The value given.
        value: Value,
        /// Each violation, as `pointer: message`.
        violations: Vec<String>,
    },
}

/// The name of `value`'s JSON type, for error messages.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Param values by method, each checked against its param's schema.
#[derive(Clone, Debug, Default)]
pub struct Fixtures {
    methods: BTreeMap<String, Map<String, Value>>,
}

impl Fixtures {
    /// No fixtures: every call uses the examples' and generated values.
    pub fn none() -> Self {
        Fixtures::default()
    }

    /// Reads and checks a fixtures file against `description`.
    pub fn load(path: &Path, description: &Description) -> Result<Self, FixtureError> {
        let text = std::fs::read_to_string(path).map_err(FixtureError::Read)?;
        Self::parse(&text, description)
    }

    /// Parses and checks the text of a fixtures file against `description`.
    pub fn parse(text: &str, description: &Description) -> Result<Self, FixtureError> {
        let value: Value = serde_json::from_str(text).map_err(FixtureError::NotJson)?;
        Self::from_value(value, description)
    }

    /// Checks a fixtures document against `description`: known methods, known params, and
    /// values valid against their params' schemas.
    pub fn from_value(value: Value, description: &Description) -> Result<Self, FixtureError> {
        let Value::Object(document) = value else {
            return Err(FixtureError::NotAnObject { found: json_type(&value) });
        };
        let mut methods = BTreeMap::new();
        for (name, params) in document {
            let Some(method) = description.method_named(&name) else {
                let known: Vec<&str> = description.methods.iter().map(|m| m.name.as_str()).collect();
                return Err(FixtureError::UnknownMethod { method: name, known: known.join(", ") });
            };
            let Value::Object(params) = params else {
                return Err(FixtureError::ParamsNotAnObject { method: name, found: json_type(&params) });
            };
            for (param_name, value) in &params {
                let Some(param) = method.params.iter().find(|p| &p.name == param_name) else {
                    let known: Vec<&str> = method.params.iter().map(|p| p.name.as_str()).collect();
                    return Err(FixtureError::UnknownParam {
                        method: name,
                        param: param_name.clone(),
                        known: if known.is_empty() { "it takes none".into() } else { known.join(", ") },
                    });
                };
                let violations = description.violations(&param.schema, value);
                if !violations.is_empty() {
                    return Err(FixtureError::InvalidValue {
                        method: name,
                        param: param_name.clone(),
                        value: value.clone(),
                        violations,
                    });
                }
            }
            methods.insert(name, params);
        }
        Ok(Fixtures { methods })
    }

    /// Adds `other`'s values; for the same method and param, `other`'s win.
    pub fn extend(&mut self, other: &Fixtures) {
        for (method, params) in &other.methods {
            let entry = self.methods.entry(method.clone()).or_default();
            entry.extend(params.iter().map(|(name, value)| (name.clone(), value.clone())));
        }
    }

    /// Whether no method has fixtures.
    pub fn is_empty(&self) -> bool {
        self.methods.is_empty()
    }

    /// The param values given for `method`, if any.
    pub fn of(&self, method: &str) -> Option<&Map<String, Value>> {
        self.methods.get(method).filter(|params| !params.is_empty())
    }

    /// `params` (an object of params by name) with the values given for `method` in place of
    /// its own (added when it lacks them).
    pub fn apply(&self, method: &str, mut params: Value) -> Value {
        if let (Some(given), Value::Object(map)) = (self.of(method), &mut params) {
            for (name, value) in given {
                map.insert(name.clone(), value.clone());
            }
        }
        params
    }

    /// Words to add to a case's description when `method` has fixtures: `" (network_id from
    /// --fixtures)"`; empty otherwise.
    pub fn note(&self, method: &str) -> String {
        match self.of(method) {
            Some(given) => {
                let names: Vec<&str> = given.keys().map(String::as_str).collect();
                format!(" ({} from --fixtures)", names.join(", "))
            }
            None => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(value: Value) -> Result<Fixtures, FixtureError> {
        Fixtures::from_value(value, &Description::published().unwrap())
    }

    /// The name of a published method with a required param of type string and format uuid,
    /// and that param: found from the description, so the test names no method.
    fn uuid_param() -> (String, String) {
        let description = Description::published().unwrap();
        description
            .methods
            .iter()
            .find_map(|method| {
                method.params.iter().find_map(|param| {
                    let schema = crate::generate::effective(&description, &param.schema);
                    (schema.get("format") == Some(&json!("uuid"))).then(|| (method.name.clone(), param.name.clone()))
                })
            })
            .expect("a published method takes a uuid param")
    }

    #[test]
    fn valid_fixtures_override_params() {
        let (method, param) = uuid_param();
        let id = "0f3d2c1b-9a8e-4d7c-8b6a-5e4f3a2b1c0d";
        let fixtures = check(json!({ &method: { &param: id } })).unwrap();
        let applied = fixtures.apply(&method, json!({ &param: "other", "kept": 1 }));
        assert_eq!(applied, json!({ &param: id, "kept": 1 }));
        assert_eq!(fixtures.note(&method), format!(" ({param} from --fixtures)"));
        assert_eq!(fixtures.apply("no.such", json!({"a": 1})), json!({"a": 1}));
        let other = "1e2d3c4b-5a69-4788-9aab-bccddeeff001";
        let mut defaults = check(json!({ &method: { &param: other } })).unwrap();
        defaults.extend(&fixtures);
        assert_eq!(defaults.apply(&method, json!({})), json!({ &param: id }));
        assert!(fixtures.note("no.such").is_empty());
    }

    #[test]
    fn bad_fixtures_name_the_method_the_param_and_why() {
        let (method, param) = uuid_param();
        let error = check(json!([])).unwrap_err();
        assert!(matches!(error, FixtureError::NotAnObject { found: "an array" }), "{error}");
        let error = check(json!({"no.such_method": {}})).unwrap_err().to_string();
        assert!(error.contains("`no.such_method` is not a method") && error.contains(&method), "{error}");
        let error = check(json!({ &method: [1] })).unwrap_err().to_string();
        assert!(error.contains(&method) && error.contains("got an array"), "{error}");
        let error = check(json!({ &method: { "no_such_param": 1 } })).unwrap_err().to_string();
        assert!(error.contains("`no_such_param` is not one of its params") && error.contains(&param), "{error}");
        let error = check(json!({ &method: { &param: "not-a-uuid" } })).unwrap_err();
        let text = error.to_string();
        assert!(matches!(&error, FixtureError::InvalidValue { param: p, .. } if *p == param), "{text}");
        assert!(text.contains(&method) && text.contains("\"not-a-uuid\"") && text.contains("uuid"), "{text}");
        assert!(matches!(
            Fixtures::parse("{", &Description::published().unwrap()).unwrap_err(),
            FixtureError::NotJson(_)
        ));
    }
}
