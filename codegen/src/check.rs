//! Checks of meaning that the meta-schema cannot express: references that
//! resolve, histories in order, versions that exist, inheritance without
//! cycles, child-version pins, names that make valid Rust identifiers.

use std::collections::{BTreeMap, BTreeSet};

use indexmap::IndexMap;

use crate::{
    diagnostic::{pointer, Diagnostics},
    model::{Field, HistoryEntry, HttpMethod, JsonType, Method, Object, Schema, TreePath, TypeExpr, Version, WireForm},
};

/// The formats a string type may name.
pub const KNOWN_FORMATS: &[&str] =
    &["uuid", "mac-address", "ipv4", "ipv6", "ip-address", "ip-network", "pci-address", "hostname", "uri", "date-time"];

/// Runs every check on `schema`, adding what it finds to `out`.
pub fn check(schema: &Schema, out: &mut Diagnostics) {
    let mut checker = Checker { schema, out };
    checker.history(&["protocol"], &schema.protocol.history, schema.protocol.version);
    checker.names();
    for (name, named) in &schema.types {
        checker.type_expr(&pointer(&["types", name, "schema"]), &named.schema, None);
        if named.open && named.schema.enum_values.is_none() {
            checker.out.push(
                pointer(&["types", name, "open"]),
                "`open` only applies to enums",
                "remove `open` or give the type an `enum`",
            );
        }
        checker.protocol_version(&pointer(&["types", name, "since"]), named.since);
    }
    for (name, object) in &schema.objects {
        checker.object(name, object);
    }
    checker.inheritance_cycles();
    checker.errors();
    checker.services();
    checker.data_trees();
}

struct Checker<'a> {
    schema: &'a Schema,
    out: &'a mut Diagnostics,
}

impl Checker<'_> {
    fn history(&mut self, at: &[&str], history: &[HistoryEntry], current: Version) {
        let base = pointer(at);
        if history.is_empty() {
            self.out.push(format!("{base}/history"), "the history is empty", "add one entry per version, oldest first");
            return;
        }
        for (index, pair) in history.windows(2).enumerate() {
            if pair[1].version <= pair[0].version {
                self.out.push(
                    format!("{base}/history/{}/version", index + 1),
                    format!("version {} does not come after {}", pair[1].version, pair[0].version),
                    "list versions oldest first, each once",
                );
            }
        }
        let last = history.last().map(|entry| entry.version);
        if last != Some(current) {
            self.out.push(
                format!("{base}/version"),
                format!(
                    "the current version is {current} but the last history entry is {}",
                    last.map(|v| v.to_string()).unwrap_or_default()
                ),
                "add a history entry for the current version, or set `version` to the last entry",
            );
        }
    }

    fn protocol_version(&mut self, at: &str, version: Version) {
        if !self.schema.protocol.history.iter().any(|entry| entry.version == version) {
            self.out.push(
                at,
                format!("protocol version {version} is not in the protocol's history"),
                format!("use one of: {}", versions_list(self.schema.protocol.history.iter().map(|e| e.version))),
            );
        }
    }

    /// Names must be unique across types, objects and errors, and be valid Rust identifiers.
    fn names(&mut self) {
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

    fn object(&mut self, name: &str, object: &Object) {
        let at = pointer(&["objects", name]);
        self.history(&["objects", name], &object.history, object.version);
        let versions: Vec<Version> = object.history.iter().map(|e| e.version).collect();
        if object.wire == WireForm::VersionedObject && object.namespace.is_none() {
            self.out.push(
                &at,
                format!("{name} travels as a versioned object but has no `namespace`"),
                "add `namespace`, written to versioned_object.namespace",
            );
        }
        if let Some(deprecation) = &object.deprecated {
            self.object_version(&at, "/deprecated/since", name, &versions, deprecation.since);
        }
        if let Some(extends) = &object.extends {
            let ext_at = format!("{at}/extends");
            match self.schema.objects.get(&extends.object) {
                None => self.out.push(
                    format!("{ext_at}/object"),
                    format!("{name} extends `{}`, which is not an object of the schema", extends.object),
                    "name an object defined under /objects",
                ),
                Some(base) => {
                    if base.wire != object.wire {
                        self.out.push(
                            format!("{ext_at}/object"),
                            format!("{name} and its base {} use different wire forms", extends.object),
                            "a subclass travels the same way as its base",
                        );
                    }
                    let base_versions: Vec<Version> = base.history.iter().map(|e| e.version).collect();
                    self.version_map(
                        &format!("{ext_at}/versions"),
                        &extends.versions,
                        (name, &versions),
                        (&extends.object, &base_versions),
                        versions.first().copied(),
                    );
                    for field in object.fields.keys() {
                        if let Some(owner) = self.find_inherited_field(&extends.object, field) {
                            self.out.push(
                                pointer(&["objects", name, "fields", field]),
                                format!("field `{field}` is already declared by the base object {owner}"),
                                "a subclass inherits base fields; remove this declaration or rename it",
                            );
                        }
                    }
                }
            }
        }
        let first = versions.first().copied();
        for (field_name, field) in &object.fields {
            self.field(name, object, &versions, first, field_name, field);
        }
    }

    fn find_inherited_field(&self, object: &str, field: &str) -> Option<String> {
        let mut current = object.to_string();
        for _ in 0..=self.schema.objects.len() {
            let definition = self.schema.objects.get(&current)?;
            if definition.fields.contains_key(field) {
                return Some(current);
            }
            current = definition.extends.as_ref()?.object.clone();
        }
        None
    }

    fn field(
        &mut self,
        object_name: &str,
        object: &Object,
        versions: &[Version],
        first: Option<Version>,
        name: &str,
        field: &Field,
    ) {
        let at = pointer(&["objects", object_name, "fields", name]);
        if !is_field_name(name) {
            self.out.push(
                &at,
                format!("`{name}` is not a valid field name"),
                "use lower_snake_case ASCII letters, digits and underscores, starting with a letter",
            );
        }
        self.object_version(&at, "/since", object_name, versions, field.since);
        if let Some(deprecated) = field.deprecated {
            self.object_version(&at, "/deprecated", object_name, versions, deprecated);
            if deprecated < field.since {
                self.out.push(
                    format!("{at}/deprecated"),
                    "a field cannot be deprecated before it exists",
                    "use a version at or after `since`",
                );
            }
        }
        if let Some(removed) = field.removed {
            self.object_version(&at, "/removed", object_name, versions, removed);
            if removed <= field.since {
                self.out.push(
                    format!("{at}/removed"),
                    "a field must exist for at least one version before it is removed",
                    "use a version after `since`",
                );
            }
            if field.required && field.default.is_none() {
                self.out.push(
                    format!("{at}/removed"),
                    format!("`{name}` is required by the versions before {removed} but has no default to fill it in when converting down"),
                    "add a `default`",
                );
            }
        }
        self.type_expr(&format!("{at}/schema"), &field.schema, Some(object));
        if Some(field.since) > first && field.required && field.default.is_none() {
            self.out.push(
                &at,
                format!(
                    "`{name}` was added in {object_name} {} and is required, but data from earlier versions lacks it and there is no default",
                    field.since
                ),
                "add a `default`, or set `\"required\": false`",
            );
        }
        if let Some(default) = &field.default {
            if let Err(why) = self.default_fits(default, &field.schema, field.nullable) {
                self.out.push(
                    format!("{at}/default"),
                    format!("the default does not fit the field's type: {why}"),
                    "give a default of the field's type",
                );
            }
        }
        self.child_versions(&at, object_name, versions, name, field);
    }

    /// `field_at` is the field's pointer.
    fn child_versions(&mut self, field_at: &str, object_name: &str, versions: &[Version], name: &str, field: &Field) {
        // Built only when needed: most fields are fine.
        let at = || format!("{field_at}/child_versions");
        let Some((child, polymorphic)) = object_target(&self.schema.types, &field.schema) else {
            if !field.child_versions.is_empty() {
                self.out.push(at(), "`child_versions` only applies to fields that hold objects", "remove it");
            }
            return;
        };
        let Some(child_object) = self.schema.objects.get(child) else { return };
        if field.child_versions.is_empty() {
            if !polymorphic {
                self.out.push(
                    at(),
                    format!("`{name}` holds {child} objects but does not pin which {child} version each {object_name} version carries"),
                    format!(
                        "add `\"child_versions\": {{\"{}\": \"{}\"}}` (this object's version: {child}'s version)",
                        field.since, child_object.version
                    ),
                );
            }
            return;
        }
        let child_versions: Vec<Version> = child_object.history.iter().map(|e| e.version).collect();
        self.version_map(
            &at(),
            &field.child_versions,
            (object_name, versions),
            (child, &child_versions),
            Some(field.since),
        );
    }

    /// Checks a map from versions of `owner` to versions of `target`:
    /// keys exist and ascend, the first key is `first`, values exist and never go down.
    fn version_map(
        &mut self,
        at: &str,
        map: &IndexMap<Version, Version>,
        owner: (&str, &[Version]),
        target: (&str, &[Version]),
        first: Option<Version>,
    ) {
        if map.keys().next().copied() != first {
            self.out.push(
                at,
                format!(
                    "the first entry must be {}'s version {}, where the mapping starts",
                    owner.0,
                    first.map(|v| v.to_string()).unwrap_or_default()
                ),
                "start the map at that version",
            );
        }
        let mut previous: Option<(Version, Version)> = None;
        for (key, value) in map {
            let entry = || format!("{at}/{key}");
            if !owner.1.contains(key) {
                self.out.push(
                    entry(),
                    format!("{key} is not a version of {}", owner.0),
                    format!("use one of: {}", versions_list(owner.1.iter().copied())),
                );
            }
            if !target.1.contains(value) {
                self.out.push(
                    entry(),
                    format!("{value} is not a version of {}", target.0),
                    format!("use one of: {}", versions_list(target.1.iter().copied())),
                );
            }
            if let Some((previous_key, previous_value)) = previous {
                if *key <= previous_key {
                    self.out.push(
                        entry(),
                        format!("{key} does not come after {previous_key}"),
                        "list versions oldest first",
                    );
                }
                if *value < previous_value {
                    self.out.push(
                        entry(),
                        format!("{} version goes down from {previous_value} to {value}", target.0),
                        "a newer version never carries an older one",
                    );
                }
            }
            previous = Some((*key, *value));
        }
    }

    /// Checks that `version` is one of `object`'s; the pointer is `at` then `suffix`.
    fn object_version(&mut self, at: &str, suffix: &str, object: &str, versions: &[Version], version: Version) {
        if !versions.contains(&version) {
            self.out.push(
                format!("{at}{suffix}"),
                format!("{version} is not a version of {object}"),
                format!(
                    "use one of {object}'s versions ({}) or add {version} to its history",
                    versions_list(versions.iter().copied())
                ),
            );
        }
    }

    fn type_expr(&mut self, at: &str, expr: &TypeExpr, owner: Option<&Object>) {
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

    fn default_fits(&self, value: &serde_json::Value, expr: &TypeExpr, nullable: bool) -> Result<(), String> {
        use serde_json::Value;
        if value.is_null() {
            return if nullable { Ok(()) } else { Err("null, but the field is not nullable".into()) };
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
                _ => Err(format!("expected a {object} in its wire form")),
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
            Err(format!(
                "{value} is not a valid {}",
                expr.json_type.map(|t| format!("{t:?}").to_lowercase()).unwrap_or_default()
            ))
        }
    }

    fn inheritance_cycles(&mut self) {
        for start in self.schema.objects.keys() {
            let mut chain = vec![start.as_str()];
            let mut current = start.as_str();
            while let Some(base) =
                self.schema.objects.get(current).and_then(|o| o.extends.as_ref()).map(|e| e.object.as_str())
            {
                if base == start {
                    chain.push(base);
                    self.out.push(
                        pointer(&["objects", start, "extends", "object"]),
                        format!("inheritance cycle: {}", chain.join(" -> ")),
                        "an object cannot be its own base; break the cycle",
                    );
                    break;
                }
                if chain.contains(&base) {
                    break;
                }
                chain.push(base);
                current = base;
            }
        }
    }

    fn errors(&mut self) {
        let mut codes: BTreeMap<i64, &str> = BTreeMap::new();
        for (name, error) in &self.schema.errors {
            let at = pointer(&["errors", name]);
            if (-32768..=-32000).contains(&error.code) {
                self.out.push(
                    format!("{at}/code"),
                    format!("code {} is reserved by JSON-RPC 2.0", error.code),
                    "use a code outside -32768..-32000",
                );
            }
            if let Some(other) = codes.insert(error.code, name) {
                self.out.push(
                    format!("{at}/code"),
                    format!("code {} is already used by {other}", error.code),
                    "error codes are stable and unique; pick another",
                );
            }
            self.protocol_version(&format!("{at}/since"), error.since);
            if let Some(data) = &error.data {
                self.type_expr(&format!("{at}/data"), data, None);
            }
        }
    }

    fn services(&mut self) {
        let mut routes: BTreeMap<(String, String), String> = BTreeMap::new();
        for (service_name, service) in &self.schema.services {
            let service_at = pointer(&["services", service_name]);
            if !is_field_name(service_name) {
                self.out.push(
                    &service_at,
                    format!("`{service_name}` is not a valid service name"),
                    "use lower_snake_case",
                );
            }
            self.protocol_version(&format!("{service_at}/since"), service.since);
            for (method_name, method) in &service.methods {
                let at = pointer(&["services", service_name, "methods", method_name]);
                if !is_field_name(method_name) {
                    self.out.push(&at, format!("`{method_name}` is not a valid method name"), "use lower_snake_case");
                }
                self.protocol_version(&format!("{at}/since"), method.since);
                for (param_name, param) in &method.params {
                    let param_at = pointer(&["services", service_name, "methods", method_name, "params", param_name]);
                    if !is_field_name(param_name) {
                        self.out.push(
                            &param_at,
                            format!("`{param_name}` is not a valid parameter name"),
                            "use lower_snake_case",
                        );
                    }
                    self.type_expr(&format!("{param_at}/schema"), &param.schema, None);
                    if let Some(since) = param.since {
                        self.protocol_version(&format!("{param_at}/since"), since);
                    }
                }
                if let Some(result) = &method.result {
                    self.type_expr(&format!("{at}/result"), result, None);
                }
                if method.notification && (method.result.is_some() || !method.errors.is_empty()) {
                    self.out.push(
                        &at,
                        "a notification is never answered, so it has no result or errors",
                        "remove `result` and `errors`, or make it a method",
                    );
                }
                for (index, error) in method.errors.iter().enumerate() {
                    if !self.schema.errors.contains_key(error) {
                        self.out.push(
                            format!("{at}/errors/{index}"),
                            format!("`{error}` is not an error of the schema"),
                            "name an error defined under /errors",
                        );
                    }
                }
                if let Some(http) = &method.http {
                    if !http.path.starts_with('/') {
                        self.out.push(
                            format!("{at}/http/path"),
                            "an HTTP path starts with `/`",
                            "write an absolute path",
                        );
                    }
                    let route = (http.method.as_str().to_string(), http.path.clone());
                    let full_name = format!("{service_name}.{method_name}");
                    if let Some(other) = routes.get(&route) {
                        // Different services may share a route: each is served on its own listener.
                        if other.split('.').next() == Some(service_name.as_str()) {
                            self.out.push(
                                format!("{at}/http"),
                                format!("{} {} is already bound to {other}", route.0, route.1),
                                "bind each route once per service",
                            );
                        }
                    }
                    routes.insert(route, full_name);
                    if let Some(body) = &http.body {
                        self.http_body(&format!("{at}/http/body"), method, http.method, body);
                    }
                }
            }
        }
    }

    /// A route's `body` names a param that can stand for the whole request body: one of the
    /// method's, on a verb that has a body, with every other param optional (the route carries
    /// only this one), and of a type whose value can never look like the wrapped form
    /// `{"<param>": value}` that the route also accepts.
    fn http_body(&mut self, at: &str, method: &Method, verb: HttpMethod, body: &str) {
        let Some(param) = method.params.get(body) else {
            let names: Vec<&str> = method.params.keys().map(String::as_str).collect();
            self.out.push(
                at,
                format!("`{body}` is not a param of the method"),
                format!(
                    "name one of its params ({})",
                    if names.is_empty() { "it has none".into() } else { names.join(", ") }
                ),
            );
            return;
        };
        if !matches!(verb, HttpMethod::Post | HttpMethod::Put) {
            self.out.push(
                at,
                format!("a {} request has no body to carry `{body}`", verb.as_str()),
                "bind the method to POST or PUT, or remove `body`",
            );
        }
        for (other, other_param) in &method.params {
            if other != body && other_param.required {
                self.out.push(
                    at,
                    format!("the required param `{other}` cannot be given on a route whose body is `{body}`"),
                    format!("make `{other}` optional, or remove `body`"),
                );
            }
        }
        if self.may_hold_member(&param.schema, body, 0) {
            self.out.push(
                at,
                format!("a `{body}` value may hold a member named `{body}`, so a body could not be told from the wrapped form `{{\"{body}\": ...}}`"),
                "give the param another name, or remove `body`",
            );
        }
    }

    /// Whether a value of `expr` may be a JSON object with a member named `member`: an object
    /// with such a field (its own or inherited) or a map, through named types.
    fn may_hold_member(&self, expr: &TypeExpr, member: &str, depth: usize) -> bool {
        if let Some(object) = &expr.object {
            return self.find_inherited_field(object, member).is_some();
        }
        let named =
            expr.reference.as_deref().and_then(|r| r.strip_prefix("#/types/")).and_then(|n| self.schema.types.get(n));
        match named {
            // A cycle of references is reported elsewhere; the depth bound only ends the walk.
            Some(named) => depth <= self.schema.types.len() && self.may_hold_member(&named.schema, member, depth + 1),
            None => expr.json_type == Some(JsonType::Object),
        }
    }

    fn data_trees(&mut self) {
        for (name, tree) in &self.schema.data_trees {
            let at = pointer(&["data_trees", name]);
            if !is_field_name(name) {
                self.out.push(
                    &at,
                    format!("`{name}` is not a valid data tree name"),
                    "use lower_snake_case ASCII letters, digits and underscores, starting with a letter",
                );
            }
            if !self.schema.objects.contains_key(&tree.object) {
                self.out.push(
                    format!("{at}/object"),
                    format!("`{}` is not an object of the schema", tree.object),
                    "name an object defined under /objects",
                );
                continue;
            }
            let mut previous: Option<(u64, u64, u64)> = None;
            for (index, entry) in tree.history.iter().enumerate() {
                let Some(version) = parse_semver(&entry.version.0) else { continue };
                if previous.is_some_and(|before| version <= before) {
                    self.out.push(
                        format!("{at}/history/{index}/version"),
                        format!("layout version {} does not come after the entry before it", entry.version.0),
                        "list layout versions oldest first, each once",
                    );
                }
                previous = Some(version);
            }
            if tree.history.last().map(|e| &e.version) != Some(&tree.layout_version) {
                self.out.push(
                    format!("{at}/layout_version"),
                    "the layout version must be the last history entry",
                    "add a history entry for it",
                );
            }
            for (key, path) in [("root", &tree.root), ("version_key", &tree.version_key)] {
                if !path.split('/').all(is_tree_segment) {
                    self.out.push(
                        format!("{at}/{key}"),
                        format!("`{path}` is not a relative Xenstore path of plain segments"),
                        "write segments of ASCII letters, digits, `_` and `-`, separated by `/`, without `..`",
                    );
                }
            }
            let mut leaves = Vec::new();
            let paths_at = vec!["data_trees".to_string(), name.clone(), "paths".to_string()];
            self.tree_node(&paths_at, &tree.object, &tree.paths, Some(""), &mut leaves);
            if !leaves.iter().any(|(path, json_type)| *path == tree.version_key && *json_type == JsonType::String) {
                self.out.push(
                    format!("{at}/version_key"),
                    format!("`{}` is not the path of a string field of the tree outside any list", tree.version_key),
                    "point version_key at the mapped field that holds the layout version",
                );
            }
        }
    }

    /// Checks the paths of one object's fields in a data tree. `prefix` is the
    /// path of the object from the tree root, unknown below a list entry.
    fn tree_node(
        &mut self,
        at: &[String],
        object_name: &str,
        paths: &IndexMap<String, TreePath>,
        prefix: Option<&str>,
        leaves: &mut Vec<(String, JsonType)>,
    ) {
        let lineage = crate::ir::lineage(self.schema, object_name);
        let field_of = |name: &str| lineage.iter().find_map(|(_, object)| object.fields.get(name));
        let here = |extra: &[&str]| {
            let mut segments: Vec<&str> = at.iter().map(String::as_str).collect();
            segments.extend_from_slice(extra);
            pointer(&segments)
        };
        let mut claimed: Vec<(&str, Vec<&str>)> = Vec::new();
        for (field_name, tree_path) in paths {
            let Some(field) = field_of(field_name) else {
                self.out.push(
                    here(&[field_name]),
                    format!("{object_name} has no field `{field_name}`"),
                    "map only the object's fields",
                );
                continue;
            };
            if field.removed.is_some() {
                self.out.push(
                    here(&[field_name]),
                    format!("{object_name}.{field_name} is removed, so the tree cannot hold it"),
                    "drop its path in a new layout version",
                );
            }
            let segments: Vec<&str> = tree_path.path.split('/').collect();
            let placeholder = segments.last() == Some(&"{key}");
            let fixed = &segments[..segments.len() - usize::from(placeholder)];
            if fixed.is_empty() || !fixed.iter().all(|s| is_tree_segment(s)) {
                self.out.push(
                    here(&[field_name, "path"]),
                    format!("`{}` is not a relative path of plain segments", tree_path.path),
                    "write segments of ASCII letters, digits, `_` and `-` separated by `/` (no `..`, no leading `/`); \
                     a list ends in one `/{key}`",
                );
            }
            for (other, other_fixed) in &claimed {
                let shorter = fixed.len().min(other_fixed.len());
                if fixed[..shorter] == other_fixed[..shorter] {
                    self.out.push(
                        here(&[field_name, "path"]),
                        format!("`{}` overlaps the path of `{other}`", tree_path.path),
                        "give every field its own subtree: no path may be a prefix of another",
                    );
                }
            }
            claimed.push((field_name, fixed.to_vec()));
            let full =
                prefix.map(|p| if p.is_empty() { tree_path.path.clone() } else { format!("{p}/{}", tree_path.path) });
            match tree_value_kind(&self.schema.types, &field.schema) {
                TreeValueKind::Scalar { json_type, .. } => {
                    if tree_path.key.is_some() || !tree_path.fields.is_empty() || placeholder {
                        self.out.push(
                            here(&[field_name]),
                            format!("{object_name}.{field_name} is a single value: it takes no `key`, `fields` or `{{key}}`"),
                            "give a scalar field only its `path`",
                        );
                    }
                    if let Some(full) = full {
                        leaves.push((full, json_type));
                    }
                }
                TreeValueKind::Object(target) => {
                    if tree_path.key.is_some() || placeholder {
                        self.out.push(
                            here(&[field_name]),
                            format!("{object_name}.{field_name} holds one object: it takes no `key` or `{{key}}`"),
                            "only list fields are keyed",
                        );
                    }
                    if tree_path.fields.is_empty() {
                        self.out.push(
                            here(&[field_name]),
                            format!("{object_name}.{field_name} holds a {target} but maps none of its fields"),
                            format!("map the fields of {target} under `fields`"),
                        );
                    }
                    let mut nested = at.to_vec();
                    nested.extend([field_name.clone(), "fields".to_string()]);
                    self.tree_node(&nested, target, &tree_path.fields, full.as_deref(), leaves);
                }
                TreeValueKind::ObjectList(target) => {
                    self.tree_list(here(&[field_name]), object_name, field_name, target, tree_path, placeholder);
                    let mut nested = at.to_vec();
                    nested.extend([field_name.clone(), "fields".to_string()]);
                    self.tree_node(&nested, target, &tree_path.fields, None, leaves);
                }
                TreeValueKind::Unsupported(why) => self.out.push(
                    here(&[field_name]),
                    format!("{object_name}.{field_name} is {why}, which a data tree cannot lay out"),
                    "lay out scalar fields, objects and lists of objects only",
                ),
            }
        }
        for (owner, object) in &lineage {
            for (field_name, field) in &object.fields {
                let needed = field.required && field.default.is_none() && !field.nullable && field.removed.is_none();
                if needed && !paths.contains_key(field_name) {
                    self.out.push(
                        here(&[]),
                        format!("{owner}.{field_name} is required but the tree gives it no path"),
                        "map it, or give the field a default",
                    );
                }
            }
        }
    }

    /// A list field's entries are named by a key field whose values make short, distinct path segments.
    fn tree_list(
        &mut self,
        at: String,
        object_name: &str,
        field_name: &str,
        target: &str,
        tree_path: &TreePath,
        placeholder: bool,
    ) {
        if !placeholder {
            self.out.push(
                format!("{at}/path"),
                format!("{object_name}.{field_name} is a list: its path must end in `/{{key}}`"),
                "name each entry by its key, as `items/{key}`",
            );
        }
        let Some(key) = &tree_path.key else {
            self.out.push(
                at,
                format!("{object_name}.{field_name} is a list but names no `key` field"),
                format!("set `key` to a field of {target} whose value names each entry (never an index)"),
            );
            return;
        };
        let key_field =
            crate::ir::lineage(self.schema, target).into_iter().find_map(|(_, object)| object.fields.get(key));
        let Some(key_field) = key_field else {
            self.out.push(
                format!("{at}/key"),
                format!("{target} has no field `{key}`"),
                format!("name a field of {target}"),
            );
            return;
        };
        let formatted = matches!(
            tree_value_kind(&self.schema.types, &key_field.schema),
            TreeValueKind::Scalar { json_type: JsonType::String, expr } if expr.format.is_some()
        );
        if !formatted || !key_field.required || key_field.nullable {
            self.out.push(
                format!("{at}/key"),
                format!("{target}.{key} cannot name entries: a key is a required string with a `format`"),
                "key entries by a formatted value (a MAC or IP address, a UUID); free text such as a name \
                 could collide after mangling or grow without bound, so it stays a value",
            );
        }
        if !tree_path.fields.contains_key(key) {
            self.out.push(
                format!("{at}/fields"),
                format!("the key field `{key}` has no path of its own"),
                "map the key field too: the path segment is mangled and cannot give the value back",
            );
        }
    }
}

/// How a field's type is laid out in a data tree.
#[derive(Clone, Copy, Debug)]
pub enum TreeValueKind<'a> {
    /// One Xenstore value; `expr` is the type expression that holds its constraints ($ref resolved).
    Scalar {
        /// The JSON type of the value.
        json_type: JsonType,
        /// The resolved type expression.
        expr: &'a TypeExpr,
    },
    /// A subtree holding one object.
    Object(&'a str),
    /// One subtree per element, named by the element's key field.
    ObjectList(&'a str),
    /// Something a tree cannot hold, described for a diagnostic.
    Unsupported(&'static str),
}

/// Classifies a field type for data-tree layout, following `$ref`s.
pub fn tree_value_kind<'a>(
    types: &'a IndexMap<String, crate::model::NamedType>,
    expr: &'a TypeExpr,
) -> TreeValueKind<'a> {
    let mut expr = expr;
    for _ in 0..=types.len() {
        let Some(name) = expr.reference.as_deref() else { break };
        match name.strip_prefix("#/types/").and_then(|name| types.get(name)) {
            Some(named) => expr = &named.schema,
            None => return TreeValueKind::Unsupported("an unresolved reference"),
        }
    }
    if let Some(object) = &expr.object {
        return if expr.subclasses {
            TreeValueKind::Unsupported("a polymorphic object")
        } else {
            TreeValueKind::Object(object)
        };
    }
    match expr.json_type {
        Some(JsonType::Array) => match expr.items.as_deref() {
            Some(TypeExpr { object: Some(object), subclasses: false, .. }) => TreeValueKind::ObjectList(object),
            _ => TreeValueKind::Unsupported("a list of values other than objects"),
        },
        Some(JsonType::Object) => TreeValueKind::Unsupported("a map"),
        Some(json_type) => TreeValueKind::Scalar { json_type, expr },
        None => TreeValueKind::Unsupported("an unresolved reference"),
    }
}

/// A Xenstore path segment a tree may use: ASCII letters, digits, `_` and `-`.
pub fn is_tree_segment(segment: &str) -> bool {
    !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `MAJOR.MINOR.PATCH` as numbers (the meta-schema checked the shape).
pub fn parse_semver(text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text.split('.').map(|part| part.parse::<u64>().ok());
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

/// The object a type holds (directly, in an array or in a map), and whether it is polymorphic.
pub fn object_target<'a>(
    types: &'a IndexMap<String, crate::model::NamedType>,
    expr: &'a TypeExpr,
) -> Option<(&'a str, bool)> {
    if let Some(object) = &expr.object {
        return Some((object, expr.subclasses));
    }
    if let Some(items) = expr.items.as_deref().or(expr.additional_properties.as_deref()) {
        return object_target(types, items);
    }
    let name = expr.reference.as_deref()?.strip_prefix("#/types/")?;
    object_target(types, &types.get(name)?.schema)
}

fn versions_list(versions: impl Iterator<Item = Version>) -> String {
    versions.map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
}

fn is_type_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_uppercase()) && name.chars().all(|c| c.is_ascii_alphanumeric())
}

fn is_field_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
