//! Type expressions: exactly one kind each, references that resolve, keywords that fit the
//! kind, known formats, valid patterns, and defaults of the right type.

use std::collections::BTreeSet;

use super::{Checker, KNOWN_FORMATS};
use crate::{
    diagnostic::pointer,
    model::{JsonType, Object, TypeExpr, WireForm},
};

impl Checker<'_> {
    /// Named types: each schema checks, `open` only on enums, `since` a protocol version.
    pub(super) fn named_types(&mut self) {
        for (name, named) in &self.schema.types {
            self.type_expr(&pointer(&["types", name, "schema"]), &named.schema, None);
            if named.open && named.schema.enum_values.is_none() {
                self.out.push(
                    pointer(&["types", name, "open"]),
                    "`open` only applies to enums",
                    "remove `open` or give the type an `enum`",
                );
            }
            self.protocol_version(&pointer(&["types", name, "since"]), named.since);
        }
    }

    /// One type expression; `owner` is the object whose field it types, if any.
    pub(super) fn type_expr(&mut self, at: &str, expr: &TypeExpr, owner: Option<&Object>) {
        let kinds = [expr.reference.is_some(), expr.object.is_some(), expr.json_type.is_some()];
        let count = kinds.iter().filter(|k| **k).count();
        if count != 1 {
            self.out.push(at, "a type must give exactly one of `$ref`, `object` and `type`", "keep one of them");
            return;
        }
        if let Some(reference) = &expr.reference {
            match reference.strip_prefix("#/types/") {
                Some(name) if self.schema.types.contains_key(name) => {}
                _ => self.out.push(
                    format!("{at}/$ref"),
                    format!("`{reference}` does not name a type of the schema"),
                    "write `#/types/NAME` with NAME defined under /types",
                ),
            }
            self.only_keywords(at, expr, &[]);
            return;
        }
        if let Some(object) = &expr.object {
            match self.schema.objects.get(object) {
                None => self.out.push(
                    format!("{at}/object"),
                    format!("`{object}` is not an object of the schema"),
                    "name an object defined under /objects",
                ),
                Some(target) => {
                    if let Some(owner) = owner {
                        if owner.wire == WireForm::Plain && target.wire == WireForm::VersionedObject {
                            self.out.push(
                                format!("{at}/object"),
                                format!("a plain object cannot hold the versioned object {object}"),
                                "make both plain, or both versioned objects",
                            );
                        }
                    }
                }
            }
            self.only_keywords(at, expr, &["subclasses"]);
            return;
        }
        if expr.subclasses {
            self.out.push(format!("{at}/subclasses"), "`subclasses` only applies with `object`", "remove it");
        }
        let json_type = expr.json_type.expect("one kind is set");
        match json_type {
            JsonType::String => {
                self.only_keywords(at, expr, &["format", "pattern", "enum", "minLength", "maxLength"]);
                if let Some(format) = &expr.format {
                    if !KNOWN_FORMATS.contains(&format.as_str()) {
                        self.out.push(
                            format!("{at}/format"),
                            format!("unknown format `{format}`"),
                            format!("use one of: {}", KNOWN_FORMATS.join(", ")),
                        );
                    }
                }
                if let Some(pattern) = &expr.pattern {
                    if let Err(error) = regex::Regex::new(pattern) {
                        self.out.push(
                            format!("{at}/pattern"),
                            format!("the pattern is not a valid regular expression: {error}"),
                            "fix the regular expression",
                        );
                    }
                }
                if let Some(values) = &expr.enum_values {
                    let mut seen = BTreeSet::new();
                    for (index, value) in values.iter().enumerate() {
                        if !seen.insert(value) {
                            self.out.push(
                                format!("{at}/enum/{index}"),
                                format!("`{value}` is listed twice"),
                                "list each value once",
                            );
                        }
                    }
                    if values.is_empty() {
                        self.out.push(format!("{at}/enum"), "an enum needs at least one value", "list the values");
                    }
                }
                if let (Some(min), Some(max)) = (expr.min_length, expr.max_length) {
                    if min > max {
                        self.out.push(at, format!("minLength {min} is larger than maxLength {max}"), "swap them");
                    }
                }
            }
            JsonType::Integer | JsonType::Number => {
                self.only_keywords(at, expr, &["minimum", "maximum"]);
                if let (Some(min), Some(max)) = (expr.minimum, expr.maximum) {
                    if min > max {
                        self.out.push(at, format!("minimum {min} is larger than maximum {max}"), "swap them");
                    }
                }
            }
            JsonType::Boolean => self.only_keywords(at, expr, &[]),
            JsonType::Array => {
                self.only_keywords(at, expr, &["items", "minItems", "maxItems"]);
                match &expr.items {
                    Some(items) => self.type_expr(&format!("{at}/items"), items, owner),
                    None => self.out.push(at, "an array needs `items`", "give the element type in `items`"),
                }
            }
            JsonType::Object => {
                self.only_keywords(at, expr, &["additionalProperties"]);
                match &expr.additional_properties {
                    Some(values) => self.type_expr(&format!("{at}/additionalProperties"), values, owner),
                    None => self.out.push(
                        at,
                        "a map needs `additionalProperties` (use a versioned object for records)",
                        "give the value type in `additionalProperties`",
                    ),
                }
            }
        }
    }

    /// Reports keywords that do not apply to the kind of type given.
    fn only_keywords(&mut self, at: &str, expr: &TypeExpr, allowed: &[&str]) {
        let present = [
            ("subclasses", expr.subclasses),
            ("format", expr.format.is_some()),
            ("pattern", expr.pattern.is_some()),
            ("enum", expr.enum_values.is_some()),
            ("minLength", expr.min_length.is_some()),
            ("maxLength", expr.max_length.is_some()),
            ("minimum", expr.minimum.is_some()),
            ("maximum", expr.maximum.is_some()),
            ("items", expr.items.is_some()),
            ("minItems", expr.min_items.is_some()),
            ("maxItems", expr.max_items.is_some()),
            ("additionalProperties", expr.additional_properties.is_some()),
        ];
        for (keyword, is_present) in present {
            if is_present && !allowed.contains(&keyword) {
                self.out.push(
                    format!("{at}/{keyword}"),
                    format!("`{keyword}` does not apply to this kind of type"),
                    "remove it",
                );
            }
        }
    }

    /// Whether a default is a value of `expr` (`null` only when `nullable`), and why not.
    pub(super) fn default_fits(
        &self,
        value: &serde_json::Value,
        expr: &TypeExpr,
        nullable: bool,
    ) -> Result<(), DefaultMismatch> {
        use serde_json::Value;
        if value.is_null() {
            return if nullable { Ok(()) } else { Err(DefaultMismatch::NotNullable) };
        }
        if let Some(name) = expr.reference.as_deref().and_then(|r| r.strip_prefix("#/types/")) {
            return match self.schema.types.get(name) {
                Some(named) => self.default_fits(value, &named.schema, false),
                None => Ok(()),
            };
        }
        if let Some(object) = &expr.object {
            let target = self.schema.objects.get(object);
            return match (target.map(|o| o.wire), value) {
                (Some(WireForm::VersionedObject), Value::Object(map))
                    if map.get("versioned_object.name").and_then(Value::as_str).is_some() =>
                {
                    Ok(())
                }
                (Some(WireForm::Plain), Value::Object(_)) => Ok(()),
                (None, _) => Ok(()),
                _ => Err(DefaultMismatch::NotWireForm { object: object.clone() }),
            };
        }
        let fits = match (expr.json_type, value) {
            (Some(JsonType::String), Value::String(text)) => {
                expr.enum_values.as_ref().is_none_or(|values| values.contains(text))
            }
            (Some(JsonType::Integer), Value::Number(n)) => n.is_i64() || n.is_u64(),
            (Some(JsonType::Number), Value::Number(_)) => true,
            (Some(JsonType::Boolean), Value::Bool(_)) => true,
            (Some(JsonType::Array), Value::Array(items)) => {
                let item_type = expr.items.as_deref().cloned().unwrap_or_default();
                return items.iter().try_for_each(|item| self.default_fits(item, &item_type, false));
            }
            (Some(JsonType::Object), Value::Object(entries)) => {
                let value_type = expr.additional_properties.as_deref().cloned().unwrap_or_default();
                return entries.values().try_for_each(|item| self.default_fits(item, &value_type, false));
            }
            _ => false,
        };
        if fits {
            Ok(())
        } else {
            Err(DefaultMismatch::WrongType {
                value: value.clone(),
                expected: expr.json_type.map(|t| format!("{t:?}").to_lowercase()).unwrap_or_default(),
            })
        }
    }
}

/// Why a field's default is not a value of its type.
#[derive(Debug, thiserror::Error)]
pub(super) enum DefaultMismatch {
    /// A `null` default on a field that is not nullable.
    #[error("null, but the field is not nullable")]
    NotNullable,
    /// A default for an object field that is not the object's wire form.
    #[error("expected a {object} in its wire form")]
    NotWireForm { object: String },
    /// A default of another JSON type (or outside the enum).
    #[error("{value} is not a valid {expected}")]
    WrongType { value: serde_json::Value, expected: String },
}
