//! Names: types, objects and errors share one namespace of Rust type names; fields,
//! services, methods, params and data trees are lower_snake_case.

use std::collections::BTreeMap;

use super::Checker;
use crate::diagnostic::pointer;

impl Checker<'_> {
    /// Names must be unique across types, objects and errors, and be valid Rust identifiers.
    pub(super) fn names(&mut self) {
        let mut seen: BTreeMap<&str, String> = BTreeMap::new();
        let groups: [(&str, Vec<&String>); 3] = [
            ("types", self.schema.types.keys().collect()),
            ("objects", self.schema.objects.keys().collect()),
            ("errors", self.schema.errors.keys().collect()),
        ];
        for (group, names) in groups {
            for name in names {
                let at = pointer(&[group, name]);
                if !is_type_name(name) {
                    self.out.push(
                        &at,
                        format!("`{name}` is not a valid type name"),
                        "start with an ASCII capital letter and use only letters and digits",
                    );
                }
                if let Some(first) = seen.get(name.as_str()) {
                    self.out.push(
                        &at,
                        format!("the name `{name}` is already used at {first}"),
                        "types, objects and errors share one namespace; rename one",
                    );
                } else {
                    seen.insert(name, at);
                }
            }
        }
    }
}

/// A valid name of a type, object or error: an ASCII capital, then letters and digits.
pub(super) fn is_type_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_uppercase()) && name.chars().all(|c| c.is_ascii_alphanumeric())
}

/// A valid name of a field, service, method, param or data tree: lower_snake_case ASCII.
pub(super) fn is_field_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
